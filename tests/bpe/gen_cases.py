#!/usr/bin/env python3
"""Writes the oracle cases of tests/test_bpe.c with the Hugging Face
`tokenizers` library (pip install tokenizers): a development tool, its
output is committed so that CI needs no pip.

    python3 tests/bpe/gen_cases.py [--shared ../shared] [--only NAME...]

For each tokenizer: NAME.cases.jsonl, one JSON object per line:
    {"text", "ids", "ids_special", "decode", "decode_skip"}
ids = encode(text, add_special_tokens=False); ids_special the same with
True, when it differs; decode = decode(ids, skip_special_tokens=False) when
it is not the text itself (absent: decode(encode(text)) == text);
decode_skip = decode(ids) when it differs from decode. Or, without "text",
ids chosen at random (split characters, stray bytes, special tokens) and
both decodes. A decode the library panics on (Strip with stop > 0 on an
empty text) is marked no_decode or no_decode_skip instead.
The real tokenizers (qwen3, llama3, mistral from SHARED/tokenizers) also
get NAME.files.json: the number of ids and their FNV-1a hash for whole
texts of SHARED/data, which stay out of the repository, and for a text of
every code point ("@unicode", one encode per line).

The small tokenizers NAME.json are trained here, one per pipeline that
nibble reads, and written once: they are regenerated only when missing
(or with --retrain), so that their cases stay comparable across runs."""
import argparse
import json
import os
import random
import sys

os.environ["RUST_BACKTRACE"] = "0"  # the panics below are expected
from tokenizers import Tokenizer, models, pre_tokenizers, trainers  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
DATA = os.path.join(ROOT, "tests", "data")

MULTILINGUAL = [
    "机器学习是人工智能的一个分支。今天天气很好，我们去公园散步吧！",
    "日本語のテキストも少し入れておきます。東京は大きな都市です。",
    "한국어 문장도 있습니다. 서울은 한국의 수도입니다.",
    "اللغة العربية تكتب من اليمين إلى اليسار، وهي جميلة جداً.",
    "עברית היא שפה שמית. שלום עולם!",
    "Русский язык: съешь же ещё этих мягких французских булок, да выпей чаю.",
    "Ελληνικά: Γειά σου κόσμε, τι κάνεις σήμερα;",
    "हिन्दी भारत की एक प्रमुख भाषा है। नमस्ते दुनिया!",
    "ภาษาไทยไม่มีการเว้นวรรคระหว่างคำ สวัสดีครับ",
    "Tiếng Việt có nhiều dấu: Xin chào thế giới, hôm nay trời đẹp quá!",
    "Emoji: 😀 👍🏽 👨‍👩‍👧‍👦 🇫🇷 🇯🇵 ❤️ 🏳️‍🌈 and more 🎉🎉",
    "Café naïve résumé façade coöperate Ångström Straße ﬁne ½ ① ™",
    "def main(argv):\n\tfor i in range(10):\n\t\tprint(i, argv[i])  # comment\n    return 0\n",
    "int x = 12345678; float y = 3.14159e-10; // C code\r\nx += 0xDEADBEEF;",
]

