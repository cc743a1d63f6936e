/* Queue + batcher thread + deadline janitor. One mutex guards the queue and every
 * ticket's state; done callbacks always run after it is released. */
#include "engine/sched/sched.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/sched/sched_clients.h"

typedef enum { T_QUEUED, T_RUNNING, T_FINISHED } ticket_state;

/* A queued ticket is on three lists: its priority's (in arrival order: the places, in
 * rank order), the arrival list of every queued ticket (deadlines expire in it; a
 * request's jobs stay side by side), and its priority's fair list (by start tag, then
 * arrival: which job fills each place). Passes merge the three priorities' places in rank
 * order and fill each with the next job of that priority's fair list. Without fair_share,
 * or with one client, the fair lists are in arrival order: a job fills its own place and
 * insertions walk nothing; otherwise an insertion walks from both ends of its fair list
 * (a newcomer's place is near the head, a backlogged client's at the tail). */
enum { N_PRIO = VP_PRIORITY_LOW + 1, L_ARRIVAL = N_PRIO, L_FAIR, N_LISTS = L_FAIR + N_PRIO };
/* which of a ticket's link pairs list l uses */
#define LINKS(l) ((l) < N_PRIO ? 0 : (l) == L_ARRIVAL ? 1 : 2)

enum { POOL_HIGH = 0, POOL_REST = 1 };
#define POOL_OF(prio) ((prio) == VP_PRIORITY_HIGH ? POOL_HIGH : POOL_REST)

typedef struct ticket_links {
    vp_sched_ticket *prev, *next;
} ticket_links;

struct vp_sched_ticket {
    ticket_links by[3];             /* queue links while T_QUEUED: [0] its priority's
                                     * list, [1] the arrival list, [2] its priority's fair
                                     * list; by[0].next also chains finished tickets for
                                     * complete_list */
    sched_client *client;           /* while T_QUEUED */
    double tag;                     /* start tag: its order in the fair list */
    double fin;                     /* its finish: tag + tokens / weight */
    vp_job *job;
    void (*job_free)(vp_job *);
    vp_sched_done_fn done;
    void *user;
    double t_origin, t_submit, deadline; /* vp_sched_now_ms clock; deadline 0 = none */
    double rank;                    /* t_submit moved by the priority (priority_boost_ms
                                     * earlier for high, later for low): smallest first */
    vp_priority priority;
    unsigned long long seq;         /* arrival order: ties of rank go to the older */
    double queue_ms;
    unsigned long long request;     /* the vp_sched_submit call that queued it */
    bool started;                   /* a sibling of this request ran: no queue deadline */
    ticket_state state;
    bool cancelled;
    bool expired;
    int rc;                         /* 0 ok, -1 error (err) */
    vp_error err;
    atomic_int refs;
};

struct vp_sched {
    vp_sched_options opt;
    vp_sched_engine eng;
    pthread_mutex_t mu;
    pthread_cond_t work_cv;    /* engine thread: queue non-empty or stop */
    pthread_cond_t janitor_cv; /* janitor: queue head changed or stop */
    pthread_cond_t idle_cv;    /* waiters of vp_sched_wait_idle */
    vp_sched_ticket *head[N_LISTS], *tail[N_LISTS]; /* the priorities', L_ARRIVAL, the
                                                     * priorities' fair lists */
    sched_clients clients;     /* who has jobs queued */
    double vtime[N_PRIO];      /* virtual time: the largest start tag taken, per priority
                                * (start-time fair queueing: a newcomer is tagged where the
                                * work being served starts, not past a large job taken; a
                                * client back with a new job while its last one runs is
                                * tagged after it by its record's finish, kept while it runs) */
    unsigned long long seq;    /* tickets queued so far */
    size_t depth;
    size_t queued_tiles; /* sum of job_tiles over the queue */
    /* the same by admission pool (POOL_HIGH, POOL_REST): high-priority work has bounds of
     * its own, so a backlog of bulk work never refuses it */
    size_t pool_depth[2], pool_tiles[2];
    size_t running;            /* jobs in the current pass */
    size_t jobs_run, passes;
    unsigned long long requests; /* vp_sched_submit calls that queued work */
    bool draining, stopping;
    pthread_t engine_thread, janitor_thread;
};

