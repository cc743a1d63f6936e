/* config.json: vp_model_config_parse over the input text.
 * Promises: a failure carries VP_ERR_MODEL (or NOMEM) and a message; a success holds
 * only values the engine can size and run with: every size within the range config.c
 * accepts (hidden 1..65536, layers 1..1024, heads dividing hidden, kv_heads dividing
 * heads, an even LLM head dim, patch dividing image_size into an even grid, vocab
 * 1..2^24, ...), epsilons that are still > 0 and finite once stored as float, the
 * fixed settings (downsample 0.5, select_layer -1, 1 <= min <= max dynamic patch), a
 * NUL-terminated name that is valid UTF-8 (the API puts it in JSON), and a tensor
 * layout (vp_layout_build) whose every element count and fp32 byte count fits size_t.
 * Round trip: vp_model_config_to_json of the result parses again to the same config
 * (reals compared to the 7 significant digits config_write.c prints on purpose; the
 * name is not written, so it is not compared).
 *
 * Seeds (corpus/fuzz_model_config/seed_*): seed_tiny is the config.json of
 * `bin/vprm mkmodel --scale tiny --seed 1`; seed_8b that of `--scale 8b --config-only`;
 * the others are seed_tiny edited by hand (compact whitespace, rope_type instead of
 * type, system_message, a long non-ASCII _name_or_path, rms_norm vision, broken ones). */
#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "engine/model/config.h"
#include "engine/model/layout.h"
#include "tests/fuzz/fuzz.h"

/* Equal to the 7 significant digits the writer keeps (plus float rounding). */
static bool close7(double a, double b)
{
    return a == b || fabs(a - b) <= 1e-6 * fmax(fabs(a), fabs(b));
}

static void check_valid(const vp_model_config *c)
{
    const vp_vision_config *v = &c->vision;
    const vp_llm_config *l = &c->llm;
    FUZZ_REQUIRE(v->hidden >= 1 && v->hidden <= 65536, "vision hidden %d", v->hidden);
    FUZZ_REQUIRE(v->layers >= 1 && v->layers <= 1024, "vision layers %d", v->layers);
    FUZZ_REQUIRE(v->heads >= 1 && v->heads <= 4096 && v->hidden % v->heads == 0,
                 "vision heads %d for hidden %d", v->heads, v->hidden);
    FUZZ_REQUIRE(v->intermediate >= 1 && v->intermediate <= 1 << 20, "vision intermediate %d",
                 v->intermediate);
    FUZZ_REQUIRE(v->patch >= 1 && v->patch <= 1024 && v->image_size >= 1 &&
                     v->image_size <= 8192 && v->image_size % v->patch == 0 &&
                     (v->image_size / v->patch) % 2 == 0,
                 "patch %d, image_size %d", v->patch, v->image_size);
    FUZZ_REQUIRE(v->channels == 3, "channels %d", v->channels);
    FUZZ_REQUIRE(v->norm == VP_NORM_LAYER || v->norm == VP_NORM_RMS, "norm %d", (int)v->norm);
    FUZZ_REQUIRE(isfinite(v->norm_eps) && v->norm_eps > 0.0f && v->norm_eps <= 1.0f,
                 "vision norm_eps %g", (double)v->norm_eps);

    FUZZ_REQUIRE(l->hidden >= 1 && l->hidden <= 65536, "llm hidden %d", l->hidden);
    FUZZ_REQUIRE(l->layers >= 1 && l->layers <= 1024, "llm layers %d", l->layers);
    FUZZ_REQUIRE(l->heads >= 1 && l->heads <= 4096 && l->hidden % l->heads == 0,
                 "llm heads %d for hidden %d", l->heads, l->hidden);
    FUZZ_REQUIRE(l->kv_heads >= 1 && l->kv_heads <= l->heads && l->heads % l->kv_heads == 0,
                 "kv_heads %d for %d heads", l->kv_heads, l->heads);
    FUZZ_REQUIRE(l->head_dim == l->hidden / l->heads && l->head_dim >= 2 && l->head_dim % 2 == 0,
                 "head_dim %d", l->head_dim);
    FUZZ_REQUIRE(l->intermediate >= 1 && l->intermediate <= 1 << 20, "llm intermediate %d",
                 l->intermediate);
    FUZZ_REQUIRE(l->vocab >= 1 && l->vocab <= 1 << 24, "vocab %d", l->vocab);
    FUZZ_REQUIRE(l->max_pos >= 1 && l->max_pos <= 1 << 24, "max_pos %d", l->max_pos);
    FUZZ_REQUIRE(isfinite(l->rms_eps) && l->rms_eps > 0.0f && l->rms_eps <= 1.0f,
                 "rms_eps %g", (double)l->rms_eps);
    FUZZ_REQUIRE(isfinite(l->rope_theta) && l->rope_theta >= 1.0 && l->rope_theta <= 1e12,
                 "rope_theta %g", l->rope_theta);
    FUZZ_REQUIRE(l->rope_dynamic ? l->rope_factor >= 1.0 && l->rope_factor <= 1e6
                                 : l->rope_factor == 1.0,
                 "rope_factor %g (dynamic %d)", l->rope_factor, (int)l->rope_dynamic);

    FUZZ_REQUIRE(c->downsample_ratio == 0.5 && c->select_layer == -1, "ratio %g, layer %d",
                 c->downsample_ratio, c->select_layer);
    FUZZ_REQUIRE(c->min_dynamic_patch >= 1 && c->min_dynamic_patch <= c->max_dynamic_patch &&
                     c->max_dynamic_patch <= 256,
                 "dynamic patch %d..%d", c->min_dynamic_patch, c->max_dynamic_patch);
    int grid = v->image_size / v->patch;
    FUZZ_REQUIRE(c->num_image_token == (grid / 2) * (grid / 2) && c->num_image_token >= 1,
                 "num_image_token %d for a %d grid", c->num_image_token, grid);
    size_t nlen = strnlen(c->name, sizeof c->name);
    FUZZ_REQUIRE(nlen < sizeof c->name, "name not NUL-terminated");
    /* jansson refuses invalid UTF-8: the twin for "the API can report this name" */
    json_t *js = json_string(c->name);
    FUZZ_REQUIRE(js != NULL, "name '%s' is not valid UTF-8", c->name);
    json_decref(js);
}

