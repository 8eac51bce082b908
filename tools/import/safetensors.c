#define _POSIX_C_SOURCE 200809L
#include "safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "convert.h"

#define INDEX_NAME "model.safetensors.index.json"
#define SINGLE_NAME "model.safetensors"
#define MAX_INDEX_BYTES (64u << 20)

struct shard {
    char *path;
    const uint8_t *base;
    size_t size;
    int mapped; /* base came from mmap and is ours to unmap */
    json_t *header;
    nb_st_tensor *tensors;
    size_t n;
};

struct nb_st {
    struct shard *shards;
    size_t n_shards;
    json_t *index;
    nb_st_tensor *tensors; /* sorted by name */
    size_t n;
};

static const struct {
    const char *name;
    size_t size;
} dtypes[] = {
    [NB_ST_F32] = {"F32", 4}, [NB_ST_F16] = {"F16", 2}, [NB_ST_BF16] = {"BF16", 2},
    [NB_ST_F64] = {"F64", 8}, [NB_ST_I64] = {"I64", 8}, [NB_ST_I32] = {"I32", 4},
    [NB_ST_I16] = {"I16", 2}, [NB_ST_I8] = {"I8", 1},   [NB_ST_U8] = {"U8", 1},
    [NB_ST_BOOL] = {"BOOL", 1},
};
#define N_DTYPES ((int)(sizeof dtypes / sizeof *dtypes))

const char *nb_st_dtype_name(int dtype)
{
    return dtype >= 0 && dtype < N_DTYPES ? dtypes[dtype].name : "unknown";
}

size_t nb_st_dtype_size(int dtype)
{
    return dtype >= 0 && dtype < N_DTYPES ? dtypes[dtype].size : 0;
}

static int dtype_from_name(const char *s)
{
    for (int i = 0; i < N_DTYPES; i++)
        if (!strcmp(s, dtypes[i].name))
            return i;
    return -1;
}

static int cmp_tensor(const void *a, const void *b)
{
    return strcmp(((const nb_st_tensor *)a)->name, ((const nb_st_tensor *)b)->name);
}

static int get_u64(const json_t *v, uint64_t *out)
{
    int64_t i;
    if (nb_json_i64(v, &i) || i < 0)
        return -1;
    *out = (uint64_t)i;
    return 0;
}

/* Reads "shape" into t; the element count must not overflow. */
static int read_shape(nb_st_tensor *t, const json_t *shape, const char *file, nb_err *e)
{
    size_t rank = json_array_size(shape);
    if (!json_is_array(shape))
        return nb_fail(e, "%s: tensor '%.80s': shape is not an array", file, t->name);
    if (rank > NB_ST_MAX_DIMS)
        return nb_fail(e, "%s: tensor '%.80s': %zu dimensions (at most %d supported)", file,
                       t->name, rank, NB_ST_MAX_DIMS);
    t->n_dims = (int)rank;
    t->n_elems = 1;
    for (size_t i = 0; i < rank; i++) {
        uint64_t n;
        if (get_u64(json_array_get(shape, i), &n))
            return nb_fail(e, "%s: tensor '%.80s': shape holds a value that is not a size", file,
                           t->name);
        if (n && t->n_elems > UINT64_MAX / n)
            return nb_fail(e, "%s: tensor '%.80s': shape product overflows", file, t->name);
        t->shape[i] = n;
        t->n_elems *= n;
    }
    return 0;
}

/* Reads "data_offsets" and checks them against the shape and the data
 * section [data, data + data_len). */
static int read_offsets(nb_st_tensor *t, const json_t *offs, const uint8_t *data,
                        size_t data_len, const char *file, nb_err *e)
{
    uint64_t b, end, width = nb_st_dtype_size(t->dtype);
    if (!json_is_array(offs) || json_array_size(offs) != 2 || get_u64(json_array_get(offs, 0), &b) ||
        get_u64(json_array_get(offs, 1), &end) || b > end)
        return nb_fail(e, "%s: tensor '%.80s': data_offsets is not [begin, end]", file, t->name);
    if (end > data_len)
        return nb_fail(e, "%s: tensor '%.80s': data_offsets [%llu, %llu] run past the %zu data bytes",
                       file, t->name, (unsigned long long)b, (unsigned long long)end, data_len);
    if (t->n_elems > UINT64_MAX / width)
        return nb_fail(e, "%s: tensor '%.80s': shape too large", file, t->name);
    if (end - b != t->n_elems * width)
        return nb_fail(e, "%s: tensor '%.80s': %llu bytes at data_offsets, but shape and %s need %llu",
                       file, t->name, (unsigned long long)(end - b), nb_st_dtype_name(t->dtype),
                       (unsigned long long)(t->n_elems * width));
    t->data = data + b;
    t->size = (size_t)(end - b);
    return 0;
}

