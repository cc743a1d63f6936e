/* Thread pool: workers sleep on a condition variable; vp_pool_for publishes a loop
 * (a new generation), everyone (the caller too) takes task indices from an atomic
 * counter, and the caller waits until every worker has left the loop. */
#include "engine/cpu/cpu_pool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

struct vp_pool {
    int n_threads;            /* including the calling thread */
    pthread_t *workers;       /* [n_threads - 1] */
    pthread_mutex_t lock;
    pthread_cond_t wake;      /* a new loop or shutdown */
    pthread_cond_t done;      /* a worker finished its share */
    unsigned long generation; /* bumped for every loop */
    int busy_workers;         /* workers still inside the current loop */
    int shutdown;
    /* the current loop */
    vp_pool_fn fn;
    void *ctx;
    size_t n_tasks;
    atomic_size_t next_task;
};

typedef struct worker_arg {
    vp_pool *pool;
    int thread; /* 1 .. n_threads-1 */
} worker_arg;

static void run_tasks(vp_pool *pool, int thread)
{
    for (;;) {
        size_t t = atomic_fetch_add(&pool->next_task, 1);
        if (t >= pool->n_tasks)
            return;
        pool->fn(pool->ctx, t, thread);
    }
}

static void *worker_main(void *p)
{
    worker_arg *arg = p;
    vp_pool *pool = arg->pool;
    int thread = arg->thread;
    free(arg);
    unsigned long seen = 0;
    pthread_mutex_lock(&pool->lock);
    for (;;) {
        while (!pool->shutdown && pool->generation == seen)
            pthread_cond_wait(&pool->wake, &pool->lock);
        if (pool->shutdown)
            break;
        seen = pool->generation;
        pthread_mutex_unlock(&pool->lock);
        run_tasks(pool, thread);
        pthread_mutex_lock(&pool->lock);
        if (--pool->busy_workers == 0)
            pthread_cond_signal(&pool->done);
    }
    pthread_mutex_unlock(&pool->lock);
    return NULL;
}

int vp_pool_create(vp_pool **out, int threads, vp_error *err)
{
    *out = NULL;
    if (threads < 0)
        return vp_fail(err, VP_ERR_BAD_REQUEST, "threads", "thread count %d is negative", threads);
    if (threads == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        threads = n > 0 ? (int)(n > 1024 ? 1024 : n) : 1;
    }
    if (threads > 1024)
        return vp_fail(err, VP_ERR_BAD_REQUEST, "threads", "thread count %d is over 1024", threads);
    vp_pool *pool = calloc(1, sizeof *pool);
    if (!pool)
        return vp_fail(err, VP_ERR_NOMEM, "", "out of memory for the thread pool");
    pool->n_threads = threads;
    pthread_mutex_init(&pool->lock, NULL);
    pthread_cond_init(&pool->wake, NULL);
    pthread_cond_init(&pool->done, NULL);
    atomic_init(&pool->next_task, 0);
    if (threads > 1) {
        pool->workers = calloc((size_t)threads - 1, sizeof *pool->workers);
        if (!pool->workers) {
            vp_pool_free(pool);
            return vp_fail(err, VP_ERR_NOMEM, "", "out of memory for %d worker threads", threads);
        }
    }
    for (int i = 1; i < threads; i++) {
        worker_arg *arg = malloc(sizeof *arg);
        int started = 0;
        if (arg) {
            arg->pool = pool;
            arg->thread = i;
            started = pthread_create(&pool->workers[i - 1], NULL, worker_main, arg) == 0;
        }
        if (!started) {
            free(arg);
            pool->n_threads = i; /* only the started ones are joined */
            vp_pool_free(pool);
            return vp_fail(err, VP_ERR_NOMEM, "", "could not start CPU worker thread %d of %d",
                           i, threads);
        }
    }
    *out = pool;
    return 0;
}

void vp_pool_free(vp_pool *pool)
{
    if (!pool)
        return;
    pthread_mutex_lock(&pool->lock);
    pool->shutdown = 1;
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->lock);
    for (int i = 1; i < pool->n_threads; i++)
        pthread_join(pool->workers[i - 1], NULL);
    pthread_mutex_destroy(&pool->lock);
    pthread_cond_destroy(&pool->wake);
    pthread_cond_destroy(&pool->done);
    free(pool->workers);
    free(pool);
}

int vp_pool_threads(const vp_pool *pool)
{
    return pool ? pool->n_threads : 1;
}

void vp_pool_for(vp_pool *pool, size_t n_tasks, vp_pool_fn fn, void *ctx)
{
    if (n_tasks == 0)
        return;
    if (!pool || pool->n_threads == 1 || n_tasks == 1) {
        for (size_t t = 0; t < n_tasks; t++)
            fn(ctx, t, 0);
        return;
    }
    pthread_mutex_lock(&pool->lock);
    pool->fn = fn;
    pool->ctx = ctx;
    pool->n_tasks = n_tasks;
    atomic_store(&pool->next_task, 0);
    pool->busy_workers = pool->n_threads - 1;
    pool->generation++;
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->lock);

    run_tasks(pool, 0);

    pthread_mutex_lock(&pool->lock);
    while (pool->busy_workers > 0)
        pthread_cond_wait(&pool->done, &pool->lock);
    pthread_mutex_unlock(&pool->lock);
}
