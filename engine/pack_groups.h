/* Internal: prefix groups, shared by the packer (engine/pack.c) and the scheduler's
 * pricing of a pass (engine/pass_plan.c), so that both group jobs the same way.
 *
 * A prefix group: jobs of one pass with the same images whose responses start with the
 * same tokens. Their common prefix (system prompt, image, question) is one sequence that
 * every response of every member attends to, so an RL group of requests on one image
 * computes its prefix once per pass. */
#ifndef VP_PACK_GROUPS_H
#define VP_PACK_GROUPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/job.h"

typedef struct prefix_group {
    size_t first_job;     /* its representative: ids[0] of this job */
    size_t prefix;        /* shared tokens (0 = none) */
    size_t tile_base;     /* its images: the packer's first tile, the planner's image class */
    size_t n_tiles;
    size_t n_responses;
    size_t total_len;     /* tokens of all member responses */
    /* prefix KV cache (the packer only): rows [0, cached) load from the entry at cache row
     * `slot` (then no prefix is computed). With `store`, rows [store_from, prefix) are
     * stored at cache row store_slot: the computed prefix's, or after a load (store_from =
     * cached) the first response's; store_from > 0 makes them an extension */
    size_t cached, slot, store_slot, store_from;
    int32_t cached_seq;   /* its cached sequence in the pass, or -1 */
    bool store, needs_tiles;
} prefix_group;

/* Tokens computed for n responses of total length len sharing a prefix of p tokens. */
static inline size_t vp_group_cost(size_t n, size_t len, size_t p)
{
    return n >= 2 && p ? len - (n - 1) * p : len;
}

/* Tokens of all of a job's responses. */
size_t vp_job_len(const vp_job *j);
/* What a job offers to share: its responses' common prefix, or for one response its
 * tokens before the first score position. */
size_t vp_job_own_prefix(const vp_job *j);

/* The group job j (whose images have class `images`: equal classes, equal images) would
 * join: the one where it saves the most computed tokens, or n_groups for a group of its
 * own. *prefix: that group's prefix after j joins. jobs[g.first_job] are the groups'
 * representatives. */
size_t vp_group_choose(vp_job *const *jobs, const vp_job *j, size_t images,
                       const prefix_group *groups, size_t n_groups, size_t *prefix);
/* Puts jobs[i] in group g as chosen (g == *n_groups: a new group). Returns g. */
size_t vp_group_join(vp_job *const *jobs, size_t i, size_t images, size_t g, size_t prefix,
                     prefix_group *groups, size_t *n_groups);

#endif
