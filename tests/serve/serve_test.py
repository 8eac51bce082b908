#!/usr/bin/env python3
"""nibble serve against real clients, on the bundled stories260K model.

  serve_test.py api|openai|concurrency|faults|load

Sections (one meson test each):
  api          curl and raw HTTP: health, models, completions and chat equal to
               `nibble generate` / `nibble chat` greedy output (plain and llama2
               templates, two turns with the prompt cache), SSE framing, stop strings,
               max_tokens, bad input and its status codes, auth, CORS, SIGTERM
  openai       the official openai client (pip, in a venv; skipped if it cannot be
               installed): chat streamed and not, completions, models, stop, max_tokens,
               an auth failure
  concurrency  8 clients on 4 slots: each reply equals its single-client reply,
               the queue drains; a full queue answers 503
  faults       a client killed mid-stream, a header a byte a second, 1000 idle
               connections, SIGTERM mid-stream
  load         a bounded load test: requests/s and latency percentiles, zero errors

Environment (tests/meson.build): NIBBLE, DATA, SERVE_VENV (where the openai venv goes).
Exit 77 means skipped.
"""
import http.client
import json
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

NIBBLE = os.environ["NIBBLE"]
DATA = os.environ["DATA"]
S260K = os.path.join(DATA, "stories260K")
failures = []


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr, flush=True)
    failures.append(msg)


def check(cond, msg):
    if cond:
        print("ok: " + msg, flush=True)
    else:
        fail(msg)
    return cond


# ---- fixtures ----

class Models:
    """stories260K converted, and a copy whose context is 4096 (long streams)."""

    def __init__(self, tmp):
        self.short = os.path.join(tmp, "s.nib")
        self.long = os.path.join(tmp, "long.nib")
        run([NIBBLE, "convert", "-q", "--from", "llama2c", os.path.join(S260K, "stories260K.bin"),
             "--tokenizer", os.path.join(S260K, "tok512.model"), "-o", self.short])
        hf = os.path.join(tmp, "hf")
        shutil.copytree(os.path.join(S260K, "hf"), hf)
        cfg = json.load(open(os.path.join(hf, "config.json")))
        cfg["max_position_embeddings"] = 4096
        json.dump(cfg, open(os.path.join(hf, "config.json"), "w"))
        run([NIBBLE, "convert", "-q", "--from", "hf", hf, "-o", self.long])


def run(args, stdin=None):
    p = subprocess.run(args, input=stdin, capture_output=True, text=True)
    if p.returncode:
        raise RuntimeError("%s: exit %d: %s" % (" ".join(args), p.returncode, p.stderr[-500:]))
    return p.stdout


