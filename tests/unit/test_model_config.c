/* config.json parsing: the released InternVL2.5-8B / VisualPRM-8B layout parses to the
 * numbers of MODEL.md, and every unsupported or malformed setting is refused with a
 * message naming the field. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/model/config.h"
#include "engine/model/mkmodel.h"
#include "engine/util/file.h"
#include "tests/unit/check.h"

/* The released file's structure and values (InternVL2_5-8B config.json). */
static const char *BASE =
    "{\"_commit_hash\": null, \"architectures\": [\"InternVLChatModel\"],"
    " \"auto_map\": {\"AutoConfig\": \"configuration_internvl_chat.InternVLChatConfig\","
    "   \"AutoModel\": \"modeling_internvl_chat.InternVLChatModel\","
    "   \"AutoModelForCausalLM\": \"modeling_internvl_chat.InternVLChatModel\"},"
    " \"downsample_ratio\": 0.5, \"dynamic_image_size\": true, \"force_image_size\": 448,"
    " \"llm_config\": {\"_name_or_path\": \"internlm/internlm2_5-7b-chat\", \"add_cross_attention\": false,"
    "   \"architectures\": [\"InternLM2ForCausalLM\"], \"attn_implementation\": \"flash_attention_2\","
    "   \"bias\": false, \"bos_token_id\": 1, \"eos_token_id\": 2, \"hidden_act\": \"silu\","
    "   \"hidden_size\": 4096, \"initializer_range\": 0.02, \"intermediate_size\": 14336,"
    "   \"max_position_embeddings\": 32768, \"model_type\": \"internlm2\", \"num_attention_heads\": 32,"
    "   \"num_hidden_layers\": 32, \"num_key_value_heads\": 8, \"pad_token_id\": 2,"
    "   \"rms_norm_eps\": 1e-05, \"rope_scaling\": {\"factor\": 2.0, \"type\": \"dynamic\"},"
    "   \"rope_theta\": 1000000, \"tie_word_embeddings\": false, \"torch_dtype\": \"bfloat16\","
    "   \"transformers_version\": \"4.37.2\", \"use_bfloat16\": true, \"use_cache\": true,"
    "   \"vocab_size\": 92553},"
    " \"max_dynamic_patch\": 12, \"min_dynamic_patch\": 1, \"model_type\": \"internvl_chat\","
    " \"ps_version\": \"v2\", \"select_layer\": -1, \"template\": \"internvl2_5\","
    " \"torch_dtype\": \"bfloat16\", \"use_backbone_lora\": 0, \"use_llm_lora\": 0,"
    " \"use_thumbnail\": true,"
    " \"vision_config\": {\"architectures\": [\"InternVisionModel\"], \"attention_dropout\": 0.0,"
    "   \"drop_path_rate\": 0.0, \"dropout\": 0.0, \"hidden_act\": \"gelu\", \"hidden_size\": 1024,"
    "   \"image_size\": 448, \"initializer_factor\": 1.0, \"initializer_range\": 0.02,"
    "   \"intermediate_size\": 4096, \"layer_norm_eps\": 1e-06, \"model_type\": \"intern_vit_6b\","
    "   \"norm_type\": \"layer_norm\", \"num_attention_heads\": 16, \"num_channels\": 3,"
    "   \"num_hidden_layers\": 24, \"patch_size\": 14, \"qk_normalization\": false,"
    "   \"qkv_bias\": true, \"torch_dtype\": \"bfloat16\", \"use_flash_attn\": true}}";

/* BASE with the value at a dotted path replaced by value_json (NULL: key removed). */
static char *mutate(const char *path, const char *value_json)
{
    json_t *root = json_loads(BASE, 0, NULL);
    json_t *obj = root;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    char *key = buf, *dot;
    while ((dot = strchr(key, '.'))) {
        *dot = 0;
        obj = json_object_get(obj, key);
        key = dot + 1;
    }
    if (value_json)
        json_object_set_new(obj, key, json_loads(value_json, JSON_DECODE_ANY, NULL));
    else
        json_object_del(obj, key);
    char *text = json_dumps(root, 0);
    json_decref(root);
    return text;
}

