/* Prometheus text exposition (version 0.0.4) of vp_metrics. */
#include "server/metrics.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const double jobs_bounds[] = {1, 2, 4, 8, 16, 32, 64, 128, 256};
static const double tokens_bounds[] = {64, 256, 1024, 2048, 4096, 8192, 16384, 32768, 65536};
static const double tiles_bounds[] = {0, 1, 2, 4, 8, 13, 26, 52, 104};
static const double seconds_bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                        0.5,   1,      2.5,   5,    10,    30,   60};
static const char *stage_names[VP_N_STAGES] = {"queue", "preprocess", "vision", "language",
                                               "total"};

static void hist_init(vp_histogram *h, const double *bounds, size_t n)
{
    memset(h, 0, sizeof *h);
    h->bounds = bounds;
    h->n_bounds = n;
}

void vp_histogram_observe(vp_histogram *h, double v)
{
    size_t b = 0;
    while (b < h->n_bounds && v > h->bounds[b])
        b++;
    h->counts[b]++;
    h->sum += v;
    h->count++;
}

void vp_metrics_init(vp_metrics *m)
{
    memset(m, 0, sizeof *m);
    pthread_mutex_init(&m->mu, NULL);
#define N(a) (sizeof a / sizeof a[0])
    hist_init(&m->batch_jobs, jobs_bounds, N(jobs_bounds));
    hist_init(&m->batch_tokens, tokens_bounds, N(tokens_bounds));
    hist_init(&m->batch_tiles, tiles_bounds, N(tiles_bounds));
    hist_init(&m->batch_seconds, seconds_bounds, N(seconds_bounds));
    for (int s = 0; s < VP_N_STAGES; s++)
        hist_init(&m->stage[s], seconds_bounds, N(seconds_bounds));
    for (int p = 0; p < 3; p++)
        hist_init(&m->queue_by_priority[p], seconds_bounds, N(seconds_bounds));
#undef N
}

void vp_metrics_destroy(vp_metrics *m) { pthread_mutex_destroy(&m->mu); }

void vp_metrics_request(vp_metrics *m, const char *route, int status)
{
    pthread_mutex_lock(&m->mu);
    size_t i = 0;
    while (i < m->n_requests &&
           !(m->requests[i].status == status && !strcmp(m->requests[i].route, route)))
        i++;
    if (i == m->n_requests && i < VP_METRICS_MAX_SERIES) {
        snprintf(m->requests[i].route, sizeof m->requests[i].route, "%s", route);
        m->requests[i].status = status;
        m->n_requests++;
    }
    if (i < m->n_requests)
        m->requests[i].n++;
    pthread_mutex_unlock(&m->mu);
}

void vp_metrics_batch(vp_metrics *m, size_t jobs, size_t tokens, size_t tiles, double ms,
                      double useful_flops)
{
    pthread_mutex_lock(&m->mu);
    m->useful_flops += useful_flops;
    vp_histogram_observe(&m->batch_jobs, (double)jobs);
    vp_histogram_observe(&m->batch_tokens, (double)tokens);
    vp_histogram_observe(&m->batch_tiles, (double)tiles);
    vp_histogram_observe(&m->batch_seconds, ms / 1e3);
    pthread_mutex_unlock(&m->mu);
}

void vp_metrics_result(vp_metrics *m, const vp_score_result *r, vp_priority priority)
{
    double ms[VP_N_STAGES] = {r->timing.queue, r->timing.preprocess, r->timing.vision,
                              r->timing.language, r->timing.total};
    pthread_mutex_lock(&m->mu);
    for (int s = 0; s < VP_N_STAGES; s++)
        vp_histogram_observe(&m->stage[s], ms[s] / 1e3);
    if ((unsigned)priority < 3)
        vp_histogram_observe(&m->queue_by_priority[priority], r->timing.queue / 1e3);
    m->responses_scored += r->n_responses;
    m->prompt_tokens += r->usage.prompt_tokens;
    m->computed_tokens += r->usage.computed_tokens;
    if (r->usage.prompt_tokens > r->usage.computed_tokens)
        m->saved_tokens += r->usage.prompt_tokens - r->usage.computed_tokens;
    m->image_tiles += r->usage.image_tiles;
    pthread_mutex_unlock(&m->mu);
}