class Server:
    def __init__(self, model, *args, key=None):
        cmd = [NIBBLE, "serve", "-m", model, "--port", "0"] + list(args)
        self.p = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
        self.log = []
        self.port = None
        for line in self.p.stderr:
            self.log.append(line)
            m = re.search(r"listening on http://[^ ]*:(\d+)", line)
            if m:
                self.port = int(m.group(1))
            if "ready:" in line or "nibble: " in line:
                break
        if not self.port or self.p.poll() is not None:
            raise RuntimeError("the server did not start: " + "".join(self.log))
        self.key = key
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self):
        for line in self.p.stderr:
            self.log.append(line)

    def stop(self, sig=signal.SIGTERM, timeout=20):
        if self.p.poll() is None:
            self.p.send_signal(sig)
        try:
            rc = self.p.wait(timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            rc = -999
        if rc:  # a crash or a sanitizer's report: show the server's last words
            time.sleep(0.2)
            sys.stderr.write("server exit %d; its log ends:\n%s" % (rc, "".join(self.log[-40:])))
        return rc

    def request(self, method, path, body=None, headers=None, timeout=60):
        h = {"Content-Type": "application/json"}
        if self.key:
            h["Authorization"] = "Bearer " + self.key
        h.update(headers or {})
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
        c.request(method, path, data, h)
        r = c.getresponse()
        out = r.read()
        c.close()
        return r.status, dict(r.getheaders()), out

    def post(self, path, body, **kw):
        status, headers, out = self.request("POST", path, body, **kw)
        try:
            return status, json.loads(out)
        except ValueError:
            return status, out

    def metrics(self):
        _, _, out = self.request("GET", "/metrics")
        return {m.group(1): float(m.group(2))
                for m in re.finditer(r"^(nibble_[a-z_]+) ([0-9.e+]+)$", out.decode(), re.M)}

    def wait_idle(self, timeout=10):
        end = time.time() + timeout
        while time.time() < end:
            m = self.metrics()
            if m.get("nibble_slots_busy") == 0 and m.get("nibble_queue_length") == 0:
                return True
            time.sleep(0.05)
        return False


def chat_body(text, max_tokens=None, **kw):
    body = {"messages": [{"role": "user", "content": text}], "temperature": 0}
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    body.update(kw)
    return body


def content(reply):
    return reply["choices"][0]["message"]["content"]


def sse_events(raw):
    """The data lines of a text/event-stream body, checked for framing."""
    text = raw.decode()
    blocks = text.split("\n\n")
    if blocks[-1] != "":
        fail("the stream does not end with a blank line: %r" % text[-80:])
    events = []
    for b in blocks[:-1]:
        if not b.startswith("data: ") or "\n" in b:
            fail("not one data line: %r" % b[:120])
        events.append(b[len("data: "):])
    return events


def stream_text(events):
    out = ""
    for e in events[:-1]:
        j = json.loads(e)
        if j["choices"]:
            c = j["choices"][0]
            out += c.get("text") or c.get("delta", {}).get("content") or ""
    return out


def greedy(model, prompt, n):
    out = run([NIBBLE, "generate", "-q", "-m", model, "-p", prompt, "--temp", "0", "-n", str(n)])
    assert out.startswith(prompt) and out.endswith("\n"), out
    return out[len(prompt):-1]


def chat_cli(model, lines, n, template=None, *extra):
    args = [NIBBLE, "chat", "-q", "-m", model, "--temp", "0", "--repeat-penalty", "1",
            "--json", "-n", str(n)] + list(extra)
    if template:
        args += ["--template", template]
    out = run(args, stdin="".join(l + "\n" for l in lines))
    return [json.loads(l)["reply"] for l in out.splitlines()]


# ---- api ----

def api_basics(sv, models):
    st, _, out = sv.request("GET", "/health")
    check(st == 200 and json.loads(out)["status"] == "ok", "GET /health: 200 ok")
    st, _, out = sv.request("GET", "/v1/models")
    ids = [m["id"] for m in json.loads(out)["data"]]
    check(st == 200 and ids == ["s.nib"], "GET /v1/models lists the model: %s" % ids)
    for prompt in ["Once upon a time", "The little dog", ""]:
        want = greedy(models.short, prompt, 40)
        st, r = sv.post("/v1/completions", {"prompt": prompt, "max_tokens": 40, "temperature": 0})
        got = r["choices"][0]["text"] if st == 200 else r
        check(st == 200 and got == want,
              "completion of %r equals nibble generate greedy: %r" % (prompt, got[:50]))
    st, r = sv.post("/v1/completions", {"prompt": "Once upon a time", "max_tokens": 5,
                                        "temperature": 0})
    check(r["choices"][0]["finish_reason"] == "length" and r["usage"]["completion_tokens"] == 5
          and r["usage"]["prompt_tokens"] == 5 and r["id"].startswith("cmpl-")
          and r["object"] == "text_completion" and isinstance(r["created"], int),
          "max_tokens 5: finish_reason length, usage 5 + 5, id and created")


def api_chat(sv, models):
    for text in ["Once upon a time", "Tom had a red ball."]:
        want = chat_cli(models.short, [text], 40)[0]
        st, r = sv.post("/v1/chat/completions", chat_body(text, 40))
        check(st == 200 and content(r) == want and r["id"].startswith("chatcmpl-")
              and r["choices"][0]["message"]["role"] == "assistant",
              "chat (plain template) equals nibble chat greedy: %r" % content(r)[:50])
    st, r = sv.post("/v1/chat/completions", chat_body([{"type": "text", "text": "Once upon"},
                                                       {"type": "text", "text": "a time"}], 20))
    st2, r2 = sv.post("/v1/chat/completions", chat_body("Once upon\na time", 20))
    check(st == 200 and content(r) == content(r2), "content as text parts (joined by a newline)")


def api_llama2(models):
    """The llama2 template on tok512: two turns, the second extending the first."""
    sv = Server(models.short, "--template", "llama2", "-q")
    try:
        lines = ["Hi there", "What did Lily see?"]
        want = chat_cli(models.short, lines, 30, "llama2")
        msgs = [{"role": "system", "content": ""}, {"role": "user", "content": lines[0]}]
        st, r1 = sv.post("/v1/chat/completions", {"messages": msgs[1:], "temperature": 0,
                                                  "max_tokens": 30})
        check(st == 200 and content(r1) == want[0], "llama2 turn 1 equals nibble chat: %r"
              % content(r1)[:40])
        msgs = [msgs[1], {"role": "assistant", "content": content(r1)},
                {"role": "user", "content": lines[1]}]
        st, r2 = sv.post("/v1/chat/completions", {"messages": msgs, "temperature": 0,
                                                  "max_tokens": 30})
        check(st == 200 and content(r2) == want[1], "llama2 turn 2 equals nibble chat: %r"
              % content(r2)[:40])
        cached = r2["usage"]["prompt_tokens_details"]["cached_tokens"]
        check(cached > r1["usage"]["prompt_tokens"],
              "turn 2 prefilled only its new tokens: %d of %d cached"
              % (cached, r2["usage"]["prompt_tokens"]))
    finally:
        check(sv.stop() == 0, "llama2 server: exit 0")


def api_no_think(models):
    """Qwen3's enable_thinking through chat_template_kwargs, as vLLM and llama-server take it:
    false renders the empty think block (a longer prompt) and answers as nibble chat --no-think."""
    sv = Server(models.short, "--template", "qwen3", "-q")
    try:
        body = chat_body("Once upon a time", 12)
        st1, on = sv.post("/v1/chat/completions", body)
        st2, same = sv.post("/v1/chat/completions",
                            dict(body, chat_template_kwargs={"enable_thinking": True}))
        st3, off = sv.post("/v1/chat/completions",
                           dict(body, chat_template_kwargs={"enable_thinking": False}))
    finally:
        sv.stop()
    want = chat_cli(models.short, ["Once upon a time"], 12, "qwen3", "--no-think")
    p = [r["usage"]["prompt_tokens"] for r in (on, same, off)]
    check(st1 == st2 == st3 == 200 and p[0] == p[1] < p[2] and [content(off)] == want,
          "chat_template_kwargs enable_thinking false: prompt %d -> %d tokens, the reply of "
          "nibble chat --no-think" % (p[0], p[2]))


def api_chatml(tmp):
    """A BPE model with the ChatML template of Qwen2.5 (tests/ref/make_hf.py: random weights, a
    default system prompt, <|im_end|> as an end id): two turns equal to nibble chat's."""
    py = "/usr/bin/python3"
    if subprocess.run([py, "-c", "import numpy"], capture_output=True).returncode:
        print("skip: the ChatML check needs %s with numpy (python3-numpy)" % py)
        return
    hf, nib = os.path.join(tmp, "qwen2"), os.path.join(tmp, "qwen2.nib")
    here = os.path.dirname(os.path.abspath(__file__))
    run([py, os.path.join(here, "..", "ref", "make_hf.py"), "qwen2", hf])
    run([NIBBLE, "convert", "-q", hf, "-o", nib])
    lines = ["Hello there", "How are you?"]
    want = chat_cli(nib, lines, 20)
    sv = Server(nib, "-q")
    try:
        msgs = [{"role": "user", "content": lines[0]}]
        st, r1 = sv.post("/v1/chat/completions", {"messages": msgs, "temperature": 0,
                                                  "max_tokens": 20})
        msgs += [{"role": "assistant", "content": content(r1)},
                 {"role": "user", "content": lines[1]}]
        st2, r2 = sv.post("/v1/chat/completions", {"messages": msgs, "temperature": 0,
                                                   "max_tokens": 20, "stream": False})
        check(st == 200 and st2 == 200 and [content(r1), content(r2)] == want,
              "ChatML (qwen2.5, BPE): two turns equal nibble chat's: %r" % content(r2)[:30])
        check(r2["usage"]["prompt_tokens_details"]["cached_tokens"] >
              r1["usage"]["prompt_tokens"], "ChatML: turn 2 reuses the cache")
    finally:
        sv.stop()


def api_stream(sv, models):
    want = greedy(models.short, "Once upon a time", 30)
    body = {"prompt": "Once upon a time", "max_tokens": 30, "temperature": 0, "stream": True,
            "stream_options": {"include_usage": True}}
    p = subprocess.run(["curl", "-sS", "-N", "-D", "-", "-H", "Content-Type: application/json",
                        "-d", json.dumps(body),
                        "http://127.0.0.1:%d/v1/completions" % sv.port], capture_output=True)
    head, _, raw = p.stdout.partition(b"\r\n\r\n")
    check(b"text/event-stream" in head and b"chunked" in head.lower(),
          "curl: the stream is chunked text/event-stream")
    ev = sse_events(raw)
    check(ev[-1] == "[DONE]", "curl: the stream ends with data: [DONE]")
    usage = json.loads(ev[-2])
    check(usage["choices"] == [] and usage["usage"]["completion_tokens"] == 30,
          "curl: include_usage sends a last chunk with the usage")
    check(stream_text(ev) == want, "curl: the streamed text equals nibble generate's")
    fin = [json.loads(e)["choices"][0]["finish_reason"] for e in ev[:-2]]
    check(fin[-1] == "length" and all(f is None for f in fin[:-1]),
          "curl: only the last chunk has a finish_reason")
    body = chat_body("Once upon a time", 30, stream=True)
    st, _, raw = sv.request("POST", "/v1/chat/completions", body)
    ev = sse_events(raw)
    first = json.loads(ev[0])["choices"][0]["delta"]
    check(first.get("role") == "assistant" and
          stream_text(ev) == chat_cli(models.short, ["Once upon a time"], 30)[0],
          "chat stream: role first, then the text nibble chat gives")


def api_stops(sv, models):
    full = greedy(models.short, "Once upon a time", 60)
    cut = full.index("Lily")
    st, r = sv.post("/v1/completions", {"prompt": "Once upon a time", "max_tokens": 60,
                                        "temperature": 0, "stop": ["zzz", "Lily"]})
    check(r["choices"][0]["text"] == full[:cut] and r["choices"][0]["finish_reason"] == "stop",
          "stop string: the text ends before it, finish_reason stop")
    st, _, raw = sv.request("POST", "/v1/completions",
                            {"prompt": "Once upon a time", "max_tokens": 60, "temperature": 0,
                             "stop": "Lily", "stream": True})
    check(stream_text(sse_events(raw)) == full[:cut], "stop string in a stream: held back")


def api_errors(sv, models):
    cases = [
        ("malformed JSON", b'{"messages": [', 400, None, "JSON"),
        ("not an object", b'[1]', 400, None, "object"),
        ("invalid UTF-8", b'{"messages":[{"role":"user","content":"\xff\xfe"}]}', 400, None,
         "UTF-8"),
        ("temperature a string", {"messages": [{"role": "user", "content": "x"}],
                                  "temperature": "hot"}, 400, "temperature", "number"),
        ("max_tokens 0", chat_body("x", max_tokens=0), 400, "max_tokens", "between"),
        ("n 2", chat_body("x", n=2), 400, "n", "n must be 1"),
        ("stream a number", chat_body("x", stream=1), 400, "stream", "true or false"),
        ("messages missing", {"model": "x"}, 400, "messages", "messages"),
        ("content a number", {"messages": [{"role": "user", "content": 5}]}, 400,
         "messages[0].content", "string"),
        ("an image part", {"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "x"}}]}]}, 400, "messages[0].content",
         "text parts"),
        ("role tool", {"messages": [{"role": "tool", "content": "x"}]}, 400, "messages[0].role",
         "not supported"),
        ("ends with assistant", {"messages": [{"role": "user", "content": "a"},
                                              {"role": "assistant", "content": "b"}]}, 400,
         "messages", "last message"),
        ("stop too long", chat_body("x", stop="y" * 40), 400, "stop", "bytes"),
        ("prompt longer than the context", {"prompt": "Once upon a time " * 200}, 400, "prompt",
         "context"),
    ]
    for what, body, status, param, words in cases:
        path = "/v1/completions" if what.startswith("prompt") else "/v1/chat/completions"
        st, r = sv.post(path, body)
        err = r.get("error", {}) if isinstance(r, dict) else {}
        check(st == status and err.get("param") == param and words in err.get("message", "")
              and err.get("type") == "invalid_request_error",
              "%s: %d, param %s: %s" % (what, st, err.get("param"), err.get("message")))
    st, r = sv.post("/v1/chat/completions", dict(chat_body("Once", 5), foo={"bar": 1},
                                                  model="gpt-4o", user="me"))
    check(st == 200, "unknown fields and any model name are accepted")
    st, _, _ = sv.request("GET", "/v1/nothing")
    check(st == 404, "an unknown route: 404")
    st, _, _ = sv.request("GET", "/v1/chat/completions")
    check(st == 405, "GET on a POST route: 405")
    big = b'{"prompt": "' + b"a" * (10 << 20) + b'"}'
    p = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-H",
                        "Content-Type: application/json", "--data-binary", "@-",
                        "http://127.0.0.1:%d/v1/completions" % sv.port], input=big,
                       capture_output=True)
    check(p.stdout == b"413", "a 10 MB body: 413 (%s)" % p.stdout.decode())
    check(sv.wait_idle(), "no slot is left busy")


