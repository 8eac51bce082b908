/* The tokenizer API over both kinds: test_tokapi TOK512.model BPE_CASES_DIR
 * The small tokenizers of tests/bpe (one per pipeline nibble reads) go
 * through tokenizer.h as a model file carries them (a blob, told from
 * SentencePiece by its magic) and as files (tokenizer.json): encode's bos
 * flag gives the library's add_special_tokens ids, decode skips special
 * tokens, the incremental detokenizer gives valid UTF-8 at every step and
 * the whole decode in the end (also in a caller's small buffer, and
 * continuing a prompt), and the piece, control and byte maps agree with
 * bpe.h. tok512 checks that SentencePiece keeps its answers. */
#define _POSIX_C_SOURCE 200809L
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "../tokenizer/bpe.h"
#include "../tokenizer/tokenizer.h"
#include "../runtime/base/utf8.h"
#include "testutil.h"

static const char *const names[] = {"gpt2",  "gpt2-prefix", "smollm",   "llama2",
                                    "metaspace", "metaspace-always", "splits", "decoders"};

typedef struct text {
    char *p;
    size_t n;
} text;

static int32_t *json_ids(json_t *a, size_t *n)
{
    *n = json_array_size(a);
    int32_t *v = malloc((*n ? *n : 1) * sizeof *v);
    for (size_t i = 0; i < *n; i++)
        v[i] = (int32_t)json_integer_value(json_array_get(a, i));
    return v;
}

static int same(const int32_t *a, size_t na, const int32_t *b, size_t nb)
{
    return na == nb && (!na || !memcmp(a, b, na * sizeof *a));
}

/* The ids streamed through nb_detok_next / nb_detok_end (at_start as
 * given): every step valid UTF-8; the concatenation. */
static text stream(const nb_tokenizer *t, const int32_t *ids, size_t n, int at_start,
                   const char *what)
{
    nb_detok d;
    text out = {calloc(1, 1), 0};
    CHECK(!nb_detok_init(&d, t), "%s: detok init", what);
    d.at_start = at_start;
    for (size_t i = 0; i <= n; i++) {
        size_t len;
        const char *s = i < n ? nb_detok_next(&d, ids[i], &len) : nb_detok_end(&d, &len);
        CHECK(s && nb_utf8_bad_offset((const unsigned char *)s, len) == len,
              "%s: step %zu is not valid UTF-8", what, i);
        if (!s)
            break;
        out.p = realloc(out.p, out.n + len + 1);
        memcpy(out.p + out.n, s, len);
        out.n += len;
        out.p[out.n] = 0;
    }
    nb_detok_free(&d);
    return out;
}

/* The same through nb_detok_push into a buffer of cap bytes: each step a
 * valid prefix of what nb_detok_next gives. */
static void small_buffer(const nb_tokenizer *t, const int32_t *ids, size_t n, size_t cap,
                         const char *what)
{
    nb_detok a, b;
    nb_detok_init(&a, t);
    nb_detok_init(&b, t);
    char buf[16];
    for (size_t i = 0; i <= n; i++) {
        size_t full,
            got = i < n ? nb_detok_push(&a, ids[i], buf, cap) : nb_detok_flush(&a, buf, cap);
        const char *s = i < n ? nb_detok_next(&b, ids[i], &full) : nb_detok_end(&b, &full);
        CHECK(got < cap && got <= full && !memcmp(buf, s, got) && buf[got] == 0 &&
                  nb_utf8_bad_offset((unsigned char *)buf, got) == got,
              "%s: step %zu in %zu bytes: %zu bytes", what, i, cap, got);
    }
    nb_detok_free(&a);
    nb_detok_free(&b);
}

/* A reply after a prompt: the stream continuing the prompt's ids
 * (at_start 0) gives what decoding both adds after the prompt's text.
 * Counts the splits where the prompt's text is a prefix of the whole. */
static int continued(const nb_tokenizer *t, const int32_t *ids, size_t n, const char *what)
{
    nb_err e;
    size_t k = n / 2, lp, lw;
    char *whole = nb_tok_decode_n(t, ids, n, &lw, &e);
    char *prompt = nb_tok_decode_n(t, ids, k, &lp, &e);
    /* Not counted: a prompt that printed nothing (the reply starts the
     * text), or a character cut at the split, which U+FFFD on either side
     * of it shows (the stream cannot see the prompt's bytes). */
    static const char fffd[] = "\xEF\xBF\xBD";
    int counted = whole && prompt && lp && lp <= lw && !memcmp(whole, prompt, lp) &&
                  (lp < 3 || memcmp(prompt + lp - 3, fffd, 3)) &&
                  (lw - lp < 3 || memcmp(whole + lp, fffd, 3));
    if (counted) {
        text got = stream(t, ids + k, n - k, 0, what);
        CHECK(got.n == lw - lp && !memcmp(got.p, whole + lp, got.n),
              "%s: a reply after %zu prompt ids gives \"%s\", want \"%s\"", what, k, got.p,
              whole + lp);
        free(got.p);
    }
    free(whole);
    free(prompt);
    return counted;
}

