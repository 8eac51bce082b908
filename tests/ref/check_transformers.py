#!/usr/bin/env python3
"""Checks hf_ref.py against transformers' own LlamaForCausalLM, Qwen2ForCausalLM and
Qwen3ForCausalLM on make_hf.py's checkpoints.  Not part of CI (it needs torch and transformers):

  python3 -m venv /tmp/hfvenv && /tmp/hfvenv/bin/pip install torch transformers numpy
  /tmp/hfvenv/bin/python tests/ref/check_transformers.py [WORKDIR]

The checkpoints are written into WORKDIR (a temporary folder by default).  For each one it prints
the largest |hf_ref - transformers| over the largest |hf_ref|, for the logits of every position
of an 8-token prompt, with the model loaded in float64 and in float32, and for llama3 the same at
the last of 4500 positions (where the llama3 rope scaling matters: the figure without it is
printed too).  transformers computes RMSNorm, the rotary angles and cos/sin, and the softmax in
fp32 whatever the model's dtype, hence ~1e-7 "as is";
"float64 throughout" runs transformers' code with those fp32 steps in float64 too (and its
inv_freq computed again so; written against transformers 5.x): the figures there are rounding
only, ~1e-15.  It also runs 64 greedy
steps in float64 and in float32 (as nibble's fp32 code would) and says whether the ids equal
hf_ref.py's.  Exits 1 when a figure is above 1e-10 (float64 throughout), 1e-5 (float64 as is;
1e-4 at the long position) or a greedy run differs.
"""
import contextlib
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
import transformers
from transformers import AutoModelForCausalLM

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True           # no __pycache__ left in tests/ref
sys.path.insert(0, HERE)
import hf_ref  # noqa: E402
import make_hf  # noqa: E402

PROMPT = make_hf.PROMPT
LONG = 4500
# (name, make_hf.py arguments): every family, the other dtypes and shards, stories260K as Qwen2
# and as the Llama folder it comes from (None: tests/data/stories260K/hf as it is), and llama with
# linear rope scaling and attention biases
CASES = [("qwen2", ["qwen2"]), ("qwen3", ["qwen3"]), ("llama3", ["llama3"]), ("llama", ["llama"]),
         ("qwen3-bf16-3shards", ["qwen3", "--dtype", "bf16", "--shards", "3"]),
         ("llama3-f16", ["llama3", "--dtype", "f16"]),
         ("stories260K-qwen2", ["qwen2-zero-bias"]), ("stories260K", None),
         ("llama-linear-bias", ["llama"])]


def linear_bias_variant(d):
    """What make_hf.py does not write: rope_scaling linear, and Llama's attention_bias (biases on
    q, k, v and o), on the llama checkpoint."""
    c = json.load(open(os.path.join(d, "config.json")))
    c.update(attention_bias=True, rope_scaling={"rope_type": "linear", "factor": 4.0})
    make_hf.write_json(os.path.join(d, "config.json"), c)
    path = os.path.join(d, "model.safetensors")
    w = {n: a.astype(np.float32) for n, a in hf_ref.read_safetensors(path).items()}
    rng = np.random.default_rng(3)
    for n in [n for n in w if n.endswith("_proj.weight") and ".self_attn." in n]:
        w[n[:-len("weight")] + "bias"] = (0.5 * rng.standard_normal(len(w[n]))).astype(np.float32)
    make_hf.write_safetensors(os.path.join(d, "model.safetensors"), w, "f32")


@contextlib.contextmanager
def no_fp32_islands():
    """transformers computes RMSNorm, the rotary angles and cos/sin, and the softmax in fp32
    whatever the model's dtype (`.to(torch.float32)`, `dtype=torch.float`).  Pointing those two
    names at float64 for a moment runs its own code in float64 throughout."""
    saved = torch.float, torch.float32
    torch.float = torch.float32 = torch.float64
    try:
        yield
    finally:
        torch.float, torch.float32 = saved


