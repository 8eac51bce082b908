#!/usr/bin/env bash
# End-to-end checks of `nibble chat` on the stories260K demo model, one
# section per meson test:  chat.sh pipe|json|context|bad-input|pty
# Environment (set by tests/meson.build): NIBBLE, DATA (tests/data), NB_WRAP
# (qemu wrapper for cross builds, or empty). The pty section drives a real
# terminal through python3's pty module: the prompt's line editor, its keys,
# its display on a narrow terminal, and the terminal restored on every exit.
set -u
section=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
s260k=$DATA/stories260K
m=$tmp/s.nib

run() { $NB_WRAP "$NIBBLE" "$@"; }
. "$(dirname "$0")/sections.sh"
ok() { echo "ok: $*"; }

convert() {
  run convert -q --from llama2c "$s260k/stories260K.bin" --tokenizer "$s260k/tok512.model" \
    -o "$m" || { echo "cannot convert the demo model" >&2; exit 1; }
}

# jq-free JSON checks: python3 reads the JSON lines on stdin.
py() { python3 -c "$@"; }

section_pipe() {
  convert
  printf 'Once upon a time\nThe little dog\n' | run chat -m "$m" --seed 1 -n 30 >"$tmp/out" 2>"$tmp/err"
  [ $? -eq 0 ] || fail "piped chat exit code"
  [ -s "$tmp/out" ] || fail "piped chat printed nothing"
  grep -q "has no chat template: chatting as plain completion" "$tmp/err" ||
    fail "no notice for a model without a template: $(cat "$tmp/err")"
  [ "$(wc -l <"$tmp/err")" -eq 1 ] || fail "stderr is not just the notice: $(cat "$tmp/err")"
  grep -q $'\033' "$tmp/out" "$tmp/err" && fail "ANSI codes written to a pipe"
  ok "piped chat: $(head -c 60 "$tmp/out" | tr '\n' ' ')..."
  # The shared generation loop: a plain-template reply continues the text
  # exactly as generate continues the same prompt.
  local g c
  g=$(run generate -q -m "$m" -p "Once upon a time" --temp 0 -n 40)
  c=$(echo "Once upon a time" | run chat -q -m "$m" --temp 0 --repeat-penalty 1 -n 40)
  [ "$g" = "Once upon a time$c" ] || fail "chat and generate differ: '$g' vs '$c'"
  ok "greedy chat reply equals generate's continuation"
  # Every template runs, and each turn prefills only its new tokens.
  local t
  for t in llama2 mistral zephyr vicuna plain phi3 gemma llama3.1 llama3.2; do
    printf 'Hi there\nHow are you?\n' | run chat -m "$m" --template "$t" --seed 2 -n 12 --json \
      >"$tmp/$t.json" 2>"$tmp/err" || fail "template $t: exit code"
    py '
import json, sys
turns = [json.loads(line) for line in open(sys.argv[1])]
assert len(turns) == 2, turns
a, b = turns
assert all(t["reply_tokens"] <= 12 for t in turns), turns
if a["stop"] != "stop_string":
    new = b["prompt_tokens"] - a["prompt_tokens"] - a["reply_tokens"]
    assert b["prefill_tokens"] <= new + 1, (a, b)
' "$tmp/$t.json" || fail "template $t: $(cat "$tmp/$t.json")"
  done
  ok "nine templates, two turns each, only new tokens prefilled"
  # --multiline: a message ends at a blank line.
  printf 'Once upon\na time\n\n\nThe dog\n' | run chat -q -m "$m" --multiline -n 5 --json \
    >"$tmp/ml.json" || fail "multiline exit code"
  [ "$(wc -l <"$tmp/ml.json")" -eq 2 ] || fail "multiline: $(cat "$tmp/ml.json")"
  # nibble with no command chats with $NIBBLE_MODEL, or says how to get a model.
  echo "Once upon a time" | NIBBLE_MODEL=$m run -q -n 5 >"$tmp/out" || fail "nibble with no command"
  [ -s "$tmp/out" ] || fail "nibble with no command printed nothing"
  mkdir "$tmp/empty"
  (cd "$tmp/empty" && env -u NIBBLE_MODEL $NB_WRAP "$NIBBLE" </dev/null >"$tmp/out" 2>"$tmp/err")
  [ $? -eq 1 ] && [ "$(wc -l <"$tmp/err")" -eq 1 ] && grep -q "NIBBLE_MODEL" "$tmp/err" ||
    fail "no model anywhere: $(cat "$tmp/err")"
  ok "nibble with no command: $(cat "$tmp/err")"
  # convert stores the template its heuristics find: by name, then by chat_template.
  cp -r "$s260k/hf" "$tmp/TinyLlama-1.1B-Chat-v1.0"
  cp -r "$s260k/hf" "$tmp/chatml"
  cp -r "$s260k/hf" "$tmp/hf-sys"
  printf '{"chat_template": "{%% for m in messages %%}<|im_start|>{{ m.content }}{%% endfor %%}"}' \
    >"$tmp/chatml/tokenizer_config.json"
  printf '{"chat_template": "{{ bos_token + [INST] <<SYS>> }}"}' >"$tmp/hf-sys/tokenizer_config.json"
  for t in "TinyLlama-1.1B-Chat-v1.0:zephyr" "chatml:(none" "hf-sys:llama2"; do
    run convert -q "$tmp/${t%%:*}" -o "$tmp/t.nib" || fail "convert ${t%%:*}"
    run info "$tmp/t.nib" | grep -qF "template:   ${t#*:}" || fail "template of ${t%%:*}"
  done
  echo "Hi" | run chat -m "$tmp/t.nib" -n 3 >/dev/null 2>"$tmp/err"
  [ ! -s "$tmp/err" ] || fail "a model with a template got a notice: $(cat "$tmp/err")"
  ok "templates found by name and by tokenizer_config.json"
  run chat --template list >"$tmp/out" || fail "--template list exit code"
  [ "$(grep -cE '^  (llama2|mistral|zephyr|vicuna|plain) ' "$tmp/out")" -eq 5 ] ||
    fail "--template list: $(cat "$tmp/out")"
}

