/* One safetensors file: [u64 little-endian header length N][N bytes of JSON][data].
 * The JSON maps tensor names to {dtype, shape, data_offsets: [begin, end]} (offsets
 * relative to the data start) plus an optional "__metadata__" object of strings. */
#include "engine/model/safetensors.h"
#include "engine/util/json_alloc.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_TENSORS ((size_t)1 << 20)
#define MAX_NAME 1024

static int by_name(const void *a, const void *b)
{
    return strcmp(((const vp_tensor *)a)->name, ((const vp_tensor *)b)->name);
}

/* Byte range of a tensor while validating the layout. */
typedef struct range {
    size_t begin, end;
    const char *name;
} range;

static int by_begin(const void *a, const void *b)
{
    const range *x = a, *y = b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end)
        return x->end < y->end ? -1 : 1;
    return 0;
}

static int check_metadata(json_t *meta, const char *label, vp_error *err)
{
    if (!json_is_object(meta))
        return vp_fail(err, VP_ERR_MODEL, NULL, "%s: __metadata__ must be an object", label);
    const char *key;
    json_t *v;
    json_object_foreach(meta, key, v) {
        if (!json_is_string(v))
            return vp_fail(err, VP_ERR_MODEL, NULL, "%s: __metadata__.%s must be a string", label,
                           key);
    }
    return 0;
}

/* Reads one header entry into t (name already set); the data is data[data_len]. */
static int parse_entry(json_t *e, vp_tensor *t, range *r, const uint8_t *data, size_t data_len,
                       const char *label, vp_error *err)
{
    const char *name = t->name;
    if (!json_is_object(e))
        return vp_fail(err, VP_ERR_MODEL, name, "%s: tensor '%s': header entry must be an object",
                       label, name);
    const char *key;
    json_t *v;
    json_object_foreach(e, key, v) {
        if (strcmp(key, "dtype") && strcmp(key, "shape") && strcmp(key, "data_offsets"))
            return vp_fail(err, VP_ERR_MODEL, name,
                           "%s: tensor '%s': unexpected key '%s' in its header entry", label, name,
                           key);
    }
    json_t *dtype = json_object_get(e, "dtype");
    json_t *shape = json_object_get(e, "shape");
    json_t *offs = json_object_get(e, "data_offsets");
    if (!json_is_string(dtype))
        return vp_fail(err, VP_ERR_MODEL, name, "%s: tensor '%s': dtype missing or not a string",
                       label, name);
    if (vp_dtype_parse(json_string_value(dtype), &t->dtype))
        return vp_fail(err, VP_ERR_MODEL, name,
                       "%s: tensor '%s' has dtype %s: only BF16, F16 and F32 are supported", label,
                       name, json_string_value(dtype));
    if (!json_is_array(shape))
        return vp_fail(err, VP_ERR_MODEL, name, "%s: tensor '%s': shape missing or not a list",
                       label, name);
    if (json_array_size(shape) > VP_MAX_DIMS)
        return vp_fail(err, VP_ERR_MODEL, name, "%s: tensor '%s' has %zu dimensions (at most %d)",
                       label, name, json_array_size(shape), VP_MAX_DIMS);
    t->ndim = (int)json_array_size(shape);
    size_t bytes = vp_dtype_size(t->dtype);
    bool overflow = false;
    for (int d = 0; d < t->ndim; d++) {
        json_t *dim = json_array_get(shape, (size_t)d);
        if (!json_is_integer(dim) || json_integer_value(dim) < 0)
            return vp_fail(err, VP_ERR_MODEL, name,
                           "%s: tensor '%s': shape[%d] is not a non-negative integer", label, name,
                           d);
        t->shape[d] = json_integer_value(dim);
        if (__builtin_mul_overflow(bytes, (size_t)t->shape[d], &bytes))
            overflow = true;
    }
    if (!json_is_array(offs) || json_array_size(offs) != 2 ||
        !json_is_integer(json_array_get(offs, 0)) || !json_is_integer(json_array_get(offs, 1)))
        return vp_fail(err, VP_ERR_MODEL, name,
                       "%s: tensor '%s': data_offsets must be a list of two integers", label, name);
    json_int_t b = json_integer_value(json_array_get(offs, 0));
    json_int_t en = json_integer_value(json_array_get(offs, 1));
    if (b < 0 || en < b)
        return vp_fail(err, VP_ERR_MODEL, name,
                       "%s: tensor '%s': data_offsets [%lld, %lld] are not 0 <= begin <= end", label,
                       name, (long long)b, (long long)en);
    if ((unsigned long long)en > data_len)
        return vp_fail(err, VP_ERR_MODEL, name,
                       "%s: tensor '%s': data_offsets [%lld, %lld] run past the end of the data "
                       "(%zu bytes; file truncated?)",
                       label, name, (long long)b, (long long)en, data_len);
    size_t span = (size_t)(en - b);
    if (overflow || bytes != span) {
        char dims[128] = "";
        size_t off = 0;
        for (int d = 0; d < t->ndim && off < sizeof dims; d++)
            off += (size_t)snprintf(dims + off, sizeof dims - off, "%s%lld", d ? ", " : "",
                                    (long long)t->shape[d]);
        if (overflow)
            return vp_fail(err, VP_ERR_MODEL, name,
                           "%s: tensor '%s': shape [%s] is too large (its byte count overflows)",
                           label, name, dims);
        return vp_fail(err, VP_ERR_MODEL, name,
                       "%s: tensor '%s': shape [%s] of %s needs %zu bytes but data_offsets span %zu",
                       label, name, dims, vp_dtype_name(t->dtype), bytes, span);
    }
    r->begin = (size_t)b;
    r->end = (size_t)en;
    r->name = name;
    t->data = data + r->begin;
    t->nbytes = span;
    return 0;
}

