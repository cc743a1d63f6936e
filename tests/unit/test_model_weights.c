/* vp_model_load on generated checkpoints: shapes per MODEL.md, single file and shards,
 * config variants, and each kind of mismatch between config.json and the tensors. */
#include <jansson.h>
#include <sys/stat.h>

#include "engine/model/weights.h"
#include "engine/tokenizer/tokenizer.h"
#include "tests/unit/check.h"
#include "tests/unit/model_test_util.h"

static int shape_is(const vp_tensor *t, int ndim, int64_t a, int64_t b, int64_t c, int64_t d)
{
    int64_t want[4] = {a, b, c, d};
    if (!t->data || t->ndim != ndim)
        return 0;
    for (int i = 0; i < ndim; i++)
        if (t->shape[i] != want[i])
            return 0;
    return 1;
}

#define SHAPE1(t, a) CHECK_MSG(shape_is(&(t), 1, a, 0, 0, 0), "%s", #t)
#define SHAPE2(t, a, b) CHECK_MSG(shape_is(&(t), 2, a, b, 0, 0), "%s", #t)
#define SHAPE3(t, a, b, c) CHECK_MSG(shape_is(&(t), 3, a, b, c, 0), "%s", #t)
#define SHAPE4(t, a, b, c, d) CHECK_MSG(shape_is(&(t), 4, a, b, c, d), "%s", #t)

static size_t tokenizer_ids(void)
{
    vp_tokenizer *tok;
    vp_error err;
    if (vp_tokenizer_load(TEST_TOKENIZER, &tok, &err)) {
        fprintf(stderr, "%s: %s\n", TEST_TOKENIZER, err.message);
        return 0;
    }
    size_t n = vp_tokenizer_n_ids(tok);
    vp_tokenizer_free(tok);
    return n;
}

/* The tiny shapes of MODEL.md sections 4-6: vision 64 wide, 2 layers, MLP 128, patch 14
 * on 448 tiles (32x32 grid); projector 4*64 = 256 -> 128; LLM 128 wide, 4 heads of 32,
 * 2 KV heads, MLP 256. */
static void check_tiny_shapes(const vp_model *m, int64_t V)
{
    const vp_weights *w = vp_model_weights(m);
    const vp_model_config *c = vp_model_cfg(m);
    CHECK(c->llm.vocab == V && c->num_image_token == 256);
    SHAPE3(w->class_embedding, 1, 1, 64);
    SHAPE4(w->patch_w, 64, 3, 14, 14);
    SHAPE1(w->patch_b, 64);
    SHAPE3(w->pos_embedding, 1, 1025, 64);
    for (int l = 0; l < 2; l++) {
        const vp_vit_layer *L = &w->vit[l];
        SHAPE1(L->norm1_w, 64);
        SHAPE2(L->qkv_w, 192, 64);
        SHAPE2(L->proj_w, 64, 64);
        SHAPE1(L->proj_b, 64);
        SHAPE1(L->ls1, 64);
        SHAPE1(L->ls2, 64);
        SHAPE1(L->norm2_w, 64);
        SHAPE2(L->fc1_w, 128, 64);
        SHAPE1(L->fc1_b, 128);
        SHAPE2(L->fc2_w, 64, 128);
        SHAPE1(L->fc2_b, 64);
    }
    SHAPE1(w->proj_norm_w, 256);
    SHAPE1(w->proj_norm_b, 256);
    SHAPE2(w->proj1_w, 128, 256);
    SHAPE1(w->proj1_b, 128);
    SHAPE2(w->proj2_w, 128, 128);
    SHAPE1(w->proj2_b, 128);
    SHAPE2(w->tok_embeddings, V, 128);
    for (int l = 0; l < 2; l++) {
        const vp_llm_layer *L = &w->llm[l];
        SHAPE1(L->attention_norm, 128);
        SHAPE2(L->wqkv, 256, 128); /* 2 groups x (2 q + k + v) x 32 */
        SHAPE2(L->wo, 128, 128);
        SHAPE1(L->ffn_norm, 128);
        SHAPE2(L->w1, 256, 128);
        SHAPE2(L->w3, 256, 128);
        SHAPE2(L->w2, 128, 256);
    }
    SHAPE1(w->norm, 128);
    SHAPE2(w->output, V, 128);
    /* layer_norm with qkv bias, no qk norm */
    CHECK(w->vit[0].norm1_b.data && w->vit[1].norm2_b.data && w->vit[0].qkv_b.data);
    CHECK(!w->vit[0].q_norm_w.data && !w->vit[1].k_norm_w.data);
    size_t vit_layer = 64 * 4 + 192 * 64 + 192 + 64 * 64 + 64 + 64 * 2 + 128 * 64 + 128 + 64 * 128 + 64;
    size_t llm_layer = 128 * 2 + 256 * 128 + 128 * 128 + 3 * 256 * 128;
    size_t want = 64 + 64 * 3 * 14 * 14 + 64 + 1025 * 64 + 2 * vit_layer + 256 * 2 + 128 * 256 +
                  128 + 128 * 128 + 128 + 2 * (size_t)V * 128 + 2 * llm_layer + 128;
    CHECK_MSG(vp_model_n_params(m) == want, "n_params %zu, want %zu", vp_model_n_params(m), want);
}

