/* The engine: model + tokenizer + backend; request preparation and packed scoring. */
#include "engine/engine.h"

#include <math.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/backend.h"
#include "engine/cuda_plan/cuda_plan.h"
#include "engine/image/image.h"
#include "engine/image_cache.h"
#include "engine/job.h"
#include "engine/prefix_cache.h"
#include "engine/prompt/prompt.h"
#include "engine/util/digest.h"
#include "engine/util/log.h"

struct vp_engine {
    vp_engine_options opt;
    char *system_message;      /* owned copy of the override, or NULL */
    vp_model *model;
    vp_tokenizer *tok;
    vp_prompt_ctx prompt;
    const vp_backend_ops *ops;
    vp_backend *backend;
    vp_image_cache *image_cache;
    vp_prefix_cache *prefix_cache; /* NULL: off, or the backend keeps none */
    double useful_flops;       /* of the passes so far (vp_engine_useful_flops) */
    /* set once, by the engine thread, when the backend reports VP_ERR_DEVICE; the message
     * is written before the flag (release) and read after it (acquire) */
    char device_failure[512];
    atomic_bool device_failed;
    /* the backend's activation format (a static string), changed by a widening on the
     * engine thread and read by HTTP threads (/v1/models) */
    _Atomic(const char *) activations;
    atomic_size_t widenings;
    /* when the backend's forward call running now began, in µs (0: none): a watchdog's
     * reading (a hung device never returns from it; a widening's weight reload is outside) */
    atomic_llong forward_t0_us;
};

void vp_engine_options_default(vp_engine_options *o)
{
    memset(o, 0, sizeof *o);
    o->backend = "cpu";
    o->max_batch_tokens = 16384;
    o->max_batch_tiles = 64;
    o->max_request_tokens = 32768;
    o->max_image_pixels = 64u << 20;
    o->max_image_bytes = 32u << 20;
    o->max_jpeg_scans = VP_IMAGE_DEFAULT_MAX_JPEG_SCANS;
    o->prefix_sharing = true;
    o->random_weights = -1;
    o->image_cache_bytes = (size_t)256 << 20;
    o->prefix_cache_host_bytes = (size_t)256 << 20;
    o->prefix_cache_min_tokens = 64;
}

double vp_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

