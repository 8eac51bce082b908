/* The line editor's core (tools/lineedit.c), driven with byte sequences as
 * a terminal sends them: insertion, moves over UTF-8 characters, deletion,
 * the kill keys, history, escape sequences split anywhere, bracketed
 * paste, invalid UTF-8 (each maximal ill-formed part becomes one U+FFFD),
 * the sideways-scrolling view, and random bytes that must always leave a
 * valid line. Expected lines and cursors are spelled by hand. */
#include <stdlib.h>
#include <string.h>

#include "../tools/lineedit.h"
#include "testutil.h"

#define FFFD "\xEF\xBF\xBD"
#define LEFT "\x1b[D"
#define RIGHT "\x1b[C"
#define UP "\x1b[A"
#define DOWN "\x1b[B"
#define CTRL(c) ((c) & 0x1F)

/* Feeds bytes one by one; the last event other than NB_LE_MORE. */
static int feed_n(nb_le *le, const char *s, size_t n)
{
    int last = NB_LE_MORE;
    for (size_t i = 0; i < n; i++) {
        int ev = nb_le_key(le, (unsigned char)s[i]);
        last = ev == NB_LE_MORE ? last : ev;
    }
    return last;
}

static int feed(nb_le *le, const char *s)
{
    return feed_n(le, s, strlen(s));
}

static int key(nb_le *le, int c)
{
    return nb_le_key(le, (unsigned char)c);
}

/* The line is `text` and the cursor sits after `before` (a prefix of it). */
#define LINE_IS(le, text, before) line_is(le, text, before, __LINE__)

static void line_is(const nb_le *le, const char *text, const char *before, int at)
{
    size_t len;
    const char *s = nb_le_line(le, &len);
    CHECK(len == strlen(text) && !memcmp(s, text, len) && s[len] == 0,
          "line %d: line '%s', want '%s'", at, s, text);
    CHECK(le->pos == strlen(before) && !strncmp(text, before, strlen(before)),
          "line %d: cursor at byte %zu of '%s', want after '%s'", at, le->pos, s, before);
}

static void test_insert_and_move(void)
{
    nb_le le;
    nb_le_init(&le);
    nb_le_start(&le);
    LINE_IS(&le, "", "");
    CHECK(feed(&le, "abc") == NB_LE_MORE, "plain text gives no event");
    LINE_IS(&le, "abc", "abc");
    feed(&le, LEFT LEFT "X");
    LINE_IS(&le, "aXbc", "aX");
    key(&le, CTRL('A')), feed(&le, "0");
    LINE_IS(&le, "0aXbc", "0");
    key(&le, CTRL('E')), feed(&le, "!");
    LINE_IS(&le, "0aXbc!", "0aXbc!");
    key(&le, CTRL('B')), key(&le, CTRL('B')), key(&le, CTRL('F'));
    LINE_IS(&le, "0aXbc!", "0aXbc");
    feed(&le, RIGHT RIGHT RIGHT); /* stops at the end */
    LINE_IS(&le, "0aXbc!", "0aXbc!");
    /* Home and End as the various terminals send them */
    static const char *home[] = {"\x1b[H", "\x1bOH", "\x1b[1~", "\x1b[7~", "\x1b[1;5H"};
    static const char *end[] = {"\x1b[F", "\x1bOF", "\x1b[4~", "\x1b[8~"};
    for (size_t i = 0; i < sizeof home / sizeof *home; i++) {
        feed(&le, end[i % 4]);
        LINE_IS(&le, "0aXbc!", "0aXbc!");
        feed(&le, home[i]);
        LINE_IS(&le, "0aXbc!", "");
    }
    feed(&le, LEFT); /* stops at the start */
    LINE_IS(&le, "0aXbc!", "");
    /* control keys without a meaning change nothing */
    const char quiet[] = {CTRL('G'), CTRL('O'), CTRL('R'), CTRL('S'), CTRL('T'), CTRL('V'),
                          CTRL('X'), CTRL('\\'), CTRL(']'), CTRL('^'), CTRL('_'), 0};
    feed(&le, quiet);
    key(&le, 0);
    LINE_IS(&le, "0aXbc!", "");
    nb_le_free(&le);
}

