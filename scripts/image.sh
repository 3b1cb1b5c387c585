#!/usr/bin/env bash
# The c4mesh container image for the replay Job, without a Docker daemon: builds a
# statically linked c4mesh (glibc, crt-static) and writes it as an OCI image layout,
# pushed when a reference is given.
#
#   scripts/image.sh OUT_DIR [oci://HOST/REPO:TAG [more c4mesh image flags]]
#
# The static build has its own target directory (target/static): the flags differ from
# the workspace's, and sharing would rebuild both every time.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
out="${1:?usage: scripts/image.sh OUT_DIR [oci://HOST/REPO:TAG [flags]]}"
shift
# Standard input is left to the last step, `c4mesh image`, which may read a password
# from it (--password-stdin).
scripts/setup.sh </dev/null
host="$(rustc -vV | sed -n 's/^host: //p')"
RUSTFLAGS="-C target-feature=+crt-static" cargo build --quiet --release --locked \
  -p c4mesh --target "$host" --target-dir target/static </dev/null
binary="target/static/$host/release/c4mesh"
push=()
if [ $# -gt 0 ]; then
  push=(--push "$@")
fi
cargo run --quiet --release -p c4mesh -- image --binary "$binary" --out "$out" "${push[@]}"
