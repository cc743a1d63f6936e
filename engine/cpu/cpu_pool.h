/* A small fixed thread pool for the CPU backend: created once, then used for
 * parallel-for loops over independent tasks. Which thread runs a task never changes
 * a result: every task writes its own outputs, computed in a fixed order. */
#ifndef VP_CPU_POOL_H
#define VP_CPU_POOL_H

#include <stddef.h>

#include "engine/util/err.h"

typedef struct vp_pool vp_pool;

/* fn(ctx, task, thread): task in [0, n_tasks), thread in [0, vp_pool_threads(pool)),
 * usable to index per-thread scratch memory. */
typedef void (*vp_pool_fn)(void *ctx, size_t task, int thread);

/* threads = 0 means the number of online CPUs. The calling thread takes part in
 * vp_pool_for, so threads - 1 workers are started. */
int vp_pool_create(vp_pool **out, int threads, vp_error *err);
void vp_pool_free(vp_pool *pool);
int vp_pool_threads(const vp_pool *pool);

/* Runs fn for every task and returns when all are done. A NULL pool runs them in
 * order on the calling thread (thread index 0). Not reentrant: one loop at a time. */
void vp_pool_for(vp_pool *pool, size_t n_tasks, vp_pool_fn fn, void *ctx);

#endif
