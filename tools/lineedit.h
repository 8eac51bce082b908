/* A small line editor for nibble chat's prompt on a terminal.
 *
 * Two layers. The core (nb_le) is pure: it takes input bytes one at a time
 * and edits a line of UTF-8 text, with no I/O, so tests/test_lineedit.c
 * drives it with byte sequences. The terminal layer (nb_tty) puts the
 * terminal in raw mode while a line is read, feeds the core what it reads,
 * draws the line, and always gives the terminal back as it found it.
 * docs/chat.md lists the keys and the choices made here. */
#ifndef NIBBLE_LINEEDIT_H
#define NIBBLE_LINEEDIT_H

#include <stddef.h>
#include <stdint.h>
#include <termios.h>

/* What a byte did. */
enum nb_le_event {
    NB_LE_MORE,      /* nothing for the caller: go on feeding */
    NB_LE_ENTER,     /* the line is complete (nb_le_line) */
    NB_LE_EOF,       /* Ctrl-D on an empty line */
    NB_LE_INTERRUPT, /* Ctrl-C */
    NB_LE_SUSPEND,   /* Ctrl-Z */
    NB_LE_CLEAR,     /* Ctrl-L: clear the screen and redraw */
    NB_LE_NOMEM      /* out of memory: the byte was lost */
};

typedef struct nb_le_text {
    char *s;
    size_t len, cap;
} nb_le_text;

/* Appends n bytes (or a string) to t; -1 when out of memory. */
int nb_le_text_put(nb_le_text *t, const char *s, size_t n);
int nb_le_text_puts(nb_le_text *t, const char *s);

typedef struct nb_le {
    nb_le_text line, draft, kill; /* the line; the one being typed while
                                     history is shown; the last killed text */
    size_t pos;                   /* cursor, a byte offset on a character start */
    size_t scroll;                /* first byte the single-line view shows */
    char **hist;                  /* this session's lines, oldest first */
    size_t n_hist, hist_cap, hist_at; /* hist_at == n_hist: the draft */
    /* a sequence that is not complete yet: UTF-8 or an escape sequence */
    unsigned char seq[16];
    size_t n_seq, utf8_need;
    unsigned char utf8_lo, utf8_hi; /* the range of the next continuation byte */
    int esc;                        /* 0, or ESC, '[' or 'O' once seen */
    int seq_long;                   /* a CSI too long to keep: ignored at its end */
    int paste, after_cr;            /* inside a bracketed paste; a CR just pasted */
} nb_le;

#define NB_LE_HISTORY_MAX 1000 /* older lines are forgotten */

void nb_le_init(nb_le *le);
void nb_le_free(nb_le *le);
void nb_le_start(nb_le *le); /* an empty line, history at its end */
int nb_le_key(nb_le *le, unsigned char byte);

/* The line (NUL-terminated; valid until the next key). */
const char *nb_le_line(const nb_le *le, size_t *len);

/* The part of the line a view `width` cells wide shows: bytes [start, end)
 * of the line and the cursor's cell. Moves le->scroll as little as needed
 * to keep the cursor in view. */
typedef struct nb_le_view {
    size_t start, end;
    int cursor;
} nb_le_view;

void nb_le_show(nb_le *le, int width, nb_le_view *v);

/* Cells a character or a string takes: 2 for East Asian wide characters
 * and the common emoji blocks, 0 for combining marks and zero-width
 * characters, 1 otherwise (an approximation of wcwidth without locales). */
int nb_le_cp_width(uint32_t cp);
int nb_le_width(const char *s, size_t n);

/* ---- the terminal layer ---- */

/* How the terminal layer writes: 0, or -1 when the output failed. */
typedef int (*nb_tty_write)(void *ctx, const char *s, size_t n);

typedef struct nb_tty {
    nb_le le;
    int in, out;
    struct termios cooked;
    nb_tty_write write;
    void *ctx;
    unsigned char buf[512]; /* read ahead: bytes after an Enter wait here */
    size_t at, n;
    nb_le_text draw; /* the bytes of one redraw */
} nb_tty;

/* Results of nb_tty_read besides a length. */
enum { NB_TTY_EOF = -1, NB_TTY_INTERRUPT = -2, NB_TTY_ERROR = -3 };

/* 0 when in and out are terminals (then the caller must nb_tty_close),
 * else -1 and nothing to undo. Catches SIGTERM, SIGHUP, SIGQUIT and
 * SIGTSTP so the terminal is restored before the process stops or dies. */
int nb_tty_open(nb_tty *t, int in, int out, nb_tty_write write, void *ctx);
void nb_tty_close(nb_tty *t);

/* Edits one line after `prompt`: its length with *line pointing at its
 * text (owned by t, NUL-terminated, valid until the next call), or
 * NB_TTY_EOF (Ctrl-D), NB_TTY_INTERRUPT (Ctrl-C, or a SIGINT that
 * nb_interrupted reports), NB_TTY_ERROR (after an error line). */
long nb_tty_read(nb_tty *t, const char *prompt, const char **line);

/* Waits until fd has input: 0, or -1 once nb_interrupted (a SIGINT that
 * lands just before the wait still ends it). */
int nb_wait_input(int fd);

#endif