/* (The parser refuses a NUL in a name: strings are never cut short.) */
static int read_entry(nb_st_tensor *t, const char *key, const json_t *v, const struct shard *sh,
                      const uint8_t *data, size_t data_len, nb_err *e)
{
    t->name = key;
    t->file = sh->path;
    if (!json_is_object(v))
        return nb_fail(e, "%s: tensor '%.80s': entry is not an object", sh->path, t->name);
    const char *dtype = json_string_value(json_object_get(v, "dtype"));
    if (!dtype)
        return nb_fail(e, "%s: tensor '%.80s': no dtype", sh->path, t->name);
    t->dtype = dtype_from_name(dtype);
    if (t->dtype < 0)
        return nb_fail(e, "%s: tensor '%.80s': unknown dtype '%.32s'", sh->path, t->name, dtype);
    if (read_shape(t, json_object_get(v, "shape"), sh->path, e))
        return -1;
    return read_offsets(t, json_object_get(v, "data_offsets"), data, data_len, sh->path, e);
}

static int check_metadata(json_t *v, const char *file, nb_err *e)
{
    const char *k;
    json_t *x;
    if (!json_is_object(v))
        return nb_fail(e, "%s: __metadata__ is not an object", file);
    json_object_foreach(v, k, x)
        if (!json_is_string(x))
            return nb_fail(e, "%s: __metadata__ value '%.80s' is not a string", file, k);
    return 0;
}

static int parse_header(struct shard *sh, nb_err *e)
{
    if (sh->size < 8)
        return nb_fail(e, "%s: %zu bytes is too short for a safetensors file", sh->path, sh->size);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--)
        n = n << 8 | sh->base[i];
    if (n < 2 || n > NB_ST_MAX_HEADER)
        return nb_fail(e, "%s: header length %llu is not within [2, %u]", sh->path,
                       (unsigned long long)n, NB_ST_MAX_HEADER);
    if (n > sh->size - 8)
        return nb_fail(e, "%s: header length %llu runs past the end of the file (%zu bytes)",
                       sh->path, (unsigned long long)n, sh->size);
    nb_err why;
    sh->header = nb_json_mem((const char *)sh->base + 8, (size_t)n, &why);
    if (!sh->header)
        return nb_fail(e, "%s: header is not valid JSON: %s", sh->path, why.msg);
    json_t *root = sh->header, *v;
    const char *k;
    if (!json_is_object(root))
        return nb_fail(e, "%s: header is not a JSON object", sh->path);
    sh->tensors = calloc(json_object_size(root) + 1, sizeof *sh->tensors);
    if (!sh->tensors)
        return nb_fail(e, "out of memory");
    const uint8_t *data = sh->base + 8 + n;
    size_t data_len = sh->size - 8 - (size_t)n;
    json_object_foreach(root, k, v) {
        if (!strcmp(k, "__metadata__")) {
            if (check_metadata(v, sh->path, e))
                return -1;
        } else if (read_entry(&sh->tensors[sh->n++], k, v, sh, data, data_len, e)) {
            return -1;
        }
    }
    qsort(sh->tensors, sh->n, sizeof *sh->tensors, cmp_tensor);
    return 0;
}

static int map_shard(struct shard *sh, nb_err *e)
{
    int fd = open(sh->path, O_RDONLY);
    if (fd < 0)
        return nb_fail(e, "cannot open '%s': %s", sh->path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) || !S_ISREG(st.st_mode) || st.st_size < 8 ||
        (uint64_t)st.st_size > SIZE_MAX) {
        close(fd);
        return nb_fail(e, "'%s' is not a safetensors file (not a regular file, or too short)",
                       sh->path);
    }
    void *base = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (base == MAP_FAILED)
        return nb_fail(e, "cannot map '%s': %s", sh->path, strerror(errno));
    sh->base = base;
    sh->size = (size_t)st.st_size;
    sh->mapped = 1;
    return parse_header(sh, e);
}

static void free_shard(struct shard *sh)
{
    if (sh->mapped)
        munmap((void *)sh->base, sh->size);
    json_decref(sh->header);
    free(sh->tensors);
    free(sh->path);
}

