/* Launchers of the CUDA kernels (engine/cuda/k_*.cu), callable from C. Each enqueues
 * its kernel on `stream` and returns the launch status (cudaGetLastError); a zero-sized
 * call launches nothing. Device pointers throughout; bf16 tensors are vp_bf16 (the raw
 * bits) on the C side. Every kernel has a CPU twin in engine/cpu/cpu_ops.h (named in
 * each comment) that tests/gpu/gpu_ops.c compares it with. */
#ifndef VP_CUDA_KERNELS_H
#define VP_CUDA_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime_api.h>

#include "engine/cuda_plan/cuda_plan.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef uint16_t vp_bf16;

/* The 16-bit type of the activations that feed the matrix products (the norms' and
 * activations' outputs, q/k/v, the attention's output): fp16 (the default, bf16 after an
 * overflow: three more mantissa bits at the same tensor-core speed, 6-10x closer to fp32
 * on the 8B shape, tests/gpu/README.md) or bf16 (VPRM_CUDA_ACTIVATIONS). vp_bf16 pointers below
 * carry either, as the launcher's `act` (or the layout's) says. */
typedef enum { VPK_ACT_BF16 = 0, VPK_ACT_F16 = 1 } vpk_act;

/* ---- k_convert.cu: weight upload ---- */

/* Elements [first, first + n) of a [rows][cols] tensor: src (host dtype vp_dtype, pointing
 * at element `first`) -> dst[row * pitch + col] in dst_type (vp_cw_type). f32 / f16 -> bf16
 * rounds to nearest even. */
cudaError_t vpk_convert(cudaStream_t stream, void *dst, int dst_type, const void *src,
                        int src_dtype, size_t first, size_t n, size_t cols, size_t pitch);
/* Elements [first, first + n) of the random tensor `rule` (rand_rule.h), rounded to bf16
 * first when round_bf16 (a bf16 checkpoint), written like vpk_convert. */
cudaError_t vpk_random_fill(cudaStream_t stream, void *dst, int dst_type,
                            const vp_rand_rule *rule, int round_bf16, uint64_t first, size_t n,
                            size_t cols, size_t pitch);
/* x[n] bf16 -> fp16 in place (exact from 2^-14 to 65504; smaller magnitudes lose bits to
 * fp16's subnormals): *overflow (device) += the count of values beyond fp16's range,
 * which become infinities. */
cudaError_t vpk_bf16_to_f16(cudaStream_t stream, vp_bf16 *x, size_t n,
                            unsigned long long *overflow);

/* ---- k_norm.cu: norms (twins vp_cpu_layer_norm / vp_cpu_rms_norm) ---- */

/* Per row r of x[rows][dim] (f32): when res, x[r] += res_scale * res[r] (res_scale NULL =
 * 1) and x is written back; then, when out, out[r * out_stride + d] = act(norm(x[r])):
 * LayerNorm (w, b; b may be NULL) or RMSNorm (rms != 0, w). Statistics in double. */
cudaError_t vpk_norm(cudaStream_t stream, int rms, float *x, size_t rows, int dim,
                     const float *res, const float *res_scale, const float *w, const float *b,
                     float eps, vp_bf16 *out, size_t out_stride, int act);
/* RMSNorm in place over `dim` act values of each of rows rows, stride apart (InternViT
 * q/k normalisation over the full hidden width). */
cudaError_t vpk_rms_norm_bf16(cudaStream_t stream, vp_bf16 *x, size_t rows, int dim,
                              size_t stride, const float *w, float eps, int act);

/* ---- k_head.cu: final RMSNorm + the two LM-head rows ---- */

/* logits[i][2] = {norm(xo[i]) . rows2[0], norm(xo[i]) . rows2[1]}, norm = RMSNorm(norm_w). */
cudaError_t vpk_head(cudaStream_t stream, float *logits, const float *xo, size_t n_out,
                     int hidden, const float *norm_w, float eps, const float *rows2);

/* ---- k_rope.cu (twin vp_cpu_rope_apply) ---- */

/* In place on the packed InternLM2 qkv rows qkv[n][row_stride] ([kv_heads][q_per_kv + 2]
 * [head_dim]: every head but the value heads is rotated). Token t uses table row
 * rope_row[t]: base[row] for row < base_rows, else extra[row - base_rows]; a row is
 * head_dim floats, cos[head_dim / 2] then sin[head_dim / 2]. */
