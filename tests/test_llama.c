/* The reference forward pass on real weights (stories260K):
 * - greedy decoding from BOS reproduces the tokens of an independent
 *   float64 numpy implementation (tests/ref/llama_ref.py), from both the
 *   llama2.c form (interleaved RoPE pairs) and the Hugging Face form
 *   (rotate-half over permuted rows);
 * - the two forms give the same logits along a whole sequence.
 * usage: test_llama LLAMA2C.nib HF.nib GOLDEN_IDS [N] */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../models/net.h"
#include "../runtime/sampler.h"
#include "testutil.h"

static int read_golden(const char *path, int *ids, int cap)
{
    FILE *f = fopen(path, "r");
    char line[128];
    int n = 0;
    while (f && n < cap && fgets(line, sizeof line, f))
        if (line[0] != '#')
            ids[n++] = atoi(line);
    if (f)
        fclose(f);
    return n;
}

static int open_llama(const char *path, nb_model *m, nb_net *L)
{
    nb_err e = {{0}};
    if (nb_model_open(m, path, &e) || nb_net_init(L, m, 0, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return -1;
    }
    return 0;
}

static void check_greedy(const char *path, const int *golden, int n)
{
    nb_model m;
    nb_net L;
    if (open_llama(path, &m, &L))
        return tu_failures++, (void)0;
    int tok = m.meta.bos_id, first_diff = -1;
    for (int pos = 0; pos < n; pos++) {
        tok = nb_argmax(nb_net_forward(&L, tok, pos), (int)m.meta.vocab_size);
        if (tok != golden[pos] && first_diff < 0)
            first_diff = pos;
        tok = golden[pos]; /* stay on the golden path to report all steps */
    }
    CHECK(first_diff < 0, "%s: greedy token %d differs from the numpy reference", path,
          first_diff);
    printf("%s: %d greedy tokens match the reference\n", path, n);
    nb_net_free(&L);
    nb_model_close(&m);
}

static void check_forms_agree(const char *a, const char *b, const int *ids, int n)
{
    nb_model ma, mb;
    nb_net la, lb;
    if (open_llama(a, &ma, &la) || open_llama(b, &mb, &lb))
        return tu_failures++, (void)0;
    float worst = 0;
    int tok = ma.meta.bos_id;
    for (int pos = 0; pos < n; pos++) {
        const float *x = nb_net_forward(&la, tok, pos), *y = nb_net_forward(&lb, tok, pos);
        for (uint32_t i = 0; i < ma.meta.vocab_size; i++)
            worst = fmaxf(worst, fabsf(x[i] - y[i]));
        tok = ids[pos];
    }
    CHECK(worst < 1e-4f, "llama2.c and Hugging Face forms differ by %g", worst);
    printf("llama2.c vs Hugging Face form: max |logit difference| %.3g over %d positions\n",
           worst, n);
    nb_net_free(&la);
    nb_net_free(&lb);
    nb_model_close(&ma);
    nb_model_close(&mb);
}

int main(int argc, char **argv)
{
    if (argc < 4)
        return fprintf(stderr, "usage: test_llama LLAMA2C.nib HF.nib GOLDEN [N]\n"), 2;
    int golden[1024];
    int n = read_golden(argv[3], golden, 1024);
    if (argc > 4 && atoi(argv[4]) < n)
        n = atoi(argv[4]);
    CHECK(n >= 100, "only %d golden tokens in %s", n, argv[3]);
    check_greedy(argv[1], golden, n);
    check_greedy(argv[2], golden, n);
    check_forms_agree(argv[1], argv[2], golden, n);
    return tu_finish("test_llama");
}
