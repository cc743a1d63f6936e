/* vprm mkmodel's engine: writes config.json, the weights and the tokenizer files of a
 * random model. Values are a pure function of (seed, tensor name, element index)
 * (rng.h), so chunks are generated in parallel and the 8b scale streams to disk. */
#include "engine/model/mkmodel.h"

#include <dirent.h>
#include <errno.h>
#include <fnmatch.h>
#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/model/layout.h"
#include "engine/model/safetensors_write.h"
#include "engine/tokenizer/tokenizer.h"
#include "engine/util/file.h"
#include "engine/util/json_alloc.h"

#define TOKENIZER_FILE_MAX ((size_t)64 << 20)

typedef struct gen_ctx {
    const vp_layout_entry *list; /* [n] the whole model */
    const size_t *index;         /* [files' tensor count] list index of each spec of this file */
    vp_init_params init;         /* what the values are */
    vp_dtype dtype;
    int threads;
} gen_ctx;

typedef struct gen_job {
    const gen_ctx *g;
    const vp_layout_entry *e;
    size_t start, n;
    unsigned char *dst;
    int failed;
} gen_job;

static void *gen_run(void *arg)
{
    gen_job *j = arg;
    size_t step = (size_t)1 << 16;
    float *tmp = malloc(step * sizeof *tmp);
    if (!tmp) {
        j->failed = 1;
        return NULL;
    }
    size_t es = vp_dtype_size(j->g->dtype);
    for (size_t at = 0; at < j->n; at += step) {
        size_t k = j->n - at < step ? j->n - at : step;
        vp_mkmodel_values(&j->g->init, j->e, j->start + at, k, tmp);
        vp_f32_to_dtype(tmp, k, j->g->dtype, j->dst + at * es);
    }
    free(tmp);
    return NULL;
}

#define MAX_THREADS 64

static int gen_fill(void *ctx, size_t index, size_t start, size_t n, void *dst, vp_error *err)
{
    const gen_ctx *g = ctx;
    const vp_layout_entry *e = &g->list[g->index[index]];
    int t = n < ((size_t)1 << 17) ? 1 : g->threads; /* small tensors: not worth a thread */
    gen_job jobs[MAX_THREADS];
    pthread_t tids[MAX_THREADS];
    bool threaded[MAX_THREADS] = {false};
    size_t part = (n + (size_t)t - 1) / (size_t)t, es = vp_dtype_size(g->dtype);
    int parts = 0, failed = 0;
    for (int i = 0; i < t && (size_t)i * part < n; i++, parts++) {
        size_t s = (size_t)i * part;
        jobs[i] = (gen_job){g, e, start + s, n - s < part ? n - s : part,
                            (unsigned char *)dst + s * es, 0};
        if (t > 1 && pthread_create(&tids[i], NULL, gen_run, &jobs[i]) == 0)
            threaded[i] = true;
        else
            gen_run(&jobs[i]); /* no thread: do it here */
    }
    for (int i = 0; i < parts; i++) {
        if (threaded[i])
            pthread_join(tids[i], NULL);
        failed |= jobs[i].failed;
    }
    if (failed)
        return vp_fail(err, VP_ERR_NOMEM, NULL, "out of memory generating '%s'", e->name);
    return 0;
}

/* Shard of each tensor: contiguous runs in model order, balanced by bytes, none empty. */
static void plan_shards(const vp_layout_entry *list, size_t n, size_t es, int k, int *shard_of)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += vp_layout_numel(&list[i]) * es;
    size_t before = 0;
    int cur = 0;
    for (size_t i = 0; i < n; i++) {
        size_t bytes = vp_layout_numel(&list[i]) * es;
        if (i > 0) {
            /* the shard the middle of this tensor falls in, moving at most one at a time */
            double mid = ((double)before + (double)bytes / 2) / (double)(total ? total : 1);
            bool behind = (int)(mid * k) > cur;
            bool must = n - i <= (size_t)(k - 1 - cur); /* one tensor left per later shard */
            if ((behind || must) && cur < k - 1)
                cur++;
        }
        shard_of[i] = cur;
        before += bytes;
    }
}