void vp_metrics_event(vp_metrics *m, vp_metric_event ev)
{
    pthread_mutex_lock(&m->mu);
    switch (ev) {
    case VP_EV_CANCELLED: m->cancelled++; break;
    case VP_EV_EXPIRED: m->expired++; break;
    case VP_EV_BUSY: m->rejected_busy++; break;
    case VP_EV_DRAINING: m->rejected_draining++; break;
    case VP_EV_HEAD_TIMEOUT: m->head_timeouts++; break;
    case VP_EV_URL_FETCHED: m->url_fetched++; break;
    case VP_EV_URL_FAILED: m->url_failed++; break;
    case VP_EV_URL_BUSY: m->rejected_url_busy++; break;
    case VP_EV_MHD_CLIENT_ERROR: m->mhd_client_errors++; break;
    case VP_EV_RELOAD_OK: m->reloads_ok++; break;
    case VP_EV_RELOAD_FAILED: m->reloads_failed++; break;
    case VP_EV_KEY_BUSY: m->rejected_key_busy++; break;
    case VP_EV_BODIES_BUSY: m->rejected_bodies_busy++; break;
    }
    pthread_mutex_unlock(&m->mu);
}

/* A sample's value: whole numbers (byte counts past 10^9 too) in full, others to 15
 * significant digits. */
static const char *num_text(double v, char buf[40])
{
    if (v == floor(v) && fabs(v) < 9007199254740992.0) /* 2^53 */
        snprintf(buf, 40, "%.0f", v);
    else
        snprintf(buf, 40, "%.15g", v);
    return buf;
}

static void hist_write(FILE *f, const char *name, const char *labels, const vp_histogram *h)
{
    char t[40];
    uint64_t cum = 0;
    const char *sep = labels[0] ? "," : "";
    for (size_t b = 0; b < h->n_bounds; b++) {
        cum += h->counts[b];
        fprintf(f, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, sep, h->bounds[b],
                (unsigned long long)cum);
    }
    cum += h->counts[h->n_bounds];
    fprintf(f, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, sep, (unsigned long long)cum);
    if (labels[0]) {
        fprintf(f, "%s_sum{%s} %s\n", name, labels, num_text(h->sum, t));
        fprintf(f, "%s_count{%s} %llu\n", name, labels, (unsigned long long)h->count);
    } else {
        fprintf(f, "%s_sum %s\n", name, num_text(h->sum, t));
        fprintf(f, "%s_count %llu\n", name, (unsigned long long)h->count);
    }
}

static void counter(FILE *f, const char *name, const char *help, uint64_t v)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", name, help, name, name,
            (unsigned long long)v);
}

static void gauge(FILE *f, const char *name, const char *help, double v)
{
    char t[40];
    fprintf(f, "# HELP %s %s\n# TYPE %s gauge\n%s %s\n", name, help, name, name, num_text(v, t));
}