int vp_engine_open(const vp_engine_options *opt, vp_engine **out, vp_error *err)
{
    *out = NULL;
    vp_engine *e = calloc(1, sizeof *e);
    if (!e)
        return vp_fail(err, VP_ERR_NOMEM, NULL, "out of memory");
    atomic_init(&e->forward_t0_us, 0);
    e->opt = *opt;
    if (opt->system_message) {
        e->system_message = strdup(opt->system_message);
        if (!e->system_message) {
            free(e);
            return vp_fail(err, VP_ERR_NOMEM, NULL, "out of memory");
        }
    }
    e->opt.system_message = e->system_message;
    if (!opt->model_dir) {
        free(e->system_message);
        free(e);
        return vp_fail(err, VP_ERR_BAD_REQUEST, "model", "no model folder given");
    }
    const char *backend = opt->backend ? opt->backend : "cpu";
    /* random weights are drawn by the backend; a tokenize-only engine needs none at all
     * (not 16 GB read to tokenize, and a --config-only folder serves) */
    bool random = opt->random_weights >= 0 || !strcmp(backend, "none");
    if (random ? vp_model_load_config_only(opt->model_dir, &e->model, err)
               : vp_model_load(opt->model_dir, &e->model, err))
        goto fail;
    if (vp_tokenizer_load(opt->model_dir, &e->tok, err))
        goto fail;
    const vp_model_config *cfg = vp_model_cfg(e->model);
    if (vp_tokenizer_n_ids(e->tok) > (size_t)cfg->llm.vocab) {
        vp_fail(err, VP_ERR_MODEL, NULL, "the tokenizer has %zu ids but llm_config.vocab_size is %d",
                vp_tokenizer_n_ids(e->tok), cfg->llm.vocab);
        goto fail;
    }
    const char *sys = e->system_message ? e->system_message : cfg->system_message;
    if (vp_prompt_init(&e->prompt, e->tok, sys, cfg->num_image_token, err))
        goto fail;
    e->image_cache = vp_image_cache_new(opt->image_cache_bytes);
    if (opt->image_cache_bytes && !e->image_cache) {
        vp_fail(err, VP_ERR_NOMEM, NULL, "out of memory for the image cache");
        goto fail;
    }
    if (!strcmp(backend, "none")) { /* tokenize-only engine: no weights on a device */
        *out = e;
        return 0;
    }
    e->ops = vp_backend_find(backend);
    if (!e->ops) {
        vp_fail(err, VP_ERR_BAD_REQUEST, "backend", "backend '%s' is not available in this build",
                opt->backend);
        goto fail;
    }
    vp_backend_options bo = {.threads = opt->threads,
                             .device = opt->device,
                             .max_tokens = opt->max_batch_tokens,
                             .max_tiles = opt->max_batch_tiles,
                             .kv_cache_bytes = opt->prefix_cache_bytes};
    if (random) {
        int32_t plus = vp_tokenizer_piece_id(e->tok, "+"), minus = vp_tokenizer_piece_id(e->tok, "-");
        if (!e->ops->init_random) {
            vp_fail(err, VP_ERR_BAD_REQUEST, "random_weights",
                    "backend '%s' cannot generate random weights (use --backend cuda)", e->ops->name);
            goto fail;
        }
        if (plus < 0 || minus < 0) {
            vp_fail(err, VP_ERR_MODEL, NULL, "the tokenizer has no '%s' piece: cannot score",
                    plus < 0 ? "+" : "-");
            goto fail;
        }
        if (e->ops->init_random(&e->backend, cfg, (uint64_t)opt->random_weights, plus, minus, &bo,
                                err))
            goto fail;
    } else if (e->ops->init(&e->backend, e->model, &bo, err)) {
        goto fail;
    }
    atomic_store(&e->activations,
                  e->ops->activations ? e->ops->activations(e->backend) : "float32");
    vp_backend_memory mem;
    vp_engine_memory(e, &mem);
    size_t host_bytes = opt->prefix_cache_host_bytes;
    if (host_bytes == SIZE_MAX)
        host_bytes = vp_prefix_cache_auto_host_bytes(
            mem.kv_cache_rows, mem.kv_cache_bytes, VP_DIGEST_BYTES, /* a tile's key */
            (size_t)cfg->num_image_token, opt->prefix_cache_min_tokens);
    e->prefix_cache = vp_prefix_cache_new(mem.kv_cache_rows, host_bytes,
                                          opt->prefix_cache_min_tokens);
    if (e->prefix_cache && opt->prefix_cache_host_bytes == SIZE_MAX)
        VP_LOGI("-", "prefix cache: %zu rows, up to %.1f MiB of ids and tile digests on the "
                "host (auto)",
                mem.kv_cache_rows, (double)host_bytes / (1024.0 * 1024.0));
    if (mem.kv_cache_rows && !e->prefix_cache) {
        vp_fail(err, VP_ERR_NOMEM, NULL, "out of memory for the prefix cache's index");
        goto fail;
    }
    *out = e;
    return 0;
fail:
    vp_engine_close(e);
    return -1;
}

void vp_engine_close(vp_engine *e)
{
    if (!e)
        return;
    if (e->ops && e->backend)
        e->ops->free(e->backend);
    vp_prompt_free(&e->prompt);
    vp_image_cache_free(e->image_cache);
    vp_prefix_cache_free(e->prefix_cache);
    vp_tokenizer_free(e->tok);
    vp_model_free(e->model);
    free(e->system_message);
    free(e);
}

