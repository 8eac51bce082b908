#!/usr/bin/python3
"""Writes small random-weight Hugging Face checkpoints for nibble's converter and hf_ref.py.

Usage (Debian's /usr/bin/python3 with python3-numpy; nothing else):
  make_hf.py FAMILY OUTDIR [--dtype f32|bf16|f16] [--seed N] [--vocab V] [--shards N]
  make_hf.py qwen2-zero-bias OUTDIR

FAMILY (2 layers, hidden 64, 4 query heads each; every feature of its family switched on):
  qwen2   2 kv heads, head_dim 16, ffn 128, q/k/v biases, tied embeddings, rope_theta 1e6
  qwen3   2 kv heads, head_dim 32 (not 64/4), q_norm/k_norm, untied, rope_theta 1e6
  llama3  1 kv head (GQA 4:1), head_dim 16, rope_scaling llama3 (factor 8, low 1, high 4,
          original_max_position_embeddings 512: of the 8 frequencies 2 are kept, 1 blended,
          5 divided by 8), tied, rope_theta 500000, three end ids
  llama   4 kv heads, no bias, untied, no scaling: the baseline
qwen2-zero-bias: tests/data/stories260K/hf (a Llama folder) rewritten as a Qwen2 checkpoint with
  zero q/k/v biases; same weights and tokenizer.model, so it must give the same logits.

OUTDIR gets config.json, generation_config.json, model.safetensors (or --shards N files and
model.safetensors.index.json), tokenizer.json (tests/bpe/smollm.json: 600 ids, <|endoftext|> 0,
<|im_start|> 1, <|im_end|> 2) and tokenizer_config.json with a ChatML chat_template.
Weights come from numpy.random.default_rng(seed), rounded to bf16 (to nearest even, by hand) and
kept inside f16's normal range, so f32, bf16 and f16 files hold the very same numbers and one
reference output serves all three.
"""
import argparse
import json
import os
import shutil
import struct
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "chat"))
from templates import QWEN25  # noqa: E402  (Qwen2.5-Instruct's, as tests/chat quotes it)

HERE = os.path.dirname(os.path.abspath(__file__))
TOKENIZER = os.path.join(HERE, "..", "bpe", "smollm.json")
STORIES = os.path.join(HERE, "..", "data", "stories260K", "hf")
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]          # ids 0, 1, 2 of smollm.json

SHAPES = {
    "qwen2": dict(seed=285, heads=4, kv=2, hd=16, ffn=128, theta=1e6, eps=1e-6, ctx=4096,
                  tied=True),
    "qwen3": dict(seed=42, heads=4, kv=2, hd=32, ffn=192, theta=1e6, eps=1e-6, ctx=4096,
                  tied=False),
    "llama3": dict(seed=20, heads=4, kv=1, hd=16, ffn=128, theta=5e5, eps=1e-5, ctx=8192,
                   tied=True),
    "llama": dict(seed=126, heads=4, kv=4, hd=16, ffn=96, theta=1e4, eps=1e-5, ctx=2048,
                  tied=False),
}
DIM, LAYERS = 64, 2
# The default seeds were picked (README.md) for greedy runs whose top-1/top-2 gaps stay above 1%
# of the largest |logit| for 64 steps from PROMPT, over many distinct tokens.
PROMPT = [1, 20, 30, 40, 50, 60, 70, 80]
LLAMA3_SCALING = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                  "high_freq_factor": 4.0, "original_max_position_embeddings": 512}
TORCH_DTYPE = {"f32": "float32", "bf16": "bfloat16", "f16": "float16"}

# Qwen2 folders get Qwen2.5-Instruct's template (tests/chat/templates.py), the others a plain
# ChatML one without a default system prompt for the other families.
CHATML_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}")


# ---------------------------------------------------------------- safetensors, by hand

def bf16_bits(a):
    """fp32 -> bf16 bit patterns, rounded to nearest even (finite inputs)."""
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)
    return ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)


