/* Usage per API key name (key_usage.h): a hash table of names, each entry kept until
 * exit, and the entries in the order they came for /metrics. */
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "engine/util/hash64.h"
#include "server/key_usage.h"

#define BUCKETS 1024

typedef struct entry {
    struct entry *next;
    vp_key_usage_counts c;
    size_t n_statuses;
    struct {
        int status;
        uint64_t n;
    } statuses[VP_KEY_USAGE_STATUSES];
    char name[]; /* NUL-terminated */
} entry;

struct vp_key_usage {
    pthread_mutex_t mu;
    entry *bucket[BUCKETS];
    entry **order; /* [n_names] in the order they were first counted */
    size_t n_names, cap;
    entry *overflow; /* the names past VP_KEY_USAGE_NAMES, counted as "" */
};

vp_key_usage *vp_key_usage_new(void)
{
    vp_key_usage *u = calloc(1, sizeof *u);
    if (u)
        pthread_mutex_init(&u->mu, NULL);
    return u;
}

void vp_key_usage_free(vp_key_usage *u)
{
    if (!u)
        return;
    for (size_t i = 0; i < u->n_names; i++)
        free(u->order[i]);
    free(u->order);
    pthread_mutex_destroy(&u->mu);
    free(u);
}

static entry *entry_new(const char *name)
{
    size_t len = strlen(name);
    entry *e = calloc(1, sizeof *e + len + 1);
    if (e)
        memcpy(e->name, name, len + 1);
    return e;
}

/* name's entry, made when missing; NULL when out of memory. mu held. */
static entry *entry_of(vp_key_usage *u, const char *name)
{
    entry **at = &u->bucket[vp_hash64(name, strlen(name)) % BUCKETS];
    while (*at && strcmp((*at)->name, name))
        at = &(*at)->next;
    if (*at)
        return *at;
    if (u->n_names >= VP_KEY_USAGE_NAMES) {
        name = "";
        at = &u->overflow;
        if (*at)
            return *at;
    }
    if (u->n_names == u->cap) {
        size_t cap = u->cap ? 2 * u->cap : 16;
        entry **o = realloc(u->order, cap * sizeof *o);
        if (!o)
            return NULL;
        u->order = o;
        u->cap = cap;
    }
    entry *e = entry_new(name);
    if (!e)
        return NULL;
    *at = e;
    u->order[u->n_names++] = e;
    return e;
}

void vp_key_usage_request(vp_key_usage *u, const char *name, int status)
{
    pthread_mutex_lock(&u->mu);
    entry *e = entry_of(u, name);
    if (e) {
        e->c.requests++;
        size_t i = 0;
        while (i < e->n_statuses && e->statuses[i].status != status)
            i++;
        if (i == e->n_statuses) {
            if (i < VP_KEY_USAGE_STATUSES - 1) {
                e->statuses[i].status = status;
                e->n_statuses++;
            } else { /* the last slot, "other", takes the rest: no series is relabelled */
                i = VP_KEY_USAGE_STATUSES - 1;
                e->statuses[i].status = -1;
                e->n_statuses = VP_KEY_USAGE_STATUSES;
            }
        }
        e->statuses[i].n++;
    }
    pthread_mutex_unlock(&u->mu);
}

void vp_key_usage_result(vp_key_usage *u, const char *name, const vp_score_result *r)
{
    pthread_mutex_lock(&u->mu);
    entry *e = entry_of(u, name);
    if (e) {
        e->c.results_scored++;
        e->c.responses_scored += r->n_responses;
        e->c.prompt_tokens += r->usage.prompt_tokens;
        e->c.computed_tokens += r->usage.computed_tokens;
        e->c.image_tiles += r->usage.image_tiles;
        if (r->timing.queue > 0)
            e->c.queue_us += (uint64_t)llround(r->timing.queue * 1e3);
    }
    pthread_mutex_unlock(&u->mu);
}

