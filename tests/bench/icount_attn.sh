#!/usr/bin/env bash
# Instructions of the attention of one decode token under qemu-aarch64, per
# CPU model: every query head of one layer over N cached fp16 positions
# (tests/bench/attn_bench.c), the setup left out by difference (REPS and
# 2 * REPS runs), head by head (single: nb_attend_f16) and with the query
# heads of each kv head together (grouped: nb_attend_group_f16, each cache
# row loaded once for them; the same bits), and as the int8-activation path
# runs it (fast: the grouped form with fp16 scores where the CPU has
# FEAT_FP16, so the same as group on the A72). Default: the llama2-7b head
# shape (32 heads of 128, 32 kv heads: nothing to group) at 2048 positions.
#   tests/bench/icount_attn.sh [cross build dir]     (default: build-arm64)
# Environment: NB_ICOUNT_SHAPE (llama2-7b, qwen2.5-1.5b: 12 heads of 128
# on 2 kv heads, 28 layers; llama3.2-1b: 32 heads of 64 on 8 kv heads, 16
# layers), and to override it NB_ICOUNT_HEAD_DIM, NB_ICOUNT_HEADS,
# NB_ICOUNT_KV_HEADS, NB_ICOUNT_LAYERS (for the per-token columns);
# NB_ICOUNT_CPUS, NB_ICOUNT_POSITIONS (default 2048), NB_ICOUNT_REPS
# (default 1).
#   NB_ICOUNT_SHAPE=qwen2.5-1.5b NB_ICOUNT_CPUS="cortex-a76 cortex-a72" tests/bench/icount_attn.sh
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$root/build-arm64}
case ${NB_ICOUNT_SHAPE:-llama2-7b} in
  llama2-7b) shape=(128 32 32 32) ;;
  qwen2.5-1.5b) shape=(128 12 2 28) ;;
  llama3.2-1b) shape=(64 32 8 16) ;;
  *) echo "icount_attn: unknown NB_ICOUNT_SHAPE $NB_ICOUNT_SHAPE" >&2; exit 1 ;;
esac
cpus=${NB_ICOUNT_CPUS:-cortex-a72 cortex-a76 max}
n=${NB_ICOUNT_POSITIONS:-2048}
hd=${NB_ICOUNT_HEAD_DIM:-${shape[0]}}
heads=${NB_ICOUNT_HEADS:-${shape[1]}}
kv=${NB_ICOUNT_KV_HEADS:-${shape[2]}}
layers=${NB_ICOUNT_LAYERS:-${shape[3]}}
reps=${NB_ICOUNT_REPS:-1}

if [ ! -f "$build/build.ninja" ]; then
  printf "[constants]\nroot = '%s'\n" "$root" > "$root/build-paths.ini"
  meson setup "$build" --cross-file "$root/build-paths.ini" \
    --cross-file "$root/cross/aarch64-linux.ini" >/dev/null
fi
ninja -C "$build" tests/attn_bench >/dev/null
so=$("$root/tests/bench/icount.sh" --fetch-only | tail -n 1)   # the plugin, built there

count() { # CPU REPS MODE: instructions of one run
  qemu-aarch64 -L /usr/aarch64-linux-gnu -cpu "$1" -plugin "$so" -d plugin \
    "$build/tests/attn_bench" "$2" "$n" "$hd" "$heads" "$kv" "$3" 2>&1 >/dev/null |
    awk '/icount: total_insns/ {print $3}'
}

printf 'attention of one decoded token: %s heads of %s (%s kv heads) over %s positions, 1 thread\n' \
  "$heads" "$hd" "$kv" "$n"
printf '%-11s %-8s %14s %16s %18s\n' cpu heads per_layer per_head_pos "per_token($layers)"
for cpu in $cpus; do
  for mode in single group fast; do
    a=$(count "$cpu" "$reps" $mode) b=$(count "$cpu" $((2 * reps)) $mode)
    awk -v c="$cpu" -v m="$mode" -v a="$a" -v b="$b" -v r="$reps" -v p="$((heads * n))" \
      -v l="$layers" \
      'BEGIN { d = (b - a) / r; printf "%-11s %-8s %14.0f %16.2f %18.0f\n", c, m, d, d / p, d * l }'
  done
done
