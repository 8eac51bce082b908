#!/usr/bin/env bash
# nibble export --to autoawq (tools/export/export_autoawq.c, docs/export.md):
#   export.sh roundtrip|refuse|kill
# roundtrip: random llama, qwen2 (q/k/v biases, tied) and qwen3 (q/k norms)
# Hugging Face folders (tests/ref/make_hf.py's, widened to hidden 128,
# head_dim 32, ffn 256 so that every linear is whole groups of 128),
# converted with --dtype f16 and quantized RTN INT4 at g32, g64 and g128,
# are exported and converted back (the AutoAWQ importer), and the two
# .nib files compared tensor by tensor and field by field (test_export
# cmp): with --output-f16 nothing may differ but the file's name (given
# back with --name, so nothing at all); with the default INT4 output layer
# only `output` (q4 vs its fp16 dequantization). --keep-dtypes on an f32
# model is exact too. A llama2.c checkpoint (interleaved RoPE pairs,
# SentencePiece) comes back with its q/k rows reordered: the same greedy
# tokens. The independent numpy check is tests/ref/check_export.py.
# refuse: every refusal of docs/bad-input.md's export table: one line,
# exit 1, nothing on stdout, no OUTDIR and no OUTDIR.tmp* left.
# kill: an export killed by SIGKILL (no handler runs) leaves OUTDIR.tmp<pid>;
# the next export to OUTDIR removes it (its process is gone) and succeeds.
# It leaves the look-alikes: a live process's folder, other names, a
# file, and a folder holding a file export does not write (one warning).
# Environment (tests/meson.build): NIBBLE, TEST_EXPORT, NB_WRAP, DATA;
# NB_PYTHON (default /usr/bin/python3, with numpy; skipped without it).
set -u
section=${1:-}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
PY=${NB_PYTHON:-/usr/bin/python3}
REF=$(cd "$(dirname "$0")" && pwd)/ref
run() { $NB_WRAP "$NIBBLE" "$@"; }
. "$(dirname "$0")/sections.sh"
ok() { echo "ok: $*"; }

if ! "$PY" -c 'import numpy' 2>/dev/null; then
  echo "skip: $PY cannot import numpy"
  exit 77
fi

# make_wide FAMILY DIR: make_hf.py's folder at hidden 128, head_dim 32, ffn 256.
make_wide() {
  "$PY" - "$REF" "$1" "$2" <<'EOF' >"$tmp/make.log" 2>&1 || { fail "make_hf $1: $(head -c 300 "$tmp/make.log")"; return 1; }
import sys
sys.path.insert(0, sys.argv[1])
import make_hf as m
m.DIM = 128
for s in m.SHAPES.values():
    s.update(hd=32, ffn=256)
m.make_family(sys.argv[2], sys.argv[3], "f32", m.SHAPES[sys.argv[2]]["seed"], 0, 1)
EOF
}

name_of() { run info "$1" | sed -n 's/^model: *\(.*\) ([a-z0-9]*)$/\1/p'; }

# roundtrip WHAT NIB TOKDIR EXPORT_FLAGS CONVERT_FLAGS EXPECTED...: export,
# convert back, compare; EXPECTED are the differences allowed (and required).
roundtrip() {
  local what=$1 nib=$2 tokdir=$3 eflags=$4 cflags=$5 out=$tmp/out-$RANDOM
  shift 5
  run export "$nib" -o "$out" --tokenizer "$tokdir" $eflags 2>"$tmp/notes" ||
    { fail "$what: export: $(head -c 300 "$tmp/notes")"; return 1; }
  run convert -q "$out" -o "$tmp/back.nib" --name "$(name_of "$nib")" $cflags 2>"$tmp/err" ||
    { fail "$what: convert back: $(head -c 300 "$tmp/err")"; return 1; }
  if $NB_WRAP "$TEST_EXPORT" cmp "$nib" "$tmp/back.nib" "$@" >"$tmp/cmp"; then
    cmp -s "$nib" "$tmp/back.nib" && ok "$what: byte-identical file after export and convert" ||
      ok "$what: $(tail -n 1 "$tmp/cmp")${*:+ (}$*${*:+)}"
  else
    fail "$what: $(grep -v '^expected' "$tmp/cmp" | head -c 600)"
  fi
  rm -rf "$out"
}