static int write_file(const char *dir, const char *name, const gen_ctx *base,
                      const vp_layout_entry *list, const size_t *members, size_t count,
                      vp_error *err)
{
    vp_st_spec *specs = calloc(count ? count : 1, sizeof *specs);
    if (!specs)
        return vp_fail(err, VP_ERR_NOMEM, NULL, "out of memory");
    for (size_t i = 0; i < count; i++) {
        const vp_layout_entry *e = &list[members[i]];
        specs[i].name = e->name;
        specs[i].dtype = base->dtype;
        specs[i].ndim = e->ndim;
        memcpy(specs[i].shape, e->shape, sizeof e->shape);
    }
    gen_ctx g = *base;
    g.index = members;
    char path[4096];
    int rc = vp_path_join(path, sizeof path, dir, name)
                 ? vp_fail(err, VP_ERR_IO, NULL, "path too long: %s/%s", dir, name)
                 : vp_st_write(path, specs, count, gen_fill, &g, err);
    free(specs);
    return rc;
}

static int write_index(const char *dir, const vp_layout_entry *list, size_t n,
                       const int *shard_of, int k, size_t total_bytes, vp_error *err)
{
    json_t *map = json_object();
    bool whole = map != NULL; /* a tensor left out would still be valid JSON */
    for (size_t i = 0; whole && i < n; i++) {
        char name[64];
        snprintf(name, sizeof name, "model-%05d-of-%05d.safetensors", shard_of[i] + 1, k);
        whole = json_object_set_new(map, list[i].name, json_string(name)) == 0;
    }
    if (!whole)
        json_decref(map);
    json_t *root = whole ? json_pack("{s:{s:I}, s:o}", "metadata", "total_size",
                                     (json_int_t)total_bytes, "weight_map", map)
                         : NULL;
    char *text = root ? vp_json_dump(root, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;
    json_decref(root);
    if (!text)
        return vp_fail(err, VP_ERR_NOMEM, NULL, "out of memory");
    char path[4096];
    int rc = vp_path_join(path, sizeof path, dir, "model.safetensors.index.json")
                 ? vp_fail(err, VP_ERR_IO, NULL, "path too long: %s", dir)
                 : vp_write_file(path, text, strlen(text), err);
    free(text);
    return rc;
}

static int write_weights(const vp_mkmodel_opts *o, const vp_model_config *cfg, gen_ctx *g,
                         vp_mkmodel_result *res, vp_error *err)
{
    vp_layout_entry *list;
    size_t n;
    if (vp_layout_build(cfg, NULL, &list, &n, err))
        return -1;
    size_t es = vp_dtype_size(o->dtype), total = 0, params = 0;
    for (size_t i = 0; i < n; i++) {
        params += vp_layout_numel(&list[i]);
        total += vp_layout_numel(&list[i]) * es;
    }
    int k = o->shards;
    if (k <= 0)
        k = (int)((total + VP_MKMODEL_SHARD_BYTES - 1) / VP_MKMODEL_SHARD_BYTES);
    if (k < 1)
        k = 1;
    if ((size_t)k > n) {
        free(list);
        return vp_fail(err, VP_ERR_BAD_REQUEST, "shards", "%d shards for %zu tensors", k, n);
    }
    int *shard_of = calloc(n, sizeof *shard_of);
    size_t *members = calloc(n, sizeof *members);
    int rc = 0;
    if (!shard_of || !members) {
        rc = vp_fail(err, VP_ERR_NOMEM, NULL, "out of memory");
        goto done;
    }
    g->list = list;
    plan_shards(list, n, es, k, shard_of);
    for (int s = 0; s < k && !rc; s++) {
        size_t count = 0;
        for (size_t i = 0; i < n; i++)
            if (shard_of[i] == s)
                members[count++] = i;
        char name[64];
        if (k == 1)
            snprintf(name, sizeof name, "model.safetensors");
        else
            snprintf(name, sizeof name, "model-%05d-of-%05d.safetensors", s + 1, k);
        rc = write_file(o->out_dir, name, g, list, members, count, err);
    }
    if (!rc && k > 1)
        rc = write_index(o->out_dir, list, n, shard_of, k, total, err);
    res->n_tensors = n;
    res->n_params = params;
    res->n_bytes = total;
    res->n_files = k;
done:
    free(shard_of);
    free(members);
    free(list);
    return rc;
}

static int mkdir_p(const char *dir, vp_error *err)
{
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", dir) >= (int)sizeof buf)
        return vp_fail(err, VP_ERR_IO, NULL, "path too long: %s", dir);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            return vp_fail(err, VP_ERR_IO, NULL, "cannot create %s: %s", buf, strerror(errno));
        *p = '/';
    }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST)
        return vp_fail(err, VP_ERR_IO, NULL, "cannot create %s: %s", buf, strerror(errno));
    return 0;
}

