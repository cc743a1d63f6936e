/* The CUDA backend's entry points: init (device, weights, working memory, tables),
 * forward (validate, plan on the host, upload the small per-batch arrays, vision,
 * language, download the logits), device name, free. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/cpu/cpu_ops.h"
#include "engine/cuda/cuda.h"
#include "engine/cuda/cuda_check.h"
#include "engine/cuda/cuda_model.h"
#include "engine/image/image.h"
#include "engine/util/log.h"

#define DEFAULT_MAX_TOKENS ((size_t)16384)
#define DEFAULT_MAX_TILES ((size_t)64)

static void cuda_free(vp_backend *b)
{
    if (!b)
        return;
    if (b->stream)
        cudaStreamSynchronize(b->stream);
    vp_gemm_free(&b->gemm);
    vp_gemm_free(&b->gemm_vision);
    cuda_prof_free(&b->prof);
    if (b->ev_start)
        cudaEventDestroy(b->ev_start);
    if (b->ev_vision)
        cudaEventDestroy(b->ev_vision);
    if (b->ev_end)
        cudaEventDestroy(b->ev_end);
    if (b->stream)
        cudaStreamDestroy(b->stream);
    cudaFree(b->arena);
    cudaFree(b->work);
    cudaFree(b->kv_cache);
    cudaFree(b->rope_base);
    cudaFree(b->norm_table);
    cudaFreeHost(b->staging);
    cudaFreeHost(b->logits_host);
    free(b->rope_extra);
    free(b->w.vit);
    free(b->w.llm);
    vp_cw_plan_free(&b->plan);
    free(b);
}

/* The shapes this backend computes (the CPU backend's limits plus kernel limits). */
static int check_config(const vp_model_config *cfg, vp_error *err)
{
    const vp_vision_config *v = &cfg->vision;
    const vp_llm_config *l = &cfg->llm;
    if (v->hidden <= 0 || v->layers < 0 || v->heads <= 0 || v->intermediate <= 0 ||
        v->patch <= 0 || v->image_size <= 0 || v->channels <= 0 || v->hidden % v->heads)
        return vp_fail(err, VP_ERR_MODEL, "vision_config",
                       "vision sizes must be positive with hidden a multiple of the heads");
    if (v->image_size % v->patch || (v->image_size / v->patch) % 2)
        return vp_fail(err, VP_ERR_MODEL, "vision_config.image_size",
                       "image size %d / patch %d must be an even whole number of patches",
                       v->image_size, v->patch);
    int g = v->image_size / v->patch;
    if (cfg->downsample_ratio != 0.5 || cfg->num_image_token != (g / 2) * (g / 2))
        return vp_fail(err, VP_ERR_MODEL, "downsample_ratio",
                       "only downsample_ratio 0.5 with %d image tokens per tile is supported",
                       (g / 2) * (g / 2));
    if (cfg->select_layer != -1)
        return vp_fail(err, VP_ERR_MODEL, "select_layer",
                       "select_layer %d is not supported (only -1)", cfg->select_layer);
    if (v->hidden / v->heads > 256)
        return vp_fail(err, VP_ERR_MODEL, "vision_config.num_attention_heads",
                       "vision head size %d is over the CUDA kernels' 256", v->hidden / v->heads);
    if (l->hidden <= 0 || l->layers < 0 || l->heads <= 0 || l->kv_heads <= 0 ||
        l->head_dim <= 0 || l->intermediate <= 0 || l->vocab <= 0 || l->heads % l->kv_heads)
        return vp_fail(err, VP_ERR_MODEL, "llm_config",
                       "language model sizes must be positive, heads a multiple of kv heads");
    if (l->head_dim % 4 || l->head_dim < 4 || l->head_dim > 256) /* RoPE rotates pairs of pairs */
        return vp_fail(err, VP_ERR_MODEL, "llm_config",
                       "head dim %d must be a multiple of 4 in 4..256 for the CUDA kernels",
                       l->head_dim);
    return 0;
}

static size_t align256(size_t x)
{
    return (x + 255) / 256 * 256;
}

/* Per-batch host staging, pinned so the uploads are plain DMA. */
static int staging_alloc(vp_backend *b, vp_error *err)
{
    size_t n = b->ws.max_tokens, hd = (size_t)b->cfg.llm.head_dim;
    size_t g = (size_t)(b->cfg.vision.image_size / b->cfg.vision.patch);
    size_t vrows = b->ws.vision_chunk * (1 + g * g);
    size_t sizes[ST_COUNT] = {
        [ST_TOKENS] = n * 4, [ST_IMAGE_ROW] = n * 4, [ST_ROPE_ROW] = n * 4, [ST_OUT_INDEX] = n * 4,
        [ST_ITEMS] = b->ws.max_items * sizeof(vp_attn_item),
        [ST_VITEMS] = b->ws.max_vitems * sizeof(vp_attn_item), [ST_RANGES] = n * 3 * 4,
        [ST_VRANGES] = vrows * 3 * 4, [ST_ROPE_EXTRA] = n * hd * 4, [ST_KV_MAP] = n * 2 * 4,
    };
    size_t at = 0;
    for (int i = 0; i < ST_COUNT; i++) {
        b->staging_off[i] = at;
        at = align256(at + sizes[i]);
    }
    b->staging_bytes = at;
    CUDA_CHECK(cudaHostAlloc((void **)&b->staging, at, cudaHostAllocDefault));
    CUDA_CHECK(cudaHostAlloc((void **)&b->logits_host, n * 2 * sizeof(float), cudaHostAllocDefault));
    b->rope_extra = malloc(n * sizeof *b->rope_extra);
    if (!b->rope_extra)
        return vp_fail(err, VP_ERR_NOMEM, "", "out of memory for %zu RoPE rows", n);
    return 0;
}

/* Bytes of one prefix KV cache row over all layers: keys and values, bf16. */
static size_t kv_row_bytes(const vp_backend *b)
{
    const vp_llm_config *l = &b->cfg.llm;
    return (size_t)l->layers * 2 * (size_t)l->kv_heads * (size_t)l->head_dim * 2;
}

/* Called once the weights and the working memory are allocated, so that an automatic size
 * sees what they leave. */
