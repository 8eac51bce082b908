#!/usr/bin/env python3
"""Does transformers read a folder of `nibble export --to autoawq` as nibble means it?  Not in CI
(it needs torch and transformers); complements check_export.py, which checks the packed weights
against nibble's own dequantization with numpy only.

Usage: check_export_transformers.py OUTDIR [WORKDIR]

The exported linears are dequantized as AutoAWQ's gemm layout documents it (check_export.py's
unpacking, in fp32) and written with every other tensor into a plain Hugging Face folder: the
exported config.json without its quantization_config, model.safetensors in f32, the tokenizer
files. transformers' AutoModelForCausalLM then loads that folder (CPU: its AWQ kernels need a GPU),
so the config's fields (architecture, head_dim, rope, ties, biases, q/k norms) and the tensor names
are read by transformers itself, and its logits and greedy ids are compared with hf_ref.py, the
float64 numpy reference that nibble's families tests hold nibble to (check_transformers.check:
the same thresholds). A missing or misnamed tensor would be initialised at random by transformers
and fail the comparison.
"""
import json
import os
import shutil
import struct
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True
sys.path.insert(0, HERE)
import check_export  # noqa: E402
import check_transformers  # noqa: E402


def write_safetensors(path, tensors):
    head, off, blobs = {}, 0, []
    for name, a in tensors.items():
        b = np.ascontiguousarray(a, dtype="<f4").tobytes()
        head[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        off += len(b)
        blobs.append(b)
    h = json.dumps(head).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for b in blobs:
            f.write(b)


def plain_folder(outdir, dst):
    cfg = json.load(open(os.path.join(outdir, "config.json")))
    group = cfg.pop("quantization_config")["group_size"]
    cfg["torch_dtype"] = "float32"
    st = check_export.read_safetensors(os.path.join(outdir, "model.safetensors"))
    tensors, bases = {}, {k[:-len(".qweight")] for k in st if k.endswith(".qweight")}
    for base in sorted(bases):
        tensors[base + ".weight"] = check_export.dequant(st, base, group)[0]
    for name, a in st.items():
        if not name.endswith((".qweight", ".qzeros", ".scales")):
            tensors[name] = a.astype(np.float32)
    os.makedirs(dst, exist_ok=True)
    json.dump(cfg, open(os.path.join(dst, "config.json"), "w"), indent=2)
    write_safetensors(os.path.join(dst, "model.safetensors"), tensors)
    for f in os.listdir(outdir):
        if f.startswith("tokenizer") or f == "generation_config.json":
            shutil.copy(os.path.join(outdir, f), dst)
    return len(bases), len(tensors)


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    work = sys.argv[2] if len(sys.argv) == 3 else tempfile.mkdtemp(prefix="exportcheck")
    dst = os.path.join(work, "plain")
    n_lin, n_all = plain_folder(sys.argv[1], dst)
    print(f"{sys.argv[1]}: {n_lin} AWQ linears dequantized, {n_all} tensors in {dst}")
    ok = check_transformers.check(os.path.basename(os.path.normpath(sys.argv[1])), dst)
    print("transformers agrees" if ok else "DISAGREEMENT")
    sys.exit(0 if ok else 1)


main()
