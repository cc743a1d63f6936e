#include "engine/model/safetensors_write.h"

#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/util/json_alloc.h"

#define CHUNK_ELEMS ((size_t)1 << 23)

size_t vp_st_spec_bytes(const vp_st_spec *s)
{
    size_t n = vp_dtype_size(s->dtype);
    for (int d = 0; d < s->ndim; d++)
        n *= (size_t)s->shape[d];
    return n;
}

typedef struct order_item {
    const vp_st_spec *spec;
    size_t index;
} order_item;

static int by_width_then_name(const void *a, const void *b)
{
    const vp_st_spec *x = ((const order_item *)a)->spec, *y = ((const order_item *)b)->spec;
    size_t wx = vp_dtype_size(x->dtype), wy = vp_dtype_size(y->dtype);
    if (wx != wy)
        return wx > wy ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* The header text, padded; *order receives the data layout. */
static char *build_header(const vp_st_spec *specs, size_t n, order_item *order, size_t *len,
                          vp_error *err)
{
    for (size_t i = 0; i < n; i++)
        order[i] = (order_item){&specs[i], i};
    qsort(order, n, sizeof *order, by_width_then_name);
    json_t *root = json_object(); /* json_object_set_new takes the value, even on failure */
    if (!root || json_object_set_new(root, "__metadata__", json_pack("{s:s}", "format", "pt"))) {
        json_decref(root);
        vp_fail(err, VP_ERR_NOMEM, NULL, "out of memory");
        return NULL;
    }
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        const vp_st_spec *s = order[i].spec;
        if (i && !strcmp(s->name, order[i - 1].spec->name)) {
            json_decref(root);
            vp_fail(err, VP_ERR_INTERNAL, s->name, "tensor '%s' given twice", s->name);
            return NULL;
        }
        json_t *shape = json_array();
        bool whole = shape != NULL; /* a dimension left out would still be valid JSON */
        for (int d = 0; whole && d < s->ndim; d++)
            whole = json_array_append_new(shape, json_integer(s->shape[d])) == 0;
        size_t bytes = vp_st_spec_bytes(s);
        json_t *e = NULL;
        if (whole) /* "o" takes shape's reference */
            e = json_pack("{s:s, s:o, s:[I,I]}", "dtype", vp_dtype_name(s->dtype), "shape", shape,
                          "data_offsets", (json_int_t)at, (json_int_t)(at + bytes));
        else
            json_decref(shape);
        if (!e || json_object_set_new(root, s->name, e)) {
            json_decref(root);
            vp_fail(err, VP_ERR_NOMEM, NULL, "out of memory");
            return NULL;
        }
        at += bytes;
    }
    char *text = vp_json_dump(root, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(root);
    if (!text) {
        vp_fail(err, VP_ERR_NOMEM, NULL, "out of memory");
        return NULL;
    }
    size_t tl = strlen(text), padded = tl + (8 - (8 + tl) % 8) % 8;
    char *out = realloc(text, padded + 1);
    if (!out) {
        free(text);
        vp_fail(err, VP_ERR_NOMEM, NULL, "out of memory");
        return NULL;
    }
    memset(out + tl, ' ', padded - tl);
    out[padded] = 0;
    *len = padded;
    return out;
}

static int write_all(FILE *f, const void *p, size_t n, const char *path, vp_error *err)
{
    if (n && fwrite(p, 1, n, f) != n)
        return vp_fail(err, VP_ERR_IO, NULL, "cannot write %s: %s", path, strerror(errno));
    return 0;
}

static int write_body(FILE *f, const char *path, const order_item *order, size_t n,
                      vp_st_fill_fn fill, void *ctx, vp_error *err)
{
    size_t widest = 4;
    unsigned char *buf = malloc(CHUNK_ELEMS * widest);
    if (!buf)
        return vp_fail(err, VP_ERR_NOMEM, NULL, "out of memory for the write buffer");
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        const vp_st_spec *s = order[i].spec;
        size_t es = vp_dtype_size(s->dtype), numel = vp_st_spec_bytes(s) / es;
        for (size_t start = 0; start < numel && !rc; start += CHUNK_ELEMS) {
            size_t k = numel - start < CHUNK_ELEMS ? numel - start : CHUNK_ELEMS;
            rc = fill(ctx, order[i].index, start, k, buf, err);
            if (!rc)
                rc = write_all(f, buf, k * es, path, err);
        }
    }
    free(buf);
    return rc;
}

int vp_st_write(const char *path, const vp_st_spec *specs, size_t n, vp_st_fill_fn fill,
                void *ctx, vp_error *err)
{
    for (size_t i = 0; i < n; i++) {
        if (specs[i].ndim < 0 || specs[i].ndim > VP_MAX_DIMS)
            return vp_fail(err, VP_ERR_INTERNAL, specs[i].name, "tensor '%s': %d dimensions",
                           specs[i].name, specs[i].ndim);
        for (int d = 0; d < specs[i].ndim; d++)
            if (specs[i].shape[d] < 0)
                return vp_fail(err, VP_ERR_INTERNAL, specs[i].name, "tensor '%s': negative shape",
                               specs[i].name);
    }
    order_item *order = calloc(n ? n : 1, sizeof *order);
    if (!order)
        return vp_fail(err, VP_ERR_NOMEM, NULL, "out of memory");
    size_t hlen;
    char *header = build_header(specs, n, order, &hlen, err);
    if (!header) {
        free(order);
        return -1;
    }
    /* a name of its own: two writers of one folder each rename a whole file of theirs */
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.partial.XXXXXX", path) >= (int)sizeof tmp) {
        free(header);
        free(order);
        return vp_fail(err, VP_ERR_IO, NULL, "path too long: %s", path);
    }
    int fd = mkstemp(tmp);
    FILE *f = fd < 0 ? NULL : fdopen(fd, "wb");
    if (!f) {
        int e = errno;
        if (fd >= 0) {
            close(fd);
            remove(tmp);
        }
        free(header);
        free(order);
        return vp_fail(err, VP_ERR_IO, NULL, "cannot create %s: %s", tmp, strerror(e));
    }
    fchmod(fd, 0644); /* mkstemp's 0600: a model folder others read */
    setvbuf(f, NULL, _IOFBF, 1 << 20);
    unsigned char lenbuf[8];
    for (int i = 0; i < 8; i++)
        lenbuf[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
    int rc = write_all(f, lenbuf, 8, tmp, err);
    if (!rc)
        rc = write_all(f, header, hlen, tmp, err);
    if (!rc)
        rc = write_body(f, tmp, order, n, fill, ctx, err);
    if (fclose(f) != 0 && !rc)
        rc = vp_fail(err, VP_ERR_IO, NULL, "cannot write %s: %s", tmp, strerror(errno));
    if (!rc && rename(tmp, path) != 0)
        rc = vp_fail(err, VP_ERR_IO, NULL, "cannot rename %s to %s: %s", tmp, path,
                     strerror(errno));
    if (rc)
        remove(tmp);
    free(header);
    free(order);
    return rc;
}
