/* The line editor of nibble chat's prompt: a pure core that turns input
 * bytes into edits of a UTF-8 line; the terminal layer (raw mode,
 * drawing, signals) is tools/tty.c. lineedit.h describes the interface,
 * docs/chat.md the keys and choices. */
#define _POSIX_C_SOURCE 200809L
#include "lineedit.h"

#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* ---- text buffers ---- */

static int text_room(nb_le_text *t, size_t extra)
{
    if (t->len + extra + 1 <= t->cap)
        return 0;
    size_t cap = t->cap ? t->cap : 64;
    while (cap < t->len + extra + 1)
        cap *= 2;
    char *p = realloc(t->s, cap);
    if (!p)
        return -1;
    p[t->len] = 0; /* a new buffer is a valid empty string */
    t->s = p;
    t->cap = cap;
    return 0;
}

static int text_insert(nb_le_text *t, size_t at, const char *s, size_t n)
{
    if (text_room(t, n))
        return -1;
    memmove(t->s + at + n, t->s + at, t->len - at + 1);
    memcpy(t->s + at, s, n);
    t->len += n;
    return 0;
}

static int text_set(nb_le_text *t, const char *s, size_t n)
{
    t->len = 0;
    if (text_room(t, n))
        return -1;
    memcpy(t->s, s, n);
    t->s[t->len = n] = 0;
    return 0;
}

int nb_le_text_put(nb_le_text *t, const char *s, size_t n)
{
    return text_insert(t, t->len, s, n);
}

int nb_le_text_puts(nb_le_text *t, const char *s)
{
    return nb_le_text_put(t, s, strlen(s));
}

static void text_erase(nb_le_text *t, size_t a, size_t b)
{
    memmove(t->s + a, t->s + b, t->len - b + 1);
    t->len -= b - a;
}

/* ---- characters ---- */

/* The code point at s[i] of valid UTF-8, and where the next one starts. */
static uint32_t cp_at(const char *s, size_t i, size_t *next)
{
    const unsigned char *u = (const unsigned char *)s + i;
    int n = u[0] < 0x80 ? 1 : u[0] < 0xE0 ? 2 : u[0] < 0xF0 ? 3 : 4;
    uint32_t cp = n == 1 ? u[0] : u[0] & (0x7F >> n);
    for (int k = 1; k < n; k++)
        cp = cp << 6 | (u[k] & 0x3F);
    *next = i + (size_t)n;
    return cp;
}

struct range {
    uint32_t lo, hi;
};

static int in_ranges(uint32_t cp, const struct range *r, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (cp >= r[i].lo && cp <= r[i].hi)
            return 1;
    return 0;
}

int nb_le_cp_width(uint32_t cp)
{
    /* Combining marks, zero-width spaces and joiners, variation selectors. */
    static const struct range zero[] = {
        {0x0300, 0x036F}, {0x0483, 0x0489}, {0x0591, 0x05BD}, {0x0610, 0x061A},
        {0x064B, 0x065F}, {0x1AB0, 0x1AFF}, {0x1DC0, 0x1DFF}, {0x200B, 0x200F},
        {0x20D0, 0x20FF}, {0xFE00, 0xFE0F}, {0xFE20, 0xFE2F}, {0xE0100, 0xE01EF},
    };
    /* East Asian Wide and Fullwidth blocks, and the emoji blocks. */
    static const struct range wide[] = {
        {0x1100, 0x115F},   {0x2E80, 0x303E},   {0x3041, 0x33FF},   {0x3400, 0x4DBF},
        {0x4E00, 0x9FFF},   {0xA000, 0xA4CF},   {0xA960, 0xA97F},   {0xAC00, 0xD7A3},
        {0xF900, 0xFAFF},   {0xFE10, 0xFE19},   {0xFE30, 0xFE6F},   {0xFF00, 0xFF60},
        {0xFFE0, 0xFFE6},   {0x1F300, 0x1F64F}, {0x1F900, 0x1F9FF}, {0x20000, 0x2FFFD},
        {0x30000, 0x3FFFD},
    };
    if (in_ranges(cp, zero, sizeof zero / sizeof *zero))
        return 0;
    return in_ranges(cp, wide, sizeof wide / sizeof *wide) ? 2 : 1;
}

