#!/usr/bin/python3
"""Writes small compressed-tensors (llm-compressor) checkpoints: pack-quantized 4-bit linears.

Usage (Debian's /usr/bin/python3 with python3-numpy; nothing else):
  make_ct.py FAMILY OUTDIR [--group G] [--asym] [--seed N]

FAMILY is one of make_hf.py's (qwen2, qwen3, llama, llama3): its random folder is written first
(make_hf.make_family, bf16), then every decoder linear is rounded to 4-bit ints and stored as
compressed-tensors does (docs/compressed-tensors.md), written from that description and the
library's pack_to_int32, not from nibble's C code:
  P.weight_packed      int32 [out, ceil(in / 8)]: element c of a row in word c // 8, bits
                       4 * (c % 8), as the unsigned nibble q + 8 (q signed in [-8, 7])
  P.weight_scale       bf16 [out, in / G] (G 0: strategy channel, [out, 1])
  P.weight_zero_point  int32 [ceil(out / 8), groups], with --asym only: row r in word r // 8,
                       bits 4 * (r % 8), as z + 8
  P.weight_shape       int64 [2] = [out, in]
lm_head (untied families) stays bf16 and is listed in "ignore". The signed ints go to
OUTDIR/reference.safetensors (P.q int8 [out, in], P.z int8 [out, groups]) for check_ct.py.
Dequantized, a weight is (q - z) * s; scales are bf16 values fp16 holds exactly.
"""
import argparse
import json
import os
import struct
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_hf  # noqa: E402

LINEARS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def pack_int4(v, packed_dim=1):
    """Signed int4 values (int8 array, 2-D) into int32 words, eight per word along packed_dim,
    element i of a word in bits 4i..4i+3 as v + 8; the last word zero-padded."""
    u = (np.asarray(v, dtype=np.int64) + 8).astype(np.uint32)
    if packed_dim == 0:
        u = u.T
    rows, cols = u.shape
    u = np.pad(u, ((0, 0), (0, -cols % 8)))
    words = np.zeros((rows, u.shape[1] // 8), dtype=np.uint32)
    for i in range(8):
        words |= u[:, i::8] << np.uint32(4 * i)
    words = words.view(np.int32)
    return np.ascontiguousarray(words.T if packed_dim == 0 else words)


def to_bf16(a):
    return (make_hf.bf16_bits(a).astype(np.uint32) << 16).view(np.float32)


def quantize(w, group, asym):
    """(q, z, s): signed ints [n, k], zero points [n, g], scales [n, g] (bf16 values)."""
    n, k = w.shape
    g = group or k
    wg = w.reshape(n, k // g, g)
    if asym:
        lo, hi = np.minimum(wg.min(2), 0), np.maximum(wg.max(2), 0)
        s = to_bf16(np.maximum((hi - lo) / 15, 2.0 ** -14))
        z = np.clip(np.round(-8 - lo / s), -8, 7)
    else:
        s = to_bf16(np.maximum(np.abs(wg).max(2) / 7.5, 2.0 ** -14))
        z = np.zeros_like(s)
    q = np.clip(np.round(wg / s[:, :, None]) + z[:, :, None], -8, 7)
    return q.reshape(n, k).astype(np.int8), z.astype(np.int8), s.astype(np.float32)


def write_st(path, tensors):
    """tensors: {name: (dtype name, shape, bytes)}."""
    header, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
    for name in sorted(tensors):
        code, shape, data = tensors[name]
        header[name] = {"dtype": code, "shape": list(shape), "data_offsets": [off, off + len(data)]}
        blobs.append(data)
        off += len(data)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for b in blobs:
            f.write(b)


def quant_config(group, asym):
    weights = {"num_bits": 4, "type": "int", "symmetric": not asym,
               "strategy": "group" if group else "channel", "group_size": group or None,
               "actorder": None, "dynamic": False, "block_structure": None, "observer": "minmax",
               "observer_kwargs": {}}
    return {"quant_method": "compressed-tensors", "format": "pack-quantized",
            "quantization_status": "compressed", "global_compression_ratio": None,
            "config_groups": {"group_0": {"targets": ["Linear"], "weights": weights,
                                          "input_activations": None, "output_activations": None}},
            "ignore": ["lm_head"], "kv_cache_scheme": None, "sparsity_config": {},
            "transform_config": {}, "version": "0.10.2"}


def make(fam, out, group, asym, seed):
    s = make_hf.SHAPES[fam]
    seed = s["seed"] if seed is None else seed
    make_hf.make_family(fam, out, "bf16", seed, None, 1)
    vocab = make_hf.tokenizer_size()
    tensors, ref = {}, {}
    for name, a in make_hf.model_tensors(fam, s, vocab, seed).items():
        base = name[:-len(".weight")]
        if not any(base.endswith(x) for x in LINEARS):
            tensors[name] = ("BF16", a.shape, make_hf.bf16_bits(a).astype("<u2").tobytes())
            continue
        q, z, sc = quantize(a, group, asym)
        tensors[base + ".weight_packed"] = ("I32", (q.shape[0], -(-q.shape[1] // 8)),
                                            pack_int4(q).astype("<i4").tobytes())
        tensors[base + ".weight_scale"] = ("BF16", sc.shape,
                                           make_hf.bf16_bits(sc).astype("<u2").tobytes())
        tensors[base + ".weight_shape"] = ("I64", (2,), np.array(a.shape, "<i8").tobytes())
        if asym:
            zp = pack_int4(z, packed_dim=0)
            tensors[base + ".weight_zero_point"] = ("I32", zp.shape, zp.astype("<i4").tobytes())
        ref[base + ".q"] = ("I8", q.shape, q.tobytes())
        ref[base + ".z"] = ("I8", z.shape, z.tobytes())
    write_st(os.path.join(out, "model.safetensors"), tensors)
    write_st(os.path.join(out, "reference.safetensors"), ref)
    path = os.path.join(out, "config.json")
    cfg = json.load(open(path))
    cfg["quantization_config"] = quant_config(group, asym)
    make_hf.write_json(path, cfg)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("family", choices=sorted(make_hf.SHAPES))
    ap.add_argument("out")
    ap.add_argument("--group", type=int, default=32, help="32 or 64; 0 = per channel")
    ap.add_argument("--asym", action="store_true", help="zero points (symmetric otherwise)")
    ap.add_argument("--seed", type=int)
    a = ap.parse_args()
    make(a.family, a.out, a.group, a.asym, a.seed)


if __name__ == "__main__":
    main()
