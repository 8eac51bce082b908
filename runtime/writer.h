/* Writing a nibble file atomically: everything goes to a temporary file
 * beside the target, which is renamed over it only by nb_writer_commit.
 * An interrupted or failed conversion leaves no partial output. */
#ifndef NIBBLE_WRITER_H
#define NIBBLE_WRITER_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "nibformat.h"

typedef struct nb_writer nb_writer;

/* 0 when a writer could put a file at path: not a directory, in a
 * directory that exists and is writable. Tools check it before hours of
 * work; nb_writer_open checks it again. */
int nb_writer_check_path(const char *path, nb_err *e);

/* Metadata and tokenizer bytes come first; tensors are then streamed in. */
nb_writer *nb_writer_open(const char *path, const struct nb_meta *meta, const void *vocab,
                          size_t vocab_size, nb_err *e);

/* The same with key/value metadata (runtime/kv.h bytes, kv_size 0 for
 * none): what a model's architecture adds to the fixed block. Its
 * "general.architecture" must name meta->arch; a file without it says
 * it through meta->arch alone (1.1 files). */
nb_writer *nb_writer_open_kv(const char *path, const struct nb_meta *meta, const void *kv,
                             size_t kv_size, const void *vocab, size_t vocab_size, nb_err *e);

/* Appends one plain tensor (f32/f16/bf16); data holds size bytes. */
int nb_writer_add(nb_writer *w, const char *name, uint32_t dtype, int n_dims,
                  const uint64_t *shape, const void *data, size_t size, nb_err *e);

/* Appends a tensor described by a filled entry (packed types); offset and
 * crc32 are set by the writer. */
int nb_writer_add_entry(nb_writer *w, const struct nb_tensor_entry *entry, const void *data,
                        nb_err *e);

/* Streams one tensor in pieces (for conversions done in chunks):
 * begin with a filled entry (size set), append exactly size bytes, end. */
int nb_writer_begin(nb_writer *w, const struct nb_tensor_entry *entry, nb_err *e);
int nb_writer_append(nb_writer *w, const void *data, size_t n, nb_err *e);
int nb_writer_end(nb_writer *w, nb_err *e);

/* Fills an entry for a plain tensor, checking name, rank and size. */
int nb_entry_init(struct nb_tensor_entry *t, const char *name, uint32_t dtype, int n_dims,
                  const uint64_t *shape, nb_err *e);

/* Writes the table and header, syncs, renames into place, frees w. */
int nb_writer_commit(nb_writer *w, nb_err *e);

/* Removes the temporary file and frees w. */
void nb_writer_abort(nb_writer *w);

/* The pid a temporary output's name carries: BASE.tmp<pid>, or a name
 * built on it (BASE.tmp<pid>-unquantized.tmp<pid>, the intermediate of
 * convert --quantize); 0 when name is not one. */
long nb_leftover_pid(const char *name, const char *base);

/* 1 when no process has the id pid, so that its temporary output is a
 * leftover of a SIGKILL (no handler ran) that nothing will finish. A pid
 * reused since counts as live: its leftover stays. 0 for this process. */
int nb_process_gone(long pid);

/* Removes path too if SIGINT, SIGTERM or SIGHUP ends the process, until
 * called again with NULL: for an intermediate file a tool keeps between
 * two writers (convert --quantize). One such path at a time. */
void nb_remove_on_signal(const char *path);

#endif
