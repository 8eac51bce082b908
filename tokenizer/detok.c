/* Incremental detokenizer: SentencePiece 0.1.97's decode, one id at a time.
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
#include "utf8.h"

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

void nb_detok_init(nb_detok *d, const nb_tokenizer *t)
{
    memset(d, 0, sizeof *d);
    d->tok = t;
    d->at_start = 1;
}

size_t nb_detok_push(nb_detok *d, int id, char *out, size_t out_cap)
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

size_t nb_detok_flush(nb_detok *d, char *out, size_t out_cap)
{
    sink s = sink_make(out, out_cap);
    drain(d, &s, 1);
    if (s.made)
        d->at_start = 0;
    return finish(&s);
}
