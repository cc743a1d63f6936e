/* Sharded checkpoints: model.safetensors.index.json through vp_checkpoint_open, which
 * only takes a folder. LLVMFuzzerInitialize makes one folder per process (mkdtemp under
 * $TMPDIR, /dev/shm or /tmp, removed at exit) holding fixed shards the index can name:
 *   model-00001-of-00002.safetensors  mlp1.0.bias F32 [2], mlp1.0.weight BF16 [2, 2]
 *   model-00002-of-00002.safetensors  language_model.output.weight F16 [3, 2],
 *                                     language_model.model.norm.weight F32 [2]
 *   empty.safetensors (no tensors), notes.txt (not safetensors), dir.safetensors/ (a folder)
 * Input: the index text up to the first NUL byte; the bytes after that NUL, when there is
 * one, become model-00003-of-00003.safetensors (else that file is removed), so the
 * fuzzer can also shape a shard the index names. No model.safetensors exists, so the
 * sharded path is the one taken.
 * Promises: a failure carries a kind (MODEL, IO or NOMEM) and a message and leaves the
 * checkpoint empty; a success lists exactly the tensors of weight_map (as jansson reads
 * it), sorted and unique, each found by vp_checkpoint_find and each in the file the
 * index names; one file per distinct shard name.
 * Seeds (corpus/fuzz_checkpoint_index/seed_*) are written by hand against those shards,
 * plus seed_tiny_model_index, the index of `bin/vprm mkmodel --scale tiny --seed 1
 * --shards 2` (it names tensors these shards lack). */
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/model/safetensors.h"
#include "engine/model/safetensors_write.h"
#include "engine/util/file.h"
#include "tests/fuzz/fuzz.h"

static char g_dir[4096];
static char g_index[4200], g_shard3[4200];

static int zero_fill(void *ctx, size_t index, size_t start, size_t n, void *dst, vp_error *err)
{
    (void)ctx;
    (void)start;
    (void)err;
    (void)index;
    memset(dst, 0, n * 4); /* at most 4 bytes an element, whatever the dtype */
    return 0;
}

static void write_shard(const char *name, const vp_st_spec *specs, size_t n)
{
    char path[4200];
    vp_error err = {0};
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    FUZZ_REQUIRE(vp_st_write(path, specs, n, zero_fill, NULL, &err) == 0, "%s: %s", path,
                 err.message);
}

static void remove_dir(void)
{
    static const char *const files[] = {
        "model.safetensors.index.json", "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors", "model-00003-of-00003.safetensors",
        "empty.safetensors", "notes.txt"};
    char path[4200];
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", g_dir, files[i]);
        unlink(path);
    }
    snprintf(path, sizeof path, "%s/dir.safetensors", g_dir);
    rmdir(path);
    rmdir(g_dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    FUZZ_REQUIRE(fuzz_make_temp_dir(g_dir, sizeof g_dir, "fuzz_checkpoint_index") == 0,
                 "cannot create a temporary folder (TMPDIR, /dev/shm, /tmp)");
    atexit(remove_dir);
    snprintf(g_index, sizeof g_index, "%s/model.safetensors.index.json", g_dir);
    snprintf(g_shard3, sizeof g_shard3, "%s/model-00003-of-00003.safetensors", g_dir);

    const vp_st_spec one[] = {{"mlp1.0.bias", VP_DT_F32, 1, {2}},
                              {"mlp1.0.weight", VP_DT_BF16, 2, {2, 2}}};
    const vp_st_spec two[] = {{"language_model.output.weight", VP_DT_F16, 2, {3, 2}},
                              {"language_model.model.norm.weight", VP_DT_F32, 1, {2}}};
    write_shard("model-00001-of-00002.safetensors", one, 2);
    write_shard("model-00002-of-00002.safetensors", two, 2);
    write_shard("empty.safetensors", NULL, 0);
    char path[4200];
    vp_error err = {0};
    snprintf(path, sizeof path, "%s/notes.txt", g_dir);
    FUZZ_REQUIRE(vp_write_file(path, "not a safetensors file\n", 23, &err) == 0, "%s",
                 err.message);
    snprintf(path, sizeof path, "%s/dir.safetensors", g_dir);
    FUZZ_REQUIRE(mkdir(path, 0700) == 0, "cannot create %s", path);
    return 0;
}

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

