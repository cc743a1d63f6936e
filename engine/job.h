/* Internal: a prepared request (engine.h's opaque vp_job) and the engine's helpers. */
#ifndef VP_JOB_H
#define VP_JOB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/backend.h"
#include "engine/engine.h"
#include "engine/prefix_cache.h"
#include "engine/prompt/prompt.h"

struct vp_job {
    vp_aggregation aggregation;
    bool return_steps, return_logits;
    size_t n_responses;     /* distinct responses: what a pass computes */
    size_t n_requested;     /* the request's responses (repeats included) */
    size_t *source;         /* [n_requested] each one's distinct response */
    vp_ids *ids;            /* [n_responses] prompt ids, BOS first */
    vp_ids *score_pos;      /* [n_responses] one position per step */
    size_t n_images;
    int *tiles_per_image;   /* [n_images] */
    size_t n_tiles;
    uint8_t *tiles;         /* [n_tiles][S][S][3] 8-bit tiles: normalised to float only while
                             * its pass is packed (4x less memory for queued work) */
    uint8_t *tile_digests;  /* [n_tiles][VP_DIGEST_BYTES] each tile's SHA-256: equal tiles are
                             * found by these (vp_job_same_tiles), not by megabytes of bytes */
    size_t tile_bytes;      /* of one tile: S x S x 3 */
    uint64_t tiles_hash;    /* vp_hash64 of the digests: the scheduler's candidates by it */
    size_t prefix_len;      /* tokens shared by all its responses (0 = none) */
    size_t share_cap;       /* leading tokens a pass may share with other jobs (0 = none) */
    size_t prompt_tokens;   /* sum of the requested responses' lengths */
    size_t computed_tokens; /* tokens the language model runs for this job */
    vp_score_result result;
};

/* Keeps j's distinct responses (the same ids and score positions) only, a request's
 * repeats mapped to them by j->source (engine/job_dedup.c). */
int vp_job_dedup(vp_job *j, vp_error *err);
/* After a pass filled j->result for the distinct responses: one result per requested
 * response, a repeat a copy of its distinct one's (ranking left to the caller; nothing
 * to do without repeats). */
int vp_job_expand_results(vp_job *j, vp_error *err);

/* Decodes and tiles the request's images into j->tiles and their digests
 * (engine/job_images.c). */
int vp_job_prepare_images(const vp_engine *e, const vp_score_request *req, vp_job *j,
                          vp_error *err);
/* What j's image tokens show, as the prefix cache keys it: each tile's digest (32 bytes
 * a tile instead of 600 KB, held and compared by the cache's entries), or its bytes for a
 * job without digests. */
vp_prefix_images vp_job_prefix_images(const vp_engine *e, const vp_job *j);
/* Whether a and b have the same tiles (so a pass encodes them once): by their digests,
 * or by their bytes where a job has none. */
bool vp_job_same_tiles(const vp_job *a, const vp_job *b);

const vp_prompt_ctx *vp_engine_prompt(const vp_engine *e);
double vp_now_ms(void);
/* Runs one packed pass on the engine's backend; after a successful one, its useful
 * FLOPs count into vp_engine_useful_flops. A pass whose logits are not all finite fails
 * (VP_ERR_MODEL) with *overflow set (overflow may be NULL). */
int vp_engine_run_backend(vp_engine *e, const vp_batch *b, float *logits, vp_forward_stats *st,
                          bool *overflow, vp_error *err);
/* After an overflow: asks the backend to switch to a wider number format (vp_backend_ops
 * widen). 1: it did (counted, logged: compute the pass again without the prefix cache);
 * 0: nothing wider; -1: the switch failed and the device is marked failed (err). */
int vp_engine_widen(vp_engine *e, vp_error *err);

#endif
