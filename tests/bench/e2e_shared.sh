#!/usr/bin/env bash
# End to end on the larger shared model (mix6M, ../shared/models: too big
# to vendor, so this is a script, not a test of the suite): quantized with
# AWQ INT4 g128, the fast path must give the reference path's first 64
# greedy tokens, with int8 activations and with --exact, on 1 and 3
# threads, natively and under qemu on each CPU model; and --exact
# perplexity must equal the reference's to 1e-4 relative. Prints one line
# per check and a summary; exits 1 if any check fails.
#   tests/bench/e2e_shared.sh [native build] [cross build]
#                                   (default: build build-arm64)
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
native=${1:-$root/build}
cross=${2:-$root/build-arm64}
shared=$root/../shared
cpus=${NB_E2E_CPUS:-cortex-a72 cortex-a76 max}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
bad=0

[ -d "$shared/models/mix6M/hf" ] || { echo "no $shared/models/mix6M/hf" >&2; exit 1; }
for b in "$native" "$cross"; do
  [ -x "$b/nibble" ] || { echo "no nibble in $b (build it first)" >&2; exit 1; }
done

q=$tmp/mix6M-q4.nib
"$native/nibble" convert -q "$shared/models/mix6M/hf" --quantize awq \
  --calib "$shared/data/kjv.txt" --calib-tokens 8192 -o "$q" >/dev/null || exit 1
text=$shared/data/tinystories_valid.txt

# check NAME WRAPPER...: greedy and perplexity agreement with one binary.
check() {
  local name=$1; shift
  local ref got o a b
  ref=$("$@" generate -q -m "$q" --temp 0 -n 64 --ids --ignore-eos --reference | head -n 64)
  for o in "" "--exact" "-t 1" "-t 3" "--exact -t 3"; do
    got=$("$@" generate -q -m "$q" --temp 0 -n 64 --ids --ignore-eos $o | head -n 64)
    if [ "$got" = "$ref" ] && [ "$(echo "$got" | wc -l)" = 64 ]; then
      echo "ok   $name: 64 greedy tokens as the reference (${o:-int8})"
    else
      echo "FAIL $name: greedy tokens differ from the reference (${o:-int8})"; bad=$((bad + 1))
    fi
  done
  a=$("$@" ppl -q -m "$q" -f "$text" -c 256 --windows 4 --reference | sed -n 's/^PPL = \([0-9.]*\).*/\1/p')
  b=$("$@" ppl -q -m "$q" -f "$text" -c 256 --windows 4 --exact | sed -n 's/^PPL = \([0-9.]*\).*/\1/p')
  if awk -v a="$a" -v b="$b" 'BEGIN { d = a - b; exit !(a > 1 && (d < 0 ? -d : d) <= 1e-4 * a) }'; then
    echo "ok   $name: ppl over 4 windows of 256: reference $a, fast --exact $b"
  else
    echo "FAIL $name: ppl reference $a vs fast --exact $b (more than 1e-4 relative)"; bad=$((bad + 1))
  fi
}

check native "$native/nibble"
for cpu in $cpus; do
  check "qemu $cpu" env NB_QEMU_CPU="$cpu" "$root/cross/qemu-run" "$cross/nibble"
done
echo "mix6M AWQ INT4 g128: $bad failed checks"
[ "$bad" -eq 0 ]
