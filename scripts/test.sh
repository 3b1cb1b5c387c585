#!/usr/bin/env bash
# Every test of c4mesh: formatting, lints, unit and property tests, and the end-to-end
# tests that run the filter in a real Envoy. Installs what it needs first.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
scripts/setup.sh
export ENVOY_BIN="${ENVOY_BIN:-$root/.venv/bin/envoy}"

cargo fmt --all --check
cargo clippy --workspace --release --all-targets -- -D warnings
cargo clippy -p c4mesh-filter -p c4mesh-noop -p c4mesh-abi-probe -p c4mesh-abi-probe-lean -p c4mesh-trap --target wasm32-wasip1 --profile wasm -- -D warnings
# Licences, banned or duplicated crates and sources, as deny.toml allows them (advisories
# need the network: not here).
cargo deny check bans licenses sources
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
cargo test --workspace --release 2>&1 | tee "$log"
# Every fuzz target of the filter, the whole .wasm among them, briefly (scripts/fuzz.sh SECONDS for longer).
scripts/fuzz.sh "${C4MESH_FUZZ_SECONDS:-15}"
# One closing line for the whole run (cargo prints one per test binary).
awk '/^test result:/ { p += $4; f += $6 } END { printf "all tests: %d passed, %d failed\n", p, f }' "$log"
