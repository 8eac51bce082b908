#!/usr/bin/env bash
# The bad-input table's signals section (docs/bad-input.md): SIGINT,
# SIGTERM and SIGKILL in the middle of the long subcommands. One meson
# test:  bad_signals.sh signals
# The frame and the checks the rows share are bad_common.sh's; the
# environment is bad_input.sh's (NIBBLE, DATA, NB_WRAP).
set -u
section=${1:-}
. "$(dirname "$0")/bad_common.sh"

# A llama2.c checkpoint of zeros (sparse: no disk) whose conversion and
# runs take long enough to be interrupted: DIM HIDDEN LAYERS SEQ.
zero_checkpoint() {
  python3 - "$@" <<'EOF'
import struct, sys
path, dim, hidden, layers, seq = sys.argv[1], *map(int, sys.argv[2:])
heads, vocab = 8, 512
hd = dim // heads
n = vocab * dim + layers * (2 * dim + 4 * dim * dim + 3 * dim * hidden) + dim + seq * hd
with open(path, "wb") as f:
    f.write(struct.pack("<7i", dim, hidden, layers, heads, heads, vocab, seq))
    f.truncate(28 + 4 * n)
EOF
}

# ---- signals ----
# Background jobs of a script start with SIGINT ignored: exec_sigint
# resets it, as a terminal's Ctrl-C would find it, and execs the command
# (so $! is its pid). Only in a background job: it replaces the shell.
exec_sigint() {
  trap - EXIT # killed before the exec, the job would run the script's
  if env --default-signal=INT true 2>/dev/null; then exec env --default-signal=INT "$@"; fi
  exec python3 -S -c 'import os, signal, sys
signal.signal(signal.SIGINT, signal.SIG_DFL)
os.execvp(sys.argv[1], sys.argv[1:])' "$@"
}

# interrupt SIGNAL CONDITION -- nibble args...: starts nibble in the
# background (stdin from $tmp/stdin), waits until CONDITION (a command)
# holds, stops the process so it cannot finish meanwhile, sends SIGNAL,
# resumes it; $rc is its exit status. Returns 1 (after a failure line) if
# it ended before it could be interrupted.
interrupt() {
  local sig=$1 cond=$2 pid i state; shift 3
  rm -f "$tmp/sig.out" "$tmp/sig.err" # the conditions look at the new ones
  exec_sigint $NB_WRAP "$NIBBLE" "$@" <"$tmp/stdin" >"$tmp/sig.out" 2>"$tmp/sig.err" &
  pid=$!
  for ((i = 0; i < 6000; i++)); do # 2 minutes at most (qemu)
    execed && $cond && break
    kill -0 $pid 2>/dev/null || break
    sleep 0.02
  done
  kill -STOP $pid 2>/dev/null
  for ((i = 0; i < 100; i++)); do
    state=$(sed -n 's/^[0-9]* (.*) \(.\) .*/\1/p' /proc/$pid/stat 2>/dev/null)
    [ "$state" = T ] || [ -z "$state" ] || [ "$state" = Z ] && break
    sleep 0.01
  done
  if [ "$state" != T ]; then
    kill -CONT $pid 2>/dev/null
    wait $pid
    fail "$sig $*: it ended (exit $?) before it could be interrupted: $(head -c 300 "$tmp/sig.err")"
    return 1
  fi
  kill -"$sig" $pid
  kill -CONT $pid 2>/dev/null
  wait $pid 2>/dev/null # (no "Killed" notice from the shell)
  rc=$?
}

# expect_signal WHAT SIGNAL STATUS CONDITION -- nibble args...: ended with
# STATUS, and nothing left in $tmp/o (the output folder).
expect_signal() {
  local what=$1 sig=$2 want=$3 cond=$4 left; shift 4
  rm -rf "$tmp/o" && mkdir -p "$tmp/o"
  interrupt "$sig" "$cond" "$@" || return
  left=$(ls -A "$tmp/o")
  if [ $rc -ne "$want" ]; then fail "$what: exit $rc, expected $want: $(head -c 300 "$tmp/sig.err")"
  elif [ -n "$left" ]; then fail "$what: left in the output folder: '$left'"
  else ok "$what: exit $rc$([ -s "$tmp/sig.err" ] && echo ": $(tail -n 1 "$tmp/sig.err")")"; fi
}

