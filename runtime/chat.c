#define _POSIX_C_SOURCE 200809L
#include "chat.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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
    int no_think;   /* nb_chat_opts */
    struct tm today;
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

/* A message as the template writes it: a reply as the ids the model
 * produced when there are any (the cache holds exactly those). */
static void put_body(struct enc *m, const nb_chat_msg *msg)
{
    if (msg->ids)
        put_ids(m, msg->ids, msg->n_ids);
    else
        put_msg(m, msg);
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

/* The end of a message in the <|role|> templates: EOS (the id) or a
 * marker written as text, then a newline. */
static void end_tag(struct enc *m, const char *end)
{
    if (end)
        put(m, end);
    else
        special(m, m->eos);
    put(m, "\n");
}

/* "<|system|>\n{system}{end}\n" when there is a system prompt, then per
 * message "<|user|>\n{user}{end}\n" or "<|assistant|>\n{answer}{end}\n",
 * then the generation prompt "<|assistant|>\n". */
static void role_tags(struct enc *m, const char *system, const nb_chat_msg *msgs, size_t n,
                      const char *end)
{
    if (has_system(system)) {
        put(m, "<|system|>\n");
        put(m, system);
        end_tag(m, end);
    }
    for (size_t i = 0; i < n; i++) {
        put(m, i % 2 ? "<|assistant|>\n" : "<|user|>\n");
        put_body(m, &msgs[i]);
        end_tag(m, end);
    }
    if (n % 2)
        put(m, "<|assistant|>\n");
}

/* Zephyr / TinyLlama-chat, as their Hugging Face chat_template renders:
 * one BOS, then role_tags with </s> (EOS) ending each message. */
static void zephyr(struct enc *m, const char *system, const nb_chat_msg *msgs, size_t n)
{
    special(m, m->bos);
    role_tags(m, system, msgs, n, NULL);
}

/* Phi-3 / Phi-3.5-instruct, as their chat_template renders: role_tags
 * with the text "<|end|>" (an added token) ending each message, and no
 * BOS: the template writes none, and transformers adds none to it. */
static void phi3(struct enc *m, const char *system, const nb_chat_msg *msgs, size_t n)
{
    role_tags(m, system, msgs, n, "<|end|>");
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
        else
            put_body(m, &msgs[i]);
        put(m, "<|im_end|>\n");
    }
    if (n % 2)
        put(m, "<|im_start|>assistant\n");
    if (n % 2 && think && m->no_think) /* Qwen3's enable_thinking=False */
        put(m, "<think>\n\n</think>\n\n");
}

static void chatml(struct enc *m, const char *system, const nb_chat_msg *msgs, size_t n)
{
    chatml_with(m, system, msgs, n, 0);
}

static void qwen3(struct enc *m, const char *system, const nb_chat_msg *msgs, size_t n)
{
    chatml_with(m, system, msgs, n, 1);
}

/* Text as Jinja's trim leaves it. */
static void put_trimmed(struct enc *m, const char *text)
{
    nb_chat_msg msg = {.text = text, .len = strlen(text)};
    const char *s;
    size_t len;
    trimmed(&msg, &s, &len);
    put_n(m, s, len);
}

/* A message trimmed; a reply the trim leaves as it is goes in as its ids. */
static void put_trimmed_body(struct enc *m, const nb_chat_msg *msg)
{
    const char *s;
    size_t len;
    trimmed(msg, &s, &len);
    if (msg->ids && len == msg->len)
        put_ids(m, msg->ids, msg->n_ids);
    else
        put_n(m, s, len);
}

/* Llama-3's messages, each "<|start_header_id|>{role}<|end_header_id|>\n\n"
 * "{content | trim}<|eot_id|>", then the generation prompt
 * "<|start_header_id|>assistant<|end_header_id|>\n\n". */
