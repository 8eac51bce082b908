/* The BPE tokenizer (tokenizer/bpe.h) against the Hugging Face tokenizers
 * library, whose answers tests/bpe/gen_cases.py wrote down:
 *
 *   test_bpe cases TOKENIZER.json CASES.jsonl... [--skip NAME] [--files FILES.json DATADIR]
 *       every case: encode without and with special tokens, decode with and
 *       without skipping them, decode(encode(text)) == text where the
 *       library gives that, and the incremental detokenizer: each step
 *       valid UTF-8, all of them together equal to decode. A CASES file
 *       written ?PATH is optional (../shared's dev-cases). --files gives
 *       the length and a hash of the ids of whole texts under DATADIR
 *       (wiki.test.raw and others), checked when the text is there, and
 *       of a text of every code point ("@unicode", unless --skip names it).
 *       A missing TOKENIZER.json is a skip (exit 77), said on stdout.
 *   test_bpe bad TOKENIZER.json
 *       malformed tokenizer.json texts and encode inputs give one-line
 *       errors; truncated and mutated blobs of TOKENIZER.json load or
 *       fail cleanly, and what loads encodes and decodes without harm.
 *   test_bpe bench TOKENIZER.json TEXT
 *       load time from the blob, encode and decode speed on TEXT. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include "../tokenizer/bpe.h"
#include "../runtime/base/utf8.h"

#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int n_checks, n_failed;

static int check(int ok, int line, const char *fmt, ...) NB_PRINTF(3, 4);

static int check(int ok, int line, const char *fmt, ...)
{
    n_checks++;
    if (ok)
        return 1;
    if (++n_failed <= 40) {
        va_list ap;
        va_start(ap, fmt);
        fprintf(stderr, "FAIL test_bpe.c:%d: ", line);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
        va_end(ap);
    }
    return 0;
}

#define CHECK(cond, ...) check((cond) != 0, __LINE__, __VA_ARGS__)

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int exists(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f)
        fclose(f);
    return f != NULL;
}

static char *read_file(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 16, n = 0, k;
    char *p = malloc(cap + 1);
    while (p && (k = fread(p + n, 1, cap - n, f)) > 0) {
        n += k;
        if (n == cap) {
            char *q = realloc(p, 2 * cap + 1);
            if (!q)
                free(p);
            p = q;
            cap *= 2;
        }
    }
    fclose(f);
    if (p) {
        p[n] = '\0';
        *size = n;
    }
    return p;
}

/* Shows a text in messages: escapes, cut short. */
static const char *show(const char *s, size_t n)
{
    static char buf[4][200];
    static int which;
    char *b = buf[which++ & 3];
    size_t k = 0;
    for (size_t i = 0; i < n && k < sizeof buf[0] - 8; i++) {
        unsigned char c = (unsigned char)s[i];
        k += (size_t)(c >= 0x20 && c != 0x7f && c != '\\' ? snprintf(b + k, 8, "%c", c)
                                                          : snprintf(b + k, 8, "\\x%02x", c));
    }
    b[k] = '\0';
    return b;
}

static const char *show_ids(const int32_t *ids, size_t n)
{
    static char buf[2][400];
    static int which;
    char *b = buf[which++ & 1];
    size_t k = 0;
    b[0] = '\0';
    for (size_t i = 0; i < n && k < sizeof buf[0] - 16; i++)
        k += (size_t)snprintf(b + k, 16, "%s%d", i ? "," : "", ids[i]);
    return b;
}

typedef struct counts {
    int cases, ids, ids_special, decode, decode_skip, roundtrip, detok;
    int n_special, n_decode, n_decode_skip, n_roundtrip, n_decode_only;
} counts;

static int32_t *json_ids(json_t *a, size_t *n)
{
    *n = json_array_size(a);
    int32_t *v = malloc((*n + 1) * sizeof *v);
    for (size_t i = 0; v && i < *n; i++)
        v[i] = (int32_t)json_integer_value(json_array_get(a, i));
    return v;
}

static int same_ids(const int32_t *a, size_t na, const int32_t *b, size_t nb)
{
    return na == nb && (na == 0 || memcmp(a, b, na * sizeof *a) == 0);
}

