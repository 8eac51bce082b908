#define _POSIX_C_SOURCE 200809L
#include "json.h"

#include "../tokenizer/utf8.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Values sit in one array in document order. A container's members follow
 * it; siblings are chained by relative offsets, so walking never needs a
 * parent pointer or recursion. In an object the chain runs through the
 * keys, and each key's value is the entry right after it. */
struct nb_json_val {
    uint8_t type;
    uint8_t is_int; /* an integer that fits int64 exactly */
    uint8_t is_key;
    uint8_t boolean;
    uint32_t count; /* members of a container */
    uint32_t next;  /* offset to the next sibling, 0 for the last */
    uint32_t len;   /* decoded string bytes */
    double num;
    union {
        int64_t i;
        const char *s; /* in the document's string arena */
    } u;
};

struct nb_json {
    nb_json_val *vals;
    size_t n;
    char *arena;
};

struct frame {
    uint32_t node, last; /* last: newest linked child, or the node itself */
};

struct key_ref {
    const char *s;
    uint32_t len;
};

struct parser {
    const unsigned char *s;
    size_t len, pos;
    nb_json_val *vals;
    size_t n, cap;
    char *arena; /* decoded strings never outgrow the input (see parse) */
    size_t used;
    struct frame stack[NB_JSON_MAX_DEPTH];
    int depth;
    struct key_ref *keys; /* scratch for the duplicate check */
    size_t keys_cap;
    nb_err *e;
};

static int fail_at(struct parser *p, size_t at, const char *what)
{
    return nb_fail(p->e, "%s at byte %zu", what, at);
}

static int fail(struct parser *p, const char *what)
{
    return fail_at(p, p->pos, what);
}

