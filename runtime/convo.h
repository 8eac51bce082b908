/* A conversation held in one session's KV cache: the turns so far, the
 * template that renders them (runtime/chat.c), and the trimming that
 * drops the oldest turns when the context fills. No terminal: the reply's
 * text goes to a callback, so the CLI's chat and a server slot (one
 * nb_convo each) share it.
 *
 * Each message renders the whole conversation and nb_gen runs only the
 * positions that changed, which is the new message when the history is
 * the same. Replies are kept as the token ids the model produced, so the
 * history matches the cache exactly. */
#ifndef NIBBLE_CONVO_H
#define NIBBLE_CONVO_H

#include <stddef.h>

#include "chat.h"
#include "gen.h"

/* One exchange: the user's message and the reply (ids as generated, or
 * only text when a stop string cut it, since its ids ran past the cut). */
typedef struct nb_turn {
    char *user;
    size_t user_len;
    char *reply;
    size_t reply_len;
    int32_t *ids;
    size_t n_ids;
} nb_turn;

typedef struct nb_convo_opts {
    const nb_template *t;
    int max_tokens; /* cap per reply (0: none); also the room a message keeps for it */
    int ignore_eos; /* past the end ids and the template's special tokens */
    int no_think;   /* Qwen3's enable_thinking=False (nb_chat_opts) */
    int (*should_stop)(void *ctx); /* as in nb_gen_opts: cancels a reply */
    void *stop_ctx;
} nb_convo_opts;

/* Where a reply's text goes as it comes, past the stop strings: 0 to go
 * on, -1 when it cannot be written (the reply stops: NB_STOP_WRITE). */
typedef int (*nb_convo_text)(void *ctx, const char *s, size_t n);

typedef struct nb_convo {
    nb_convo_opts o;
    nb_gen gen;
    char *system; /* NULL: the template's default */
    nb_turn *turns;
    size_t n_turns, cap;
    /* the last reply */
    nb_gen_stats st;
    int n_prompt; /* its prompt's tokens (after any trimming) */
    int dropped;  /* oldest turns dropped to fit its message and it */
    char *reply;  /* its text, as kept */
    size_t reply_len, reply_cap;
    /* while a reply streams */
    nb_detok d;
    nb_stopper stop;
    nb_convo_text text;
    void *text_ctx;
    int oom;
} nb_convo;

/* The session and sampler outlive the conversation. */
int nb_convo_init(nb_convo *c, nb_session *s, nb_sampler *smp, const nb_convo_opts *o,
                  nb_err *e);
void nb_convo_free(nb_convo *c);

/* Sets the system prompt (NULL: the template's) and starts over; -1 when
 * it is not UTF-8 (nothing changes). */
int nb_convo_set_system(nb_convo *c, const char *system, nb_err *e);
const char *nb_convo_system(const nb_convo *c); /* the one in use */

/* Forgets every turn (the system prompt stays). */
void nb_convo_forget(nb_convo *c);

/* Adds the user's message and renders the conversation into the next
 * prompt, dropping the oldest turns until the reply has room. 0; or,
 * without the message, NB_CONVO_TOO_LONG when it does not fit the
 * context even alone (checked first: the conversation keeps every turn),
 * -1 on another error (not UTF-8). */
#define NB_CONVO_TOO_LONG 1
int nb_convo_ask(nb_convo *c, const char *text, size_t len, nb_err *e);

/* Answers the message nb_convo_ask added, streaming its text to text(ctx)
 * (NULL: nowhere; c->reply has it all the same), and keeps it in the
 * conversation; c->st says how it stopped. 0, or -1 when the model gave
 * non-finite logits or memory ran out (the message is dropped). */
int nb_convo_reply(nb_convo *c, nb_convo_text text, void *ctx, nb_err *e);

#endif
