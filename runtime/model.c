#define _POSIX_C_SOURCE 200809L
#include "model.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "../tokenizer/tokenizer.h"
#include "kv.h"
#include "qtensor.h"

/* Upper bounds that no real model reaches; a hostile file cannot make
 * the runtime allocate past them. */
#define MAX_TENSORS 65536

/* zlib's (IEEE, as gzip and PNG): several bytes a step, and the
 * instructions the CPU has (ARMv8 crc32, x86 pclmul) in newer zlibs. */
uint32_t nb_crc32(uint32_t crc, const void *data, size_t n)
{
    if (!n)
        return crc; /* zlib answers 0 for a NULL buffer, whatever crc was */
    return (uint32_t)crc32_z(crc, data, n);
}

/* [off, off + len) lies inside [0, size) without overflowing. */
static int in_file(uint64_t off, uint64_t len, uint64_t size)
{
    return off <= size && len <= size - off;
}

static int check_section(const char *what, uint64_t off, uint64_t len, size_t size, nb_err *e)
{
    if (!in_file(off, len, size))
        return nb_fail(e, "%s (offset %llu, %llu bytes) runs past the end of the file (%zu bytes)",
                       what, (unsigned long long)off, (unsigned long long)len, size);
    return 0;
}

static int check_header(const struct nb_header *h, size_t size, nb_err *e)
{
    if (h->version_major > NB_VERSION_MAJOR)
        return nb_fail(e, "model file format version %u.%u is newer than this nibble reads (%d.x)",
                       h->version_major, h->version_minor, NB_VERSION_MAJOR);
    if (h->version_major < 1)
        return nb_fail(e, "model file format version %u.%u is not valid", h->version_major,
                       h->version_minor);
    if (h->header_size < sizeof *h || h->header_size > size)
        return nb_fail(e, "header size %u is invalid", h->header_size);
    if (h->file_size != size)
        return nb_fail(e, "file is %zu bytes but its header says %llu (truncated or appended to)",
                       size, (unsigned long long)h->file_size);
    if (h->meta_size < sizeof(struct nb_meta))
        return nb_fail(e, "metadata section is %llu bytes, expected at least %zu",
                       (unsigned long long)h->meta_size, sizeof(struct nb_meta));
    if (h->entry_size < sizeof(struct nb_tensor_entry) || h->entry_size % 8)
        return nb_fail(e, "tensor table entry size %u is invalid", h->entry_size);
    if (h->n_tensors == 0 || h->n_tensors > MAX_TENSORS)
        return nb_fail(e, "tensor count %u is out of range", h->n_tensors);
    if (check_section("metadata", h->meta_offset, h->meta_size, size, e) ||
        check_section("tokenizer", h->vocab_offset, h->vocab_size, size, e) ||
        check_section("key/value metadata", h->kv_offset, h->kv_size, size, e) ||
        check_section("tensor data", h->data_offset, h->data_size, size, e) ||
        check_section("tensor table", h->table_offset,
                      (uint64_t)h->n_tensors * h->entry_size, size, e))
        return -1;
    return 0;
}

static int check_end_ids(const struct nb_meta *m, nb_err *e)
{
    if (m->tokenizer_kind > NB_TOKENIZER_BPE)
        return nb_fail(e, "unknown tokenizer kind %u", m->tokenizer_kind);
    if (m->n_end_ids > NB_MAX_END_IDS)
        return nb_fail(e, "%u end-of-text ids, more than the %d a file holds", m->n_end_ids,
                       NB_MAX_END_IDS);
    for (uint32_t i = 0; i < m->n_end_ids; i++)
        if (m->end_ids[i] < 0 || m->end_ids[i] >= (int32_t)m->vocab_size)
            return nb_fail(e, "end-of-text id %d is outside the vocabulary of %u", m->end_ids[i],
                           m->vocab_size);
    return 0;
}

const char *nb_arch_name(uint32_t arch)
{
    static const char *const names[NB_ARCH_COUNT] = {
        [NB_ARCH_LLAMA] = "llama", [NB_ARCH_QWEN2] = "qwen2", [NB_ARCH_QWEN3] = "qwen3"};
    return arch < NB_ARCH_COUNT ? names[arch] : NULL;
}

