/* A Hugging Face checkpoint folder: model.safetensors alone (checked first, as
 * transformers does), or model.safetensors.index.json whose weight_map names, for each
 * tensor, the shard file holding it. */
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/model/safetensors.h"
#include "engine/util/json_alloc.h"

#define INDEX_NAME "model.safetensors.index.json"
#define SINGLE_NAME "model.safetensors"
#define INDEX_MAX_BYTES ((size_t)64 << 20)

/* lstat: a dangling or looping symlink is there too, and opening it then reports why,
 * instead of the file counting as absent ("neither ... nor", "shard missing"). */
static int file_exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

/* Sort key for the merged table. */
typedef struct entry {
    const vp_tensor *t;
    size_t file;
} entry;

static int entry_by_name(const void *a, const void *b)
{
    return strcmp(((const entry *)a)->t->name, ((const entry *)b)->t->name);
}

/* Builds ck->tensors / ck->file_of from the opened files; names are unique across files. */
static int merge_tables(vp_checkpoint *ck, vp_error *err)
{
    size_t total = 0;
    for (size_t f = 0; f < ck->n_files; f++)
        total += ck->files[f].n;
    entry *all = calloc(total ? total : 1, sizeof *all);
    ck->tensors = calloc(total ? total : 1, sizeof *ck->tensors);
    ck->file_of = calloc(total ? total : 1, sizeof *ck->file_of);
    if (!all || !ck->tensors || !ck->file_of) {
        free(all);
        return vp_fail(err, VP_ERR_NOMEM, NULL, "out of memory");
    }
    size_t k = 0;
    for (size_t f = 0; f < ck->n_files; f++)
        for (size_t i = 0; i < ck->files[f].n; i++)
            all[k++] = (entry){&ck->files[f].tensors[i], f};
    qsort(all, total, sizeof *all, entry_by_name);
    for (size_t i = 0; i < total; i++) {
        if (i && !strcmp(all[i].t->name, all[i - 1].t->name)) {
            int rc = vp_fail(err, VP_ERR_MODEL, all[i].t->name, "tensor '%s' is in both %s and %s",
                             all[i].t->name, ck->files[all[i - 1].file].path,
                             ck->files[all[i].file].path);
            free(all);
            return rc;
        }
        ck->tensors[i] = all[i].t;
        ck->file_of[i] = all[i].file;
    }
    ck->n = total;
    free(all);
    return 0;
}

static int open_single(const char *path, vp_checkpoint *ck, vp_error *err)
{
    if (!(ck->files = calloc(1, sizeof *ck->files)))
        return vp_fail(err, VP_ERR_NOMEM, NULL, "out of memory");
    if (vp_st_open(path, &ck->files[0], err))
        return -1;
    ck->n_files = 1;
    return merge_tables(ck, err);
}

/* A shard name from the index must be a plain file name inside the folder. */
static int check_shard_name(const char *name, const char *tensor, vp_error *err)
{
    if (!name[0] || strchr(name, '/') || !strcmp(name, ".") || !strcmp(name, ".."))
        return vp_fail(err, VP_ERR_MODEL, tensor,
                       INDEX_NAME ": tensor '%s' maps to '%s', not a file name in the folder",
                       tensor, name);
    return 0;
}

static int by_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* names[n] is sorted: a lookup per tensor stays O(log n) (a linear scan made an index
 * of many distinct shard names quadratic: minutes before any file was opened). */
static long shard_slot(char **names, size_t n, const char *name)
{
    char **hit = n ? bsearch(&name, names, n, sizeof *names, by_str) : NULL;
    return hit ? (long)(hit - names) : -1;
}