section_roundtrip() {
  local fam g d
  for fam in llama qwen2 qwen3; do
    d=$tmp/$fam
    make_wide $fam "$d" && run convert -q "$d" -o "$tmp/$fam.nib" --dtype f16 ||
      { fail "$fam: cannot make the model"; continue; }
    for g in 32 64 128; do
      run quantize -q -m "$tmp/$fam.nib" --method rtn --group $g --output-f16 -o "$tmp/q.nib" >/dev/null &&
        roundtrip "$fam g$g --output-f16" "$tmp/q.nib" "$d" "" ""
      run quantize -q -m "$tmp/$fam.nib" --method rtn --group $g -o "$tmp/q.nib" >/dev/null &&
        roundtrip "$fam g$g, INT4 output layer" "$tmp/q.nib" "$d" "" "" output &&
        { grep -q "lm_head.weight is its dequantization (fp16)" "$tmp/notes" &&
            ok "$fam g$g: the dequantized output layer is noted" ||
            fail "$fam g$g: no note on the output layer: $(cat "$tmp/notes")"; }
    done
  done
  # Symmetric groups: zero point 8 in every group, which AutoAWQ expresses.
  run quantize -q -m "$tmp/qwen2.nib" --method rtn --group 64 --symmetric --output-f16 \
    -o "$tmp/q.nib" >/dev/null && roundtrip "qwen2 g64 --symmetric" "$tmp/q.nib" "$tmp/qwen2" "" ""
  # f32 embeddings and output layer, exported as they are.
  run convert -q "$tmp/llama" -o "$tmp/f32.nib" &&
    run quantize -q -m "$tmp/f32.nib" --method rtn --group 128 --output-f16 -o "$tmp/q.nib" >/dev/null &&
    roundtrip "llama f32 g128 --keep-dtypes" "$tmp/q.nib" "$tmp/llama" --keep-dtypes ""
  # A model converted from a GGUF file: its tokenizer.json is rebuilt from the file's
  # vocabulary (--tokenizer FILE.gguf), as convert built the blob from it.
  local gg=$REF/../fuzz/corpus/gguf/qwen2-f16.gguf
  run convert -q "$gg" -o "$tmp/gg.nib" &&
    run quantize -q -m "$tmp/gg.nib" --method rtn --group 32 --output-f16 -o "$tmp/q.nib" \
      >/dev/null && roundtrip "GGUF qwen2 g32, --tokenizer FILE.gguf" "$tmp/q.nib" "$gg" \
      --keep-dtypes ""
  section_llama2c
}