static vp_model *load_ok(const char *dir)
{
    vp_model *m = NULL;
    vp_error err = {0};
    int rc = vp_model_load(dir, &m, &err);
    CHECK_MSG(rc == 0, "load %s: %s", dir, err.message);
    return rc ? NULL : m;
}

static void load_fails_kind(const char *dir, vp_err_kind kind, const char *want1,
                            const char *want2)
{
    vp_model *m = NULL;
    vp_error err = {0};
    int rc = vp_model_load(dir, &m, &err);
    CHECK_MSG(rc == -1 && m == NULL, "%s loaded, expected an error with '%s'", dir, want1);
    if (rc == 0) {
        vp_model_free(m);
        return;
    }
    CHECK_MSG(err.kind == kind, "kind %d for '%s'", err.kind, err.message);
    CHECK_MSG(strstr(err.message, want1), "'%s' lacks '%s'", err.message, want1);
    if (want2)
        CHECK_MSG(strstr(err.message, want2), "'%s' lacks '%s'", err.message, want2);
}

static void load_fails(const char *dir, const char *want1, const char *want2)
{
    load_fails_kind(dir, VP_ERR_MODEL, want1, want2);
}

/* config.json of dir with llm_config / vision_config key set to an integer or bool. */
static void edit_config(const char *dir, const char *section, const char *key, json_t *value)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/config.json", dir);
    json_t *root = json_load_file(path, 0, NULL);
    CHECK(root != NULL);
    if (!root)
        return;
    json_object_set_new(json_object_get(root, section), key, value);
    CHECK(json_dump_file(root, path, JSON_INDENT(2)) == 0);
    json_decref(root);
}

static void rewrite(const char *dir, test_edit e)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    vp_error err = {0};
    CHECK_MSG(test_rewrite(path, &e, &err) == 0, "rewrite: %s", err.message);
}

static void test_round_trip(const char *base, int64_t V)
{
    char dir[512], sdir[512];
    snprintf(dir, sizeof dir, "%s/single", base);
    snprintf(sdir, sizeof sdir, "%s/sharded", base);
    vp_error err = {0};
    CHECK_MSG(test_write_tiny(dir, 11, &err) == 0, "%s", err.message);
    vp_mkmodel_opts o;
    test_tiny_opts(&o, sdir, 11);
    o.shards = 3;
    vp_mkmodel_result r;
    CHECK_MSG(vp_mkmodel_write(&o, &r, &err) == 0, "%s", err.message);
    CHECK(r.n_files == 3 && r.n_tensors == 55);
    vp_model *a = load_ok(dir), *b = load_ok(sdir);
    if (a) {
        check_tiny_shapes(a, V);
        CHECK(!strcmp(vp_model_cfg(a)->name, "single"));
    }
    if (b)
        check_tiny_shapes(b, V);
    if (a && b) {
        /* the same seed gives the same bytes however the tensors are split into files */
        const vp_weights *wa = vp_model_weights(a), *wb = vp_model_weights(b);
        const vp_tensor *pairs[][2] = {
            {&wa->pos_embedding, &wb->pos_embedding}, {&wa->vit[1].qkv_w, &wb->vit[1].qkv_w},
            {&wa->proj1_w, &wb->proj1_w},             {&wa->tok_embeddings, &wb->tok_embeddings},
            {&wa->llm[1].w2, &wb->llm[1].w2},         {&wa->output, &wb->output}};
        for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++)
            CHECK_MSG(pairs[i][0]->nbytes == pairs[i][1]->nbytes &&
                          !memcmp(pairs[i][0]->data, pairs[i][1]->data, pairs[i][0]->nbytes),
                      "%s differs between single and sharded", pairs[i][0]->name);
        CHECK(vp_model_n_params(a) == vp_model_n_params(b));
    }
    vp_model_free(a);
    vp_model_free(b);
}

