/* GGUF import (tools/gguf.c, tools/import_gguf.c), on files written here:
 *   - a tiny llama per tensor type (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0,
 *     Q5_1, Q2_K..Q6_K) imported and compared bit for bit: F32/F16/BF16
 *     byte for byte, Q4_0 linears repacked into NB_Q4 whose dequantized
 *     rows equal ggml's, Q8_0 exactly (f16 when every value is one, else
 *     f32), the other types dequantized as ggml does; qwen2 (biases) and
 *     qwen3 (q/k norms, key_length apart from dim / heads) files;
 *   - stories260K from its Hugging Face safetensors with q and k permuted
 *     as llama.cpp's converter does, and tok512's pieces as a "llama"
 *     (SentencePiece) vocabulary: the import equals the llama2.c import of
 *     the same model tensor for tensor (RoPE on interleaved pairs), and
 *     tokenizes as tok512.model;
 *   - byte-level BPE vocabularies of tests/bpe (SmolLM-style, and Qwen3's
 *     and Llama-3's when given) written as llama.cpp does: the imported
 *     tokenizer gives the Hugging Face library's ids on their case files;
 *   - hostile files: one line each, nothing written.
 * usage: test_gguf TOK512 STORIES260K_DIR BPE_CASES_DIR TEXT [QWEN3_JSON] [?LLAMA3_JSON]
 *        test_gguf --write DIR    fixtures for tests/ref/check_gguf.py
 *        test_gguf --dump FILE    what nibble's reader sees, one JSON line per item
 *        test_gguf --seeds DIR    the fuzz corpus (tests/fuzz/corpus/gguf) */
#define _POSIX_C_SOURCE 200809L
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../models/net.h"
#include "../neon/f16.h"
#include "../neon/qpack.h"
#include "../runtime/model.h"
#include "../runtime/qtensor.h"
#include "../tokenizer/tokenizer.h"
#include "../tools/import/convert.h"
#include "../tools/import/gguf.h"
#include "../tools/import/safetensors.h"
#include "gguf_fixtures.h"
#include "testutil.h"

/* ---- comparing an import with its source ---- */

static const char *nib_name(const char *gguf, char *out)
{
    size_t n = strlen(gguf);
    snprintf(out, NB_NAME_LEN, "%s", gguf);
    if (n > 7 && !strcmp(gguf + n - 7, ".weight"))
        out[n - 7] = 0;
    return out;
}

/* Every tensor of the GGUF against the imported model; q8_exact_f16:
 * whether Q8_0 tensors must have come out as f16. */
static void compare(const char *what, const gw *w, const nb_model *m, int out_dtype)
{
    for (size_t i = 0; i < w->n_t; i++) {
        const gt *g = &w->t[i];
        char name[NB_NAME_LEN];
        nb_tensor t;
        if (!nb_model_find(m, nib_name(g->name, name), &t)) {
            CHECK(0, "%s: %s missing", what, name);
            continue;
        }
        const struct nb_tensor_entry *en = t.entry;
        size_t n = (size_t)(g->ne[0] * g->ne[1]);
        float *want = malloc(n * sizeof *want), *got = malloc(n * sizeof *got);
        nb_ggml_dequant(g->type, g->data, n, want);
        int plain_src = g->type == NB_GGML_F32 || g->type == NB_GGML_F16 || g->type == NB_GGML_BF16;
        int norm = g->n_dims == 1;
        if (en->dtype == NB_Q4) {
            CHECK(g->type == NB_GGML_Q4_0 && en->group_size == 32, "%s: %s packed from %s", what,
                  name, nb_ggml_type_name(g->type));
            nb_qlayout l;
            nb_err e;
            CHECK(!nb_qentry_layout(en, &l, &e), "%s", e.msg);
            for (size_t r = 0; r < l.rows; r++)
                nb_qrow_ref(&l, t.data, r, got + r * l.cols);
        } else if (plain_src && !norm && out_dtype < 0) {
            uint32_t d = g->type == NB_GGML_F32 ? NB_F32 : g->type == NB_GGML_F16 ? NB_F16 : NB_BF16;
            CHECK(en->dtype == d && en->size == g->size && !memcmp(t.data, g->data, g->size),
                  "%s: %s not copied byte for byte", what, name);
            memcpy(got, want, n * sizeof *got);
        } else {
            uint32_t d = en->dtype;
            if (norm || (out_dtype < 0 && g->type != NB_GGML_Q8_0 && g->type != NB_GGML_Q4_0))
                CHECK(d == NB_F32, "%s: %s is %s", what, name, nb_dtype_name(d));
            if (out_dtype >= 0 && !norm)
                CHECK(d == (uint32_t)out_dtype, "%s: %s is %s", what, name, nb_dtype_name(d));
            for (size_t k = 0; k < n; k++) {
                uint16_t h;
                if (d == NB_F32)
                    memcpy(&got[k], (const char *)t.data + 4 * k, 4);
                else {
                    memcpy(&h, (const char *)t.data + 2 * k, 2);
                    got[k] = d == NB_F16 ? nb_f16_to_f32(h) : nb_bf16_to_f32(h);
                }
                if (out_dtype >= 0 && !norm) /* asked for: rounded as the converter rounds */
                    want[k] = d == NB_F16 ? nb_f16_to_f32(nb_f32_to_f16(want[k]))
                              : d == NB_BF16 ? nb_bf16_to_f32(nb_f32_to_bf16(want[k]))
                                            : want[k];
            }
        }
        CHECK(!memcmp(got, want, n * sizeof *got), "%s: %s (%s) differs from ggml's values", what,
              name, nb_ggml_type_name(g->type));
        free(want);
        free(got);
    }
}