int nb_le_width(const char *s, size_t n)
{
    int w = 0;
    for (size_t i = 0; i < n;)
        w += nb_le_cp_width(cp_at(s, i, &i));
    return w;
}

/* A character, for moving and deleting, is a code point with the
 * zero-width ones after it, so the cursor never splits a letter from its
 * accent. */
static size_t next_char(const nb_le_text *t, size_t i)
{
    size_t next;
    cp_at(t->s, i, &i);
    while (i < t->len && nb_le_cp_width(cp_at(t->s, i, &next)) == 0)
        i = next;
    return i;
}

static size_t prev_cp(const nb_le_text *t, size_t i)
{
    do
        i--;
    while (i > 0 && ((unsigned char)t->s[i] & 0xC0) == 0x80);
    return i;
}

static size_t prev_char(const nb_le_text *t, size_t i)
{
    size_t next;
    do
        i = prev_cp(t, i);
    while (i > 0 && nb_le_cp_width(cp_at(t->s, i, &next)) == 0);
    return i;
}

static int cells(const nb_le_text *t, size_t a, size_t b)
{
    return a < b ? nb_le_width(t->s + a, b - a) : 0;
}

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n';
}

/* ---- the core ---- */

void nb_le_init(nb_le *le)
{
    memset(le, 0, sizeof *le);
}

void nb_le_free(nb_le *le)
{
    free(le->line.s);
    free(le->draft.s);
    free(le->kill.s);
    for (size_t i = 0; i < le->n_hist; i++)
        free(le->hist[i]);
    free(le->hist);
    nb_le_init(le);
}

void nb_le_start(nb_le *le)
{
    le->line.len = le->draft.len = 0;
    if (le->line.s)
        le->line.s[0] = 0;
    le->pos = le->scroll = 0;
    le->hist_at = le->n_hist;
}

const char *nb_le_line(const nb_le *le, size_t *len)
{
    *len = le->line.len;
    return le->line.s ? le->line.s : "";
}

static int insert(nb_le *le, const char *s, size_t n)
{
    if (text_insert(&le->line, le->pos, s, n))
        return NB_LE_NOMEM;
    if (le->scroll > le->pos)
        le->scroll = le->pos;
    le->pos += n;
    return NB_LE_MORE;
}

/* Removes [a, b) of the line, keeping it for Ctrl-Y when `keep`. */
static int erase(nb_le *le, size_t a, size_t b, int keep)
{
    if (a == b)
        return NB_LE_MORE;
    if (keep && text_set(&le->kill, le->line.s + a, b - a))
        return NB_LE_NOMEM;
    text_erase(&le->line, a, b);
    if (le->pos > a)
        le->pos = le->pos >= b ? le->pos - (b - a) : a;
    if (le->scroll > a)
        le->scroll = a;
    return NB_LE_MORE;
}

/* The start of the word before the cursor, or the end of the one after
 * it; words are separated by white space. */
static size_t word_left(const nb_le *le)
{
    size_t i = le->pos;
    while (i > 0 && is_space(le->line.s[prev_char(&le->line, i)]))
        i = prev_char(&le->line, i);
    while (i > 0 && !is_space(le->line.s[prev_char(&le->line, i)]))
        i = prev_char(&le->line, i);
    return i;
}

static size_t word_right(const nb_le *le)
{
    size_t i = le->pos;
    while (i < le->line.len && is_space(le->line.s[i]))
        i = next_char(&le->line, i);
    while (i < le->line.len && !is_space(le->line.s[i]))
        i = next_char(&le->line, i);
    return i;
}

static int load(nb_le *le, const char *s, size_t n)
{
    if (text_set(&le->line, s, n))
        return NB_LE_NOMEM;
    le->pos = n;
    le->scroll = 0;
    return NB_LE_MORE;
}

/* Up (dir -1) and Down (+1) through the history; the line being typed is
 * kept aside while an older one is shown. */
