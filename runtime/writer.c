#define _POSIX_C_SOURCE 200809L
#include "writer.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "model.h"

struct nb_writer {
    FILE *f;
    char *path, *tmp;
    struct nb_header header;
    struct nb_tensor_entry *table;
    uint32_t n, cap;
    int open_entry; /* table[n] is being streamed */
    uint64_t pos;
};

/* The temporary file of the conversion in progress, removed if the user
 * interrupts it, and an intermediate file a tool keeps between two
 * writers (nb_remove_on_signal). A signal handler may only unlink, so the
 * paths are kept in static storage, each marked valid only once whole.
 * One writer at a time is all the tools need. */
struct guard {
    char path[4096];
    volatile sig_atomic_t set;
};
static struct guard pending_tmp, pending_extra;

static void on_signal(int sig)
{
    if (pending_tmp.set)
        unlink(pending_tmp.path);
    if (pending_extra.set)
        unlink(pending_extra.path);
    signal(sig, SIG_DFL);
    raise(sig);
}

static void guard(struct guard *g, const char *path)
{
    g->set = 0;
    atomic_signal_fence(memory_order_seq_cst);
    if (!path)
        return;
    snprintf(g->path, sizeof g->path, "%s", path);
    atomic_signal_fence(memory_order_seq_cst);
    g->set = 1;
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGHUP, on_signal);
}

static void guard_tmp(const char *tmp)
{
    guard(&pending_tmp, tmp);
}

void nb_remove_on_signal(const char *path)
{
    guard(&pending_extra, path);
}

static int write_at_pos(nb_writer *w, const void *data, size_t n, nb_err *e)
{
    if (n && fwrite(data, 1, n, w->f) != n)
        return nb_fail(e, "cannot write '%s': %s", w->tmp, strerror(errno));
    w->pos += n;
    return 0;
}

static int pad_to_align(nb_writer *w, nb_err *e)
{
    static const uint8_t zeros[NB_ALIGN];
    size_t pad = (size_t)((NB_ALIGN - w->pos % NB_ALIGN) % NB_ALIGN);
    return write_at_pos(w, zeros, pad, e);
}

static void free_writer(nb_writer *w)
{
    if (w->f)
        fclose(w->f);
    free(w->path);
    free(w->tmp);
    free(w->table);
    free(w);
}

void nb_writer_abort(nb_writer *w)
{
    if (!w)
        return;
    if (w->f) {
        fclose(w->f);
        w->f = NULL;
    }
    if (w->tmp)
        unlink(w->tmp);
    guard_tmp(NULL);
    free_writer(w);
}

long nb_leftover_pid(const char *name, const char *base)
{
    size_t n = strlen(base);
    if (strncmp(name, base, n) || strncmp(name + n, ".tmp", 4))
        return 0;
    char *end;
    long pid = strtol(name + n + 4, &end, 10);
    return end > name + n + 4 && (*end == 0 || *end == '-') && pid > 0 ? pid : 0;
}

int nb_process_gone(long pid)
{
    return pid > 0 && pid != (long)getpid() && kill((pid_t)pid, 0) && errno == ESRCH;
}

/* Removes what a writer of the same output killed by SIGKILL (no handler
 * runs) left: temporary files whose process no longer exists. A live
 * process's file, or one whose pid was reused, stays. */
static void remove_leftovers(const char *path)
{
    char dir[4096];
    const char *slash = strrchr(path, '/'), *base = slash ? slash + 1 : path;
    int n = slash ? snprintf(dir, sizeof dir, "%.*s", (int)(slash - path + 1), path)
                  : snprintf(dir, sizeof dir, "./");
    DIR *d = n > 0 && (size_t)n < sizeof dir ? opendir(dir) : NULL;
    if (!d || !*base) {
        if (d)
            closedir(d);
        return;
    }
    struct dirent *ent;
    while ((ent = readdir(d))) {
        if (!nb_process_gone(nb_leftover_pid(ent->d_name, base)))
            continue;
        if ((size_t)n + strlen(ent->d_name) < sizeof dir) {
            strcpy(dir + n, ent->d_name);
            unlink(dir);
            dir[n] = 0;
        }
    }
    closedir(d);
}

