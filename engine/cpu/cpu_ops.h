/* The fp32 operations of the model, as plain functions on row-major float arrays.
 * They are the readable reference (and the CPU twins of the CUDA kernels): every
 * output element is computed by the same code in the same order wherever its row
 * sits in a batch and whichever thread computes it, so packing never changes a bit.
 *
 * Shapes are written [rows][cols]. A pool argument may be NULL (single thread). */
#ifndef VP_CPU_OPS_H
#define VP_CPU_OPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/backend.h"
#include "engine/cpu/cpu_pool.h"
#include "engine/util/err.h"

/* ---- ops_matmul.c ---- */

/* Dot product of a[n] and b[n]: eight fp32 partial sums over k mod 8, combined in a
 * fixed order, then the tail. Used by matmul and attention alike. */
float vp_cpu_dot(const float *a, const float *b, size_t n);

/* out[i] = vp_cpu_dot(x, wi, n) for the four vectors w0..w3 (same bits), sharing the
 * loads of x. */
void vp_cpu_dot4(const float *x, const float *w0, const float *w1, const float *w2,
                 const float *w3, size_t n, float out[4]);

/* y[n][out] = x[n][in] . w[out][in]^T + b[out]   (b may be NULL; y must not overlap x).
 * Element (i, o) equals vp_cpu_dot(x[i], w[o], in) + b[o] exactly. */
void vp_cpu_matmul(vp_pool *pool, float *y, const float *x, const float *w, const float *b,
                   size_t n, size_t in, size_t out);

/* ---- ops_norm.c (mean and variance accumulated in double) ---- */

/* y[n][dim] = (x - mean) / sqrt(var + eps) * w + b   (b may be NULL; y may equal x). */
void vp_cpu_layer_norm(float *y, const float *x, const float *w, const float *b, size_t n,
                       size_t dim, float eps);
/* y[n][dim] = w * x / sqrt(mean(x^2) + eps)   (y may equal x). */
void vp_cpu_rms_norm(float *y, const float *x, const float *w, size_t n, size_t dim, float eps);

/* ---- ops_activation.c (computed in double, rounded once) ---- */

/* x[n] = 0.5 x (1 + erf(x / sqrt 2)), in place: exact GELU. */
void vp_cpu_gelu(float *x, size_t n);
/* gate[n] = silu(gate) * up = gate / (1 + exp(-gate)) * up, in place. */
void vp_cpu_silu_gate(float *gate, const float *up, size_t n);

/* ---- ops_rope.c: rotary embedding, Hugging Face "rotate half" layout ---- */

/* RoPE base for a sequence of full length L: theta, or under dynamic NTK scaling when
 * L > max_pos, theta * (factor*L/max_pos - (factor-1))^(head_dim/(head_dim-2)). */
double vp_cpu_rope_base(double theta, bool dynamic, double factor, int max_pos, size_t L,
                        int head_dim);
/* cos[head_dim/2], sin[head_dim/2] for one position: inv_freq[d] = base^(-2d/head_dim)
 * and angle = position * inv_freq[d] computed in double, then rounded to float. */
void vp_cpu_rope_table(float *cos_out, float *sin_out, int32_t position, double base,
                       int head_dim);
/* x[n_heads][head_dim] of one token, in place: dimension d pairs with d + head_dim/2:
 * x[d]' = x[d] cos - x[d+h] sin, x[d+h]' = x[d+h] cos + x[d] sin. */
void vp_cpu_rope_apply(float *x, size_t n_heads, int head_dim, const float *cos_t,
                       const float *sin_t);

/* ---- ops_attention.c: softmax(q k^T / sqrt(head_dim)) v, max-subtracted ---- */

/* Packed causal attention with shared prefixes and grouped-query heads.
 * q[n_tokens][heads][head_dim], k, v [n_tokens][kv_heads][head_dim],
 * out[n_tokens][heads][head_dim]. A token of seqs[s] sees every token of
 * seqs[seqs[s].prefix_seq] (when >= 0) and then its own sequence's tokens up to and
 * including itself. Query head h uses kv head h / (heads / kv_heads). Tokens outside
 * every sequence are left untouched. A sequence starting at or past n_tokens is a cached
 * prefix: keys and values only (k and v hold its rows), no queries. Fails only when scratch memory runs out. */
int vp_cpu_attention_causal(vp_pool *pool, float *out, const float *q, const float *k,
                            const float *v, size_t n_tokens, int heads, int kv_heads,
                            int head_dim, const vp_seq *seqs, size_t n_seqs, vp_error *err);
/* The same for the query tokens rows[n_rows] only: out[n_rows][heads][head_dim], row i
 * exactly the row vp_cpu_attention_causal gives token rows[i] (the last layer needs only
 * the score rows). */
int vp_cpu_attention_causal_rows(vp_pool *pool, float *out, const float *q, const float *k,
                                 const float *v, size_t n_tokens, const int32_t *rows,
                                 size_t n_rows, int heads, int kv_heads, int head_dim,
                                 const vp_seq *seqs, size_t n_seqs, vp_error *err);

/* Bidirectional attention inside each tile: q, k, v, out [n_tiles * tile_tokens][heads]
 * [head_dim]; token i sees all tokens of its own tile. */
int vp_cpu_attention_tiles(vp_pool *pool, float *out, const float *q, const float *k,
                           const float *v, size_t n_tiles, size_t tile_tokens, int heads,
                           int head_dim, vp_error *err);

/* ---- ops_pixel_shuffle.c ---- */

/* Pixel shuffle v2 with ratio 0.5: in[grid][grid][channels] (row-major cells) ->
 * out[grid/2][grid/2][4*channels], where out (i, j) is the concatenation of cells
 * (2i, 2j), (2i, 2j+1), (2i+1, 2j), (2i+1, 2j+1). grid must be even. */
void vp_cpu_pixel_shuffle(float *out, const float *in, size_t grid, size_t channels);

/* ---- ops_patch_embed.c ---- */

/* Stride-P convolution with PxP kernels (patch embedding):
 * tile[channels][size][size], w[hidden][channels][patch][patch], b[hidden] ->
 * out[(size/patch)^2][hidden], tokens row-major over the patch grid.
 * scratch[(size/patch)^2][channels*patch*patch] holds the unfolded patches. */
void vp_cpu_patch_embed(vp_pool *pool, float *out, float *scratch, const float *tile,
                        const float *w, const float *b, int channels, int size, int patch,
                        int hidden);

#endif
