/* Jobs in flight per API key (server/key_quota.c): the bound, what a refusal reports, names
 * coming and going, and 4 threads taking and giving back at once. */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "server/key_quota.h"
#include "tests/unit/check.h"

static vp_key_quota *shared;
static atomic_size_t in_flight[2]; /* per key, counted after a take and before its give: at
                                    * most the quota's own count, so never over the bound */
static atomic_int over;

static void *hammer(void *arg)
{
    const char *name = arg;
    atomic_size_t *mine = &in_flight[name[0] == 'y'];
    int refused = 0;
    for (int i = 0; i < 20000; i++) {
        size_t n = (size_t)(i % 3) + 1;
        if (vp_key_quota_take(shared, name, n, 4, NULL) == 0) {
            if (atomic_fetch_add(mine, n) + n > 4)
                atomic_fetch_add(&over, 1);
            for (int k = 0; k < 3; k++) /* held a moment: the other thread of the key meets it */
                sched_yield();
            atomic_fetch_sub(mine, n);
            vp_key_quota_give(shared, name, n);
        } else {
            refused++;
        }
    }
    return (void *)(size_t)refused;
}

int main(void)
{
    vp_key_quota *q = vp_key_quota_new();
    CHECK(q != NULL);
    size_t held = 99;
    CHECK(vp_key_quota_take(q, "alice", 3, 4, &held) == 0 && held == 0);
    CHECK(vp_key_quota_names(q) == 1);
    CHECK(vp_key_quota_take(q, "alice", 2, 4, &held) == -1 && held == 3); /* 5 > 4 */
    CHECK(vp_key_quota_take(q, "alice", 1, 4, &held) == 0 && held == 3);  /* exactly 4 */
    CHECK(vp_key_quota_count(q, "alice") == 4 && vp_key_quota_count(q, "bob") == 0);
    CHECK(vp_key_quota_take(q, "alice", 1, 4, &held) == -1 && held == 4);
    CHECK(vp_key_quota_take(q, "bob", 4, 4, &held) == 0 && held == 0); /* another key */
    CHECK(vp_key_quota_take(q, "carol", 5, 4, &held) == -1 && held == 0);
    CHECK(vp_key_quota_names(q) == 2); /* a refused name is not kept */
    vp_key_quota_give(q, "alice", 4);
    CHECK(vp_key_quota_names(q) == 1);
    CHECK(vp_key_quota_take(q, "alice", 4, 4, &held) == 0 && held == 0);
    vp_key_quota_give(q, "alice", 2);
    CHECK(vp_key_quota_take(q, "alice", 3, 4, &held) == -1 && held == 2);
    vp_key_quota_give(q, "alice", 2);
    vp_key_quota_give(q, "bob", 4);
    vp_key_quota_give(q, "nobody", 1); /* nothing to give: no effect */
    CHECK(vp_key_quota_names(q) == 0);
    CHECK(vp_key_quota_take(q, "zero", 0, 4, &held) == 0 && vp_key_quota_names(q) == 0);
    /* a huge n does not wrap the bound */
    CHECK(vp_key_quota_take(q, "big", (size_t)-1, 4, &held) == -1);
    CHECK(vp_key_quota_take(q, "big", 1, (size_t)-1, &held) == 0);
    CHECK(vp_key_quota_take(q, "big", (size_t)-1, (size_t)-1, &held) == -1);
    vp_key_quota_give(q, "big", 1);
    /* many names over the buckets: each its own count */
    char name[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(name, sizeof name, "client%d", i);
        CHECK(vp_key_quota_take(q, name, (size_t)(i % 5) + 1, 5, NULL) == 0);
    }
    CHECK(vp_key_quota_names(q) == 1000);
    int right = 0;
    for (int i = 0; i < 1000; i++) {
        snprintf(name, sizeof name, "client%d", i);
        right += vp_key_quota_take(q, name, 5, 5, &held) == -1 && held == (size_t)(i % 5) + 1;
        vp_key_quota_give(q, name, (size_t)(i % 5) + 1);
    }
    CHECK(right == 1000);
    CHECK(vp_key_quota_names(q) == 0);
    vp_key_quota_free(q);

    /* threads: two keys, two threads each; every take is given back */
    shared = vp_key_quota_new();
    pthread_t t[4];
    const char *names[4] = {"x", "y", "x", "y"};
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, hammer, (void *)names[i]);
    size_t refused = 0;
    for (int i = 0; i < 4; i++) {
        void *r;
        pthread_join(t[i], &r);
        refused += (size_t)r;
    }
    CHECK(vp_key_quota_names(shared) == 0);
    CHECK(atomic_load(&over) == 0); /* the bound held at every moment */
    CHECK(vp_key_quota_take(shared, "x", 4, 4, &held) == 0 && held == 0);
    vp_key_quota_give(shared, "x", 4);
    printf("(%zu of 80000 takes refused while two threads shared each key's bound of 4)\n",
           refused);
    vp_key_quota_free(shared);
    return check_summary("test_key_quota");
}
