#!/usr/bin/python3
"""Checks a folder written by `nibble export --to autoawq` against nibble's own dequantization,
with numpy only and without nibble's importer (not in CI; see docs/export.md).

Usage: check_export.py OUTDIR FAKE.nib
  OUTDIR    the exported folder
  FAKE.nib  the same model quantized with --fake-quant (the same flags as the exported one:
            RTN is deterministic, so its f32 weights are the exported model's (q - z) * s)

The safetensors file is parsed by hand (u64 header length, JSON, data). Each linear P is
dequantized as AutoAWQ's "gemm" layout documents it (awq/utils/packing_utils.py: unpack_awq,
reverse_awq_order, dequantize_gemm; vLLM's awq_dequantize does the same): every int32 of
P.qweight [in, out/8] holds 8 nibbles at shifts 0, 4, ..., 28, in the order
AWQ_ORDER = [0, 2, 4, 6, 1, 3, 5, 7] (so reading them back takes AWQ_REVERSE_ORDER =
[0, 4, 1, 5, 2, 6, 3, 7]); P.qzeros [in/G, out/8] the same for the zero points; P.scales
[in/G, out] fp16; W^T = (iweight - izeros) * scales, repeated over each group of G input rows.
The products are compared in fp32 (what nibble computes) and in fp16 (what AutoAWQ's
dequantize_gemm returns). Plain tensors (embeddings, norms, biases, q/k norms, lm_head) are
compared with the fake-quant file's as fp16 holds them. Prints one line per kind and exits 1 on
any mismatch.
"""
import json
import os
import struct
import sys

import numpy as np

AWQ_REVERSE_ORDER = [0, 4, 1, 5, 2, 6, 3, 7]


def read_safetensors(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    head = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    dt = {"F16": "<f2", "F32": "<f4", "BF16": "<u2", "I32": "<i4"}
    out = {}
    for name, t in head.items():
        if name == "__metadata__":
            continue
        lo, hi = t["data_offsets"]
        a = np.frombuffer(data[lo:hi], dtype=dt[t["dtype"]]).reshape(t["shape"])
        if t["dtype"] == "BF16":
            a = (a.astype(np.uint32) << 16).view(np.float32)
        out[name] = a
    return out


def read_nib(path):
    """name -> float32 array of the plain tensors (f32/f16/bf16) of a .nib file."""
    raw = open(path, "rb").read()
    assert raw[:8] == b"NIBBLE\r\n", "not a nibble file"
    table, n, entry = struct.unpack_from("<QII", raw, 8 + 4 + 4 + 8 * 7)
    out = {}
    for i in range(n):
        e = raw[table + i * entry:table + (i + 1) * entry]
        name = e[:64].split(b"\0")[0].decode()
        dtype, ndims = struct.unpack_from("<II", e, 64)
        shape = struct.unpack_from("<4Q", e, 72)[:ndims]
        off, size = struct.unpack_from("<QQ", e, 104)
        buf = raw[off:off + size]
        if dtype == 0:
            a = np.frombuffer(buf, "<f4")
        elif dtype == 1:
            a = np.frombuffer(buf, "<f2").astype(np.float32)
        elif dtype == 2:
            a = (np.frombuffer(buf, "<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            continue  # packed: the fake-quant file has none among the linears
        out[name] = a.reshape(shape)
    return out


def unpack_gemm(q):
    """[rows, cols/8] int32 -> [rows, cols] codes, AutoAWQ's column order restored."""
    shifts = np.arange(0, 32, 4, dtype=np.uint32)
    w = (q.view(np.uint32)[:, :, None] >> shifts[None, None, :]) & 15
    w = w[:, :, AWQ_REVERSE_ORDER]  # nibble i of a word is column 8c + AWQ_ORDER[i]
    return w.reshape(q.shape[0], -1).astype(np.int32)


def dequant(st, base, group):
    iw, iz = unpack_gemm(st[base + ".qweight"]), unpack_gemm(st[base + ".qzeros"])
    sc = st[base + ".scales"]
    z = np.repeat(iz, group, axis=0)
    s = np.repeat(sc, group, axis=0)
    w32 = ((iw - z).astype(np.float32) * s.astype(np.float32)).T  # [out, in], nibble's fp32
    w16 = ((iw - z).astype(np.float16) * s).T                      # AutoAWQ's fp16 product
    return w32, w16


LINEARS = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
           "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
           "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down"}
PLAIN = {"input_layernorm.weight": "attn_norm", "post_attention_layernorm.weight": "ffn_norm",
         "self_attn.q_proj.bias": "attn_q.bias", "self_attn.k_proj.bias": "attn_k.bias",
         "self_attn.v_proj.bias": "attn_v.bias", "self_attn.q_norm.weight": "attn_q_norm",
         "self_attn.k_norm.weight": "attn_k_norm"}


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    outdir, fake = sys.argv[1], sys.argv[2]
    cfg = json.load(open(os.path.join(outdir, "config.json")))
    q = cfg["quantization_config"]
    assert (q["quant_method"], q["bits"], q["zero_point"], q["version"]) == ("awq", 4, True, "gemm")
    group = q["group_size"]
    st = read_safetensors(os.path.join(outdir, "model.safetensors"))
    nib = read_nib(fake)
    bad, n_lin, worst16 = 0, 0, 0.0
    for i in range(cfg["num_hidden_layers"]):
        for hf, nb in LINEARS.items():
            base, want = f"model.layers.{i}.{hf}", nib[f"blk.{i}.{nb}"]
            w32, w16 = dequant(st, base, group)
            n_lin += 1
            if w32.shape != want.shape or not np.array_equal(w32, want):
                bad += 1
                print(f"MISMATCH {base}: max |diff| {np.abs(w32 - want).max() if w32.shape == want.shape else 'shape'}")
            worst16 = max(worst16, float(np.abs(w16.astype(np.float32) - want).max() /
                                         max(np.abs(want).max(), 1e-30)))
    print(f"{n_lin} linears (group {group}): AutoAWQ-order unpacking, (q - z) * s in fp32 "
          f"{'equal to' if not bad else 'DIFFERS from'} nibble's fake-quant weights bit for bit; "
          f"in fp16 (AutoAWQ's dequantize_gemm) within {worst16:.2e} of the largest |w|")
    plain = {"model.embed_tokens.weight": "token_embd", "model.norm.weight": "output_norm",
             "lm_head.weight": "output"}
    for i in range(cfg["num_hidden_layers"]):
        plain.update({f"model.layers.{i}.{hf}": f"blk.{i}.{nb}" for hf, nb in PLAIN.items()})
    n_plain = 0
    for hf, nb in plain.items():
        if hf not in st:
            continue
        got, want = st[hf].astype(np.float32), nib[nb]
        if st[hf].dtype == np.float16:
            want = want.astype(np.float16).astype(np.float32)
        n_plain += 1
        if got.shape != want.shape or not np.array_equal(got, want):
            bad += 1
            print(f"MISMATCH {hf}")
    print(f"{n_plain} plain tensors equal to the fake-quant file's (as {cfg['torch_dtype']} holds "
          f"them); tie_word_embeddings {cfg['tie_word_embeddings']}, lm_head "
          f"{'present' if 'lm_head.weight' in st else 'absent'}")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
