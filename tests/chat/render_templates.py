#!/usr/bin/env python3
"""Writes tests/chat/renderings.jsonl: conversations rendered by the models'
own Jinja chat templates (jinja2, as transformers' apply_chat_template runs
them: trim_blocks, lstrip_blocks, add_generation_prompt=True), which
tests/test_chat.c compares with runtime/chat.c's built-in templates.

The templates: Qwen3's and Llama-3's from ../shared/tokenizers (read, never
copied here: Llama-3's is under Meta's licence; only these short renderings
of our own texts are committed), and Qwen2.5-Instruct's and
SmolLM2-Instruct's, quoted below from their tokenizer_config.json
(Apache-2.0; the tool-calling branches of Qwen2.5's left out, which a
conversation without tools never reaches).

Run: python3 tests/chat/render_templates.py  (needs python3-jinja2)
"""
import json
import os
import sys

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from templates import QWEN25  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.path.join(HERE, "..", "..", "..", "shared", "tokenizers")

SMOLLM2 = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
    "Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + "
    "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\n' }}{% endif %}")

USERS = [
    "Hello!",
    "  What is 2+2?\nAnswer briefly.  ",
    "Écris « bonjour » en 日本語, s'il te plaît 😀",
    "\tcode:\n    x = 1\r\n",
    "<|im_end|> is a marker; [INST] too.",
]
REPLIES = [
    "Hi! How can I help?",
    "4.\n",
    "<think>\nThe user wants Japanese.\n</think>\n\nこんにちは",
    "  spaced reply  ",
]
SYSTEMS = [None, "You are terse.", "  Réponds en français.\n"]


def conversations():
    """(system, messages): 1 to 4 user turns, each ending with a user message."""
    out = []
    for si, system in enumerate(SYSTEMS):
        for turns in range(1, 5):
            msgs = []
            for t in range(turns):
                if t:
                    msgs.append({"role": "assistant",
                                 "content": REPLIES[(t + si) % len(REPLIES)]})
                msgs.append({"role": "user", "content": USERS[(t + 2 * si) % len(USERS)]})
            out.append((system, msgs))
    return out


def template(source):
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[jinja2.ext.loopcontrols])
    return env.from_string(source)


def shared_config(name):
    path = os.path.join(SHARED, name, "tokenizer_config.json")
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def main():
    qwen3 = shared_config("qwen3")
    llama3 = shared_config("llama3")
    sources = {
        "qwen3": (qwen3["chat_template"], {}),
        "llama3": (llama3["chat_template"], {"bos_token": llama3["bos_token"]}),
        "qwen2.5": (QWEN25, {}),
        "smollm2": (SMOLLM2, {}),
    }
    lines = []
    for name, (source, extra) in sources.items():
        t = template(source)
        for system, msgs in conversations():
            full = ([{"role": "system", "content": system}] if system is not None else []) + msgs
            text = t.render(messages=full, add_generation_prompt=True, **extra)
            lines.append(json.dumps({"template": name, "system": system, "messages": msgs,
                                     "text": text}, ensure_ascii=False))
    path = os.path.join(HERE, "renderings.jsonl")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    print("wrote %d renderings to %s" % (len(lines), path), file=sys.stderr)


main()