section_json() {
  convert
  printf 'Once upon a time\nLily said\n' |
    run chat -m "$m" --temp 0 --ignore-eos -n 120 --json >"$tmp/json" 2>/dev/null ||
    fail "json exit code"
  printf 'Once upon a time\nLily said\n' |
    run chat -m "$m" --temp 0 --ignore-eos -n 120 >"$tmp/text" 2>/dev/null
  py '
import json, sys
lines = open(sys.argv[1], encoding="utf-8").read().splitlines()
text = open(sys.argv[2], encoding="utf-8").read()
objs = [json.loads(l) for l in lines]
assert len(objs) == 2, lines
keys = {"reply", "stop", "prompt_tokens", "prefill_tokens", "reply_tokens", "context_tokens",
        "context_size", "dropped_turns", "prefill_tps", "time_to_first_token_s", "decode_tps", "seed"}
for o in objs:
    assert set(o) == keys, o.keys()
    assert o["reply_tokens"] == 120 and o["stop"] == "length", o
    assert o["prefill_tps"] >= 0 and o["decode_tps"] > 0 and o["time_to_first_token_s"] > 0, o
# the same replies as the plain output: quotes, newlines and all escaped right
assert text == "".join(o["reply"] + "\n" for o in objs), (text, objs)
assert any(c in text for c in "\"\n"), "no quote or newline to escape in " + repr(text)
print("ok: json parses and matches the text output:", repr(objs[1]["reply"][:50]))
' "$tmp/json" "$tmp/text" || fail "json output: $(head -c 400 "$tmp/json")"
  # --no-think: Qwen3's prompt ends with an empty <think> block (tok512
  # spells it in pieces), so the prompt grows and only with qwen3.
  local t think
  for t in qwen3 chatml; do
    for think in "" --no-think; do
      echo Hi | run chat -m "$m" --template "$t" $think -n 1 --json >"$tmp/$t$think.json" \
        2>/dev/null || fail "--template $t $think: exit code"
    done
  done
  py '
import json, sys
n = [json.loads(open(f).read())["prompt_tokens"] for f in sys.argv[1:]]
assert n[1] > n[0] and n[2] == n[3], n
print("ok: --no-think adds the empty <think> block to qwen3 prompts only:", n)
' "$tmp/qwen3.json" "$tmp/qwen3--no-think.json" "$tmp/chatml.json" "$tmp/chatml--no-think.json" ||
    fail "--no-think"
}

