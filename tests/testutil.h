/* Small helpers shared by the C tests: checks that report and count,
 * a seeded generator, temporary paths, a tiny synthetic model. */
#ifndef NIBBLE_TESTUTIL_H
#define NIBBLE_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "../runtime/nibformat.h"

extern int tu_failures;

#define CHECK(cond, ...)                                                                   \
    do {                                                                                   \
        if (!(cond)) {                                                                     \
            tu_failures++;                                                                 \
            fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond);       \
            fprintf(stderr, __VA_ARGS__);                                                  \
            fputc('\n', stderr);                                                           \
        }                                                                                  \
    } while (0)

/* Prints the verdict and returns the exit code. */
int tu_finish(const char *name);

/* A test's named sections. */
typedef struct tu_section {
    const char *name;
    void (*run)(void);
} tu_section;

/* Runs the sections named on the command line (all of them with none),
 * in their own order, then tu_finish(name). A name that is not a section
 * fails at once: a misspelt section never passes. */
int tu_run_sections(const tu_section *sections, size_t n, int argc, char **argv,
                    const char *name);

uint64_t tu_rand(uint64_t *state);
float tu_randf(uint64_t *state); /* uniform in [-1, 1) */
/* sign * 10^e, the sign and e uniform in [lo, hi) drawn from state. */
float tu_magnitude(uint64_t *state, double lo, double hi);
/* The same bits, or both NaN (whatever their payloads). */
int tu_same_float(float a, float b);

/* A path in a fresh temporary directory, removed by tu_cleanup. */
const char *tu_tmp(const char *name);
void tu_cleanup(void);

void *tu_read(const char *path, size_t *size);

/* dir/name, in a static buffer (the next call overwrites it). */
const char *tu_path_in(const char *dir, const char *name);
/* Writes text to path (a failed write is a check failure). */
void tu_write_text(const char *path, const char *text);

/* Runs a subcommand in this process, cmd(argc, argv) as nibble.c calls
 * it (tools/cli.h), with its stderr captured into err (cap bytes,
 * NUL-terminated); returns its exit code. The caller links the command:
 * this file stays free of the CLI. */
int tu_run_captured(int (*cmd)(int, char **), int argc, char **argv, char *err, size_t cap);

/* Writes a random LLaMA model of the given shape (f32 unless dtype says
 * otherwise) with vocab bytes taken from vocab_path (may be NULL). */
int tu_write_model(const char *path, const struct nb_meta *meta, uint32_t dtype,
                   const char *vocab_path, uint64_t seed);

struct nb_meta tu_tiny_meta(void);

/* tu_write_model for any family of models/arch.h, as meta->arch says
 * (f32 throughout): random nonzero q/k/v biases when it has
 * NB_HAS_QKV_BIAS, per-head q/k norm weights when NB_HAS_QK_NORM, and the
 * RoPE scaling rope (NULL: none) in the key/value metadata beside the
 * architecture's name. No tokenizer (8 zero bytes). */
struct nb_rope;
int tu_write_family(const char *path, const struct nb_meta *meta, const struct nb_rope *rope,
                    uint64_t seed);

#endif
