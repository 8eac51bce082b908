#!/usr/bin/env python3
"""The reference's speed beside test_bpe's (tests/test_bpe.c bench): the
Hugging Face tokenizers library loading TOKENIZER.json and encoding TEXT
as one string, single-threaded (encode does not fan out; the variable
below keeps the library's thread pool from doing so anywhere).

    python3 tests/bpe/bench_ref.py TOKENIZER.json TEXT"""
import os
import sys
import time

os.environ["RAYON_NUM_THREADS"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
from tokenizers import Tokenizer  # noqa: E402


def main():
    path, text_path = sys.argv[1], sys.argv[2]
    t0 = time.perf_counter()
    tok = Tokenizer.from_file(path)
    load = time.perf_counter() - t0
    with open(text_path, encoding="utf-8") as f:
        text = f.read()
    best = 1e9
    for _ in range(3):
        t0 = time.perf_counter()
        ids = tok.encode(text, add_special_tokens=False).ids
        best = min(best, time.perf_counter() - t0)
    size = len(text.encode("utf-8"))
    print("reference: %s loaded in %.1f ms" % (path, 1e3 * load))
    print("reference encode %s: %d bytes, %d tokens in %.3f s: %.0f tokens/s, %.1f MB/s (best of 3)"
          % (text_path, size, len(ids), best, len(ids) / best, size / best / 1e6))
    lines = [line + "\n" for line in text.split("\n")]
    lines[-1] = lines[-1][:-1]
    lines = [line for line in lines if line]
    best = 1e9
    for _ in range(3):
        t0 = time.perf_counter()
        n = sum(len(tok.encode(line, add_special_tokens=False).ids) for line in lines)
        best = min(best, time.perf_counter() - t0)
    print("reference encode line by line: %d tokens in %.3f s: %.0f tokens/s" % (n, best, n / best))
    t0 = time.perf_counter()
    tok.decode(ids)
    dt = time.perf_counter() - t0
    print("reference decode: %.0f tokens/s" % (len(ids) / dt))


if __name__ == "__main__":
    main()
