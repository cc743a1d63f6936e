/* Chained hash table of the clients with jobs queued or running; it doubles at one record a
 * bucket.
 * Names come from the operator's keys file or a verified certificate, never from a
 * request's body, so a fast non-keyed hash is enough. */
#include "engine/sched/sched_clients.h"

#include <stdlib.h>
#include <string.h>

#include "engine/util/hash64.h"

void sched_clients_init(sched_clients *c)
{
    memset(c, 0, sizeof *c);
}

void sched_clients_free(sched_clients *c)
{
    for (size_t b = 0; b < c->n_buckets; b++)
        for (sched_client *r = c->buckets[b], *next; r; r = next) {
            next = r->next;
            free(r);
        }
    free(c->buckets);
    sched_clients_init(c);
}

/* Twice the buckets, the records rehashed; on failure it stays as it is (chains longer). */
static void grow(sched_clients *c)
{
    size_t nb = c->n_buckets ? c->n_buckets * 2 : 64;
    sched_client **b = calloc(nb, sizeof *b);
    if (!b)
        return;
    for (size_t i = 0; i < c->n_buckets; i++)
        for (sched_client *r = c->buckets[i], *next; r; r = next) {
            next = r->next;
            r->next = b[r->hash & (nb - 1)];
            b[r->hash & (nb - 1)] = r;
        }
    free(c->buckets);
    c->buckets = b;
    c->n_buckets = nb;
}

sched_client *sched_clients_join(sched_clients *c, const char *name)
{
    size_t len = name ? strnlen(name, VP_SCHED_CLIENT_NAME_MAX) : 0;
    if (!len) {
        c->shared.queued++;
        return &c->shared;
    }
    unsigned long long h = vp_hash64(name, len);
    if (c->n_buckets)
        for (sched_client *r = c->buckets[h & (c->n_buckets - 1)]; r; r = r->next)
            if (r->hash == h && strncmp(r->name, name, len) == 0 && !r->name[len]) {
                c->n_queued += !r->queued++;
                return r;
            }
    if (c->n >= c->n_buckets)
        grow(c);
    sched_client *r = c->n_buckets ? calloc(1, sizeof *r) : NULL;
    if (!r) {
        c->shared.queued++;
        return &c->shared;
    }
    memcpy(r->name, name, len);
    r->hash = h;
    r->queued = 1;
    c->n_queued++;
    sched_client **b = &c->buckets[h & (c->n_buckets - 1)];
    r->next = *b;
    *b = r;
    c->n++;
    return r;
}

/* r's record when it has no job queued or running: freed (the shared one reset). */
static void drop_if_idle(sched_clients *c, sched_client *r)
{
    if (r->queued || r->running)
        return;
    if (r == &c->shared) { /* as a record made anew: no debt carried to its next job */
        memset(r->finish, 0, sizeof r->finish);
        return;
    }
    sched_client **p = &c->buckets[r->hash & (c->n_buckets - 1)];
    while (*p != r)
        p = &(*p)->next;
    *p = r->next;
    c->n--;
    free(r);
}

void sched_clients_leave(sched_clients *c, sched_client *r)
{
    if (!--r->queued && r != &c->shared)
        c->n_queued--;
    drop_if_idle(c, r);
}

void sched_clients_start(sched_clients *c, sched_client *r)
{
    r->running++;
    if (!--r->queued && r != &c->shared)
        c->n_queued--;
}

void sched_clients_done(sched_clients *c, sched_client *r)
{
    r->running--;
    drop_if_idle(c, r);
}

size_t sched_clients_active(const sched_clients *c)
{
    return c->n_queued + (c->shared.queued > 0);
}