static void test_utf8(void)
{
    nb_le le;
    nb_le_init(&le);
    nb_le_start(&le);
    /* é: 2 bytes, 世: 3, 🙂: 4 */
    feed(&le, "a\xC3\xA9\xE4\xB8\x96\xF0\x9F\x99\x82" "b");
    LINE_IS(&le, "aé世🙂b", "aé世🙂b");
    feed(&le, LEFT);
    LINE_IS(&le, "aé世🙂b", "aé世🙂");
    feed(&le, LEFT);
    LINE_IS(&le, "aé世🙂b", "aé世");
    feed(&le, LEFT);
    LINE_IS(&le, "aé世🙂b", "aé");
    feed(&le, LEFT);
    LINE_IS(&le, "aé世🙂b", "a");
    feed(&le, RIGHT RIGHT);
    LINE_IS(&le, "aé世🙂b", "aé世");
    feed(&le, "Ω");
    LINE_IS(&le, "aé世Ω🙂b", "aé世Ω");
    key(&le, 0x7F);
    key(&le, 0x7F);
    LINE_IS(&le, "aé🙂b", "aé");
    feed(&le, "\x1b[3~");
    LINE_IS(&le, "aéb", "aé");
    key(&le, CTRL('H'));
    LINE_IS(&le, "ab", "a");
    /* a combining accent goes with its letter */
    nb_le_start(&le);
    feed(&le, "xe\xCC\x81y");
    feed(&le, LEFT LEFT);
    LINE_IS(&le, "xe\xCC\x81y", "x");
    feed(&le, RIGHT);
    LINE_IS(&le, "xe\xCC\x81y", "xe\xCC\x81");
    key(&le, 0x7F);
    LINE_IS(&le, "xy", "x");
    /* a character split over several reads */
    nb_le_start(&le);
    feed(&le, "\xE4"), feed(&le, "\xB8");
    LINE_IS(&le, "", "");
    feed(&le, "\x96");
    LINE_IS(&le, "世", "世");
    /* cells: wide East Asian characters and emoji take two */
    CHECK(nb_le_width("abc", 3) == 3, "abc");
    CHECK(nb_le_width("世界", 6) == 4, "世界");
    CHECK(nb_le_width("\xF0\x9F\x99\x82", 4) == 2, "emoji");
    CHECK(nb_le_width("e\xCC\x81", 3) == 1, "e + combining acute");
    CHECK(nb_le_width("한", 3) == 2 && nb_le_width("Ａ", 3) == 2, "hangul, fullwidth");
    CHECK(nb_le_width("é→", 5) == 2, "narrow non-ASCII");
    nb_le_free(&le);
}

/* Invalid UTF-8 is replaced, never kept: each maximal ill-formed part
 * (Unicode 15, section 3.9) becomes one U+FFFD. */
