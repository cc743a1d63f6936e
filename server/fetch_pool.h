/* The image URL fetch workers: a few threads, apart from libmicrohttpd's pool, that run
 * tasks from a bounded FIFO queue. A task is one request's downloads (fetch_task.c); a
 * slow image host holds one of these threads, never an HTTP thread. */
#ifndef VP_FETCH_POOL_H
#define VP_FETCH_POOL_H

#include <stdbool.h>
#include <stddef.h>

#include "engine/util/err.h"

typedef struct vp_fetch_pool vp_fetch_pool;

/* A task: runs once on a worker. abandoned: the pool is stopping and the task was still
 * queued (it should only report that, not fetch). */
typedef void (*vp_fetch_task_fn)(void *arg, bool abandoned);

int vp_fetch_pool_start(int n_threads, size_t max_waiting, vp_fetch_pool **out, vp_error *err);
/* Queues fn(arg). Refused (and fn never runs) with VP_ERR_BUSY when max_waiting tasks
 * already wait for a worker, VP_ERR_UNAVAILABLE once stopping. */
int vp_fetch_pool_submit(vp_fetch_pool *p, vp_fetch_task_fn fn, void *arg, vp_error *err);
/* True once vp_fetch_pool_stop began: running tasks poll it to give up early. */
bool vp_fetch_pool_stopping(vp_fetch_pool *p);
void vp_fetch_pool_counts(vp_fetch_pool *p, size_t *running, size_t *waiting);
/* Refuses new tasks, runs the queued ones as abandoned, waits for the running ones and
 * joins the workers. Idempotent; submit stays callable (and refuses) until free. */
void vp_fetch_pool_stop(vp_fetch_pool *p);
void vp_fetch_pool_free(vp_fetch_pool *p); /* stops first */

#endif
