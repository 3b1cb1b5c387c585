#!/usr/bin/env bash
# Runs every fuzz target of the filter for SECONDS each (default 60), from the corpus
# checked in under filter/fuzz/corpus/ (new inputs that add coverage are kept in a
# scratch copy, not in the repository). A crash stops the run with the input saved
# under filter/fuzz/artifacts/ and its path printed: make it a regression test.
#
# wasm_stream runs the filter's .wasm in c4mesh-host (wasmtime), built here first. It
# is built without AddressSanitizer, which cannot see inside the guest, with 16 codegen
# units and without debug assertions: wasmtime under cargo fuzz's defaults took 18
# minutes from clean on two cores, this way under 6. Its target directory is its own,
# so that the other targets' builds are kept.
#
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]
# Needs the nightly toolchain (rustup) and cargo-fuzz, installed here when missing.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
seconds="${1:-60}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(config_bytes config_json path routes wasm_stream)
fi

if ! rustup toolchain list | grep -q '^nightly'; then
  rustup toolchain install nightly --profile minimal
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked --quiet
fi

fuzz="$root/filter/fuzz"
cd "$root"
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
for target in "${targets[@]}"; do
  options=()
  if [ "$target" = wasm_stream ]; then
    cargo build --quiet --profile wasm --target wasm32-wasip1 -p c4mesh-filter
    export C4MESH_FILTER_WASM="${CARGO_TARGET_DIR:-$root/target}/wasm32-wasip1/wasm/c4mesh_filter.wasm"
    options=(--features wasm --sanitizer none --release --codegen-units 16 --target-dir "$fuzz/target/wasm")
  fi
  mkdir -p "$scratch/$target"
  echo "== fuzz $target for ${seconds}s"
  # Scratch corpus first (new inputs go there), the checked-in one read as seeds.
  log="$scratch/$target.log"
  if ! cargo +nightly fuzz run "${options[@]}" --fuzz-dir "$fuzz" "$target" "$scratch/$target" "$fuzz/corpus/$target" -- \
    -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1; then
    tail -n 60 "$log" >&2
    echo "fuzz target $target failed: the input is saved under filter/fuzz/artifacts/$target/" >&2
    exit 1
  fi
  # The last status line (executions, coverage, corpus) and the final counters.
  grep -E '^#[0-9]+' "$log" | tail -n 1
  grep -E '^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)' "$log" | tr '\n' ' '
  echo
done
echo "fuzz: ${#targets[@]} targets, ${seconds}s each, no crash"