int nb_writer_check_path(const char *path, nb_err *e)
{
    struct stat st;
    if (!*path)
        return nb_fail(e, "the output path is empty");
    if (!stat(path, &st) && S_ISDIR(st.st_mode))
        return nb_fail(e, "output '%s' is a directory: give a file name", path);
    char dir[4096];
    const char *slash = strrchr(path, '/');
    int n = slash ? snprintf(dir, sizeof dir, "%.*s", (int)(slash - path + 1), path)
                  : snprintf(dir, sizeof dir, ".");
    if (n < 0 || (size_t)n >= sizeof dir)
        return nb_fail(e, "output path '%.64s...' is too long", path);
    if (access(dir, W_OK))
        return nb_fail(e, "cannot write into '%s' (for '%s'): %s", dir, path, strerror(errno));
    return 0;
}

static int start_file(nb_writer *w, const char *path, nb_err *e)
{
    size_t n = strlen(path) + 16;
    w->path = strdup(path);
    w->tmp = malloc(n);
    if (!w->path || !w->tmp)
        return nb_fail(e, "out of memory");
    snprintf(w->tmp, n, "%s.tmp%ld", path, (long)getpid());
    if (nb_writer_check_path(path, e))
        return -1;
    remove_leftovers(path);
    guard_tmp(w->tmp); /* before the file exists: no window without it */
    w->f = fopen(w->tmp, "wb");
    if (!w->f)
        return nb_fail(e, "cannot create '%s': %s", w->tmp, strerror(errno));
    return 0;
}

nb_writer *nb_writer_open(const char *path, const struct nb_meta *meta, const void *vocab,
                          size_t vocab_size, nb_err *e)
{
    return nb_writer_open_kv(path, meta, NULL, 0, vocab, vocab_size, e);
}

nb_writer *nb_writer_open_kv(const char *path, const struct nb_meta *meta, const void *kv,
                             size_t kv_size, const void *vocab, size_t vocab_size, nb_err *e)
{
    nb_err why;
    if (nb_meta_check(meta, &why) || nb_meta_kv_check(meta, kv, kv_size, &why) ||
        nb_tokenizer_bytes_check(meta, vocab, vocab_size, &why)) {
        nb_fail(e, "refusing to write '%s', which would not load: %s", path, why.msg);
        return NULL;
    }
    nb_writer *w = calloc(1, sizeof *w);
    if (!w) {
        nb_fail(e, "out of memory");
        return NULL;
    }
    struct nb_header *h = &w->header;
    memcpy(h->magic, NB_MAGIC, 8);
    h->version_major = NB_VERSION_MAJOR;
    h->version_minor = NB_VERSION_MINOR;
    h->header_size = sizeof *h;
    h->entry_size = sizeof(struct nb_tensor_entry);
    if (start_file(w, path, e) || write_at_pos(w, h, sizeof *h, e) || pad_to_align(w, e))
        goto fail;
    h->meta_offset = w->pos;
    h->meta_size = sizeof *meta;
    if (write_at_pos(w, meta, sizeof *meta, e) || pad_to_align(w, e))
        goto fail;
    h->kv_offset = kv_size ? w->pos : 0;
    h->kv_size = kv_size;
    if (write_at_pos(w, kv, kv_size, e) || pad_to_align(w, e))
        goto fail;
    h->vocab_offset = w->pos;
    h->vocab_size = vocab_size;
    if (write_at_pos(w, vocab, vocab_size, e) || pad_to_align(w, e))
        goto fail;
    h->data_offset = w->pos;
    return w;
fail:
    nb_writer_abort(w);
    return NULL;
}

static int grow_table(nb_writer *w, nb_err *e)
{
    if (w->n < w->cap)
        return 0;
    uint32_t cap = w->cap ? w->cap * 2 : 64;
    void *t = realloc(w->table, cap * sizeof *w->table);
    if (!t)
        return nb_fail(e, "out of memory");
    w->table = t;
    w->cap = cap;
    return 0;
}

int nb_writer_begin(nb_writer *w, const struct nb_tensor_entry *entry, nb_err *e)
{
    if (w->open_entry)
        return nb_fail(e, "tensor '%s' is still being written", w->table[w->n].name);
    if (grow_table(w, e) || pad_to_align(w, e))
        return -1;
    struct nb_tensor_entry *t = &w->table[w->n];
    *t = *entry;
    t->offset = w->pos;
    t->crc32 = 0;
    w->open_entry = 1;
    return 0;
}

