#define _POSIX_C_SOURCE 200809L
#include "fuzz_util.h"

#include "../../models/net.h"
#include "../../tools/import/convert.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef NB_FUZZ_DATA
#define NB_FUZZ_DATA "tests/data"
#endif

static char dir[256];

static void remove_dir(void)
{
    DIR *d = dir[0] ? opendir(dir) : NULL;
    if (!d)
        return;
    struct dirent *ent;
    char path[512];
    while ((ent = readdir(d))) {
        if (!strcmp(ent->d_name, ".") || !strcmp(ent->d_name, ".."))
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, ent->d_name);
        unlink(path);
    }
    closedir(d);
    rmdir(dir);
}

const char *fz_dir(void)
{
    if (dir[0])
        return dir;
    const char *bases[] = {getenv("TMPDIR"), "/dev/shm", "/tmp"};
    for (size_t i = 0; i < sizeof bases / sizeof *bases; i++) {
        if (!bases[i] || !bases[i][0] || access(bases[i], W_OK))
            continue;
        snprintf(dir, sizeof dir, "%s/nibble-fuzz-XXXXXX", bases[i]);
        if (mkdtemp(dir)) {
            atexit(remove_dir);
            return dir;
        }
    }
    perror("fuzz: mkdtemp");
    abort();
}

void fz_path(char *buf, size_t cap, const char *name)
{
    snprintf(buf, cap, "%s/%s", fz_dir(), name);
}

int fz_write(const char *path, const void *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    int ok = f && fwrite(data, 1, size, f) == size;
    if (f && fclose(f))
        ok = 0;
    if (!ok)
        perror(path);
    return ok ? 0 : -1;
}

const char *fz_tokenizer_path(void)
{
    const char *p = getenv("NB_FUZZ_TOKENIZER");
    return p && p[0] ? p : NB_FUZZ_DATA "/stories260K/tok512.model";
}

void *fz_read(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 16, n = 0, got;
    char *buf = malloc(cap);
    while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            char *p = realloc(buf, cap *= 2);
            if (!p)
                free(buf);
            buf = p;
        }
    }
    fclose(f);
    *size = n;
    return buf;
}

uint8_t *fz_st_image(const fz_st_tensor *t, int n, size_t *size)
{
    size_t cap = 256, data = 0;
    for (int i = 0; i < n; i++)
        cap += strlen(t[i].name) + 128, data += t[i].size;
    char *header = malloc(cap);
    if (!header)
        return NULL;
    size_t at = (size_t)snprintf(header, cap, "{\"__metadata__\":{\"format\":\"pt\"}"), off = 0;
    for (int i = 0; i < n; i++) {
        char shape[64];
        if (t[i].n_dims == 2)
            snprintf(shape, sizeof shape, "%llu,%llu", (unsigned long long)t[i].shape[0],
                     (unsigned long long)t[i].shape[1]);
        else
            snprintf(shape, sizeof shape, "%llu", (unsigned long long)t[i].shape[0]);
        at += (size_t)snprintf(header + at, cap - at,
                               ",\"%s\":{\"dtype\":\"%s\",\"shape\":[%s],"
                               "\"data_offsets\":[%zu,%zu]}",
                               t[i].name, t[i].dtype, shape, off, off + t[i].size);
        off += t[i].size;
    }
    at += (size_t)snprintf(header + at, cap - at, "}");
    while (at % 8) /* the data starts 8-byte aligned, as the Python writer pads */
        header[at++] = ' ';
    uint8_t *out = calloc(1, 8 + at + data);
    if (out) {
        uint64_t len = at;
        memcpy(out, &len, 8);
        memcpy(out + 8, header, at);
        size_t pos = 8 + at;
        for (int i = 0; i < n; i++) {
            if (t[i].data)
                memcpy(out + pos, t[i].data, t[i].size);
            pos += t[i].size;
        }
        *size = 8 + at + data;
    }
    free(header);
    return out;
}

uint32_t fz_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

