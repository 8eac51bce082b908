/* Logits of converted models, for tests/families.sh to hold against the
 * float64 reference (tests/ref/hf_ref.py):
 *   test_families logits MODEL.nib ref|fast IDS
 *     runs IDS (at positions 0..n-1) on the reference or the fast path
 *     and prints the last position's logits, one per line (%.9g);
 *   test_families agree A.nib B.nib N [TOL]
 *     walks N positions from A's BOS (each next id A's greedy choice) on
 *     both models, reference and fast paths, and checks that their logits
 *     agree within TOL (default 1e-5) of the largest |logit|; prints the
 *     worst relative and absolute differences;
 *   test_families kv MODEL.nib KEY
 *     prints the string value of a key/value metadata entry (exit 1 when
 *     it is absent or not a string).
 * IDS are numbers, or @FILE with numbers separated by white space or
 * commas (a long prompt). */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../models/net.h"
#include "../runtime/kv.h"
#include "../runtime/sampler.h"
#include "testutil.h"

static int add_ids(const char *text, int32_t **ids, int *n, int *cap)
{
    for (const char *p = text; *p;) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p) {
            if (!strchr(" \t\r\n,[]", *p))
                return -1;
            p++;
            continue;
        }
        if (*n == *cap) {
            *cap = *cap ? 2 * *cap : 256;
            int32_t *grown = realloc(*ids, (size_t)*cap * sizeof **ids);
            if (!grown)
                return -1;
            *ids = grown;
        }
        (*ids)[(*n)++] = (int32_t)v;
        p = end;
    }
    return 0;
}

/* A whole text file, NUL-terminated (NULL if unreadable). */
static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t n = 0, cap = 0, got;
    if (!f)
        return NULL;
    do {
        if (n + 4096 + 1 > cap) {
            char *grown = realloc(buf, cap = 2 * cap + 4096 + 1);
            if (!grown)
                break;
            buf = grown;
        }
        got = fread(buf + n, 1, 4096, f);
        n += got;
    } while (got == 4096);
    fclose(f);
    if (buf)
        buf[n] = 0;
    return buf;
}

/* The ids of argv[0..argc): numbers or @FILE. */
static int32_t *read_ids(int argc, char **argv, int *n)
{
    int32_t *ids = NULL;
    int cap = 0;
    *n = 0;
    for (int i = 0; i < argc; i++) {
        char *text = argv[i];
        if (text[0] == '@' && !(text = read_text(argv[i] + 1))) {
            fprintf(stderr, "test_families: cannot read %s\n", argv[i] + 1);
            free(ids);
            return NULL;
        }
        int rc = add_ids(text, &ids, n, &cap);
        if (text != argv[i])
            free(text);
        if (rc) {
            fprintf(stderr, "test_families: '%.40s' is not a list of ids\n", argv[i]);
            free(ids);
            return NULL;
        }
    }
    return ids;
}

static int open_net(const char *path, int fast, nb_model *m, nb_net *net)
{
    nb_err e = {{0}};
    nb_run_opts o = {.threads = 1};
    if (nb_model_open(m, path, &e)) {
        fprintf(stderr, "test_families: %s\n", e.msg);
        return -1;
    }
    if (fast ? nb_net_init_fast(net, m, 0, &o, &e) : nb_net_init(net, m, 0, &e)) {
        fprintf(stderr, "test_families: %s: %s\n", path, e.msg);
        nb_model_close(m);
        return -1;
    }
    return 0;
}

static int logits(int argc, char **argv)
{
    if (argc < 3 || (strcmp(argv[1], "ref") && strcmp(argv[1], "fast")))
        return fprintf(stderr, "usage: test_families logits MODEL.nib ref|fast IDS\n"), 2;
    int n;
    int32_t *ids = read_ids(argc - 2, argv + 2, &n);
    if (!ids || !n)
        return free(ids), 2;
    nb_model m;
    nb_net net;
    if (open_net(argv[0], !strcmp(argv[1], "fast"), &m, &net))
        return free(ids), 1;
    int rc = 0;
    for (int i = 0; i < n && !rc; i++)
        if (ids[i] < 0 || (uint32_t)ids[i] >= m.meta.vocab_size)
            rc = fprintf(stderr, "test_families: id %d is outside the vocabulary\n", ids[i]);
    if (!rc && n > net.ctx)
        rc = fprintf(stderr, "test_families: %d ids, more than the context of %d\n", n, net.ctx);
    if (!rc) {
        const float *x = nb_net_prefill(&net, ids, n, 0);
        for (uint32_t i = 0; i < m.meta.vocab_size; i++)
            printf("%.9g\n", (double)x[i]);
    }
    nb_net_free(&net);
    nb_model_close(&m);
    free(ids);
    return rc ? 1 : 0;
}