static int parse_text(const char *text, vp_model_config *cfg, vp_error *err)
{
    return vp_model_config_parse(text, strlen(text), cfg, err);
}

/* The mutated config must be refused, with every want string in the message. */
static void refuse(const char *path, const char *value_json, const char *want1, const char *want2)
{
    char *text = mutate(path, value_json);
    vp_model_config cfg;
    vp_error err = {0};
    int rc = parse_text(text, &cfg, &err);
    CHECK_MSG(rc == -1, "%s = %s was accepted", path, value_json ? value_json : "(removed)");
    if (rc == 0)
        vp_model_config_free(&cfg);
    CHECK_MSG(err.kind == VP_ERR_MODEL, "%s: kind %d", path, err.kind);
    CHECK_MSG(strstr(err.message, want1), "%s: message '%s' lacks '%s'", path, err.message, want1);
    if (want2)
        CHECK_MSG(strstr(err.message, want2), "%s: message '%s' lacks '%s'", path, err.message,
                  want2);
    free(text);
}

static void accept(const char *path, const char *value_json, vp_model_config *cfg)
{
    char *text = mutate(path, value_json);
    vp_error err = {0};
    int rc = parse_text(text, cfg, &err);
    CHECK_MSG(rc == 0, "%s = %s refused: %s", path, value_json ? value_json : "(removed)",
              err.message);
    free(text);
}

static void test_released(void)
{
    vp_model_config c;
    vp_error err = {0};
    int rc = parse_text(BASE, &c, &err);
    CHECK_MSG(rc == 0, "released config refused: %s", err.message);
    if (rc)
        return;
    CHECK(c.vision.hidden == 1024 && c.vision.layers == 24 && c.vision.heads == 16);
    CHECK(c.vision.intermediate == 4096 && c.vision.patch == 14 && c.vision.image_size == 448);
    CHECK(c.vision.channels == 3 && c.vision.norm == VP_NORM_LAYER);
    CHECK(c.vision.norm_eps == 1e-6f && c.vision.qkv_bias && !c.vision.qk_norm);
    CHECK(c.llm.hidden == 4096 && c.llm.layers == 32 && c.llm.heads == 32 && c.llm.kv_heads == 8);
    CHECK(c.llm.head_dim == 128 && c.llm.intermediate == 14336 && c.llm.vocab == 92553);
    CHECK(c.llm.rms_eps == 1e-5f && c.llm.rope_theta == 1e6);
    CHECK(c.llm.rope_dynamic && c.llm.rope_factor == 2.0 && c.llm.max_pos == 32768);
    CHECK(c.downsample_ratio == 0.5 && c.select_layer == -1);
    CHECK(c.min_dynamic_patch == 1 && c.max_dynamic_patch == 12 && c.use_thumbnail);
    CHECK(c.num_image_token == 256);
    CHECK(c.system_message == NULL);
    CHECK(c.name[0] == 0); /* no _name_or_path: the loader uses the folder name */
    vp_model_config_free(&c);
}

