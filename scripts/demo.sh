#!/usr/bin/env bash
# The demo: installs what it needs, builds the filter, and runs it in a local Envoy
# mesh on 127.0.0.1 (see tests/src/bin/demo.rs). Takes well under a minute.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
scripts/setup.sh
export ENVOY_BIN="${ENVOY_BIN:-$root/.venv/bin/envoy}"
cargo run --quiet --release -p c4mesh-testbed --bin demo
