/* nibble chat: an interactive, streaming, multi-turn conversation, or one
 * reply per input turn when stdin is a pipe or a file.
 *
 * The KV cache holds the conversation: each turn encodes the whole
 * conversation with the template and nb_gen runs only the positions that
 * changed, which is the new user message when the history is the same.
 * Replies are kept as the token ids the model produced, so the history
 * matches the cache exactly. docs/chat.md describes the behaviour. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../runtime/chat.h"
#include "cli.h"
#include "gen.h"
#include "lineedit.h"

static const char help[] =
    "usage: nibble chat -m MODEL.nib [options]\n"
    "\n"
    "Chats with the model: type a message, get a streamed reply. When stdin is a\n"
    "pipe or a file, each line (or blank-line separated block with --multiline) is\n"
    "one message and each reply is printed; the chat ends at end of input.\n"
    "  -m, --model FILE   the .nib model\n"
    "  --template NAME    llama2, mistral, zephyr, vicuna, chatml, qwen2.5, qwen3,\n"
    "                     smollm2, llama3 or plain (default: the one the model file\n"
    "                     names); --template list describes them\n"
    "  --system TEXT      system prompt (default: the template's, usually none)\n"
    "  -n, --n-predict N  cap each reply at N tokens (default: no cap; a reply ends\n"
    "                     at the model's end of text or a stop string)\n"
    "  -c, --ctx-size N   context in tokens (default: the model's maximum); when it\n"
    "                     fills, the oldest turns are dropped (the system prompt stays)\n"
    "  --multiline        a message ends at a blank line instead of each newline\n"
    "  --json             one JSON object per reply on stdout (for scripts)\n"
    "  --ignore-eos       keep going past the end-of-text tokens\n"
    "  -q, --quiet        no notices or statistics on stderr\n";

static const char commands_help[] =
    "\ncommands: /help  /reset (forget the conversation)  /stats  /system TEXT (set the\n"
    "system prompt and start over; /system alone shows it)  /exit (or Ctrl-D)\n"
    "Ctrl-C stops a reply (what was said stays in the conversation). A message that\n"
    "starts with / is sent by typing // for its first /.\n"
    "keys (on a terminal): Left/Right, Home/End, Ctrl-A/Ctrl-E, Backspace, Delete,\n"
    "Ctrl-K/Ctrl-U (cut to the end/start), Ctrl-W (cut a word), Ctrl-Y (paste the cut),\n"
    "Alt-B/Alt-F or Ctrl-Left/Right (move a word), Up/Down (this session's messages),\n"
    "Ctrl-L (clear the screen); a pasted text with line breaks is one message.\n";

static const nb_sampler_opts defaults = {.temp = 0.7f, .top_k = 40, .top_p = 0.95f,
                                         .min_p = 0.05f, .repeat_penalty = 1.1f,
                                         .repeat_last_n = 64};

struct chat_opts {
    const char *model, *template_name, *system;
    long n, ctx;
    nb_sampling s;
    nb_session_opts run;
    int multiline, json, ignore_eos, quiet;
};

/* One exchange: the user's message and the reply (ids as generated, or
 * only text when a stop string cut it, since its ids ran past the cut). */
struct turn {
    char *user;
    size_t user_len;
    char *reply;
    size_t reply_len;
    int32_t *ids;
    size_t n_ids;
};

struct chat {
    const struct chat_opts *o;
    nb_session s;
    nb_sampler smp;
    nb_gen gen;
    const nb_template *t;
    char *system; /* NULL: the template's default */
    struct turn *turns;
    size_t n_turns, cap;
    int bos, eos, interactive, dim, broken, replies;
    /* the reply being streamed */
    nb_detok d;
    nb_stopper stop;
    char *reply;
    size_t reply_len, reply_cap;
    nb_gen_stats st;
    int n_prompt, dropped;
    /* the line editor, when stdin and stdout are terminals */
    nb_tty tty;
    int edit, ended; /* ended: 1 at the end of input, 2 after an error */
};

/* ---- output ---- */

/* stdout, unbuffered and retried after Ctrl-C interrupts a blocked write.
 * A reader that went away (EPIPE) ends the chat quietly. */
