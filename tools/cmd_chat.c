/* nibble chat: an interactive, streaming, multi-turn conversation, or one
 * reply per input turn when stdin is a pipe or a file.
 *
 * The conversation, its template and the trimming of a full context are
 * the engine's (runtime/convo.h); this file reads messages (through the
 * line editor on a terminal), runs the commands, and prints the replies,
 * notices and statistics. docs/chat.md describes the behaviour. */
#define _POSIX_C_SOURCE 200809L
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../runtime/convo.h"
#include "cli.h"
#include "chat_io.h"

static const char help[] =
    "usage: nibble chat -m MODEL.nib [options]\n"
    "\n"
    "Chats with the model: type a message, get a streamed reply. When stdin is a\n"
    "pipe or a file, each line (or blank-line separated block with --multiline) is\n"
    "one message and each reply is printed; the chat ends at end of input.\n"
    "  -m, --model FILE   the .nib model\n"
    "  --template NAME    llama2, mistral, mistral-v7, zephyr, vicuna, chatml,\n"
    "                     qwen2.5, qwen3, smollm2, llama3, llama3.1, llama3.2, gemma,\n"
    "                     phi3 or plain (default: the one the model file names);\n"
    "                     --template list describes them\n"
    "  --system TEXT      system prompt (default: the template's, usually none)\n"
    "  -n, --n-predict N  cap each reply at N tokens (default: no cap; a reply ends\n"
    "                     at the model's end of text or a stop string)\n"
    "  -c, --ctx-size N   context in tokens (default: the model's maximum); when it\n"
    "                     fills, the oldest turns are dropped (the system prompt stays)\n"
    "  --multiline        a message ends at a blank line instead of each newline\n"
    "  --json             one JSON object per reply on stdout (for scripts)\n"
    "  --ignore-eos       keep going past the end-of-text tokens\n"
    "  --no-think         Qwen3: answer without reasoning (enable_thinking=False: an\n"
    "                     empty <think></think> ends the prompt)\n"
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
    int multiline, json, ignore_eos, quiet, no_think;
};

struct chat {
    const struct chat_opts *o;
    nb_session s;
    nb_sampler smp;
    nb_convo convo;
    nb_chat_io io;
    int replies;
};

/* ---- options ---- */