double vp_sched_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* The absolute time ms milliseconds from now on clock (at least 1 ms ahead). */
static struct timespec timespec_in(clockid_t clock, double ms)
{
    if (ms < 1.0)
        ms = 1.0;
    struct timespec ts;
    clock_gettime(clock, &ts);
    long long ns = (long long)ts.tv_nsec + (long long)(ms * 1e6);
    ts.tv_sec += (time_t)(ns / 1000000000LL);
    ts.tv_nsec = (long)(ns % 1000000000LL);
    return ts;
}

static void list_unlink(vp_sched *s, vp_sched_ticket *t, int l)
{
    int k = LINKS(l);
    ticket_links *lk = &t->by[k];
    if (lk->prev)
        lk->prev->by[k].next = lk->next;
    else
        s->head[l] = lk->next;
    if (lk->next)
        lk->next->by[k].prev = lk->prev;
    else
        s->tail[l] = lk->prev;
    lk->prev = lk->next = NULL;
}

static void list_append(vp_sched *s, vp_sched_ticket *t, int l)
{
    int k = LINKS(l);
    t->by[k].prev = s->tail[l];
    t->by[k].next = NULL;
    if (s->tail[l])
        s->tail[l]->by[k].next = t;
    else
        s->head[l] = t;
    s->tail[l] = t;
}

/* Whether a comes after b in a fair list: a later tag, or the same and queued later. */
static bool fair_after(const vp_sched_ticket *a, const vp_sched_ticket *b)
{
    return a->tag > b->tag || (a->tag == b->tag && a->seq > b->seq);
}

/* Inserts t into its priority's fair list, after the last ticket it comes after: from
 * hint forwards (a ticket it comes after: the previous job of its request), else from
 * both ends at once. */
static void fair_insert(vp_sched *s, vp_sched_ticket *t, vp_sched_ticket *hint)
{
    const int l = L_FAIR + (int)t->priority, k = LINKS(l);
    vp_sched_ticket *q;
    if (hint) {
        q = hint;
        while (q->by[k].next && fair_after(t, q->by[k].next))
            q = q->by[k].next;
    } else { /* from both ends at once: a newcomer's place is near the head */
        vp_sched_ticket *f = s->head[l], *b = s->tail[l];
        for (;;) {
            if (!b || !fair_after(b, t)) {
                q = b;
                break;
            }
            if (fair_after(f, t)) { /* f is the first after t (f non-NULL: b is) */
                q = f->by[k].prev;
                break;
            }
            f = f->by[k].next;
            b = b->by[k].prev;
        }
    }
    /* t goes after q (q NULL: at the head) */
    vp_sched_ticket *next = q ? q->by[k].next : s->head[l];
    t->by[k].prev = q;
    t->by[k].next = next;
    if (q)
        q->by[k].next = t;
    else
        s->head[l] = t;
    if (next)
        next->by[k].prev = t;
    else
        s->tail[l] = t;
}

/* t leaves the queue: to run (its client's record kept until it finishes, see
 * sched_clients.h) or not. */
static void queue_remove(vp_sched *s, vp_sched_ticket *t, bool to_run)
{
    list_unlink(s, t, (int)t->priority);
    list_unlink(s, t, L_ARRIVAL);
    list_unlink(s, t, L_FAIR + (int)t->priority);
    if (to_run) {
        sched_clients_start(&s->clients, t->client);
    } else {
        sched_clients_leave(&s->clients, t->client);
        t->client = NULL;
    }
    size_t tiles = s->eng.job_tiles(t->job);
    s->depth--;
    s->queued_tiles -= tiles;
    s->pool_depth[POOL_OF(t->priority)]--;
    s->pool_tiles[POOL_OF(t->priority)] -= tiles;
}

/* Removes t, which will not run (cancelled, expired, shut down), and gives its cost back:
 * work that never ran is not charged to its client. When t was the client's last queued
 * job of its priority, the client's finish goes back to t's start; otherwise the client's
 * later jobs of that priority (after t in the fair list: their tags are past t's finish)
 * move back by t's cost and take their new places, and so does the finish. A request's
 * jobs dropped last to first give back all of theirs. */
