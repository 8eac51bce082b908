#!/usr/bin/env bash
# End-to-end checks of the nibble program on real weights, one section per
# meson test:  cli.sh convert|greedy|ppl|bad-input|hostile-files|quantize|
# convert-quantize|quality-int4|quality-int3|fast
# Environment (set by tests/meson.build): NIBBLE, TEST_FORMAT, TEST_LLAMA,
# DATA (tests/data), NB_WRAP (qemu wrapper for cross builds, or empty).
set -u
section=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
s260k=$DATA/stories260K

run() { $NB_WRAP "$NIBBLE" "$@"; }
. "$(dirname "$0")/sections.sh"

convert_both() {
  run convert -q --from llama2c "$s260k/stories260K.bin" --tokenizer "$s260k/tok512.model" \
    -o "$tmp/l2c.nib" || fail "convert llama2c"
  run convert -q --from hf "$s260k/hf" -o "$tmp/hf.nib" || fail "convert hf"
}

# expect_error DESCRIPTION WORDS -- nibble args...: exit code 1, exactly one
# line on stderr that contains WORDS, nothing on stdout, no crash.
expect_error() {
  local what=$1 words=$2; shift 3
  run "$@" >"$tmp/out" 2>"$tmp/err"
  local rc=$? lines
  lines=$(wc -l <"$tmp/err")
  if [ $rc -ne 1 ]; then fail "$what: exit code $rc, expected 1 ($(head -c 300 "$tmp/err"))"
  elif [ "$lines" -ne 1 ]; then fail "$what: $lines lines on stderr: $(head -c 300 "$tmp/err")"
  elif ! grep -qiF -- "$words" "$tmp/err"; then fail "$what: '$(cat "$tmp/err")' lacks '$words'"
  elif [ -s "$tmp/out" ]; then fail "$what: wrote to stdout"
  else echo "ok: $what: $(cat "$tmp/err")"; fi
}

section_convert() {
  convert_both
  run info --verify "$tmp/l2c.nib" >"$tmp/info" || fail "info l2c"
  grep -q "dim 64, layers 5, heads 8, kv heads 4, head dim 8, ffn 172" "$tmp/info" ||
    fail "info dims: $(cat "$tmp/info")"
  grep -q "interleaved" "$tmp/info" || fail "llama2.c file should use interleaved RoPE pairs"
  grep -q "all 47 tensors verified" "$tmp/info" || fail "checksums: $(tail -n 1 "$tmp/info")"
  run info "$tmp/hf.nib" | grep -q "rotate-half" || fail "HF file should use rotate-half pairs"
  # f16 and bf16 conversions run and stay close (greedy text is the same).
  run convert -q "$s260k/hf" --dtype f16 -o "$tmp/f16.nib" || fail "convert f16"
  run info --tensors "$tmp/f16.nib" | grep -q "blk.0.attn_q .*f16" || fail "f16 dtype"
  local a b
  a=$(run generate -q -m "$tmp/hf.nib" --temp 0 -n 40) b=$(run generate -q -m "$tmp/f16.nib" --temp 0 -n 40)
  [ "$a" = "$b" ] || fail "f16 greedy text differs: '$a' vs '$b'"
  [ -z "$(ls "$tmp" | grep '\.tmp')" ] || fail "temporary files left: $(ls "$tmp")"
}

section_greedy() {
  convert_both
  $NB_WRAP "$TEST_LLAMA" "$tmp/l2c.nib" "$tmp/hf.nib" "$s260k/greedy200.txt" ||
    fail "test_llama"
  local want="Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, she saw a big, red ball."
  local text
  text=$(run generate -q -m "$tmp/hf.nib" --temp 0 -n 100)
  case "$text" in "$want"*) echo "ok: greedy text: ${text:0:80}...";;
    *) fail "greedy text: '$text'";; esac
  run generate -q -m "$tmp/l2c.nib" --temp 0 -n 200 --ids --ignore-eos >"$tmp/ids" ||
    fail "generate --ids"
  grep -v '^#' "$s260k/greedy200.txt" | diff -q - "$tmp/ids" >/dev/null ||
    fail "CLI greedy ids differ from the numpy reference"
  local s1 s2
  s1=$(run generate -q -m "$tmp/l2c.nib" -p "Once upon a time" -n 60 --seed 42 --temp 0.8 --top-p 0.9)
  s2=$(run generate -q -m "$tmp/l2c.nib" -p "Once upon a time" -n 60 --seed 42 --temp 0.8 --top-p 0.9)
  [ "$s1" = "$s2" ] && [ -n "$s1" ] || fail "same seed, different text"
  case "$s1" in "Once upon a time"*) ;; *) fail "prompt not echoed: $s1";; esac
}