cudaError_t vpk_rope_qkv(cudaStream_t stream, vp_bf16 *qkv, size_t n, size_t row_stride,
                         int kv_heads, int q_per_kv, int head_dim, const float *base,
                         size_t base_rows, const float *extra, const int32_t *rope_row, int act);

/* ---- k_activation.cu (twins vp_cpu_gelu / vp_cpu_silu_gate) ---- */

/* x[n] = gelu(x) (exact, erf), in place in the act type. */
cudaError_t vpk_gelu(cudaStream_t stream, vp_bf16 *x, size_t n, int act);
/* h[rows][inter] = silu(gu[r][i]) * gu[r][inter + i] (gate | up halves of each fp32 row),
 * rounded once to the act type. */
cudaError_t vpk_silu_gate(cudaStream_t stream, vp_bf16 *h, const float *gu, size_t rows,
                          size_t inter, int act);
/* The same from gate | up rows in the act type (fp16 activations: eleven bits each,
 * half the bytes of fp32 to write in the product and read here). */
cudaError_t vpk_silu_gate16(cudaStream_t stream, vp_bf16 *h, const vp_bf16 *gu, size_t rows,
                            size_t inter, int act);

/* ---- k_mlp_gated.cu (twin: the w1 | w3 product, then vp_cpu_silu_gate) ---- */

/* h[rows][inter] = silu(x w13[0..inter)^T) * (x w13[inter..2 inter)^T), x[rows][hidden] and
 * w13[2 inter][hidden] in the act type, one product whose epilogue takes the SiLU-gate
 * from the fp32 sums, rounded once to the act type (Hopper, sm_90a build only). pairs:
 * blocks in clusters of two that share w13's copies (multicast), else one by one. */
cudaError_t vpk_gated_mlp(cudaStream_t stream, vp_bf16 *h, const vp_bf16 *x, const vp_bf16 *w13,
                          size_t rows, size_t inter, size_t hidden, int act, int pairs);
/* Whether vpk_gated_mlp runs here for these sizes (a Hopper GPU, inter a multiple of 128,
 * hidden of 8). */
int vpk_gated_mlp_supports(size_t hidden, size_t inter);
/* Its shared memory allowance; once, before the first call. */
cudaError_t vpk_gated_mlp_setup(void);
/* Row tiles its blocks walk together (16 unless set; gpu_ops' benchmark compares). */
void vpk_gated_mlp_group(int row_tiles);
/* Pairs of its blocks the GPU runs at once (the grid with pairs; 0: none). */
int vpk_gated_mlp_pairs(void);

/* ---- k_patch_embed.cu (twin vp_cpu_patch_embed, with the GEMM in between) ---- */

/* patches[tile * G*G + gy * G + gx][c * P*P + py * P + px] = bf16(tile pixel) (stored in
 * the act type, exactly), columns
 * from channels*P*P to kpad zero. tiles[n_tiles][channels][size][size] f32. */
cudaError_t vpk_im2col(cudaStream_t stream, vp_bf16 *patches, const float *tiles, size_t n_tiles,
                       int channels, int size, int patch, size_t kpad, int act);
/* The same from 8-bit RGB tiles[n_tiles][size][size][3], each byte x of channel c taken
 * as table[c * 256 + x] (vp_tiles_norm_table on the device): equal to vpk_im2col on
 * vp_tiles_normalize's output, bit for bit. */
cudaError_t vpk_im2col_u8(cudaStream_t stream, vp_bf16 *patches, const uint8_t *tiles,
                          const float *table, size_t n_tiles, int size, int patch, size_t kpad,
                          int act);
/* x[tile][0] = cls + pos[0]; x[tile][1 + i] = emb[tile * grid_tokens + i] + pos[1 + i];
 * x[n_tiles][1 + grid_tokens][hidden]. */
cudaError_t vpk_vit_assemble(cudaStream_t stream, float *x, const float *emb, const float *cls,
                             const float *pos, size_t n_tiles, size_t grid_tokens, int hidden);

/* ---- k_pixel_shuffle.cu (twin vp_cpu_pixel_shuffle) ---- */

/* Per tile: x[tile * tile_tokens + 1 + cell][channels] (row 0 is the class token) ->
 * out[tile * (grid/2)^2 + i * grid/2 + j][4 * channels], cells (2i,2j) (2i,2j+1)
 * (2i+1,2j) (2i+1,2j+1). */
cudaError_t vpk_pixel_shuffle(cudaStream_t stream, float *out, const float *x, size_t n_tiles,
                              size_t tile_tokens, size_t grid, int channels);