execed() { # the job is nibble (or qemu) now, no longer the shell or env
  case $(readlink "/proc/$pid/exe" 2>/dev/null) in */bash | */env | */python3* | "") return 1;; esac
}
writing() { compgen -G "$tmp/o/*.tmp*" >/dev/null; } # a temporary output exists
writing_final() { compgen -G "$tmp/o/out.nib.tmp+([0-9])" >/dev/null; } # the quantizer's
printing() { [ -s "$tmp/sig.out" ]; }
a_while() { [ "$i" -ge 25 ]; } # half a second of polls (interrupt's $i)
catching_int() { # nibble's SIGINT handler is in place (under qemu: qemu's, at once)
  local hex
  hex=$(sed -n 's/^SigCgt:[[:space:]]*//p' "/proc/$pid/status" 2>/dev/null)
  [ -n "$hex" ] && (( 0x$hex & 2 ))
}

section_signals() {
  shopt -s extglob
  model
  local calib=(--calib "$kjv" --calib-tokens 8192)
  : >"$tmp/stdin"
  # A conversion of about 100 MB of zeros (a sparse file: no disk).
  zero_checkpoint "$tmp/zeros.bin" 512 1376 8 512
  local conv=(convert -q --from llama2c "$tmp/zeros.bin" --tokenizer "$tok" -o "$tmp/o/out.nib")
  expect_signal "convert, SIGINT" INT 130 writing -- "${conv[@]}"
  expect_signal "convert, SIGTERM" TERM 143 writing -- "${conv[@]}"
  local hfq=(convert -q "$s260k/hf" --quantize awq "${calib[@]}" -o "$tmp/o/out.nib")
  expect_signal "convert --quantize, SIGINT" INT 130 writing_final -- "${hfq[@]}"
  expect_signal "convert --quantize, SIGTERM" TERM 143 writing -- "${hfq[@]}"
  local q=(quantize -q -m "$tmp/s.nib" "${calib[@]}" -o "$tmp/o/out.nib")
  expect_signal "quantize, SIGINT" INT 130 writing -- "${q[@]}"
  expect_signal "quantize, SIGTERM" TERM 143 writing -- "${q[@]}"
  # SIGKILL cannot be caught: the temporary file stays, and the next write
  # of the same output removes it (its process is gone).
  local name left next
  for name in quantize convert; do
    rm -rf "$tmp/o" && mkdir -p "$tmp/o"
    if [ $name = quantize ]; then
      interrupt KILL writing -- "${q[@]}" || continue
      next=(quantize -q -m "$tmp/s.nib" --method rtn -o "$tmp/o/out.nib")
    else
      interrupt KILL writing -- "${conv[@]}" || continue
      next=(convert -q "$s260k/hf" -o "$tmp/o/out.nib")
    fi
    left=$(ls -A "$tmp/o")
    [ $rc -eq 137 ] && [[ "$left" =~ ^out\.nib\.tmp[0-9]+$ ]] &&
      ok "$name, SIGKILL: exit 137, left $left" || fail "$name, SIGKILL: exit $rc, left '$left'"
    run "${next[@]}" </dev/null >/dev/null 2>"$tmp/err" ||
      fail "$name after a SIGKILL: $(cat "$tmp/err")"
    left=$(ls -A "$tmp/o")
    [ "$left" = out.nib ] && ok "$name, SIGKILL: the next $name to out.nib removed the stale file" ||
      fail "$name, SIGKILL: after the next $name to out.nib: '$left'"
  done
  # Runs: a model of zeros with 1024 positions, slow enough to interrupt.
  zero_checkpoint "$tmp/slow.bin" 256 768 4 1024
  run convert -q --from llama2c "$tmp/slow.bin" --tokenizer "$tok" -o "$tmp/slow.nib" </dev/null ||
    fail "convert the slow model"
  local gen=(generate -m "$tmp/slow.nib" -n 100000 --ignore-eos)
  expect_signal "generate, SIGINT" INT 130 printing -- "${gen[@]}"
  grep -q "^nibble: interrupted$" "$tmp/sig.err" ||
    fail "generate, SIGINT: no notice: $(cat "$tmp/sig.err")"
  expect_signal "generate, SIGTERM" TERM 143 printing -- "${gen[@]}"
  local ppl=(ppl -m "$tmp/slow.nib" -f "$kjv" -c 64)
  expect_signal "ppl, SIGINT" INT 130 catching_int -- "${ppl[@]}"
  [ -n "$NB_WRAP" ] || grep -q "^nibble: interrupted after" "$tmp/sig.err" ||
    fail "ppl, SIGINT: no notice: $(cat "$tmp/sig.err")"
  expect_signal "ppl, SIGTERM" TERM 143 catching_int -- "${ppl[@]}"
  local bench=(bench -m "$tmp/slow.nib" -p 512 -n 256 -r 20)
  expect_signal "bench, SIGINT" INT 130 a_while -- "${bench[@]}"
  expect_signal "bench, SIGTERM" TERM 143 a_while -- "${bench[@]}"
  printf 'Once upon a time\nThe dog\n' >"$tmp/stdin"
  expect_signal "chat, SIGTERM" TERM 143 printing -- chat -q -m "$tmp/slow.nib" -n 2000 --ignore-eos
  chat_interrupt
}

