/* Tokenizer tests: test_tokenizer MODEL TEXT
 * MODEL is tests/data/stories260K/tok512.model (BPE, byte fallback, unk 0,
 * bos 1, eos 2), TEXT a UTF-8 file such as tests/data/tinystories_head.txt.
 * The detokenizer is checked against SentencePiece's own decode of the same
 * ids, never against strings written here, except where the expected text
 * follows from the input alone (a round trip, or one character's bytes). */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include "../tokenizer/tokenizer.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int n_checks, n_failed;

static int check(int ok, int line, const char *fmt, ...) NB_PRINTF(3, 4);

static int check(int ok, int line, const char *fmt, ...)
{
    n_checks++;
    if (ok)
        return 1;
    if (++n_failed <= 30) {
        va_list ap;
        va_start(ap, fmt);
        fprintf(stderr, "FAIL test_tokenizer.c:%d: ", line);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
        va_end(ap);
    }
    return 0;
}

#define CHECK(cond, ...) check((cond) != 0, __LINE__, __VA_ARGS__)

static void die(const char *what, const char *msg)
{
    fprintf(stderr, "test_tokenizer: %s: %s\n", what, msg);
    exit(2);
}

/* ---- helpers ---------------------------------------------------------- */

/* Our own strict UTF-8 check, independent of the one under test. */
static int utf8_valid(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        uint32_t c = u[i];
        size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (len == 0 || i + len > n)
            return 0;
        if (len > 1)
            c &= 0x3F >> (len - 1);
        for (size_t k = 1; k < len; k++) {
            if ((u[i + k] & 0xC0) != 0x80)
                return 0;
            c = (c << 6) | (u[i + k] & 0x3F);
        }
        static const uint32_t min[5] = {0, 0, 0x80, 0x800, 0x10000};
        if (c < min[len] || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
            return 0;
        i += len;
    }
    return 1;
}

static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    size_t got;
    while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            char *bigger = realloc(buf, cap * 2 + 1);
            if (!bigger) {
                free(buf);
                buf = NULL;
            }
            buf = bigger;
            cap *= 2;
        }
    }
    fclose(f);
    if (buf)
        buf[n] = '\0';
    *len = n;
    return buf;
}

static int32_t *encode(const nb_tokenizer *t, const char *s, size_t len, int bos, size_t *n)
{
    nb_err e = {{0}};
    int32_t *ids;
    if (nb_tok_encode(t, s, len, bos, &ids, n, &e) != 0)
        die("encode", e.msg);
    return ids;
}

static int byte_id(const nb_tokenizer *t, unsigned b)
{
    char piece[8];
    snprintf(piece, sizeof piece, "<0x%02X>", b);
    return nb_tok_piece_to_id(t, piece);
}

/* A growing byte string. */
typedef struct text {
    char *s;
    size_t len, cap;
} text;

static void text_add(text *x, const char *p, size_t n)
{
    if (x->len + n + 1 > x->cap) {
        size_t cap = (x->len + n + 1) * 2;
        char *s = realloc(x->s, cap);
        if (!s)
            die("text_add", "out of memory");
        x->s = s;
        x->cap = cap;
    }
    memcpy(x->s + x->len, p, n);
    x->len += n;
    x->s[x->len] = '\0';
}

/* Streams ids through nb_detok with a buffer of out_cap bytes followed by
 * guard bytes; checks each output (no overflow, NUL, valid UTF-8) and
 * returns the concatenation. */
#define GUARD 16
static text stream(const nb_tokenizer *t, const int32_t *ids, size_t n, size_t out_cap,
                   const char *what)
{
    text all = {NULL, 0, 0};
    text_add(&all, "", 0);
    nb_detok d;
    nb_detok_init(&d, t);
    char *buf = malloc(out_cap + GUARD);
    if (!buf)
        die("stream", "out of memory");
    for (size_t i = 0; i <= n; i++) {
        memset(buf, 0x5A, out_cap + GUARD);
        size_t got = i < n ? nb_detok_push(&d, ids[i], buf, out_cap)
                           : nb_detok_flush(&d, buf, out_cap);
        int guard_ok = 1;
        for (size_t k = out_cap; k < out_cap + GUARD; k++)
            guard_ok &= buf[k] == 0x5A;
        CHECK(guard_ok, "%s: token %zu wrote past out_cap %zu", what, i, out_cap);
        if (!CHECK(got < out_cap || (out_cap == 0 && got == 0),
                   "%s: token %zu returned %zu for out_cap %zu", what, i, got, out_cap))
            break;
        if (out_cap)
            CHECK(buf[got] == '\0', "%s: token %zu output not NUL-terminated", what, i);
        CHECK(utf8_valid(buf, got), "%s: token %zu (id %d) output is not valid UTF-8", what, i,
              i < n ? (int)ids[i] : -1);
        text_add(&all, buf, got);
    }
    CHECK(d.n_pending == 0, "%s: bytes still held after flush", what);
    free(buf);
    return all;
}

