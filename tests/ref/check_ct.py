#!/usr/bin/env python3
"""Checks nibble's compressed-tensors import against the compressed-tensors library (off CI).

Usage: check_ct.py BUILD_DIR    (python with `pip install compressed-tensors`: torch, safetensors)

(a) Packing. Random signed int4 arrays packed by make_ct.pack_int4 must be byte for byte what the
    library's pack_to_int32 makes (along rows, and along columns as for zero points); and in the
    fixture folders written by make_ct.py and by the C test's writer (`test_ct TOK --write DIR`),
    weight_packed and weight_zero_point must be pack_to_int32 of the ints kept in
    reference.safetensors.
(b) Values. Each folder is converted by `BUILD_DIR/nibble convert`; the .nib file is read here
    (format.md: header, table, the q4 tiles, scales and zero points) and every packed linear
    dequantized as (q - z) * s in float32. The library's own decompression of the folder's
    tensors (PackedQuantizationCompressor.decompress with the config's scheme) must equal it:
    with the scales as stored (bf16/f16 arithmetic: nibble's exact value rounded once to that
    dtype) and with the scales widened to float32 (exactly).
Prints one line per check and "check_ct: all checks passed" at the end; exits 1 on a mismatch.
"""
import json
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np
import torch
from compressed_tensors.compressors.pack_quantized import PackedQuantizationCompressor
from compressed_tensors.compressors.pack_quantized.helpers import pack_to_int32
from compressed_tensors.quantization import QuantizationArgs, QuantizationScheme
from safetensors.torch import load_file

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_ct  # noqa: E402

TOK = os.path.join(HERE, "..", "data", "stories260K", "tok512.model")
NIB_NAMES = {"self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
             "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
             "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down"}
failures = 0


def check(ok, what):
    global failures
    failures += not ok
    print(("ok: " if ok else "FAILED: ") + what)


# ---------------------------------------------------------------- reading a .nib

def read_nib(path):
    """{name: (dtype, shape, group_size, bytes)} of a nibble file (docs/format.md)."""
    data = open(path, "rb").read()
    h = struct.unpack_from("<8sHHI8QII", data, 0)
    assert h[0] == b"NIBBLE\r\n", path
    table, n, entry = h[11], h[12], h[13]
    out = {}
    for i in range(n):
        e = table + i * entry
        name = data[e:e + 64].split(b"\0")[0].decode()
        dtype, ndims = struct.unpack_from("<II", data, e + 64)
        shape = struct.unpack_from("<4Q", data, e + 72)[:ndims]
        off, size, _crc, group = struct.unpack_from("<QQIH", data, e + 104)
        out[name] = (dtype, shape, group, data[off:off + size])
    return out


