/* The terminal layer under the line editor (tools/lineedit.c): raw mode
 * and its restoration on every way out (signals included), drawing the
 * line, waiting for input. lineedit.h describes the interface. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <termios.h>
#include <unistd.h>

#include "cli.h"
#include "lineedit.h"

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
    return nb_le_text_puts(d, buf);
}

/* The line's bytes [a, b) as drawn: tab as a space and a pasted newline
 * as a return arrow, one cell each, so widths stay what the core counts. */
static int put_visible(nb_le_text *d, const char *s, size_t a, size_t b)
{
    for (size_t i = a; i < b; i++) {
        const char *sub = s[i] == '\t' ? " " : s[i] == '\n' ? "\xE2\x86\xB5" : NULL;
        if (sub ? nb_le_text_puts(d, sub) : nb_le_text_put(d, s + i, 1))
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
    if (nb_le_text_puts(&t->draw, "\r") || (full ? nb_le_text_puts(&t->draw, prompt) : move_right(&t->draw, pw)) ||
        put_visible(&t->draw, s, v.start, v.end) || nb_le_text_puts(&t->draw, "\033[K\r") ||
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
    if (nb_le_text_puts(&t->draw, "\r") ||
        (full ? nb_le_text_puts(&t->draw, prompt)
              : move_right(&t->draw, nb_le_width(prompt, strlen(prompt)))) ||
        nb_le_text_puts(&t->draw, "\033[K") || nb_le_text_put(&t->draw, s, len) || nb_le_text_puts(&t->draw, "\n"))
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