static int open_sharded(const char *dir, const char *index_path, vp_checkpoint *ck, vp_error *err)
{
    uint8_t *text;
    size_t len;
    if (vp_read_file(index_path, INDEX_MAX_BYTES, &text, &len, err))
        return -1;
    json_error_t je;
    json_t *root = vp_json_parse((const char *)text, len, JSON_REJECT_DUPLICATES, &je);
    free(text);
    if (!root && vp_json_oom(&je))
        return vp_fail(err, VP_ERR_NOMEM, NULL, "out of memory parsing " INDEX_NAME);
    if (!root)
        return vp_fail(err, VP_ERR_MODEL, NULL, INDEX_NAME " is not valid JSON: %s (line %d)",
                       je.text, je.line);
    json_t *map = json_object_get(root, "weight_map");
    char **names = NULL;
    size_t n_names = 0;
    int rc = 0;
    const char *key;
    json_t *v;
    if (!json_is_object(root) || !json_is_object(map)) {
        rc = vp_fail(err, VP_ERR_MODEL, NULL, INDEX_NAME " has no \"weight_map\" object");
        goto done;
    }
    if (json_object_size(map) == 0) {
        rc = vp_fail(err, VP_ERR_MODEL, NULL, INDEX_NAME ": weight_map is empty");
        goto done;
    }
    names = calloc(json_object_size(map), sizeof *names);
    if (!names) {
        rc = vp_fail(err, VP_ERR_NOMEM, NULL, "out of memory");
        goto done;
    }
    /* Distinct shard names, sorted. */
    json_object_foreach(map, key, v) {
        if (!json_is_string(v)) {
            rc = vp_fail(err, VP_ERR_MODEL, key, INDEX_NAME ": weight_map['%s'] is not a string",
                         key);
            goto done;
        }
        const char *shard = json_string_value(v);
        if ((rc = check_shard_name(shard, key, err)))
            goto done;
        names[n_names++] = (char *)shard;
    }
    qsort(names, n_names, sizeof *names, by_str);
    size_t distinct = 0;
    for (size_t i = 0; i < n_names; i++)
        if (!distinct || strcmp(names[distinct - 1], names[i]))
            names[distinct++] = names[i];
    n_names = distinct;
    if (!(ck->files = calloc(n_names, sizeof *ck->files))) {
        rc = vp_fail(err, VP_ERR_NOMEM, NULL, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < n_names; i++) {
        char path[4096];
        if (vp_path_join(path, sizeof path, dir, names[i])) {
            rc = vp_fail(err, VP_ERR_MODEL, NULL, "path too long: %s/%s", dir, names[i]);
            goto done;
        }
        if (!file_exists(path)) {
            rc = vp_fail(err, VP_ERR_MODEL, NULL,
                         "shard %s named in " INDEX_NAME " is missing from %s", names[i], dir);
            goto done;
        }
        if ((rc = vp_st_open(path, &ck->files[i], err)))
            goto done;
        ck->n_files++;
    }
    /* Every listed tensor is in the shard the index names... */
    json_object_foreach(map, key, v) {
        const char *shard = json_string_value(v);
        size_t want = (size_t)shard_slot(names, n_names, shard);
        if (vp_st_find(&ck->files[want], key))
            continue;
        for (size_t f = 0; f < n_names; f++)
            if (f != want && vp_st_find(&ck->files[f], key)) {
                rc = vp_fail(err, VP_ERR_MODEL, key,
                             INDEX_NAME " maps tensor '%s' to %s, but it is in %s", key, shard,
                             names[f]);
                goto done;
            }
        rc = vp_fail(err, VP_ERR_MODEL, key,
                     "tensor '%s' is missing: " INDEX_NAME " maps it to %s, which does not hold it",
                     key, shard);
        goto done;
    }
    /* ...and every tensor of a shard is listed for that shard. */
    for (size_t f = 0; f < n_names; f++)
        for (size_t i = 0; i < ck->files[f].n; i++) {
            const char *name = ck->files[f].tensors[i].name;
            json_t *m = json_object_get(map, name);
            if (!m) {
                rc = vp_fail(err, VP_ERR_MODEL, name,
                             "tensor '%s' in %s is not listed in " INDEX_NAME, name, names[f]);
                goto done;
            }
            if (strcmp(json_string_value(m), names[f])) {
                rc = vp_fail(err, VP_ERR_MODEL, name,
                             INDEX_NAME " maps tensor '%s' to %s, but it is (also) in %s", name,
                             json_string_value(m), names[f]);
                goto done;
            }
        }
    rc = merge_tables(ck, err);
done:
    free(names);
    json_decref(root);
    return rc;
}

int vp_checkpoint_open(const char *dir, vp_checkpoint *ck, vp_error *err)
{
    memset(ck, 0, sizeof *ck);
    char single[4096], index[4096];
    if (vp_path_join(single, sizeof single, dir, SINGLE_NAME) ||
        vp_path_join(index, sizeof index, dir, INDEX_NAME))
        return vp_fail(err, VP_ERR_MODEL, NULL, "model folder path too long: %s", dir);
    int rc;
    if (file_exists(single))
        rc = open_single(single, ck, err);
    else if (file_exists(index))
        rc = open_sharded(dir, index, ck, err);
    else
        return vp_fail(err, VP_ERR_MODEL, NULL, "%s has neither " SINGLE_NAME " nor " INDEX_NAME,
                       dir);
    if (rc)
        vp_checkpoint_close(ck);
    return rc;
}

long vp_checkpoint_find(const vp_checkpoint *ck, const char *name)
{
    size_t lo = 0, hi = ck->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(ck->tensors[mid]->name, name);
        if (c == 0)
            return (long)mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

void vp_checkpoint_close(vp_checkpoint *ck)
{
    for (size_t f = 0; f < ck->n_files; f++)
        vp_st_close(&ck->files[f]);
    free(ck->files);
    free(ck->tensors);
    free(ck->file_of);
    memset(ck, 0, sizeof *ck);
}
