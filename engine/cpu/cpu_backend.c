/* The CPU backend's entry points: init (fp32 weights + thread pool), forward
 * (validate, vision, language, timings), device name, free. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/cpu/cpu.h"
#include "engine/cpu/cpu_model.h"
#include "engine/image/image.h"
#include "engine/util/log.h"

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* "model name : X" of /proc/cpuinfo into buf, or "" when unknown. */
static void cpu_model_name(char *buf, size_t cap)
{
    buf[0] = '\0';
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f)
        return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) != 0)
            continue;
        const char *colon = strchr(line, ':');
        if (!colon)
            break;
        colon++;
        while (*colon == ' ' || *colon == '\t')
            colon++;
        snprintf(buf, cap, "%s", colon);
        buf[strcspn(buf, "\n")] = '\0';
        break;
    }
    fclose(f);
}

static void cpu_free(vp_backend *b)
{
    if (!b)
        return;
    vp_pool_free(b->pool);
    cpu_weights_free(&b->w);
    free(b->kv_cache);
    free(b);
}

/* Floats of one cache row in one layer: its keys then its values. */
size_t cpu_kv_row_floats(const vp_backend *b)
{
    return 2 * (size_t)b->cfg.llm.kv_heads * (size_t)b->cfg.llm.head_dim;
}

static int cpu_kv_cache_alloc(vp_backend *b, size_t bytes, vp_error *err)
{
    if (bytes == VP_KV_CACHE_AUTO) /* the reference backend: a fixed size, not the host's RAM */
        bytes = VP_KV_CACHE_AUTO_CPU_BYTES;
    size_t per_row = (size_t)b->cfg.llm.layers * cpu_kv_row_floats(b) * sizeof(float);
    b->kv_rows = per_row ? bytes / per_row : 0;
    if (b->kv_rows == 0)
        return 0;
    b->kv_cache = cpu_alloc(b->kv_rows * per_row / sizeof(float), sizeof(float),
                            "the prefix KV cache", err);
    if (!b->kv_cache)
        return vp_fail(err, VP_ERR_NOMEM, "prefix_cache_bytes",
                       "cannot allocate %.2f GiB for the prefix KV cache (%zu rows; lower "
                       "prefix_cache_bytes, 0 = off)",
                       (double)(b->kv_rows * per_row) / (1 << 30), b->kv_rows);
    VP_LOGI("-", "cpu backend: prefix KV cache of %zu rows (%.1f MiB)", b->kv_rows,
            (double)(b->kv_rows * per_row) / (1024.0 * 1024.0));
    return 0;
}

int vp_cpu_init_weights(vp_backend **out, const vp_model_config *cfg, const vp_weights *w,
                        const vp_backend_options *opt, vp_error *err)
{
    *out = NULL;
    if (cpu_check_config(cfg, err) != 0)
        return -1;
    vp_backend *b = calloc(1, sizeof *b);
    if (!b)
        return vp_fail(err, VP_ERR_NOMEM, "", "out of memory for the CPU backend");
    b->cfg = *cfg;
    b->cfg.system_message = NULL; /* owned by the caller's config */
    b->max_tokens = opt ? opt->max_tokens : 0;
    b->max_tiles = opt ? opt->max_tiles : 0;
    /* a test hook (tests/http): VPRM_TEST_DEVICE_FAILURE_AFTER=N fails every pass after the
     * first N as a lost GPU would (VP_ERR_DEVICE), so the failure path runs without a GPU */
    const char *fail = getenv("VPRM_TEST_DEVICE_FAILURE_AFTER");
    b->fail_after = fail && *fail ? strtol(fail, NULL, 10) : -1;
    /* another (tests/unit, tests/http): VPRM_TEST_OVERFLOW_AFTER=N gives every pass after
     * the first N non-finite logits until the engine widens the backend, as fp16
     * activations that overflow on a GPU (VPRM_CUDA_ACTIVATIONS=auto) would */
    const char *over = getenv("VPRM_TEST_OVERFLOW_AFTER");
    b->overflow_after = over && *over ? strtol(over, NULL, 10) : -1;
    b->narrow = b->overflow_after >= 0;
    /* and VPRM_TEST_WIDEN_FAILS=1 makes that widening fail, as a CUDA reload can */
    const char *wf = getenv("VPRM_TEST_WIDEN_FAILS");
    b->widen_fails = wf && !strcmp(wf, "1");
    /* and VPRM_TEST_PASS_STALL_MS=N makes every pass sleep N ms first, as a hung device's
     * would never return (the pass_timeout_s watchdog, tests/http) */
    const char *stall = getenv("VPRM_TEST_PASS_STALL_MS");
    b->stall_ms = stall && *stall ? strtol(stall, NULL, 10) : 0;
    if (vp_pool_create(&b->pool, opt ? opt->threads : 0, err) != 0 ||
        cpu_weights_build(&b->w, cfg, w, err) != 0) {
        cpu_free(b);
        return -1;
    }
    if (opt && opt->kv_cache_bytes && cpu_kv_cache_alloc(b, opt->kv_cache_bytes, err) != 0) {
        cpu_free(b);
        return -1;
    }
    char model[200];
    cpu_model_name(model, sizeof model);
    int threads = vp_pool_threads(b->pool);
    if (model[0])
        snprintf(b->device_name, sizeof b->device_name, "cpu (%d thread%s, %s)", threads,
                 threads == 1 ? "" : "s", model);
    else
        snprintf(b->device_name, sizeof b->device_name, "cpu (%d thread%s)", threads,
                 threads == 1 ? "" : "s");
    VP_LOGI("-", "cpu backend: %s, %.1f MiB of weights (fp32; the embedding and LM head as stored)",
            b->device_name, (double)b->w.bytes / (1024.0 * 1024.0));
    *out = b;
    return 0;
}