TEXTS = [
    "", " ", "  ", "\n", "\t", "\r\n", "a", "A", "0", "Hello", "Hello world", " Hello world",
    "Hello world ", "  Hello  world  ", "hello\nworld\n", "Hello, world! How are you?",
    "The quick brown fox jumps over the lazy dog.", "I'm sure you're right; they've gone, we'd go.",
    "I'M SURE YOU'RE RIGHT; THEY'VE GONE, WE'D GO, IT'S HE'LL",
    "don't DON'T Don'T dOn't 's 'S 'Ll 'lL", "It\u017fs the \u017fame \u2019s curly\u2019s",
    "1", "12", "123", "1234", "12345", "1234567890", "3.14159265358979", "1,000,000.00",
    "Call 555-0100 or +1 (800) 555-0199 before 2024-12-31T23:59:59Z", "٣٤٥ ௧௨௩ ¹²³ Ⅻ ½",
    "x" * 1000, "ab" * 300, "The" + " " * 40 + "end", "tabs\t\t\tand\t spaces \t\n",
    "line one\nline two\r\nline three\rline four\n\n\nend", "\n\n\n", " \n \n ", "\u00a0nbsp\u00a0",
    "\u3000ideographic space\u3000", "zero\u200bwidth\u200cjoiners\u200d", "\ufeffBOM at start",
    "soft\u00adhyphen", "e\u0301 e\u0300 a\u0308 o\u0302 n\u0303 (decomposed)",
    "\u00e9 \u00e8 \u00e4 \u00f4 \u00f1 (precomposed)", "Vie\u0323\u0302t Nam (decomposed)",
    "\u1100\u1161\u11a8 \u110b\u1161\u11ab (Hangul jamo)", "a\u0301\u0302\u0303\u0304\u0305 stacked",
    "\u0915\u094d\u0937 \u0924\u094d\u0930 \u091c\u094d\u091e", "\ufb01\ufb02 \u2460\u2461 \u2122 \u33a1",
    "\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466", "\U0001f44d\U0001f3fd\U0001f44d\U0001f3ff",
    "\U0001f1fa\U0001f1f8\U0001f1ec\U0001f1e7\U0001f1e9\U0001f1ea", "\u2764\ufe0f\u2764\u2764\ufe0e",
    "\U0001f600\U0001f603\U0001f604\U0001f601\U0001f606\U0001f605", "\U00010348 \U0001d11e \U0002070e",
    "\ue000\uf8ff private use \U000f0000", "\u0378\u0379 unassigned \U000e0001", "\ufffd replacement \ufffd",
    "\x00nul\x01\x02\x1b[0m\x7f", "<|endoftext|>", "<s>", "</s>", "<unk>", "<0x0A>", "\u2581",
    "\u2581\u2581hello", "\u0120", "\u0120\u0120", "\u010a", "Ġhello Ċ", "[INST] hi [/INST]",
    "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n", "<|im_start|>", "<|im_start", "<|",
    "<think>\nok\n</think>", "a<|endoftext|>b", " <|endoftext|> ", "<|endoftext|><|endoftext|>",
    "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>",
    "https://example.org/path?q=1&r=2#frag", "user@example.com", "$ ls -la | grep foo > out.txt 2>&1",
    "{\"a\": [1, 2, {\"b\": null}], \"c\": \"\\u00e9\"}", "<html><body class=\"x\">&amp;</body></html>",
    "    indented code\n        more\n", "!!!???...,,,;;;:::", "--- *** ___ ~~~ ===",
    "(((nested)))[[[brackets]]]{{{braces}}}", "C'est l'été, n'est-ce pas ? J'ai dit « oui ».",
    "Ich weiß nicht, ob Größe zählt — Übermäßig!", "¿Qué tal? ¡Muy bien! Año, niño, pingüino.",
    "Mixed日本語and English文字列123数字", "中文，标点。“引号”（括号）！", "Привет, мир! 123 ёЁ",
    "Ω≈ç√∫˜µ≤≥÷ åß∂ƒ©˙∆˚¬…æ", "\u202eright-to-left override\u202c", "A\u030a \u212b \u00c5",
    "\u0130stanbul \u0131\u0049 i\u0307", "ﬀ ﬃ ﬄ ﬅ ﬆ", "ǅ ǈ ǋ ǲ titlecase", "Ⅰ Ⅱ Ⅲ ⅰ ⅱ ⅲ",
]


def lines_of(path, k, rng, min_len=20):
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        lines = [l.rstrip("\n") for l in f if len(l) > min_len]
    return rng.sample(lines, min(k, len(lines)))


def long_line(path, n):
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        lines = [l.strip() for l in f if l.strip()]
    return [" ".join(lines[:n])]


POOLS = [
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
    "0123456789", " \t\n\r", "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~",
    "éèàùâêîôûçñäöüßÅØÆœ", "的一是不了人我在有他这为之大来以个中上们", "あいうえおかきくけこアイウエオ",
    "가나다라마바사아자차카타파하", "абвгдеёжзийклмнопрстуфхцчшщъыьэюя", "αβγδεζηθικλμνξοπρστυφχψω",
    "ابتثجحخدذرزسشصضطظعغفقكلمنهوي", "\u0301\u0300\u0308\u0302\u0303\u200d\ufe0f",
    "😀😃😄😁👍🏽🇫🇷🎉❤", "\u2581\u0120\u010a", "’“”…—–•·€£¥",
]


def random_text(rng):
    n = rng.choice([1, 2, 3, 5, 8, 13, 21, 40])
    out = []
    for _ in range(n):
        pool = rng.choice(POOLS)
        out.append("".join(rng.choice(pool) for _ in range(rng.choice([1, 1, 2, 3, 6]))))
        if rng.random() < 0.5:
            out.append(" ")
    return "".join(out)