static int import(const gw *w, const char *name, int out_dtype, nb_model *m, nb_err *e)
{
    char in[1024], out[1024]; /* tu_tmp's buffer is reused */
    snprintf(in, sizeof in, "%s", tu_tmp("in.gguf"));
    snprintf(out, sizeof out, "%s", tu_tmp(name));
    nb_convert_opts o = {.out_dtype = out_dtype, .quiet = 1};
    if (gw_write(w, in) || nb_import_gguf(in, out, &o, e))
        return -1;
    return nb_model_open(m, out, e);
}

static void check_runs(const char *what, const nb_model *m)
{
    nb_net net;
    nb_err e;
    if (nb_net_init(&net, m, 8, &e)) {
        CHECK(0, "%s: does not bind: %s", what, e.msg);
        return;
    }
    const float *logits = nb_net_forward(&net, 3, 0);
    int finite = 1;
    for (uint32_t i = 0; i < m->meta.vocab_size; i++)
        finite &= isfinite(logits[i]);
    CHECK(finite, "%s: non-finite logits", what);
    nb_net_free(&net);
}

static void test_types(void)
{
    for (size_t i = 0; i < N_TYPES; i++) {
        gw w;
        spec s = type_spec(all_types[i], i);
        tiny_model(&w, &s, 100 + i);
        for (int pass = 0; pass < (all_types[i] == NB_GGML_Q4_K ? 2 : 1); pass++) {
            nb_model m;
            nb_err e;
            int dt = pass ? NB_F16 : -1;
            char what[64];
            snprintf(what, sizeof what, "%s%s", nb_ggml_type_name(all_types[i]),
                     pass ? " --dtype f16" : "");
            if (import(&w, "t.nib", dt, &m, &e)) {
                CHECK(0, "%s: %s", what, e.msg);
                continue;
            }
            compare(what, &w, &m, dt);
            CHECK(m.meta.rope_pairs == NB_ROPE_INTERLEAVED && m.meta.vocab_size == TINY_VOCAB &&
                      m.meta.tied_embeddings == (s.otype == (uint32_t)-1) &&
                      !strcmp(m.meta.chat_template, "chatml") && m.meta.n_end_ids == 1 &&
                      m.meta.end_ids[0] == 262 && m.meta.bos_id == -1,
                  "%s: metadata (template '%s')", what, m.meta.chat_template);
            check_runs(what, &m);
            nb_model_close(&m);
        }
        gw_free(&w);
    }
    /* Q8_0 whose values are all f16 (scale 2^-7, 8-bit codes): kept as f16 */
    gw w;
    spec s = type_spec(NB_GGML_Q8_0, 0);
    tiny_model(&w, &s, 7);
    for (size_t b = 0; b < w.t[0].size / 34; b++)
        put_f16(w.t[0].data + 34 * b, 1.0f / 128);
    nb_model m;
    nb_err e;
    nb_tensor t;
    if (!import(&w, "q8.nib", -1, &m, &e)) {
        compare("Q8_0 exact in f16", &w, &m, -1);
        CHECK(nb_model_find(&m, NB_T_EMBED, &t) && t.entry->dtype == NB_F16,
              "Q8_0 of f16 values not kept as f16");
        CHECK(nb_model_find(&m, "blk.0.attn_q", &t) && t.entry->dtype == NB_F32,
              "Q8_0 with random scales not kept as f32");
        nb_model_close(&m);
    } else
        CHECK(0, "Q8_0 exact: %s", e.msg);
    gw_free(&w);
}

