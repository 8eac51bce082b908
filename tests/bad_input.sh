#!/usr/bin/env bash
# The bad-input table (docs/bad-input.md): what a careless or hostile user
# can hand each subcommand, and what nibble does with it. One section per
# meson test:  bad_input.sh convert|quantize|generate|chat|ppl|info|bench|tokenize|serve
# (the signals section is bad_signals.sh's).
# The rules each row checks (unless it says otherwise): exit code 1, one
# line on stderr naming the problem, nothing on stdout, no output and no
# temporary file left behind, never a crash.
# Environment (set by tests/meson.build): NIBBLE, DATA (tests/data), NB_WRAP
# (qemu wrapper for cross builds, or empty); BPE_CASES (tests/bpe) for the
# tokenize section.
set -u
section=${1:-}
. "$(dirname "$0")/bad_common.sh"

section_convert() {
  local o=$tmp/outdir bin=$s260k/stories260K.bin
  mkdir -p "$o"
  local l2c=(--from llama2c --tokenizer "$tok" -o "$o/x.nib")
  local hfo=(-o "$o/x.nib")
  # Paths.
  expect_error "missing checkpoint" "no such file" -- \
    convert "$tmp/none.bin" --tokenizer "$tok" "${hfo[@]}"
  expect_error "missing --tokenizer" "no such file + none.model" -- \
    convert --from llama2c "$bin" --tokenizer "$tmp/none.model" -o "$o/x.nib"
  cp "$bin" "$tmp/u.bin"
  expect_unreadable "unreadable checkpoint" "$tmp/u.bin" -- convert "$tmp/u.bin" "${l2c[@]}"
  mkdir -p "$tmp/locked" && cp "$bin" "$tmp/locked/s.bin"
  expect_unreadable "checkpoint in a directory that cannot be entered" "$tmp/locked" -- \
    convert "$tmp/locked/s.bin" "${l2c[@]}"
  cp "$tok" "$tmp/u.model"
  expect_unreadable "unreadable tokenizer" "$tmp/u.model" -- \
    convert --from llama2c "$bin" --tokenizer "$tmp/u.model" -o "$o/x.nib"
  mkdir -p "$tmp/emptydir"
  expect_error "directory as the llama2.c checkpoint" "not a llama2.c checkpoint" -- \
    convert "$tmp/emptydir" "${l2c[@]}"
  expect_error "directory without config.json" "config.json + no such file" -- \
    convert "$tmp/emptydir" "${hfo[@]}"
  expect_error "directory as --tokenizer" "not a regular file" -- \
    convert --from llama2c "$bin" --tokenizer "$tmp/emptydir" -o "$o/x.nib"
  mkdir -p "$o/out.nib"
  expect_error "-o names a directory" "is a directory" -- \
    convert --from llama2c "$bin" --tokenizer "$tok" -o "$o/out.nib"
  rmdir "$o/out.nib"
  expect_error "-o in a missing directory" "no such file" -- \
    convert --from llama2c "$bin" --tokenizer "$tok" -o "$tmp/nodir/x.nib"
  # llama2.c checkpoints.
  craft cut "$bin" "$tmp/short.bin" 20
  expect_error "llama2.c checkpoint of 20 bytes" "too short" -- convert "$tmp/short.bin" "${l2c[@]}"
  craft cut "$bin" "$tmp/trunc.bin" 5000
  expect_error "llama2.c checkpoint cut in the weights" "truncated" -- \
    convert "$tmp/trunc.bin" "${l2c[@]}"
  craft flip "$bin" "$tmp/dim.bin" 2 6
  expect_error "llama2.c header bit-flipped (dim)" "not a llama2.c v0 checkpoint" -- \
    convert "$tmp/dim.bin" "${l2c[@]}"
  craft flip "$bin" "$tmp/weight.bin" 1000 0
  expect_runs "llama2.c weight bit-flipped (finite; the format has no checksum)" -- \
    convert --from llama2c "$tmp/weight.bin" --tokenizer "$tok" -o "$tmp/weight.nib"
  craft l2c-nan "$bin" "$tmp/nan.bin" 100
  expect_error "llama2.c checkpoint with a NaN weight" "non-finite + token_embd" -- \
    convert "$tmp/nan.bin" "${l2c[@]}"
  craft cut "$tok" "$tmp/cut.model" 500
  expect_error "--tokenizer truncated" "cut.model + not a SentencePiece model" -- \
    convert --from llama2c "$bin" --tokenizer "$tmp/cut.model" -o "$o/x.nib"
  craft flip "$tok" "$tmp/flip.model" 1000 6
  expect_error "--tokenizer bit-flipped" "flip.model + not a SentencePiece model" -- \
    convert --from llama2c "$bin" --tokenizer "$tmp/flip.model" -o "$o/x.nib"
  # Hugging Face folders.
  local st=model.safetensors
  hf_copy st-cut && craft cut "$s260k/hf/$st" "$tmp/st-cut/$st" 100000
  expect_error "safetensors truncated" "run past" -- convert "$tmp/st-cut" "${hfo[@]}"
  hf_copy st-tiny && craft cut "$s260k/hf/$st" "$tmp/st-tiny/$st" 4
  expect_error "safetensors of 4 bytes" "not a safetensors file" -- convert "$tmp/st-tiny" "${hfo[@]}"
  hf_copy st-json && craft flip "$s260k/hf/$st" "$tmp/st-json/$st" 60 0
  expect_error "safetensors header bit-flipped (JSON)" "not valid JSON" -- \
    convert "$tmp/st-json" "${hfo[@]}"
  hf_copy st-name && craft flip "$s260k/hf/$st" "$tmp/st-name/$st" 20 1
  expect_error "safetensors header bit-flipped (a tensor name)" "model.embed_tokens.weight + missing" \
    -- convert "$tmp/st-name" "${hfo[@]}"
  hf_copy st-data && craft st-flip-data "$s260k/hf/$st" "$tmp/st-data/$st" model.norm.weight
  expect_runs "safetensors weight bit-flipped (finite; no checksum)" -- \
    convert "$tmp/st-data" -o "$tmp/st-data.nib"
  hf_copy st-nan &&
    craft st-nan "$s260k/hf/$st" "$tmp/st-nan/$st" model.layers.0.self_attn.q_proj.weight
  expect_error "safetensors with a NaN weight" "non-finite + blk.0.attn_q" -- \
    convert "$tmp/st-nan" "${hfo[@]}"
  hf_copy cfg-cut && craft cut "$s260k/hf/config.json" "$tmp/cfg-cut/config.json" 100
  expect_error "config.json truncated" "config.json" -- convert "$tmp/cfg-cut" "${hfo[@]}"
  hf_copy cfg-flip && craft flip "$s260k/hf/config.json" "$tmp/cfg-flip/config.json" 3 1
  expect_error "config.json bit-flipped" "config.json" -- convert "$tmp/cfg-flip" "${hfo[@]}"
  hf_copy gpt2 && sed -i 's/"llama"/"gpt2"/' "$tmp/gpt2/config.json"
  expect_error "unsupported model_type (gpt2)" \
    "unsupported model_type 'gpt2' + supported: llama, qwen2, qwen3, mistral" -- \
    convert "$tmp/gpt2" "${hfo[@]}"
  sed -i 's/LlamaForCausalLM/GPT2LMHeadModel/' "$tmp/gpt2/config.json"
  expect_error "unsupported architecture (GPT2LMHeadModel)" "unsupported architecture" -- \
    convert "$tmp/gpt2" "${hfo[@]}"
  # The families: stories260K's config rewritten (what fails is found
  # before or while its tensors are matched).
  hf_copy yarn && set_config yarn 'rope_scaling={"rope_type": "yarn", "factor": 4.0}'
  expect_error "unknown rope_scaling type (yarn)" \
    "unknown RoPE scaling type 'yarn' + supported: linear, llama3" -- convert "$tmp/yarn" "${hfo[@]}"
  hf_copy l3-part && set_config l3-part 'rope_scaling={"rope_type": "llama3", "factor": 8.0,
    "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}'
  expect_error "llama3 rope_scaling without low_freq_factor" "rope_scaling + low_freq_factor" -- \
    convert "$tmp/l3-part" "${hfo[@]}"
  hf_copy l3-bad && set_config l3-bad 'rope_scaling={"type": "llama3", "factor": 8.0,
    "low_freq_factor": 4.0, "high_freq_factor": 1.0, "original_max_position_embeddings": 8192}'
  expect_error "llama3 rope_scaling, low_freq_factor above high_freq_factor" \
    "rope_scaling + low_freq_factor" -- convert "$tmp/l3-bad" "${hfo[@]}"
  hf_copy attn-bias && set_config attn-bias 'attention_bias=true'
  expect_error "attention_bias true (llama)" "attention bias not supported" -- \
    convert "$tmp/attn-bias" "${hfo[@]}"
  hf_copy swa && set_config swa 'architectures=["Qwen2ForCausalLM"]' 'model_type="qwen2"' \
    'use_sliding_window=true' 'sliding_window=256'
  expect_error "Qwen2 with use_sliding_window true" "use_sliding_window + not supported" -- \
    convert "$tmp/swa" "${hfo[@]}"
  hf_copy mixed && set_config mixed 'model_type="qwen2"'
  expect_error "model_type qwen2 with LlamaForCausalLM" "model_type 'qwen2' + LlamaForCausalLM" -- \
    convert "$tmp/mixed" "${hfo[@]}"
  hf_copy no-bias && set_config no-bias 'architectures=["Qwen2ForCausalLM"]' 'model_type="qwen2"'
  expect_error "Qwen2 without its q bias tensor" \
    "model.layers.0.self_attn.q_proj.bias + missing + bias on q, k and v" -- \
    convert "$tmp/no-bias" "${hfo[@]}"
  hf_copy no-qnorm && set_config no-qnorm 'architectures=["Qwen3ForCausalLM"]' 'model_type="qwen3"'
  expect_error "Qwen3 without its q_norm tensor" \
    "model.layers.0.self_attn.q_norm.weight + missing + q_norm and k_norm" -- \
    convert "$tmp/no-qnorm" "${hfo[@]}"
  hf_copy head-dim && set_config head-dim 'head_dim=16'
  expect_error "head_dim contradicting the tensors (16; they hold 8)" \
    "q_proj.weight' has shape [64, 64] + implies [128, 64] + head_dim 16" -- \
    convert "$tmp/head-dim" "${hfo[@]}"
  hf_copy eps && sed -i 's/"rms_norm_eps": 1e-05/"rms_norm_eps": 0.99999999/' "$tmp/eps/config.json"
  expect_error "rms_norm_eps the loader refuses (0.99999999)" "eps" -- convert "$tmp/eps" "${hfo[@]}"
  hf_copy tok-cut && craft cut "$s260k/hf/tokenizer.model" "$tmp/tok-cut/tokenizer.model" 1000
  expect_error "tokenizer.model truncated" "tokenizer.model + not a SentencePiece model" -- \
    convert "$tmp/tok-cut" "${hfo[@]}"
  hf_copy tok-flip && craft flip "$s260k/hf/tokenizer.model" "$tmp/tok-flip/tokenizer.model" 1000 6
  expect_error "tokenizer.model bit-flipped" "tokenizer.model + not a SentencePiece model" -- \
    convert "$tmp/tok-flip" "${hfo[@]}"
  # Folders with a tokenizer.json (tests/bpe/splits.json: 500 ids).
  hf_copy json-cut && rm "$tmp/json-cut/tokenizer.model" &&
    craft cut "$BPE_CASES/splits.json" "$tmp/json-cut/tokenizer.json" 2000
  expect_error "tokenizer.json truncated (no tokenizer.model)" "tokenizer.json + line 1" -- \
    convert "$tmp/json-cut" "${hfo[@]}"
  hf_copy json-wp && rm "$tmp/json-wp/tokenizer.model" &&
    printf '{"model": {"type": "WordPiece", "vocab": {"a": 0}}}' >"$tmp/json-wp/tokenizer.json"
  expect_error "a WordPiece tokenizer.json" "WordPiece" -- convert "$tmp/json-wp" "${hfo[@]}"
  hf_copy json-big && rm "$tmp/json-big/tokenizer.model" &&
    cp "$BPE_CASES/llama2.json" "$tmp/json-big/tokenizer.json"
  expect_error "a tokenizer.json with more ids than vocab_size" "958 ids + vocab_size 512" -- \
    convert "$tmp/json-big" "${hfo[@]}"
  hf_copy gen-id && echo '{"eos_token_id": [2, 9999]}' >"$tmp/gen-id/generation_config.json"
  expect_error "generation_config.json: an end id outside the vocabulary" \
    "generation_config.json + 9999" -- convert "$tmp/gen-id" "${hfo[@]}"
  hf_copy gen-json && echo '{"eos_token_id": [2,' >"$tmp/gen-json/generation_config.json"
  expect_error "generation_config.json truncated" "generation_config.json" -- \
    convert "$tmp/gen-json" "${hfo[@]}"
  hf_copy shard && mv "$tmp/shard/$st" "$tmp/shard/model-00001-of-00002.safetensors"
  python3 - "$tmp/shard" <<'EOF'
