/* Chat templates and stop strings: test_chat TOKENIZER.model [-v]
 * (and test_chat renderings FILE TOKENIZER...: the built-in templates
 * against the models' Jinja renderings in tests/chat/renderings.jsonl)
 * Each template's two-turn conversation is checked against the template
 * spelled by hand here (BOS/EOS as ids, each text segment encoded on its
 * own); replies given as ids land verbatim, with the shorter conversation
 * a prefix of the longer (so a turn prefills only its new tokens); stop
 * strings are checked on a fake token stream. -v prints the llama2
 * example's ids (docs/chat.md quotes them). */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "../runtime/chat.h"
#include "testutil.h"

static nb_tokenizer *tok;
static int bos, eos;

#define B "\x01" /* BOS in a spelled-out template */
#define E "\x02" /* EOS */

/* The ids of a template spelled by hand: NULL-terminated parts, each BOS,
 * EOS or a text segment encoded alone. */
static nb_ids spell(const char *const *parts)
{
    nb_ids out = {0};
    for (; *parts; parts++) {
        int32_t *ids, id = **parts == 1 ? bos : eos;
        size_t n;
        nb_err e;
        if (**parts == 1 || **parts == 2) {
            ids = &id, n = 1;
        } else if (nb_tok_encode(tok, *parts, strlen(*parts), 0, &ids, &n, &e)) {
            CHECK(0, "encode '%s': %s", *parts, e.msg);
            continue;
        }
        out.v = realloc(out.v, (out.n + n) * sizeof *out.v);
        memcpy(out.v + out.n, ids, n * sizeof *ids);
        out.n += n;
        if (ids != &id)
            free(ids);
    }
    return out;
}

static nb_ids encode(const char *name, const char *system, const nb_chat_msg *msgs, size_t n)
{
    nb_ids out = {0};
    nb_err e;
    const nb_template *t = nb_template_find(name);
    CHECK(t, "no template %s", name);
    if (t && nb_chat_encode(t, tok, bos, eos, system, msgs, n, &out, &e))
        CHECK(0, "%s: %s", name, e.msg);
    return out;
}

static nb_chat_msg msg(const char *text)
{
    return (nb_chat_msg){.text = text, .len = strlen(text)};
}

static int same(const nb_ids *a, const nb_ids *b)
{
    return a->n == b->n && (!a->n || !memcmp(a->v, b->v, a->n * sizeof *a->v));
}

static void print_ids(const char *what, const nb_ids *a)
{
    fprintf(stderr, "%s (%zu):", what, a->n);
    for (size_t i = 0; i < a->n; i++)
        fprintf(stderr, " %d", a->v[i]);
    fputc('\n', stderr);
}

struct spelled {
    const char *name;
    const char *parts[12];
};

/* system "You are terse.", user "Hi there", assistant "Hello!", user
 * "How are you?", then the generation prompt. */
static const struct spelled two_turns[] = {
    {"llama2",
     {B, "[INST] <<SYS>>\nYou are terse.\n<</SYS>>\n\nHi there [/INST] Hello! ", E, B,
      "[INST] How are you? [/INST]", NULL}},
    {"mistral",
     {B, "[INST] You are terse.\n\nHi there [/INST]", "Hello!", E, "[INST] How are you? [/INST]",
      NULL}},
    {"zephyr",
     {B, "<|system|>\nYou are terse.", E, "\n<|user|>\nHi there", E, "\n<|assistant|>\nHello!", E,
      "\n<|user|>\nHow are you?", E, "\n<|assistant|>\n", NULL}},
    {"vicuna", {B, "You are terse. USER: Hi there ASSISTANT: Hello!", E,
                "USER: How are you? ASSISTANT:", NULL}},
    {"plain", {B, "You are terse.", "Hi thereHello!", "How are you?", NULL}},
};

