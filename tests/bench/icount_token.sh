#!/usr/bin/env bash
# Instructions per token of the whole forward pass under qemu-aarch64, per
# CPU model, and the share spent outside the GEMV/GEMM kernels (attention,
# norms, activation quantization, RoPE, SwiGLU, the pool, libm): what fusing
# the layer is meant to keep small.
#   tests/bench/icount_token.sh [cross build dir]     (default: build-arm64)
# Decode (the default) runs `nibble bench --shape tinyllama-1.1b --layers 2
# -p 0 -n N -r 1 -t 1` with N and 2N tokens under the counting plugin that
# icount.sh builds: the difference is N decode steps (positions N..2N-1),
# the model's set-up, the warm-up and the exit taken out. NB_ICOUNT_MODE=pp
# counts prefill the same way (-p N and -p 2N, -n 0; the warm-up runs the
# prefill too, so the difference is divided by 2N).
# Per-function counts name the kernels: nb_qgemv_* / nb_qgemm_* (packed)
# and nb_gemv_* (plain weights, e.g. an f16 output layer) are "in GEMV".
# Environment: NB_ICOUNT_CPUS, NB_ICOUNT_TOKENS (N, default 4),
# NB_ICOUNT_SHAPE, NB_ICOUNT_LAYERS, NB_ICOUNT_MODEL (a .nib to count
# instead of a random model of a shape: all its layers), NB_ICOUNT_MODE (tg or pp),
# NB_ICOUNT_FLAGS (more bench flags, e.g. --exact), NB_ICOUNT_TOP (how many
# of the largest functions outside the GEMVs to list, default 8).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$root/build-arm64}
cpus=${NB_ICOUNT_CPUS:-cortex-a72 cortex-a76 max}
n=${NB_ICOUNT_TOKENS:-4}
shape=${NB_ICOUNT_SHAPE:-tinyllama-1.1b}
model=${NB_ICOUNT_MODEL:-}
layers=${NB_ICOUNT_LAYERS:-2}
mode=${NB_ICOUNT_MODE:-tg}
flags=${NB_ICOUNT_FLAGS:-}
top=${NB_ICOUNT_TOP:-8}

if [ ! -f "$build/build.ninja" ]; then
  printf "[constants]\nroot = '%s'\n" "$root" > "$root/build-paths.ini"
  meson setup "$build" --cross-file "$root/build-paths.ini" \
    --cross-file "$root/cross/aarch64-linux.ini" >/dev/null
fi
ninja -C "$build" nibble >/dev/null
so=$("$root/tests/bench/icount.sh" --fetch-only | tail -n 1)   # the plugin, built there

# profile CPU TOKENS OUT: per-function counts ("name count" lines, the total
# as "TOTAL count") of one run into OUT, the bench table into OUT.table.
profile() {
  local cpu=$1 tokens=$2 out=$3 sizes
  if [ "$mode" = pp ]; then sizes="-p $tokens -n 0"; else sizes="-p 0 -n $tokens"; fi
  # shellcheck disable=SC2086
  qemu-aarch64 -L /usr/aarch64-linux-gnu -cpu "$cpu" -plugin "$so,top=100000" -d plugin \
    "$build/nibble" bench "${what_runs[@]}" $sizes -r 1 -t 1 $flags \
    >"$out.table" 2>"$out.log"
  awk '/icount: total_insns/ { print "TOTAL", $3; next }
       /^icount: / { print $2, $3 }' "$out.log" >"$out"
}

what_runs=(--shape "$shape" --layers "$layers")
if [ -n "$model" ]; then what_runs=(-m "$model") shape=$(basename "$model") layers=all; fi
per=$n
[ "$mode" = pp ] && per=$((2 * n))
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if [ "$mode" = pp ]; then what="prefill token (prompts of $n and $((2 * n)))"
else
  # the positions decoded: after the depth (-d / --depth in the flags)
  depth=$(sed -nE 's/.*(-d|--depth)[ =]([0-9]+).*/\2/p' <<<"$flags")
  depth=${depth:-0}
  what="decoded token (positions $((depth + n))..$((depth + 2 * n - 1)))"
fi
printf 'instructions per %s: %s, %s layers, 1 thread %s\n' "$what" "$shape" "$layers" "$flags"
printf '%-11s %-13s %12s %12s %10s %9s\n' cpu kernels per_token in_gemv outside outside%
for cpu in $cpus; do
  profile "$cpu" "$n" "$tmp/a"
  profile "$cpu" $((2 * n)) "$tmp/b"
  kernels=$(awk -F'|' '/ (tg|pp)[0-9]/ { sub(/^ +/, "", $5); sub(/ +$/, "", $5); print $5; exit }' \
    "$tmp/a.table")
  # per function: (b - a) / per, then the split; the largest functions of
  # each side go to $tmp/top
  awk -v per="$per" -v top="$top" 'NR == FNR { a[$1] = $2; next } { d[$1] = ($2 - a[$1]) / per }
    END {
      for (f in d) if (f != "TOTAL" && f ~ /^(nb_qgemv|nb_qgemm|nb_gemv)/) g += d[f]
      printf "%.0f %.0f %.0f\n", d["TOTAL"], g, d["TOTAL"] - g
      for (f in d) if (f != "TOTAL" && d[f] > 0)
        printf "%-6s %-34s %10.0f\n", f ~ /^(nb_qgemv|nb_qgemm|nb_gemv)/ ? "gemv" : "other",
          f, d[f] | "sort -k1,1 -k3,3nr | awk -v n=" top " \"\\$1 == \\\"gemv\\\" || ++k <= n\" >&2"
    }' "$tmp/a" "$tmp/b" >"$tmp/sum" 2>"$tmp/top"
  read -r total gemv outside <"$tmp/sum"
  awk -v c="$cpu" -v k="$kernels" -v t="$total" -v g="$gemv" -v o="$outside" \
    'BEGIN { printf "%-11s %-13s %12d %12d %10d %8.2f%%\n", c, k, t, g, o, 100 * o / t }'
  sed 's/^/    /' "$tmp/top"
done
echo "(outside = everything but nb_qgemv*/nb_qgemm*/nb_gemv*, shared libraries included:"
echo " libm's expf, libc's memcpy show as '?'; below each CPU, the GEMV functions and the"
echo " $top largest others)"