static int kv_cache_alloc(vp_backend *b, size_t bytes, vp_error *err)
{
    size_t per_row = kv_row_bytes(b);
    char how[96] = "";
    if (bytes == VP_KV_CACHE_AUTO) {
        size_t free_b = 0, total_b = 0;
        CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
        bytes = vp_kv_cache_auto_bytes(free_b, per_row);
        snprintf(how, sizeof how, "; auto: half of the %.2f GiB free, at most %zu rows",
                 (double)free_b / (1 << 30), (size_t)VP_KV_CACHE_AUTO_MAX_ROWS);
    }
    size_t rows = per_row ? bytes / per_row : 0;
    if (rows > (size_t)INT32_MAX)
        rows = (size_t)INT32_MAX; /* the copy map's 32-bit rows */
    if (rows == 0)
        return 0;
    cudaError_t crc = cudaMalloc((void **)&b->kv_cache, rows * per_row);
    if (crc != cudaSuccess) {
        b->kv_cache = NULL;
        return vp_fail(err, VP_ERR_NOMEM, "prefix_cache_bytes",
                       "cannot allocate %.2f GiB of GPU memory for the prefix KV cache (%zu rows; "
                       "lower prefix_cache_bytes, 0 = off): %s",
                       (double)(rows * per_row) / (1 << 30), rows, cudaGetErrorString(crc));
    }
    b->kv_rows = rows;
    VP_LOGI("-", "cuda backend: prefix KV cache of %zu rows (%.2f GiB%s)", rows,
            (double)(rows * per_row) / (1 << 30), how);
    return 0;
}

/* The batch's KV copies as one row map: loads, then stores (validated: at most max_tokens
 * rows in all; checked again here, as the map's buffers hold no more). */
static int stage_kv_map(vp_backend *b, const vp_batch *batch, vp_error *err)
{
    int32_t *map = cuda_stage(b, ST_KV_MAP);
    size_t k = 0, total = 0;
    const vp_kv_copy *lists[2] = {batch->kv_loads, batch->kv_stores};
    size_t counts[2] = {batch->n_kv_loads, batch->n_kv_stores};
    for (int l = 0; l < 2; l++)
        for (size_t i = 0; i < counts[l]; i++)
            total += lists[l][i].len;
    if (total > b->ws.max_tokens)
        return vp_fail(err, VP_ERR_BAD_REQUEST, "kv_stores",
                       "%zu KV cache rows to copy, over the backend's max_tokens %zu", total,
                       b->ws.max_tokens);
    for (int l = 0; l < 2; l++) {
        for (size_t i = 0; i < counts[l]; i++)
            for (size_t r = 0; r < lists[l][i].len; r++, k++) {
                map[2 * k] = (int32_t)(lists[l][i].row + r);
                map[2 * k + 1] = (int32_t)(lists[l][i].slot + r);
            }
        if (l == 0)
            b->n_kv_loads = k;
    }
    b->n_kv_map = k;
    return 0;
}

/* The 8-bit tiles' normalisation table, the CPU's own values. */
static int norm_table(vp_backend *b, vp_error *err)
{
    float host[3][256];
    vp_tiles_norm_table(host);
    CUDA_CHECK(cudaMalloc((void **)&b->norm_table, sizeof host));
    CUDA_CHECK(cudaMemcpy(b->norm_table, host, sizeof host, cudaMemcpyHostToDevice));
    return 0;
}

/* cos | sin rows for positions 0..base_rows-1 at base theta, exactly the CPU twin's. */
static int rope_table(vp_backend *b, vp_error *err)
{
    const vp_llm_config *l = &b->cfg.llm;
    size_t hd = (size_t)l->head_dim, half = hd / 2;
    b->base_rows = vp_rope_base_rows(l);
    size_t rows = b->base_rows ? b->base_rows : 1;
    float *host = malloc(rows * hd * sizeof *host);
    if (!host)
        return vp_fail(err, VP_ERR_NOMEM, "", "out of memory for the RoPE table");
    for (size_t p = 0; p < b->base_rows; p++)
        vp_cpu_rope_table(host + p * hd, host + p * hd + half, (int32_t)p, l->rope_theta,
                          l->head_dim);
    cudaError_t rc = cudaMalloc((void **)&b->rope_base, rows * hd * sizeof *host);
    if (rc == cudaSuccess)
        rc = cudaMemcpy(b->rope_base, host, b->base_rows * hd * sizeof *host,
                        cudaMemcpyHostToDevice);
    free(host);
    CUDA_CHECK(rc);
    return 0;
}

/* The start-up line's name for a wgmma variant ("" when the mma.sync kernel runs). */
static const char *wgmma_label(int variant)
{
    if (!variant)
        return "";
    if (variant & VPK_WGMMA_TMA)
        return " (wgmma, warp-specialised, TMA)";
    return variant & VPK_WGMMA_OVERLAP ? " (wgmma, overlapped)" : " (wgmma)";
}

/* VPRM_CUDA_ACTIVATIONS: "auto" (the default: fp16, and bf16 for good from the first
 * pass that overflows fp16, or from the start when a weight is beyond it: cuda_widen),
 * "bf16", "fp16" (no way out: a pass that overflows fails) or "fp16-llm" (the language
 * model in fp16, the vision tower and projector in bf16). Measured on an H200 at the 8B
 * shape (tests/gpu/README.md), margin error against fp32 on three weight draws: fp16
 * 0.0029, 0.0034, 0.0045; fp16-llm 0.0091-0.0121; bf16 0.0254-0.0297, over PERF.md's
 * 0.02; the same tensor-core speed (W1 181.6 ms fp16, 184.2 ms bf16). Attention in fp16
 * runs the wgmma kernels on Hopper and the fp32 simple kernel elsewhere (the mma.sync
 * kernel is bf16 only). */
static int pick_activations(vp_backend *b, vp_error *err)
{
    const char *env = getenv("VPRM_CUDA_ACTIVATIONS");
    b->act_auto = false;
    if (!env || !*env)
        env = "auto";
    if (!strcmp(env, "bf16"))
        b->act = b->act_vision = VPK_ACT_BF16;
    else if (!strcmp(env, "fp16") || !strcmp(env, "auto"))
        b->act = b->act_vision = VPK_ACT_F16, b->act_auto = env[0] == 'a';
    else if (!strcmp(env, "fp16-llm"))
        b->act = VPK_ACT_F16, b->act_vision = VPK_ACT_BF16;
    else
        return vp_fail(err, VP_ERR_BAD_REQUEST, "VPRM_CUDA_ACTIVATIONS",
                       "VPRM_CUDA_ACTIVATIONS is \"%s\": expected bf16, fp16, auto or fp16-llm",
                       env);
    return 0;
}