def dequant_q4(shape, group, blob):
    """(q - z) * s as float32 [rows, cols], from the q4 layout of format.md."""
    rows, cols = shape
    rows_p, cols_p = -(-rows // 4) * 4, -(-cols // 32) * 32
    ng = -(-cols // group) if group else 1
    wbytes = rows_p // 4 * cols_p // 32 * 64
    b = np.frombuffer(blob, np.uint8)
    tiles = b[:wbytes].reshape(rows_p // 4, cols_p // 32, 4, 4, 4)  # block, tile, vector, row, j
    lo, hi = tiles & 15, tiles >> 4
    # column 8v + j (low nibble) and 8v + 4 + j (high nibble) of the tile
    codes = np.concatenate([lo, hi], axis=4)                       # block, tile, v, row, 8
    codes = codes.transpose(0, 3, 1, 2, 4).reshape(rows_p, cols_p)[:rows, :cols]
    side = lambda a: a.reshape(rows_p // 4, ng, 4).transpose(0, 2, 1).reshape(rows_p, ng)[:rows]
    s = side(np.frombuffer(blob, "<f2", rows_p * ng, wbytes).astype(np.float32))
    z = side(b[wbytes + 2 * rows_p * ng:wbytes + 3 * rows_p * ng])
    gcol = np.arange(cols) // (group or cols)
    return (codes.astype(np.float32) - z[:, gcol]) * s[:, gcol]


# ---------------------------------------------------------------- the checks

def check_packer():
    rng = np.random.default_rng(1)
    for shape in [(5, 37), (16, 128), (9, 64), (128, 3)]:
        v = rng.integers(-8, 8, shape).astype(np.int8)
        for dim in (0, 1):
            lib = pack_to_int32(torch.from_numpy(v), 4, packed_dim=dim).numpy()
            ours = make_ct.pack_int4(v, dim)
            check(lib.shape == ours.shape and lib.tobytes() == ours.tobytes(),
                  f"make_ct.pack_int4 {shape} packed_dim {dim} == pack_to_int32")


def check_folder_bytes(name, folder):
    model = load_file(os.path.join(folder, "model.safetensors"))
    ref = load_file(os.path.join(folder, "reference.safetensors"))
    bases = sorted({k[:-2] for k in ref})
    bad = 0
    for b in bases:
        bad += not torch.equal(pack_to_int32(ref[b + ".q"], 4), model[b + ".weight_packed"])
        if b + ".weight_zero_point" in model:
            zp = pack_to_int32(ref[b + ".z"], 4, packed_dim=0)
            bad += not torch.equal(zp, model[b + ".weight_zero_point"])
    check(not bad, f"{name}: {len(bases)} linears packed as pack_to_int32 packs them")


def check_folder_values(name, folder, build):
    out = folder + ".nib"
    subprocess.run([os.path.join(build, "nibble"), "convert", "-q", folder, "-o", out], check=True)
    nib = read_nib(out)
    cfg = json.load(open(os.path.join(folder, "config.json")))["quantization_config"]
    weights = next(iter(cfg["config_groups"].values()))["weights"]
    scheme = QuantizationScheme(targets=["Linear"], weights=QuantizationArgs(**weights))
    model = load_file(os.path.join(folder, "model.safetensors"))
    bases = sorted(k[:-len(".weight_packed")] for k in model if k.endswith(".weight_packed"))
    bad_native = bad_f32 = 0
    for b in bases:
        layer, part = b.split(".")[2], b.split(".", 3)[3]
        dtype, shape, group, blob = nib[f"blk.{layer}.{NIB_NAMES[part]}"]
        assert dtype == 16, (b, dtype)  # NB_Q4
        ours = torch.from_numpy(dequant_q4(shape, group, blob))
        state = {k.split(".")[-1]: v for k, v in model.items() if k.startswith(b + ".")}
        native = PackedQuantizationCompressor.decompress(state, scheme)["weight"]
        bad_native += not torch.equal(native, ours.to(native.dtype))
        wide = dict(state, weight_scale=state["weight_scale"].float())
        bad_f32 += not torch.equal(PackedQuantizationCompressor.decompress(wide, scheme)["weight"],
                                   ours)
    dt = model[bases[0] + ".weight_scale"].dtype
    check(not bad_native, f"{name}: {len(bases)} linears: library's decompression ({dt}) == "
                          "nibble's (q - z) * s rounded to it")
    check(not bad_f32, f"{name}: {len(bases)} linears: library's decompression (float32 scales) "
                       "== nibble's (q - z) * s exactly")


def main():
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    build = os.path.abspath(sys.argv[1])
    check_packer()
    with tempfile.TemporaryDirectory() as tmp:
        folders = []
        for fam, group, asym in [("qwen3", 32, True), ("qwen2", 64, False), ("llama", 0, True),
                                 ("llama", 0, False)]:
            d = os.path.join(tmp, f"make_ct-{fam}-g{group}-{'asym' if asym else 'sym'}")
            make_ct.make(fam, d, group, asym, None)
            folders.append(d)
        d = os.path.join(tmp, "test_ct-qwen3-g64-asym")
        subprocess.run([os.path.join(build, "tests", "test_ct"), TOK, "--write", d], check=True)
        folders.append(d)
        for d in folders:
            check_folder_bytes(os.path.basename(d), d)
            check_folder_values(os.path.basename(d), d, build)
    print("check_ct: all checks passed" if not failures else f"check_ct: {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
