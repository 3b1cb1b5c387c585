#!/usr/bin/env bash
# The demo: installs what it needs, builds the filter, runs it in a local Envoy mesh on
# 127.0.0.1 (see tests/src/bin/demo.rs), then runs the conformance suite on the harness
# and on a real Envoy. Takes about three minutes.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
scripts/setup.sh
export ENVOY_BIN="${ENVOY_BIN:-$root/.venv/bin/envoy}"
cargo build --quiet --profile wasm --target wasm32-wasip1 -p c4mesh-filter -p c4mesh-noop
cargo run --quiet --release -p c4mesh-testbed --bin demo
echo
echo "== Conformance: tests/conformance/ on the harness (wasm) and on Envoy 1.40 (envoy)"
cargo run --quiet --release -p c4mesh -- conformance --target wasm --target envoy