static void test_refusals(void)
{
    refuse("architectures", "[\"LlavaForConditionalGeneration\"]", "architectures",
           "LlavaForConditionalGeneration");
    refuse("architectures", NULL, "architectures", "missing");
    refuse("architectures", "\"InternVLChatModel\"", "architectures", NULL);
    refuse("vision_config", NULL, "vision_config", "missing");
    refuse("llm_config", "[]", "llm_config", "object");
    refuse("ps_version", "\"v1\"", "ps_version", "v1");
    refuse("select_layer", "-4", "select_layer", "-4");
    refuse("template", "\"internlm2-chat\"", "template", "internlm2-chat");
    refuse("template", NULL, "template", "missing");
    refuse("downsample_ratio", "0.25", "downsample_ratio", "0.25");
    refuse("force_image_size", "224", "force_image_size", "224");
    refuse("dynamic_image_size", "false", "dynamic_image_size", NULL);
    refuse("pad2square", "true", "pad2square", NULL);
    refuse("use_llm_lora", "16", "use_llm_lora", NULL);
    refuse("use_backbone_lora", "8", "use_backbone_lora", NULL);
    refuse("min_dynamic_patch", "13", "min_dynamic_patch", "max_dynamic_patch");
    refuse("max_dynamic_patch", "0", "max_dynamic_patch", NULL);
    refuse("use_thumbnail", "1", "use_thumbnail", "true or false");
    refuse("system_message", "5", "system_message", NULL);
    refuse("tie_word_embeddings", "true", "tie_word_embeddings", NULL);
    /* vision */
    refuse("vision_config.architectures", "[\"SiglipVisionModel\"]", "vision_config.architectures",
           "SiglipVisionModel");
    refuse("vision_config.hidden_act", "\"gelu_pytorch_tanh\"", "vision_config.hidden_act",
           "gelu_pytorch_tanh");
    refuse("vision_config.norm_type", "\"batch_norm\"", "vision_config.norm_type", "batch_norm");
    refuse("vision_config.num_channels", "4", "vision_config.num_channels", NULL);
    refuse("vision_config.hidden_size", "\"1024\"", "vision_config.hidden_size", "integer");
    refuse("vision_config.hidden_size", "1024.0", "vision_config.hidden_size", "integer");
    refuse("vision_config.hidden_size", "-1", "vision_config.hidden_size", NULL);
    refuse("vision_config.num_attention_heads", "0", "vision_config.num_attention_heads", NULL);
    refuse("vision_config.num_attention_heads", "15", "vision_config.num_attention_heads",
           "hidden_size");
    refuse("vision_config.patch_size", "15", "vision_config.patch_size", "image_size");
    refuse("vision_config.patch_size", "64", "vision_config.image_size", "7x7"); /* odd grid */
    refuse("vision_config.layer_norm_eps", "0", "vision_config.layer_norm_eps", NULL);
    refuse("vision_config.layer_norm_eps", "\"1e-6\"", "vision_config.layer_norm_eps", "number");
    refuse("vision_config.qkv_bias", NULL, "vision_config.qkv_bias", "missing");
    refuse("vision_config.qk_normalization", "0", "vision_config.qk_normalization", NULL);
    refuse("vision_config.num_hidden_layers", NULL, "vision_config.num_hidden_layers", "missing");
    /* language model */
    refuse("llm_config.architectures", "[\"Qwen2ForCausalLM\"]", "llm_config.architectures",
           "Qwen2ForCausalLM");
    refuse("llm_config.model_type", "\"llama\"", "llm_config.model_type", "llama");
    refuse("llm_config.hidden_act", "\"gelu\"", "llm_config.hidden_act", "gelu");
    refuse("llm_config.bias", "true", "llm_config.bias", NULL);
    refuse("llm_config.bias", NULL, "llm_config.bias", "missing");
    refuse("llm_config.tie_word_embeddings", "true", "llm_config.tie_word_embeddings", NULL);
    refuse("llm_config.num_attention_heads", "30", "llm_config.num_attention_heads",
           "hidden_size");
    refuse("llm_config.num_key_value_heads", "5", "llm_config.num_key_value_heads", NULL);
    refuse("llm_config.num_attention_heads", "4096", "llm_config.num_attention_heads",
           "head dimension of 1");
    /* even, but under what the backends compute (cpu_check_config: at least 4) */
    refuse("llm_config.num_attention_heads", "2048", "llm_config.num_attention_heads",
           "head dimension of 2: RoPE needs an even one of at least 4");
    refuse("llm_config.vocab_size", "0", "llm_config.vocab_size", NULL);
    refuse("llm_config.rms_norm_eps", "-1e-5", "llm_config.rms_norm_eps", NULL);
    refuse("llm_config.rope_theta", "0", "llm_config.rope_theta", NULL);
    refuse("llm_config.max_position_embeddings", "0", "llm_config.max_position_embeddings", NULL);
    refuse("llm_config.rope_scaling", "{\"type\": \"linear\", \"factor\": 2.0}",
           "llm_config.rope_scaling.type", "linear");
    refuse("llm_config.rope_scaling", "{\"rope_type\": \"yarn\", \"factor\": 4.0}",
           "llm_config.rope_scaling.rope_type", "yarn");
    refuse("llm_config.rope_scaling", "{\"type\": \"dynamic\", \"rope_type\": \"linear\", \"factor\": 2}",
           "llm_config.rope_scaling.rope_type", "contradicts");
    refuse("llm_config.rope_scaling", "{\"type\": \"dynamic\", \"factor\": 0.5}",
           "llm_config.rope_scaling.factor", NULL);
    refuse("llm_config.rope_scaling", "{\"type\": \"dynamic\"}", "llm_config.rope_scaling.factor",
           "missing");
    refuse("llm_config.rope_scaling", "{\"factor\": 2.0}", "llm_config.rope_scaling.type",
           "missing");
    refuse("llm_config.rope_scaling", "\"dynamic\"", "llm_config.rope_scaling", NULL);

    vp_model_config c;
    vp_error err = {0};
    CHECK(vp_model_config_parse("{\"a\": ", 6, &c, &err) == -1 && strstr(err.message, "not valid JSON"));
    CHECK(vp_model_config_parse("[1, 2]", 6, &c, &err) == -1 && strstr(err.message, "JSON object"));
    const char *dup = "{\"architectures\": [\"InternVLChatModel\"], \"architectures\": []}";
    CHECK(vp_model_config_parse(dup, strlen(dup), &c, &err) == -1 &&
          strstr(err.message, "duplicate") && strstr(err.message, "architectures"));
}