char *vp_metrics_render(vp_metrics *m, const vp_gauges *g, size_t *len)
{
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    if (!f)
        return NULL;
    pthread_mutex_lock(&m->mu);
    fprintf(f, "# HELP vprm_requests_total HTTP requests by route and status "
               "(status \"closed\": ended without a response).\n"
               "# TYPE vprm_requests_total counter\n");
    for (size_t i = 0; i < m->n_requests; i++) {
        char st[16];
        if (m->requests[i].status)
            snprintf(st, sizeof st, "%d", m->requests[i].status);
        else
            snprintf(st, sizeof st, "closed");
        fprintf(f, "vprm_requests_total{route=\"%s\",status=\"%s\"} %llu\n", m->requests[i].route,
                st, (unsigned long long)m->requests[i].n);
    }
    gauge(f, "vprm_queue_depth", "Jobs waiting for the engine thread.", (double)g->queue_depth);
    gauge(f, "vprm_queued_clients", "Clients (API keys' or client certificates' names; one "
          "for requests with neither) with jobs waiting: the ways fair sharing divides the "
          "passes (0 or 1 with fair_share off).",
          (double)g->queued_clients);
    gauge(f, "vprm_inflight_requests", "HTTP requests being received, prepared or waiting.",
          (double)g->inflight_requests);
    gauge(f, "vprm_request_body_bytes", "Request body bytes held (reserved by their "
          "Content-Length until parsed; bounded by max_bodies_bytes).", (double)g->body_bytes);
    gauge(f, "vprm_waiting_connections", "Connections suspended until their result is ready "
          "(or their image URLs are fetched).", (double)g->waiting_connections);
    gauge(f, "vprm_inflight_url_fetches", "Requests whose image URLs a fetch thread is "
          "downloading now.", (double)g->url_fetches_running);
    gauge(f, "vprm_waiting_url_fetches", "Requests with image URLs waiting for a fetch thread.",
          (double)g->url_fetches_waiting);
    gauge(f, "vprm_ready", "1 when the model is loaded and warm.", g->ready);
    gauge(f, "vprm_device_failed", "1 after the compute device failed for good (restart the "
          "process).", g->device_failed);
    fprintf(f, "# HELP vprm_precision_widenings_total Passes whose activations overflowed "
               "their number format and made the backend switch to a wider one for good "
               "(VPRM_CUDA_ACTIVATIONS=auto: fp16 to bf16).\n"
               "# TYPE vprm_precision_widenings_total counter\n"
               "vprm_precision_widenings_total %llu\n", g->precision_widenings);
    gauge(f, "vprm_draining", "1 while shutting down.", g->draining);
    gauge(f, "vprm_uptime_seconds", "Seconds since the server started.", g->uptime_s);
    gauge(f, "vprm_pass_running_seconds", "How long the engine pass running now has run (0: "
          "none); past pass_timeout_s the device is taken for hung.", g->pass_running_s);
    fprintf(f, "# HELP vprm_image_cache_lookups_total Image cache lookups by result.\n"
               "# TYPE vprm_image_cache_lookups_total counter\n"
               "vprm_image_cache_lookups_total{result=\"hit\"} %llu\n"
               "vprm_image_cache_lookups_total{result=\"miss\"} %llu\n",
            g->image_cache_hits, g->image_cache_misses);
    fprintf(f, "# HELP vprm_image_cache_evictions_total Images dropped from the cache.\n"
               "# TYPE vprm_image_cache_evictions_total counter\n"
               "vprm_image_cache_evictions_total %llu\n", g->image_cache_evictions);
    gauge(f, "vprm_image_cache_bytes", "Bytes held by the image cache.",
          (double)g->image_cache_bytes);
    fprintf(f, "# HELP vprm_prefix_cache_lookups_total Prefix KV cache lookups by result (a hit "
               "loads a prompt prefix's keys and values instead of computing them).\n"
               "# TYPE vprm_prefix_cache_lookups_total counter\n"
               "vprm_prefix_cache_lookups_total{result=\"hit\"} %llu\n"
               "vprm_prefix_cache_lookups_total{result=\"miss\"} %llu\n",
            g->prefix_cache_hits, g->prefix_cache_misses);
    fprintf(f, "# HELP vprm_prefix_cache_tokens_reused_total Prefix tokens loaded from the prefix "
               "KV cache instead of computed.\n"
               "# TYPE vprm_prefix_cache_tokens_reused_total counter\n"
               "vprm_prefix_cache_tokens_reused_total %llu\n", g->prefix_cache_tokens_reused);
    fprintf(f, "# HELP vprm_prefix_cache_stored_total Prompt prefixes stored in the prefix KV cache.\n"
               "# TYPE vprm_prefix_cache_stored_total counter\n"
               "vprm_prefix_cache_stored_total %llu\n", g->prefix_cache_stored);
    fprintf(f, "# HELP vprm_prefix_cache_warm_ups_total Passes run first to compute and store "
               "the rest of prefixes whose cached start (an image asked another question) was "
               "not worth loading for each response.\n"
               "# TYPE vprm_prefix_cache_warm_ups_total counter\n"
               "vprm_prefix_cache_warm_ups_total %llu\n", g->prefix_cache_warm_ups);
    fprintf(f, "# HELP vprm_prefix_cache_evictions_total Prefixes dropped from the prefix KV cache.\n"
               "# TYPE vprm_prefix_cache_evictions_total counter\n"
               "vprm_prefix_cache_evictions_total %llu\n", g->prefix_cache_evictions);
    gauge(f, "vprm_prefix_cache_entries", "Prompt prefixes held by the prefix KV cache.",
          (double)g->prefix_cache_entries);
    gauge(f, "vprm_prefix_cache_rows_used", "Token rows of the prefix KV cache in use.",
          (double)g->prefix_cache_rows_used);
    gauge(f, "vprm_prefix_cache_rows", "Token rows the prefix KV cache holds at most (0 = off).",
          (double)g->prefix_cache_rows);
    gauge(f, "vprm_prefix_cache_host_bytes", "Host bytes of the ids and tiles that key the "
          "prefix KV cache's entries.", (double)g->prefix_cache_host_bytes);
    gauge(f, "vprm_weights_bytes", "Bytes of resident model weights (device or host).",
          (double)g->weights_bytes);
    gauge(f, "vprm_working_memory_bytes", "Working memory the backend keeps between passes.",
          (double)g->working_bytes);
    if (g->resident_bytes)
        gauge(f, "process_resident_memory_bytes", "Resident memory size of the server process.",
              (double)g->resident_bytes);
    if (g->heap_bytes)
        gauge(f, "vprm_heap_in_use_bytes", "Bytes the C heap has handed out and not taken back "
              "(flat while idle unless something is kept per request).", (double)g->heap_bytes);
    gauge(f, "vprm_api_keys", "API keys accepted (0: no key is required).",
          (double)g->api_keys);
    if (g->tls) {
        fprintf(f, "# HELP vprm_tls_certificate_expiry_timestamp_seconds When the served TLS "
                   "certificate expires (Unix time).\n"
                   "# TYPE vprm_tls_certificate_expiry_timestamp_seconds gauge\n"
                   "vprm_tls_certificate_expiry_timestamp_seconds %.0f\n", g->tls_not_after);
        gauge(f, "vprm_tls_certificates_held", "TLS certificates in memory: the served one, and "
              "replaced ones that connections opened before a reload may still use.",
              (double)g->tls_pairs_held);
        gauge(f, "vprm_tls_client_cas", "Certificate authorities whose client certificates "
              "are accepted (mutual TLS; 0: no client certificate is asked for).",
              (double)g->tls_client_cas);
        if (g->tls_client_crl_next_update > 0)
            fprintf(f, "# HELP vprm_tls_client_crl_next_update_timestamp_seconds When the "
                       "earliest of the client CAs' revocation lists is due to be replaced "
                       "(Unix time; past it, it still applies).\n"
                       "# TYPE vprm_tls_client_crl_next_update_timestamp_seconds gauge\n"
                       "vprm_tls_client_crl_next_update_timestamp_seconds %.0f\n",
                    g->tls_client_crl_next_update);
    }
    if (g->device_total_bytes) {
        gauge(f, "vprm_gpu_memory_used_bytes", "GPU memory in use (every process on the device).",
              (double)g->device_used_bytes);
        gauge(f, "vprm_gpu_memory_total_bytes", "GPU memory of the device.",
              (double)g->device_total_bytes);
    }

    fprintf(f, "# HELP vprm_batch_jobs Jobs (requests or batch items) per engine pass.\n"
               "# TYPE vprm_batch_jobs histogram\n");
    hist_write(f, "vprm_batch_jobs", "", &m->batch_jobs);
    fprintf(f, "# HELP vprm_batch_tokens Language-model tokens per engine pass, as the scheduler "
               "priced it (shared prefixes once; before prefix-cache hits).\n"
               "# TYPE vprm_batch_tokens histogram\n");
    hist_write(f, "vprm_batch_tokens", "", &m->batch_tokens);
    fprintf(f, "# HELP vprm_batch_tiles Image tiles encoded per engine pass.\n"
               "# TYPE vprm_batch_tiles histogram\n");
    hist_write(f, "vprm_batch_tiles", "", &m->batch_tiles);
    fprintf(f, "# HELP vprm_batch_seconds Wall time of one engine pass.\n"
               "# TYPE vprm_batch_seconds histogram\n");
    hist_write(f, "vprm_batch_seconds", "", &m->batch_seconds);
    fprintf(f, "# HELP vprm_stage_seconds Per-request latency by stage.\n"
               "# TYPE vprm_stage_seconds histogram\n");
    for (int s = 0; s < VP_N_STAGES; s++) {
        char labels[32];
        snprintf(labels, sizeof labels, "stage=\"%s\"", stage_names[s]);
        hist_write(f, "vprm_stage_seconds", labels, &m->stage[s]);
    }
    fprintf(f, "# HELP vprm_queue_seconds_by_priority Time a scored job waited in the queue, "
               "by its priority.\n# TYPE vprm_queue_seconds_by_priority histogram\n");
    for (int p = 0; p < 3; p++) {
        char labels[32];
        snprintf(labels, sizeof labels, "priority=\"%s\"", vp_priority_name((vp_priority)p));
        hist_write(f, "vprm_queue_seconds_by_priority", labels, &m->queue_by_priority[p]);
    }
    counter(f, "vprm_responses_scored_total", "Candidate responses scored.", m->responses_scored);
    counter(f, "vprm_prompt_tokens_total", "Prompt tokens of scored requests (all responses).",
            m->prompt_tokens);
    counter(f, "vprm_tokens_computed_total", "Tokens run through the language model.",
            m->computed_tokens);
    counter(f, "vprm_tokens_saved_total", "Prompt tokens not recomputed thanks to prefix sharing.",
            m->saved_tokens);
    counter(f, "vprm_image_tiles_total", "Image tiles encoded.", m->image_tiles);
    /* a float counter: its rate over the device's peak is the sustained MFU */
    fprintf(f, "# HELP vprm_useful_flops_total Floating-point operations the scores needed, "
               "over all engine passes (PERF.md's cost model; rate / peak = MFU).\n"
               "# TYPE vprm_useful_flops_total counter\nvprm_useful_flops_total %.17g\n",
            m->useful_flops);
    counter(f, "vprm_cancelled_total", "Jobs cancelled because the client disconnected.",
            m->cancelled);
    counter(f, "vprm_queue_timeouts_total", "Jobs answered 503 after waiting past queue_timeout_ms.",
            m->expired);
    counter(f, "vprm_rejected_queue_full_total", "Requests refused with 429 (queue full).",
            m->rejected_busy);
    counter(f, "vprm_rejected_url_fetch_queue_full_total",
            "Requests with image URLs refused with 429 (every fetch thread busy: queue full, "
            "or over half of url_request_timeout_ms spent waiting).",
            m->rejected_url_busy);
    fprintf(f, "# HELP vprm_image_url_fetches_total Image URL downloads, by outcome (a URL "
               "repeated in a request is downloaded once; failed: answered 4xx; abandoned ones "
               "are not counted).\n"
               "# TYPE vprm_image_url_fetches_total counter\n"
               "vprm_image_url_fetches_total{result=\"ok\"} %llu\n"
               "vprm_image_url_fetches_total{result=\"failed\"} %llu\n",
            (unsigned long long)m->url_fetched, (unsigned long long)m->url_failed);
    counter(f, "vprm_rejected_key_quota_total",
            "Requests refused with 429 because their API key's max_queued jobs were in flight.",
            m->rejected_key_busy);
    counter(f, "vprm_rejected_request_bodies_total",
            "Requests refused with 429 (or closed, a chunked one) because max_bodies_bytes of "
            "request bodies were held.", m->rejected_bodies_busy);
    counter(f, "vprm_rejected_draining_total", "Requests refused with 503 while shutting down.",
            m->rejected_draining);
    counter(f, "vprm_header_timeouts_total",
            "Connections closed without a complete request head after header_timeout_s.",
            m->head_timeouts);
    counter(f, "vprm_client_errors_by_http_library_total",
            "Clients libmicrohttpd refused before any handler ran (a failed TLS handshake, a "
            "malformed request line, a request head over its memory; logged at debug level "
            "only).",
            m->mhd_client_errors);
    fprintf(f, "# HELP vprm_reloads_total Reloads of the API keys and TLS certificate "
               "(SIGHUP), by outcome (failed: the old ones kept).\n"
               "# TYPE vprm_reloads_total counter\n"
               "vprm_reloads_total{result=\"ok\"} %llu\n"
               "vprm_reloads_total{result=\"failed\"} %llu\n",
            (unsigned long long)m->reloads_ok, (unsigned long long)m->reloads_failed);
    pthread_mutex_unlock(&m->mu);
    if (g->key_usage)
        vp_key_usage_write(g->key_usage, f);
    if (fclose(f)) {
        free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}
