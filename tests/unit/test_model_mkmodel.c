/* The random-weight generator: deterministic for a seed (whatever the threads or the
 * split into shards), dtypes consistent with each other, the value distributions the
 * design asks for (head rows of "+"/"-" and query/key rows scaled), stale files removed,
 * invalid requests refused. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/model/layout.h"
#include "engine/model/mkmodel.h"
#include "engine/model/weights.h"
#include "engine/tokenizer/tokenizer.h"
#include "tests/unit/check.h"
#include "tests/unit/model_test_util.h"

static int write_opts(vp_mkmodel_opts *o)
{
    vp_mkmodel_result r;
    vp_error err = {0};
    int rc = vp_mkmodel_write(o, &r, &err);
    CHECK_MSG(rc == 0, "mkmodel %s: %s", o->out_dir, err.message);
    return rc;
}

static int same_file(const char *a, const char *b, const char *name)
{
    size_t la, lb;
    unsigned char *x = test_slurp(a, name, &la), *y = test_slurp(b, name, &lb);
    int same = x && y && la == lb && !memcmp(x, y, la);
    free(x);
    free(y);
    return same;
}

static int exists(const char *dir, const char *name)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return access(path, F_OK) == 0;
}

static void test_determinism(const char *base)
{
    char a[512], b[512], c[512], d[512];
    snprintf(a, sizeof a, "%s/seed7a", base);
    snprintf(b, sizeof b, "%s/seed7b", base);
    snprintf(c, sizeof c, "%s/seed8", base);
    snprintf(d, sizeof d, "%s/seed7t1", base);
    vp_mkmodel_opts o;
    struct timespec t0, t1;
    test_tiny_opts(&o, a, 7);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    write_opts(&o);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("mkmodel tiny (2 threads, this build): %.3f s\n",
           (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec));
    test_tiny_opts(&o, b, 7);
    write_opts(&o);
    test_tiny_opts(&o, c, 8);
    write_opts(&o);
    test_tiny_opts(&o, d, 7);
    o.threads = 1;
    write_opts(&o);
    CHECK(same_file(a, b, "model.safetensors") && same_file(a, b, "config.json"));
    CHECK(same_file(a, d, "model.safetensors"));
    CHECK(!same_file(a, c, "model.safetensors") && same_file(a, c, "config.json"));
    CHECK(same_file(a, TEST_TOKENIZER, "tokenizer.model"));
    CHECK(same_file(a, TEST_TOKENIZER, "tokenizer_config.json"));
    CHECK(exists(TEST_TOKENIZER, "added_tokens.json") == exists(a, "added_tokens.json"));
    /* a different seed changes every tensor, not only some */
    vp_model *ma, *mc;
    vp_error err = {0};
    if (vp_model_load(a, &ma, &err) == 0) {
        if (vp_model_load(c, &mc, &err) == 0) {
            const vp_weights *wa = vp_model_weights(ma), *wc = vp_model_weights(mc);
            CHECK(memcmp(wa->vit[0].ls1.data, wc->vit[0].ls1.data, wa->vit[0].ls1.nbytes));
            CHECK(memcmp(wa->norm.data, wc->norm.data, wa->norm.nbytes));
            CHECK(memcmp(wa->output.data, wc->output.data, wa->output.nbytes));
            /* and two tensors of one model differ too (the name is part of the key) */
            CHECK(memcmp(wa->llm[0].w1.data, wa->llm[0].w3.data, wa->llm[0].w1.nbytes));
            CHECK(memcmp(wa->llm[0].w1.data, wa->llm[1].w1.data, wa->llm[0].w1.nbytes));
            vp_model_free(mc);
        }
        vp_model_free(ma);
    }
}

