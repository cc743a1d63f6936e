/* server/fetch_pool: the image URL fetch workers without a daemon. Capacity (threads
 * running plus the queue's bound, then 429), FIFO order, counts, and stop: running tasks
 * see stopping and return, queued ones run as abandoned, later submits get 503, every
 * task runs exactly once. Runs under ThreadSanitizer too (make tsan). */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "server/fetch_pool.h"
#include "tests/unit/check.h"

typedef struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool open;
} gate;

static gate g = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false};
static vp_fetch_pool *pool;

typedef struct task {
    int id;
    atomic_int runs;
    atomic_bool abandoned;
    bool until_stop;          /* wait for the pool to stop instead of the gate */
} task;

static atomic_int order[16];
static atomic_int n_order;

static void run(void *arg, bool abandoned)
{
    task *t = arg;
    atomic_fetch_add(&t->runs, 1);
    atomic_store(&t->abandoned, abandoned);
    order[atomic_fetch_add(&n_order, 1) % 16] = t->id;
    if (abandoned)
        return;
    if (t->until_stop) { /* a download that polls for the stop */
        while (!vp_fetch_pool_stopping(pool))
            usleep(1000);
        return;
    }
    pthread_mutex_lock(&g.mu);
    while (!g.open)
        pthread_cond_wait(&g.cv, &g.mu);
    pthread_mutex_unlock(&g.mu);
}

static void wait_counts(size_t running, size_t waiting)
{
    size_t r = 0, w = 0;
    for (int i = 0; i < 5000; i++) {
        vp_fetch_pool_counts(pool, &r, &w);
        if (r == running && w == waiting)
            break;
        usleep(1000);
    }
    CHECK_MSG(r == running && w == waiting, "running %zu waiting %zu, expected %zu %zu", r, w,
              running, waiting);
}

static void test_capacity(void)
{
    vp_error err;
    CHECK(vp_fetch_pool_start(2, 1, &pool, &err) == 0);
    task t[5];
    memset(t, 0, sizeof t);
    for (int i = 0; i < 5; i++)
        t[i].id = i;
    CHECK(vp_fetch_pool_submit(pool, run, &t[0], &err) == 0);
    CHECK(vp_fetch_pool_submit(pool, run, &t[1], &err) == 0);
    wait_counts(2, 0);
    CHECK(vp_fetch_pool_submit(pool, run, &t[2], &err) == 0); /* waits */
    wait_counts(2, 1);
    CHECK(vp_fetch_pool_submit(pool, run, &t[3], &err) == -1); /* 2 running + 1 waiting */
    CHECK(err.kind == VP_ERR_BUSY);
    CHECK_MSG(strstr(err.message, "url_fetch_threads=2") && strstr(err.message, "url_fetch_queue=1"),
              "%s", err.message);
    /* both running tasks have recorded their start (a worker counts a task running before
     * it calls it): the next entries of order[] can only be the waiting task's, then t[4]'s */
    for (int i = 0; i < 5000 && atomic_load(&n_order) < 2; i++)
        usleep(1000);
    CHECK(atomic_load(&n_order) == 2);
    pthread_mutex_lock(&g.mu);
    g.open = true;
    pthread_cond_broadcast(&g.cv);
    pthread_mutex_unlock(&g.mu);
    wait_counts(0, 0);
    CHECK(vp_fetch_pool_submit(pool, run, &t[4], &err) == 0); /* room again */
    wait_counts(0, 0);
    vp_fetch_pool_free(pool);
    for (int i = 0; i < 5; i++)
        CHECK_MSG(atomic_load(&t[i].runs) == (i == 3 ? 0 : 1), "task %d ran %d times", i,
                  atomic_load(&t[i].runs));
    CHECK(order[2] == 2 && order[3] == 4); /* the waiting task ran before the later one */
}

static void test_stop(void)
{
    vp_error err;
    atomic_store(&n_order, 0);
    CHECK(vp_fetch_pool_start(1, 2, &pool, &err) == 0);
    task t[3];
    memset(t, 0, sizeof t);
    t[0].until_stop = true;
    CHECK(vp_fetch_pool_submit(pool, run, &t[0], &err) == 0);
    wait_counts(1, 0);
    CHECK(vp_fetch_pool_submit(pool, run, &t[1], &err) == 0);
    CHECK(vp_fetch_pool_submit(pool, run, &t[2], &err) == 0);
    wait_counts(1, 2);
    vp_fetch_pool_stop(pool); /* returns: the running task saw stopping */
    CHECK(atomic_load(&t[0].runs) == 1 && !atomic_load(&t[0].abandoned));
    CHECK(atomic_load(&t[1].runs) == 1 && atomic_load(&t[1].abandoned));
    CHECK(atomic_load(&t[2].runs) == 1 && atomic_load(&t[2].abandoned));
    task late = {0};
    CHECK(vp_fetch_pool_submit(pool, run, &late, &err) == -1 && err.kind == VP_ERR_UNAVAILABLE);
    CHECK(atomic_load(&late.runs) == 0);
    vp_fetch_pool_stop(pool); /* again: nothing to do */
    vp_fetch_pool_free(pool);
}

static void test_no_queue(void)
{
    vp_error err;
    CHECK(vp_fetch_pool_start(1, 0, &pool, &err) == 0);
    task t[2];
    memset(t, 0, sizeof t);
    t[0].until_stop = true;
    CHECK(vp_fetch_pool_submit(pool, run, &t[0], &err) == 0);
    CHECK(vp_fetch_pool_submit(pool, run, &t[1], &err) == -1 && err.kind == VP_ERR_BUSY);
    vp_fetch_pool_free(pool);
    CHECK(atomic_load(&t[0].runs) == 1 && atomic_load(&t[1].runs) == 0);
}

int main(void)
{
    test_capacity();
    test_stop();
    test_no_queue();
    return check_summary("test_fetch_pool");
}
