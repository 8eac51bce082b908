#!/usr/bin/env bash
# Model files with a BPE tokenizer, end to end, one section per meson test:
#   tokenize.sh tokenize|model|generate|chat
# tokenize: `nibble tokenize` on the tokenizer.json files of tests/bpe (and
#   Qwen3's) against the ids the tokenizers library gave (their .cases.jsonl),
#   its output forms, SentencePiece models;
# model: tiny random Llama-shaped Hugging Face folders with those tokenizers
#   (SmolLM-style ChatML with tests/bpe/smollm.json; Qwen3's 151k vocabulary)
#   converted, shown by info, tokenizing as the library does from the .nib;
# generate, chat: their weights make greedy decoding walk a chain of tokens
#   that splits characters over byte-level tokens, then an end-of-text id:
#   the text streams as valid UTF-8 and stops there.
# Environment (tests/meson.build): NIBBLE, NB_WRAP, DATA, BPE_CASES
# (tests/bpe), QWEN3_JSON (Qwen3's tokenizer.json, decompressed by the
# build; empty when xz is missing).
set -u
section=${1:-}
BPE_CASES=${BPE_CASES:-$DATA/../bpe}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

run() { $NB_WRAP "$NIBBLE" "$@"; }
. "$(dirname "$0")/sections.sh"
ok() { echo "ok: $*"; }

# The texts of a cases file, one {"text": ...} per line (the library's
# random-id cases have none).
texts() {
  python3 -c '
import json, sys
for line in open(sys.argv[1], encoding="utf-8"):
    c = json.loads(line)
    if "text" in c:
        print(json.dumps({"text": c["text"]}))' "$1"
}

# same_ids CASES OUT: OUT's {"ids"} lines are the cases' ids, in order.
same_ids() {
  python3 - "$1" "$2" <<'EOF'
import json, sys
want = [json.loads(l)["ids"] for l in open(sys.argv[1], encoding="utf-8") if '"text"' in l]
got = [json.loads(l)["ids"] for l in open(sys.argv[2], encoding="utf-8")]
bad = [i for i, (a, b) in enumerate(zip(want, got)) if a != b]
if len(want) != len(got) or bad:
    sys.exit("%d cases, %d answers, %d differ (first: case %s)" % (len(want), len(got), len(bad),
             bad[:1]))
print(len(want))
EOF
}

# jsonl_matches WHAT TOKENIZER CASES: tokenize --jsonl equals the library.
jsonl_matches() {
  local what=$1 n
  texts "$3" >"$tmp/in.jsonl"
  if ! run tokenize -m "$2" --jsonl <"$tmp/in.jsonl" >"$tmp/out.jsonl" 2>"$tmp/err"; then
    fail "$what: exit code $?: $(head -c 300 "$tmp/err")"
  elif n=$(same_ids "$3" "$tmp/out.jsonl" 2>&1); then
    ok "$what: $n texts give the library's ids"
  else
    fail "$what: $n"
  fi
}

