#!/usr/bin/env bash
# Instruction counts of the packed INT4 kernels (tests/bench/gemv_bench.c)
# under qemu-aarch64, per CPU model and kernel variant: the one speed
# measure that repeats exactly without ARM hardware.
#   tests/bench/icount.sh [cross build dir]     (default: build-arm64)
#   NB_ICOUNT_CPUS, NB_ICOUNT_SETS, NB_ICOUNT_TOKENS, NB_ICOUNT_REPS narrow it.
# Setup is excluded by difference: a run with N repetitions and one with
# 2N, divided by N and by the weights (and tokens, for the GEMM).
# The plugin needs qemu-plugin.h, which only the qemu source package has:
# it is fetched with tools/deps.sh's private apt state (sources derived
# from this machine's apt configuration) and cached under .deps/.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
deps=$root/.deps
build=${1:-$root/build-arm64}
cpus=${NB_ICOUNT_CPUS:-cortex-a72 cortex-a76 max}
reps=${NB_ICOUNT_REPS:-2}

say() { printf 'icount: %s\n' "$*" >&2; }

# qemu-plugin.h of the installed qemu-user's source version.
plugin_header() {
  local dir=$deps/qemu-plugin
  [ -f "$dir/qemu-plugin.h" ] && return 0
  # Sourcing deps.sh defines its functions without running its installs.
  # shellcheck source=../../tools/deps.sh
  source "$root/tools/deps.sh"
  arm64_apt_setup
  local ver
  ver=$(dpkg-query -W -f='${source:Version}' qemu-user 2>/dev/null || true)
  mkdir -p "$dir/src"
  say "fetching the qemu source package (for qemu-plugin.h)"
  (cd "$dir/src" && { apt-get "${APT_ARM64[@]}" source --download-only "qemu${ver:+=$ver}" ||
                      apt-get "${APT_ARM64[@]}" source --download-only qemu; } >/dev/null)
  local orig
  orig=$(ls "$dir"/src/qemu_*.orig.tar.* | head -n 1)
  tar -xf "$orig" -C "$dir" --wildcards --no-anchored --strip-components=3 'include/qemu/qemu-plugin.h'
  test -f "$dir/qemu-plugin.h"
  rm -rf "$dir/src"   # the tarball is large; the header is all that is kept
}

# The counting plugin from shared/tools (beside the checkout).
plugin_lib() {
  local so=$deps/qemu-plugin/libicount.so
  local src=${NB_ICOUNT_SRC:-$root/../shared/tools/qemu-icount.c}
  [ -f "$src" ] || { say "no $src (set NB_ICOUNT_SRC)"; exit 1; }
  if [ ! -f "$so" ] || [ "$src" -nt "$so" ]; then
    gcc -O2 -shared -fPIC -I"$deps/qemu-plugin" -o "$so" "$src" -lpthread
  fi
  echo "$so"
}

if [ "${1:-}" = --fetch-only ]; then plugin_header; plugin_lib; exit 0; fi

# The cross build, configured the way tests/run.sh does it if missing.
if [ ! -f "$build/build.ninja" ]; then
  printf "[constants]\nroot = '%s'\n" "$root" > "$root/build-paths.ini"
  meson setup "$build" --cross-file "$root/build-paths.ini" \
    --cross-file "$root/cross/aarch64-linux.ini" >/dev/null
fi
ninja -C "$build" tests/gemv_bench >/dev/null
bench=$build/tests/gemv_bench
plugin_header
so=$(plugin_lib)

# count CPU ARGS...: instructions of one run (nothing if the CPU lacks the set)
count() {
  local cpu=$1 out; shift
  out=$(qemu-aarch64 -L /usr/aarch64-linux-gnu -cpu "$cpu" -plugin "$so" -d plugin "$bench" "$@" \
        2>&1 >/dev/null) || return 0
  awk '/icount: total_insns/ {print $3}' <<<"$out"
}

# per CPU SET MODE TOKENS DIVISOR [BITS GROUP]: (count(2N) - count(N)) / (N * DIVISOR)
per() {
  local cpu=$1 set=$2 mode=$3 tok=$4 div=$5 bits=${6:-4} group=${7:-128} a b
  a=$(count "$cpu" "$set" "$mode" "$reps" "$tok" "$bits" "$group") || true
  b=$(count "$cpu" "$set" "$mode" $((2 * reps)) "$tok" "$bits" "$group") || true
  if [ -z "$a" ] || [ -z "$b" ]; then echo "-"; return; fi
  awk -v a="$a" -v b="$b" -v n="$reps" -v d="$div" 'BEGIN { printf "%.4f", (b - a) / (n * d) }'
}

weights=$((4096 * 4096))
tokens=${NB_ICOUNT_TOKENS:-8}
printf 'instructions per weight, 4096x4096 INT4 g128, 1 thread (decode: per weight; prefill: per weight per token, %s tokens)\n' "$tokens"
printf '%-11s %-8s %12s %12s %12s %14s\n' cpu set gemv_int8 gemv_f32 gemm_int8 quant/token/col
for cpu in $cpus; do
  for set in ${NB_ICOUNT_SETS:-neon dotprod i8mm}; do
    gv=$(per "$cpu" "$set" gemv 1 "$weights")
    [ "$gv" = - ] && continue   # this CPU cannot run the set
    gf=$(per "$cpu" "$set" f32 1 "$weights")
    gm=$(per "$cpu" "$set" gemm "$tokens" $((weights * tokens)))
    qt=$(per "$cpu" "$set" quant 1 4096)
    printf '%-11s %-8s %12s %12s %12s %14s\n' "$cpu" "$set" "$gv" "$gf" "$gm" "$qt"
  done
done

# The same decode GEMV on other group sizes and on INT3, with the set
# "auto" picks on each CPU.
printf '\nother layouts, decode int8, instructions per weight (set chosen by auto)\n'
printf '%-11s %-8s %10s %10s %10s %10s %10s\n' cpu set int4-g128 int4-g64 int4-g32 int4-g0 int3-g128
for cpu in $cpus; do
  case $cpu in cortex-a72) set=neon ;; *) set=dotprod ;; esac
  row=()
  for bg in "4 128" "4 64" "4 32" "4 0" "3 128"; do
    row+=("$(per "$cpu" "$set" gemv 1 "$weights" $bg)")
  done
  printf '%-11s %-8s %10s %10s %10s %10s %10s\n' "$cpu" "$set" "${row[@]}"
done

printf '\nanchors, ggml Q4_0 4096x4096 GEMV measured the same way: cortex-a76 0.268 (repacked),\n'
printf '0.671 (not repacked); cortex-a72 0.921. Targets: <= 0.19 (cortex-a76), <= 0.46 (cortex-a72).\n'