const vp_model_config *vp_engine_config(const vp_engine *e) { return vp_model_cfg(e->model); }
const vp_tokenizer *vp_engine_tokenizer(const vp_engine *e) { return e->tok; }
const char *vp_engine_backend_name(const vp_engine *e) { return e->ops ? e->ops->name : "none"; }
const char *vp_engine_device_name(const vp_engine *e)
{
    return e->ops ? e->ops->device_name(e->backend) : "none";
}
size_t vp_engine_n_params(const vp_engine *e) { return vp_model_n_params(e->model); }
void vp_engine_memory(const vp_engine *e, vp_backend_memory *m)
{
    memset(m, 0, sizeof *m);
    if (e->ops && e->ops->memory && e->backend)
        e->ops->memory(e->backend, m);
}
const vp_engine_options *vp_engine_opts(const vp_engine *e) { return &e->opt; }
const char *vp_engine_activations(const vp_engine *e)
{
    const char *a = e->ops ? atomic_load(&((vp_engine *)e)->activations) : NULL;
    return a ? a : "none";
}
size_t vp_engine_widenings(const vp_engine *e) { return atomic_load(&((vp_engine *)e)->widenings); }
vp_image_cache *vp_engine_image_cache(const vp_engine *e) { return e->image_cache; }
vp_prefix_cache *vp_engine_prefix_cache(const vp_engine *e) { return e->prefix_cache; }
const vp_prompt_ctx *vp_engine_prompt(const vp_engine *e) { return &e->prompt; }

/* Nothing runs on the backend's device again; err (VP_ERR_DEVICE) says why. */
static void device_failed(vp_engine *e, const char *what, vp_error *err)
{
    snprintf(e->device_failure, sizeof e->device_failure,
             "the %s device failed and this process cannot use it again (restart it): %.400s",
             e->ops->name, what);
    atomic_store_explicit(&e->device_failed, true, memory_order_release);
    VP_LOGE(NULL, "%s", e->device_failure);
    if (err) {
        err->kind = VP_ERR_DEVICE;
        snprintf(err->message, sizeof err->message, "%s", e->device_failure);
    }
}

int vp_engine_run_backend(vp_engine *e, const vp_batch *b, float *logits, vp_forward_stats *st,
                          bool *overflow, vp_error *err)
{
    if (overflow)
        *overflow = false;
    if (!e->ops)
        return vp_fail(err, VP_ERR_INTERNAL, NULL, "this engine was opened without a backend");
    if (atomic_load_explicit(&e->device_failed, memory_order_acquire))
        return vp_fail(err, VP_ERR_DEVICE, NULL, "%s", e->device_failure);
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    atomic_store(&e->forward_t0_us, ((long long)now.tv_sec * 1000000 + now.tv_nsec / 1000) | 1);
    int rc = e->ops->forward(e->backend, b, logits, st, err);
    atomic_store(&e->forward_t0_us, 0);
    if (rc) {
        if (err && err->kind == VP_ERR_DEVICE) /* nothing runs on that device again */
            device_failed(e, err->message, err);
        return -1;
    }
    /* an overflow (a checkpoint's inf or huge weights, activations beyond fp16 with
     * VPRM_CUDA_ACTIVATIONS=fp16, fp16-llm or auto) must not come back as scores */
    size_t bad = 0;
    for (size_t i = 0; i < 2 * b->n_out; i++)
        bad += !isfinite(logits[i]);
    if (bad && overflow)
        *overflow = true;
    if (bad)
        return vp_fail(err, VP_ERR_MODEL, NULL,
                       "the forward pass gave %zu non-finite logits of %zu: the model overflows "
                       "on this input (inf or huge weights in the checkpoint, or activations "
                       "beyond fp16's range with fp16 activations, VPRM_CUDA_ACTIVATIONS)",
                       bad, 2 * b->n_out);
    vp_flops fl;
    vp_batch_useful_flops(vp_model_cfg(e->model), b, &fl);
    e->useful_flops += fl.total;
    return 0;
}

double vp_engine_useful_flops(const vp_engine *e) { return e->useful_flops; }

double vp_engine_pass_ms(const vp_engine *e)
{
    long long t0 = e ? atomic_load(&((vp_engine *)e)->forward_t0_us) : 0;
    if (!t0)
        return 0.0;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return ((double)now.tv_sec * 1e6 + (double)(now.tv_nsec / 1000) - (double)t0) / 1e3;
}

int vp_engine_widen(vp_engine *e, vp_error *err)
{
    if (!e->ops || !e->ops->widen)
        return 0;
    char what[256] = "";
    vp_error werr = {0};
    int rc = e->ops->widen(e->backend, what, sizeof what, &werr);
    if (rc < 0) { /* its weights are half converted: it cannot run another pass */
        char msg[400];
        snprintf(msg, sizeof msg, "switching to a wider number format after an overflow failed: %.300s",
                 werr.message);
        device_failed(e, msg, err);
        return -1;
    }
    if (rc == 1) {
        atomic_store(&e->activations, e->ops->activations ? e->ops->activations(e->backend)
                                                          : "float32");
        atomic_fetch_add(&e->widenings, 1);
        VP_LOGW(NULL, "a pass overflowed its number format (non-finite logits): the %s backend "
                "switched for good (%s); the pass is computed again and the prefix KV cache "
                "emptied", e->ops->name, what);
    }
    return rc;
}