section_context() {
  convert
  # A small context: old turns are dropped, every turn is answered; a turn
  # longer than the context is refused and the chat goes on.
  local long
  long=$(printf 'the big red dog ran to the park %.0s' $(seq 12))
  printf 'Once upon a time\nThe dog\nLily had a ball\n%s\nThe cat sat\nThey played\n' "$long" |
    run chat -m "$m" -c 64 -n 20 --seed 3 --json >"$tmp/json" 2>"$tmp/err"
  [ $? -eq 0 ] || fail "small context: exit code"
  py '
import json, sys
objs = [json.loads(l) for l in open(sys.argv[1])]
assert len(objs) == 6, objs
assert "error" in objs[3] and "more than the context" in objs[3]["error"], objs[3]
replies = [o for o in objs if "reply" in o]
assert len(replies) == 5, replies
assert all(o["context_tokens"] <= 64 for o in replies), replies
assert sum(o["dropped_turns"] for o in replies) > 0, replies
print("ok: dropped", sum(o["dropped_turns"] for o in replies), "turns; the long turn refused")
' "$tmp/json" || fail "small context: $(cat "$tmp/json")"
  grep -q "dropped the" "$tmp/err" || fail "no notice of dropped turns: $(cat "$tmp/err")"
  [ "$(grep -c "not sent" "$tmp/err")" -eq 1 ] || fail "refusal message: $(cat "$tmp/err")"
  # The context fills while a reply runs: the oldest turn goes, the reply goes on.
  printf 'Once upon a time\nThe dog\nThe cat\n' |
    run chat -q -m "$m" -c 128 -n 60 --ignore-eos --seed 4 --json >"$tmp/json2" ||
    fail "full during a reply: exit code"
  py '
import json, sys
objs = [json.loads(l) for l in open(sys.argv[1])]
assert len(objs) == 3 and all(o["reply_tokens"] == 60 for o in objs), objs
assert any(o["dropped_turns"] > 0 for o in objs[1:]), objs
print("ok: replies run on past a full context:", [o["dropped_turns"] for o in objs])
' "$tmp/json2" || fail "full during a reply: $(cat "$tmp/json2")"
}