/* nb_detok over ids must equal SentencePiece's decode of the same ids. */
static void check_stream_matches_decode(const nb_tokenizer *t, const int32_t *ids, size_t n,
                                        const char *what)
{
    nb_err e = {{0}};
    size_t len;
    char *want = nb_tok_decode_n(t, ids, n, &len, &e);
    if (!CHECK(want != NULL, "%s: decode failed: %s", what, e.msg))
        return;
    text got = stream(t, ids, n, NB_DETOK_MAX, what);
    if (!CHECK(got.len == len && memcmp(got.s, want, len) == 0,
               "%s: detok gave %zu bytes, decode %zu (first 60: \"%.60s\" vs \"%.60s\")", what,
               got.len, len, got.s, want)) {
        for (size_t i = 0; i < n && i < 12; i++)
            fprintf(stderr, "    id %d %s\n", ids[i], nb_tok_piece(t, ids[i]));
    }
    free(got.s);
    free(want);
}

/* ---- tests ------------------------------------------------------------ */

static void test_specials(const nb_tokenizer *t)
{
    CHECK(nb_tok_bos(t) == 1, "bos is %d, want 1", nb_tok_bos(t));
    CHECK(nb_tok_eos(t) == 2, "eos is %d, want 2", nb_tok_eos(t));
    CHECK(nb_tok_unk(t) == 0, "unk is %d, want 0", nb_tok_unk(t));
    CHECK(nb_tok_pad(t) == -1, "pad is %d, want -1 (none)", nb_tok_pad(t));
    CHECK(nb_tok_is_control(t, 1) && nb_tok_is_control(t, 2), "<s> and </s> not control");
    CHECK(!nb_tok_is_control(t, 0), "<unk> reported as control");
    CHECK(strcmp(nb_tok_piece(t, 1), "<s>") == 0, "piece 1 is %s", nb_tok_piece(t, 1));
    CHECK(strcmp(nb_tok_piece(t, 2), "</s>") == 0, "piece 2 is %s", nb_tok_piece(t, 2));
}

static void test_pieces(const nb_tokenizer *t)
{
    int n = nb_tok_vocab_size(t), bytes = 0, seen[256] = {0};
    CHECK(n > 259, "vocab size %d too small", n);
    for (int id = 0; id < n; id++) {
        const char *p = nb_tok_piece(t, id);
        if (!CHECK(p != NULL, "piece %d is NULL", id))
            continue;
        CHECK(nb_tok_piece_to_id(t, p) == id, "piece_to_id(\"%s\") = %d, want %d", p,
              nb_tok_piece_to_id(t, p), id);
        unsigned v;
        char end;
        int looks_byte = strlen(p) == 6 && sscanf(p, "<0x%2X%c", &v, &end) == 2 && end == '>';
        CHECK(nb_tok_is_byte(t, id) == looks_byte, "is_byte(%d \"%s\") = %d", id, p,
              nb_tok_is_byte(t, id));
        CHECK(nb_tok_byte(t, id) == (looks_byte ? (int)v : -1), "byte(%d \"%s\") = %d", id, p,
              nb_tok_byte(t, id));
        if (looks_byte) {
            bytes++;
            seen[v]++;
        }
        CHECK(!(nb_tok_is_byte(t, id) && nb_tok_is_control(t, id)), "%d both byte and control",
              id);
    }
    int each_once = 1;
    for (int b = 0; b < 256; b++)
        each_once &= seen[b] == 1;
    CHECK(bytes == 256 && each_once, "%d byte pieces, want all 256 once", bytes);
    CHECK(nb_tok_piece(t, -1) == NULL && nb_tok_piece(t, n) == NULL, "out-of-range piece not NULL");
    CHECK(!nb_tok_is_control(t, n) && !nb_tok_is_byte(t, -5), "out-of-range id has a type");
    CHECK(nb_tok_piece_to_id(t, "no-such-piece-\x01") == nb_tok_unk(t), "absent piece not unk");
    CHECK(nb_tok_max_piece_bytes(t) <= NB_DETOK_PIECE_MAX, "a piece is %zu bytes, over %d",
          nb_tok_max_piece_bytes(t), NB_DETOK_PIECE_MAX);
}

