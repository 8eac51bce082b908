/* Qwen2 and Qwen2.5: the LLaMA decoder with a bias on q, k and v (not on
 * o), RoPE theta 1e6, tied embeddings on the small sizes. Some configs
 * ask for sliding-window attention on upper layers (use_sliding_window):
 * the importer refuses those. */
#include "arch.h"

const nb_arch nb_arch_qwen2 = {
    .id = NB_ARCH_QWEN2,
    .name = "qwen2",
    .hf_type = "qwen2",
    .hf_class = "Qwen2ForCausalLM",
    .has = NB_HAS_QKV_BIAS,
    .about = "Qwen2, Qwen2.5",
};