def load_hf(d, dtype, exact=False):
    # transformers 4.56 renamed torch_dtype to dtype
    new = tuple(map(int, transformers.__version__.split(".")[:2])) >= (4, 56)
    key = "dtype" if new else "torch_dtype"
    m = AutoModelForCausalLM.from_pretrained(d, attn_implementation="eager", **{key: dtype}).eval()
    m.exact = exact
    if exact:                          # inv_freq again, from transformers' formulas in float64
        rot = m.model.rotary_emb
        with no_fp32_islands():
            type(rot).__init__(rot, m.config)
    return m


def hf_logits(model, ids):
    with torch.no_grad(), (no_fp32_islands() if model.exact else contextlib.nullcontext()):
        return model(torch.tensor([ids])).logits[0].double().numpy()


def rel(ref, got):
    return float(np.abs(ref - got).max() / np.abs(ref).max())


def hf_greedy(model, ids, n):
    out = []
    for _ in range(n):
        out.append(int(np.argmax(hf_logits(model, ids + out)[-1])))
    return out


def long_check(cfg, m, as_is, exact):
    ids = [int(t) for t in np.random.default_rng(5).integers(3, cfg["vocab"], LONG)]
    ref = hf_ref.run(cfg, m, ids)[0]
    inv = exact.model.rotary_emb.inv_freq.numpy()
    got = hf_logits(exact, ids)[-1]
    r_as_is, r_exact = rel(ref, hf_logits(as_is, ids)[-1]), rel(ref, got)
    plain = dict(cfg, inv_freq=hf_ref.inv_freq(cfg["head_dim"], cfg["theta"], None))
    r_plain = rel(hf_ref.run(plain, m, ids)[0], got)
    print(f"  inv_freq (llama3 scaled): rel {rel(cfg['inv_freq'], inv):.3g}; position {LONG - 1}: "
          f"rel {r_exact:.3g} (float64 throughout), {r_as_is:.3g} (float64 as is), "
          f"{r_plain:.3g} if hf_ref ignored the scaling")
    return r_exact <= 1e-10 and r_as_is <= 1e-4


def check(name, d):
    cfg, m = hf_ref.load(d)
    ref = hf_ref.run(cfg, m, PROMPT, all_rows=True)[0]
    exact, as_is = load_hf(d, torch.float64, True), load_hf(d, torch.float64)
    m32 = load_hf(d, torch.float32)
    r = [rel(ref, hf_logits(x, PROMPT)) for x in (exact, as_is, m32)]
    ids = hf_ref.greedy(cfg, m, PROMPT, 64)
    same = [ids == hf_greedy(x, PROMPT, 64) for x in (exact, m32)]
    word = {True: "equal", False: "DIFFER"}
    print(f"{name}: 8 tokens, rel {r[0]:.3g} (float64 throughout), {r[1]:.3g} (float64 as is), "
          f"{r[2]:.3g} (float32); 64 greedy ids {word[same[0]]} (float64), "
          f"{word[same[1]]} (float32)")
    ok = r[0] <= 1e-10 and r[1] <= 1e-5 and all(same)
    if name == "llama3":
        ok = long_check(cfg, m, as_is, exact) and ok
    return ok


def main():
    if len(sys.argv) > 1:
        sys.exit(run_all(sys.argv[1]))
    with tempfile.TemporaryDirectory(prefix="hfcheck") as work:
        status = run_all(work)
    sys.exit(status)


def run_all(work):
    """Writes and checks every case under work; 0 when all agree."""
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, in {work}")
    ok = True
    for name, args in CASES:
        d = make_hf.STORIES if args is None else os.path.join(work, name)
        if args is not None:
            cmd = [sys.executable, os.path.join(HERE, "make_hf.py"), args[0], d] + args[1:]
            subprocess.run(cmd, check=True)
        if name == "llama-linear-bias":
            linear_bias_variant(d)
        ok = check(name, d) and ok
    print("all agree" if ok else "DISAGREEMENT")
    return 0 if ok else 1


if __name__ == "__main__":
    main()
