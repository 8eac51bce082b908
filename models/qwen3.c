/* Qwen3 (dense): no biases, but an RMSNorm over each head of q and of k
 * (weights q_norm, k_norm of head_dim) before RoPE, which keeps attention
 * logits bounded; head_dim (128) is its own hyper-parameter, not
 * hidden_size / heads. */
#include "arch.h"

const nb_arch nb_arch_qwen3 = {
    .id = NB_ARCH_QWEN3,
    .name = "qwen3",
    .hf_type = "qwen3",
    .hf_class = "Qwen3ForCausalLM",
    .has = NB_HAS_QK_NORM,
    .about = "Qwen3 (dense)",
};