section_tokenize() {
  local name
  for name in gpt2 gpt2-prefix smollm llama2 metaspace metaspace-always splits decoders; do
    jsonl_matches "tokenize $name.json --jsonl" "$BPE_CASES/$name.json" \
      "$BPE_CASES/$name.cases.jsonl"
  done
  if [ -n "$QWEN3_JSON" ]; then
    jsonl_matches "tokenize Qwen3's tokenizer.json --jsonl" "$QWEN3_JSON" \
      "$BPE_CASES/qwen3.cases.jsonl"
  else
    echo "skip: Qwen3's tokenizer.json (xz missing)"
  fi
  # The output forms. gpt2-prefix's post-processor puts <s> (0) before and
  # </s> (1) after a text; --no-bos adds nothing.
  local j=$BPE_CASES/gpt2-prefix.json out
  out=$(run tokenize -m "$j" -p "Hello" --ids) || fail "--ids: exit code"
  [[ "$out" =~ ^\[0,\ .*,\ 1\]$ ]] && ok "--ids adds the post-processor's ids: $out" ||
    fail "--ids: '$out'"
  out=$(run tokenize -m "$j" -p "Hello" --ids --no-bos) || fail "--no-bos: exit code"
  [[ "$out" =~ ^\[[1-9][0-9]*(,\ [0-9]+)*\]$ ]] && [[ "$out" != *", 1]" ]] &&
    ok "--no-bos adds nothing: $out" || fail "--no-bos: '$out'"
  run tokenize -m "$j" -p "Hello" >"$tmp/out" || fail "default output: exit code"
  head -n 1 "$tmp/out" | grep -qE "^ +0 -> '<s>'$" && tail -n 1 "$tmp/out" | grep -qE "^ +1 -> '</s>'$" &&
    ok "default output: id -> 'piece' per token" || fail "default output: $(cat "$tmp/out")"
  printf 'caf\xc3\xa9 \xf0\x9f\x98\x80\n' >"$tmp/text.txt"
  [ "$(run tokenize -m "$BPE_CASES/smollm.json" -f "$tmp/text.txt" --ids)" = \
    "$(run tokenize -m "$BPE_CASES/smollm.json" -p "$(cat "$tmp/text.txt")"$'\n' --ids)" ] &&
    ok "-f FILE tokenizes the file" || fail "-f and -p differ"
  # SentencePiece: a .model, and a Hugging Face folder that holds one.
  local s260k=$DATA/stories260K
  out=$(run tokenize -m "$s260k/tok512.model" -p "Once upon a time" --ids)
  [ "$out" = "[1, 403, 407, 261, 378]" ] && ok "SentencePiece .model: $out" || fail "tok512: '$out'"
  out=$(run tokenize -m "$s260k/hf" -p "Once upon a time" --ids --no-bos)
  [ "$out" = "[403, 407, 261, 378]" ] && ok "a folder with tokenizer.model: $out" ||
    fail "hf folder: '$out'"
}

# ---- tiny models ----

# folder DIR TOKENIZER VOCAB END_IDS [CHAT_TEMPLATE_FILE [LAST]]: a Llama
# folder (dim 16, one layer, no random weights) whose greedy decoding, from
# any other token, walks the chain " " + U+1F600 (4 byte-level tokens) +
# "é" (2) + "!" and then emits END_IDS' first id (or the id LAST). Its layers are zero, so the last hidden
# state is the current token's embedding: a token outside the chain has
# e0, chain token i has e(i+1), and the output row of chain token i (of
# the end id after the last) is 10 e(i). Writes DIR/chain.json: the
# chain's ids and text.
folder() {
  mkdir -p "$1"
  cp "$2" "$1/tokenizer.json"
  [ -z "${5:-}" ] || cp "$5" "$1/tokenizer_config.json"
  python3 - "$@" <<'EOF'
import array, json, struct, sys
out, tok_path, vocab, ends = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
ends = [int(x) for x in ends.split(",")]
last = int(sys.argv[6]) if len(sys.argv) > 6 else ends[0]
tok = json.load(open(tok_path, encoding="utf-8"))
pieces = ["Ġ", "ð", "Ł", "ĺ", "Ģ", "Ã", "©", "!"]
chain = [tok["model"]["vocab"][p] for p in pieces]
dim, ffn, heads, kv = 16, 32, 2, 1
hd = dim // heads
emb = array.array("f", [0.0]) * (vocab * dim)
head = array.array("f", [0.0]) * (vocab * dim)
for v in range(vocab):
    emb[v * dim] = 1.0
for i, c in enumerate(chain):
    emb[c * dim] = 0.0
    emb[c * dim + i + 1] = 1.0
for i, c in enumerate(chain + [last]):
    head[c * dim + i] = 10.0
zeros = lambda n: array.array("f", [0.0]) * n
ones = lambda n: array.array("f", [1.0]) * n
tensors = {
    "model.embed_tokens.weight": ([vocab, dim], emb),
    "lm_head.weight": ([vocab, dim], head),
    "model.norm.weight": ([dim], ones(dim)),
    "model.layers.0.input_layernorm.weight": ([dim], ones(dim)),
    "model.layers.0.post_attention_layernorm.weight": ([dim], ones(dim)),
    "model.layers.0.self_attn.q_proj.weight": ([dim, dim], zeros(dim * dim)),
    "model.layers.0.self_attn.k_proj.weight": ([kv * hd, dim], zeros(kv * hd * dim)),
    "model.layers.0.self_attn.v_proj.weight": ([kv * hd, dim], zeros(kv * hd * dim)),
    "model.layers.0.self_attn.o_proj.weight": ([dim, dim], zeros(dim * dim)),
    "model.layers.0.mlp.gate_proj.weight": ([ffn, dim], zeros(ffn * dim)),
    "model.layers.0.mlp.up_proj.weight": ([ffn, dim], zeros(ffn * dim)),
    "model.layers.0.mlp.down_proj.weight": ([dim, ffn], zeros(dim * ffn)),
}
header, off, blobs = {}, 0, []
for name, (shape, data) in tensors.items():
    b = data.tobytes()
    header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [off, off + len(b)]}
    off += len(b)
    blobs.append(b)
