/* What each API key has used since the server started, for accounting between the
 * clients that share a GPU (an RL trainer, a serving stack, people with curl): its
 * requests by HTTP status, and the responses, prompt tokens, computed tokens and image
 * tiles of its scored requests, and the time those waited in the queue (how each client
 * fares under fair sharing). Counted by the key's name (so the counts outlive a reload
 * of the keys) and shown on /metrics and in GET /v1/models' "key". Thread-safe. */
#ifndef VP_KEY_USAGE_H
#define VP_KEY_USAGE_H

#include <stdint.h>
#include <stdio.h>

#include "engine/engine.h"

/* Names counted, at most (about 450 bytes each, six series on /metrics); later names are
 * counted together under the empty name "". A keys file holds at most 10,000; reloads
 * bringing ever new names, or client certificates with ever new common names (cert:CN),
 * can reach it. */
#define VP_KEY_USAGE_NAMES 16384
/* Slots for statuses per name: the first VP_KEY_USAGE_STATUSES - 1 distinct ones have
 * their own, later ones (the server sends about a dozen) share the last as "other". */
#define VP_KEY_USAGE_STATUSES 24

typedef struct vp_key_usage vp_key_usage;

typedef struct vp_key_usage_counts {
    uint64_t requests;         /* ended, whatever their status */
    uint64_t results_scored;   /* scored requests, a batch's items each */
    uint64_t responses_scored; /* candidates scored, batch items included */
    uint64_t prompt_tokens, computed_tokens, image_tiles;
    uint64_t queue_us;         /* microseconds its scored requests waited in the queue */
} vp_key_usage_counts;

vp_key_usage *vp_key_usage_new(void); /* NULL when out of memory */
void vp_key_usage_free(vp_key_usage *u);
/* A request of name ended with status (0 = without a response, as in vp_metrics_request). */
void vp_key_usage_request(vp_key_usage *u, const char *name, int status);
/* A scored request (or batch item) of name: its responses and usage. */
void vp_key_usage_result(vp_key_usage *u, const char *name, const vp_score_result *r);
/* name's counts (zero when it has none). */
vp_key_usage_counts vp_key_usage_get(vp_key_usage *u, const char *name);
/* The counts as Prometheus families vprm_key_requests_total{key,status},
 * vprm_key_results_scored_total{key}, vprm_key_responses_scored_total{key},
 * vprm_key_prompt_tokens_total{key}, vprm_key_tokens_computed_total{key},
 * vprm_key_image_tiles_total{key} and vprm_key_queue_seconds_total{key}, names in the
 * order they were first counted. */
void vp_key_usage_write(vp_key_usage *u, FILE *f);
/* Names counted. */
size_t vp_key_usage_names(vp_key_usage *u);

#endif
