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

/* Python's str.isspace (Jinja's trim is str.strip()): the ASCII blanks,
 * U+001C..U+001F, U+0085, U+00A0, U+1680, U+2000..U+200A, U+2028, U+2029,
 * U+202F, U+205F, U+3000. Returns the character's length, 0 if not one. */
static size_t space_at(const unsigned char *s, size_t n)
{
    if (n && ((*s >= 0x09 && *s <= 0x0D) || (*s >= 0x1C && *s <= 0x20)))
        return 1;
    if (n >= 2 && s[0] == 0xC2 && (s[1] == 0x85 || s[1] == 0xA0))
        return 2;
    if (n < 3)
        return 0;
    uint32_t c = (uint32_t)(s[0] & 0x0F) << 12 | (uint32_t)(s[1] & 0x3F) << 6 | (s[2] & 0x3Fu);
    int three = (s[0] & 0xF0) == 0xE0;
    return three && (c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
                     c == 0x202F || c == 0x205F || c == 0x3000)
               ? 3
               : 0;
}

/* The length of the white space ending s[n] (whole characters). */
static size_t space_before(const unsigned char *s, size_t n)
{
    size_t k = 0;
    for (;;) {
        size_t back = n - k >= 3 && space_at(s + n - k - 3, 3) == 3   ? 3
                      : n - k >= 2 && space_at(s + n - k - 2, 2) == 2 ? 2
                      : n - k >= 1 && space_at(s + n - k - 1, 1) == 1 ? 1
                                                                       : 0;
        if (!back)
            return k;
        k += back;
    }
}

/* The message as Jinja's trim leaves it. */
static void trimmed(const nb_chat_msg *msg, const char **s, size_t *n)
{
    const unsigned char *p = (const unsigned char *)msg->text;
    size_t len = msg->len, k;
    while ((k = space_at(p, len)))
        p += k, len -= k;
    len -= space_before(p, len);
    *s = (const char *)p;
    *n = len;
}

/* Qwen3's template drops an earlier reply's reasoning: the text after its
 * last "</think>", newlines at its start removed. NULL when there is none. */
static const char *after_think(const nb_chat_msg *msg, size_t *n)
{
    const char *end = NULL;
    for (const char *p = msg->text; p && (size_t)(p - msg->text) + 8 <= msg->len; p++)
        if (!memcmp(p, "</think>", 8))
            end = p + 8;
    if (!end)
        return NULL;
    *n = msg->len - (size_t)(end - msg->text);
    while (*n && *end == '\n')
        end++, (*n)--;
    return end;
}

/* ChatML, as Qwen2.5's, Qwen3's and SmolLM2's chat_template render it:
 * "<|im_start|>system\n{system}<|im_end|>\n" when there is a system prompt
 * (the template's default when none is given), then per message
 * "<|im_start|>{role}\n{content}<|im_end|>\n", then the generation prompt
 * "<|im_start|>assistant\n". The markers are text that the tokenizer's
 * added tokens turn into their ids, as encoding the rendered text does.
 * think: earlier replies lose their reasoning (Qwen3). */
static void chatml_with(struct enc *m, const char *system, const nb_chat_msg *msgs, size_t n,
                        int think)
{
    if (has_system(system)) {
        put(m, "<|im_start|>system\n");
        put(m, system);
        put(m, "<|im_end|>\n");
    }
    for (size_t i = 0; i < n; i++) {
        size_t len;
        const char *rest = i % 2 && think ? after_think(&msgs[i], &len) : NULL;
        put(m, i % 2 ? "<|im_start|>assistant\n" : "<|im_start|>user\n");
        if (rest)
            put_n(m, rest, len);
        else if (msgs[i].ids)
            put_ids(m, msgs[i].ids, msgs[i].n_ids);
        else
            put_msg(m, &msgs[i]);
        put(m, "<|im_end|>\n");
    }
    if (n % 2)
        put(m, "<|im_start|>assistant\n");
}

static void chatml(struct enc *m, const char *system, const nb_chat_msg *msgs, size_t n)
{
    chatml_with(m, system, msgs, n, 0);
}

static void qwen3(struct enc *m, const char *system, const nb_chat_msg *msgs, size_t n)
{
    chatml_with(m, system, msgs, n, 1);
}

/* Llama-3-Instruct, as its chat_template renders: BOS, then per message
 * (the system prompt first) "<|start_header_id|>{role}<|end_header_id|>\n\n"
 * "{content | trim}<|eot_id|>", then the generation prompt
 * "<|start_header_id|>assistant<|end_header_id|>\n\n". */
