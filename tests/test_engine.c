/* The engine (runtime/session.h, gen.h, convo.h) without the CLI, on
 * stories260K: greedy generation against the numpy reference's tokens, a
 * cancellation through the should_stop callback, and a conversation whose
 * second turn makes the context overflow, both before its reply (the
 * oldest turn dropped when the message is rendered) and while it runs
 * (dropped mid-reply, the reply going on).
 *   test_engine stories260K.bin tok512.model greedy200.txt */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../runtime/convo.h"
#include "../runtime/gen.h"
#include "../runtime/session.h"
#include "../tools/import/convert.h"
#include "testutil.h"

enum { GOLDEN = 200 };

/* Collects the tokens, and asks to stop after `cancel_after` of them (0:
 * never), as a Ctrl-C handler or a server slot's cancel flag would. */
struct run {
    int32_t ids[GOLDEN];
    int n, cancel_after, asked;
};

static int on_token(void *ctx, int id)
{
    struct run *r = ctx;
    if (r->n < GOLDEN)
        r->ids[r->n++] = id;
    return 0;
}

static int should_stop(void *ctx)
{
    struct run *r = ctx;
    r->asked++;
    return r->cancel_after && r->n >= r->cancel_after;
}

static int read_golden(const char *path, int32_t *ids)
{
    FILE *f = fopen(path, "r");
    char line[256];
    int n = 0;
    while (f && n < GOLDEN && fgets(line, sizeof line, f))
        if (line[0] >= '0' && line[0] <= '9') /* not the comment */
            ids[n++] = (int32_t)atoi(line);
    if (f)
        fclose(f);
    return n;
}

/* Greedy from BOS, past the end ids, through nb_gen_run. */
static void generate(nb_session *s, struct run *r, nb_gen_stats *st)
{
    nb_sampler smp;
    nb_gen g;
    nb_err e = {{0}};
    nb_sampler_opts so = {.temp = 0, .top_p = 1};
    int32_t bos = s->bos;
    memset(st, 0, sizeof *st);
    st->stop = -1;
    if (nb_sampler_init(&smp, (int)s->model.meta.vocab_size, &so, &e) ||
        nb_gen_init(&g, s, &smp, &e) || nb_gen_prompt(&g, &bos, 1, &e)) {
        CHECK(0, "%s", e.msg);
        return;
    }
    nb_gen_opts o = {.max_tokens = GOLDEN, .ignore_eos = 1, .should_stop = should_stop,
                     .stop_ctx = r};
    nb_gen_sink sink = {.token = on_token, .ctx = r};
    nb_gen_run(&g, &o, &sink, st);
    nb_gen_free(&g);
    nb_sampler_free(&smp);
}

static void test_greedy(nb_session *s, const int32_t *golden)
{
    struct run r = {0};
    nb_gen_stats st;
    generate(s, &r, &st);
    CHECK(st.stop == NB_STOP_LENGTH && r.n == GOLDEN, "stop %d after %d tokens", st.stop, r.n);
    int same = 0;
    while (same < r.n && r.ids[same] == golden[same])
        same++;
    CHECK(same == GOLDEN, "greedy tokens differ from the reference at %d", same);
    CHECK(r.asked >= GOLDEN, "should_stop asked %d times for %d tokens", r.asked, GOLDEN);
    printf("greedy: %d/%d tokens equal to the numpy reference\n", same, GOLDEN);
}

static void test_cancel(nb_session *s, const int32_t *golden)
{
    struct run r = {.cancel_after = 17};
    nb_gen_stats st;
    generate(s, &r, &st);
    CHECK(st.stop == NB_STOP_CANCEL, "stop %d, expected a cancellation", st.stop);
    CHECK(r.n == 17 && st.n_reply == 17, "%d tokens (%d counted) before the cancel", r.n,
          st.n_reply);
    CHECK(!memcmp(r.ids, golden, 17 * sizeof *golden), "the tokens before the cancel differ");
    /* Cancelled before anything runs: no prefill, no token. */
    struct run now = {.cancel_after = -1};
    generate(s, &now, &st);
    CHECK(st.stop == NB_STOP_CANCEL && now.n == 0 && st.n_steps == 0,
          "an immediate cancel: stop %d, %d tokens", st.stop, now.n);
    printf("cancel: stopped after 17 tokens, and before the first\n");
}

