#!/usr/bin/python3
"""Aggregate decode tokens/s of nibble serve with 1 and with 4 concurrent streams.

  serve_bench.py NIBBLE OUTDIR [--shape DIM,LAYERS,HEADS,KV_HEADS,FFN] [--tokens N]
                 [--rounds R] [--threads T] [--model FILE] [--icount ARM64_NIBBLE --plugin SO
                 --cpu CPU]

Without --model it writes a random-weight Llama of the shape (f16 safetensors, numpy only,
tok512's tokenizer.model from tests/data) into OUTDIR, converts it to INT4 (RTN, groups of
128) and serves that. Each round starts S streams at once (ignore_eos, --tokens each) and
measures every stream from its first token to its last; the aggregate is the sum of their
rates. The median round is printed per S, and the ratio: batching reads the weights once per
step for all the streams, so on a memory-bound board 4 streams should give >= 3x one.

With --icount, an aarch64 build of nibble serves under qemu (one thread) with the instruction
counting plugin of tests/bench/icount.sh, and the instructions per decoded token are printed
for 1 and 4 streams: the difference of two runs (--tokens and twice as many per stream), so
loading, prefill and HTTP cancel out.
"""
import argparse
import http.client
import json
import os
import re
import shutil
import statistics
import struct
import subprocess
import sys
import threading
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
TOKENIZER = os.path.join(HERE, "..", "data", "stories260K", "hf", "tokenizer.model")


def write_model(out, dim, layers, heads, kv, ffn, vocab=512):
    os.makedirs(out, exist_ok=True)
    hd = dim // heads
    rng = np.random.default_rng(7)
    tensors = {"model.embed_tokens.weight": (vocab, dim), "model.norm.weight": (dim,)}
    for i in range(layers):
        p = "model.layers.%d." % i
        tensors.update({p + "self_attn.q_proj.weight": (dim, dim),
                        p + "self_attn.k_proj.weight": (kv * hd, dim),
                        p + "self_attn.v_proj.weight": (kv * hd, dim),
                        p + "self_attn.o_proj.weight": (dim, dim),
                        p + "mlp.gate_proj.weight": (ffn, dim),
                        p + "mlp.up_proj.weight": (ffn, dim),
                        p + "mlp.down_proj.weight": (dim, ffn),
                        p + "input_layernorm.weight": (dim,),
                        p + "post_attention_layernorm.weight": (dim,)})
    header, off = {}, 0
    for name, shape in tensors.items():
        n = int(np.prod(shape)) * 2
        header[name] = {"dtype": "F16", "shape": list(shape), "data_offsets": [off, off + n]}
        off += n
    head = json.dumps(header).encode()
    head += b" " * (-len(head) % 8)
    with open(os.path.join(out, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(head)) + head)
        for name, shape in tensors.items():
            if len(shape) == 1:
                a = np.ones(shape, np.float16)
            else:
                a = (rng.standard_normal(shape, np.float32) * (1 / np.sqrt(shape[1]))).astype(
                    np.float16)
            f.write(a.tobytes())
    json.dump({"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": dim,
               "intermediate_size": ffn, "num_hidden_layers": layers,
               "num_attention_heads": heads, "num_key_value_heads": kv, "vocab_size": vocab,
               "max_position_embeddings": 2048, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
               "tie_word_embeddings": True, "bos_token_id": 1, "eos_token_id": 2,
               "torch_dtype": "float16"}, open(os.path.join(out, "config.json"), "w"))
    shutil.copy(TOKENIZER, os.path.join(out, "tokenizer.model"))


def stream(port, tokens, out, i):
    body = json.dumps({"prompt": "Once upon a time", "max_tokens": tokens, "ignore_eos": True,
                       "temperature": 0, "stream": True,
                       "stream_options": {"include_usage": True}})
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    c.request("POST", "/v1/completions", body, {"Content-Type": "application/json"})
    r = c.getresponse()
    first = n = None
    for line in r:
        if not line.startswith(b"data: {"):
            continue
        j = json.loads(line[6:])
        if j.get("usage"):
            n = j["usage"]["completion_tokens"]
        elif first is None and j["choices"][0]["text"]:
            first = time.time()
    end = time.time()
    c.close()
    out[i] = (n - 1) / (end - first) if n and first and end > first else 0.0