section_ppl() {
  convert_both
  local out ppl
  out=$(run ppl -q -m "$tmp/l2c.nib" -f "$DATA/tinystories_head.txt" -c 256 --windows 32) ||
    fail "ppl failed"
  echo "$out"
  ppl=$(echo "$out" | sed -n 's/^PPL = \([0-9.]*\).*/\1/p')
  # 4.168809: the float64 numpy reference on the same protocol.
  awk -v p="$ppl" 'BEGIN { exit !(p > 4.1678 && p < 4.1698) }' ||
    fail "perplexity $ppl, expected 4.1688 +- 0.001"
  echo "$out" | grep -q "8160 tokens scored, 32 windows of 256" || fail "ppl token count"
}

section_bad_input() {
  convert_both
  local m=$tmp/l2c.nib
  expect_error "missing model" "no such file" -- generate -m "$tmp/nope.nib"
  expect_error "directory as model" "not a regular file" -- info "$tmp"
  expect_error "text file as model" "nibble model" -- info "$DATA/README.md"
  expect_error "n = 0" "-n expects" -- generate -m "$m" -n 0
  expect_error "negative temperature" "--temp expects" -- generate -m "$m" --temp -1
  expect_error "top-p 0" "--top-p expects" -- generate -m "$m" --top-p 0
  expect_error "prompt longer than the context" "longer than the context" -- \
    generate -m "$m" -c 8 -p "Once upon a time there was a big dog who liked to run"
  expect_error "context beyond the model" "context" -- generate -m "$m" -c 100000
  expect_error "invalid UTF-8 prompt" "UTF-8" -- generate -m "$m" -p $'abc\xff'
  expect_error "unknown option" "unknown option" -- generate -m "$m" --bogus 1
  expect_error "unknown command" "unknown command" -- frobnicate
  expect_error "missing flag value" "needs a value" -- generate -m
  expect_error "ppl on a missing text" "cannot open" -- ppl -m "$m" -f "$tmp/none.txt"
  head -c 100 "$DATA/tinystories_head.txt" >"$tmp/short.txt"
  expect_error "ppl text shorter than a window" "fewer than one window" -- \
    ppl -m "$m" -f "$tmp/short.txt" -c 256
  # Hugging Face folders that are not what they claim.
  mkdir -p "$tmp/gpt2" && cp "$s260k/hf/"* "$tmp/gpt2/"
  sed -i 's/LlamaForCausalLM/GPT2LMHeadModel/; s/"llama"/"gpt2"/' "$tmp/gpt2/config.json"
  expect_error "unsupported architecture" "unsupported architecture" -- \
    convert "$tmp/gpt2" -o "$tmp/gpt2.nib"
  [ ! -e "$tmp/gpt2.nib" ] || fail "a failed convert left an output file"
  head -c 5000 "$s260k/stories260K.bin" >"$tmp/trunc.bin"
  expect_error "truncated llama2.c checkpoint" "truncated" -- \
    convert "$tmp/trunc.bin" --tokenizer "$s260k/tok512.model" -o "$tmp/trunc.nib"
  [ -z "$(ls "$tmp" | grep -E 'trunc\.nib|\.tmp')" ] || fail "partial output left: $(ls "$tmp")"
  expect_error "convert of a missing input" "no such file" -- convert "$tmp/x.bin" -o "$tmp/x.nib"
}