static void test_invalid_utf8(void)
{
    static const struct {
        const char *in, *want;
    } cases[] = {
        {"\xFF", FFFD},
        {"a\xE4\xB8" "b", "a" FFFD "b"},          /* truncated 3-byte sequence */
        {"\xC0\xAF", FFFD FFFD},                  /* overlong '/' */
        {"\xE0\x80\xAF", FFFD FFFD FFFD},         /* overlong, 3 bytes */
        {"\xED\xA0\x80", FFFD FFFD FFFD},         /* a surrogate */
        {"\xF4\x90\x80\x80", FFFD FFFD FFFD FFFD}, /* past U+10FFFF */
        {"\x80" "x", FFFD "x"},                   /* a lone continuation byte */
        {"\xF0\x9F\x99", FFFD},                   /* truncated at the end */
        {"\xF0\x9F\x99\xE4\xB8\x96", FFFD "世"},
        {"\xC2\x9B" "x", "x"},                    /* C1 control (CSI): dropped */
        {"\xC2\xA0", "\xC2\xA0"},                 /* no-break space: kept */
    };
    nb_le le;
    nb_le_init(&le);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        nb_le_start(&le);
        feed(&le, cases[i].in);
        key(&le, 'Z'); /* ends a truncated sequence */
        char want[64];
        snprintf(want, sizeof want, "%sZ", cases[i].want);
        LINE_IS(&le, want, want);
    }
    /* a sequence cut by Enter: the replacement, then the line is sent */
    nb_le_start(&le);
    CHECK(feed(&le, "\xE4\xB8\r") == NB_LE_ENTER, "Enter after a truncated sequence");
    LINE_IS(&le, FFFD, FFFD);
    nb_le_free(&le);
}

static void test_delete_and_kill(void)
{
    nb_le le;
    nb_le_init(&le);
    nb_le_start(&le);
    feed(&le, "hello world");
    key(&le, CTRL('W'));
    LINE_IS(&le, "hello ", "hello ");
    key(&le, CTRL('Y'));
    LINE_IS(&le, "hello world", "hello world");
    /* Ctrl-W takes the blanks before the cursor, then the word */
    nb_le_start(&le);
    feed(&le, "one two  three");
    key(&le, CTRL('A'));
    feed(&le, "\x1b" "f" "\x1b" "f" RIGHT RIGHT);
    LINE_IS(&le, "one two  three", "one two  ");
    key(&le, CTRL('W'));
    LINE_IS(&le, "one three", "one ");
    key(&le, CTRL('W')), key(&le, CTRL('W'));
    LINE_IS(&le, "three", "");
    key(&le, CTRL('W')); /* nothing before the cursor */
    LINE_IS(&le, "three", "");
    /* Ctrl-K to the end, Ctrl-U to the start, Ctrl-Y puts back the last */
    nb_le_start(&le);
    feed(&le, "abcdef");
    key(&le, CTRL('A'));
    feed(&le, RIGHT RIGHT);
    key(&le, CTRL('K'));
    LINE_IS(&le, "ab", "ab");
    key(&le, CTRL('A')), key(&le, CTRL('Y'));
    LINE_IS(&le, "cdefab", "cdef");
    key(&le, CTRL('U'));
    LINE_IS(&le, "ab", "");
    key(&le, CTRL('E')), key(&le, CTRL('Y'));
    LINE_IS(&le, "abcdef", "abcdef");
    /* word moves: Alt-b/Alt-f and Ctrl- or Alt-arrows */
    nb_le_start(&le);
    feed(&le, "ab cd  ef");
    feed(&le, "\x1b[1;5D");
    LINE_IS(&le, "ab cd  ef", "ab cd  ");
    feed(&le, "\x1b" "b");
    LINE_IS(&le, "ab cd  ef", "ab ");
    feed(&le, "\x1b[1;3D");
    LINE_IS(&le, "ab cd  ef", "");
    feed(&le, "\x1b[1;5C");
    LINE_IS(&le, "ab cd  ef", "ab");
    feed(&le, "\x1b[1;2D"); /* Shift-Left: one character */
    LINE_IS(&le, "ab cd  ef", "a");
    key(&le, CTRL('E'));
    feed(&le, "\x1b\x7F"); /* Alt-Backspace: the word before */
    LINE_IS(&le, "ab cd  ", "ab cd  ");
    /* Delete and Ctrl-D delete under the cursor; Ctrl-D on an empty line
     * is the end of input */
    feed(&le, LEFT LEFT LEFT);
    feed(&le, "\x1b[3~");
    LINE_IS(&le, "ab c  ", "ab c");
    CHECK(key(&le, CTRL('D')) == NB_LE_MORE, "Ctrl-D on a non-empty line");
    LINE_IS(&le, "ab c ", "ab c");
    key(&le, CTRL('E'));
    CHECK(key(&le, CTRL('D')) == NB_LE_MORE, "Ctrl-D at the end of a line");
    LINE_IS(&le, "ab c ", "ab c ");
    key(&le, CTRL('U'));
    CHECK(key(&le, CTRL('D')) == NB_LE_EOF, "Ctrl-D on an empty line");
    key(&le, 0x7F), key(&le, CTRL('H')), feed(&le, "\x1b[3~"); /* nothing to delete */
    LINE_IS(&le, "", "");
    /* the other events */
    CHECK(key(&le, CTRL('C')) == NB_LE_INTERRUPT, "Ctrl-C");
    CHECK(key(&le, CTRL('Z')) == NB_LE_SUSPEND, "Ctrl-Z");
    CHECK(key(&le, CTRL('L')) == NB_LE_CLEAR, "Ctrl-L");
    CHECK(key(&le, '\n') == NB_LE_ENTER, "Ctrl-J is Enter too");
    nb_le_free(&le);
}

