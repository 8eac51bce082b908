#!/usr/bin/env python3
"""Cross-checks nibble's GGUF reader and importer against llama.cpp's own
Python package `gguf` (its GGUFReader and gguf.quants.dequantize, numpy).
Not part of CI: run it by hand after changing tools/import/gguf.c or import_gguf.c.

    python3 -m venv /tmp/ggufvenv && /tmp/ggufvenv/bin/pip install gguf numpy
    /tmp/ggufvenv/bin/python tests/ref/check_gguf.py BUILD [MODEL.gguf [MODEL.nib]]

1. `BUILD/tests/test_gguf --write DIR` writes a tiny model per tensor type
   (and the file of every metadata value type) with nibble's own writer,
   and imports each. GGUFReader must read every fixture as nibble's reader
   does (`test_gguf --dump`: version, alignment, data offset, every key's
   type and value, arrays by count and hash, every tensor's type, shape,
   offset and size), and every imported tensor must equal
   gguf.quants.dequantize of its source (Q4_0 linears unpacked from
   nibble's INT4 tiles).
2. With MODEL.gguf (SmolLM2-135M-Instruct.Q4_1.gguf, say) and its import
   MODEL.nib (made with BUILD/nibble convert when not given): the same
   tensor comparison over the real model. Prints the max abs difference
   per source type (0 means bit for bit).
"""
import json
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T


def fnv(h, data):
    for b in data:
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


def field_value(f):
    """What test_gguf --dump prints for a field."""
    vt = f.types[0]
    if vt == gguf.GGUFValueType.STRING:
        return {"value": bytes(f.parts[f.data[0]]).decode("utf-8")}
    if vt != gguf.GGUFValueType.ARRAY:
        v = f.parts[f.data[0]][0]
        if vt == gguf.GGUFValueType.BOOL:
            return {"value": bool(v)}
        if vt in (gguf.GGUFValueType.FLOAT32, gguf.GGUFValueType.FLOAT64):
            return {"value": float(v)}
        return {"value": int(v)}
    et = f.types[1] if len(f.types) > 1 else None
    out = {"elem_type": int(et) if et is not None else None, "n": len(f.data)}
    h = 0xcbf29ce484222325
    if et == gguf.GGUFValueType.STRING:
        for i in f.data:
            h = fnv(fnv(h, bytes(f.parts[i])), b"\n")
    elif et != gguf.GGUFValueType.ARRAY:
        for i in f.data:
            v = f.parts[i][0]
            if et in (gguf.GGUFValueType.FLOAT32, gguf.GGUFValueType.FLOAT64):
                s = "%.17g\n" % float(v)
            elif et == gguf.GGUFValueType.BOOL:
                s = "%d\n" % int(bool(v))
            else:
                s = "%d\n" % int(v)
            h = fnv(h, s.encode())
    if et != gguf.GGUFValueType.ARRAY:
        out["fnv"] = "%016x" % h
    else:  # GGUFReader flattens the leaves of nested arrays: their count is not the file's
        del out["n"]
    return out


def check_reader(test_gguf, path):
    """GGUFReader against nibble's reader on one file; returns problems."""
    dump = subprocess.run([test_gguf, "--dump", path], capture_output=True, text=True,
                          check=True).stdout.splitlines()
    items = [json.loads(line) for line in dump]
    head, rest = items[0], items[1:]
    r = gguf.GGUFReader(path)
    bad = []
    if head["version"] != int(r.fields["GGUF.version"].parts[-1][0]):
        bad.append("version")
    if head["alignment"] != r.alignment or head["data_offset"] != r.data_offset:
        bad.append("alignment %s/%s, data offset %s/%s" % (head["alignment"], r.alignment,
                                                          head["data_offset"], r.data_offset))
    kvs = {x["key"]: x for x in rest if "key" in x}
    fields = {k: f for k, f in r.fields.items() if not k.startswith("GGUF.")}
    if set(kvs) != set(fields):
        bad.append("keys differ: %s" % (set(kvs) ^ set(fields)))
    for k in set(kvs) & set(fields):
        ours, theirs = kvs[k], field_value(fields[k])
        if ours["type"] != int(fields[k].types[0]):
            bad.append("%s: type %s vs %s" % (k, ours["type"], fields[k].types[0]))
        for key, v in theirs.items():
            if key == "elem_type" and v is None:
                continue
            if ours.get(key) != v:
                bad.append("%s: %s %r vs %r" % (k, key, ours.get(key), v))
    tensors = {x["tensor"]: x for x in rest if "tensor" in x}
    for t in r.tensors:
        o = tensors.pop(t.name, None)
        if o is None:
            bad.append("tensor %s missing" % t.name)
            continue
        if (o["type"] != int(t.tensor_type) or o["ne"] != [int(x) for x in t.shape] or
                o["offset"] != t.data_offset or o["size"] != t.n_bytes):
            bad.append("tensor %s: %s vs type %s shape %s offset %s size %s" % (
                t.name, o, int(t.tensor_type), list(t.shape), t.data_offset, t.n_bytes))
    bad += ["tensor %s only in nibble's reading" % n for n in tensors]
    return bad


# ---- the nibble file (runtime/nibformat.h) ----