section_hostile_files() {
  mkdir -p "$tmp/bad"
  $NB_WRAP "$TEST_FORMAT" --write-bad "$tmp/bad" || { fail "cannot write hostile files"; return; }
  local n=0
  for f in "$tmp"/bad/*.nib; do
    expect_error "hostile $(basename "$f")" "$(basename "$f")" -- info "$f"
    n=$((n + 1))
  done
  [ $n -ge 20 ] || fail "only $n hostile files"
}

# $tmp/hf64: stories260K's Hugging Face folder with its context cut to 64.
make_hf64() {
  mkdir -p "$tmp/hf64" && cp "$s260k/hf/"* "$tmp/hf64/"
  sed -i 's/"max_position_embeddings": 512/"max_position_embeddings": 64/' "$tmp/hf64/config.json"
}

# nibble quantize. Bad input: one line, exit 1, no file left behind. Then a
# small AWQ run whose packed output verifies, loads and runs (the output
# layer quantized by default: a packed tensor of its own, token_embd kept),
# and RTN INT3 per row with --output-f16 (the tied output stays tied). The
# quality claims are in the quality-int4 / quality-int3 sections.
section_quantize() {
  local m=$tmp/s.nib q=$tmp/q.nib kjv=$DATA/kjv_head.txt out
  run convert -q --from llama2c "$s260k/stories260K.bin" --tokenizer "$s260k/tok512.model" \
    -o "$m" || fail "convert"
  : >"$tmp/empty.txt"
  printf 'In the beginning \xff was the word\n' >"$tmp/latin1.txt"
  head -c 400 "$kjv" >"$tmp/short.txt"
  expect_error "calibration file missing" "cannot open" -- \
    quantize -m "$m" --calib "$tmp/none.txt" -o "$q"
  expect_error "calibration file empty" "empty" -- quantize -m "$m" --calib "$tmp/empty.txt" -o "$q"
  expect_error "calibration not UTF-8" "UTF-8" -- quantize -m "$m" --calib "$tmp/latin1.txt" -o "$q"
  expect_error "calibration shorter than a block" "fewer than one block" -- \
    quantize -m "$m" --calib "$tmp/short.txt" -o "$q"
  expect_error "AWQ without calibration" "--calib" -- quantize -m "$m" -o "$q"
  expect_error "--bits 5" "--bits must be 4 or 3" -- quantize -m "$m" --method rtn --bits 5 -o "$q"
  expect_error "--bits 8" "--bits must be 4 or 3" -- quantize -m "$m" --method rtn --bits 8 -o "$q"
  expect_error "--group 48" "--group must be" -- quantize -m "$m" --method rtn --group 48 -o "$q"
  expect_error "--group -1" "--group must be" -- quantize -m "$m" --method rtn --group -1 -o "$q"
  expect_error "--output-group 48" "--group must be" -- \
    quantize -m "$m" --method rtn --output-group 48 -o "$q"
  expect_error "--output-method gptq" "--output-method must be" -- \
    quantize -m "$m" --method rtn --output-method gptq -o "$q"
  expect_error "the output layer's AWQ without calibration" "--output-method rtn" -- \
    quantize -m "$m" --method rtn --output-method awq -o "$q"
  expect_error "--calib-tokens under a block" "less than one block" -- \
    quantize -m "$m" --calib "$kjv" --calib-tokens 100 -o "$q"
  expect_error "unknown method" "--method must be" -- quantize -m "$m" --method gptq -o "$q"
  expect_error "unknown scale statistic" "--scale must be" -- \
    quantize -m "$m" --calib "$kjv" --scale y -o "$q"
  expect_error "model missing" "no such file" -- quantize -m "$tmp/none.nib" --method rtn -o "$q"
  [ -z "$(ls "$tmp" | grep -E '^q\.nib|\.tmp')" ] || fail "a failed quantize left a file: $(ls "$tmp")"

  # The AWQ run works on a Hugging Face copy whose context is cut to 64
  # tokens: calibration blocks of 64 keep it quick under qemu, and the
  # folder goes through the converter on the way.
  make_hf64
  run quantize -q -m "$tmp/hf64" --calib "$kjv" --calib-tokens 256 --bits 4 --group 32 -o "$q" \
    >"$tmp/report" 2>"$tmp/err" || fail "quantize AWQ: $(cat "$tmp/err")"
  grep -q "calibration blocks of 64" "$tmp/err" || fail "no note on the short context: $(cat "$tmp/err")"
  grep -q "4 blocks of 64" "$tmp/report" || fail "calibration not in blocks of 64"
  grep -q "attn_norm -> q,k,v *alpha" "$tmp/report" && grep -q "clip m\*/m0" "$tmp/report" ||
    fail "no per-layer report: $(head -c 300 "$tmp/report")"
  grep -q "output layer AWQ INT4, group 32" "$tmp/report" &&
    grep -q "output_norm -> output *alpha" "$tmp/report" || fail "no output layer in the report"
  # stories260K ties its embeddings: its 47 tensors and a packed output of its own
  run info --verify "$q" | grep -q "all 48 tensors verified" || fail "quantized file does not verify"
  run info --tensors "$q" >"$tmp/info" || fail "info --tensors"
  grep -q "blk.4.ffn_down .*q4" "$tmp/info" || fail "ffn_down is not q4"
  grep -q "blk.0.attn_norm .*f32" "$tmp/info" || fail "norms are not f32"
  grep -q "^  output  *q4 *\[512, 64\]" "$tmp/info" && grep -q "^  token_embd  *f32" "$tmp/info" &&
    grep -q "^embeddings: separate output" "$tmp/info" ||
    fail "output not q4 beside an f32 token_embd, untied: $(grep -E 'output|embd|embeddings' "$tmp/info")"
  out=$(run ppl -q -m "$q" -f "$DATA/tinystories_head.txt" -c 64 --windows 8) || fail "ppl"
  echo "AWQ INT4 g32, 4 blocks of 64: $out"
  awk -v p="$(echo "$out" | sed -n 's/^PPL = \([0-9.]*\).*/\1/p')" \
    'BEGIN { exit !(p > 1 && p < 10) }' || fail "implausible perplexity: $out"
  [ -n "$(run generate -q -m "$q" --temp 0 -n 20)" ] || fail "generate on the quantized model"
  expect_error "already quantized" "already quantized" -- \
    quantize -m "$q" --method rtn -o "$tmp/qq.nib"
  [ ! -e "$tmp/qq.nib" ] || fail "quantizing a quantized model left a file"

  run quantize -q -m "$m" --method rtn --bits 3 --group row --output-f16 -o "$tmp/r3.nib" \
    >"$tmp/report" || fail "quantize RTN INT3 per row"
  grep -q "output layer kept as it is" "$tmp/report" || fail "report: $(head -n 1 "$tmp/report")"
  run info --tensors "$tmp/r3.nib" >"$tmp/info" || fail "info --tensors"
  grep -q "blk.0.attn_q .*q3" "$tmp/info" || fail "attn_q is not q3"
  grep -q "^embeddings: tied to the output" "$tmp/info" && ! grep -q "^  output " "$tmp/info" ||
    fail "--output-f16: the output is not tied any more"
  [ -z "$(ls "$tmp" | grep '\.tmp')" ] || fail "temporary files left: $(ls "$tmp")"
}