def api_auth(models, tmp):
    keyfile = os.path.join(tmp, "key")
    open(keyfile, "w").write("sk-test-123\n")
    sv = Server(models.short, "--api-key-file", keyfile, "-q", key=None)
    try:
        st, r = sv.post("/v1/chat/completions", chat_body("x", 3))
        check(st == 401 and r["error"]["code"] == "invalid_api_key", "no key: 401")
        st, r = sv.post("/v1/chat/completions", chat_body("x", 3),
                        headers={"Authorization": "Bearer sk-test-12"})
        check(st == 401, "a wrong key: 401")
        st, _, _ = sv.request("GET", "/v1/models", headers={"Authorization": "Bearer sk-test-123"})
        check(st == 200, "the right key: 200")
        st, _, _ = sv.request("GET", "/health")
        check(st == 200, "/health needs no key")
    finally:
        sv.stop()
    p = subprocess.run([NIBBLE, "serve", "-m", models.short, "--host", "0.0.0.0", "--port", "0"],
                       capture_output=True, text=True, timeout=30)
    check(p.returncode == 1 and "--no-auth" in p.stderr,
          "0.0.0.0 without a key is refused: %s" % p.stderr.strip())


def api_cors(models):
    sv = Server(models.short, "--cors", "https://app.example", "-q")
    try:
        st, h, _ = sv.request("OPTIONS", "/v1/chat/completions",
                              headers={"Origin": "https://app.example",
                                       "Access-Control-Request-Method": "POST"})
        check(st == 204 and h.get("Access-Control-Allow-Origin") == "https://app.example"
              and "Authorization" in h.get("Access-Control-Allow-Headers", ""),
              "CORS preflight: 204 with the origin")
    finally:
        sv.stop()
    sv = Server(models.short, "-q")
    try:
        st, h, _ = sv.request("GET", "/v1/models", headers={"Origin": "https://app.example"})
        check("Access-Control-Allow-Origin" not in h, "CORS is off by default")
    finally:
        sv.stop()


