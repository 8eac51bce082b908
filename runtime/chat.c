#define _POSIX_C_SOURCE 200809L
#include "chat.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

void nb_ids_free(nb_ids *a)
{
    free(a->v);
    memset(a, 0, sizeof *a);
}

static int ids_add(nb_ids *a, const int32_t *v, size_t n)
{
    if (a->n + n > a->cap) {
        size_t cap = a->cap ? a->cap : 256;
        while (cap < a->n + n)
            cap *= 2;
        int32_t *p = realloc(a->v, cap * sizeof *p);
        if (!p)
            return -1;
        a->v = p;
        a->cap = cap;
    }
    if (n)
        memcpy(a->v + a->n, v, n * sizeof *v);
    a->n += n;
    return 0;
}

/* ---- the encoder the templates write through ---- */

/* Text accumulates in an open segment; a special id or a reply given as
 * ids seals it: the segment is encoded on its own (SentencePiece adds its
 * dummy-prefix space, as in every family's reference tokenization). */
struct enc {
    const nb_tokenizer *tok;
    int bos, eos;
    nb_ids *out;
    char *buf;
    size_t len, cap;
    nb_err *e;
    int failed;
};

static void put_n(struct enc *m, const char *s, size_t n)
{
    if (m->failed)
        return;
    if (m->len + n + 1 > m->cap) {
        size_t cap = m->cap ? m->cap : 1024;
        while (cap < m->len + n + 1)
            cap *= 2;
        char *p = realloc(m->buf, cap);
        if (!p) {
            m->failed = nb_fail(m->e, "out of memory");
            return;
        }
        m->buf = p;
        m->cap = cap;
    }
    memcpy(m->buf + m->len, s, n);
    m->len += n;
}

static void put(struct enc *m, const char *s)
{
    put_n(m, s, strlen(s));
}

static void seal(struct enc *m)
{
    if (m->failed || !m->len)
        return;
    int32_t *ids;
    size_t n;
    if (nb_tok_encode(m->tok, m->buf, m->len, 0, &ids, &n, m->e)) {
        m->failed = -1;
        return;
    }
    if (ids_add(m->out, ids, n))
        m->failed = nb_fail(m->e, "out of memory");
    free(ids);
    m->len = 0;
}

static void special(struct enc *m, int id)
{
    seal(m);
    int32_t v = id;
    if (!m->failed && id >= 0 && ids_add(m->out, &v, 1))
        m->failed = nb_fail(m->e, "out of memory");
}

static void put_ids(struct enc *m, const int32_t *v, size_t n)
{
    seal(m);
    if (!m->failed && ids_add(m->out, v, n))
        m->failed = nb_fail(m->e, "out of memory");
}

/* Meta's reference strips every message. */
static void put_stripped(struct enc *m, const nb_chat_msg *msg)
{
    const char *s = msg->text;
    size_t n = msg->len;
    while (n && isspace((unsigned char)*s))
        s++, n--;
    while (n && isspace((unsigned char)s[n - 1]))
        n--;
    put_n(m, s, n);
}

static void put_msg(struct enc *m, const nb_chat_msg *msg)
{
    put_n(m, msg->text, msg->len);
}

static int has_system(const char *system)
{
    return system && system[0];
}

/* ---- the templates ---- */

/* Llama-2-chat, as Meta's reference (llama/generation.py) builds it: per
 * exchange BOS "[INST] {user} [/INST] {answer} " EOS, the system prompt
 * inside the first [INST] between <<SYS>> markers, messages stripped. */
static void llama2(struct enc *m, const char *system, const nb_chat_msg *msgs, size_t n)
{
    for (size_t i = 0; i < n; i += 2) {
        special(m, m->bos);
        put(m, "[INST] ");
        if (i == 0 && has_system(system)) {
            put(m, "<<SYS>>\n");
            put(m, system);
            put(m, "\n<</SYS>>\n\n");
        }
        put_stripped(m, &msgs[i]);
        put(m, " [/INST]");
        if (i + 1 == n)
            break;
        if (msgs[i + 1].ids) {
            put_ids(m, msgs[i + 1].ids, msgs[i + 1].n_ids);
        } else {
            put(m, " ");
            put_stripped(m, &msgs[i + 1]);
            put(m, " ");
        }
        special(m, m->eos);
    }
}

/* Mistral-instruct (v0.1/v0.2, mistral_common's v1 tokenizer): BOS once,
 * then "[INST] {user} [/INST]" and each answer as its own segment followed
 * by EOS; a system prompt goes before the first user message. */
