/* The slots' jobs, their queue and the engine thread (slots.h). One lock
 * guards the queue, the jobs' shared fields and which slot holds which
 * job; the slots' running state is the engine thread's alone, so the
 * model runs with the lock released. */
#define _POSIX_C_SOURCE 200809L
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "slots_impl.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ---- jobs ---- */

static void job_unref(nb_job *j)
{
    if (--j->refs)
        return;
    free(j->prompt);
    free(j->text);
    free(j);
}

/* The owner hears about it (under the lock). */
static void job_wake(nb_job *j)
{
    if (!j->released && j->wake)
        j->wake(j->wake_ctx);
}

static void job_end(nb_job *j, int finish)
{
    j->st.finish = finish;
    job_wake(j);
}

static int append(nb_job *j, const char *s, size_t n)
{
    if (j->len + n > j->cap) {
        size_t cap = j->cap ? 2 * j->cap : 1024;
        while (cap < j->len + n)
            cap *= 2;
        char *p = realloc(j->text, cap);
        if (!p)
            return -1;
        j->text = p;
        j->cap = cap;
    }
    memcpy(j->text + j->len, s, n);
    j->len += n;
    return 0;
}

/* Checks what the engine would only find out later. */
static int check_opts(const nb_slots *sl, int n, const nb_job_opts *o, nb_err *e)
{
    if (n < 1 || n > sl->ctx)
        return nb_fail(e, "the prompt is %d tokens, more than the context of %d holds", n,
                       sl->ctx);
    for (int i = 0; o->stops[i]; i++) {
        if (i == NB_JOB_STOPS)
            return nb_fail(e, "at most %d stop strings", NB_JOB_STOPS);
        size_t len = strlen(o->stops[i]);
        if (!len || len >= NB_STOP_MAX)
            return nb_fail(e, "a stop string must have 1 to %d bytes", NB_STOP_MAX - 1);
    }
    if (!(o->presence >= -2 && o->presence <= 2) || !(o->frequency >= -2 && o->frequency <= 2))
        return nb_fail(e, "presence and frequency penalties must be between -2 and 2");
    nb_sampler probe; /* the sampler's own checks and words */
    if (nb_sampler_init(&probe, 1, &o->smp, e))
        return -1;
    nb_sampler_free(&probe);
    return 0;
}

static nb_job *job_new(const int32_t *prompt, int n, const nb_job_opts *o)
{
    nb_job *j = calloc(1, sizeof *j);
    if (!j || !(j->prompt = malloc((size_t)n * sizeof *prompt))) {
        free(j);
        return NULL;
    }
    memcpy(j->prompt, prompt, (size_t)n * sizeof *prompt);
    j->n_prompt = n;
    j->o = *o;
    for (int i = 0; o->stops[i]; i++) {
        strcpy(j->stop_buf[i], o->stops[i]); /* checked: shorter than NB_STOP_MAX */
        j->o.stops[i] = j->stop_buf[i];
    }
    j->st.n_prompt = n;
    return j;
}

static int free_slots(const nb_slots *sl)
{
    int n = 0;
    for (int i = 0; i < sl->o.n_slots; i++)
        n += !sl->slot[i].job;
    return n;
}

nb_job *nb_slots_submit(nb_slots *sl, const int32_t *prompt, int n, const nb_job_opts *o,
                        void (*wake)(void *ctx), void *ctx, int *why, nb_err *e)
{
    *why = NB_SLOTS_BAD;
    if (check_opts(sl, n, o, e))
        return NULL;
    nb_job *j = job_new(prompt, n, o);
    if (!j)
        return nb_fail(e, "out of memory"), NULL;
    j->sl = sl;
    j->wake = wake;
    j->wake_ctx = ctx;
    j->refs = 2;
    pthread_mutex_lock(&sl->lock);
    if (sl->stopping || sl->queued >= free_slots(sl) + sl->o.queue) {
        pthread_mutex_unlock(&sl->lock);
        j->refs = 1; /* never queued: the owner's only */
        job_unref(j);
        *why = NB_SLOTS_BUSY;
        return nb_fail(e, sl->stopping ? "the server is shutting down"
                                       : "every slot is busy and the queue is full"),
               NULL;
    }
    if (sl->tail)
        sl->tail->next = j;
    else
        sl->head = j;
    sl->tail = j;
    sl->queued++;
    sl->stats.jobs++;
    sl->stats.prompt_tokens += (unsigned)n;
    pthread_cond_signal(&sl->cond);
    pthread_mutex_unlock(&sl->lock);
    return j;
}