# chat, SIGINT during a reply: the reply stops, the next message is
# answered, exit 0. Messages come through a FIFO, the second once the
# first reply was stopped.
chat_interrupt() {
  local pid i state before
  mkfifo "$tmp/fifo"
  rm -f "$tmp/sig.out" "$tmp/sig.err"
  exec_sigint $NB_WRAP "$NIBBLE" chat -m "$tmp/slow.nib" -n 150 --ignore-eos \
    <"$tmp/fifo" >"$tmp/sig.out" 2>"$tmp/sig.err" &
  pid=$!
  trap '' PIPE # a chat that died must not take the script with it
  exec 3>"$tmp/fifo"
  echo "Once upon a time" >&3
  for ((i = 0; i < 6000; i++)); do
    execed && printing && break
    kill -0 $pid 2>/dev/null || break
    sleep 0.02
  done
  kill -STOP $pid
  for ((i = 0; i < 100; i++)); do
    state=$(sed -n 's/^[0-9]* (.*) \(.\) .*/\1/p' /proc/$pid/stat 2>/dev/null)
    [ "$state" = T ] && break
    sleep 0.01
  done
  kill -INT $pid
  kill -CONT $pid
  for ((i = 0; i < 500; i++)); do grep -q "reply stopped" "$tmp/sig.err" && break; sleep 0.02; done
  before=$(wc -c <"$tmp/sig.out")
  echo "The dog" >&3
  exec 3>&-
  trap - PIPE
  wait $pid
  rc=$?
  if [ $rc -ne 0 ]; then fail "chat, SIGINT: exit $rc: $(head -c 300 "$tmp/sig.err")"
  elif ! grep -q "reply stopped" "$tmp/sig.err"; then fail "chat, SIGINT: $(cat "$tmp/sig.err")"
  elif [ "$(wc -c <"$tmp/sig.out")" -le "$before" ]; then fail "chat, SIGINT: no reply after it"
  else ok "chat, SIGINT: $(grep "reply stopped" "$tmp/sig.err"); the next message answered, exit 0"; fi
}

if ! command -v python3 >/dev/null; then
  echo "python3 not found: skipping"
  exit 77
fi
run_section "$section"
