/* Concurrent clients get the answers of a serial run.
 *
 *   http_concurrency BASE_URL API_KEY CLIENTS ROUNDS
 *
 * K distinct seeded requests (small images, several responses) are first sent one at a
 * time; then CLIENTS threads send ROUNDS requests each, all at once, so the server packs
 * them into shared engine passes. Every concurrent answer must match the serial one:
 * scores and step scores bitwise equal, or within TOL when the engine's float rounding
 * depends on the batch (the largest difference is printed). The server's batch
 * histogram must show passes that held more than one job. */
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/bench/bench.h"
#include "server/bench/http_client.h"
#include "tests/unit/check.h"

#define K 16
#define TOL 1e-6 /* documented tolerance; the CPU backend is expected to be bitwise */

static const char *base;
static char auth[256];
static const char *headers[] = {auth, "Content-Type: application/json", NULL};
static vp_workload_request reqs[K];
static json_t *serial[K];

typedef struct worker {
    int id, rounds, clients;
    int ok, bad_status, mismatched;
    double max_diff;
    size_t bitwise_diff;
    char first_problem[300];
} worker;

static double compare(json_t *a, json_t *b, size_t *not_bitwise, int *structural)
{
    double worst = 0;
    json_t *ra = json_object_get(a, "results"), *rb = json_object_get(b, "results");
    if (json_array_size(ra) != json_array_size(rb) || !json_array_size(ra)) {
        (*structural)++;
        return INFINITY;
    }
    for (size_t i = 0; i < json_array_size(ra); i++) {
        json_t *x = json_array_get(ra, i), *y = json_array_get(rb, i);
        double sx = json_real_value(json_object_get(x, "score")),
               sy = json_real_value(json_object_get(y, "score"));
        if (sx != sy)
            (*not_bitwise)++;
        worst = fmax(worst, fabs(sx - sy));
        json_t *px = json_object_get(x, "step_scores"), *py = json_object_get(y, "step_scores");
        if (json_array_size(px) != json_array_size(py)) {
            (*structural)++;
            return INFINITY;
        }
        for (size_t k = 0; k < json_array_size(px); k++) {
            double u = json_real_value(json_array_get(px, k)), v = json_real_value(json_array_get(py, k));
            if (u != v)
                (*not_bitwise)++;
            worst = fmax(worst, fabs(u - v));
        }
    }
    if (json_integer_value(json_object_get(a, "best_index")) !=
        json_integer_value(json_object_get(b, "best_index")))
        (*structural)++;
    return worst;
}

static json_t *post(int idx, long *status, char *err, size_t errcap)
{
    char url[512];
    snprintf(url, sizeof url, "%s/v1/score", base);
    vp_http_reply r;
    vp_http_request("POST", url, reqs[idx].body, reqs[idx].len, headers, 300, &r);
    *status = r.status;
    json_error_t je;
    json_t *j = r.status == 200 ? json_loads(r.body, 0, &je) : NULL;
    if (!j)
        snprintf(err, errcap, "status %ld %.60s %.150s", r.status, r.error, r.body);
    vp_http_reply_free(&r);
    return j;
}

static void *run_worker(void *arg)
{
    worker *w = arg;
    for (int k = 0; k < w->rounds; k++) {
        int idx = (w->id + k * w->clients) % K;
        long st;
        char err[256];
        json_t *j = post(idx, &st, err, sizeof err);
        if (!j) {
            w->bad_status++;
            if (!w->first_problem[0])
                snprintf(w->first_problem, sizeof w->first_problem, "request %d: %s", idx, err);
            continue;
        }
        int structural = 0;
        double d = compare(serial[idx], j, &w->bitwise_diff, &structural);
        if (structural || d > TOL) {
            w->mismatched++;
            if (!w->first_problem[0])
                snprintf(w->first_problem, sizeof w->first_problem,
                         "request %d: differs by %g (structural %d)", idx, d, structural);
        } else {
            w->ok++;
        }
        if (d > w->max_diff && isfinite(d))
            w->max_diff = d;
        json_decref(j);
    }
    return NULL;
}