/* The longest start of buf[n] (a cut of UTF-8 text) that ends on a
 * character boundary. */
static size_t whole_chars(const char *buf, size_t n)
{
    size_t i = n;
    while (i > 0 && n - i < 3 && ((unsigned char)buf[i - 1] & 0xC0) == 0x80)
        i--; /* back over continuation bytes to the last lead byte */
    if (i == 0)
        return n;
    unsigned char lead = (unsigned char)buf[i - 1];
    size_t need = lead < 0x80 ? 1 : lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : 2;
    return n - (i - 1) >= need ? n : i - 1;
}

size_t nb_job_read(nb_job *j, char *buf, size_t cap, nb_job_status *st)
{
    pthread_mutex_lock(&j->sl->lock);
    size_t n = j->len - j->read;
    if (n > cap)
        n = whole_chars(j->text + j->read, cap);
    if (n) /* text is NULL before the first */
        memcpy(buf, j->text + j->read, n);
    j->read += n;
    *st = j->st;
    if (j->read < j->len)
        st->finish = NB_FINISH_NONE; /* more to read first */
    pthread_mutex_unlock(&j->sl->lock);
    return n;
}

void nb_job_release(nb_job *j)
{
    nb_slots *sl = j->sl;
    pthread_mutex_lock(&sl->lock);
    j->released = 1;
    pthread_cond_signal(&sl->cond); /* reaped at the next step */
    job_unref(j);
    pthread_mutex_unlock(&sl->lock);
}

/* ---- replies remembered ---- */

static void remember(nb_slots *sl, const struct slot *t)
{
    int size = sl->o.history;
    struct reply_ids *r = &sl->hist[sl->hist_at];
    int n = t->n_seq - t->n_prompt;
    char *text = malloc(t->reply_len + 1);
    int32_t *ids = malloc((n ? (size_t)n : 1) * sizeof *ids);
    if (!text || !ids) {
        free(text), free(ids);
        return;
    }
    free(r->text), free(r->ids);
    memcpy(text, t->reply ? t->reply : "", t->reply_len);
    memcpy(ids, t->seq + t->n_prompt, (size_t)n * sizeof *ids);
    *r = (struct reply_ids){text, t->reply_len, ids, (size_t)n};
    sl->hist_at = (sl->hist_at + 1) % size;
}

int nb_slots_reply_ids(nb_slots *sl, const char *text, size_t len, int32_t **ids, size_t *n)
{
    int found = 0;
    pthread_mutex_lock(&sl->lock);
    for (int i = 0; i < sl->o.history && !found; i++) {
        const struct reply_ids *r = &sl->hist[i];
        if (!r->text || r->len != len || memcmp(r->text, text, len))
            continue;
        if ((*ids = malloc((r->n ? r->n : 1) * sizeof **ids))) {
            memcpy(*ids, r->ids, r->n * sizeof **ids);
            *n = r->n;
            found = 1;
        }
    }
    pthread_mutex_unlock(&sl->lock);
    return found;
}

/* ---- the engine thread ---- */

/* The slot lets its job go (under the lock): its cache stays. */
static void vacate(struct slot *t)
{
    nb_slot_teardown(t);
    job_unref(t->job);
    t->job = NULL;
    t->fresh = 0;
}

/* Released jobs leave their slots and the queue; on shutdown every
 * running job ends. */
static void reap(nb_slots *sl)
{
    for (int i = 0; i < sl->o.n_slots; i++) {
        struct slot *t = &sl->slot[i];
        if (t->job && sl->stopping && !t->job->released)
            job_end(t->job, NB_FINISH_SHUTDOWN);
        if (t->job && (t->job->released || sl->stopping))
            vacate(t);
    }
    for (nb_job **p = &sl->head; *p;) {
        nb_job *j = *p;
        if (!j->released) {
            p = &j->next;
            continue;
        }
        *p = j->next;
        sl->queued--;
        job_unref(j);
    }
    sl->tail = NULL;
    for (nb_job *j = sl->head; j; j = j->next)
        sl->tail = j;
}

static int common_prefix(const struct slot *t, const nb_job *j)
{
    int n = 0;
    while (n < t->n_cached && n < j->n_prompt && t->cached[n] == j->prompt[n])
        n++;
    return n;
}

