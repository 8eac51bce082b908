/* The JSON and tokenizer files of nibble export --to autoawq: config.json
 * in the family's Hugging Face form (models/arch.h names the class and
 * model_type; tools/hf_config.c reads every key written here back),
 * generation_config.json with the end ids, and the tokenizer.
 *
 * A SentencePiece model travels in the .nib as the .model file's bytes:
 * it is written back as tokenizer.model. A BPE blob is a parsed form of
 * the tokenizer.json (docs/format.md): normalizer and pre-tokenizer
 * sequences are flattened, the post-processor reduced to the ids it adds,
 * offsets and the decoder's options left out, so a tokenizer.json rebuilt
 * from it would not be the original file. Such a model needs --tokenizer
 * DIR, the folder it came from: its tokenizer.json must parse into the
 * very blob the .nib holds, and its tokenizer files are copied. */
#define _POSIX_C_SOURCE 200809L
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../../tokenizer/bpe.h"
#include "../../tokenizer/tokenizer.h"
#include "../import/gguf.h"
#include "export_hf.h"

#define MAX_COPY_BYTES (64u << 20)

/* The shortest decimal that reads back as f (1e-06, not 9.99999997e-07). */
static json_t *real(float f)
{
    char buf[32];
    for (int p = 6; p <= 9; p++) {
        snprintf(buf, sizeof buf, "%.*g", p, (double)f);
        if (strtof(buf, NULL) == f)
            break;
    }
    return json_real(strtod(buf, NULL));
}

static int dump(const char *name, json_t *doc, nb_err *e)
{
    char *text = doc ? json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER |
                                           JSON_REAL_PRECISION(9))
                     : NULL;
    json_decref(doc);
    if (!text)
        return nb_fail(e, "out of memory for %s", name);
    FILE *f = nb_export_create(name, e);
    int rc = f ? 0 : -1;
    if (f) {
        fputs(text, f), fputc('\n', f);
        rc = nb_export_close(f, name, e);
    }
    free(text);
    return rc;
}

static void set_id(json_t *o, const char *key, int32_t id)
{
    if (id >= 0)
        json_object_set_new(o, key, json_integer(id));
}

static json_t *rope_scaling(const nb_rope *r)
{
    if (r->scaling == NB_ROPE_SCALE_NONE)
        return json_null();
    if (r->scaling == NB_ROPE_SCALE_LINEAR)
        return json_pack("{ssso}", "rope_type", "linear", "factor", real(r->factor));
    json_t *s = json_pack("{ss}", "rope_type", "llama3");
    json_object_set_new(s, "factor", real(r->factor));
    json_object_set_new(s, "low_freq_factor", real(r->low_freq_factor));
    json_object_set_new(s, "high_freq_factor", real(r->high_freq_factor));
    json_object_set_new(s, "original_max_position_embeddings", json_integer(r->original_ctx));
    return s;
}

static json_t *quant_config(const nb_export *x)
{
    json_t *q = json_pack("{sssisisbss}", "quant_method", "awq", "bits", 4, "group_size",
                          x->group, "zero_point", 1, "version", "gemm");
    json_object_set(q, "modules_to_not_convert",
                    json_array_size(x->skip) ? x->skip : json_null());
    return q;
}

static void set_shape(json_t *j, const struct nb_meta *c)
{
    const char *keys[] = {"hidden_size", "intermediate_size", "num_hidden_layers",
                          "num_attention_heads", "num_key_value_heads", "head_dim",
                          "max_position_embeddings", "vocab_size"};
    uint32_t v[] = {c->dim,      c->ffn_dim,  c->n_layers, c->n_heads,
                    c->n_kv_heads, c->head_dim, c->max_ctx, c->vocab_size};
    for (size_t i = 0; i < sizeof v / sizeof *v; i++)
        json_object_set_new(j, keys[i], json_integer(v[i]));
}