# A random llama2.c checkpoint whose linears are whole groups of 32
# (stories260K's ffn 172 is not): interleaved RoPE pairs, tok512.model.
section_llama2c() {
  "$PY" - "$tmp/l2c.bin" <<'EOF'
import sys
import numpy as np
dim, hidden, layers, heads, kv, vocab, seq = 64, 128, 2, 4, 2, 512, 256
hd = dim // heads
n = (vocab * dim + layers * dim * 2 + layers * (2 * dim * dim + 2 * dim * kv * hd) +
     3 * layers * dim * hidden + dim + seq * hd)
w = np.random.default_rng(7).integers(-96, 97, n).astype(np.float32) / 256  # exact in fp16
with open(sys.argv[1], "wb") as f:
    f.write(np.array([dim, hidden, layers, heads, kv, vocab, seq], "<i4").tobytes())
    f.write(w.astype("<f4").tobytes())
EOF
  local tok=$DATA/stories260K/tok512.model out=$tmp/l2c-out a b
  run convert -q "$tmp/l2c.bin" --tokenizer "$tok" -o "$tmp/l2c.nib" --dtype f16 &&
    run quantize -q -m "$tmp/l2c.nib" --method rtn --group 32 --output-f16 -o "$tmp/l2cq.nib" >/dev/null &&
    run export -q "$tmp/l2cq.nib" -o "$out" ||
    { fail "llama2.c: cannot make, quantize or export the model"; return; }
  [ -f "$out/tokenizer.model" ] && cmp -s "$out/tokenizer.model" "$tok" &&
    ok "llama2.c: tokenizer.model written as the .nib holds it" || fail "llama2.c: tokenizer.model"
  run convert -q "$out" -o "$tmp/l2c-back.nib" || { fail "llama2.c: convert back"; return; }
  # the q/k rows differ by design (exit 1); the summary line says cmp ran
  $NB_WRAP "$TEST_EXPORT" cmp "$tmp/l2cq.nib" "$tmp/l2c-back.nib" >"$tmp/cmp"
  grep -q " tensors; " "$tmp/cmp" || fail "llama2.c: test_export cmp gave no summary"
  a=$(run generate -q -m "$tmp/l2cq.nib" -p "Once upon a time" -n 32 --temp 0 --ids --reference)
  b=$(run generate -q -m "$tmp/l2c-back.nib" -p "Once upon a time" -n 32 --temp 0 --ids --reference)
  [ -n "$a" ] && [ "$a" = "$b" ] &&
    ok "llama2.c: q/k rows reordered to rotate-half, the same 32 greedy tokens (differences: $(grep -c DIFFERS "$tmp/cmp") as expected: $(grep DIFFERS "$tmp/cmp" | cut -d: -f1 | sed 's/DIFFERS //' | tr '\n' ' '))" ||
    fail "llama2.c: greedy tokens '$a' vs '$b'"
}

# refused WHAT EXPECTED_MESSAGE_REGEX ARGS...: exit 1, one line, no output.
refused() {
  local what=$1 want=$2 out=$tmp/never
  shift 2
  run export "$@" -o "$out" >"$tmp/stdout" 2>"$tmp/stderr"
  local rc=$? lines
  lines=$(wc -l <"$tmp/stderr")
  if [ $rc -eq 1 ] && [ "$lines" -eq 1 ] && [ ! -s "$tmp/stdout" ] && grep -Eq -- "$want" "$tmp/stderr" &&
     ! ls -d "$out" "$out".tmp* >/dev/null 2>&1; then
    ok "$what: $(cat "$tmp/stderr")"
  else
    fail "$what: exit $rc, $lines line(s): $(head -c 400 "$tmp/stderr"); $(ls "$tmp" | grep never)"
  fi
}

