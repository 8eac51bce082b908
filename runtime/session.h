/* The engine's entry: a model opened for running. One session is one
 * mapped file, its tokenizer and one sequence's state (nb_net: the KV
 * cache and scratch for ctx positions). The generation loop (gen.h), the
 * chat state (convo.h) and perplexity (ppl.h) run on a session; a front
 * end (the CLI, a server) opens it, and only the front end prints. */
#ifndef NIBBLE_SESSION_H
#define NIBBLE_SESSION_H

#include "../models/net.h"
#include "../tokenizer/tokenizer.h"
#include "base/err.h"
#include "model.h"

typedef struct nb_session {
    nb_model model;
    nb_tokenizer *tok;
    nb_net net;
    int bos, eos; /* the ids a chat template writes: the file's, else the tokenizer's */
    int borrowed; /* model is the caller's (nb_session_open_on): not closed here */
} nb_session;

/* How a session runs its model: the fast path with these options
 * (threads, pinning, kernels: resolved by models/fast.c), or the
 * reference (the oracle: plain C, fp32 KV cache). Zeroed: the fast path
 * with its defaults. */
typedef struct nb_session_opts {
    nb_run_opts run;
    int reference;
} nb_session_opts;

/* Opens path with a KV cache of ctx positions (0: the model's maximum).
 * o NULL: the fast path with default options. Errors name the file. */
int nb_session_open_with(nb_session *s, const char *path, int ctx, const nb_session_opts *o,
                         nb_err *e);
int nb_session_open(nb_session *s, const char *path, int ctx, nb_err *e);
/* The same over a model the caller has mapped already and keeps (closing
 * it after nb_session_close): quantize --check scores the model it
 * quantized, whose file may be gone. name names it in errors. */
int nb_session_open_on(nb_session *s, const nb_model *m, const char *name, int ctx,
                       const nb_session_opts *o, nb_err *e);
void nb_session_close(nb_session *s);

/* 1 when id ends the model's text: one of the file's end ids (format
 * 1.1), or the tokenizer's EOS for a file without them. */
int nb_session_is_end(const nb_session *s, int id);

#endif