def section_api(tmp):
    models = Models(tmp)
    sv = Server(models.short, "--parallel", "2", "-q")
    try:
        api_basics(sv, models)
        api_chat(sv, models)
        api_stream(sv, models)
        api_stops(sv, models)
        api_errors(sv, models)
    finally:
        check(sv.stop() == 0, "SIGTERM: exit 0")
    api_llama2(models)
    api_no_think(models)
    api_chatml(tmp)
    api_auth(models, tmp)
    api_cors(models)


# ---- openai ----

def openai_module():
    """A python with the openai package: a venv at $SERVE_VENV, made and filled once."""
    venv = os.environ.get("SERVE_VENV") or os.path.join(tempfile.gettempdir(), "nibble-serve-venv")
    py = os.path.join(venv, "bin", "python")

    def usable():
        return os.path.exists(py) and subprocess.run(
            [py, "-c", "import openai"], capture_output=True).returncode == 0

    if not usable():
        if not os.path.exists(py):
            subprocess.run([sys.executable, "-m", "venv", venv], capture_output=True)
        if os.path.exists(py):
            subprocess.run([py, "-m", "pip", "install", "-q", "openai"], capture_output=True,
                           timeout=600)
    return py if usable() else None


def section_openai(tmp):
    py = openai_module()
    if not py:
        print("skipped: the openai package could not be installed in a venv (pip, network)")
        sys.exit(77)
    models = Models(tmp)
    keyfile = os.path.join(tmp, "key")
    open(keyfile, "w").write("sk-local\n")
    sv = Server(models.short, "--parallel", "2", "--api-key-file", keyfile, "-q")
    try:
        want = {"chat": chat_cli(models.short, ["Once upon a time"], 30)[0],
                "completion": greedy(models.short, "Once upon a time", 30)}
        script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "openai_client.py")
        p = subprocess.run([py, script, "http://127.0.0.1:%d/v1" % sv.port, "sk-local",
                            json.dumps(want)], capture_output=True, text=True, timeout=300)
        sys.stdout.write(p.stdout)
        sys.stderr.write(p.stderr)
        check(p.returncode == 0, "the openai client's checks")
    finally:
        check(sv.stop() == 0, "SIGTERM: exit 0")