static void test_families(void)
{
    spec q2 = {"qwen2", 64, 4, 2, 16, 96, 2, NB_GGML_F16, NB_GGML_F32, (uint32_t)-1};
    spec q3 = {"qwen3", 64, 4, 2, 32, 96, 2, NB_GGML_BF16, NB_GGML_F32, NB_GGML_F32};
    const spec *ss[2] = {&q2, &q3};
    for (int i = 0; i < 2; i++) {
        gw w;
        nb_model m;
        nb_err e;
        tiny_model(&w, ss[i], 40 + (uint64_t)i);
        if (import(&w, "fam.nib", -1, &m, &e)) {
            CHECK(0, "%s: %s", ss[i]->arch, e.msg);
        } else {
            compare(ss[i]->arch, &w, &m, -1);
            CHECK(m.meta.arch == (i ? NB_ARCH_QWEN3 : NB_ARCH_QWEN2) &&
                      m.meta.rope_pairs == NB_ROPE_HALVES && m.meta.head_dim == ss[i]->head_dim,
                  "%s: metadata", ss[i]->arch);
            check_runs(ss[i]->arch, &m);
            nb_model_close(&m);
        }
        gw_free(&w);
    }
}

/* ---- stories260K: llama.cpp's permutation, a SentencePiece vocabulary ---- */