int nb_meta_kv_check(const struct nb_meta *m, const void *kv, size_t n, nb_err *e)
{
    if (!n)
        return 0;
    nb_kv_val v;
    if (nb_kv_check(kv, n, e))
        return -1;
    int r = nb_kv_get(kv, n, "general.architecture", NB_KV_STR, &v, e);
    if (r < 0)
        return -1;
    const char *name = nb_arch_name(m->arch);
    if (r && (strlen(name) != v.len || memcmp(name, v.str, v.len)))
        return nb_fail(e, "the metadata's architecture '%.*s' contradicts its id %u (%s)",
                       (int)(v.len < 32 ? v.len : 32), v.str, m->arch, name);
    return 0;
}

int nb_meta_check(const struct nb_meta *m, nb_err *e)
{
    if (!nb_arch_name(m->arch))
        return nb_fail(e, "unsupported architecture id %u (this nibble knows llama, qwen2 and "
                          "qwen3: a newer nibble wrote it?)",
                       m->arch);
    if (!m->dim || m->dim > NB_LIMIT_DIM || !m->ffn_dim || m->ffn_dim > NB_LIMIT_DIM ||
        !m->n_layers || m->n_layers > NB_LIMIT_LAYERS || !m->vocab_size ||
        m->vocab_size > NB_LIMIT_DIM || !m->max_ctx || m->max_ctx > NB_LIMIT_CTX)
        return nb_fail(e, "model dimensions out of range (dim %u, ffn %u, layers %u, vocab %u, "
                          "context %u)",
                       m->dim, m->ffn_dim, m->n_layers, m->vocab_size, m->max_ctx);
    if (!m->n_heads || !m->n_kv_heads || m->n_heads % m->n_kv_heads || !m->head_dim ||
        m->head_dim % 2 || m->head_dim > NB_LIMIT_HEAD_DIM || m->n_heads > NB_LIMIT_HEADS)
        return nb_fail(e, "invalid attention shape (heads %u, kv heads %u, head dim %u)",
                       m->n_heads, m->n_kv_heads, m->head_dim);
    if (m->rope_pairs > NB_ROPE_HALVES)
        return nb_fail(e, "unknown RoPE pair convention %u", m->rope_pairs);
    if (!(m->norm_eps > 0 && m->norm_eps < 1) || !(m->rope_theta > 0 && m->rope_theta < 1e12f))
        return nb_fail(e, "invalid norm eps %g or RoPE theta %g", m->norm_eps, m->rope_theta);
    int32_t ids[4] = {m->bos_id, m->eos_id, m->unk_id, m->pad_id};
    for (int i = 0; i < 4; i++)
        if (ids[i] < -1 || ids[i] >= (int32_t)m->vocab_size)
            return nb_fail(e, "special token id %d is outside the vocabulary", ids[i]);
    if (!memchr(m->name, 0, sizeof m->name) || !memchr(m->chat_template, 0, sizeof m->chat_template))
        return nb_fail(e, "model name or chat template is not terminated");
    return check_end_ids(m, e);
}

int nb_tokenizer_bytes_check(const struct nb_meta *m, const void *bytes, size_t n, nb_err *e)
{
    int kind = nb_tok_bytes_kind(bytes, n);
    if (m->tokenizer_kind != (uint32_t)kind)
        return nb_fail(e, "the metadata says a %s tokenizer but the tokenizer bytes are %s",
                       m->tokenizer_kind == NB_TOKENIZER_BPE ? "BPE" : "SentencePiece",
                       kind == NB_TOKENIZER_BPE ? "a BPE blob" : "no BPE blob");
    return 0;
}

/* Bytes the entry's data must occupy (packed types: the qpack.h size
 * rule), or 0 with a message when the entry is invalid or overflows. */
static uint64_t tensor_bytes(const struct nb_tensor_entry *t, nb_err *e)
{
    if (nb_dtype_packed(t->dtype)) {
        nb_qlayout l;
        return nb_qentry_layout(t, &l, e) ? 0 : (uint64_t)l.total_bytes;
    }
    size_t width = nb_dtype_width(t->dtype);
    if (!width) {
        nb_fail(e, "tensor '%s' has unsupported dtype %u (%s)", t->name, t->dtype,
                nb_dtype_name(t->dtype));
        return 0;
    }
    uint64_t n = width;
    for (uint32_t d = 0; d < t->n_dims; d++) {
        if (!t->shape[d] || t->shape[d] > UINT64_MAX / n) {
            nb_fail(e, "tensor '%s' has an invalid or overflowing shape", t->name);
            return 0;
        }
        n *= t->shape[d];
    }
    return n;
}