# ---- concurrency ----

PROMPTS = ["Once upon a time", "The cat", "Lily and Tom went to the park", "One day",
           "The sun was hot and the birds", "A little boy named Tim", "She smiled", "Max had"]


def ask(sv, i, stream, out):
    body = {"prompt": PROMPTS[i], "max_tokens": 60 + 10 * i, "seed": 1000 + i,
            "temperature": 0 if i % 2 else 0.9, "ignore_eos": i % 3 == 0}
    try:
        if stream:
            body["stream"] = True
            st, _, raw = sv.request("POST", "/v1/completions", body)
            out[i] = stream_text(sse_events(raw)) if st == 200 else "status %d" % st
        else:
            st, r = sv.post("/v1/completions", body)
            out[i] = r["choices"][0]["text"] if st == 200 else "status %d" % st
    except Exception as e:  # noqa: BLE001 - reported as a mismatch
        out[i] = "error %r" % e


def section_concurrency(tmp):
    models = Models(tmp)
    sv = Server(models.long, "--parallel", "4", "--queue", "8", "-q")
    try:
        alone = [None] * 8
        for i in range(8):
            ask(sv, i, False, alone)
        for stream in (False, True):
            got = [None] * 8
            th = [threading.Thread(target=ask, args=(sv, i, stream, got)) for i in range(8)]
            for t in th:
                t.start()
            for t in th:
                t.join()
            same = sum(a == b for a, b in zip(alone, got))
            check(same == 8, "8 clients on 4 slots (%s): %d of 8 replies equal to their "
                  "single-client replies" % ("streamed" if stream else "whole", same))
            for i in range(8):
                if alone[i] != got[i]:
                    print("  %d alone: %r\n  %d batched: %r" % (i, alone[i][:80], i, got[i][:80]))
        check(sv.wait_idle(), "the queue drains: no slot busy, nothing queued")
        m = sv.metrics()
        check(m["nibble_jobs_total"] == 24 and m["nibble_generated_tokens_total"] > 0,
              "/metrics counts the jobs and tokens: %d jobs, %d tokens"
              % (m["nibble_jobs_total"], m["nibble_generated_tokens_total"]))
    finally:
        check(sv.stop() == 0, "SIGTERM: exit 0")
    queue_full(models)