/* ---- k_embed.cu ---- */

/* x[t] = features[image_row[t]] when image_row (may be NULL) says >= 0, else the bf16
 * embedding row tokens[t] as f32. x[n][hidden]. */
cudaError_t vpk_embed(cudaStream_t stream, float *x, const int32_t *tokens,
                      const int32_t *image_row, size_t n, int hidden, const vp_bf16 *tok_emb,
                      const float *features);
/* dst[i] = src[index[i]], rows of dim floats. */
cudaError_t vpk_gather_rows(cudaStream_t stream, float *dst, const float *src,
                            const int32_t *index, size_t n, int dim);

/* ---- k_attention.cu (twins vp_cpu_attention_causal / vp_cpu_attention_tiles) ---- */

/* Where q, k and v of one token sit in a qkv row: query head h (kv group g = h / q_per_kv)
 * at g * group_stride + q_base + (h % q_per_kv) * head_dim; key and value of group g at
 * g * group_stride + k_base / v_base. InternLM2's packed wqkv: q_per_kv = 4,
 * group_stride = 6 * head_dim, q_base = 0, k_base = 4 * head_dim, v_base = 5 * head_dim.
 * InternViT's [q | k | v]: q_per_kv = 1, group_stride = head_dim, q_base = 0,
 * k_base = hidden, v_base = 2 * hidden. */
typedef struct vpk_attn_layout {
    size_t row_stride;   /* elements between consecutive tokens */
    int heads, q_per_kv, head_dim;
    size_t group_stride, q_base, k_base, v_base;
    int act;             /* vpk_act of q, k, v and the output (0: bf16); the tensor-core
                          * kernels take bf16 only (the simple and rows kernels take both) */
} vpk_attn_layout;

/* ---- k_kv_cache.cu (twin: kv_cache_copy in cpu_language.c) ---- */

/* One layer of the prefix KV cache: cache rows are [2][kv groups][head_dim] bf16 (keys,
 * then values); map[i] = {qkv row, cache row}. The first n_loads entries copy cache ->
 * qkv, the rest qkv -> cache; the two sets must not share cache rows. */
cudaError_t vpk_kv_copy(cudaStream_t stream, vp_bf16 *qkv, const vpk_attn_layout *layout,
                        vp_bf16 *cache, const int32_t *map, size_t n_loads, size_t n_map);

/* Whether the tensor-core kernel handles this layout (head_dim 64 or 128, 16-byte rows). */
int vpk_attention_fast_supports(const vpk_attn_layout *layout, size_t out_stride);
/* Launch shape of the fast kernel: query rows per warp (16 or 32), query heads of one
 * KV group per block (1 or 2; 4 at 32 rows), dividing q_per_kv, and keys per step (64;
 * 32 at 32 rows). */
typedef struct vpk_attn_shape {
    int rows_per_warp, heads_per_block, keys_per_step;
} vpk_attn_shape;
int vpk_attention_shape_ok(const vpk_attn_layout *layout, const vpk_attn_shape *shape);
/* The fastest shape measured for this layout (tests/gpu/README.md). */
vpk_attn_shape vpk_attention_default_shape(const vpk_attn_layout *layout);
/* Raises the fast kernels' shared-memory limits (the wgmma kernel's too where available); call once per device before launching. */
cudaError_t vpk_attention_setup(void);
/* Flash-style attention over a planned work list (plan_attention.c): items[n_items] in
 * device memory; out[token][out_stride] gets head h at h * head_dim (bf16). Softmax in
 * fp32 with an online max; scale = 1 / sqrt(head_dim). shape NULL: the default. */
cudaError_t vpk_attention_fast(cudaStream_t stream, vp_bf16 *out, size_t out_stride,
                               const vp_bf16 *qkv, const vpk_attn_layout *layout,
                               const vpk_attn_shape *shape, const vp_attn_item *items,
                               size_t n_items, float scale);
/* Hopper (sm_90a builds on a compute capability 9 device): whether the wgmma attention
 * can run here. */
int vpk_attention_wgmma_available(void);
/* Its variants: 1 or 2 query heads per block (a warpgroup each), or'ed with
 * VPK_WGMMA_OVERLAP: P V of each key tile runs while the next tile's softmax is computed. */
