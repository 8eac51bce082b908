/* The tokenizer of a Hugging Face folder and the ids that end its text.
 *
 * Which file: tokenizer.model when it is a SentencePiece model with as
 * many ids as tokenizer.json (Llama-2, Mistral and TinyLlama folders keep
 * the tokenizer every earlier file was converted with), else
 * tokenizer.json, parsed here into a BPE blob (the only time a
 * tokenizer.json is parsed: the blob loads in milliseconds).
 *
 * The end ids are every id named as an end of text: config.json's
 * eos_token_id (a number or a list), generation_config.json's (the one
 * transformers' generate stops at), and tokenizer_config.json's eos_token
 * (a token's text, looked up in the tokenizer), in that order without
 * repeats. Qwen2.5-Instruct gives <|im_end|> and <|endoftext|>, Llama-3
 * <|eot_id|> and <|end_of_text|>. */
#define _POSIX_C_SOURCE 200809L
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../../runtime/base/utf8.h"
#include "../../tokenizer/tokenizer.h"
#include "convert.h"

#define MAX_CONFIG_BYTES (16u << 20) /* tokenizer_config.json's added_tokens_decoder */

static int is_file(const char *path)
{
    struct stat st;
    return path && !stat(path, &st) && S_ISREG(st.st_mode);
}

/* Ids of the tokenizer at path, 0 when it does not load (or is not of
 * the kind wanted). */
static int ids_of(const char *path, int kind)
{
    size_t size;
    nb_tokenizer *t = NULL;
    void *bytes = nb_tokenizer_file(path, &size, &t, NULL);
    int n = t && nb_tok_kind(t) == kind ? nb_tok_vocab_size(t) : 0;
    nb_tok_free(t);
    free(bytes);
    return n;
}

/* With both files, tokenizer.model stays unless tokenizer.json has more
 * ids: tokens added to a SentencePiece model (TinyLlama-Chat v0.4's
 * <|im_start|>) live only in tokenizer.json. */
static int prefer_model(const char *model, const char *json)
{
    int sp = ids_of(model, NB_TOK_SENTENCEPIECE);
    return sp && sp >= ids_of(json, NB_TOK_BPE);
}

char *nb_hf_tokenizer_path(const char *dir, nb_err *e)
{
    char *model = nb_hf_path(dir, "tokenizer.model"), *json = nb_hf_path(dir, "tokenizer.json");
    char *pick = NULL;
    if (!model || !json)
        nb_fail(e, "out of memory");
    else if (is_file(model) && (!is_file(json) || prefer_model(model, json)))
        pick = model, model = NULL; /* alone, its own errors are the ones to show */
    else if (is_file(json))
        pick = json, json = NULL;
    else
        nb_fail(e, "no tokenizer in '%s': neither tokenizer.model nor tokenizer.json", dir);
    free(model);
    free(json);
    return pick;
}

/* ---- end ids ---- */

typedef struct ends {
    struct nb_meta *m;
    const nb_tokenizer *tok;
    const char *file; /* for messages */
    nb_err *e;
} ends;

static int add_end(ends *x, int64_t id)
{
    struct nb_meta *m = x->m;
    if (id < 0 || id >= (int64_t)m->vocab_size || id >= nb_tok_vocab_size(x->tok) ||
        !nb_tok_piece(x->tok, (int)id))
        return nb_fail(x->e, "%s: end-of-text id %lld is not a token of the tokenizer (%d ids, "
                             "vocabulary %u)",
                       x->file, (long long)id, nb_tok_vocab_size(x->tok), m->vocab_size);
    for (uint32_t i = 0; i < m->n_end_ids; i++)
        if (m->end_ids[i] == id)
            return 0;
    if (m->n_end_ids == NB_MAX_END_IDS)
        return nb_fail(x->e, "%s: more than %d end-of-text ids", x->file, NB_MAX_END_IDS);
    m->end_ids[m->n_end_ids++] = (int32_t)id;
    return 0;
}