def queue_full(models):
    sv = Server(models.long, "--parallel", "1", "--queue", "1", "-q")
    try:
        long_body = {"prompt": "Once", "max_tokens": 3000, "ignore_eos": True, "stream": True}
        socks = [open_stream(sv, long_body) for _ in range(2)]  # one runs, one waits
        time.sleep(0.5)
        st, r = sv.post("/v1/completions", {"prompt": "Hi", "max_tokens": 3})
        check(st == 503 and r["error"]["code"] == "server_busy",
              "slots and queue full: 503 server_busy")
        for s in socks:
            s.close()
        check(sv.wait_idle(), "closed streams free the slot and the queue")
        st, r = sv.post("/v1/completions", {"prompt": "Hi", "max_tokens": 3})
        check(st == 200, "then a request is served")
    finally:
        sv.stop()


# ---- faults ----

def open_stream(sv, body):
    """A raw socket that sent a streamed request (the caller reads or closes it)."""
    s = socket.create_connection(("127.0.0.1", sv.port))
    data = json.dumps(body).encode()
    s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: %d\r\n\r\n%s" % (len(data), data))
    return s


def read_some(s, n):
    got = b""
    while len(got) < n:
        b = s.recv(4096)
        if not b:
            break
        got += b
    return got


def fault_killed_client(sv):
    body = {"prompt": "Once", "max_tokens": 3000, "ignore_eos": True, "stream": True}
    s = open_stream(sv, body)
    read_some(s, 2000)
    other = [None]
    t = threading.Thread(target=lambda: other.__setitem__(0, sv.post(
        "/v1/completions", {"prompt": "Once upon a time", "max_tokens": 20, "temperature": 0})))
    t.start()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    s.close()  # a reset, as when the client is killed
    t.join()
    check(other[0][0] == 200, "another client is served beside the killed one")
    t0 = time.time()
    check(sv.wait_idle(5), "the killed client's slot is freed (%.2fs)" % (time.time() - t0))