static void check_spelling(int verbose)
{
    nb_chat_msg m[3] = {msg("Hi there"), msg("Hello!"), msg("How are you?")};
    for (size_t i = 0; i < sizeof two_turns / sizeof *two_turns; i++) {
        nb_ids got = encode(two_turns[i].name, "You are terse.", m, 3);
        nb_ids want = spell(two_turns[i].parts);
        CHECK(same(&got, &want), "%s: the ids differ from the template spelled by hand",
              two_turns[i].name);
        if (!same(&got, &want) || (verbose && i == 0)) {
            print_ids("got ", &got);
            print_ids("want", &want);
        }
        nb_ids_free(&got);
        nb_ids_free(&want);
    }
}

/* No system prompt: vicuna brings its own, the others have none. */
static void check_defaults(void)
{
    nb_chat_msg m = msg("  Hi there ");
    nb_ids got = encode("vicuna", NULL, &m, 1);
    nb_ids want = spell((const char *const[]){
        B, "A chat between a curious user and an artificial intelligence assistant. The "
           "assistant gives helpful, detailed, and polite answers to the user's questions. "
           "USER:   Hi there  ASSISTANT:", NULL});
    CHECK(same(&got, &want), "vicuna's default system prompt");
    nb_ids_free(&got), nb_ids_free(&want);
    got = encode("llama2", "", &m, 1); /* Meta's reference strips messages */
    want = spell((const char *const[]){B, "[INST] Hi there [/INST]", NULL});
    CHECK(same(&got, &want), "llama2 without a system prompt");
    nb_ids_free(&got), nb_ids_free(&want);
    got = encode("zephyr", NULL, &m, 1);
    want = spell((const char *const[]){B, "<|user|>\n  Hi there ", E, "\n<|assistant|>\n", NULL});
    CHECK(same(&got, &want), "zephyr without a system prompt");
    nb_ids_free(&got), nb_ids_free(&want);
}

/* A reply kept as ids: the prompt that asked for it, then the ids, start
 * the next turn's prompt. */
static void check_prefix(void)
{
    static const int32_t reply[] = {300, 301, 302};
    for (size_t i = 0; nb_template_at(i); i++) {
        const char *name = nb_template_name(nb_template_at(i));
        nb_chat_msg m[3] = {msg("Hi there"), {.ids = reply, .n_ids = 3}, msg("How are you?")};
        nb_ids first = encode(name, "Be kind.", m, 1), next = encode(name, "Be kind.", m, 3);
        int ok = next.n > first.n + 3 && !memcmp(next.v, first.v, first.n * sizeof *first.v) &&
                 !memcmp(next.v + first.n, reply, sizeof reply);
        CHECK(ok, "%s: turn 1's prompt and reply are not a prefix of turn 2's", name);
        nb_ids_free(&first), nb_ids_free(&next);
    }
}

static void check_bad_input(void)
{
    nb_chat_msg m = msg("abc\xff");
    nb_ids out = {0};
    nb_err e = {{0}};
    CHECK(nb_chat_encode(nb_template_find("llama2"), tok, bos, eos, NULL, &m, 1, &out, &e) == -1,
          "invalid UTF-8 accepted");
    CHECK(strstr(e.msg, "UTF-8") != NULL, "message: %s", e.msg);
    nb_ids_free(&out);
    CHECK(nb_template_find("gemma4") == NULL, "an unknown template was found");
}

/* Feeds pieces through a stopper; returns what it let out. */
static const char *stream(const char *const *stops, const char *const *pieces, int *hit)
{
    static char all[512];
    char out[128];
    size_t len = 0;
    nb_stopper s;
    nb_stopper_init(&s, stops);
    for (; *pieces; pieces++) {
        size_t n = nb_stopper_push(&s, *pieces, strlen(*pieces), out);
        memcpy(all + len, out, n);
        len += n;
    }
    len += nb_stopper_flush(&s, all + len);
    all[len] = 0;
    *hit = s.hit;
    return all;
}

