/* gpu_e2e: whole forward passes, CUDA backend against the fp32 CPU backend on the same
 * bf16 weights (mkmodel's seeded values, built in memory), on random packed batches with
 * shared prefixes, image tokens and several sequences. Two shapes: the "tiny" preset
 * (head sizes 16 / 32: the simple attention kernel) and a "small" one with the real head
 * sizes (64 / 128: the tensor-core kernel). Also: CUDA image features vs CPU, prefix
 * sharing vs none on CUDA, fast vs simple attention, prefixes loaded from the prefix KV
 * cache vs computed. Needs a GPU.
 *   gpu_e2e            exit status 0 when every check passes */
#include <math.h>

#include "engine/cpu/cpu.h"
#include "engine/cuda/cuda.h"
#include "engine/cuda/cuda_kernels.h"
#include "engine/cuda_plan/cuda_plan.h"
#include "engine/image/image.h"
#include "engine/model/layout.h"
#include "engine/model/mkmodel.h"
#include "tests/gpu/gpu_util.h"
#include "tests/gpu/host_model.h"
#include "tests/unit/cuda_plan_test_util.h"

#define PLUS 3
#define MINUS 5
#define VOCAB 600

/* The same sequences with every prefix copied into its users (no sharing). */
static void unshare(const test_batch *in, test_batch *out)
{
    const vp_batch *b = &in->b;
    size_t n = 0;
    for (size_t s = 0; s < b->n_seqs; s++) {
        const vp_seq *sq = &b->seqs[s];
        n += sq->len + (sq->prefix_seq >= 0 ? b->seqs[sq->prefix_seq].len : 0);
    }
    memset(out, 0, sizeof *out);
    out->seqs = tb_alloc(b->n_seqs, sizeof *out->seqs);
    out->tokens = tb_alloc(n, 4), out->positions = tb_alloc(n, 4), out->image_row = tb_alloc(n, 4);
    out->out_index = tb_alloc(b->n_out, 4);
    int32_t *moved = tb_alloc(b->n_tokens, 4); /* new index of each old token, in its own seq */
    size_t at = 0;
    for (size_t s = 0; s < b->n_seqs; s++) {
        const vp_seq *sq = &b->seqs[s];
        vp_seq *o = &out->seqs[s];
        o->start = at;
        o->prefix_seq = -1;
        o->rope_len = sq->rope_len;
        if (sq->prefix_seq >= 0) {
            const vp_seq *p = &b->seqs[sq->prefix_seq];
            for (size_t t = p->start; t < p->start + p->len; t++, at++) {
                out->tokens[at] = b->tokens[t];
                out->positions[at] = b->positions[t];
                out->image_row[at] = b->image_row ? b->image_row[t] : -1;
            }
        }
        for (size_t t = sq->start; t < sq->start + sq->len; t++, at++) {
            out->tokens[at] = b->tokens[t];
            out->positions[at] = b->positions[t];
            out->image_row[at] = b->image_row ? b->image_row[t] : -1;
            moved[t] = (int32_t)at;
        }
        o->len = at - o->start;
    }
    for (size_t i = 0; i < b->n_out; i++)
        out->out_index[i] = moved[b->out_index[i]];
    free(moved);
    out->b = *b;
    out->b.n_tokens = n;
    out->b.tokens = out->tokens;
    out->b.positions = out->positions;
    out->b.image_row = b->image_row ? out->image_row : NULL;
    out->b.seqs = out->seqs;
    out->b.out_index = out->out_index;
}

/* margins m = logit(+) - logit(-): relative l2 error and the worst position */
static int compare_margins(const char *what, const float *got, const float *want, size_t n_out,
                           double tol)
{
    double d2 = 0, w2 = 0, worst = 0, pmin = 1, pmax = 0;
    size_t at = 0, bad = 0;
    for (size_t i = 0; i < n_out; i++) {
        double mg = (double)got[2 * i] - got[2 * i + 1], mw = (double)want[2 * i] - want[2 * i + 1];
        if (!isfinite(mg))
            bad++;
        d2 += (mg - mw) * (mg - mw);
        w2 += mw * mw;
        if (fabs(mg - mw) > worst)
            worst = fabs(mg - mw), at = i;
        double p = 1.0 / (1.0 + exp(-mw));
        pmin = p < pmin ? p : pmin;
        pmax = p > pmax ? p : pmax;
    }
    double rel = w2 > 0 ? sqrt(d2 / w2) : 0;
    int ok = bad == 0 && rel <= tol && n_out > 0;
    printf("%-4s %-48s %zu scores: margin rel err %.4f (tol %.2f), worst |dm| %.4f at %zu "
           "(%.4f vs %.4f), reference P(+) %.3f..%.3f\n",
           ok ? "ok" : "FAIL", what, n_out, rel, tol, worst, at,
           n_out ? (double)got[2 * at] - got[2 * at + 1] : 0.0,
           n_out ? (double)want[2 * at] - want[2 * at + 1] : 0.0, pmin, pmax);
    ok ? gpu_pass++ : gpu_fail++;
    return ok;
}