def fault_slow_header(sv):
    s = socket.create_connection(("127.0.0.1", sv.port))
    t0 = time.time()
    closed = False
    for ch in b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 60:
        try:
            s.send(bytes([ch]))
            s.settimeout(1)
            if s.recv(1) == b"":
                closed = True
                break
        except socket.timeout:
            continue
        except OSError:
            closed = True
            break
    dt = time.time() - t0
    check(closed and dt < 8, "a header sent a byte a second is cut off (after %.1fs)" % dt)
    st, _, _ = sv.request("GET", "/health")
    check(st == 200, "the server answers meanwhile")


def fault_idle(sv):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, 1200)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    n = min(1000, want - 100)
    socks = []
    for _ in range(n):
        try:
            socks.append(socket.create_connection(("127.0.0.1", sv.port), timeout=5))
        except OSError:
            break
    time.sleep(1)
    threads = len(os.listdir("/proc/%d/task" % sv.p.pid))
    fds = len(os.listdir("/proc/%d/fd" % sv.p.pid))
    check(len(socks) == n and threads < 64 + 20 and fds < 64 + 60,
          "%d idle connections: the server holds %d threads, %d fds" % (len(socks), threads, fds))
    time.sleep(3)  # --timeout 2 closes the idle ones it accepted
    for s in socks:
        s.close()
    st, _, _ = sv.request("GET", "/health")
    check(st == 200, "after the idle connections time out, requests are served")