section_bad_input() {
  convert
  # Invalid UTF-8: a clear message, the chat goes on.
  printf 'Once upon a time\n\xff\xfe oops\nThe dog\n' |
    run chat -m "$m" -n 10 --json >"$tmp/json" 2>"$tmp/err"
  [ $? -eq 0 ] || fail "invalid UTF-8: exit code"
  [ "$(grep -c "invalid UTF-8" "$tmp/err")" -eq 1 ] || fail "invalid UTF-8: $(cat "$tmp/err")"
  py '
import json, sys
objs = [json.loads(l) for l in open(sys.argv[1])]
assert [("reply" in o) for o in objs] == [True, False, True], objs
' "$tmp/json" || fail "invalid UTF-8 json: $(cat "$tmp/json")"
  ok "invalid UTF-8: $(grep "UTF-8" "$tmp/err")"
  # A reader that goes away: quiet, exit 0.
  python3 - "$m" <<'EOF' || fail "broken pipe"
import os, subprocess, sys
wrap = os.environ.get("NB_WRAP", "")
cmd = ([wrap] if wrap else []) + [os.environ["NIBBLE"], "chat", "-m", sys.argv[1],
       "--template", "plain", "--ignore-eos", "-n", "50"]
p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
p.stdout.close()  # nobody reads: the first write fails with EPIPE
_, err = p.communicate(b"Once upon a time\nThe dog\n", timeout=120)
assert p.returncode == 0 and err == b"", (p.returncode, err)
print("ok: broken pipe: exit 0, nothing on stderr")
EOF
  # A closed stdout: one error line, exit 1.
  echo "Once upon a time" | run chat -q -m "$m" -n 5 >&- 2>"$tmp/err"
  local rc=$?
  [ $rc -eq 1 ] && [ "$(wc -l <"$tmp/err")" -eq 1 ] && grep -q "cannot write" "$tmp/err" ||
    fail "closed stdout: exit $rc, $(cat "$tmp/err")"
  ok "closed stdout: $(cat "$tmp/err")"
  refused "unknown template" "unknown template 'gemma4'" chat -m "$m" --template gemma4
  refused "-n 0" "-n expects" chat -m "$m" -n 0
  refused "no model given" "chat needs -m" chat
}

# refused WHAT WORDS nibble-args...: exit 1, one line on stderr with WORDS,
# nothing on stdout.
refused() {
  local what=$1 words=$2 rc; shift 2
  run "$@" </dev/null >"$tmp/out" 2>"$tmp/err"
  rc=$?
  if [ $rc -eq 1 ] && [ "$(wc -l <"$tmp/err")" -eq 1 ] && grep -qF -- "$words" "$tmp/err" &&
    [ ! -s "$tmp/out" ]; then ok "$what: $(cat "$tmp/err")"
  else fail "$what: exit $rc, stderr '$(cat "$tmp/err")'"; fi
}