static void enter(nb_le *le, const char *text)
{
    nb_le_start(le);
    CHECK(feed(le, text) == NB_LE_MORE, "'%s'", text);
    CHECK(key(le, '\r') == NB_LE_ENTER, "Enter after '%s'", text);
}

static void test_history(void)
{
    nb_le le;
    nb_le_init(&le);
    nb_le_start(&le);
    feed(&le, UP DOWN); /* no history yet */
    LINE_IS(&le, "", "");
    enter(&le, "first");
    enter(&le, "second");
    enter(&le, "  \t"); /* blank: not kept */
    enter(&le, "second"); /* the same again: kept once */
    CHECK(le.n_hist == 2, "%zu lines kept", le.n_hist);
    nb_le_start(&le);
    feed(&le, "dra" LEFT);
    feed(&le, UP);
    LINE_IS(&le, "second", "second");
    feed(&le, UP);
    LINE_IS(&le, "first", "first");
    feed(&le, UP); /* the oldest stays */
    LINE_IS(&le, "first", "first");
    feed(&le, DOWN);
    LINE_IS(&le, "second", "second");
    feed(&le, DOWN); /* back to the line being typed, as it was */
    LINE_IS(&le, "dra", "dra");
    feed(&le, DOWN);
    LINE_IS(&le, "dra", "dra");
    key(&le, CTRL('P')), key(&le, CTRL('P')), key(&le, CTRL('N')); /* Ctrl-P, Ctrl-N */
    LINE_IS(&le, "second", "second");
    feed(&le, "\x1bOA"); /* application-mode Up */
    LINE_IS(&le, "first", "first");
    /* a recalled line edited and sent is a new entry; the old one stays */
    feed(&le, "!");
    CHECK(key(&le, '\r') == NB_LE_ENTER, "Enter");
    LINE_IS(&le, "first!", "first!");
    nb_le_start(&le);
    feed(&le, UP);
    LINE_IS(&le, "first!", "first!");
    feed(&le, UP UP);
    LINE_IS(&le, "first", "first");
    /* a bounded history: the oldest lines go */
    char text[32];
    for (int i = 0; i < NB_LE_HISTORY_MAX + 5; i++) {
        snprintf(text, sizeof text, "line %d", i);
        enter(&le, text);
    }
    CHECK(le.n_hist == NB_LE_HISTORY_MAX, "%zu lines kept", le.n_hist);
    nb_le_start(&le);
    for (int i = 0; i < NB_LE_HISTORY_MAX + 3; i++)
        feed(&le, UP);
    LINE_IS(&le, "line 5", "line 5");
    nb_le_free(&le);
}

/* Every escape sequence works however it is split, and nothing of a
 * partial one shows in the line. */