def fault_sigterm(models):
    sv = Server(models.long, "--parallel", "2", "-q")
    body = {"prompt": "Once", "max_tokens": 3000, "ignore_eos": True, "stream": True}
    s = open_stream(sv, body)
    got = read_some(s, 1000)
    rc = sv.stop(signal.SIGTERM)
    s.settimeout(10)
    while True:
        b = s.recv(65536)
        if not b:
            break
        got += b
    tail = got.decode(errors="replace")
    check(rc == 0, "SIGTERM mid-stream: exit 0")
    check(tail.endswith("data: [DONE]\n\n\r\n0\r\n\r\n") and "shutting down" in tail,
          "the stream ends with a final event and [DONE]: %r" % tail[-160:])


def section_faults(tmp):
    models = Models(tmp)
    sv = Server(models.long, "--parallel", "2", "--request-timeout", "3", "--timeout", "2",
                "--max-connections", "64", "-q")
    try:
        fault_killed_client(sv)
        fault_slow_header(sv)
        fault_idle(sv)
        check(sv.wait_idle(), "no slot is left busy")
    finally:
        check(sv.stop() == 0, "SIGTERM: exit 0")
    fault_sigterm(models)


# ---- load ----

def section_load(tmp):
    models = Models(tmp)
    sv = Server(models.short, "--parallel", "4", "--queue", "64", "-q")
    n, workers, lat, errors = 200, 8, [], []
    lock = threading.Lock()
    todo = list(range(n))

    def worker():
        c = http.client.HTTPConnection("127.0.0.1", sv.port, timeout=60)
        while True:
            with lock:
                if not todo:
                    break
                i = todo.pop()
            body = json.dumps({"prompt": PROMPTS[i % 8], "max_tokens": 32, "seed": i})
            t0 = time.time()
            try:
                c.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
                r = c.getresponse()
                r.read()
                ok = r.status == 200
            except OSError as e:
                ok = False
                c = http.client.HTTPConnection("127.0.0.1", sv.port, timeout=60)
                errors.append(repr(e))
            with lock:
                lat.append(time.time() - t0)
                if not ok:
                    errors.append(i)
        c.close()

    try:
        t0 = time.time()
        th = [threading.Thread(target=worker) for _ in range(workers)]
        for t in th:
            t.start()
        for t in th:
            t.join()
        dt = time.time() - t0
        lat.sort()
        pct = lambda p: lat[min(len(lat) - 1, int(p / 100 * len(lat)))] * 1000  # noqa: E731
        m = sv.metrics()
        print("load: %d requests, %d clients, 4 slots: %.1f requests/s, %.0f tokens/s; latency "
              "p50 %.0f ms, p90 %.0f ms, p99 %.0f ms, max %.0f ms; %d errors"
              % (n, workers, n / dt, m["nibble_generated_tokens_total"] / dt, pct(50), pct(90),
                 pct(99), lat[-1] * 1000, len(errors)))
        check(not errors and len(lat) == n, "load: zero errors")
        check(sv.wait_idle(), "load: the queue drains")
    finally:
        check(sv.stop() == 0, "SIGTERM: exit 0")


def main():
    section = sys.argv[1] if len(sys.argv) > 1 else ""
    fn = globals().get("section_" + section)
    if not fn:
        print("FAIL: no section '%s'" % section, file=sys.stderr)
        return 1
    if not shutil.which("curl") and section == "api":
        print("skipped: curl is not installed")
        return 77
    tmp = tempfile.mkdtemp(prefix="nibble-serve-")
    try:
        fn(tmp)
    except Exception as e:  # noqa: BLE001 - a crash is a failure, with its trace
        import traceback
        traceback.print_exc()
        fail("%s: %r" % (section, e))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if failures:
        print("%s: %d failure(s)" % (section, len(failures)), file=sys.stderr)
        return 1
    print("%s: all checks passed" % section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