import json, struct, sys
d = sys.argv[1]
b = open(d + "/model-00001-of-00002.safetensors", "rb").read()
names = [k for k in json.loads(b[8:8 + struct.unpack_from("<Q", b)[0]]) if k != "__metadata__"]
m = {k: "model-00001-of-00002.safetensors" for k in names}
m["model.norm.weight"] = "model-00002-of-00002.safetensors"
json.dump({"metadata": {}, "weight_map": m}, open(d + "/model.safetensors.index.json", "w"))
EOF
  expect_error "shard index naming a missing shard" \
    "model-00002-of-00002.safetensors + no such file + index.json" -- convert "$tmp/shard" "${hfo[@]}"
  hf_copy index && mv "$tmp/index/$st" "$tmp/index/model-00001-of-00001.safetensors"
  printf '{"weight_map": {"model.norm.weight": "model-0000' >"$tmp/index/$st.index.json"
  expect_error "shard index truncated" "model.safetensors.index.json" -- \
    convert "$tmp/index" "${hfo[@]}"
  no_leftovers "$o" "refused conversions"
}

section_quantize() {
  damaged_models
  local m=$tmp/s.nib o=$tmp/outdir
  mkdir -p "$o"
  local out=(-o "$o/x.nib") rtn=(--method rtn -o "$o/x.nib")
  expect_error "missing model" "no such file" -- quantize -m "$tmp/none.nib" "${rtn[@]}"
  cp "$m" "$tmp/u.nib"
  expect_unreadable "unreadable model" "$tmp/u.nib" -- quantize -m "$tmp/u.nib" "${rtn[@]}"
  mkdir -p "$tmp/locked" && cp "$m" "$tmp/locked/s.nib"
  expect_unreadable "model in a directory that cannot be entered" "$tmp/locked" -- \
    quantize -m "$tmp/locked/s.nib" "${rtn[@]}"
  mkdir -p "$tmp/emptydir"
  expect_error "directory that is no Hugging Face folder" "config.json" -- \
    quantize -m "$tmp/emptydir" "${rtn[@]}"
  expect_error "truncated .nib" "truncated" -- quantize -m "$tmp/trunc.nib" "${rtn[@]}"
  expect_error ".nib with a bit-flipped weight" "token_embd + checksum" -- \
    quantize -m "$tmp/crc.nib" "${rtn[@]}"
  expect_error ".nib with a NaN weight (checksum fixed)" "non-finite + token_embd" -- \
    quantize -m "$tmp/nan.nib" "${rtn[@]}"
  hf_copy st-nan && craft st-nan "$s260k/hf/model.safetensors" "$tmp/st-nan/model.safetensors" \
    model.layers.0.self_attn.q_proj.weight
  expect_error "Hugging Face folder with a NaN weight" "non-finite + blk.0.attn_q" -- \
    quantize -m "$tmp/st-nan" "${rtn[@]}"
  hf_copy gpt2 && sed -i 's/"llama"/"gpt2"/' "$tmp/gpt2/config.json"
  expect_error "unsupported architecture" "unsupported model_type 'gpt2' + qwen3" -- \
    quantize -m "$tmp/gpt2" "${rtn[@]}"
  # Calibration texts.
  : >"$tmp/empty.txt"
  printf 'a' >"$tmp/one.txt"
  head -c 4096 /dev/urandom >"$tmp/binary.txt"
  printf '\x89PNG\r\n\x1a\n\xff\xfe' >>"$tmp/binary.txt" # invalid UTF-8 even if urandom was not
  cp "$kjv" "$tmp/u.txt"
  expect_error "--calib missing" "cannot open + no such file" -- \
    quantize -m "$m" --calib "$tmp/none.txt" "${out[@]}"
  expect_unreadable "--calib unreadable" "$tmp/u.txt" -- \
    quantize -m "$m" --calib "$tmp/u.txt" "${out[@]}"
  expect_error "--calib a directory" "not a regular file" -- \
    quantize -m "$m" --calib "$tmp/emptydir" "${out[@]}"
  expect_error "--calib empty" "is empty" -- quantize -m "$m" --calib "$tmp/empty.txt" "${out[@]}"
  expect_error "--calib of one byte" "fewer than one block" -- \
    quantize -m "$m" --calib "$tmp/one.txt" "${out[@]}"
  expect_error "--calib binary" "invalid UTF-8" -- \
    quantize -m "$m" --calib "$tmp/binary.txt" "${out[@]}"
  # Outputs.
  expect_error_out "-o in a missing directory" "no such file" -- \
    quantize -m "$m" --method rtn -o "$tmp/nodir/x.nib"
  mkdir -p "$o/out.nib"
  expect_error_out "-o names a directory" "is a directory" -- \
    quantize -m "$m" --method rtn -o "$o/out.nib"
  rmdir "$o/out.nib"
  # The report goes to stdout: a closed stdout stops the run before any work.
  expect_closed_stdout /dev/null -- quantize -m "$m" --method rtn -o "$o/x.nib"
  no_leftovers "$o" "refused quantizations"
}