def round_rate(port, streams, tokens):
    out = [0.0] * streams
    th = [threading.Thread(target=stream, args=(port, tokens, out, i)) for i in range(streams)]
    for t in th:
        t.start()
    for t in th:
        t.join()
    return sum(out)


def serve(cmd):
    p = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    port = None
    for line in p.stderr:
        m = re.search(r"listening on http://[^ ]*:(\d+)", line)
        port = int(m.group(1)) if m else port
        if "ready:" in line or "nibble: " in line:
            break
    return p, port


def icount(a, model, streams, tokens):
    """Instructions the whole server ran (every thread) to serve streams x tokens."""
    wrap = ["qemu-aarch64", "-L", "/usr/aarch64-linux-gnu", "-cpu", a.cpu, "-plugin",
            a.plugin, "-d", "plugin"]
    p, port = serve(wrap + [a.icount, "serve", "-m", model, "--port", "0", "--parallel", "4",
                            "-c", "1024", "-q", "-t", "1"])
    round_rate(port, streams, tokens)
    p.terminate()
    err = p.communicate()[1]
    m = re.search(r"icount: total_insns (\d+)", err)
    return int(m.group(1)) if m else 0


def icount_table(a, model):
    per = {}
    for s in (1, 4):
        lo, hi = icount(a, model, s, a.tokens), icount(a, model, s, 2 * a.tokens)
        per[s] = (hi - lo) / (s * a.tokens)
        print("%s, %d stream%s: %.2fM instructions per decoded token"
              % (a.cpu, s, "s" if s > 1 else " ", per[s] / 1e6), flush=True)
    print("%s: 1 stream / 4 streams, instructions per token: %.2fx (goal >= 3x)"
          % (a.cpu, per[1] / per[4]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("nibble")
    ap.add_argument("outdir")
    ap.add_argument("--shape", default="2048,2,32,4,5632")
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", default="")
    ap.add_argument("--model", default="")
    ap.add_argument("--make-only", action="store_true", help="write OUTDIR/bench.nib and stop")
    ap.add_argument("--icount", default="")
    ap.add_argument("--plugin", default="")
    ap.add_argument("--cpu", default="cortex-a76")
    a = ap.parse_args()
    model = a.model
    if not model:
        dim, layers, heads, kv, ffn = map(int, a.shape.split(","))
        hf = os.path.join(a.outdir, "hf")
        write_model(hf, dim, layers, heads, kv, ffn)
        model = os.path.join(a.outdir, "bench.nib")
        subprocess.run([a.nibble, "convert", "-q", hf, "-o", model, "--quantize", "rtn",
                        "--group", "128"], check=True)
        shutil.rmtree(hf)
    if a.make_only:
        return None
    if a.icount:
        return icount_table(a, model)
    threads = ["-t", a.threads] if a.threads else []
    p, port = serve([a.nibble, "serve", "-m", model, "--port", "0", "--parallel", "4", "-c",
                     "1024", "-q"] + threads)
    try:
        round_rate(port, 1, 8)  # warm up
        rates = {}
        for s in (1, 4):
            runs = [round_rate(port, s, a.tokens) for _ in range(a.rounds)]
            rates[s] = statistics.median(runs)
            print("%d stream%s: aggregate decode %.1f tokens/s (rounds: %s)"
                  % (s, "s" if s > 1 else " ", rates[s], ", ".join("%.1f" % r for r in runs)),
                  flush=True)
        print("4 streams / 1 stream: %.2fx (goal >= 3x)" % (rates[4] / rates[1]))
    finally:
        p.terminate()
        p.wait()


if __name__ == "__main__":
    main()
