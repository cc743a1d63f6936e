/* The engine: a loaded model + tokenizer + backend, and the two steps of scoring.
 *
 *   vp_engine_prepare  (any thread, concurrently): decode and tile the images, build
 *                      every response's prompt ids and score positions, find the shared
 *                      prefix. Produces a vp_job, or a 4xx error naming the field.
 *   vp_engine_run      (ONE engine thread): computes many jobs in one packed backend pass
 *                      and fills each job's result. Results never depend on which other
 *                      jobs shared the pass (beyond float rounding).
 *
 * The scheduler (engine/sched) owns the queue and calls vp_engine_run with batches
 * formed under a token budget. */
#ifndef VP_ENGINE_H
#define VP_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/model/weights.h"
#include "engine/tokenizer/tokenizer.h"
#include "engine/util/err.h"
#include "engine/util/vec.h"
#include "proto/request.h"

typedef struct vp_engine_options {
    const char *model_dir;
    const char *backend;          /* "cpu" (default) or "cuda" */
    int threads;                  /* CPU threads, 0 = all */
    int device;                   /* CUDA device */
    const char *system_message;   /* overrides config.json / the PRM default; NULL = keep */
    size_t max_batch_tokens;      /* token budget of one packed pass */
    size_t max_batch_tiles;       /* tile budget of one packed pass */
    size_t max_request_tokens;    /* prompt tokens of one request (all responses); 413 above */
    size_t max_image_pixels;      /* decompression-bomb limit per image */
    size_t max_image_side;        /* width and height of an image (0 = the decoder's default) */
    size_t max_image_bytes;       /* encoded bytes per image */
    size_t max_jpeg_scans;        /* scans of a JPEG image */
    int max_tiles;                /* upper bound of a request's tiles per image (0 = the model's) */
    bool prefix_sharing;          /* share the common prefix of a request's responses (default true) */
    size_t image_cache_bytes;     /* tiles of recently seen images, by encoded bytes (0 = off) */
    int image_threads;            /* threads resizing one image (0 = min(4, cores)) */
    size_t prefix_cache_bytes;    /* the backend's prefix KV cache (0 = off, VP_KV_CACHE_AUTO =
                                     the backend's size; engine/prefix_cache.h) */
    size_t prefix_cache_host_bytes; /* ids and tiles its entries keep on the host (SIZE_MAX =
                                       vp_prefix_cache_auto_host_bytes for the rows) */
    size_t prefix_cache_min_tokens; /* the shortest prefix stored or loaded */
    int64_t random_weights;       /* >= 0: no checkpoint; the backend draws `vprm mkmodel --seed N`
                                     weights itself (cuda; model_dir needs config.json and the
                                     tokenizer only). -1 (default): load *.safetensors */
} vp_engine_options;

void vp_engine_options_default(vp_engine_options *o);

typedef struct vp_response_result {
    size_t n_steps;
    float *step_scores;  /* [n_steps] P(+) at each step */
    float *step_logits;  /* [n_steps][2] {logit(+), logit(-)} */
    double score;        /* aggregate per the request's aggregation */
} vp_response_result;

typedef struct vp_usage {
    size_t prompt_tokens;        /* sum over responses of their full prompt length */
    size_t image_tiles;
    size_t image_tokens;         /* <IMG_CONTEXT> tokens in one prompt */
    size_t shared_prefix_tokens; /* tokens of the prefix its responses share (computed once,
                                    or loaded from the prefix KV cache) */
    size_t cached_prefix_tokens; /* of those, loaded from the prefix KV cache */
    size_t computed_tokens;      /* tokens actually run through the language model */
} vp_usage;

typedef struct vp_timing_ms {
    double queue, preprocess, vision, language, total;
} vp_timing_ms;

typedef struct vp_score_result {
    vp_response_result *responses; /* [n_responses], request order */
    size_t n_responses;
    size_t *ranking;               /* [n_responses] indices by descending score, stable */
    vp_usage usage;
    vp_timing_ms timing;
} vp_score_result;

typedef struct vp_engine vp_engine;
typedef struct vp_job vp_job;

int vp_engine_open(const vp_engine_options *opt, vp_engine **out, vp_error *err);
void vp_engine_close(vp_engine *e);

/* The image tiles req's images will make, from their headers (no pixel decoded): what
 * vp_engine_prepare would hold, for admission before it; an image whose header does not
 * read counts 0 (prepare refuses it). */
size_t vp_engine_count_tiles(const vp_engine *e, const vp_score_request *req);
int vp_engine_prepare(const vp_engine *e, const vp_score_request *req, vp_job **out,
                      vp_error *err);
int vp_engine_run(vp_engine *e, vp_job *const *jobs, size_t n_jobs, vp_error *err);
void vp_job_free(vp_job *j);

/* Cost of a job in one packed pass: language-model tokens computed and tiles encoded. */
size_t vp_job_tokens(const vp_job *j);
size_t vp_job_tiles(const vp_job *j);
const vp_score_result *vp_job_result(const vp_job *j);
vp_score_result *vp_job_result_mut(vp_job *j);
/* Prompt of response r (for /v1/tokenize): ids and score positions. */
const vp_ids *vp_job_ids(const vp_job *j, size_t r);
const vp_ids *vp_job_score_positions(const vp_job *j, size_t r);
size_t vp_job_n_responses(const vp_job *j);
/* Its distinct responses: what a pass computes (a request's repeats are computed once). */
size_t vp_job_n_distinct(const vp_job *j);

const vp_model_config *vp_engine_config(const vp_engine *e);
const vp_tokenizer *vp_engine_tokenizer(const vp_engine *e);
const char *vp_engine_backend_name(const vp_engine *e);
const char *vp_engine_device_name(const vp_engine *e);
size_t vp_engine_n_params(const vp_engine *e);
/* Memory the backend holds (all zero without a backend). */
struct vp_backend_memory;
void vp_engine_memory(const vp_engine *e, struct vp_backend_memory *m);
const vp_engine_options *vp_engine_opts(const vp_engine *e);
/* The image cache (NULL when off): thread-safe, for job preparation and metrics. */
struct vp_image_cache *vp_engine_image_cache(const vp_engine *e);
/* The prefix KV cache's index (NULL when off); only its stats are for other threads. */
struct vp_prefix_cache *vp_engine_prefix_cache(const vp_engine *e);
/* Useful floating-point operations of every successful vp_engine_run so far (PERF.md's
 * cost model, vp_batch_useful_flops: what the scores need, whatever the backend computes):
 * the numerator of MFU. Read it on the thread that runs the passes. */
double vp_engine_useful_flops(const vp_engine *e);
/* NULL while the backend's device works; after a pass failed with VP_ERR_DEVICE (a lost
 * GPU context: no later call can succeed in this process) the reason, and every later
 * pass fails at once with it. Thread-safe. */
const char *vp_engine_device_failure(const vp_engine *e);
/* How long the backend's forward call running now has run, in ms (0: none, or e NULL):
 * the pass watchdog's reading (--pass-timeout-s), safe from any thread. */
double vp_engine_pass_ms(const vp_engine *e);
/* The backend's activation number format now ("float32", "bfloat16", "float16", ...;
 * "none" without a backend), and how many times an overflow made it switch to a wider
 * one (vp_backend_ops widen). Thread-safe. */
const char *vp_engine_activations(const vp_engine *e);
size_t vp_engine_widenings(const vp_engine *e);

#endif