static int encode_is(const nb_bpe *t, const char *text, size_t len, int special, json_t *want,
                     const char *what)
{
    size_t n, nw;
    int32_t *ids, *w = json_ids(want, &nw);
    nb_err e = {{0}};
    int ok = nb_bpe_encode(t, text, len, special, &ids, &n, &e) == 0;
    if (!CHECK(ok, "%s: encode failed: %s", what, e.msg)) {
        free(w);
        return 0;
    }
    ok = CHECK(same_ids(ids, n, w, nw), "%s: \"%s\"\n  got  %s\n  want %s", what, show(text, len),
               show_ids(ids, n), show_ids(w, nw));
    free(ids);
    free(w);
    return ok;
}

static int decode_is(const nb_bpe *t, const int32_t *ids, size_t n, int skip, const char *want,
                     size_t want_len, const char *what)
{
    size_t len;
    nb_err e = {{0}};
    char *got = nb_bpe_decode(t, ids, n, skip, &len, &e);
    if (!CHECK(got, "%s: decode failed: %s", what, e.msg))
        return 0;
    int ok = CHECK(len == want_len && memcmp(got, want, len) == 0,
                   "%s (skip %d):\n  got  \"%s\"\n  want \"%s\"", what, skip, show(got, len),
                   show(want, want_len));
    free(got);
    return ok;
}

/* One id at a time: each step valid UTF-8, the whole equal to decode. */
static int detok_is(const nb_bpe *t, const int32_t *ids, size_t n, int skip, const char *what)
{
    nb_err e = {{0}};
    size_t want_len, len;
    char *want = nb_bpe_decode(t, ids, n, skip, &want_len, &e);
    nb_bpe_detok *d = nb_bpe_detok_new(t, skip, &e);
    char *got = malloc(want_len + 64);
    size_t at = 0;
    int ok = CHECK(want && d && got, "%s: %s", what, e.msg);
    for (size_t i = 0; ok && i <= n; i++) {
        const char *s = i < n ? nb_bpe_detok_push(d, ids[i], &len) : nb_bpe_detok_flush(d, &len);
        ok = CHECK(s && nb_utf8_bad_offset((const unsigned char *)s, len) == len,
                   "%s: step %zu is not valid UTF-8", what, i) &&
             CHECK(at + len <= want_len && memcmp(got + at, s, 0) == 0 &&
                       memcmp(want + at, s, len) == 0,
                   "%s: step %zu (id %d) gives \"%s\", decode has \"%s\" there", what, i,
                   i < n ? ids[i] : -1, show(s, len), show(want + at, want_len - at));
        if (ok)
            memcpy(got + at, s, len);
        at += len;
    }
    ok =
        ok && CHECK(at == want_len, "%s: the steps give %zu bytes, decode %zu", what, at, want_len);
    free(want);
    free(got);
    nb_bpe_detok_free(d);
    return ok;
}

/* A case from gen_cases.py says all (absent fields mean "the same"); one
 * from elsewhere (../shared's dev-cases: text and ids) only encodes. */
static void one_case(const nb_bpe *t, json_t *c, counts *k, int strict, const char *what)
{
    json_t *text = json_object_get(c, "text"), *ids = json_object_get(c, "ids");
    json_t *special = json_object_get(c, "ids_special"), *dec = json_object_get(c, "decode");
    json_t *dec_skip = json_object_get(c, "decode_skip");
    const char *s = json_string_value(text);
    size_t len = json_string_length(text), n;
    k->cases++;
    if (!text) /* a decode-only case: ids the library decoded */
        k->n_decode_only++;
    else
        k->ids += encode_is(t, s, len, 0, ids, what);
    if (text && strict) { /* with special tokens: the same ids unless the case says otherwise */
        k->n_special++;
        k->ids_special += encode_is(t, s, len, 1, special ? special : ids, what);
    }
    /* decode absent: the library gives the text back */
    const char *want = dec ? json_string_value(dec) : s;
    size_t want_len = dec ? json_string_length(dec) : len;
    int has = dec || (strict && text && !json_is_true(json_object_get(c, "no_decode")));
    int32_t *v = json_ids(ids, &n);
    if (has) {
        int ok = decode_is(t, v, n, 0, want, want_len, what);
        k->n_decode++;
        k->decode += ok;
        k->n_roundtrip += !dec;
        k->roundtrip += !dec && ok;
    }
    if (dec_skip || (has && !json_is_true(json_object_get(c, "no_decode_skip")))) {
        k->n_decode_skip++;
        k->decode_skip += dec_skip ? decode_is(t, v, n, 1, json_string_value(dec_skip),
                                               json_string_length(dec_skip), what)
                                   : decode_is(t, v, n, 1, want, want_len, what);
    }
    k->detok += detok_is(t, v, n, 0, what) & detok_is(t, v, n, 1, what);
    free(v);
}

