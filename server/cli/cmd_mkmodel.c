/* vprm mkmodel: write a random-weight model folder (config.json, safetensors, tokenizer
 * files) in the published InternVL2.5 layout, deterministic for --seed. */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <time.h>

#include "engine/model/mkmodel.h"
#include "server/cli/commands.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: vprm mkmodel --out DIR [--scale tiny|8b] [--seed N] [--tokenizer DIR]\n"
            "                    [--dtype bf16|f16|f32] [--shards K] [--threads N] [--config-only]\n"
            "                    [--force]\n"
            "shape overrides (tests):\n"
            "  --vision-norm layer_norm|rms_norm  --qk-norm  --no-qkv-bias\n"
            "  --vision-hidden N --vision-layers N --vision-heads N --vision-mlp N --patch N\n"
            "  --image-size N\n"
            "  --llm-hidden N --llm-layers N --heads N --kv-heads N --llm-mlp N --max-pos N\n"
            "  --system-message TEXT\n"
            "defaults: --scale tiny --seed 1 --tokenizer engine/assets/tiny_tokenizer (from the\n"
            "current folder, else beside the binary: bin/../engine/...) --dtype bf16;\n"
            "one model.safetensors unless --shards K > 1 or the weights exceed 5 GB\n"
            "(then model-0000K-of-0000N.safetensors + model.safetensors.index.json).\n"
            "llm_config.vocab_size is the tokenizer's id count; the LM-head rows of \"+\" and \"-\"\n"
            "are scaled so that step scores spread (see engine/model/mkmodel_init.c).\n"
            "--config-only writes config.json and the tokenizer files, no weights: serve, score\n"
            "and bench with --backend cuda --random-weights SEED then draw the same weights on\n"
            "the GPU (the 8B shape without a 16 GB file).\n"
            "A folder holding config.json or safetensors that mkmodel did not write (no\n"
            ".vprm-mkmodel file: a real checkpoint) is refused unless --force.\n");
}

/* A whole decimal number in [lo, hi]. */
static int parse_long(const char *opt, const char *s, long long lo, long long hi, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "vprm mkmodel: %s needs a whole number in %lld..%lld, got '%s'\n", opt, lo,
                hi, s);
        return -1;
    }
    *out = v;
    return 0;
}

/* Integer options that override a field of the preset. */
typedef struct int_opt {
    const char *name;
    size_t offset; /* of the int inside vp_model_config */
} int_opt;

static const int_opt int_opts[] = {
    {"--vision-hidden", offsetof(vp_model_config, vision.hidden)},
    {"--vision-layers", offsetof(vp_model_config, vision.layers)},
    {"--vision-heads", offsetof(vp_model_config, vision.heads)},
    {"--vision-mlp", offsetof(vp_model_config, vision.intermediate)},
    {"--patch", offsetof(vp_model_config, vision.patch)},
    {"--image-size", offsetof(vp_model_config, vision.image_size)},
    {"--llm-hidden", offsetof(vp_model_config, llm.hidden)},
    {"--llm-layers", offsetof(vp_model_config, llm.layers)},
    {"--heads", offsetof(vp_model_config, llm.heads)},
    {"--kv-heads", offsetof(vp_model_config, llm.kv_heads)},
    {"--llm-mlp", offsetof(vp_model_config, llm.intermediate)},
    {"--max-pos", offsetof(vp_model_config, llm.max_pos)},
};

