/* The tokenizer API (tokenizer.h) over its two kinds: each call goes to
 * the SentencePiece shim (spm.h) or the BPE tokenizer (bpe.h). What the
 * kinds do differently is said once, in tokenizer.h. */
#include "tokenizer.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bpe_int.h"
#include "spm.h"
#include "../runtime/base/utf8.h"

struct nb_tokenizer {
    int kind;
    nb_spm *spm;
    nb_bpe *bpe;
    int bos;          /* BPE: the post-processor's one prefix id, else -1 */
    size_t max_piece; /* BPE: longest piece */
};

int nb_tok_bytes_kind(const void *data, size_t size)
{
    return data && size >= 8 && memcmp(data, NB_BPE_MAGIC, 8) == 0 ? NB_TOK_BPE
                                                                    : NB_TOK_SENTENCEPIECE;
}

static nb_tokenizer *wrap_bpe(nb_bpe *b)
{
    nb_tokenizer *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->kind = NB_TOK_BPE;
    t->bpe = b;
    const int32_t *pre;
    t->bos = nb_bpe_prefix_ids(b, &pre) == 1 ? pre[0] : -1;
    for (int id = 0; id < nb_bpe_vocab_size(b); id++) {
        size_t len = 0;
        if (nb_bpe_piece(b, id, &len) && len > t->max_piece)
            t->max_piece = len;
    }
    return t;
}

nb_tokenizer *nb_tok_load_bytes(const void *data, size_t size, nb_err *e)
{
    if (!data && size) {
        nb_fail(e, "nb_tok_load_bytes: no data");
        return NULL;
    }
    if (nb_tok_bytes_kind(data, size) == NB_TOK_SENTENCEPIECE) {
        nb_spm *s = nb_spm_load_bytes(data, size, e);
        nb_tokenizer *t = s ? calloc(1, sizeof *t) : NULL;
        if (s && !t)
            nb_fail(e, "out of memory");
        if (!t) {
            nb_spm_free(s);
            return NULL;
        }
        t->kind = NB_TOK_SENTENCEPIECE;
        t->spm = s;
        return t;
    }
    nb_bpe *b = nb_bpe_load_bytes(data, size, e);
    nb_tokenizer *t = b ? wrap_bpe(b) : NULL;
    if (b && !t) {
        nb_bpe_free(b);
        nb_fail(e, "out of memory");
    }
    return t;
}

static size_t blanks(const char *s, size_t i, size_t n)
{
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
        i++;
    return i;
}

/* A JSON object opens with '{' then '"' or '}' (after blanks, and a
 * byte-order mark first). A SentencePiece model cannot: its first byte
 * may be '\n' (a field tag) and its second '{' (a length), but its third
 * is a field tag again, never '"'; a blob starts with its magic. */
int nb_tok_is_json(const void *data, size_t n)
{
    const char *s = data;
    size_t i = blanks(s, n >= 3 && !memcmp(s, "\xEF\xBB\xBF", 3) ? 3 : 0, n);
    if (i == n || s[i] != '{')
        return 0;
    i = blanks(s, i + 1, n);
    return i < n && (s[i] == '"' || s[i] == '}');
}

static char *read_all(const char *path, size_t *size, nb_err *e)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        nb_fail(e, "tokenizer %s: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = NULL;
    size_t len = 0, cap = 0, got;
    int err = 0;
    do {
        if (len == cap) {
            char *p = realloc(buf, cap = cap ? 2 * cap : 1 << 16);
            if (!p) {
                err = ENOMEM;
                break;
            }
            buf = p;
        }
        got = fread(buf + len, 1, cap - len, f);
        len += got;
    } while (got);
    if (!err && ferror(f))
        err = errno ? errno : EIO;
    fclose(f);
    if (err) {
        free(buf);
        nb_fail(e, "tokenizer %s: read error: %s", path, strerror(err));
        return NULL;
    }
    *size = len;
    return buf;
}

/* A message without the words the path replaces. */
static const char *bare(const char *msg)
{
    static const char *const drop[] = {"tokenizer bytes: ", "tokenizer: "};
    for (size_t i = 0; i < sizeof drop / sizeof *drop; i++)
        if (!strncmp(msg, drop[i], strlen(drop[i])))
            return msg + strlen(drop[i]);
    return msg;
}

nb_tokenizer *nb_tok_load_file(const char *path, nb_err *e)
{
    if (!path) {
        nb_fail(e, "nb_tok_load_file: no path");
        return NULL;
    }
    size_t size = 0;
    char *data = read_all(path, &size, e);
    if (!data)
        return NULL;
    nb_tokenizer *t = NULL;
    nb_err why;
    if (nb_tok_is_json(data, size)) {
        size_t blob_size;
        void *blob = nb_bpe_from_json_text(data, size, &blob_size, &why);
        t = blob ? nb_tok_load_bytes(blob, blob_size, &why) : NULL;
        free(blob);
    } else {
        t = nb_tok_load_bytes(data, size, &why);
    }
    free(data);
    if (!t)
        nb_fail(e, "tokenizer %s: %s", path, bare(why.msg));
    return t;
}

void nb_tok_free(nb_tokenizer *t)
{
    if (!t)
        return;
    nb_spm_free(t->spm);
    nb_bpe_free(t->bpe);
    free(t);
}