static char *get_metrics(void)
{
    char url[512];
    snprintf(url, sizeof url, "%s/metrics", base);
    vp_http_reply r;
    vp_http_request("GET", url, NULL, 0, headers, 30, &r);
    char *body = r.status == 200 ? strdup(r.body) : NULL;
    vp_http_reply_free(&r);
    return body;
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: http_concurrency BASE_URL API_KEY CLIENTS ROUNDS\n");
        return 2;
    }
    base = argv[1];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", argv[2]);
    int clients = atoi(argv[3]), rounds = atoi(argv[4]);
    /* W3 shapes scaled for a CPU run: up to 4 responses of up to 4 short steps; every
     * fourth request carries a one-tile image, the others are text-only (W2) */
    for (int i = 0; i < K; i++) {
        vp_workload_opts wo = {.kind = i % 4 == 0 ? VP_W3 : VP_W2, .seed = 7,
                               .max_image_side = 448, .words_per_step = 6, .max_tiles = 1,
                               .cap_responses = 4, .cap_steps = 4};
        vp_error err;
        if (vp_workload_make(&wo, (uint64_t)i, &reqs[i], &err)) {
            fprintf(stderr, "http_concurrency: %s\n", err.message);
            return 1;
        }
    }
    for (int i = 0; i < K; i++) {
        long st;
        char err[256];
        serial[i] = post(i, &st, err, sizeof err);
        CHECK_MSG(serial[i] != NULL, "serial request %d: %s", i, err);
        if (!serial[i])
            return check_summary("http_concurrency");
    }
    char *before = get_metrics();
    worker *w = calloc((size_t)clients, sizeof *w);
    pthread_t *th = calloc((size_t)clients, sizeof *th);
    for (int i = 0; i < clients; i++) {
        w[i] = (worker){.id = i, .rounds = rounds, .clients = clients};
        pthread_create(&th[i], NULL, run_worker, &w[i]);
    }
    int ok = 0, bad = 0, mism = 0;
    size_t not_bitwise = 0;
    double worst = 0;
    for (int i = 0; i < clients; i++) {
        pthread_join(th[i], NULL);
        ok += w[i].ok;
        bad += w[i].bad_status;
        mism += w[i].mismatched;
        not_bitwise += w[i].bitwise_diff;
        worst = fmax(worst, w[i].max_diff);
        if (w[i].first_problem[0])
            fprintf(stderr, "client %d: %s\n", i, w[i].first_problem);
    }
    char *after = get_metrics();
    printf("concurrent: %d requests matched the serial run, %d failed, %d differed; "
           "%zu values not bitwise equal, largest difference %g (tolerance %g)\n",
           ok, bad, mism, not_bitwise, worst, TOL);
    CHECK(ok == clients * rounds && bad == 0 && mism == 0);
    vp_prom_hist a, b;
    CHECK(before && after && !vp_prom_hist_read(before, "vprm_batch_jobs", &a) &&
          !vp_prom_hist_read(after, "vprm_batch_jobs", &b));
    if (before && after) {
        double passes = b.count - a.count, jobs = b.sum - a.sum;
        printf("server: %.0f jobs in %.0f passes (%.2f jobs per pass)\n", jobs, passes,
               passes > 0 ? jobs / passes : 0);
        CHECK_MSG(jobs == clients * rounds, "jobs run %.0f, expected %d", jobs, clients * rounds);
        CHECK_MSG(passes < jobs, "no pass held more than one job: nothing was batched");
    }
    free(before);
    free(after);
    free(w);
    free(th);
    for (int i = 0; i < K; i++) {
        json_decref(serial[i]);
        vp_workload_request_free(&reqs[i]);
    }
    return check_summary("http_concurrency");
}