#define VPK_WGMMA_OVERLAP 4
/* VPK_WGMMA_TMA: the warp-specialised kernel (k_attention_tma.cu), the default where it
 * runs: a producer warp feeds a ring of four key and value stages through the tensor
 * memory accelerator, the consumer warpgroups wait on mbarriers instead of a block barrier
 * per key tile (head size 128 with two heads a block, or 64 with one; implies the
 * overlap). */
#define VPK_WGMMA_TMA 32
/* Its layouts: head_dim 64 or 128, 16-byte rows, heads per block 1 or 2 dividing q_per_kv. */
int vpk_attention_wgmma_supports(const vpk_attn_layout *layout, int variant);
/* Raises its shared-memory limits (vpk_attention_setup calls it). */
cudaError_t vpk_attention_wgmma_setup(void);
/* vt[group][dim][round8(n_tokens)] = the values of qkv transposed, as fp16 (saturated at
 * +-65504), zeros past n_tokens (vp_round8(n_tokens) * kv groups * head_dim elements; the
 * wgmma kernel's input). */
cudaError_t vpk_attention_vt(cudaStream_t stream, uint16_t *vt, const vp_bf16 *qkv,
                             const vpk_attn_layout *layout, size_t n_tokens);
/* The fast kernel's work list and results, on warpgroup products (k_attention_wgmma.cu;
 * P V in fp16); vt from vpk_attention_vt on the same qkv. */
cudaError_t vpk_attention_wgmma(cudaStream_t stream, vp_bf16 *out, size_t out_stride,
                                const vp_bf16 *qkv, const uint16_t *vt, size_t n_tokens,
                                const vpk_attn_layout *layout, int variant,
                                const vp_attn_item *items, size_t n_items, float scale);
/* k_attention_tma.cu, reached through vpk_attention_wgmma's VPK_WGMMA_TMA: whether the
 * layout fits (head 128 with 2 heads a block and an even number of query heads per key
 * head, or head 64 with 1; the driver's tensor map encoder found), its shared-memory
 * limits, and the launch (n_rows: qkv's rows, n_pad: vt's row length; scale_log2 = scale
 * * log2(e)). */
int vpk_attention_tma_supports(const vpk_attn_layout *layout, int heads_per_block);
cudaError_t vpk_attention_tma_setup(void);
/* Blocks of the head_dim (128 or 64) TMA kernel an SM holds (after setup; -1 on error):
 * 1 and 3 by its registers and shared memory, which the GPU checks print. */
int vpk_attention_tma_blocks_per_sm(int head_dim);
cudaError_t vpk_attention_tma(cudaStream_t stream, vp_bf16 *out, size_t out_stride,
                              const vp_bf16 *qkv, const uint16_t *vt, size_t n_rows, size_t n_pad,
                              const vpk_attn_layout *layout, int heads_per_block,
                              const vp_attn_item *items, size_t n_items, float scale_log2);
/* One warp per (token, head), any head_dim <= 256: ranges[n_tokens][3] from
 * vp_attn_token_ranges_* (device memory). The reference the fast kernel is checked
 * against, and the fallback for other head sizes (VPRM_CUDA_ATTENTION=simple forces it). */
cudaError_t vpk_attention_simple(cudaStream_t stream, vp_bf16 *out, size_t out_stride,
                                 const vp_bf16 *qkv, const vpk_attn_layout *layout,
                                 const int32_t *ranges, size_t n_tokens, float scale);
/* The same for the query tokens rows[n_rows] only (device memory, each < the tokens
 * ranges covers): out row i is token rows[i]'s row of vpk_attention_simple. The last
 * layer, whose queries matter only at the score positions. */
cudaError_t vpk_attention_simple_rows(cudaStream_t stream, vp_bf16 *out, size_t out_stride,
                                      const vp_bf16 *qkv, const vpk_attn_layout *layout,
                                      const int32_t *ranges, const int32_t *rows, size_t n_rows,
                                      float scale);
/* The same rows, computed by one block per (row, key-value head) in fp32 (k_attention_rows.cu):
 * equal to vpk_attention_simple_rows up to the order of its sums; falls back to it for
 * layouts the block kernel does not take (unaligned rows, head_dim not a multiple of 8 or
 * over 256, more than 8 query heads per key head). */
cudaError_t vpk_attention_rows(cudaStream_t stream, vp_bf16 *out, size_t out_stride,
                               const vp_bf16 *qkv, const vpk_attn_layout *layout,
                               const int32_t *ranges, const int32_t *rows, size_t n_rows,
                               float scale);

#ifdef __cplusplus
}
#endif

#endif
