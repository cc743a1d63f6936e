/* Jobs in flight per API key name (key_quota.h): a hash table of names whose count is not
 * zero; a name whose count falls to zero is removed, so the table holds only the keys
 * with work in flight. */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "server/key_quota.h"

#define BUCKETS 256

typedef struct entry {
    struct entry *next;
    size_t count;
    char name[]; /* NUL-terminated */
} entry;

struct vp_key_quota {
    pthread_mutex_t mu;
    entry *bucket[BUCKETS];
    size_t n_names;
};

static size_t bucket_of(const char *name)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        h = (h ^ *p) * 16777619u;
    return h % BUCKETS;
}

vp_key_quota *vp_key_quota_new(void)
{
    vp_key_quota *q = calloc(1, sizeof *q);
    if (q)
        pthread_mutex_init(&q->mu, NULL);
    return q;
}

void vp_key_quota_free(vp_key_quota *q)
{
    if (!q)
        return;
    for (size_t b = 0; b < BUCKETS; b++)
        for (entry *e = q->bucket[b], *next; e; e = next) {
            next = e->next;
            free(e);
        }
    pthread_mutex_destroy(&q->mu);
    free(q);
}

/* The link that points at name's entry (or at the NULL ending its bucket); mu held. */
static entry **find(vp_key_quota *q, const char *name)
{
    entry **at = &q->bucket[bucket_of(name)];
    while (*at && strcmp((*at)->name, name))
        at = &(*at)->next;
    return at;
}

int vp_key_quota_take(vp_key_quota *q, const char *name, size_t n, size_t limit, size_t *held)
{
    pthread_mutex_lock(&q->mu);
    entry **at = find(q, name);
    size_t now = *at ? (*at)->count : 0;
    if (held)
        *held = now;
    int rc = -1;
    if (n <= limit && now <= limit - n) {
        if (!*at && n) {
            size_t len = strlen(name);
            entry *e = calloc(1, sizeof *e + len + 1);
            if (e) {
                memcpy(e->name, name, len + 1);
                *at = e;
                q->n_names++;
            }
        }
        rc = *at || !n ? 0 : -2;
        if (*at)
            (*at)->count += n;
    }
    pthread_mutex_unlock(&q->mu);
    return rc;
}

void vp_key_quota_give(vp_key_quota *q, const char *name, size_t n)
{
    pthread_mutex_lock(&q->mu);
    entry **at = find(q, name);
    entry *e = *at;
    if (e) {
        e->count = e->count > n ? e->count - n : 0;
        if (!e->count) {
            *at = e->next;
            free(e);
            q->n_names--;
        }
    }
    pthread_mutex_unlock(&q->mu);
}

size_t vp_key_quota_count(vp_key_quota *q, const char *name)
{
    pthread_mutex_lock(&q->mu);
    entry *e = *find(q, name);
    size_t n = e ? e->count : 0;
    pthread_mutex_unlock(&q->mu);
    return n;
}

size_t vp_key_quota_names(vp_key_quota *q)
{
    pthread_mutex_lock(&q->mu);
    size_t n = q->n_names;
    pthread_mutex_unlock(&q->mu);
    return n;
}
