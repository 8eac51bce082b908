/* The server's slots (runtime/slots.h) without HTTP, on stories260K:
 * greedy text from BOS equal to the numpy reference's tokens decoded;
 * seven jobs on four slots (greedy and seeded, prompts of several
 * lengths, a prompt longer than a step's budget) each giving exactly the
 * text it gives alone; a prompt that extends a finished one reusing its
 * cache; a job released mid-reply freeing its slot; shutdown ending a
 * running job. Runs under qemu too, where the HTTP tests do not.
 *   test_slots stories260K.bin tok512.model greedy200.txt */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../runtime/slots.h"
#include "../tools/import/convert.h"
#include "testutil.h"

enum { GOLDEN = 200, JOBS = 7 };

static void nap(void)
{
    struct timespec t = {0, 1000 * 1000};
    nanosleep(&t, NULL);
}

/* Reads a job to its end into text (cap bytes); its status in st. */
static void drain(nb_job *j, char *text, size_t cap, nb_job_status *st)
{
    size_t len = 0, n;
    for (;;) {
        n = nb_job_read(j, text + len, cap - 1 - len, st);
        len += n;
        if (!n && st->finish)
            break;
        if (!n)
            nap();
    }
    text[len] = 0;
}

static nb_job *submit(nb_slots *sl, const int32_t *ids, int n, int max, float temp,
                      uint64_t seed)
{
    nb_job_opts o = {.smp = {.temp = temp, .top_k = 40, .top_p = 0.9f, .seed = seed},
                     .max_tokens = max, .ignore_eos = 1, .continues = 1};
    nb_err e = {{0}};
    int why;
    nb_job *j = nb_slots_submit(sl, ids, n, &o, NULL, NULL, &why, &e);
    CHECK(j, "submit: %s", e.msg);
    return j;
}

static void test_golden(nb_slots *sl, nb_session *s, const int32_t *golden)
{
    static char text[8192];
    nb_job_status st;
    nb_err e;
    int32_t bos = s->bos;
    nb_job_opts o = {.smp = {.temp = 0, .top_p = 1}, .max_tokens = GOLDEN, .ignore_eos = 1};
    int why;
    nb_job *j = nb_slots_submit(sl, &bos, 1, &o, NULL, NULL, &why, &e);
    if (!j) {
        CHECK(0, "%s", e.msg);
        return;
    }
    drain(j, text, sizeof text, &st);
    nb_job_release(j);
    char *want = nb_tok_decode(s->tok, golden, GOLDEN, &e);
    CHECK(want && !strcmp(text, want), "greedy text from BOS differs:\n%s\n%s", text,
          want ? want : e.msg);
    CHECK(st.finish == NB_FINISH_LENGTH && st.n_reply == GOLDEN, "finish %d after %d tokens",
          st.finish, st.n_reply);
    printf("golden: %d greedy tokens from BOS, the reference's text\n", st.n_reply);
    free(want);
}

/* Each job alone, then all at once: the same texts. */
static void test_batched(nb_slots *sl, const int32_t *golden)
{
    static char alone[JOBS][4096], together[JOBS][4096];
    static const int len[JOBS] = {1, 5, 17, 3, 150, 40, 9};
    nb_job *j[JOBS];
    nb_job_status st;
    for (int i = 0; i < JOBS; i++) {
        j[i] = submit(sl, golden, len[i], 30 + 7 * i, i % 2 ? 0.8f : 0, 100 + (uint64_t)i);
        if (j[i])
            drain(j[i], alone[i], sizeof alone[i], &st), nb_job_release(j[i]);
    }
    for (int i = 0; i < JOBS; i++)
        j[i] = submit(sl, golden, len[i], 30 + 7 * i, i % 2 ? 0.8f : 0, 100 + (uint64_t)i);
    int same = 0;
    for (int i = 0; i < JOBS; i++)
        if (j[i]) {
            drain(j[i], together[i], sizeof together[i], &st);
            nb_job_release(j[i]);
            same += !strcmp(alone[i], together[i]);
        }
    CHECK(same == JOBS, "%d of %d batched jobs give their text alone", same, JOBS);
    printf("batched: %d jobs on 4 slots, each the text it gives alone\n", same);
}