static int out(struct chat *c, const char *s, size_t n)
{
    while (n && !c->broken) {
        ssize_t k = write(STDOUT_FILENO, s, n);
        if (k > 0) {
            s += k;
            n -= (size_t)k;
        } else if (k < 0 && errno != EINTR) {
            c->broken = errno == EPIPE ? 1 : 2;
            if (c->broken == 2)
                nb_error("cannot write the output: %s", strerror(errno));
        }
    }
    return c->broken ? -1 : 0;
}

/* How the line editor writes. */
static int tty_out(void *c, const char *s, size_t n)
{
    return out(c, s, n);
}

static int out_str(struct chat *c, const char *s)
{
    return out(c, s, strlen(s));
}

/* One line on stderr, dimmed on a terminal. */
static void vsay(const struct chat *c, const char *fmt, va_list ap)
{
    fputs(c->dim ? "\033[2m" : "", stderr);
    vfprintf(stderr, fmt, ap);
    fputs(c->dim ? "\033[0m\n" : "\n", stderr);
}

static void say(const struct chat *c, const char *fmt, ...) NB_PRINTF(2, 3);

static void say(const struct chat *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsay(c, fmt, ap);
    va_end(ap);
}

/* A notice: the same, silenced by -q. */
static void note(const struct chat *c, const char *fmt, ...) NB_PRINTF(2, 3);

static void note(const struct chat *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (!c->o->quiet)
        vsay(c, fmt, ap);
    va_end(ap);
}

/* ---- options ---- */

static int list_templates(void)
{
    const nb_template *t;
    for (size_t i = 0; (t = nb_template_at(i)); i++)
        printf("  %-8s %s\n", nb_template_name(t), nb_template_about(t));
    return 1;
}

static int parse_value(struct chat_opts *o, const char *a, const char *v)
{
    int r = nb_sampling_flag(&o->s, a, v);
    if (r <= 0 || (r = nb_run_flag(&o->run, a, v)) <= 0)
        return r;
    if (!strcmp(a, "-m") || !strcmp(a, "--model"))
        o->model = v;
    else if (!strcmp(a, "--template"))
        o->template_name = v;
    else if (!strcmp(a, "--system"))
        o->system = v;
    else if (!strcmp(a, "-n") || !strcmp(a, "--n-predict"))
        return nb_parse_int(a, v, 1, 1000000, &o->n);
    else if (!strcmp(a, "-c") || !strcmp(a, "--ctx-size"))
        return nb_parse_int(a, v, 1, 1 << 22, &o->ctx);
    else
        return nb_error("chat: unknown option '%s' (see --help)", a), -1;
    return 0;
}

static int flag(struct chat_opts *o, const char *a)
{
    int *f = !strcmp(a, "--multiline")                    ? &o->multiline
             : !strcmp(a, "--json")                       ? &o->json
             : !strcmp(a, "--ignore-eos")                 ? &o->ignore_eos
             : !strcmp(a, "-q") || !strcmp(a, "--quiet") ? &o->quiet
                                                          : NULL;
    if (f)
        *f = 1;
    return f != NULL;
}

/* 0 to go on, 1 when help or the list was printed, -1 on a bad argument. */
static int parse(struct chat_opts *o, int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        if (nb_is_help(a))
            return fputs(help, stdout), nb_sampling_help(stdout, &defaults), putchar('\n'),
                   nb_run_help(stdout), fputs(commands_help, stdout), 1;
        if (flag(o, a) || nb_run_switch(&o->run, a))
            continue;
        if (!(v = nb_arg(argc, argv, &i)) || parse_value(o, a, v))
            return -1;
    }
    if (o->template_name && !strcmp(o->template_name, "list"))
        return list_templates();
    if (o->template_name && !nb_template_find(o->template_name))
        return nb_error("unknown template '%s' (known: llama2, mistral, zephyr, vicuna, chatml, "
                        "qwen2.5, qwen3, smollm2, llama3, plain)",
                        o->template_name),
               -1;
    if (!o->model)
        return nb_error("chat needs -m MODEL (see nibble chat --help)"), -1;
    size_t bad, len = o->system ? strlen(o->system) : 0;
    if (o->system && (bad = nb_utf8_bad_offset((const unsigned char *)o->system, len)) < len)
        return nb_error("--system: invalid UTF-8 at byte offset %zu", bad), -1;
    nb_sampling_seed(&o->s);
    return 0;
}

