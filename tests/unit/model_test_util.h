/* Helpers for the model tests: scratch folders, tiny random models, and rewriting a
 * generated checkpoint with one defect (a tensor dropped, reshaped, added, retyped). */
#ifndef VP_MODEL_TEST_UTIL_H
#define VP_MODEL_TEST_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/model/mkmodel.h"
#include "engine/model/safetensors.h"
#include "engine/model/safetensors_write.h"
#include "engine/util/file.h"

/* The tokenizer generated models use (tests run from the repository root). */
#define TEST_TOKENIZER "engine/assets/tiny_tokenizer"

/* A fresh folder under $VPRM_TMP (or /tmp); buf receives its path. */
static inline int test_mkdtemp(char *buf, size_t cap)
{
    const char *base = getenv("VPRM_TMP");
    snprintf(buf, cap, "%s/vp_model_XXXXXX", base && base[0] ? base : "/tmp");
    return mkdtemp(buf) ? 0 : -1;
}

static inline void test_rmtree(const char *dir)
{
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
}

/* Options for a tiny model in dir; callers adjust before vp_mkmodel_write. */
static inline void test_tiny_opts(vp_mkmodel_opts *o, const char *dir, uint64_t seed)
{
    memset(o, 0, sizeof *o);
    o->out_dir = dir;
    o->tokenizer_dir = TEST_TOKENIZER;
    o->seed = seed;
    o->dtype = VP_DT_BF16;
    o->threads = 2;
    vp_error err;
    vp_mkmodel_preset("tiny", &o->cfg, &err);
}

static inline int test_write_tiny(const char *dir, uint64_t seed, vp_error *err)
{
    vp_mkmodel_opts o;
    test_tiny_opts(&o, dir, seed);
    vp_mkmodel_result r;
    return vp_mkmodel_write(&o, &r, err);
}

/* What to change when rewriting a checkpoint file. */
typedef struct test_edit {
    const char *drop;      /* tensor left out */
    const char *reshape;   /* tensor whose first dimension loses one row */
    const char *extra;     /* tensor added (a copy of the first one, under this name) */
    const char *to_f32;    /* tensor stored as F32 instead */
} test_edit;

typedef struct test_copy_ctx {
    const vp_st_file *src;
    const vp_tensor **from; /* [n] source tensor of each spec */
    vp_st_spec *specs;
} test_copy_ctx;

static inline int test_copy_fill(void *ctx, size_t index, size_t start, size_t n, void *dst,
                                 vp_error *err)
{
    test_copy_ctx *c = ctx;
    const vp_tensor *t = c->from[index];
    vp_dtype want = c->specs[index].dtype;
    if (want == t->dtype) {
        size_t es = vp_dtype_size(want);
        memcpy(dst, (const unsigned char *)t->data + start * es, n * es);
        return 0;
    }
    float *tmp = malloc(n * sizeof *tmp);
    for (size_t i = 0; i < n; i++)
        tmp[i] = vp_tensor_get(t, start + i);
    vp_f32_to_dtype(tmp, n, want, dst);
    free(tmp);
    return 0;
}

/* Rewrites path (a safetensors file) with one edit applied. */
static inline int test_rewrite(const char *path, const test_edit *e, vp_error *err)
{
    vp_st_file f;
    if (vp_st_open(path, &f, err))
        return -1;
    vp_st_spec *specs = calloc(f.n + 1, sizeof *specs);
    const vp_tensor **from = calloc(f.n + 1, sizeof *from);
    size_t n = 0;
    for (size_t i = 0; i < f.n; i++) {
        const vp_tensor *t = &f.tensors[i];
        if (e->drop && !strcmp(t->name, e->drop))
            continue;
        specs[n] = (vp_st_spec){t->name, t->dtype, t->ndim, {0}};
        memcpy(specs[n].shape, t->shape, sizeof t->shape);
        if (e->reshape && !strcmp(t->name, e->reshape))
            specs[n].shape[0]--;
        if (e->to_f32 && !strcmp(t->name, e->to_f32))
            specs[n].dtype = VP_DT_F32;
        from[n++] = t;
    }
    if (e->extra) {
        specs[n] = specs[0];
        specs[n].name = e->extra;
        from[n++] = from[0];
    }
    test_copy_ctx ctx = {&f, from, specs};
    /* write beside, then replace: the source stays mapped while it is read */
    char tmp[8192];
    snprintf(tmp, sizeof tmp, "%s.edited", path);
    int rc = vp_st_write(tmp, specs, n, test_copy_fill, &ctx, err);
    vp_st_close(&f);
    free(specs);
    free(from);
    if (!rc && rename(tmp, path) != 0)
        rc = vp_fail(err, VP_ERR_IO, NULL, "rename failed");
    return rc;
}

/* Whole file into a heap buffer (NULL when unreadable). */
static inline unsigned char *test_slurp(const char *dir, const char *name, size_t *len)
{
    char path[8192];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    uint8_t *data;
    vp_error err;
    if (vp_read_file(path, 0, &data, len, &err))
        return NULL;
    return data;
}

#endif