static json_t *config(const nb_export *x)
{
    const struct nb_meta *c = &x->m.meta;
    const nb_arch *a = x->hp.arch;
    json_t *j = json_pack("{s[s]ss}", "architectures", a->hf_class, "model_type", a->hf_type);
    if (!j)
        return NULL;
    json_object_set_new(j, "_name_or_path", json_string(c->name)); /* NULL: not UTF-8, left out */
    set_shape(j, c);
    json_object_set_new(j, "rms_norm_eps", real(c->norm_eps));
    json_object_set_new(j, "rope_theta", real(c->rope_theta));
    json_object_set_new(j, "rope_scaling", rope_scaling(&x->hp.rope));
    json_object_set_new(j, "hidden_act", json_string("silu"));
    json_object_set_new(j, "tie_word_embeddings", json_boolean(c->tied_embeddings));
    if (!(a->has & NB_HAS_QKV_BIAS)) /* Qwen2 has q/k/v biases whatever it says */
        json_object_set_new(j, "attention_bias", json_false());
    else
        json_object_set_new(j, "use_sliding_window", json_false());
    set_id(j, "bos_token_id", c->bos_id);
    set_id(j, "eos_token_id", c->eos_id);
    set_id(j, "pad_token_id", c->pad_id);
    json_object_set_new(j, "torch_dtype", json_string("float16"));
    json_object_set_new(j, "quantization_config", quant_config(x));
    return j;
}

/* The end ids, config.json's eos first, as the importer collects them. */
static json_t *generation(const struct nb_meta *c)
{
    json_t *g = json_object(), *ids = json_array();
    set_id(g, "bos_token_id", c->bos_id);
    for (uint32_t i = 0; i < c->n_end_ids; i++)
        json_array_append_new(ids, json_integer(c->end_ids[i]));
    if (!c->n_end_ids && c->eos_id >= 0)
        json_array_append_new(ids, json_integer(c->eos_id));
    json_object_set_new(g, "eos_token_id", ids);
    return g;
}

int nb_export_json(const nb_export *x, nb_err *e)
{
    return dump("config.json", config(x), e) ||
                   dump("generation_config.json", generation(&x->m.meta), e)
               ? -1
               : 0;
}

/* ---- the tokenizer ---- */

static int is_file(const char *path)
{
    struct stat st;
    return path && !stat(path, &st) && S_ISREG(st.st_mode);
}

/* --tokenizer FILE.gguf: the tokenizer.json its vocabulary gives, as
 * convert built the model's blob from it (malloc'd), or NULL. */
static char *gguf_json(const char *path, nb_err *e)
{
    nb_gguf g;
    if (nb_gguf_open(&g, path, e))
        return NULL;
    char *text = nb_gguf_tokenizer_json(&g, e);
    nb_gguf_close(&g);
    if (!text) {
        char why[sizeof e->msg];
        snprintf(why, sizeof why, "%s", e->msg);
        nb_fail(e, "--tokenizer %s: %s", path, why);
    }
    return text;
}

/* The tokenizer bytes --tokenizer gives (a folder's tokenizer.json or
 * tokenizer.model, or a GGUF file's vocabulary), as convert made them. */
static void *given_tokenizer(const char *given, int bpe, size_t *size, char **path, nb_err *e)
{
    nb_tokenizer *tok = NULL;
    void *bytes = NULL;
    if (bpe && nb_gguf_is(given)) {
        *path = strdup(given);
        char *text = gguf_json(given, e);
        bytes = text ? nb_bpe_from_json_text(text, strlen(text), size, e) : NULL;
        free(text);
        return bytes;
    }
    *path = nb_hf_path(given, bpe ? "tokenizer.json" : "tokenizer.model");
    bytes = *path ? nb_tokenizer_file(*path, size, &tok, e) : NULL;
    nb_tok_free(tok);
    return bytes;
}

int nb_export_check_tokenizer(const nb_export *x, nb_err *e)
{
    int bpe = x->m.meta.tokenizer_kind == NB_TOKENIZER_BPE;
    const char *given = x->o->tokenizer_dir;
    if (!given && !bpe)
        return 0;
    if (!given)
        return nb_fail(e, "the model's tokenizer is a BPE blob, from which the original "
                          "tokenizer.json cannot be rebuilt: give --tokenizer DIR, the folder it "
                          "was converted from (or the GGUF file)");
    size_t size = 0;
    char *path = NULL;
    void *bytes = given_tokenizer(given, bpe, &size, &path, e);
    int rc = bytes ? 0 : -1;
    if (bytes && (size != x->m.vocab_size || memcmp(bytes, x->m.vocab, size)))
        rc = nb_fail(e, "'%s' is not the tokenizer this model was converted with", path);
    free(bytes), free(path);
    return rc;
}

