# The frame of the bad-input scripts (bad_input.sh, bad_signals.sh), sourced
# by each after `set -u` and before its sections: a temporary folder, nibble
# run under NB_WRAP, the checks the table's rows share (expect_error and
# the like), crafted and damaged inputs, and sections.sh's run_section.
tmp=$(mktemp -d)
# (only in this shell: a background job killed before its exec would run it)
trap '[ "$BASHPID" = $$ ] && { chmod -R u+rwX "$tmp" 2>/dev/null; rm -rf "$tmp"; }' EXIT
s260k=$DATA/stories260K
tok=$s260k/tok512.model
BPE_CASES=${BPE_CASES:-$DATA/../bpe}
kjv=$DATA/kjv_head.txt
as=() # a command prefix: the unreadable-file rows run nibble as another user

run() { ${as[@]+"${as[@]}"} $NB_WRAP "$NIBBLE" "$@"; }
. "$(dirname "$0")/sections.sh"
ok() { echo "ok: $*"; }

# has_words FILE WORDS: FILE holds every part of WORDS (parts separated by
# " + "), case-insensitively.
has_words() {
  local rest=$2 part
  while [ -n "$rest" ]; do
    part=${rest%% + *}
    [ "$part" = "$rest" ] && rest= || rest=${rest#* + }
    grep -qiF -- "$part" "$1" || return 1
  done
}

# expect_error WHAT WORDS -- nibble args...: exit code 1, exactly one line
# on stderr holding WORDS, nothing on stdout (stdin empty).
# expect_error_out: the same, but what ran before the error may have
# written to stdout (info's metadata, the quantizer's plan, the prompt).
expect_error() { refused strict "$@"; }
expect_error_out() { refused loose "$@"; }
refused() {
  local mode=$1 what=$2 words=$3 rc lines; shift 4
  run "$@" </dev/null >"$tmp/out" 2>"$tmp/err"
  rc=$?
  lines=$(wc -l <"$tmp/err")
  if [ $rc -ne 1 ]; then fail "$what: exit code $rc, expected 1 ($(head -c 300 "$tmp/err"))"
  elif [ "$lines" -ne 1 ]; then fail "$what: $lines lines on stderr: $(head -c 400 "$tmp/err")"
  elif ! has_words "$tmp/err" "$words"; then fail "$what: '$(cat "$tmp/err")' lacks '$words'"
  elif [ $mode = strict ] && [ -s "$tmp/out" ]; then
    fail "$what: wrote to stdout: $(head -c 200 "$tmp/out")"
  else ok "$what: $(cat "$tmp/err")"; fi
}

# expect_runs WHAT -- nibble args...: exit code 0 (the rows where nibble
# cannot tell, and says so in the table).
expect_runs() {
  local what=$1 rc; shift 2
  run "$@" </dev/null >"$tmp/out" 2>"$tmp/err"
  rc=$?
  [ $rc -eq 0 ] && ok "$what: runs, exit 0" ||
    fail "$what: exit code $rc: $(head -c 300 "$tmp/err")"
}

# expect_closed_stdout INPUT -- nibble args...: stdout closed (>&-), stdin
# from INPUT: exit 1, one line on stderr saying it cannot write.
expect_closed_stdout() {
  local input=$1 rc; shift 2
  run "$@" <"$input" >&- 2>"$tmp/err"
  rc=$?
  [ $rc -eq 1 ] && [ "$(wc -l <"$tmp/err")" -eq 1 ] && grep -q "cannot write" "$tmp/err" &&
    ok "stdout closed: $(cat "$tmp/err")" || fail "stdout closed: exit $rc, $(cat "$tmp/err")"
}

# no_leftovers DIR WHAT: DIR holds no temporary file, and none of the files
# the refused commands were to write.
no_leftovers() {
  local left
  left=$(ls -A "$1" | grep -E '\.tmp|^(x|out)\.nib$')
  [ -z "$left" ] && ok "$2: no output or temporary file left" || fail "$2: files left: $left"
}

# chmod 000 stops no one with CAP_DAC_OVERRIDE: as root, the rows on
# unreadable files run nibble as nobody (setpriv), or are skipped.
# expect_unreadable WHAT PATH -- nibble args...: PATH (a file, or a
# directory on the way to one) chmod 000.
expect_unreadable() {
  local what=$1 file=$2 mode; shift 3
  if [ "$(id -u)" = 0 ]; then
    if ! command -v setpriv >/dev/null; then
      echo "skip: $what: running as root without setpriv, chmod 000 blocks nothing"
      return
    fi
    as=(setpriv --reuid=65534 --regid=65534 --clear-groups --)
    chmod 755 "$tmp" # nobody reaches the readable inputs, as anyone would
  fi
  mode=$(stat -c %a "$file")
  chmod 000 "$file"
  if ${as[@]+"${as[@]}"} test -r "$file"; then
    echo "skip: $what: $file stays readable for this user"
  else
    expect_error "$what" "permission denied" -- "$@"
  fi
  chmod "$mode" "$file"
  as=()
}

# Files crafted from the real ones: damaged, truncated, NaN weights.
# craft cut SRC DST N (the first N bytes), craft flip SRC DST OFFSET BIT
# in the shell (quick); what needs the formats, in python.
craft() {
  local b
  case $1 in
    cut) head -c "$4" "$2" >"$3"; return;;
    flip)
      cp "$2" "$3"
      b=$(od -An -tu1 -j "$4" -N1 "$2")
      printf "\\$(printf %03o $((b ^ (1 << $5))))" |
        dd of="$3" bs=1 seek="$4" conv=notrunc status=none
      return;;
  esac
  python3 -S - "$@" <<'EOF'
