#!/usr/bin/env bash
# c4mesh replay against wrk, h2load (HTTP/1.1) and oha on the same loopback target and
# the same core (SPEC 3.3, section 5): closed loop at equal connections (throughput of
# each and replay's ratio to wrk and to oha, medians of ROUNDS side-by-side rounds), and
# the open loop's highest rate held within 1%, with its p99.
# Then replay's own HTTPS and HTTP/2 figures against the same target (wrk speaks
# neither h2 nor, here, TLS).
#
# Usage: benches/replay-vs-wrk.sh [ROUNDS] [SECONDS]   (defaults: 3 rounds of 4 s)
# nginx (one worker, CPU 0) is the target; wrk and replay run on CPU 1, one thread.
# Needs root for apt-get (wrk, nginx-light, nghttp2-client) on a fresh machine, and
# installs oha from crates.io when missing; loopback only.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
C4MESH_BENCH_TOOLS=1 scripts/setup.sh
rounds="${1:-3}"
seconds="${2:-4}"
cargo build --quiet --release -p c4mesh
c4mesh="${CARGO_TARGET_DIR:-target}/release/c4mesh"

dir="$(mktemp -d)"
trap 'nginx -p "$dir" -c nginx.conf -s stop 2>/dev/null || true; rm -rf "$dir"' EXIT
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=api.c4ang.com" \
  -addext "subjectAltName=DNS:api.c4ang.com" -addext "basicConstraints=critical,CA:FALSE" -keyout "$dir/key.pem" -out "$dir/cert.pem" 2>/dev/null
http=18180
https=18543
cat > "$dir/nginx.conf" <<CONF
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 10000000;
  server {
    listen 127.0.0.1:$http;
    location / { return 200 "ok\n"; }
  }
  server {
    listen 127.0.0.1:$https ssl http2;
    ssl_certificate $dir/cert.pem;
    ssl_certificate_key $dir/key.pem;
    location / { return 200 "ok\n"; }
  }
}
CONF
nginx -p "$dir" -c nginx.conf
sleep 0.3
for pid in $(cat "$dir/nginx.pid") $(pgrep -P "$(cat "$dir/nginx.pid")"); do taskset -pc 0 "$pid" >/dev/null; done

target="http://127.0.0.1:$http"
path=/api/v1/orders/1
replay_rate() { # JSON report -> achieved rate; a run with errors is not a figure
  python3 -c 'import json,sys
r = json.load(sys.stdin)
if r["errors"]:
    sys.exit("replay got %d errors: %s" % (r["errors"], r["error_kinds"]))
print(r["achieved_rate"])'
}

echo "== closed loop, 32 connections, one core each, $rounds rounds of $seconds s"
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
wrk_ratios=()
oha_ratios=()
for round in $(seq 1 "$rounds"); do
  wrk_rate=$(taskset -c 1 wrk -t1 -c32 -d"${seconds}s" "$target$path" | awk '/Requests\/sec/ {print $2}')
  h2load_rate=$(taskset -c 1 h2load --h1 -t1 -c32 -D "$seconds" "$target$path" | awk '/^finished in/ {print $4}')
  oha_rate=$(taskset -c 1 oha --no-tui -c 32 -z "${seconds}s" "$target$path" | awk '/Requests\/sec:/ {print $2}')
  replay=$(taskset -c 1 "$c4mesh" replay --target "$target" --concurrency 32 --duration "${seconds}s" --json | replay_rate)
  wrk_ratios+=("$(python3 -c "print(f'{$replay / $wrk_rate:.3f}')")")
  oha_ratios+=("$(python3 -c "print(f'{$replay / $oha_rate:.3f}')")")
  printf "round %d: wrk %.0f, h2load %.0f, replay %.0f, oha %.0f req/s; replay/wrk %s, replay/oha %s\n" \
    "$round" "$wrk_rate" "$h2load_rate" "$replay" "$oha_rate" "${wrk_ratios[-1]}" "${oha_ratios[-1]}"
done
echo "replay / wrk (median of $rounds): $(printf "%s\n" "${wrk_ratios[@]}" | median)"
echo "replay / oha (median of $rounds): $(printf "%s\n" "${oha_ratios[@]}" | median)"

echo
echo "== open loop: the highest rate replay holds within 1% (64 connections, one core)"
held=0
for rate in 20000 40000 60000 80000 90000 100000 110000 120000 140000; do
  report=$(taskset -c 1 "$c4mesh" replay --target "$target" --rate "$rate" --duration "${seconds}s" --connections 64 --json)
  achieved=$(printf "%s" "$report" | replay_rate)
  p99=$(printf "%s" "$report" | python3 -c 'import json,sys; print(json.load(sys.stdin)["latency_ms"]["p99"])')
  ok=$(python3 -c "print(int($achieved >= 0.99 * $rate))")
  printf "rate %6d: achieved %.0f/s, p99 %s ms%s\n" "$rate" "$achieved" "$p99" "$([ "$ok" = 1 ] && echo "" || echo "  (not held)")"
  [ "$ok" = 1 ] || break
  held=$rate
done
echo "highest rate held within 1%: $held/s"

echo
echo "== replay over HTTPS and HTTP/2 (same nginx, TLS with a self-signed certificate for api.c4ang.com)"
tls="https://127.0.0.1:$https"
for proto in --http1 --http2; do
  rate=$(taskset -c 1 "$c4mesh" replay --target "$tls" --cacert "$dir/cert.pem" $proto --concurrency 32 \
    --connections 32 --duration "${seconds}s" --json | replay_rate)
  printf "HTTPS %s, closed loop, 32 connections: %.0f req/s\n" "${proto#--}" "$rate"
done
rate=$(taskset -c 1 "$c4mesh" replay --target "$tls" --cacert "$dir/cert.pem" --http2 --concurrency 32 \
  --connections 4 --duration "${seconds}s" --json | replay_rate)
printf "HTTPS http2, closed loop, 32 streams over 4 connections: %.0f req/s\n" "$rate"