static int run(const vp_backend_ops *ops, vp_backend *b, const vp_batch *batch, float *logits,
               const char *what)
{
    vp_error err = {0};
    vp_forward_stats st;
    if (ops->forward(b, batch, logits, &st, &err)) {
        printf("FAIL %s forward: %s%s%s\n", what, err.param, err.param[0] ? ": " : "", err.message);
        gpu_fail++;
        return -1;
    }
    return 0;
}

/* A CUDA backend made with the environment variable var=value (VPRM_CUDA_ATTENTION,
 * VPRM_CUDA_ACTIVATIONS). */
static int init_with_env(vp_backend **out, const vp_model_config *cfg, const host_model *m,
                         const vp_backend_options *opt, const char *var, const char *value,
                         const char *label)
{
    vp_error err = {0};
    setenv(var, value, 1);
    int rc = vp_cuda_init_weights(out, cfg, &m->w, opt, &err);
    unsetenv(var);
    if (rc) {
        printf("FAIL %s init (%s=%s): %s\n", label, var, value, err.message);
        gpu_fail++;
    }
    return rc;
}

/* ... with VPRM_CUDA_ATTENTION=attention and bf16 activations (the mma.sync kernels are
 * bf16 only; the default kernels run fp16 activations in the default backend). */
static int init_with_attention(vp_backend **out, const vp_model_config *cfg, const host_model *m,
                               const vp_backend_options *opt, const char *attention,
                               const char *label)
{
    setenv("VPRM_CUDA_ACTIVATIONS", "bf16", 1);
    int rc = init_with_env(out, cfg, m, opt, "VPRM_CUDA_ATTENTION", attention, label);
    unsetenv("VPRM_CUDA_ACTIVATIONS");
    return rc;
}