def encode(a, dtype):
    """(safetensors dtype name, little-endian bytes) of an fp32 array."""
    if dtype == "bf16":
        return "BF16", bf16_bits(a).astype("<u2").tobytes()
    if dtype == "f16":
        return "F16", a.astype("<f2").tobytes()
    return "F32", a.astype("<f4").tobytes()


def write_safetensors(path, tensors, dtype):
    """tensors: {name: fp32 array}; header padded with spaces to 8 bytes, as the library does."""
    header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    for name in sorted(tensors):
        code, data = encode(tensors[name], dtype)
        header[name] = {"dtype": code, "shape": list(tensors[name].shape),
                        "data_offsets": [off, off + len(data)]}
        blobs.append(data)
        off += len(data)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for b in blobs:
            f.write(b)
    return off


def write_weights(out, tensors, dtype, shards):
    if shards <= 1:
        write_safetensors(os.path.join(out, "model.safetensors"), tensors, dtype)
        return
    names = sorted(tensors)
    wmap, total = {}, 0
    for i, part in enumerate(np.array_split(np.array(names, dtype=object), shards)):
        fname = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
        total += write_safetensors(os.path.join(out, fname), {n: tensors[n] for n in part}, dtype)
        wmap.update({n: fname for n in part})
    write_json(os.path.join(out, "model.safetensors.index.json"),
               {"metadata": {"total_size": total}, "weight_map": wmap})


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")


# ---------------------------------------------------------------- random weights

def norm_weight(rng, n, spread):
    """RMSNorm gains around 1, not all ones, so a reader that skips one is caught."""
    return (1.0 + spread * rng.standard_normal(n)).astype(np.float32)


def linear(rng, rows, cols, gain=1.0):
    """Gaussian [rows, cols] with output variance gain^2 for unit-variance inputs."""
    return (rng.standard_normal((rows, cols)) * gain / np.sqrt(cols)).astype(np.float32)


def layer_tensors(rng, fam, s, i):
    p = f"model.layers.{i}."
    qd, kd = s["heads"] * s["hd"], s["kv"] * s["hd"]
    t = {p + "input_layernorm.weight": norm_weight(rng, DIM, 0.2),
         p + "post_attention_layernorm.weight": norm_weight(rng, DIM, 0.2),
         # q and k a little hotter than unit gain so that attention is far from uniform
         p + "self_attn.q_proj.weight": linear(rng, qd, DIM, 1.5),
         p + "self_attn.k_proj.weight": linear(rng, kd, DIM, 1.5),
         p + "self_attn.v_proj.weight": linear(rng, kd, DIM),
         p + "self_attn.o_proj.weight": linear(rng, DIM, qd, 1.5),
         p + "mlp.gate_proj.weight": linear(rng, s["ffn"], DIM),
         p + "mlp.up_proj.weight": linear(rng, s["ffn"], DIM),
         p + "mlp.down_proj.weight": linear(rng, DIM, s["ffn"], 1.5)}
    if fam == "qwen2":                       # Qwen2's q/k/v always carry a bias
        for n, rows in (("q", qd), ("k", kd), ("v", kd)):
            t[f"{p}self_attn.{n}_proj.bias"] = (0.5 * rng.standard_normal(rows)).astype(np.float32)
    if fam == "qwen3":
        t[p + "self_attn.q_norm.weight"] = norm_weight(rng, s["hd"], 0.3)
        t[p + "self_attn.k_norm.weight"] = norm_weight(rng, s["hd"], 0.3)
    return t


def uneven_rows(rng, rows, cols, std, spread):
    """Gaussian rows whose lengths vary (log-normal): the logits get a heavier upper tail, so
    greedy argmaxes are better separated."""
    lengths = np.exp(spread * rng.standard_normal((rows, 1)))
    return (rng.standard_normal((rows, cols)) * std * lengths).astype(np.float32)


def exact_in_all_dtypes(a):
    """Round to bf16, then flush what f16 cannot hold as a normal number: every --dtype then
    stores the very same values, and one reference output serves f32, bf16 and f16 files."""
    a = (bf16_bits(a).astype(np.uint32) << 16).view(np.float32)
    return np.where(np.abs(a) < 2.0 ** -14, np.float32(0), a)