static void check_success(const vp_checkpoint *ck, const char *index, size_t index_len)
{
    json_t *root = json_loadb(index, index_len, JSON_REJECT_DUPLICATES, NULL);
    json_t *map = json_object_get(root, "weight_map");
    FUZZ_REQUIRE(json_is_object(map), "opened without a weight_map object");
    FUZZ_REQUIRE(ck->n == json_object_size(map), "%zu tensors for %zu weight_map entries", ck->n,
                 json_object_size(map));
    FUZZ_REQUIRE(ck->n_files >= 1 && ck->n_files <= ck->n, "%zu files for %zu tensors",
                 ck->n_files, ck->n);
    for (size_t i = 0; i < ck->n; i++) {
        const vp_tensor *t = ck->tensors[i];
        FUZZ_REQUIRE(t && t->name, "tensor %zu is NULL", i);
        FUZZ_REQUIRE(i == 0 || strcmp(ck->tensors[i - 1]->name, t->name) < 0,
                     "names not sorted and unique at '%s'", t->name);
        FUZZ_REQUIRE(vp_checkpoint_find(ck, t->name) == (long)i, "find('%s') misses it",
                     t->name);
        size_t f = ck->file_of[i];
        FUZZ_REQUIRE(f < ck->n_files, "'%s' in file %zu of %zu", t->name, f, ck->n_files);
        const vp_st_file *file = &ck->files[f];
        FUZZ_REQUIRE(t >= file->tensors && t < file->tensors + file->n,
                     "'%s' does not point into its file's table", t->name);
        json_t *shard = json_object_get(map, t->name);
        FUZZ_REQUIRE(json_is_string(shard), "'%s' is not in weight_map", t->name);
        FUZZ_REQUIRE(file->path && !strcmp(base_name(file->path), json_string_value(shard)),
                     "'%s' is in %s but weight_map says %s", t->name,
                     file->path ? file->path : "(null)", json_string_value(shard));
    }
    /* every file was named by the index and holds at least one listed tensor */
    size_t total = 0;
    for (size_t f = 0; f < ck->n_files; f++) {
        FUZZ_REQUIRE(ck->files[f].n >= 1, "file %s holds no tensor", ck->files[f].path);
        total += ck->files[f].n;
    }
    FUZZ_REQUIRE(total == ck->n, "files hold %zu tensors, table has %zu", total, ck->n);
    FUZZ_REQUIRE(vp_checkpoint_find(ck, "") == -1, "an empty name was found");
    json_decref(root);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    size_t ilen = nul ? (size_t)(nul - data) : size;
    vp_error err = {0};
    FUZZ_REQUIRE(vp_write_file(g_index, data, ilen, &err) == 0, "%s", err.message);
    if (nul)
        FUZZ_REQUIRE(vp_write_file(g_shard3, nul + 1, size - ilen - 1, &err) == 0, "%s",
                     err.message);
    else
        unlink(g_shard3);

    vp_checkpoint ck;
    if (vp_checkpoint_open(g_dir, &ck, &err)) {
        FUZZ_REQUIRE_ERROR(err);
        FUZZ_REQUIRE(err.kind == VP_ERR_MODEL || err.kind == VP_ERR_IO ||
                         err.kind == VP_ERR_NOMEM,
                     "unexpected error kind %d: %s", (int)err.kind, err.message);
        FUZZ_REQUIRE(ck.files == NULL && ck.n == 0 && ck.n_files == 0,
                     "a failed open left %zu files", ck.n_files);
        return 0;
    }
    check_success(&ck, (const char *)data, ilen);
    vp_checkpoint_close(&ck);
    return 0;
}