static void queue_drop(vp_sched *s, vp_sched_ticket *t)
{
    sched_client *c = t->client;
    double *finish = &c->finish[t->priority];
    double cost = t->fin - t->tag;
    if (*finish == t->fin || !(cost > 0)) {
        if (*finish == t->fin)
            *finish = t->tag;
        queue_remove(s, t, false);
        return;
    }
    const int l = L_FAIR + (int)t->priority, k = LINKS(l);
    vp_sched_ticket *moved = NULL, **end = &moved; /* chained through their fair links */
    for (vp_sched_ticket *q = t->by[k].next, *next; q; q = next) {
        next = q->by[k].next;
        if (q->client != c)
            continue;
        list_unlink(s, q, l);
        q->tag -= cost;
        q->fin -= cost;
        q->by[k].next = NULL;
        *end = q;
        end = &q->by[k].next;
    }
    *finish -= cost;
    queue_remove(s, t, false);
    for (vp_sched_ticket *q = moved, *hint = NULL, *next; q; hint = q, q = next) {
        next = q->by[k].next;
        fair_insert(s, q, hint); /* in tag order: each after the one before */
    }
}

/* t->client and t->tag set; hint as fair_insert's. */
static void queue_push(vp_sched *s, vp_sched_ticket *t, vp_sched_ticket *hint)
{
    list_append(s, t, (int)t->priority);
    list_append(s, t, L_ARRIVAL);
    fair_insert(s, t, hint);
    size_t tiles = s->eng.job_tiles(t->job);
    s->depth++;
    s->queued_tiles += tiles;
    s->pool_depth[POOL_OF(t->priority)]++;
    s->pool_tiles[POOL_OF(t->priority)] += tiles;
}

/* Which of c[0..N_PRIO) (a ticket of each priority list, or NULL) comes first in rank
 * order: the smallest rank, then the older; -1 when all are NULL. */
static int rank_first(vp_sched_ticket *const *c)
{
    int best = -1;
    for (int p = 0; p < N_PRIO; p++)
        if (c[p] && (best < 0 || c[p]->rank < c[best]->rank ||
                     (c[p]->rank == c[best]->rank && c[p]->seq < c[best]->seq)))
            best = p;
    return best;
}

void vp_sched_ticket_retain(vp_sched_ticket *t) { atomic_fetch_add(&t->refs, 1); }

void vp_sched_ticket_release(vp_sched_ticket *t)
{
    if (!t)
        return;
    if (atomic_fetch_sub(&t->refs, 1) != 1)
        return;
    if (t->job && t->job_free)
        t->job_free(t->job);
    free(t);
}

/* Calls done for a list of finished tickets (linked through by[0].next), then drops the
 * scheduler's reference. Runs without the lock. */
static void complete_list(vp_sched_ticket *list)
{
    while (list) {
        vp_sched_ticket *next = list->by[0].next;
        list->by[0].next = NULL;
        if (list->done)
            list->done(list->user, list);
        vp_sched_ticket_release(list);
        list = next;
    }
}

static void finish_locked(vp_sched_ticket *t, vp_sched_ticket **out_list)
{
    t->state = T_FINISHED;
    t->by[0].next = *out_list;
    *out_list = t;
}

/* The first queued ticket that can expire: the first not started in arrival order (every
 * one has the same timeout, whatever its priority). NULL when none. */
static vp_sched_ticket *first_expiring(vp_sched *s)
{
    vp_sched_ticket *t = s->head[L_ARRIVAL];
    while (t && t->started)
        t = t->by[LINKS(L_ARRIVAL)].next;
    return t && t->deadline > 0 ? t : NULL;
}

/* Moves every queued ticket whose deadline passed to out_list. */
static void expire_locked(vp_sched *s, double now, vp_sched_ticket **out_list)
{
    vp_sched_ticket *t;
    while ((t = first_expiring(s)) && t->deadline <= now) {
        queue_drop(s, t);
        t->queue_ms = now - t->t_submit;
        t->rc = -1;
        t->expired = true;
        vp_fail(&t->err, VP_ERR_UNAVAILABLE, "",
                "the request waited %.0f ms in the queue without starting (queue_timeout_ms "
                "= %.0f): the server is overloaded, retry later",
                t->queue_ms, s->opt.queue_timeout_ms);
        finish_locked(t, out_list);
    }
}

