/* Progress for long work (convert, quantize, perplexity) on stderr:
 * redrawn in place on a terminal, a line every few seconds otherwise. */
#ifndef NIBBLE_PROGRESS_H
#define NIBBLE_PROGRESS_H

#include <stdint.h>

typedef struct nb_progress {
    const char *what;
    uint64_t total;
    double start, last;
    int quiet, tty;
} nb_progress;

void nb_progress_start(nb_progress *p, const char *what, uint64_t total, int quiet);
void nb_progress_update(nb_progress *p, uint64_t done);
void nb_progress_done(nb_progress *p);
double nb_now(void); /* monotonic seconds */

#endif