static void llama3(struct enc *m, const char *system, const nb_chat_msg *msgs, size_t n)
{
    static const char *const roles[] = {"user", "assistant"};
    special(m, m->bos);
    if (has_system(system)) {
        nb_chat_msg sys = {.text = system, .len = strlen(system)};
        const char *s;
        size_t len;
        trimmed(&sys, &s, &len);
        put(m, "<|start_header_id|>system<|end_header_id|>\n\n");
        put_n(m, s, len);
        put(m, "<|eot_id|>");
    }
    for (size_t i = 0; i < n; i++) {
        const char *s;
        size_t len;
        trimmed(&msgs[i], &s, &len);
        put(m, "<|start_header_id|>");
        put(m, roles[i % 2]);
        put(m, "<|end_header_id|>\n\n");
        if (msgs[i].ids && len == msgs[i].len) /* a reply the template leaves as it is */
            put_ids(m, msgs[i].ids, msgs[i].n_ids);
        else
            put_n(m, s, len);
        put(m, "<|eot_id|>");
    }
    if (n % 2)
        put(m, "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

/* The default system prompts of ChatML templates, as their Jinja has them. */
#define QWEN25_SYSTEM "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
#define SMOLLM2_SYSTEM "You are a helpful AI assistant named SmolLM, trained by Hugging Face"

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
    {"chatml", "ChatML: <|im_start|>role ... <|im_end|> (Qwen, SmolLM2, ...), no default system",
     "", {"<|im_start|>", "<|im_end|>", NULL}, 0, chatml},
    {"qwen2.5", "ChatML with Qwen2.5's default system prompt", QWEN25_SYSTEM,
     {"<|im_start|>", "<|im_end|>", NULL}, 0, chatml},
    {"qwen3", "ChatML as Qwen3 renders it: earlier replies lose their <think> part", "",
     {"<|im_start|>", "<|im_end|>", NULL}, 0, qwen3},
    {"smollm2", "ChatML with SmolLM2's default system prompt", SMOLLM2_SYSTEM,
     {"<|im_start|>", "<|im_end|>", NULL}, 0, chatml},
    {"llama3", "Llama-3-Instruct: <|start_header_id|>role<|end_header_id|> ... <|eot_id|>", "",
     {"<|start_header_id|>", "<|eot_id|>", NULL}, 0, llama3},
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

/* The system prompt a ChatML Jinja template renders when the conversation
 * has none: a string literal that goes on after "<|im_start|>system\n" to
 * "<|im_end|>" (Qwen2.5's else branch, SmolLM2's first message), the
 * first there is. Its escapes are undone into out; 0 when there is none
 * or it does not fit. */
int nb_jinja_default_system(const char *jinja, char *out, size_t cap)
{
    static const char head[] = "<|im_start|>system";
    for (const char *p = jinja ? strstr(jinja, head) : NULL; p; p = strstr(p + 1, head)) {
        const char *open = p, *q = p + sizeof head - 1;
        while (open > jinja && open[-1] != '\'' && open[-1] != '"')
            open--;
        q += *q == '\n' ? 1 : !strncmp(q, "\\n", 2) ? 2 : 0;
        const char *end = strstr(q, "<|im_end|>");
        if (open == jinja || q == p + sizeof head - 1 || !end || end == q)
            continue;
        size_t n = 0;
        /* the literal's own quote ends it */
        for (; q < end && *q != open[-1] && n + 1 < cap; q++) {
            int esc = *q == '\\';
            q += esc;
            out[n++] = esc && *q == 'n' ? '\n' : *q;
        }
        if (q == end && cap) {
            out[n] = 0;
            return 1;
        }
    }
    return 0;
}

/* Which ChatML template: Qwen3's (reasoning dropped from earlier replies),
 * or by the default system prompt. */
static const char *chatml_kind(const char *j)
{
    char sys[256];
    if (has(j, "</think>") && has(j, "enable_thinking"))
        return "qwen3";
    if (!nb_jinja_default_system(j, sys, sizeof sys))
        return "chatml";
    for (size_t i = 0; i < N_TEMPLATES; i++)
        if (templates[i].build == chatml && !strcmp(templates[i].system, sys))
            return templates[i].name;
    return "chatml"; /* another default: the converter says it is not kept */
}

static const char *guess_by_jinja(const char *j)
{
    if (has(j, "<|im_start|>"))
        return chatml_kind(j);
    if (has(j, "<|start_header_id|>") && has(j, "<|eot_id|>"))
        return "llama3";
    if (has(j, "<<SYS>>"))
        return "llama2";
    if (has(j, "<|user|>") && has(j, "<|assistant|>"))
        return "zephyr";
    if (has(j, "[INST]"))
        return "mistral";
    if (has(j, "USER:") && has(j, "ASSISTANT:"))
        return "vicuna";
    return ""; /* a format of its own: plain completion */
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
    if (name_has(name, "qwen3"))
        return "qwen3";
    if (name_has(name, "qwen2.5") && instruct)
        return "qwen2.5";
    if (name_has(name, "smollm2") && instruct)
        return "smollm2";
    if ((name_has(name, "llama-3") || name_has(name, "llama3")) && instruct)
        return "llama3";
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
