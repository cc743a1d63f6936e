/* vp_model_config -> config.json, shaped like the released InternVL2.5-8B file (sorted
 * keys, two-space indent, as transformers writes it), so generated models exercise the
 * same parser path as the real checkpoint. */
#include <jansson.h>
#include <math.h>

#include "engine/model/config.h"
#include "engine/util/json_alloc.h"

static json_t *number(double x)
{
    /* integral values print as integers, as in the released file (rope_theta 1000000) */
    if (x == floor(x) && fabs(x) < 9e15)
        return json_integer((json_int_t)x);
    return json_real(x);
}

static json_t *vision_json(const vp_vision_config *v, const char *dtype)
{
    return json_pack("{s:[s], s:f, s:f, s:f, s:s, s:i, s:i, s:f, s:f, s:i, s:o, s:s, s:s, s:i,"
                     " s:i, s:i, s:i, s:b, s:b, s:s, s:b, s:b}",
                     "architectures", "InternVisionModel", "attention_dropout", 0.0,
                     "drop_path_rate", 0.0, "dropout", 0.0, "hidden_act", "gelu", "hidden_size",
                     v->hidden, "image_size", v->image_size, "initializer_factor", 1.0,
                     "initializer_range", 0.02, "intermediate_size", v->intermediate,
                     "layer_norm_eps", json_real(v->norm_eps), "model_type", "intern_vit_6b",
                     "norm_type", v->norm == VP_NORM_LAYER ? "layer_norm" : "rms_norm",
                     "num_attention_heads", v->heads, "num_channels", v->channels,
                     "num_hidden_layers", v->layers, "patch_size", v->patch, "qk_normalization",
                     v->qk_norm, "qkv_bias", v->qkv_bias, "torch_dtype", dtype, "use_bfloat16",
                     1, "use_flash_attn", 1);
}

static json_t *llm_json(const vp_llm_config *l, const char *dtype)
{
    json_t *rope = l->rope_dynamic
                       ? json_pack("{s:o, s:s}", "factor", json_real(l->rope_factor), "type",
                                   "dynamic")
                       : json_null();
    json_t *auto_map = json_pack(
        "{s:s, s:s, s:s}", "AutoConfig", "configuration_internlm2.InternLM2Config", "AutoModel",
        "modeling_internlm2.InternLM2ForCausalLM", "AutoModelForCausalLM",
        "modeling_internlm2.InternLM2ForCausalLM");
    return json_pack("{s:s, s:[s], s:s, s:o, s:b, s:i, s:i, s:s, s:i, s:f, s:i, s:i, s:s, s:i,"
                     " s:i, s:i, s:i, s:o, s:o, s:o, s:b, s:s, s:b, s:b, s:i}",
                     "_name_or_path", "internlm/internlm2_5-7b-chat", "architectures",
                     "InternLM2ForCausalLM", "attn_implementation", "eager", "auto_map", auto_map,
                     "bias", 0, "bos_token_id", 1, "eos_token_id", 2, "hidden_act", "silu",
                     "hidden_size", l->hidden, "initializer_range", 0.02, "intermediate_size",
                     l->intermediate, "max_position_embeddings", l->max_pos, "model_type",
                     "internlm2", "num_attention_heads", l->heads, "num_hidden_layers", l->layers,
                     "num_key_value_heads", l->kv_heads, "pad_token_id", 2, "rms_norm_eps",
                     json_real(l->rms_eps), "rope_scaling", rope, "rope_theta",
                     number(l->rope_theta), "tie_word_embeddings", 0, "torch_dtype", dtype,
                     "use_bfloat16", 1, "use_cache", 1, "vocab_size", l->vocab);
}

char *vp_model_config_to_json(const vp_model_config *cfg, const char *torch_dtype)
{
    json_t *auto_map = json_pack(
        "{s:s, s:s, s:s}", "AutoConfig", "configuration_internvl_chat.InternVLChatConfig",
        "AutoModel", "modeling_internvl_chat.InternVLChatModel", "AutoModelForCausalLM",
        "modeling_internvl_chat.InternVLChatModel");
    json_t *root = json_pack(
        "{s:n, s:[s], s:o, s:f, s:b, s:i, s:o, s:i, s:i, s:s, s:s, s:i, s:s, s:s, s:n, s:i, s:i,"
        " s:b, s:o}",
        "_commit_hash", "architectures", "InternVLChatModel", "auto_map", auto_map,
        "downsample_ratio", cfg->downsample_ratio, "dynamic_image_size", 1, "force_image_size",
        cfg->vision.image_size, "llm_config", llm_json(&cfg->llm, torch_dtype),
        "max_dynamic_patch", cfg->max_dynamic_patch, "min_dynamic_patch", cfg->min_dynamic_patch,
        "model_type", "internvl_chat", "ps_version", "v2", "select_layer", cfg->select_layer,
        "template", "internvl2_5", "torch_dtype", torch_dtype, "transformers_version",
        "use_backbone_lora", 0, "use_llm_lora", 0, "use_thumbnail", cfg->use_thumbnail,
        "vision_config", vision_json(&cfg->vision, torch_dtype));
    if (!root)
        return NULL;
    if (cfg->system_message &&
        json_object_set_new(root, "system_message", json_string(cfg->system_message))) {
        json_decref(root);
        return NULL;
    }
    /* 7 significant digits: the float eps values print as 1e-06, not 9.99999997e-07 */
    char *text = vp_json_dump(root, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_REAL_PRECISION(7));
    json_decref(root);
    return text;
}