static int list_templates(void)
{
    const nb_template *t;
    for (size_t i = 0; (t = nb_template_at(i)); i++)
        printf("  %-10s %s\n", nb_template_name(t), nb_template_about(t));
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
             : !strcmp(a, "--no-think")                   ? &o->no_think
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
        return nb_error("unknown template '%s' (known: llama2, mistral, mistral-v7, zephyr, "
                        "vicuna, chatml, qwen2.5, qwen3, smollm2, llama3, llama3.1, llama3.2, "
                        "gemma, phi3, plain)",
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
static const nb_template *pick_template(const struct chat *c)
{
    const char *want = c->s.model.meta.chat_template;
    const nb_template *t = nb_template_find(c->o->template_name ? c->o->template_name : want);
    if (t)
        return t;
    t = nb_template_find("plain");
    char name[256], template[128]; /* as read from the file: escaped */
    nb_utf8_escape(name, sizeof name, c->s.model.meta.name);
    if (!want[0])
        nb_chat_note(&c->io, "nibble: note: %s has no chat template: chatting as plain "
                             "completion (--template list shows the others)",
                     name);
    else
        nb_chat_note(&c->io, "nibble: note: %s names chat template '%s', which nibble does not "
                             "know: chatting as plain completion (see --template list)",
                     name, nb_utf8_escape(template, sizeof template, want));
    return t;
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
    const nb_convo *v = &c->convo;
    const nb_gen_stats *st = &v->st;
    if (!c->replies) {
        nb_chat_say(&c->io, "no reply yet");
        return;
    }
    nb_chat_say(&c->io, "prompt %d tokens (%d prefilled), prefill %.1f t/s, first token %.2f s, "
                        "decode %.1f t/s (%d tokens), context %d/%d, seed %llu",
                v->n_prompt, st->n_prefill, nb_gen_prefill_tps(st), st->t_first,
                nb_gen_decode_tps(st), st->n_reply, v->gen.n_seq, v->gen.ctx,
                (unsigned long long)c->o->s.o.seed);
}

static void json_reply(struct chat *c)
{
    const nb_convo *v = &c->convo;
    const nb_gen_stats *st = &v->st;
    char tail[512];
    snprintf(tail, sizeof tail,
             "\",\"stop\":\"%s\",\"prompt_tokens\":%d,\"prefill_tokens\":%d,"
             "\"reply_tokens\":%d,\"context_tokens\":%d,\"context_size\":%d,"
             "\"dropped_turns\":%d,\"prefill_tps\":%.2f,\"time_to_first_token_s\":%.4f,"
             "\"decode_tps\":%.2f,\"seed\":%llu}\n",
             stop_name(st->stop), v->n_prompt, st->n_prefill, st->n_reply, v->gen.n_seq,
             v->gen.ctx, v->dropped, nb_gen_prefill_tps(st), st->t_first,
             nb_gen_decode_tps(st), (unsigned long long)c->o->s.o.seed);
    if (!nb_chat_puts(&c->io, "{\"reply\":\"") && !nb_chat_json(&c->io, v->reply, v->reply_len))
        nb_chat_puts(&c->io, tail);
}

static void json_error(struct chat *c, const char *msg)
{
    if (c->o->json && !nb_chat_puts(&c->io, "{\"error\":\"") &&
        !nb_chat_json(&c->io, msg, strlen(msg)))
        nb_chat_puts(&c->io, "\"}\n");
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
    const nb_convo *v = &c->convo;
    nb_clear_interrupt(); /* a Ctrl-C as the reply ended was meant for the reply */
    if (c->o->json) {
        json_reply(c);
    } else if (!c->io.broken) {
        nb_chat_puts(&c->io, "\n");
        if (v->st.stop == NB_STOP_CANCEL)
            nb_chat_note(&c->io, "[reply stopped; it stays in the conversation]");
        if (v->st.stop == NB_STOP_FULL)
            nb_chat_note(&c->io, "[the context of %d tokens is full: the reply was cut]",
                         v->gen.ctx);
    }
    if (v->dropped)
        nb_chat_note(&c->io, "[context full: dropped the %d oldest turn%s (the system prompt "
                             "stays); re-read the rest]",
                     v->dropped, v->dropped > 1 ? "s" : "");
    if (c->io.interactive && !c->o->quiet)
        stats_line(c);
}

/* ---- a turn ---- */

static int turn(struct chat *c, const char *text, size_t len)
{
    nb_err e;
    int rc = nb_convo_ask(&c->convo, text, len, &e);
    if (rc) {
        refuse(c, "your message was not sent: %s%s", e.msg,
               rc == NB_CONVO_TOO_LONG ? " (raise -c or shorten it)" : "");
        return 0;
    }
    rc = nb_convo_reply(&c->convo, c->o->json ? NULL : nb_chat_write, &c->io, &e);
    c->replies++;
    if (rc) /* the model is broken (or memory ran out): no use going on */
        return fflush(stdout), nb_error("%s", e.msg), -1;
    after_reply(c);
    return c->io.broken || c->convo.st.stop == NB_STOP_WRITE ? -1 : 0;
}

/* ---- commands ---- */

static void set_system(struct chat *c, const char *text)
{
    nb_err e;
    if (nb_convo_set_system(&c->convo, text, &e))
        refuse(c, "the system prompt was not set: %s", e.msg);
    else
        nb_chat_note(&c->io, "[system prompt set; the conversation starts over]");
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
        nb_convo_forget(&c->convo), nb_chat_note(&c->io, "[the conversation starts over]");
    else if (!strcmp(line, "/stats"))
        stats_line(c);
    else if (!strcmp(line, "/system"))
        fprintf(stderr, "system prompt: %s\n", nb_convo_system(&c->convo));
    else if (!strncmp(line, "/system ", 8))
        set_system(c, line + 8);
    else
        fprintf(stderr, "unknown command '%s' (try /help)\n", line);
    return 1;
}

static int loop(struct chat *c)
{
    char *buf = NULL;
    size_t cap = 0;
    int rc = 0;
    while (nb_chat_read(&c->io, &buf, &cap) >= 0) {
        int cmd = command(c, buf);
        if (cmd < 0)
            break;
        const char *text = buf[0] == '/' ? buf + 1 : buf; /* "//x" sends "/x" */
        if (!cmd && (rc = turn(c, text, strlen(text))))
            break;
    }
    free(buf);
    return c->io.broken == 1 ? 0 : rc || c->io.ended == 2 ? 1 : 0;
}

/* ---- setup ---- */

static int open_chat(struct chat *c, const struct chat_opts *o)
{
    nb_err e = {{0}};
    memset(c, 0, sizeof *c);
    c->o = o;
    nb_chat_io_init(&c->io, o->quiet, o->json, o->multiline);
    if (nb_session_open_with(&c->s, o->model, (int)o->ctx, &o->run, &e) ||
        nb_sampler_init(&c->smp, (int)c->s.model.meta.vocab_size, &o->s.o, &e))
        return nb_error("%s", e.msg);
    nb_convo_opts co = {.t = pick_template(c), .max_tokens = (int)o->n,
                        .ignore_eos = o->ignore_eos, .no_think = o->no_think,
                        .should_stop = nb_stop_on_interrupt};
    if (nb_convo_init(&c->convo, &c->s, &c->smp, &co, &e) ||
        (o->system && nb_convo_set_system(&c->convo, o->system, &e)))
        return nb_error("%s", e.msg);
    nb_chat_io_edit(&c->io);
    return 0;
}

static void close_chat(struct chat *c)
{
    nb_chat_io_close(&c->io);
    nb_convo_free(&c->convo);
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
        if (c.io.interactive)
            nb_chat_note(&c.io, "nibble chat: %s, template %s, context %d tokens, %s kernels, "
                                "%d threads. /help for commands, Ctrl-D to quit.",
                         nb_utf8_escape(name, sizeof name, c.s.model.meta.name),
                         nb_template_name(c.convo.o.t), c.convo.gen.ctx,
                         nb_net_kernels(&c.s.net), nb_net_threads(&c.s.net));
        rc = loop(&c);
    }
    close_chat(&c);
    return rc;
}
