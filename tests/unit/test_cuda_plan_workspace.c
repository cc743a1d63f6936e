/* The CUDA backend's working memory plan (engine/cuda_plan/plan_workspace.c) and the
 * useful-FLOP count (plan_flops.c): buffer sizes from their definitions, alignment, no
 * overlap between buffers that live at the same time, overflow refused, and PERF.md's
 * cost-model figures. */
#include <math.h>
#include <stdio.h>

#include "engine/cuda_plan/cuda_plan.h"
#include "engine/model/mkmodel.h"
#include "tests/unit/check.h"

static bool live_together(vp_ws_phase a, vp_ws_phase b)
{
    return a == VP_WS_PERSIST || b == VP_WS_PERSIST || a == b;
}

/* fused: the plan of the fused MLP kernel (no gate | up buffer, larger chunks of rows) */
static void check_ws(const vp_model_config *cfg, size_t tokens, size_t tiles, bool fused)
{
    vp_cuda_workspace ws, unfused;
    vp_error err = {0};
    CHECK(vp_cuda_workspace_plan(cfg, tokens, tiles, fused, &ws, &err) == 0);
    CHECK(vp_cuda_workspace_plan(cfg, tokens, tiles, false, &unfused, &err) == 0);
    size_t h = (size_t)cfg->llm.hidden, n = tokens, im = (size_t)cfg->llm.intermediate;
    size_t chunk = tiles < 16 ? tiles : 16, tt = 1025, hv = (size_t)cfg->vision.hidden;
    size_t rows = fused ? 20480 : 4096;
    CHECK(ws.vision_chunk == chunk && ws.mlp_chunk == (tokens < rows ? tokens : rows));
    CHECK(ws.bytes[VP_WS_X] == n * h * 4 && ws.bytes[VP_WS_XN] == n * h * 2);
    CHECK(ws.bytes[VP_WS_QKV] ==
          n * (size_t)(cfg->llm.heads + 2 * cfg->llm.kv_heads) * (size_t)cfg->llm.head_dim * 2);
    CHECK(ws.bytes[VP_WS_GU] == (fused ? 0 : ws.mlp_chunk * 2 * im * 4));
    CHECK(ws.bytes[VP_WS_H] == ws.mlp_chunk * im * 2);
    /* the fused plan's larger chunks fit in the bytes the unfused one took */
    CHECK(ws.language_bytes <= unfused.language_bytes && ws.total <= unfused.total);
    CHECK(ws.bytes[VP_WS_FEATURES] == tiles * 256 * h * 4);
    CHECK(ws.bytes[VP_WS_VX] == chunk * tt * hv * 4);
    CHECK(ws.bytes[VP_WS_PATCHES] == chunk * 1024 * 592 * 2);
    CHECK(ws.bytes[VP_WS_ITEMS] >= (n / 64 + 1) * sizeof(vp_attn_item));
    CHECK(ws.bytes[VP_WS_VITEMS] == chunk * 17 * sizeof(vp_attn_item));
    CHECK(ws.bytes[VP_WS_GEMM] == VP_GEMM_WORKSPACE_BYTES);
    int misaligned = 0, overlaps = 0, outside = 0;
    for (int a = 0; a < VP_WS_COUNT; a++) {
        misaligned += ws.offset[a] % VP_WS_ALIGN != 0;
        outside += ws.offset[a] + ws.bytes[a] > ws.total ||
                   (ws.bytes[a] == 0 && !(fused && a == VP_WS_GU));
        for (int b = a + 1; b < VP_WS_COUNT; b++) {
            if (!live_together(ws.phase[a], ws.phase[b]))
                continue;
            bool disjoint = ws.offset[a] + ws.bytes[a] <= ws.offset[b] ||
                            ws.offset[b] + ws.bytes[b] <= ws.offset[a];
            if (!disjoint) {
                overlaps++;
                fprintf(stderr, "%s overlaps %s\n", vp_ws_name(a), vp_ws_name(b));
            }
        }
    }
    CHECK(misaligned == 0 && outside == 0);
    CHECK_MSG(overlaps == 0, "%d overlapping live buffers", overlaps);
    /* the vision and language scratch share bytes: total is not their sum */
    CHECK(ws.total < ws.persist_bytes + ws.vision_bytes + ws.language_bytes);
    printf("workspace for %zu tokens, %zu tiles%s: %.2f GiB (persistent %.2f, vision %.2f, "
           "language %.2f)\n", tokens, tiles, fused ? ", fused MLP" : "", (double)ws.total / (1 << 30),
           (double)ws.persist_bytes / (1 << 30), (double)ws.vision_bytes / (1 << 30),
           (double)ws.language_bytes / (1 << 30));
}

