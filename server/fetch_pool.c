/* The image URL fetch workers (fetch_pool.h): a mutex, a condition variable and a ring of
 * waiting tasks. */
#include "server/fetch_pool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

typedef struct task {
    vp_fetch_task_fn fn;
    void *arg;
} task;

struct vp_fetch_pool {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    task *ring;             /* [cap] */
    size_t cap;             /* n_threads + max_waiting */
    size_t head, n_waiting;
    size_t n_running;
    atomic_bool stopping;   /* read without mu by running tasks */
    bool joined;
    pthread_t *threads;     /* [n_threads] */
    int n_threads;
};

static void *worker_main(void *arg)
{
    vp_fetch_pool *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (p->n_waiting == 0 && !atomic_load(&p->stopping))
            pthread_cond_wait(&p->cv, &p->mu);
        if (p->n_waiting == 0)
            break; /* stopping, and nothing left to report */
        task t = p->ring[p->head];
        p->head = (p->head + 1) % p->cap;
        p->n_waiting--;
        p->n_running++;
        bool abandoned = atomic_load(&p->stopping);
        pthread_mutex_unlock(&p->mu);
        t.fn(t.arg, abandoned);
        pthread_mutex_lock(&p->mu);
        p->n_running--;
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

int vp_fetch_pool_start(int n_threads, size_t max_waiting, vp_fetch_pool **out, vp_error *err)
{
    *out = NULL;
    vp_fetch_pool *p = calloc(1, sizeof *p);
    if (!p)
        return vp_fail(err, VP_ERR_NOMEM, "", "out of memory");
    p->cap = (size_t)n_threads + max_waiting;
    p->ring = calloc(p->cap, sizeof *p->ring);
    p->threads = calloc((size_t)n_threads, sizeof *p->threads);
    if (!p->ring || !p->threads) {
        free(p->ring);
        free(p->threads);
        free(p);
        return vp_fail(err, VP_ERR_NOMEM, "", "out of memory");
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    for (; p->n_threads < n_threads; p->n_threads++)
        if (pthread_create(&p->threads[p->n_threads], NULL, worker_main, p)) {
            int started = p->n_threads;
            vp_fetch_pool_free(p);
            return vp_fail(err, VP_ERR_INTERNAL, "url_fetch_threads",
                           "cannot start image URL fetch thread %d of %d", started + 1,
                           n_threads);
        }
    *out = p;
    return 0;
}

int vp_fetch_pool_submit(vp_fetch_pool *p, vp_fetch_task_fn fn, void *arg, vp_error *err)
{
    pthread_mutex_lock(&p->mu);
    if (atomic_load(&p->stopping)) {
        pthread_mutex_unlock(&p->mu);
        return vp_fail(err, VP_ERR_UNAVAILABLE, "",
                       "the server is shutting down and accepts no new requests");
    }
    /* at most n_threads running and max_waiting waiting (a task queued while a worker is
     * idle waits in the ring only until that worker wakes) */
    if (p->n_running + p->n_waiting >= p->cap) {
        int n_threads = p->n_threads;
        size_t max_waiting = p->cap - (size_t)n_threads;
        pthread_mutex_unlock(&p->mu);
        return vp_fail(err, VP_ERR_BUSY, "",
                       "image URL fetching is at capacity (url_fetch_threads=%d fetching, "
                       "url_fetch_queue=%zu waiting); retry later, or send the image as base64",
                       n_threads, max_waiting);
    }
    p->ring[(p->head + p->n_waiting) % p->cap] = (task){.fn = fn, .arg = arg};
    p->n_waiting++;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    return 0;
}

bool vp_fetch_pool_stopping(vp_fetch_pool *p)
{
    return atomic_load(&p->stopping);
}

void vp_fetch_pool_counts(vp_fetch_pool *p, size_t *running, size_t *waiting)
{
    pthread_mutex_lock(&p->mu);
    *running = p->n_running;
    *waiting = p->n_waiting;
    pthread_mutex_unlock(&p->mu);
}

void vp_fetch_pool_stop(vp_fetch_pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->stopping, true);
    pthread_cond_broadcast(&p->cv);
    bool join = !p->joined;
    p->joined = true;
    pthread_mutex_unlock(&p->mu);
    if (!join)
        return;
    for (int i = 0; i < p->n_threads; i++)
        pthread_join(p->threads[i], NULL);
}

void vp_fetch_pool_free(vp_fetch_pool *p)
{
    if (!p)
        return;
    vp_fetch_pool_stop(p);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p->ring);
    free(p->threads);
    free(p);
}
