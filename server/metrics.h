/* Service metrics in the Prometheus text format. Counters and histograms only grow
 * (nothing resets on scrape); gauges are read at scrape time. */
#ifndef VP_METRICS_H
#define VP_METRICS_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/engine.h"
#include "server/key_usage.h"

#define VP_HIST_MAX_BUCKETS 20

typedef struct vp_histogram {
    const double *bounds;                   /* [n_bounds] upper bounds, ascending */
    size_t n_bounds;
    uint64_t counts[VP_HIST_MAX_BUCKETS + 1]; /* per bucket (not cumulative); last = +Inf */
    double sum;
    uint64_t count;
} vp_histogram;

enum { VP_STAGE_QUEUE, VP_STAGE_PREPROCESS, VP_STAGE_VISION, VP_STAGE_LANGUAGE, VP_STAGE_TOTAL,
       VP_N_STAGES };

#define VP_METRICS_MAX_SERIES 128

typedef struct vp_metrics {
    pthread_mutex_t mu;
    /* requests by route and status ("closed" = ended without a response) */
    struct {
        char route[24];
        int status;
        uint64_t n;
    } requests[VP_METRICS_MAX_SERIES];
    size_t n_requests;
    vp_histogram batch_jobs, batch_tokens, batch_tiles, batch_seconds;
    vp_histogram stage[VP_N_STAGES];        /* seconds per scored request */
    vp_histogram queue_by_priority[3];      /* queue seconds per scored job, by vp_priority */
    uint64_t responses_scored;              /* responses (candidates) scored */
    uint64_t prompt_tokens, computed_tokens, saved_tokens, image_tiles;
    uint64_t cancelled, expired, rejected_busy, rejected_draining, head_timeouts;
    uint64_t mhd_client_errors;
    uint64_t reloads_ok, reloads_failed, rejected_key_busy, rejected_bodies_busy;
    uint64_t url_fetched, url_failed, rejected_url_busy; /* image URL fetches */
    double useful_flops;                    /* of every engine pass (PERF.md's cost model) */
} vp_metrics;

/* Gauges sampled when rendering. */
typedef struct vp_gauges {
    size_t queue_depth;
    size_t queued_clients;  /* clients (API keys' names) with jobs queued */
    size_t inflight_requests;
    size_t waiting_connections;  /* suspended, waiting for the engine or an image fetch */
    size_t url_fetches_running, url_fetches_waiting; /* requests at / waiting for a fetch thread */
    int ready, draining, device_failed;
    unsigned long long precision_widenings; /* overflows that made the backend widen */
    double uptime_s;
    double pass_running_s;                        /* the engine pass running now (0: none) */
    unsigned long long image_cache_hits, image_cache_misses, image_cache_evictions;
    size_t image_cache_bytes;
    unsigned long long prefix_cache_hits, prefix_cache_misses, prefix_cache_evictions;
    unsigned long long prefix_cache_tokens_reused, prefix_cache_stored, prefix_cache_warm_ups;
    size_t prefix_cache_entries, prefix_cache_rows_used, prefix_cache_rows;
    size_t prefix_cache_host_bytes;
    size_t weights_bytes, working_bytes;          /* the backend's */
    size_t device_total_bytes, device_used_bytes; /* 0 when the backend is not a GPU */
    size_t resident_bytes, heap_bytes;            /* the process's (0 when unknown) */
    size_t api_keys;                              /* keys accepted (0 = open) */
    int tls;                                      /* serving HTTPS */
    double tls_not_after;                         /* its certificate's expiry, Unix time */
    size_t tls_pairs_held;                        /* certificates held (replaced ones in use) */
    vp_key_usage *key_usage;                      /* per API key name (NULL = none) */
    size_t tls_client_cas;                        /* client CAs (mutual TLS; 0 = off) */
    size_t body_bytes;                            /* request body bytes held (reserved) */
    double tls_client_crl_next_update;            /* their CRLs' earliest, Unix time; 0 = none */
} vp_gauges;

void vp_metrics_init(vp_metrics *m);
void vp_metrics_destroy(vp_metrics *m);
/* status 0 = the request ended without a response (client gone, timeout). */
void vp_metrics_request(vp_metrics *m, const char *route, int status);
void vp_metrics_batch(vp_metrics *m, size_t jobs, size_t tokens, size_t tiles, double ms,
                      double useful_flops);
void vp_metrics_result(vp_metrics *m, const vp_score_result *r, vp_priority priority);
typedef enum {
    VP_EV_CANCELLED,
    VP_EV_EXPIRED,
    VP_EV_BUSY,
    VP_EV_DRAINING,
    VP_EV_HEAD_TIMEOUT,
    VP_EV_URL_FETCHED,  /* one image URL fetched */
    VP_EV_URL_FAILED,   /* one image URL failed (not abandoned) */
    VP_EV_URL_BUSY,     /* a request refused: the fetch queue was full */
    VP_EV_MHD_CLIENT_ERROR, /* libmicrohttpd refused a client itself (TLS handshake, head) */
    VP_EV_RELOAD_OK,     /* SIGHUP: the credentials read again */
    VP_EV_RELOAD_FAILED, /* SIGHUP: refused, the old ones kept */
    VP_EV_KEY_BUSY,      /* a request refused: its API key's max_queued was reached */
    VP_EV_BODIES_BUSY    /* a request refused: max_bodies_bytes of bodies already held */
} vp_metric_event;
void vp_metrics_event(vp_metrics *m, vp_metric_event ev);
/* The /metrics body (malloc'd), or NULL when memory runs out. */
char *vp_metrics_render(vp_metrics *m, const vp_gauges *g, size_t *len);

void vp_histogram_observe(vp_histogram *h, double v);

#endif