static void test_stories(const char *tok512, const char *dir, const char *text_path)
{
    char path[1024];
    nb_err e;
    snprintf(path, sizeof path, "%s/hf/model.safetensors", dir);
    nb_st *st = nb_st_open_file(path, &e);
    size_t msize;
    uint8_t *model = tu_read(tok512, &msize);
    if (!st || !model) {
        CHECK(0, "cannot read stories260K: %s", st ? tok512 : e.msg);
        return;
    }
    static spm_piece pieces[1024];
    size_t np = spm_pieces(model, msize, pieces, 1024);
    CHECK(np == 512, "tok512 has %zu pieces", np);
    const char *toks[512];
    float scores[512];
    int32_t types[512];
    for (size_t i = 0; i < np; i++)
        toks[i] = pieces[i].s, scores[i] = pieces[i].score, types[i] = pieces[i].type;
    gw w;
    gw_init(&w);
    w.version = 2;
    w.align = 64;
    spec s = {"llama", 64, 8, 4, 8, 172, 5, 0, 0, 0};
    hparams(&w, &s);
    gw_u32(&w, "general.alignment", 64);
    gw_str(&w, "tokenizer.ggml.model", "llama");
    gw_strs(&w, "tokenizer.ggml.tokens", toks, np);
    gw_arr(&w, "tokenizer.ggml.scores", NB_GGUF_F32, scores, np, 4);
    gw_arr(&w, "tokenizer.ggml.token_type", NB_GGUF_I32, types, np, 4);
    gw_u32(&w, "tokenizer.ggml.bos_token_id", 1);
    gw_u32(&w, "tokenizer.ggml.eos_token_id", 2);
    gw_u32(&w, "tokenizer.ggml.unknown_token_id", 0);
    for (size_t i = 0; i < nb_st_count(st); i++) {
        const nb_st_tensor *t = nb_st_at(st, i);
        char name[96];
        int l = -1;
        const char *part = t->name;
        if (sscanf(t->name, "model.layers.%d.", &l) == 1)
            part = strchr(t->name + 13, '.') + 1;
        static const char *const map[][2] = {
            {"model.embed_tokens.weight", "token_embd.weight"},
            {"model.norm.weight", "output_norm.weight"},
            {"input_layernorm.weight", "attn_norm.weight"},
            {"post_attention_layernorm.weight", "ffn_norm.weight"},
            {"self_attn.q_proj.weight", "attn_q.weight"},
            {"self_attn.k_proj.weight", "attn_k.weight"},
            {"self_attn.v_proj.weight", "attn_v.weight"},
            {"self_attn.o_proj.weight", "attn_output.weight"},
            {"mlp.gate_proj.weight", "ffn_gate.weight"},
            {"mlp.up_proj.weight", "ffn_up.weight"},
            {"mlp.down_proj.weight", "ffn_down.weight"}};
        const char *to = NULL;
        for (size_t k = 0; k < sizeof map / sizeof *map; k++)
            if (!strcmp(part, map[k][0]))
                to = map[k][1];
        if (!to)
            continue; /* lm_head: tied */
        if (l >= 0)
            snprintf(name, sizeof name, "blk.%d.%s", l, to);
        else
            snprintf(name, sizeof name, "%s", to);
        float *data = malloc(t->size);
        memcpy(data, t->data, t->size);
        int q = strstr(to, "attn_q.") != NULL, k = strstr(to, "attn_k.") != NULL;
        if (q || k) {
            float *src = malloc(t->size);
            memcpy(src, data, t->size);
            unpermute(data, src, q ? 8 : 4, 8, (int)t->shape[1]);
            free(src);
        }
        gw_tensor(&w, name, NB_GGML_F32, (uint32_t)t->n_dims,
                  t->shape[t->n_dims - 1], t->n_dims > 1 ? t->shape[0] : 1, data, NULL);
        free(data);
    }
    nb_st_close(st);
    /* the reference: the llama2.c checkpoint, which keeps Meta's rows */
    char bin[1024];
    snprintf(bin, sizeof bin, "%s/stories260K.bin", dir);
    nb_convert_opts o = {.out_dtype = -1, .tokenizer_path = tok512, .quiet = 1};
    nb_model ref, m;
    if (nb_import_llama2c(bin, tu_tmp("ref.nib"), &o, &e) ||
        nb_model_open(&ref, tu_tmp("ref.nib"), &e)) {
        CHECK(0, "llama2.c import: %s", e.msg);
        goto out;
    }
    if (import(&w, "stories.nib", -1, &m, &e)) {
        CHECK(0, "stories260K GGUF: %s", e.msg);
        nb_model_close(&ref);
        goto out;
    }
    CHECK(m.n_tensors == ref.n_tensors, "%u tensors, llama2.c import %u", m.n_tensors,
          ref.n_tensors);
    for (uint32_t i = 0; i < ref.n_tensors; i++) {
        const struct nb_tensor_entry *r = &ref.table[i];
        nb_tensor t;
        CHECK(nb_model_find(&m, r->name, &t) && t.entry->dtype == r->dtype &&
                  t.entry->size == r->size && !memcmp(t.data, ref.base + r->offset, r->size),
              "stories260K: %s differs from the llama2.c import", r->name);
    }
    CHECK(m.meta.rope_pairs == ref.meta.rope_pairs && m.meta.tokenizer_kind == 0 &&
              m.meta.bos_id == 1 && m.meta.eos_id == 2,
          "stories260K: metadata");
    /* the synthesized SentencePiece model tokenizes as tok512.model */
    nb_tokenizer *a = nb_tok_load_file(tok512, &e), *b = nb_tok_load_bytes(m.vocab, m.vocab_size, &e);
    size_t tsize;
    char *text = tu_read(text_path, &tsize);
    CHECK(a && b && text, "tokenizers or text: %s", e.msg);
    if (a && b && text) {
        int lines = 0;
        /* GGUF does not say remove_extra_whitespaces (tok512 has it on; Llama-2's and
         * Mistral's are off, as llama.cpp reads every file): texts with single spaces */
        size_t k = 0;
        for (size_t i = 0; i < tsize; i++)
            if (!(text[i] == ' ' && (!k || text[k - 1] == ' ' || text[k - 1] == '\n' ||
                                     (i + 1 < tsize && text[i + 1] == '\n'))))
                text[k++] = text[i];
        text[k] = 0;
        for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n"), lines++) {
            int32_t *x = NULL, *y = NULL;
            size_t nx = 0, ny = 0;
            nb_tok_encode(a, line, strlen(line), 1, &x, &nx, &e);
            nb_tok_encode(b, line, strlen(line), 1, &y, &ny, &e);
            CHECK(nx == ny && !memcmp(x, y, nx * 4), "SentencePiece from GGUF: line %d differs",
                  lines);
            free(x), free(y);
        }
        CHECK(lines > 10, "only %d lines", lines);
    }
    free(text);
    nb_tok_free(a), nb_tok_free(b);
    nb_model_close(&m);
    nb_model_close(&ref);
out:
    for (size_t i = 0; i < np; i++)
        free(pieces[i].s);
    free(model);
    gw_free(&w);
}

/* ---- byte-level BPE vocabularies as llama.cpp writes them ---- */

