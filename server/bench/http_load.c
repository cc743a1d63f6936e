/* vprm bench --url: closed-loop HTTP load. N client threads, each with its own libcurl
 * handle (kept-alive connection), send requests from a pool generated up front from the
 * seed (so request generation does not compete with the server for CPU during the run),
 * for a fixed time or a fixed count. Reports requests/s, responses/s, latency
 * percentiles, and the server's batch-size distribution from /metrics scraped before and
 * after. */
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "engine/cuda_plan/cuda_plan.h"
#include "engine/util/json_alloc.h"
#include "proto/request.h"
#include "server/bench/bench.h"
#include "server/bench/http_client.h"
#include "server/bench/http_load.h"
#include "server/cli/cli_request.h"

typedef struct load_opts {
    const char *url;
    vp_workload_opts wl;
    int clients;
    double seconds;
    long requests;      /* total; 0 = run for `seconds` */
    int pool;
    const char *api_key;
    const char *cert, *key; /* a client certificate and its key (PEM), or NULL */
    long timeout_s;
    int json;
} load_opts;

typedef struct client {
    const load_opts *o;
    int id;
    vp_workload_request *pool;
    atomic_long *next_request; /* shared counter when a total is given */
    double deadline;
    double *lat;               /* [n_lat] ms of successful requests */
    size_t n_lat, cap_lat, lat_dropped; /* dropped: no memory to keep them */
    long ok, responses, s429, s503, s4xx, s5xx, transport;
    long first_error_status;
    char first_error[256];
} client;

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static char *http_get(const char *base, const char *path, const char *api_key)
{
    char url[1024], auth[512];
    snprintf(url, sizeof url, "%s%s", base, path);
    const char *headers[2] = {NULL, NULL};
    if (api_key) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", api_key);
        headers[0] = auth;
    }
    vp_http_reply r;
    vp_http_request("GET", url, NULL, 0, headers, 30, &r);
    char *body = NULL;
    if (r.status == 200) {
        body = r.body;
        r.body = NULL;
    }
    vp_http_reply_free(&r);
    return body;
}

static void *client_main(void *arg)
{
    client *c = arg;
    const load_opts *o = c->o;
    CURL *h = curl_easy_init();
    if (!h) {
        c->transport++;
        return NULL;
    }
    char url[1024];
    snprintf(url, sizeof url, "%s/v1/score", o->url);
    struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: application/json");
    hdr = curl_slist_append(hdr, "Expect:"); /* no 100-continue round trip */
    char auth[512];
    if (o->api_key) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", o->api_key);
        hdr = curl_slist_append(hdr, auth);
    }
    vp_http_buf m = {0};
    curl_easy_setopt(h, CURLOPT_URL, url);
    vp_http_set_tls(h);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, vp_http_buf_append);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &m);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, o->timeout_s);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    for (long k = 0;; k++) {
        long idx;
        if (o->requests) {
            idx = atomic_fetch_add(c->next_request, 1);
            if (idx >= o->requests)
                break;
        } else {
            if (now_ms() >= c->deadline)
                break;
            idx = c->id + k * o->clients;
        }
        vp_workload_request *r = &c->pool[idx % o->pool];
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, r->body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->len);
        m.n = 0;
        double t0 = now_ms();
        CURLcode rc = curl_easy_perform(h);
        double ms = now_ms() - t0;
        long status = 0;
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        if (rc != CURLE_OK) {
            c->transport++;
            struct timespec pause = {0, 20 * 1000000L}; /* no busy loop on a dead server */
            nanosleep(&pause, NULL);
            if (!c->first_error[0])
                snprintf(c->first_error, sizeof c->first_error, "%s", curl_easy_strerror(rc));
            continue;
        }
        if (status == 200) {
            c->ok++;
            c->responses += (long)r->n_responses;
            if (c->n_lat == c->cap_lat) {
                size_t nc = c->cap_lat ? c->cap_lat * 2 : 256;
                double *nl = realloc(c->lat, nc * sizeof *nl);
                if (nl) {
                    c->lat = nl;
                    c->cap_lat = nc;
                }
            }
            if (c->n_lat < c->cap_lat)
                c->lat[c->n_lat++] = ms;
            else
                c->lat_dropped++;
            continue;
        }
        if (status == 429)
            c->s429++;
        else if (status == 503)
            c->s503++;
        else if (status >= 500)
            c->s5xx++;
        else
            c->s4xx++;
        if (!c->first_error[0]) {
            c->first_error_status = status;
            snprintf(c->first_error, sizeof c->first_error, "%.200s", m.p ? m.p : "");
        }
    }
    free(m.p);
    curl_slist_free_all(hdr);
    curl_easy_cleanup(h);
    return NULL;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double percentile(const double *v, size_t n, double p)
{
    if (!n)
        return NAN;
    size_t i = (size_t)ceil(p / 100.0 * (double)n);
    if (i > 0)
        i--;
    return v[i < n ? i : n - 1];
}

