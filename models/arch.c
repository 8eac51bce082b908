/* The families, and the key/value metadata every one of them may carry. */
#include "arch.h"

#include <math.h>
#include <string.h>

#include "../runtime/kv.h"

extern const nb_arch nb_arch_llama, nb_arch_qwen2, nb_arch_qwen3;

static const nb_arch *const all[] = {&nb_arch_llama, &nb_arch_qwen2, &nb_arch_qwen3};
#define N_ARCH (sizeof all / sizeof *all)

const nb_arch *nb_arch_by_id(uint32_t id)
{
    for (size_t i = 0; i < N_ARCH; i++)
        if (all[i]->id == id)
            return all[i];
    return NULL;
}

const nb_arch *nb_arch_by_hf_type(const char *model_type)
{
    for (size_t i = 0; i < N_ARCH; i++)
        if (!strcmp(all[i]->hf_type, model_type))
            return all[i];
    return NULL;
}

const char *nb_arch_list(void)
{
    static char list[128];
    if (!list[0])
        for (size_t i = 0; i < N_ARCH; i++) {
            strcat(list, all[i]->name);
            strcat(list, i + 1 < N_ARCH ? ", " : "");
        }
    return list;
}

int nb_rope_check(const nb_rope *r, nb_err *e)
{
    if (r->scaling == NB_ROPE_SCALE_NONE)
        return 0;
    if (!(r->factor >= 1 && r->factor <= 1024))
        return nb_fail(e, "RoPE scaling factor %g is outside 1..1024", r->factor);
    if (r->scaling == NB_ROPE_SCALE_LINEAR)
        return 0;
    if (r->scaling != NB_ROPE_SCALE_LLAMA3)
        return nb_fail(e, "unknown RoPE scaling type %d", r->scaling);
    if (!(r->low_freq_factor > 0 && r->high_freq_factor > r->low_freq_factor &&
          r->high_freq_factor < 1e6f) ||
        r->original_ctx < 1 || r->original_ctx > (1u << 24))
        return nb_fail(e, "llama3 RoPE scaling needs 0 < low_freq_factor (%g) < "
                          "high_freq_factor (%g) and an original context (%u) in 1..2^24",
                       r->low_freq_factor, r->high_freq_factor, r->original_ctx);
    return 0;
}

static const char *const scaling_names[] = {"none", "linear", "llama3"};

void nb_rope_write(const nb_rope *r, struct nb_kvw *w)
{
    if (r->scaling == NB_ROPE_SCALE_NONE)
        return;
    nb_kvw_str(w, "rope.scaling.type", scaling_names[r->scaling]);
    nb_kvw_f32(w, "rope.scaling.factor", r->factor);
    if (r->scaling != NB_ROPE_SCALE_LLAMA3)
        return;
    nb_kvw_f32(w, "rope.scaling.low_freq_factor", r->low_freq_factor);
    nb_kvw_f32(w, "rope.scaling.high_freq_factor", r->high_freq_factor);
    nb_kvw_u32(w, "rope.scaling.original_context", r->original_ctx);
}

/* A key that must be present once the scaling type says so. */
static int need(const nb_model *m, const char *key, uint32_t type, nb_kv_val *v, nb_err *e)
{
    int r = nb_kv_get(m->kv, m->kv_size, key, type, v, e);
    return r < 0 ? -1 : r ? 0 : nb_fail(e, "metadata key '%s' is missing", key);
}

static int read_rope(const nb_model *m, nb_rope *r, nb_err *e)
{
    nb_kv_val v;
    memset(r, 0, sizeof *r);
    int got = nb_kv_get(m->kv, m->kv_size, "rope.scaling.type", NB_KV_STR, &v, e);
    if (got <= 0)
        return got;
    for (int i = 1; i < 3; i++)
        if (strlen(scaling_names[i]) == v.len && !memcmp(scaling_names[i], v.str, v.len))
            r->scaling = i;
    if (!r->scaling)
        return nb_fail(e, "unknown RoPE scaling type '%.*s' (known: linear, llama3)",
                       (int)(v.len < 32 ? v.len : 32), v.str);
    if (need(m, "rope.scaling.factor", NB_KV_F32, &v, e))
        return -1;
    r->factor = v.f32;
    if (r->scaling == NB_ROPE_SCALE_LLAMA3) {
        if (need(m, "rope.scaling.low_freq_factor", NB_KV_F32, &v, e))
            return -1;
        r->low_freq_factor = v.f32;
        if (need(m, "rope.scaling.high_freq_factor", NB_KV_F32, &v, e))
            return -1;
        r->high_freq_factor = v.f32;
        if (need(m, "rope.scaling.original_context", NB_KV_U32, &v, e))
            return -1;
        r->original_ctx = v.u32;
    }
    return nb_rope_check(r, e);
}

int nb_hparams_read(const nb_model *m, nb_hparams *hp, nb_err *e)
{
    memset(hp, 0, sizeof *hp);
    if (!(hp->arch = nb_arch_by_id(m->meta.arch)))
        return nb_fail(e, "unsupported architecture id %u (known: %s)", m->meta.arch,
                       nb_arch_list());
    return read_rope(m, &hp->rope, e) < 0 ? -1 : 0;
}

/* Llama 3's rule: wavelengths under the original context / high factor
 * keep their frequency, those over original / low are slowed by factor,
 * and the band between blends the two. */
static double llama3_freq(const nb_rope *r, double f)
{
    double pi = 3.14159265358979323846, wavelen = 2 * pi / f, old = r->original_ctx;
    double low_wavelen = old / r->low_freq_factor, high_wavelen = old / r->high_freq_factor;
    if (wavelen < high_wavelen)
        return f;
    if (wavelen > low_wavelen)
        return f / r->factor;
    double smooth = (old / wavelen - r->low_freq_factor) /
                    (r->high_freq_factor - r->low_freq_factor);
    return (1 - smooth) * f / r->factor + smooth * f;
}

void nb_rope_freqs(const nb_rope *r, double theta, int head_dim, float *inv_freq)
{
    for (int i = 0; i < head_dim / 2; i++) {
        double f = pow(theta, -2.0 * i / head_dim);
        if (r->scaling == NB_ROPE_SCALE_LINEAR)
            f /= r->factor;
        else if (r->scaling == NB_ROPE_SCALE_LLAMA3)
            f = llama3_freq(r, f);
        inv_freq[i] = (float)f;
    }
}