const char *vp_engine_device_failure(const vp_engine *e)
{
    if (!e || !atomic_load_explicit(&((vp_engine *)e)->device_failed, memory_order_acquire))
        return NULL;
    return e->device_failure;
}

/* ---- preparation ---- */

/* Longest common prefix of the responses' ids, cut before the first score position so
 * that every score position lies in a response's own suffix. */
static size_t shared_prefix_len(const vp_job *j)
{
    if (j->n_responses < 2)
        return 0;
    size_t lcp = j->ids[0].n;
    for (size_t r = 0; r < j->n_responses; r++) {
        size_t k = 0, n = lcp < j->ids[r].n ? lcp : j->ids[r].n;
        while (k < n && j->ids[r].v[k] == j->ids[0].v[k])
            k++;
        lcp = k;
        if ((size_t)j->score_pos[r].v[0] < lcp)
            lcp = (size_t)j->score_pos[r].v[0];
    }
    return lcp;
}

int vp_engine_prepare(const vp_engine *e, const vp_score_request *req, vp_job **out,
                      vp_error *err)
{
    *out = NULL;
    vp_error local_err;
    if (!err)
        err = &local_err;
    double t0 = vp_now_ms();
    const vp_model_config *cfg = vp_model_cfg(e->model);
    vp_job *j = calloc(1, sizeof *j);
    if (!j)
        return vp_fail(err, VP_ERR_NOMEM, NULL, "out of memory");
    j->aggregation = req->aggregation;
    j->return_steps = req->return_steps;
    j->return_logits = req->return_logits;
    j->n_responses = req->n_responses;
    j->ids = calloc(req->n_responses, sizeof *j->ids);
    j->score_pos = calloc(req->n_responses, sizeof *j->score_pos);
    if (!j->ids || !j->score_pos) {
        vp_fail(err, VP_ERR_NOMEM, NULL, "out of memory");
        goto fail;
    }
    if (vp_job_prepare_images(e, req, j, err))
        goto fail;
    size_t total = 0;
    for (size_t r = 0; r < req->n_responses; r++) {
        const vp_response_in *resp = &req->responses[r];
        if (vp_prompt_build(&e->prompt, &req->question, j->tiles_per_image, j->n_images,
                            resp->steps, resp->n_steps, &j->ids[r], &j->score_pos[r], err)) {
            if (err->kind == VP_ERR_BAD_REQUEST && !strcmp(err->param, "responses"))
                snprintf(err->param, sizeof err->param, "responses[%zu]", r);
            goto fail;
        }
        total += j->ids[r].n;
        if (j->ids[r].n > (size_t)cfg->llm.max_pos && !cfg->llm.rope_dynamic) {
            vp_fail(err, VP_ERR_TOO_LARGE, "responses",
                    "response %zu is %zu tokens, over the model's max_position_embeddings=%d", r,
                    j->ids[r].n, cfg->llm.max_pos);
            goto fail;
        }
        /* checked as the prompts grow: a huge question times many responses stops early */
        if (e->opt.max_request_tokens && total > e->opt.max_request_tokens) {
            vp_fail(err, VP_ERR_TOO_LARGE, "responses",
                    "the request's prompts total over %zu tokens (after %zu of %zu responses), "
                    "over the limit max_request_tokens=%zu",
                    total, r + 1, req->n_responses, e->opt.max_request_tokens);
            goto fail;
        }
    }
    j->prompt_tokens = total;
    if (vp_job_dedup(j, err))
        goto fail;
    total = 0; /* what the distinct responses compute */
    for (size_t r = 0; r < j->n_responses; r++)
        total += j->ids[r].n;
    j->prefix_len = e->opt.prefix_sharing ? shared_prefix_len(j) : 0;
    /* dynamic NTK makes RoPE depend on each sequence's full length once it passes
     * max_position_embeddings: a shared prefix would then differ per response */
    for (size_t r = 0; r < j->n_responses && cfg->llm.rope_dynamic; r++)
        if (j->ids[r].n > (size_t)cfg->llm.max_pos)
            j->prefix_len = 0;
    j->computed_tokens = total - (j->prefix_len ? (j->n_responses - 1) * j->prefix_len : 0);
    /* what a packed pass may share with other jobs (same images, same leading tokens):
     * never past a score position, nothing when sharing is off or NTK forbids it */
    j->share_cap = 0;
    if (e->opt.prefix_sharing && (j->prefix_len || j->n_responses == 1)) {
        j->share_cap = (size_t)j->score_pos[0].v[0];
        for (size_t r = 1; r < j->n_responses; r++)
            if ((size_t)j->score_pos[r].v[0] < j->share_cap)
                j->share_cap = (size_t)j->score_pos[r].v[0];
        for (size_t r = 0; r < j->n_responses && cfg->llm.rope_dynamic; r++)
            if (j->ids[r].n > (size_t)cfg->llm.max_pos)
                j->share_cap = 0;
    }
    /* a job must fit one packed pass of the backend, alone if need be */
    if (e->opt.max_batch_tokens && j->computed_tokens > e->opt.max_batch_tokens) {
        /* the image tokens named, since they may be most of it: fewer tiles (max_tiles)
         * helps as much as fewer or shorter responses */
        size_t image_tokens = j->n_tiles * (size_t)cfg->num_image_token;
        char images[64] = "";
        if (j->n_tiles)
            snprintf(images, sizeof images, " (%zu of them for %zu image tile%s)", image_tokens,
                     j->n_tiles, j->n_tiles == 1 ? "" : "s");
        vp_fail(err, VP_ERR_TOO_LARGE, image_tokens * 2 > j->computed_tokens
                                           ? (req->n_images > 1 ? "images" : "image")
                                           : "responses",
                "the request needs %zu tokens in one pass%s, over the limit batch_tokens=%zu",
                j->computed_tokens, images, e->opt.max_batch_tokens);
        goto fail;
    }
    if (e->opt.max_batch_tiles && j->n_tiles > e->opt.max_batch_tiles) {
        vp_fail(err, VP_ERR_TOO_LARGE, req->n_images > 1 ? "images" : "image",
                "the request's images make %zu tiles, over the limit batch_tiles=%zu", j->n_tiles,
                e->opt.max_batch_tiles);
        goto fail;
    }
    j->result.timing.preprocess = vp_now_ms() - t0;
    *out = j;
    return 0;
fail:
    vp_job_free(j);
    return -1;
}