static void test_variants(const char *base)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/variant", base);
    vp_mkmodel_opts o;
    test_tiny_opts(&o, dir, 5);
    o.cfg.vision.norm = VP_NORM_RMS;
    o.cfg.vision.qk_norm = true;
    o.cfg.vision.qkv_bias = false;
    o.cfg.llm.kv_heads = 4; /* plain multi-head: 3 * 128 rows */
    o.dtype = VP_DT_F16;
    vp_mkmodel_result r;
    vp_error err = {0};
    CHECK_MSG(vp_mkmodel_write(&o, &r, &err) == 0, "%s", err.message);
    vp_model *m = load_ok(dir);
    if (!m)
        return;
    const vp_weights *w = vp_model_weights(m);
    CHECK(vp_model_cfg(m)->vision.norm == VP_NORM_RMS && vp_model_cfg(m)->vision.qk_norm);
    CHECK(!w->vit[0].norm1_b.data && !w->vit[1].norm2_b.data && !w->vit[0].qkv_b.data);
    SHAPE1(w->vit[1].q_norm_w, 64);
    SHAPE1(w->vit[1].k_norm_w, 64);
    SHAPE2(w->llm[0].wqkv, 384, 128);
    CHECK(w->llm[0].wqkv.dtype == VP_DT_F16);
    vp_model_free(m);
}

/* Shape overrides as other suites use them: derived sizes (head_dim, projector width)
 * follow the overrides in both the generator and the loader. */
static void test_overrides(const char *base)
{
    struct { int vh, vheads, vmlp, h, heads, kv, mlp; int64_t qkv_rows; } cases[] = {
        {64, 4, 128, 128, 8, 2, 256, (8 + 2 * 2) * 16},
        {75, 5, 100, 90, 3, 1, 170, (3 + 2 * 1) * 30},
        {64, 4, 128, 128, 4, 4, 256, (4 + 2 * 4) * 32},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char dir[512];
        snprintf(dir, sizeof dir, "%s/override%zu", base, i);
        vp_mkmodel_opts o;
        test_tiny_opts(&o, dir, 14);
        o.cfg.vision.hidden = cases[i].vh;
        o.cfg.vision.heads = cases[i].vheads;
        o.cfg.vision.intermediate = cases[i].vmlp;
        o.cfg.llm.hidden = cases[i].h;
        o.cfg.llm.heads = cases[i].heads;
        o.cfg.llm.kv_heads = cases[i].kv;
        o.cfg.llm.intermediate = cases[i].mlp;
        vp_mkmodel_result r;
        vp_error err = {0};
        CHECK_MSG(vp_mkmodel_write(&o, &r, &err) == 0, "case %zu: %s", i, err.message);
        vp_model *m = load_ok(dir);
        if (!m)
            continue;
        const vp_weights *w = vp_model_weights(m);
        CHECK(vp_model_cfg(m)->llm.head_dim == cases[i].h / cases[i].heads);
        SHAPE2(w->llm[1].wqkv, cases[i].qkv_rows, cases[i].h);
        SHAPE2(w->llm[0].wo, cases[i].h, cases[i].h);
        SHAPE2(w->proj1_w, cases[i].h, 4 * cases[i].vh);
        SHAPE2(w->vit[0].qkv_w, 3 * cases[i].vh, cases[i].vh);
        SHAPE2(w->vit[1].fc2_w, cases[i].vh, cases[i].vmlp);
        SHAPE2(w->llm[1].w2, cases[i].h, cases[i].mlp);
        vp_model_free(m);
    }
}