/* The activations' format, for /v1/models (vp_backend_ops activations). */
static const char *cuda_activations(vp_backend *b)
{
    if (b->act == VPK_ACT_F16 && b->act_vision == VPK_ACT_F16)
        return b->act_auto ? "float16 (bfloat16 after an overflow)" : "float16";
    if (b->act == VPK_ACT_F16)
        return "float16 (language), bfloat16 (vision)";
    return "bfloat16";
}

/* The start-up line's note on the activation types. */
static const char *activations_label(const vp_backend *b)
{
    if (b->act == VPK_ACT_F16 && b->act_vision == VPK_ACT_F16)
        return b->act_auto ? "; activations fp16, bf16 from the first overflow "
                             "(VPRM_CUDA_ACTIVATIONS=auto)"
                           : "; activations fp16 (VPRM_CUDA_ACTIVATIONS)";
    if (b->act == VPK_ACT_F16)
        return "; activations fp16 in the language model, bf16 in the vision tower "
               "(VPRM_CUDA_ACTIVATIONS)";
    return "; activations bf16 (VPRM_CUDA_ACTIVATIONS, or after an overflow)";
}

/* VPRM_CUDA_GEMM_TUNE=N (benchmarks; 0 or unset: off): each new product shape times up
 * to N of cuBLASLt's candidates and keeps the fastest (cuda_gemm_tune.c). */
static int pick_gemm_tune(vp_backend *b, vp_error *err)
{
    const char *env = getenv("VPRM_CUDA_GEMM_TUNE");
    char *end = NULL;
    long n = env && *env ? strtol(env, &end, 10) : 0;
    if (env && *env && (*end || n < 0 || n > VP_GEMM_TUNE_MAX))
        return vp_fail(err, VP_ERR_BAD_REQUEST, "VPRM_CUDA_GEMM_TUNE",
                       "VPRM_CUDA_GEMM_TUNE is \"%s\": expected a count of candidates from 0 "
                       "to %d", env, VP_GEMM_TUNE_MAX);
    b->gemm.tune = b->gemm_vision.tune = (int)n;
    if (n > 1)
        VP_LOGI("-", "cuda backend: cuBLASLt timing up to %ld candidates per new product shape "
                "(VPRM_CUDA_GEMM_TUNE)", n);
    return 0;
}

/* VPRM_CUDA_MLP: "fused" (one Hopper kernel for w1 | w3 whose epilogue applies the
 * SiLU-gate to the product's fp32 sums, k_mlp_gated.cu: the gate | up rows never reach
 * memory), "fused2" (the same kernel in pairs of blocks that share w13's copies),
 * "cublas" (cuBLASLt's product, then the SiLU-gate kernel) or "auto" (the default: fused
 * where it runs, else cublas). */
static int pick_mlp(vp_backend *b, vp_error *err)
{
    const char *env = getenv("VPRM_CUDA_MLP");
    const vp_llm_config *l = &b->cfg.llm;
    bool can = vpk_gated_mlp_supports((size_t)l->hidden, (size_t)l->intermediate);
    if (!env || !*env)
        env = "auto";
    bool fused = !strcmp(env, "fused") || !strcmp(env, "fused2");
    if (!fused && strcmp(env, "auto") && strcmp(env, "cublas"))
        return vp_fail(err, VP_ERR_BAD_REQUEST, "VPRM_CUDA_MLP",
                       "VPRM_CUDA_MLP is \"%s\": expected auto, fused, fused2 or cublas", env);
    if (fused && !can)
        return vp_fail(err, VP_ERR_BAD_REQUEST, "VPRM_CUDA_MLP",
                       "VPRM_CUDA_MLP=%s needs an sm_90a build on a compute capability 9 GPU, "
                       "an intermediate size that is a multiple of 128 and a hidden size that "
                       "is a multiple of 8 (this model: %d and %d)",
                       env, l->intermediate, l->hidden);
    b->gated_mlp = !can || !strcmp(env, "cublas") ? 0 : !strcmp(env, "fused2") ? 2 : 1;
    /* its shared memory, and how many pairs of its blocks fit at once; auto falls back */
    cudaError_t rc = b->gated_mlp ? vpk_gated_mlp_setup() : cudaSuccess;
    if (rc != cudaSuccess && !strcmp(env, "auto")) {
        VP_LOGW("-", "cuda backend: the fused MLP kernel cannot be set up (%s): cuBLASLt instead",
                cudaGetErrorString(rc));
        (void)cudaGetLastError();
        b->gated_mlp = 0;
    } else {
        CUDA_CHECK(rc);
    }
    if (b->gated_mlp == 2 && vpk_gated_mlp_pairs() < 1)
        return vp_fail(err, VP_ERR_BAD_REQUEST, "VPRM_CUDA_MLP",
                       "VPRM_CUDA_MLP=fused2: this GPU cannot run a pair of the kernel's blocks "
                       "at once");
    return 0;
}