static void test_bad_loads(const char *text_path)
{
    nb_err e = {{0}};
    const char *missing = "/nonexistent/dir/tok.model";
    CHECK(nb_tok_load_file(missing, &e) == NULL, "loading a missing file succeeded");
    CHECK(strstr(e.msg, missing) && !strchr(e.msg, '\n'), "missing file message: \"%s\"", e.msg);
    printf("  missing file: %s\n", e.msg);

    char path[] = "/tmp/nb_tok_garbageXXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        die("mkstemp", path);
    unsigned char junk[4096];
    uint32_t x = 12345;
    for (size_t i = 0; i < sizeof junk; i++) {
        x = x * 1103515245u + 12345u;
        junk[i] = (unsigned char)(x >> 24);
    }
    if (write(fd, junk, sizeof junk) != (ssize_t)sizeof junk)
        die("write", path);
    close(fd);
    e.msg[0] = '\0';
    nb_tokenizer *t = nb_tok_load_file(path, &e);
    CHECK(t == NULL, "loading a garbage file succeeded");
    CHECK(e.msg[0] && !strchr(e.msg, '\n'), "garbage file message: \"%s\"", e.msg);
    printf("  garbage file: %s\n", e.msg);
    nb_tok_free(t);
    unlink(path);

    e.msg[0] = '\0';
    t = nb_tok_load_file(text_path, &e);
    CHECK(t == NULL && e.msg[0], "loading a text file as a model succeeded");
    nb_tok_free(t);

    e.msg[0] = '\0';
    t = nb_tok_load_bytes(junk, 100, &e);
    CHECK(t == NULL && e.msg[0], "loading garbage bytes succeeded");
    nb_tok_free(t);

    e.msg[0] = '\0';
    t = nb_tok_load_bytes("", 0, &e);
    CHECK(t == NULL && e.msg[0], "loading zero bytes succeeded");
    nb_tok_free(t);

    e.msg[0] = '\0';
    t = nb_tok_load_file("/tmp", &e);
    CHECK(t == NULL && e.msg[0], "loading a directory succeeded");
    nb_tok_free(t);
}

static void test_load_bytes(const nb_tokenizer *t, const char *model_path, const char *txt,
                            size_t txt_len)
{
    size_t len;
    char *data = read_all(model_path, &len);
    if (!data)
        die("read", model_path);
    nb_err e = {{0}};
    nb_tokenizer *t2 = nb_tok_load_bytes(data, len, &e);
    /* The tokenizer must not keep pointers into the caller's bytes. */
    memset(data, 0, len);
    free(data);
    if (!CHECK(t2 != NULL, "load from bytes failed: %s", e.msg))
        return;
    CHECK(nb_tok_vocab_size(t2) == nb_tok_vocab_size(t), "vocab sizes differ");
    size_t n1, n2;
    int32_t *a = encode(t, txt, txt_len, 1, &n1);
    int32_t *b = encode(t2, txt, txt_len, 1, &n2);
    CHECK(n1 == n2 && memcmp(a, b, n1 * sizeof *a) == 0, "file and bytes encodings differ");
    CHECK(n1 > 1000, "only %zu ids for the whole text", n1);
    free(a);
    free(b);
    nb_tok_free(t2);
}

/* The text as remove_extra_whitespaces leaves it (tok512 has it on):
 * runs of spaces made one, spaces at both ends dropped. */
static char *squeeze_spaces(const char *s, size_t len)
{
    char *out = malloc(len + 1);
    size_t n = 0;
    if (!out)
        die("squeeze_spaces", "out of memory");
    for (size_t i = 0; i < len; i++)
        if (s[i] != ' ' || (n > 0 && out[n - 1] != ' '))
            out[n++] = s[i];
    while (n > 0 && out[n - 1] == ' ')
        n--;
    out[n] = '\0';
    return out;
}

/* Splits at '\n' (lines) or at blank lines (paragraphs) and round-trips
 * each part; returns the number of parts. */