static void llama3_turns(struct enc *m, const nb_chat_msg *msgs, size_t n)
{
    static const char *const roles[] = {"user", "assistant"};
    for (size_t i = 0; i < n; i++) {
        put(m, "<|start_header_id|>");
        put(m, roles[i % 2]);
        put(m, "<|end_header_id|>\n\n");
        put_trimmed_body(m, &msgs[i]);
        put(m, "<|eot_id|>");
    }
    if (n % 2)
        put(m, "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

/* Llama-3-Instruct, as its chat_template renders: BOS (the id), a system
 * block when there is a system prompt (trimmed), then llama3_turns. */
static void llama3(struct enc *m, const char *system, const nb_chat_msg *msgs, size_t n)
{
    special(m, m->bos);
    if (has_system(system)) {
        put(m, "<|start_header_id|>system<|end_header_id|>\n\n");
        put_trimmed(m, system);
        put(m, "<|eot_id|>");
    }
    llama3_turns(m, msgs, n);
}

/* strftime_now("%d %b %Y") as Python renders it in the C locale. */
static void put_date_dmy(struct enc *m)
{
    static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    char s[64];
    snprintf(s, sizeof s, "%02d %s %04d", m->today.tm_mday % 100,
             months[(unsigned)m->today.tm_mon % 12], (m->today.tm_year + 1900) % 10000);
    put(m, s);
}

/* Llama-3.1 and later: the system block is always there and dated, the
 * system prompt (trimmed) at its end; then llama3_turns. today: the day's
 * date (Llama-3.2's strftime_now) instead of the template's fixed one. */
static void llama31_with(struct enc *m, const char *system, const nb_chat_msg *msgs, size_t n,
                         int today)
{
    special(m, m->bos);
    put(m, "<|start_header_id|>system<|end_header_id|>\n\n"
           "Cutting Knowledge Date: December 2023\nToday Date: ");
    if (today)
        put_date_dmy(m);
    else
        put(m, "26 Jul 2024");
    put(m, "\n\n");
    put_trimmed(m, system);
    put(m, "<|eot_id|>");
    llama3_turns(m, msgs, n);
}

static void llama31(struct enc *m, const char *system, const nb_chat_msg *msgs, size_t n)
{
    llama31_with(m, system, msgs, n, 0);
}

static void llama32(struct enc *m, const char *system, const nb_chat_msg *msgs, size_t n)
{
    llama31_with(m, system, msgs, n, 1);
}

/* Gemma 2 and 3 (their chat_template): BOS, then per message
 * "<start_of_turn>{user|model}\n{content | trim}<end_of_turn>\n", then
 * "<start_of_turn>model\n". Gemma has no system role: Gemma 3's template
 * puts the system prompt, untrimmed, and a blank line at the start of the
 * first user turn; nibble does the same for Gemma 2, whose template
 * refuses a system message. */
static void gemma(struct enc *m, const char *system, const nb_chat_msg *msgs, size_t n)
{
    special(m, m->bos);
    for (size_t i = 0; i < n; i++) {
        put(m, i % 2 ? "<start_of_turn>model\n" : "<start_of_turn>user\n");
        if (i == 0 && has_system(system)) {
            put(m, system);
            put(m, "\n\n");
        }
        put_trimmed_body(m, &msgs[i]);
        put(m, "<end_of_turn>\n");
    }
    if (n % 2)
        put(m, "<start_of_turn>model\n");
}

/* Mistral v7 (Mistral-Small-24B-Instruct-2501, tekken), as its
 * chat_template renders: BOS, "[SYSTEM_PROMPT]{system}[/SYSTEM_PROMPT]"
 * (the template's default when none is given), then "[INST]{user}[/INST]"
 * and each answer followed by EOS; no spaces, nothing stripped, no
 * generation prompt. The markers are text that the tokenizer's control
 * tokens encode. */
static void mistral_v7(struct enc *m, const char *system, const nb_chat_msg *msgs, size_t n)
{
    special(m, m->bos);
    if (has_system(system)) {
        put(m, "[SYSTEM_PROMPT]");
        put(m, system);
        put(m, "[/SYSTEM_PROMPT]");
    }
    for (size_t i = 0; i < n; i++) {
        if (i % 2) {
            put_body(m, &msgs[i]);
            special(m, m->eos);
            continue;
        }
        put(m, "[INST]");
        put_msg(m, &msgs[i]);
        put(m, "[/INST]");
    }
}

/* The default system prompts of ChatML templates, as their Jinja has them. */
#define QWEN25_SYSTEM "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
#define SMOLLM2_SYSTEM "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
/* Mistral-Small-24B-Instruct-2501's (tokenizer_config.json, Apache-2.0),
 * {date} being its strftime_now("%Y-%m-%d"). */
#define MISTRAL_V7_SYSTEM                                                                          \
    "You are Mistral Small 3, a Large Language Model (LLM) created by Mistral AI, a French "      \
    "startup headquartered in Paris.\nYour knowledge base was last updated on 2023-10-01. The "   \
    "current date is {date}.\n\nWhen you're not sure about some information, you say that you "  \
    "don't have the information and don't make up anything.\nIf the user's question is not "     \
    "clear, ambiguous, or does not provide enough context for you to accurately answer the "      \
    "question, you do not try to answer it right away and you rather ask the user to clarify "    \
    "their request (e.g. \"What are some good restaurants around me?\" => \"Where are you?\" or " \
    "\"When is the next flight to Tokyo\" => \"Where do you travel from?\")"

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
    {"mistral-v7", "Mistral v7 (Small-24B-2501): [SYSTEM_PROMPT] ... [INST] ... [/INST]",
     MISTRAL_V7_SYSTEM, {"[INST]", "[SYSTEM_PROMPT]", NULL}, 0, mistral_v7},
    {"zephyr", "Zephyr, TinyLlama-chat: <|system|> <|user|> <|assistant|>", "",
     {"<|user|>", "<|system|>", "<|assistant|>", NULL}, 0, zephyr},
    {"phi3", "Phi-3, Phi-3.5-instruct: <|system|> <|user|> <|assistant|> ... <|end|>", "",
     {"<|end|>", "<|user|>", "<|assistant|>", NULL}, 0, phi3},
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
    {"llama3.1", "Llama-3.1/3.3-Instruct: llama3 after a system block dated 26 Jul 2024", "",
     {"<|start_header_id|>", "<|eot_id|>", "<|eom_id|>", NULL}, 0, llama31},
    {"llama3.2", "Llama-3.2-Instruct: llama3 after a system block dated today", "",
     {"<|start_header_id|>", "<|eot_id|>", "<|eom_id|>", NULL}, 0, llama32},
    {"gemma", "Gemma 2, Gemma 3: <start_of_turn>user|model ... <end_of_turn>", "",
     {"<end_of_turn>", "<start_of_turn>", NULL}, 0, gemma},
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

/* The template's default system prompt, "{date}" written as the day's
 * YYYY-MM-DD (Mistral's strftime_now("%Y-%m-%d")); NULL when out of memory. */
static char *dated_default(const char *sys, const struct tm *t)
{
    const char *at = strstr(sys, "{date}");
    size_t n = strlen(sys) + 16;
    char *s = malloc(n);
    if (s && at)
        snprintf(s, n, "%.*s%04d-%02d-%02d%s", (int)(at - sys), sys, (t->tm_year + 1900) % 10000,
                 (t->tm_mon + 1) % 100, t->tm_mday % 100, at + 6);
    else if (s)
        memcpy(s, sys, n - 16 + 1);
    return s;
}

int nb_chat_encode_with(const nb_template *t, const nb_tokenizer *tok, int bos, int eos,
                        const char *system, const nb_chat_msg *msgs, size_t n,
                        const nb_chat_opts *o, nb_ids *out, nb_err *e)
{
    struct enc m = {.tok = tok, .bos = bos, .eos = eos, .out = out, .e = e,
                    .no_think = o && o->no_think};
    time_t now = time(NULL);
    if (o && o->today)
        m.today = *o->today;
    else if (!localtime_r(&now, &m.today))
        memset(&m.today, 0, sizeof m.today);
    char *dflt = system ? NULL : dated_default(t->system, &m.today);
    if (!system && !dflt)
        return nb_fail(e, "out of memory");
    t->build(&m, system ? system : dflt, msgs, n);
    seal(&m);
    free(m.buf);
    free(dflt);
    return m.failed ? -1 : 0;
}

int nb_chat_encode(const nb_template *t, const nb_tokenizer *tok, int bos, int eos,
                   const char *system, const nb_chat_msg *msgs, size_t n, nb_ids *out,
                   nb_err *e)
{
    return nb_chat_encode_with(t, tok, bos, eos, system, msgs, n, NULL, out, e);
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
