/* GET /health, /ready, /v1/models, /metrics, /openapi.json. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/backend.h"
#include "engine/image_cache.h"
#include "engine/prefix_cache.h"
#include "server/process_memory.h"
#include "server/internal.h"

/* Whether a pass has run past pass_timeout_s (a hung device): its message in why[cap]. */
static bool pass_hung(vp_server *s, char *why, size_t cap)
{
    double ms = vp_server_pass_ms(s);
    if (s->cfg->pass_timeout_s <= 0 || ms <= 1000.0 * s->cfg->pass_timeout_s)
        return false;
    snprintf(why, cap, "an engine pass has run for %.0f s, over pass_timeout_s=%d: the device "
             "seems hung", ms / 1e3, s->cfg->pass_timeout_s);
    return true;
}

/* Liveness (API.md: 200 while the process serves HTTP); a failed or hung device shows in
 * the body, and /ready answers 503 for it. */
enum MHD_Result vp_route_health(vp_conn *x)
{
    const char *failed = vp_engine_device_failure(atomic_load(&x->srv->engine));
    char why[160];
    bool hung = !failed && pass_hung(x->srv, why, sizeof why);
    bool ready = atomic_load(&x->srv->ready) && !failed && !hung;
    json_t *j = json_pack("{s:s, s:b, s:b}", "status",
                          failed ? "device_failed" : hung ? "device_hung" : "ok", "ready", ready,
                          "draining", atomic_load(&x->srv->draining));
    if (j && (failed || hung))
        json_object_set_new(j, "device_error", json_string(failed ? failed : why));
    return vp_reply_json(x, 200, j);
}

enum MHD_Result vp_route_ready(vp_conn *x)
{
    vp_server *s = x->srv;
    if (atomic_load(&s->draining))
        return vp_reply_errorf(x, VP_ERR_UNAVAILABLE, "", "shutting down (draining)");
    if (!atomic_load(&s->ready))
        return vp_reply_errorf(x, VP_ERR_UNAVAILABLE, "",
                               "loading: the model is not loaded and warmed up yet");
    const char *failed = vp_engine_device_failure(atomic_load(&s->engine));
    if (failed)
        return vp_reply_errorf(x, VP_ERR_DEVICE, "", "%s", failed);
    char why[160];
    if (pass_hung(s, why, sizeof why))
        return vp_reply_errorf(x, VP_ERR_DEVICE, "", "%s", why);
    return vp_reply_json(x, 200, json_pack("{s:s}", "status", "ready"));
}

static json_t *limits_json(const vp_config *c)
{
    return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, "
                     "s:I, s:I, s:I, s:I, s:b, s:b}",
                     "max_body_bytes", (json_int_t)c->max_body_bytes,
                     "max_bodies_bytes", (json_int_t)c->max_bodies_bytes,
                     "max_header_bytes", (json_int_t)c->max_header_bytes,
                     "max_responses", (json_int_t)c->max_responses,
                     "max_steps", (json_int_t)c->max_steps,
                     "max_images", (json_int_t)c->max_images,
                     "max_image_bytes", (json_int_t)c->max_image_bytes,
                     "max_image_pixels", (json_int_t)c->max_image_pixels,
                     "max_image_side", (json_int_t)c->max_image_side,
                     "max_json_values", (json_int_t)c->max_json_values,
                     "max_tiles", (json_int_t)c->max_tiles,
                     "max_text_bytes", (json_int_t)c->max_text_bytes,
                     "max_tokens", (json_int_t)c->max_request_tokens,
                     "max_batch_requests", (json_int_t)c->max_batch_requests,
                     "max_queue", (json_int_t)c->max_queue,
                     "batch_tokens", (json_int_t)c->batch_tokens,
                     "batch_tiles", (json_int_t)c->batch_tiles,
                     "queue_timeout_ms", (json_int_t)c->queue_timeout_ms,
                     "priority_boost_ms", (json_int_t)c->priority_boost_ms,
                     "fair_share", c->fair_share, "image_urls", c->allow_image_urls);
}

