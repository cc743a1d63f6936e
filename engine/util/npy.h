/* NumPy .npy files (format version 1.0, little-endian, C order): the exchange format
 * between vprm's tools and the Python oracles. */
#ifndef VP_NPY_H
#define VP_NPY_H

#include <stddef.h>
#include <stdint.h>

#include "engine/util/err.h"

typedef enum { VP_NPY_F32, VP_NPY_U8, VP_NPY_I32 } vp_npy_dtype;

#define VP_NPY_MAX_DIMS 8

/* Bytes of one element of a dtype. */
size_t vp_npy_dtype_size(vp_npy_dtype dtype);

/* Writes data[shape[0]]...[shape[ndim-1]] (C order) to path. ndim 0..VP_NPY_MAX_DIMS. */
int vp_npy_write(const char *path, vp_npy_dtype dtype, const size_t *shape, int ndim,
                 const void *data, vp_error *err);

typedef struct vp_npy_array {
    vp_npy_dtype dtype;
    int ndim;
    size_t shape[VP_NPY_MAX_DIMS];
    size_t count;   /* product of shape */
    void *data;     /* [count] elements of dtype, heap (free with vp_npy_free) */
} vp_npy_array;

/* Reads a .npy of dtype <f4, |u1 or <i4 in C order; anything else is refused. */
int vp_npy_read(const char *path, vp_npy_array *out, vp_error *err);
void vp_npy_free(vp_npy_array *a);

#endif