static void *janitor_main(void *arg)
{
    vp_sched *s = arg;
    pthread_mutex_lock(&s->mu);
    while (!s->stopping) {
        vp_sched_ticket *expired = NULL;
        expire_locked(s, vp_sched_now_ms(), &expired);
        if (expired) {
            if (!s->depth && !s->running)
                pthread_cond_broadcast(&s->idle_cv);
            pthread_mutex_unlock(&s->mu);
            complete_list(expired);
            pthread_mutex_lock(&s->mu);
            continue;
        }
        const vp_sched_ticket *next = first_expiring(s);
        if (next) {
            struct timespec ts = timespec_in(CLOCK_MONOTONIC,
                                              next->deadline - vp_sched_now_ms() + 1.0);
            pthread_cond_timedwait(&s->janitor_cv, &s->mu, &ts);
        } else {
            pthread_cond_wait(&s->janitor_cv, &s->mu);
        }
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* Marks the queued jobs of t's request as started (no queue deadline: see
 * vp_sched_submit), before t leaves the queue: they are its neighbours in arrival order. */
static void mark_started_locked(vp_sched_ticket *t)
{
    if (t->started) /* a sibling taken before marked them all: none joins later */
        return;
    const int k = LINKS(L_ARRIVAL);
    for (vp_sched_ticket *q = t->by[k].prev; q && q->request == t->request; q = q->by[k].prev)
        q->started = true;
    for (vp_sched_ticket *q = t->by[k].next; q && q->request == t->request; q = q->by[k].next)
        q->started = true;
}

/* Takes the next batch from the queue, in rank order: the head always, then later jobs in
 * order (only high-priority ones after a high-priority head) while both budgets hold
 * (the places in rank order, each filled by its priority's next job in fair order),
 * priced by plan (the engine's packing) when there is one, else by the sums of the jobs'
 * own costs. A job that does not fit is passed over for
 * later, smaller ones, up to SCHED_LOOKAHEAD of them a pass (a small request is not held
 * behind a large one while passes run part empty); a job passed over never waits long,
 * because every pass takes the head and only newcomers of a higher priority (within
 * their bounded head start), or of its own priority from other clients whose start tags
 * come first (each tagged no earlier than the virtual time, which every job taken moves
 * past itself), get ahead of it. Returns the number of tickets written to batch. */
#define SCHED_LOOKAHEAD 16

static size_t take_batch_locked(vp_sched *s, void *plan, vp_sched_ticket ***batch,
                                size_t *cap, size_t *tokens, size_t *tiles)
{
    size_t n = 0, passed_over = 0;
    *tokens = *tiles = 0;
    if (plan)
        s->eng.plan_reset(plan);
    /* the next place of each priority (its list in rank order) and the job that fills it
     * (its fair list); the queue is left as it is until the batch is chosen, so both
     * walks see every ticket once */
    vp_sched_ticket *place[N_PRIO], *fill[N_PRIO];
    for (int p = 0; p < N_PRIO; p++) {
        place[p] = s->head[p];
        fill[p] = s->head[L_FAIR + p];
    }
    for (int p; passed_over < SCHED_LOOKAHEAD && (p = rank_first(place)) >= 0;) {
        vp_sched_ticket *t = fill[p];
        place[p] = place[p]->by[LINKS(p)].next;
        fill[p] = t->by[LINKS(L_FAIR)].next;
        if (n == *cap) {
            size_t nc = *cap ? *cap * 2 : 16;
            vp_sched_ticket **nb = realloc(*batch, nc * sizeof *nb);
            if (!nb)
                break; /* run what we have; the rest waits for the next pass */
            *batch = nb;
            *cap = nc;
        }
        size_t max_tk = n ? s->opt.max_batch_tokens : 0, max_ti = n ? s->opt.max_batch_tiles : 0;
        bool fits;
        if (plan) {
            fits = s->eng.plan_add(plan, t->job, max_tk, max_ti, tokens, tiles);
        } else {
            size_t tk = s->eng.job_tokens(t->job), ti = s->eng.job_tiles(t->job);
            fits = n == 0 || (*tokens + tk <= max_tk && *tiles + ti <= max_ti);
            if (fits)
                *tokens += tk, *tiles += ti;
        }
        if (!fits) {
            passed_over++;
            continue;
        }
        (*batch)[n++] = t;
        /* a pass started for a high-priority job packs only its peers: as short as it can
         * be, for the latency-bound client that asked (the work queued behind waits one
         * short pass; the GPU computes the same tokens) */
        if (n == 1 && t->priority == VP_PRIORITY_HIGH)
            for (int q = VP_PRIORITY_HIGH + 1; q < N_PRIO; q++)
                place[q] = NULL;
    }
    for (size_t i = 0; i < n; i++) {
        vp_sched_ticket *t = (*batch)[i];
        if (t->tag > s->vtime[t->priority])
            s->vtime[t->priority] = t->tag;
        /* a request has started: its jobs still queued wait for their passes without a
         * deadline, or a batch slower than queue_timeout_ms would come back with its tail
         * refused as "overloaded" on an idle server */
        mark_started_locked(t);
        queue_remove(s, t, true);
        t->state = T_RUNNING;
    }
    return n;
}

/* Runs jobs[0..n) as one pass. A failed pass is split in halves, recursively, so that a
 * bad job fails only itself at the cost of about 2 log2(n) passes (job by job would be n);
 * a device that failed for good fails them all at once (no pass can succeed again). */
static void run_part(vp_sched *s, vp_sched_ticket **batch, vp_job *const *jobs, size_t n)
{
    vp_error err;
    memset(&err, 0, sizeof err);
    int rc = s->eng.run(s->eng.ctx, jobs, n, &err);
    if (rc == 0 || n == 1 || err.kind == VP_ERR_DEVICE) {
        for (size_t i = 0; i < n; i++) {
            batch[i]->rc = rc ? -1 : 0;
            if (rc)
                batch[i]->err = err;
        }
        return;
    }
    size_t half = n / 2;
    run_part(s, batch, jobs, half);
    run_part(s, batch + half, jobs + half, n - half);
}

static void run_batch(vp_sched *s, vp_sched_ticket **batch, size_t n, vp_job **jobs)
{
    for (size_t i = 0; i < n; i++)
        jobs[i] = batch[i]->job;
    run_part(s, batch, jobs, n);
}

static void *engine_main(void *arg)
{
    vp_sched *s = arg;
    vp_sched_ticket **batch = NULL;
    vp_job **jobs = NULL;
    size_t cap = 0, jobs_cap = 0;
    /* only this thread prices passes; without memory for a plan, the sums do */
    void *plan = s->eng.plan_new ? s->eng.plan_new(s->eng.ctx) : NULL;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        vp_sched_ticket *finished = NULL;
        expire_locked(s, vp_sched_now_ms(), &finished);
        if (finished) {
            pthread_mutex_unlock(&s->mu);
            complete_list(finished);
            pthread_mutex_lock(&s->mu);
            continue;
        }
        if (s->stopping)
            break;
        if (!s->head[L_ARRIVAL]) {
            pthread_cond_broadcast(&s->idle_cv);
            pthread_cond_wait(&s->work_cv, &s->mu);
            continue;
        }
        size_t tokens, tiles;
        size_t n = take_batch_locked(s, plan, &batch, &cap, &tokens, &tiles);
        if (n == 0) { /* allocation failure with an empty batch: fail the head job */
            vp_sched_ticket *t = s->head[rank_first(s->head)];
            queue_drop(s, t);
            t->rc = -1;
            vp_fail(&t->err, VP_ERR_NOMEM, "", "out of memory forming a batch");
            finish_locked(t, &finished);
            pthread_mutex_unlock(&s->mu);
            complete_list(finished);
            pthread_mutex_lock(&s->mu);
            continue;
        }
        s->running = n;
        /* the janitor's head may have changed */
        pthread_cond_signal(&s->janitor_cv);
        pthread_mutex_unlock(&s->mu);

        double t_start = vp_sched_now_ms();
        double flops0 = s->eng.useful_flops ? s->eng.useful_flops(s->eng.ctx) : 0;
        for (size_t i = 0; i < n; i++)
            batch[i]->queue_ms = t_start - batch[i]->t_submit;
        if (n > jobs_cap) {
            vp_job **nj = realloc(jobs, n * sizeof *nj);
            if (nj) {
                jobs = nj;
                jobs_cap = n;
            }
        }
        if (n <= jobs_cap) {
            run_batch(s, batch, n, jobs);
        } else {
            for (size_t i = 0; i < n; i++) {
                batch[i]->rc = -1;
                vp_fail(&batch[i]->err, VP_ERR_NOMEM, "", "out of memory forming a batch");
            }
        }
        double t_end = vp_sched_now_ms();
        for (size_t i = 0; i < n; i++) {
            if (batch[i]->rc == 0 && s->eng.job_result) {
                vp_score_result *r = s->eng.job_result(batch[i]->job);
                if (r) {
                    r->timing.queue = batch[i]->queue_ms;
                    r->timing.total = t_end - batch[i]->t_origin;
                }
            }
        }
        if (s->eng.on_batch)
            s->eng.on_batch(s->eng.obs_ctx, n, tokens, tiles, t_end - t_start,
                            s->eng.useful_flops ? s->eng.useful_flops(s->eng.ctx) - flops0 : 0);

        pthread_mutex_lock(&s->mu);
        s->running = 0;
        s->jobs_run += n;
        s->passes++;
        for (size_t i = 0; i < n; i++) {
            if (batch[i]->cancelled && batch[i]->rc == 0)
                vp_fail(&batch[i]->err, VP_ERR_UNAVAILABLE, "",
                        "cancelled: the client disconnected");
            sched_clients_done(&s->clients, batch[i]->client);
            batch[i]->client = NULL;
            finish_locked(batch[i], &finished);
        }
        pthread_mutex_unlock(&s->mu);
        complete_list(finished);
        pthread_mutex_lock(&s->mu);
        if (!s->head[L_ARRIVAL])
            pthread_cond_broadcast(&s->idle_cv);
    }
    pthread_mutex_unlock(&s->mu);
    free(batch);
    free(jobs);
    if (plan)
        s->eng.plan_free(plan);
    return NULL;
}