section_generate() {
  damaged_models
  local m=$tmp/s.nib rc
  expect_error "missing model" "no such file" -- generate -m "$tmp/none.nib"
  cp "$m" "$tmp/u.nib"
  expect_unreadable "unreadable model" "$tmp/u.nib" -- generate -m "$tmp/u.nib"
  expect_error "directory as the model" "not a regular file" -- generate -m "$tmp/dir.nib"
  expect_error "text file as the model" "not a nibble model file" -- generate -m "$tmp/text.nib"
  expect_error "truncated model" "truncated" -- generate -m "$tmp/trunc.nib"
  expect_error "magic bit-flipped" "bad magic" -- generate -m "$tmp/magic.nib"
  expect_error "metadata bit-flipped (heads 8 -> 9)" "invalid attention shape" -- \
    generate -m "$tmp/heads.nib"
  expect_error "metadata bit-flipped (layers 5 -> 7)" "layers.nib + blk.5" -- \
    generate -m "$tmp/layers.nib"
  expect_error "tokenizer bytes bit-flipped" "tokbytes.nib + not a SentencePiece model" -- \
    generate -m "$tmp/tokbytes.nib"
  expect_runs "weight bit-flipped (finite; checksums are checked by info --verify)" -- \
    generate -q -m "$tmp/crc.nib" -n 4
  expect_error_out "NaN weight (checksum fixed)" "non-finite" -- generate -q -m "$tmp/nan.nib" -n 4
  run quantize -q -m "$m" --method rtn --group 32 -o "$tmp/q4.nib" </dev/null >/dev/null ||
    fail "quantize"
  craft nib-nan "$tmp/q4.nib" "$tmp/q4nan.nib" blk.2.ffn_down
  expect_error_out "NaN scale in a q4 linear (checksum fixed)" "non-finite" -- \
    generate -q -m "$tmp/q4nan.nib" -n 4
  # Flags and prompts.
  expect_error "prompt longer than the context" "longer than the context" -- \
    generate -m "$m" -c 8 -p "Once upon a time there was a big dog who liked to run"
  expect_error "-n 0" "-n expects" -- generate -m "$m" -n 0
  expect_error "-n -1" "-n expects" -- generate -m "$m" -n -1
  expect_error "--temp -1" "--temp expects" -- generate -m "$m" --temp -1
  expect_error "-c 0" "-c expects" -- generate -m "$m" -c 0
  expect_error "--margins without --ids" "--margins needs --ids" -- \
    generate -m "$m" --temp 0 --margins
  expect_error "--margins when sampling" "--margins needs --ids" -- \
    generate -m "$m" --ids --margins
  expect_error "prompt: a lone continuation byte" "invalid UTF-8" -- generate -m "$m" -p $'a\x80b'
  expect_error "prompt: a cut-short sequence" "invalid UTF-8" -- generate -m "$m" -p $'euro \xe2\x82'
  expect_error "prompt: an overlong /" "invalid UTF-8" -- generate -m "$m" -p $'\xc0\xaf'
  expect_error "prompt: a surrogate" "invalid UTF-8" -- generate -m "$m" -p $'\xed\xa0\x80'
  # Outputs.
  expect_closed_stdout /dev/null -- generate -q -m "$m" -n 8
  if [ -w /dev/full ]; then
    run generate -q -m "$m" -n 8 </dev/null >/dev/full 2>"$tmp/err"
    rc=$?
    [ $rc -eq 1 ] && [ "$(wc -l <"$tmp/err")" -eq 1 ] && grep -q "cannot write" "$tmp/err" &&
      ok "stdout on a full disk: $(cat "$tmp/err")" || fail "/dev/full: exit $rc, $(cat "$tmp/err")"
  fi
  # A reader that goes away is the end of the text, as in chat: quiet, exit 0.
  run generate -q -m "$m" -n 400 --ignore-eos </dev/null 2>"$tmp/err" | head -c1 >/dev/null
  rc=${PIPESTATUS[0]}
  [ $rc -eq 0 ] && [ ! -s "$tmp/err" ] && ok "stdout a pipe closed early: exit 0, nothing on stderr" ||
    fail "pipe closed early: exit $rc, $(cat "$tmp/err")"
}