/* Ranges, sorted by start, must tile [0, data_len) exactly (as the format requires). */
static int check_layout(range *r, size_t n, size_t data_len, const char *label, vp_error *err)
{
    qsort(r, n, sizeof *r, by_begin);
    size_t at = 0;
    const char *prev = NULL;
    for (size_t i = 0; i < n; i++) {
        if (r[i].begin < at)
            return vp_fail(err, VP_ERR_MODEL, r[i].name,
                           "%s: tensors '%s' and '%s' overlap (byte %zu is used by both)", label,
                           prev, r[i].name, r[i].begin);
        if (r[i].begin > at)
            return vp_fail(err, VP_ERR_MODEL, r[i].name,
                           "%s: bytes %zu..%zu before tensor '%s' belong to no tensor", label, at,
                           r[i].begin, r[i].name);
        at = r[i].end;
        prev = r[i].name;
    }
    if (at != data_len)
        return vp_fail(err, VP_ERR_MODEL, NULL,
                       "%s: the data is %zu bytes but the tensors cover %zu (%s)", label, data_len,
                       at, n ? "trailing bytes belong to no tensor" : "no tensors");
    return 0;
}

static void free_tensors(vp_st_file *f)
{
    for (size_t i = 0; i < f->n; i++)
        free((char *)f->tensors[i].name);
    free(f->tensors);
    f->tensors = NULL;
    f->n = 0;
}