static int run_cases_file(const nb_bpe *t, const char *path)
{
    int optional = path[0] == '?';
    path += optional;
    FILE *f = fopen(path, "r");
    if (!f) {
        if (optional) {
            printf("  %s: absent, not checked\n", path);
            return 0;
        }
        return CHECK(0, "cannot read %s", path);
    }
    counts k = {0};
    char what[300];
    size_t line_cap = 0;
    char *line = NULL;
    ssize_t got;
    for (int no = 1; (got = getline(&line, &line_cap, f)) > 0; no++) {
        json_error_t err;
        json_t *c = json_loadb(line, (size_t)got, JSON_ALLOW_NUL, &err);
        snprintf(what, sizeof what, "%s:%d", path, no);
        if (CHECK(c && json_is_array(json_object_get(c, "ids")), "%s: %s", what, err.text))
            one_case(t, c, &k, !optional, what);
        json_decref(c);
    }
    free(line);
    fclose(f);
    printf("  %s: %d cases: encode %d/%d, with special tokens %d/%d; decode %d/%d, skipping "
           "special tokens %d/%d, decode(encode(x)) == x %d/%d; incremental %d/%d\n",
           path, k.cases, k.ids, k.cases - k.n_decode_only, k.ids_special, k.n_special, k.decode,
           k.n_decode, k.decode_skip, k.n_decode_skip, k.roundtrip, k.n_roundtrip, k.detok,
           k.cases);
    return 0;
}

/* FNV-1a over the ids, as gen_cases.py computes it. */
static uint64_t ids_hash(const int32_t *ids, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint32_t)ids[i]) * 1099511628211ull;
    return h;
}

static size_t put_cp(char *out, uint32_t c)
{
    if (c < 0x80) {
        out[0] = (char)c;
        return 1;
    }
    if (c < 0x800) {
        out[0] = (char)(0xC0 | c >> 6);
        out[1] = (char)(0x80 | (c & 0x3F));
        return 2;
    }
    size_t k = c < 0x10000 ? 3 : 4;
    out[0] = (char)(k == 3 ? 0xE0 | c >> 12 : 0xF0 | c >> 18);
    for (size_t i = 1; i < k; i++)
        out[i] = (char)(0x80 | ((c >> (6 * (k - 1 - i))) & 0x3F));
    return k;
}

/* gen_cases.py's unicode_lines: every code point from U+0020 (surrogates
 * aside) as "a" c c "1" c " ", 48 to a line; one encode per line. */
static int32_t *unicode_ids(const nb_bpe *t, size_t *total)
{
    char line[48 * 16 + 2];
    int32_t *all = NULL;
    size_t cap = 0;
    *total = 0;
    for (uint32_t c = 0x20, k = 0; c < 0x110000;) {
        size_t len = 0;
        for (k = 0; k < 48 && c < 0x110000; c++) {
            if (c >= 0xD800 && c < 0xE000)
                continue;
            char ch[4];
            size_t m = put_cp(ch, c);
            line[len++] = 'a';
            memcpy(line + len, ch, m), len += m;
            memcpy(line + len, ch, m), len += m;
            line[len++] = '1';
            memcpy(line + len, ch, m), len += m;
            line[len++] = ' ';
            k++;
        }
        line[len++] = '\n';
        int32_t *ids;
        size_t n;
        nb_err e;
        if (!CHECK(nb_bpe_encode(t, line, len, 0, &ids, &n, &e) == 0, "@unicode: %s", e.msg))
            break;
        if (*total + n > cap) {
            cap = 2 * (*total + n);
            int32_t *v = realloc(all, cap * sizeof *v);
            if (!v)
                break;
            all = v;
        }
        memcpy(all + *total, ids, n * sizeof *ids);
        *total += n;
        free(ids);
    }
    return all;
}