static void mistral(struct enc *m, const char *system, const nb_chat_msg *msgs, size_t n)
{
    special(m, m->bos);
    for (size_t i = 0; i < n; i += 2) {
        put(m, "[INST] ");
        if (i == 0 && has_system(system)) {
            put(m, system);
            put(m, "\n\n");
        }
        put_msg(m, &msgs[i]);
        put(m, " [/INST]");
        seal(m);
        if (i + 1 == n)
            break;
        if (msgs[i + 1].ids)
            put_ids(m, msgs[i + 1].ids, msgs[i + 1].n_ids);
        else
            put_msg(m, &msgs[i + 1]);
        special(m, m->eos);
    }
}

/* Zephyr / TinyLlama-chat, as their Hugging Face chat_template renders:
 * "<|system|>\n{system}</s>\n<|user|>\n{user}</s>\n<|assistant|>\n{answer}</s>\n",
 * each </s> being EOS, after one BOS. */
static void zephyr(struct enc *m, const char *system, const nb_chat_msg *msgs, size_t n)
{
    special(m, m->bos);
    if (has_system(system)) {
        put(m, "<|system|>\n");
        put(m, system);
        special(m, m->eos);
        put(m, "\n");
    }
    for (size_t i = 0; i < n; i++) {
        put(m, i % 2 ? "<|assistant|>\n" : "<|user|>\n");
        if (msgs[i].ids)
            put_ids(m, msgs[i].ids, msgs[i].n_ids);
        else
            put_msg(m, &msgs[i]);
        special(m, m->eos);
        put(m, "\n");
    }
    if (n % 2)
        put(m, "<|assistant|>\n");
}

/* Vicuna v1.1 (FastChat): "{system} USER: {user} ASSISTANT: {answer}</s>"
 * then "USER: ..." again, </s> being EOS, after one BOS. */
static void vicuna(struct enc *m, const char *system, const nb_chat_msg *msgs, size_t n)
{
    special(m, m->bos);
    put(m, system);
    put(m, " ");
    for (size_t i = 0; i < n; i += 2) {
        put(m, "USER: ");
        put_msg(m, &msgs[i]);
        put(m, " ASSISTANT:");
        if (i + 1 == n)
            break;
        if (msgs[i + 1].ids) {
            put_ids(m, msgs[i + 1].ids, msgs[i + 1].n_ids);
        } else {
            put(m, " ");
            put_msg(m, &msgs[i + 1]);
        }
        special(m, m->eos);
    }
}

/* Plain completion: the conversation is just its text after BOS. Each
 * user message is a segment; an answer continues the text before it. */
static void plain(struct enc *m, const char *system, const nb_chat_msg *msgs, size_t n)
{
    special(m, m->bos);
    if (has_system(system)) {
        put(m, system);
        seal(m);
    }
    for (size_t i = 0; i < n; i++) {
        if (msgs[i].ids) {
            put_ids(m, msgs[i].ids, msgs[i].n_ids);
            continue;
        }
        if (i % 2 == 0)
            seal(m);
        put_msg(m, &msgs[i]);
    }
}

struct nb_template {
    const char *name, *about, *system;
    const char *stops[4];
    int continues;
    void (*build)(struct enc *m, const char *system, const nb_chat_msg *msgs, size_t n);
};

static const nb_template templates[] = {
    {"llama2", "Llama-2-chat, CodeLlama-instruct: [INST] ... [/INST], system in <<SYS>>", "",
     {"[INST]", NULL}, 0, llama2},
    {"mistral", "Mistral-instruct: [INST] ... [/INST], system before the first message", "",
     {"[INST]", NULL}, 0, mistral},
    {"zephyr", "Zephyr, TinyLlama-chat: <|system|> <|user|> <|assistant|>", "",
     {"<|user|>", "<|system|>", "<|assistant|>", NULL}, 0, zephyr},
    {"vicuna", "Vicuna v1.1: USER: ... ASSISTANT: ...",
     "A chat between a curious user and an artificial intelligence assistant. The assistant "
     "gives helpful, detailed, and polite answers to the user's questions.",
     {"USER:", NULL}, 0, vicuna},
    {"plain", "plain completion: the conversation is just the text", "", {NULL}, 1, plain},
};
#define N_TEMPLATES (sizeof templates / sizeof *templates)

const nb_template *nb_template_find(const char *name)
{
    for (size_t i = 0; name && i < N_TEMPLATES; i++)
        if (!strcmp(name, templates[i].name))
            return &templates[i];
    return NULL;
}