static int check_entry(const struct nb_tensor_entry *t, const struct nb_header *h, nb_err *e)
{
    if (!memchr(t->name, 0, sizeof t->name) || !t->name[0])
        return nb_fail(e, "tensor table has an entry without a valid name");
    if (t->n_dims < 1 || t->n_dims > NB_MAX_DIMS)
        return nb_fail(e, "tensor '%s' has %u dimensions", t->name, t->n_dims);
    uint64_t want = tensor_bytes(t, e);
    if (!want)
        return -1;
    if (t->size != want)
        return nb_fail(e, "tensor '%s' is %llu bytes but its shape needs %llu", t->name,
                       (unsigned long long)t->size, (unsigned long long)want);
    if (t->offset % NB_ALIGN)
        return nb_fail(e, "tensor '%s' data is not %d-byte aligned", t->name, NB_ALIGN);
    if (t->offset < h->data_offset || !in_file(t->offset - h->data_offset, t->size, h->data_size))
        return nb_fail(e, "tensor '%s' data (offset %llu, %llu bytes) lies outside the data section",
                       t->name, (unsigned long long)t->offset, (unsigned long long)t->size);
    return 0;
}

static const struct nb_tensor_entry *entry_at(const nb_model *m, uint32_t i)
{
    return (const void *)(m->base + m->header->table_offset + (uint64_t)i * m->header->entry_size);
}

static int check_table(const nb_model *m, nb_err *e)
{
    if (m->header->table_offset % 8)
        return nb_fail(e, "tensor table is misaligned");
    for (uint32_t i = 0; i < m->n_tensors; i++)
        if (check_entry(entry_at(m, i), m->header, e))
            return -1;
    for (uint32_t i = 0; i < m->n_tensors; i++) /* quadratic, but only at load */
        for (uint32_t j = i + 1; j < m->n_tensors; j++)
            if (!strcmp(entry_at(m, i)->name, entry_at(m, j)->name))
                return nb_fail(e, "tensor '%s' appears twice", entry_at(m, i)->name);
    return 0;
}

int nb_model_parse(nb_model *m, const void *base, size_t size, nb_err *e)
{
    memset(m, 0, sizeof *m);
    if (size < sizeof(struct nb_header))
        return nb_fail(e, "file is too short (%zu bytes) to be a nibble model", size);
    const struct nb_header *h = base;
    if (memcmp(h->magic, NB_MAGIC, 8))
        return nb_fail(e, "not a nibble model file (bad magic)");
    if (check_header(h, size, e))
        return -1;
    m->base = base;
    m->size = size;
    m->header = h;
    memcpy(&m->meta, m->base + h->meta_offset, sizeof m->meta);
    m->n_tensors = h->n_tensors;
    m->vocab = m->base + h->vocab_offset;
    m->vocab_size = h->vocab_size;
    m->kv = h->kv_size ? m->base + h->kv_offset : NULL;
    m->kv_size = h->kv_size;
    if (nb_meta_check(&m->meta, e) || nb_meta_kv_check(&m->meta, m->kv, m->kv_size, e) ||
        nb_tokenizer_bytes_check(&m->meta, m->vocab, m->vocab_size, e) || check_table(m, e)) {
        memset(m, 0, sizeof *m);
        return -1;
    }
    m->table = entry_at(m, 0);
    return 0;
}

static int map_file(const char *path, void **base, size_t *size, nb_err *e)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return nb_fail(e, "cannot open model '%s': %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
        close(fd);
        return nb_fail(e, "model '%s' is not a regular file", path);
    }
    if (st.st_size < (off_t)sizeof(struct nb_header)) {
        close(fd);
        return nb_fail(e, "model '%s' is too short (%lld bytes) to be a nibble model", path,
                       (long long)st.st_size);
    }
    *size = (size_t)st.st_size;
    *base = mmap(NULL, *size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (*base == MAP_FAILED)
        return nb_fail(e, "cannot map model '%s': %s", path, strerror(errno));
    return 0;
}

int nb_model_open(nb_model *m, const char *path, nb_err *e)
{
    void *base = NULL;
    size_t size = 0;
    memset(m, 0, sizeof *m);
    if (map_file(path, &base, &size, e))
        return -1;
    if (nb_model_parse(m, base, size, e)) {
        munmap(base, size);
        char why[sizeof e->msg];
        snprintf(why, sizeof why, "%s", e ? e->msg : "");
        return nb_fail(e, "%s: %s", path, why);
    }
    return 0;
}

void nb_model_close(nb_model *m)
{
    if (m->base)
        munmap((void *)m->base, m->size);
    memset(m, 0, sizeof *m);
}

