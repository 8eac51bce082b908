/* Chat templates: how a conversation becomes token ids for each model
 * family, and the strings that end a reply. docs/chat.md spells every
 * template out.
 *
 * A conversation is a list of messages that alternate user, assistant,
 * user, ... starting with a user message. When the list ends with a user
 * message, the template's generation prompt follows (the assistant header
 * the model continues from). BOS and EOS are always the model's token ids,
 * never text the tokenizer could split; the text between them is encoded
 * one segment at a time, as the families' reference code does. The
 * templates of BPE models (ChatML, Llama-3, Gemma, Phi-3, Mistral v7)
 * write their markers as text, which the tokenizer's added tokens encode
 * as their ids, exactly as the models' Jinja templates render and
 * transformers encodes. */
#ifndef NIBBLE_CHAT_H
#define NIBBLE_CHAT_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "../tokenizer/tokenizer.h"
#include "base/err.h"

typedef struct nb_template nb_template;

/* An assistant message carries the ids the model produced when there
 * are any: the history then holds exactly what the cache saw, and a new
 * turn prefills only its own tokens. Without ids, text is encoded. */
typedef struct nb_chat_msg {
    const char *text;
    size_t len;
    const int32_t *ids;
    size_t n_ids;
} nb_chat_msg;

/* A growing array of token ids. */
typedef struct nb_ids {
    int32_t *v;
    size_t n, cap;
} nb_ids;

void nb_ids_free(nb_ids *a);

/* Templates by name ("llama2", "mistral", "mistral-v7", "zephyr", "vicuna",
 * "chatml", "qwen2.5", "qwen3", "smollm2", "llama3", "llama3.1",
 * "llama3.2", "gemma", "phi3", "plain"): NULL when unknown.
 * nb_template_at lists them (NULL past the end). */
const nb_template *nb_template_find(const char *name);
const nb_template *nb_template_at(size_t i);
const char *nb_template_name(const nb_template *t);
const char *nb_template_about(const nb_template *t);
/* The system prompt used when none is given ("" for most; mistral-v7's
 * holds "{date}", written as the day's date YYYY-MM-DD when used). */
const char *nb_template_default_system(const nb_template *t);
/* The strings that end a reply when the model writes them as text,
 * NULL-terminated (empty for plain). */
const char *const *nb_template_stops(const nb_template *t);
/* 1 when the reply continues the user's text (plain completion), so its
 * leading space is kept; 0 when it starts a new message. */
int nb_template_continues(const nb_template *t);

/* The ids of a conversation, appended to out. system NULL means the
 * template's default, "" none. Fails on invalid UTF-8 (the message names
 * the byte). */
int nb_chat_encode(const nb_template *t, const nb_tokenizer *tok, int bos, int eos,
                   const char *system, const nb_chat_msg *msgs, size_t n, nb_ids *out,
                   nb_err *e);

/* What a template's Jinja takes besides the messages. */
typedef struct nb_chat_opts {
    int no_think; /* Qwen3's enable_thinking=False: an empty <think> block ends the prompt */
    /* the day the dated templates write (llama3.2, mistral-v7's default
     * system prompt), as Jinja's strftime_now; NULL: the local date now */
    const struct tm *today;
} nb_chat_opts;

/* nb_chat_encode with options (NULL: none). */
int nb_chat_encode_with(const nb_template *t, const nb_tokenizer *tok, int bos, int eos,
                        const char *system, const nb_chat_msg *msgs, size_t n,
                        const nb_chat_opts *o, nb_ids *out, nb_err *e);

/* Which of our templates a model uses, from its Jinja chat_template text
 * (may be NULL) or else its name: a template name, or "" when neither
 * says (a model for plain completion, or a chat format we do not know). */
const char *nb_template_guess(const char *jinja, const char *name);

/* The system prompt a ChatML Jinja template puts in a conversation that
 * has none (Qwen2.5's "You are Qwen, ..."), unescaped into out; 0 when it
 * has none (or it does not fit). */
int nb_jinja_default_system(const char *jinja, char *out, size_t cap);

/* Holds back streamed text that could be the start of a stop string, so
 * a stop string split across tokens is never printed. */
#define NB_STOP_MAX 32 /* longest stop string, in bytes */

typedef struct nb_stopper {
    const char *const *stops;
    char held[NB_STOP_MAX];
    size_t n_held;
    int hit; /* a stop string was found: nothing more comes out */
} nb_stopper;

void nb_stopper_init(nb_stopper *s, const char *const *stops);

/* Feeds n bytes; writes the text that is safe to show to out (room for
 * n + NB_STOP_MAX bytes) and returns its length. Once a stop string is
 * complete, the text before it comes out and hit is set. */
size_t nb_stopper_push(nb_stopper *s, const char *text, size_t n, char *out);

/* End of the reply: releases what was held (it never became a stop). */
size_t nb_stopper_flush(nb_stopper *s, char *out);

#endif