/* The template: --template, else the model's, else plain with a notice. */
static void pick_template(struct chat *c)
{
    const char *want = c->s.model.meta.chat_template;
    c->t = nb_template_find(c->o->template_name ? c->o->template_name : want);
    if (c->t)
        return;
    c->t = nb_template_find("plain");
    char name[256], template[128]; /* as read from the file: escaped */
    nb_utf8_escape(name, sizeof name, c->s.model.meta.name);
    if (!want[0])
        note(c, "nibble: note: %s has no chat template: chatting as plain completion "
                "(--template list shows the others)", name);
    else
        note(c, "nibble: note: %s names chat template '%s', which nibble does not know: "
                "chatting as plain completion (see --template list)",
             name, nb_utf8_escape(template, sizeof template, want));
}

/* ---- the conversation ---- */

static void free_turn(struct turn *t)
{
    free(t->user);
    free(t->reply);
    free(t->ids);
    memset(t, 0, sizeof *t);
}

static void forget(struct chat *c)
{
    for (size_t i = 0; i < c->n_turns; i++)
        free_turn(&c->turns[i]);
    c->n_turns = 0;
}

static void drop_oldest(struct chat *c)
{
    free_turn(&c->turns[0]);
    memmove(c->turns, c->turns + 1, --c->n_turns * sizeof *c->turns);
    c->dropped++;
}

static int add_turn(struct chat *c, const char *text, size_t len)
{
    if (c->n_turns == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 16;
        struct turn *p = realloc(c->turns, cap * sizeof *p);
        if (!p)
            return -1;
        c->turns = p;
        c->cap = cap;
    }
    struct turn *t = &c->turns[c->n_turns];
    memset(t, 0, sizeof *t);
    if (!(t->user = malloc(len + 1)))
        return -1;
    memcpy(t->user, text, len);
    t->user[len] = 0;
    t->user_len = len;
    c->n_turns++;
    return 0;
}

/* The ids of the conversation; the last turn is the one being answered. */
static int encode(struct chat *c, nb_ids *ids, nb_err *e)
{
    nb_chat_msg *msgs = calloc(2 * c->n_turns, sizeof *msgs);
    if (!msgs)
        return nb_fail(e, "out of memory");
    size_t n = 0;
    for (size_t i = 0; i < c->n_turns; i++) {
        const struct turn *t = &c->turns[i];
        msgs[n++] = (nb_chat_msg){.text = t->user, .len = t->user_len};
        if (i + 1 < c->n_turns)
            msgs[n++] = (nb_chat_msg){.text = t->reply, .len = t->reply_len, .ids = t->ids,
                                      .n_ids = t->n_ids};
    }
    ids->n = 0;
    int rc = nb_chat_encode(c->t, c->s.tok, c->bos, c->eos, c->system, msgs, n, ids, e);
    free(msgs);
    return rc;
}

/* Room a reply should have before a turn starts: its cap, or a quarter of
 * the context, but never more than half. */
static int reserve(const struct chat *c)
{
    int ctx = c->gen.ctx, want = c->o->n ? (int)c->o->n : ctx / 4;
    want = want < ctx / 2 ? want : ctx / 2;
    return want > 0 ? want : 1;
}

/* Encodes the conversation, dropping the oldest turns (the system prompt
 * stays) until the prompt and `room` more tokens fit. The turn being
 * answered is never dropped: -1 when it cannot fit even alone. */
static int fit(struct chat *c, nb_ids *ids, int room, nb_err *e)
{
    for (;;) {
        if (encode(c, ids, e))
            return -1;
        if (ids->n + (size_t)room <= (size_t)c->gen.ctx)
            return 0;
        if (c->n_turns < 2)
            return ids->n < (size_t)c->gen.ctx ? 0 : 1;
        drop_oldest(c);
    }
}

/* ---- one reply ---- */

static int append_reply(struct chat *c, const char *s, size_t n)
{
    if (c->reply_len + n + 1 > c->reply_cap) {
        size_t cap = c->reply_cap ? 2 * c->reply_cap : 4096;
        while (cap < c->reply_len + n + 1)
            cap *= 2;
        char *p = realloc(c->reply, cap);
        if (!p)
            return -1;
        c->reply = p;
        c->reply_cap = cap;
    }
    memcpy(c->reply + c->reply_len, s, n);
    c->reply_len += n;
    c->reply[c->reply_len] = 0;
    return 0;
}