/* The conversation's text callback: counts what it is handed. */
static int on_text(void *ctx, const char *s, size_t n)
{
    (void)s;
    *(size_t *)ctx += n;
    return 0;
}

/* A conversation's should_stop: after `after` tokens of a reply (0: never). */
struct cancel {
    const nb_gen *g;
    int after;
};

static int stop_reply(void *ctx)
{
    const struct cancel *k = ctx;
    return k->after && k->g->n_seq - k->g->n_prompt >= k->after;
}

/* The KV cache holds exactly the sequence it claims to. */
static int cache_in_step(const nb_gen *g)
{
    for (int i = 0; i < g->n_cached; i++)
        if (g->cached[i] != g->seq[i])
            return 0;
    return g->n_cached >= g->n_seq - 1;
}

static int open_convo(nb_convo *c, nb_session *s, nb_sampler *smp, int max_tokens,
                      struct cancel *k)
{
    nb_err e = {{0}};
    nb_convo_opts o = {.t = nb_template_find("llama2"), .max_tokens = max_tokens,
                       .ignore_eos = 1, .should_stop = stop_reply, .stop_ctx = k};
    if (nb_convo_init(c, s, smp, &o, &e)) {
        CHECK(0, "%s", e.msg);
        return -1;
    }
    k->g = &c->gen;
    return 0;
}

static int say(nb_convo *c, const char *msg, size_t *shown)
{
    nb_err e = {{0}};
    int rc = nb_convo_ask(c, msg, strlen(msg), &e);
    CHECK(rc == 0, "'%s' not sent (%d): %s", msg, rc, e.msg);
    if (!rc && nb_convo_reply(c, on_text, shown, &e)) {
        CHECK(0, "reply: %s", e.msg);
        rc = -1;
    }
    return rc;
}

static const char long_msg[] = "Once upon a time there was a little girl who liked to play in "
                               "the park with her dog.";

/* Replies of 16 tokens: the second message does not fit beside the first
 * turn, which is dropped before the reply; the cache is run again past
 * the head the two prompts share, and the reply is the one the message
 * alone gets in a new conversation. */
static void test_trim_before_reply(nb_session *s, nb_sampler *smp)
{
    struct cancel k = {0};
    nb_convo c, fresh;
    size_t shown = 0, fresh_shown = 0;
    if (open_convo(&c, s, smp, 16, &k))
        return;
    int first = say(&c, "Tell me a story about a cat.", &shown);
    int last_end = c.gen.n_seq; /* the first turn's prompt and reply */
    shown = 0;
    if (!first && !say(&c, long_msg, &shown)) {
        CHECK(c.dropped == 1 && c.n_turns == 1, "dropped %d, %zu turns", c.dropped, c.n_turns);
        /* The new prompt shares only its head (BOS, [INST]) with the cache. */
        CHECK(c.st.n_prefill > c.n_prompt / 2 && c.st.n_prefill <= c.n_prompt - 1,
              "prefilled %d of a new prompt of %d", c.st.n_prefill, c.n_prompt);
        CHECK(c.st.stop == NB_STOP_LENGTH && c.st.n_reply == 16, "stop %d after %d", c.st.stop,
              c.st.n_reply);
        CHECK(shown == c.reply_len && shown > 0, "%zu bytes shown, %zu kept", shown, c.reply_len);
        CHECK(c.n_prompt + 16 <= c.gen.ctx && last_end + c.n_prompt + 16 > c.gen.ctx,
              "the message (%d tokens) would have fitted beside the first turn (%d)", c.n_prompt,
              last_end);
        printf("trim before the reply: 1 turn dropped, prompt %d, context %d/%d\n", c.n_prompt,
               c.gen.n_seq, c.gen.ctx);
    }
    /* The same message alone, in a new conversation on the same session. */
    if (!open_convo(&fresh, s, smp, 16, &k) && !say(&fresh, long_msg, &fresh_shown))
        CHECK(fresh.reply_len == c.reply_len && !memcmp(fresh.reply, c.reply, c.reply_len),
              "after trimming: '%s', alone: '%s'", c.reply, fresh.reply);
    nb_convo_free(&fresh);
    nb_convo_free(&c);
}