static int parse_header(json_t *root, const uint8_t *data, size_t data_len, const char *label,
                        vp_st_file *f, vp_error *err)
{
    size_t cap = json_object_size(root);
    if (cap > MAX_TENSORS)
        return vp_fail(err, VP_ERR_MODEL, NULL, "%s: %zu header entries (at most %zu)", label, cap,
                       MAX_TENSORS);
    f->tensors = calloc(cap ? cap : 1, sizeof *f->tensors);
    range *ranges = calloc(cap ? cap : 1, sizeof *ranges);
    if (!f->tensors || !ranges) {
        free(ranges);
        return vp_fail(err, VP_ERR_NOMEM, NULL, "%s: out of memory for %zu tensors", label, cap);
    }
    const char *key;
    json_t *v;
    int rc = 0;
    json_object_foreach(root, key, v) {
        if (!strcmp(key, "__metadata__")) {
            if ((rc = check_metadata(v, label, err)))
                break;
            continue;
        }
        size_t klen = strlen(key);
        if (klen == 0 || klen > MAX_NAME) {
            rc = vp_fail(err, VP_ERR_MODEL, NULL, "%s: tensor name of %zu bytes (1..%d allowed)",
                         label, klen, MAX_NAME);
            break;
        }
        vp_tensor *t = &f->tensors[f->n];
        if (!(t->name = strdup(key))) {
            rc = vp_fail(err, VP_ERR_NOMEM, NULL, "%s: out of memory", label);
            break;
        }
        f->n++;
        if ((rc = parse_entry(v, t, &ranges[f->n - 1], data, data_len, label, err)))
            break;
    }
    if (!rc)
        rc = check_layout(ranges, f->n, data_len, label, err);
    free(ranges);
    if (rc)
        return rc;
    qsort(f->tensors, f->n, sizeof *f->tensors, by_name);
    return 0;
}

int vp_st_parse(const uint8_t *bytes, size_t len, const char *label, vp_st_file *f, vp_error *err)
{
    memset(f, 0, sizeof *f);
    if (len < 8)
        return vp_fail(err, VP_ERR_MODEL, NULL,
                       "%s: %zu bytes is too short for a safetensors file (8-byte header length "
                       "missing)",
                       label, len);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = (hlen << 8) | bytes[i];
    if (hlen > len - 8)
        return vp_fail(err, VP_ERR_MODEL, NULL,
                       "%s: header length %llu runs past the end of the file (%zu bytes; "
                       "truncated, or not a safetensors file)",
                       label, (unsigned long long)hlen, len);
    if (hlen > VP_ST_MAX_HEADER)
        return vp_fail(err, VP_ERR_MODEL, NULL, "%s: header length %llu is over the %zu-byte limit",
                       label, (unsigned long long)hlen, VP_ST_MAX_HEADER);
    if (hlen < 2 || bytes[8] != '{')
        return vp_fail(err, VP_ERR_MODEL, NULL,
                       "%s: the header does not start with a JSON object ('{')", label);
    json_error_t je;
    json_t *root = vp_json_parse((const char *)bytes + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &je);
    if (!root && vp_json_oom(&je))
        return vp_fail(err, VP_ERR_NOMEM, NULL, "%s: out of memory parsing its header", label);
    if (!root)
        return vp_fail(err, VP_ERR_MODEL, NULL, "%s: header is not valid JSON: %s (byte %d)", label,
                       je.text, je.position);
    int rc;
    if (!json_is_object(root)) {
        rc = vp_fail(err, VP_ERR_MODEL, NULL, "%s: header is not a JSON object", label);
    } else {
        f->data_offset = 8 + (size_t)hlen;
        rc = parse_header(root, bytes + f->data_offset, len - f->data_offset, label, f, err);
    }
    json_decref(root);
    if (rc)
        free_tensors(f);
    return rc;
}

int vp_st_open(const char *path, vp_st_file *f, vp_error *err)
{
    vp_mmap map;
    memset(f, 0, sizeof *f);
    if (vp_mmap_open(path, &map, err))
        return -1;
    if (vp_st_parse(map.data, map.len, path, f, err)) {
        vp_mmap_close(&map);
        return -1;
    }
    f->map = map;
    if (!(f->path = strdup(path))) {
        vp_st_close(f);
        return vp_fail(err, VP_ERR_NOMEM, NULL, "out of memory");
    }
    return 0;
}

const vp_tensor *vp_st_find(const vp_st_file *f, const char *name)
{
    vp_tensor key = {.name = name};
    return f->n ? bsearch(&key, f->tensors, f->n, sizeof key, by_name) : NULL;
}

void vp_st_close(vp_st_file *f)
{
    free_tensors(f);
    vp_mmap_close(&f->map);
    free(f->path);
    f->path = NULL;
}
