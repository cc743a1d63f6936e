/* Prefix groups (engine/pack_groups.h). */
#include "engine/pack_groups.h"

static size_t common_prefix(const vp_ids *a, const vp_ids *b, size_t cap)
{
    size_t n = a->n < b->n ? a->n : b->n;
    n = n < cap ? n : cap;
    size_t k = 0;
    while (k < n && a->v[k] == b->v[k])
        k++;
    return k;
}

size_t vp_job_len(const vp_job *j)
{
    size_t len = 0;
    for (size_t r = 0; r < j->n_responses; r++)
        len += j->ids[r].n;
    return len;
}

size_t vp_job_own_prefix(const vp_job *j)
{
    return j->n_responses >= 2 ? j->prefix_len : j->share_cap;
}

size_t vp_group_choose(vp_job *const *jobs, const vp_job *j, size_t images,
                       const prefix_group *groups, size_t n_groups, size_t *prefix)
{
    size_t len = vp_job_len(j), own = vp_job_own_prefix(j);
    size_t best = n_groups, best_p = own;
    long best_gain = 0;
    for (size_t g = 0; g < n_groups && j->share_cap; g++) {
        const prefix_group *G = &groups[g];
        const vp_job *rep = jobs[G->first_job];
        if (!rep->share_cap || G->n_tiles != j->n_tiles || (j->n_tiles && G->tile_base != images))
            continue;
        size_t p = common_prefix(&rep->ids[0], &j->ids[0], G->prefix < own ? G->prefix : own);
        long before = (long)vp_group_cost(G->n_responses, G->total_len, G->prefix) +
                      (long)vp_group_cost(j->n_responses, len, own);
        long after = (long)vp_group_cost(G->n_responses + j->n_responses, G->total_len + len, p);
        if (p && before - after > best_gain) {
            best_gain = before - after;
            best = g;
            best_p = p;
        }
    }
    *prefix = best_p;
    return best;
}

size_t vp_group_join(vp_job *const *jobs, size_t i, size_t images, size_t g, size_t prefix,
                     prefix_group *groups, size_t *n_groups)
{
    const vp_job *j = jobs[i];
    if (g < *n_groups) {
        prefix_group *G = &groups[g];
        G->prefix = prefix;
        G->n_responses += j->n_responses;
        G->total_len += vp_job_len(j);
        return g;
    }
    groups[*n_groups] = (prefix_group){.first_job = i, .prefix = prefix, .tile_base = images,
                                       .n_tiles = j->n_tiles, .n_responses = j->n_responses,
                                       .total_len = vp_job_len(j)};
    return (*n_groups)++;
}