static void check_shape(const char *label, const vp_model_config *cfg, double tol)
{
    host_model m;
    if (host_model_build(&m, cfg, 11, PLUS, MINUS)) {
        gpu_fail++;
        return;
    }
    vp_error err = {0};
    vp_backend_options opt = {.threads = 0, .device = 0, .max_tokens = 8192, .max_tiles = 4,
                              .kv_cache_bytes = (size_t)64 << 20};
    vp_backend *cpu = NULL, *gpu = NULL, *gpu_simple = NULL, *gpu_alt[5] = {NULL};
    vp_backend *gpu_bf16 = NULL, *gpu_f16l = NULL; /* VPRM_CUDA_ACTIVATIONS=bf16, fp16-llm */
    vp_backend *gpu_mlp = NULL; /* VPRM_CUDA_MLP=cublas where the default is fused (Hopper) */
    vp_backend *gpu_mlp2 = NULL; /* VPRM_CUDA_MLP=fused2 (Hopper): blocks in pairs */
    int fused = vpk_gated_mlp_supports((size_t)cfg->llm.hidden, (size_t)cfg->llm.intermediate);
    if (vp_cpu_init_weights(&cpu, cfg, &m.w, &opt, &err) ||
        vp_cuda_init_weights(&gpu, cfg, &m.w, &opt, &err)) {
        printf("FAIL %s init: %s\n", label, err.message);
        gpu_fail++;
        goto done;
    }
    /* the fp32 attention, and the tensor-core kernels the default does not use, in bf16
     * (the default backend: fp16 activations, VPRM_CUDA_ACTIVATIONS=auto): on Hopper
     * (whose default is the warp-specialised TMA kernel, head 128 with two heads a block,
     * the vision tower's 64 with one; gpu_bf16 runs it in bf16) mma.sync, wgmma without
     * the overlap with two heads a block and with one, overlapped, elsewhere another
     * mma.sync launch shape */
    int hopper = vpk_attention_wgmma_available();
    const char *alt[5] = {hopper ? "32x1x64" : "16x1x64", "wgmma2", "wgmma1", "wgmma2o", "wgmma1o"};
    size_t n_alt = hopper ? 5 : 1;
    if (init_with_attention(&gpu_simple, cfg, &m, &opt, "simple", label))
        goto done;
    for (size_t a = 0; a < n_alt; a++)
        if (init_with_attention(&gpu_alt[a], cfg, &m, &opt, alt[a], label))
            goto done;
    if (init_with_env(&gpu_bf16, cfg, &m, &opt, "VPRM_CUDA_ACTIVATIONS", "bf16", label) ||
        init_with_env(&gpu_f16l, cfg, &m, &opt, "VPRM_CUDA_ACTIVATIONS", "fp16-llm", label) ||
        (fused && init_with_env(&gpu_mlp, cfg, &m, &opt, "VPRM_CUDA_MLP", "cublas", label)) ||
        (fused && init_with_env(&gpu_mlp2, cfg, &m, &opt, "VPRM_CUDA_MLP", "fused2", label)))
        goto done;
    if (!fused)
        printf("%s: the fused MLP not run (needs a Hopper GPU)\n", label);
    printf("%s: CUDA attention %s; device %s\n", label, vp_cuda_attention_kind(gpu),
           vp_backend_cuda.device_name(gpu));
    size_t tiles = 2, tile_floats = 3 * 448 * 448, rows = tiles * (size_t)cfg->num_image_token;
    float *img = gpu_normal(tiles * tile_floats, 1.0f, 0.0f);
    uint8_t *img_u8 = host_alloc(tiles * tile_floats); /* [tiles][448][448][3] */
    for (size_t i = 0; i < tiles * tile_floats; i++) {
        float v = img[i] * 40.0f + 128.5f;
        img_u8[i] = (uint8_t)(v < 0.0f ? 0.0f : v > 255.0f ? 255.0f : v);
    }
    char what[128];
    /* image features alone */
    float *fc = host_alloc(rows * (size_t)cfg->llm.hidden * 4), *fg = host_alloc(rows * (size_t)cfg->llm.hidden * 4);
    if (vp_cpu_vision(cpu, img, tiles, fc, &err) || vp_cuda_vision(gpu, img, tiles, fg, &err)) {
        printf("FAIL %s vision: %s\n", label, err.message);
        gpu_fail++;
    } else {
        snprintf(what, sizeof what, "%s image features (2 tiles)", label);
        double d2 = 0, w2 = 0;
        size_t nf = rows * (size_t)cfg->llm.hidden;
        for (size_t i = 0; i < nf; i++)
            d2 += ((double)fg[i] - fc[i]) * ((double)fg[i] - fc[i]), w2 += (double)fc[i] * fc[i];
        gpu_close(what, fg, fc, nf, 0.05 * sqrt(w2 / (double)nf), 0.05);
    }
    for (int round = 0; round < 3; round++) {
        test_batch tb, flat;
        int with_images = round != 1;
        test_batch_make(&tb, 2 + (size_t)round, 150, VOCAB, with_images ? rows : 0);
        tb.b.plus_id = PLUS, tb.b.minus_id = MINUS;
        tb.b.n_tiles = with_images ? tiles : 0;
        tb.b.tiles = with_images ? img : NULL;
        float *lc = host_alloc(tb.b.n_out * 8), *lg = host_alloc(tb.b.n_out * 8);
        float *ls = host_alloc(tb.b.n_out * 8), *lf = host_alloc(tb.b.n_out * 8);
        int cpu_ok = run(&vp_backend_cpu, cpu, &tb.b, lc, "cpu") == 0;
        int gpu_ok = run(&vp_backend_cuda, gpu, &tb.b, lg, "cuda") == 0;
        if (cpu_ok && gpu_ok) {
            snprintf(what, sizeof what, "%s batch %d (%zu tokens, %zu seqs%s) cuda vs cpu", label, round,
                     tb.b.n_tokens, tb.b.n_seqs, with_images ? ", 2 tiles" : "");
            compare_margins(what, lg, lc, tb.b.n_out, tol);
        }
        if (cpu_ok && run(&vp_backend_cuda, gpu_simple, &tb.b, ls, "cuda simple") == 0) {
            snprintf(what, sizeof what, "%s batch %d simple vs cpu", label, round);
            compare_margins(what, ls, lc, tb.b.n_out, tol);
        }
        if (cpu_ok && run(&vp_backend_cuda, gpu_bf16, &tb.b, ls, "cuda bf16") == 0) {
            snprintf(what, sizeof what, "%s batch %d bf16 activations (%s) vs cpu", label, round,
                     vp_cuda_attention_kind(gpu_bf16));
            compare_margins(what, ls, lc, tb.b.n_out, tol);
        }
        if (cpu_ok && run(&vp_backend_cuda, gpu_f16l, &tb.b, ls, "cuda fp16-llm") == 0) {
            snprintf(what, sizeof what, "%s batch %d fp16 language model, bf16 vision (%s) vs cpu",
                     label, round, vp_cuda_attention_kind(gpu_f16l));
            compare_margins(what, ls, lc, tb.b.n_out, tol);
        }
        if (cpu_ok && gpu_mlp && run(&vp_backend_cuda, gpu_mlp, &tb.b, ls, "cuda cublas mlp") == 0) {
            snprintf(what, sizeof what, "%s batch %d VPRM_CUDA_MLP=cublas vs cpu", label, round);
            compare_margins(what, ls, lc, tb.b.n_out, tol);
        }
        if (cpu_ok && gpu_mlp2 && run(&vp_backend_cuda, gpu_mlp2, &tb.b, ls, "cuda fused2 mlp") == 0) {
            snprintf(what, sizeof what, "%s batch %d VPRM_CUDA_MLP=fused2 vs cpu", label, round);
            compare_margins(what, ls, lc, tb.b.n_out, tol);
        }
        for (size_t a = 0; a < n_alt; a++)
            if (cpu_ok && run(&vp_backend_cuda, gpu_alt[a], &tb.b, ls, "cuda alternative") == 0) {
                snprintf(what, sizeof what, "%s batch %d VPRM_CUDA_ATTENTION=%s (%s) vs cpu",
                         label, round, alt[a], vp_cuda_attention_kind(gpu_alt[a]));
                compare_margins(what, ls, lc, tb.b.n_out, tol);
            }
        /* the prefix KV cache: prefixes stored by one pass and loaded by the next give the
         * logits of computing them (every attention kernel reads the loaded rows) */
        test_batch store, load, extend, chain;
        size_t stored_rows = test_batch_cache_prefixes(&tb, &store, &load);
        /* then extensions: half of each prefix loaded, the rest computed by its users and
         * stored from the first one's rows (the engine's partial hit and warm-up pass), and
         * loaded back in two runs */
        test_batch_extend_prefixes(&tb, &load, stored_rows, &extend, &chain);
        vp_backend *kinds[11] = {gpu, gpu_simple, gpu_bf16, gpu_f16l, gpu_alt[0], gpu_alt[1],
                                 gpu_alt[2], gpu_alt[3], gpu_alt[4]};
        const char *kind_names[11] = {"default", "simple", "bf16", "fp16-llm", alt[0], alt[1],
                                      alt[2], alt[3], alt[4]};
        size_t n_kinds = 4 + n_alt;
        if (gpu_mlp) /* after the alternatives in use */
            kinds[n_kinds] = gpu_mlp, kind_names[n_kinds++] = "cublas mlp";
        if (gpu_mlp2)
            kinds[n_kinds] = gpu_mlp2, kind_names[n_kinds++] = "fused2 mlp";
        float *lk = host_alloc(tb.b.n_out * 8); /* this kind's logits computed in one pass */
        for (size_t k = 0; k < n_kinds && gpu_ok; k++)
            if (run(&vp_backend_cuda, kinds[k], &tb.b, lk, "cuda computed") == 0 &&
                run(&vp_backend_cuda, kinds[k], &store.b, ls, "cuda store prefixes") == 0 &&
                run(&vp_backend_cuda, kinds[k], &load.b, lf, "cuda load prefixes") == 0) {
                snprintf(what, sizeof what, "%s batch %d storing pass (%s) vs cuda", label, round,
                         kind_names[k]);
                compare_margins(what, ls, lk, tb.b.n_out, tol / 2);
                snprintf(what, sizeof what, "%s batch %d cached prefixes (%s) vs computed", label,
                         round, kind_names[k]);
                compare_margins(what, lf, lk, tb.b.n_out, tol / 2);
                if (run(&vp_backend_cuda, kinds[k], &extend.b, lf, "cuda extend prefixes") == 0) {
                    snprintf(what, sizeof what, "%s batch %d half-loaded prefixes, rest stored "
                             "(%s) vs computed", label, round, kind_names[k]);
                    compare_margins(what, lf, lk, tb.b.n_out, tol / 2);
                }
                if (run(&vp_backend_cuda, kinds[k], &chain.b, lf, "cuda load extensions") == 0) {
                    snprintf(what, sizeof what, "%s batch %d prefixes from extension chains (%s) "
                             "vs computed", label, round, kind_names[k]);
                    compare_margins(what, lf, lk, tb.b.n_out, tol / 2);
                }
            }
        free(lk);
        test_batch_free(&store), test_batch_free(&load);
        test_batch_free(&extend), test_batch_free(&chain);
        unshare(&tb, &flat);
        if (gpu_ok && run(&vp_backend_cuda, gpu, &flat.b, lf, "cuda unshared") == 0) {
            snprintf(what, sizeof what, "%s batch %d cuda shared vs unshared prefix", label, round);
            compare_margins(what, lg, lf, tb.b.n_out, tol / 2);
        }
        if (with_images) { /* 8-bit tiles, as the engine passes them: both normalise */
            const uint8_t *ptr[2] = {img_u8 + tile_floats, img_u8}; /* not in memory order */
            tb.b.tiles = NULL, tb.b.tiles_u8 = ptr;
            if (run(&vp_backend_cpu, cpu, &tb.b, lc, "cpu 8-bit tiles") == 0 &&
                run(&vp_backend_cuda, gpu, &tb.b, lg, "cuda 8-bit tiles") == 0) {
                snprintf(what, sizeof what, "%s batch %d 8-bit tiles cuda vs cpu", label, round);
                compare_margins(what, lg, lc, tb.b.n_out, tol);
            }
            tb.b.tiles = img, tb.b.tiles_u8 = NULL;
        }
        free(lc), free(lg), free(ls), free(lf);
        test_batch_free(&flat);
        test_batch_free(&tb);
    }
    free(img), free(img_u8), free(fc), free(fg);
done:
    if (cpu)
        vp_backend_cpu.free(cpu);
    if (gpu)
        vp_backend_cuda.free(gpu);
    if (gpu_simple)
        vp_backend_cuda.free(gpu_simple);
    for (size_t a = 0; a < 5; a++)
        if (gpu_alt[a])
            vp_backend_cuda.free(gpu_alt[a]);
    if (gpu_bf16)
        vp_backend_cuda.free(gpu_bf16);
    if (gpu_f16l)
        vp_backend_cuda.free(gpu_f16l);
    if (gpu_mlp)
        vp_backend_cuda.free(gpu_mlp);
    if (gpu_mlp2)
        vp_backend_cuda.free(gpu_mlp2);
    host_model_free(&m);
}