void nb_st_close(nb_st *st)
{
    if (!st)
        return;
    for (size_t i = 0; i < st->n_shards; i++)
        free_shard(&st->shards[i]);
    free(st->shards);
    json_decref(st->index);
    free(st->tensors);
    free(st);
}

static nb_st *new_st(size_t n_shards, nb_err *e)
{
    nb_st *st = calloc(1, sizeof *st);
    if (st)
        st->shards = calloc(n_shards ? n_shards : 1, sizeof *st->shards);
    if (!st || !st->shards) {
        free(st);
        nb_fail(e, "out of memory");
        return NULL;
    }
    return st;
}

/* A single file: its own tensors are the model's. */
static nb_st *single(nb_st *st, nb_err *e)
{
    struct shard *sh = &st->shards[0];
    st->tensors = malloc((sh->n + 1) * sizeof *st->tensors);
    if (!st->tensors) {
        nb_fail(e, "out of memory");
        nb_st_close(st);
        return NULL;
    }
    memcpy(st->tensors, sh->tensors, sh->n * sizeof *st->tensors);
    st->n = sh->n;
    return st;
}

nb_st *nb_st_open_file(const char *path, nb_err *e)
{
    nb_st *st = new_st(1, e);
    if (!st)
        return NULL;
    st->n_shards = 1;
    st->shards[0].path = strdup(path);
    if (!st->shards[0].path ? nb_fail(e, "out of memory") : map_shard(&st->shards[0], e)) {
        nb_st_close(st);
        return NULL;
    }
    return single(st, e);
}

nb_st *nb_st_open_mem(const void *base, size_t size, const char *label, nb_err *e)
{
    nb_st *st = new_st(1, e);
    if (!st)
        return NULL;
    struct shard *sh = &st->shards[0];
    st->n_shards = 1;
    sh->base = base;
    sh->size = size;
    sh->path = strdup(label);
    if (!sh->path ? nb_fail(e, "out of memory") : parse_header(sh, e)) {
        nb_st_close(st);
        return NULL;
    }
    return single(st, e);
}

