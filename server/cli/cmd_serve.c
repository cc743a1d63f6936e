/* vprm serve: configuration, listening at once (/health answers while the model loads),
 * model load + warm-up, readiness, then SIGTERM/SIGINT -> drain -> exit 0; a device that
 * fails for good -> drain -> exit 3 (exit_on_device_failure). */
#include <curl/curl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config/config.h"
#include "config/options.h"
#include "engine/backend.h"
#include "engine/engine.h"
#include "engine/image_cache.h"
#include "engine/prefix_cache.h"
#include "engine/sched/sched.h"
#include "engine/util/log.h"

#include "server/bench/bench.h"
#include "server/cli/commands.h"
#include "server/server.h"

extern char **environ;

/* Signals are handled by one thread with sigwait, so no handler runs in an arbitrary
 * thread; the main thread waits on this condition. */
static pthread_mutex_t sig_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t sig_cv = PTHREAD_COND_INITIALIZER;
static int sig_count;
static int sig_last;

/* SIGHUP reloads the credentials of this server (set while it runs), on the signal thread;
 * so does a change of their files, checked there every credentials_check_s seconds */
static pthread_mutex_t reload_mu = PTHREAD_MUTEX_INITIALIZER;
static vp_server *reload_target;
static int check_every_s; /* credentials_check_s; 0 = off */

static void set_reload_target(vp_server *s, int check_s)
{
    pthread_mutex_lock(&reload_mu); /* clearing it waits for a reload under way */
    reload_target = s;
    check_every_s = check_s;
    pthread_mutex_unlock(&reload_mu);
}

static void check_credentials(void)
{
    pthread_mutex_lock(&reload_mu);
    vp_error err = {0};
    if (reload_target && vp_server_check_credentials(reload_target, &err) < 0)
        VP_LOGE(NULL, "reload refused, the previous API keys, certificate and client CAs stay "
                "in use: %s", err.message);
    pthread_mutex_unlock(&reload_mu);
}

static void reload(void)
{
    pthread_mutex_lock(&reload_mu);
    if (!reload_target) {
        VP_LOGW(NULL, "SIGHUP: no server is running yet (or any more): nothing reloaded");
    } else {
        vp_error err = {0};
        VP_LOGI(NULL, "SIGHUP: reading the API keys file, the TLS certificate and the client "
                "CAs again");
        if (vp_server_reload(reload_target, &err))
            VP_LOGE(NULL, "SIGHUP: reload refused, the previous API keys, certificate and "
                    "client CAs stay in use: %s", err.message);
    }
    pthread_mutex_unlock(&reload_mu);
}

static void *signal_main(void *arg)
{
    sigset_t *set = arg;
    struct timespec second = {1, 0};
    double last_check = vp_sched_now_ms();
    for (;;) {
        int sig = sigtimedwait(set, NULL, &second);
        pthread_mutex_lock(&reload_mu);
        int every = check_every_s;
        pthread_mutex_unlock(&reload_mu);
        if (every > 0 && vp_sched_now_ms() - last_check >= 1000.0 * every) {
            last_check = vp_sched_now_ms();
            check_credentials();
        }
        if (sig < 0) /* the second passed (EAGAIN), or EINTR */
            continue;
        if (sig == SIGHUP) {
            reload();
            continue;
        }
        pthread_mutex_lock(&sig_mu);
        sig_count++;
        sig_last = sig;
        pthread_cond_broadcast(&sig_cv);
        pthread_mutex_unlock(&sig_mu);
    }
    return NULL;
}

/* The pass watchdog (pass_timeout_s with exit_on_device_failure): a thread of its own from
 * the engine's attach until just before the engine is closed, so that it still fires while
 * a SIGTERM's orderly stop waits for an engine thread stuck in the device. */
typedef struct watchdog {
    const vp_engine *engine;
    int timeout_s;
    const char *backend;
    atomic_bool stop;
    pthread_t thread;
    bool running;
} watchdog;

static void exit_3(int sig)
{
    (void)sig;
    _exit(3);
}