static void test_cache(nb_slots *sl, const int32_t *golden)
{
    static char text[4096];
    nb_job_status st;
    nb_job *j = submit(sl, golden, 60, 5, 0, 1);
    if (j)
        drain(j, text, sizeof text, &st), nb_job_release(j);
    j = submit(sl, golden, 80, 5, 0, 1);
    if (!j)
        return;
    drain(j, text, sizeof text, &st);
    nb_job_release(j);
    CHECK(st.n_cached >= 60, "a prompt extending a finished one: %d of 80 cached", st.n_cached);
    printf("cache: %d of %d prompt tokens reused\n", st.n_cached, st.n_prompt);
}

static int busy(nb_slots *sl)
{
    nb_slots_stats st;
    nb_slots_get_stats(sl, &st);
    return st.busy + st.queued;
}

static void test_release(nb_slots *sl, const int32_t *golden)
{
    static char text[64];
    nb_job_status st;
    nb_job *j = submit(sl, golden, 1, 400, 0.8f, 7);
    if (!j)
        return;
    while (!nb_job_read(j, text, sizeof text, &st))
        nap();
    nb_job_release(j);
    int waited = 0;
    while (busy(sl) && waited++ < 5000)
        nap();
    CHECK(!busy(sl), "a released job still holds its slot");
    printf("release: the slot is free again\n");
}

static void test_shutdown(nb_slots *sl, const int32_t *golden)
{
    static char text[8192];
    nb_job_status st;
    nb_job *j = submit(sl, golden, 1, 400, 0.8f, 9);
    if (!j)
        return;
    while (!nb_job_read(j, text, 64, &st))
        nap();
    nb_slots_shutdown(sl);
    drain(j, text, sizeof text, &st);
    nb_job_release(j);
    CHECK(st.finish == NB_FINISH_SHUTDOWN, "finish %d after a shutdown", st.finish);
    nb_err e;
    int why;
    nb_job_opts o = {.smp = {.top_p = 1}};
    CHECK(!nb_slots_submit(sl, golden, 1, &o, NULL, NULL, &why, &e) && why == NB_SLOTS_BUSY,
          "a job after the shutdown: %d", why);
    printf("shutdown: the running job ends, new ones are refused\n");
}

static int read_golden(const char *path, int32_t *ids)
{
    FILE *f = fopen(path, "r");
    char line[256];
    int n = 0;
    while (f && n < GOLDEN && fgets(line, sizeof line, f))
        if (line[0] >= '0' && line[0] <= '9')
            ids[n++] = (int32_t)atoi(line);
    if (f)
        fclose(f);
    return n;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: test_slots stories260K.bin tok512.model greedy200.txt\n");
        return 2;
    }
    int32_t golden[GOLDEN + 1];
    CHECK(read_golden(argv[3], golden + 1) == GOLDEN, "cannot read %d ids", GOLDEN);
    char path[512];
    snprintf(path, sizeof path, "%s", tu_tmp("s260k.nib"));
    nb_convert_opts co = {.out_dtype = -1, .tokenizer_path = argv[2], .quiet = 1};
    nb_session_opts so = {.run = {.threads = 2, .min_chunk = 1, .n_seq = 4}};
    nb_slots_opts o = {.n_slots = 4, .queue = 8, .step_tokens = 32};
    nb_session s;
    nb_err e = {{0}};
    nb_slots *sl = NULL;
    if (nb_import_llama2c(argv[1], path, &co, &e) ||
        nb_session_open_with(&s, path, 0, &so, &e) || !(sl = nb_slots_start(&s, &o, &e))) {
        CHECK(0, "%s", e.msg);
        return tu_finish("slots");
    }
    golden[0] = s.bos;
    test_golden(sl, &s, golden + 1);
    test_batched(sl, golden);
    test_cache(sl, golden);
    test_release(sl, golden);
    test_shutdown(sl, golden);
    nb_slots_free(sl);
    nb_session_close(&s);
    tu_cleanup();
    return tu_finish("slots");
}