/* 8-bit tiles over more than one vision chunk (16 tiles): 17 tiles, the first 9 in one
 * buffer (one upload run) and the rest in buffers of their own, give exactly the logits of
 * the same tiles normalised on the host and passed as floats. */
static void check_u8_chunks(const vp_model_config *cfg)
{
    host_model m;
    if (host_model_build(&m, cfg, 13, PLUS, MINUS)) {
        gpu_fail++;
        return;
    }
    enum { TILES = 17, FIRST_RUN = 9 };
    size_t rows = TILES * (size_t)cfg->num_image_token, tb_bytes = 3 * 448 * 448;
    vp_error err = {0};
    vp_backend_options opt = {.device = 0, .max_tokens = rows + 64, .max_tiles = TILES};
    vp_backend *gpu = NULL;
    uint8_t *first = host_alloc(FIRST_RUN * tb_bytes), *own[TILES - FIRST_RUN];
    const uint8_t *ptr[TILES];
    float *norm = host_alloc(TILES * tb_bytes * 4);
    uint32_t seed = 7;
    for (size_t t = 0; t < TILES; t++) {
        uint8_t *dst = t < FIRST_RUN ? first + t * tb_bytes : (own[t - FIRST_RUN] = host_alloc(tb_bytes));
        for (size_t i = 0; i < tb_bytes; i++) {
            seed = seed * 1664525u + 1013904223u;
            dst[i] = (uint8_t)(seed >> 24);
        }
        ptr[t] = dst;
        vp_tiles_normalize(dst, 1, 448, norm + t * tb_bytes);
    }
    /* one sequence whose first tokens take every feature row, so every tile counts */
    size_t n = rows + 8, n_out = 4;
    int32_t *tok = host_alloc(n * 4), *pos = host_alloc(n * 4), *img = host_alloc(n * 4);
    int32_t out_index[4] = {(int32_t)n - 4, (int32_t)n - 3, (int32_t)n - 2, (int32_t)n - 1};
    for (size_t t = 0; t < n; t++)
        tok[t] = (int32_t)(t * 7 % VOCAB), pos[t] = (int32_t)t, img[t] = t < rows ? (int32_t)t : -1;
    vp_seq seq = {0, n, -1, n};
    vp_batch batch = {.n_tiles = TILES, .n_tokens = n, .tokens = tok, .positions = pos,
                      .image_row = img, .n_seqs = 1, .seqs = &seq, .n_out = n_out,
                      .out_index = out_index, .plus_id = PLUS, .minus_id = MINUS};
    float *lf = host_alloc(n_out * 8), *lu = host_alloc(n_out * 8);
    if (vp_cuda_init_weights(&gpu, cfg, &m.w, &opt, &err)) {
        printf("FAIL 8-bit tiles init: %s\n", err.message);
        gpu_fail++;
    } else {
        batch.tiles = norm;
        int ok = run(&vp_backend_cuda, gpu, &batch, lf, "cuda float tiles") == 0;
        batch.tiles = NULL, batch.tiles_u8 = ptr;
        ok = ok && run(&vp_backend_cuda, gpu, &batch, lu, "cuda 8-bit tiles") == 0;
        if (ok)
            gpu_check("17 8-bit tiles (two vision chunks) == the same tiles as floats",
                      !memcmp(lf, lu, n_out * 8), "logits differ");
        vp_backend_cuda.free(gpu);
    }
    free(tok), free(pos), free(img);
    for (size_t t = 0; t < TILES - FIRST_RUN; t++)
        free(own[t]);
    free(first), free(norm), free(lf), free(lu);
    host_model_free(&m);
}