int nb_writer_append(nb_writer *w, const void *data, size_t n, nb_err *e)
{
    struct nb_tensor_entry *t = &w->table[w->n];
    if (!w->open_entry || w->pos - t->offset + n > t->size)
        return nb_fail(e, "tensor '%s': more data than its size", t->name);
    if (nb_tensor_values_check(t, data, w->pos - t->offset, n, e))
        return -1;
    t->crc32 = nb_crc32(t->crc32, data, n);
    return write_at_pos(w, data, n, e);
}

int nb_writer_end(nb_writer *w, nb_err *e)
{
    struct nb_tensor_entry *t = &w->table[w->n];
    if (!w->open_entry || w->pos - t->offset != t->size)
        return nb_fail(e, "tensor '%s': data is shorter than its size", t->name);
    w->open_entry = 0;
    w->n++;
    return 0;
}

int nb_writer_add_entry(nb_writer *w, const struct nb_tensor_entry *entry, const void *data,
                        nb_err *e)
{
    if (nb_writer_begin(w, entry, e) || nb_writer_append(w, data, entry->size, e))
        return -1;
    return nb_writer_end(w, e);
}

int nb_entry_init(struct nb_tensor_entry *t, const char *name, uint32_t dtype, int n_dims,
                  const uint64_t *shape, nb_err *e)
{
    memset(t, 0, sizeof *t);
    if (strlen(name) >= sizeof t->name)
        return nb_fail(e, "tensor name '%s' is too long", name);
    if (n_dims < 1 || n_dims > NB_MAX_DIMS)
        return nb_fail(e, "tensor '%s' has %d dimensions", name, n_dims);
    strcpy(t->name, name);
    t->dtype = dtype;
    t->n_dims = (uint32_t)n_dims;
    uint64_t n = nb_dtype_width(dtype);
    for (int d = 0; d < n_dims; d++) {
        if (!shape[d] || shape[d] > UINT64_MAX / (n ? n : 1))
            return nb_fail(e, "tensor '%s' has an invalid shape", name);
        t->shape[d] = shape[d];
        n *= shape[d];
    }
    if (!n)
        return nb_fail(e, "tensor '%s' has unsupported dtype %u", name, dtype);
    t->size = n;
    return 0;
}

int nb_writer_add(nb_writer *w, const char *name, uint32_t dtype, int n_dims,
                  const uint64_t *shape, const void *data, size_t size, nb_err *e)
{
    struct nb_tensor_entry t;
    if (nb_entry_init(&t, name, dtype, n_dims, shape, e))
        return -1;
    if (t.size != size)
        return nb_fail(e, "tensor '%s': %zu bytes given, shape and dtype need %llu", name, size,
                       (unsigned long long)t.size);
    return nb_writer_add_entry(w, &t, data, e);
}

static int finish_file(nb_writer *w, nb_err *e)
{
    struct nb_header *h = &w->header;
    if (pad_to_align(w, e))
        return -1;
    h->data_size = w->pos - h->data_offset;
    h->table_offset = w->pos;
    h->n_tensors = w->n;
    if (write_at_pos(w, w->table, (size_t)w->n * sizeof *w->table, e))
        return -1;
    h->file_size = w->pos;
    if (fseek(w->f, 0, SEEK_SET) || fwrite(h, sizeof *h, 1, w->f) != 1 || fflush(w->f) ||
        fsync(fileno(w->f)))
        return nb_fail(e, "cannot write '%s': %s", w->tmp, strerror(errno));
    int bad = fclose(w->f);
    w->f = NULL;
    if (bad)
        return nb_fail(e, "cannot write '%s': %s", w->tmp, strerror(errno));
    return 0;
}

int nb_writer_commit(nb_writer *w, nb_err *e)
{
    if (!w->n || w->open_entry) {
        nb_writer_abort(w);
        return nb_fail(e, "no tensors were written, or the last one is incomplete");
    }
    if (finish_file(w, e)) {
        nb_writer_abort(w);
        return -1;
    }
    if (rename(w->tmp, w->path)) {
        int err = errno;
        nb_fail(e, "cannot move '%s' into place: %s", w->tmp, strerror(err));
        nb_writer_abort(w);
        return -1;
    }
    guard_tmp(NULL);
    free_writer(w);
    return 0;
}
