/* The CUDA backend (vp_backend_cuda in engine/backend.h, built with `make CUDA=1`):
 * bf16 weights resident on the GPU, one packed forward pass per batch with shared
 * prefixes, cuBLASLt for every matrix product, its own kernels for the rest
 * (engine/cuda/k_*.cu), planning on the host in plain C (engine/cuda_plan).
 *
 * Numerics: weights bf16 as stored, converted exactly to fp16 with the matrix inputs in
 * fp16 (VPRM_CUDA_ACTIVATIONS=auto, the default; bf16 for good after a pass overflows
 * fp16, or with =bf16), accumulation fp32; the residual streams,
 * norms statistics (double), softmax (fp32), RoPE angles (host double, as the CPU twin),
 * image features and the two head logits stay in fp32; the MLP's gate and up products
 * too with bf16 activations (rounded once, as their SiLU-gated product; with fp16 ones
 * they are written in fp16, whose rounding is eight times finer). The CPU backend (fp32) is the reference
 * it is checked against (tests/gpu).
 *
 * Attention: on Hopper (an sm_90a build on a compute capability 9 device) both towers run
 * the warp-specialised wgmma kernel fed by TMA (k_attention_tma.cu), or for layouts it
 * does not take the cp.async one (k_attention_wgmma.cu); elsewhere mma.sync
 * (k_attention.cu). Environment, for checks and benchmarks: VPRM_CUDA_ATTENTION=simple
 * (one warp per query, fp32, slow), wgmma1 / wgmma2 (the cp.async wgmma kernel, 1 or 2
 * heads per block; + "o": overlapped), wgmma2t (the TMA kernel), or ROWSxHEADSxKEYS (the
 * mma.sync kernel's launch shape, bf16 only). */
#ifndef VP_CUDA_H
#define VP_CUDA_H

#include <stddef.h>
#include <stdint.h>

#include "engine/backend.h"
#include "engine/model/config.h"
#include "engine/model/weights.h"
#include "engine/util/err.h"

extern const vp_backend_ops vp_backend_cuda;

/* Like vp_backend_cuda.init from a config and weights built by hand (no vp_model); cfg is
 * copied (except system_message); w must outlive the backend (the LM head rows are read
 * from it per batch). opt->max_tokens / max_tiles of 0 mean 16384 / 64. */
int vp_cuda_init_weights(vp_backend **out, const vp_model_config *cfg, const vp_weights *w,
                         const vp_backend_options *opt, vp_error *err);

/* A backend whose weights are `vprm mkmodel --seed seed` values for cfg (bf16), generated
 * on the GPU: the full 8B shape starts in seconds with no checkpoint file. plus_id and
 * minus_id are the LM-head rows mkmodel scales (the tokenizer's "+" and "-"). */
int vp_cuda_init_random(vp_backend **out, const vp_model_config *cfg, uint64_t seed,
                        int32_t plus_id, int32_t minus_id, const vp_backend_options *opt,
                        vp_error *err);

/* Vision encoder + projector alone: tiles[n_tiles][C][S][S] (host) -> features
 * [n_tiles * num_image_token][llm hidden] (host), for the GPU checks. */
int vp_cuda_vision(vp_backend *b, const float *tiles, size_t n_tiles, float *features,
                   vp_error *err);

/* Bytes of the weight arena and of the working memory; the attention kernels in use. */
size_t vp_cuda_weight_bytes(const vp_backend *b);
size_t vp_cuda_workspace_bytes(const vp_backend *b);
const char *vp_cuda_attention_kind(const vp_backend *b);

#endif