/* The tuning environment variables: a bad value refuses the backend with a message that
 * names the variable and what it takes; every documented value starts it. */
static void check_env_values(const vp_model_config *cfg)
{
    static const struct {
        const char *var, *value;
        int ok;
        const char *says; /* in the error message */
    } cases[] = {
        {"VPRM_CUDA_ATTENTION", "wgmma2x", 0, "followed by o"},
        {"VPRM_CUDA_ATTENTION", "wgmma3o", 0, "expected wgmma1 or wgmma2"},
        {"VPRM_CUDA_ATTENTION", "wgmma", 0, "expected wgmma1 or wgmma2"},
        {"VPRM_CUDA_ATTENTION", "wgmma2d", 0, "followed by o"}, /* three stages: removed */
        {"VPRM_CUDA_ATTENTION", "wgmma2ot", 0, "wgmma2t"},
        {"VPRM_CUDA_ATTENTION", "wgmma1t", 0, "wgmma2t"},
        {"VPRM_CUDA_ATTENTION", "wgmma2t", 1, NULL},
        {"VPRM_CUDA_ATTENTION", "wgmma1o", 1, NULL},
        {"VPRM_CUDA_ATTENTION", "wgmma1", 1, NULL},
        {"VPRM_CUDA_ACTIVATIONS", "fp32", 0, "expected bf16, fp16, auto or fp16-llm"},
        {"VPRM_CUDA_ACTIVATIONS", "auto", 1, NULL},
        {"VPRM_CUDA_ACTIVATIONS", "bf16", 1, NULL},
        {"VPRM_CUDA_ACTIVATIONS", "", 1, NULL},
        {"VPRM_CUDA_ACTIVATIONS", "fp16-llm", 1, NULL},
        {"VPRM_CUDA_GEMM_TUNE", "many", 0, "a count of candidates"},
        {"VPRM_CUDA_GEMM_TUNE", "99", 0, "a count of candidates"},
        {"VPRM_CUDA_GEMM_TUNE", "4", 1, NULL},
        {"VPRM_CUDA_MLP", "fast", 0, "expected auto, fused, fused2 or cublas"},
        {"VPRM_CUDA_MLP", "fused2", 1, NULL},
        {"VPRM_CUDA_MLP", "auto", 1, NULL},
        {"VPRM_CUDA_MLP", "cublas", 1, NULL},
        {"VPRM_CUDA_MLP", "fused", 1, NULL},
    };
    host_model m;
    if (host_model_build(&m, cfg, 17, PLUS, MINUS)) {
        gpu_fail++;
        return;
    }
    vp_backend_options opt = {.device = 0, .max_tokens = 512, .max_tiles = 1};
    int hopper = vpk_attention_wgmma_available();
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (!hopper && cases[i].ok &&
            (!strncmp(cases[i].value, "wgmma", 5) || !strncmp(cases[i].value, "fused", 5)))
            continue; /* the wgmma kernels and the fused MLP need a Hopper GPU */
        vp_backend *b = NULL;
        vp_error err = {0};
        setenv(cases[i].var, cases[i].value, 1);
        int rc = vp_cuda_init_weights(&b, cfg, &m.w, &opt, &err);
        unsetenv(cases[i].var);
        char what[96];
        snprintf(what, sizeof what, "%s=%s %s", cases[i].var, cases[i].value,
                 cases[i].ok ? "starts" : "is refused by name");
        if (cases[i].ok)
            gpu_check(what, rc == 0, "%s", err.message);
        else
            gpu_check(what, rc != 0 && strstr(err.message, cases[i].var) &&
                                strstr(err.message, cases[i].says),
                      "rc %d: \"%s\"", rc, err.message);
        if (b)
            vp_backend_cuda.free(b);
    }
    host_model_free(&m);
}