#define PIECES(...) ((const char *const[]){__VA_ARGS__, NULL})

static void expect_stream(const char *const *stops, const char *const *pieces, const char *want,
                          int want_hit)
{
    int hit;
    const char *got = stream(stops, pieces, &hit);
    CHECK(!strcmp(got, want) && hit == want_hit, "got '%s' (hit %d), want '%s' (hit %d)", got,
          hit, want, want_hit);
}

static void check_stops(void)
{
    const char *const *vicuna = nb_template_stops(nb_template_find("vicuna"));
    const char *const *zephyr = nb_template_stops(nb_template_find("zephyr"));
    const char *const *llama2 = nb_template_stops(nb_template_find("llama2"));
    const char *const *plain = nb_template_stops(nb_template_find("plain"));
    expect_stream(vicuna, PIECES("Hello", " US", "ER", ":", " more"), "Hello ", 1);
    expect_stream(vicuna, PIECES("USE", "ful"), "USEful", 0);
    expect_stream(vicuna, PIECES("a U", "S", "E"), "a USE", 0); /* held, then flushed */
    expect_stream(llama2, PIECES("abc[INST]def"), "abc", 1);
    expect_stream(llama2, PIECES("x [", "[", "IN", "ST] y"), "x [", 1);
    expect_stream(zephyr, PIECES("Sure.\n<|", "user", "|>\nNext"), "Sure.\n", 1);
    expect_stream(zephyr, PIECES("<|ass", "istant|>"), "", 1);
    expect_stream(zephyr, PIECES("caf\xc3\xa9 <|", "im_end|>"), "caf\xc3\xa9 <|im_end|>", 0);
    expect_stream(plain, PIECES("USER: [INST] <|user|>"), "USER: [INST] <|user|>", 0);
    /* the new families end a reply at their end-of-turn marker */
    static const struct {
        const char *name, *marker;
    } ends[] = {{"gemma", "<end_of_turn>"},  {"phi3", "<|end|>"},
                {"mistral-v7", "[INST]"},    {"llama3.1", "<|eot_id|>"},
                {"llama3.2", "<|eom_id|>"}};
    for (size_t i = 0; i < sizeof ends / sizeof *ends; i++) {
        const char *const *stops = nb_template_stops(nb_template_find(ends[i].name));
        size_t k = strlen(ends[i].marker) / 2;
        char head[32], tail[32];
        snprintf(head, sizeof head, "Done.%.*s", (int)k, ends[i].marker);
        snprintf(tail, sizeof tail, "%s more", ends[i].marker + k);
        expect_stream(stops, PIECES(head, tail), "Done.", 1);
    }
}

/* The held text never exceeds a stop string: each push lets out all but
 * a possible start of one. */
static void check_hold_back(void)
{
    nb_stopper s;
    char out[64];
    nb_stopper_init(&s, nb_template_stops(nb_template_find("llama2")));
    CHECK(nb_stopper_push(&s, "text [IN", 8, out) == 5 && s.n_held == 3, "holds '[IN'");
    CHECK(nb_stopper_push(&s, "K", 1, out) == 4 && !memcmp(out, "[INK", 4), "releases '[INK'");
}