static void test_escapes(void)
{
    static const struct {
        const char *seq, *want, *before;
    } cases[] = {
        {LEFT, "abcd", "ab"},           {"\x1bOD", "abcd", "ab"},
        {"\x1b[3~", "abc", "abc"},      {"\x1b[3;5~", "abc", "abc"},
        {"\x1b[1;5D", "abcd", ""},      {"\x1b[H", "abcd", ""},
        {"\x1b[5~", "abcd", "abc"},     /* PgUp: nothing */
        {"\x1b[99~", "abcd", "abc"},    /* unknown: nothing */
        {"\x1b[Z", "abcd", "abc"},      /* Shift-Tab: nothing */
        {"\x1b[?1;2c", "abcd", "abc"},  /* a terminal's answer: nothing */
        {"\x1b[12345678901234567890123456789012;5D", "abcd", "abc"}, /* too long */
        {"\x1b[999999999999999~", "abcd", "abc"}, /* a huge number */
        {"\x1b" "x", "abcxd", "abcx"},  /* a lone ESC is dropped */
        {"\x1b\x1b[D", "abcd", "ab"},   /* so is a doubled one */
        {"\x1bO" "x", "abcd", "abc"},
    };
    nb_le le;
    nb_le_init(&le);
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        size_t n = strlen(cases[i].seq);
        for (size_t cut = 1; cut <= n; cut++) {
            nb_le_start(&le);
            feed(&le, "abcd" LEFT);
            feed_n(&le, cases[i].seq, cut);
            if (cut < n) { /* nothing happened yet */
                LINE_IS(&le, "abcd", "abc");
                feed(&le, cases[i].seq + cut);
            }
            LINE_IS(&le, cases[i].want, cases[i].before);
        }
    }
    /* a control byte breaks a sequence and then acts */
    nb_le_start(&le);
    CHECK(feed(&le, "ab\x1b[1\r") == NB_LE_ENTER, "Enter inside a sequence");
    LINE_IS(&le, "ab", "ab");
    nb_le_free(&le);
}

static void test_paste(void)
{
    nb_le le;
    nb_le_init(&le);
    nb_le_start(&le);
    feed(&le, "> ");
    const char paste[] = "\x1b[200~line one\r\nline two\rthree\tfour\n\x01" LEFT "\x1b[201~";
    CHECK(feed(&le, paste) == NB_LE_MORE, "a pasted line break sent the line");
    LINE_IS(&le, "> line one\nline two\nthree\tfour\n", "> line one\nline two\nthree\tfour\n");
    feed(&le, LEFT "x"); /* keys work again after the paste */
    LINE_IS(&le, "> line one\nline two\nthree\tfourx\n", "> line one\nline two\nthree\tfourx");
    CHECK(key(&le, '\r') == NB_LE_ENTER, "Enter after the paste");
    /* Ctrl-C still ends a paste that never ends */
    nb_le_start(&le);
    feed(&le, "\x1b[200~abc");
    CHECK(key(&le, CTRL('C')) == NB_LE_INTERRUPT, "Ctrl-C inside a paste");
    feed(&le, "\x1b[201~");
    nb_le_free(&le);
}

/* ---- the view ---- */

/* The test's own widths, for the characters it types. */
static const struct {
    const char *s;
    int w;
} glyphs[] = {{"a", 1}, {"Z", 1}, {" ", 1}, {"\xC3\xA9", 1}, {"\xE4\xB8\x96", 2},
              {"\xF0\x9F\x99\x82", 2}, {"\xCC\x81", 0}};

static int glyph_width(const char *s, size_t n)
{
    int w = 0;
    for (size_t i = 0; i < n;) {
        size_t k = 0;
        while (k < sizeof glyphs / sizeof *glyphs &&
               strncmp(s + i, glyphs[k].s, strlen(glyphs[k].s)))
            k++;
        if (k == sizeof glyphs / sizeof *glyphs)
            return -1000; /* not one of ours: fails the checks */
        w += glyphs[k].w;
        i += strlen(glyphs[k].s);
    }
    return w;
}

