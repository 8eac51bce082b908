/* Helpers of the BPE tokenizer: buffers, hashing, UTF-8, the character
 * classes the library takes from Rust, GPT-2's byte alphabet, and regex
 * matching through Oniguruma, the engine the library itself uses. */
#include "bpe_int.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

int bpe_buf_reserve(bpe_buf *b, size_t extra)
{
    if (extra <= b->cap - b->len)
        return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap - b->len < extra) {
        if (cap > SIZE_MAX / 2)
            return -1;
        cap *= 2;
    }
    char *p = realloc(b->p, cap);
    if (!p)
        return -1;
    b->p = p;
    b->cap = cap;
    return 0;
}

int bpe_buf_put(bpe_buf *b, const void *s, size_t n)
{
    if (bpe_buf_reserve(b, n) < 0)
        return -1;
    if (n)
        memcpy(b->p + b->len, s, n);
    b->len += n;
    return 0;
}

void bpe_buf_free(bpe_buf *b)
{
    free(b->p);
    memset(b, 0, sizeof *b);
}

int bpe_segs_push(bpe_segs *s, size_t a, size_t b, int match)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 64;
        bpe_seg *v = realloc(s->v, cap * sizeof *v);
        if (!v)
            return -1;
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = (bpe_seg){a, b, match};
    return 0;
}

/* 64-bit multiply-mix over 8-byte words: the vocabulary and the word cache
 * hash short strings millions of times. */
uint64_t bpe_hash(const void *p, size_t n)
{
    const unsigned char *s = p;
    uint64_t h = 0x9E3779B97F4A7C15ull ^ (n * 0xC2B2AE3D27D4EB4Full);
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        h = (h ^ w) * 0xFF51AFD7ED558CCDull;
        h ^= h >> 32;
        s += 8;
        n -= 8;
    }
    uint64_t w = 0;
    for (size_t i = 0; i < n; i++)
        w |= (uint64_t)s[i] << (8 * i);
    h = (h ^ w) * 0xC4CEB9FE1A85EC53ull;
    h ^= h >> 29;
    h *= 0xFF51AFD7ED558CCDull;
    return h ^ (h >> 32);
}

/* The text the tokenizer handles is valid UTF-8 (checked on entry), but
 * the helpers stay bounded on anything. */
int bpe_char_len(const unsigned char *p, size_t n)
{
    int k = p[0] < 0x80 ? 1 : p[0] >= 0xF0 ? 4 : p[0] >= 0xE0 ? 3 : p[0] >= 0xC0 ? 2 : 1;
    return (size_t)k <= n ? k : 1;
}

uint32_t bpe_char_at(const unsigned char *p, size_t n, int *len)
{
    int k = bpe_char_len(p, n);
    uint32_t cp = k == 1 ? p[0] : (uint32_t)(p[0] & (0x7F >> k));
    for (int i = 1; i < k; i++)
        cp = cp << 6 | (p[i] & 0x3F);
    *len = k;
    return cp;
}

size_t bpe_put_char(char *out, uint32_t cp)
{
    return (size_t)utf8proc_encode_char((utf8proc_int32_t)cp, (utf8proc_uint8_t *)out);
}

/* Rust's \s: the White_Space property. */
int bpe_is_space(uint32_t cp)
{
    if (cp <= 0x20)
        return cp == 0x20 || (cp >= 0x09 && cp <= 0x0D);
    return cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) ||
           cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

/* Rust's \w: Alphabetic, marks, decimal digits, connector punctuation and
 * the joiners. Alphabetic is the letters, Nl and Other_Alphabetic, whose
 * members outside the marks are the circled and squared Latin letters. */
int bpe_is_word(uint32_t cp)
{
    switch (utf8proc_category((utf8proc_int32_t)cp)) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
    case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_MC:
    case UTF8PROC_CATEGORY_ME:
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_PC:
        return 1;
    default:
        break;
    }
    return cp == 0x200C || cp == 0x200D || (cp >= 0x24B6 && cp <= 0x24E9) ||
           (cp >= 0x1F130 && cp <= 0x1F149) || (cp >= 0x1F150 && cp <= 0x1F169) ||
           (cp >= 0x1F170 && cp <= 0x1F189);
}

int bpe_is_numeric(uint32_t cp)
{
    utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)cp);
    return c == UTF8PROC_CATEGORY_ND || c == UTF8PROC_CATEGORY_NL || c == UTF8PROC_CATEGORY_NO;
}

/* GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves,
 * the other 68 take U+0100 onwards in byte order. */
uint32_t bpe_byte_char(unsigned b)
{
    if (b <= 0x20)
        return 0x100 + b;
    if (b >= 0x7F && b <= 0xA0)
        return 0x121 + (b - 0x7F);
    return b == 0xAD ? 0x143 : b;
}