static void test_dtypes(const char *base)
{
    char dirs[3][512];
    vp_dtype dts[3] = {VP_DT_F32, VP_DT_BF16, VP_DT_F16};
    vp_model *m[3] = {NULL, NULL, NULL};
    for (int i = 0; i < 3; i++) {
        snprintf(dirs[i], sizeof dirs[i], "%s/dtype%d", base, i);
        vp_mkmodel_opts o;
        test_tiny_opts(&o, dirs[i], 21);
        o.dtype = dts[i];
        write_opts(&o);
        vp_error err = {0};
        CHECK_MSG(vp_model_load(dirs[i], &m[i], &err) == 0, "%s", err.message);
    }
    if (m[0] && m[1] && m[2]) {
        /* the same float values, rounded to nearest even into each dtype */
        const vp_weights *w[3] = {vp_model_weights(m[0]), vp_model_weights(m[1]),
                                  vp_model_weights(m[2])};
        const vp_tensor *f = &w[0]->llm[1].wqkv, *bf = &w[1]->llm[1].wqkv, *h = &w[2]->llm[1].wqkv;
        int bad = 0;
        for (size_t i = 0; i < vp_tensor_numel(f); i++) {
            float x = vp_tensor_get(f, i);
            if (vp_tensor_get(bf, i) != vp_bf16_to_f32(vp_f32_to_bf16(x)) ||
                vp_tensor_get(h, i) != vp_f16_to_f32(vp_f32_to_f16(x)))
                bad++;
        }
        CHECK_MSG(bad == 0, "%d elements differ between dtypes", bad);
        CHECK(f->dtype == VP_DT_F32 && bf->dtype == VP_DT_BF16 && h->dtype == VP_DT_F16);
    }
    for (int i = 0; i < 3; i++)
        vp_model_free(m[i]);
}

static void stats(const vp_tensor *t, size_t from, size_t count, double *mean, double *std)
{
    double s = 0, q = 0;
    for (size_t i = from; i < from + count; i++) {
        double x = vp_tensor_get(t, i);
        s += x;
        q += x * x;
    }
    *mean = s / (double)count;
    *std = sqrt(q / (double)count - *mean * *mean);
}

#define NEAR(x, want, rel) (fabs((x) - (want)) <= (rel) * fabs(want))

static void test_distributions(const char *base)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/dist", base);
    vp_mkmodel_opts o;
    test_tiny_opts(&o, dir, 3);
    o.dtype = VP_DT_F32;
    write_opts(&o);
    vp_model *m;
    vp_error err = {0};
    if (vp_model_load(dir, &m, &err)) {
        CHECK_MSG(0, "%s", err.message);
        return;
    }
    vp_tokenizer *tok;
    if (vp_tokenizer_load(TEST_TOKENIZER, &tok, &err)) {
        CHECK_MSG(0, "%s", err.message);
        vp_model_free(m);
        return;
    }
    int32_t plus = vp_tokenizer_piece_id(tok, "+"), minus = vp_tokenizer_piece_id(tok, "-");
    vp_tokenizer_free(tok);
    CHECK(plus >= 0 && minus >= 0 && plus != minus);
    const vp_weights *w = vp_model_weights(m);
    double mean, std;
    stats(&w->llm[0].w1, 0, vp_tensor_numel(&w->llm[0].w1), &mean, &std);
    CHECK_MSG(fabs(mean) < 0.001 && NEAR(std, 0.02, 0.03), "w1 mean %g std %g", mean, std);
    stats(&w->tok_embeddings, 0, vp_tensor_numel(&w->tok_embeddings), &mean, &std);
    CHECK_MSG(NEAR(std, 0.02, 0.03), "tok_embeddings std %g", std);
    stats(&w->vit[1].fc1_b, 0, 128, &mean, &std);
    CHECK_MSG(std > 0.01 && std < 0.03, "fc1 bias std %g", std);
    /* norm weights near 1, not all 1 */
    stats(&w->proj_norm_w, 0, 256, &mean, &std);
    CHECK_MSG(fabs(mean - 1) < 0.02 && std > 0.02 && std < 0.08, "norm mean %g std %g", mean, std);
    /* layer scales in [0.1, 1], spread over it */
    float lo = 2, hi = -1;
    for (int l = 0; l < 2; l++)
        for (size_t i = 0; i < 64; i++) {
            float a = vp_tensor_get(&w->vit[l].ls1, i), b = vp_tensor_get(&w->vit[l].ls2, i);
            lo = fminf(lo, fminf(a, b));
            hi = fmaxf(hi, fmaxf(a, b));
        }
    CHECK_MSG(lo >= 0.1f && hi <= 1.0f && lo < 0.2f && hi > 0.9f, "layer scales %g..%g", lo, hi);
    /* LM head: the "+" and "-" rows have std 2/sqrt(2*128) = 0.125, the others 0.02 */
    const vp_tensor *out = &w->output;
    size_t H = 128;
    double sp, sm, so, mdummy;
    stats(out, (size_t)plus * H, H, &mdummy, &sp);
    stats(out, (size_t)minus * H, H, &mdummy, &sm);
    size_t other = (size_t)(plus + 1 == minus ? plus + 2 : plus + 1);
    stats(out, other * H, H, &mdummy, &so);
    CHECK_MSG(NEAR(sp, 0.125, 0.2) && NEAR(sm, 0.125, 0.2), "+ row std %g, - row std %g", sp, sm);
    CHECK_MSG(NEAR(so, 0.02, 0.2), "other row std %g", so);
    CHECK(NEAR(vp_mkmodel_head_row_std(4096), 2.0 / sqrt(8192.0), 1e-6));
    /* wqkv packed per KV group: [2 groups][2 q heads, k, v][32 rows]: q, k rows have std
     * sqrt(4/128) = 0.177, v rows 0.02 */
    const vp_tensor *qkv = &w->llm[1].wqkv;
    for (int g = 0; g < 2; g++)
        for (int slot = 0; slot < 4; slot++) {
            stats(qkv, ((size_t)g * 128 + (size_t)slot * 32) * H, 32 * H, &mdummy, &std);
            double want = slot == 3 ? 0.02 : sqrt(4.0 / 128);
            CHECK_MSG(NEAR(std, want, 0.1), "wqkv group %d slot %d std %g, want %g", g, slot, std,
                      want);
        }
    /* ViT qkv: [q | k | v] blocks of 64 rows; q, k std sqrt(4/64) = 0.25 */
    const vp_tensor *vq = &w->vit[0].qkv_w;
    for (int blk = 0; blk < 3; blk++) {
        stats(vq, (size_t)blk * 64 * 64, 64 * 64, &mdummy, &std);
        double want = blk == 2 ? 0.02 : 0.25;
        CHECK_MSG(NEAR(std, want, 0.1), "vit qkv block %d std %g, want %g", blk, std, want);
    }
    vp_model_free(m);
}