def special_texts(tok, rng, k=10):
    """Texts around the tokenizer's added tokens: inside words, beside
    spaces, cut short, doubled."""
    added = sorted(tok.get_added_tokens_decoder().items())
    picks = [a.content for _, a in added]
    if len(picks) > k:
        picks = picks[:4] + rng.sample(picks[4:], k - 4)
    out = []
    for c in picks:
        out += [c, "x" + c + "y", " " + c + " ", "  " + c + "\n", c + c, "Hi " + c + " there",
                c[:-1], c.upper(), "\t" + c + "\t\t", "word" + c + " word"]
    return out


def fnv(ids):
    h = 1469598103934665603
    for i in ids:
        h = ((h ^ i) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    return "%016x" % h


def decodes(tok, ids):
    out = {}
    for key, skip in (("decode", False), ("decode_skip", True)):
        try:
            out[key] = tok.decode(ids, skip_special_tokens=skip)
        except BaseException:  # Strip with stop > 0 panics on short texts
            out["no_" + key] = True
    if "decode_skip" in out and out["decode_skip"] == out.get("decode"):
        del out["decode_skip"]
    return out


def text_case(tok, text):
    ids = tok.encode(text, add_special_tokens=False).ids
    case = {"text": text, "ids": ids}
    special = tok.encode(text, add_special_tokens=True).ids
    if special != ids:
        case["ids_special"] = special
    case.update(decodes(tok, ids))
    if case.get("decode") == text:
        del case["decode"]
    return case


def random_ids(tok, rng):
    """Id sequences a model might sample: single-byte tokens that split or
    break characters, byte-fallback tokens, special tokens, plain ones."""
    vocab = tok.get_vocab(with_added_tokens=True)
    size = max(vocab.values()) + 1
    byteish = sorted(i for t, i in vocab.items()
                     if (len(t) == 1 and ord(t) >= 0x80) or (len(t) == 6 and t.startswith("<0x")))
    added = sorted(tok.get_added_tokens_decoder().keys())
    out = []
    for _ in range(rng.choice([1, 2, 3, 4, 6, 10, 20])):
        r = rng.random()
        pool = byteish if r < 0.5 and byteish else added if r < 0.6 and added else None
        out.append(rng.choice(pool) if pool else rng.randrange(size))
    return [i for i in out if tok.id_to_token(i) is not None]


def cases_for(name, tok, rng, real):
    """The small tokenizers' ids are many per text: they get fewer texts."""
    texts = list(TEXTS) + MULTILINGUAL + special_texts(tok, rng, 10 if real else 4)
    if real:
        texts += lines_of(os.path.join(DATA, "tinystories_head.txt"), 10, rng)
        texts += lines_of(os.path.join(DATA, "kjv_head.txt"), 10, rng)
        texts += long_line(os.path.join(DATA, "kjv_head.txt"), 40)
    texts += [random_text(rng) for _ in range(60 if real else 30)]
    cases = [text_case(tok, t) for t in texts]
    for _ in range(60 if real else 30):
        ids = random_ids(tok, rng)
        case = {"ids": ids}
        case.update(decodes(tok, ids))
        cases.append(case)
    return cases


def write_cases(name, cases):
    path = os.path.join(HERE, name + ".cases.jsonl")
    with open(path, "w", encoding="utf-8") as f:
        for c in cases:
            f.write(json.dumps(c, ensure_ascii=False, separators=(",", ":")) + "\n")
    print("%s: %d cases, %d bytes" % (path, len(cases), os.path.getsize(path)))


def unicode_lines():
    """Every code point from U+0020 up (surrogates aside) after a letter,
    doubled and after a digit, 48 to a line: tests/test_bpe.c builds the
    same text ("@unicode") to check the Unicode tables of its regex engine
    and normalizer against the library's."""
    cps = [c for c in range(0x20, 0x110000) if not 0xD800 <= c < 0xE000]
    for i in range(0, len(cps), 48):
        yield "".join("a%s%s1%s " % (chr(c), chr(c), chr(c)) for c in cps[i:i + 48]) + "\n"


def write_files(name, tok, shared):
    ids = [i for e in tok.encode_batch(list(unicode_lines()), add_special_tokens=False)
           for i in e.ids]
    out = [{"file": "@unicode", "n": len(ids), "hash": fnv(ids)}]
    for fname in ("wiki.test.raw", "tinystories_valid.txt"):
        path = os.path.join(shared, "data", fname)
        if not os.path.exists(path):
            continue
        with open(path, encoding="utf-8") as f:
            ids = tok.encode(f.read(), add_special_tokens=False).ids
        out.append({"file": fname, "n": len(ids), "hash": fnv(ids)})
    with open(os.path.join(HERE, name + ".files.json"), "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")


# --- the small tokenizers ---

def corpus():
    texts = []
    for fname in ("tinystories_head.txt", "kjv_head.txt"):
        with open(os.path.join(DATA, fname), encoding="utf-8") as f:
            texts += [l for l in f.read().split("\n") if l.strip()][:400]
    return texts + MULTILINGUAL * 20


BYTES = ["<0x%02X>" % b for b in range(256)]


def train(pre, vocab_size, byte_level, specials):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre
    alphabet = pre_tokenizers.ByteLevel.alphabet() if byte_level else []
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                  initial_alphabet=alphabet, limit_alphabet=300,
                                  show_progress=False)
    tok.train_from_iterator(corpus(), trainer)
    return json.loads(tok.to_str())