/* VPRM_CUDA_ACTIVATIONS=auto widened by hand (the engine does it after a pass with
 * non-finite logits; test_engine_overflow covers that side): fp16 before, bf16 after, the
 * widened backend's logits bit for bit those of a backend started in bf16 (weights loaded
 * again from the host model, or drawn again with the same seed), and no second switch;
 * then a weight beyond fp16's range, which makes auto start in bf16. One 8-bit tile and
 * text tokens, so both towers' weights count. */
/* An fp16 overflow while a pass runs (the first layer's first 16 w1 and w3 rows all 64.0:
 * gate and up near 700 fit fp16, their product does not), through whichever MLP path is the
 * default (the fused kernel on Hopper rounds only that product): auto's logits are not all
 * finite, a bf16 backend's are, and once widened auto gives the bf16 backend's logits bit
 * for bit. */
static void check_widen_at_run_time(const vp_model_config *cfg, const vp_batch *batch,
                                    const vp_backend_options *opt)
{
    host_model m;
    if (host_model_build(&m, cfg, 23, PLUS, MINUS)) {
        gpu_fail++;
        return;
    }
    size_t h = (size_t)cfg->llm.hidden, set = 0;
    for (size_t k = 0; k < m.n; k++)
        if (strstr(m.names[k], "layers.0.feed_forward.w1.weight") ||
            strstr(m.names[k], "layers.0.feed_forward.w3.weight")) {
            for (size_t i = 0; i < 16 * h; i++)
                ((uint16_t *)m.bufs[k])[i] = 0x4280; /* bf16 64.0 */
            set++;
        }
    const vp_backend_ops *ops = &vp_backend_cuda;
    vp_backend *autob = NULL, *bf16 = NULL;
    vp_error err = {0};
    float got16[6], got[6], want[6];
    setenv("VPRM_CUDA_ACTIVATIONS", "auto", 1);
    int rc = vp_cuda_init_weights(&autob, cfg, &m.w, opt, &err);
    unsetenv("VPRM_CUDA_ACTIVATIONS");
    setenv("VPRM_CUDA_ACTIVATIONS", "bf16", 1);
    if (rc == 0)
        rc = vp_cuda_init_weights(&bf16, cfg, &m.w, opt, &err);
    unsetenv("VPRM_CUDA_ACTIVATIONS");
    if (set != 2 || rc) {
        gpu_check("an fp16 overflow in a pass", 0, "%s", rc ? err.message : "no w1 / w3 of layer 0");
    } else if (run(ops, autob, batch, got16, "auto, overflowing") == 0 &&
               run(ops, bf16, batch, want, "bf16, overflowing in fp16") == 0) {
        bool finite16 = true, finite = true;
        for (int i = 0; i < 6; i++)
            finite16 = finite16 && isfinite(got16[i]), finite = finite && isfinite(want[i]);
        gpu_check("an fp16 overflow in a pass: auto's logits not all finite, bf16's are",
                  !finite16 && finite, "auto %s, bf16 %s", finite16 ? "finite" : "not finite",
                  finite ? "finite" : "not finite");
        char what[160] = "";
        rc = ops->widen(autob, what, sizeof what, &err);
        if (rc == 1 && run(ops, autob, batch, got, "auto, widened") == 0)
            gpu_check("an fp16 overflow in a pass: widened == a bf16 backend, bit for bit",
                      !memcmp(got, want, sizeof got), "logits differ");
        else
            gpu_check("an fp16 overflow in a pass: widens", 0, "widen %d: %s", rc, err.message);
    }
    if (autob)
        ops->free(autob);
    if (bf16)
        ops->free(bf16);
    host_model_free(&m);
}