static void test_bpe(const char *json_path, const char *cases, const char *pre, int add_bos)
{
    json_error_t je;
    json_t *doc = json_load_file(json_path, 0, &je);
    if (!doc) {
        CHECK(0, "%s: %s", json_path, je.text);
        return;
    }
    json_t *vocab = json_object_get(json_object_get(doc, "model"), "vocab");
    json_t *merges = json_object_get(json_object_get(doc, "model"), "merges");
    json_t *added = json_object_get(doc, "added_tokens");
    size_t n = json_object_size(vocab), nm = json_array_size(merges);
    for (size_t i = 0; i < json_array_size(added); i++) {
        size_t id = (size_t)json_integer_value(json_object_get(json_array_get(added, i), "id"));
        n = id + 1 > n ? id + 1 : n;
    }
    const char **toks = calloc(n, sizeof *toks), **ms = calloc(nm + 1, sizeof *ms);
    int32_t *types = calloc(n, sizeof *types);
    char **own = calloc(nm + 1, sizeof *own);
    const char *key;
    json_t *v;
    json_object_foreach(vocab, key, v)
    {
        toks[json_integer_value(v)] = key;
        types[json_integer_value(v)] = 1;
    }
    int32_t bos = -1;
    for (size_t i = 0; i < json_array_size(added); i++) {
        json_t *t = json_array_get(added, i);
        size_t id = (size_t)json_integer_value(json_object_get(t, "id"));
        toks[id] = json_string_value(json_object_get(t, "content"));
        types[id] = json_is_true(json_object_get(t, "special")) ? 3 : 4;
        if (!strcmp(toks[id], "<|begin_of_text|>"))
            bos = (int32_t)id;
    }
    for (size_t i = 0; i < nm; i++) {
        json_t *m = json_array_get(merges, i);
        if (json_is_string(m))
            ms[i] = json_string_value(m);
        else {
            const char *a = json_string_value(json_array_get(m, 0));
            const char *b = json_string_value(json_array_get(m, 1));
            own[i] = malloc(strlen(a) + strlen(b) + 2);
            sprintf(own[i], "%s %s", a, b);
            ms[i] = own[i];
        }
    }
    int holes = 0;
    for (size_t i = 0; i < n; i++)
        holes += !toks[i];
    CHECK(!holes, "%s: %d ids without a token", json_path, holes);
    gw w;
    spec s = {"llama", 32, 2, 1, 16, 32, 1, NB_GGML_F16, NB_GGML_F16, (uint32_t)-1};
    uint64_t seed = 5;
    gw_init(&w);
    hparams(&w, &s);
    gw_str(&w, "tokenizer.ggml.model", "gpt2");
    gw_str(&w, "tokenizer.ggml.pre", pre);
    gw_strs(&w, "tokenizer.ggml.tokens", toks, n);
    gw_arr(&w, "tokenizer.ggml.token_type", NB_GGUF_I32, types, n, 4);
    gw_strs(&w, "tokenizer.ggml.merges", ms, nm);
    if (bos >= 0)
        gw_u32(&w, "tokenizer.ggml.bos_token_id", (uint32_t)bos);
    gw_bool(&w, "tokenizer.ggml.add_bos_token", add_bos);
    gw_tensor(&w, "token_embd.weight", NB_GGML_F16, 2, 32, n, NULL, &seed);
    gw_tensor(&w, "output_norm.weight", NB_GGML_F32, 1, 32, 0, NULL, &seed);
    const char *parts[] = {"attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm",
                           "ffn_gate", "ffn_up", "ffn_down"};
    uint64_t in[] = {32, 32, 32, 32, 32, 32, 32, 32, 32}, outd[] = {0, 32, 16, 16, 32, 0, 32, 32, 32};
    for (int p = 0; p < 9; p++) {
        char name[64];
        snprintf(name, sizeof name, "blk.0.%s.weight", parts[p]);
        gw_tensor(&w, name, outd[p] ? NB_GGML_F16 : NB_GGML_F32, outd[p] ? 2 : 1, in[p], outd[p],
                  NULL, &seed);
    }
    nb_model m;
    nb_err e;
    if (import(&w, "bpe.nib", -1, &m, &e)) {
        CHECK(0, "%s as GGUF: %s", json_path, e.msg);
        goto out;
    }
    nb_tokenizer *tok = nb_tok_load_bytes(m.vocab, m.vocab_size, &e);
    CHECK(tok && m.meta.bos_id == (add_bos ? bos : -1), "%s: tokenizer (bos %d)", json_path,
          m.meta.bos_id);
    FILE *f = fopen(cases, "r");
    char line[1 << 16];
    int n_cases = 0, bad = 0;
    while (tok && f && fgets(line, sizeof line, f)) {
        json_t *c = json_loads(line, 0, NULL);
        json_t *text = json_object_get(c, "text"), *ids = json_object_get(c, "ids");
        if (json_is_string(text)) {
            int32_t *got = NULL;
            size_t ng = 0;
            int ok = !nb_tok_encode(tok, json_string_value(text), json_string_length(text), 0,
                                    &got, &ng, &e) &&
                     ng == json_array_size(ids);
            for (size_t i = 0; ok && i < ng; i++)
                ok = got[i] == json_integer_value(json_array_get(ids, i));
            bad += !ok;
            if (!ok && bad < 4)
                fprintf(stderr, "%s: case %d differs: %.80s\n", json_path, n_cases, line);
            n_cases++;
            free(got);
        }
        json_decref(c);
    }
    if (f)
        fclose(f);
    CHECK(n_cases > 50 && !bad, "%s: %d of %d cases differ", json_path, bad, n_cases);
    printf("%s from GGUF (pre %s): %d cases, %d differ\n", json_path, pre, n_cases, bad);
    if (bos >= 0 && tok) {
        int32_t *got = NULL;
        size_t ng = 0;
        nb_tok_encode(tok, "Hi", 2, 1, &got, &ng, &e);
        CHECK(ng && got[0] == bos, "add_bos_token: no BOS first");
        free(got);
    }
    nb_tok_free(tok);
    nb_model_close(&m);
out:
    for (size_t i = 0; i < nm; i++)
        free(own[i]);
    free(own), free(ms), free(toks), free(types);
    gw_free(&w);
    json_decref(doc);
}