int nb_tok_kind(const nb_tokenizer *t)
{
    return t->kind;
}

int nb_tok_vocab_size(const nb_tokenizer *t)
{
    return !t ? 0 : t->bpe ? nb_bpe_vocab_size(t->bpe) : nb_spm_vocab_size(t->spm);
}

int nb_tok_bos(const nb_tokenizer *t)
{
    return !t ? -1 : t->bpe ? t->bos : nb_spm_bos(t->spm);
}

int nb_tok_eos(const nb_tokenizer *t)
{
    return !t || t->bpe ? -1 : nb_spm_eos(t->spm);
}

int nb_tok_unk(const nb_tokenizer *t)
{
    return !t || t->bpe ? -1 : nb_spm_unk(t->spm);
}

int nb_tok_pad(const nb_tokenizer *t)
{
    return !t || t->bpe ? -1 : nb_spm_pad(t->spm);
}

int nb_tok_encode(const nb_tokenizer *t, const char *text, size_t len, int bos, int32_t **ids,
                  size_t *n, nb_err *e)
{
    if (ids)
        *ids = NULL;
    if (n)
        *n = 0;
    if (!t || !ids || !n || (!text && len))
        return nb_fail(e, "nb_tok_encode: bad arguments");
    text = text ? text : "";
    /* SentencePiece would quietly map bad bytes to something; we refuse
     * them, with the same words for both kinds. */
    size_t bad = nb_utf8_bad_offset((const unsigned char *)text, len);
    if (bad < len)
        return nb_fail(e, "tokenizer: invalid UTF-8 at byte offset %zu (byte 0x%02X)", bad,
                       (unsigned char)text[bad]);
    if (!t->bpe)
        return nb_spm_encode(t->spm, text, len, bos, ids, n, e);
    nb_err why;
    if (nb_bpe_encode(t->bpe, text, len, bos, ids, n, &why))
        return nb_fail(e, "tokenizer: encode: %s", why.msg);
    if (!*ids && !(*ids = malloc(sizeof **ids))) /* callers expect an array */
        return nb_fail(e, "tokenizer: encode: out of memory");
    return 0;
}

char *nb_tok_decode_n(const nb_tokenizer *t, const int32_t *ids, size_t n, size_t *len,
                      nb_err *e)
{
    if (!t || !t->bpe)
        return nb_spm_decode_n(t ? t->spm : NULL, ids, n, len, e);
    if (len)
        *len = 0;
    if (!ids && n) {
        nb_fail(e, "nb_tok_decode: bad arguments");
        return NULL;
    }
    nb_err why;
    char *s = nb_bpe_decode(t->bpe, ids, n, 1, len, &why);
    if (!s)
        nb_fail(e, "tokenizer: decode: %s", why.msg);
    return s;
}

char *nb_tok_decode(const nb_tokenizer *t, const int32_t *ids, size_t n, nb_err *e)
{
    return nb_tok_decode_n(t, ids, n, NULL, e);
}

const char *nb_tok_piece(const nb_tokenizer *t, int id)
{
    return !t ? NULL : t->bpe ? nb_bpe_piece(t->bpe, id, NULL) : nb_spm_piece(t->spm, id);
}

int nb_tok_piece_to_id(const nb_tokenizer *t, const char *piece)
{
    if (!t || !t->bpe)
        return nb_spm_piece_to_id(t ? t->spm : NULL, piece);
    return piece ? nb_bpe_piece_to_id(t->bpe, piece, strlen(piece)) : -1;
}

int nb_tok_is_control(const nb_tokenizer *t, int id)
{
    return !t ? 0 : t->bpe ? nb_bpe_is_special(t->bpe, id) : nb_spm_is_control(t->spm, id);
}

/* BPE: a byte-fallback model's <0xAB> tokens (the ids its model uses for
 * bytes; an added token of the same text is not one). */
int nb_tok_byte(const nb_tokenizer *t, int id)
{
    if (!t || !t->bpe)
        return nb_spm_byte(t ? t->spm : NULL, id);
    const nb_bpe *b = t->bpe;
    size_t len;
    const char *p = nb_bpe_piece(b, id, &len);
    int v = p && (b->mflags & NB_BPE_M_BYTE_FALLBACK) ? bpe_byte_token(p, len) : -1;
    return v >= 0 && b->byte_ids[v] == id ? v : -1;
}

int nb_tok_is_byte(const nb_tokenizer *t, int id)
{
    return !t ? 0 : t->bpe ? nb_tok_byte(t, id) >= 0 : nb_spm_is_byte(t->spm, id);
}

const char *nb_tok_unk_surface(const nb_tokenizer *t)
{
    return !t || t->bpe ? "" : nb_spm_unk_surface(t->spm);
}

int nb_tok_lead_space(const nb_tokenizer *t)
{
    return !t || t->bpe ? NB_LEAD_SPACE_NONE : nb_spm_lead_space(t->spm);
}

size_t nb_tok_max_piece_bytes(const nb_tokenizer *t)
{
    return !t ? 0 : t->bpe ? t->max_piece : nb_spm_max_piece_bytes(t->spm);
}

const struct nb_bpe *nb_tok_bpe(const nb_tokenizer *t)
{
    return t ? t->bpe : NULL;
}