/* Files an earlier run may have left that would contradict this one (the loader prefers
 * model.safetensors over an index; a stale shard could be read through a stale index). */
static int remove_stale(const char *dir, bool keep_added_tokens, vp_error *err)
{
    DIR *d = opendir(dir);
    if (!d)
        return vp_fail(err, VP_ERR_IO, NULL, "cannot list %s: %s", dir, strerror(errno));
    struct dirent *de;
    int rc = 0;
    while ((de = readdir(d)) && !rc) {
        const char *nm = de->d_name;
        bool stale = !strcmp(nm, "model.safetensors") ||
                     !strcmp(nm, "model.safetensors.index.json") ||
                     !fnmatch("model-[0-9][0-9][0-9][0-9][0-9]-of-[0-9][0-9][0-9][0-9][0-9]"
                              ".safetensors",
                              nm, 0) ||
                     (!keep_added_tokens && !strcmp(nm, "added_tokens.json"));
        char path[4096];
        if (stale && !vp_path_join(path, sizeof path, dir, nm) && unlink(path) != 0)
            rc = vp_fail(err, VP_ERR_IO, NULL, "cannot remove stale %s: %s", path,
                         strerror(errno));
    }
    closedir(d);
    return rc;
}

/* Whether dir holds a model that mkmodel did not write (config.json or weights, no
 * marker): refused, as writing would replace a checkpoint someone may not have twice. */
static int check_ours(const char *dir, vp_error *err)
{
    char path[4096];
    if (vp_path_join(path, sizeof path, dir, VP_MKMODEL_MARKER))
        return vp_fail(err, VP_ERR_IO, NULL, "path too long: %s", dir);
    if (access(path, F_OK) == 0)
        return 0;
    DIR *d = opendir(dir);
    if (!d)
        return vp_fail(err, VP_ERR_IO, NULL, "cannot list %s: %s", dir, strerror(errno));
    struct dirent *de;
    char found[256] = "";
    while ((de = readdir(d)) && !found[0])
        if (!strcmp(de->d_name, "config.json") || !fnmatch("*.safetensors", de->d_name, 0) ||
            !strcmp(de->d_name, "model.safetensors.index.json"))
            snprintf(found, sizeof found, "%s", de->d_name);
    closedir(d);
    if (found[0])
        return vp_fail(err, VP_ERR_IO, "out", "%s holds %s, and vprm mkmodel did not write it "
                       "(no %s): a checkpoint there would be replaced; choose another --out, "
                       "or pass --force", dir, found, VP_MKMODEL_MARKER);
    return 0;
}

static int write_marker(const char *dir, vp_error *err)
{
    static const char text[] = "written by vprm mkmodel: random weights, not a trained model\n";
    char path[4096];
    if (vp_path_join(path, sizeof path, dir, VP_MKMODEL_MARKER))
        return vp_fail(err, VP_ERR_IO, NULL, "path too long: %s", dir);
    return vp_write_file(path, text, sizeof text - 1, err);
}

static int copy_file(const char *from_dir, const char *to_dir, const char *name, bool optional,
                     bool *copied, vp_error *err)
{
    char src[4096], dst[4096];
    if (vp_path_join(src, sizeof src, from_dir, name) || vp_path_join(dst, sizeof dst, to_dir, name))
        return vp_fail(err, VP_ERR_IO, NULL, "path too long");
    if (copied)
        *copied = false;
    if (optional && access(src, F_OK) != 0)
        return 0;
    uint8_t *data;
    size_t len;
    if (vp_read_file(src, TOKENIZER_FILE_MAX, &data, &len, err))
        return -1;
    int rc = vp_write_file(dst, data, len, err);
    free(data);
    if (!rc && copied)
        *copied = true;
    return rc;
}