static int pick_attention(vp_backend *b, vp_error *err)
{
    const vp_vision_config *v = &b->cfg.vision;
    const vp_llm_config *l = &b->cfg.llm;
    const char *env = getenv("VPRM_CUDA_ATTENTION");
    if (env && !*env)
        env = NULL; /* set but empty: the default */
    bool simple = env && !strcmp(env, "simple");
    size_t hv = (size_t)v->hidden, vhd = hv / (size_t)v->heads, hd = (size_t)l->head_dim;
    size_t qpk = (size_t)(l->heads / l->kv_heads);
    vpk_attn_layout vl = {.row_stride = 3 * hv, .heads = v->heads, .q_per_kv = 1,
                          .head_dim = (int)vhd, .group_stride = vhd, .q_base = 0, .k_base = hv,
                          .v_base = 2 * hv, .act = b->act_vision};
    vpk_attn_layout ll = {.row_stride = (size_t)(l->heads + 2 * l->kv_heads) * hd,
                          .heads = l->heads, .q_per_kv = (int)qpk, .head_dim = l->head_dim,
                          .group_stride = (qpk + 2) * hd, .q_base = 0, .k_base = qpk * hd,
                          .v_base = (qpk + 1) * hd, .act = b->act};
    b->fast_vision = !simple && vpk_attention_fast_supports(&vl, hv);
    b->fast_language = !simple && vpk_attention_fast_supports(&ll, (size_t)l->heads * hd);
    b->vision_shape = vpk_attention_default_shape(&vl);
    b->language_shape = vpk_attention_default_shape(&ll);
    /* VPRM_CUDA_ATTENTION (benchmarks, checks): "simple"; "wgmma1" / "wgmma2" (warpgroup
     * products, 1 or 2 heads per block; a trailing "o": P V overlapping the next key tile's
     * softmax, VPK_WGMMA_OVERLAP; "t": the warp-specialised kernel fed by TMA,
     * VPK_WGMMA_TMA, two heads a block only); RxHxK: the
     * mma.sync kernel with R query rows per warp, H heads per block, K keys per step (the
     * vision tower, without grouped heads, takes H = 1) */
    int rows, hpb, keys;
    char tail;
    /* default where it runs (measured on an H200, tests/gpu/README.md): the warp-
     * specialised wgmma kernel fed by TMA (W1's language attention 481 TFLOP/s against 410
     * for the overlapped wgmma kernel and 318 for mma.sync; vision 308, 292, 214; W1
     * 179.2 ms against 184.2), else the overlapped wgmma kernel (P V overlapping the next
     * key tile's softmax), both closer to fp32 than mma.sync (P V in fp16) */
    b->vision_wgmma = 0;
    b->language_wgmma = 0;
    /* fp16 activations: the mma.sync kernel is bf16 only, the wgmma one takes both */
    bool lang_ok = b->fast_language || (b->act == VPK_ACT_F16 && !simple);
    bool vis_ok = b->fast_vision || (b->act_vision == VPK_ACT_F16 && !simple);
    if (!env && vpk_attention_wgmma_available()) {
        const int tma = VPK_WGMMA_OVERLAP | VPK_WGMMA_TMA;
        if (lang_ok)
            b->language_wgmma = vpk_attention_wgmma_supports(&ll, 2 | tma) ? 2 | tma
                                : vpk_attention_wgmma_supports(&ll, 2)     ? 2 | VPK_WGMMA_OVERLAP
                                : vpk_attention_wgmma_supports(&ll, 1)     ? 1 | VPK_WGMMA_OVERLAP
                                                                           : 0;
        if (vis_ok && vpk_attention_wgmma_supports(&vl, 1))
            b->vision_wgmma = vpk_attention_wgmma_supports(&vl, 1 | tma) ? 1 | tma
                                                                         : 1 | VPK_WGMMA_OVERLAP;
    }
    if (env && !simple && !strncmp(env, "wgmma", 5)) {
        /* then nothing (plain), "o" (overlapped) or "t" (the TMA kernel) */
        hpb = env[5] == '1' ? 1 : env[5] == '2' ? 2 : 0;
        const char *pipe = hpb ? env + 6 : ""; /* past the digit, which "wgmma" lacks */
        int overlap = !*pipe ? 0
                      : !strcmp(pipe, "o") ? VPK_WGMMA_OVERLAP
                      : !strcmp(pipe, "t") ? VPK_WGMMA_OVERLAP | VPK_WGMMA_TMA
                                           : -1;
        bool known = hpb != 0 && overlap >= 0;
        /* the TMA kernel: two heads a block */
        known = known && !((overlap & VPK_WGMMA_TMA) && hpb != 2);
        if (!known || !vpk_attention_wgmma_available())
            return vp_fail(err, VP_ERR_BAD_REQUEST, "VPRM_CUDA_ATTENTION",
                           "VPRM_CUDA_ATTENTION=%s: %s", env,
                           known ? "the wgmma attention needs an sm_90a build on a compute "
                                   "capability 9 GPU"
                                 : "expected wgmma1 or wgmma2, either alone or followed by o "
                                   "(overlap), or wgmma2t (warp-specialised, TMA)");
        /* the TMA kernel runs two heads of 128 a block or one of 64: elsewhere the
         * overlapped one */
        int plain = overlap & ~VPK_WGMMA_TMA;
        if (lang_ok && vpk_attention_wgmma_supports(&ll, hpb | overlap))
            b->language_wgmma = hpb | overlap;
        else if (lang_ok && vpk_attention_wgmma_supports(&ll, hpb | plain))
            b->language_wgmma = hpb | plain;
        else if (lang_ok && vpk_attention_wgmma_supports(&ll, 1 | plain))
            b->language_wgmma = 1 | plain; /* an odd number of query heads per key head */
        if (vis_ok && vpk_attention_wgmma_supports(&vl, 1 | overlap))
            b->vision_wgmma = 1 | overlap;
        else if (vis_ok && vpk_attention_wgmma_supports(&vl, 1 | plain))
            b->vision_wgmma = 1 | plain;
    } else if (env && !simple) {
        if (sscanf(env, "%dx%dx%d%c", &rows, &hpb, &keys, &tail) != 3)
            return vp_fail(err, VP_ERR_BAD_REQUEST, "VPRM_CUDA_ATTENTION",
                           "VPRM_CUDA_ATTENTION is \"%s\": expected \"simple\", wgmma1[o], "
                           "wgmma2[o|t] or ROWSxHEADSxKEYS (16x1x64, 16x2x64, 32x{1,2,4}x{32,64})", env);
        if (b->act == VPK_ACT_F16 || b->act_vision == VPK_ACT_F16)
            return vp_fail(err, VP_ERR_BAD_REQUEST, "VPRM_CUDA_ATTENTION",
                           "VPRM_CUDA_ATTENTION=%s: the mma.sync kernel is bf16 only "
                           "(fp16 activations run wgmma1[o], wgmma2[o|t] or simple; VPRM_CUDA_ACTIVATIONS=bf16 for this one)", env);
        vpk_attn_shape s = {rows, hpb, keys}, s1 = {rows, 1, keys};
        if (!vpk_attention_shape_ok(&ll, &s) || !vpk_attention_shape_ok(&vl, &s1))
            return vp_fail(err, VP_ERR_BAD_REQUEST, "VPRM_CUDA_ATTENTION",
                           "VPRM_CUDA_ATTENTION=%s: not a launch shape for %d query heads per "
                           "key head", env, l->heads / l->kv_heads);
        b->language_shape = s;
        b->vision_shape = vpk_attention_shape_ok(&vl, &s) ? s : s1;
    }
    /* the wgmma kernel runs on the planned work items too */
    b->fast_language = b->fast_language || b->language_wgmma;
    b->fast_vision = b->fast_vision || b->vision_wgmma;
    return 0;
}

