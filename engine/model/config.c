/* config.json (InternVLChatConfig) -> vp_model_config. Every value the engine depends on
 * is type- and range-checked; settings the engine does not implement are refused with a
 * message that names the field (a silently different model is worse than none). Keys the
 * engine does not use (auto_map, torch_dtype, dropout rates...) are ignored. */
#include "engine/model/config.h"

#include "engine/image/image.h"
#include "engine/util/utf8.h"

#include <float.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/util/file.h"
#include "engine/util/json_alloc.h"

#define CONFIG_MAX_BYTES (4u << 20)

/* One JSON object being read, with its path for messages ("llm_config"). */
typedef struct section {
    json_t *obj;
    const char *path;
} section;

static int fail_field(vp_error *err, const section *s, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail_field(vp_error *err, const section *s, const char *key, const char *fmt, ...)
{
    char field[128], msg[384];
    if (s->path[0])
        snprintf(field, sizeof field, "%s.%s", s->path, key);
    else
        snprintf(field, sizeof field, "%s", key);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return vp_fail(err, VP_ERR_MODEL, field, "config.json: %s %s", field, msg);
}

/* The value of key, or NULL when absent or JSON null. */
static json_t *get(const section *s, const char *key)
{
    json_t *v = json_object_get(s->obj, key);
    return json_is_null(v) ? NULL : v;
}

static int read_int(const section *s, const char *key, bool required, int def, int lo, int hi,
                    int *out, vp_error *err)
{
    json_t *v = get(s, key);
    if (!v) {
        if (required)
            return fail_field(err, s, key, "is missing");
        *out = def;
        return 0;
    }
    if (!json_is_integer(v))
        return fail_field(err, s, key, "must be an integer");
    json_int_t x = json_integer_value(v);
    if (x < lo || x > hi)
        return fail_field(err, s, key, "is %lld, outside the supported range %d..%d", (long long)x,
                          lo, hi);
    *out = (int)x;
    return 0;
}

/* A finite number with lo < x <= hi (lo_open) or lo <= x <= hi. */
static int read_num(const section *s, const char *key, bool required, double def, double lo,
                    bool lo_open, double hi, double *out, vp_error *err)
{
    json_t *v = get(s, key);
    if (!v) {
        if (required)
            return fail_field(err, s, key, "is missing");
        *out = def;
        return 0;
    }
    if (!json_is_number(v))
        return fail_field(err, s, key, "must be a number");
    double x = json_number_value(v);
    if (!isfinite(x) || x > hi || (lo_open ? x <= lo : x < lo))
        return lo_open ? fail_field(err, s, key, "is %g: must be > %g and <= %g", x, lo, hi)
                       : fail_field(err, s, key, "is %g, outside the supported range %g..%g", x,
                                    lo, hi);
    *out = x;
    return 0;
}

/* A norm epsilon: > 0 and <= 1, and a normal float32, the type it is kept in (1e-300
 * passes "> 0" as a double but would become 0, or a subnormal, once stored). */
static int read_eps(const section *s, const char *key, float *out, vp_error *err)
{
    double x;
    if (read_num(s, key, true, 0, 0.0, true, 1.0, &x, err))
        return -1;
    if (x < FLT_MIN)
        return fail_field(err, s, key, "is %g: below %g, the smallest normal float32 (it would "
                          "round to 0 or lose precision)", x, (double)FLT_MIN);
    *out = (float)x;
    return 0;
}

static int read_bool(const section *s, const char *key, bool required, bool def, bool *out,
                     vp_error *err)
{
    json_t *v = get(s, key);
    if (!v) {
        if (required)
            return fail_field(err, s, key, "is missing");
        *out = def;
        return 0;
    }
    if (!json_is_boolean(v))
        return fail_field(err, s, key, "must be true or false");
    *out = json_is_true(v);
    return 0;
}

/* A string field; *out is NULL when absent and not required. */
static int read_str(const section *s, const char *key, bool required, const char **out,
                    vp_error *err)
{
    json_t *v = get(s, key);
    *out = NULL;
    if (!v)
        return required ? fail_field(err, s, key, "is missing") : 0;
    if (!json_is_string(v))
        return fail_field(err, s, key, "must be a string");
    *out = json_string_value(v);
    return 0;
}

/* A string field that must be absent (def applies) or equal one of the accepted values. */
static int expect_str(const section *s, const char *key, bool required, const char *want,
                      const char *why, vp_error *err)
{
    const char *v;
    if (read_str(s, key, required, &v, err))
        return -1;
    if (v && strcmp(v, want))
        return fail_field(err, s, key, "is \"%s\": only \"%s\" is supported%s", v, want, why);
    return 0;
}

/* "architectures": a one-element list naming want. */
static int expect_arch(const section *s, bool required, const char *want, vp_error *err)
{
    json_t *v = get(s, "architectures");
    if (!v)
        return required ? fail_field(err, s, "architectures", "is missing") : 0;
    if (!json_is_array(v) || json_array_size(v) != 1 || !json_is_string(json_array_get(v, 0)))
        return fail_field(err, s, "architectures", "must be a list of one name (\"%s\")", want);
    const char *got = json_string_value(json_array_get(v, 0));
    if (strcmp(got, want))
        return fail_field(err, s, "architectures", "is [\"%s\"]: only \"%s\" is supported", got,
                          want);
    return 0;
}

static int sub_section(const section *parent, const char *key, section *out, vp_error *err)
{
    json_t *v = get(parent, key);
    if (!v)
        return fail_field(err, parent, key, "is missing");
    if (!json_is_object(v))
        return fail_field(err, parent, key, "must be an object");
    out->obj = v;
    out->path = key;
    return 0;
}

static int parse_vision(const section *s, vp_vision_config *v, vp_error *err)
{
    const char *norm;
    if (expect_arch(s, false, "InternVisionModel", err) ||
        expect_str(s, "model_type", false, "intern_vit_6b", "", err) ||
        read_int(s, "hidden_size", true, 0, 1, 65536, &v->hidden, err) ||
        read_int(s, "num_hidden_layers", true, 0, 1, 1024, &v->layers, err) ||
        read_int(s, "num_attention_heads", true, 0, 1, 4096, &v->heads, err) ||
        read_int(s, "intermediate_size", true, 0, 1, 1 << 20, &v->intermediate, err) ||
        read_int(s, "patch_size", true, 0, 1, 1024, &v->patch, err) ||
        read_int(s, "image_size", true, 0, 1, 8192, &v->image_size, err) ||
        read_int(s, "num_channels", false, 3, 1, 64, &v->channels, err) ||
        read_str(s, "norm_type", true, &norm, err) ||
        read_eps(s, "layer_norm_eps", &v->norm_eps, err) ||
        read_bool(s, "qkv_bias", true, false, &v->qkv_bias, err) ||
        read_bool(s, "qk_normalization", true, false, &v->qk_norm, err) ||
        expect_str(s, "hidden_act", false, "gelu", " (exact GELU)", err))
        return -1;
    if (!strcmp(norm, "layer_norm"))
        v->norm = VP_NORM_LAYER;
    else if (!strcmp(norm, "rms_norm"))
        v->norm = VP_NORM_RMS;
    else
        return fail_field(err, s, "norm_type", "is \"%s\": expected \"layer_norm\" or \"rms_norm\"",
                          norm);
    if (v->channels != 3)
        return fail_field(err, s, "num_channels", "is %d: only 3 (RGB) is supported", v->channels);
    if (v->hidden % v->heads)
        return fail_field(err, s, "num_attention_heads",
                          "(%d) does not divide hidden_size (%d)", v->heads, v->hidden);
    if (v->image_size % v->patch)
        return fail_field(err, s, "patch_size", "(%d) does not divide image_size (%d)", v->patch,
                          v->image_size);
    return 0;
}

static int parse_rope_scaling(const section *s, vp_llm_config *l, vp_error *err)
{
    json_t *rs = get(s, "rope_scaling");
    l->rope_dynamic = false;
    l->rope_factor = 1.0;
    if (!rs)
        return 0;
    if (!json_is_object(rs))
        return fail_field(err, s, "rope_scaling", "must be null or an object");
    section r = {rs, "llm_config.rope_scaling"};
    const char *type, *rope_type;
    if (read_str(&r, "type", false, &type, err) || read_str(&r, "rope_type", false, &rope_type, err))
        return -1;
    if (!type && !rope_type)
        return fail_field(err, &r, "type", "is missing");
    if (type && rope_type && strcmp(type, rope_type))
        return fail_field(err, &r, "rope_type", "(\"%s\") contradicts type (\"%s\")", rope_type,
                          type);
    const char *t = type ? type : rope_type;
    if (strcmp(t, "dynamic"))
        return fail_field(err, &r, type ? "type" : "rope_type",
                          "is \"%s\": only \"dynamic\" (NTK) scaling or none is supported", t);
    if (read_num(&r, "factor", true, 0, 1.0, false, 1e6, &l->rope_factor, err))
        return -1;
    l->rope_dynamic = true;
    return 0;
}

static int parse_llm(const section *s, vp_llm_config *l, vp_error *err)
{
    const char *arch_type;
    if (expect_arch(s, false, "InternLM2ForCausalLM", err) ||
        expect_str(s, "model_type", false, "internlm2", "", err) ||
        read_str(s, "model_type", false, &arch_type, err))
        return -1;
    if (!get(s, "architectures") && !arch_type)
        return fail_field(err, s, "architectures",
                          "is missing (and no model_type): cannot tell the LLM is InternLM2");
    bool bias, tie;
    if (read_int(s, "hidden_size", true, 0, 1, 65536, &l->hidden, err) ||
        read_int(s, "num_hidden_layers", true, 0, 1, 1024, &l->layers, err) ||
        read_int(s, "num_attention_heads", true, 0, 1, 4096, &l->heads, err) ||
        read_int(s, "num_key_value_heads", false, l->heads, 1, 4096, &l->kv_heads, err) ||
        read_int(s, "intermediate_size", true, 0, 1, 1 << 20, &l->intermediate, err) ||
        read_int(s, "vocab_size", true, 0, 1, 1 << 24, &l->vocab, err) ||
        read_eps(s, "rms_norm_eps", &l->rms_eps, err) ||
        read_num(s, "rope_theta", true, 0, 1.0, false, 1e12, &l->rope_theta, err) ||
        parse_rope_scaling(s, l, err) ||
        read_int(s, "max_position_embeddings", true, 0, 1, 1 << 24, &l->max_pos, err) ||
        read_bool(s, "bias", true, false, &bias, err) ||
        read_bool(s, "tie_word_embeddings", false, false, &tie, err) ||
        expect_str(s, "hidden_act", false, "silu", " (SiLU-gated MLP)", err))
        return -1;
    if (bias)
        return fail_field(err, s, "bias", "is true: attention biases are not supported");
    if (tie)
        return fail_field(err, s, "tie_word_embeddings",
                          "is true: a tied LM head is not supported (output.weight must exist)");
    if (l->hidden % l->heads)
        return fail_field(err, s, "num_attention_heads", "(%d) does not divide hidden_size (%d)",
                          l->heads, l->hidden);
    if (l->heads % l->kv_heads)
        return fail_field(err, s, "num_key_value_heads",
                          "(%d) does not divide num_attention_heads (%d)", l->kv_heads, l->heads);
    l->head_dim = l->hidden / l->heads;
    if (l->head_dim % 2 || l->head_dim < 4) /* as the backends (cpu_check_config) */
        return fail_field(err, s, "num_attention_heads",
                          "gives a head dimension of %d: RoPE needs an even one of at least 4",
                          l->head_dim);
    return 0;
}

/* src[0..n) into dst[cap]; a name too long is cut before the character that does not
 * fit, never inside it, and bytes that are not UTF-8 (a folder's name can be any bytes)
 * become '?': the API reports the name in JSON, which must stay valid UTF-8. */
static void copy_name(char *dst, size_t cap, const char *src, size_t n)
{
    if (n >= cap) {
        n = cap - 1;
        while (n > 0 && ((unsigned char)src[n] & 0xC0) == 0x80) /* inside a character */
            n--;
    }
    memcpy(dst, src, n);
    dst[n] = 0;
    size_t bad;
    while (!vp_utf8_valid(dst, n, &bad))
        dst[bad] = '?';
}

/* The last component of a path ("/a/b/" -> "b"). */
static void base_name(char *dst, size_t cap, const char *src)
{
    size_t n = strlen(src);
    while (n > 1 && src[n - 1] == '/')
        n--;
    size_t start = n;
    while (start > 0 && src[start - 1] != '/')
        start--;
    copy_name(dst, cap, src + start, n - start);
}

/* "OpenGVLab/VisualPRM-8B" stays as is; a local path keeps only its last component. */
static void set_name(char *dst, size_t cap, const char *src)
{
    if (src[0] == '/' || src[0] == '.')
        base_name(dst, cap, src);
    else
        copy_name(dst, cap, src, strlen(src));
}

static int parse_root(const section *root, vp_model_config *cfg, vp_error *err)
{
    section vs, ls;
    if (expect_arch(root, true, "InternVLChatModel", err) ||
        expect_str(root, "model_type", false, "internvl_chat", "", err) ||
        sub_section(root, "vision_config", &vs, err) || parse_vision(&vs, &cfg->vision, err) ||
        sub_section(root, "llm_config", &ls, err) || parse_llm(&ls, &cfg->llm, err))
        return -1;

    const char *ps_version, *template, *name;
    int force_size;
    bool dynamic, pad2square, tie;
    if (read_num(root, "downsample_ratio", true, 0, 0.0, true, 1.0, &cfg->downsample_ratio, err) ||
        read_str(root, "ps_version", true, &ps_version, err) ||
        read_int(root, "select_layer", true, 0, INT_MIN, INT_MAX, &cfg->select_layer, err) ||
        read_str(root, "template", true, &template, err) ||
        /* the tiler's bound: a larger value would fail every request instead of the load */
        read_int(root, "min_dynamic_patch", true, 0, 1, VP_TILING_MAX_NUM, &cfg->min_dynamic_patch,
                 err) ||
        read_int(root, "max_dynamic_patch", true, 0, 1, VP_TILING_MAX_NUM, &cfg->max_dynamic_patch,
                 err) ||
        read_bool(root, "use_thumbnail", true, false, &cfg->use_thumbnail, err) ||
        read_int(root, "force_image_size", false, cfg->vision.image_size, 1, 8192, &force_size,
                 err) ||
        read_bool(root, "dynamic_image_size", false, true, &dynamic, err) ||
        read_bool(root, "pad2square", false, false, &pad2square, err) ||
        read_bool(root, "tie_word_embeddings", false, false, &tie, err) ||
        read_str(root, "_name_or_path", false, &name, err))
        return -1;
    if (cfg->downsample_ratio != 0.5)
        return fail_field(err, root, "downsample_ratio", "is %g: only 0.5 is supported",
                          cfg->downsample_ratio);
    if (strcmp(ps_version, "v2"))
        return fail_field(err, root, "ps_version",
                          "is \"%s\": only \"v2\" pixel shuffle is supported (v1 transposes the "
                          "grid differently)",
                          ps_version);
    if (cfg->select_layer != -1)
        return fail_field(err, root, "select_layer",
                          "is %d: only -1 (the last vision layer) is supported", cfg->select_layer);
    if (strcmp(template, "internvl2_5"))
        return fail_field(err, root, "template", "is \"%s\": only \"internvl2_5\" is supported",
                          template);
    if (cfg->min_dynamic_patch > cfg->max_dynamic_patch)
        return fail_field(err, root, "min_dynamic_patch", "(%d) exceeds max_dynamic_patch (%d)",
                          cfg->min_dynamic_patch, cfg->max_dynamic_patch);
    if (force_size != cfg->vision.image_size)
        return fail_field(err, root, "force_image_size",
                          "(%d) differs from vision_config.image_size (%d): resizing the position "
                          "embeddings is not supported",
                          force_size, cfg->vision.image_size);
    if (!dynamic)
        return fail_field(err, root, "dynamic_image_size",
                          "is false: only dynamic tiling is supported");
    if (pad2square)
        return fail_field(err, root, "pad2square", "is true: padding to a square is not supported");
    if (tie)
        return fail_field(err, root, "tie_word_embeddings", "is true: not supported");
    static const char *const lora[] = {"use_backbone_lora", "use_llm_lora"};
    for (size_t i = 0; i < 2; i++) {
        json_t *v = get(root, lora[i]);
        if (v && !((json_is_integer(v) && json_integer_value(v) == 0) || json_is_false(v)))
            return fail_field(err, root, lora[i], "must be 0: LoRA adapters are not supported");
    }

    /* Pixel shuffle merges (1/ratio)^2 = 4 neighbouring patches into one token. */
    int grid = cfg->vision.image_size / cfg->vision.patch;
    if (grid % 2)
        return fail_field(err, &vs, "image_size",
                          "/ patch_size gives a %dx%d patch grid, not divisible by 1/downsample_ratio "
                          "(2)",
                          grid, grid);
    cfg->num_image_token = (grid / 2) * (grid / 2);

    json_t *sm = json_object_get(root->obj, "system_message");
    if (sm && !json_is_null(sm)) {
        if (!json_is_string(sm))
            return fail_field(err, root, "system_message", "must be a string or null");
        cfg->system_message = strdup(json_string_value(sm));
        if (!cfg->system_message)
            return vp_fail(err, VP_ERR_NOMEM, NULL, "out of memory");
    }
    if (name && name[0])
        set_name(cfg->name, sizeof cfg->name, name);
    return 0;
}

int vp_model_config_parse(const char *json, size_t len, vp_model_config *cfg, vp_error *err)
{
    memset(cfg, 0, sizeof *cfg);
    json_error_t je;
    json_t *root = vp_json_parse(json, len, JSON_REJECT_DUPLICATES, &je);
    if (!root && vp_json_oom(&je))
        return vp_fail(err, VP_ERR_NOMEM, NULL, "out of memory parsing config.json");
    if (!root)
        return vp_fail(err, VP_ERR_MODEL, NULL, "config.json is not valid JSON: %s (line %d, column %d)",
                       je.text, je.line, je.column);
    int rc = 0;
    if (!json_is_object(root)) {
        rc = vp_fail(err, VP_ERR_MODEL, NULL, "config.json must hold a JSON object");
    } else {
        section s = {root, ""};
        rc = parse_root(&s, cfg, err);
    }
    json_decref(root);
    if (rc)
        vp_model_config_free(cfg);
    return rc;
}

int vp_model_config_load(const char *dir, vp_model_config *cfg, vp_error *err)
{
    char path[4096];
    memset(cfg, 0, sizeof *cfg);
    if (vp_path_join(path, sizeof path, dir, "config.json"))
        return vp_fail(err, VP_ERR_MODEL, NULL, "model folder path too long: %s", dir);
    uint8_t *text;
    size_t len;
    if (vp_read_file(path, CONFIG_MAX_BYTES, &text, &len, err))
        return -1;
    int rc = vp_model_config_parse((const char *)text, len, cfg, err);
    free(text);
    if (rc) {
        vp_error_prefix(err, "%s", path);
        return -1;
    }
    if (!cfg->name[0]) {
        char *real = realpath(dir, NULL);
        base_name(cfg->name, sizeof cfg->name, real ? real : dir);
        if (!strcmp(cfg->name, "/") || !cfg->name[0])
            snprintf(cfg->name, sizeof cfg->name, "model");
        free(real);
    }
    return 0;
}

void vp_model_config_free(vp_model_config *cfg)
{
    free(cfg->system_message);
    cfg->system_message = NULL;
}