static const char *torch_dtype_name(vp_dtype dt)
{
    return dt == VP_DT_F32 ? "float32" : dt == VP_DT_F16 ? "float16" : "bfloat16";
}

int vp_mkmodel_write(const vp_mkmodel_opts *o, vp_mkmodel_result *res, vp_error *err)
{
    memset(res, 0, sizeof *res);
    vp_model_config cfg = o->cfg; /* system_message borrowed until the parse below */
    vp_tokenizer *tok;
    if (vp_tokenizer_load(o->tokenizer_dir, &tok, err)) {
        vp_error_prefix(err, "tokenizer %s", o->tokenizer_dir);
        return -1;
    }
    size_t n_ids = vp_tokenizer_n_ids(tok);
    int32_t plus = vp_tokenizer_piece_id(tok, "+"), minus = vp_tokenizer_piece_id(tok, "-");
    vp_tokenizer_free(tok);
    if (plus < 0 || minus < 0)
        return vp_fail(err, VP_ERR_MODEL, NULL, "tokenizer %s has no '%s' piece: cannot score",
                       o->tokenizer_dir, plus < 0 ? "+" : "-");
    if (n_ids == 0 || n_ids > (1u << 24))
        return vp_fail(err, VP_ERR_MODEL, NULL, "tokenizer %s has %zu ids", o->tokenizer_dir,
                       n_ids);
    cfg.llm.vocab = (int)n_ids;
    res->vocab = cfg.llm.vocab;

    /* Whatever is written must load: run the text through the loader's own parser, and
     * generate from what it reads back, so derived sizes (head_dim, ...) are the loader's. */
    char *json = vp_model_config_to_json(&cfg, torch_dtype_name(o->dtype));
    if (!json)
        return vp_fail(err, VP_ERR_NOMEM, NULL, "cannot build config.json (system message not "
                                                "UTF-8, or out of memory)");
    if (vp_model_config_parse(json, strlen(json), &cfg, err)) {
        free(json);
        if (err->kind != VP_ERR_NOMEM) /* memory is not the shapes' fault */
            vp_error_prefix(err, "the requested shapes make an invalid model");
        return -1;
    }

    int rc = mkdir_p(o->out_dir, err);
    if (!rc && !o->force)
        rc = check_ours(o->out_dir, err);
    if (!rc)
        rc = write_marker(o->out_dir, err);
    bool added = false;
    char tmp_probe[4096];
    if (!rc && !vp_path_join(tmp_probe, sizeof tmp_probe, o->tokenizer_dir, "added_tokens.json"))
        added = access(tmp_probe, F_OK) == 0;
    if (!rc)
        rc = remove_stale(o->out_dir, added, err);
    char path[4096];
    if (!rc && vp_path_join(path, sizeof path, o->out_dir, "config.json"))
        rc = vp_fail(err, VP_ERR_IO, NULL, "path too long: %s", o->out_dir);
    if (!rc)
        rc = vp_write_file(path, json, strlen(json), err);
    free(json);
    if (!rc)
        rc = copy_file(o->tokenizer_dir, o->out_dir, "tokenizer.model", false, NULL, err);
    if (!rc)
        rc = copy_file(o->tokenizer_dir, o->out_dir, "tokenizer_config.json", false, NULL, err);
    if (!rc)
        rc = copy_file(o->tokenizer_dir, o->out_dir, "added_tokens.json", true, NULL, err);
    if (rc) {
        vp_model_config_free(&cfg);
        return rc;
    }

    int threads = o->threads;
    if (threads <= 0) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        threads = cpus > 0 ? (int)cpus : 1;
    }
    if (threads > MAX_THREADS)
        threads = MAX_THREADS;
    gen_ctx g = {.init = {.cfg = &cfg, .seed = o->seed, .plus_id = plus, .minus_id = minus},
                 .dtype = o->dtype, .threads = threads};
    res->plus_id = plus;
    res->minus_id = minus;
    rc = o->config_only ? 0 : write_weights(o, &cfg, &g, res, err);
    vp_model_config_free(&cfg);
    return rc;
}