int vp_sched_start(const vp_sched_options *opt, const vp_sched_engine *eng, vp_sched **out,
                   vp_error *err)
{
    *out = NULL;
    if (!opt->max_queue || !opt->max_batch_tokens || !opt->max_batch_tiles)
        return vp_fail(err, VP_ERR_INTERNAL, "",
                       "scheduler: max_queue, max_batch_tokens and max_batch_tiles must be > 0");
    if (!eng->run || !eng->job_tokens || !eng->job_tiles ||
        (eng->plan_new && (!eng->plan_reset || !eng->plan_add || !eng->plan_free)))
        return vp_fail(err, VP_ERR_INTERNAL, "", "scheduler: engine functions missing");
    vp_sched *s = calloc(1, sizeof *s);
    if (!s)
        return vp_fail(err, VP_ERR_NOMEM, "", "scheduler: out of memory");
    s->opt = *opt;
    s->eng = *eng;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->work_cv, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->janitor_cv, &ca);
    pthread_cond_init(&s->idle_cv, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&s->engine_thread, NULL, engine_main, s)) {
        free(s);
        return vp_fail(err, VP_ERR_INTERNAL, "", "scheduler: cannot start the engine thread");
    }
    if (pthread_create(&s->janitor_thread, NULL, janitor_main, s)) {
        pthread_mutex_lock(&s->mu);
        s->stopping = true;
        pthread_cond_broadcast(&s->work_cv);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->engine_thread, NULL);
        free(s);
        return vp_fail(err, VP_ERR_INTERNAL, "", "scheduler: cannot start the janitor thread");
    }
    *out = s;
    return 0;
}