int bpe_char_byte(uint32_t cp)
{
    if (cp >= 0x100 && cp <= 0x120)
        return (int)(cp - 0x100);
    if (cp >= 0x121 && cp <= 0x142)
        return (int)(cp - 0x121 + 0x7F);
    if (cp == 0x143)
        return 0xAD;
    if ((cp >= 0x21 && cp <= 0x7E) || (cp >= 0xA1 && cp <= 0xFF && cp != 0xAD))
        return (int)cp;
    return -1;
}

/* Oniguruma searches from any number of threads, but asks that regexes be
 * compiled and freed by one thread at a time. */
static pthread_once_t onig_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t onig_lock = PTHREAD_MUTEX_INITIALIZER;

static void bpe_onig_setup(void)
{
    OnigEncoding enc = ONIG_ENCODING_UTF8;
    onig_initialize(&enc, 1);
}

/* A string pattern is matched literally (bpe_find_matches without regex). */
int bpe_regex_new(OnigRegex *re, const char *pat, size_t n, nb_err *e)
{
    pthread_once(&onig_once, bpe_onig_setup);
    OnigErrorInfo info;
    const UChar *p = (const UChar *)pat;
    pthread_mutex_lock(&onig_lock);
    int r =
        onig_new(re, p, p + n, ONIG_OPTION_NONE, ONIG_ENCODING_UTF8, ONIG_SYNTAX_DEFAULT, &info);
    pthread_mutex_unlock(&onig_lock);
    if (r == ONIG_NORMAL)
        return 0;
    *re = NULL;
    UChar msg[ONIG_MAX_ERROR_MESSAGE_LEN];
    onig_error_code_to_str(msg, r, &info);
    return nb_fail(e, "invalid regex \"%.*s\": %s", n > 80 ? 80 : (int)n, pat, (char *)msg);
}

void bpe_regex_free(OnigRegex re)
{
    if (!re)
        return;
    pthread_mutex_lock(&onig_lock);
    onig_free(re);
    pthread_mutex_unlock(&onig_lock);
}

/* The onig crate's FindMatches: search on from the last end; an empty match
 * moves on by one character and is dropped right after a non-empty one. */
typedef struct finder {
    size_t last_end;
    int skip_next_empty;
} finder;

/* 1 with [*a, *b) of the next match, 0 when there is none, -1 on error. */
static int next_regex(finder *f, OnigRegex re, OnigRegion *rg, const char *s, size_t n, size_t *a,
                      size_t *b, nb_err *e)
{
    for (;;) {
        if (f->last_end > n)
            return 0;
        const UChar *u = (const UChar *)s;
        onig_region_clear(rg);
        int r = onig_search(re, u, u + n, u + f->last_end, u + n, rg, ONIG_OPTION_NONE);
        if (r == ONIG_MISMATCH)
            return 0;
        if (r < 0)
            return nb_fail(e, "regex engine error %d", r);
        *a = (size_t)rg->beg[0];
        *b = (size_t)rg->end[0];
        f->last_end = *b;
        if (*a != *b) {
            f->skip_next_empty = 1;
            return 1;
        }
        f->last_end += *b < n ? (size_t)bpe_char_len((const unsigned char *)s + *b, n - *b) : 1;
        if (!f->skip_next_empty)
            return 1;
        f->skip_next_empty = 0;
    }
}

/* A literal pattern's matches are those of its escaped regex (the library
 * escapes string patterns): leftmost, non-overlapping; the empty pattern
 * matches at every character boundary. */
static int next_literal(finder *f, const char *pat, size_t m, const char *s, size_t n, size_t *a,
                        size_t *b)
{
    if (f->last_end > n)
        return 0;
    if (m == 0) {
        *a = *b = f->last_end;
        f->last_end +=
            f->last_end < n ? (size_t)bpe_char_len((const unsigned char *)s + *a, n - *a) : 1;
        return 1;
    }
    for (size_t i = f->last_end; i + m <= n; i++) {
        if (s[i] == pat[0] && memcmp(s + i, pat, m) == 0) {
            *a = i;
            *b = f->last_end = i + m;
            return 1;
        }
    }
    return 0;
}

int bpe_find_matches(OnigRegex re, const char *pat, size_t m, OnigRegion *rg, const char *s,
                     size_t n, bpe_segs *out, nb_err *e)
{
    out->n = 0;
    if (n == 0)
        return bpe_segs_push(out, 0, 0, 0) < 0 ? nb_fail(e, "out of memory") : 0;
    finder f = {0, 0};
    size_t prev = 0, a = 0, b = 0;
    for (;;) {
        int r =
            re ? next_regex(&f, re, rg, s, n, &a, &b, e) : next_literal(&f, pat, m, s, n, &a, &b);
        if (r < 0)
            return -1;
        if (r == 0)
            break;
        if ((prev != a && bpe_segs_push(out, prev, a, 0) < 0) || bpe_segs_push(out, a, b, 1) < 0)
            return nb_fail(e, "out of memory");
        prev = b;
    }
    if (prev != n && bpe_segs_push(out, prev, n, 0) < 0)
        return nb_fail(e, "out of memory");
    return 0;
}
