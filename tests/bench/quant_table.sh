#!/usr/bin/env bash
# Perplexity after quantization, as a markdown table: fp32, round to
# nearest (RTN) and AWQ, at INT4 and INT3, for the group sizes each model's
# dimensions allow (32; 128 when every linear input is a multiple of 128;
# per row), with the quantization wall time. Figures, not a test.
#   tests/bench/quant_table.sh [build dir]        (default: build)
# Models: stories260K (tests/data) and, when ../shared is there, mix6M (its
# Hugging Face folder, BF16). Calibration: KJV text, 32768 tokens (64 blocks
# of 512; 128 of 256 for mix6M, whose context is 256). Perplexity: the first
# NB_WINDOWS (default 32) windows of 256 tokens of wiki.test.raw and of
# TinyStories (../shared/data when present, else only tests/data's excerpt),
# with fp32 activations (W4A16, as the AWQ evaluations): the quantized
# weights are stored dequantized (quantize --fake-quant), which computes
# what the packed file does with ppl --exact, on the faster fp32 path. The
# figures measure the quantizer, not the runtime's int8 activations.
# NB_THREADS sets --threads (default: one per big core).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
. "$root/tests/bench/common.sh"
windows=${NB_WINDOWS:-32}

ppl() {
  "$nibble" ppl -q -m "$1" -f "$2" -c 256 --windows "$windows" |
    sed -n 's/^PPL = \([0-9.]*\).*/\1/p'
}

# row MODEL METHOD BITS GROUP SECONDS
row() {
  local cells="| $2 | $3 | $4 | $5 | $6 |" spec
  for spec in "${texts[@]}"; do
    cells+=" $(ppl "$1" "${spec#*:}") |"
  done
  echo "$cells"
}

# table NAME MODEL.nib GROUPS...
table() {
  local name=$1 model=$2 bits group method start secs out; shift 2
  local header="| model | method | bits | group | quantize (s) |" rule="|---|---|---|---|---|"
  for spec in "${texts[@]}"; do header+=" ${spec%%:*} |"; rule+="---|"; done
  echo; echo "$header"; echo "$rule"
  row "$model" "$name" fp32 - - -
  for bits in 4 3; do
    for group in "$@"; do
      for method in rtn awq; do
        out=$tmp/q.nib
        start=$(date +%s.%N)
        # --output-f16: the decoder linears alone, as llm-awq quantizes them (the
        # output layer's own cost is docs/awq.md's table)
        "$nibble" quantize -q -m "$model" --method "$method" --calib "$calib" --fake-quant \
          --output-f16 --calib-tokens 32768 --bits "$bits" --group "$group" "${threads[@]}" -o "$out" >/dev/null
        secs=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { print b - a }')
        row "$out" "$name" "${method^^}" "INT$bits" "$group" "$(printf '%.1f' "$secs")"
      done
    done
  done
}

"$nibble" convert -q --from llama2c "$root/tests/data/stories260K/stories260K.bin" \
  --tokenizer "$root/tests/data/stories260K/tok512.model" -o "$tmp/s260k.nib"
# Inputs of 64 and 172: groups of 128 would be one (ragged) group per row.
table stories260K "$tmp/s260k.nib" 32 row
if [ -d "$shared/models/mix6M/hf" ]; then
  "$nibble" convert -q "$shared/models/mix6M/hf" -o "$tmp/mix6M.nib"
  table mix6M "$tmp/mix6M.nib" 32 128 row
fi