static int backend_create(vp_backend **out, const vp_model_config *cfg,
                          const vp_backend_options *opt, vp_error *err)
{
    *out = NULL;
    if (check_config(cfg, err))
        return -1;
    int count = 0;
    cudaError_t crc = cudaGetDeviceCount(&count);
    if (crc != cudaSuccess || count == 0)
        return vp_fail(err, VP_ERR_UNAVAILABLE, "backend", "no CUDA device is available (%s)",
                       crc != cudaSuccess ? cudaGetErrorString(crc) : "0 devices");
    int device = opt ? opt->device : 0;
    if (device < 0 || device >= count)
        return vp_fail(err, VP_ERR_BAD_REQUEST, "device", "CUDA device %d does not exist (%d found)",
                       device, count);
    vp_backend *b = calloc(1, sizeof *b);
    if (!b)
        return vp_fail(err, VP_ERR_NOMEM, "", "out of memory for the CUDA backend");
    *out = b;
    b->cfg = *cfg;
    b->cfg.system_message = NULL;
    b->device = device;
    b->head_ids[0] = b->head_ids[1] = -1;
    CUDA_CHECK(cudaSetDevice(device));
    struct cudaDeviceProp prop;
    CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
    snprintf(b->device_name, sizeof b->device_name, "%.200s (sm_%d%d, %d SMs, %.1f GiB)", prop.name,
             prop.major, prop.minor, prop.multiProcessorCount,
             (double)prop.totalGlobalMem / (1024.0 * 1024.0 * 1024.0));
    CUDA_CHECK(cudaStreamCreateWithFlags(&b->stream, cudaStreamNonBlocking));
    CUDA_CHECK(cudaEventCreate(&b->ev_start));
    CUDA_CHECK(cudaEventCreate(&b->ev_vision));
    CUDA_CHECK(cudaEventCreate(&b->ev_end));
    int prc = cuda_prof_init(&b->prof);
    if (prc == -2)
        return vp_fail(err, VP_ERR_BAD_REQUEST, "VPRM_CUDA_PROFILE",
                       "VPRM_CUDA_PROFILE is \"%.40s\": expected 1 (on), or 0 or empty (off)",
                       getenv("VPRM_CUDA_PROFILE"));
    if (prc)
        return vp_fail(err, VP_ERR_INTERNAL, "cuda", "cannot create the profile's CUDA events");

    if (pick_activations(b, err) || vp_cw_plan_build(cfg, &b->plan, err))
        return -1;
    for (int i = 0; i < cfg->llm.layers; i++) {
        const vp_cw_entry *w1 = vp_cw_plan_find(&b->plan, VP_CW_L_W1, i);
        const vp_cw_entry *w3 = vp_cw_plan_find(&b->plan, VP_CW_L_W3, i);
        if (!w1 || !w3 || w3->offset != w1->offset + w1->rows * w1->pitch * 2)
            return vp_fail(err, VP_ERR_INTERNAL, "", "layer %d: w3 does not follow w1 on the device",
                           i);
    }
    b->w.vit = calloc(cfg->vision.layers > 0 ? (size_t)cfg->vision.layers : 1, sizeof *b->w.vit);
    b->w.llm = calloc(cfg->llm.layers > 0 ? (size_t)cfg->llm.layers : 1, sizeof *b->w.llm);
    if (!b->w.vit || !b->w.llm)
        return vp_fail(err, VP_ERR_NOMEM, "", "out of memory for the layer tables");
    CUDA_CHECK(cudaMalloc(&b->arena, b->plan.arena_bytes));
    /* padding columns stay 0; on the backend's stream, which does not wait for the
     * legacy default stream */
    CUDA_CHECK(cudaMemsetAsync(b->arena, 0, b->plan.arena_bytes, b->stream));

    size_t max_tokens = opt && opt->max_tokens ? opt->max_tokens : DEFAULT_MAX_TOKENS;
    size_t max_tiles = opt && opt->max_tiles ? opt->max_tiles : DEFAULT_MAX_TILES;
    /* the MLP's way first: the fused kernel needs no gate | up buffer */
    if (pick_mlp(b, err) ||
        vp_cuda_workspace_plan(cfg, max_tokens, max_tiles, b->gated_mlp != 0, &b->ws, err))
        return -1;
    crc = cudaMalloc((void **)&b->work, b->ws.total);
    if (crc != cudaSuccess)
        return vp_fail(err, VP_ERR_NOMEM, "max_tokens",
                       "cannot allocate %.2f GiB of GPU working memory for max_tokens %zu, "
                       "max_tiles %zu (%s)",
                       (double)b->ws.total / (1 << 30), max_tokens, max_tiles,
                       cudaGetErrorString(crc));
    if (opt && opt->kv_cache_bytes && kv_cache_alloc(b, opt->kv_cache_bytes, err))
        return -1;
    if (staging_alloc(b, err) || rope_table(b, err) || norm_table(b, err) ||
        /* the two towers' products run one after the other: one workspace */
        vp_gemm_init(&b->gemm, cuda_ws(b, VP_WS_GEMM), b->ws.bytes[VP_WS_GEMM], b->act, err) ||
        vp_gemm_init(&b->gemm_vision, cuda_ws(b, VP_WS_GEMM), b->ws.bytes[VP_WS_GEMM],
                     b->act_vision, err) ||
        pick_gemm_tune(b, err) || pick_attention(b, err))
        return -1;
    if (b->fast_vision || b->fast_language) {
        /* the mma.sync shapes ask for up to 136 KiB of shared memory a block: GPUs that
         * allow less (sm_86, sm_89: 99 KiB) cannot take them, and run the simple kernel */
        cudaError_t arc = vpk_attention_setup();
        if (arc != cudaSuccess) {
            (void)cudaGetLastError();
            if (vp_cuda_error_kind(arc) == VP_ERR_DEVICE || b->vision_wgmma || b->language_wgmma)
                CUDA_CHECK(arc);
            VP_LOGW("-", "cuda backend: the tensor-core attention cannot be set up on %s (%s): "
                    "the simple attention kernel runs instead", b->device_name,
                    cudaGetErrorString(arc));
            b->fast_vision = b->fast_language = false;
        }
    }
    VP_LOGI("-", "cuda backend: %s; weights %.2f GiB, working memory %.2f GiB for %zu tokens / "
            "%zu tiles (persistent %.2f, vision %.2f, language %.2f), staging %.1f MiB; "
            "attention: vision %s %dx%dx%d%s, language %s %dx%dx%d%s%s%s",
            b->device_name, (double)b->plan.arena_bytes / (1 << 30), (double)b->ws.total / (1 << 30),
            max_tokens, max_tiles, (double)b->ws.persist_bytes / (1 << 30),
            (double)b->ws.vision_bytes / (1 << 30), (double)b->ws.language_bytes / (1 << 30),
            (double)b->staging_bytes / (1 << 20), b->fast_vision ? "tensor-core" : "simple",
            b->vision_shape.rows_per_warp, b->vision_shape.heads_per_block,
            b->vision_shape.keys_per_step, wgmma_label(b->vision_wgmma),
            b->fast_language ? "tensor-core" : "simple", b->language_shape.rows_per_warp,
            b->language_shape.heads_per_block, b->language_shape.keys_per_step,
            wgmma_label(b->language_wgmma),
            activations_label(b),
            b->gated_mlp == 2 ? "; MLP: w1 | w3 and the SiLU-gate in one kernel, blocks in pairs "
                                "(VPRM_CUDA_MLP)"
            : b->gated_mlp    ? "; MLP: w1 | w3 and the SiLU-gate in one kernel (VPRM_CUDA_MLP)"
                              : "; MLP: cuBLASLt, then the SiLU-gate (VPRM_CUDA_MLP)");
    return 0;
}