static void whole_file(const nb_bpe *t, json_t *f, const char *dir)
{
    char path[1024];
    const char *name = json_string_value(json_object_get(f, "file"));
    snprintf(path, sizeof path, "%s/%s", dir, name ? name : "");
    size_t size = 0, n = 0;
    int unicode = name && strcmp(name, "@unicode") == 0, ok = 1;
    char *text = unicode ? NULL : read_file(path, &size);
    if (unicode)
        snprintf(path, sizeof path, "every code point (@unicode)");
    else if (!text) {
        printf("  %s: absent, not checked\n", path);
        return;
    }
    int32_t *ids = NULL;
    nb_err e = {{0}};
    double t0 = now();
    if (unicode)
        ids = unicode_ids(t, &n);
    else
        ok = CHECK(nb_bpe_encode(t, text, size, 0, &ids, &n, &e) == 0, "%s: %s", path, e.msg);
    double dt = now() - t0;
    char hash[32];
    snprintf(hash, sizeof hash, "%016llx", ok ? (unsigned long long)ids_hash(ids, n) : 0ull);
    json_int_t want_n = json_integer_value(json_object_get(f, "n"));
    const char *want = json_string_value(json_object_get(f, "hash"));
    ok = ok && CHECK((json_int_t)n == want_n && want && strcmp(hash, want) == 0,
                     "%s: %zu ids hashing to %s, the library gives %lld hashing to %s", path, n,
                     hash, (long long)want_n, want ? want : "?");
    printf("  %s: %zu ids %s the library's (%.0f tokens/s)\n", path, n,
           ok ? "equal to" : "DIFFER from", (double)n / dt);
    free(ids);
    free(text);
}

static void run_files(const nb_bpe *t, const char *files, const char *dir, const char *skip)
{
    json_error_t err;
    json_t *list = json_load_file(files, 0, &err);
    size_t i;
    if (!CHECK(json_is_array(list), "%s: %s", files, err.text))
        return;
    for (i = 0; i < json_array_size(list); i++) {
        json_t *f = json_array_get(list, i);
        const char *name = json_string_value(json_object_get(f, "file"));
        if (skip && name && strcmp(name, skip) == 0)
            printf("  %s: skipped\n", name);
        else
            whole_file(t, f, dir);
    }
    json_decref(list);
}

/* from_json, then the blob loaded a few times: the fastest load is the
 * figure (the first pays for page faults). */
static nb_bpe *load(const char *path)
{
    nb_err e = {{0}};
    size_t size;
    double t0 = now();
    void *blob = nb_bpe_from_json(path, &size, &e);
    double parse = now() - t0, best = 1e9;
    if (!CHECK(blob, "%s", e.msg))
        return NULL;
    nb_bpe *t = NULL;
    for (int i = 0; i < 5; i++) {
        nb_bpe_free(t);
        t0 = now();
        t = nb_bpe_load_bytes(blob, size, &e);
        double dt = now() - t0;
        best = dt < best ? dt : best;
        if (!CHECK(t, "loading the blob: %s", e.msg))
            break;
    }
    if (t)
        printf("%s: %d ids, blob %zu bytes: tokenizer.json parsed in %.1f ms, blob loaded in "
               "%.2f ms\n",
               path, nb_bpe_vocab_size(t), size, 1e3 * parse, 1e3 * best);
    free(blob);
    return t;
}

/* A loaded tokenizer is only read: threads encoding at once agree with one
 * thread alone. */
typedef struct job {
    const nb_bpe *t;
    const char *text;
    const int32_t *want;
    size_t n_want;
    int bad;
} job;

static void *encode_job(void *arg)
{
    job *j = arg;
    for (int r = 0; r < 20; r++) {
        int32_t *ids;
        size_t n;
        nb_err e;
        j->bad += nb_bpe_encode(j->t, j->text, strlen(j->text), 1, &ids, &n, &e) < 0 ||
                  !same_ids(ids, n, j->want, j->n_want);
        free(ids);
    }
    return NULL;
}

static void threads_agree(const nb_bpe *t)
{
    static const char text[] = "Hello <|im_start|> world! 机器学习 1234567 don't \xf0\x9f\x98\x80 "
                               "\xd9\x85\xd8\xb1\xd8\xad\xd8\xa8\xd8\xa7 e\xcc\x81  \n\n";
    int32_t *want;
    size_t n;
    nb_err e;
    if (!CHECK(nb_bpe_encode(t, text, strlen(text), 1, &want, &n, &e) == 0, "%s", e.msg))
        return;
    job jobs[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        jobs[i] = (job){t, text, want, n, 0};
        CHECK(pthread_create(&th[i], NULL, encode_job, &jobs[i]) == 0, "pthread_create");
    }
    int bad = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        bad += jobs[i].bad;
    }
    CHECK(bad == 0, "%d encodes from 4 threads at once differ from one thread's", bad);
    free(want);
}