enum MHD_Result vp_route_models(vp_conn *x)
{
    vp_server *s = x->srv;
    vp_engine *e = atomic_load(&s->engine);
    json_t *models = json_array();
    int bad = !models; /* a part that cannot be added fails the answer (500), never a 200
                        * without it */
    if (e) {
        const char *backend = vp_engine_backend_name(e);
        /* the activations' format: fp32 on the CPU; bf16, fp16 or both on CUDA
         * (VPRM_CUDA_ACTIVATIONS), which an overflow can widen while serving. dtype is the
         * language model's, one word; activations says it all */
        const char *activations = vp_engine_activations(e);
        char dtype[32];
        snprintf(dtype, sizeof dtype, "%.*s", (int)strcspn(activations, " ("), activations);
        vp_backend_memory mem;
        vp_engine_memory(e, &mem);
        json_t *memory = json_pack("{s:I, s:I, s:I, s:I}", "weights_bytes",
                                   (json_int_t)mem.weights_bytes, "working_bytes",
                                   (json_int_t)mem.working_bytes, "prefix_cache_bytes",
                                   (json_int_t)mem.kv_cache_bytes, "prefix_cache_rows",
                                   (json_int_t)mem.kv_cache_rows);
        bad |= !memory;
        if (memory && mem.device_total_bytes) {
            bad |= json_object_set_new(memory, "device_total_bytes", json_integer((json_int_t)mem.device_total_bytes));
            bad |= json_object_set_new(memory, "device_free_bytes", json_integer((json_int_t)mem.device_free_bytes));
        }
        bad |= json_array_append_new(
            models,
            json_pack("{s:s, s:s, s:I, s:s, s:s, s:s, s:s, s:o*, s:b, s:b}", "name",
                      s->model_name, "path", s->cfg->model_dir ? s->cfg->model_dir : "",
                      "parameters", (json_int_t)vp_engine_n_params(e), "dtype", dtype,
                      "activations", activations, "backend", backend,
                      "device", vp_engine_device_name(e), "memory", memory, "random_weights",
                      vp_engine_opts(e)->random_weights >= 0, "prefix_sharing",
                      vp_engine_opts(e)->prefix_sharing));
    }
    json_t *j = json_pack("{s:o, s:o, s:s, s:b, s:b}", "models", models, "limits",
                          limits_json(s->cfg), "version", VP_BUILD_VERSION, "ready",
                          atomic_load(&s->ready), "auth", vp_server_api_keys(s) > 0);
    if (j && s->cfg->tls_client_ca) /* mutual TLS: requests need a client certificate */
        bad |= json_object_set_new(j, "client_certificates", json_true());
    if (j && x->key_name[0]) { /* what the caller's key grants, its jobs in flight now and
                                * what it used before this request */
        vp_key_usage_counts u = vp_key_usage_get(s->usage, x->key_name);
        bad |= json_object_set_new(
            j, "key",
            json_pack("{s:s, s:s, s:o, s:I, s:I, s:{s:I, s:I, s:I, s:I, s:I, s:I, s:f}}",
                      "name",
                      x->key_name, "max_priority", vp_priority_name(x->max_priority),
                      "max_queued",
                      x->max_queued ? json_integer((json_int_t)x->max_queued) : json_null(),
                      "weight", (json_int_t)x->weight,
                      "queued", (json_int_t)vp_key_quota_count(s->quota, x->key_name),
                      "usage", "requests", (json_int_t)u.requests, "results_scored",
                      (json_int_t)u.results_scored, "responses_scored",
                      (json_int_t)u.responses_scored, "prompt_tokens",
                      (json_int_t)u.prompt_tokens, "computed_tokens",
                      (json_int_t)u.computed_tokens, "image_tiles", (json_int_t)u.image_tiles,
                      "queue_seconds", (double)u.queue_us / 1e6));
    }
    if (bad) {
        json_decref(j);
        j = NULL; /* vp_reply_json answers that as out of memory */
    }
    return vp_reply_json(x, 200, j);
}