static int round_trip_parts(const nb_tokenizer *t, const char *txt, size_t len, int paragraphs)
{
    int parts = 0;
    size_t i = 0;
    while (i < len) {
        const char *sep = paragraphs ? "\n\n" : "\n";
        const char *end = strstr(txt + i, sep);
        size_t j = end ? (size_t)(end - txt) : len;
        if (j > i) {
            size_t n;
            int32_t *ids = encode(t, txt + i, j - i, 0, &n);
            nb_err e = {{0}};
            size_t got_len;
            char *got = nb_tok_decode_n(t, ids, n, &got_len, &e);
            char *squeezed = squeeze_spaces(txt + i, j - i);
            CHECK(got && ((got_len == j - i && memcmp(got, txt + i, j - i) == 0) ||
                          strcmp(got, squeezed) == 0),
                  "round trip of %s at byte %zu: \"%.50s\" came back \"%.50s\"",
                  paragraphs ? "paragraph" : "line", i, txt + i, got ? got : e.msg);
            free(squeezed);
            free(got);
            free(ids);
            parts++;
        }
        i = j + strlen(sep);
    }
    return parts;
}

static void test_round_trip(const nb_tokenizer *t, const char *txt, size_t len)
{
    int lines = round_trip_parts(t, txt, len, 0);
    int paras = round_trip_parts(t, txt, len, 1);
    CHECK(lines > 10 && paras > 3, "text too short: %d lines, %d paragraphs", lines, paras);
    printf("  round trip: %d lines, %d paragraphs\n", lines, paras);

    size_t n0, n1;
    int32_t *a = encode(t, txt, len, 0, &n0);
    int32_t *b = encode(t, txt, len, 1, &n1);
    CHECK(n1 == n0 + 1 && b[0] == nb_tok_bos(t) && memcmp(a, b + 1, n0 * sizeof *a) == 0,
          "encode with bos is not BOS + encode without");
    free(a);
    free(b);
}

static void test_stream_whole_text(const nb_tokenizer *t, const char *txt, size_t len)
{
    size_t n;
    int32_t *ids = encode(t, txt, len, 1, &n); /* ids[0] is BOS */
    int32_t *with_eos = malloc((n + 1) * sizeof *ids);
    if (!with_eos)
        die("malloc", "out of memory");
    memcpy(with_eos, ids, n * sizeof *ids);
    with_eos[n] = nb_tok_eos(t);
    check_stream_matches_decode(t, ids + 1, n - 1, "whole text");
    check_stream_matches_decode(t, ids, n, "whole text with BOS");
    check_stream_matches_decode(t, with_eos, n + 1, "whole text with BOS and EOS");
    check_stream_matches_decode(t, with_eos + 1, n, "whole text with EOS");

    /* And the streamed text is the file itself: nothing in it is changed
     * by SentencePiece's normalisation. */
    text got = stream(t, ids, n, NB_DETOK_MAX, "whole text vs file");
    CHECK(got.len == len && memcmp(got.s, txt, len) == 0, "streamed text differs from file");
    free(got.s);
    printf("  streamed %zu ids of the whole text\n", n);
    free(with_eos);
    free(ids);
}

/* Every push output must be whole characters: check the outputs one by one
 * and the concatenation against the input. */
static void test_multibyte(const nb_tokenizer *t)
{
    /* é is a piece of tok512; ü, ß, 日本語 and 😀 need byte fallback. */
    static const struct {
        const char *s;
        size_t bytes;
    } samples[] = {
        {"café", 0},          {"über Größe", 6},  {"日本語", 9},
        {"emoji 😀 here", 4}, {"é😀日ü", 9},     {"Once 日 upon 😀😀 a time é.", 11},
    };
    for (size_t s = 0; s < sizeof samples / sizeof *samples; s++) {
        const char *in = samples[s].s;
        size_t n, bytes = 0;
        int32_t *ids = encode(t, in, strlen(in), 1, &n);
        for (size_t i = 0; i < n; i++)
            bytes += nb_tok_is_byte(t, ids[i]) != 0;
        CHECK(bytes >= samples[s].bytes, "\"%s\" used %zu byte pieces, want %zu or more", in,
              bytes, samples[s].bytes);
        text got = stream(t, ids, n, NB_DETOK_MAX, in);
        CHECK(strcmp(got.s, in) == 0, "\"%s\" streamed back as \"%s\"", in, got.s);
        free(got.s);
        check_stream_matches_decode(t, ids, n, in);
        free(ids);
    }

    /* 😀 = F0 9F 98 80: nothing until the fourth byte, then all of it. */
    static const unsigned char grin[] = {0xF0, 0x9F, 0x98, 0x80};
    nb_detok d;
    nb_detok_init(&d, t);
    char out[NB_DETOK_MAX];
    for (int i = 0; i < 4; i++) {
        size_t got = nb_detok_push(&d, byte_id(t, grin[i]), out, sizeof out);
        if (i < 3)
            CHECK(got == 0, "byte %d of 😀 emitted %zu bytes early", i, got);
        else
            CHECK(got == 4 && memcmp(out, grin, 4) == 0, "😀 not emitted whole (%zu bytes)", got);
    }
    CHECK(nb_detok_flush(&d, out, sizeof out) == 0, "flush after a whole character wrote text");
}