/* bf16 from now on (VPRM_CUDA_ACTIVATIONS=auto): the weights loaded again from their
 * source (converting the fp16 ones back would not give back the bits bf16 holds below
 * fp16's normal range), the products' handles and the attention kernels made for bf16.
 * The prefix KV cache's rows stay in fp16: the engine drops them. What can fail for want
 * of memory (the new handles, the upload's staging) is made before the first weight is
 * written; *touched says whether a failure came after that (the backend is then
 * unusable) or left everything as it was. */
static int load_bf16(vp_backend *b, bool *touched, vp_error *err)
{
    *touched = false;
    vp_gemm lang, vis;
    CUDA_CHECK(cudaSetDevice(b->device));
    CUDA_CHECK(cudaStreamSynchronize(b->stream));
    if (vp_gemm_init(&lang, cuda_ws(b, VP_WS_GEMM), b->ws.bytes[VP_WS_GEMM], VPK_ACT_BF16, err))
        return -1;
    if (vp_gemm_init(&vis, cuda_ws(b, VP_WS_GEMM), b->ws.bytes[VP_WS_GEMM], VPK_ACT_BF16, err)) {
        vp_gemm_free(&lang);
        return -1;
    }
    int rc;
    if (b->random_weights) {
        *touched = true; /* no allocation before its first write */
        rc = cuda_weights_random(b, b->random_seed, b->random_plus, b->random_minus, err);
    } else {
        rc = cuda_weights_upload(b, b->src_weights, touched, err);
    }
    if (rc) {
        vp_gemm_free(&lang);
        vp_gemm_free(&vis);
        return -1;
    }
    vp_gemm_free(&b->gemm);
    vp_gemm_free(&b->gemm_vision);
    b->gemm = lang;
    b->gemm_vision = vis;
    b->act = b->act_vision = VPK_ACT_BF16;
    b->act_auto = false;
    if (pick_gemm_tune(b, err) || pick_attention(b, err))
        return -1;
    cuda_weights_bind(b);
    return 0;
}

/* cuda_weights_to_act, except that with auto a weight beyond fp16's range makes the
 * activations bf16 from the start instead of refusing the model. */
static int weights_to_act(vp_backend *b, vp_error *err)
{
    vp_error why = {0};
    if (cuda_weights_to_act(b, &why) == 0)
        return 0;
    if (!b->act_auto || why.kind != VP_ERR_MODEL) {
        if (err)
            *err = why;
        return -1;
    }
    VP_LOGW("-", "cuda backend: %s; bf16 activations instead (VPRM_CUDA_ACTIVATIONS=auto)",
            why.message);
    bool touched;
    return load_bf16(b, &touched, err);
}

/* vp_backend_ops widen: auto's fp16 overflowed in a pass; bf16 for good. */
static int cuda_widen(vp_backend *b, char *what, size_t what_cap, vp_error *err)
{
    if (!b->act_auto)
        return 0;
    bool touched = false;
    vp_error why = {0};
    if (load_bf16(b, &touched, &why)) {
        if (touched || why.kind == VP_ERR_DEVICE)
            return vp_fail(err, VP_ERR_DEVICE, "cuda", "switching to bf16 failed after the "
                           "weights began to change: %.400s", why.message);
        /* nothing changed: still fp16, and the next overflow tries again; the failed
         * allocation's error is cleared, or the next pass's first launch check would
         * report it as its own */
        (void)cudaGetLastError();
        VP_LOGW("-", "cuda backend: cannot switch to bf16 now (%s); the activations stay fp16 "
                "and this pass fails with its overflow", why.message);
        return 0;
    }
    snprintf(what, what_cap, "fp16 -> bf16 activations (VPRM_CUDA_ACTIVATIONS=auto), the "
             "weights loaded again; language attention %s%s",
             b->fast_language ? "tensor-core" : "simple", wgmma_label(b->language_wgmma));
    return 1;
}

int vp_cuda_init_weights(vp_backend **out, const vp_model_config *cfg, const vp_weights *w,
                         const vp_backend_options *opt, vp_error *err)
{
    vp_backend *b;
    int rc = backend_create(&b, cfg, opt, err);
    if (rc == 0) {
        b->src_weights = w;
        rc = cuda_weights_upload(b, w, NULL, err) || weights_to_act(b, err);
    }
    if (rc) {
        cuda_free(b);
        *out = NULL;
        return -1;
    }
    cuda_weights_bind(b);
    *out = b;
    return 0;
}

