#!/usr/bin/python3
"""Independent float64 numpy reference for Hugging Face decoder checkpoints (nibble's goldens).

Families: llama (LlamaForCausalLM, Llama-2 and Llama-3.x), qwen2 (Qwen2ForCausalLM, Qwen2/2.5),
qwen3 (Qwen3ForCausalLM).  Written from transformers' semantics, not from nibble's C code.

Usage (Debian's /usr/bin/python3 with python3-numpy; nothing else):
  hf_ref.py logits DIR ID1 ID2 ...       logits after the last id, one per line, 9 digits
  hf_ref.py logits-all DIR ID1 ID2 ...   every position's logits, one line per position
  hf_ref.py greedy DIR N ID1 ID2 ... [--margins]
      Feed the ids at positions 0..n-1, then take the argmax N times (no stopping at end ids) and
      print the N generated ids one per line.  --margins prints on stderr each step's top-1 minus
      top-2 gap, that gap over the step's largest |logit| ("rel"), and the smallest of each.

DIR holds config.json and model.safetensors, or the shards named by model.safetensors.index.json;
tensors F32, F16 or BF16, widened to float64 on load.

Semantics (transformers' modeling_llama / modeling_qwen2 / modeling_qwen3):
  x = embed[id]; per layer: h = rmsnorm(x) * input_layernorm; q, k, v = h W^T (+ bias);
  qwen3: q and k of each head RMS-normalised over head_dim (q_norm, k_norm) before RoPE;
  RoPE rotates the pairs (i, i + hd/2) of every head ("rotate half") by pos * inv_freq[i],
  inv_freq[i] = theta^(-2i/hd), optionally rescaled (rope_scaling linear or llama3);
  causal softmax(q k^T / sqrt(hd)), query head h reads kv head h // (heads / kv_heads);
  x += o_proj(attn) (+ bias); x += down(silu(gate h2) * up h2) with h2 = rmsnorm(x) * post_ln;
  logits = (rmsnorm(x) * norm) lm_head^T (lm_head = embed when tied or absent).
  Biases: llama q,k,v,o iff attention_bias; qwen2 q,k,v always, o never; qwen3 iff attention_bias.

Positions are processed in chunks of CHUNK queries against a growing key/value cache (exactly the
whole-sequence causal computation, but with [heads, CHUNK, T] scores instead of [heads, T, T]),
so a few thousand tokens take seconds.
"""
import json
import math
import os
import struct
import sys

import numpy as np

FAMILIES = {"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM", "qwen3": "Qwen3ForCausalLM"}
CHUNK = 256


# ---------------------------------------------------------------- safetensors, by hand