static int recall(nb_le *le, int dir)
{
    if (dir < 0 ? le->hist_at == 0 : le->hist_at == le->n_hist)
        return NB_LE_MORE;
    if (le->hist_at == le->n_hist && text_set(&le->draft, le->line.s ? le->line.s : "",
                                              le->line.len))
        return NB_LE_NOMEM;
    le->hist_at = dir < 0 ? le->hist_at - 1 : le->hist_at + 1;
    if (le->hist_at == le->n_hist)
        return load(le, le->draft.s, le->draft.len);
    return load(le, le->hist[le->hist_at], strlen(le->hist[le->hist_at]));
}

static int blank_line(const nb_le *le)
{
    for (size_t i = 0; i < le->line.len; i++)
        if (!is_space(le->line.s[i]))
            return 0;
    return 1;
}

/* A line worth keeping (not blank, not the last one again) joins the
 * history; the oldest goes beyond NB_LE_HISTORY_MAX. */
static void remember(nb_le *le)
{
    const char *s = le->line.s;
    if (blank_line(le) || (le->n_hist && !strcmp(le->hist[le->n_hist - 1], s)))
        return;
    if (le->n_hist == NB_LE_HISTORY_MAX) {
        free(le->hist[0]);
        memmove(le->hist, le->hist + 1, --le->n_hist * sizeof *le->hist);
    }
    if (le->n_hist == le->hist_cap) {
        size_t cap = le->hist_cap ? 2 * le->hist_cap : 16;
        char **p = realloc(le->hist, cap * sizeof *p);
        if (!p)
            return; /* the line is still sent; only its recall is lost */
        le->hist = p;
        le->hist_cap = cap;
    }
    char *copy = strdup(s);
    if (copy)
        le->hist[le->n_hist++] = copy;
}

static int accept(nb_le *le)
{
    if (!le->line.s && text_set(&le->line, "", 0))
        return NB_LE_NOMEM;
    remember(le);
    le->hist_at = le->n_hist;
    return NB_LE_ENTER;
}

static int move_to(nb_le *le, size_t pos)
{
    le->pos = pos;
    return NB_LE_MORE;
}

static int left(nb_le *le)
{
    return move_to(le, le->pos ? prev_char(&le->line, le->pos) : 0);
}

static int right(nb_le *le)
{
    return move_to(le, le->pos < le->line.len ? next_char(&le->line, le->pos) : le->pos);
}

static int delete_char(nb_le *le)
{
    if (le->pos == le->line.len)
        return NB_LE_MORE;
    return erase(le, le->pos, next_char(&le->line, le->pos), 0);
}

static int backspace(nb_le *le)
{
    if (le->pos == 0)
        return NB_LE_MORE;
    return erase(le, prev_char(&le->line, le->pos), le->pos, 0);
}

static int yank(nb_le *le)
{
    return le->kill.len ? insert(le, le->kill.s, le->kill.len) : NB_LE_MORE;
}

/* A control key outside a paste. */
static int control(nb_le *le, unsigned char b)
{
    switch (b) {
    case 0x01: return move_to(le, 0);                           /* Ctrl-A */
    case 0x02: return left(le);                                 /* Ctrl-B */
    case 0x03: return NB_LE_INTERRUPT;                          /* Ctrl-C */
    case 0x04: return le->line.len ? delete_char(le) : NB_LE_EOF; /* Ctrl-D */
    case 0x05: return move_to(le, le->line.len);                /* Ctrl-E */
    case 0x06: return right(le);                                /* Ctrl-F */
    case 0x08: case 0x7F: return backspace(le);                 /* Ctrl-H, Backspace */
    case 0x09: return insert(le, "\t", 1);                      /* Tab */
    case 0x0A: case 0x0D: return accept(le);                    /* Enter, Ctrl-J */
    case 0x0B: return erase(le, le->pos, le->line.len, 1);      /* Ctrl-K */
    case 0x0C: return NB_LE_CLEAR;                              /* Ctrl-L */
    case 0x0E: return recall(le, 1);                            /* Ctrl-N */
    case 0x10: return recall(le, -1);                           /* Ctrl-P */
    case 0x15: return erase(le, 0, le->pos, 1);                 /* Ctrl-U */
    case 0x17: return erase(le, word_left(le), le->pos, 1);     /* Ctrl-W */
    case 0x19: return yank(le);                                 /* Ctrl-Y */
    case 0x1A: return NB_LE_SUSPEND;                            /* Ctrl-Z */
    default: return NB_LE_MORE;                                 /* others do nothing */
    }
}