/* Queued jobs, first come first served, into the free slots: each to the
 * one whose cache shares the longest prefix with its prompt. */
static void admit(nb_slots *sl)
{
    while (sl->head) {
        struct slot *best = NULL;
        int best_n = -1;
        for (int i = 0; i < sl->o.n_slots; i++) {
            struct slot *t = &sl->slot[i];
            int n = t->job ? -1 : common_prefix(t, sl->head);
            if (n > best_n)
                best = t, best_n = n;
        }
        if (!best)
            return;
        nb_job *j = sl->head;
        sl->head = j->next;
        if (!sl->head)
            sl->tail = NULL;
        sl->queued--;
        j->next = NULL;
        j->st.started = 1;
        best->job = j;
        best->fresh = 1;
    }
}

static int busy(const nb_slots *sl)
{
    int n = 0;
    for (int i = 0; i < sl->o.n_slots; i++)
        n += sl->slot[i].job != NULL;
    return n;
}

static void count_rate(nb_slots *sl)
{
    double t = now();
    sl->last_step = t;
    if (t - sl->win_t0 >= 2) {
        sl->stats.decode_tps = (double)(sl->stats.generated - sl->win_gen) / (t - sl->win_t0);
        sl->win_t0 = t;
        sl->win_gen = sl->stats.generated;
    }
}

/* What the step produced goes to the jobs (under the lock). */
static void deliver(nb_slots *sl)
{
    for (int i = 0; i < sl->o.n_slots; i++) {
        struct slot *t = &sl->slot[i];
        nb_job *j = t->job;
        if (!j || j->released || t->fresh)
            continue;
        size_t n = t->reply_len - t->delivered;
        if (n && append(j, t->reply + t->delivered, n) && !t->finish) {
            t->finish = NB_FINISH_ERROR;
            nb_fail(&t->err, "out of memory");
        }
        t->delivered = t->reply_len;
        sl->stats.generated += (unsigned)(t->n_reply - j->st.n_reply);
        j->st.n_cached = t->n_reused;
        j->st.n_reply = t->n_reply;
        if (!t->finish) {
            if (n)
                job_wake(j);
            continue;
        }
        j->st.err = t->err;
        if (t->ids_ok && t->finish != NB_FINISH_ERROR)
            remember(sl, t);
        job_end(j, t->finish);
        vacate(t);
    }
    count_rate(sl);
}

/* Sets up the jobs just admitted (the lock released: it allocates). */
static void setup_fresh(nb_slots *sl)
{
    for (int i = 0; i < sl->o.n_slots; i++)
        if (sl->slot[i].fresh)
            nb_slot_setup(sl, &sl->slot[i]);
}

static void mark_set_up(nb_slots *sl)
{
    for (int i = 0; i < sl->o.n_slots; i++)
        sl->slot[i].fresh = 0;
}

static void *engine(void *arg)
{
    nb_slots *sl = arg;
    pthread_mutex_lock(&sl->lock);
    while (!sl->quit) {
        reap(sl);
        admit(sl);
        if (!busy(sl)) {
            sl->stats.decode_tps = now() - sl->last_step > 2 ? 0 : sl->stats.decode_tps;
            pthread_cond_wait(&sl->cond, &sl->lock);
            continue;
        }
        pthread_mutex_unlock(&sl->lock);
        setup_fresh(sl);
        pthread_mutex_lock(&sl->lock);
        mark_set_up(sl); /* under the lock: deliver reads it */
        pthread_mutex_unlock(&sl->lock);
        int prefilled = nb_slots_step(sl);
        pthread_mutex_lock(&sl->lock);
        sl->stats.steps++;
        sl->stats.prefilled += (unsigned)prefilled;
        deliver(sl);
    }
    pthread_mutex_unlock(&sl->lock);
    return NULL;
}

/* ---- life ---- */

