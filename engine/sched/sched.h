/* The scheduler: a bounded queue of prepared jobs and ONE engine thread that packs them
 * into batches under a token and tile budget and runs them.
 *
 *   HTTP threads:  vp_engine_prepare -> vp_sched_submit (429 when full, 503 when draining)
 *   engine thread: takes queued jobs in rank order (arrival order, a job of priority
 *                  high counted as if it had arrived priority_boost_ms earlier, low as
 *                  that much later: a bounded head start, so nothing waits for ever;
 *                  a pass whose first job is high takes only high ones, to be short;
 *                  with fair_share, the jobs of one priority fill its places in that
 *                  order by start-time fair queueing between clients instead of by
 *                  arrival, so a client's backlog does not hold back the others')
 *                  while the batch stays within max_batch_tokens and max_batch_tiles,
 *                  priced as the engine packs them
 *                  (the first job is always taken, so a job over the budget runs alone;
 *                  one that does not fit is passed over for later ones that do, up to 16
 *                  a pass), calls run, completes every ticket.
 *   janitor thread: answers jobs whose queue deadline passed (never runs expired work).
 *
 * A failed pass is retried in halves until each failing job is alone, so one bad job fails
 * only itself; a device failure (VP_ERR_DEVICE) fails the pass's jobs without retries.
 *
 * Every submitted ticket is completed exactly once, through its done callback, called
 * without any scheduler lock held: with the result (ok), an error (engine failure, queue
 * timeout, shutdown) or as cancelled. A ticket is reference counted: the submitter holds
 * one reference, released with vp_sched_ticket_release once it has read the outcome.
 *
 * The engine is reached through vp_sched_engine (function pointers) so that unit tests
 * can drive the scheduler with a fake; vp_sched_engine_of() binds a real vp_engine. */
#ifndef VP_SCHED_H
#define VP_SCHED_H

#include <stdbool.h>
#include <stddef.h>

#include "engine/engine.h"
#include "engine/util/err.h"

typedef struct vp_sched_engine {
    void *ctx;
    int (*run)(void *ctx, vp_job *const *jobs, size_t n_jobs, vp_error *err);
    size_t (*job_tokens)(const vp_job *j);
    size_t (*job_tiles)(const vp_job *j);
    vp_score_result *(*job_result)(vp_job *j);
    void (*job_free)(vp_job *j);
    /* optional: useful FLOPs of the engine's passes so far (vp_engine_useful_flops) */
    double (*useful_flops)(void *ctx);
    /* optional: called on the engine thread after each pass (metrics); flops: the useful
     * FLOPs it computed (0 without useful_flops) */
    void (*on_batch)(void *obs_ctx, size_t n_jobs, size_t tokens, size_t tiles, double ms,
                     double flops);
    void *obs_ctx;
    /* optional: the price of a pass as the engine packs it (engine/pass_plan.h: jobs of one
     * RL group share a prefix and their images); without it a pass costs the sums of
     * job_tokens and job_tiles. plan_add adds j when the pass stays within the limits (0 =
     * none) and gives the pass's totals. */
    void *(*plan_new)(void *ctx);
    void (*plan_reset)(void *plan);
    bool (*plan_add)(void *plan, vp_job *j, size_t max_tokens, size_t max_tiles,
                     size_t *tokens, size_t *tiles);
    void (*plan_free)(void *plan);
} vp_sched_engine;

/* Binds a real engine (engine/sched/sched_engine.c). */
void vp_sched_engine_of(vp_engine *e, vp_sched_engine *out);

typedef struct vp_sched_options {
    size_t max_queue;         /* queued jobs; submissions at it get VP_ERR_BUSY */
    size_t max_queued_tiles;  /* image tiles of queued jobs (their memory); 0 = no limit */
    size_t max_batch_tokens;  /* tokens one pass computes (plan_add, else vp_job_tokens sum) */
    size_t max_batch_tiles;   /* tiles one pass encodes (plan_add, else vp_job_tiles sum) */
    double queue_timeout_ms;  /* max wait in the queue; 0 = none */
    double priority_boost_ms; /* head start of a high-priority job over a normal one, and
                               * of a normal one over a low one; 0 = priorities ignored */
    bool fair_share;          /* share passes between clients (vp_sched_client) rather
                               * than serve one priority's jobs in arrival order */
} vp_sched_options;

/* Who submits: an API key's or a client certificate's name, and its weight (its share of
 * the passes against a client of weight 1 when both have work queued). NULL, or a NULL or
 * "" name, is the client of all requests without a name. */
typedef struct vp_sched_client {
    const char *name;
    unsigned weight; /* 0 counts as 1 */
} vp_sched_client;

typedef struct vp_sched vp_sched;
typedef struct vp_sched_ticket vp_sched_ticket;