static void view_is(nb_le *le, int width, size_t start, size_t end, int cursor, int at)
{
    nb_le_view v;
    nb_le_show(le, width, &v);
    CHECK(v.start == start && v.end == end && v.cursor == cursor,
          "line %d: view [%zu, %zu) cursor %d, want [%zu, %zu) cursor %d", at, v.start, v.end,
          v.cursor, start, end, cursor);
}

static void test_view(void)
{
    nb_le le;
    nb_le_init(&le);
    nb_le_start(&le);
    feed(&le, "abcdefghijklmnopqrstuvwxyz0123"); /* 30 cells */
    view_is(&le, 10, 21, 30, 9, __LINE__);         /* 9 letters and the cursor */
    feed(&le, LEFT);
    view_is(&le, 10, 21, 30, 8, __LINE__); /* the view stays put */
    key(&le, CTRL('A'));
    view_is(&le, 10, 0, 10, 0, __LINE__);
    feed(&le, RIGHT RIGHT RIGHT);
    view_is(&le, 10, 0, 10, 3, __LINE__);
    feed(&le, "\x1b[1;5C"); /* to the end of the word: past the right edge */
    view_is(&le, 10, 21, 30, 9, __LINE__);
    key(&le, CTRL('U')); /* the rest fits again: the view comes back left */
    view_is(&le, 10, 0, 0, 0, __LINE__);
    view_is(&le, 80, 0, 0, 0, __LINE__);
    /* wide characters: never cut, the cursor's one shown whole */
    nb_le_start(&le);
    feed(&le, "世界世界世界"); /* 6 characters of 3 bytes, 12 cells */
    view_is(&le, 5, 12, 18, 4, __LINE__);
    key(&le, CTRL('A'));
    view_is(&le, 5, 0, 6, 0, __LINE__); /* 2 fit in 5 cells */
    feed(&le, RIGHT RIGHT);
    view_is(&le, 5, 3, 9, 2, __LINE__); /* the third is under the cursor */
    view_is(&le, 1, 6, 6, 0, __LINE__); /* narrower than a character */
    nb_le_free(&le);
}

/* Random edits with random widths: the view always holds the cursor and
 * its character, fits the width, and wastes no room on the left. */
static void test_view_random(void)
{
    static const char *keys[] = {"a", "Z", " ", "\xC3\xA9", "\xE4\xB8\x96", "\xF0\x9F\x99\x82",
                                 "\xCC\x81", LEFT, RIGHT, "\x7F", "\x1b[3~", "\x01", "\x05",
                                 "\x17", "\x0b", "\x19", "\x1b[1;5D"};
    uint64_t seed = 7;
    nb_le le;
    nb_le_init(&le);
    nb_le_start(&le);
    for (int step = 0; step < 20000; step++) {
        if (tu_rand(&seed) % 500 == 0)
            nb_le_start(&le);
        feed(&le, keys[tu_rand(&seed) % (sizeof keys / sizeof *keys)]);
        int width = 1 + (int)(tu_rand(&seed) % 24);
        nb_le_view v;
        nb_le_show(&le, width, &v);
        size_t len;
        const char *s = nb_le_line(&le, &len);
        size_t next = le.pos;
        while (next < len && (next == le.pos || ((unsigned char)s[next] & 0xC0) == 0x80 ||
                              !strncmp(s + next, "\xCC\x81", 2)))
            next++;
        int under = le.pos < len ? glyph_width(s + le.pos, next - le.pos) : 1;
        under = under > 0 ? under : 1;
        int shown = glyph_width(s + v.start, v.end - v.start);
        int cursor = glyph_width(s + v.start, le.pos - v.start);
        CHECK(v.start <= le.pos && le.pos <= v.end && v.end <= len, "step %d: [%zu, %zu) pos %zu",
              step, v.start, v.end, le.pos);
        CHECK(shown >= 0 && shown <= width && v.cursor == cursor, "step %d: %d cells, cursor %d/%d",
              step, shown, v.cursor, cursor);
        if (under <= width) {
            CHECK(cursor + under <= width, "step %d: cursor cell %d + %d > %d", step, cursor, under,
                  width);
            CHECK(le.pos == len || v.end >= next, "step %d: the character under the cursor is cut",
                  step);
        }
        if (v.start > 0 && le.pos == len) { /* one more character would not fit */
            size_t p = v.start - 1;
            while (p > 0 && (((unsigned char)s[p] & 0xC0) == 0x80 || !strncmp(s + p, "\xCC\x81", 2)))
                p--;
            CHECK(glyph_width(s + p, len - p) + 1 > width, "step %d: room wasted on the left", step);
        }
        if (tu_failures > 20)
            break;
    }
    nb_le_free(&le);
}