/* Job i's priority as the queue treats it: normal when none is given or it is not a
 * vp_priority, and for every job when priority_boost_ms is 0 (priorities then change
 * nothing: order, passes and admission alike). */
static vp_priority sched_priority(const vp_sched *s, const vp_priority *priorities, size_t i)
{
    if (!priorities || (unsigned)priorities[i] >= N_PRIO || !(s->opt.priority_boost_ms > 0))
        return VP_PRIORITY_NORMAL;
    return priorities[i];
}

/* Whether new_jobs[pool] jobs of new_tiles[pool] tiles may be queued now (s->mu held): 0, or
 * -1 and err (VP_ERR_UNAVAILABLE while draining, VP_ERR_BUSY while a pool's bound is
 * reached). */
static int admit_locked(const vp_sched *s, const size_t new_jobs[2], const size_t new_tiles[2],
                        vp_error *err)
{
    if (s->draining || s->stopping)
        return vp_fail(err, VP_ERR_UNAVAILABLE, "",
                       "the server is shutting down and accepts no new work");
    for (int pool = 0; pool < 2; pool++) {
        const char *which = pool == POOL_HIGH ? "high-priority " : "";
        if (new_jobs[pool] && s->pool_depth[pool] >= s->opt.max_queue)
            return vp_fail(err, VP_ERR_BUSY, "",
                           "the queue is full (%zu %sjobs waiting, max_queue = %zu, this request "
                           "needs %zu): retry after the Retry-After delay",
                           s->pool_depth[pool], which, s->opt.max_queue, new_jobs[pool]);
        if (new_tiles[pool] > 0 && s->opt.max_queued_tiles &&
            s->pool_tiles[pool] >= s->opt.max_queued_tiles)
            return vp_fail(err, VP_ERR_BUSY, "",
                           "the queue is full (%zu image tiles of %sjobs waiting, "
                           "max_queued_tiles = %zu, this request has %zu): retry after the "
                           "Retry-After delay",
                           s->pool_tiles[pool], which, s->opt.max_queued_tiles, new_tiles[pool]);
    }
    return 0;
}