enum MHD_Result vp_route_metrics(vp_conn *x)
{
    vp_server *s = x->srv;
    vp_gauges g = {0};
    g.queue_depth = atomic_load(&s->engine) ? vp_sched_queue_depth(s->sched) : 0;
    g.queued_clients = atomic_load(&s->engine) ? vp_sched_queued_clients(s->sched) : 0;
    g.inflight_requests = atomic_load(&s->inflight);
    g.body_bytes = atomic_load(&s->body_bytes);
    pthread_mutex_lock(&s->wait_mu);
    g.waiting_connections = s->n_waiting;
    pthread_mutex_unlock(&s->wait_mu);
    if (s->fetch_pool)
        vp_fetch_pool_counts(s->fetch_pool, &g.url_fetches_running, &g.url_fetches_waiting);
    g.ready = atomic_load(&s->ready);
    g.device_failed = vp_engine_device_failure(atomic_load(&s->engine)) != NULL;
    g.ready = g.ready && !g.device_failed;
    g.draining = atomic_load(&s->draining);
    g.uptime_s = (vp_sched_now_ms() - s->t_started) / 1e3;
    g.pass_running_s = vp_server_pass_ms(s) / 1e3;
    vp_engine *engine = atomic_load(&s->engine);
    if (engine) {
        vp_image_cache_stats cs;
        vp_image_cache_stats_get(vp_engine_image_cache(engine), &cs);
        g.image_cache_hits = cs.hits, g.image_cache_misses = cs.misses;
        g.image_cache_evictions = cs.evictions, g.image_cache_bytes = cs.bytes;
        vp_prefix_cache_stats ps;
        vp_prefix_cache_stats_get(vp_engine_prefix_cache(engine), &ps);
        g.prefix_cache_hits = ps.hits, g.prefix_cache_misses = ps.misses;
        g.prefix_cache_evictions = ps.evictions, g.prefix_cache_tokens_reused = ps.tokens_reused;
        g.prefix_cache_stored = ps.stored, g.prefix_cache_entries = ps.entries;
        g.prefix_cache_warm_ups = ps.warm_ups;
        g.prefix_cache_rows_used = ps.rows_used, g.prefix_cache_rows = ps.rows;
        g.prefix_cache_host_bytes = ps.host_bytes;
        vp_backend_memory mem;
        vp_engine_memory(engine, &mem);
        g.weights_bytes = mem.weights_bytes, g.working_bytes = mem.working_bytes;
        g.device_total_bytes = mem.device_total_bytes;
        g.precision_widenings = vp_engine_widenings(engine);
        g.device_used_bytes = mem.device_total_bytes - mem.device_free_bytes;
    }
    g.resident_bytes = vp_process_resident_bytes();
    g.heap_bytes = vp_process_heap_bytes();
    g.api_keys = vp_server_api_keys(s);
    g.tls = s->tls;
    g.key_usage = s->usage;
    pthread_rwlock_rdlock(&s->keys_lock);
    g.tls_client_cas = vp_client_cas_count(s->client_cas);
    g.tls_client_crl_next_update = vp_client_cas_crl_next_update(s->client_cas);
    pthread_rwlock_unlock(&s->keys_lock);
    if (s->tls) {
        g.tls_not_after = vp_tls_not_after();
        g.tls_pairs_held = vp_tls_pairs_held();
    }
    size_t len;
    char *body = vp_metrics_render(&s->metrics, &g, &len);
    if (!body)
        return vp_reply_errorf(x, VP_ERR_NOMEM, "", "out of memory rendering metrics");
    return vp_reply(x, 200, body, len, "text/plain; version=0.0.4; charset=utf-8");
}

/* The document built at start (proto/openapi.h); the answer takes a copy to free. */
enum MHD_Result vp_route_openapi(vp_conn *x)
{
    char *body = malloc(x->srv->openapi_len);
    if (!body)
        return vp_reply_errorf(x, VP_ERR_NOMEM, "", "out of memory");
    memcpy(body, x->srv->openapi, x->srv->openapi_len);
    return vp_reply(x, 200, body, x->srv->openapi_len, "application/json");
}