int vp_cuda_init_random(vp_backend **out, const vp_model_config *cfg, uint64_t seed,
                        int32_t plus_id, int32_t minus_id, const vp_backend_options *opt,
                        vp_error *err)
{
    if (plus_id < 0 || minus_id < 0 || plus_id >= cfg->llm.vocab || minus_id >= cfg->llm.vocab)
        return vp_fail(err, VP_ERR_BAD_REQUEST, "plus_id", "head rows %d / %d outside the vocabulary",
                       plus_id, minus_id);
    vp_backend *b;
    int rc = backend_create(&b, cfg, opt, err);
    if (rc == 0) {
        b->random_seed = seed, b->random_plus = plus_id, b->random_minus = minus_id;
        rc = cuda_weights_random(b, seed, plus_id, minus_id, err) || weights_to_act(b, err);
    }
    if (rc) {
        cuda_free(b);
        *out = NULL;
        return -1;
    }
    cuda_weights_bind(b);
    *out = b;
    return 0;
}

static int cuda_init(vp_backend **out, const vp_model *model, const vp_backend_options *opt,
                     vp_error *err)
{
    return vp_cuda_init_weights(out, vp_model_cfg(model), vp_model_weights(model), opt, err);
}

/* Host planning of one batch into the pinned staging, then the uploads. Returns the
 * language attention items in *n_items. */
static int stage_batch(vp_backend *b, const vp_batch *batch, size_t *n_items, vp_error *err)
{
    const vp_llm_config *l = &b->cfg.llm;
    size_t n = batch->n_tokens, hd = (size_t)l->head_dim;
    size_t g = (size_t)(b->cfg.vision.image_size / b->cfg.vision.patch), tt = 1 + g * g;
    size_t vtiles = batch->n_tiles < b->ws.vision_chunk ? batch->n_tiles : b->ws.vision_chunk;
    memcpy(cuda_stage(b, ST_TOKENS), batch->tokens, n * 4);
    if (batch->image_row)
        memcpy(cuda_stage(b, ST_IMAGE_ROW), batch->image_row, n * 4);
    memcpy(cuda_stage(b, ST_OUT_INDEX), batch->out_index, batch->n_out * 4);
    size_t n_extra = 0;
    if (vp_rope_plan(batch, l, b->base_rows, cuda_stage(b, ST_ROPE_ROW), b->rope_extra, &n_extra,
                     err))
        return -1;
    float *extra = cuda_stage(b, ST_ROPE_EXTRA);
    for (size_t k = 0; k < n_extra; k++)
        vp_cpu_rope_table(extra + k * hd, extra + k * hd + hd / 2, b->rope_extra[k].position,
                          b->rope_extra[k].base, l->head_dim);
    *n_items = 0;
    if (b->fast_language &&
        vp_attn_plan_causal(batch->seqs, batch->n_seqs, n, VP_ATTN_BQ, cuda_stage(b, ST_ITEMS),
                            b->ws.max_items, n_items, err))
        return -1;
    /* per-token ranges: the simple kernel's input, and the last layer's for its score rows */
    if (vp_attn_token_ranges_causal(batch->seqs, batch->n_seqs, n, cuda_stage(b, ST_RANGES), err))
        return -1;
    if (stage_kv_map(b, batch, err))
        return -1;
    size_t n_vitems = 0;
    if (vtiles && b->fast_vision) {
        if (vp_attn_plan_tiles(vtiles, tt, VP_ATTN_BQ, cuda_stage(b, ST_VITEMS), b->ws.max_vitems,
                               &n_vitems, err))
            return -1;
    } else if (vtiles) {
        vp_attn_token_ranges_tiles(vtiles, tt, cuda_stage(b, ST_VRANGES));
    }
    struct { vp_ws_id dst; cuda_staging_id src; size_t bytes; } up[] = {
        {VP_WS_TOKENS, ST_TOKENS, n * 4},
        {VP_WS_IMAGE_ROW, ST_IMAGE_ROW, batch->image_row ? n * 4 : 0},
        {VP_WS_OUT_INDEX, ST_OUT_INDEX, batch->n_out * 4},
        {VP_WS_ROPE_ROW, ST_ROPE_ROW, n * 4},
        {VP_WS_ROPE_EXTRA, ST_ROPE_EXTRA, n_extra * hd * 4},
        {VP_WS_ITEMS, ST_ITEMS, *n_items * sizeof(vp_attn_item)},
        {VP_WS_RANGES, ST_RANGES, n * 3 * 4},
        {VP_WS_VITEMS, ST_VITEMS, n_vitems * sizeof(vp_attn_item)},
        {VP_WS_VRANGES, ST_VRANGES, vtiles && !b->fast_vision ? vtiles * tt * 3 * 4 : 0},
        {VP_WS_KV_MAP, ST_KV_MAP, b->n_kv_map * 2 * 4},
    };
    for (size_t i = 0; i < sizeof up / sizeof up[0]; i++)
        if (up[i].bytes)
            CUDA_CHECK(cudaMemcpyAsync(cuda_ws(b, up[i].dst), cuda_stage(b, up[i].src), up[i].bytes,
                                       cudaMemcpyHostToDevice, b->stream));
    return 0;
}

