#!/usr/bin/env python3
"""The official openai client against a running nibble serve (serve_test.py openai).

  openai_client.py BASE_URL KEY WANT_JSON

WANT_JSON holds the greedy replies nibble chat and nibble generate give for
"Once upon a time" with 30 tokens: {"chat": ..., "completion": ...}.
"""
import json
import sys

import openai
from openai import OpenAI

base, key, want = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
client = OpenAI(base_url=base, api_key=key, max_retries=0)
failures = 0


def check(cond, msg):
    global failures
    print(("ok: " if cond else "FAIL: ") + msg, flush=True)
    failures += not cond


msgs = [{"role": "user", "content": "Once upon a time"}]
r = client.chat.completions.create(model="nibble", messages=msgs, temperature=0, max_tokens=30)
check(r.choices[0].message.content == want["chat"] and r.choices[0].finish_reason == "length"
      and r.usage.completion_tokens == 30,
      "openai: chat equals nibble chat greedy: %r" % r.choices[0].message.content[:50])

text, usage = "", None
for ch in client.chat.completions.create(model="nibble", messages=msgs, temperature=0,
                                         max_tokens=30, stream=True,
                                         stream_options={"include_usage": True}):
    if ch.choices:
        text += ch.choices[0].delta.content or ""
    if ch.usage:
        usage = ch.usage
check(text == want["chat"] and usage and usage.completion_tokens == 30,
      "openai: streamed chat, with the usage at the end")

r = client.completions.create(model="nibble", prompt="Once upon a time", max_tokens=30,
                              temperature=0)
check(r.choices[0].text == want["completion"], "openai: completion equals nibble generate greedy")

text = "".join(c.choices[0].text for c in client.completions.create(
    model="nibble", prompt="Once upon a time", max_tokens=30, temperature=0, stream=True))
check(text == want["completion"], "openai: streamed completion")

ids = [m.id for m in client.models.list()]
check(len(ids) == 1, "openai: models.list: %s" % ids)

cut = want["chat"].find("Lily")
r = client.chat.completions.create(model="nibble", messages=msgs, temperature=0, max_tokens=30,
                                   stop=["Lily", "zzz"])
check(cut > 0 and r.choices[0].message.content == want["chat"][:cut]
      and r.choices[0].finish_reason == "stop", "openai: stop strings")

r = client.chat.completions.create(model="nibble", messages=msgs, max_tokens=5, seed=7,
                                   temperature=0.9)
r2 = client.chat.completions.create(model="nibble", messages=msgs, max_tokens=5, seed=7,
                                    temperature=0.9)
check(r.usage.completion_tokens <= 5 and r.choices[0].message.content ==
      r2.choices[0].message.content, "openai: max_tokens 5; the same seed, the same reply")

try:
    client.chat.completions.create(model="nibble", messages=msgs, n=2)
    check(False, "openai: n=2 should be refused")
except openai.BadRequestError as e:
    check(e.status_code == 400 and "n must be 1" in str(e), "openai: n=2 is a BadRequestError")

try:
    OpenAI(base_url=base, api_key="wrong", max_retries=0).models.list()
    check(False, "openai: a wrong key should be refused")
except openai.AuthenticationError as e:
    check(e.status_code == 401, "openai: a wrong key is an AuthenticationError (401)")

sys.exit(1 if failures else 0)