static void skip_ws(struct parser *p)
{
    while (p->pos < p->len) {
        unsigned char c = p->s[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            return;
        p->pos++;
    }
}

static int grow_vals(struct parser *p)
{
    if (p->n < p->cap)
        return 0;
    if (p->n >= NB_JSON_MAX_VALUES)
        return nb_fail(p->e, "more than %u values at byte %zu", NB_JSON_MAX_VALUES, p->pos);
    size_t cap = p->cap ? p->cap * 2 : 64;
    if (cap > NB_JSON_MAX_VALUES)
        cap = NB_JSON_MAX_VALUES;
    nb_json_val *v = realloc(p->vals, cap * sizeof *v);
    if (!v)
        return fail(p, "out of memory");
    p->vals = v;
    p->cap = cap;
    return 0;
}

/* Appends a value and links it into the open container: array elements
 * and object keys join the sibling chain; an object's values do not. */
static nb_json_val *add_val(struct parser *p, int type, int is_key)
{
    if (grow_vals(p))
        return NULL;
    uint32_t at = (uint32_t)p->n++;
    nb_json_val *v = &p->vals[at];
    memset(v, 0, sizeof *v);
    v->type = (uint8_t)type;
    v->is_key = (uint8_t)is_key;
    if (p->depth > 0) {
        struct frame *f = &p->stack[p->depth - 1];
        nb_json_val *parent = &p->vals[f->node];
        if (parent->type == NB_JSON_ARRAY || is_key) {
            if (f->last != f->node)
                p->vals[f->last].next = at - f->last;
            f->last = at;
            parent->count++;
        }
    }
    return v;
}

static char *put_utf8(char *out, uint32_t cp)
{
    if (cp < 0x80) {
        *out++ = (char)cp;
    } else if (cp < 0x800) {
        *out++ = (char)(0xc0 | cp >> 6);
        *out++ = (char)(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
        *out++ = (char)(0xe0 | cp >> 12);
        *out++ = (char)(0x80 | ((cp >> 6) & 0x3f));
        *out++ = (char)(0x80 | (cp & 0x3f));
    } else {
        *out++ = (char)(0xf0 | cp >> 18);
        *out++ = (char)(0x80 | ((cp >> 12) & 0x3f));
        *out++ = (char)(0x80 | ((cp >> 6) & 0x3f));
        *out++ = (char)(0x80 | (cp & 0x3f));
    }
    return out;
}

/* Reads the 4 hex digits of a \u escape whose backslash is at pos. */
static int read_hex4(struct parser *p, size_t pos, uint32_t *cp)
{
    if (p->len - pos < 6 || p->s[pos] != '\\' || p->s[pos + 1] != 'u')
        return -1;
    uint32_t v = 0;
    for (size_t i = pos + 2; i < pos + 6; i++) {
        unsigned char c = p->s[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0)
            return -1;
        v = v * 16 + (uint32_t)d;
    }
    *cp = v;
    return 0;
}

/* A \u escape at pos, with its low surrogate when it needs one. */
static int unicode_escape(struct parser *p, char **out)
{
    uint32_t cp, lo;
    if (read_hex4(p, p->pos, &cp))
        return fail(p, "invalid \\u escape");
    if (cp >= 0xdc00 && cp <= 0xdfff)
        return fail(p, "unpaired low surrogate");
    if (cp >= 0xd800 && cp <= 0xdbff) {
        if (read_hex4(p, p->pos + 6, &lo) || lo < 0xdc00 || lo > 0xdfff)
            return fail(p, "unpaired high surrogate");
        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        p->pos += 6;
    }
    p->pos += 6;
    *out = put_utf8(*out, cp);
    return 0;
}

static int escape(struct parser *p, char **out)
{
    if (p->pos + 1 >= p->len)
        return fail(p, "unterminated escape");
    static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
    unsigned char c = p->s[p->pos + 1];
    if (c == 'u')
        return unicode_escape(p, out);
    const char *hit = c ? strchr(from, c) : NULL;
    if (!hit)
        return fail(p, "invalid escape");
    *(*out)++ = to[hit - from];
    p->pos += 2;
    return 0;
}

static int parse_string(struct parser *p, int is_key)
{
    size_t start = p->pos++;
    char *dst = p->arena + p->used, *out = dst;
    for (;;) {
        if (p->pos >= p->len)
            return fail_at(p, start, "unterminated string starting");
        unsigned char c = p->s[p->pos];
        if (c == '"')
            break;
        if (c < 0x20)
            return fail(p, "control character in string");
        if (c == '\\') {
            if (escape(p, &out))
                return -1;
        } else if (c < 0x80) {
            *out++ = (char)c;
            p->pos++;
        } else {
            int n = nb_utf8_char(p->s + p->pos, p->len - p->pos);
            if (n <= 0)
                return fail(p, "invalid UTF-8 in string");
            memcpy(out, p->s + p->pos, (size_t)n);
            out += n;
            p->pos += (size_t)n;
        }
    }
    p->pos++;
    *out++ = 0;
    nb_json_val *v = add_val(p, NB_JSON_STRING, is_key);
    if (!v)
        return -1;
    v->u.s = dst;
    v->len = (uint32_t)(out - dst - 1);
    p->used += (size_t)(out - dst);
    return 0;
}

static size_t skip_digits(struct parser *p)
{
    size_t n = 0;
    while (p->pos < p->len && p->s[p->pos] >= '0' && p->s[p->pos] <= '9')
        p->pos++, n++;
    return n;
}

/* Checks the RFC grammar; returns 1 for a plain integer literal. */
static int scan_number(struct parser *p)
{
    int plain = 1;
    if (p->s[p->pos] == '-')
        p->pos++;
    if (p->pos < p->len && p->s[p->pos] == '0')
        p->pos++;
    else if (!skip_digits(p))
        return fail(p, "invalid number");
    if (p->pos < p->len && p->s[p->pos] == '.') {
        p->pos++;
        plain = 0;
        if (!skip_digits(p))
            return fail(p, "digit expected after '.'");
    }
    if (p->pos < p->len && (p->s[p->pos] == 'e' || p->s[p->pos] == 'E')) {
        p->pos++;
        plain = 0;
        if (p->pos < p->len && (p->s[p->pos] == '+' || p->s[p->pos] == '-'))
            p->pos++;
        if (!skip_digits(p))
            return fail(p, "digit expected in exponent");
    }
    return plain;
}

/* Exact int64 of a plain integer literal; -1 when it does not fit. */
static int literal_int(const char *s, int64_t *out)
{
    int neg = *s == '-';
    uint64_t v = 0, limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (s += neg; *s; s++) {
        uint64_t d = (uint64_t)(*s - '0');
        if (v > (limit - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return 0;
}

static int parse_number(struct parser *p)
{
    size_t start = p->pos;
    int plain = scan_number(p);
    if (plain < 0)
        return -1;
    size_t n = p->pos - start;
    if (n > NB_JSON_MAX_NUMBER)
        return fail_at(p, start, "number literal too long");
    char buf[NB_JSON_MAX_NUMBER + 1];
    memcpy(buf, p->s + start, n);
    buf[n] = 0;
    /* The tools never call setlocale, so strtod reads '.' as in JSON. */
    errno = 0;
    double d = strtod(buf, NULL);
    if (isinf(d))
        return fail_at(p, start, "number out of range");
    nb_json_val *v = add_val(p, NB_JSON_NUMBER, 0);
    if (!v)
        return -1;
    v->num = d;
    if (plain)
        v->is_int = !literal_int(buf, &v->u.i);
    else if (errno != ERANGE && d == floor(d) && fabs(d) <= 9007199254740992.0)
        v->is_int = 1, v->u.i = (int64_t)d; /* "4096.0", "4e3": integral and exact */
    return 0;
}

static int parse_literal(struct parser *p)
{
    static const char *const words[] = {"true", "false", "null"};
    for (int i = 0; i < 3; i++) {
        size_t n = strlen(words[i]);
        if (p->len - p->pos >= n && !memcmp(p->s + p->pos, words[i], n)) {
            nb_json_val *v = add_val(p, i == 2 ? NB_JSON_NULL : NB_JSON_BOOL, 0);
            if (!v)
                return -1;
            v->boolean = i == 0;
            p->pos += n;
            return 0;
        }
    }
    return fail(p, "invalid literal");
}

static int parse_key(struct parser *p)
{
    skip_ws(p);
    if (p->pos >= p->len || p->s[p->pos] != '"')
        return fail(p, "expected a string key");
    if (parse_string(p, 1))
        return -1;
    skip_ws(p);
    if (p->pos >= p->len || p->s[p->pos] != ':')
        return fail(p, "expected ':'");
    p->pos++;
    return 0;
}

/* Opens an array or object. 0: it was empty and is already closed;
 * 1: its first member follows (for an object, the key is read). */
static int open_container(struct parser *p, int type)
{
    if (p->depth >= NB_JSON_MAX_DEPTH)
        return nb_fail(p->e, "nesting deeper than %d at byte %zu", NB_JSON_MAX_DEPTH, p->pos);
    nb_json_val *v = add_val(p, type, 0);
    if (!v)
        return -1;
    uint32_t at = (uint32_t)(p->n - 1);
    p->stack[p->depth++] = (struct frame){at, at};
    p->pos++;
    skip_ws(p);
    if (p->pos < p->len && p->s[p->pos] == (type == NB_JSON_ARRAY ? ']' : '}')) {
        p->pos++;
        p->depth--;
        return 0;
    }
    if (type == NB_JSON_OBJECT && parse_key(p))
        return -1;
    return 1;
}

/* Starts the next value. 0: a complete value; 1: a container was opened
 * and its first member comes next; -1: error. */
static int begin_value(struct parser *p)
{
    skip_ws(p);
    if (p->pos >= p->len)
        return fail(p, "unexpected end of input");
    unsigned char c = p->s[p->pos];
    if (c == '{')
        return open_container(p, NB_JSON_OBJECT);
    if (c == '[')
        return open_container(p, NB_JSON_ARRAY);
    if (c == '"')
        return parse_string(p, 0);
    if (c == '-' || (c >= '0' && c <= '9'))
        return parse_number(p);
    if (c == 't' || c == 'f' || c == 'n')
        return parse_literal(p);
    if (c > 0x20 && c < 0x7f)
        return nb_fail(p->e, "unexpected character '%c' at byte %zu", c, p->pos);
    return nb_fail(p->e, "unexpected byte 0x%02x at byte %zu", c, p->pos);
}

static int cmp_key(const void *a, const void *b)
{
    const struct key_ref *x = a, *y = b;
    uint32_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->s, y->s, n);
    return c ? c : (x->len > y->len) - (x->len < y->len);
}

/* Sorting keeps the check O(n log n) even for a hostile header with
 * millions of keys in one object. */
static int check_duplicates(struct parser *p, const nb_json_val *obj)
{
    size_t n = obj->count;
    if (n < 2)
        return 0;
    if (n > p->keys_cap) {
        void *k = realloc(p->keys, n * sizeof *p->keys);
        if (!k)
            return fail(p, "out of memory");
        p->keys = k;
        p->keys_cap = n;
    }
    const nb_json_val *k = obj + 1;
    for (size_t i = 0; i < n; i++, k += k->next)
        p->keys[i] = (struct key_ref){k->u.s, k->len};
    qsort(p->keys, n, sizeof *p->keys, cmp_key);
    for (size_t i = 1; i < n; i++)
        if (!cmp_key(&p->keys[i - 1], &p->keys[i]))
            return nb_fail(p->e, "duplicate key '%.64s' in the object ending at byte %zu",
                           p->keys[i].s, p->pos - 1);
    return 0;
}

/* After a value: closes finished containers and reads the separator.
 * 0: another member follows; 1: the document is complete; -1: error. */
static int end_value(struct parser *p)
{
    for (;;) {
        skip_ws(p);
        if (p->depth == 0)
            return p->pos == p->len ? 1 : fail(p, "trailing characters after the value");
        if (p->pos >= p->len)
            return fail(p, "unexpected end of input");
        const nb_json_val *top = &p->vals[p->stack[p->depth - 1].node];
        int is_array = top->type == NB_JSON_ARRAY;
        unsigned char c = p->s[p->pos];
        if (c == ',') {
            p->pos++;
            return is_array ? 0 : parse_key(p);
        }
        if (c != (is_array ? ']' : '}'))
            return fail(p, is_array ? "expected ',' or ']'" : "expected ',' or '}'");
        p->pos++;
        if (!is_array && check_duplicates(p, top))
            return -1;
        p->depth--;
    }
}

static int parse_all(struct parser *p)
{
    if (p->len >= 3 && !memcmp(p->s, "\xef\xbb\xbf", 3))
        p->pos = 3;
    for (;;) {
        int r = begin_value(p);
        if (r < 0)
            return -1;
        if (r == 1)
            continue;
        r = end_value(p);
        if (r)
            return r < 0 ? -1 : 0;
    }
}

nb_json *nb_json_parse(const char *text, size_t len, nb_err *e)
{
    if (len > NB_JSON_MAX_BYTES) {
        nb_fail(e, "JSON text of %zu bytes is over the %u byte limit", len, NB_JSON_MAX_BYTES);
        return NULL;
    }
    /* Every string spends two quote bytes and decodes to at most its
     * source length, so len + 1 bytes hold all strings with their NULs. */
    struct parser p = {.s = (const unsigned char *)text, .len = len, .e = e};
    nb_json *doc = calloc(1, sizeof *doc);
    p.arena = malloc(len + 1);
    if (!doc || !p.arena) {
        nb_fail(e, "out of memory");
    } else if (!parse_all(&p)) {
        free(p.keys);
        doc->vals = p.vals;
        doc->n = p.n;
        doc->arena = p.arena;
        return doc;
    }
    free(p.keys);
    free(p.vals);
    free(p.arena);
    free(doc);
    return NULL;
}

static char *read_small_file(const char *path, size_t max_bytes, size_t *len, nb_err *e)
{
    struct stat st;
    FILE *f = fopen(path, "rb");
    if (!f) {
        nb_fail(e, "cannot open '%s': %s", path, strerror(errno));
        return NULL;
    }
    if (fstat(fileno(f), &st) || !S_ISREG(st.st_mode) || (uint64_t)st.st_size > max_bytes) {
        fclose(f);
        nb_fail(e, "'%s' is not a regular file of at most %zu bytes", path, max_bytes);
        return NULL;
    }
    size_t n = (size_t)st.st_size;
    char *buf = malloc(n ? n : 1);
    size_t got = buf ? fread(buf, 1, n, f) : 0;
    fclose(f);
    if (!buf || got != n) {
        free(buf);
        nb_fail(e, "cannot read '%s'", path);
        return NULL;
    }
    *len = n;
    return buf;
}

nb_json *nb_json_parse_file(const char *path, size_t max_bytes, nb_err *e)
{
    size_t len;
    char *text = read_small_file(path, max_bytes, &len, e);
    if (!text)
        return NULL;
    nb_err why;
    nb_json *doc = nb_json_parse(text, len, &why);
    free(text);
    if (!doc)
        nb_fail(e, "%s: %s", path, why.msg);
    return doc;
}

void nb_json_free(nb_json *doc)
{
    if (!doc)
        return;
    free(doc->vals);
    free(doc->arena);
    free(doc);
}

const nb_json_val *nb_json_root(const nb_json *doc)
{
    return doc && doc->n ? &doc->vals[0] : NULL;
}

int nb_json_type(const nb_json_val *v)
{
    return v ? v->type : -1;
}

const char *nb_json_type_name(int type)
{
    static const char *const names[] = {"null", "boolean", "number", "string", "array", "object"};
    return type >= 0 && type <= NB_JSON_OBJECT ? names[type] : "nothing";
}

const nb_json_val *nb_json_get(const nb_json_val *v, const char *key)
{
    if (!v || v->type != NB_JSON_OBJECT)
        return NULL;
    size_t n = strlen(key);
    for (const nb_json_val *k = nb_json_first(v); k; k = nb_json_next(k))
        if (k->len == n && !memcmp(k->u.s, key, n))
            return k + 1;
    return NULL;
}

size_t nb_json_count(const nb_json_val *v)
{
    return v && (v->type == NB_JSON_ARRAY || v->type == NB_JSON_OBJECT) ? v->count : 0;
}

const nb_json_val *nb_json_first(const nb_json_val *v)
{
    return nb_json_count(v) ? v + 1 : NULL;
}

const nb_json_val *nb_json_next(const nb_json_val *v)
{
    return v && v->next ? v + v->next : NULL;
}

const nb_json_val *nb_json_value(const nb_json_val *key)
{
    return key && key->is_key ? key + 1 : NULL;
}

int nb_json_number(const nb_json_val *v, double *out)
{
    if (!v || v->type != NB_JSON_NUMBER)
        return -1;
    *out = v->num;
    return 0;
}

int nb_json_int(const nb_json_val *v, int64_t *out)
{
    if (!v || v->type != NB_JSON_NUMBER || !v->is_int)
        return -1;
    *out = v->u.i;
    return 0;
}

int nb_json_bool(const nb_json_val *v, int *out)
{
    if (!v || v->type != NB_JSON_BOOL)
        return -1;
    *out = v->boolean;
    return 0;
}

const char *nb_json_string(const nb_json_val *v, size_t *len)
{
    if (!v || v->type != NB_JSON_STRING)
        return NULL;
    if (len)
        *len = v->len;
    return v->u.s;
}