/* Every id's text leads back to it; the texts are C strings. */
static void pieces(const nb_bpe *t)
{
    int bad = 0;
    for (int id = 0; id < nb_bpe_vocab_size(t); id++) {
        size_t len;
        const char *p = nb_bpe_piece(t, id, &len);
        bad += p && (p[len] != '\0' || nb_bpe_piece_to_id(t, p, len) != id);
    }
    CHECK(bad == 0, "%d ids do not come back from their text", bad);
    CHECK(!nb_bpe_piece(t, -1, NULL) && !nb_bpe_piece(t, nb_bpe_vocab_size(t), NULL),
          "pieces outside the vocabulary");
}

static int cmd_cases(int argc, char **argv)
{
    if (!exists(argv[2])) {
        printf("SKIP: %s is absent. The Llama-3 tokenizer is under Meta's licence and is not "
               "vendored; tests read it (and Mistral's) from ../shared/tokenizers.\n",
               argv[2]);
        return 77;
    }
    nb_bpe *t = load(argv[2]);
    if (!t)
        return 1;
    pieces(t);
    threads_agree(t);
    const char *skip = NULL;
    for (int i = 3; i < argc; i++) {
        if (strcmp(argv[i], "--skip") == 0 && i + 1 < argc) {
            skip = argv[++i];
        } else if (strcmp(argv[i], "--files") == 0 && i + 2 < argc) {
            run_files(t, argv[i + 1], argv[i + 2], skip);
            i += 2;
        } else {
            run_cases_file(t, argv[i]);
        }
    }
    nb_bpe_free(t);
    return 0;
}

/* --- bad input --- */

static const char tiny[] =
    "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2}, "
    "\"merges\": [\"a b\"]}, \"added_tokens\": [], %s}";

static void bad_json(const char *json, const char *needle)
{
    nb_err e = {{0}};
    size_t size;
    void *blob = nb_bpe_from_json_text(json, strlen(json), &size, &e);
    if (CHECK(!blob && strstr(e.msg, needle) && !strchr(e.msg, '\n'),
              "tokenizer.json %s: want an error naming \"%s\", got \"%s\"",
              show(json, strlen(json)), needle, blob ? "(loaded)" : e.msg))
        printf("  refused: %s\n", e.msg);
    free(blob);
}

static void bad_tiny(const char *rest, const char *needle)
{
    char json[2048];
    snprintf(json, sizeof json, tiny, rest);
    bad_json(json, needle);
}

static void bad_tokenizer_json(void)
{
    char json[2048];
    snprintf(json, sizeof json, tiny, "\"normalizer\": null");
    bad_json("", "line");
    bad_json("not json", "line");
    json[strlen(json) / 2] = '\0';
    bad_json(json, "line");
    bad_json("[1, 2]", "not a JSON object");
    bad_json("{\"model\": {\"type\": \"WordPiece\", \"vocab\": {}}}", "WordPiece");
    bad_json("{\"model\": {\"type\": \"Unigram\", \"vocab\": []}}", "Unigram");
    bad_json("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 0}, \"merges\": []}}",
             "share id");
    bad_json("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"a\": 1}, \"merges\": []}}",
             "duplicate");
    bad_json("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [\"a c\"]}}",
             "\"c\" is not in the vocabulary");
    bad_json("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [\"a a\"]}}",
             "\"aa\" is not in the vocabulary");
    bad_json("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": -3}, \"merges\": []}}",
             "valid id");
    bad_tiny("\"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"Regex\": \"(a\"}, "
             "\"behavior\": \"Isolated\"}",
             "invalid regex");
    bad_tiny("\"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"Regex\": \"a\"}, "
             "\"behavior\": \"Sideways\"}",
             "Sideways");
    bad_tiny("\"normalizer\": {\"type\": \"Lowercase\"}", "Lowercase is not supported");
    bad_tiny("\"pre_tokenizer\": {\"type\": \"Whitespace\"}", "Whitespace is not supported");
    bad_tiny("\"decoder\": {\"type\": \"WordPiece\"}", "WordPiece is not supported");
    bad_tiny("\"decoder\": {\"type\": \"Sequence\", \"decoders\": [{\"type\": \"Fuse\"}, "
             "{\"type\": \"ByteFallback\"}]}",
             "after Fuse");
    snprintf(json, sizeof json,
             "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}, "
             "\"added_tokens\": [{\"id\": 5, \"content\": \"<s>\", \"special\": true}]}");
    bad_json(json, "would give it 1");
    bad_json("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [], "
             "\"unk_token\": \"<unk>\"}}",
             "unk_token");
    bad_json("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [], "
             "\"dropout\": 0.1}}",
             "dropout");
}