/* ---- random bytes ---- */

/* An independent check: well-formed UTF-8 (no overlongs, surrogates or
 * code points past U+10FFFF), no control characters but tab and newline,
 * no C1 controls. */
static int clean(const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned c = s[i], need, cp;
        if (c < 0x80) {
            if ((c < 0x20 && c != '\t' && c != '\n') || c == 0x7F)
                return 0;
            i++;
            continue;
        }
        need = c >= 0xF8 ? 9 : c >= 0xF0 ? 3 : c >= 0xE0 ? 2 : c >= 0xC0 ? 1 : 9;
        if (need == 9 || i + need >= n)
            return 0;
        cp = c & (0x3F >> need);
        for (unsigned k = 1; k <= need; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return 0;
            cp = cp << 6 | (s[i + k] & 0x3F);
        }
        unsigned min = need == 1 ? 0x80 : need == 2 ? 0x800 : 0x10000;
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF) || cp < 0xA0)
            return 0;
        i += need + 1;
    }
    return 1;
}

static void test_random_bytes(void)
{
    /* bytes a terminal could send, weighted towards sequence starts */
    static const unsigned char pool[] = {0x1B, '[', 'O', '~', ';', '1', '2', '3', '5', 'A', 'B',
                                         'C', 'D', 'H', 'F', 'a', ' ', 0x7F, 0x01, 0x04, 0x05,
                                         0x0B, 0x15, 0x17, 0x19, 0x0D, 0x09, 0x80, 0xBF, 0xC2,
                                         0xE4, 0xED, 0xF0, 0xF4, 0xFF, 0x9F, 0xA0, 0xB8, 0x96};
    uint64_t seed = 11;
    nb_le le;
    nb_le_init(&le);
    nb_le_start(&le);
    int lines = 0;
    for (int i = 0; i < 300000; i++) {
        uint64_t r = tu_rand(&seed);
        unsigned char b = r % 4 ? pool[(r >> 8) % sizeof pool] : (unsigned char)(r >> 16);
        int ev = key(&le, b);
        size_t len;
        const char *s = nb_le_line(&le, &len);
        if (!clean((const unsigned char *)s, len) || s[len] != 0 || le.pos > len ||
            (le.pos < len && ((unsigned char)s[le.pos] & 0xC0) == 0x80)) {
            CHECK(0, "byte %d (0x%02x): a bad line of %zu bytes, cursor %zu", i, b, len, le.pos);
            break;
        }
        nb_le_view v;
        nb_le_show(&le, 1 + (int)(r >> 40) % 30, &v);
        if (ev == NB_LE_ENTER || ev == NB_LE_EOF || ev == NB_LE_INTERRUPT)
            nb_le_start(&le), lines++;
    }
    CHECK(lines > 1000, "only %d lines ended", lines);
    nb_le_free(&le);
}

int main(void)
{
    test_insert_and_move();
    test_utf8();
    test_invalid_utf8();
    test_delete_and_kill();
    test_history();
    test_escapes();
    test_paste();
    test_view();
    test_view_random();
    test_random_bytes();
    return tu_finish("lineedit");
}