# nibble convert --quantize: one command from a download to a quantized
# file, byte for byte what convert then quantize give with the same flags
# (AWQ from a Hugging Face folder; RTN INT3 from a llama2.c checkpoint with
# --dtype f16). Refused combinations give one line and exit 1, and no
# temporary file is left in the output folder, on success, on failure (some
# fail after the conversion) or on Ctrl-C.
section_convert_quantize() {
  local o=$tmp/outdir kjv=$DATA/kjv_head.txt pid rc i
  local flags=(--calib "$kjv" --calib-tokens 128 --search-tokens 64 --group 32)
  local l2c=(--from llama2c "$s260k/stories260K.bin" --tokenizer "$s260k/tok512.model")
  make_hf64
  mkdir -p "$o"
  run convert -q "$tmp/hf64" -o "$tmp/hf64.nib" || fail "convert"
  run quantize -q -m "$tmp/hf64.nib" "${flags[@]}" -o "$tmp/two.nib" >/dev/null || fail "quantize"
  run convert -q "$tmp/hf64" --quantize awq "${flags[@]}" -o "$o/awq.nib" >"$tmp/report" ||
    fail "convert --quantize awq"
  grep -q "AWQ INT4, group 32 .*(2 blocks of 64, the scale losses on 1 of them)" "$tmp/report" || fail "report: $(head -n 1 "$tmp/report")"
  cmp "$tmp/two.nib" "$o/awq.nib" && echo "ok: convert --quantize awq = convert + quantize" ||
    fail "convert --quantize awq differs from convert + quantize"
  run convert -q "${l2c[@]}" --dtype f16 -o "$tmp/f16.nib" || fail "convert f16"
  run quantize -q -m "$tmp/f16.nib" --method rtn --bits 3 --group row --output-f16 \
    -o "$tmp/rtn.nib" >/dev/null || fail "quantize rtn"
  run convert -q "${l2c[@]}" --dtype f16 --quantize rtn --bits 3 --group row --output-f16 \
    -o "$o/rtn.nib" >/dev/null || fail "convert --quantize rtn"
  cmp "$tmp/rtn.nib" "$o/rtn.nib" && echo "ok: convert --quantize rtn = convert + quantize" ||
    fail "convert --quantize rtn differs from convert + quantize"
  run info --tensors "$o/rtn.nib" >"$tmp/info" || fail "info"
  grep -q "blk.0.attn_q .*q3" "$tmp/info" && grep -q "token_embd .*f16" "$tmp/info" &&
    grep -q "^embeddings: tied" "$tmp/info" ||
    fail "rtn file: attn_q q3 and token_embd f16, tied, expected: $(head -c 300 "$tmp/info")"
  run info --tensors "$o/awq.nib" | grep -q "^  output  *q4" ||
    fail "convert --quantize awq: the output layer is not q4"
  # --check: perplexity before (on the mapped conversion, whose file is
  # gone by then) and after, equal to what nibble ppl says of each file.
  local ts=$DATA/tinystories_head.txt before after
  run convert -q "${l2c[@]}" --quantize rtn --group 32 --check "$ts" --check-windows 2 \
    -o "$o/chk.nib" >"$tmp/report" || fail "convert --quantize --check"
  run convert -q "${l2c[@]}" -o "$tmp/f32.nib" || fail "convert f32"
  before=$(run ppl -q -m "$tmp/f32.nib" -f "$ts" --windows 2 | sed -n 's/^PPL = \([0-9.]*\).*/\1/p')
  after=$(run ppl -q -m "$o/chk.nib" -f "$ts" --windows 2 | sed -n 's/^PPL = \([0-9.]*\).*/\1/p')
  grep -q "^check: perplexity on .*tinystories_head.txt (2 windows of 512 tokens): $before before, $after after (+" \
    "$tmp/report" && echo "ok: --check: $(grep '^check' "$tmp/report")" ||
    fail "--check: '$(grep '^check' "$tmp/report")', nibble ppl: $before and $after"
  rm -f "$o/chk.nib"
  expect_error "--check text missing" "cannot open" -- \
    convert "$tmp/hf64" --quantize rtn --check "$tmp/none.txt" -o "$o/bad.nib"

  mkdir -p "$tmp/autoawq" && cp "$s260k/hf/"* "$tmp/autoawq/"
  sed -i '1s/{/{"quantization_config": {"quant_method": "awq", "bits": 4},/' \
    "$tmp/autoawq/config.json"
  expect_error "--quantize awq without --calib" "--calib" -- \
    convert "$tmp/hf64" --quantize awq -o "$o/bad.nib"
  expect_error "--quantize on an AutoAWQ checkpoint" "already quantized" -- \
    convert "$tmp/autoawq" --quantize rtn -o "$o/bad.nib"
  expect_error "--quantize with --from autoawq" "already quantized" -- \
    convert --from autoawq "$tmp/hf64" --quantize rtn -o "$o/bad.nib"
  expect_error "a quantize flag without --quantize" "needs --quantize" -- \
    convert "$tmp/hf64" --bits 3 -o "$o/bad.nib"
  expect_error "--calib without --quantize" "needs --quantize" -- \
    convert "$tmp/hf64" --calib "$kjv" -o "$o/bad.nib"
  expect_error "a quantize switch without --quantize" "needs --quantize" -- \
    convert "$tmp/hf64" --no-clip -o "$o/bad.nib"
  expect_error "--output-f16 without --quantize" "needs --quantize" -- \
    convert "$tmp/hf64" --output-f16 -o "$o/bad.nib"
  expect_error "unknown method" "--quantize must be awq or rtn" -- \
    convert "$tmp/hf64" --quantize gptq -o "$o/bad.nib"
  expect_error "--search-tokens -1" "--search-tokens expects" -- \
    convert "$tmp/hf64" --quantize awq "${flags[@]}" --search-tokens -1 -o "$o/bad.nib"
  expect_error "--search-tokens 1k" "--search-tokens expects" -- \
    quantize -m "$tmp/hf64.nib" "${flags[@]}" --search-tokens 1k -o "$o/bad.nib"
  expect_error "calibration file missing" "cannot open" -- \
    convert "$tmp/hf64" --quantize awq --calib "$tmp/none.txt" -o "$o/bad.nib"
  printf 'In the beginning \xff was the word\n' >"$tmp/latin1.txt"
  expect_error "calibration not UTF-8 (after the conversion)" "UTF-8" -- \
    convert -q "$tmp/hf64" --quantize awq --calib "$tmp/latin1.txt" -o "$o/bad.nib"
  expect_error "--calib-tokens under a block (after the conversion)" "less than one block" -- \
    convert -q "$tmp/hf64" --quantize awq --calib "$kjv" --calib-tokens 10 -o "$o/bad.nib"

  # Ctrl-C once a temporary file shows (the conversion's or the
  # quantizer's): the process dies of SIGINT and leaves nothing.
  $NB_WRAP "$NIBBLE" convert -q "$tmp/hf64" --quantize awq --calib "$kjv" --calib-tokens 8192 \
    -o "$o/int.nib" >/dev/null 2>"$tmp/err" &
  pid=$!
  for ((i = 0; i < 1200; i++)); do
    ls "$o" | grep -q '\.tmp' || ! kill -0 "$pid" 2>/dev/null && break
    sleep 0.05
  done
  kill -INT "$pid"
  wait "$pid"
  rc=$?
  [ $rc -eq 130 ] && echo "ok: Ctrl-C after $i polls: exit $rc" ||
    fail "Ctrl-C: exit code $rc, expected 130 (signal; $(head -c 300 "$tmp/err"))"
  [ "$(ls "$o")" = "$(printf 'awq.nib\nrtn.nib')" ] || fail "files left in the output folder: $(ls "$o")"
}