static void test_accepted_variants(void)
{
    vp_model_config c;
    accept("llm_config.rope_scaling", "null", &c);
    CHECK(!c.llm.rope_dynamic && c.llm.rope_factor == 1.0);
    vp_model_config_free(&c);
    accept("llm_config.rope_scaling", NULL, &c);
    CHECK(!c.llm.rope_dynamic);
    vp_model_config_free(&c);
    /* newer transformers write both spellings */
    accept("llm_config.rope_scaling", "{\"factor\": 3.0, \"rope_type\": \"dynamic\", \"type\": \"dynamic\"}",
           &c);
    CHECK(c.llm.rope_dynamic && c.llm.rope_factor == 3.0);
    vp_model_config_free(&c);
    accept("llm_config.num_key_value_heads", NULL, &c); /* defaults to the query heads */
    CHECK(c.llm.kv_heads == 32);
    vp_model_config_free(&c);
    accept("vision_config.norm_type", "\"rms_norm\"", &c);
    CHECK(c.vision.norm == VP_NORM_RMS);
    vp_model_config_free(&c);
    accept("vision_config.qk_normalization", "true", &c);
    CHECK(c.vision.qk_norm);
    vp_model_config_free(&c);
    accept("force_image_size", "null", &c);
    vp_model_config_free(&c);
    accept("system_message", "null", &c);
    CHECK(c.system_message == NULL);
    vp_model_config_free(&c);
    accept("system_message", "\"Judge each step.\"", &c);
    CHECK(c.system_message && !strcmp(c.system_message, "Judge each step."));
    vp_model_config_free(&c);
    accept("_name_or_path", "\"OpenGVLab/VisualPRM-8B-v1.1\"", &c);
    CHECK(!strcmp(c.name, "OpenGVLab/VisualPRM-8B-v1.1"));
    vp_model_config_free(&c);
    accept("_name_or_path", "\"/mnt/petrelfs/share/VisualPRM-8B/\"", &c);
    CHECK_MSG(!strcmp(c.name, "VisualPRM-8B"), "name '%s'", c.name);
    vp_model_config_free(&c);
    accept("vision_config.patch_size", "32", &c); /* 14x14 grid: 49 tokens per tile */
    CHECK(c.num_image_token == 49);
    vp_model_config_free(&c);
}