def read_safetensors(path):
    """{name: float64 array} from one .safetensors file (8-byte LE header size, JSON, data)."""
    raw = open(path, "rb").read()
    (hlen,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + hlen])
    base, out = 8 + hlen, {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        lo, hi = t["data_offsets"]
        buf = raw[base + lo:base + hi]
        n = int(np.prod(t["shape"], dtype=np.int64))
        if t["dtype"] == "F32":
            a = np.frombuffer(buf, "<f4", n)
        elif t["dtype"] == "F16":
            a = np.frombuffer(buf, "<f2", n)
        elif t["dtype"] == "BF16":        # bf16 is the top half of an fp32: shift it back up
            a = (np.frombuffer(buf, "<u2", n).astype(np.uint32) << 16).view(np.float32)
        else:
            raise ValueError(f"{path}: {name}: dtype {t['dtype']} not supported")
        out[name] = a.astype(np.float64).reshape(t["shape"])
    return out


def read_weights(d):
    index = os.path.join(d, "model.safetensors.index.json")
    if not os.path.exists(index):
        return read_safetensors(os.path.join(d, "model.safetensors"))
    wmap = json.load(open(index))["weight_map"]
    W = {}
    for shard in sorted(set(wmap.values())):
        W.update(read_safetensors(os.path.join(d, shard)))
    missing = set(wmap) - set(W)
    if missing:
        raise ValueError(f"{index}: tensors not in their shards: {sorted(missing)[:3]}")
    return W


# ---------------------------------------------------------------- config

def family_of(c):
    fam = c.get("model_type")
    if fam not in FAMILIES or FAMILIES[fam] not in c.get("architectures", [FAMILIES[fam]]):
        raise ValueError(f"model_type {fam!r} / architectures {c.get('architectures')} "
                         "not supported")
    return fam


def rope_settings(c):
    """(theta, scaling dict or None); newer transformers write both into rope_parameters."""
    rp = c.get("rope_parameters")
    if rp is not None:
        return float(rp.get("rope_theta", c.get("rope_theta", 10000.0))), rp
    return float(c.get("rope_theta", 10000.0)), c.get("rope_scaling")


def load_config(d):
    c = json.load(open(os.path.join(d, "config.json")))
    fam = family_of(c)
    if c.get("hidden_act", "silu") != "silu":
        raise ValueError(f"hidden_act {c['hidden_act']!r} not supported")
    if c.get("mlp_bias"):
        raise ValueError("mlp_bias not supported")
    if c.get("partial_rotary_factor", 1.0) != 1.0:
        raise ValueError("partial_rotary_factor not supported")
    if fam != "llama" and c.get("use_sliding_window"):
        raise ValueError("use_sliding_window not supported")
    heads = c["num_attention_heads"]
    theta, scaling = rope_settings(c)
    cfg = dict(family=fam, vocab=c["vocab_size"], dim=c["hidden_size"], ffn=c["intermediate_size"],
               layers=c["num_hidden_layers"], heads=heads,
               kv_heads=c.get("num_key_value_heads") or heads,
               head_dim=c.get("head_dim") or c["hidden_size"] // heads,
               eps=float(c.get("rms_norm_eps", 1e-6)), theta=theta,
               tied=bool(c.get("tie_word_embeddings", False)))
    if heads % cfg["kv_heads"]:
        raise ValueError(f"{heads} heads not a multiple of {cfg['kv_heads']} kv heads")
    bias = bool(c.get("attention_bias", False))
    cfg["qkv_bias"] = bias or fam == "qwen2"
    cfg["o_bias"] = bias and fam != "qwen2"
    cfg["qk_norm"] = fam == "qwen3"
    cfg["inv_freq"] = inv_freq(cfg["head_dim"], theta, scaling)
    return cfg


def inv_freq(hd, theta, scaling):
    """Per-pair angular speeds, float64, with transformers' rope_scaling rules."""
    f = theta ** (-np.arange(0, hd, 2, dtype=np.float64) / hd)
    kind = None if scaling is None else scaling.get("rope_type", scaling.get("type"))
    if kind in (None, "default"):
        return f
    if kind == "linear":
        return f / float(scaling["factor"])
    if kind == "llama3":
        return llama3_scale(f, scaling)
    raise ValueError(f"rope_scaling type {kind!r} not supported")


def llama3_scale(f, s):
    """Llama 3.1: wavelengths longer than old_ctx/low are slowed by `factor`, those shorter than
    old_ctx/high are kept, the band between is a linear blend in old_ctx/wavelength."""
    factor, lo, hi = float(s["factor"]), float(s["low_freq_factor"]), float(s["high_freq_factor"])
    old = float(s["original_max_position_embeddings"])
    wavelen = 2 * math.pi / f
    smooth = (old / wavelen - lo) / (hi - lo)
    blended = (1 - smooth) * f / factor + smooth * f
    out = np.where(wavelen > old / lo, f / factor, blended)
    return np.where(wavelen < old / hi, f, out)


# ---------------------------------------------------------------- weights

def take(W, name, shape):
    if name not in W:
        raise ValueError(f"tensor {name} missing")
    a = W.pop(name)
    if a.shape != tuple(shape):
        raise ValueError(f"tensor {name} has shape {list(a.shape)}, expected {list(shape)}")
    return a


def take_opt(W, name, shape):
    return take(W, name, shape) if name in W else None


def load_layer(cfg, W, i):
    D, F, hd = cfg["dim"], cfg["ffn"], cfg["head_dim"]
    qd, kd = cfg["heads"] * hd, cfg["kv_heads"] * hd
    p = f"model.layers.{i}."
    L = dict(ln1=take(W, p + "input_layernorm.weight", [D]),
             ln2=take(W, p + "post_attention_layernorm.weight", [D]),
             gate=take(W, p + "mlp.gate_proj.weight", [F, D]),
             up=take(W, p + "mlp.up_proj.weight", [F, D]),
             down=take(W, p + "mlp.down_proj.weight", [D, F]))
    for n, rows, cols in (("q", qd, D), ("k", kd, D), ("v", kd, D), ("o", D, qd)):
        L[n] = take(W, f"{p}self_attn.{n}_proj.weight", [rows, cols])
        has_bias = cfg["o_bias"] if n == "o" else cfg["qkv_bias"]
        L[n + "_b"] = take(W, f"{p}self_attn.{n}_proj.bias", [rows]) if has_bias else 0.0
    if cfg["qk_norm"]:
        L["q_norm"] = take(W, p + "self_attn.q_norm.weight", [hd])
        L["k_norm"] = take(W, p + "self_attn.k_norm.weight", [hd])
    return L


def load(d):
    """(cfg, model) with every tensor checked for shape; a tensor left unused is an error."""
    cfg = load_config(d)
    W = read_weights(d)
    D, vocab = cfg["dim"], cfg["vocab"]
    m = dict(embed=take(W, "model.embed_tokens.weight", [vocab, D]),
             layers=[load_layer(cfg, W, i) for i in range(cfg["layers"])],
             norm=take(W, "model.norm.weight", [D]))
    # Tied: transformers points lm_head at the embedding (a stored lm_head.weight is overwritten);
    # untied without lm_head.weight: the embedding, as converters of such folders do.
    if cfg["tied"]:
        W.pop("lm_head.weight", None)
    head = None if cfg["tied"] else take_opt(W, "lm_head.weight", [vocab, D])
    m["lm_head"] = m["embed"] if head is None else head
    left = [n for n in W if not n.endswith("rotary_emb.inv_freq")]
    if left:
        raise ValueError(f"unexpected tensors: {sorted(left)[:4]}")
    return cfg, m


# ---------------------------------------------------------------- forward pass

def rmsnorm(x, w, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def rope(x, pos, inv):
    """x: [T, heads, hd]; rotate the pairs (x[i], x[i + hd/2]) by pos * inv[i]."""
    ang = pos[:, None, None] * inv                                    # [T, 1, hd/2]
    c, s = np.cos(ang), np.sin(ang)
    half = x.shape[-1] // 2
    a, b = x[..., :half], x[..., half:]
    return np.concatenate([a * c - b * s, b * c + a * s], axis=-1)


def attention(cfg, L, h, pos, cache):
    """h: [n, D] at positions pos; cache: dict with k, v [T0, kv, hd] (grown in place)."""
    n, hd = len(h), cfg["head_dim"]
    q = (h @ L["q"].T + L["q_b"]).reshape(n, cfg["heads"], hd)
    k = (h @ L["k"].T + L["k_b"]).reshape(n, cfg["kv_heads"], hd)
    v = (h @ L["v"].T + L["v_b"]).reshape(n, cfg["kv_heads"], hd)
    if cfg["qk_norm"]:                       # per head, over head_dim, before the rotation
        q, k = rmsnorm(q, L["q_norm"], cfg["eps"]), rmsnorm(k, L["k_norm"], cfg["eps"])
    q, k = rope(q, pos, cfg["inv_freq"]), rope(k, pos, cfg["inv_freq"])
    cache["k"] = np.concatenate([cache["k"], k]) if "k" in cache else k
    cache["v"] = np.concatenate([cache["v"], v]) if "v" in cache else v
    rep = cfg["heads"] // cfg["kv_heads"]                             # head h -> kv h // rep
    K = np.repeat(cache["k"], rep, axis=1).transpose(1, 2, 0)         # [H, hd, T]
    V = np.repeat(cache["v"], rep, axis=1).transpose(1, 0, 2)         # [H, T, hd]
    s = q.transpose(1, 0, 2) @ K / math.sqrt(hd)                      # [H, n, T]
    s = s + np.where(np.arange(len(cache["k"]))[None, :] > pos[:, None], -np.inf, 0.0)  # causal
    s = np.exp(s - s.max(axis=-1, keepdims=True))
    s /= s.sum(axis=-1, keepdims=True)
    o = (s @ V).transpose(1, 0, 2).reshape(n, cfg["heads"] * hd)
    return o @ L["o"].T + L["o_b"]


def block(cfg, L, x, pos, cache):
    x = x + attention(cfg, L, rmsnorm(x, L["ln1"], cfg["eps"]), pos, cache)
    h = rmsnorm(x, L["ln2"], cfg["eps"])
    g = h @ L["gate"].T
    return x + (g / (1.0 + np.exp(-g)) * (h @ L["up"].T)) @ L["down"].T


def step(cfg, m, ids, start, caches):
    """Run ids at positions start.. through the model; returns the final hidden states [n, D]."""
    x = m["embed"][np.asarray(ids)]
    pos = np.arange(start, start + len(ids), dtype=np.float64)
    for L, cache in zip(m["layers"], caches):
        x = block(cfg, L, x, pos, cache)
    return x


def logits_of(cfg, m, x):
    return rmsnorm(x, m["norm"], cfg["eps"]) @ m["lm_head"].T


def run(cfg, m, ids, caches=None, start=0, all_rows=False):
    """Feed ids in chunks; returns (logits of the last position or of all, caches)."""
    caches = caches if caches is not None else [{} for _ in m["layers"]]
    rows = []
    for i in range(0, len(ids), CHUNK):
        x = step(cfg, m, ids[i:i + CHUNK], start + i, caches)
        rows.append(logits_of(cfg, m, x if all_rows else x[-1:]))
    out = np.concatenate(rows) if all_rows else rows[-1][0]
    return out, caches


def greedy(cfg, m, ids, n, margins=False):
    logits, caches = run(cfg, m, ids)
    out, gaps, rels = [], [], []
    for i in range(n):
        top2 = np.sort(logits)[-2:]
        nxt = int(np.argmax(logits))
        gaps.append(top2[1] - top2[0])
        rels.append(gaps[-1] / np.abs(logits).max())
        if margins:
            print(f"step {i} id {nxt} margin {gaps[-1]:.6g} rel {rels[-1]:.4g}", file=sys.stderr)
        out.append(nxt)
        logits, caches = run(cfg, m, [nxt], caches, len(ids) + i)
    if margins and n:
        a, r = int(np.argmin(gaps)), int(np.argmin(rels))
        print(f"min margin {gaps[a]:.6g} at step {a} (id {out[a]}); "
              f"min rel {rels[r]:.4g} at step {r}", file=sys.stderr)
    return out


def main(argv):
    if len(argv) < 3 or argv[0] not in ("logits", "logits-all", "greedy"):
        sys.exit(__doc__)
    mode, d = argv[0], argv[1]
    margins = "--margins" in argv
    nums = [int(a) for a in argv[2:] if a != "--margins"]
    cfg, m = load(d)
    if mode == "greedy":
        n, ids = nums[0], nums[1:]
    else:
        ids = nums
    if not ids:
        sys.exit("hf_ref.py: no token ids given")
    bad = [t for t in ids if not 0 <= t < len(m["embed"])]
    if bad:
        sys.exit(f"hf_ref.py: id {bad[0]} outside the vocabulary of {len(m['embed'])}")
    if mode == "greedy":
        print("\n".join(str(t) for t in greedy(cfg, m, ids, n, margins)))
    elif mode == "logits":
        print("\n".join(f"{v:.9g}" for v in run(cfg, m, ids)[0]))
    else:
        for row in run(cfg, m, ids, all_rows=True)[0]:
            print(" ".join(f"{v:.9g}" for v in row))


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except (ValueError, KeyError, OSError) as e:
        sys.exit(f"hf_ref.py: {e}")