section_refuse() {
  local d=$tmp/qwen2 l2c=$tmp/s.nib
  make_wide qwen2 "$d" && run convert -q "$d" -o "$tmp/f16.nib" --dtype f16 || return
  run quantize -q -m "$tmp/f16.nib" --method rtn --bits 3 --group 32 -o "$tmp/int3.nib" >/dev/null
  run quantize -q -m "$tmp/f16.nib" --method rtn --group row -o "$tmp/row.nib" >/dev/null
  run quantize -q -m "$tmp/f16.nib" --method rtn --group 32 -o "$tmp/g32.nib" >/dev/null
  run convert -q "$DATA/stories260K/stories260K.bin" --tokenizer "$DATA/stories260K/tok512.model" \
    -o "$tmp/s-f.nib" && run quantize -q -m "$tmp/s-f.nib" --method rtn --group 32 -o "$l2c" >/dev/null
  refused "INT3" "is INT3: AutoAWQ stores 4-bit weights only" "$tmp/int3.nib" --tokenizer "$d"
  refused "one group per row" "has one group per row: AutoAWQ needs groups of 32, 64 or 128" \
    "$tmp/row.nib" --tokenizer "$d"
  refused "output rows not a multiple of 8 (stories260K's ffn 172)" \
    "blk.0.ffn_gate is \\[172, 64\\], with output rows that are not a multiple of 8" "$l2c"
  # make_hf.py's own width, hidden 64: a group of 128 spans a row (nibble's ragged group).
  "$PY" "$REF/make_hf.py" qwen2 "$tmp/narrow" >/dev/null && run convert -q "$tmp/narrow" -o "$tmp/n.nib" &&
    run quantize -q -m "$tmp/n.nib" --method rtn --group 128 -o "$tmp/n128.nib" >/dev/null
  refused "input columns not whole groups (hidden 64, g128)" \
    "blk.0.attn_q is \\[64, 64\\], with input columns that are not whole groups" "$tmp/n128.nib" \
    --tokenizer "$tmp/narrow"
  refused "unquantized model" "the model is not quantized" "$tmp/f16.nib" --tokenizer "$d"
  refused "BPE model without --tokenizer" "give --tokenizer DIR" "$tmp/g32.nib"
  mkdir -p "$tmp/other" && cp "$REF/../bpe/gpt2.json" "$tmp/other/tokenizer.json"
  refused "--tokenizer DIR of another tokenizer" "is not the tokenizer this model was converted with" \
    "$tmp/g32.nib" --tokenizer "$tmp/other"
  refused "--tokenizer DIR without a tokenizer.json" "tokenizer.json" "$tmp/g32.nib" --tokenizer "$tmp/none"
  refused "--to gguf" "--to must be autoawq" "$tmp/g32.nib" --to gguf
  refused "missing model" "cannot open" "$tmp/none.nib"
  mkdir -p "$tmp/exists"
  run export "$tmp/g32.nib" --tokenizer "$d" -o "$tmp/exists" >"$tmp/stdout" 2>"$tmp/stderr"
  [ $? -eq 1 ] && grep -q "exists: give a new folder" "$tmp/stderr" && [ -z "$(ls "$tmp/exists")" ] &&
    ! ls -d "$tmp/exists".tmp* >/dev/null 2>&1 && ok "OUTDIR exists: $(cat "$tmp/stderr")" ||
    fail "OUTDIR exists: $(cat "$tmp/stderr")"
  run export --help | grep -q "^usage: nibble export" && ok "export --help" || fail "export --help"
}

# A random llama2.c checkpoint of 27M parameters, whose export takes long
# enough (a second or so) for a poll to see its temporary folder: PATH.
big_checkpoint() {
  "$PY" - "$1" <<'EOF'
import sys
import numpy as np
dim, hidden, layers, heads, kv, vocab, seq = 512, 1536, 8, 8, 8, 512, 256
hd = dim // heads
n = (vocab * dim + layers * dim * 2 + layers * (2 * dim * dim + 2 * dim * kv * hd) +
     3 * layers * dim * hidden + dim + seq * hd)
w = np.random.default_rng(3).integers(-96, 97, n).astype("<f4") / 256
with open(sys.argv[1], "wb") as f:
    f.write(np.array([dim, hidden, layers, heads, kv, vocab, seq], "<i4").tobytes())
    f.write(w.tobytes())
EOF
}

