#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const char help[] =
    "usage: nibble info MODEL.nib [--tensors] [--verify]\n"
    "\n"
    "Shows a model file's metadata, tensor summary and sizes.\n"
    "  --tensors   list every tensor (name, dtype, shape, bytes, offset)\n"
    "  --verify    load it as generate would (tokenizer, every tensor the architecture\n"
    "              needs), recompute every tensor's checksum and check its values\n"
    "              (finite floats, zero points in range): reads the whole file\n";

/* The scaling line, when the file asks for one (nb_hparams_read checked
 * it at load). */
static void print_rope_scaling(const nb_model *m)
{
    nb_hparams hp;
    nb_err e;
    if (nb_hparams_read(m, &hp, &e) || hp.rope.scaling == NB_ROPE_SCALE_NONE)
        return;
    if (hp.rope.scaling == NB_ROPE_SCALE_LINEAR)
        printf("            linear scaling, factor %g\n", hp.rope.factor);
    else
        printf("            llama3 scaling: factor %g, low/high freq factors %g/%g, original "
               "context %u\n",
               hp.rope.factor, hp.rope.low_freq_factor, hp.rope.high_freq_factor,
               hp.rope.original_ctx);
}

static void print_meta(const nb_model *m, const char *path)
{
    const struct nb_meta *c = &m->meta;
    printf("file:       %s (%.2f MB, format %u.%u)\n", path, m->size / 1e6,
           m->header->version_major, m->header->version_minor);
    char name[256];
    printf("model:      %s (%s)\n",
           c->name[0] ? nb_utf8_escape(name, sizeof name, c->name) : "(unnamed)",
           nb_arch_name(c->arch));
    printf("dims:       dim %u, layers %u, heads %u, kv heads %u, head dim %u, ffn %u\n", c->dim,
           c->n_layers, c->n_heads, c->n_kv_heads, c->head_dim, c->ffn_dim);
    printf("vocab:      %u tokens (bos %d, eos %d, unk %d, pad %d)\n", c->vocab_size, c->bos_id,
           c->eos_id, c->unk_id, c->pad_id);
    printf("tokenizer:  %s, %zu bytes\n",
           c->tokenizer_kind == NB_TOKENIZER_BPE ? "BPE (from tokenizer.json)" : "SentencePiece",
           m->vocab_size);
    printf("end of text:");
    for (uint32_t i = 0; i < c->n_end_ids; i++)
        printf("%s %d", i ? "," : "", c->end_ids[i]);
    printf("%s\n", c->n_end_ids ? "" : " the tokenizer's EOS");
    printf("context:    %u tokens\n", c->max_ctx);
    printf("rope:       theta %g, %s pairs\n", c->rope_theta,
           c->rope_pairs == NB_ROPE_HALVES ? "rotate-half (x[i], x[i+d/2])"
                                          : "interleaved (x[2i], x[2i+1])");
    print_rope_scaling(m);
    printf("norm eps:   %g\n", c->norm_eps);
    printf("embeddings: %s\n", c->tied_embeddings ? "tied to the output" : "separate output");
    printf("template:   %s\n", c->chat_template[0] ? c->chat_template : "(none: completion)");
}

static void print_tensors(const nb_model *m, int list)
{
    uint64_t params = 0, bytes[32] = {0};
    for (uint32_t i = 0; i < m->n_tensors; i++) {
        const struct nb_tensor_entry *t = &m->table[i];
        uint64_t n = 1;
        for (uint32_t d = 0; d < t->n_dims; d++)
            n *= t->shape[d];
        params += n;
        bytes[t->dtype < 32 ? t->dtype : 31] += t->size;
        if (list)
        {
            char shape[96], name[4 * NB_NAME_LEN];
            printf("  %-24s %-5s %-16s %12llu bytes at %llu\n",
                   nb_utf8_escape(name, sizeof name, t->name), nb_dtype_name(t->dtype),
                   nb_shape_text(shape, sizeof shape, (int)t->n_dims, t->shape),
                   (unsigned long long)t->size, (unsigned long long)t->offset);
        }
    }
    printf("tensors:    %u, %.3f M parameters", m->n_tensors, params / 1e6);
    for (int d = 0; d < 32; d++)
        if (bytes[d])
            printf(", %s %.2f MB", nb_dtype_name((uint32_t)d), bytes[d] / 1e6);
    printf("\n");
}

/* Everything a run would refuse, and what only a full read finds. */
static int verify_file(const char *path)
{
    nb_session s;
    nb_session_opts o = {.reference = 1}; /* binds every tensor; no threads */
    nb_err e = {{0}};
    if (nb_session_open_with(&s, path, 1, &o, &e))
        return nb_error("%s", e.msg);
    int rc = nb_model_verify(&s.model, &e) ? nb_error("%s: %s", path, e.msg) : 0;
    if (!rc)
        printf("checksums:  all %u tensors verified, their values finite; the model loads\n",
               s.model.n_tensors);
    nb_session_close(&s);
    return rc;
}

int cmd_info(int argc, char **argv)
{
    const char *path = NULL;
    int list = 0, verify = 0;
    for (int i = 1; i < argc; i++) {
        if (nb_is_help(argv[i]))
            return fputs(help, stdout), 0;
        if (!strcmp(argv[i], "--tensors"))
            list = 1;
        else if (!strcmp(argv[i], "--verify"))
            verify = 1;
        else if (argv[i][0] == '-' && argv[i][1])
            return nb_error("info: unknown option '%s' (see --help)", argv[i]);
        else if (path)
            return nb_error("info takes one model file");
        else
            path = argv[i];
    }
    if (!path)
        return nb_error("info needs a model file (see nibble info --help)");
    nb_model m;
    nb_err e = {{0}};
    if (nb_model_open(&m, path, &e))
        return nb_error("%s", e.msg);
    print_meta(&m, path);
    print_tensors(&m, list);
    nb_model_close(&m);
    int rc = verify ? verify_file(path) : 0;
    if (fflush(stdout) || ferror(stdout))
        return nb_error("cannot write the output: %s", strerror(errno));
    return rc;
}
