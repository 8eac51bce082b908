/* LLaMA: Llama-2 and -3.x, TinyLlama, Mistral (without sliding window),
 * SmolLM2, llama2.c's models. The plain decoder: no biases, no q/k
 * norms. Llama-3.x adds RoPE scaling of type "llama3" and several end
 * ids, which are metadata, not blocks. */
#include "arch.h"

const nb_arch nb_arch_llama = {
    .id = NB_ARCH_LLAMA,
    .name = "llama",
    .hf_type = "llama",
    .hf_class = "LlamaForCausalLM",
    .has = 0,
    .about = "Llama-2/3.x, SmolLM2, TinyLlama, Mistral, llama2.c",
};
