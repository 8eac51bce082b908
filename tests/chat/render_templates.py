#!/usr/bin/env python3
"""Writes tests/chat/renderings.jsonl: conversations rendered by the models'
own Jinja chat templates (jinja2, as transformers' apply_chat_template runs
them: trim_blocks, lstrip_blocks, loopcontrols, tools=None,
add_generation_prompt=True), which tests/test_chat.c compares with
runtime/chat.c's built-in templates.

The templates, by where they come from:
- quoted in tests/chat/templates.py and here (their licences allow it):
  Qwen2.5-Instruct's (Apache-2.0; without the tool branches, which a
  conversation without tools never reaches), SmolLM2-Instruct's
  (Apache-2.0), Phi-3.5-mini-instruct's (MIT), Mistral-Small-24B-Instruct-
  2501's (Apache-2.0): always rendered;
- read from ../shared/tokenizers (never copied here): Qwen3's, also with
  enable_thinking=False, and Llama-3's (Meta's licence);
- read from a folder of .jinja files (never copied here: Gemma's terms and
  Meta's Llama licence), given as --templates DIR or in the environment as
  NIBBLE_CHAT_TEMPLATES; the files as llama.cpp's models/templates names
  them: google-gemma-2-2b-it.jinja, google-gemma-3-4b-it.jinja,
  meta-llama-Llama-3.1-8B-Instruct.jinja,
  meta-llama-Llama-3.2-3B-Instruct.jinja (each the model's
  tokenizer_config.json "chat_template", unescaped).
Only the renderings of our own texts are committed. A template whose source
is absent keeps the renderings renderings.jsonl already has for it (each
line names its source), so the file regenerates without the extra files.

Gemma 2's template refuses a system message: its renderings are of the
conversations without one. strftime_now (Llama-3.2's date, Mistral's
default system prompt) renders the fixed DATE, which each such line carries
for the C side.

Run: python3 tests/chat/render_templates.py [--templates DIR]  (needs python3-jinja2)
"""
import datetime
import json
import os
import sys

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from templates import MISTRAL_V7, PHI35, QWEN25  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.path.join(HERE, "..", "..", "..", "shared", "tokenizers")
OUT = os.path.join(HERE, "renderings.jsonl")
DATE = datetime.datetime(2025, 3, 7, 12, 0)

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
    env.globals["strftime_now"] = DATE.strftime
    return env.from_string(source)


def shared_config(name):
    path = os.path.join(SHARED, name, "tokenizer_config.json")
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def folder_file(folder, name):
    path = os.path.join(folder, name) if folder else ""
    if not folder or not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        return f.read()


def sources(folder):
    """source name -> (our template, Jinja text or None when absent, variables, extra fields)."""
    qwen3 = shared_config("qwen3")
    llama3 = shared_config("llama3")
    dated = {"date": DATE.strftime("%Y-%m-%d")}
    return {
        "qwen3": ("qwen3", qwen3 and qwen3["chat_template"], {}, {}),
        "qwen3-no-think": ("qwen3", qwen3 and qwen3["chat_template"],
                           {"enable_thinking": False}, {"no_think": True}),
        "llama3": ("llama3", llama3 and llama3["chat_template"],
                   {"bos_token": "<|begin_of_text|>"}, {"bos": "<|begin_of_text|>"}),
        "qwen2.5": ("qwen2.5", QWEN25, {}, {}),
        "smollm2": ("smollm2", SMOLLM2, {}, {}),
        "phi3.5": ("phi3", PHI35, {"eos_token": "<|endoftext|>"}, {}),
        "mistral-small-2501": ("mistral-v7", MISTRAL_V7, {"bos_token": "<s>", "eos_token": "</s>"},
                               dict(dated, bos="<s>", eos="</s>")),
        "gemma-2": ("gemma", folder_file(folder, "google-gemma-2-2b-it.jinja"),
                    {"bos_token": "<bos>"}, {"bos": "<bos>"}),
        "gemma-3": ("gemma", folder_file(folder, "google-gemma-3-4b-it.jinja"),
                    {"bos_token": "<bos>"}, {"bos": "<bos>"}),
        "llama3.1": ("llama3.1", folder_file(folder, "meta-llama-Llama-3.1-8B-Instruct.jinja"),
                     {"bos_token": "<|begin_of_text|>"}, {"bos": "<|begin_of_text|>"}),
        "llama3.2": ("llama3.2", folder_file(folder, "meta-llama-Llama-3.2-3B-Instruct.jinja"),
                     {"bos_token": "<|begin_of_text|>"}, dict(dated, bos="<|begin_of_text|>")),
    }


def render(source, name, text, variables, extra):
    lines = []
    t = template(text)
    for system, msgs in conversations():
        if source == "gemma-2" and system is not None:
            continue  # "System role not supported"
        full = ([{"role": "system", "content": system}] if system is not None else []) + msgs
        out = t.render(messages=full, tools=None, add_generation_prompt=True, **variables)
        case = {"template": name, "source": source, "system": system, "messages": msgs}
        case.update(extra)
        case["text"] = out
        lines.append(json.dumps(case, ensure_ascii=False))
    return lines


def committed():
    """The lines renderings.jsonl has now, by source."""
    kept = {}
    if os.path.exists(OUT):
        with open(OUT, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    kept.setdefault(json.loads(line).get("source"), []).append(line.rstrip("\n"))
    return kept


def main():
    folder = os.environ.get("NIBBLE_CHAT_TEMPLATES")
    if len(sys.argv) == 3 and sys.argv[1] == "--templates":
        folder = sys.argv[2]
    elif len(sys.argv) != 1:
        sys.exit("usage: render_templates.py [--templates DIR]")
    kept = committed()
    lines = []
    for source, (name, text, variables, extra) in sources(folder).items():
        if text is None:
            print("%s: no template here, keeping its %d committed renderings"
                  % (source, len(kept.get(source, []))), file=sys.stderr)
            lines += kept.get(source, [])
        else:
            lines += render(source, name, text, variables, extra)
    with open(OUT, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    print("wrote %d renderings to %s" % (len(lines), OUT), file=sys.stderr)


main()