static void *watchdog_main(void *arg)
{
    watchdog *w = arg;
    while (!atomic_load(&w->stop)) {
        double ms = vp_engine_pass_ms(w->engine);
        if (ms > 1000.0 * w->timeout_s) {
            /* the engine thread is stuck in the device: no orderly stop can join it, and
             * its requests would wait for ever. Exit now: clients see their connections
             * close and retry elsewhere, a supervisor starts a new process. A log write
             * that blocks (stderr a full pipe) must not keep the process alive: SIGALRM */
            signal(SIGALRM, exit_3);
            alarm(5);
            VP_LOGE(NULL, "an engine pass has run for %.0f s, over pass_timeout_s=%d: the %s "
                    "device seems hung; exiting 3 at once (exit_on_device_failure)",
                    ms / 1e3, w->timeout_s, w->backend);
            _exit(3);
        }
        usleep(200000);
    }
    return NULL;
}

static void watchdog_start(watchdog *w, const vp_engine *e, const vp_config *cfg)
{
    w->engine = e;
    w->timeout_s = cfg->pass_timeout_s;
    w->backend = cfg->backend;
    atomic_init(&w->stop, false);
    w->running = cfg->exit_on_device_failure && cfg->pass_timeout_s > 0 &&
                 pthread_create(&w->thread, NULL, watchdog_main, w) == 0;
}

static void watchdog_stop(watchdog *w)
{
    if (!w->running)
        return;
    atomic_store(&w->stop, true);
    pthread_join(w->thread, NULL);
    w->running = false;
}

static int signals_seen(void)
{
    pthread_mutex_lock(&sig_mu);
    int n = sig_count;
    pthread_mutex_unlock(&sig_mu);
    return n;
}

/* --log-level debug: the effective configuration (the API key masked), as text lines, or
 * in JSON one log line per option. */
static void log_config(const vp_config *cfg)
{
    if (!vp_log_json()) {
        fprintf(stderr, "effective configuration:\n");
        vp_config_dump(cfg, stderr);
        return;
    }
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f)
        return;
    vp_config_dump(cfg, f);
    fclose(f);
    for (char *line = text, *end; line && *line; line = end ? end + 1 : NULL) {
        end = strchr(line, '\n');
        if (end)
            *end = 0;
        VP_LOGD(NULL, "configuration: %s", line);
    }
    free(text);
}

static vp_log_level level_of(const char *s)
{
    if (!strcmp(s, "debug"))
        return VP_LOG_DEBUG;
    if (!strcmp(s, "warn"))
        return VP_LOG_WARN;
    if (!strcmp(s, "error"))
        return VP_LOG_ERROR;
    return VP_LOG_INFO;
}

/* The warm-up request's image: a small picture of gradients and noise (one tile), so
 * that the vision path (decode, tiles, the vision kernels on a GPU, which load at their
 * first launch) runs before /ready, not in the first client's request. On an H200, after
 * a text-only warm-up, the first image request took 334 ms and the next 183 ms
 * (serve_check.sh prints both: the next GPU session sees how much of that this removes;
 * new matrix shapes still cost cuBLASLt a heuristic query the first time). */
static int add_warmup_image(vp_score_request *req, vp_error *err)
{
    uint8_t *png = NULL;
    size_t len = 0;
    if (vp_png_random(64, 64, 1, &png, &len, err))
        return -1;
    req->images = calloc(1, sizeof *req->images);
    if (!req->images) {
        free(png);
        return vp_fail(err, VP_ERR_NOMEM, "", "out of memory for the warm-up image");
    }
    req->images[0] = (vp_image_src){.kind = VP_IMAGE_BYTES, .data = png, .len = len};
    req->n_images = 1;
    return 0;
}

