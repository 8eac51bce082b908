/* The terminal side of nibble chat (tools/cmd_chat.c): stdout written
 * unbuffered and through a closed pipe, notices on stderr (dimmed on a
 * terminal), and messages read from the line editor on a terminal or a
 * line (or --multiline block) at a time from a pipe or a file. */
#ifndef NIBBLE_CHAT_IO_H
#define NIBBLE_CHAT_IO_H

#include <stddef.h>

#include "../runtime/base/err.h"
#include "lineedit.h"

typedef struct nb_chat_io {
    int quiet, json, multiline; /* the flags */
    int interactive;            /* stdin is a terminal */
    int dim;                    /* stderr is a terminal */
    int broken;                 /* stdout failed: 1 its reader went away, 2 an error */
    nb_tty tty;                 /* the line editor, when edit is set */
    int edit, ended;            /* ended: 1 at the end of input, 2 after an error */
} nb_chat_io;

/* The flags and what stdin and stderr are; then, once the model is
 * loaded, the line editor when stdin and stdout are terminals (undone by
 * nb_chat_io_close). */
void nb_chat_io_init(nb_chat_io *io, int quiet, int json, int multiline);
void nb_chat_io_edit(nb_chat_io *io);
void nb_chat_io_close(nb_chat_io *io);

/* Writes to stdout: 0, or -1 once it failed (a reader gone quietly, any
 * other error after an error line). The first takes void * to serve as
 * the line editor's and the engine's text callback. */
int nb_chat_write(void *io, const char *s, size_t n);
int nb_chat_puts(nb_chat_io *io, const char *s);
int nb_chat_json(nb_chat_io *io, const char *s, size_t n); /* as a JSON string's body */

/* One line on stderr; nb_chat_note is silenced by -q. */
void nb_chat_say(const nb_chat_io *io, const char *fmt, ...) NB_PRINTF(2, 3);
void nb_chat_note(const nb_chat_io *io, const char *fmt, ...) NB_PRINTF(2, 3);

/* The next message that is not blank, into *buf: its length, or -1 at the
 * end of input or on Ctrl-C at the prompt. */
long nb_chat_read(nb_chat_io *io, char **buf, size_t *cap);

#endif