const nb_template *nb_template_at(size_t i)
{
    return i < N_TEMPLATES ? &templates[i] : NULL;
}

const char *nb_template_name(const nb_template *t)
{
    return t->name;
}

const char *nb_template_about(const nb_template *t)
{
    return t->about;
}

const char *nb_template_default_system(const nb_template *t)
{
    return t->system;
}

const char *const *nb_template_stops(const nb_template *t)
{
    return t->stops;
}

int nb_template_continues(const nb_template *t)
{
    return t->continues;
}

int nb_chat_encode(const nb_template *t, const nb_tokenizer *tok, int bos, int eos,
                   const char *system, const nb_chat_msg *msgs, size_t n, nb_ids *out,
                   nb_err *e)
{
    struct enc m = {.tok = tok, .bos = bos, .eos = eos, .out = out, .e = e};
    t->build(&m, system ? system : t->system, msgs, n);
    seal(&m);
    free(m.buf);
    return m.failed ? -1 : 0;
}

/* ---- which template a model uses ---- */

static int has(const char *s, const char *part)
{
    return s && strstr(s, part);
}

/* Case-insensitive: model names are spelled every way. */
static int name_has(const char *name, const char *part)
{
    size_t n = strlen(part);
    for (const char *p = name; p && *p; p++) {
        size_t i = 0;
        while (i < n && p[i] && tolower((unsigned char)p[i]) == part[i])
            i++;
        if (i == n)
            return 1;
    }
    return 0;
}

static const char *guess_by_jinja(const char *j)
{
    if (has(j, "<<SYS>>"))
        return "llama2";
    if (has(j, "<|user|>") && has(j, "<|assistant|>"))
        return "zephyr";
    if (has(j, "[INST]"))
        return "mistral";
    if (has(j, "USER:") && has(j, "ASSISTANT:"))
        return "vicuna";
    return ""; /* a format of its own (ChatML, ...): plain completion */
}

static const char *guess_by_name(const char *name)
{
    int chat = name_has(name, "chat"), instruct = name_has(name, "instruct");
    if ((name_has(name, "llama-2") || name_has(name, "llama2")) && chat)
        return "llama2";
    if (name_has(name, "codellama") && instruct)
        return "llama2";
    if ((name_has(name, "mistral") || name_has(name, "mixtral")) && instruct)
        return "mistral";
    if (name_has(name, "zephyr") || (name_has(name, "tinyllama") && chat))
        return "zephyr";
    if (name_has(name, "vicuna"))
        return "vicuna";
    return "";
}

const char *nb_template_guess(const char *jinja, const char *name)
{
    if (jinja && jinja[0])
        return guess_by_jinja(jinja);
    return guess_by_name(name);
}

/* ---- stop strings ---- */

void nb_stopper_init(nb_stopper *s, const char *const *stops)
{
    memset(s, 0, sizeof *s);
    s->stops = stops;
}

/* Position of needle in hay[n] (text may hold NUL bytes), or n. */
static size_t find(const char *hay, size_t n, const char *needle)
{
    size_t k = strlen(needle);
    for (size_t i = 0; k && i + k <= n; i++)
        if (!memcmp(hay + i, needle, k))
            return i;
    return n;
}

/* Length of the longest tail of text[n] that starts some stop string. */
static size_t open_tail(const nb_stopper *s, const char *text, size_t n)
{
    size_t best = 0;
    for (const char *const *p = s->stops; *p; p++) {
        size_t k = strlen(*p);
        for (size_t t = k - 1 < n ? k - 1 : n; t > best; t--)
            if (!memcmp(text + n - t, *p, t)) {
                best = t;
                break;
            }
    }
    return best;
}

size_t nb_stopper_push(nb_stopper *s, const char *text, size_t n, char *out)
{
    if (s->hit)
        return 0;
    memcpy(out, s->held, s->n_held);
    memcpy(out + s->n_held, text, n);
    size_t len = s->n_held + n, cut = len;
    for (const char *const *p = s->stops; s->stops && *p; p++) {
        size_t at = find(out, len, *p);
        cut = at < cut ? at : cut;
    }
    s->n_held = 0;
    if (cut < len) {
        s->hit = 1;
        return cut;
    }
    s->n_held = s->stops ? open_tail(s, out, len) : 0;
    memcpy(s->held, out + len - s->n_held, s->n_held);
    return len - s->n_held;
}

size_t nb_stopper_flush(nb_stopper *s, char *out)
{
    size_t n = s->hit ? 0 : s->n_held;
    memcpy(out, s->held, n);
    s->n_held = 0;
    return n;
}