/* vp_model_config_to_json writes what the parser reads back unchanged. */
static void test_write_round_trip(void)
{
    const char *scales[] = {"tiny", "8b"};
    for (int s = 0; s < 2; s++) {
        vp_model_config a, b;
        vp_error err = {0};
        CHECK(vp_mkmodel_preset(scales[s], &a, &err) == 0);
        a.vision.norm = s ? VP_NORM_LAYER : VP_NORM_RMS;
        a.vision.qk_norm = s == 0;
        a.llm.rope_dynamic = s == 1;
        a.llm.rope_factor = s == 1 ? 2.0 : 1.0;
        a.system_message = s ? "custom \"system\"\nprompt" : NULL;
        char *json = vp_model_config_to_json(&a, "bfloat16");
        CHECK(json != NULL);
        int rc = vp_model_config_parse(json, strlen(json), &b, &err);
        CHECK_MSG(rc == 0, "%s: written config refused: %s", scales[s], err.message);
        if (rc == 0) {
            CHECK(!memcmp(&a.vision, &b.vision, sizeof a.vision));
            CHECK(!memcmp(&a.llm, &b.llm, sizeof a.llm));
            CHECK(a.num_image_token == b.num_image_token && b.num_image_token == 256);
            CHECK(a.min_dynamic_patch == b.min_dynamic_patch &&
                  a.max_dynamic_patch == b.max_dynamic_patch && a.use_thumbnail == b.use_thumbnail);
            CHECK(s ? (b.system_message && !strcmp(b.system_message, a.system_message))
                    : b.system_message == NULL);
            vp_model_config_free(&b);
        }
        CHECK(json && strstr(json, "\"layer_norm_eps\": 1e-") && !strstr(json, "9999"));
        free(json);
    }
}

static void test_load_from_folder(void)
{
    char dir[] = "/tmp/vp_cfg_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char sub[256], path[300];
    snprintf(sub, sizeof sub, "%s/My-PRM", dir);
    mkdir(sub, 0755);
    snprintf(path, sizeof path, "%s/config.json", sub);
    vp_error err = {0};
    CHECK(vp_write_file(path, BASE, strlen(BASE), &err) == 0);
    vp_model_config c;
    char with_slash[300];
    snprintf(with_slash, sizeof with_slash, "%s/", sub);
    CHECK_MSG(vp_model_config_load(with_slash, &c, &err) == 0, "%s", err.message);
    CHECK_MSG(!strcmp(c.name, "My-PRM"), "name '%s'", c.name);
    vp_model_config_free(&c);
    /* a broken file is reported with its path */
    CHECK(vp_write_file(path, "{", 1, &err) == 0);
    CHECK(vp_model_config_load(sub, &c, &err) == -1 && strstr(err.message, "config.json"));
    unlink(path);
    CHECK(vp_model_config_load(sub, &c, &err) == -1 && strstr(err.message, "config.json"));
    rmdir(sub);
    /* a folder name that is not UTF-8 gives a name the API can put in JSON */
    snprintf(sub, sizeof sub, "%s/PRM-\xff\xc3(\xc3\xa9", dir);
    mkdir(sub, 0755);
    snprintf(path, sizeof path, "%s/config.json", sub);
    CHECK(vp_write_file(path, BASE, strlen(BASE), &err) == 0);
    CHECK_MSG(vp_model_config_load(sub, &c, &err) == 0, "%s", err.message);
    CHECK_MSG(!strcmp(c.name, "PRM-?" "?(\xc3\xa9"), "name '%s'", c.name);
    vp_model_config_free(&c);
    unlink(path);
    rmdir(sub);
    rmdir(dir);
}

int main(void)
{
    test_released();
    test_refusals();
    test_accepted_variants();
    test_write_round_trip();
    test_load_from_folder();
    return check_summary("test_model_config");
}