static int count_fffd(const char *s)
{
    int n = 0;
    for (const char *p = s; (p = strstr(p, "\xEF\xBF\xBD")) != NULL; p += 3)
        n++;
    return n;
}

/* Two of the three bytes of 日 (E6 97 A5), then normal tokens. */
static void test_truncated(const nb_tokenizer *t)
{
    size_t n;
    int32_t *tail = encode(t, "Hi there", 8, 0, &n);
    int32_t ids[64];
    ids[0] = byte_id(t, 0xE6);
    ids[1] = byte_id(t, 0x97);
    memcpy(ids + 2, tail, n * sizeof *tail);
    text got = stream(t, ids, n + 2, NB_DETOK_MAX, "truncated 日");
    CHECK(count_fffd(got.s) >= 1 && strstr(got.s, "Hi there") != NULL,
          "truncated 日 gave \"%s\", want U+FFFD then Hi there", got.s);
    CHECK(!strstr(got.s, "\xE6\x97"), "truncated bytes leaked into the output");
    printf("  truncated 日 + \"Hi there\" -> \"%s\"\n", got.s);
    free(got.s);
    check_stream_matches_decode(t, ids, n + 2, "truncated 日 then text");

    /* The same two bytes, then BOS (control), then the missing third byte. */
    int32_t split[] = {ids[0], ids[1], nb_tok_bos(t), byte_id(t, 0xA5), tail[0]};
    check_stream_matches_decode(t, split, 5, "日 split by a control token");
    /* Truncated at the very end: the flush settles it. */
    int32_t end[] = {tail[0], ids[0], ids[1]};
    got = stream(t, end, 3, NB_DETOK_MAX, "truncated at end");
    CHECK(count_fffd(got.s) >= 1, "truncated end gave \"%s\"", got.s);
    free(got.s);
    check_stream_matches_decode(t, end, 3, "truncated 日 at end");
    free(tail);

    /* Impossible sequences: lone continuation, overlong, surrogate, C0, F5. */
    static const unsigned char bad[][4] = {
        {0x80, 0, 0, 0}, {0xC0, 0xAF, 0, 0}, {0xED, 0xA0, 0x80, 0}, {0xF5, 0x80, 0x80, 0x80},
        {0xE6, 0xE6, 0x97, 0xA5},
    };
    static const int bad_len[] = {1, 2, 3, 4, 4};
    for (size_t s = 0; s < sizeof bad / sizeof *bad; s++) {
        int32_t seq[6];
        int k = 0;
        for (int i = 0; i < bad_len[s]; i++)
            seq[k++] = byte_id(t, bad[s][i]);
        seq[k++] = nb_tok_piece_to_id(t, "▁the");
        char what[48];
        snprintf(what, sizeof what, "bad byte sequence %zu", s);
        check_stream_matches_decode(t, seq, (size_t)k, what);
        text g = stream(t, seq, (size_t)k, NB_DETOK_MAX, what);
        CHECK(count_fffd(g.s) >= 1, "%s gave no U+FFFD: \"%s\"", what, g.s);
        free(g.s);
    }
}

