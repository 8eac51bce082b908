/* Errors travel up as values: a function that can fail returns -1 (or
 * NULL) and leaves one line in an nb_err; only tools/ prints and exits. */
#ifndef NIBBLE_ERR_H
#define NIBBLE_ERR_H

typedef struct nb_err {
    char msg[320];
} nb_err;

#if defined(__GNUC__)
#define NB_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define NB_PRINTF(a, b)
#endif

/* Sets the message (when e is not NULL) and returns -1. */
int nb_fail(nb_err *e, const char *fmt, ...) NB_PRINTF(2, 3);

#endif