# chat -q: no notices, so stderr holds only the errors.
section_chat() {
  damaged_models
  local m=$tmp/s.nib rc
  expect_error "missing model" "no such file" -- chat -m "$tmp/none.nib"
  expect_error "directory as the model" "not a regular file" -- chat -m "$tmp/dir.nib"
  expect_error "truncated model" "truncated" -- chat -m "$tmp/trunc.nib"
  expect_error "tokenizer bytes bit-flipped" "tokbytes.nib + not a SentencePiece model" -- \
    chat -m "$tmp/tokbytes.nib"
  expect_error "-n 0" "-n expects" -- chat -m "$m" -n 0
  expect_error "-n -1" "-n expects" -- chat -m "$m" -n -1
  expect_error "--temp -1" "--temp expects" -- chat -m "$m" --temp -1
  expect_error "--system not UTF-8" "--system + invalid UTF-8" -- chat -q -m "$m" --system $'\xff'
  # NaN weights: the first reply stops there, and so does the chat.
  echo "Once upon a time" | run chat -q -m "$tmp/nan.nib" -n 4 >"$tmp/out" 2>"$tmp/err"
  rc=$?
  [ $rc -eq 1 ] && [ "$(wc -l <"$tmp/err")" -eq 1 ] && grep -q "non-finite" "$tmp/err" &&
    ok "NaN weight: $(cat "$tmp/err")" || fail "NaN weight: exit $rc, $(cat "$tmp/err")"
  # Messages that are refused: one line each, the chat goes on.
  local long
  long=$(printf 'the big red dog ran to the park %.0s' $(seq 6))
  printf 'Once upon a time\n\xff\xfe oops\n%s\n\xc3\n/system \xff\nThe dog\n' "$long" |
    run chat -q -m "$m" -c 32 -n 4 --json >"$tmp/json" 2>"$tmp/err"
  rc=$?
  if ! python3 - "$tmp/json" "$tmp/err" "$rc" <<'EOF'
import json, sys
objs = [json.loads(l) for l in open(sys.argv[1])]
err = open(sys.argv[2]).read().splitlines()
assert sys.argv[3] == "0", sys.argv[3]
assert [("reply" in o) for o in objs] == [True, False, False, False, False, True], objs
assert "invalid UTF-8" in objs[1]["error"] and "invalid UTF-8" in objs[3]["error"], objs
assert "more than the context" in objs[2]["error"], objs[2]
assert objs[4]["error"].startswith("the system prompt was not set: invalid UTF-8"), objs[4]
assert len(err) == 4, err
assert all(l.startswith("nibble: your message was not sent") for l in err[:3]), err
assert err[3].startswith("nibble: the system prompt was not set"), err
for l in err:
    print("ok:   " + l)
print("ok: invalid UTF-8 messages, /system and over-long messages: refused, the chat goes on")
EOF
  then fail "refused messages: rc $rc, $(cat "$tmp/err"), $(cat "$tmp/json")"; fi
  # Outputs.
  echo "Once upon a time" >"$tmp/message"
  expect_closed_stdout "$tmp/message" -- chat -q -m "$m" -n 5
  printf 'Once upon a time\nThe dog\n' |
    run chat -q -m "$m" -n 400 --ignore-eos 2>"$tmp/err" | head -c1 >/dev/null
  rc=${PIPESTATUS[1]}
  [ $rc -eq 0 ] && [ ! -s "$tmp/err" ] && ok "stdout a pipe closed early: exit 0, nothing on stderr" ||
    fail "pipe closed early: exit $rc, $(cat "$tmp/err")"
}