static void one_case(const nb_tokenizer *t, json_t *c, const char *what, int *n_cont)
{
    json_t *jt = json_object_get(c, "text"), *dec = json_object_get(c, "decode");
    json_t *skip = json_object_get(c, "decode_skip"), *sp = json_object_get(c, "ids_special");
    size_t n, ns, got_n, len;
    int32_t *want = json_ids(json_object_get(c, "ids"), &n), *got;
    int32_t *want_sp = sp ? json_ids(sp, &ns) : NULL;
    nb_err e;
    if (jt) {
        const char *s = json_string_value(jt);
        size_t sl = json_string_length(jt);
        CHECK(!nb_tok_encode(t, s, sl, 0, &got, &got_n, &e) && same(got, got_n, want, n),
              "%s: encode without bos", what);
        free(got);
        CHECK(!nb_tok_encode(t, s, sl, 1, &got, &got_n, &e) &&
                  (want_sp ? same(got, got_n, want_sp, ns) : same(got, got_n, want, n)),
              "%s: encode with bos: the post-processor's ids", what);
        free(got);
    }
    /* decode skips special tokens: the library's decode(ids) */
    json_t *w = skip ? skip : dec ? dec : jt;
    int no = json_is_true(json_object_get(c, "no_decode")) ||
             json_is_true(json_object_get(c, "no_decode_skip"));
    char *d = nb_tok_decode_n(t, want, n, &len, &e);
    CHECK(d, "%s: decode: %s", what, e.msg);
    if (d && w && !no)
        CHECK(len == json_string_length(w) && !memcmp(d, json_string_value(w), len),
              "%s: decode \"%s\", want \"%s\"", what, d, json_string_value(w));
    text s = stream(t, want, n, 1, what);
    CHECK(d && s.n == len && !memcmp(s.p, d, len), "%s: streamed \"%s\", decoded \"%s\"", what,
          s.p, d ? d : "?");
    small_buffer(t, want, n, 5, what);
    *n_cont += continued(t, want, n, what);
    free(s.p);
    free(d);
    free(want);
    free(want_sp);
}

static void cases(const nb_tokenizer *t, const char *path, const char *name)
{
    FILE *f = fopen(path, "r");
    CHECK(f, "cannot read %s", path);
    char line[1 << 16];
    int no = 0, n_cont = 0;
    while (f && fgets(line, sizeof line, f)) {
        json_error_t err;
        json_t *c = json_loads(line, JSON_ALLOW_NUL, &err);
        char what[64];
        snprintf(what, sizeof what, "%s case %d", name, ++no);
        CHECK(c, "%s: %s", what, err.text);
        if (c)
            one_case(t, c, what, &n_cont);
        json_decref(c);
    }
    if (f)
        fclose(f);
    CHECK(n_cont > 10, "%s: only %d cases checked the continued stream", name, n_cont);
    printf("%s: %d cases, %d of them continuing a prompt\n", name, no, n_cont);
}

/* Pieces, control and byte maps are bpe.h's. */
static void maps(const nb_tokenizer *t, const char *name)
{
    const nb_bpe *b = nb_tok_bpe(t);
    int bytes = 0;
    const int32_t *pre;
    size_t np = nb_bpe_prefix_ids(b, &pre);
    CHECK(nb_tok_bos(t) == (np == 1 ? pre[0] : -1), "%s: bos %d", name, nb_tok_bos(t));
    CHECK(nb_tok_eos(t) == -1 && nb_tok_unk(t) == -1 && nb_tok_pad(t) == -1, "%s: eos", name);
    for (int id = -1; id <= nb_tok_vocab_size(t); id++) {
        size_t len;
        const char *p = nb_bpe_piece(b, id, &len), *q = nb_tok_piece(t, id);
        CHECK(p == q, "%s: piece of %d", name, id);
        CHECK(nb_tok_is_control(t, id) == nb_bpe_is_special(b, id), "%s: control %d", name, id);
        int v = nb_tok_byte(t, id);
        CHECK(v == -1 || (v >= 0 && v < 256 && nb_tok_is_byte(t, id)), "%s: byte %d", name, id);
        bytes += v >= 0;
        if (p && nb_tok_piece_to_id(t, p) != id)
            CHECK(nb_bpe_is_added(b, id) || nb_bpe_is_added(b, nb_tok_piece_to_id(t, p)),
                  "%s: piece_to_id(%s)", name, p);
    }
    CHECK(nb_tok_piece_to_id(t, "\x01no such piece") == -1, "%s: absent piece", name);
    if (!strcmp(name, "llama2"))
        CHECK(bytes == 256, "%s: %d byte tokens", name, bytes);
}