/* ---- hostile files ---- */

static void patch_u64(uint8_t *p, uint64_t v)
{
    memcpy(p, &v, 8);
}

/* Imports bytes that must be refused with one line holding want. */
static void refused(const char *what, const uint8_t *p, size_t n, const char *want)
{
    char in[1024], out[1024];
    snprintf(in, sizeof in, "%s", tu_tmp("bad.gguf"));
    snprintf(out, sizeof out, "%s", tu_tmp("bad.nib"));
    FILE *f = fopen(in, "wb");
    fwrite(p, 1, n, f);
    fclose(f);
    nb_convert_opts o = {.out_dtype = -1, .quiet = 1};
    nb_err e = {{0}};
    int rc = nb_import_gguf(in, out, &o, &e);
    CHECK(rc && strstr(e.msg, want) && !strchr(e.msg, '\n') && access(out, F_OK) != 0,
          "%s: want '%s', got rc %d '%s'", what, want, rc, e.msg);
    if (rc)
        printf("%-28s %s\n", what, e.msg);
}

static void refused_gw(const char *what, const gw *w, const char *want)
{
    size_t n;
    uint8_t *p = gw_build(w, &n);
    refused(what, p, n, want);
    free(p);
}

static void test_hostile(void)
{
    spec s = small_spec();
    gw w;
    size_t n;
    tiny_model(&w, &s, 9);
    uint8_t *base = gw_build(&w, &n);
    nb_gguf g;
    nb_err e;
    CHECK(!nb_gguf_open_mem(&g, base, n, &e), "the base fixture: %s", e.msg);
    uint64_t end = 0;
    for (size_t i = 0; i < g.n_tensors; i++)
        end = g.tensors[i].offset + g.tensors[i].size > end ? g.tensors[i].offset + g.tensors[i].size
                                                            : end;
    uint64_t data_at = g.data_offset;
    nb_gguf_close(&g);
    /* every cut before the data, and many inside it */
    int accepted = 0;
    for (size_t cut = 0; cut < end; cut += cut < data_at + 64 ? 1 : 61) {
        nb_gguf h;
        if (!nb_gguf_open_mem(&h, base, cut, &e))
            accepted++;
        nb_gguf_close(&h);
    }
    CHECK(!accepted, "%d truncations accepted", accepted);
    refused("truncated (header)", base, 20, "truncated");
    refused("truncated (key/values)", base, data_at / 2, "");
    refused("truncated (data)", base, (size_t)(data_at + (end - data_at) / 2), "past the end");
    uint8_t *p = malloc(n);
#define MUTATE(what, off, v, want) \
    (memcpy(p, base, n), patch_u64(p + (off), v), refused(what, p, n, want))
    memcpy(p, base, n);
    p[4] = 4;
    refused("version 4", p, n, "GGUF version 4 is not supported (only 2 and 3)");
    p[4] = 1;
    refused("version 1", p, n, "version 1 is not supported");
    MUTATE("huge tensor count", 8, 1ull << 60, "claims 1152921504606846976 tensors");
    MUTATE("huge key/value count", 16, 1ull << 60, "claims 1152921504606846976 key/values");
    MUTATE("key length past the end", 24, 1ull << 40, "past the end of the file");
    memcpy(p, base, n);
    p[0] = 'X';
    refused("not GGUF", p, n, "no GGUF magic");
    free(p);
    free(base);
    gw_free(&w);
    /* variants written as such */
    struct variant {
        const char *what, *want;
    } v[] = {
        {"unknown tensor type", "has an unknown type 99"},
        {"5 dimensions", "has 5 dimensions (1 to 4)"},
        {"data past the end", "past the end of the file"},
        {"overflowing shape", "its shape overflows"},
        {"shape against the metadata", "has shape [32, 48], but the metadata implies [32, 32]"},
        {"IQ2_XXS tensor", "is IQ2_XXS: nibble imports"},
        {"unsupported architecture", "unsupported architecture 'falcon' (supported: llama, qwen2, "
                                     "qwen3)"},
        {"string length past the end", "claims a string of 1099511627776 bytes, past the end"},
        {"huge array count", "claims 1152921504606846976 elements"},
        {"duplicate key", "the key 'general.name' appears twice"},
        {"alignment 48", "general.alignment 48 is not a power of two"},
        {"unknown value type", "has unknown value type 13"},
        {"unknown pre-tokenizer", "tokenizer.ggml.pre 'mystery' is a pre-tokenizer nibble does "
                                  "not know"},
        {"unknown tokenizer model", "tokenizer.ggml.model 'bert' is not supported"},
        {"missing tensor", "tensor 'blk.0.ffn_up.weight' is missing"},
        {"unexpected tensor", "unexpected tensor 'blk.7.attn_q.weight'"},
        {"rows not whole blocks", "rows of 40 elements are not whole Q4_0 blocks of 32"},
        {"token count over vocab", "the tokenizer has 264 tokens; token_embd has 200 rows"},
        {"partial RoPE", "RoPE over 8 of the 16 dimensions"},
        {"yarn scaling", "RoPE scaling 'yarn' is not supported"},
    };
    for (size_t i = 0; i < sizeof v / sizeof *v; i++) {
        spec t = small_spec();
        if (i == 6)
            t.arch = "falcon";
        tiny_model(&w, &t, 10 + i);
        gt *q = find_gt(&w, "blk.0.attn_q.weight");
        uint64_t seed = 3;
        switch (i) {
        case 0: q->type = 99; break;
        case 1: q->n_dims = 5; break; /* the writer puts ne[0..3]; the 5th reads the type */
        case 2: w.t[w.n_t - 1].size = 16; break;
        case 3: q->ne[0] = 1ull << 40, q->ne[1] = 1ull << 40; break;
        case 4: q->ne[0] = 48, q->size = 48 * 32 * 4, q->data = realloc(q->data, q->size); break;
        case 5: q->type = 16, q->ne[0] = 256, q->ne[1] = 4; q->size = 66 * 4;
                q->data = realloc(q->data, q->size); break;
        case 7: gw_key(&w, "x.bad", NB_GGUF_STR), put_u64(&w.kv, 1ull << 40); break;
        case 8: gw_key(&w, "x.arr", NB_GGUF_ARR), put_u32(&w.kv, NB_GGUF_U8),
                put_u64(&w.kv, 1ull << 60); break;
        case 9: gw_str(&w, "general.name", "again"); break;
        case 10: gw_u32(&w, "general.alignment", 48); break;
        case 11: gw_key(&w, "x.odd", 13), put_u32(&w.kv, 0); break;
        default: break;
        }
        if (i == 12 || i == 13) { /* rebuild the key/values with another tokenizer */
            gw w2;
            gw_init(&w2);
            hparams(&w2, &t);
            gw_str(&w2, "tokenizer.ggml.model", i == 12 ? "gpt2" : "bert");
            gw_str(&w2, "tokenizer.ggml.pre", "mystery");
            const char *toks[] = {"a"};
            gw_strs(&w2, "tokenizer.ggml.tokens", toks, 1);
            gw_strs(&w2, "tokenizer.ggml.merges", toks, 0);
            free(w.kv.p);
            w.kv = w2.kv, w.n_kv = w2.n_kv;
        }
        if (i == 14) {
            gt *u = find_gt(&w, "blk.0.ffn_up.weight");
            free(u->data);
            *u = w.t[--w.n_t];
        }
        if (i == 15)
            gw_tensor(&w, "blk.7.attn_q.weight", NB_GGML_F32, 1, 4, 0, NULL, &seed);
        if (i == 16)
            q->type = NB_GGML_Q4_0, q->ne[0] = 40;
        if (i == 17) {
            gt *em = find_gt(&w, "token_embd.weight");
            em->ne[1] = 200;
            em->size = 200 * 32 * 4;
        }
        if (i == 18)
            gw_u32(&w, "llama.rope.dimension_count", 8);
        if (i == 19) {
            gw_str(&w, "llama.rope.scaling.type", "yarn");
            gw_f32(&w, "llama.rope.scaling.factor", 4);
        }
        refused_gw(v[i].what, &w, v[i].want);
        gw_free(&w);
    }
}