section_ppl() {
  damaged_models
  local m=$tmp/s.nib rc text=$DATA/tinystories_head.txt
  : >"$tmp/empty.txt"
  printf 'a' >"$tmp/one.txt"
  head -c 4096 /dev/urandom >"$tmp/binary.txt"
  printf '\xff\xfe' >>"$tmp/binary.txt"
  cp "$text" "$tmp/u.txt"
  mkdir -p "$tmp/emptydir"
  local f=(-f "$text" -c 64 --windows 2)
  expect_error "missing model" "no such file" -- ppl -m "$tmp/none.nib" "${f[@]}"
  expect_error "truncated model" "truncated" -- ppl -m "$tmp/trunc.nib" "${f[@]}"
  expect_error "NaN weight (checksum fixed)" "non-finite" -- ppl -q -m "$tmp/nan.nib" "${f[@]}"
  expect_error "missing text" "cannot open + no such file" -- ppl -m "$m" -f "$tmp/none.txt"
  expect_unreadable "unreadable text" "$tmp/u.txt" -- ppl -m "$m" -f "$tmp/u.txt"
  expect_error "directory as the text" "not a regular file" -- ppl -m "$m" -f "$tmp/emptydir"
  expect_error "empty text" "fewer than one window" -- ppl -m "$m" -f "$tmp/empty.txt" -c 64
  expect_error "text of one byte" "fewer than one window" -- ppl -m "$m" -f "$tmp/one.txt" -c 64
  expect_error "binary text" "invalid UTF-8" -- ppl -m "$m" -f "$tmp/binary.txt" -c 64
  expect_error "-c 0" "-c expects" -- ppl -m "$m" -f "$text" -c 0
  expect_error "-c -1" "-c expects" -- ppl -m "$m" -f "$text" -c -1
  expect_error "-c past the model's context" "longer than the model's context" -- \
    ppl -m "$m" -f "$text" -c 4096
  expect_error "--windows 0" "--windows expects" -- ppl -m "$m" -f "$text" --windows 0
  expect_closed_stdout /dev/null -- ppl -q -m "$m" -f "$text" -c 16 --windows 1
}