section_pty() {
  convert
  python3 - "$m" <<'EOF'
import fcntl, json, os, pty, re, select, signal, struct, subprocess, sys, termios, time

wrap = os.environ.get("NB_WRAP", "")
base = ([wrap] if wrap else []) + [os.environ["NIBBLE"], "chat", "-m", sys.argv[1]]
failures = 0

def spawn(args):
    pid, fd = pty.fork()
    if pid == 0:
        # a signal ignored by whoever started the suite (nohup: SIGHUP)
        # stays ignored in nibble, as it should: give the child defaults
        for sig in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
            signal.signal(sig, signal.SIG_DFL)
        os.execvp(base[0], base + args)
    return pid, fd

class Term:
    def __init__(self, args):
        self.pid, self.fd = spawn(args)
        self.seen = b""

    def expect(self, what, timeout=60):
        """Reads until `what` appears after what was matched before."""
        end = time.time() + timeout
        while what.encode() not in self.seen:
            left = end - time.time()
            if left <= 0 or not select.select([self.fd], [], [], left)[0]:
                raise AssertionError("timed out waiting for %r; got %r" % (what, self.seen[-400:]))
            try:
                chunk = os.read(self.fd, 4096)
            except OSError:
                chunk = b""
            if not chunk:
                raise AssertionError("EOF waiting for %r; got %r" % (what, self.seen[-400:]))
            self.seen += chunk
        at = self.seen.index(what.encode()) + len(what)
        before, self.seen = self.seen[:at], self.seen[at:]
        return before.decode("utf-8", "replace")

    def more(self, timeout=60):
        """Waits for output beyond what was matched."""
        while not self.seen:
            if not select.select([self.fd], [], [], timeout)[0]:
                raise AssertionError("no output")
            self.seen += os.read(self.fd, 4096)

    def send(self, text):
        os.write(self.fd, text.encode())

    def keys(self, keys, pause=0.02):
        """Sends each item in its own write, as keys typed one by one."""
        for k in keys:
            self.send(k)
            time.sleep(pause)

    def settle(self, quiet=1.0):
        """Everything written until nothing more comes for `quiet` seconds."""
        while select.select([self.fd], [], [], quiet)[0]:
            self.seen += os.read(self.fd, 4096)
        out, self.seen = self.seen, b""
        return out.decode("utf-8", "replace")

    def winsize(self, rows, cols):
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def lflag(self):
        return termios.tcgetattr(self.fd)[3]

    def drain(self, wait):
        """Reads what is there; False once nothing came within `wait` s."""
        try:
            if select.select([self.fd], [], [], wait)[0]:
                chunk = os.read(self.fd, 4096)
                self.seen += chunk
                return bool(chunk)
        except OSError:  # EIO: the child and its terminal are gone
            pass
        return False

    def exit_code(self, timeout=60):
        end = time.time() + timeout
        while time.time() < end:
            self.drain(0.1)  # so the child never blocks on a full terminal
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                # what it wrote just before exiting is still in the pty
                while self.drain(0):
                    pass
                return os.waitstatus_to_exitcode(status)
        os.kill(self.pid, signal.SIGKILL)
        raise AssertionError("did not exit")

def check(name, f):
    global failures
    try:
        f()
        print("ok:", name)
    except AssertionError as e:
        failures += 1
        print("FAIL:", name, e, file=sys.stderr)

def interrupt_then_go_on():
    t = Term(["--ignore-eos", "-n", "400", "--seed", "5"])
    banner = t.expect("> ")
    assert "\x1b[2m" in banner and "/help" in banner, banner  # dim, on a terminal
    t.send("Once upon a time\n")
    t.expect("Once upon a time\r\n")  # the terminal's echo
    t.more()  # the reply streams
    # XOFF stops the terminal's output, so the reply blocks on its next
    # write: Ctrl-C surely lands while it streams, however slow the machine.
    t.send("\x13")
    time.sleep(0.3)
    os.kill(t.pid, signal.SIGINT)
    time.sleep(0.3)
    t.send("\x11")  # XON: output flows again
    t.expect("reply stopped")
    stats = t.expect("> ")
    assert "(400 tokens)" not in stats, stats
    t.send("/help\n")
    t.expect("commands:")
    t.expect("> ")
    t.send("The dog ran\n")  # another turn: it runs to its cap
    stats = t.expect("> ")
    assert "(400 tokens)" in stats and "prefill" in stats, stats
    t.send("/stats\n")
    t.expect("(400 tokens)")
    t.expect("> ")
    t.send("\x04")  # Ctrl-D at the prompt
    code = t.exit_code()
    assert code == 0, code

def ctrl_c_at_prompt():
    t = Term(["-q"])
    t.expect("> ")
    os.kill(t.pid, signal.SIGINT)
    code = t.exit_code()
    assert code == 0, code

def exit_command():
    t = Term(["-q", "-n", "5"])
    t.expect("> ")
    t.send("Once upon a time\n")
    t.expect("> ")
    t.send("/reset\n")
    t.expect("> ")
    t.send("/exit\n")
    code = t.exit_code()
    assert code == 0, code

ESC = "\x1b"
HOME, END, LEFT, RIGHT, UP, DOWN = ESC + "[H", ESC + "[F", ESC + "[D", ESC + "[C", ESC + "[A", ESC + "[B"
BS, DEL, PASTE_ON, PASTE_OFF = "\x7f", ESC + "[3~", ESC + "[?2004h", ESC + "[?2004l"

def ctrl(c):
    return chr(ord(c) & 0x1F)

# Messages typed with editing keys (each item one write; ESC + "[", "H" is
# a Home key split over two reads), and the message they must send.
TURNS = [
    (["upon a tim", ESC + "[", "H", "Once ", END, "e"], "Once upon a time"),
    (["/reset"], None),
    ([UP, UP], "Once upon a time"),  # Up, Up: /reset, then the first message
    (["The cat sat", ctrl("w"), ctrl("u"), ctrl("y"), "ran", LEFT * 3, ctrl("k"), BS * 4, "dog ",
      ctrl("y"), ctrl("a"), DEL * 4, "A big ", ctrl("e")], "A big dog ran"),
    (["Lily 世界 said hllo", ctrl("a"), ESC + "f", RIGHT * 3, BS, END, LEFT * 3, "é"],
     "Lily 世 said héllo"),
    (["Tom", UP, DOWN, " ran home"], "Tom ran home"),  # the line being typed survives Up
    ([ESC + "[200~One day\r\nthe sun" + ESC + "[2", "01~"], "One day\nthe sun"),  # pasted
]
GREEDY = ["-q", "--temp", "0", "--repeat-penalty", "1", "-n", "12", "--json"]

def editing_keys_and_history():
    sent = [m for _, m in TURNS if m]
    blocks = "\n\n".join(m if m else "/reset" for _, m in TURNS) + "\n"
    cmd = base + GREEDY + ["--multiline"]
    want = subprocess.run(cmd, input=blocks.encode(), stdout=subprocess.PIPE, timeout=120,
                          check=True).stdout.decode().splitlines()
    want = [json.loads(w) for w in want]
    assert len(want) == len(sent) and all("reply" in w for w in want), want
    t = Term(GREEDY)
    got = []
    for keys, message in TURNS:
        t.expect(PASTE_ON)  # the editor is in raw mode: keys are safe to send
        t.keys(keys + ["\r"])
        if message:
            echo = t.expect('{"reply"')
            assert message.replace("\n", "\r\n") + "\r\n" in echo, (message, echo)
            got.append(json.loads('{"reply"' + t.expect("}\r\n")[:-2]))
    t.expect(PASTE_ON)
    t.send(ctrl("d"))
    assert t.exit_code() == 0
    keys = ("reply", "stop", "prompt_tokens", "reply_tokens")
    for g, w, m in zip(got, want, sent):
        assert [g[k] for k in keys] == [w[k] for k in keys], (m, g, w)
    assert got[0]["reply"] == got[1]["reply"], "Up did not recall the first message"
    print("  replies as piped:", [g["reply"][:20] for g in got])

class Screen:
    """The one row a terminal shows the prompt on: enough to see whether a
    redraw ever runs past the right edge (where the terminal would wrap)."""
    def __init__(self, cols):
        self.cols, self.row, self.col = cols, [" "] * cols, 0

    def feed(self, text):
        i = 0
        while i < len(text):
            m = re.match(r"\x1b\[([0-9;?]*)([A-Za-z])", text[i:])
            if m:
                n = int(m.group(1)) if m.group(1).isdigit() else 1
                if m.group(2) == "C":
                    self.col += n
                elif m.group(2) == "K":
                    self.row[self.col:] = [" "] * (self.cols - self.col)
                i += m.end()
                continue
            c = text[i]
            if c == "\r":
                self.col = 0
            elif c >= " ":
                assert self.col < self.cols, "written past the right edge: %r" % text[:300]
                self.row[self.col] = c
                self.col += 1
            i += 1
        assert self.col < self.cols, "cursor past the right edge"

    def resize(self, cols):
        self.row = (self.row + [" "] * cols)[:cols]
        self.cols = cols

    def shows(self):
        return "".join(self.row).rstrip()

def long_line_on_a_narrow_terminal():
    text = "the little dog ran to the big red park and played with a ball all day until night"
    t = Term(["-q", "--temp", "0", "-n", "3"])
    t.winsize(24, 30)
    t.expect(PASTE_ON)
    screen = Screen(30)
    t.keys([text[i:i + 7] for i in range(0, len(text), 7)])
    screen.feed(t.settle())
    view = 30 - 2 - 1  # the prompt "> " and the last column stay free
    assert screen.shows() == "> " + text[-(view - 1):] and screen.col == 28, screen.shows()
    t.keys([ESC + "[", "H"])
    screen.feed(t.settle())
    assert screen.shows() == "> " + text[:view] and screen.col == 2, screen.shows()
    t.keys([ctrl("f")] * 30)  # scrolls right only once the cursor reaches the edge
    screen.feed(t.settle())
    assert screen.shows() == "> " + text[4:4 + view] and screen.col == 28, screen.shows()
    t.winsize(24, 50)  # SIGWINCH: redrawn for the new width, the cursor where it was
    screen.resize(50)
    screen.feed(t.settle())
    assert screen.shows() == "> " + text[4:4 + 47] and screen.col == 28, screen.shows()
    t.send("\r")
    echo = t.expect("\r\n")
    assert text in echo, echo  # all of it was sent and is in the scrollback
    t.expect("> ")
    t.send(ctrl("d"))
    assert t.exit_code() == 0

def terminal_restored():
    cooked = None
    for how, want in (("Ctrl-D", 0), ("Ctrl-C", 0), ("SIGINT", 0), ("SIGTERM", -signal.SIGTERM),
                      ("SIGHUP", -signal.SIGHUP)):
        t = Term(["-q", "--ignore-eos", "-n", "300"])
        cooked = cooked or termios.tcgetattr(t.fd)  # before nibble changes anything
        t.expect(PASTE_ON)
        assert not t.lflag() & (termios.ECHO | termios.ICANON | termios.ISIG), (how, "not raw")
        if how == "Ctrl-D":  # first a reply: the terminal is in its normal mode meanwhile
            t.send("Once upon a time\r")
            t.expect(PASTE_OFF)  # written once the mode is back to normal
            t.send("\x13")  # XOFF: the reply blocks on its next write, however fast
            time.sleep(0.2)
            assert t.lflag() & termios.ICANON and t.lflag() & termios.ECHO, "raw during a reply"
            t.send("\x11")
            t.expect(PASTE_ON)
        if how.startswith("SIG"):
            os.kill(t.pid, getattr(signal, how))
        else:
            t.send(ctrl(how[-1].lower()))
        code = t.exit_code()
        assert code == want, (how, code)
        assert termios.tcgetattr(t.fd) == cooked, (how, "terminal left changed")
        assert t.seen.rfind(PASTE_OFF.encode()) > t.seen.rfind(PASTE_ON.encode()), \
            (how, "bracketed paste left on", t.seen[-200:])

def pipes_stay_plain():
    # stdin a terminal, stdout a pipe: no line editor, as before
    pid, fd = pty.fork()
    if pid == 0:
        r, w = os.pipe()
        if os.fork() == 0:
            os.close(w)
            os.dup2(r, 0)
            os.execvp("cat", ["cat"])
        os.dup2(w, 1)
        os.execvp(base[0], base + ["-q", "-n", "3"])
    t = Term.__new__(Term)
    t.pid, t.fd, t.seen = pid, fd, b""
    time.sleep(0.5)
    assert t.lflag() & termios.ECHO, "the terminal changed without a line editor"
    t.send("Once upon a time\n")
    t.expect("Once upon a time\r\n")  # the terminal's own echo
    t.send(ctrl("d"))
    assert t.exit_code() == 0 and PASTE_ON.encode() not in t.seen, t.seen

check("Ctrl-C stops a reply, the next turn works, Ctrl-D exits 0", interrupt_then_go_on)
check("Ctrl-C at the prompt exits 0", ctrl_c_at_prompt)
check("/reset and /exit", exit_command)
check("editing keys, Up and Down, a paste: the replies match piped ones", editing_keys_and_history)
check("a line longer than the terminal scrolls sideways, redrawn on resize",
      long_line_on_a_narrow_terminal)
check("the terminal is restored on Ctrl-D, Ctrl-C, SIGINT, SIGTERM, SIGHUP", terminal_restored)
check("stdout not a terminal: no line editor", pipes_stay_plain)
sys.exit(1 if failures else 0)
EOF
  [ $? -eq 0 ] || fail "pty session"
}

if ! command -v python3 >/dev/null; then
  echo "python3 not found: skipping"
  exit 77
fi
run_section "$section"