static void test_reader(void)
{
    spec s = small_spec();
    gw w;
    tiny_model(&w, &s, 11);
    kv_variety(&w);
    size_t n;
    uint8_t *p = gw_build(&w, &n);
    nb_gguf g;
    nb_err e;
    uint64_t u;
    double d;
    const char *str;
    size_t len;
    int b;
    CHECK(!nb_gguf_open_mem(&g, p, n, &e), "variety: %s", e.msg);
    CHECK(nb_gguf_get_uint(&g, "variety.i64_scalar", UINT64_MAX, &u, &e) == 1 &&
              u == 1ull << 40, "i64 scalar");
    CHECK(nb_gguf_get_float(&g, "variety.f64_scalar", &d, &e) == 1 && d == 1.5, "f64 scalar");
    CHECK(nb_gguf_get_uint(&g, "llama.block_count", 0, &u, &e) == -1 &&
              strstr(e.msg, "out of range"), "range: %s", e.msg);
    CHECK(nb_gguf_get_str(&g, "llama.block_count", &str, &len, &e) == -1 &&
              strstr(e.msg, "is a u32, not a string"), "type: %s", e.msg);
    CHECK(nb_gguf_get_bool(&g, "tokenizer.ggml.add_bos_token", &b, &e) == 1 && !b, "bool");
    CHECK(nb_gguf_get_uint(&g, "no.such.key", 5, &u, &e) == 0, "absent key");
    const nb_gguf_kv *kv = nb_gguf_find(&g, "variety.i16");
    CHECK(kv && nb_gguf_arr_int(kv, 0) == -300 && nb_gguf_arr_float(kv, 1) == 300, "i16 array");
    kv = nb_gguf_find(&g, "variety.f64");
    CHECK(kv && nb_gguf_arr_float(kv, 1) == -0.25, "f64 array");
    CHECK(g.version == 3 && g.alignment == 32 && g.data_offset % 32 == 0, "header");
    nb_gguf_close(&g);
    /* the file imports, the unknown keys ignored */
    nb_model m;
    if (!import(&w, "variety.nib", -1, &m, &e))
        nb_model_close(&m);
    else
        CHECK(0, "variety import: %s", e.msg);
    free(p);
    gw_free(&w);
}

