/* .npy writer and reader (NumPy format 1.0/2.0: magic, header length, a Python dict
 * literal padded to a 64-byte boundary, then the raw little-endian array). */
#include "engine/util/npy.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *dtype_descr(vp_npy_dtype dtype)
{
    switch (dtype) {
    case VP_NPY_F32: return "<f4";
    case VP_NPY_U8: return "|u1";
    case VP_NPY_I32: return "<i4";
    }
    return "?";
}

size_t vp_npy_dtype_size(vp_npy_dtype dtype)
{
    return dtype == VP_NPY_U8 ? 1 : 4;
}

int vp_npy_write(const char *path, vp_npy_dtype dtype, const size_t *shape, int ndim,
                 const void *data, vp_error *err)
{
    if (ndim < 0 || ndim > VP_NPY_MAX_DIMS)
        return vp_fail(err, VP_ERR_INTERNAL, NULL, "npy %s: %d dimensions (max %d)", path, ndim,
                       VP_NPY_MAX_DIMS);
    char dict[512];
    size_t count = 1;
    int n = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (",
                     dtype_descr(dtype));
    for (int d = 0; d < ndim; d++) {
        count *= shape[d];
        n += snprintf(dict + n, sizeof dict - (size_t)n, "%zu,%s", shape[d],
                      d + 1 < ndim ? " " : "");
    }
    /* "(5,)" keeps the comma of a 1-d shape; longer shapes read "(2, 3)". */
    if (ndim > 1)
        n--;
    n += snprintf(dict + n, sizeof dict - (size_t)n, "), }");
    /* Pad with spaces so that magic(6) + version(2) + length(2) + dict + '\n' is a multiple of 64. */
    size_t total = 10 + (size_t)n + 1;
    size_t padded = (total + 63) / 64 * 64;
    char header[640];
    memcpy(header, "\x93NUMPY\x01\x00", 8);
    size_t hlen = padded - 10;
    header[8] = (char)(hlen & 0xff);
    header[9] = (char)(hlen >> 8);
    memcpy(header + 10, dict, (size_t)n);
    memset(header + 10 + n, ' ', padded - total);
    header[padded - 1] = '\n';

    FILE *f = fopen(path, "wb");
    if (!f)
        return vp_fail(err, VP_ERR_IO, NULL, "cannot create %s: %s", path, strerror(errno));
    size_t bytes = count * vp_npy_dtype_size(dtype);
    int ok = fwrite(header, 1, padded, f) == padded;
    if (ok && bytes)
        ok = fwrite(data, 1, bytes, f) == bytes;
    if (fclose(f) != 0)
        ok = 0;
    if (!ok)
        return vp_fail(err, VP_ERR_IO, NULL, "cannot write %s: %s", path, strerror(errno));
    return 0;
}

/* Value of 'key' in the header dict: pointer just after "'key':" and spaces. */
static const char *dict_value(const char *dict, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof pat, "'%s':", key);
    const char *p = strstr(dict, pat);
    if (!p)
        return NULL;
    p += strlen(pat);
    while (*p == ' ')
        p++;
    return p;
}

static int parse_header(const char *path, const char *dict, vp_npy_array *out, vp_error *err)
{
    const char *descr = dict_value(dict, "descr");
    const char *fortran = dict_value(dict, "fortran_order");
    const char *shape = dict_value(dict, "shape");
    if (!descr || !fortran || !shape || *shape != '(')
        return vp_fail(err, VP_ERR_BAD_REQUEST, NULL, "npy %s: malformed header", path);
    if (!strncmp(descr, "'<f4'", 5))
        out->dtype = VP_NPY_F32;
    else if (!strncmp(descr, "'|u1'", 5))
        out->dtype = VP_NPY_U8;
    else if (!strncmp(descr, "'<i4'", 5))
        out->dtype = VP_NPY_I32;
    else
        return vp_fail(err, VP_ERR_UNSUPPORTED, NULL,
                       "npy %s: dtype %.8s not supported (<f4, |u1, <i4 only)", path, descr);
    if (strncmp(fortran, "False", 5))
        return vp_fail(err, VP_ERR_UNSUPPORTED, NULL, "npy %s: Fortran order not supported", path);
    out->ndim = 0;
    out->count = 1;
    const char *p = shape + 1;
    for (;;) {
        while (*p == ' ' || *p == ',')
            p++;
        if (*p == ')')
            break;
        char *end;
        errno = 0;
        unsigned long long v = strtoull(p, &end, 10);
        if (end == p || errno || out->ndim == VP_NPY_MAX_DIMS)
            return vp_fail(err, VP_ERR_BAD_REQUEST, NULL, "npy %s: malformed shape", path);
        out->shape[out->ndim++] = (size_t)v;
        if (v && out->count > SIZE_MAX / v)
            return vp_fail(err, VP_ERR_TOO_LARGE, NULL, "npy %s: shape overflows", path);
        out->count *= (size_t)v;
        p = end;
    }
    return 0;
}

int vp_npy_read(const char *path, vp_npy_array *out, vp_error *err)
{
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f)
        return vp_fail(err, VP_ERR_IO, NULL, "cannot open %s: %s", path, strerror(errno));
    unsigned char pre[12];
    char *dict = NULL;
    int rc = -1;
    if (fread(pre, 1, 10, f) != 10 || memcmp(pre, "\x93NUMPY", 6)) {
        vp_fail(err, VP_ERR_BAD_REQUEST, NULL, "%s is not a .npy file", path);
        goto done;
    }
    size_t hlen;
    if (pre[6] == 1) {
        hlen = (size_t)pre[8] | (size_t)pre[9] << 8;
    } else if (pre[6] == 2 || pre[6] == 3) {
        if (fread(pre + 10, 1, 2, f) != 2) {
            vp_fail(err, VP_ERR_BAD_REQUEST, NULL, "npy %s: truncated header", path);
            goto done;
        }
        hlen = (size_t)pre[8] | (size_t)pre[9] << 8 | (size_t)pre[10] << 16 | (size_t)pre[11] << 24;
    } else {
        vp_fail(err, VP_ERR_UNSUPPORTED, NULL, "npy %s: format version %d", path, pre[6]);
        goto done;
    }
    if (hlen > (1u << 20)) {
        vp_fail(err, VP_ERR_BAD_REQUEST, NULL, "npy %s: header of %zu bytes", path, hlen);
        goto done;
    }
    dict = malloc(hlen + 1);
    if (!dict || fread(dict, 1, hlen, f) != hlen) {
        vp_fail(err, VP_ERR_BAD_REQUEST, NULL, "npy %s: truncated header", path);
        goto done;
    }
    dict[hlen] = 0;
    if (parse_header(path, dict, out, err))
        goto done;
    size_t bytes = out->count * vp_npy_dtype_size(out->dtype);
    out->data = malloc(bytes ? bytes : 1);
    if (!out->data) {
        vp_fail(err, VP_ERR_NOMEM, NULL, "npy %s: out of memory for %zu bytes", path, bytes);
        goto done;
    }
    if (fread(out->data, 1, bytes, f) != bytes) {
        vp_fail(err, VP_ERR_BAD_REQUEST, NULL, "npy %s: data shorter than shape", path);
        goto done;
    }
    rc = 0;
done:
    free(dict);
    fclose(f);
    if (rc)
        vp_npy_free(out);
    return rc;
}

void vp_npy_free(vp_npy_array *a)
{
    free(a->data);
    a->data = NULL;
}
