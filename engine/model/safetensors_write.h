/* Writing safetensors files, streamed: the header is computed from the shapes, then each
 * tensor's bytes are produced chunk by chunk by a callback, so a 16 GB checkpoint never
 * sits in memory. */
#ifndef VP_SAFETENSORS_WRITE_H
#define VP_SAFETENSORS_WRITE_H

#include <stddef.h>
#include <stdint.h>

#include "engine/model/tensor.h"
#include "engine/util/err.h"

typedef struct vp_st_spec {
    const char *name;
    vp_dtype dtype;
    int ndim;
    int64_t shape[VP_MAX_DIMS];
} vp_st_spec;

/* Writes elements [start, start + n) of specs[index], in its dtype, into dst. */
typedef int (*vp_st_fill_fn)(void *ctx, size_t index, size_t start, size_t n, void *dst,
                             vp_error *err);

/* Writes path (through path.partial, renamed at the end). The header JSON has sorted
 * keys, __metadata__ {"format": "pt"}, and is padded with spaces so the data starts at a
 * multiple of 8; tensors are laid out widest dtype first, then by name, back to back,
 * so each is aligned to its element size. */
int vp_st_write(const char *path, const vp_st_spec *specs, size_t n, vp_st_fill_fn fill,
                void *ctx, vp_error *err);

/* Bytes one spec occupies. */
size_t vp_st_spec_bytes(const vp_st_spec *s);

#endif