# kill_export NIB OUT: starts an export to OUT, waits until OUT.tmp<pid>
# holds model.safetensors (written last, for a second or so), stops the
# process so it cannot finish meanwhile (as bad_signals.sh's interrupt),
# kills it with SIGKILL; $rc its exit status, $killed its pid. 1 (after a
# failure line) when it ended before.
kill_export() {
  local i state
  $NB_WRAP "$NIBBLE" export -q "$1" -o "$2" >/dev/null 2>"$tmp/kill.err" &
  killed=$!
  for ((i = 0; i < 6000; i++)); do # 2 minutes at most (qemu)
    [ -f "$2.tmp$killed/model.safetensors" ] && break
    kill -0 $killed 2>/dev/null || break
    sleep 0.02
  done
  kill -STOP $killed 2>/dev/null
  for ((i = 0; i < 100; i++)); do
    state=$(sed -n 's/^[0-9]* (.*) \(.\) .*/\1/p' /proc/$killed/stat 2>/dev/null)
    [ "$state" = T ] || [ -z "$state" ] || [ "$state" = Z ] && break
    sleep 0.01
  done
  kill -KILL $killed 2>/dev/null
  wait $killed 2>/dev/null # (no "Killed" notice from the shell)
  rc=$?
  [ "$state" = T ] && return
  fail "SIGKILL: the export ended (exit $rc) before it could be killed: $(head -c 300 "$tmp/kill.err")"
  return 1
}

section_kill() {
  local nib=$tmp/big-q.nib d=$tmp/k out=$tmp/k/out rc killed left dead before
  big_checkpoint "$tmp/big.bin" &&
    run convert -q "$tmp/big.bin" --tokenizer "$DATA/stories260K/tok512.model" -o "$tmp/big.nib" \
      --dtype f16 && rm -f "$tmp/big.bin" &&
    run quantize -q -m "$tmp/big.nib" --method rtn --group 32 --output-f16 -o "$nib" >/dev/null ||
    { fail "SIGKILL: cannot make the model"; return; }
  mkdir -p "$d"
  kill_export "$nib" "$out" || return
  left=$(ls -A "$d")
  [ $rc -eq 137 ] && [ "$left" = "out.tmp$killed" ] && [ -n "$(ls -A "$out.tmp$killed")" ] &&
    ok "SIGKILL: exit 137, left $left ($(ls "$out.tmp$killed" | tr '\n' ' '))" ||
    fail "SIGKILL: exit $rc, left '$left'"
  run export -q "$nib" -o "$out" >/dev/null 2>"$tmp/err" ||
    fail "export after a SIGKILL: $(cat "$tmp/err")"
  left=$(ls -A "$d")
  [ "$left" = out ] && [ -f "$out/model.safetensors" ] &&
    ok "SIGKILL: the next export to out removed out.tmp$killed and wrote out" ||
    fail "SIGKILL: after the next export to out: '$left'"
  # Look-alikes of a leftover, which must stay: a live process's (this
  # shell's), names export does not choose, a file, and a dead process's
  # folder holding a file export does not write (one warning line).
  rm -rf "$out"
  dead=$(sh -c 'echo $$')
  mkdir "$out.tmp$$" "$out.tmp$dead" "$out.tmp$dead-x" "$out.tmp0$dead"
  : >"$out.tmp$$/config.json"
  : >"$out.tmp$dead/config.json"
  : >"$out.tmp$dead/notes.txt"
  : >"$out.tmp$((dead + 1))"
  before=$(ls -A "$d" | sort | tr '\n' ' ')
  run export -q "$nib" -o "$out" >/dev/null 2>"$tmp/err" ||
    fail "export beside look-alikes: $(cat "$tmp/err")"
  left=$(ls -A "$d" | grep -v '^out$' | sort | tr '\n' ' ')
  [ "$left" = "$before" ] && [ -f "$out.tmp$dead/config.json" ] && [ -f "$out/config.json" ] &&
    ok "look-alikes of a leftover stay: $left" || fail "look-alikes: before '$before', after '$left'"
  [ "$(wc -l <"$tmp/err")" -eq 1 ] &&
    grep -q "out.tmp$dead', left by an export that was killed, holds 'notes.txt'" "$tmp/err" &&
    ok "a leftover holding a file export does not write: $(cat "$tmp/err")" ||
    fail "a leftover holding a file export does not write: '$(cat "$tmp/err")'"
}

run_section "$section"