static void bad_text(const nb_bpe *t)
{
    nb_err e = {{0}};
    int32_t *ids, bad_id = nb_bpe_vocab_size(t);
    size_t n;
    CHECK(nb_bpe_encode(t,
                        "ab\xff"
                        "cd",
                        5, 0, &ids, &n, &e) < 0 &&
              strstr(e.msg, "byte 2"),
          "invalid UTF-8: %s", e.msg);
    CHECK(nb_bpe_encode(t, "ab\xe4\xb8", 4, 0, &ids, &n, &e) < 0 && strstr(e.msg, "byte 2"),
          "cut UTF-8: %s", e.msg);
    CHECK(nb_bpe_encode(t, "\xed\xa0\x80", 3, 0, &ids, &n, &e) < 0, "a surrogate is encoded");
    CHECK(!nb_bpe_decode(t, &bad_id, 1, 0, NULL, &e) && strstr(e.msg, "outside"),
          "decoding an id outside the vocabulary: %s", e.msg);
    size_t len;
    nb_bpe_detok *d = nb_bpe_detok_new(t, 0, &e);
    const char *s = d ? nb_bpe_detok_push(d, bad_id, &len) : NULL;
    CHECK(s && len == 0, "the detokenizer prints an id outside the vocabulary");
    nb_bpe_detok_free(d);
}

/* Whatever loads must work. */
static void exercise(const nb_bpe *t)
{
    static const char *const texts[] = {"Hello world", " <s>  x\n\n",
                                        "\xe4\xb8\xad\xf0\x9f\x98\x80"};
    for (size_t i = 0; i < 3; i++) {
        int32_t *ids;
        size_t n, len;
        nb_err e;
        if (nb_bpe_encode(t, texts[i], strlen(texts[i]), 1, &ids, &n, &e) < 0)
            continue;
        free(nb_bpe_decode(t, ids, n, 0, &len, &e));
        nb_bpe_detok *d = nb_bpe_detok_new(t, 1, &e);
        for (size_t k = 0; d && k < n; k++)
            nb_bpe_detok_push(d, ids[k], &len);
        if (d)
            nb_bpe_detok_flush(d, &len);
        nb_bpe_detok_free(d);
        free(ids);
    }
}