h = json.dumps(header).encode()
h += b" " * (-len(h) % 8)
with open(out + "/model.safetensors", "wb") as f:
    f.write(struct.pack("<Q", len(h)) + h)
    for b in blobs:
        f.write(b)
config = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": dim,
          "intermediate_size": ffn, "num_hidden_layers": 1, "num_attention_heads": heads,
          "num_key_value_heads": kv, "vocab_size": vocab, "max_position_embeddings": 256,
          "rms_norm_eps": 1e-5, "tie_word_embeddings": False, "eos_token_id": ends[0]}
json.dump(config, open(out + "/config.json", "w"))
json.dump({"eos_token_id": ends}, open(out + "/generation_config.json", "w"))
# GPT-2's byte map: a byte-level piece's characters are bytes.
bs = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
rest = [n for n in range(256) if n not in bs]
cs = bs + [256 + k for k in range(len(rest))]
bs = bs + rest
byte = {chr(c): b for b, c in zip(bs, cs)}
text = bytes(byte[ch] for p in pieces for ch in p).decode("utf-8")
json.dump({"ids": chain, "text": text}, open(out + "/chain.json", "w"), ensure_ascii=False)
EOF
  [ $? -eq 0 ] || fail "cannot write the folder $1"
}

smollm_template() {
  # SmolLM2-Instruct's chat_template (Apache-2.0, Hugging Face).
  python3 -c '
import json, sys
t = ("{% for message in messages %}{% if loop.first and messages[0][\"role\"] != \"system\" %}"
     "{{ \"<|im_start|>system\\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
     "Face<|im_end|>\\n\" }}{% endif %}{{\"<|im_start|>\" + message[\"role\"] + \"\\n\" + "
     "message[\"content\"] + \"<|im_end|>\" + \"\\n\"}}{% endfor %}{% if add_generation_prompt %}"
     "{{ \"<|im_start|>assistant\\n\" }}{% endif %}")
json.dump({"chat_template": t, "eos_token": "<|im_end|>"}, open(sys.argv[1], "w"))' "$1"
}

# The SmolLM-style model: <|im_end|> (2) and <|endoftext|> (0) end a text.
smollm_model() {
  smollm_template "$tmp/smollm_config.json"
  folder "$tmp/SmolLM-tiny" "$BPE_CASES/smollm.json" 600 2,0 "$tmp/smollm_config.json"
  run convert -q "$tmp/SmolLM-tiny" -o "$tmp/smollm.nib" || fail "convert the SmolLM-style folder"
}

# The Qwen3 one (its config names 151936 ids, the tokenizer 151669): the
# template comes from the folder's name.
qwen3_model() {
  [ -n "$QWEN3_JSON" ] || return 1
  folder "$tmp/Qwen3-tiny" "$QWEN3_JSON" 151936 151645,151643
  run convert -q "$tmp/Qwen3-tiny" -o "$tmp/qwen3.nib" || fail "convert the Qwen3-style folder"
}

chain_text() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["text"], end="")' "$1"; }
chain_ids() { python3 -c 'import json,sys; print("\n".join(map(str, json.load(open(sys.argv[1]))["ids"])))' "$1"; }

valid_utf8() { python3 -c 'import sys; sys.stdin.buffer.read().decode("utf-8")' <"$1"; }