/* A control byte inside a bracketed paste: line breaks (CR, LF or CR LF)
 * become newlines in the message instead of ending it; tabs stay; Ctrl-C
 * still works, as a way out of a paste that never ends. */
static int pasted_control(nb_le *le, unsigned char b, int after_cr)
{
    if (b == '\r')
        return le->after_cr = 1, insert(le, "\n", 1);
    if (b == '\n')
        return after_cr ? NB_LE_MORE : insert(le, "\n", 1);
    if (b == '\t')
        return insert(le, "\t", 1);
    return b == 0x03 ? NB_LE_INTERRUPT : NB_LE_MORE;
}

/* The number at the start of s, capped: escape sequences are input like
 * any other (atoi would overflow). */
static int number(const char *s)
{
    int n = 0;
    for (; *s >= '0' && *s <= '9'; s++)
        n = n < 100000 ? 10 * n + (*s - '0') : n;
    return n;
}

/* The end of a CSI sequence: params (digits and ';') and its final byte. */
static int csi(nb_le *le, const char *params, unsigned char final)
{
    if (!strcmp(params, "201") && final == '~')
        return le->paste = 0, NB_LE_MORE;
    if (le->paste)
        return NB_LE_MORE;
    const char *semi = strchr(params, ';');
    int mods = semi ? number(semi + 1) - 1 : 0, word = mods > 0 && (mods & 6); /* Alt, Ctrl */
    int num = number(params);
    switch (final) {
    case 'A': return recall(le, -1);
    case 'B': return recall(le, 1);
    case 'C': return word ? move_to(le, word_right(le)) : right(le);
    case 'D': return word ? move_to(le, word_left(le)) : left(le);
    case 'H': return move_to(le, 0);
    case 'F': return move_to(le, le->line.len);
    case '~':
        if (num == 200)
            le->paste = 1;
        return num == 1 || num == 7   ? move_to(le, 0)
               : num == 4 || num == 8 ? move_to(le, le->line.len)
               : num == 3             ? delete_char(le)
                                      : NB_LE_MORE;
    default: return NB_LE_MORE; /* unknown keys do nothing */
    }
}

static int fresh(nb_le *le, unsigned char b);

/* A byte after ESC, ESC [ or ESC O. */
static int escape(nb_le *le, unsigned char b)
{
    if (le->esc == 0x1B) {
        if (b == '[' || b == 'O') {
            le->esc = b, le->n_seq = 0, le->seq_long = 0;
            return NB_LE_MORE;
        }
        le->esc = 0;
        if (!le->paste && (b == 'b' || b == 'f')) /* Alt-b, Alt-f */
            return move_to(le, b == 'b' ? word_left(le) : word_right(le));
        if (!le->paste && (b == 0x7F || b == 0x08)) /* Alt-Backspace */
            return erase(le, word_left(le), le->pos, 1);
        return fresh(le, b); /* a lone ESC is dropped */
    }
    if (le->esc == 'O') {
        le->esc = 0;
        return le->paste || !b || !strchr("ABCDHF", b) ? NB_LE_MORE : csi(le, "", b);
    }
    if (b >= 0x20 && b <= 0x3F) { /* parameter or intermediate byte */
        if (le->n_seq + 1 < sizeof le->seq)
            le->seq[le->n_seq++] = b;
        else
            le->seq_long = 1;
        return NB_LE_MORE;
    }
    le->esc = 0;
    if (b < 0x40 || b > 0x7E) /* not a final byte: the sequence is broken */
        return fresh(le, b);
    le->seq[le->n_seq] = 0;
    return le->seq_long ? NB_LE_MORE : csi(le, (const char *)le->seq, b);
}

static const char replacement[] = "\xEF\xBF\xBD"; /* U+FFFD */

/* Inserts a complete UTF-8 sequence; C1 controls (U+0080..U+009F), which
 * a terminal could act on, are dropped like other control characters. */
static int insert_utf8(nb_le *le, const unsigned char *s, size_t n)
{
    if (n == 2 && s[0] == 0xC2 && s[1] < 0xA0)
        return NB_LE_MORE;
    return insert(le, (const char *)s, n);
}