/* Text that passed the stop strings: shown (unless --json) and kept. */
static int show(struct chat *c, const char *s, size_t n)
{
    if (!n)
        return 0;
    if (append_reply(c, s, n))
        return -1;
    return c->o->json ? 0 : out(c, s, n);
}

/* Detokenized text through the stop strings, in pieces the stopper's
 * buffer holds (a BPE token's text has no bound). */
static int stop_and_show(struct chat *c, const char *text, size_t n)
{
    char safe[NB_DETOK_MAX + NB_STOP_MAX];
    if (!text)
        return nb_error("out of memory"), -1;
    do {
        size_t k = n < NB_DETOK_MAX ? n : NB_DETOK_MAX;
        if (show(c, safe, nb_stopper_push(&c->stop, text, k, safe)))
            return -1;
        text += k;
        n -= k;
    } while (n && !c->stop.hit);
    return 0;
}

static int on_token(void *ctx, int id)
{
    struct chat *c = ctx;
    /* A special token that is not an end id (Qwen's <|im_start|>, Llama-3's
     * <|start_header_id|>) starts a turn the template would write: the
     * reply ends there, as at a stop string. */
    if (!c->o->ignore_eos && nb_tok_is_control(c->s.tok, id))
        return c->stop.hit = 1;
    size_t n;
    const char *text = nb_detok_next(&c->d, id, &n);
    if (stop_and_show(c, text, n))
        return -1;
    return c->stop.hit;
}

/* The context filled while the reply ran: drop the oldest turns and go on
 * with the reply so far after the shortened prompt. */
static int on_full(void *ctx, nb_gen *g)
{
    struct chat *c = ctx;
    if (c->n_turns < 2)
        return -1;
    nb_ids ids = {0};
    nb_err e;
    size_t before = c->n_turns;
    int reply = g->n_seq - g->n_prompt, rc = fit(c, &ids, reply + reserve(c), &e);
    if (!rc && c->n_turns < before)
        rc = nb_gen_reprompt(g, ids.v, (int)ids.n, &e);
    else
        rc = -1;
    nb_ids_free(&ids);
    return rc ? -1 : 0;
}

static void finish_text(struct chat *c)
{
    char safe[NB_STOP_MAX];
    size_t n;
    const char *text = nb_detok_end(&c->d, &n);
    if (!stop_and_show(c, text, n))
        show(c, safe, nb_stopper_flush(&c->stop, safe));
}

/* Moves the reply into the last turn. */
static int keep_reply(struct chat *c)
{
    struct turn *t = &c->turns[c->n_turns - 1];
    const nb_gen *g = &c->gen;
    t->reply = malloc(c->reply_len + 1);
    if (!t->reply)
        return -1;
    memcpy(t->reply, c->reply ? c->reply : "", c->reply_len + 1);
    t->reply_len = c->reply_len;
    if (c->st.stop == NB_STOP_CALLER)
        return 0; /* the ids run past the stop string: the text is what counts */
    t->n_ids = (size_t)(g->n_seq - g->n_prompt);
    t->ids = malloc((t->n_ids ? t->n_ids : 1) * sizeof *t->ids);
    if (!t->ids)
        return -1;
    memcpy(t->ids, g->seq + g->n_prompt, t->n_ids * sizeof *t->ids);
    return 0;
}

static void reply(struct chat *c)
{
    nb_detok_free(&c->d);
    nb_detok_init(&c->d, c->s.tok); /* out of memory: on_token says so */
    c->d.at_start = !nb_template_continues(c->t);
    nb_stopper_init(&c->stop, nb_template_stops(c->t));
    c->reply_len = 0;
    if (c->reply)
        c->reply[0] = 0;
    nb_gen_opts go = {.max_tokens = (int)c->o->n, .ignore_eos = c->o->ignore_eos};
    nb_gen_sink sink = {.token = on_token, .full = on_full, .ctx = c};
    nb_gen_run(&c->gen, &go, &sink, &c->st);
    c->n_prompt = c->gen.n_prompt;
    c->replies++;
    if (c->st.stop != NB_STOP_WRITE)
        finish_text(c);
}

/* ---- reporting ---- */

static const char *stop_name(int stop)
{
    static const char *names[] = {"eos", "length", "stop_string", "context_full",
                                  "interrupted", "write_error", "error"};
    return names[stop];
}