static void check_widen(const vp_model_config *cfg)
{
    host_model m;
    if (host_model_build(&m, cfg, 19, PLUS, MINUS)) {
        gpu_fail++;
        return;
    }
    size_t rows = (size_t)cfg->num_image_token, n = rows + 24, tile = 3 * 448 * 448;
    uint8_t *px = host_alloc(tile);
    int32_t *tok = host_alloc(n * 4), *pos = host_alloc(n * 4), *img = host_alloc(n * 4);
    for (size_t i = 0; i < tile; i++)
        px[i] = (uint8_t)((i * 2654435761u) >> 13);
    for (size_t t = 0; t < n; t++)
        tok[t] = (int32_t)((t * 13 + 5) % VOCAB), pos[t] = (int32_t)t, img[t] = t < rows ? (int32_t)t : -1;
    const uint8_t *tiles[1] = {px};
    int32_t out_index[3] = {(int32_t)n - 9, (int32_t)n - 5, (int32_t)n - 1};
    vp_seq seq = {0, n, -1, n};
    vp_batch batch = {.n_tiles = 1, .tiles_u8 = tiles, .n_tokens = n, .tokens = tok,
                      .positions = pos, .image_row = img, .n_seqs = 1, .seqs = &seq, .n_out = 3,
                      .out_index = out_index, .plus_id = PLUS, .minus_id = MINUS};
    vp_backend_options opt = {.device = 0, .max_tokens = n, .max_tiles = 1};
    const vp_backend_ops *ops = &vp_backend_cuda;
    for (int random = 0; random < 2; random++) {
        vp_backend *autob = NULL, *bf16 = NULL;
        vp_error err = {0};
        float got16[6], got[6], want[6];
        const char *label = random ? "auto, random weights" : "auto, host weights";
        setenv("VPRM_CUDA_ACTIVATIONS", "auto", 1);
        int rc = random ? vp_cuda_init_random(&autob, cfg, 3, PLUS, MINUS, &opt, &err)
                        : vp_cuda_init_weights(&autob, cfg, &m.w, &opt, &err);
        unsetenv("VPRM_CUDA_ACTIVATIONS");
        setenv("VPRM_CUDA_ACTIVATIONS", "bf16", 1);
        if (rc == 0)
            rc = random ? vp_cuda_init_random(&bf16, cfg, 3, PLUS, MINUS, &opt, &err)
                        : vp_cuda_init_weights(&bf16, cfg, &m.w, &opt, &err);
        unsetenv("VPRM_CUDA_ACTIVATIONS");
        if (rc) {
            printf("FAIL %s init: %s\n", label, err.message);
            gpu_fail++;
        } else if (run(ops, autob, &batch, got16, label) == 0 &&
                   run(ops, bf16, &batch, want, "bf16") == 0) {
            char what[160] = "", name[96];
            snprintf(name, sizeof name, "%s: starts in fp16", label);
            gpu_check(name, !strcmp(ops->activations(autob), "float16 (bfloat16 after an overflow)"),
                      "starts as %s", ops->activations(autob));
            rc = ops->widen(autob, what, sizeof what, &err);
            snprintf(name, sizeof name, "%s: widens to bf16", label);
            gpu_check(name, rc == 1 && !strcmp(ops->activations(autob), "bfloat16"),
                      "widen: %d (%s), now %s", rc, err.message, ops->activations(autob));
            printf("%s: widened: %s\n", label, what);
            snprintf(name, sizeof name, "%s: then == a bf16 backend, bit for bit", label);
            if (rc == 1 && run(ops, autob, &batch, got, label) == 0)
                gpu_check(name, !memcmp(got, want, sizeof got) && memcmp(got16, want, sizeof got),
                          "after widening: logits %s a bf16 backend's (fp16 ones %s)",
                          memcmp(got, want, sizeof got) ? "differ from" : "equal",
                          memcmp(got16, want, sizeof got) ? "differ" : "equal too");
            snprintf(name, sizeof name, "%s: nothing wider after that", label);
            gpu_check(name, ops->widen(autob, what, sizeof what, &err) == 0, "widened twice");
        }
        if (autob)
            ops->free(autob);
        if (bf16)
            ops->free(bf16);
    }
    check_widen_at_run_time(cfg, &batch, &opt);
    /* a weight beyond fp16's range (one w2 value set to 70144): auto starts in bf16,
     * with a bf16 backend's logits */
    size_t k = 0;
    while (k < m.n && !strstr(m.names[k], "w2.weight"))
        k++;
    if (k < m.n) {
        ((uint16_t *)m.bufs[k])[0] = 0x4789; /* bf16 70144 */
        vp_backend *autob = NULL, *bf16 = NULL;
        vp_error err = {0};
        float got[6], want[6];
        setenv("VPRM_CUDA_ACTIVATIONS", "auto", 1);
        int rc = vp_cuda_init_weights(&autob, cfg, &m.w, &opt, &err);
        unsetenv("VPRM_CUDA_ACTIVATIONS");
        setenv("VPRM_CUDA_ACTIVATIONS", "bf16", 1);
        if (rc == 0)
            rc = vp_cuda_init_weights(&bf16, cfg, &m.w, &opt, &err);
        unsetenv("VPRM_CUDA_ACTIVATIONS");
        gpu_check("auto with a weight beyond fp16 starts in bf16", rc == 0 &&
                      !strcmp(ops->activations(autob), "bfloat16"),
                  "%s", rc ? err.message : ops->activations(autob));
        if (rc == 0 && run(ops, autob, &batch, got, "auto, big weight") == 0 &&
            run(ops, bf16, &batch, want, "bf16, big weight") == 0)
            gpu_check("auto with a weight beyond fp16 == a bf16 backend, bit for bit",
                      !memcmp(got, want, sizeof got), "logits differ");
        if (autob)
            ops->free(autob);
        if (bf16)
            ops->free(bf16);
    } else {
        gpu_check("a w2 weight to make too large for fp16", 0, "no tensor named *w2.weight");
    }
    free(px), free(tok), free(pos), free(img);
    host_model_free(&m);
}

int main(void)
{
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
        fprintf(stderr, "gpu_e2e: no CUDA device\n");
        return 2;
    }
    vp_model_config cfg;
    vp_error err = {0};
    if (vp_mkmodel_preset("tiny", &cfg, &err))
        return 2;
    cfg.llm.vocab = VOCAB;
    check_shape("tiny", &cfg, 0.05);
    check_env_values(&cfg);
    /* real head sizes: vision 2 x 64, language 2 query heads of 128 on 1 KV head */
    cfg.vision.hidden = 128, cfg.vision.heads = 2, cfg.vision.intermediate = 256;
    cfg.llm.hidden = 256, cfg.llm.heads = 2, cfg.llm.kv_heads = 1, cfg.llm.head_dim = 128;
    cfg.llm.intermediate = 512;
    check_shape("small", &cfg, 0.05);
    check_u8_chunks(&cfg);
    check_widen(&cfg);
    printf("gpu_e2e: %d passed, %d failed\n", gpu_pass, gpu_fail);
    return gpu_fail ? 1 : 0;
}
