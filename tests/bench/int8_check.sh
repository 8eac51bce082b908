#!/usr/bin/env bash
# The int8-activation bound on the real models: the fast path's perplexity
# with int8 activations must stay within 0.5% of the exact path's (fp32
# activations into the same packed weights), as nibble bench --ppl measures
# it. Prints a markdown table per text: model | quant | ppl int8 |
# ppl exact | diff %, and exits 1 when a difference is over 0.5%.
#   tests/bench/int8_check.sh [build dir]        (default: build)
# Models: stories260K (tests/data) at INT4, RTN g32, AWQ g32 and AWQ per row;
# mix6M (its Hugging Face folder, BF16), when ../shared is there, at INT4,
# AWQ g128 and RTN g128. AWQ calibrates on KJV text (NB_CALIB_TOKENS tokens,
# default 16384). Texts: the first NB_WINDOWS (default 32) windows of 256
# tokens of wiki.test.raw and of TinyStories (../shared/data when present,
# else only tests/data's excerpt). NB_THREADS sets --threads (default:
# one per big core); NB_WRAP runs nibble through a wrapper (cross/qemu-run
# for a cross build, with NB_QEMU_CPU).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
. "$root/tests/bench/common.sh"
windows=${NB_WINDOWS:-32}
calib_tokens=${NB_CALIB_TOKENS:-16384}
wrap=(${NB_WRAP:+"$NB_WRAP"})

nb() { "${wrap[@]}" "$nibble" "$@"; }

# quantize MODEL METHOD GROUP OUT
quantize() {
  local how=(--method "$2")
  [ "$2" = awq ] && how+=(--calib "$calib" --calib-tokens "$calib_tokens")
  nb quantize -q -m "$1" "${how[@]}" --bits 4 --group "$3" "${threads[@]}" -o "$4" >/dev/null
}

# cells MODEL.nib TEXT: "int8 | exact | diff" from nibble bench --ppl
cells() {
  nb bench -m "$1" -p 0 -n 0 --ppl "$2" --ppl-ctx 256 --ppl-windows "$windows" -q -o json \
    "${threads[@]}" | python3 -c '
import json, sys
p = json.load(sys.stdin)["ppl"]
flag = "" if p["within_limit"] else " **over %g%%**" % p["limit_pct"]
print("%.4f | %.4f | %+.3f%s" % (p["int8"]["ppl"], p["exact"]["ppl"], p["diff_pct"], flag))'
}

# label METHOD GROUP: "AWQ g32", "AWQ per row"
label() { [ "$2" = row ] && echo "${1^^} per row" || echo "${1^^} g$2"; }

# The quantized models, as "model:quant:file" lines.
models=()
nb convert -q --from llama2c "$root/tests/data/stories260K/stories260K.bin" \
  --tokenizer "$root/tests/data/stories260K/tok512.model" -o "$tmp/s260k.nib"
for spec in rtn:32 awq:32 awq:row; do
  out=$tmp/s260k-${spec/:/-}.nib
  quantize "$tmp/s260k.nib" "${spec%:*}" "${spec#*:}" "$out"
  models+=("stories260K:$(label "${spec%:*}" "${spec#*:}"):$out")
done
if [ -d "$shared/models/mix6M/hf" ]; then
  for spec in awq:128 rtn:128; do
    out=$tmp/mix6M-${spec/:/-}.nib
    quantize "$shared/models/mix6M/hf" "${spec%:*}" "${spec#*:}" "$out"
    models+=("mix6M:$(label "${spec%:*}" "${spec#*:}"):$out")
  done
fi

over=0
for text in "${texts[@]}"; do
  printf '\n%s, first %s windows of 256 tokens (INT4 weights)\n\n' "${text%%:*}" "$windows"
  echo "| model | quant | ppl int8 | ppl exact | diff % |"
  echo "|---|---|---:|---:|---:|"
  for m in "${models[@]}"; do
    IFS=: read -r name quant file <<<"$m"
    row=$(cells "$file" "${text#*:}")
    echo "| $name | $quant | $row |"
    case $row in *over*) over=$((over + 1)) ;; esac
  done
done
echo
if [ "$over" -ne 0 ]; then
  echo "int8 activations: $over perplexities over 0.5% from the exact path's"
  exit 1
fi
echo "int8 activations: every perplexity within 0.5% of the exact path's"