int cmd_mkmodel(int argc, char **argv)
{
    const char *scale = "tiny", *dtype = "bf16", *vision_norm = NULL, *system = NULL;
    vp_mkmodel_opts o = {.tokenizer_dir = "engine/assets/tiny_tokenizer", .seed = 1};
    bool qk_norm = false, no_qkv_bias = false, tokenizer_given = false;
    long long overrides[sizeof int_opts / sizeof int_opts[0]];
    bool overridden[sizeof int_opts / sizeof int_opts[0]] = {false};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--qk-norm")) {
            qk_norm = true;
            continue;
        }
        if (!strcmp(a, "--no-qkv-bias")) {
            no_qkv_bias = true;
            continue;
        }
        if (!strcmp(a, "--config-only")) {
            o.config_only = true;
            continue;
        }
        if (!strcmp(a, "--force")) {
            o.force = true;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "vprm mkmodel: unknown option or missing value: %s\n", a);
            usage(stderr);
            return 2;
        }
        const char *v = argv[++i];
        long long x;
        bool known = true;
        if (!strcmp(a, "--out"))
            o.out_dir = v;
        else if (!strcmp(a, "--scale"))
            scale = v;
        else if (!strcmp(a, "--tokenizer"))
            o.tokenizer_dir = v, tokenizer_given = true;
        else if (!strcmp(a, "--dtype"))
            dtype = v;
        else if (!strcmp(a, "--vision-norm"))
            vision_norm = v;
        else if (!strcmp(a, "--system-message"))
            system = v;
        else if (!strcmp(a, "--seed")) {
            char *end;
            errno = 0;
            o.seed = strtoull(v, &end, 10);
            if (errno || end == v || *end || v[0] == '-') {
                fprintf(stderr, "vprm mkmodel: --seed needs a non-negative whole number\n");
                return 2;
            }
        } else if (!strcmp(a, "--shards")) {
            if (parse_long(a, v, 1, 9999, &x))
                return 2;
            o.shards = (int)x;
        } else if (!strcmp(a, "--threads")) {
            if (parse_long(a, v, 1, 64, &x))
                return 2;
            o.threads = (int)x;
        } else {
            known = false;
            for (size_t k = 0; k < sizeof int_opts / sizeof int_opts[0]; k++)
                if (!strcmp(a, int_opts[k].name)) {
                    if (parse_long(a, v, 1, 1 << 24, &overrides[k]))
                        return 2;
                    overridden[k] = known = true;
                }
        }
        if (!known) {
            fprintf(stderr, "vprm mkmodel: unknown option %s\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (!o.out_dir) {
        fprintf(stderr, "vprm mkmodel: --out DIR is required\n");
        usage(stderr);
        return 2;
    }
    vp_error err = {0};
    if (vp_mkmodel_preset(scale, &o.cfg, &err)) {
        fprintf(stderr, "vprm mkmodel: %s\n", err.message);
        return 2;
    }
    if (!strcmp(dtype, "bf16"))
        o.dtype = VP_DT_BF16;
    else if (!strcmp(dtype, "f16"))
        o.dtype = VP_DT_F16;
    else if (!strcmp(dtype, "f32"))
        o.dtype = VP_DT_F32;
    else {
        fprintf(stderr, "vprm mkmodel: --dtype must be bf16, f16 or f32, got '%s'\n", dtype);
        return 2;
    }
    for (size_t k = 0; k < sizeof int_opts / sizeof int_opts[0]; k++)
        if (overridden[k])
            *(int *)((char *)&o.cfg + int_opts[k].offset) = (int)overrides[k];
    if (vision_norm) {
        if (!strcmp(vision_norm, "layer_norm"))
            o.cfg.vision.norm = VP_NORM_LAYER;
        else if (!strcmp(vision_norm, "rms_norm"))
            o.cfg.vision.norm = VP_NORM_RMS;
        else {
            fprintf(stderr, "vprm mkmodel: --vision-norm must be layer_norm or rms_norm\n");
            return 2;
        }
    }
    if (qk_norm)
        o.cfg.vision.qk_norm = true;
    if (no_qkv_bias)
        o.cfg.vision.qkv_bias = false;
    o.cfg.system_message = (char *)system;

    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    vp_mkmodel_result res;
    /* the default tokenizer is the checkout's: found from the binary (bin/vprm in the
     * repository) when the command runs elsewhere */
    char beside[4096];
    if (!tokenizer_given && access(o.tokenizer_dir, R_OK) != 0) {
        char exe[4000];
        ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
        if (n > 0) {
            exe[n] = 0;
            char *slash = strrchr(exe, '/');
            if (slash)
                *slash = 0;
            snprintf(beside, sizeof beside, "%s/../engine/assets/tiny_tokenizer", exe);
            if (access(beside, R_OK) == 0)
                o.tokenizer_dir = beside;
        }
    }
    if (vp_mkmodel_write(&o, &res, &err)) {
        fprintf(stderr, "vprm mkmodel: %s\n", err.message);
        return 1;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    if (o.config_only) {
        printf("wrote %s: scale %s, config.json and tokenizer only (no weights), vocab %d "
               "(\"+\" %d, \"-\" %d); use --backend cuda --random-weights SEED\n",
               o.out_dir, scale, res.vocab, res.plus_id, res.minus_id);
        return 0;
    }
    printf("wrote %s: scale %s, seed %llu, %zu tensors, %zu parameters, %.1f MB %s in %d file%s, "
           "vocab %d (\"+\" %d, \"-\" %d), %.2f s\n",
           o.out_dir, scale, (unsigned long long)o.seed, res.n_tensors, res.n_params,
           (double)res.n_bytes / 1e6, dtype, res.n_files, res.n_files == 1 ? "" : "s",
           res.vocab, res.plus_id, res.minus_id, secs);
    return 0;
}