/* The first reply is cancelled after 8 tokens; the second message fits
 * beside it, but its uncapped reply fills the context: the first turn
 * goes mid-reply, and the reply goes on until the context is full with
 * the second turn alone. */
static void test_trim_while_replying(nb_session *s, nb_sampler *smp)
{
    struct cancel k = {.after = 8};
    nb_convo c;
    size_t shown = 0;
    if (open_convo(&c, s, smp, 0, &k))
        return;
    if (!say(&c, "Tell me a story.", &shown)) {
        CHECK(c.st.stop == NB_STOP_CANCEL && c.st.n_reply == 8, "first reply: stop %d after %d",
              c.st.stop, c.st.n_reply);
        k.after = 0;
        shown = 0;
        int before = c.gen.n_seq;
        if (!say(&c, "And then?", &shown)) {
            CHECK(c.dropped == 1 && c.n_turns == 1, "dropped %d, %zu turns", c.dropped,
                  c.n_turns);
            CHECK(c.st.stop == NB_STOP_FULL, "second reply: stop %d, not a full context",
                  c.st.stop);
            CHECK(c.n_prompt < before, "the prompt (%d) was not shortened", c.n_prompt);
            CHECK(c.gen.n_seq == c.gen.ctx + 1, "ended at %d of %d", c.gen.n_seq, c.gen.ctx);
            CHECK(cache_in_step(&c.gen), "the cache is out of step with the sequence");
            CHECK(shown == c.reply_len && shown > 0, "%zu bytes shown, %zu kept", shown,
                  c.reply_len);
            printf("trim while replying: 1 turn dropped mid-reply, %d reply tokens in a "
                   "context of %d\n",
                   c.st.n_reply, c.gen.ctx);
        }
    }
    nb_convo_free(&c);
}

/* A message that cannot fit even alone is refused before any turn is
 * dropped: the conversation keeps what it had. */
static void test_too_long_alone(nb_session *s, nb_sampler *smp)
{
    struct cancel k = {0};
    nb_convo c;
    size_t shown = 0;
    if (open_convo(&c, s, smp, 8, &k))
        return;
    char huge[2048];
    memset(huge, 0, sizeof huge);
    for (size_t i = 0; i + sizeof long_msg < sizeof huge; i += sizeof long_msg - 1)
        memcpy(huge + i, long_msg, sizeof long_msg - 1);
    if (!say(&c, "Hi.", &shown)) {
        nb_err e = {{0}};
        int rc = nb_convo_ask(&c, huge, strlen(huge), &e);
        CHECK(rc == NB_CONVO_TOO_LONG && strstr(e.msg, "more than the context"),
              "refusal %d: %s", rc, e.msg);
        CHECK(c.n_turns == 1 && c.dropped == 0, "the refusal cost %d turns (%zu left)",
              c.dropped, c.n_turns);
    }
    nb_convo_free(&c);
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: test_engine stories260K.bin tok512.model greedy200.txt\n");
        return 2;
    }
    int32_t golden[GOLDEN];
    CHECK(read_golden(argv[3], golden) == GOLDEN, "cannot read %d ids from %s", GOLDEN, argv[3]);
    char path[512];
    snprintf(path, sizeof path, "%s", tu_tmp("s260k.nib"));
    nb_convert_opts co = {.out_dtype = -1, .tokenizer_path = argv[2], .quiet = 1};
    nb_session s;
    nb_err e = {{0}};
    if (nb_import_llama2c(argv[1], path, &co, &e) || nb_session_open(&s, path, 0, &e)) {
        CHECK(0, "%s", e.msg);
        return tu_finish("engine");
    }
    test_greedy(&s, golden);
    test_cancel(&s, golden);
    nb_session_close(&s);
    /* A context of 64 positions, so that two short turns overflow it. */
    nb_sampler smp;
    nb_sampler_opts so = {.temp = 0, .top_p = 1};
    if (nb_session_open(&s, path, 64, &e) ||
        nb_sampler_init(&smp, (int)s.model.meta.vocab_size, &so, &e)) {
        CHECK(0, "%s", e.msg);
        return tu_finish("engine");
    }
    test_trim_before_reply(&s, &smp);
    test_trim_while_replying(&s, &smp);
    test_too_long_alone(&s, &smp);
    nb_sampler_free(&smp);
    nb_session_close(&s);
    return tu_finish("engine");
}