def add_bytes(d):
    vocab = d["model"]["vocab"]
    for b in BYTES:
        if b not in vocab:
            vocab[b] = max(vocab.values()) + 1


def add_tokens(d, specs):
    """specs: (content, special, extra flags); ids follow the vocabulary."""
    top = max([v for v in d["model"]["vocab"].values()] + [a["id"] for a in d["added_tokens"]])
    for content, special, flags in specs:
        top += 1
        tok = {"id": top, "content": content, "single_word": False, "lstrip": False,
               "rstrip": False, "normalized": not special, "special": special}
        tok.update(flags)
        d["added_tokens"].append(tok)


def bl(prefix=False, regex=True):
    return {"type": "ByteLevel", "add_prefix_space": prefix, "trim_offsets": True,
            "use_regex": regex}


def meta(scheme="always", split=True):
    return {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": scheme, "split": split}


def template(d, single):
    ids = {c: next(a["id"] for a in d["added_tokens"] if a["content"] == c) for c in single
           if c != "$A"}
    items = [{"Sequence": {"id": "A", "type_id": 0}} if c == "$A" else
             {"SpecialToken": {"id": c, "type_id": 0}} for c in single]
    return {"type": "TemplateProcessing", "single": items, "pair": items,
            "special_tokens": {c: {"id": c, "ids": [i], "tokens": [c]} for c, i in ids.items()}}


def spec_gpt2():
    d = train(pre_tokenizers.ByteLevel(add_prefix_space=False), 600, True, ["<|endoftext|>"])
    add_tokens(d, [("<|user|>", True, {"lstrip": True, "rstrip": True}),
                   ("hello", False, {"single_word": True}),
                   ("<tab>", False, {"rstrip": True, "normalized": False}),
                   ("world", False, {"lstrip": True})])
    d["decoder"] = bl()
    d["post_processor"] = bl()
    return d


def spec_gpt2_prefix():
    d = train(pre_tokenizers.ByteLevel(add_prefix_space=True), 600, True, ["<s>", "</s>"])
    d["pre_tokenizer"] = bl(prefix=True)
    d["normalizer"] = {"type": "NFKC"}
    d["model"]["ignore_merges"] = True
    # a special token that NFKC changes is not skipped by decode; one it keeps is
    add_tokens(d, [("ﬁ", False, {}), ("Ω", False, {"normalized": True}),
                   ("ﬀ", True, {"normalized": True}), ("ﬃ", True, {})])
    d["decoder"] = bl(prefix=True)
    d["post_processor"] = {"type": "Sequence", "processors": [bl(prefix=True),
                                                             template(d, ["<s>", "$A", "</s>"])]}
    return d


def spec_smollm():
    pre = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                   pre_tokenizers.ByteLevel(add_prefix_space=False)])
    d = train(pre, 600, True, ["<|endoftext|>", "<|im_start|>", "<|im_end|>"])
    d["decoder"] = bl()
    return d


