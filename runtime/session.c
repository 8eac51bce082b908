#define _POSIX_C_SOURCE 200809L
#include "session.h"

#include <stdio.h>
#include <string.h>

int nb_session_open(nb_session *s, const char *path, int ctx, nb_err *e)
{
    return nb_session_open_with(s, path, ctx, NULL, e);
}

static int init_net(nb_session *s, int ctx, const nb_session_opts *o, nb_err *e)
{
    if (o && o->reference)
        return nb_net_init(&s->net, &s->model, ctx, e);
    return nb_net_init_fast(&s->net, &s->model, ctx, o ? &o->run : NULL, e);
}

/* The tokenizer and the decoder over s->model. */
static int attach(nb_session *s, const char *path, int ctx, const nb_session_opts *o, nb_err *e)
{
    s->tok = nb_tok_load_bytes(s->model.vocab, s->model.vocab_size, e);
    if (!s->tok || init_net(s, ctx, o, e)) {
        /* the tokenizer's or the architecture's words: say which file */
        char why[sizeof e->msg];
        snprintf(why, sizeof why, "%s", e ? e->msg : "");
        nb_session_close(s);
        return nb_fail(e, "%s: %s", path, why);
    }
    /* Models may pad their vocabulary past the tokenizer's pieces. */
    if ((uint32_t)nb_tok_vocab_size(s->tok) > s->model.meta.vocab_size) {
        nb_session_close(s);
        return nb_fail(e, "%s: the embedded tokenizer has more pieces than the model's vocabulary",
                       path);
    }
    const struct nb_meta *m = &s->model.meta;
    s->bos = m->bos_id >= 0 ? m->bos_id : nb_tok_bos(s->tok);
    s->eos = m->eos_id >= 0 ? m->eos_id : nb_tok_eos(s->tok);
    return 0;
}

int nb_session_open_with(nb_session *s, const char *path, int ctx, const nb_session_opts *o,
                         nb_err *e)
{
    memset(s, 0, sizeof *s);
    return nb_model_open(&s->model, path, e) ? -1 : attach(s, path, ctx, o, e);
}

int nb_session_open_on(nb_session *s, const nb_model *m, const char *name, int ctx,
                       const nb_session_opts *o, nb_err *e)
{
    memset(s, 0, sizeof *s);
    s->model = *m;
    s->borrowed = 1;
    return attach(s, name, ctx, o, e);
}

int nb_session_is_end(const nb_session *s, int id)
{
    const struct nb_meta *m = &s->model.meta;
    if (!m->n_end_ids) /* a 1.0 file */
        return id == nb_tok_eos(s->tok);
    for (uint32_t i = 0; i < m->n_end_ids; i++)
        if (m->end_ids[i] == id)
            return 1;
    return 0;
}

void nb_session_close(nb_session *s)
{
    nb_net_free(&s->net);
    nb_tok_free(s->tok);
    if (!s->borrowed)
        nb_model_close(&s->model);
    memset(s, 0, sizeof *s);
}