static void print_hist_diff(FILE *f, const char *title, const vp_prom_hist *a, const vp_prom_hist *b)
{
    double passes = b->count - a->count;
    if (passes <= 0 || a->n != b->n) {
        fprintf(f, "%s: no engine passes recorded\n", title);
        return;
    }
    fprintf(f, "%s (%.0f passes, mean %.2f):", title, passes, (b->sum - a->sum) / passes);
    double prev = 0;
    for (size_t i = 0; i < b->n; i++) {
        double cum = b->cum[i] - a->cum[i];
        double in = cum - prev;
        prev = cum;
        if (in <= 0)
            continue;
        if (b->le[i] > 1e299)
            fprintf(f, " >%g:%.1f%%", i ? b->le[i - 1] : 0.0, 100.0 * in / passes);
        else
            fprintf(f, " <=%g:%.1f%%", b->le[i], 100.0 * in / passes);
    }
    fprintf(f, "\n");
}

static json_t *finite_or_null(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

/* The server's device and backend from GET /v1/models, e.g. "NVIDIA H200 (cuda)"; buf
 * kept when the answer has none. */
static void server_device(const char *url, const char *api_key, char *buf, size_t cap)
{
    char *body = http_get(url, "/v1/models", api_key);
    json_t *j = body ? vp_json_parse(body, strlen(body), 0, NULL) : NULL;
    json_t *m = json_array_get(json_object_get(j, "models"), 0);
    const char *dev = json_string_value(json_object_get(m, "device"));
    const char *be = json_string_value(json_object_get(m, "backend"));
    if (dev)
        snprintf(buf, cap, "%s (%s)", dev, be ? be : "?");
    json_decref(j);
    free(body);
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: vprm bench --url URL [--workload W1|W2|W3|W4] [--clients 64] [--seconds 10]\n"
            "                  [--requests N] [--seed 1] [--pool 64] [--max-side PX]\n"
            "                  [--max-tiles N] [--words-per-step 35] [--api-key KEY]\n"
            "                  [--priority high|normal|low] [--timeout-s 300] [--json]\n"
            "                  [--cert FILE --key FILE] [--repeated-responses PERCENT]\n"
            "  HTTP load against a running `vprm serve` (POST URL/v1/score): closed loop,\n"
            "  one kept-alive connection per client, requests drawn from a pool generated\n"
            "  from the seed before the clock starts. --requests N sends exactly N requests\n"
            "  instead of running for --seconds. --max-side caps image sides and --max-tiles\n"
            "  is sent with every request (scaled-down runs on a CPU). --priority is sent\n"
            "  with every request: two runs at once, one \"high\", measure what a latency-bound\n"
            "  client gets under another's bulk load. An https:// URL checks the server's\n"
            "  certificate against the system's CAs, or the file in CURL_CA_BUNDLE; --cert and\n"
            "  --key (PEM) present a client certificate (a server with --tls-client-ca).\n"
            "  --repeated-responses P: each response after a request's first repeats an\n"
            "  earlier one of it with P%% chance (an RL group's repeated completions).\n"
            "  --json: stdout holds one JSON object of the figures (the device too; null for\n"
            "  a figure with no sample) and the report goes to stderr.\n");
}