static nb_tokenizer *from_blob(const char *json_path)
{
    nb_err e;
    size_t size;
    void *blob = nb_bpe_from_json(json_path, &size, &e);
    CHECK(blob, "%s: %s", json_path, e.msg);
    CHECK(nb_tok_bytes_kind(blob, size) == NB_TOK_BPE, "%s: the blob's kind", json_path);
    nb_tokenizer *t = blob ? nb_tok_load_bytes(blob, size, &e) : NULL;
    CHECK(t && nb_tok_kind(t) == NB_TOK_BPE, "%s: load from bytes: %s", json_path, e.msg);
    free(blob);
    return t;
}

static void bpe_files(const char *dir)
{
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        char json[1024], case_path[1024];
        snprintf(json, sizeof json, "%s/%s.json", dir, names[i]);
        snprintf(case_path, sizeof case_path, "%s/%s.cases.jsonl", dir, names[i]);
        nb_tokenizer *t = from_blob(json);
        if (t) {
            cases(t, case_path, names[i]);
            maps(t, names[i]);
        }
        nb_tok_free(t);
        nb_err e;
        t = nb_tok_load_file(json, &e); /* a tokenizer.json loads as a file too */
        CHECK(t && nb_tok_kind(t) == NB_TOK_BPE, "%s as a file: %s", json, e.msg);
        nb_tok_free(t);
    }
}

/* Both kinds refuse bad text with the same words. */
static void bad_text(const nb_tokenizer *t, const char *name)
{
    int32_t *ids;
    size_t n;
    nb_err e;
    CHECK(nb_tok_encode(t, "ab\xC3(", 4, 1, &ids, &n, &e) == -1 && !ids &&
              strstr(e.msg, "invalid UTF-8 at byte offset 2 (byte 0xC3)"),
          "%s: bad UTF-8: %s", name, e.msg);
    CHECK(!nb_tok_encode(t, NULL, 0, 0, &ids, &n, &e) && ids && n == 0, "%s: no text", name);
    free(ids);
    int32_t out_of_range = nb_tok_vocab_size(t);
    CHECK(!nb_tok_decode(t, &out_of_range, 1, &e), "%s: decode past the vocabulary", name);
}

static void bad_loads(const char *tmp_json)
{
    nb_err e;
    static const char blob[] = "NBBPE\0\0\1 and garbage after it";
    CHECK(!nb_tok_load_bytes(blob, sizeof blob, &e) && strstr(e.msg, "BPE"), "garbage blob: %s",
          e.msg);
    FILE *f = fopen(tmp_json, "w");
    fputs("{\"model\": {\"type\": \"WordPiece\", \"vocab\": {}}}", f);
    fclose(f);
    CHECK(!nb_tok_load_file(tmp_json, &e) && strstr(e.msg, "WordPiece") && strstr(e.msg, tmp_json),
          "a WordPiece tokenizer.json: %s", e.msg);
    CHECK(!nb_tok_load_file("/nonexistent/tokenizer.json", &e) && strstr(e.msg, "nonexistent"),
          "a missing file: %s", e.msg);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: test_tokapi TOK512.model BPE_CASES_DIR\n");
        return 2;
    }
    nb_err e;
    nb_tokenizer *sp = nb_tok_load_file(argv[1], &e);
    CHECK(sp && nb_tok_kind(sp) == NB_TOK_SENTENCEPIECE && nb_tok_bos(sp) == 1 &&
              nb_tok_eos(sp) == 2 && !nb_tok_bpe(sp),
          "tok512: %s", e.msg);
    if (sp)
        bad_text(sp, "tok512");
    nb_tok_free(sp);
    bpe_files(argv[2]);
    char path[1024];
    snprintf(path, sizeof path, "%s/gpt2.json", argv[2]);
    nb_tokenizer *g = nb_tok_load_file(path, &e);
    if (g)
        bad_text(g, "gpt2");
    nb_tok_free(g);
    bad_loads(tu_tmp("wordpiece.json"));
    tu_cleanup();
    return tu_finish("test_tokapi");
}