/* Every tensor the config implies has a positive shape whose size fits size_t. */
static void check_layout(const vp_model_config *c)
{
    vp_layout_entry *list = NULL;
    size_t n = 0, total = 0;
    vp_error err = {0};
    FUZZ_REQUIRE(vp_layout_build(c, NULL, &list, &n, &err) == 0, "layout: %s", err.message);
    for (size_t i = 0; i < n; i++) {
        const vp_layout_entry *e = &list[i];
        size_t numel = 1, bytes;
        FUZZ_REQUIRE(e->ndim >= 1 && e->ndim <= VP_MAX_DIMS, "%s: ndim %d", e->name, e->ndim);
        for (int d = 0; d < e->ndim; d++) {
            FUZZ_REQUIRE(e->shape[d] >= 1, "%s: shape[%d] = %lld", e->name, d,
                         (long long)e->shape[d]);
            FUZZ_REQUIRE(!__builtin_mul_overflow(numel, (size_t)e->shape[d], &numel),
                         "%s: element count overflows", e->name);
        }
        FUZZ_REQUIRE(!__builtin_mul_overflow(numel, (size_t)4, &bytes) &&
                         !__builtin_add_overflow(total, numel, &total),
                     "%s: byte count or parameter total overflows", e->name);
        FUZZ_REQUIRE(vp_layout_numel(e) == numel, "%s: numel", e->name);
    }
    free(list);
}

static void check_same(const vp_model_config *a, const vp_model_config *b)
{
    const vp_vision_config *va = &a->vision, *vb = &b->vision;
    const vp_llm_config *la = &a->llm, *lb = &b->llm;
    FUZZ_REQUIRE(va->hidden == vb->hidden && va->layers == vb->layers && va->heads == vb->heads &&
                     va->intermediate == vb->intermediate && va->patch == vb->patch &&
                     va->image_size == vb->image_size && va->channels == vb->channels &&
                     va->norm == vb->norm && va->qkv_bias == vb->qkv_bias &&
                     va->qk_norm == vb->qk_norm,
                 "vision_config changed in the round trip");
    FUZZ_REQUIRE(close7(va->norm_eps, vb->norm_eps), "layer_norm_eps %.9g became %.9g",
                 (double)va->norm_eps, (double)vb->norm_eps);
    FUZZ_REQUIRE(la->hidden == lb->hidden && la->layers == lb->layers && la->heads == lb->heads &&
                     la->kv_heads == lb->kv_heads && la->head_dim == lb->head_dim &&
                     la->intermediate == lb->intermediate && la->vocab == lb->vocab &&
                     la->max_pos == lb->max_pos && la->rope_dynamic == lb->rope_dynamic,
                 "llm_config changed in the round trip");
    FUZZ_REQUIRE(close7(la->rms_eps, lb->rms_eps), "rms_norm_eps %.9g became %.9g",
                 (double)la->rms_eps, (double)lb->rms_eps);
    FUZZ_REQUIRE(close7(la->rope_theta, lb->rope_theta), "rope_theta %.17g became %.17g",
                 la->rope_theta, lb->rope_theta);
    FUZZ_REQUIRE(close7(la->rope_factor, lb->rope_factor), "rope factor %.17g became %.17g",
                 la->rope_factor, lb->rope_factor);
    FUZZ_REQUIRE(a->downsample_ratio == b->downsample_ratio &&
                     a->select_layer == b->select_layer &&
                     a->min_dynamic_patch == b->min_dynamic_patch &&
                     a->max_dynamic_patch == b->max_dynamic_patch &&
                     a->use_thumbnail == b->use_thumbnail &&
                     a->num_image_token == b->num_image_token,
                 "top-level settings changed in the round trip");
    FUZZ_REQUIRE((!a->system_message && !b->system_message) ||
                     (a->system_message && b->system_message &&
                      !strcmp(a->system_message, b->system_message)),
                 "system_message changed in the round trip");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    vp_model_config cfg;
    vp_error err = {0};
    if (vp_model_config_parse((const char *)data, size, &cfg, &err)) {
        FUZZ_REQUIRE_ERROR(err);
        FUZZ_REQUIRE(err.kind == VP_ERR_MODEL || err.kind == VP_ERR_NOMEM,
                     "unexpected error kind %d: %s", (int)err.kind, err.message);
        FUZZ_REQUIRE(cfg.system_message == NULL, "a failed parse kept its system_message");
        return 0;
    }
    check_valid(&cfg);
    check_layout(&cfg);

    char *text = vp_model_config_to_json(&cfg, "bfloat16");
    FUZZ_REQUIRE(text != NULL, "vp_model_config_to_json failed on a parsed config");
    vp_model_config again;
    vp_error err2 = {0};
    FUZZ_REQUIRE(vp_model_config_parse(text, strlen(text), &again, &err2) == 0,
                 "the written config.json is refused: %s", err2.message);
    check_same(&cfg, &again);
    vp_model_config_free(&again);
    free(text);
    vp_model_config_free(&cfg);
    return 0;
}
