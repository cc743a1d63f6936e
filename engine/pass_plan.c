/* Pricing a pass as the packer will group it (engine/pass_plan.h). */
#include "engine/pass_plan.h"

#include <stdlib.h>
#include <string.h>

#include "engine/pack_groups.h"

struct vp_pass_plan {
    vp_job **jobs;          /* [n] in the order added */
    size_t *images;         /* [n] image class: the index of the first job with equal tiles */
    prefix_group *groups;   /* [n_groups] */
    size_t n, n_groups, cap;
    size_t tokens, tiles;
};

static bool grow(vp_pass_plan *p);

vp_pass_plan *vp_pass_plan_new(void)
{
    vp_pass_plan *p = calloc(1, sizeof *p);
    if (p && !grow(p)) { /* room for 64 jobs now: a pass's first job never waits on memory */
        vp_pass_plan_free(p);
        return NULL;
    }
    return p;
}

void vp_pass_plan_free(vp_pass_plan *p)
{
    if (!p)
        return;
    free(p->jobs);
    free(p->images);
    free(p->groups);
    free(p);
}

void vp_pass_plan_reset(vp_pass_plan *p)
{
    p->n = p->n_groups = p->tokens = p->tiles = 0;
}

static bool grow(vp_pass_plan *p)
{
    if (p->n < p->cap)
        return true;
    size_t cap = p->cap ? 2 * p->cap : 64;
    vp_job **jobs = realloc(p->jobs, cap * sizeof *jobs);
    if (jobs)
        p->jobs = jobs;
    size_t *images = realloc(p->images, cap * sizeof *images);
    if (images)
        p->images = images;
    prefix_group *groups = realloc(p->groups, cap * sizeof *groups);
    if (groups)
        p->groups = groups;
    if (!jobs || !images || !groups)
        return false;
    p->cap = cap;
    return true;
}

bool vp_pass_plan_add(vp_pass_plan *p, vp_job *j, size_t max_tokens, size_t max_tiles,
                      size_t *tokens, size_t *tiles)
{
    *tokens = p->tokens, *tiles = p->tiles;
    if (!grow(p))
        return false;
    /* its images: those of an earlier job with the same tiles, or new ones to encode. The
     * hash finds candidates; the tiles' digests decide, as in the packer, so crafted
     * images with equal hashes cannot make the price fall short of the pass (a client
     * controls its tiles' bytes, and the hash is not a secret) */
    size_t images = p->n, new_tiles = j->n_tiles;
    for (size_t k = 0; k < p->n && j->n_tiles; k++) {
        const vp_job *o = p->jobs[k];
        if (o->tiles_hash == j->tiles_hash && vp_job_same_tiles(o, j)) {
            images = p->images[k];
            new_tiles = 0;
            break;
        }
    }
    size_t prefix, g = vp_group_choose(p->jobs, j, images, p->groups, p->n_groups, &prefix);
    size_t len = vp_job_len(j), after = p->tokens;
    if (g < p->n_groups) {
        const prefix_group *G = &p->groups[g];
        after -= vp_group_cost(G->n_responses, G->total_len, G->prefix);
        after += vp_group_cost(G->n_responses + j->n_responses, G->total_len + len, prefix);
    } else {
        after += vp_group_cost(j->n_responses, len, prefix);
    }
    if ((max_tokens && after > max_tokens) || (max_tiles && p->tiles + new_tiles > max_tiles))
        return false;
    p->jobs[p->n] = j;
    p->images[p->n] = images;
    vp_group_join(p->jobs, p->n, images, g, prefix, p->groups, &p->n_groups);
    p->n++;
    p->tokens = after;
    p->tiles += new_tiles;
    *tokens = p->tokens, *tiles = p->tiles;
    return true;
}