def read_nib(path):
    b = open(path, "rb").read()
    h = struct.unpack_from("<8sHHI8QII2Q", b, 0)
    table, n, esize = h[11], h[12], h[13]
    out = {}
    for i in range(n):
        e = struct.unpack_from("<64sII4QQQIHBB", b, table + i * esize)
        name = e[0].split(b"\0")[0].decode()
        dtype, nd, shape, off, size, group, bits = e[1], e[2], e[3:3 + e[2]], e[7], e[8], e[10], e[11]
        data = b[off:off + size]
        if dtype == 0:
            v = np.frombuffer(data, np.float32).reshape(shape)
        elif dtype == 1:
            v = np.frombuffer(data, np.float16).astype(np.float32).reshape(shape)
        elif dtype == 2:
            v = (np.frombuffer(data, np.uint16).astype(np.uint32) << 16).view(np.float32).reshape(shape)
        elif dtype == 16:
            v = unpack_q4(data, shape[0], shape[1], group)
        else:
            raise SystemExit("%s: dtype %d not handled here" % (name, dtype))
        out[name] = (dtype, v)
    return out


def unpack_q4(data, rows, cols, group):
    rp, cp = (rows + 3) // 4 * 4, (cols + 31) // 32 * 32
    ng = 1 if group == 0 else (cols + group - 1) // group
    wb = rp // 4 * (cp // 32) * 64
    t = np.frombuffer(data[:wb], np.uint8).reshape(rp // 4, cp // 32, 4, 4, 4)  # rb, tile, v, r, j
    codes = np.zeros((rp // 4, cp // 32, 4, 32), np.uint8)  # rb, tile, r, c
    for v in range(4):
        codes[:, :, :, 8 * v:8 * v + 4] = t[:, :, v] & 15
        codes[:, :, :, 8 * v + 4:8 * v + 8] = t[:, :, v] >> 4
    codes = codes.transpose(0, 2, 1, 3).reshape(rp, cp)
    sc = np.frombuffer(data[wb:wb + 2 * rp * ng], np.float16).astype(np.float32)
    sc = sc.reshape(rp // 4, ng, 4).transpose(0, 2, 1).reshape(rp, ng)
    zp = np.frombuffer(data[wb + 2 * rp * ng:wb + 3 * rp * ng], np.uint8)
    zp = zp.reshape(rp // 4, ng, 4).transpose(0, 2, 1).reshape(rp, ng)
    g = np.arange(cp) // (group if group else cp)
    vals = (codes.astype(np.float32) - zp[:, g].astype(np.float32)) * sc[:, g]
    return vals[:rows, :cols]


def nib_name(name):
    return name[:-7] if name.endswith(".weight") else name


def check_values(gguf_path, nib_path, diffs):
    r = gguf.GGUFReader(gguf_path)
    nib = read_nib(nib_path)
    for t in r.tensors:
        want = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32)
        want = want.reshape([int(x) for x in reversed(t.shape)])
        dtype, got = nib[nib_name(t.name)]
        key = t.tensor_type.name + ("->q4" if dtype == 16 else "->f16" if dtype == 1 else "")
        got = np.ascontiguousarray(got, np.float32)
        want = np.ascontiguousarray(want, np.float32)
        d = float(np.max(np.abs(got.astype(np.float64) - want.astype(np.float64)))) if want.size else 0
        same = got.shape == want.shape and np.array_equal(got.view(np.uint32), want.view(np.uint32))
        prev = diffs.get(key, (0, 0.0, True))
        diffs[key] = (prev[0] + 1, max(prev[1], d), prev[2] and bool(same))


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    build = sys.argv[1]
    test_gguf = os.path.join(build, "tests", "test_gguf")
    nibble = os.path.join(build, "nibble")
    problems = 0
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([test_gguf, "--write", tmp], check=True)
        diffs = {}
        for f in sorted(os.listdir(tmp)):
            if not f.endswith(".gguf"):
                continue
            path = os.path.join(tmp, f)
            bad = check_reader(test_gguf, path)
            print("%-22s reader: %s" % (f, "same as GGUFReader" if not bad else "; ".join(bad[:5])))
            problems += len(bad)
            check_values(path, path[:-5] + ".nib", diffs)
        print("fixtures, imported tensors vs gguf.quants.dequantize (tensors, max abs diff, bit-exact):")
        for k, (n, d, same) in sorted(diffs.items()):
            print("  %-10s %3d tensors  max |diff| %.3g  %s" % (k, n, d, "bit for bit" if same else "NOT EXACT"))
            problems += not same
        if len(sys.argv) > 2:
            model = sys.argv[2]
            nib = sys.argv[3] if len(sys.argv) > 3 else os.path.join(tmp, "model.nib")
            if len(sys.argv) <= 3:
                subprocess.run([nibble, "convert", "-q", model, "-o", nib], check=True)
            bad = check_reader(test_gguf, model)
            print("%s reader: %s" % (os.path.basename(model),
                                     "same as GGUFReader" if not bad else "; ".join(bad[:5])))
            problems += len(bad)
            diffs = {}
            check_values(model, nib, diffs)
            print("%s, imported tensors vs gguf.quants.dequantize:" % os.path.basename(model))
            for k, (n, d, same) in sorted(diffs.items()):
                print("  %-10s %3d tensors  max |diff| %.3g  %s" % (k, n, d, "bit for bit" if same else "NOT EXACT"))
                problems += not same
    print("%d problems" % problems)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