section_info() {
  damaged_models
  local m=$tmp/s.nib rc
  : >"$tmp/empty.nib"
  expect_error "missing file" "no such file" -- info "$tmp/none.nib"
  cp "$m" "$tmp/u.nib"
  expect_unreadable "unreadable file" "$tmp/u.nib" -- info "$tmp/u.nib"
  expect_error "directory" "not a regular file" -- info "$tmp/dir.nib"
  expect_error "text file" "not a nibble model file" -- info "$tmp/text.nib"
  expect_error "empty file" "empty.nib" -- info "$tmp/empty.nib"
  expect_error "truncated" "truncated" -- info "$tmp/trunc.nib"
  expect_error "magic bit-flipped" "bad magic" -- info "$tmp/magic.nib"
  craft flip "$m" "$tmp/version.nib" 8 1
  expect_error "version bit-flipped (3.0)" "newer than this nibble reads" -- info "$tmp/version.nib"
  expect_error "metadata bit-flipped (heads 8 -> 9)" "invalid attention shape" -- info "$tmp/heads.nib"
  expect_runs "weight bit-flipped, without --verify (no data read)" -- info "$tmp/crc.nib"
  expect_error_out "weight bit-flipped, --verify" "token_embd + checksum" -- info --verify "$tmp/crc.nib"
  expect_error_out "NaN weight, --verify" "token_embd + non-finite" -- info --verify "$tmp/nan.nib"
  run quantize -q -m "$m" --method rtn --group 32 -o "$tmp/q4.nib" </dev/null >/dev/null ||
    fail "quantize"
  craft nib-nan "$tmp/q4.nib" "$tmp/q4nan.nib" blk.2.ffn_down
  expect_error_out "NaN scale in a q4 linear, --verify" "blk.2.ffn_down + non-finite" -- \
    info --verify "$tmp/q4nan.nib"
  expect_error_out "metadata bit-flipped (layers 5 -> 7), --verify" "blk.5" -- \
    info --verify "$tmp/layers.nib"
  expect_error_out "tokenizer bytes bit-flipped, --verify" "not a SentencePiece model" -- \
    info --verify "$tmp/tokbytes.nib"
  craft nib-escapes "$m" "$tmp/escapes.nib"
  run info --tensors "$tmp/escapes.nib" </dev/null >"$tmp/out" 2>"$tmp/err"
  rc=$?
  if [ $rc -ne 0 ]; then fail "names with terminal escapes: exit $rc, $(cat "$tmp/err")"
  elif grep -q $'[\x01-\x08\x0b-\x1f\x7f]' "$tmp/out" "$tmp/err"; then
    fail "names with terminal escapes reach the terminal: $(grep -a 'evil\|attn_norm' "$tmp/out" | cat -v)"
  else ok "names with terminal escapes: printed escaped: $(grep -a -m1 'evil' "$tmp/out")"; fi
  expect_closed_stdout /dev/null -- info "$m"
}

section_bench() {
  damaged_models
  local m=$tmp/s.nib rc
  head -c 4096 /dev/urandom >"$tmp/binary.txt"
  printf '\xff\xfe' >>"$tmp/binary.txt"
  local small=(-p 8 -n 4 -r 1)
  expect_error "missing model" "no such file" -- bench -m "$tmp/none.nib" "${small[@]}"
  expect_error "directory as the model" "not a regular file" -- bench -m "$tmp/dir.nib" "${small[@]}"
  expect_error "truncated model" "truncated" -- bench -m "$tmp/trunc.nib" "${small[@]}"
  expect_error "NaN weight (checksum fixed)" "non-finite" -- bench -m "$tmp/nan.nib" "${small[@]}"
  expect_error "-n -1" "-n expects" -- bench -m "$m" -n -1
  expect_error "-p -1" "-p expects" -- bench -m "$m" -p -1
  expect_error "-p 0 -n 0" "nothing to measure" -- bench -m "$m" -p 0 -n 0
  expect_error "-r 0" "-r expects" -- bench -m "$m" -r 0
  expect_error "--shape of garbage" "--shape expects" -- bench --shape 64,x
  expect_error "--ppl a missing text" "cannot read" -- bench -m "$m" --ppl "$tmp/none.txt" "${small[@]}"
  expect_error "--ppl a binary text" "invalid UTF-8" -- \
    bench -m "$m" -p 0 -n 0 --ppl "$tmp/binary.txt" --ppl-ctx 64
  expect_closed_stdout /dev/null -- bench -m "$m" "${small[@]}"
}

