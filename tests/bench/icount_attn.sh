#!/usr/bin/env bash
# Instructions of the attention of one decode token under qemu-aarch64, per
# CPU model: every query head of one layer over N cached fp16 positions
# (tests/bench/attn_bench.c), the setup left out by difference (REPS and
# 2 * REPS runs). Default: the llama2-7b head shape (32 heads of 128, 32 kv
# heads) at 2048 positions.
#   tests/bench/icount_attn.sh [cross build dir]     (default: build-arm64)
# Environment: NB_ICOUNT_CPUS, NB_ICOUNT_POSITIONS, NB_ICOUNT_HEAD_DIM,
# NB_ICOUNT_HEADS, NB_ICOUNT_KV_HEADS, NB_ICOUNT_LAYERS (for the per-token
# column, default 32), NB_ICOUNT_REPS (default 1).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$root/build-arm64}
cpus=${NB_ICOUNT_CPUS:-cortex-a72 cortex-a76 max}
n=${NB_ICOUNT_POSITIONS:-2048}
hd=${NB_ICOUNT_HEAD_DIM:-128}
heads=${NB_ICOUNT_HEADS:-32}
kv=${NB_ICOUNT_KV_HEADS:-32}
layers=${NB_ICOUNT_LAYERS:-32}
reps=${NB_ICOUNT_REPS:-1}

if [ ! -f "$build/build.ninja" ]; then
  printf "[constants]\nroot = '%s'\n" "$root" > "$root/build-paths.ini"
  meson setup "$build" --cross-file "$root/build-paths.ini" \
    --cross-file "$root/cross/aarch64-linux.ini" >/dev/null
fi
ninja -C "$build" tests/attn_bench >/dev/null
so=$("$root/tests/bench/icount.sh" --fetch-only | tail -n 1)   # the plugin, built there

count() { # CPU REPS: instructions of one run
  qemu-aarch64 -L /usr/aarch64-linux-gnu -cpu "$1" -plugin "$so" -d plugin \
    "$build/tests/attn_bench" "$2" "$n" "$hd" "$heads" "$kv" 2>&1 >/dev/null |
    awk '/icount: total_insns/ {print $3}'
}

printf 'attention of one decoded token: %s heads of %s (%s kv heads) over %s positions, 1 thread\n' \
  "$heads" "$hd" "$kv" "$n"
printf '%-11s %14s %16s %18s\n' cpu per_layer per_head_pos "per_token($layers)"
for cpu in $cpus; do
  a=$(count "$cpu" "$reps") b=$(count "$cpu" $((2 * reps)))
  awk -v c="$cpu" -v a="$a" -v b="$b" -v r="$reps" -v p="$((heads * n))" -v l="$layers" \
    'BEGIN { d = (b - a) / r; printf "%-11s %14.0f %16.2f %18.0f\n", c, d, d / p, d * l }'
done