static void test_mismatches(const char *base)
{
    char dir[512];
    vp_error err = {0};
    /* a required tensor is missing */
    snprintf(dir, sizeof dir, "%s/missing", base);
    CHECK(test_write_tiny(dir, 2, &err) == 0);
    rewrite(dir, (test_edit){.drop = "language_model.model.layers.1.feed_forward.w3.weight"});
    load_fails(dir, "language_model.model.layers.1.feed_forward.w3.weight", "missing");
    /* a tensor of the wrong shape */
    snprintf(dir, sizeof dir, "%s/shape", base);
    CHECK(test_write_tiny(dir, 2, &err) == 0);
    rewrite(dir, (test_edit){.reshape = "vision_model.encoder.layers.0.mlp.fc1.weight"});
    load_fails(dir, "vision_model.encoder.layers.0.mlp.fc1.weight", "shape [127, 64], expected [128, 64]");
    /* an unknown tensor */
    snprintf(dir, sizeof dir, "%s/extra", base);
    CHECK(test_write_tiny(dir, 2, &err) == 0);
    rewrite(dir, (test_edit){.extra = "vision_model.encoder.layers.0.attn.rel_pos.weight"});
    load_fails(dir, "unexpected tensor 'vision_model.encoder.layers.0.attn.rel_pos.weight'", NULL);
    /* config says no qkv bias, the checkpoint has them */
    snprintf(dir, sizeof dir, "%s/bias", base);
    CHECK(test_write_tiny(dir, 2, &err) == 0);
    edit_config(dir, "vision_config", "qkv_bias", json_false());
    load_fails(dir, "attn.qkv.bias", "qkv_bias false");
    /* config says rms_norm, the checkpoint has LayerNorm biases */
    snprintf(dir, sizeof dir, "%s/normbias", base);
    CHECK(test_write_tiny(dir, 2, &err) == 0);
    edit_config(dir, "vision_config", "norm_type", json_string("rms_norm"));
    load_fails(dir, ".norm1.bias", "rms_norm");
    /* config says qk_normalization, the checkpoint has no q_norm */
    snprintf(dir, sizeof dir, "%s/qknorm", base);
    CHECK(test_write_tiny(dir, 2, &err) == 0);
    edit_config(dir, "vision_config", "qk_normalization", json_true());
    load_fails(dir, "attn.q_norm.weight", "missing");
    /* one LLM layer fewer in the config than in the checkpoint */
    snprintf(dir, sizeof dir, "%s/layers", base);
    CHECK(test_write_tiny(dir, 2, &err) == 0);
    edit_config(dir, "llm_config", "num_hidden_layers", json_integer(1));
    load_fails(dir, "language_model.model.layers.1.", "llm_config.num_hidden_layers is 1");
    /* vocabulary of the config and the embeddings disagree */
    snprintf(dir, sizeof dir, "%s/vocab", base);
    CHECK(test_write_tiny(dir, 2, &err) == 0);
    edit_config(dir, "llm_config", "vocab_size", json_integer(92553));
    load_fails(dir, "tok_embeddings.weight", "expected [92553, 128]");
    /* GQA layout from the config: 8 KV heads would need 4 x 3 x 32 = wrong rows */
    snprintf(dir, sizeof dir, "%s/kv", base);
    CHECK(test_write_tiny(dir, 2, &err) == 0);
    edit_config(dir, "llm_config", "num_key_value_heads", json_integer(4));
    load_fails(dir, "attention.wqkv.weight", "expected [384, 128]");
    /* a truncated checkpoint names the file and the tensor cut off */
    snprintf(dir, sizeof dir, "%s/trunc", base);
    CHECK(test_write_tiny(dir, 2, &err) == 0);
    char path[1024];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    size_t len;
    unsigned char *bytes = test_slurp(dir, "model.safetensors", &len);
    CHECK(bytes && vp_write_file(path, bytes, len - 100, &err) == 0);
    free(bytes);
    load_fails(dir, "model.safetensors", "past the end");
    /* missing config.json */
    snprintf(path, sizeof path, "%s/config.json", dir);
    unlink(path);
    load_fails_kind(dir, VP_ERR_IO, "config.json", NULL);
    /* one tensor stored as F32 among BF16: dtypes may differ per tensor */
    snprintf(dir, sizeof dir, "%s/mixed", base);
    CHECK(test_write_tiny(dir, 2, &err) == 0);
    vp_model *m0 = load_ok(dir);
    float before = m0 ? vp_tensor_get(&vp_model_weights(m0)->llm[0].wo, 77) : 0;
    vp_model_free(m0);
    rewrite(dir, (test_edit){.to_f32 = "language_model.model.layers.0.attention.wo.weight"});
    vp_model *m = load_ok(dir);
    if (m) {
        const vp_tensor *wo = &vp_model_weights(m)->llm[0].wo;
        CHECK(wo->dtype == VP_DT_F32 && vp_model_weights(m)->llm[1].wo.dtype == VP_DT_BF16);
        CHECK(vp_tensor_get(wo, 77) == before && before != 0.0f);
        vp_model_free(m);
    }
}