static void agree_on(const char *a, const char *b, int n, double tol, int fast)
{
    nb_model ma, mb;
    nb_net la, lb;
    if (open_net(a, fast, &ma, &la))
        return tu_failures++, (void)0;
    if (open_net(b, fast, &mb, &lb)) {
        nb_net_free(&la);
        nb_model_close(&ma);
        return tu_failures++, (void)0;
    }
    CHECK(ma.meta.vocab_size == mb.meta.vocab_size, "vocabularies %u and %u",
          ma.meta.vocab_size, mb.meta.vocab_size);
    double worst_rel = 0, worst_abs = 0;
    long bad = 0; /* non-finite logits */
    int tok = ma.meta.bos_id >= 0 ? ma.meta.bos_id : 0;
    for (int pos = 0; pos < n && pos < la.ctx && pos < lb.ctx &&
                      ma.meta.vocab_size == mb.meta.vocab_size;
         pos++) {
        const float *x = nb_net_forward(&la, tok, pos), *y = nb_net_forward(&lb, tok, pos);
        double big = 0, diff = 0;
        /* (comparisons, not fmax: aarch64 GCC 12 crashes vectorizing an
         * fmax reduction, "internal compiler error in
         * vect_transform_reduction") */
        for (uint32_t i = 0; i < ma.meta.vocab_size; i++) {
            double ax = fabs((double)x[i]), d = fabs((double)x[i] - (double)y[i]);
            big = ax > big ? ax : big;
            diff = d > diff ? d : diff;
            bad += !isfinite(d);
        }
        worst_abs = fmax(worst_abs, diff);
        worst_rel = fmax(worst_rel, big > 0 ? diff / big : diff);
        tok = nb_argmax(x, (int)ma.meta.vocab_size);
    }
    CHECK(!bad, "%s path: %ld non-finite logits", fast ? "fast" : "reference", bad);
    CHECK(worst_rel <= tol, "%s path: %s and %s differ by %.3g of the largest |logit| (> %g)",
          fast ? "fast" : "reference", a, b, worst_rel, tol);
    printf("%s path: %d positions, max |logit difference| %.3g, relative %.3g (bound %g)\n",
           fast ? "fast" : "reference", n, worst_abs, worst_rel, tol);
    nb_net_free(&la);
    nb_net_free(&lb);
    nb_model_close(&ma);
    nb_model_close(&mb);
}

static int kv(const char *path, const char *key)
{
    nb_model m;
    nb_err e = {{0}};
    nb_kv_val v;
    if (nb_model_open(&m, path, &e))
        return fprintf(stderr, "test_families: %s\n", e.msg), 1;
    int r = nb_kv_get(m.kv, m.kv_size, key, NB_KV_STR, &v, &e);
    if (r == 1)
        fwrite(v.str, 1, v.len, stdout);
    else
        fprintf(stderr, "test_families: %s: %s\n", path, r ? e.msg : "no such key");
    nb_model_close(&m);
    return r == 1 ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "logits"))
        return logits(argc - 2, argv + 2);
    if (argc == 4 && !strcmp(argv[1], "kv"))
        return kv(argv[2], argv[3]);
    if (argc < 5 || strcmp(argv[1], "agree"))
        return fprintf(stderr, "usage: test_families logits MODEL.nib ref|fast IDS\n"
                               "       test_families agree A.nib B.nib N [TOL]\n"
                               "       test_families kv MODEL.nib KEY\n"),
               2;
    double tol = argc > 5 ? atof(argv[5]) : 1e-5;
    agree_on(argv[2], argv[3], atoi(argv[4]), tol, 0);
    agree_on(argv[2], argv[3], atoi(argv[4]), tol, 1);
    return tu_finish("test_families agree");
}