void fz_check_loads(const char *path, const char *importer)
{
    nb_model m;
    nb_net L;
    nb_err e;
    if (nb_model_open(&m, path, &e)) {
        fprintf(stderr, "fuzz: %s converted, but the output does not load: %s\n", importer,
                e.msg);
        abort();
    }
    if (nb_net_init(&L, &m, m.meta.max_ctx < 8 ? (int)m.meta.max_ctx : 8, &e)) {
        fprintf(stderr, "fuzz: %s converted, but the output does not bind: %s\n", importer,
                e.msg);
        abort();
    }
    nb_net_free(&L);
    nb_model_close(&m);
    unlink(path);
}

uint8_t *fz_tiny_hf(size_t *size)
{
    static const struct {
        const char *name, *dtype;
        uint64_t rows, cols;
    } parts[] = {
        {"model.embed_tokens.weight", "BF16", 512, 8},
        {"model.layers.0.input_layernorm.weight", "F32", 8, 0},
        {"model.layers.0.self_attn.q_proj.weight", "F16", 8, 8},
        {"model.layers.0.self_attn.k_proj.weight", "F16", 4, 8},
        {"model.layers.0.self_attn.v_proj.weight", "F32", 4, 8},
        {"model.layers.0.self_attn.o_proj.weight", "F16", 8, 8},
        {"model.layers.0.post_attention_layernorm.weight", "F16", 8, 0},
        {"model.layers.0.mlp.gate_proj.weight", "F32", 16, 8},
        {"model.layers.0.mlp.up_proj.weight", "BF16", 16, 8},
        {"model.layers.0.mlp.down_proj.weight", "F16", 8, 16},
        {"model.norm.weight", "F32", 8, 0},
    };
    enum { N = sizeof parts / sizeof *parts };
    fz_st_tensor t[N];
    static uint8_t bytes[N][512 * 8 * 2];
    for (int i = 0; i < N; i++) {
        int width = parts[i].dtype[1] == '3' ? 4 : 2;
        uint64_t n = parts[i].rows * (parts[i].cols ? parts[i].cols : 1);
        for (uint64_t k = 0; k < n; k++) {
            /* small values of both signs, norms near 1: 0x3f80 is 1.0 in
             * bf16, 0x3c00 in f16 */
            uint32_t r = (uint32_t)(k * 2654435761u + (uint32_t)i * 40503u) >> 24;
            float f = parts[i].cols ? ((float)r - 128.0f) / 512.0f : 1.0f + (float)r / 1024.0f;
            uint32_t bits;
            memcpy(&bits, &f, 4);
            uint16_t sign = r & 0x80 ? 0x8000 : 0;
            uint16_t h = parts[i].dtype[0] == 'B' ? (uint16_t)(bits >> 16)
                         : parts[i].cols          ? (uint16_t)(sign | (0x2c00 + (r & 0x7f)))
                                                  : (uint16_t)(0x3c00 + r);
            memcpy(bytes[i] + k * (uint64_t)width, width == 4 ? (void *)&f : (void *)&h,
                   (size_t)width);
        }
        t[i] = (fz_st_tensor){parts[i].name, parts[i].dtype, parts[i].cols ? 2 : 1,
                              {parts[i].rows, parts[i].cols}, bytes[i], (size_t)(n * width)};
    }
    return fz_st_image(t, N, size);
}

void fz_import_folder(const uint8_t *data, size_t size, fz_importer import, const char *what)
{
    if (size < 4)
        return;
    size_t n = fz_u32(data);
    if (n > size - 4)
        return;
    char config[512], weights[512], out[512];
    fz_path(config, sizeof config, "config.json");
    fz_path(weights, sizeof weights, "model.safetensors");
    fz_path(out, sizeof out, "out.nib");
    if (fz_write(config, data + 4, n) || fz_write(weights, data + 4 + n, size - 4 - n))
        abort();
    /* the output dtype from the length, which trailing bytes change */
    static const int dtypes[3] = {-1, NB_F16, NB_BF16};
    nb_convert_opts o = {.out_dtype = dtypes[size % 3], .tokenizer_path = fz_tokenizer_path(),
                         .name = "fuzz", .quiet = 1};
    nb_err e;
    if (!import(fz_dir(), out, &o, &e))
        fz_check_loads(out, what);
}
