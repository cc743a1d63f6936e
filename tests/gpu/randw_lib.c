/* libvprm_randw.so: the CUDA backend's random-weight generator for PyTorch (ctypes), so
 * that tests/gpu/torch_ref.py holds bit-identical bf16 tensors to the ones gpu_8b's
 * backend generated (same rule, same kernel). Built by tests/gpu/build.sh.
 *
 *   vp_randw_open(dims[18], 18, seed, plus, minus, &handle, errbuf, cap) -> 0 / -1
 *     dims: vision hidden, layers, heads, intermediate, patch, image_size, channels,
 *           norm (0 layer_norm, 1 rms_norm), qkv_bias, qk_norm,
 *           llm hidden, layers, heads, kv_heads, head_dim, intermediate, vocab,
 *           init rule (0 spread, 1 plain: vp_init_rule; 17 dims = spread)
 *   vp_randw_count(h), vp_randw_name(h, i), vp_randw_shape(h, i, int64 shape[4]) -> ndim
 *   vp_randw_fill(h, i, device_ptr, dst_f32, cuda_stream) -> cudaError_t (0 = ok): the
 *     whole tensor, contiguous, bf16 (or its bf16 values as f32)
 *   vp_randw_fill_host(h, i, float *dst) -> 0: the same values computed on the host (CPU
 *     checks of the reference; on a GPU the two may differ by one bf16 ulp in rare
 *     elements, see rand_rule.h)
 *   vp_randw_close(h) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/cuda/cuda_kernels.h"
#include "engine/cuda_plan/cuda_plan.h"
#include "engine/model/layout.h"

typedef struct randw {
    vp_model_config cfg;
    vp_layout_entry *list; /* [n] */
    size_t n;
    uint64_t seed;
    int32_t plus, minus;
} randw;

int vp_randw_open(const int64_t *dims, int n_dims, uint64_t seed, int32_t plus, int32_t minus,
                  void **out, char *errbuf, size_t cap);
size_t vp_randw_count(void *h);
const char *vp_randw_name(void *h, size_t i);
int vp_randw_shape(void *h, size_t i, int64_t *shape);
int vp_randw_fill(void *h, size_t i, void *dst, int dst_f32, void *stream);
int vp_randw_fill_host(void *h, size_t i, float *dst);
void vp_randw_close(void *h);

int vp_randw_open(const int64_t *dims, int n_dims, uint64_t seed, int32_t plus, int32_t minus,
                  void **out, char *errbuf, size_t cap)
{
    *out = NULL;
    if (n_dims != 17 && n_dims != 18) {
        snprintf(errbuf, cap, "expected 17 or 18 dims, got %d", n_dims);
        return -1;
    }
    randw *r = calloc(1, sizeof *r);
    if (!r) {
        snprintf(errbuf, cap, "out of memory");
        return -1;
    }
    vp_vision_config *v = &r->cfg.vision;
    vp_llm_config *l = &r->cfg.llm;
    v->hidden = (int)dims[0], v->layers = (int)dims[1], v->heads = (int)dims[2];
    v->intermediate = (int)dims[3], v->patch = (int)dims[4], v->image_size = (int)dims[5];
    v->channels = (int)dims[6], v->norm = dims[7] ? VP_NORM_RMS : VP_NORM_LAYER;
    v->qkv_bias = dims[8] != 0, v->qk_norm = dims[9] != 0;
    l->hidden = (int)dims[10], l->layers = (int)dims[11], l->heads = (int)dims[12];
    l->kv_heads = (int)dims[13], l->head_dim = (int)dims[14], l->intermediate = (int)dims[15];
    l->vocab = (int)dims[16];
    if (n_dims > 17 && dims[17] != 0 && dims[17] != 1) {
        snprintf(errbuf, cap, "rule (dims[17]) must be 0 (spread) or 1 (plain), got %lld",
                 (long long)dims[17]);
        free(r);
        return -1;
    }
    r->cfg.init_rule = n_dims > 17 && dims[17] ? VP_INIT_RULE_PLAIN : VP_INIT_RULE_SPREAD;
    r->seed = seed, r->plus = plus, r->minus = minus;
    vp_error err = {0};
    if (v->patch <= 0 || l->kv_heads <= 0 || l->head_dim <= 0 ||
        vp_layout_build(&r->cfg, NULL, &r->list, &r->n, &err)) {
        snprintf(errbuf, cap, "bad dims: %s", err.message);
        free(r);
        return -1;
    }
    *out = r;
    return 0;
}

size_t vp_randw_count(void *h)
{
    return ((randw *)h)->n;
}

const char *vp_randw_name(void *h, size_t i)
{
    randw *r = h;
    return i < r->n ? r->list[i].name : NULL;
}

int vp_randw_shape(void *h, size_t i, int64_t *shape)
{
    randw *r = h;
    if (i >= r->n)
        return -1;
    memcpy(shape, r->list[i].shape, sizeof r->list[i].shape);
    return r->list[i].ndim;
}

int vp_randw_fill(void *h, size_t i, void *dst, int dst_f32, void *stream)
{
    randw *r = h;
    if (i >= r->n)
        return (int)cudaErrorInvalidValue;
    const vp_layout_entry *e = &r->list[i];
    vp_rand_rule rule;
    vp_error err = {0};
    if (vp_rand_rule_make(&r->cfg, e->name, e->init, e->ndim, e->shape, r->seed, r->plus,
                          r->minus, &rule, &err))
        return (int)cudaErrorInvalidValue;
    size_t n = vp_layout_numel(e);
    return (int)vpk_random_fill((cudaStream_t)stream, dst, dst_f32 ? VP_CW_F32 : VP_CW_BF16, &rule,
                                1, 0, n, n, n);
}

int vp_randw_fill_host(void *h, size_t i, float *dst)
{
    randw *r = h;
    if (i >= r->n)
        return -1;
    const vp_layout_entry *e = &r->list[i];
    vp_rand_rule rule;
    vp_error err = {0};
    if (vp_rand_rule_make(&r->cfg, e->name, e->init, e->ndim, e->shape, r->seed, r->plus,
                          r->minus, &rule, &err))
        return -1;
    vp_rand_rule_fill(&rule, 0, vp_layout_numel(e), true, dst);
    return 0;
}

void vp_randw_close(void *h)
{
    randw *r = h;
    if (!r)
        return;
    free(r->list);
    free(r);
}