static int write_bytes(const char *name, const void *p, size_t n, nb_err *e)
{
    FILE *f = nb_export_create(name, e);
    if (!f)
        return -1;
    fwrite(p, 1, n, f);
    return nb_export_close(f, name, e);
}

/* The tokenizer files --tokenizer DIR may hold, copied when they exist. */
static const char *const tok_files[] = {"tokenizer.json", "tokenizer.model",
                                        "tokenizer_config.json", "special_tokens_map.json",
                                        "added_tokens.json", "vocab.json", "merges.txt",
                                        "chat_template.jinja"};

int nb_export_hf_file(const char *name)
{
    if (!strcmp(name, "config.json") || !strcmp(name, "generation_config.json"))
        return 1;
    for (size_t i = 0; i < sizeof tok_files / sizeof *tok_files; i++)
        if (!strcmp(name, tok_files[i]))
            return 1;
    return 0;
}

/* The tokenizer files of DIR that exist; *has_config when
 * tokenizer_config.json was one of them. */
static int copy_files(const char *dir, int *has_config, nb_err *e)
{
    int rc = 0;
    for (size_t i = 0; i < sizeof tok_files / sizeof *tok_files && !rc; i++) {
        char *path = nb_hf_path(dir, tok_files[i]);
        size_t size;
        void *p = is_file(path) ? nb_read_file(path, MAX_COPY_BYTES, &size, e) : NULL;
        if (is_file(path))
            rc = p ? write_bytes(tok_files[i], p, size, e) : -1;
        *has_config |= p && i == 2;
        free(p), free(path);
    }
    return rc;
}

static void set_piece(json_t *o, const char *key, const nb_tokenizer *tok, int32_t id)
{
    const char *s = id >= 0 ? nb_tok_piece(tok, id) : NULL;
    if (s)
        json_object_set_new(o, key, json_string(s));
}

/* When DIR has none (always for a SentencePiece model without DIR): the
 * special tokens transformers' tokenizer classes need, and the chat
 * template the .nib keeps. */
static json_t *tokenizer_config(const nb_export *x)
{
    const struct nb_meta *c = &x->m.meta;
    nb_tokenizer *tok = nb_tok_load_bytes(x->m.vocab, x->m.vocab_size, NULL);
    int sp = c->tokenizer_kind == NB_TOKENIZER_SENTENCEPIECE;
    json_t *j = json_pack("{ss}", "tokenizer_class", sp ? "LlamaTokenizer" : "PreTrainedTokenizerFast");
    if (!tok || !j)
        return nb_tok_free(tok), json_decref(j), NULL;
    set_piece(j, "bos_token", tok, c->bos_id);
    set_piece(j, "eos_token", tok, c->eos_id);
    set_piece(j, "unk_token", tok, c->unk_id >= 0 ? c->unk_id : nb_tok_unk(tok));
    set_piece(j, "pad_token", tok, c->pad_id);
    json_object_set_new(j, "add_bos_token", json_boolean(c->bos_id >= 0));
    json_object_set_new(j, "add_eos_token", json_false());
    json_object_set_new(j, "model_max_length", json_integer(c->max_ctx));
    nb_kv_val v;
    if (x->m.kv && nb_kv_get(x->m.kv, x->m.kv_size, "tokenizer.chat_template", NB_KV_STR, &v,
                             NULL) == 1)
        json_object_set_new(j, "chat_template", json_stringn(v.str, v.len));
    nb_tok_free(tok);
    return j;
}

/* A GGUF file's tokenizer.json (nb_export_check_tokenizer has checked it). */
static int write_gguf_json(const char *path, nb_err *e)
{
    char *text = gguf_json(path, e);
    int rc = text ? write_bytes("tokenizer.json", text, strlen(text), e) : -1;
    free(text);
    return rc;
}

int nb_export_tokenizer(const nb_export *x, nb_err *e)
{
    int has_config = 0;
    const char *given = x->o->tokenizer_dir;
    int rc = !given                ? write_bytes("tokenizer.model", x->m.vocab, x->m.vocab_size, e)
             : nb_gguf_is(given) ? write_gguf_json(given, e)
                                 : copy_files(given, &has_config, e);
    if (rc)
        return -1;
    return has_config ? 0 : dump("tokenizer_config.json", tokenizer_config(x), e);
}