int main(int argc, char **argv)
{
    if (argc == 3 && !strcmp(argv[1], "--dump"))
        return dump(argv[2]);
    if (argc == 3 && !strcmp(argv[1], "--write"))
        return write_fixtures(argv[2]);
    if (argc == 3 && !strcmp(argv[1], "--seeds"))
        return write_seeds(argv[2]);
    if (argc < 5) {
        fprintf(stderr, "usage: test_gguf TOK512 STORIES260K_DIR BPE_CASES_DIR TEXT "
                        "[QWEN3_JSON] [?LLAMA3_JSON]\n");
        return 2;
    }
    test_reader();
    test_types();
    test_families();
    test_hostile();
    test_stories(argv[1], argv[2], argv[4]);
    char json[1024], cases[1024];
    snprintf(json, sizeof json, "%s/smollm.json", argv[3]);
    snprintf(cases, sizeof cases, "%s/smollm.cases.jsonl", argv[3]);
    test_bpe(json, cases, "smollm", 0);
    if (argc > 5 && argv[5][0]) {
        snprintf(cases, sizeof cases, "%s/qwen3.cases.jsonl", argv[3]);
        test_bpe(argv[5], cases, "qwen2", 0);
    }
    if (argc > 6) {
        const char *p = argv[6] + (argv[6][0] == '?');
        snprintf(cases, sizeof cases, "%s/llama3.cases.jsonl", argv[3]);
        if (access(p, F_OK) == 0)
            test_bpe(p, cases, "llama-bpe", 1);
        else
            printf("skipped: Llama-3's tokenizer (%s absent)\n", p);
    }
    tu_cleanup();
    return tu_finish("gguf");
}