/* Std of n values of the 8b layout's tensor `name` from element `from` (values drawn
 * directly: no 16 GB file). */
static double deep_std(const vp_layout_entry *list, size_t n_list, const vp_init_params *p,
                       const char *name, size_t from, size_t n)
{
    for (size_t i = 0; i < n_list; i++) {
        if (strcmp(list[i].name, name))
            continue;
        float *v = calloc(n, sizeof *v);
        vp_mkmodel_values(p, &list[i], from, n, v);
        double s = 0, s2 = 0;
        for (size_t k = 0; k < n; k++)
            s += v[k], s2 += (double)v[k] * v[k];
        free(v);
        return sqrt(s2 / (double)n - (s / (double)n) * (s / (double)n));
    }
    CHECK_MSG(0, "no tensor %s in the 8b layout", name);
    return 0;
}

/* Deep towers (the 8b shape) take the conditioned rule (mkmodel_init.c): ViT q/k rows at
 * 0.02, LLM q/k rows at 0.025, LLM wo and w2 at 0.005; shallow ones the sharp one. */
static void test_deep_rule(void)
{
    vp_model_config cfg;
    vp_error err = {0};
    CHECK(vp_mkmodel_preset("tiny", &cfg, &err) == 0);
    CHECK(NEAR(vp_mkmodel_qk_std(&cfg, false), sqrt(4.0 / 128), 1e-6));
    CHECK(NEAR(vp_mkmodel_qk_std(&cfg, true), sqrt(4.0 / 64), 1e-6));
    CHECK(NEAR(vp_mkmodel_resid_std(&cfg), 0.02, 1e-6));
    CHECK(vp_mkmodel_preset("8b", &cfg, &err) == 0);
    CHECK(NEAR(vp_mkmodel_qk_std(&cfg, false), 0.025, 1e-6));
    CHECK(NEAR(vp_mkmodel_qk_std(&cfg, true), 0.02, 1e-6));
    CHECK(NEAR(vp_mkmodel_resid_std(&cfg), 0.005, 1e-6));
    cfg.init_rule = VP_INIT_RULE_PLAIN; /* PERF.md's recipe: every weight 0.02 */
    CHECK(NEAR(vp_mkmodel_qk_std(&cfg, false), 0.02, 1e-6));
    CHECK(NEAR(vp_mkmodel_qk_std(&cfg, true), 0.02, 1e-6));
    CHECK(NEAR(vp_mkmodel_resid_std(&cfg), 0.02, 1e-6));
    cfg.init_rule = VP_INIT_RULE_SPREAD;
    vp_layout_entry *list;
    size_t n;
    CHECK(vp_layout_build(&cfg, NULL, &list, &n, &err) == 0);
    vp_init_params p = {.cfg = &cfg, .seed = 3, .plus_id = 342, .minus_id = 285};
    const size_t H = 4096, rows = 128 * H; /* one head's rows */
    struct { const char *name; size_t from; double want; } cases[] = {
        {"language_model.model.layers.5.attention.wo.weight", 0, 0.005},
        {"language_model.model.layers.31.feed_forward.w2.weight", 1000 * 14336, 0.005},
        {"language_model.model.layers.5.feed_forward.w1.weight", 0, 0.02},
        {"language_model.model.layers.5.attention.wqkv.weight", 0, 0.025},         /* q */
        {"language_model.model.layers.5.attention.wqkv.weight", 4 * rows, 0.025},  /* k */
        {"language_model.model.layers.5.attention.wqkv.weight", 5 * rows, 0.02},   /* v */
        {"vision_model.encoder.layers.3.attn.qkv.weight", 0, 0.02},
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        double std = deep_std(list, n, &p, cases[c].name, cases[c].from, 100000);
        CHECK_MSG(NEAR(std, cases[c].want, 0.02), "%s at %zu: std %g, want %g", cases[c].name,
                  cases[c].from, std, cases[c].want);
    }
    free(list);
}