void vp_job_free(vp_job *j)
{
    if (!j)
        return;
    for (size_t r = 0; r < j->n_responses; r++) {
        if (j->ids)
            vp_ids_free(&j->ids[r]);
        if (j->score_pos)
            vp_ids_free(&j->score_pos[r]);
    }
    for (size_t r = 0; j->result.responses && r < j->result.n_responses; r++) {
        free(j->result.responses[r].step_scores);
        free(j->result.responses[r].step_logits);
    }
    free(j->source);
    free(j->ids);
    free(j->score_pos);
    free(j->tiles);
    free(j->tile_digests);
    free(j->tiles_per_image);
    free(j->result.responses);
    free(j->result.ranking);
    free(j);
}

size_t vp_job_tokens(const vp_job *j) { return j->computed_tokens; }
size_t vp_job_tiles(const vp_job *j) { return j->n_tiles; }
const vp_score_result *vp_job_result(const vp_job *j) { return &j->result; }
vp_score_result *vp_job_result_mut(vp_job *j) { return &j->result; }
/* by requested response: a repeat shows its distinct one's */
const vp_ids *vp_job_ids(const vp_job *j, size_t r) { return &j->ids[j->source[r]]; }
const vp_ids *vp_job_score_positions(const vp_job *j, size_t r)
{
    return &j->score_pos[j->source[r]];
}
size_t vp_job_n_responses(const vp_job *j) { return j->n_requested; }
size_t vp_job_n_distinct(const vp_job *j) { return j->n_responses; }