/* eos_token_id: a number or a list of them. */
static int add_ids(ends *x, const json_t *v)
{
    if (!v || json_is_null(v))
        return 0;
    int list = json_is_array(v);
    size_t n = list ? json_array_size(v) : 1;
    for (size_t i = 0; i < n; i++) {
        const json_t *a = list ? json_array_get(v, i) : v;
        int64_t id;
        if (nb_json_i64(a, &id))
            return nb_fail(x->e, "%s: eos_token_id must be a token id or a list of them", x->file);
        if (add_end(x, id))
            return -1;
    }
    return 0;
}

/* eos_token: the token's text, or {"content": text}. A text the
 * tokenizer does not have as one token is passed over with a notice. */
static int add_text(ends *x, const json_t *v, int quiet)
{
    if (json_is_object(v))
        v = json_object_get(v, "content");
    const char *s = json_string_value(v);
    if (!s || !s[0])
        return 0;
    int id = nb_tok_piece_to_id(x->tok, s);
    const char *piece = nb_tok_piece(x->tok, id);
    if (piece && !strcmp(piece, s))
        return add_end(x, id);
    if (!quiet) {
        char safe[160];
        fprintf(stderr, "nibble: note: %s: eos_token '%s' is not a token of the tokenizer\n",
                x->file, nb_utf8_escape(safe, sizeof safe, s));
    }
    return 0;
}

/* name's JSON in dir, or NULL without an error when it is absent. */
static json_t *read_json(const char *dir, const char *name, int *rc, nb_err *e)
{
    char *path = nb_hf_path(dir, name);
    json_t *doc = NULL;
    *rc = path ? 0 : nb_fail(e, "out of memory");
    if (is_file(path) && !(doc = nb_json_file(path, MAX_CONFIG_BYTES, e)))
        *rc = -1;
    free(path);
    return doc;
}

int nb_hf_end_ids(const char *dir, const nb_tokenizer *tok, struct nb_meta *m, int quiet,
                  nb_err *e)
{
    static const char *const files[] = {"config.json", "generation_config.json",
                                        "tokenizer_config.json"};
    ends x = {.m = m, .tok = tok, .e = e};
    m->n_end_ids = 0;
    memset(m->end_ids, 0, sizeof m->end_ids);
    for (int i = 0; i < 3; i++) {
        int rc;
        json_t *doc = read_json(dir, files[i], &rc, e);
        x.file = files[i];
        if (!rc)
            rc = i < 2 ? add_ids(&x, json_object_get(doc, "eos_token_id"))
                       : add_text(&x, json_object_get(doc, "eos_token"), quiet);
        json_decref(doc);
        if (rc)
            return -1;
    }
    if (!m->n_end_ids && !quiet)
        fputs("nibble: note: the folder names no end-of-text token: generation will stop only "
              "at -n or a full context\n", stderr);
    if (m->eos_id < 0 && m->n_end_ids)
        m->eos_id = m->end_ids[0];
    return 0;
}

/* ---- the folder's tokenizer, into the model file ---- */

int nb_hf_tokenizer(nb_hf *h, const char *dir, const char *given, int quiet, nb_err *e)
{
    char *path = given ? strdup(given) : nb_hf_tokenizer_path(dir, e);
    if (!path)
        return given ? nb_fail(e, "out of memory") : -1;
    nb_tokenizer *tok = NULL;
    h->vocab = nb_tokenizer_file(path, &h->vocab_size, &tok, e);
    int rc = h->vocab ? 0 : -1;
    struct nb_meta *m = &h->meta;
    if (!rc && (uint32_t)nb_tok_vocab_size(tok) > m->vocab_size)
        rc = nb_fail(e, "tokenizer '%s' has %d ids, more than config.json's vocab_size %u", path,
                     nb_tok_vocab_size(tok), m->vocab_size);
    if (!rc) {
        m->tokenizer_kind = (uint32_t)nb_tok_kind(tok);
        /* What encoding adds before a text, whatever config.json says
         * (Qwen names a bos_token_id its tokenizer never adds). */
        if (m->tokenizer_kind == NB_TOKENIZER_BPE)
            m->bos_id = nb_tok_bos(tok);
        rc = nb_hf_end_ids(dir, tok, m, quiet, e);
    }
    nb_tok_free(tok);
    free(path);
    return rc;
}