def model_tensors(fam, s, vocab, seed):
    rng = np.random.default_rng(seed)
    # The embedding small beside what the layers add (RMSNorm makes the layers' output scale
    # free of it): with tied embeddings, a large one makes the model echo its input token.
    t = {"model.embed_tokens.weight": uneven_rows(rng, vocab, DIM, 0.15, 0.3)}
    for i in range(LAYERS):
        t.update(layer_tensors(rng, fam, s, i))
    t["model.norm.weight"] = norm_weight(rng, DIM, 0.2)
    if not s["tied"]:
        t["lm_head.weight"] = uneven_rows(rng, vocab, DIM, 2.0 / np.sqrt(DIM), 0.5)
    return {n: exact_in_all_dtypes(a) for n, a in t.items()}


# ---------------------------------------------------------------- config and tokenizer files

def ids_of(fam):
    """(bos, eos): Qwen has <|endoftext|> as bos and <|im_end|> as eos; SmolLM2-style for llama;
    Llama-3.1 lists three end ids."""
    return {"qwen2": (0, 2), "qwen3": (0, 2), "llama": (1, 2), "llama3": (0, [0, 1, 2])}[fam]


def config(fam, s, vocab, dtype):
    bos, eos = ids_of(fam)
    arch = {"qwen2": "Qwen2ForCausalLM", "qwen3": "Qwen3ForCausalLM"}.get(fam, "LlamaForCausalLM")
    c = {"architectures": [arch], "model_type": "llama" if fam.startswith("llama") else fam,
         "attention_dropout": 0.0, "bos_token_id": bos, "eos_token_id": eos,
         "hidden_act": "silu", "hidden_size": DIM, "initializer_range": 0.02,
         "intermediate_size": s["ffn"], "max_position_embeddings": s["ctx"],
         "num_attention_heads": s["heads"], "num_hidden_layers": LAYERS,
         "num_key_value_heads": s["kv"], "rms_norm_eps": s["eps"],
         "rope_scaling": LLAMA3_SCALING if fam == "llama3" else None, "rope_theta": s["theta"],
         "tie_word_embeddings": s["tied"], "torch_dtype": TORCH_DTYPE[dtype], "use_cache": True,
         "vocab_size": vocab}
    if fam in ("qwen3", "llama3"):          # Qwen3 always writes head_dim; Llama-3.2 does too
        c["head_dim"] = s["hd"]
    if fam != "qwen2":
        c["attention_bias"] = False
    if fam.startswith("llama"):
        c.update(mlp_bias=False, pretraining_tp=1)
    else:
        c.update(use_sliding_window=False, max_window_layers=LAYERS,
                 sliding_window=s["ctx"] if fam == "qwen2" else None)
    return dict(sorted(c.items()))


def generation_config(bos, eos):
    return {"bos_token_id": bos, "eos_token_id": eos, "do_sample": True, "temperature": 0.7,
            "top_p": 0.8, "top_k": 20, "repetition_penalty": 1.05}


def tokenizer_config(fam, bos):
    """Shaped like Qwen2.5's tokenizer_config.json; the special tokens are smollm.json's ids and
    <|im_end|> (an end id of every family here) is the eos_token."""
    added = {str(i): {"content": t, "lstrip": False, "normalized": False, "rstrip": False,
                      "single_word": False, "special": True} for i, t in enumerate(SPECIAL)}
    return {"add_bos_token": False, "add_prefix_space": False, "added_tokens_decoder": added,
            "additional_special_tokens": SPECIAL[1:],
            "bos_token": None if fam.startswith("qwen") else SPECIAL[bos],
            "chat_template": QWEN25 if fam == "qwen2" else CHATML_TEMPLATE,
            "clean_up_tokenization_spaces": False, "eos_token": SPECIAL[2],
            "errors": "replace", "model_max_length": 4096, "pad_token": SPECIAL[0],
            "split_special_tokens": False,
            "tokenizer_class": "Qwen2Tokenizer" if fam.startswith("qwen") else "GPT2TokenizerFast",
            "unk_token": None}


