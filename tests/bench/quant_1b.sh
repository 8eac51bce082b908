#!/usr/bin/env bash
# What AWQ costs on a 1B-parameter model: a TinyLlama-1.1B-shaped layer
# stack (dim 2048, ffn 5632, 32 heads, 4 kv heads, context 2048) with
# random weights and the small bundled vocabulary (the vocabulary does not
# enter the per-layer cost), quantized with the defaults (AWQ INT4 g128,
# 65536 calibration tokens of KJV text). Prints the seconds per layer and
# the whole model's estimate (22 layers). Figures, not a test.
#   tests/bench/quant_1b.sh [build dir]        (default: build)
# Environment: NB_LAYERS (default 2), NB_THREADS (default: one per big core),
# NB_CALIB_TOKENS (default 65536).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
. "$root/tests/bench/common.sh"
layers=${NB_LAYERS:-2}
tokens=${NB_CALIB_TOKENS:-65536}

cp "$root/tests/data/stories260K/tok512.model" "$tmp/tokenizer.model"
/usr/bin/python3 - "$tmp" "$layers" <<'EOF'
import json, struct, sys
import numpy as np
out, layers = sys.argv[1], int(sys.argv[2])
dim, ffn, heads, kv, vocab = 2048, 5632, 32, 4, 512
hd = dim // heads
rng = np.random.default_rng(7)
shapes = {"model.embed_tokens.weight": (vocab, dim), "model.norm.weight": (dim,),
          "lm_head.weight": (vocab, dim)}
for l in range(layers):
    p = f"model.layers.{l}."
    shapes.update({p + "self_attn.q_proj.weight": (dim, dim), p + "self_attn.k_proj.weight": (kv * hd, dim),
                   p + "self_attn.v_proj.weight": (kv * hd, dim), p + "self_attn.o_proj.weight": (dim, dim),
                   p + "mlp.gate_proj.weight": (ffn, dim), p + "mlp.up_proj.weight": (ffn, dim),
                   p + "mlp.down_proj.weight": (dim, ffn), p + "input_layernorm.weight": (dim,),
                   p + "post_attention_layernorm.weight": (dim,)})
header, blobs, off = {}, [], 0
for name, shape in shapes.items():
    a = (np.ones(shape) if len(shape) == 1 else rng.normal(0, 0.02, shape)).astype(np.float16)
    b = a.tobytes()
    header[name] = {"dtype": "F16", "shape": list(shape), "data_offsets": [off, off + len(b)]}
    blobs.append(b)
    off += len(b)
h = json.dumps(header).encode()
h += b" " * (-len(h) % 8)
with open(f"{out}/model.safetensors", "wb") as f:
    f.write(struct.pack("<Q", len(h)) + h)
    for b in blobs:
        f.write(b)
json.dump({"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": dim,
           "intermediate_size": ffn, "num_hidden_layers": layers, "num_attention_heads": heads,
           "num_key_value_heads": kv, "vocab_size": vocab, "max_position_embeddings": 2048,
           "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": False,
           "bos_token_id": 1, "eos_token_id": 2, "torch_dtype": "float16"},
          open(f"{out}/config.json", "w"))
EOF

"$nibble" quantize -q -m "$tmp" --calib "$calib" --calib-tokens "$tokens" "${threads[@]}" \
  -o "$tmp/q.nib" >"$tmp/report"
grep -E '^(AWQ|memory|time:)' "$tmp/report"
awk -v layers="$layers" '/done in/ { s += $3; n++ }
  END { if (n) printf "%.1f s per layer over %d layers; a 22-layer 1.1B model: about %.0f min\n",
                     s / n, n, s / n * 22 / 60 }' "$tmp/report"
