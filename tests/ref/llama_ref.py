#!/usr/bin/python3
"""Independent numpy reference for the llama2.c / LLaMA forward pass (golden files for nibble).

Usage (run with Debian's /usr/bin/python3, which has numpy and sentencepiece):
  llama_ref.py greedy MODEL.bin N [--margins]
      Start from BOS (id 1), take the argmax N times, print the N generated ids one per line.
      EOS (id 2) does not stop generation (its steps are reported on stderr).  --margins prints,
      on stderr, the top-1 minus top-2 logit gap of every step and the smallest one.
  llama_ref.py ppl MODEL.bin TOKENIZER.model TEXT.txt [--ctx 256] [--windows 32]
      Tokenize the whole UTF-8 file once with sentencepiece, prepend BOS once, cut the ids into
      non-overlapping windows tokens[w*ctx:(w+1)*ctx] (full windows only, at most `windows`).
      Each window starts at position 0 with nothing cached; tokens 1..ctx-1 of the window are
      scored from those before them.  Prints PPL = exp(mean NLL) with 6 decimals and the number
      of tokens scored.
  llama_ref.py logits MODEL.bin ID1 ID2 ...
      Feed the ids at positions 0..n-1 and print the logits after the last one, 9 significant
      digits, one per line.

Conventions (llama2.c legacy v0 checkpoint, little-endian):
  header 7 x int32: dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len;
  vocab_size > 0 means the classifier is the token embedding, < 0 means a separate one follows
  after the (ignored) RoPE frequency tables.  Then fp32 arrays: tok_emb[V,D], rms_att[L,D],
  wq[L,D,D], wk[L,KV,D], wv[L,KV,D], wo[L,D,D], rms_ffn[L,D], w1[L,H,D], w2[L,D,H], w3[L,H,D],
  rms_final[D], freq_cos[S,hd/2], freq_sin[S,hd/2].  Matrices are [out, in]: y = W @ x.
  RMSNorm x * g / sqrt(mean(x^2) + 1e-5).  RoPE rotates interleaved pairs (x[2i], x[2i+1]) of
  each q/k head by pos * 10000^(-2i/head_dim).  Causal attention scaled by 1/sqrt(head_dim);
  query head h reads kv head h // (n_heads / n_kv_heads).  MLP w2 @ (silu(w1 x) * (w3 x)).

All arithmetic is float64 (the fp32 weights are widened on load) so that the reference is
well clear of the fp32 rounding of the implementation under test.  Positions are processed
as a whole sequence at once (causal mask) rather than with a KV cache.
"""
import sys
import numpy as np