/* One request through prepare + run on this thread, before the engine thread exists. */
static int warm_up(vp_engine *e, const vp_config *cfg, vp_error *err)
{
    vp_request_limits lim;
    vp_request_limits_default(&lim);
    vp_score_request req;
    if (vp_request_parse(vp_server_warmup_request, strlen(vp_server_warmup_request), &lim, &req,
                         err))
        return -1;
    if (add_warmup_image(&req, err)) {
        vp_request_free(&req);
        return -1;
    }
    vp_job *job;
    int rc = vp_engine_prepare(e, &req, &job, err);
    if (rc && err->kind != VP_ERR_NOMEM) {
        /* the configured image limits refuse even this one: warm the text path alone */
        VP_LOGW(NULL, "warm-up without an image (%s)", err->message);
        for (size_t i = 0; i < req.n_images; i++)
            free(req.images[i].data);
        free(req.images);
        req.images = NULL;
        req.n_images = 0;
        memset(err, 0, sizeof *err);
        rc = vp_engine_prepare(e, &req, &job, err);
    }
    bool with_image = req.n_images > 0;
    vp_request_free(&req);
    if (rc)
        return -1;
    double t0 = vp_sched_now_ms();
    rc = vp_engine_run(e, &job, 1, err);
    if (rc == 0) {
        const vp_score_result *r = vp_job_result(job);
        for (size_t i = 0; i < r->n_responses; i++)
            if (!(r->responses[i].score >= 0.0 && r->responses[i].score <= 1.0))
                rc = vp_fail(err, VP_ERR_MODEL, "", "warm-up score %zu is %g, not in [0, 1]", i,
                             r->responses[i].score);
        if (rc == 0)
            VP_LOGI(NULL, "warm-up pass: %zu responses, %zu tokens, %s, %.1f ms (backend %s)",
                    r->n_responses, vp_job_tokens(job), with_image ? "one image tile" : "no image",
                    vp_sched_now_ms() - t0, cfg->backend);
    }
    vp_job_free(job);
    /* clients' entries and lookups only: the warm-up's would take room and show in /metrics */
    vp_prefix_cache_reset(vp_engine_prefix_cache(e));
    vp_image_cache_reset(vp_engine_image_cache(e));
    return rc;
}

