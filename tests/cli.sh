#!/usr/bin/env bash
# End-to-end checks of the nibble program on real weights, one section per
# meson test:  cli.sh convert|greedy|ppl|bad-input|hostile-files
# Environment (set by tests/meson.build): NIBBLE, TEST_FORMAT, TEST_LLAMA,
# DATA (tests/data), NB_WRAP (qemu wrapper for cross builds, or empty).
set -u
section=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
s260k=$DATA/stories260K
failures=0

run() { $NB_WRAP "$NIBBLE" "$@"; }
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }

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

"section_${section//-/_}"
if [ $failures -ne 0 ]; then
  echo "$section: $failures failure(s)" >&2
  exit 1
fi
echo "$section: all checks passed"