/* dir/name replaced by a FIFO (target NULL) or a symlink to target. */
static void replace_with(const char *dir, const char *name, const char *target)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    unlink(path);
    CHECK_MSG(target ? symlink(target, path) == 0 : mkfifo(path, 0644) == 0, "%s", path);
}

/* Model files that are not regular files: refused by name, never waited on. A FIFO
 * blocked open() until a writer came (the load hung forever): SIGALRM ends the test
 * instead, which fails it. A dangling or looping model.safetensors link counted as
 * absent ("neither model.safetensors nor ..."). */
static void test_special_files(const char *base)
{
    static const char *const names[] = {"config.json", "model.safetensors"};
    char dir[512];
    vp_error err = {0};
    alarm(60);
    for (size_t i = 0; i < 2; i++) {
        snprintf(dir, sizeof dir, "%s/fifo%zu", base, i);
        CHECK(test_write_tiny(dir, 2, &err) == 0);
        replace_with(dir, names[i], NULL);
        load_fails_kind(dir, VP_ERR_IO, names[i], "not a regular file");
    }
    snprintf(dir, sizeof dir, "%s/fifo_tok", base);
    CHECK(test_write_tiny(dir, 2, &err) == 0);
    replace_with(dir, "tokenizer.model", NULL);
    vp_tokenizer *tok = NULL;
    CHECK(vp_tokenizer_load(dir, &tok, &err) == -1 && !tok);
    CHECK_MSG(strstr(err.message, "tokenizer.model") && strstr(err.message, "not a regular file"),
              "%s", err.message);
    alarm(0);
    snprintf(dir, sizeof dir, "%s/dangling", base);
    CHECK(test_write_tiny(dir, 2, &err) == 0);
    replace_with(dir, "model.safetensors", "no-such-file.safetensors");
    load_fails_kind(dir, VP_ERR_IO, "model.safetensors", "cannot open");
    snprintf(dir, sizeof dir, "%s/loop", base);
    CHECK(test_write_tiny(dir, 2, &err) == 0);
    replace_with(dir, "model.safetensors", "model.safetensors");
    load_fails_kind(dir, VP_ERR_IO, "model.safetensors", "cannot open");
}

int main(void)
{
    char base[200];
    if (test_mkdtemp(base, sizeof base)) {
        perror("mkdtemp");
        return 1;
    }
    size_t V = tokenizer_ids();
    CHECK_MSG(V > 0, "tokenizer %s did not load", TEST_TOKENIZER);
    if (V) {
        test_round_trip(base, (int64_t)V);
        test_variants(base);
        test_overrides(base);
        test_mismatches(base);
        test_special_files(base);
    }
    test_rmtree(base);
    return check_summary("test_model_weights");
}