static void test_shards_and_stale(const char *base)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/restale", base);
    vp_mkmodel_opts o;
    test_tiny_opts(&o, dir, 4);
    o.shards = 4;
    write_opts(&o);
    CHECK(exists(dir, "model.safetensors.index.json") && !exists(dir, "model.safetensors"));
    for (int k = 1; k <= 4; k++) {
        char name[64];
        snprintf(name, sizeof name, "model-%05d-of-00004.safetensors", k);
        CHECK_MSG(exists(dir, name), "%s missing", name);
    }
    test_tiny_opts(&o, dir, 4);
    write_opts(&o); /* one file now: the old shards and index must go */
    CHECK(exists(dir, "model.safetensors") && !exists(dir, "model.safetensors.index.json"));
    CHECK(!exists(dir, "model-00001-of-00004.safetensors"));
    test_tiny_opts(&o, dir, 4);
    o.shards = 2;
    write_opts(&o);
    CHECK(!exists(dir, "model.safetensors") && exists(dir, "model-00002-of-00002.safetensors"));
    vp_model *m;
    vp_error err = {0};
    CHECK_MSG(vp_model_load(dir, &m, &err) == 0, "%s", err.message);
    if (m == NULL)
        return;
    /* 55 tensors: as many shards as tensors still works, one more is refused */
    vp_model_free(m);
    test_tiny_opts(&o, dir, 4);
    o.shards = 55;
    write_opts(&o);
    CHECK(vp_model_load(dir, &m, &err) == 0);
    if (m)
        vp_model_free(m);
    test_tiny_opts(&o, dir, 4);
    o.shards = 56;
    vp_mkmodel_result r;
    CHECK(vp_mkmodel_write(&o, &r, &err) == -1 && strstr(err.message, "56 shards"));
}

static void test_refusals(const char *base)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/bad", base);
    vp_mkmodel_opts o;
    vp_mkmodel_result r;
    vp_error err = {0};
    test_tiny_opts(&o, dir, 1);
    o.cfg.llm.heads = 3; /* does not divide 128 */
    CHECK(vp_mkmodel_write(&o, &r, &err) == -1 && strstr(err.message, "num_attention_heads"));
    test_tiny_opts(&o, dir, 1);
    o.cfg.vision.patch = 64; /* 7x7 grid: no 2x2 pixel shuffle */
    CHECK(vp_mkmodel_write(&o, &r, &err) == -1 && strstr(err.message, "patch grid"));
    test_tiny_opts(&o, dir, 1);
    o.tokenizer_dir = "/nonexistent/tokenizer";
    CHECK(vp_mkmodel_write(&o, &r, &err) == -1 && strstr(err.message, "/nonexistent/tokenizer"));
    CHECK(!exists(dir, "config.json")); /* nothing written for a refused request */
    CHECK(vp_mkmodel_preset("70b", &o.cfg, &err) == -1 && strstr(err.message, "70b"));
    /* the system message override reaches config.json */
    test_tiny_opts(&o, dir, 1);
    o.cfg.system_message = "Rate every step.";
    CHECK(vp_mkmodel_write(&o, &r, &err) == 0);
    vp_model_config c;
    CHECK_MSG(vp_model_config_load(dir, &c, &err) == 0, "%s", err.message);
    CHECK(c.system_message && !strcmp(c.system_message, "Rate every step."));
    vp_model_config_free(&c);
}

int main(void)
{
    char base[200];
    if (test_mkdtemp(base, sizeof base)) {
        perror("mkdtemp");
        return 1;
    }
    test_determinism(base);
    test_dtypes(base);
    test_distributions(base);
    test_deep_rule();
    test_shards_and_stale(base);
    test_refusals(base);
    test_rmtree(base);
    return check_summary("test_model_mkmodel");
}