# The quality claims on real weights: stories260K calibrated on 64 blocks of
# 512 tokens of KJV text (the scale losses on 32 of them: the default
# --search-tokens), perplexity on TinyStories (32 windows of 256) on
# the reference path: fp32 activations (W4A16, as the AWQ evaluations).
# AWQ must beat round-to-nearest per row and with groups of 32 (ragged:
# ffn_down has 172 inputs); at INT3 it must close at least half of RTN's gap
# to fp32 per row and 30% with groups of 32. The decoder linears alone
# (--output-f16), as llm-awq quantizes them, for the README's comparison.
ppl_of() {
  run ppl -q --reference -m "$1" -f "$DATA/tinystories_head.txt" -c 256 --windows 32 |
    sed -n 's/^PPL = \([0-9.]*\).*/\1/p'
}

quality() {
  local bits=$1 m=$tmp/s.nib fp rtn awq
  run convert -q --from llama2c "$s260k/stories260K.bin" --tokenizer "$s260k/tok512.model" \
    -o "$m" || fail "convert"
  fp=$(ppl_of "$m")
  for group in row 32; do
    run quantize -q -m "$m" --method rtn --bits "$bits" --group "$group" --output-f16 \
      -o "$tmp/rtn.nib" >/dev/null || fail "RTN INT$bits group $group"
    run quantize -q -m "$m" --calib "$DATA/kjv_head.txt" --calib-tokens 32768 --bits "$bits" \
      --group "$group" --output-f16 -o "$tmp/awq.nib" >"$tmp/report" ||
      fail "AWQ INT$bits group $group"
    rtn=$(ppl_of "$tmp/rtn.nib") awq=$(ppl_of "$tmp/awq.nib")
    local need=0
    [ "$bits" = 3 ] && need=$([ "$group" = row ] && echo 0.5 || echo 0.3)
    echo "INT$bits group $group: fp32 $fp, RTN $rtn, AWQ $awq ($(tail -n 1 "$tmp/report"))"
    awk -v f="$fp" -v r="$rtn" -v a="$awq" -v need="$need" \
      'BEGIN { exit !(a < r && (r - a) >= need * (r - f)) }' ||
      fail "INT$bits group $group: AWQ $awq vs RTN $rtn (fp32 $fp) misses the claim (closes < $need of the gap)"
  done
}

