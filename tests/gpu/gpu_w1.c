/* gpu_w1: the CUDA backend at the full VisualPRM-8B shape with `vprm mkmodel --seed N`
 * weights generated on the GPU (no checkpoint file), on a batch file from mkbatch (W1:
 * 13 tiles, 8 responses sharing a prefix). Writes for tests/gpu/torch_ref.py:
 *   OUT/config.json              the model config (InternVL layout)
 *   OUT/tiles.f32                the tiles used ([n_tiles][3][448][448] float32: seeded
 *                                8-bit tiles, which the backend gets as the engine passes
 *                                them, normalised by vp_tiles_normalize)
 *   OUT/LABEL_logits.f32         logits [n_out][2] of the first forward
 *   OUT/LABEL.json               timings: init, medians over --reps after a warm-up, MFU
 * and prints one summary line. --backend cpu --scale tiny runs the fp32 CPU backend on
 * the tiny shape instead (host weights from the same rule): the CPU-machine check of the
 * PyTorch reference and of this program (tests/gpu/check_cpu.sh).
 *   gpu_w1 --batch FILE --out DIR [--seed 1] [--reps 5] [--label ours]
 *          [--scale 8b|tiny] [--backend cuda|cpu] [--rule spread|plain]
 * --rule plain: PERF.md's weights (normal(0, 0.02), only the two head rows scaled). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/cpu/cpu.h"
#include "engine/cuda/cuda.h"
#include "engine/cuda_plan/cuda_plan.h"
#include "engine/image/image.h"
#include "engine/model/config.h"
#include "engine/model/mkmodel.h"
#include "engine/model/rng.h"
#include "engine/util/file.h"
#include "tests/gpu/batch_file.h"
#include "tests/gpu/gpu_util.h"
#include "tests/gpu/host_model.h"

#define PEAK_TFLOPS VP_PEAK_TFLOPS

static int by_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, by_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static int write_raw(const char *dir, const char *name, const void *data, size_t bytes)
{
    char path[4096];
    vp_error err = {0};
    if (vp_path_join(path, sizeof path, dir, name) || vp_write_file(path, data, bytes, &err)) {
        fprintf(stderr, "gpu_w1: cannot write %s/%s: %s\n", dir, name, err.message);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    const char *batch_path = NULL, *out = NULL, *label = "ours", *scale = "8b", *backend = "cuda";
    const char *rule = "spread";
    uint64_t seed = 1;
    int reps = 5;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--batch")) batch_path = argv[i + 1];
        else if (!strcmp(argv[i], "--out")) out = argv[i + 1];
        else if (!strcmp(argv[i], "--seed")) seed = strtoull(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--reps")) reps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--label")) label = argv[i + 1];
        else if (!strcmp(argv[i], "--scale")) scale = argv[i + 1];
        else if (!strcmp(argv[i], "--backend")) backend = argv[i + 1];
        else if (!strcmp(argv[i], "--rule")) rule = argv[i + 1];
        else {
            fprintf(stderr, "gpu_w1: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    int on_cpu = !strcmp(backend, "cpu");
    bool plain = !strcmp(rule, "plain");
    if (!batch_path || !out || reps < 1 || reps > 100 || (!on_cpu && strcmp(backend, "cuda")) ||
        (!plain && strcmp(rule, "spread"))) {
        fprintf(stderr, "usage: gpu_w1 --batch FILE --out DIR [--seed N] [--reps N] [--label L] "
                        "[--scale 8b|tiny] [--backend cuda|cpu] [--rule spread|plain]\n");
        return 2;
    }
    vpb_file f;
    if (vpb_read(batch_path, &f))
        return 2;
    vp_model_config cfg;
    vp_error err = {0};
    if (vp_mkmodel_preset(scale, &cfg, &err)) {
        fprintf(stderr, "gpu_w1: %s\n", err.message);
        return 2;
    }
    cfg.llm.vocab = f.vocab;
    cfg.init_rule = plain ? VP_INIT_RULE_PLAIN : VP_INIT_RULE_SPREAD;
    snprintf(cfg.name, sizeof cfg.name, "random-%s-seed%llu", scale, (unsigned long long)seed);
    char *json = vp_model_config_to_json(&cfg, "bfloat16");
    if (!json || write_raw(out, "config.json", json, strlen(json)))
        return 2;
    free(json);

    /* seeded 8-bit tiles: normal values in the normalised range (as before the engine
     * passed 8-bit tiles), taken back to bytes with the ImageNet mean and std */
    size_t tile_floats = 3 * 448 * 448, n_tile_floats = (size_t)f.n_tiles * tile_floats;
    float *tiles = host_alloc(n_tile_floats * 4);
    uint8_t *u8 = host_alloc(n_tile_floats);
    vp_rng_normal_fill(vp_rng_key(seed, "tiles"), 0, n_tile_floats, tiles);
    for (size_t i = 0; i < n_tile_floats; i++) { /* tiles are CHW here, bytes HWC */
        size_t t = i / tile_floats, c = i % tile_floats / (448 * 448), px = i % (448 * 448);
        float v = (tiles[i] * vp_image_std[c] + vp_image_mean[c]) * 255.0f + 0.5f;
        u8[(t * 448 * 448 + px) * 3 + c] = (uint8_t)(v < 0.0f ? 0.0f : v > 255.0f ? 255.0f : v);
    }
    vp_tiles_normalize(u8, (size_t)f.n_tiles, 448, tiles);
    if (write_raw(out, "tiles.f32", tiles, n_tile_floats * 4))
        return 2;
    const uint8_t **tile_ptr = host_alloc(((size_t)f.n_tiles + 1) * sizeof *tile_ptr);
    for (size_t t = 0; t < (size_t)f.n_tiles; t++)
        tile_ptr[t] = u8 + t * tile_floats;
    vpb_packed pk;
    if (vpb_pack(&f, 1, NULL, &pk)) {
        fprintf(stderr, "gpu_w1: out of memory packing the batch\n");
        return 2;
    }
    if (pk.b.n_tiles)
        pk.b.tiles_u8 = tile_ptr;
    vp_flops fl;
    vp_batch_useful_flops(&cfg, &pk.b, &fl);

    double t0 = wall_ms();
    vp_backend *b = NULL;
    vp_backend_options opt = {.device = 0, .max_tokens = pk.b.n_tokens,
                              .max_tiles = pk.b.n_tiles ? pk.b.n_tiles : 1};
    const vp_backend_ops *ops = on_cpu ? &vp_backend_cpu : &vp_backend_cuda;
    host_model hm = {0};
    int irc = on_cpu ? host_model_build(&hm, &cfg, seed, f.plus, f.minus) ||
                           vp_cpu_init_weights(&b, &cfg, &hm.w, &opt, &err)
                     : vp_cuda_init_random(&b, &cfg, seed, f.plus, f.minus, &opt, &err);
    if (irc) {
        fprintf(stderr, "gpu_w1: init: %s\n", err.message);
        return 1;
    }
    double init_ms = wall_ms() - t0;
    float *logits = host_alloc(pk.b.n_out * 8);
    double *total = host_alloc((size_t)reps * 8), *vis = host_alloc((size_t)reps * 8);
    double *lang = host_alloc((size_t)reps * 8);
    vp_forward_stats st;
    double first_ms = 0;
    for (int r = -1; r < reps; r++) { /* r = -1: warm-up (heuristics, first launches) */
        double t = wall_ms();
        if (ops->forward(b, &pk.b, logits, &st, &err)) {
            fprintf(stderr, "gpu_w1: forward: %s%s%s\n", err.param, err.param[0] ? ": " : "",
                    err.message);
            return 1;
        }
        double dt = wall_ms() - t;
        if (r < 0) {
            first_ms = dt;
            char name[128];
            snprintf(name, sizeof name, "%s_logits.f32", label);
            if (write_raw(out, name, logits, pk.b.n_out * 8))
                return 2;
            continue;
        }
        total[r] = dt, vis[r] = st.vision_ms, lang[r] = st.language_ms;
    }
    double med = median(total, reps), mv = median(vis, reps), ml = median(lang, reps);
    double mfu = fl.total / (med / 1e3) / (PEAK_TFLOPS * 1e12);
    char text[2048];
    int len = snprintf(text, sizeof text,
                       "{\"label\": \"%s\", \"device\": \"%s\", \"attention\": \"%s\", "
                       "\"activations\": \"%s\", \"init_s\": %.3f, "
                       "\"weights_gib\": %.3f, \"workspace_gib\": %.3f, \"n_tokens\": %zu, "
                       "\"n_out\": %zu, \"n_tiles\": %zu, \"prefix_len\": %d, \"useful_tflop\": %.3f, "
                       "\"first_ms\": %.3f, \"median_ms\": %.3f, \"vision_ms\": %.3f, "
                       "\"language_ms\": %.3f, \"reps\": %d, \"mfu\": %.4f}\n",
                       label, ops->device_name(b), on_cpu ? "cpu" : vp_cuda_attention_kind(b),
                       ops->activations(b), init_ms / 1e3, on_cpu ? 0.0 : (double)vp_cuda_weight_bytes(b) / (1 << 30),
                       on_cpu ? 0.0 : (double)vp_cuda_workspace_bytes(b) / (1 << 30), pk.b.n_tokens, pk.b.n_out,
                       pk.b.n_tiles, f.prefix_len, fl.total / 1e12, first_ms, med, mv, ml, reps, mfu);
    char name[128];
    snprintf(name, sizeof name, "%s.json", label);
    if (write_raw(out, name, text, (size_t)len))
        return 2;
    printf("gpu_w1 %s: %s, %s attention, %s activations; init %.1f s; W1 %zu tokens (%d shared), %zu tiles, "
           "%zu scores: median %.1f ms (vision %.1f, language %.1f) over %d runs, first %.1f ms; "
           "%.1f useful TFLOP, MFU %.1f%%\n",
           label, ops->device_name(b), on_cpu ? "cpu" : vp_cuda_attention_kind(b),
           ops->activations(b), init_ms / 1e3, pk.b.n_tokens, f.prefix_len, pk.b.n_tiles, pk.b.n_out, med, mv, ml, reps, first_ms,
           fl.total / 1e12, 100 * mfu);
    ops->free(b);
    host_model_free(&hm);
    vpb_packed_free(&pk);
    vpb_free(&f);
    free(tiles), free(u8), free(tile_ptr), free(logits), free(total), free(vis), free(lang);
    return 0;
}