section_model() {
  smollm_model
  run info "$tmp/smollm.nib" >"$tmp/info" || fail "info: exit code"
  grep -q "^tokenizer:  BPE" "$tmp/info" && grep -q "^end of text: 2, 0$" "$tmp/info" &&
    grep -q "^template:   smollm2$" "$tmp/info" && grep -q "format 1.2" "$tmp/info" &&
    ok "info: $(grep -E '^(tokenizer|end of text|template):' "$tmp/info" | tr -s ' ' | paste -sd ';')" ||
    fail "info: $(cat "$tmp/info")"
  run info --verify "$tmp/smollm.nib" >/dev/null || fail "info --verify"
  # The template in chat_template.jinja, as newer transformers save it.
  cp -r "$tmp/SmolLM-tiny" "$tmp/SmolLM-jinja"
  python3 -c '
import json, sys
d = sys.argv[1]
c = json.load(open(d + "/tokenizer_config.json"))
open(d + "/chat_template.jinja", "w").write(c.pop("chat_template"))
json.dump(c, open(d + "/tokenizer_config.json", "w"))' "$tmp/SmolLM-jinja"
  run convert -q "$tmp/SmolLM-jinja" -o "$tmp/jinja.nib" && run info "$tmp/jinja.nib" |
    grep -q "^template:   smollm2$" && ok "the template from chat_template.jinja" ||
    fail "chat_template.jinja: $(run info "$tmp/jinja.nib" | grep template)"
  jsonl_matches "tokenize the converted .nib (smollm)" "$tmp/smollm.nib" "$BPE_CASES/smollm.cases.jsonl"
  jsonl_matches "tokenize the folder (smollm)" "$tmp/SmolLM-tiny" "$BPE_CASES/smollm.cases.jsonl"
  if qwen3_model; then
    run info "$tmp/qwen3.nib" >"$tmp/info" || fail "info qwen3: exit code"
    grep -q "^end of text: 151645, 151643$" "$tmp/info" && grep -q "^template:   qwen3$" "$tmp/info" &&
      grep -q "bos -1" "$tmp/info" && ok "Qwen3: end ids, template and no BOS in the metadata" ||
      fail "info qwen3: $(cat "$tmp/info")"
    jsonl_matches "tokenize the converted .nib (Qwen3)" "$tmp/qwen3.nib" "$BPE_CASES/qwen3.cases.jsonl"
    # The tokenizer loads from the model file in milliseconds.
    local t0 t1
    t0=$(date +%s%N)
    run tokenize -m "$tmp/qwen3.nib" -p x --ids >/dev/null || fail "tokenize qwen3.nib"
    t1=$(date +%s%N)
    ok "Qwen3's tokenizer from the .nib: tokenize ran in $(((t1 - t0) / 1000000)) ms"
  else
    echo "skip: the Qwen3 model (xz missing)"
  fi
  # Quantized on the way, the tokenizer and end ids travel along.
  run convert -q "$tmp/SmolLM-tiny" -o "$tmp/q.nib" --quantize rtn --group 32 >/dev/null ||
    fail "convert --quantize rtn"
  run info "$tmp/q.nib" | grep -q "^end of text: 2, 0$" && ok "quantized: the end ids stay" ||
    fail "quantized: $(run info "$tmp/q.nib")"
}

section_generate() {
  smollm_model
  local want out
  want="Hi$(chain_text "$tmp/SmolLM-tiny/chain.json")"
  run generate -m "$tmp/smollm.nib" -p "Hi" --temp 0 -n 50 >"$tmp/out" 2>"$tmp/err" ||
    fail "generate: exit code: $(cat "$tmp/err")"
  out=$(cat "$tmp/out")
  [ "$out" = "$want" ] && valid_utf8 "$tmp/out" && grep -q "generated 8 tokens" "$tmp/err" &&
    ok "generate streams '$out' and stops at <|im_end|> after 8 tokens" ||
    fail "generate: '$out' (want '$want'): $(cat "$tmp/err")"
  run generate -q -m "$tmp/smollm.nib" -p "Hi" --temp 0 -n 50 --ids >"$tmp/ids" ||
    fail "generate --ids"
  chain_ids "$tmp/SmolLM-tiny/chain.json" | diff -q - "$tmp/ids" >/dev/null &&
    ok "generate --ids: the chain, without the end id" || fail "--ids: $(cat "$tmp/ids" | paste -sd' ')"
  # Cut inside the emoji: what is held comes out at the end as U+FFFD.
  run generate -q -m "$tmp/smollm.nib" -p "Hi" --temp 0 -n 3 >"$tmp/out" || fail "-n 3"
  valid_utf8 "$tmp/out" && [ "$(cat "$tmp/out")" = $'Hi \xef\xbf\xbd' ] &&
    ok "cut inside a character: '$(cat "$tmp/out")'" || fail "-n 3: '$(cat "$tmp/out")'"
  # Nothing to start from: SmolLM's tokenizer adds no BOS.
  run generate -m "$tmp/smollm.nib" >"$tmp/out" 2>"$tmp/err"
  [ $? -eq 1 ] && grep -q "the prompt is empty" "$tmp/err" && [ "$(wc -l <"$tmp/err")" -eq 1 ] &&
    ok "no prompt and no BOS: $(cat "$tmp/err")" || fail "empty prompt: $(cat "$tmp/err")"
  # --ignore-eos goes past the end id.
  run generate -q -m "$tmp/smollm.nib" -p "Hi" --temp 0 -n 12 --ignore-eos --ids >"$tmp/ids"
  [ "$(wc -l <"$tmp/ids")" -eq 12 ] && ok "--ignore-eos: 12 tokens" || fail "--ignore-eos"
  if qwen3_model; then
    want="Hi$(chain_text "$tmp/Qwen3-tiny/chain.json")"
    out=$(run generate -q -m "$tmp/qwen3.nib" -p "Hi" --temp 0 -n 50)
    [ "$out" = "$want" ] && ok "Qwen3: generate gives '$out' and stops" ||
      fail "qwen3 generate: '$out' (want '$want')"
  fi
}

