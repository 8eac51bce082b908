/* What differs between the decoder families nibble runs. All of them are
 * the same pre-norm transformer (RMSNorm, RoPE, grouped-query attention,
 * SwiGLU): a family is a name, where Hugging Face calls it, and the
 * optional blocks it switches on. One small file per family
 * (models/llama.c, qwen2.c, qwen3.c) fills an nb_arch; the forward passes
 * (ref.c, fast.c), the AWQ layer view, the importers and the synthetic
 * models ask it, and never name a family. */
#ifndef NIBBLE_ARCH_H
#define NIBBLE_ARCH_H

#include <stdint.h>

#include "../runtime/base/err.h"
#include "../runtime/model.h"

enum nb_arch_has {
    NB_HAS_QKV_BIAS = 1, /* q, k and v add a bias (not o): Qwen2 */
    NB_HAS_QK_NORM = 2,  /* RMSNorm over each head of q and of k before RoPE: Qwen3 */
};

typedef struct nb_arch {
    uint32_t id;          /* meta.arch */
    const char *name;     /* "qwen2": the file's general.architecture */
    const char *hf_type;  /* config.json's model_type */
    const char *hf_class; /* config.json's architectures[0] */
    unsigned has;         /* enum nb_arch_has */
    const char *about;    /* one line for listings */
} nb_arch;

/* NULL when unknown. */
const nb_arch *nb_arch_by_id(uint32_t id);
const nb_arch *nb_arch_by_hf_type(const char *model_type);

/* "llama, qwen2, qwen3": for messages that list what is supported. */
const char *nb_arch_list(void);

/* RoPE's frequencies may be rescaled for long contexts. */
enum nb_rope_scaling { NB_ROPE_SCALE_NONE = 0, NB_ROPE_SCALE_LINEAR, NB_ROPE_SCALE_LLAMA3 };

typedef struct nb_rope {
    int scaling;            /* enum nb_rope_scaling */
    float factor;           /* linear, llama3 */
    float low_freq_factor;  /* llama3 */
    float high_freq_factor; /* llama3 */
    uint32_t original_ctx;  /* llama3: original_max_position_embeddings */
} nb_rope;

/* What a model's key/value metadata adds to its fixed block, read and
 * checked: the architecture and RoPE scaling. */
typedef struct nb_hparams {
    const nb_arch *arch;
    nb_rope rope;
} nb_hparams;

int nb_hparams_read(const nb_model *m, nb_hparams *hp, nb_err *e);

/* Checks RoPE scaling values (readers and importers). */
int nb_rope_check(const nb_rope *r, nb_err *e);

/* Writes the scaling into key/value metadata (nothing when none). */
struct nb_kvw;
void nb_rope_write(const nb_rope *r, struct nb_kvw *w);

/* inv_freq[i] for i < head_dim / 2: theta^(-2i/head_dim), rescaled as r
 * says (transformers' _compute_llama3_parameters for llama3). The one
 * place RoPE's frequencies are made. */
void nb_rope_freqs(const nb_rope *r, double theta, int head_dim, float *inv_freq);

#endif