static int cpu_init(vp_backend **out, const vp_model *model, const vp_backend_options *opt,
                    vp_error *err)
{
    return vp_cpu_init_weights(out, vp_model_cfg(model), vp_model_weights(model), opt, err);
}

static int cpu_forward(vp_backend *b, const vp_batch *batch, float *logits,
                       vp_forward_stats *stats, vp_error *err)
{
    size_t rows_per_tile = (size_t)b->cfg.num_image_token, h = (size_t)b->cfg.llm.hidden;
    if (stats)
        *stats = (vp_forward_stats){0};
    if (b->stall_ms > 0) {
        struct timespec ts = {b->stall_ms / 1000, (b->stall_ms % 1000) * 1000000L};
        while (nanosleep(&ts, &ts) && errno == EINTR)
            ;
    }
    if (b->fail_after >= 0 && b->passes++ >= b->fail_after)
        return vp_fail(err, VP_ERR_DEVICE, "", "simulated device failure after %ld passes "
                       "(VPRM_TEST_DEVICE_FAILURE_AFTER)", b->fail_after);
    if (vp_batch_validate(batch, batch->n_tiles * rows_per_tile, (size_t)b->cfg.llm.vocab,
                          err) != 0)
        return -1;
    if (b->max_tokens && batch->n_tokens + batch->n_cached_tokens > b->max_tokens)
        return vp_fail(err, VP_ERR_TOO_LARGE, "n_tokens",
                       "batch of %zu tokens and %zu cached rows is over the backend's "
                       "max_tokens %zu", batch->n_tokens, batch->n_cached_tokens, b->max_tokens);
    if (vp_batch_check_kv_slots(batch, b->kv_rows, err) != 0)
        return -1;
    if (b->max_tiles && batch->n_tiles > b->max_tiles)
        return vp_fail(err, VP_ERR_TOO_LARGE, "n_tiles",
                       "batch of %zu tiles is over the backend's max_tiles %zu", batch->n_tiles,
                       b->max_tiles);
    float *features = NULL;
    double t0 = now_ms();
    if (batch->n_tiles) {
        float *normalised = NULL;
        const float *tiles = batch->tiles;
        if (!tiles) { /* 8-bit tiles: normalised here, as the engine leaves that to us */
            if (b->cfg.vision.channels != 3)
                return vp_fail(err, VP_ERR_BAD_REQUEST, "tiles",
                               "8-bit tiles are RGB but the vision encoder takes %d channels",
                               b->cfg.vision.channels);
            int s = b->cfg.vision.image_size;
            size_t tile_bytes = 3 * (size_t)s * (size_t)s;
            normalised = cpu_alloc(batch->n_tiles * tile_bytes, sizeof(float), "tiles", err);
            if (!normalised)
                return -1;
            for (size_t t = 0; t < batch->n_tiles; t++)
                vp_tiles_normalize(batch->tiles_u8[t], 1, s, normalised + t * tile_bytes);
            tiles = normalised;
        }
        features = cpu_alloc(batch->n_tiles * rows_per_tile * h, sizeof(float),
                             "image features", err);
        int rc = features ? vp_cpu_vision(b, tiles, batch->n_tiles, features, err) : -1;
        free(normalised);
        if (rc != 0) {
            free(features);
            return -1;
        }
    }
    double t1 = now_ms();
    int rc = cpu_language_forward(b, batch, features, logits, err);
    double t2 = now_ms();
    free(features);
    if (rc == 0 && b->narrow && b->narrow_passes++ >= b->overflow_after)
        for (size_t i = 0; i < 2 * batch->n_out; i++)
            logits[i] = i % 2 ? -INFINITY : NAN;
    if (stats) {
        stats->vision_ms = t1 - t0;
        stats->language_ms = t2 - t1;
    }
    return rc;
}

static const char *cpu_activations(vp_backend *b)
{
    return b->narrow ? "narrow (VPRM_TEST_OVERFLOW_AFTER)" : "float32";
}

/* The test hook's widening: the cache's rows were written in the "old format", so they
 * become unreadable (NaN), as fp16 rows read as bf16 would be: a caller that kept using
 * them would see it in its logits. */
static int cpu_widen(vp_backend *b, char *what, size_t what_cap, vp_error *err)
{
    if (!b->narrow)
        return 0;
    if (b->widen_fails)
        return vp_fail(err, VP_ERR_DEVICE, "", "simulated widening failure (VPRM_TEST_WIDEN_FAILS)");
    b->narrow = false;
    size_t n = b->kv_rows * (size_t)b->cfg.llm.layers * cpu_kv_row_floats(b);
    for (size_t i = 0; i < n; i++)
        b->kv_cache[i] = NAN;
    snprintf(what, what_cap, "test narrow format -> float32 (VPRM_TEST_OVERFLOW_AFTER)");
    return 1;
}

static const char *cpu_device_name(vp_backend *b)
{
    return b->device_name;
}

static void cpu_memory(vp_backend *b, vp_backend_memory *m)
{
    size_t kv = b->kv_rows * (size_t)b->cfg.llm.layers * cpu_kv_row_floats(b) * sizeof(float);
    *m = (vp_backend_memory){.weights_bytes = b->w.bytes, /* scratch is per pass */
                             .kv_cache_bytes = kv, .kv_cache_rows = b->kv_rows};
}

int vp_cpu_threads(const vp_backend *b)
{
    return vp_pool_threads(b->pool);
}

const vp_backend_ops vp_backend_cpu = {
    .name = "cpu",
    .init = cpu_init,
    .forward = cpu_forward,
    .device_name = cpu_device_name,
    .memory = cpu_memory,
    .free = cpu_free,
    .activations = cpu_activations,
    .widen = cpu_widen,
};
