#!/usr/bin/env bash
# nibble serve's batching, measured: aggregate decode tokens/s with 1 and
# with 4 concurrent streams (one slot each) on a random-weight Llama of
# TinyLlama's width, INT4 (RTN g128), through the HTTP API. Not a test: it
# prints the figures (docs/serve.md quotes them).
#   tests/bench/serve_bench.sh [build dir] [aarch64 build dir]   (default: build)
# With an aarch64 build (cross/aarch64-linux.ini), the instructions per
# decoded token under qemu too (NB_QEMU_CPU, default cortex-a76; the
# counting plugin of tests/bench/icount.sh, one thread).
# NB_SHAPE=DIM,LAYERS,HEADS,KV_HEADS,FFN (default 2048,2,32,4,5632),
# NB_TOKENS per stream (128), NB_ROUNDS (3, the median is kept),
# NB_THREADS (nibble's default), NB_MODEL=FILE to serve a model of yours.
# Needs /usr/bin/python3 with numpy (python3-numpy, as tests/ref).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
. "$root/tests/bench/common.sh"
args=(--shape "${NB_SHAPE:-2048,2,32,4,5632}" --tokens "${NB_TOKENS:-128}"
      --rounds "${NB_ROUNDS:-3}" --threads "${NB_THREADS:-}" --model "${NB_MODEL:-}")
model=${NB_MODEL:-$tmp/bench.nib}
[ -n "${NB_MODEL:-}" ] || /usr/bin/python3 "$root/tests/bench/serve_bench.py" "$nibble" "$tmp" \
  "${args[@]}" --make-only >/dev/null
/usr/bin/python3 "$root/tests/bench/serve_bench.py" "$nibble" "$tmp" "${args[@]}" --model "$model"
if [ -n "${2:-}" ]; then
  so=$("$root/tests/bench/icount.sh" --fetch-only | tail -n 1)   # the plugin, built there
  /usr/bin/python3 "$root/tests/bench/serve_bench.py" "$nibble" "$tmp" "${args[@]}" \
    --model "$model" --icount "$2/nibble" --plugin "$so" --cpu "${NB_QEMU_CPU:-cortex-a76}" \
    --tokens "${NB_ICOUNT_TOKENS:-16}"
fi