/* A lead byte: how many continuation bytes follow and the range of the
 * first (which rules out overlong forms, surrogates and code points past
 * U+10FFFF); 0 for a byte that cannot start a character. */
static size_t lead(unsigned char b, unsigned char *lo, unsigned char *hi)
{
    *lo = 0x80, *hi = 0xBF;
    if (b >= 0xC2 && b <= 0xDF)
        return 1;
    if (b >= 0xE0 && b <= 0xEF) {
        *lo = b == 0xE0 ? 0xA0 : 0x80, *hi = b == 0xED ? 0x9F : 0xBF;
        return 2;
    }
    if (b >= 0xF0 && b <= 0xF4) {
        *lo = b == 0xF0 ? 0x90 : 0x80, *hi = b == 0xF4 ? 0x8F : 0xBF;
        return 3;
    }
    return 0;
}

/* A byte while a UTF-8 sequence is open. An unexpected byte ends it: what
 * came so far becomes one U+FFFD (the Unicode "maximal subpart" rule) and
 * the byte starts afresh. */
static int utf8_more(nb_le *le, unsigned char b)
{
    if (b < le->utf8_lo || b > le->utf8_hi) {
        le->utf8_need = 0;
        int rc = insert(le, replacement, 3);
        return rc == NB_LE_MORE ? fresh(le, b) : rc;
    }
    le->seq[le->n_seq++] = b;
    le->utf8_lo = 0x80, le->utf8_hi = 0xBF;
    if (--le->utf8_need)
        return NB_LE_MORE;
    return insert_utf8(le, le->seq, le->n_seq);
}

/* A byte outside any sequence. */
static int fresh(nb_le *le, unsigned char b)
{
    int after_cr = le->after_cr;
    le->after_cr = 0;
    if (b >= 0x80) {
        if (!(le->utf8_need = lead(b, &le->utf8_lo, &le->utf8_hi)))
            return insert(le, replacement, 3);
        le->seq[0] = b;
        le->n_seq = 1;
        return NB_LE_MORE;
    }
    if (b == 0x1B)
        return le->esc = b, NB_LE_MORE;
    if (b < 0x20 || b == 0x7F)
        return le->paste ? pasted_control(le, b, after_cr) : control(le, b);
    char c = (char)b;
    return insert(le, &c, 1);
}

int nb_le_key(nb_le *le, unsigned char b)
{
    if (le->utf8_need)
        return utf8_more(le, b);
    return le->esc ? escape(le, b) : fresh(le, b);
}

/* The view scrolls sideways: le->scroll moves only as far as it must to
 * keep the cursor (and the character under it) in view, and comes back
 * left when the rest of the line fits again. */
void nb_le_show(nb_le *le, int width, nb_le_view *v)
{
    const nb_le_text *t = &le->line;
    size_t pos = le->pos, lo = pos, end;
    if (width < 1)
        width = 1;
    int need = pos < t->len ? cells(t, pos, next_char(t, pos)) : 1, used = 0;
    need = need > 0 ? need : 1;
    while (lo > 0) { /* the leftmost start that still shows the cursor */
        size_t p = prev_char(t, lo);
        int w = cells(t, p, lo);
        if (used + w + need > width)
            break;
        used += w, lo = p;
    }
    if (le->scroll < lo)
        le->scroll = lo;
    if (le->scroll > pos)
        le->scroll = pos;
    used = 0; /* the cells from scroll to the end, counted up to width */
    for (end = le->scroll; end < t->len && used <= width; end = next_char(t, end))
        used += cells(t, end, next_char(t, end));
    while (le->scroll > 0 && used < width) {
        size_t p = prev_char(t, le->scroll);
        int w = cells(t, p, le->scroll);
        if (used + w + 1 > width)
            break;
        used += w, le->scroll = p;
    }
    used = 0;
    for (end = le->scroll; end < t->len; end = next_char(t, end)) {
        int w = cells(t, end, next_char(t, end));
        if (used + w > width)
            break;
        used += w;
    }
    v->start = le->scroll;
    v->end = end;
    v->cursor = cells(t, le->scroll, pos);
}