static uint64_t rnd(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Truncations everywhere must fail; mutations load or fail cleanly. */
static void bad_blobs(const uint8_t *blob, size_t size)
{
    nb_err e;
    int loaded = 0, tried = 0;
    for (size_t cut = 0; cut < size; cut += 1 + cut / 64) {
        nb_bpe *t = nb_bpe_load_bytes(blob, cut, &e);
        CHECK(!t, "a blob cut to %zu of %zu bytes loads", cut, size);
        nb_bpe_free(t);
    }
    uint8_t *m = malloc(size);
    uint64_t seed = 12345;
    /* the header, the token table, the pipeline, anywhere: in turn */
    uint32_t toks = blob[32] | blob[33] << 8 | (uint32_t)blob[34] << 16;
    uint32_t ops = blob[40] | blob[41] << 8 | (uint32_t)blob[42] << 16;
    uint32_t strs = blob[44] | blob[45] << 8 | (uint32_t)blob[46] << 16;
    size_t from[4] = {0, toks, ops, 0}, span[4] = {64, ops - toks, strs - ops, size};
    for (int i = 0; m && i < 6000; i++) {
        memcpy(m, blob, size);
        int flips = 1 + (int)(rnd(&seed) % 3);
        for (int k = 0; k < flips; k++) {
            size_t at = from[i % 4] + (size_t)(rnd(&seed) % span[i % 4]);
            uint64_t r = rnd(&seed);
            m[at] = (uint8_t)(r % 4 == 0 ? 0xFF : r % 4 == 1 ? 0 : r % 4 == 2 ? m[at] ^ 1 : r >> 8);
        }
        nb_bpe *t = nb_bpe_load_bytes(m, size, &e);
        tried++;
        if (t) {
            loaded++;
            exercise(t);
        }
        nb_bpe_free(t);
    }
    printf("bad blobs: every truncation refused; %d of %d mutated blobs loaded and were used\n",
           loaded, tried);
    free(m);
}

static int cmd_bad(const char *path)
{
    bad_tokenizer_json();
    nb_err e = {{0}};
    size_t size, size2;
    void *blob = nb_bpe_from_json(path, &size, &e);
    if (!CHECK(blob, "%s: %s", path, e.msg))
        return 1;
    void *again = nb_bpe_from_json(path, &size2, &e);
    CHECK(again && size2 == size && memcmp(blob, again, size) == 0,
          "the blob is not deterministic");
    free(again);
    nb_bpe *t = nb_bpe_load_bytes(blob, size, &e);
    if (CHECK(t, "%s", e.msg))
        bad_text(t);
    nb_bpe_free(t);
    bad_blobs(blob, size);
    free(blob);
    return 0;
}

/* --- speed --- */

/* One encode call per line, newline included, as a chat sends short texts. */
static double encode_lines(const nb_bpe *t, const char *text, size_t size, size_t *total)
{
    double best = 1e9;
    for (int r = 0; r < 3; r++) {
        double t0 = now();
        *total = 0;
        for (size_t a = 0, b; a < size; a = b) {
            const char *nl = memchr(text + a, '\n', size - a);
            b = nl ? (size_t)(nl - text) + 1 : size;
            int32_t *ids;
            size_t n;
            nb_err e;
            if (nb_bpe_encode(t, text + a, b - a, 0, &ids, &n, &e) == 0)
                *total += n;
            free(ids);
        }
        double dt = now() - t0;
        best = dt < best ? dt : best;
    }
    return best;
}

static int cmd_bench(const char *path, const char *text_path)
{
    nb_bpe *t = load(path);
    size_t size, n, len;
    char *text = read_file(text_path, &size);
    if (!t || !text) {
        fprintf(stderr, "test_bpe: cannot read %s\n", t ? text_path : path);
        return 1;
    }
    int32_t *ids = NULL;
    nb_err e = {{0}};
    double best = 1e9;
    for (int r = 0; r < 3; r++) {
        free(ids);
        double t0 = now();
        if (nb_bpe_encode(t, text, size, 0, &ids, &n, &e) < 0) {
            fprintf(stderr, "test_bpe: %s\n", e.msg);
            return 1;
        }
        double dt = now() - t0;
        best = dt < best ? dt : best;
    }
    printf("encode %s: %zu bytes, %zu tokens in %.3f s: %.0f tokens/s, %.1f MB/s (best of 3)\n",
           text_path, size, n, best, (double)n / best, (double)size / best / 1e6);
    size_t lines_n;
    double lines = encode_lines(t, text, size, &lines_n);
    printf("encode line by line: %zu tokens in %.3f s: %.0f tokens/s\n", lines_n, lines,
           (double)lines_n / lines);
    double t0 = now();
    char *back = nb_bpe_decode(t, ids, n, 0, &len, &e);
    double dec = now() - t0;
    printf("decode: %.0f tokens/s, round trip %s\n", (double)n / dec,
           back && len == size && memcmp(back, text, size) == 0 ? "exact" : "differs");
    free(back);
    free(ids);
    free(text);
    nb_bpe_free(t);
    return 0;
}

int main(int argc, char **argv)
{
    int rc = 2;
    if (argc >= 3 && strcmp(argv[1], "cases") == 0)
        rc = cmd_cases(argc, argv);
    else if (argc == 3 && strcmp(argv[1], "bad") == 0)
        rc = cmd_bad(argv[2]);
    else if (argc == 4 && strcmp(argv[1], "bench") == 0)
        return cmd_bench(argv[2], argv[3]);
    else
        fprintf(stderr, "usage: test_bpe cases|bad|bench ... (see tests/test_bpe.c)\n");
    if (rc != 0)
        return rc;
    if (n_failed) {
        fprintf(stderr, "test_bpe: %d of %d checks failed\n", n_failed, n_checks);
        return 1;
    }
    printf("test_bpe: all %d checks passed\n", n_checks);
    return 0;
}
