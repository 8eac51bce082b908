#define _POSIX_C_SOURCE 200809L
#include "chat_io.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

void nb_chat_io_init(nb_chat_io *io, int quiet, int json, int multiline)
{
    memset(io, 0, sizeof *io);
    io->quiet = quiet, io->json = json, io->multiline = multiline;
    io->interactive = isatty(STDIN_FILENO);
    io->dim = isatty(STDERR_FILENO);
}

void nb_chat_io_edit(nb_chat_io *io)
{
    io->edit = io->interactive &&
               !nb_tty_open(&io->tty, STDIN_FILENO, STDOUT_FILENO, nb_chat_write, io);
}

void nb_chat_io_close(nb_chat_io *io)
{
    if (io->edit)
        nb_tty_close(&io->tty);
    io->edit = 0;
}

/* ---- output ---- */

/* stdout, unbuffered and retried after Ctrl-C interrupts a blocked write.
 * A reader that went away (EPIPE) ends the chat quietly. */
int nb_chat_write(void *ctx, const char *s, size_t n)
{
    nb_chat_io *io = ctx;
    while (n && !io->broken) {
        ssize_t k = write(STDOUT_FILENO, s, n);
        if (k > 0) {
            s += k;
            n -= (size_t)k;
        } else if (k < 0 && errno != EINTR) {
            io->broken = errno == EPIPE ? 1 : 2;
            if (io->broken == 2)
                nb_error("cannot write the output: %s", strerror(errno));
        }
    }
    return io->broken ? -1 : 0;
}

int nb_chat_puts(nb_chat_io *io, const char *s)
{
    return nb_chat_write(io, s, strlen(s));
}

/* Quotes, backslashes and control bytes escaped; the text is valid UTF-8
 * already (the detokenizer sees to it). */
int nb_chat_json(nb_chat_io *io, const char *s, size_t n)
{
    char buf[8];
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        const char *esc = ch == '"' ? "\\\"" : ch == '\\' ? "\\\\" : ch == '\n' ? "\\n"
                        : ch == '\r' ? "\\r" : ch == '\t' ? "\\t" : NULL;
        if (!esc && ch < 0x20) {
            snprintf(buf, sizeof buf, "\\u%04x", ch);
            esc = buf;
        }
        if (esc ? nb_chat_puts(io, esc) : nb_chat_write(io, s + i, 1))
            return -1;
    }
    return 0;
}

static void vsay(const nb_chat_io *io, const char *fmt, va_list ap)
{
    fputs(io->dim ? "\033[2m" : "", stderr);
    vfprintf(stderr, fmt, ap);
    fputs(io->dim ? "\033[0m\n" : "\n", stderr);
}

void nb_chat_say(const nb_chat_io *io, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsay(io, fmt, ap);
    va_end(ap);
}

void nb_chat_note(const nb_chat_io *io, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (!io->quiet)
        vsay(io, fmt, ap);
    va_end(ap);
}

/* ---- input ---- */

static void chomp(char *s, size_t *n)
{
    while (*n && (s[*n - 1] == '\n' || s[*n - 1] == '\r'))
        s[--*n] = 0;
}

static int blank(const char *s)
{
    for (; *s; s++)
        if (*s != ' ' && *s != '\t')
            return 0;
    return 1;
}

/* Appends line[k] (and a newline before it when a block goes on). */
static int append_line(char **buf, size_t *cap, size_t *len, const char *line, size_t k)
{
    size_t need = *len + k + 2;
    if (need > *cap) {
        char *p = realloc(*buf, need);
        if (!p)
            return -1;
        *buf = p, *cap = need;
    }
    if (*len)
        (*buf)[(*len)++] = '\n';
    memcpy(*buf + *len, line, k + 1);
    *len += k;
    return 0;
}

/* The prompt for the first line of a message, or for the next line of a
 * --multiline block. */
static const char *prompt(const nb_chat_io *io, size_t len)
{
    return io->json ? "" : len ? ". " : "> ";
}

/* One line from the line editor: its length with *text set, or -1 at the
 * end (Ctrl-D, Ctrl-C, an error); the end sticks, as EOF on stdin does. */
static long edited_line(nb_chat_io *io, size_t len, const char **text)
{
    long n = io->ended ? -1 : nb_tty_read(&io->tty, prompt(io, len), text);
    if (n < 0 && !io->ended)
        io->ended = n == NB_TTY_ERROR ? 2 : 1;
    return n < 0 ? -1 : n;
}

/* One line of stdin without its newline (a terminal hands over one line
 * per read, so nothing waits unseen in stdin's buffer). */
static long typed_line(nb_chat_io *io, char **line, size_t *cap)
{
    ssize_t n;
    if (io->interactive ? nb_wait_input(STDIN_FILENO) : nb_interrupted())
        return -1;
    if ((n = getline(line, cap, stdin)) < 0)
        return -1;
    size_t k = (size_t)n;
    chomp(*line, &k);
    return (long)k;
}

/* Reads one message (a line, or with --multiline a block ending at a blank
 * line) into *buf: its length (0 for an empty line), or -1 at the end of
 * input or on Ctrl-C at the prompt. */
static long read_message(nb_chat_io *io, char **buf, size_t *cap)
{
    char *line = NULL;
    const char *text = NULL;
    size_t line_cap = 0, len = 0;
    long n;
    int own_prompt = io->interactive && !io->json && !io->edit; /* else the editor draws it */
    if (own_prompt && nb_chat_puts(io, prompt(io, 0)))
        return -1;
    while ((n = io->edit ? edited_line(io, len, &text) : typed_line(io, &line, &line_cap)) >= 0) {
        text = io->edit ? text : line;
        if (io->multiline && blank(text)) {
            if (len)
                break;
            continue;
        }
        if (append_line(buf, cap, &len, text, (size_t)n))
            break;
        if (!io->multiline)
            break;
        if (own_prompt)
            nb_chat_puts(io, prompt(io, len));
    }
    free(line);
    return len || n >= 0 ? (long)len : -1;
}

long nb_chat_read(nb_chat_io *io, char **buf, size_t *cap)
{
    long n;
    while ((n = read_message(io, buf, cap)) >= 0)
        if (n && !blank(*buf))
            return n; /* an empty line sends nothing */
    if (io->interactive) /* the shell's prompt starts on a line of its own */
        nb_chat_puts(io, "\n");
    return -1;
}
