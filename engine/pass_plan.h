/* The scheduler's price of a pass: the tokens and tiles vp_engine_run will compute for jobs
 * packed together. Requests of one RL group (the same image and question, new responses)
 * share one prefix and one vision encoding in a pass, so pricing each job alone would
 * fill a pass with a fraction of what fits. Jobs are added one at a time, grouped exactly
 * as the packer groups them (engine/pack_groups.h): equal images found by their tiles' hash
 * (vp_job.tiles_hash) and confirmed by the tiles' SHA-256 digests, as the packer compares
 * them, so the price is exact even for crafted images whose hashes collide. Prefix cache
 * hits are not counted: they never add rows to a pass beyond its budget (engine/pack.c
 * refuses those), and only lower what it computes. */
#ifndef VP_PASS_PLAN_H
#define VP_PASS_PLAN_H

#include <stdbool.h>
#include <stddef.h>

#include "engine/engine.h"

typedef struct vp_pass_plan vp_pass_plan;

vp_pass_plan *vp_pass_plan_new(void); /* NULL when memory runs out */
void vp_pass_plan_free(vp_pass_plan *p);
/* An empty pass. */
void vp_pass_plan_reset(vp_pass_plan *p);
/* Adds job j if the pass then computes at most max_tokens tokens and max_tiles tiles
 * (0 = no limit) and memory allows; *tokens and *tiles get the pass's totals either way.
 * Returns whether j was added (the plan is unchanged when not). */
bool vp_pass_plan_add(vp_pass_plan *p, vp_job *j, size_t max_tokens, size_t max_tiles,
                      size_t *tokens, size_t *tiles);

#endif