# A BPE model: stories260K's folder with tests/bpe/splits.json (500 ids)
# for its tokenizer, and a file that has only tokenizer.json.
bpe_model() {
  [ -e "$tmp/bpe.nib" ] && return
  hf_copy bpe && rm "$tmp/bpe/tokenizer.model" && cp "$BPE_CASES/splits.json" "$tmp/bpe/tokenizer.json"
  run convert -q "$tmp/bpe" -o "$tmp/bpe.nib" </dev/null ||
    { echo "cannot convert the BPE model" >&2; exit 1; }
}

# A --jsonl run: exit 1, one line on stderr per bad line naming it, and one
# line on stdout per input line ({"ids"} or {"error"}).
expect_jsonl() {
  local what=$1 words=$2 input=$3 rc; shift 4
  printf '%b' "$input" | run "$@" >"$tmp/out" 2>"$tmp/err"
  rc=$?
  if [ $rc -ne 1 ]; then fail "$what: exit code $rc, expected 1 ($(head -c 300 "$tmp/err"))"
  elif [ "$(wc -l <"$tmp/err")" -ne 1 ]; then fail "$what: stderr: $(head -c 400 "$tmp/err")"
  elif ! has_words "$tmp/err" "$words"; then fail "$what: '$(cat "$tmp/err")' lacks '$words'"
  elif ! python3 -c '
import json, sys
lines = open(sys.argv[1], "rb").read().decode().splitlines()
kinds = [next(iter(json.loads(l))) for l in lines]
assert kinds == sys.argv[2].split(","), kinds' "$tmp/out" "$(printf '%b' "$input" |
      awk '{print (NR == 2 ? "error" : "ids")}' | paste -sd,)"; then
    fail "$what: stdout: $(head -c 300 "$tmp/out")"
  else ok "$what: $(cat "$tmp/err")"; fi
}

section_tokenize() {
  damaged_models
  bpe_model
  local m=$tmp/s.nib b=$tmp/bpe.nib j=$BPE_CASES/splits.json
  # What -m names.
  expect_error "missing model" "no such file + none.json" -- tokenize -m "$tmp/none.json" -p x
  mkdir -p "$tmp/emptydir"
  expect_error "folder without a tokenizer" "no tokenizer in + neither" --     tokenize -m "$tmp/emptydir" -p x
  cp "$j" "$tmp/u.json"
  expect_unreadable "unreadable tokenizer.json" "$tmp/u.json" -- tokenize -m "$tmp/u.json" -p x
  craft cut "$j" "$tmp/cut.json" 3000
  expect_error "tokenizer.json truncated" "cut.json + tokenizer.json: line" --     tokenize -m "$tmp/cut.json" -p x
  printf '{"model": {"type": "BPE", ' >"$tmp/notjson.json"
  expect_error "tokenizer.json not JSON" "notjson.json" -- tokenize -m "$tmp/notjson.json" -p x
  printf '{"model": {"type": "WordPiece", "vocab": {"a": 0}}}' >"$tmp/wp.json"
  expect_error "a WordPiece tokenizer.json" "wp.json + WordPiece" -- tokenize -m "$tmp/wp.json" -p x
  python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
d["model"]["merges"].append("zzq xqz")
json.dump(d, open(sys.argv[2], "w"))' "$j" "$tmp/merge.json"
  expect_error "merges naming unknown tokens" "merge.json + merge" -- tokenize -m "$tmp/merge.json" -p x
  craft cut "$DATA/stories260K/tok512.model" "$tmp/cut.model" 500
  expect_error "SentencePiece .model truncated" "cut.model + not a SentencePiece model" --     tokenize -m "$tmp/cut.model" -p x
  expect_error ".nib truncated" "trunc.nib + truncated" -- tokenize -m "$tmp/trunc.nib" -p x
  expect_error ".nib tokenizer bytes bit-flipped" "tokbytes.nib + not a SentencePiece model" --     tokenize -m "$tmp/tokbytes.nib" -p x
  craft flip "$m" "$tmp/kind.nib" 292 0   # meta.tokenizer_kind 0 -> 1
  expect_error ".nib tokenizer kind bit-flipped (SentencePiece -> BPE)" \
    "kind.nib + says a BPE tokenizer" -- tokenize -m "$tmp/kind.nib" -p x
  craft flip "$b" "$tmp/bpekind.nib" 292 0 # 1 -> 0
  expect_error ".nib tokenizer kind bit-flipped (BPE -> SentencePiece)" \
    "bpekind.nib + says a SentencePiece tokenizer" -- tokenize -m "$tmp/bpekind.nib" -p x
  craft flip "$m" "$tmp/nend.nib" 296 4    # n_end_ids 2 -> 18
  expect_error ".nib end-id count bit-flipped (2 -> 18)" "nend.nib + 18 end-of-text ids" --     tokenize -m "$tmp/nend.nib" -p x
  craft flip "$m" "$tmp/endid.nib" 301 6   # end_ids[0] 2 -> 16386
  expect_error ".nib end id bit-flipped (2 -> 16386)" "endid.nib + outside the vocabulary" --     tokenize -m "$tmp/endid.nib" -p x
  # inside the BPE blob's header (the key/value metadata may come first)
  craft flip "$b" "$tmp/bpeblob.nib" $(($(od -An -tu8 -j 40 -N 8 "$b") + 16)) 0
  expect_error ".nib BPE blob bit-flipped" "bpeblob.nib + BPE" -- tokenize -m "$tmp/bpeblob.nib" -p x
  # Flags and texts.
  expect_error "no -m" "needs -m" -- tokenize -p x
  expect_error "no text" "needs one text" -- tokenize -m "$j"
  expect_error "-p and -f both" "needs one text" -- tokenize -m "$j" -p x -f "$DATA/kjv_head.txt"
  expect_error "--jsonl with --ids" "--jsonl + --ids" -- tokenize -m "$j" --jsonl --ids
  expect_error "unknown option" "unknown option '--bos'" -- tokenize -m "$j" -p x --bos
  expect_error "-p: a lone continuation byte" "prompt + invalid UTF-8 at byte offset 1 (byte 0x80)" -- \
    tokenize -m "$b" -p $'a\x80b'
  expect_error "-p: a surrogate (SentencePiece)" "invalid UTF-8 at byte offset 0 (byte 0xED)" -- \
    tokenize -m "$m" -p $'\xed\xa0\x80'
  expect_error "-f: missing file" "no such file + none.txt" -- tokenize -m "$j" -f "$tmp/none.txt"
  head -c 3000 /dev/urandom >"$tmp/binary.txt"
  expect_error "-f: binary file" "binary.txt + invalid UTF-8" -- tokenize -m "$j" -f "$tmp/binary.txt"
  # --jsonl: the bad line (the second) gets {"error"}, the others their ids.
  expect_jsonl "--jsonl: a line not JSON" "line 2 + not JSON" \
    '{"text": "a"}\n{"text": \n{"text": "b"}\n' -- tokenize -m "$b" --jsonl
  expect_jsonl "--jsonl: invalid UTF-8 in a line" "line 2 + invalid UTF-8 at byte offset 10" \
    '{"text": "a"}\n{"text": "\xff"}\n' -- tokenize -m "$b" --jsonl
  expect_jsonl "--jsonl: a lone surrogate escaped" "line 2 + not JSON" \
    '{"text": "a"}\n{"text": "\\udc80"}\n' -- tokenize -m "$b" --jsonl
  expect_jsonl "--jsonl: no text member" "line 2 + \"text\" string" \
    '{"text": "a"}\n{"txt": "a"}\n{"text": "c"}\n' -- tokenize -m "$b" --jsonl
  expect_jsonl "--jsonl: text not a string" "line 2 + \"text\" string" \
    '{"text": "a"}\n{"text": 5}\n' -- tokenize -m "$b" --jsonl
  expect_jsonl "--jsonl: an empty line" "line 2 + not JSON" '{"text": "a"}\n\n' -- \
    tokenize -m "$b" --jsonl
  expect_closed_stdout /dev/null -- tokenize -m "$b" -p "Once upon a time"
}