section_quality_int4() { quality 4; }
section_quality_int3() { quality 3; }

# The fast path (models/fast.c) against the reference on stories260K
# quantized RTN INT4 g32 (the output layer too, by default): the first 64
# greedy tokens from BOS agree with --exact (fp32 activations), on 1 and 3
# threads. With int8 activations (W4A8) they agree up to the first step, if
# any, where the reference's choice leads the runner-up by less than
# NEAR_TIE: W4A8 moves those leads by up to 0.20 on this model (0.05-0.15
# typically), and two of the 64 steps are closer calls than that (leads
# 0.011 and 0.018), which W4A8 decides by its rounding, not by a bug. --exact
# perplexity equals the reference's to 1e-4 relative. Then nibble bench and
# the run flags' bad input.
NEAR_TIE=0.25
section_fast() {
  local m=$tmp/s.nib q=$tmp/q.nib ref ids got o a b
  run convert -q --from llama2c "$s260k/stories260K.bin" --tokenizer "$s260k/tok512.model" \
    -o "$m" || fail "convert"
  run quantize -q -m "$m" --method rtn --bits 4 --group 32 -o "$q" >/dev/null || fail "quantize"
  ref=$(run generate -q -m "$q" --temp 0 -n 64 --ids --margins --ignore-eos --reference |
        head -n 64)
  [ "$(echo "$ref" | wc -l)" = 64 ] || fail "reference greedy: $(echo "$ref" | head -c 200)"
  ids=$(echo "$ref" | cut -f 1)
  for o in "--exact" "--exact -t 3"; do
    got=$(run generate -q -m "$q" --temp 0 -n 64 --ids --ignore-eos $o | head -n 64)
    [ "$got" = "$ids" ] && echo "ok: 64 greedy tokens as the reference (fast $o)" ||
      fail "greedy tokens differ from the reference with '$o'"
  done
  for o in "" "-t 1" "-t 3" "--kernels ref"; do
    got=$(run generate -q -m "$q" --temp 0 -n 64 --ids --ignore-eos $o | head -n 64)
    [ "$(echo "$got" | wc -l)" = 64 ] || fail "greedy with '${o:-default}': $(echo "$got" | head -c 200)"
    # the first step that differs, and the reference's lead there
    a=$(paste <(echo "$ref") <(echo "$got") | awk -F'\t' '$1 != $3 { print NR, $2; exit }')
    if [ -z "$a" ]; then
      echo "ok: 64 greedy tokens as the reference (fast ${o:-default})"
    elif [ -n "$a" ] && awk -v l="${a#* }" -v t="$NEAR_TIE" 'BEGIN { exit !(l < t) }'; then
      echo "ok: greedy tokens as the reference up to step ${a% *}, a near-tie there (lead" \
        "${a#* } < $NEAR_TIE) (fast ${o:-default})"
    else
      fail "greedy tokens differ from the reference with '${o:-default}' (step, lead: ${a:-none})"
    fi
  done
  a=$(run ppl -q -m "$q" -f "$DATA/tinystories_head.txt" -c 256 --windows 4 --reference |
      sed -n 's/^PPL = \([0-9.]*\).*/\1/p')
  b=$(run ppl -q -m "$q" -f "$DATA/tinystories_head.txt" -c 256 --windows 4 --exact |
      sed -n 's/^PPL = \([0-9.]*\).*/\1/p')
  echo "ppl over 4 windows of 256: reference $a, fast --exact $b"
  awk -v a="$a" -v b="$b" 'BEGIN { d = a - b; exit !(a > 1 && (d < 0 ? -d : d) <= 1e-4 * a) }' ||
    fail "--exact perplexity $b differs from the reference's $a by more than 1e-4 relative"

  run bench --shape 64,2,4,2,128,512 -p 8 -n 8 -r 2 >"$tmp/bench" 2>"$tmp/err" ||
    fail "bench: $(cat "$tmp/err")"
  cat "$tmp/bench"
  grep -q '^| model | size | params | kernels | threads | test | t/s | GB/s |$' "$tmp/bench" ||
    fail "bench table header"
  for t in pp8 tg8; do
    grep -Eq "^\| 64,2,4,2,128,512 q4 g128 \| [0-9.]+ KiB \| [0-9.]+ M \| [a-z0-9]+ \| [0-9]+ \| $t \| [0-9.]+ ± [0-9.]+ \| [0-9.]+ \|$" \
      "$tmp/bench" || fail "bench row $t"
  done
  grep -q "^peak RSS .*KV cache .*beyond it$" "$tmp/bench" || fail "bench memory line"
  run bench --shape 64,2,4,2,128,512 -p 8 -n 8 -r 2 -t 1 -o json >"$tmp/json" || fail "bench json"
  python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
assert r["threads"] == 1 and r["layers"] == 2 and r["params"] > 0, r
assert [t["test"] for t in r["tests"]] == ["pp8", "tg8"], r["tests"]
assert all(len(t["samples_ts"]) == 2 and t["avg_ts"] > 0 for t in r["tests"]), r["tests"]
assert r["kv_cache_bytes"] == 2 * 2 * 16 * 32 * 2, r["kv_cache_bytes"]
' "$tmp/json" && echo "ok: bench -o json" || fail "bench json: $(head -c 300 "$tmp/json")"
  run bench --shape tinyllama-1.1b --layers 1 -p 4 -n 4 -r 1 --cpus 0 >"$tmp/bench" ||
    fail "bench tinyllama, 1 layer, --cpus 0"
  grep -q "tinyllama-1.1b q4 g128, 1/22 layers .* | 1 | tg4 |" "$tmp/bench" ||
    fail "bench tinyllama row: $(cat "$tmp/bench")"
  # bench --ppl: the speed table, then the int8 and exact perplexities, the
  # same numbers nibble ppl prints with and without --exact.
  run bench -m "$q" -p 4 -n 4 -r 1 --ppl "$DATA/tinystories_head.txt" --ppl-ctx 256 \
    --ppl-windows 4 -q >"$tmp/bench" 2>"$tmp/err" || fail "bench --ppl: $(cat "$tmp/err")"
  cat "$tmp/bench"
  grep -q "| tg4 |" "$tmp/bench" || fail "bench --ppl: no speed table"
  grep -q '^| model | text | windows | ppl int8 | ppl exact | int8 vs exact |$' "$tmp/bench" ||
    fail "bench --ppl table header"
  a=$(run ppl -q -m "$q" -f "$DATA/tinystories_head.txt" -c 256 --windows 4 |
      sed -n 's/^PPL = \([0-9.]*\) +\/- \([0-9.]*\).*/\1 ± \2/p')
  b=$(run ppl -q -m "$q" -f "$DATA/tinystories_head.txt" -c 256 --windows 4 --exact |
      sed -n 's/^PPL = \([0-9.]*\) +\/- \([0-9.]*\).*/\1 ± \2/p')
  grep -Eq "^\| q.nib q4 g32 \| tinystories_head.txt \| 4 × 256 tokens \| $a \| $b \| [-+][0-9.]+% \|$" \
    "$tmp/bench" || fail "bench --ppl row, expected int8 $a and exact $b"
  grep -q "^int8 activations: perplexity within 0.5% of the exact path's$" "$tmp/bench" ||
    fail "bench --ppl verdict line"
  run bench -m "$q" -p 0 -n 0 --ppl "$DATA/tinystories_head.txt" --ppl-ctx 256 --ppl-windows 4 \
    -q -o json >"$tmp/json" || fail "bench --ppl -o json"
  python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))["ppl"]