int vp_sched_admit_tiles(vp_sched *s, const vp_priority *priorities, const size_t *tiles,
                         size_t n, vp_error *err)
{
    size_t jobs[2] = {0, 0}, sum[2] = {0, 0};
    for (size_t i = 0; i < n; i++)
        sum[POOL_OF(sched_priority(s, priorities, i))] += tiles[i];
    /* the request as a whole, whatever its items' priorities (split between the pools it
     * could hold twice the bound) */
    if (s->opt.max_queued_tiles && sum[0] + sum[1] > s->opt.max_queued_tiles)
        return vp_fail(err, VP_ERR_TOO_LARGE, "",
                       "the request's images make %zu image tiles, more than the queue holds "
                       "(max_queued_tiles = %zu)", sum[0] + sum[1], s->opt.max_queued_tiles);
    pthread_mutex_lock(&s->mu);
    int rc = admit_locked(s, jobs, sum, err);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int vp_sched_submit(vp_sched *s, vp_job *const *jobs, const vp_priority *priorities, size_t n,
                    const vp_sched_client *client, double t_origin_ms,
                    vp_sched_done_fn done, void *user,
                    vp_sched_ticket **tickets, vp_error *err)
{
    for (size_t i = 0; i < n; i++) {
        tickets[i] = calloc(1, sizeof **tickets);
        if (!tickets[i]) {
            for (size_t k = 0; k < i; k++) {
                free(tickets[k]);
                tickets[k] = NULL;
            }
            return vp_fail(err, VP_ERR_NOMEM, "", "out of memory queueing the request");
        }
    }
    size_t new_jobs[2] = {0, 0}, new_tiles[2] = {0, 0}; /* by admission pool */
    for (size_t i = 0; i < n; i++) {
        int pool = POOL_OF(sched_priority(s, priorities, i));
        new_jobs[pool]++;
        new_tiles[pool] += s->eng.job_tiles(jobs[i]);
    }
    pthread_mutex_lock(&s->mu);
    int rc = admit_locked(s, new_jobs, new_tiles, err);
    if (rc) {
        pthread_mutex_unlock(&s->mu);
        for (size_t i = 0; i < n; i++) {
            free(tickets[i]);
            tickets[i] = NULL;
        }
        return rc;
    }
    double now = vp_sched_now_ms();
    unsigned long long request = ++s->requests;
    const char *name = s->opt.fair_share && client ? client->name : NULL;
    double weight = client && client->weight ? (double)client->weight : 1.0;
    vp_sched_ticket *prev[N_PRIO] = {NULL}; /* the request's last job of each priority */
    for (size_t i = 0; i < n; i++) {
        vp_sched_ticket *t = tickets[i];
        t->request = request;
        t->job = jobs[i];
        t->job_free = s->eng.job_free;
        t->done = done;
        t->user = user;
        t->t_origin = t_origin_ms;
        t->t_submit = now;
        t->deadline = s->opt.queue_timeout_ms > 0 ? now + s->opt.queue_timeout_ms : 0;
        t->priority = sched_priority(s, priorities, i);
        t->seq = ++s->seq;
        t->rank = now + s->opt.priority_boost_ms * ((double)t->priority - VP_PRIORITY_NORMAL);
        t->state = T_QUEUED;
        atomic_init(&t->refs, 2); /* the caller's and the scheduler's */
        sched_client *c = sched_clients_join(&s->clients, name);
        double *finish = &c->finish[t->priority];
        t->client = c;
        t->tag = *finish > s->vtime[t->priority] ? *finish : s->vtime[t->priority];
        *finish = t->fin = t->tag + (double)s->eng.job_tokens(t->job) / weight;
        queue_push(s, t, prev[t->priority]);
        prev[t->priority] = t;
    }
    pthread_cond_signal(&s->work_cv);
    pthread_cond_signal(&s->janitor_cv);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

size_t vp_sched_cancel_many(vp_sched *s, vp_sched_ticket *const *tickets, size_t n)
{
    vp_sched_ticket *finished = NULL;
    size_t changed = 0;
    pthread_mutex_lock(&s->mu);
    for (size_t i = n; i-- > 0;) { /* last to first: see queue_drop */
        vp_sched_ticket *t = tickets[i];
        changed += t->state != T_FINISHED && !t->cancelled;
        if (t->state != T_FINISHED)
            t->cancelled = true;
        if (t->state == T_QUEUED) {
            queue_drop(s, t);
            t->queue_ms = vp_sched_now_ms() - t->t_submit;
            t->rc = -1;
            vp_fail(&t->err, VP_ERR_UNAVAILABLE, "", "cancelled: the client disconnected");
            finish_locked(t, &finished);
        }
    }
    if (finished && !s->depth && !s->running)
        pthread_cond_broadcast(&s->idle_cv);
    pthread_mutex_unlock(&s->mu);
    complete_list(finished);
    return changed;
}

bool vp_sched_cancel(vp_sched *s, vp_sched_ticket *t)
{
    return vp_sched_cancel_many(s, &t, 1) == 1;
}

int vp_sched_ticket_outcome(const vp_sched_ticket *t, const vp_error **err)
{
    if (err)
        *err = &t->err;
    if (t->cancelled)
        return -1;
    return t->rc;
}

bool vp_sched_ticket_cancelled(const vp_sched_ticket *t) { return t->cancelled; }
bool vp_sched_ticket_expired(const vp_sched_ticket *t) { return t->expired; }
vp_job *vp_sched_ticket_job(vp_sched_ticket *t) { return t->job; }
double vp_sched_ticket_queue_ms(const vp_sched_ticket *t) { return t->queue_ms; }

size_t vp_sched_queued_clients(vp_sched *s)
{
    pthread_mutex_lock(&s->mu);
    size_t n = sched_clients_active(&s->clients);
    pthread_mutex_unlock(&s->mu);
    return n;
}

size_t vp_sched_queue_depth(vp_sched *s)
{
    pthread_mutex_lock(&s->mu);
    size_t d = s->depth;
    pthread_mutex_unlock(&s->mu);
    return d;
}

void vp_sched_counts(vp_sched *s, size_t *jobs_run, size_t *passes)
{
    pthread_mutex_lock(&s->mu);
    *jobs_run = s->jobs_run;
    *passes = s->passes;
    pthread_mutex_unlock(&s->mu);
}

void vp_sched_drain(vp_sched *s)
{
    pthread_mutex_lock(&s->mu);
    s->draining = true;
    pthread_mutex_unlock(&s->mu);
}

int vp_sched_wait_idle(vp_sched *s, double timeout_ms)
{
    double until = vp_sched_now_ms() + timeout_ms;
    pthread_mutex_lock(&s->mu);
    int rc = 0;
    while (s->depth || s->running) {
        if (timeout_ms < 0) {
            pthread_cond_wait(&s->idle_cv, &s->mu);
            continue;
        }
        double left = until - vp_sched_now_ms();
        if (left <= 0) {
            rc = -1;
            break;
        }
        struct timespec ts = timespec_in(CLOCK_MONOTONIC, left);
        pthread_cond_timedwait(&s->idle_cv, &s->mu, &ts);
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

void vp_sched_stop(vp_sched *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    bool was_stopping = s->stopping;
    s->stopping = true;
    s->draining = true;
    pthread_cond_broadcast(&s->work_cv);
    pthread_cond_broadcast(&s->janitor_cv);
    pthread_mutex_unlock(&s->mu);
    if (was_stopping)
        return;
    pthread_join(s->engine_thread, NULL); /* ends after its current pass */
    pthread_join(s->janitor_thread, NULL);
    vp_sched_ticket *finished = NULL;
    pthread_mutex_lock(&s->mu);
    while (s->head[L_ARRIVAL]) {
        vp_sched_ticket *t = s->head[L_ARRIVAL];
        queue_drop(s, t);
        t->rc = -1;
        vp_fail(&t->err, VP_ERR_UNAVAILABLE, "",
                "the server shut down before the request could run");
        finish_locked(t, &finished);
    }
    pthread_cond_broadcast(&s->idle_cv);
    pthread_mutex_unlock(&s->mu);
    complete_list(finished);
}

void vp_sched_free(vp_sched *s)
{
    if (!s)
        return;
    vp_sched_stop(s);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->work_cv);
    pthread_cond_destroy(&s->janitor_cv);
    pthread_cond_destroy(&s->idle_cv);
    sched_clients_free(&s->clients);
    free(s);
}