vp_key_usage_counts vp_key_usage_get(vp_key_usage *u, const char *name)
{
    vp_key_usage_counts c = {0};
    pthread_mutex_lock(&u->mu);
    entry *e = u->bucket[vp_hash64(name, strlen(name)) % BUCKETS];
    while (e && strcmp(e->name, name))
        e = e->next;
    if (e)
        c = e->c;
    pthread_mutex_unlock(&u->mu);
    return c;
}

/* One counter family of every name: field's count, or its microseconds as seconds. */
static void family(FILE *f, const vp_key_usage *u, const char *name, const char *help,
                   size_t field)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s counter\n", name, help, name);
    bool us = field == offsetof(vp_key_usage_counts, queue_us);
    for (size_t i = 0; i < u->n_names; i++) {
        uint64_t v;
        memcpy(&v, (const char *)&u->order[i]->c + field, sizeof v);
        if (us)
            fprintf(f, "%s{key=\"%s\"} %llu.%06llu\n", name, u->order[i]->name,
                    (unsigned long long)(v / 1000000), (unsigned long long)(v % 1000000));
        else
            fprintf(f, "%s{key=\"%s\"} %llu\n", name, u->order[i]->name,
                    (unsigned long long)v);
    }
}

void vp_key_usage_write(vp_key_usage *u, FILE *f)
{
    pthread_mutex_lock(&u->mu);
    /* names are of [A-Za-z0-9.-_@:] (api_keys.c): nothing to escape in a label */
    fprintf(f, "# HELP vprm_key_requests_total HTTP requests by API key name and status "
               "(\"closed\": ended without a response; \"other\": statuses past the first "
               "23 of a name).\n"
               "# TYPE vprm_key_requests_total counter\n");
    for (size_t i = 0; i < u->n_names; i++) {
        const entry *e = u->order[i];
        for (size_t s = 0; s < e->n_statuses; s++) {
            char st[16];
            if (e->statuses[s].status > 0)
                snprintf(st, sizeof st, "%d", e->statuses[s].status);
            else
                snprintf(st, sizeof st, "%s", e->statuses[s].status ? "other" : "closed");
            fprintf(f, "vprm_key_requests_total{key=\"%s\",status=\"%s\"} %llu\n", e->name, st,
                    (unsigned long long)e->statuses[s].n);
        }
    }
    family(f, u, "vprm_key_results_scored_total",
           "Scored requests (a batch's items each) of each API key name: what "
           "vprm_key_queue_seconds_total's waits are counted over.",
           offsetof(vp_key_usage_counts, results_scored));
    family(f, u, "vprm_key_responses_scored_total",
           "Responses (candidates) scored for each API key name.",
           offsetof(vp_key_usage_counts, responses_scored));
    family(f, u, "vprm_key_prompt_tokens_total",
           "Prompt tokens of the scored requests of each API key name.",
           offsetof(vp_key_usage_counts, prompt_tokens));
    family(f, u, "vprm_key_tokens_computed_total",
           "Tokens the language model ran for each API key name's scored requests (their "
           "answers' usage.computed_tokens: its share of the GPU's work).",
           offsetof(vp_key_usage_counts, computed_tokens));
    family(f, u, "vprm_key_image_tiles_total", "Image tiles of each API key name's scored "
           "requests.", offsetof(vp_key_usage_counts, image_tiles));
    family(f, u, "vprm_key_queue_seconds_total", "Seconds each API key name's scored requests "
           "(batch items each) waited in the queue, to the microsecond: over "
           "vprm_key_results_scored_total, its mean wait (how it fares under fair sharing).",
           offsetof(vp_key_usage_counts, queue_us));
    pthread_mutex_unlock(&u->mu);
}

size_t vp_key_usage_names(vp_key_usage *u)
{
    pthread_mutex_lock(&u->mu);
    size_t n = u->n_names;
    pthread_mutex_unlock(&u->mu);
    return n;
}
