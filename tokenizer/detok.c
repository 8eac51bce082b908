/* Incremental detokenizer: SentencePiece 0.1.97's decode, one id at a time;
 * BPE tokenizers stream through their decoders (bpe_detok.c) instead.
 *
 * What decode does, and so what this file does:
 *  - control pieces (<s>, </s>) print nothing;
 *  - the unknown id prints the model's unk surface (nb_tok_unk_surface);
 *  - other pieces print their text with every "▁" turned into " ", except
 *    that near the start one leading "▁" is dropped (nb_tok_lead_space);
 *  - a run of byte pieces is read as UTF-8 when a non-byte piece or the
 *    end arrives: each complete valid character is kept, and every byte
 *    that does not start one becomes its own U+FFFD, reading on from the
 *    next byte. A piece of any other kind, control included, ends the run.
 *  - the "text is still empty" test that guards the leading-space drop
 *    counts the U+FFFD and characters of byte runs.
 * We hold back at most 3 bytes: once the held bytes can no longer begin a
 * valid character, decode's answer for them is already settled.
 *
 * Known differences from SentencePiece's decode:
 *  - a piece or unk surface that is not valid UTF-8 (only in a malformed
 *    model) is copied raw by decode; here each bad byte becomes U+FFFD so
 *    the output stays valid UTF-8;
 *  - an out-of-range id makes decode fail; here it prints nothing;
 *  - decode's whole-text steps are not applied: denormalizer rules and
 *    treat_whitespace_as_suffix (neither tok512 nor Llama's model use them);
 *  - text that does not fit in out_cap is lost (see NB_DETOK_MAX). */
#include "tokenizer.h"
#include "bpe.h"
#include "../runtime/base/utf8.h"

#include <string.h>

static const char kReplacement[] = "\xEF\xBF\xBD"; /* U+FFFD */
static const char kSpace[] = "\xE2\x96\x81";       /* "▁" */

/* Where one call's output goes. made counts what decode would have
 * produced even when it did not fit, because the leading-space rule
 * depends on the text, not on the caller's buffer. */
typedef struct sink {
    char *buf;
    size_t cap;
    size_t len;
    size_t made;
    int cut;
} sink;

static sink sink_make(char *out, size_t cap)
{
    sink s = {out, out ? cap : 0, 0, 0, 0};
    return s;
}

/* Takes whole characters only. After the first one that does not fit,
 * nothing more is written, so the output is a prefix of the full text. */
static void put(sink *s, const char *p, size_t n)
{
    s->made += n;
    if (s->cut || s->cap == 0 || n >= s->cap - s->len) {
        s->cut = 1;
        return;
    }
    memcpy(s->buf + s->len, p, n);
    s->len += n;
}

static size_t finish(sink *s)
{
    if (s->cap)
        s->buf[s->len] = '\0';
    return s->len;
}

/* Writes what the held bytes settle to; at the end of a byte run (final)
 * an unfinished character is settled too, as U+FFFD per byte. */
static void drain(nb_detok *d, sink *s, int final)
{
    while (d->n_pending > 0) {
        int k = nb_utf8_char(d->pending, (size_t)d->n_pending);
        if (k < 0 && !final)
            return;
        if (k > 0) {
            put(s, (const char *)d->pending, (size_t)k);
        } else {
            put(s, kReplacement, 3);
            k = 1;
        }
        d->n_pending -= k;
        memmove(d->pending, d->pending + k, (size_t)d->n_pending);
    }
}

static void put_text(sink *s, const char *text, size_t n, int spaces)
{
    const unsigned char *u = (const unsigned char *)text;
    size_t i = 0;
    while (i < n) {
        int k = nb_utf8_char(u + i, n - i);
        if (k <= 0) {
            put(s, kReplacement, 3);
            i++;
        } else if (spaces && k == 3 && memcmp(text + i, kSpace, 3) == 0) {
            put(s, " ", 1);
            i += 3;
        } else {
            put(s, text + i, (size_t)k);
            i += (size_t)k;
        }
    }
}

