#!/usr/bin/env bash
# The demo: installs what it needs, builds c4mesh (the filter inside), runs it in a local Envoy mesh on
# 127.0.0.1 (c4mesh demo, harness/cli/src/cli/demo.rs), runs the conformance suite on the harness and
# on a real Envoy, then replays the built-in traffic mix against the local mesh with one
# service failing. Takes about three minutes.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
scripts/setup.sh
export ENVOY_BIN="${ENVOY_BIN:-$root/.venv/bin/envoy}"
cargo build --quiet --release -p c4mesh
c4mesh="${CARGO_TARGET_DIR:-target}/release/c4mesh"

"$c4mesh" demo
echo
echo "== Conformance: the built-in suite (harness/conformance/suite/) on the harness (wasm) and on Envoy 1.40 (envoy)"
"$c4mesh" conformance --target wasm --target envoy

echo
echo "== Replay: the six-route mix at 200 requests/s for 5 s against the local mesh, payment-service down"
up_log="$(mktemp)"
"$c4mesh" up --for 60s --config '{"debug_headers": true}' --fault payment-service=503 >"$up_log" 2>&1 &
up_pid=$!
trap 'kill "$up_pid" 2>/dev/null || true; rm -f "$up_log"' EXIT
gateway=""
for _ in $(seq 1 100); do
  gateway="$(awk '/^gateway/ {print $2}' "$up_log")"
  [ -n "$gateway" ] && break
  sleep 0.1
done
if [ -z "$gateway" ]; then
  echo "the local mesh did not start:" >&2
  cat "$up_log" >&2
  exit 1
fi
"$c4mesh" replay --target "$gateway" --rate 200 --duration 5s