i, e = r["int8"]["ppl"], r["exact"]["ppl"]
assert r["ctx"] == 256 and r["windows"] == 4 and r["int8"]["tokens"] == 4 * 255, r
assert abs(float(sys.argv[2]) - i) < 1e-4 and abs(float(sys.argv[3]) - e) < 1e-4, r
assert abs(r["diff_pct"] - 100 * (i - e) / e) < 1e-3 and r["within_limit"] is True, r
' "$tmp/json" "${a%% *}" "${b%% *}" && echo "ok: bench --ppl -o json" ||
    fail "bench --ppl json: $(head -c 400 "$tmp/json")"
  expect_error "bench --ppl on a random model" "needs -m" -- \
    bench --shape 64,2,4,2,128,512 --ppl "$DATA/tinystories_head.txt"
  expect_error "bench --ppl, no such text" "cannot read" -- bench -m "$q" --ppl "$tmp/none.txt"
  expect_error "bench --ppl-ctx past the model" "longer than" -- \
    bench -m "$q" --ppl "$DATA/tinystories_head.txt" --ppl-ctx 4096

  for cmd in "generate -m $q" "ppl -m $q -f $DATA/tinystories_head.txt" \
             "bench --shape 64,2,4,2,128,512"; do
    expect_error "${cmd%% *} -t 0" "-t expects" -- $cmd -t 0
    expect_error "${cmd%% *} --kernels bogus" "--kernels expects" -- $cmd --kernels bogus
    expect_error "${cmd%% *} --cpus garbage" "--cpus expects" -- $cmd --cpus 0-x,
  done
  expect_error "--cpus beyond the machine" "--cpus" -- generate -m "$q" --cpus 1000 -n 1
  expect_error "bench without a model" "needs -m" -- bench -p 8
  expect_error "bench, unknown shape" "--shape expects" -- bench --shape llama9-70b
  expect_error "bench, shape off the tiles" "multiples of 32" -- bench --shape 48,2,4,2,128,512
  expect_error "bench -o xml" "-o expects" -- bench --shape 64,2,4,2,128,512 -o xml
  expect_error "bench -c under -p" "shorter than" -- bench --shape 64,2,4,2,128,512 -p 8 -n 8 -c 4
}

run_section "$section"