int cmd_serve(int argc, char **argv)
{
    vp_config cfg;
    if (vp_config_default(&cfg)) {
        fprintf(stderr, "vprm serve: out of memory\n");
        vp_config_free(&cfg);
        return 1;
    }
    vp_error err;
    memset(&err, 0, sizeof err);
    int rc = vp_config_load(&cfg, argc, argv, environ, stdout, &err);
    if (rc) {
        if (rc == 1) {
            vp_config_free(&cfg);
            return 0; /* --help */
        }
        /* as the logs would be, when the options read before the refusal asked for JSON */
        if (cfg.log_format && !strcmp(cfg.log_format, "json")) {
            vp_log_set_json(true);
            VP_LOGE(NULL, "vprm serve: %s", err.message);
        } else {
            fprintf(stderr, "vprm serve: %s\n", err.message);
        }
        vp_config_free(&cfg);
        return 2;
    }
    vp_log_set_level(level_of(cfg.log_level));
    vp_log_set_json(!strcmp(cfg.log_format, "json"));
    if (cfg.pass_timeout_s < 0) /* auto: a GPU pass takes seconds; a CPU one, on a large
                                 * model, minutes */
        cfg.pass_timeout_s = !strcmp(cfg.backend, "cuda") ? 120 : 0;
    if (level_of(cfg.log_level) == VP_LOG_DEBUG)
        log_config(&cfg);

    /* before any thread starts: signals go to the signal thread only */
    signal(SIGPIPE, SIG_IGN);
    static sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    pthread_t sig_thread;
    if (pthread_create(&sig_thread, NULL, signal_main, &set)) {
        fprintf(stderr, "vprm serve: cannot start the signal thread\n");
        vp_config_free(&cfg);
        return 1;
    }
    pthread_detach(sig_thread);
    curl_global_init(CURL_GLOBAL_DEFAULT);

    int exit_code = 1;
    vp_engine *engine = NULL;
    static watchdog dog; /* not running until the engine is attached */
    vp_server *srv = NULL;
    if (vp_server_start(&cfg, &srv, &err)) {
        VP_LOGE(NULL, "%s", err.message);
        goto out;
    }
    set_reload_target(srv, cfg.credentials_check_s);
    /* on stdout whatever the log level: scripts started with --port 0 read the port here */
    bool v6 = strchr(cfg.host, ':') != NULL;
    printf("listening on %s://%s%s%s:%d\n", cfg.tls_cert ? "https" : "http", v6 ? "[" : "",
           cfg.host, v6 ? "]" : "",
           vp_server_port(srv));
    fflush(stdout);
    VP_LOGI(NULL, "listening on port %d; loading the model", vp_server_port(srv));
    if (!cfg.api_key && !cfg.api_keys_file && !cfg.tls_client_ca)
        VP_LOGW(NULL, "no API key set (--api-key / VPRM_API_KEY, --api-keys-file) and no "
                "client certificate required (--tls-client-ca): every client may score");
    if (cfg.allow_image_urls && cfg.url_allow_private)
        VP_LOGW(NULL, "url_allow_private is on: image URLs may reach loopback, private and "
                "link-local addresses (internal services, cloud metadata); for tests and "
                "closed networks only");

    vp_engine_options eo;
    vp_engine_options_default(&eo);
    eo.model_dir = cfg.model_dir;
    eo.backend = cfg.backend;
    eo.threads = cfg.threads;
    eo.random_weights = cfg.random_weights;
    eo.image_cache_bytes = cfg.image_cache_bytes;
    _Static_assert(VP_SIZE_AUTO == VP_KV_CACHE_AUTO, "\"auto\" passes through as the backend's");
    eo.prefix_cache_bytes = cfg.prefix_cache_bytes;
    eo.prefix_cache_host_bytes = cfg.prefix_cache_host_bytes;
    eo.prefix_cache_min_tokens = cfg.prefix_cache_min_tokens;
    eo.image_threads = cfg.image_threads;
    eo.device = cfg.device;
    eo.system_message = cfg.system_message;
    eo.max_batch_tokens = cfg.batch_tokens;
    eo.max_batch_tiles = cfg.batch_tiles;
    eo.max_request_tokens = cfg.max_request_tokens;
    eo.max_image_pixels = cfg.max_image_pixels;
    eo.max_image_side = cfg.max_image_side;
    eo.max_image_bytes = cfg.max_image_bytes;
    eo.max_jpeg_scans = cfg.max_jpeg_scans;
    eo.max_tiles = cfg.max_tiles;
    eo.prefix_sharing = cfg.prefix_sharing;
    double t0 = vp_sched_now_ms();
    if (vp_engine_open(&eo, &engine, &err)) {
        VP_LOGE(NULL, "loading %s: %s", cfg.model_dir, err.message);
        goto out;
    }
    VP_LOGI(NULL, "model %s loaded in %.0f ms: %zu parameters, backend %s, device %s",
            cfg.model_dir, vp_sched_now_ms() - t0, vp_engine_n_params(engine),
            vp_engine_backend_name(engine), vp_engine_device_name(engine));
    if (signals_seen()) {
        exit_code = 0;
        goto out;
    }
    if (cfg.warmup && warm_up(engine, &cfg, &err)) {
        VP_LOGE(NULL, "warm-up failed: %s", err.message);
        goto out;
    }
    if (vp_server_attach_engine(srv, engine, &err)) {
        VP_LOGE(NULL, "%s", err.message);
        goto out;
    }
    VP_LOGI(NULL, "ready on port %d", vp_server_port(srv));
    watchdog_start(&dog, engine, &cfg);

    /* until a signal, or (exit_on_device_failure) the device fails for good: then the
     * queued work is answered 503 at once and the process exits 3, for its supervisor to
     * start a new one (no pass can succeed in this process again) */
    const char *failed = NULL;
    pthread_mutex_lock(&sig_mu);
    while (sig_count == 0) {
        if (cfg.exit_on_device_failure && (failed = vp_engine_device_failure(engine)))
            break;
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += 200 * 1000000L;
        if (until.tv_nsec >= 1000000000L)
            until.tv_sec++, until.tv_nsec -= 1000000000L;
        pthread_cond_timedwait(&sig_cv, &sig_mu, &until);
    }
    int sig = sig_last;
    pthread_mutex_unlock(&sig_mu);
    if (failed && !signals_seen()) {
        VP_LOGE(NULL, "%s; exiting (exit_on_device_failure)", failed);
        vp_server_drain(srv, 5000.0);
        exit_code = 3;
        goto out;
    }
    VP_LOGI(NULL, "%s: draining (new requests get 503; up to %d s for queued work)",
            sig == SIGINT ? "SIGINT" : "SIGTERM", cfg.drain_timeout_s);
    double td = vp_sched_now_ms();
    if (vp_server_drain(srv, cfg.drain_timeout_s * 1000.0))
        VP_LOGW(NULL, "drain timed out after %d s: unfinished requests are answered 503",
                cfg.drain_timeout_s);
    else
        VP_LOGI(NULL, "drained in %.0f ms", vp_sched_now_ms() - td);
    exit_code = 0;
out:
    if (exit_code && exit_code != 3 && signals_seen())
        exit_code = 0; /* asked to stop while starting: not a failure */
    set_reload_target(NULL, 0);
    vp_server_stop(srv);
    watchdog_stop(&dog); /* after the stop, which may wait for a hung pass: it fires then */
    vp_engine_close(engine);
    curl_global_cleanup();
    VP_LOGI(NULL, "stopped (exit %d)", exit_code);
    vp_config_free(&cfg);
    return exit_code;
}