/* After each reply when interactive (-q silences it), and on /stats. */
static void stats_line(const struct chat *c)
{
    const nb_gen_stats *st = &c->st;
    if (!c->replies) {
        say(c, "no reply yet");
        return;
    }
    say(c, "prompt %d tokens (%d prefilled), prefill %.1f t/s, first token %.2f s, decode %.1f t/s "
           "(%d tokens), context %d/%d, seed %llu",
        c->n_prompt, st->n_prefill, nb_gen_prefill_tps(st), st->t_first, nb_gen_decode_tps(st),
        st->n_reply, c->gen.n_seq, c->gen.ctx, (unsigned long long)c->o->s.o.seed);
}

/* JSON string body: quotes, backslashes and control bytes escaped; the
 * text is valid UTF-8 already (the detokenizer sees to it). */
static int json_text(struct chat *c, const char *s, size_t n)
{
    char buf[8];
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        const char *esc = ch == '"' ? "\\\"" : ch == '\\' ? "\\\\" : ch == '\n' ? "\\n"
                        : ch == '\r' ? "\\r" : ch == '\t' ? "\\t" : NULL;
        if (!esc && ch < 0x20) {
            snprintf(buf, sizeof buf, "\\u%04x", ch);
            esc = buf;
        }
        if (esc ? out_str(c, esc) : out(c, s + i, 1))
            return -1;
    }
    return 0;
}

static void json_reply(struct chat *c)
{
    const nb_gen_stats *st = &c->st;
    char tail[512];
    snprintf(tail, sizeof tail,
             "\",\"stop\":\"%s\",\"prompt_tokens\":%d,\"prefill_tokens\":%d,"
             "\"reply_tokens\":%d,\"context_tokens\":%d,\"context_size\":%d,"
             "\"dropped_turns\":%d,\"prefill_tps\":%.2f,\"time_to_first_token_s\":%.4f,"
             "\"decode_tps\":%.2f,\"seed\":%llu}\n",
             stop_name(st->stop), c->n_prompt, st->n_prefill, st->n_reply, c->gen.n_seq,
             c->gen.ctx, c->dropped, nb_gen_prefill_tps(st), st->t_first,
             nb_gen_decode_tps(st), (unsigned long long)c->o->s.o.seed);
    if (!out_str(c, "{\"reply\":\"") && !json_text(c, c->reply, c->reply_len))
        out_str(c, tail);
}

static void json_error(struct chat *c, const char *msg)
{
    if (c->o->json && !out_str(c, "{\"error\":\"") && !json_text(c, msg, strlen(msg)))
        out_str(c, "\"}\n");
}

/* A turn that is not sent: a one-line message, and the chat goes on. */
static void refuse(struct chat *c, const char *fmt, ...) NB_PRINTF(2, 3);

static void refuse(struct chat *c, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    nb_error("%s", msg);
    json_error(c, msg);
}

static void after_reply(struct chat *c)
{
    nb_clear_interrupt(); /* a Ctrl-C as the reply ended was meant for the reply */
    if (c->o->json) {
        json_reply(c);
    } else if (!c->broken) {
        out_str(c, "\n");
        if (c->st.stop == NB_STOP_INTERRUPT)
            note(c, "[reply stopped; it stays in the conversation]");
        if (c->st.stop == NB_STOP_FULL)
            note(c, "[the context of %d tokens is full: the reply was cut]", c->gen.ctx);
    }
    if (c->dropped)
        note(c, "[context full: dropped the %d oldest turn%s (the system prompt stays); "
                "re-read the rest]",
             c->dropped, c->dropped > 1 ? "s" : "");
    if (c->interactive && !c->o->quiet)
        stats_line(c);
}

/* ---- a turn ---- */

/* The message alone, to check it (UTF-8) and to size it for messages. */
static int measure(struct chat *c, const char *text, size_t len, size_t *n_tokens)
{
    int32_t *ids;
    nb_err e;
    if (nb_tok_encode(c->s.tok, text, len, 0, &ids, n_tokens, &e)) {
        const char *why = strstr(e.msg, "invalid UTF-8");
        refuse(c, "your message was not sent: %s", why ? why : e.msg);
        return -1;
    }
    free(ids);
    return 0;
}