static char *join(const char *dir, const char *name)
{
    /* memcpy, not snprintf: gcc's sanitizer builds warn of a NULL %s here */
    size_t a = strlen(dir), b = strlen(name);
    char *s = malloc(a + b + 2);
    if (s) {
        memcpy(s, dir, a);
        s[a] = '/';
        memcpy(s + a + 1, name, b + 1);
    }
    return s;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* A shard must be a plain file name beside the index: a hostile index
 * must not reach files elsewhere. */
static int plain_name(const char *s)
{
    return s && s[0] && !strchr(s, '/') && strcmp(s, ".") && strcmp(s, "..");
}

/* The distinct shard names of the weight map, sorted. */
static const char **shard_names(json_t *map, size_t *n, const char *index, nb_err *e)
{
    const char **names = malloc((json_object_size(map) + 1) * sizeof *names), *t;
    size_t k = 0;
    json_t *v;
    if (!names) {
        nb_fail(e, "out of memory");
        return NULL;
    }
    json_object_foreach(map, t, v) {
        const char *s = json_string_value(v);
        if (!plain_name(s)) {
            free(names);
            nb_fail(e, "%s: tensor '%.80s' names no plain shard file", index, t);
            return NULL;
        }
        names[k++] = s;
    }
    qsort(names, k, sizeof *names, cmp_str);
    *n = 0;
    for (size_t i = 0; i < k; i++)
        if (!*n || strcmp(names[*n - 1], names[i]))
            names[(*n)++] = names[i];
    return names;
}

static int open_shards(nb_st *st, const char *dir, const char **names, size_t n, nb_err *e)
{
    for (size_t i = 0; i < n; i++) {
        struct shard *sh = &st->shards[i];
        st->n_shards = i + 1;
        sh->path = join(dir, names[i]);
        if (!sh->path)
            return nb_fail(e, "out of memory");
        nb_err why;
        if (map_shard(sh, &why))
            return nb_fail(e, "%s (a shard listed in %s)", why.msg, INDEX_NAME);
    }
    return 0;
}

static const nb_st_tensor *find_in(const nb_st_tensor *t, size_t n, const char *name)
{
    nb_st_tensor key = {.name = name};
    return bsearch(&key, t, n, sizeof *t, cmp_tensor);
}

/* Each weight-map entry must be found in the shard it names. */
static int collect(nb_st *st, json_t *map, const char **names, nb_err *e)
{
    const char *name;
    json_t *v;
    st->tensors = malloc((json_object_size(map) + 1) * sizeof *st->tensors);
    if (!st->tensors)
        return nb_fail(e, "out of memory");
    json_object_foreach(map, name, v) {
        const char *file = json_string_value(v);
        const char **at = bsearch(&file, names, st->n_shards, sizeof *names, cmp_str);
        const struct shard *sh = &st->shards[at - names];
        const nb_st_tensor *t = find_in(sh->tensors, sh->n, name);
        if (!t)
            return nb_fail(e, "%s: tensor '%.80s' is listed in %s but missing there", INDEX_NAME,
                           name, file);
        st->tensors[st->n++] = *t;
    }
    qsort(st->tensors, st->n, sizeof *st->tensors, cmp_tensor);
    return 0;
}

static nb_st *open_index(const char *dir, const char *index_path, nb_err *e)
{
    json_t *index = nb_json_file(index_path, MAX_INDEX_BYTES, e);
    if (!index)
        return NULL;
    json_t *map = json_object_get(index, "weight_map");
    size_t n = 0;
    const char **names = NULL;
    nb_st *st = NULL;
    if (!json_is_object(map))
        nb_fail(e, "%s: no \"weight_map\" object", index_path);
    else if ((names = shard_names(map, &n, index_path, e)) && (st = new_st(n, e)))
        st->index = index;
    if (!st) {
        free(names);
        json_decref(index);
        return NULL;
    }
    if (open_shards(st, dir, names, n, e) || collect(st, map, names, e)) {
        nb_st_close(st);
        st = NULL;
    }
    free(names);
    return st;
}

static int exists(const char *path)
{
    struct stat st;
    return !stat(path, &st);
}

nb_st *nb_st_open_dir(const char *dir, nb_err *e)
{
    char *single_path = join(dir, SINGLE_NAME), *index_path = join(dir, INDEX_NAME);
    nb_st *st = NULL;
    if (!single_path || !index_path)
        nb_fail(e, "out of memory");
    else if (exists(single_path))
        st = nb_st_open_file(single_path, e);
    else if (exists(index_path))
        st = open_index(dir, index_path, e);
    else
        nb_fail(e, "'%s' holds neither %s nor %s", dir, SINGLE_NAME, INDEX_NAME);
    free(single_path);
    free(index_path);
    return st;
}

size_t nb_st_count(const nb_st *st)
{
    return st ? st->n : 0;
}

const nb_st_tensor *nb_st_at(const nb_st *st, size_t i)
{
    return st && i < st->n ? &st->tensors[i] : NULL;
}

const nb_st_tensor *nb_st_find(const nb_st *st, const char *name)
{
    return st ? find_in(st->tensors, st->n, name) : NULL;
}

/* ---- writing (nibble export) ---- */

uint64_t nb_st_spec_size(const nb_st_spec *t)
{
    uint64_t n = nb_st_dtype_size(t->dtype);
    for (int d = 0; d < t->n_dims; d++)
        n *= t->shape[d];
    return n;
}

static json_t *spec_json(const nb_st_spec *t, uint64_t off)
{
    json_t *shape = json_array(), *o = json_object();
    for (int d = 0; d < t->n_dims; d++)
        json_array_append_new(shape, json_integer((json_int_t)t->shape[d]));
    json_object_set_new(o, "dtype", json_string(nb_st_dtype_name(t->dtype)));
    json_object_set_new(o, "shape", shape);
    json_object_set_new(o, "data_offsets",
                        json_pack("[II]", (json_int_t)off,
                                  (json_int_t)(off + nb_st_spec_size(t))));
    return o;
}

int nb_st_write_header(FILE *f, const nb_st_spec *t, size_t n, const char *path, nb_err *e)
{
    json_t *root = json_object();
    json_object_set_new(root, "__metadata__", json_pack("{ss}", "format", "pt"));
    uint64_t off = 0;
    for (size_t i = 0; i < n; i++) {
        json_object_set_new(root, t[i].name, spec_json(&t[i], off));
        off += nb_st_spec_size(&t[i]);
    }
    char *text = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(root);
    if (!text)
        return nb_fail(e, "out of memory for the header of '%s'", path);
    size_t len = strlen(text), padded = (len + 7) / 8 * 8;
    uint64_t n_le = padded; /* little-endian: nibformat.h refuses other hosts */
    int bad = fwrite(&n_le, 8, 1, f) != 1 || fwrite(text, 1, len, f) != len;
    for (size_t i = len; i < padded && !bad; i++)
        bad = fputc(' ', f) == EOF;
    free(text);
    return bad ? nb_fail(e, "cannot write '%s': %s", path, strerror(errno)) : 0;
}