static int cuda_forward(vp_backend *b, const vp_batch *batch, float *logits,
                        vp_forward_stats *stats, vp_error *err)
{
    size_t rows_per_tile = (size_t)b->cfg.num_image_token;
    if (stats)
        *stats = (vp_forward_stats){0};
    if (vp_batch_validate(batch, batch->n_tiles * rows_per_tile, (size_t)b->cfg.llm.vocab, err))
        return -1;
    if (batch->n_cached_tokens > b->ws.max_tokens ||
        batch->n_tokens > b->ws.max_tokens - batch->n_cached_tokens ||
        batch->n_out > b->ws.max_tokens)
        return vp_fail(err, VP_ERR_TOO_LARGE, "n_tokens",
                       "batch of %zu tokens, %zu cached rows (%zu outputs) is over the backend's "
                       "max_tokens %zu", batch->n_tokens, batch->n_cached_tokens, batch->n_out,
                       b->ws.max_tokens);
    if (vp_batch_check_kv_slots(batch, b->kv_rows, err))
        return -1;
    if (batch->n_tiles > b->ws.max_tiles)
        return vp_fail(err, VP_ERR_TOO_LARGE, "n_tiles",
                       "batch of %zu tiles is over the backend's max_tiles %zu", batch->n_tiles,
                       b->ws.max_tiles);
    if (batch->n_tokens == 0 || batch->n_out == 0)
        return 0;
    CUDA_CHECK(cudaSetDevice(b->device));
    cuda_prof_reset(&b->prof); /* marks a failed forward left behind */
    size_t n_items = 0;
    if (stage_batch(b, batch, &n_items, err) ||
        cuda_head_rows(b, batch->plus_id, batch->minus_id, err))
        return -1;
    if (b->prof.on) {
        vp_flops fl;
        vp_batch_useful_flops(&b->cfg, batch, &fl);
        int layers = b->cfg.llm.layers;
        b->attn_flops_layer = layers > 1 ? (fl.language_attn - fl.language_attn_last) / (layers - 1) : 0;
        b->attn_flops_rows = fl.language_attn_last;
    }
    CUDA_CHECK(cudaEventRecord(b->ev_start, b->stream));
    if (batch->n_tiles &&
        cuda_vision_forward(b, batch->tiles, batch->tiles_u8, batch->n_tiles, err))
        return -1;
    CUDA_CHECK(cudaEventRecord(b->ev_vision, b->stream));
    if (cuda_language_forward(b, batch, n_items, err))
        return -1;
    cuda_prof_mark(&b->prof, b->stream, "end", 0);
    CUDA_CHECK(cudaEventRecord(b->ev_end, b->stream));
    CUDA_CHECK(cudaMemcpyAsync(b->logits_host, cuda_ws(b, VP_WS_LOGITS),
                               batch->n_out * 2 * sizeof(float), cudaMemcpyDeviceToHost, b->stream));
    CUDA_CHECK(cudaStreamSynchronize(b->stream));
    memcpy(logits, b->logits_host, batch->n_out * 2 * sizeof(float));
    cuda_prof_report(&b->prof);
    if (stats) {
        float v = 0.0f, lang = 0.0f;
        CUDA_CHECK(cudaEventElapsedTime(&v, b->ev_start, b->ev_vision));
        CUDA_CHECK(cudaEventElapsedTime(&lang, b->ev_vision, b->ev_end));
        stats->vision_ms = v;
        stats->language_ms = lang;
    }
    return 0;
}

int vp_cuda_vision(vp_backend *b, const float *tiles, size_t n_tiles, float *features,
                   vp_error *err)
{
    if (n_tiles == 0)
        return 0;
    if (!tiles)
        return vp_fail(err, VP_ERR_BAD_REQUEST, "tiles", "%zu tiles but no tile data", n_tiles);
    if (n_tiles > b->ws.max_tiles)
        return vp_fail(err, VP_ERR_TOO_LARGE, "n_tiles", "%zu tiles is over max_tiles %zu",
                       n_tiles, b->ws.max_tiles);
    size_t g = (size_t)(b->cfg.vision.image_size / b->cfg.vision.patch), tt = 1 + g * g;
    size_t vtiles = n_tiles < b->ws.vision_chunk ? n_tiles : b->ws.vision_chunk, n_vitems = 0;
    CUDA_CHECK(cudaSetDevice(b->device));
    if (b->fast_vision) {
        if (vp_attn_plan_tiles(vtiles, tt, VP_ATTN_BQ, cuda_stage(b, ST_VITEMS), b->ws.max_vitems,
                               &n_vitems, err))
            return -1;
        CUDA_CHECK(cudaMemcpyAsync(cuda_ws(b, VP_WS_VITEMS), cuda_stage(b, ST_VITEMS),
                                   n_vitems * sizeof(vp_attn_item), cudaMemcpyHostToDevice,
                                   b->stream));
    } else {
        vp_attn_token_ranges_tiles(vtiles, tt, cuda_stage(b, ST_VRANGES));
        CUDA_CHECK(cudaMemcpyAsync(cuda_ws(b, VP_WS_VRANGES), cuda_stage(b, ST_VRANGES),
                                   vtiles * tt * 3 * 4, cudaMemcpyHostToDevice, b->stream));
    }
    if (cuda_vision_forward(b, tiles, NULL, n_tiles, err))
        return -1;
    size_t bytes = n_tiles * (size_t)b->cfg.num_image_token * (size_t)b->cfg.llm.hidden * 4;
    CUDA_CHECK(cudaMemcpyAsync(features, cuda_ws(b, VP_WS_FEATURES), bytes, cudaMemcpyDeviceToHost,
                               b->stream));
    CUDA_CHECK(cudaStreamSynchronize(b->stream));
    return 0;
}

static const char *cuda_device_name(vp_backend *b)
{
    return b->device_name;
}

static void cuda_memory(vp_backend *b, vp_backend_memory *m)
{
    size_t free_b = 0, total_b = 0;
    if (cudaSetDevice(b->device) != cudaSuccess || cudaMemGetInfo(&free_b, &total_b) != cudaSuccess)
        free_b = total_b = 0;
    *m = (vp_backend_memory){.weights_bytes = b->plan.arena_bytes,
                             .working_bytes = b->ws.total + b->staging_bytes,
                             .device_total_bytes = total_b,
                             .device_free_bytes = free_b,
                             .kv_cache_bytes = b->kv_rows * kv_row_bytes(b),
                             .kv_cache_rows = b->kv_rows};
}

size_t vp_cuda_weight_bytes(const vp_backend *b)
{
    return b->plan.arena_bytes;
}

size_t vp_cuda_workspace_bytes(const vp_backend *b)
{
    return b->ws.total;
}

const char *vp_cuda_attention_kind(const vp_backend *b)
{
    if ((b->language_wgmma | b->vision_wgmma) & VPK_WGMMA_TMA)
        return !(b->vision_wgmma & VPK_WGMMA_TMA)     ? "tensor-core (wgmma; language warp-specialised with TMA)"
               : !(b->language_wgmma & VPK_WGMMA_TMA) ? "tensor-core (wgmma; vision warp-specialised with TMA)"
                                                      : "tensor-core (wgmma, warp-specialised with TMA)";
    if (b->vision_wgmma && b->language_wgmma)
        return b->language_wgmma & VPK_WGMMA_OVERLAP ? "tensor-core (wgmma, overlapped)"
                                                     : "tensor-core (wgmma)";
    if (b->fast_vision && b->fast_language)
        return "tensor-core";
    if (!b->fast_vision && !b->fast_language)
        return "simple";
    return b->fast_language ? "tensor-core (language), simple (vision)"
                            : "simple (language), tensor-core (vision)";
}

const vp_backend_ops vp_backend_cuda = {
    .name = "cuda",
    .init = cuda_init,
    .init_random = vp_cuda_init_random,
    .forward = cuda_forward,
    .device_name = cuda_device_name,
    .memory = cuda_memory,
    .free = cuda_free,
    .activations = cuda_activations,
    .widen = cuda_widen,
};