static void test_flops(const vp_model_config *cfg)
{
    /* one tile, no tokens: PERF.md's 0.62 TFLOP dense + 0.10 attention, 0.02 projector */
    vp_batch b = {.n_tiles = 1};
    vp_flops f;
    vp_batch_useful_flops(cfg, &b, &f);
    CHECK_MSG(f.vision > 0.71e12 && f.vision < 0.74e12, "vision %.3g", f.vision);
    CHECK_MSG(f.projector > 0.015e12 && f.projector < 0.02e12, "projector %.3g", f.projector);
    /* 1000 tokens, all outputs: 14.0 GFLOP each + 0.52 MFLOP per (query, key) */
    static int32_t out[1000];
    for (int i = 0; i < 1000; i++)
        out[i] = i;
    vp_seq s = {0, 1000, -1, 1000};
    b = (vp_batch){.n_tokens = 1000, .n_seqs = 1, .seqs = &s, .n_out = 1000, .out_index = out};
    vp_batch_useful_flops(cfg, &b, &f);
    CHECK_MSG(f.language_dense / 1000 > 13.9e9 && f.language_dense / 1000 < 14.1e9, "dense %.4g",
              f.language_dense / 1000);
    double pairs = 1000.0 * 1001 / 2;
    CHECK(f.language_attn / pairs > 0.52e6 && f.language_attn / pairs < 0.53e6);
    /* only two output rows (tokens 999 and 0): the last layer's attention sees 1000 + 1
     * keys, and its queries, wo and MLP run for those two rows only */
    double q = (double)cfg->llm.heads * cfg->llm.head_dim, all_dense = f.language_dense;
    int32_t two[2] = {999, 0};
    b.n_out = 2, b.out_index = two;
    vp_batch_useful_flops(cfg, &b, &f);
    CHECK_MSG(f.language_attn_last == 1001.0 * 4 * q, "last layer attention %.6g, want %.6g",
              f.language_attn_last, 1001.0 * 4 * q);
    CHECK(f.language_attn == pairs * 4 * q * (cfg->llm.layers - 1) + 1001.0 * 4 * q);
    double h = cfg->llm.hidden, last_rows = 2 * (h * q + q * h) + 6 * h * cfg->llm.intermediate;
    CHECK_MSG(fabs(all_dense - f.language_dense - 998 * last_rows) < 1e-6 * all_dense,
              "dense %.6g: all outputs %.6g, 998 rows of the last layer's q, wo, MLP %.6g",
              f.language_dense, all_dense, 998 * last_rows);
    /* a prefix of 3600 tokens (13 tiles + text) seen by 8 suffixes of 300 tokens: W1's shape */
    vp_seq w1[9];
    w1[0] = (vp_seq){0, 3600, -1, 3900};
    for (int r = 0; r < 8; r++)
        w1[1 + r] = (vp_seq){3600 + 300 * (size_t)r, 300, 0, 3900};
    b = (vp_batch){.n_tiles = 13, .n_tokens = 6000, .n_seqs = 9, .seqs = w1, .n_out = 48,
                   .out_index = out};
    vp_batch_useful_flops(cfg, &b, &f);
    printf("W1-shaped batch: %.1f TFLOP useful (vision %.1f, language dense %.1f, attention %.1f)\n",
           f.total / 1e12, (f.vision + f.projector) / 1e12, f.language_dense / 1e12,
           f.language_attn / 1e12);
    CHECK(f.total > 95e12 && f.total < 115e12); /* PERF.md: "about 113" */
}

int main(void)
{
    vp_model_config cfg;
    vp_error err = {0};
    CHECK(vp_mkmodel_preset("8b", &cfg, &err) == 0);
    for (int fused = 0; fused <= 1; fused++) {
        check_ws(&cfg, 16384, 64, fused); /* the engine's default batch budget */
        check_ws(&cfg, 8192, 13, fused);  /* W1 */
        check_ws(&cfg, 1, 1, fused);
        check_ws(&cfg, 30000, 64, fused); /* past the fused chunk */
    }
    vp_cuda_workspace ws;
    CHECK(vp_cuda_workspace_plan(&cfg, 8192, 13, false, &ws, &err) == 0);
    CHECK(ws.total < ((size_t)2 << 30)); /* PERF.md: weights + 2 GB for W1 */
    CHECK(vp_cuda_workspace_plan(&cfg, SIZE_MAX / 64, 1, false, &ws, &err) == -1 &&
          err.kind == VP_ERR_TOO_LARGE);
    CHECK(vp_cuda_workspace_plan(&cfg, SIZE_MAX / 64, 1, true, &ws, &err) == -1 &&
          err.kind == VP_ERR_TOO_LARGE);
    CHECK(vp_cuda_workspace_plan(&cfg, 1, SIZE_MAX / 16, false, &ws, &err) == -1);
    CHECK(vp_cuda_workspace_plan(&cfg, 0, 1, false, &ws, &err) == -1);
    CHECK(vp_mkmodel_preset("tiny", &cfg, &err) == 0);
    check_ws(&cfg, 300, 3, false);
    check_ws(&cfg, 300, 3, true);
    CHECK(vp_mkmodel_preset("8b", &cfg, &err) == 0);
    test_flops(&cfg);
    return check_summary("cuda_plan_workspace");
}