def tokenizer_size():
    tok = json.load(open(TOKENIZER))
    ids = set(tok["model"]["vocab"].values()) | {a["id"] for a in tok["added_tokens"]}
    return max(ids) + 1


def make_family(fam, out, dtype, seed, vocab, shards):
    s = SHAPES[fam]
    n_tok = tokenizer_size()
    vocab = vocab or n_tok
    if vocab < n_tok:
        raise SystemExit(f"make_hf.py: --vocab {vocab} is smaller than the tokenizer's {n_tok} ids")
    bos, eos = ids_of(fam)
    os.makedirs(out, exist_ok=True)
    write_json(os.path.join(out, "config.json"), config(fam, s, vocab, dtype))
    write_json(os.path.join(out, "generation_config.json"), generation_config(bos, eos))
    write_json(os.path.join(out, "tokenizer_config.json"), tokenizer_config(fam, bos))
    shutil.copyfile(TOKENIZER, os.path.join(out, "tokenizer.json"))
    write_weights(out, model_tensors(fam, s, vocab, seed), dtype, shards)


# ---------------------------------------------------------------- stories260K as Qwen2

def read_f32_safetensors(path):
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        if t["dtype"] != "F32":
            raise SystemExit(f"make_hf.py: {path}: {name} is {t['dtype']}, expected F32")
        lo, hi = t["data_offsets"]
        out[name] = np.frombuffer(raw[8 + n + lo:8 + n + hi], "<f4").reshape(t["shape"])
    return out


def make_qwen2_zero_bias(out):
    src = json.load(open(os.path.join(STORIES, "config.json")))
    t = read_f32_safetensors(os.path.join(STORIES, "model.safetensors"))
    hd = src["hidden_size"] // src["num_attention_heads"]
    widths = {"q": src["num_attention_heads"] * hd, "k": src["num_key_value_heads"] * hd,
              "v": src["num_key_value_heads"] * hd}
    for i in range(src["num_hidden_layers"]):
        for n, rows in widths.items():
            t[f"model.layers.{i}.self_attn.{n}_proj.bias"] = np.zeros(rows, np.float32)
    c = {k: v for k, v in src.items() if k not in ("architectures", "model_type")}
    c.update(architectures=["Qwen2ForCausalLM"], model_type="qwen2", attention_dropout=0.0,
             use_sliding_window=False, sliding_window=src["max_position_embeddings"],
             max_window_layers=src["num_hidden_layers"], rope_scaling=None, use_cache=True)
    os.makedirs(out, exist_ok=True)
    write_json(os.path.join(out, "config.json"), dict(sorted(c.items())))
    shutil.copyfile(os.path.join(STORIES, "tokenizer.model"), os.path.join(out, "tokenizer.model"))
    write_safetensors(os.path.join(out, "model.safetensors"), t, "f32")


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("family", choices=sorted(SHAPES) + ["qwen2-zero-bias"])
    ap.add_argument("outdir")
    ap.add_argument("--dtype", choices=sorted(TORCH_DTYPE), default="f32")
    ap.add_argument("--seed", type=int, help="default: the family's, picked for its margins")
    ap.add_argument("--vocab", type=int, default=0,
                    help="rows of the embedding (default: the tokenizer's ids)")
    ap.add_argument("--shards", type=int, default=1)
    a = ap.parse_args()
    if a.family == "qwen2-zero-bias":
        if a.dtype != "f32" or a.vocab or a.shards != 1:
            ap.error("qwen2-zero-bias keeps stories260K's F32 weights as they are")
        make_qwen2_zero_bias(a.outdir)
    else:
        seed = SHAPES[a.family]["seed"] if a.seed is None else a.seed
        make_family(a.family, a.outdir, a.dtype, seed, a.vocab, a.shards)


if __name__ == "__main__":
    main()
