/* Load generation for `vprm bench --url` and the HTTP tests: a minimal PNG writer, the
 * seeded request generator of the standard workloads (PERF.md), and a reader of the
 * server's /metrics histograms. */
#ifndef VP_BENCH_H
#define VP_BENCH_H

#include <stddef.h>
#include <stdint.h>

#include "engine/util/err.h"

/* splitmix64: the one random source of the generators (same seed, same requests). */
typedef struct vp_rng {
    uint64_t s;
} vp_rng;
uint64_t vp_rng_next(vp_rng *r);
/* Uniform integer in [lo, hi]. */
uint64_t vp_rng_range(vp_rng *r, uint64_t lo, uint64_t hi);

/* An 8-bit RGB PNG of `rgb` ([h][w][3]) written with stored (uncompressed) deflate
 * blocks: valid for every decoder, no zlib needed. *out is malloc'd. */
int vp_png_encode_rgb(const uint8_t *rgb, uint32_t w, uint32_t h, uint8_t **out, size_t *len,
                      vp_error *err);
/* A PNG of random content: smooth colour gradients plus noise, from the seed. */
int vp_png_random(uint32_t w, uint32_t h, uint64_t seed, uint8_t **out, size_t *len,
                  vp_error *err);
/* "data:image/png;base64,..." of a buffer; malloc'd. */
char *vp_data_url(const char *mime, const uint8_t *data, size_t len);

typedef enum { VP_W1 = 1, VP_W2, VP_W3, VP_W4 } vp_workload;

typedef struct vp_workload_opts {
    vp_workload kind;
    uint64_t seed;
    /* scale-downs for CPU runs (0 = the PERF.md shape) */
    uint32_t max_image_side;  /* cap on image width/height (W3 sizes are 448..1792) */
    size_t words_per_step;    /* about 50 tokens = 35 words */
    int max_tiles;            /* > 0: sent as the request's "max_tiles" */
    size_t cap_responses;     /* > 0: at most this many responses per request */
    size_t cap_steps;         /* > 0: at most this many steps per response */
    const char *priority;     /* non-NULL: sent as the request's "priority" */
    int repeat_percent;       /* 0..100: the chance that a response after the first repeats
                               * an earlier one of its request (an RL group's repeated
                               * completions; 0 = none, the PERF.md shape) */
} vp_workload_opts;

typedef struct vp_workload_request {
    char *body;               /* JSON of POST /v1/score, malloc'd */
    size_t len;
    size_t n_responses;
    size_t n_steps;           /* summed over responses */
    uint32_t width, height;   /* 0 when text-only */
} vp_workload_request;

/* Request `index` of the workload; equal (opts, index) give byte-equal bodies. */
int vp_workload_make(const vp_workload_opts *o, uint64_t index, vp_workload_request *out,
                     vp_error *err);
void vp_workload_request_free(vp_workload_request *r);
int vp_workload_parse(const char *name, vp_workload *out);

/* A Prometheus histogram read from a /metrics body: cumulative bucket counts. */
#define VP_PROM_MAX_BUCKETS 32
typedef struct vp_prom_hist {
    double le[VP_PROM_MAX_BUCKETS];     /* upper bounds; the last is +Inf */
    double cum[VP_PROM_MAX_BUCKETS];    /* cumulative counts */
    size_t n;
    double sum, count;
} vp_prom_hist;

/* Reads histogram `name` (no labels) from a /metrics text; -1 when absent. */
int vp_prom_hist_read(const char *text, const char *name, vp_prom_hist *h);
/* Reads a counter or gauge sample `name` (exact series text, labels included). */
int vp_prom_value(const char *text, const char *series, double *out);

#endif
