/* The line editor of nibble chat's prompt: a pure core that turns input
 * bytes into edits of a UTF-8 line, and a thin terminal layer (raw mode,
 * drawing, signals) under it. lineedit.h describes the interface,
 * docs/chat.md the keys and choices. */
#define _POSIX_C_SOURCE 200809L
#include "lineedit.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <unistd.h>

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

static int text_put(nb_le_text *t, const char *s, size_t n)
{
    return text_insert(t, t->len, s, n);
}

static int text_puts(nb_le_text *t, const char *s)
{
    return text_put(t, s, strlen(s));
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

/* ---- the terminal layer ---- */

/* One terminal at a time: the signal handlers need it in globals. */
static int tty_in = -1, tty_out = -1, tty_stop_caught;
static struct termios tty_cooked, tty_raw_mode;
static volatile sig_atomic_t tty_raw, tty_woke;
static const int caught[] = {SIGTERM, SIGHUP, SIGQUIT, SIGTSTP, SIGWINCH};
static struct sigaction tty_old[sizeof caught / sizeof *caught];

#define PASTE_ON "\033[?2004h"
#define PASTE_OFF "\033[?2004l"

/* Both async-signal-safe, for the handlers as well. */
static void go_cooked(void)
{
    tcsetattr(tty_in, TCSANOW, &tty_cooked);
    if (write(tty_out, PASTE_OFF, sizeof PASTE_OFF - 1) < 0) {
        /* nothing to do about it: the mode is what matters */
    }
    tty_raw = 0;
}

static void go_raw(void)
{
    tty_raw = 1;
    tcsetattr(tty_in, TCSANOW, &tty_raw_mode);
    if (write(tty_out, PASTE_ON, sizeof PASTE_ON - 1) < 0) {
        /* without bracketed paste, pasted lines are typed lines */
    }
}

/* SIGTERM, SIGHUP, SIGQUIT: the terminal back as it was, then the
 * signal's own action (SA_RESETHAND restored it) once this returns. */
static void on_fatal(int sig)
{
    if (tty_raw)
        go_cooked();
    raise(sig);
}

/* SIGTSTP (Ctrl-Z reaches here through raise): stop with the terminal as
 * it was, and come back to raw mode and a redraw when continued. */
static void on_stop(int sig)
{
    int was_raw = tty_raw, saved_errno = errno;
    struct sigaction dfl, mine;
    sigset_t s;
    if (was_raw)
        go_cooked();
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    sigaction(sig, &dfl, &mine);
    sigemptyset(&s);
    sigaddset(&s, sig);
    raise(sig);
    sigprocmask(SIG_UNBLOCK, &s, NULL); /* stops here until SIGCONT */
    sigprocmask(SIG_BLOCK, &s, NULL);
    sigaction(sig, &mine, NULL);
    if (was_raw)
        go_raw();
    tty_woke = 1;
    errno = saved_errno;
}

static void on_winch(int sig)
{
    (void)sig;
    tty_woke = 1;
}

/* The signals the handlers look at are blocked while the mode changes, so
 * a handler never sees it half changed. */
static void set_mode(int raw)
{
    sigset_t s, old;
    sigemptyset(&s);
    for (size_t i = 0; i < sizeof caught / sizeof *caught; i++)
        sigaddset(&s, caught[i]);
    sigprocmask(SIG_BLOCK, &s, &old);
    if (raw)
        go_raw();
    else
        go_cooked();
    sigprocmask(SIG_SETMASK, &old, NULL);
}

/* Handlers for `caught`, except where a signal was ignored (nohup).
 * SIGWINCH and SIGTSTP restart what they interrupt (a reply's writes to
 * stderr), which pselect never is, so the wait for a key still ends. */
static void catch_signals(void)
{
    for (size_t i = 0; i < sizeof caught / sizeof *caught; i++) {
        int sig = caught[i];
        struct sigaction sa;
        sigaction(sig, NULL, &tty_old[i]);
        if (tty_old[i].sa_handler == SIG_IGN)
            continue;
        memset(&sa, 0, sizeof sa);
        sigemptyset(&sa.sa_mask);
        sa.sa_handler = sig == SIGWINCH ? on_winch : sig == SIGTSTP ? on_stop : on_fatal;
        sa.sa_flags = sig == SIGWINCH || sig == SIGTSTP ? SA_RESTART : SA_RESETHAND;
        sigaction(sig, &sa, NULL);
        tty_stop_caught |= sig == SIGTSTP;
    }
}

int nb_tty_open(nb_tty *t, int in, int out, nb_tty_write write, void *ctx)
{
    const char *term = getenv("TERM");
    memset(t, 0, sizeof *t);
    if (!isatty(in) || !isatty(out) || (term && !strcmp(term, "dumb")) ||
        tcgetattr(in, &tty_cooked))
        return -1;
    tty_raw_mode = tty_cooked;
    /* Bytes as typed: no line discipline, echo, signals from keys (Ctrl-C
     * and Ctrl-Z arrive as keys), CR to LF, or XON/XOFF. Output processing
     * stays, so "\n" still starts a new line. */
    tty_raw_mode.c_iflag &= (tcflag_t) ~(BRKINT | ICRNL | INPCK | ISTRIP | IXON);
    tty_raw_mode.c_lflag &= (tcflag_t) ~(ECHO | ICANON | IEXTEN | ISIG);
    tty_raw_mode.c_cc[VMIN] = 1;
    tty_raw_mode.c_cc[VTIME] = 0;
    tty_in = in, tty_out = out;
    t->in = in, t->out = out, t->write = write, t->ctx = ctx;
    nb_le_init(&t->le);
    catch_signals();
    return 0;
}

void nb_tty_close(nb_tty *t)
{
    if (tty_raw)
        set_mode(0);
    for (size_t i = 0; i < sizeof caught / sizeof *caught; i++)
        sigaction(caught[i], &tty_old[i], NULL);
    tty_stop_caught = 0;
    nb_le_free(&t->le);
    free(t->draw.s);
    memset(t, 0, sizeof *t);
}

/* 0 when fd has input, 1 when a resize or a resume calls for a redraw, -1
 * on SIGINT. The signals stay blocked from the check of the flags until
 * pselect unblocks them atomically, so one landing just before the wait
 * still ends it. */
static int wait_for(int fd)
{
    sigset_t block, old;
    int rc = 0;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGWINCH);
    sigaddset(&block, SIGTSTP);
    sigprocmask(SIG_BLOCK, &block, &old);
    if (!nb_interrupted() && !tty_woke) {
        fd_set in;
        FD_ZERO(&in);
        FD_SET(fd, &in);
        pselect(fd + 1, &in, NULL, NULL, NULL, &old);
    }
    if (tty_woke)
        tty_woke = 0, rc = 1;
    sigprocmask(SIG_SETMASK, &old, NULL);
    return nb_interrupted() ? -1 : rc;
}

