/* nibble serve's request bodies (tools/serve_api.c, api_parse): the bytes
 * as the body of POST /v1/chat/completions (first byte even) or
 * /v1/completions (odd), against a tiny model served with the ChatML
 * template and two slots. A refusal is an error a client can read: a 4xx
 * status and a message, the field named when one is at fault; what is
 * accepted is a prompt of ids inside the vocabulary that fits the
 * context, and options in their ranges. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../tools/import/convert.h"
#include "../../tools/serve.h"
#include "fuzz_util.h"

static struct serve sv;

/* The tiny HF model of fz_tiny_hf, converted with tok512, in a session
 * with slots, as nibble serve holds it. */
static void start(void)
{
    char weights[512], config[512], out[512];
    size_t n;
    nb_err e;
    uint8_t *st = fz_tiny_hf(&n);
    fz_path(weights, sizeof weights, "model.safetensors");
    fz_path(config, sizeof config, "config.json");
    fz_path(out, sizeof out, "served.nib");
    if (!st || fz_write(weights, st, n) || fz_write(config, FZ_TINY_CONFIG, strlen(FZ_TINY_CONFIG)))
        abort();
    free(st);
    nb_convert_opts o = {.out_dtype = -1, .tokenizer_path = fz_tokenizer_path(), .name = "fuzz",
                         .quiet = 1};
    sv.o.run.run.n_seq = 2;
    sv.o.s.o = (nb_sampler_opts){.temp = 0.8f, .top_k = 40, .top_p = 0.95f, .min_p = 0.05f,
                                 .repeat_penalty = 1.0f, .repeat_last_n = 64};
    nb_slots_opts so = {.n_slots = 2, .queue = 4, .step_tokens = 16};
    pthread_mutex_init(&sv.lock, NULL);
    if (nb_import_hf(fz_dir(), out, &o, &e) ||
        nb_session_open_with(&sv.s, out, 32, &sv.o.run, &e) ||
        !(sv.t = nb_template_find("chatml")) || !(sv.slots = nb_slots_start(&sv.s, &so, &e))) {
        fprintf(stderr, "fuzz_request: cannot set up the server: %s\n", e.msg);
        abort();
    }
}

static void check_refusal(const struct api_err *err)
{
    if (err->status < 400 || err->status > 499 || !err->msg[0] || !err->type ||
        strlen(err->msg) >= sizeof err->msg) {
        fprintf(stderr, "a refusal without a client error: %d '%s'\n", err->status, err->msg);
        abort();
    }
}

static void check_request(const struct api_req *r)
{
    int vocab = nb_tok_vocab_size(sv.s.tok);
    if (!r->n_ids || r->n_ids > (size_t)sv.s.net.ctx)
        abort();
    for (size_t i = 0; i < r->n_ids; i++)
        if (r->ids[i] < 0 || r->ids[i] >= vocab)
            abort();
    for (int i = 0; i < NB_JOB_STOPS; i++)
        if (memchr(r->stop[i], 0, NB_STOP_MAX) == NULL)
            abort(); /* every stop string NUL-terminated inside its slot */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!sv.slots)
        start();
    if (!size)
        return 0;
    struct api_req r;
    struct api_err err;
    memset(&r, 0, sizeof r);
    memset(&err, 0, sizeof err);
    int kind = data[0] & 1 ? API_COMPLETION : API_CHAT;
    if (api_parse(&sv, kind, (const char *)data + 1, size - 1, &r, &err))
        check_refusal(&err);
    else
        check_request(&r);
    free(r.ids);
    return 0;
}