static void put_piece(nb_detok *d, sink *s, int id)
{
    const nb_tokenizer *t = d->tok;
    if (nb_tok_is_control(t, id))
        return;
    if (id == nb_tok_unk(t)) {
        const char *u = nb_tok_unk_surface(t);
        put_text(s, u, strlen(u), 0);
        return;
    }
    const char *p = nb_tok_piece(t, id);
    size_t n = strlen(p);
    int rule = nb_tok_lead_space(t);
    if (d->at_start && rule != NB_LEAD_SPACE_NONE && n >= 3 && memcmp(p, kSpace, 3) == 0) {
        p += 3;
        n -= 3;
        if (rule == NB_LEAD_SPACE_FIRST)
            d->at_start = 0;
    }
    put_text(s, p, n, 1);
}

int nb_detok_init(nb_detok *d, const nb_tokenizer *t)
{
    memset(d, 0, sizeof *d);
    d->tok = t;
    d->at_start = 1;
    const nb_bpe *b = nb_tok_bpe(t);
    if (b && !(d->bpe = nb_bpe_detok_new(b, 1, NULL)))
        return -1;
    return 0;
}

void nb_detok_free(nb_detok *d)
{
    nb_bpe_detok_free(d->bpe);
    d->bpe = NULL;
}

/* BPE: the decoders' text for id (NULL: out of memory, or no stream). */
static const char *bpe_next(nb_detok *d, int id, size_t *len)
{
    *len = 0;
    if (!d->bpe)
        return NULL;
    if (!d->pushed++ && !d->at_start)
        nb_bpe_detok_continue(d->bpe);
    return nb_bpe_detok_push(d->bpe, id, len);
}

/* What fits of n bytes of whole characters into out: a prefix. */
static size_t copy_cut(char *out, size_t cap, const char *s, size_t n)
{
    if (!cap)
        return 0;
    size_t k = 0;
    while (k < n) {
        int c = nb_utf8_char((const unsigned char *)s + k, n - k);
        size_t step = c > 0 ? (size_t)c : 1; /* the decoders give valid UTF-8 */
        if (k + step >= cap)
            break;
        k += step;
    }
    memcpy(out, s, k);
    out[k] = '\0';
    return k;
}

static size_t spm_push(nb_detok *d, int id, char *out, size_t out_cap)
{
    sink s = sink_make(out, out_cap);
    if (id < 0 || id >= nb_tok_vocab_size(d->tok))
        return finish(&s);
    int byte = nb_tok_byte(d->tok, id);
    if (byte >= 0) {
        d->pending[d->n_pending++] = (unsigned char)byte;
        drain(d, &s, 0);
    } else {
        drain(d, &s, 1);
        if (s.made)
            d->at_start = 0;
        put_piece(d, &s, id);
    }
    if (s.made)
        d->at_start = 0;
    return finish(&s);
}

static size_t spm_flush(nb_detok *d, char *out, size_t out_cap)
{
    sink s = sink_make(out, out_cap);
    drain(d, &s, 1);
    if (s.made)
        d->at_start = 0;
    return finish(&s);
}

size_t nb_detok_push(nb_detok *d, int id, char *out, size_t out_cap)
{
    if (!nb_tok_bpe(d->tok))
        return spm_push(d, id, out, out_cap);
    size_t n;
    const char *s = bpe_next(d, id, &n);
    return copy_cut(out, out_cap, s ? s : "", n);
}

size_t nb_detok_flush(nb_detok *d, char *out, size_t out_cap)
{
    if (!nb_tok_bpe(d->tok))
        return spm_flush(d, out, out_cap);
    size_t n = 0;
    const char *s = d->bpe ? nb_bpe_detok_flush(d->bpe, &n) : NULL;
    return copy_cut(out, out_cap, s ? s : "", n);
}

const char *nb_detok_next(nb_detok *d, int id, size_t *len)
{
    if (nb_tok_bpe(d->tok))
        return bpe_next(d, id, len);
    *len = spm_push(d, id, d->buf, sizeof d->buf);
    return d->buf;
}

const char *nb_detok_end(nb_detok *d, size_t *len)
{
    *len = 0;
    if (nb_tok_bpe(d->tok))
        return d->bpe ? nb_bpe_detok_flush(d->bpe, len) : NULL;
    *len = spm_flush(d, d->buf, sizeof d->buf);
    return d->buf;
}