const nb_tensor *nb_model_find(const nb_model *m, const char *name, nb_tensor *out)
{
    for (uint32_t i = 0; i < m->n_tensors; i++) {
        const struct nb_tensor_entry *t = entry_at(m, i);
        if (!strcmp(t->name, name)) {
            out->entry = t;
            out->data = m->base + t->offset;
            return out;
        }
    }
    return NULL;
}

const char *nb_shape_text(char *buf, size_t cap, int n_dims, const uint64_t *shape)
{
    size_t n = (size_t)snprintf(buf, cap, "[");
    for (int d = 0; d < n_dims && n < cap; d++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%llu", d ? ", " : "",
                              (unsigned long long)shape[d]);
    if (n < cap)
        snprintf(buf + n, cap - n, "]");
    return buf;
}

int nb_model_expect(const nb_model *m, const char *name, int n_dims, const uint64_t *shape,
                    nb_tensor *out, nb_err *e)
{
    if (!nb_model_find(m, name, out))
        return nb_fail(e, "model file has no tensor '%s'", name);
    const struct nb_tensor_entry *t = out->entry;
    int same = (int)t->n_dims == n_dims;
    for (int d = 0; same && d < n_dims; d++)
        same = t->shape[d] == shape[d];
    if (!same) {
        char have[96], want[96];
        return nb_fail(e, "tensor '%s' has shape %s, expected %s", name,
                       nb_shape_text(have, sizeof have, (int)t->n_dims, t->shape),
                       nb_shape_text(want, sizeof want, n_dims, shape));
    }
    return 0;
}

int nb_model_verify(const nb_model *m, nb_err *e)
{
    for (uint32_t i = 0; i < m->n_tensors; i++) {
        const struct nb_tensor_entry *t = entry_at(m, i);
        if (nb_crc32(0, m->base + t->offset, t->size) != t->crc32)
            return nb_fail(e, "tensor '%s' fails its checksum (file corrupted)", t->name);
        if (nb_tensor_values_check(t, m->base + t->offset, 0, t->size, e))
            return -1;
    }
    return 0;
}

/* Index of the first non-finite value among n of the given width (4: f32,
 * 2: f16, or bf16 when bf16 is set), or n. The exponent bits all set
 * mean Inf or NaN in all three formats. */
static size_t first_nonfinite(const uint8_t *p, size_t n, size_t width, int bf16)
{
    uint32_t mask = width == 4 ? 0x7f800000u : bf16 ? 0x7f80u : 0x7c00u;
    for (size_t i = 0; i < n; i++) {
        uint32_t v = 0;
        memcpy(&v, p + i * width, width); /* little-endian hosts only, as the format */
        if ((v & mask) == mask)
            return i;
    }
    return n;
}

/* The part of [off, off + n) inside [lo, hi), as offsets into both. */
static int overlap(uint64_t off, size_t n, uint64_t lo, uint64_t hi, uint64_t *a, uint64_t *b)
{
    *a = off > lo ? off : lo;
    *b = off + n < hi ? off + n : hi;
    return *a < *b;
}

static int check_packed(const struct nb_tensor_entry *t, const uint8_t *data, uint64_t off,
                        size_t n, nb_err *e)
{
    nb_qlayout l;
    uint64_t a, b;
    if (nb_qentry_layout(t, &l, e))
        return -1;
    if (overlap(off, n, l.scale_offset, l.zero_offset, &a, &b)) {
        size_t k = (size_t)(b - a) / 2, bad = first_nonfinite(data + (a - off), k, 2, 0);
        if (bad < k)
            return nb_fail(e, "tensor '%s' holds a non-finite scale (group %llu)", t->name,
                           (unsigned long long)((a - l.scale_offset) / 2 + bad));
    }
    if (overlap(off, n, l.zero_offset, l.total_bytes, &a, &b))
        for (uint64_t i = a; i < b; i++)
            if (data[i - off] >> l.bits)
                return nb_fail(e, "tensor '%s' holds zero point %u, out of range for %d-bit "
                                  "codes",
                               t->name, data[i - off], l.bits);
    return 0;
}

int nb_tensor_values_check(const struct nb_tensor_entry *t, const void *data, uint64_t off,
                           size_t n, nb_err *e)
{
    if (nb_dtype_packed(t->dtype))
        return check_packed(t, data, off, n, e);
    size_t width = nb_dtype_width(t->dtype);
    if (!width)
        return 0;
    size_t k = n / width, bad = first_nonfinite(data, k, width, t->dtype == NB_BF16);
    if (bad < k)
        return nb_fail(e, "tensor '%s' holds a non-finite value (NaN or Inf) at element %llu",
                       t->name, (unsigned long long)(off / width + bad));
    return 0;
}