static void test_encode_rejects(const nb_tokenizer *t)
{
    static const struct {
        const char *s;
        size_t offset;
    } bad[] = {
        {"\xff", 0},           {"\xc0\xaf", 0},     {"\xed\xa0\x80", 0}, {"abc\xff", 3},
        {"ok \xe6\x97", 3},    {"\xf4\x90\x80\x80", 0}, {"x\x80y", 1},   {"\xe0\x80\xaf", 0},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        nb_err e = {{0}};
        static int32_t sentinel;
        int32_t *ids = &sentinel; /* must be reset to NULL */
        size_t n = 99;
        int rc = nb_tok_encode(t, bad[i].s, strlen(bad[i].s), 1, &ids, &n, &e);
        char want[32];
        snprintf(want, sizeof want, "offset %zu", bad[i].offset);
        CHECK(rc == -1 && ids == NULL && n == 0, "invalid UTF-8 case %zu was accepted", i);
        CHECK(strstr(e.msg, want) != NULL, "case %zu: message \"%s\" lacks \"%s\"", i, e.msg,
              want);
        if (i == 0)
            printf("  encode \"\\xff\": %s\n", e.msg);
    }
    /* Valid edge cases are accepted: U+10FFFF, U+FFFD, U+E000, NUL. */
    static const char ok[] = "\xf4\x8f\xbf\xbf \xef\xbf\xbd \xee\x80\x80 \0 end";
    nb_err e = {{0}};
    int32_t *ids;
    size_t n;
    CHECK(nb_tok_encode(t, ok, sizeof ok - 1, 0, &ids, &n, &e) == 0, "valid text rejected: %s",
          e.msg);
    free(ids);
    CHECK(nb_tok_encode(t, "", 0, 0, &ids, &n, &e) == 0 && n == 0 && ids, "empty text failed");
    free(ids);
    CHECK(nb_tok_encode(t, "", 0, 1, &ids, &n, &e) == 0 && n == 1 && ids[0] == nb_tok_bos(t),
          "empty text with BOS is not [BOS]");
    free(ids);
    int32_t out_of_range[] = {5, nb_tok_vocab_size(t)};
    char *s = nb_tok_decode(t, out_of_range, 2, &e);
    CHECK(s == NULL && strstr(e.msg, "out of range"), "decode of an out-of-range id: %s", e.msg);
    free(s);
}

/* Random id sequences biased towards the awkward cases: byte pieces (most
 * of them parts of multi-byte characters), control, unk and "▁". */
static uint32_t rng = 2463534242u;

static uint32_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return rng;
}

static int random_id(const nb_tokenizer *t)
{
    static const unsigned char interesting[] = {
        0x00, 0x0A, 0x41, 0x7F, 0x80, 0x9F, 0xA5, 0xBF, 0xC0, 0xC2, 0xC3, 0xDF,
        0xE0, 0xE6, 0xED, 0xEF, 0xF0, 0xF4, 0xF5, 0xFF, 0x97, 0x90, 0x8F, 0xA0,
    };
    uint32_t r = next_rand() % 100;
    if (r < 45)
        return byte_id(t, interesting[next_rand() % sizeof interesting]);
    if (r < 55)
        return byte_id(t, 0x80 + next_rand() % 0x40); /* continuation */
    if (r < 62)
        return (int)(next_rand() % 3); /* unk, bos, eos */
    if (r < 72)
        return nb_tok_piece_to_id(t, "▁");
    return (int)(next_rand() % (uint32_t)nb_tok_vocab_size(t));
}

static void test_random(const nb_tokenizer *t)
{
    int32_t ids[48];
    int before = n_failed;
    for (int round = 0; round < 3000 && n_failed == before; round++) {
        size_t n = 1 + next_rand() % 40;
        for (size_t i = 0; i < n; i++)
            ids[i] = random_id(t);
        check_stream_matches_decode(t, ids, n, "random ids");
    }
    /* Small buffers: never overrun, output stays valid, text only cut. */
    for (size_t cap = 0; cap < 12; cap++) {
        for (int round = 0; round < 200; round++) {
            size_t n = 1 + next_rand() % 40;
            for (size_t i = 0; i < n; i++)
                ids[i] = random_id(t);
            text got = stream(t, ids, n, cap, "small buffer");
            free(got.s);
        }
    }
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s MODEL TEXT\n", argv[0]);
        return 2;
    }
    size_t len;
    char *txt = read_all(argv[2], &len);
    if (!txt)
        die("cannot read", argv[2]);
    nb_err e = {{0}};
    nb_tokenizer *t = nb_tok_load_file(argv[1], &e);
    if (!t)
        die("load", e.msg);
    printf("test_tokenizer: %s: %d pieces, bos %d eos %d unk %d, unk surface \"%s\"\n", argv[1],
           nb_tok_vocab_size(t), nb_tok_bos(t), nb_tok_eos(t), nb_tok_unk(t),
           nb_tok_unk_surface(t));

    test_specials(t);
    test_pieces(t);
    test_bad_loads(argv[2]);
    test_load_bytes(t, argv[1], txt, len);
    test_round_trip(t, txt, len);
    test_stream_whole_text(t, txt, len);
    test_multibyte(t);
    test_truncated(t);
    test_encode_rejects(t);
    test_random(t);

    nb_tok_free(t);
    free(txt);
    printf("test_tokenizer: %d checks, %d failed\n", n_checks, n_failed);
    return n_failed ? 1 : 0;
}