def load(path):
    """Read a llama2.c v0 checkpoint; returns (config dict, dict of float64 arrays)."""
    raw = open(path, "rb").read()
    dim, hid, nl, nh, nkv, vocab, seq = np.frombuffer(raw, "<i4", 7).tolist()
    cfg = dict(dim=dim, hidden=hid, layers=nl, heads=nh, kv_heads=nkv,
               vocab=abs(vocab), seq_len=seq, head_dim=dim // nh)
    kv = nkv * (dim // nh)
    shapes = [("tok_emb", (abs(vocab), dim)), ("rms_att", (nl, dim)),
              ("wq", (nl, dim, dim)), ("wk", (nl, kv, dim)), ("wv", (nl, kv, dim)),
              ("wo", (nl, dim, dim)), ("rms_ffn", (nl, dim)), ("w1", (nl, hid, dim)),
              ("w2", (nl, dim, hid)), ("w3", (nl, hid, dim)), ("rms_final", (dim,)),
              ("freq_cos", (seq, cfg["head_dim"] // 2)), ("freq_sin", (seq, cfg["head_dim"] // 2))]
    if vocab < 0:
        shapes.append(("wcls", (-vocab, dim)))
    W, off = {}, 28
    for name, shape in shapes:
        n = int(np.prod(shape))
        W[name] = np.frombuffer(raw, "<f4", n, off).reshape(shape).astype(np.float64)
        off += 4 * n
    if off != len(raw):
        raise ValueError(f"{path}: expected {off} bytes, file has {len(raw)}")
    W.setdefault("wcls", W["tok_emb"])
    return cfg, W


def rmsnorm(x, g):
    return x * g / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + 1e-5)


def rope(x, pos, head_dim):
    """x: [T, n_heads, head_dim]; rotate the interleaved pairs (x[2i], x[2i+1])."""
    freq = 10000.0 ** (-np.arange(0, head_dim, 2) / head_dim)          # [hd/2]
    ang = pos[:, None, None] * freq                                      # [T,1,hd/2]
    c, s = np.cos(ang), np.sin(ang)
    a, b = x[..., 0::2], x[..., 1::2]
    out = np.empty_like(x)
    out[..., 0::2] = a * c - b * s
    out[..., 1::2] = a * s + b * c
    return out


def forward(cfg, W, tokens):
    """Logits [T, vocab] for every position of `tokens` (positions 0..T-1)."""
    T, nh, nkv, hd = len(tokens), cfg["heads"], cfg["kv_heads"], cfg["head_dim"]
    pos = np.arange(T, dtype=np.float64)
    mask = np.triu(np.full((T, T), -np.inf), 1)                          # causal
    x = W["tok_emb"][np.asarray(tokens)]                                 # [T, D]
    for l in range(cfg["layers"]):
        h = rmsnorm(x, W["rms_att"][l])
        q = rope((h @ W["wq"][l].T).reshape(T, nh, hd), pos, hd)
        k = rope((h @ W["wk"][l].T).reshape(T, nkv, hd), pos, hd)
        v = (h @ W["wv"][l].T).reshape(T, nkv, hd)
        rep = nh // nkv                                                  # head h -> kv h // rep
        k, v = np.repeat(k, rep, axis=1), np.repeat(v, rep, axis=1)
        att = np.einsum("thd,shd->hts", q, k) / np.sqrt(hd) + mask       # [H, T, T]
        att = np.exp(att - att.max(axis=-1, keepdims=True))
        att /= att.sum(axis=-1, keepdims=True)
        o = np.einsum("hts,shd->thd", att, v).reshape(T, nh * hd)
        x = x + o @ W["wo"][l].T
        h = rmsnorm(x, W["rms_ffn"][l])
        g, u = h @ W["w1"][l].T, h @ W["w3"][l].T
        x = x + (g / (1.0 + np.exp(-g)) * u) @ W["w2"][l].T
    return rmsnorm(x, W["rms_final"]) @ W["wcls"].T


def greedy(cfg, W, n, margins=False):
    toks, out, gaps = [1], [], []
    for step in range(n):
        logits = forward(cfg, W, toks)[-1]
        top2 = np.sort(logits)[-2:]
        nxt = int(np.argmax(logits))
        gaps.append(top2[1] - top2[0])
        if margins:
            print(f"step {step} id {nxt} margin {gaps[-1]:.6g}", file=sys.stderr)
        if nxt == 2:
            print(f"EOS at step {step}", file=sys.stderr)
        toks.append(nxt)
        out.append(nxt)
    if margins:
        i = int(np.argmin(gaps))
        print(f"min margin {gaps[i]:.6g} at step {i} (id {out[i]})", file=sys.stderr)
    return out


def ppl(cfg, W, tok_path, text_path, ctx, windows):
    import sentencepiece as spm
    sp = spm.SentencePieceProcessor(model_file=tok_path)
    ids = [1] + sp.encode(open(text_path, encoding="utf-8").read())
    nll, n = 0.0, 0
    for w in range(min(windows, len(ids) // ctx)):
        win = ids[w * ctx:(w + 1) * ctx]
        logits = forward(cfg, W, win)[:-1]                               # predicts win[1:]
        m = logits.max(axis=-1, keepdims=True)
        logp = logits - m - np.log(np.exp(logits - m).sum(axis=-1, keepdims=True))
        nll -= logp[np.arange(ctx - 1), win[1:]].sum()
        n += ctx - 1
    return float(np.exp(nll / n)), n


def main(argv):
    mode, model = argv[0], argv[1]
    cfg, W = load(model)
    if mode == "greedy":
        for t in greedy(cfg, W, int(argv[2]), "--margins" in argv):
            print(t)
    elif mode == "ppl":
        opt = {"--ctx": 256, "--windows": 32}
        for i, a in enumerate(argv):
            if a in opt:
                opt[a] = int(argv[i + 1])
        p, n = ppl(cfg, W, argv[2], argv[3], opt["--ctx"], opt["--windows"])
        print(f"ppl {p:.6f}")
        print(f"tokens {n}")
    elif mode == "logits":
        for v in forward(cfg, W, [int(a) for a in argv[2:]])[-1]:
            print(f"{v:.9g}")
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    main(sys.argv[1:])
