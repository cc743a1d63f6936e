/* A read-only view of one tensor inside a memory-mapped safetensors file. */
#ifndef VP_TENSOR_H
#define VP_TENSOR_H

#include <stddef.h>
#include <stdint.h>

typedef enum { VP_DT_F32 = 0, VP_DT_F16, VP_DT_BF16 } vp_dtype;

#define VP_MAX_DIMS 4

typedef struct vp_tensor {
    const char *name;           /* owned by the safetensors table */
    vp_dtype dtype;
    int ndim;
    int64_t shape[VP_MAX_DIMS];
    const void *data;           /* into the mapping; NULL for an absent optional tensor */
    size_t nbytes;
} vp_tensor;

size_t vp_dtype_size(vp_dtype dt);
const char *vp_dtype_name(vp_dtype dt);
size_t vp_tensor_numel(const vp_tensor *t);
/* Element i converted to float (any dtype). */
float vp_tensor_get(const vp_tensor *t, size_t i);
/* Convert the whole tensor to fp32 into dst[numel]. */
void vp_tensor_to_f32(const vp_tensor *t, float *dst);

/* bf16 / f16 <-> f32 conversions (round to nearest even). */
float vp_bf16_to_f32(uint16_t h);
uint16_t vp_f32_to_bf16(float f);
float vp_f16_to_f32(uint16_t h);
uint16_t vp_f32_to_f16(float f);

/* Convert n floats into dst in dtype dt (dst holds n * vp_dtype_size(dt) bytes). */
void vp_f32_to_dtype(const float *src, size_t n, vp_dtype dt, void *dst);
/* Parse a safetensors dtype string ("BF16", "F16", "F32"); -1 when unsupported. */
int vp_dtype_parse(const char *s, vp_dtype *out);

#endif