static int turn(struct chat *c, const char *text, size_t len)
{
    size_t n_tokens;
    if (measure(c, text, len, &n_tokens))
        return 0;
    if (add_turn(c, text, len))
        return nb_error("out of memory"), -1;
    nb_ids ids = {0};
    nb_err e;
    c->dropped = 0;
    int rc = fit(c, &ids, reserve(c), &e);
    if (rc > 0)
        refuse(c, "your message was not sent: with the template it needs %zu tokens (the "
                  "message alone %zu), more than the context of %d holds (raise -c or "
                  "shorten it)",
               ids.n, n_tokens, c->gen.ctx);
    else if (rc < 0)
        refuse(c, "your message was not sent: %s", e.msg);
    else if (nb_gen_prompt(&c->gen, ids.v, (int)ids.n, &e))
        refuse(c, "%s", e.msg), rc = 1;
    if (rc) {
        free_turn(&c->turns[--c->n_turns]);
        nb_ids_free(&ids);
        return 0;
    }
    nb_ids_free(&ids);
    reply(c);
    if (c->st.stop == NB_STOP_ERROR) /* the model is broken: no use going on */
        return fflush(stdout), nb_error("%s", c->st.err.msg), -1;
    if (keep_reply(c))
        return nb_error("out of memory"), -1;
    after_reply(c);
    if (c->broken || c->st.stop == NB_STOP_WRITE)
        return -1;
    return 0;
}

/* ---- commands ---- */

static void set_system(struct chat *c, const char *text)
{
    size_t bad, len = strlen(text);
    if ((bad = nb_utf8_bad_offset((const unsigned char *)text, len)) < len) {
        refuse(c, "the system prompt was not set: invalid UTF-8 at byte offset %zu", bad);
        return;
    }
    free(c->system);
    c->system = strdup(text);
    forget(c);
    note(c, "[system prompt set; the conversation starts over]");
}

/* 1 when the line was a command, -1 to end the chat, 0 for a message. */
static int command(struct chat *c, const char *line)
{
    if (line[0] != '/' || line[1] == '/')
        return 0;
    if (!strcmp(line, "/exit") || !strcmp(line, "/quit"))
        return -1;
    if (!strcmp(line, "/help"))
        fputs(commands_help, stderr);
    else if (!strcmp(line, "/reset"))
        forget(c), note(c, "[the conversation starts over]");
    else if (!strcmp(line, "/stats"))
        stats_line(c);
    else if (!strcmp(line, "/system"))
        fprintf(stderr, "system prompt: %s\n",
                c->system ? c->system : nb_template_default_system(c->t));
    else if (!strncmp(line, "/system ", 8))
        set_system(c, line + 8);
    else
        fprintf(stderr, "unknown command '%s' (try /help)\n", line);
    return 1;
}

/* ---- input ---- */

static void chomp(char *s, size_t *n)
{
    while (*n && (s[*n - 1] == '\n' || s[*n - 1] == '\r'))
        s[--*n] = 0;
}

static int blank(const char *s)
{
    for (; *s; s++)
        if (*s != ' ' && *s != '\t')
            return 0;
    return 1;
}

/* Appends line[k] (and a newline before it when a block goes on). */
static int append_line(char **buf, size_t *cap, size_t *len, const char *line, size_t k)
{
    size_t need = *len + k + 2;
    if (need > *cap) {
        char *p = realloc(*buf, need);
        if (!p)
            return -1;
        *buf = p, *cap = need;
    }
    if (*len)
        (*buf)[(*len)++] = '\n';
    memcpy(*buf + *len, line, k + 1);
    *len += k;
    return 0;
}

/* The prompt for the first line of a message, or for the next line of a
 * --multiline block. */
static const char *prompt(const struct chat *c, size_t len)
{
    return c->o->json ? "" : len ? ". " : "> ";
}

/* One line from the line editor: its length with *text set, or -1 at the
 * end (Ctrl-D, Ctrl-C, an error); the end sticks, as EOF on stdin does. */
static long edited_line(struct chat *c, size_t len, const char **text)
{
    long n = c->ended ? -1 : nb_tty_read(&c->tty, prompt(c, len), text);
    if (n < 0 && !c->ended)
        c->ended = n == NB_TTY_ERROR ? 2 : 1;
    return n < 0 ? -1 : n;
}

/* One line of stdin without its newline (a terminal hands over one line
 * per read, so nothing waits unseen in stdin's buffer). */