static int alloc(nb_slots *sl)
{
    int n = sl->o.n_slots, rows = n + sl->o.step_tokens;
    sl->slot = calloc((size_t)n, sizeof *sl->slot);
    sl->hist = calloc((size_t)sl->o.history, sizeof *sl->hist);
    sl->b_tok = malloc((size_t)rows * sizeof *sl->b_tok);
    sl->b_seq = malloc((size_t)rows * sizeof *sl->b_seq);
    sl->b_pos = malloc((size_t)rows * sizeof *sl->b_pos);
    sl->b_want = malloc((size_t)rows);
    sl->b_slots = malloc((size_t)n * sizeof *sl->b_slots);
    sl->logits = malloc((size_t)n * (size_t)sl->vocab * sizeof *sl->logits);
    if (!sl->slot || !sl->hist || !sl->b_tok || !sl->b_seq || !sl->b_pos || !sl->b_want ||
        !sl->b_slots || !sl->logits)
        return -1;
    for (int i = 0; i < n; i++) {
        sl->slot[i].id = i;
        if (nb_slot_alloc(sl, &sl->slot[i]))
            return -1;
    }
    return 0;
}

static void release_all(nb_slots *sl)
{
    for (int i = 0; sl->slot && i < sl->o.n_slots; i++)
        nb_slot_free(&sl->slot[i]);
    for (int i = 0; sl->hist && i < sl->o.history; i++)
        free(sl->hist[i].text), free(sl->hist[i].ids);
    free(sl->slot), free(sl->hist);
    free(sl->b_tok), free(sl->b_seq), free(sl->b_pos), free(sl->b_want), free(sl->logits);
    free(sl->b_slots);
    free(sl);
}

nb_slots *nb_slots_start(nb_session *s, const nb_slots_opts *o, nb_err *e)
{
    if (o->n_slots < 1 || o->n_slots > nb_net_sequences(&s->net))
        return nb_fail(e, "%d slots: the model was opened for %d sequences", o->n_slots,
                       nb_net_sequences(&s->net)),
               NULL;
    if (o->queue < 0)
        return nb_fail(e, "a queue of %d", o->queue), NULL;
    nb_slots *sl = calloc(1, sizeof *sl);
    if (!sl)
        return nb_fail(e, "out of memory"), NULL;
    sl->s = s;
    sl->o = *o;
    sl->o.step_tokens = o->step_tokens > 0 ? o->step_tokens : 128;
    sl->o.history = o->history > 0 ? o->history : 4 * o->n_slots;
    sl->vocab = (int)s->model.meta.vocab_size;
    sl->ctx = s->net.ctx;
    sl->stats.n_slots = o->n_slots;
    sl->win_t0 = now();
    if (alloc(sl)) {
        release_all(sl);
        return nb_fail(e, "out of memory for %d slots", o->n_slots), NULL;
    }
    pthread_mutex_init(&sl->lock, NULL);
    pthread_cond_init(&sl->cond, NULL);
    if (pthread_create(&sl->thread, NULL, engine, sl)) {
        pthread_mutex_destroy(&sl->lock);
        pthread_cond_destroy(&sl->cond);
        release_all(sl);
        return nb_fail(e, "cannot start the engine thread"), NULL;
    }
    sl->started = 1;
    return sl;
}

void nb_slots_shutdown(nb_slots *sl)
{
    pthread_mutex_lock(&sl->lock);
    sl->stopping = 1;
    while (sl->head) {
        nb_job *j = sl->head;
        sl->head = j->next;
        job_end(j, NB_FINISH_SHUTDOWN);
        job_unref(j);
    }
    sl->tail = NULL;
    sl->queued = 0;
    pthread_cond_signal(&sl->cond);
    pthread_mutex_unlock(&sl->lock);
}

void nb_slots_free(nb_slots *sl)
{
    if (!sl)
        return;
    nb_slots_shutdown(sl);
    pthread_mutex_lock(&sl->lock);
    sl->quit = 1;
    pthread_cond_signal(&sl->cond);
    pthread_mutex_unlock(&sl->lock);
    pthread_join(sl->thread, NULL);
    for (int i = 0; i < sl->o.n_slots; i++)
        if (sl->slot[i].job) /* ended by the shutdown, not reaped yet */
            vacate(&sl->slot[i]);
    pthread_mutex_destroy(&sl->lock);
    pthread_cond_destroy(&sl->cond);
    release_all(sl);
}

void nb_slots_get_stats(nb_slots *sl, nb_slots_stats *st)
{
    pthread_mutex_lock(&sl->lock);
    *st = sl->stats;
    st->busy = busy(sl);
    st->queued = sl->queued;
    if (now() - sl->last_step > 2)
        st->decode_tps = 0;
    pthread_mutex_unlock(&sl->lock);
}