def spec_llama2():
    d = train(pre_tokenizers.Metaspace(), 700, False, ["<unk>", "<s>", "</s>"])
    add_bytes(d)
    d["model"].update(unk_token="<unk>", fuse_unk=True, byte_fallback=True)
    d["normalizer"] = {"type": "Sequence", "normalizers": [
        {"type": "Prepend", "prepend": "\u2581"},
        {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]}
    d["pre_tokenizer"] = None
    d["decoder"] = {"type": "Sequence", "decoders": [
        {"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
        {"type": "ByteFallback"}, {"type": "Fuse"},
        {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}
    add_tokens(d, [("[INST]", False, {}), ("[/INST]", False, {}), ("<0x0A>", False, {})])
    d["post_processor"] = template(d, ["<s>", "$A"])
    return d


def spec_metaspace():
    d = train(pre_tokenizers.Metaspace(prepend_scheme="first"), 700, False, ["<unk>", "<s>"])
    add_bytes(d)
    d["model"].update(byte_fallback=True)
    d["pre_tokenizer"] = meta("first")
    d["decoder"] = {"type": "Sequence", "decoders": [{"type": "ByteFallback"}, meta("first")]}
    add_tokens(d, [("<sep>", True, {"normalized": True}), ("ok", False, {"single_word": True})])
    return d


def spec_metaspace_always():
    d = train(pre_tokenizers.Metaspace(split=False), 500, False, ["<unk>"])
    d["model"].update(unk_token="<unk>", fuse_unk=False)
    d["normalizer"] = {"type": "NFD"}
    d["pre_tokenizer"] = meta("always", split=False)
    d["decoder"] = meta("always")
    add_tokens(d, [("é", False, {"normalized": True}), ("<eos>", True, {"lstrip": True})])
    return d


def spec_splits():
    d = train(pre_tokenizers.ByteLevel(add_prefix_space=False), 500, True, ["<s>", "</s>"])
    split = lambda p, beh, inv=False, regex=True: {  # noqa: E731
        "type": "Split", "pattern": {"Regex" if regex else "String": p}, "behavior": beh,
        "invert": inv}
    d["normalizer"] = {"type": "Sequence", "normalizers": [
        {"type": "NFC"}, {"type": "Replace", "pattern": {"Regex": "\\s{2,}"}, "content": " "},
        {"type": "Replace", "pattern": {"String": "!"}, "content": "!!"}]}
    d["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        split("\t", "Removed", regex=False), split(",", "MergedWithPrevious", regex=False),
        split("[A-Z]", "MergedWithNext"), split("\\s+", "Contiguous"),
        split("\\p{P}", "Isolated", inv=True), {"type": "Digits", "individual_digits": False},
        split("(?i:ab|cd)", "Isolated"), bl(regex=False)]}
    d["decoder"] = None
    d["post_processor"] = {"type": "RobertaProcessing", "sep": ["</s>", 1], "cls": ["<s>", 0],
                           "trim_offsets": True, "add_prefix_space": False}
    return d


def spec_decoders():
    d = train(pre_tokenizers.Metaspace(), 600, False, ["<unk>", "<|eot|>"])
    add_bytes(d)
    d["model"].update(byte_fallback=True, unk_token="<unk>")
    d["pre_tokenizer"] = meta("always")
    d["decoder"] = {"type": "Sequence", "decoders": [
        {"type": "ByteFallback"}, {"type": "Strip", "content": "\u2581", "start": 2, "stop": 0},
        {"type": "Replace", "pattern": {"Regex": "\u2581+"}, "content": "\u2581"},
        meta("first"), {"type": "Fuse"},
        {"type": "Replace", "pattern": {"String": "th"}, "content": "TH"},
        {"type": "Replace", "pattern": {"String": "  "}, "content": " _ "},
        {"type": "Strip", "content": " ", "start": 2, "stop": 1}]}
    return d


SPECS = {
    "gpt2": spec_gpt2, "gpt2-prefix": spec_gpt2_prefix, "smollm": spec_smollm,
    "llama2": spec_llama2, "metaspace": spec_metaspace, "metaspace-always": spec_metaspace_always,
    "splits": spec_splits, "decoders": spec_decoders,
}


def small_tokenizer(name, retrain):
    path = os.path.join(HERE, name + ".json")
    if retrain or not os.path.exists(path):
        tok = Tokenizer.from_str(json.dumps(SPECS[name]()))
        with open(path, "w", encoding="utf-8") as f:
            f.write(tok.to_str())
        print("%s: trained, %d bytes" % (path, os.path.getsize(path)))
    return Tokenizer.from_file(path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default=os.path.join(ROOT, "..", "shared"))
    ap.add_argument("--only", nargs="*")
    ap.add_argument("--retrain", action="store_true")
    args = ap.parse_args()
    names = list(SPECS) + ["qwen3", "llama3", "mistral"]
    for name in args.only or names:
        rng = random.Random(name)
        if name in SPECS:
            tok = small_tokenizer(name, args.retrain)
        else:
            path = os.path.join(args.shared, "tokenizers", name, "tokenizer.json")
            if not os.path.exists(path):
                print("%s: absent, skipped" % path, file=sys.stderr)
                continue
            tok = Tokenizer.from_file(path)
            write_files(name, tok, args.shared)
        write_cases(name, cases_for(name, tok, rng, name not in SPECS))


if __name__ == "__main__":
    main()