static long typed_line(struct chat *c, char **line, size_t *cap)
{
    ssize_t n;
    if (c->interactive ? nb_wait_input(STDIN_FILENO) : nb_interrupted())
        return -1;
    if ((n = getline(line, cap, stdin)) < 0)
        return -1;
    size_t k = (size_t)n;
    chomp(*line, &k);
    return (long)k;
}

/* Reads one message (a line, or with --multiline a block ending at a blank
 * line) into *buf: its length (0 for an empty line), or -1 at the end of
 * input or on Ctrl-C at the prompt. */
static long read_message(struct chat *c, char **buf, size_t *cap)
{
    char *line = NULL;
    const char *text = NULL;
    size_t line_cap = 0, len = 0;
    long n;
    int own_prompt = c->interactive && !c->o->json && !c->edit; /* else the editor draws it */
    if (own_prompt && out_str(c, prompt(c, 0)))
        return -1;
    while ((n = c->edit ? edited_line(c, len, &text)
                        : typed_line(c, &line, &line_cap)) >= 0) {
        text = c->edit ? text : line;
        if (c->o->multiline && blank(text)) {
            if (len)
                break;
            continue;
        }
        if (append_line(buf, cap, &len, text, (size_t)n))
            break;
        if (!c->o->multiline)
            break;
        if (own_prompt)
            out_str(c, prompt(c, len));
    }
    free(line);
    return len || n >= 0 ? (long)len : -1;
}

static int loop(struct chat *c)
{
    char *buf = NULL;
    size_t cap = 0;
    long n;
    int rc = 0;
    while ((n = read_message(c, &buf, &cap)) >= 0) {
        if (!n || blank(buf))
            continue; /* an empty line sends nothing */
        int cmd = command(c, buf);
        if (cmd < 0)
            break;
        const char *text = buf[0] == '/' ? buf + 1 : buf; /* "//x" sends "/x" */
        if (!cmd && (rc = turn(c, text, strlen(text))))
            break;
    }
    if (c->interactive && n < 0)
        out_str(c, "\n");
    free(buf);
    return c->broken == 1 ? 0 : rc || c->ended == 2 ? 1 : 0;
}

/* ---- setup ---- */

static int open_chat(struct chat *c, const struct chat_opts *o)
{
    nb_err e = {{0}};
    memset(c, 0, sizeof *c);
    c->o = o;
    c->interactive = isatty(STDIN_FILENO);
    c->dim = isatty(STDERR_FILENO);
    if (nb_session_open_with(&c->s, o->model, (int)o->ctx, &o->run, &e))
        return nb_error("%s", e.msg);
    const struct nb_meta *m = &c->s.model.meta;
    c->bos = m->bos_id >= 0 ? m->bos_id : nb_tok_bos(c->s.tok);
    c->eos = m->eos_id >= 0 ? m->eos_id : nb_tok_eos(c->s.tok);
    if (nb_sampler_init(&c->smp, (int)m->vocab_size, &o->s.o, &e) ||
        nb_gen_init(&c->gen, &c->s, &c->smp, &e))
        return nb_error("%s", e.msg);
    if (o->system && !(c->system = strdup(o->system)))
        return nb_error("out of memory");
    pick_template(c);
    c->edit = c->interactive && !nb_tty_open(&c->tty, STDIN_FILENO, STDOUT_FILENO, tty_out, c);
    return 0;
}

static void close_chat(struct chat *c)
{
    if (c->edit)
        nb_tty_close(&c->tty);
    forget(c);
    nb_detok_free(&c->d);
    free(c->turns);
    free(c->reply);
    free(c->system);
    nb_gen_free(&c->gen);
    nb_sampler_free(&c->smp);
    nb_session_close(&c->s);
}

int cmd_chat(int argc, char **argv)
{
    struct chat_opts o = {.s = {.o = defaults}};
    int rc = parse(&o, argc, argv);
    if (rc)
        return rc < 0;
    struct chat c;
    rc = open_chat(&c, &o);
    if (!rc) {
        nb_catch_interrupt();
        char name[256];
        if (c.interactive)
            note(&c, "nibble chat: %s, template %s, context %d tokens, %s kernels, %d threads. "
                     "/help for commands, Ctrl-D to quit.",
                 nb_utf8_escape(name, sizeof name, c.s.model.meta.name), nb_template_name(c.t),
                 c.gen.ctx,
                 nb_net_kernels(&c.s.llama), nb_net_threads(&c.s.llama));
        rc = loop(&c);
    }
    close_chat(&c);
    return rc;
}