/* Called once per ticket, on the engine thread, the janitor thread or the canceller. */
typedef void (*vp_sched_done_fn)(void *user, vp_sched_ticket *t);

int vp_sched_start(const vp_sched_options *opt, const vp_sched_engine *eng, vp_sched **out,
                   vp_error *err);

/* Queues n jobs at once, all or none (a request's items wait together), job i with
 * priorities[i] (NULL: all VP_PRIORITY_NORMAL), for client (see vp_sched_client). With
 * fair_share a job's place among its priority's is its start tag: the later of the
 * priority's virtual time (the largest finish of a job taken so far) and the finish of
 * the client's previous queued job; its own finish is its tokens / weight later. A job
 * dropped unrun (cancelled, expired) that was its client's last gives its finish back. On
 * success the
 * tickets own the jobs and tickets[i] carries one reference for the caller. On failure
 * nothing is queued, the jobs stay the caller's, err says why: VP_ERR_BUSY (max_queue
 * jobs already wait, or max_queued_tiles tiles and the request has tiles, counted apart
 * for high-priority jobs, whose bounds are their own: a request
 * admitted below a limit may carry the queue past it by its own size, so a large one is
 * never refused for good while small ones keep coming), VP_ERR_UNAVAILABLE (draining).
 * Once one of the request's jobs runs, the rest no longer expire (queue_timeout_ms is
 * for waiting to start). t_origin_ms (vp_sched_now_ms clock) is when the request began;
 * the result's timing.total counts from it. */
/* Before a request's images are decoded: whether its items (tiles[i] image tiles each, of
 * priorities[i], as vp_sched_submit reads them) may be queued now. 0; or -1 and err:
 * VP_ERR_TOO_LARGE when their sum is over max_queued_tiles (it could never be held
 * within the bound), VP_ERR_BUSY while that pool's tiles are at the bound (as submit
 * would answer, so a refusal costs no decoding), VP_ERR_UNAVAILABLE while draining.
 * Submit checks again: this admits, it reserves nothing. */
int vp_sched_admit_tiles(vp_sched *s, const vp_priority *priorities, const size_t *tiles,
                         size_t n, vp_error *err);
int vp_sched_submit(vp_sched *s, vp_job *const *jobs, const vp_priority *priorities, size_t n,
                    const vp_sched_client *client, double t_origin_ms, vp_sched_done_fn done,
                    void *user,
                    vp_sched_ticket **tickets, vp_error *err);

/* The client went away: a queued job is removed and completed as cancelled now; a
 * running one completes as cancelled when its pass ends (its result is dropped).
 * Returns true when this call cancelled it (false: already cancelled or finished). */
bool vp_sched_cancel(vp_sched *s, vp_sched_ticket *t);
/* The same for n tickets under one lock (a request's jobs: no sibling starts between two
 * cancels); returns how many this call cancelled. */
size_t vp_sched_cancel_many(vp_sched *s, vp_sched_ticket *const *tickets, size_t n);

/* Outcome, valid once done was called: 0 = result ready (vp_sched_ticket_job), -1 =
 * error (*err set) or cancelled. */
int vp_sched_ticket_outcome(const vp_sched_ticket *t, const vp_error **err);
bool vp_sched_ticket_cancelled(const vp_sched_ticket *t);
/* True when the job was answered because its queue deadline passed. */
bool vp_sched_ticket_expired(const vp_sched_ticket *t);
vp_job *vp_sched_ticket_job(vp_sched_ticket *t);
/* Milliseconds spent queued (0 until the job was taken or expired). */
double vp_sched_ticket_queue_ms(const vp_sched_ticket *t);
void vp_sched_ticket_retain(vp_sched_ticket *t);
void vp_sched_ticket_release(vp_sched_ticket *t);

size_t vp_sched_queue_depth(vp_sched *s);
/* Clients with jobs queued now. */
size_t vp_sched_queued_clients(vp_sched *s);
/* Jobs run so far and passes made (monotonic counters). */
void vp_sched_counts(vp_sched *s, size_t *jobs_run, size_t *passes);

/* Refuse new submissions (VP_ERR_UNAVAILABLE) and keep running what is queued. */
void vp_sched_drain(vp_sched *s);
/* Waits until nothing is queued or running; 0, or -1 after timeout_ms (< 0 = forever). */
int vp_sched_wait_idle(vp_sched *s, double timeout_ms);
/* Stops the threads (after the running pass); jobs still queued complete with
 * VP_ERR_UNAVAILABLE. The object stays usable (submissions refused) until vp_sched_free. */
void vp_sched_stop(vp_sched *s);
void vp_sched_free(vp_sched *s);

/* Monotonic clock in milliseconds. */
double vp_sched_now_ms(void);

#endif
