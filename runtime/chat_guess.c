/* Which built-in chat template a model uses: from its Jinja chat_template
 * (the markers and phrases each family's template has), else from its
 * name. docs/chat.md lists the rules. */
#define _POSIX_C_SOURCE 200809L
#include "chat.h"

#include <ctype.h>
#include <string.h>

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
 * or the one whose default system prompt the Jinja writes. */
static const char *chatml_kind(const char *j)
{
    static const char *const with_default[] = {"qwen2.5", "smollm2"};
    char sys[256];
    if (has(j, "</think>") && has(j, "enable_thinking"))
        return "qwen3";
    if (!nb_jinja_default_system(j, sys, sizeof sys))
        return "chatml";
    for (size_t i = 0; i < sizeof with_default / sizeof *with_default; i++)
        if (!strcmp(nb_template_default_system(nb_template_find(with_default[i])), sys))
            return with_default[i];
    return "chatml"; /* another default: the converter says it is not kept */
}

/* Llama-3.1 and later write a dated system block; Llama-3.2's date is the
 * day's (strftime_now), Llama-3.1's and 3.3's a fixed one. */
static const char *llama3_kind(const char *j)
{
    if (!has(j, "Cutting Knowledge Date"))
        return "llama3";
    return has(j, "strftime_now") ? "llama3.2" : "llama3.1";
}

static const char *guess_by_jinja(const char *j)
{
    if (has(j, "<|im_start|>"))
        return chatml_kind(j);
    if (has(j, "<|start_header_id|>") && has(j, "<|eot_id|>"))
        return llama3_kind(j);
    if (has(j, "<start_of_turn>") && has(j, "<end_of_turn>"))
        return "gemma";
    if (has(j, "<<SYS>>"))
        return "llama2";
    if (has(j, "<|user|>") && has(j, "<|assistant|>")) /* Phi-3 ends turns with <|end|> */
        return has(j, "<|end|>") ? "phi3" : "zephyr";
    if (has(j, "[SYSTEM_PROMPT]") && has(j, "[INST]"))
        return "mistral-v7";
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
    if ((name_has(name, "mistral-small-24b") || name_has(name, "mistral-small-3")) && instruct)
        return "mistral-v7";
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
    if (name_has(name, "llama-3.2") && instruct)
        return "llama3.2";
    if ((name_has(name, "llama-3.1") || name_has(name, "llama-3.3")) && instruct)
        return "llama3.1";
    if ((name_has(name, "llama-3") || name_has(name, "llama3")) && instruct)
        return "llama3";
    if (name_has(name, "gemma-") && name_has(name, "-it"))
        return "gemma";
    if ((name_has(name, "phi-3") || name_has(name, "phi3")) && instruct)
        return "phi3";
    return "";
}

const char *nb_template_guess(const char *jinja, const char *name)
{
    if (jinja && jinja[0])
        return guess_by_jinja(jinja);
    return guess_by_name(name);
}