section_chat() {
  smollm_model
  local want
  want=$(chain_text "$tmp/SmolLM-tiny/chain.json")
  printf 'Hello\nAnd again?\n' | run chat -m "$tmp/smollm.nib" --temp 0 --json >"$tmp/json" \
    2>"$tmp/err" || fail "chat: exit code: $(cat "$tmp/err")"
  python3 - "$tmp/json" "$want" <<'EOF' && ok "chat (smollm2): two replies '$want', stop eos, one prefill each" || fail "chat: $(cat "$tmp/json" "$tmp/err")"
import json, sys
turns = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8")]
assert len(turns) == 2, turns
for t in turns:
    assert t["reply"] == sys.argv[2] and t["stop"] == "eos" and t["reply_tokens"] == 8, t
a, b = turns
# the second turn prefills its message, after the reply and its <|im_end|>
assert b["prefill_tokens"] <= b["prompt_tokens"] - a["prompt_tokens"] - a["reply_tokens"] + 1, (a, b)
EOF
  printf 'Hello\n' | run chat -q -m "$tmp/smollm.nib" --temp 0 >"$tmp/out" || fail "chat, text"
  valid_utf8 "$tmp/out" && [ "$(cat "$tmp/out")" = "$want" ] &&
    ok "chat streams valid UTF-8: '$(cat "$tmp/out")'" || fail "chat text: '$(cat "$tmp/out")'"
  printf 'Hello\n' | run chat -q -m "$tmp/smollm.nib" --temp 0 --template llama3 >"$tmp/out" ||
    fail "chat --template llama3"
  # A model that starts a new turn (<|im_start|>, 1) instead of ending its
  # reply: the reply ends there, as at a stop string.
  folder "$tmp/SmolLM-turn" "$BPE_CASES/smollm.json" 600 2,0 "$tmp/smollm_config.json" 1
  run convert -q "$tmp/SmolLM-turn" -o "$tmp/turn.nib" || fail "convert SmolLM-turn"
  printf 'Hello\n' | run chat -m "$tmp/turn.nib" --temp 0 --json >"$tmp/json" 2>"$tmp/err"
  python3 -c '
import json, sys
t = json.loads(open(sys.argv[1], encoding="utf-8").read())
assert t["reply"] == sys.argv[2] and t["stop"] == "stop_string", t' "$tmp/json" "$want" &&
    ok "a reply that starts a new turn stops at <|im_start|>" ||
    fail "special token in a reply: $(cat "$tmp/json" "$tmp/err")"
  if qwen3_model; then
    printf 'Hello\n' | run chat -m "$tmp/qwen3.nib" --temp 0 --json >"$tmp/json" 2>"$tmp/err" ||
      fail "qwen3 chat: exit code"
    python3 -c '
import json, sys
t = json.loads(open(sys.argv[1], encoding="utf-8").read())
assert t["reply"] == sys.argv[2] and t["stop"] == "eos", t' "$tmp/json" \
      "$(chain_text "$tmp/Qwen3-tiny/chain.json")" && ok "chat (qwen3): the reply ends at <|im_end|>" ||
      fail "qwen3 chat: $(cat "$tmp/json" "$tmp/err")"
  fi
}

if ! command -v python3 >/dev/null; then
  echo "python3 not found: skipping"
  exit 77
fi
run_section "$section"