# serve: what is refused before the server listens (the HTTP side, bodies,
# slow and vanished clients, is tests/serve/serve_test.py's faults and api).
section_serve() {
  damaged_models
  local m=$tmp/s.nib port
  echo key >"$tmp/key.txt"
  : >"$tmp/empty.txt"
  expect_error "no -m" "needs -m" -- serve
  expect_error "missing model" "no such file" -- serve -m "$tmp/none.nib"
  expect_error "directory as the model" "not a regular file" -- serve -m "$tmp/dir.nib"
  expect_error "text file as the model" "not a nibble model file" -- serve -m "$tmp/text.nib"
  expect_error "truncated model" "truncated" -- serve -m "$tmp/trunc.nib"
  expect_error "-c past the model's context" "more than + maximum context, 512" -- \
    serve -m "$m" -c 100000
  expect_error "--port 70000" "--port expects" -- serve -m "$m" --port 70000
  expect_error "--parallel 0" "--parallel expects" -- serve -m "$m" --parallel 0
  expect_error "--queue -1" "--queue expects" -- serve -m "$m" --queue -1
  expect_error "--max-body 0" "--max-body expects" -- serve -m "$m" --max-body 0
  expect_error "--template unknown" "unknown template" -- serve -m "$m" --template nope
  expect_error "--reference with --parallel 2" "--parallel 1 only" -- \
    serve -m "$m" --reference --parallel 2
  expect_error "a non-loopback --host without a key" "not a loopback address + --no-auth" -- \
    serve -m "$m" --host 0.0.0.0 --port 0
  expect_error "--api-key-file missing" "cannot read it" -- \
    serve -m "$m" --api-key-file "$tmp/none.txt"
  expect_error "--api-key-file empty" "first line is empty" -- \
    serve -m "$m" --api-key-file "$tmp/empty.txt"
  expect_error "--host not an address" "--host nohost.invalid" -- \
    serve -m "$m" --host nohost.invalid --port 0
  # A port another process holds (a listener of python's own).
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  python3 -c 'import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(); time.sleep(60)' \
    "$port" &
  local holder=$!
  sleep 0.5
  expect_error "--port in use" "cannot listen + port $port" -- serve -m "$m" --port "$port"
  kill $holder 2>/dev/null; wait $holder 2>/dev/null
}

if ! command -v python3 >/dev/null; then
  echo "python3 not found: skipping"
  exit 77
fi
run_section "$section"