int nb_wait_input(int fd)
{
    int rc;
    while ((rc = wait_for(fd)) > 0)
        continue;
    return rc;
}

static int columns(int fd)
{
    struct winsize ws;
    return ioctl(fd, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0 ? ws.ws_col : 80;
}

/* Moves the cursor n cells right ("\033[0C" would move one). */
static int move_right(nb_le_text *d, int n)
{
    char buf[24];
    if (n <= 0)
        return 0;
    snprintf(buf, sizeof buf, "\033[%dC", n);
    return text_puts(d, buf);
}

/* The line's bytes [a, b) as drawn: tab as a space and a pasted newline
 * as a return arrow, one cell each, so widths stay what the core counts. */
static int put_visible(nb_le_text *d, const char *s, size_t a, size_t b)
{
    for (size_t i = a; i < b; i++) {
        const char *sub = s[i] == '\t' ? " " : s[i] == '\n' ? "\xE2\x86\xB5" : NULL;
        if (sub ? text_puts(d, sub) : text_put(d, s + i, 1))
            return -1;
    }
    return 0;
}

/* Redraws the line in place: the prompt only when `full` (it stays on the
 * screen otherwise), then the view, cleared to the end of the row. */
static int redraw(nb_tty *t, const char *prompt, int full)
{
    int pw = nb_le_width(prompt, strlen(prompt)), width = columns(t->out) - pw - 1;
    size_t len;
    const char *s = nb_le_line(&t->le, &len);
    nb_le_view v;
    nb_le_show(&t->le, width, &v);
    t->draw.len = 0;
    if (text_puts(&t->draw, "\r") || (full ? text_puts(&t->draw, prompt) : move_right(&t->draw, pw)) ||
        put_visible(&t->draw, s, v.start, v.end) || text_puts(&t->draw, "\033[K\r") ||
        move_right(&t->draw, pw + v.cursor))
        return nb_error("out of memory"), -1;
    return t->write(t->ctx, t->draw.s, t->draw.len);
}

/* After Enter: the whole line written out (the terminal wraps it; it is
 * not edited any more), so the scrollback shows the message as sent. */
static int echo_line(nb_tty *t, const char *prompt, int full)
{
    size_t len;
    const char *s = nb_le_line(&t->le, &len);
    t->draw.len = 0;
    if (text_puts(&t->draw, "\r") ||
        (full ? text_puts(&t->draw, prompt)
              : move_right(&t->draw, nb_le_width(prompt, strlen(prompt)))) ||
        text_puts(&t->draw, "\033[K") || text_put(&t->draw, s, len) || text_puts(&t->draw, "\n"))
        return nb_error("out of memory"), -1;
    return t->write(t->ctx, t->draw.s, t->draw.len);
}

/* Fills t->buf: 1 when bytes came, 0 for a redraw, or an nb_tty_read
 * result (a terminal that hung up is the end of input). */
static long fill(nb_tty *t)
{
    int w = wait_for(t->in);
    if (w)
        return w < 0 ? NB_TTY_INTERRUPT : 0;
    ssize_t k = read(t->in, t->buf, sizeof t->buf);
    if (k < 0 && errno == EINTR)
        return 0;
    if (k <= 0)
        return NB_TTY_EOF;
    t->at = 0, t->n = (size_t)k;
    return 1;
}

/* What an event means to the terminal: 0 to go on (full set when the
 * prompt must be drawn again), or the result of nb_tty_read. */
static long act(nb_tty *t, int ev, int *full)
{
    switch (ev) {
    case NB_LE_EOF: return NB_TTY_EOF;
    case NB_LE_INTERRUPT: return NB_TTY_INTERRUPT;
    case NB_LE_NOMEM: return nb_error("out of memory"), NB_TTY_ERROR;
    case NB_LE_SUSPEND:
        if (tty_stop_caught)
            raise(SIGTSTP), *full = 1;
        return 0;
    case NB_LE_CLEAR:
        *full = 1;
        return t->write(t->ctx, "\033[H\033[2J", 7) ? NB_TTY_ERROR : 0;
    default: return 0;
    }
}

long nb_tty_read(nb_tty *t, const char *prompt, const char **line)
{
    int ev = NB_LE_MORE, full = 1; /* full: the prompt must be drawn */
    long rc = 0;
    nb_le_start(&t->le);
    set_mode(1);
    while (!rc && ev != NB_LE_ENTER) {
        if (t->at < t->n) {
            ev = nb_le_key(&t->le, t->buf[t->at++]);
            rc = act(t, ev, &full);
            continue;
        }
        /* all typed so far is in: show it, then wait for more */
        if (redraw(t, prompt, full)) {
            rc = NB_TTY_ERROR;
            break;
        }
        rc = fill(t);
        full = rc == 0; /* a resize or a resume */
        rc = rc < 0 ? rc : 0;
    }
    if (!rc && echo_line(t, prompt, full))
        rc = NB_TTY_ERROR;
    set_mode(0);
    if (rc)
        return rc;
    size_t len;
    *line = nb_le_line(&t->le, &len);
    return (long)len;
}