int vp_bench_http_main(int argc, char **argv)
{
    load_opts o = {.wl = {.kind = VP_W3, .seed = 1}, .clients = 64, .seconds = 10, .pool = 64,
                   .timeout_s = 300};
    /* the integer options: each checked whole and in range before it is stored */
    static const struct {
        const char *name;
        long long lo, hi;
    } ints[] = {{"--clients", 1, 4096},        {"--requests", 0, 1000000000},
                {"--seed", 0, INT64_MAX},      {"--pool", 1, 65536},
                {"--max-side", 0, 65535},      {"--max-tiles", 0, 64},
                {"--words-per-step", 1, 10000}, {"--repeated-responses", 0, 100},
                {"--timeout-s", 1, 86400}};
    static const char *const strs[] = {"--url", "--workload", "--seconds", "--api-key",
                                       "--cert", "--key", "--priority"};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--json")) {
            o.json = 1;
            continue;
        }
        int k = -1, is_str = 0;
        for (int j = 0; j < (int)(sizeof ints / sizeof ints[0]) && k < 0; j++)
            if (!strcmp(a, ints[j].name))
                k = j;
        for (size_t j = 0; j < sizeof strs / sizeof strs[0] && k < 0 && !is_str; j++)
            is_str = !strcmp(a, strs[j]);
        if (k < 0 && !is_str) {
            fprintf(stderr, "vprm bench: unknown option %s\n", a);
            usage(stderr);
            return 2;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "vprm bench: %s needs a value\n", a);
            return 2;
        }
        const char *v = argv[++i];
        if (k >= 0) {
            long long n;
            if (cli_int_option("bench", a, v, ints[k].lo, ints[k].hi, &n))
                return 2;
            switch (k) {
            case 0: o.clients = (int)n; break;
            case 1: o.requests = (long)n; break;
            case 2: o.wl.seed = (uint64_t)n; break;
            case 3: o.pool = (int)n; break;
            case 4: o.wl.max_image_side = (uint32_t)n; break;
            case 5: o.wl.max_tiles = (int)n; break;
            case 6: o.wl.words_per_step = (size_t)n; break;
            case 7: o.wl.repeat_percent = (int)n; break;
            default: o.timeout_s = (long)n; break;
            }
        } else if (!strcmp(a, "--url")) {
            o.url = v;
        } else if (!strcmp(a, "--workload")) {
            if (vp_workload_parse(v, &o.wl.kind)) {
                fprintf(stderr, "vprm bench: --workload must be W1, W2, W3 or W4\n");
                return 2;
            }
        } else if (!strcmp(a, "--seconds")) {
            char *end = NULL;
            o.seconds = strtod(v, &end);
            if (!*v || *end || !isfinite(o.seconds) || o.seconds <= 0 || o.seconds > 86400) {
                fprintf(stderr, "vprm bench: --seconds wants a number in (0, 86400], not '%s'\n", v);
                return 2;
            }
        } else if (!strcmp(a, "--api-key")) {
            o.api_key = v;
        } else if (!strcmp(a, "--cert")) {
            o.cert = v;
        } else if (!strcmp(a, "--key")) {
            o.key = v;
        } else { /* --priority */
            vp_priority p;
            if (vp_priority_parse(v, strlen(v), &p)) {
                fprintf(stderr, "vprm bench: --priority must be high, normal or low\n");
                return 2;
            }
            o.wl.priority = v;
        }
    }
    if (!o.url) {
        usage(stderr);
        return 2;
    }
    /* "http://host:port/" and "http://host:port" name the same server */
    char url[2048];
    snprintf(url, sizeof url, "%s", o.url);
    for (size_t n = strlen(url); n > 8 && url[n - 1] == '/'; n--)
        url[n - 1] = 0;
    o.url = url;
    if (!o.cert != !o.key) {
        fprintf(stderr, "vprm bench: --cert and --key go together (a client certificate and "
                        "its key)\n");
        return 2;
    }
    const char *files[2] = {o.cert, o.key};
    for (int i = 0; i < 2 && o.cert; i++) { /* named now, not as every request's TLS error */
        FILE *f = fopen(files[i], "r");
        struct stat st;
        if (!f || fstat(fileno(f), &st) || !S_ISREG(st.st_mode)) {
            fprintf(stderr, "vprm bench: %s %s: %s\n", i ? "--key" : "--cert", files[i],
                    f ? "not a regular file" : strerror(errno));
            if (f)
                fclose(f);
            return 2;
        }
        fclose(f);
    }
    if (o.cert && strncmp(o.url, "https://", 8))
        fprintf(stderr, "vprm bench: warning: --cert and --key are for an https:// URL; %s "
                        "sends none\n", o.url);
    vp_http_set_client_cert(o.cert, o.key);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int rc = 1;
    vp_workload_request *pool = calloc((size_t)o.pool, sizeof *pool);
    client *cl = calloc((size_t)o.clients, sizeof *cl);
    pthread_t *th = calloc((size_t)o.clients, sizeof *th);
    char *before = NULL, *after = NULL;
    if (!pool || !cl || !th) {
        fprintf(stderr, "vprm bench: out of memory for --pool %d and --clients %d\n", o.pool,
                o.clients);
        goto out;
    }
    double tg = now_ms();
    size_t body_bytes = 0, pool_responses = 0;
    for (int i = 0; i < o.pool; i++) {
        vp_error err;
        if (vp_workload_make(&o.wl, (uint64_t)i, &pool[i], &err)) {
            fprintf(stderr, "vprm bench: generating request %d: %s\n", i, err.message);
            goto out;
        }
        body_bytes += pool[i].len;
        pool_responses += pool[i].n_responses;
    }
    fprintf(stderr, "generated %d requests (W%d, seed %llu): %.1f MB, %.1f responses each on "
                    "average, in %.0f ms\n",
            o.pool, (int)o.wl.kind, (unsigned long long)o.wl.seed, body_bytes / 1e6,
            (double)pool_responses / o.pool, now_ms() - tg);

    before = http_get(o.url, "/metrics", o.api_key);
    if (!before)
        fprintf(stderr, "vprm bench: warning: GET %s/metrics failed; no batch figures\n", o.url);
    atomic_long next;
    atomic_init(&next, 0);
    double t0 = now_ms();
    for (int i = 0; i < o.clients; i++) {
        cl[i] = (client){.o = &o, .id = i, .pool = pool, .next_request = &next,
                         .deadline = t0 + o.seconds * 1e3};
        if (pthread_create(&th[i], NULL, client_main, &cl[i])) {
            fprintf(stderr, "vprm bench: cannot start client thread %d\n", i);
            for (int k = 0; k < i; k++)
                pthread_join(th[k], NULL);
            goto out;
        }
    }
    for (int i = 0; i < o.clients; i++)
        pthread_join(th[i], NULL);
    double elapsed = (now_ms() - t0) / 1e3;
    after = before ? http_get(o.url, "/metrics", o.api_key) : NULL;
    /* every figure names the device (PERF.md): the server's, as GET /v1/models says */
    char device[256] = "unknown (GET /v1/models failed)";
    server_device(o.url, o.api_key, device, sizeof device);
    FILE *rep = o.json ? stderr : stdout; /* with --json, stdout is the JSON line only */

    long ok = 0, responses = 0, s429 = 0, s503 = 0, s4xx = 0, s5xx = 0, transport = 0;
    size_t n_lat = 0, lat_dropped = 0;
    for (int i = 0; i < o.clients; i++) {
        ok += cl[i].ok;
        responses += cl[i].responses;
        s429 += cl[i].s429;
        s503 += cl[i].s503;
        s4xx += cl[i].s4xx;
        s5xx += cl[i].s5xx;
        transport += cl[i].transport;
        n_lat += cl[i].n_lat;
        lat_dropped += cl[i].lat_dropped;
    }
    double *lat = malloc((n_lat ? n_lat : 1) * sizeof *lat);
    if (!lat) {
        fprintf(stderr, "vprm bench: out of memory sorting %zu latencies (%ld requests answered "
                "200)\n", n_lat, ok);
        goto out;
    }
    if (lat_dropped)
        fprintf(stderr, "vprm bench: %zu of %ld latencies not kept (out of memory): the "
                "percentiles are of the others\n", lat_dropped, ok);
    size_t k = 0;
    for (int i = 0; i < o.clients; i++) {
        memcpy(lat + k, cl[i].lat, cl[i].n_lat * sizeof *lat);
        k += cl[i].n_lat;
    }
    qsort(lat, n_lat, sizeof *lat, cmp_double);
    double p50 = percentile(lat, n_lat, 50), p90 = percentile(lat, n_lat, 90),
           p99 = percentile(lat, n_lat, 99), pmax = n_lat ? lat[n_lat - 1] : NAN;
    free(lat);

    fprintf(rep, "workload W%d, %d clients, %.1f s, seed %llu, url %s%s%s, device %s\n",
           (int)o.wl.kind, o.clients, elapsed, (unsigned long long)o.wl.seed, o.url,
           o.wl.priority ? ", priority " : "", o.wl.priority ? o.wl.priority : "", device);
    fprintf(rep, "requests: %ld ok, %ld x 429, %ld x 503, %ld other 4xx, %ld 5xx, %ld transport errors\n",
           ok, s429, s503, s4xx, s5xx, transport);
    fprintf(rep, "throughput: %.2f requests/s, %.2f responses/s\n", ok / elapsed, responses / elapsed);
    fprintf(rep, "latency ms: p50 %.1f  p90 %.1f  p99 %.1f  max %.1f\n", p50, p90, p99, pmax);
    for (int i = 0; i < o.clients; i++)
        if (cl[i].first_error[0]) {
            fprintf(rep, "first error (client %d, status %ld): %s\n", i, cl[i].first_error_status,
                   cl[i].first_error);
            break;
        }
    double tok_a = 0, tok_b = 0, saved_a = 0, saved_b = 0, fl_a = 0, fl_b = 0;
    if (before && after) {
        vp_prom_hist ja, jb, ta, tb;
        if (!vp_prom_hist_read(before, "vprm_batch_jobs", &ja) &&
            !vp_prom_hist_read(after, "vprm_batch_jobs", &jb))
            print_hist_diff(rep, "server jobs per pass", &ja, &jb);
        if (!vp_prom_hist_read(before, "vprm_batch_tokens", &ta) &&
            !vp_prom_hist_read(after, "vprm_batch_tokens", &tb))
            print_hist_diff(rep, "server tokens per pass", &ta, &tb);
        if (!vp_prom_value(before, "vprm_tokens_computed_total", &tok_a) &&
            !vp_prom_value(after, "vprm_tokens_computed_total", &tok_b) &&
            !vp_prom_value(before, "vprm_tokens_saved_total", &saved_a) &&
            !vp_prom_value(after, "vprm_tokens_saved_total", &saved_b))
            fprintf(rep, "tokens computed: %.0f (%.0f/s), saved by prefix sharing: %.0f\n",
                    tok_b - tok_a, (tok_b - tok_a) / elapsed, saved_b - saved_a);
        else
            fprintf(rep, "tokens computed: not in the server's /metrics\n");
        double h_a = 0, h_b = 0, r_a = 0, r_b = 0;
        const char *hits = "vprm_prefix_cache_lookups_total{result=\"hit\"}";
        const char *reused = "vprm_prefix_cache_tokens_reused_total";
        if (!vp_prom_value(before, hits, &h_a) && !vp_prom_value(after, hits, &h_b) &&
            !vp_prom_value(before, reused, &r_a) && !vp_prom_value(after, reused, &r_b))
            fprintf(rep, "prefix KV cache: %.0f hits, %.0f prefix tokens loaded instead of computed\n",
                   h_b - h_a, r_b - r_a);
        if (!vp_prom_value(before, "vprm_useful_flops_total", &fl_a) &&
            !vp_prom_value(after, "vprm_useful_flops_total", &fl_b)) {
            double tf = (fl_b - fl_a) / elapsed / 1e12; /* PERF.md's W3 target: MFU >= 65% */
            fprintf(rep, "useful compute sustained: %.1f TFLOP/s = MFU %.1f%% of %.0f TFLOP/s\n", tf,
                   100.0 * tf / VP_PEAK_TFLOPS, VP_PEAK_TFLOPS);
        }
    }
    if (o.json) {
        json_t *j = json_pack("{s:s+, s:i, s:f, s:I, s:I, s:f, s:f, s:o, s:o, s:f, s:f, s:s}",
                              "workload", "W", (int)o.wl.kind == 1   ? "1"
                                               : (int)o.wl.kind == 2 ? "2"
                                               : (int)o.wl.kind == 3 ? "3"
                                                                     : "4",
                              "clients", o.clients, "seconds", elapsed, "ok", (json_int_t)ok,
                              "errors", (json_int_t)(s429 + s503 + s4xx + s5xx + transport),
                              "requests_per_s", ok / elapsed, "responses_per_s",
                              responses / elapsed, "p50_ms", finite_or_null(p50), "p99_ms",
                              finite_or_null(p99), "tokens_computed", tok_b - tok_a,
                              "useful_tflops_per_s", (fl_b - fl_a) / elapsed / 1e12, "device",
                              device);
        char *text = j ? vp_json_dump(j, JSON_COMPACT) : NULL;
        if (text)
            printf("%s\n", text);
        else
            fprintf(stderr, "vprm bench: out of memory writing the JSON report\n");
        free(text);
        json_decref(j);
        if (!text)
            goto out;
    }
    rc = (ok > 0 && s5xx == 0 && transport == 0) ? 0 : 1;
out:
    for (int i = 0; pool && i < o.pool; i++)
        vp_workload_request_free(&pool[i]);
    for (int i = 0; cl && i < o.clients; i++)
        free(cl[i].lat);
    free(pool);
    free(cl);
    free(th);
    free(before);
    free(after);
    curl_global_cleanup();
    return rc;
}