static void check_guess(void)
{
    static const struct {
        const char *jinja, *name, *want;
    } cases[] = {
        /* chat_template texts, as tokenizer_config.json holds them (excerpts) */
        {"{% if messages[0]['role'] == 'system' %}{% set system_message = '<<SYS>>\\n' + "
         "messages[0]['content'] | trim + '\\n<</SYS>>\\n\\n' %}...{{ bos_token + '[INST] ' + "
         "content | trim + ' [/INST]' }}",
         "x", "llama2"},
        {"{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}{{ "
         "'[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' "
         "%}{{ message['content'] + eos_token}}{% endif %}{% endfor %}",
         "Llama-2-7b-chat-hf", "mistral"},
        {"{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\n' + "
         "message['content'] + eos_token }}\n{% elif message['role'] == 'assistant' %}\n{{ "
         "'<|assistant|>\n'  + message['content'] + eos_token }}\n{% endif %}{% endfor %}",
         "", "zephyr"},
        /* ChatML: the converter falls back to plain when the tokenizer
         * has no <|im_start|> token (TinyLlama-Chat v0.4's SentencePiece) */
        {"{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + "
         "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}",
         "TinyLlama-1.1B-Chat-v0.4", "chatml"},
        {"{%- else %}\n {%- if messages[0]['role'] == 'system' %}\n {{- '<|im_start|>system\\n' "
         "+ messages[0]['content'] + '<|im_end|>\\n' }}\n {%- else %}\n {{- "
         "'<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful "
         "assistant.<|im_end|>\\n' }}\n {%- endif %}\n{%- endif %}",
         "", "qwen2.5"},
        {"{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
         "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by "
         "Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + "
         "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}",
         "", "smollm2"},
        {"{{- '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}", "",
         "chatml"},
        {"{%- set content = message.content.split('</think>')[-1] %}{{- '<|im_start|>' }}"
         "{%- if enable_thinking is defined and enable_thinking is false %}",
         "", "qwen3"},
        {"{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ "
         "message['content'] | trim + '<|eot_id|>' %}",
         "", "llama3"},
        {"{{ system }} {% for m in messages %}{% if m.role == 'user' %}USER: {{ m.content }} "
         "{% else %}ASSISTANT: {{ m.content }}</s>{% endif %}{% endfor %}",
         "", "vicuna"},
        /* fingerprints of the real templates (Gemma's and Llama-3.1's may not
         * be vendored; tests/chat/render_templates.py reads them whole) */
        {"{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role "
         "not supported') }}{% endif %}...{{ '<start_of_turn>' + role + '\n' + message['content'] "
         "| trim + '<end_of_turn>\n' }}{% endfor %}",
         "gemma-2-2b-it", "gemma"},
        {"{{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else \"\") }}"
         "\n    {%- if message['content'] is string -%}\n        {{ message['content'] | trim }}"
         "...{{ '<end_of_turn>\n' }}",
         "", "gemma"},
        /* Phi-3.5-mini-instruct's, whole (MIT) */
        {"{% for message in messages %}{% if message['role'] == 'system' and message['content'] %}"
         "{{'<|system|>\n' + message['content'] + '<|end|>\n'}}{% elif message['role'] == 'user' %}"
         "{{'<|user|>\n' + message['content'] + '<|end|>\n'}}{% elif message['role'] == "
         "'assistant' %}{{'<|assistant|>\n' + message['content'] + '<|end|>\n'}}{% endif %}"
         "{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}"
         "{{ eos_token }}{% endif %}",
         "", "phi3"},
        {"{%- set today = strftime_now(\"%Y-%m-%d\") %}...{{- '[SYSTEM_PROMPT]' + system_message + "
         "'[/SYSTEM_PROMPT]' }}\n\n{%- for message in loop_messages %}\n    {%- if "
         "message['role'] == 'user' %}\n        {{- '[INST]' + message['content'] + '[/INST]' }}",
         "Mistral-7B-Instruct-v0.3", "mistral-v7"},
        {"{%- if not date_string is defined %}\n    {%- set date_string = \"26 Jul 2024\" %}\n"
         "...{{- \"<|start_header_id|>system<|end_header_id|>\\n\\n\" }}...{{- \"Cutting "
         "Knowledge Date: December 2023\\n\" }}...{{- \"<|eot_id|>\" }}",
         "", "llama3.1"},
        {"{%- if strftime_now is defined %}\n        {%- set date_string = strftime_now(\"%d %b "
         "%Y\") %}...{{- \"<|start_header_id|>system<|end_header_id|>\\n\\n\" }}...{{- "
         "\"Cutting Knowledge Date: December 2023\\n\" }}...{{- \"<|eot_id|>\" }}",
         "", "llama3.2"},
        /* Phi-4-mini writes <|user|> as '<|' + role + '|>': not Phi-3's */
        {"{{'<|' + message['role'] + '|>' + message['content'] + '<|end|>'}}", "Phi-4-mini", ""},
        /* no chat_template: the name decides */
        {NULL, "Llama-2-7b-chat-hf", "llama2"},
        {NULL, "llama-2-13b-chat", "llama2"},
        {NULL, "Llama-2-7B-Chat-AWQ", "llama2"},
        {NULL, "Llama-2-7b-hf", ""},
        {NULL, "CodeLlama-7b-Instruct-hf", "llama2"},
        {NULL, "CodeLlama-7b-hf", ""},
        {NULL, "Mistral-7B-Instruct-v0.2", "mistral"},
        {"", "Mistral-7B-v0.1", ""},
        {NULL, "TinyLlama-1.1B-Chat-v1.0", "zephyr"},
        {NULL, "TinyLlama-1.1B-intermediate-step-1431k-3T", ""},
        {NULL, "zephyr-7b-beta", "zephyr"},
        {NULL, "vicuna-7b-v1.5", "vicuna"},
        {NULL, "stories260K", ""},
        {NULL, "Qwen3-0.6B", "qwen3"},
        {NULL, "Qwen2.5-1.5B-Instruct", "qwen2.5"},
        {NULL, "Qwen2.5-1.5B", ""},
        {NULL, "SmolLM2-135M-Instruct", "smollm2"},
        {NULL, "Meta-Llama-3-8B-Instruct", "llama3"},
        {NULL, "Llama-3.2-1B", ""},
        {NULL, "Meta-Llama-3.1-8B-Instruct", "llama3.1"},
        {NULL, "Llama-3.3-70B-Instruct", "llama3.1"},
        {NULL, "Llama-3.2-3B-Instruct", "llama3.2"},
        {NULL, "gemma-2-2b-it", "gemma"},
        {NULL, "gemma-3-1b-it", "gemma"},
        {NULL, "gemma-2-2b", ""},
        {NULL, "Phi-3.5-mini-instruct", "phi3"},
        {NULL, "Phi-3-mini-4k-instruct", "phi3"},
        {NULL, "Mistral-Small-24B-Instruct-2501", "mistral-v7"},
        {NULL, "Mistral-Small-24B-Base-2501", ""},
        {NULL, NULL, ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const char *got = nb_template_guess(cases[i].jinja, cases[i].name);
        CHECK(!strcmp(got, cases[i].want), "case %zu (%s): guessed '%s', want '%s'", i,
              cases[i].name ? cases[i].name : "-", got, cases[i].want);
        CHECK(!got[0] || nb_template_find(got), "guessed an unknown template '%s'", got);
    }
}

/* ---- the renderings of the models' own Jinja templates ---- */

static char *json_text(json_t *v)
{
    return (char *)json_string_value(v);
}

/* The Jinja text encoded as transformers does (encode(text,
 * add_special_tokens=False)), except that the template's BOS and EOS
 * strings are the ids the C side is given (-1, none, when the tokenizer
 * lacks them) and split the text into segments, as chat.c seals its text
 * at every special id. */
static void encode_jinja(const nb_tokenizer *t, const char *text, const char *marks[2],
                         const int ids[2], nb_ids *out, nb_err *e)
{
    while (*text) {
        const char *at[2] = {NULL, NULL}, *cut = text + strlen(text);
        int k = -1;
        for (int j = 0; j < 2; j++)
            if (marks[j] && (at[j] = strstr(text, marks[j])) && at[j] < cut)
                cut = at[j], k = j;
        int32_t *v;
        size_t n;
        CHECK(!nb_tok_encode(t, text, (size_t)(cut - text), 0, &v, &n, e), "%s", e->msg);
        out->v = realloc(out->v, (out->n + n + 1) * sizeof *out->v);
        memcpy(out->v + out->n, v, n * sizeof *v);
        out->n += n;
        free(v);
        if (k < 0)
            break;
        if (ids[k] >= 0)
            out->v[out->n++] = ids[k];
        text = cut + strlen(marks[k]);
    }
}

/* The day a dated line was rendered on ("YYYY-MM-DD"). */
static int parse_date(const char *s, struct tm *t)
{
    memset(t, 0, sizeof *t);
    if (!s || sscanf(s, "%d-%d-%d", &t->tm_year, &t->tm_mon, &t->tm_mday) != 3)
        return 0;
    t->tm_year -= 1900, t->tm_mon -= 1;
    return 1;
}

/* The Jinja sources renderings.jsonl must have, and how many of each
 * line were compared (qwen3 with enable_thinking=False is its own). */
static struct {
    const char *source;
    size_t done;
} expected[] = {{"qwen3", 0},  {"qwen3-no-think", 0},     {"llama3", 0},  {"qwen2.5", 0},
                {"smollm2", 0}, {"phi3.5", 0},             {"mistral-small-2501", 0},
                {"gemma-2", 0}, {"gemma-3", 0},            {"llama3.1", 0}, {"llama3.2", 0}};
#define N_EXPECTED (sizeof expected / sizeof *expected)

static void count_source(const char *source)
{
    for (size_t i = 0; source && i < N_EXPECTED; i++)
        expected[i].done += !strcmp(expected[i].source, source);
}

/* One conversation of tests/chat/renderings.jsonl, through the built-in
 * template, against the Jinja rendering. */
static void one_rendering(const nb_tokenizer *t, json_t *c, size_t line)
{
    const char *name = json_text(json_object_get(c, "template"));
    const char *text = json_text(json_object_get(c, "text"));
    json_t *ms = json_object_get(c, "messages");
    const nb_template *tp = nb_template_find(name);
    size_t n = json_array_size(ms);
    CHECK(tp, "line %zu: no built-in template '%s'", line, name ? name : "?");
    CHECK(text && n && n <= 8, "line %zu: a bad case", line);
    if (!tp || !text || !n || n > 8)
        return;
    nb_chat_msg msgs[8];
    for (size_t i = 0; i < n; i++)
        msgs[i] = msg(json_text(json_object_get(json_array_get(ms, i), "content")));
    const char *marks[2] = {json_text(json_object_get(c, "bos")),
                            json_text(json_object_get(c, "eos"))};
    int ids[2] = {-1, -1};
    for (int k = 0; k < 2; k++)
        ids[k] = marks[k] ? nb_tok_piece_to_id(t, marks[k]) : -1;
    struct tm day;
    const char *date = json_text(json_object_get(c, "date"));
    CHECK(!date || parse_date(date, &day), "line %zu: a bad date", line);
    nb_chat_opts o = {.no_think = json_is_true(json_object_get(c, "no_think")),
                      .today = date ? &day : NULL};
    nb_ids got = {0}, want = {0};
    nb_err e;
    const char *system = json_text(json_object_get(c, "system")); /* NULL: the default */
    CHECK(!nb_chat_encode_with(tp, t, ids[0], ids[1], system, msgs, n, &o, &got, &e),
          "line %zu: %s", line, e.msg);
    encode_jinja(t, text, marks, ids, &want, &e);
    CHECK(same(&got, &want), "line %zu (%s, %zu messages): the ids differ from the Jinja "
                             "rendering's",
          line, name, n);
    if (!same(&got, &want)) {
        char *g = nb_tok_decode(t, got.v, got.n, &e);
        fprintf(stderr, "    got:  %s\n    want: %s\n", g ? g : "?", text);
        free(g);
    }
    count_source(json_text(json_object_get(c, "source")));
    nb_ids_free(&got);
    nb_ids_free(&want);
}

/* test_chat renderings FILE TOKENIZER...: every case with each tokenizer;
 * a tokenizer path starting with '?' may be absent (Llama-3's, read from
 * ../shared, never vendored). Each expected source must have renderings. */
static int renderings(int argc, char **argv)
{
    json_error_t err;
    FILE *f = fopen(argv[2], "r");
    for (int k = 3; k < argc; k++) {
        const char *path = argv[k] + (argv[k][0] == '?');
        nb_err e;
        nb_tokenizer *t = nb_tok_load_file(path, &e);
        if (!t && argv[k][0] == '?') {
            printf("skip: %s is absent\n", path);
            continue;
        }
        CHECK(t && f, "%s: %s", path, t ? "no renderings file" : e.msg);
        char line[16384];
        size_t no = 0, done = 0;
        rewind(f);
        while (t && fgets(line, sizeof line, f)) {
            json_t *c = json_loads(line, 0, &err);
            CHECK(c, "%s line %zu: %s", argv[2], no + 1, err.text);
            if (c)
                one_rendering(t, c, ++no), done++;
            json_decref(c);
        }
        printf("%s: %zu renderings compared\n", path, done);
        nb_tok_free(t);
    }
    for (size_t i = 0; i < N_EXPECTED; i++)
        CHECK(expected[i].done, "no renderings of %s's Jinja template", expected[i].source);
    if (f)
        fclose(f);
    return tu_finish("test_chat renderings");
}

/* The default system prompts a converter reads out of ChatML Jinja. */
static void check_default_system(void)
{
    char out[128];
    CHECK(nb_jinja_default_system("{{ '<|im_start|>system\\nBe \\'brief\\'.\\nOk<|im_end|>\\n' }}",
                                  out, sizeof out) &&
              !strcmp(out, "Be 'brief'.\nOk"),
          "escaped quotes: '%s'", out);
    CHECK(nb_jinja_default_system("{{ \"<|im_start|>system\\nYou're kind.<|im_end|>\" }}", out,
                                  sizeof out) &&
              !strcmp(out, "You're kind."),
          "double quotes: '%s'", out);
    CHECK(nb_jinja_default_system("x '<|im_start|>system\nHi there<|im_end|>\n'", out,
                                  sizeof out) &&
              !strcmp(out, "Hi there"),
          "raw newline: '%s'", out);
    CHECK(nb_jinja_default_system("'<|im_start|>system\\n' + messages[0]['content'] + "
                                  "'<|im_end|>' ... '<|im_start|>system\\nA\\\\b\\nc<|im_end|>'",
                                  out, sizeof out) &&
              !strcmp(out, "A\\b\nc"),
          "the literal after the content: '%s'", out);
    CHECK(!nb_jinja_default_system("'<|im_start|>system\\n' + m + '<|im_end|>'", out, sizeof out),
          "no literal");
    CHECK(!nb_jinja_default_system("'<|im_start|>system\\nLong<|im_end|>'", out, 4), "too long");
    CHECK(!nb_jinja_default_system(NULL, out, sizeof out), "no template");
}

int main(int argc, char **argv)
{
    if (argc >= 4 && !strcmp(argv[1], "renderings"))
        return renderings(argc, argv);
    if (argc < 2) {
        fprintf(stderr, "usage: test_chat TOKENIZER.model [-v]\n"
                        "       test_chat renderings FILE TOKENIZER...\n");
        return 2;
    }
    nb_err e;
    if (!(tok = nb_tok_load_file(argv[1], &e))) {
        fprintf(stderr, "test_chat: %s\n", e.msg);
        return 2;
    }
    bos = nb_tok_bos(tok), eos = nb_tok_eos(tok);
    check_spelling(argc > 2 && !strcmp(argv[2], "-v"));
    check_defaults();
    check_prefix();
    check_bad_input();
    check_stops();
    check_hold_back();
    check_guess();
    check_default_system();
    nb_tok_free(tok);
    return tu_finish("test_chat");
}