import json, struct, sys, zlib

def nib_tensors(b):
    table, n, esize = struct.unpack_from("<QII", b, 24 + 6 * 8)
    out = {}
    for i in range(n):
        e = table + i * esize
        name = b[e:e + 64].split(b"\0")[0].decode("latin-1")
        dtype, ndims = struct.unpack_from("<II", b, e + 64)
        shape = struct.unpack_from("<4Q", b, e + 72)[:ndims]
        off, size = struct.unpack_from("<QQ", b, e + 104)
        out[name] = (e, dtype, shape, off, size)
    return out

def nib_nan(b, tensor, index):
    """A NaN into a .nib tensor (a packed one: its first fp16 scale), the
    CRC fixed: only the values are wrong."""
    e, dtype, shape, off, size = nib_tensors(b)[tensor]
    if dtype in (16, 17):
        rows, cols = shape
        tiles = ((rows + 3) // 4) * ((cols + 31) // 32) * (64 if dtype == 16 else 48)
        struct.pack_into("<H", b, off + tiles, 0x7e00)
    else:
        struct.pack_into("<f", b, off + 4 * int(index), float("nan"))
    struct.pack_into("<I", b, e + 120, zlib.crc32(b[off:off + size]))

def nib_flip_weight(b, tensor):
    """The lowest bit of a tensor's first byte: the value stays finite."""
    b[nib_tensors(b)[tensor][3]] ^= 1

def nib_escape_names(b):
    """Terminal escapes in the model name and a tensor name (not checksummed)."""
    name = b"\x1b[31mevil\x1b]0;pwned\x07"
    b[128 + 68:128 + 68 + len(name) + 1] = name + b"\0"
    e = nib_tensors(b)["blk.0.attn_norm"][0]
    b[e:e + 64] = b"blk.0.attn_norm\x1b[2J".ljust(64, b"\0")

def st_header(b):
    n = struct.unpack_from("<Q", b, 0)[0]
    return n, json.loads(b[8:8 + n])

def st_nan(b, tensor):
    n, h = st_header(b)
    struct.pack_into("<f", b, 8 + n + h[tensor]["data_offsets"][0] + 20, float("nan"))

def st_flip_data(b, tensor):
    n, h = st_header(b)
    b[8 + n + h[tensor]["data_offsets"][0]] ^= 1

def main():
    cmd, src, dst, args = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
    b = bytearray(open(src, "rb").read())
    if cmd == "nib-nan":
        nib_nan(b, args[0], args[1] if len(args) > 1 else 67)
    elif cmd == "nib-flip-weight":
        nib_flip_weight(b, args[0])
    elif cmd == "nib-escapes":
        nib_escape_names(b)
    elif cmd == "st-nan":
        st_nan(b, args[0])
    elif cmd == "st-flip-data":
        st_flip_data(b, args[0])
    elif cmd == "l2c-nan":  # float N of the weights (token_embd first)
        struct.pack_into("<f", b, 28 + 4 * int(args[0]), float("nan"))
    else:
        sys.exit("craft: unknown " + cmd)
    open(dst, "wb").write(b)

main()
EOF
}

model() { # the stories260K demo model, converted once per section
  [ -e "$tmp/s.nib" ] || run convert -q --from llama2c "$s260k/stories260K.bin" --tokenizer "$tok" \
    -o "$tmp/s.nib" </dev/null || { echo "cannot convert the demo model" >&2; exit 1; }
}

hf_copy() { # hf_copy NAME: a copy of stories260K's Hugging Face folder
  rm -rf "${tmp:?}/$1" && mkdir -p "$tmp/$1" && cp "$s260k/hf/"* "$tmp/$1/"
}

# set_config NAME KEY=JSON...: those keys of NAME's config.json set (the
# value is JSON text: '"qwen2"', 'true', '{"rope_type": "yarn"}').
set_config() {
  python3 -S - "$tmp/$1/config.json" "${@:2}" <<'EOF'
import json, sys
c = json.load(open(sys.argv[1]))
for kv in sys.argv[2:]:
    k, v = kv.split("=", 1)
    c[k] = json.loads(v)
json.dump(c, open(sys.argv[1], "w"), indent=1)
EOF
}

# Damaged .nib files, from the demo model.
damaged_models() {
  model
  local m=$tmp/s.nib
  craft cut "$m" "$tmp/trunc.nib" 500000
  craft flip "$m" "$tmp/magic.nib" 0 1
  craft flip "$m" "$tmp/heads.nib" 140 0   # n_heads 8 -> 9
  craft flip "$m" "$tmp/layers.nib" 136 1  # n_layers 5 -> 7
  craft flip "$m" "$tmp/tokbytes.nib" 700 6 # inside the tokenizer bytes
  craft nib-flip-weight "$m" "$tmp/crc.nib" token_embd
  craft nib-nan "$m" "$tmp/nan.nib" token_embd 67 # BOS's row: every run meets it
  mkdir -p "$tmp/dir.nib"
  head -c 3000 "$DATA/README.md" >"$tmp/text.nib"
}
