/* Host-side planning for the CUDA backend (engine/cuda), in plain C with no CUDA header,
 * so that it is compiled into every build and unit-tested under ASan on machines
 * without a GPU (tests/unit/test_cuda_plan_*.c). engine/cuda only launches what these
 * functions decide:
 *   - attention work lists: which query rows a thread block owns and which keys it sees
 *     (a sequence's shared prefix in full, then its own tokens causally; or one vision
 *     tile in full), ordered longest first so the block scheduler balances them;
 *   - RoPE table rows: every token points at a row of cos/sin computed on the host in
 *     double exactly like the CPU twin (vp_cpu_rope_table);
 *   - the device weight arena: element type, padding and offset of every tensor;
 *   - the working memory: one allocation sized once for max_tokens / max_tiles, the
 *     vision and language scratch sharing the same bytes (they never live together);
 *   - the useful FLOPs of a batch (MFU reporting, PERF.md's cost model).
 * Every size is size_t and every product is checked for overflow. */
#ifndef VP_CUDA_PLAN_H
#define VP_CUDA_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/backend.h"
#include "engine/cuda_plan/rand_rule.h"
#include "engine/model/config.h"
#include "engine/model/layout.h"
#include "engine/util/err.h"

/* ---- attention work list (plan_attention.c) ---- */

/* Query rows of one work item: the fast kernel's tile height. */
#define VP_ATTN_BQ 64

/* One thread block's work (per head): queries [q_begin, q_end) of one sequence or one
 * vision tile. Query i sees keys [full_begin, full_end) without a mask, then, when
 * causal_begin >= 0, keys [causal_begin, i]. The two ranges never overlap. Indices are
 * rows of the packed token (or tile-token) arrays. */
typedef struct vp_attn_item {
    int32_t q_begin, q_end;
    int32_t full_begin, full_end; /* empty when equal */
    int32_t causal_begin;         /* -1 = no causal range */
    int32_t keys;                 /* keys the last query row sees: the item's cost */
} vp_attn_item;

/* Upper bound of the items vp_attn_plan_causal makes for these sequences. */
size_t vp_attn_causal_items_max(size_t n_tokens, size_t n_seqs, int bq);
/* Items for a validated batch's sequences (vp_batch_validate), longest first (ties in
 * token order). A sequence with prefix_seq >= 0 sees that whole sequence in full. A
 * sequence starting at or past n_tokens is a cached prefix (key rows only): no items. */
int vp_attn_plan_causal(const vp_seq *seqs, size_t n_seqs, size_t n_tokens, int bq,
                        vp_attn_item *items, size_t cap, size_t *n_items, vp_error *err);
/* Items for n_tiles tiles of tile_tokens rows, bidirectional inside each tile. All have
 * the same cost, so they stay in tile order: tile t's items are
 * [t * per_tile, (t + 1) * per_tile) with per_tile = ceil(tile_tokens / bq), and the
 * items of the first k tiles are a prefix of the list. */
size_t vp_attn_tile_items(size_t n_tiles, size_t tile_tokens, int bq);
int vp_attn_plan_tiles(size_t n_tiles, size_t tile_tokens, int bq, vp_attn_item *items,
                       size_t cap, size_t *n_items, vp_error *err);

/* Per-token key ranges for the simple (one warp per query) kernel, derived directly from
 * the sequences, independently of the item planner: ranges[t * 3 + {0, 1, 2}] =
 * {full_begin, full_end, causal_begin} for t < n_tokens (cached prefixes have no rows). */
int vp_attn_token_ranges_causal(const vp_seq *seqs, size_t n_seqs, size_t n_tokens,
                                int32_t *ranges, vp_error *err);
void vp_attn_token_ranges_tiles(size_t n_tiles, size_t tile_tokens, int32_t *ranges);

/* ---- RoPE rows (plan_rope.c) ---- */

/* Rows of the table built once at init for base theta: positions 0..rows-1. */
#define VP_ROPE_TABLE_MAX ((size_t)65536)
size_t vp_rope_base_rows(const vp_llm_config *l);

/* A row computed per batch: a token whose sequence has a dynamic-NTK base other than
 * theta, or whose position is past the init-time table. */
typedef struct vp_rope_extra {
    int32_t position;
    double base;
} vp_rope_extra;

/* row_of[t] = table row of token t: its position when its sequence's base is theta and
 * the position < base_rows, else base_rows + k with extra[k] = {position, base}
 * (extra holds up to n_tokens entries). Refuses, like the CPU backend, a sequence whose
 * base differs from its prefix sequence's (the prefix's keys are rotated once). */
int vp_rope_plan(const vp_batch *b, const vp_llm_config *l, size_t base_rows, int32_t *row_of,
                 vp_rope_extra *extra, size_t *n_extra, vp_error *err);

/* ---- device weights (plan_weights.c) ---- */

typedef enum { VP_CW_BF16 = 0, VP_CW_F32 = 1 } vp_cw_type;

typedef enum {
    /* vision embeddings */
    VP_CW_CLASS_EMB, VP_CW_PATCH_W, VP_CW_PATCH_B, VP_CW_POS_EMB,
    /* vision layer */
    VP_CW_V_NORM1_W, VP_CW_V_NORM1_B, VP_CW_V_QKV_W, VP_CW_V_QKV_B, VP_CW_V_Q_NORM,
    VP_CW_V_K_NORM, VP_CW_V_PROJ_W, VP_CW_V_PROJ_B, VP_CW_V_LS1, VP_CW_V_LS2, VP_CW_V_NORM2_W,
    VP_CW_V_NORM2_B, VP_CW_V_FC1_W, VP_CW_V_FC1_B, VP_CW_V_FC2_W, VP_CW_V_FC2_B,
    /* projector */
    VP_CW_PN_W, VP_CW_PN_B, VP_CW_P1_W, VP_CW_P1_B, VP_CW_P2_W, VP_CW_P2_B,
    /* language model */
    VP_CW_TOK_EMB, VP_CW_L_ATTN_NORM, VP_CW_L_WQKV, VP_CW_L_WO, VP_CW_L_FFN_NORM, VP_CW_L_W1,
    VP_CW_L_W3, VP_CW_L_W2, VP_CW_NORM, VP_CW_OUTPUT,
    VP_CW_FIELD_COUNT
} vp_cw_field;

/* The vision tower's and the projector's fields (all before the language model's):
 * they take the vision tower's activation type. */
static inline bool vp_cw_field_is_vision(vp_cw_field f)
{
    return f < VP_CW_TOK_EMB;
}

/* One checkpoint tensor and where it lives on the device. */
typedef struct vp_cw_entry {
    char name[96];           /* checkpoint name */
    vp_init_kind init;       /* how mkmodel fills it (random weights) */
    int ndim;
    int64_t shape[VP_MAX_DIMS];
    vp_cw_field field;
    int layer;               /* layer index, -1 for tensors outside the layers */
    size_t rows, cols;       /* the tensor as a [rows][cols] matrix (cols: trailing dims) */
    bool on_device;          /* false: output.weight (its two rows are fetched per batch) */
    vp_cw_type type;         /* element type on the device */
    size_t offset;           /* bytes from the start of the weight arena */
    size_t pitch;            /* elements between consecutive rows on the device (>= cols) */
} vp_cw_entry;

typedef struct vp_cw_plan {
    vp_cw_entry *e;          /* [n] in checkpoint-layout order */
    size_t n;
    size_t arena_bytes;      /* bytes of the weight arena */
    size_t device_params;    /* elements held on the device (padding excluded) */
} vp_cw_plan;

/* Element type on the device, by field: matrices bf16; a bias takes the output type of
 * its matrix product (bf16 for qkv / fc1 / mlp1.1, fp32 for products that feed the fp32
 * residual stream or the features); norms, layer scales, embeddings added to the
 * residual stream fp32. Exposed for the tests. */
vp_cw_type vp_cw_field_type(vp_cw_field f);
/* Row length the patch-embedding matrix is padded to: a multiple of 8 elements, so
 * that its rows (and the unfolded patches) start on 16-byte boundaries. */
size_t vp_cw_pad_cols(size_t cols);
/* Builds the plan for cfg: offsets 256-byte aligned, except that feed_forward.w3 of a
 * layer directly follows w1 (one [2I][H] gate+up matrix, one matrix product). */
int vp_cw_plan_build(const vp_model_config *cfg, vp_cw_plan *p, vp_error *err);
void vp_cw_plan_free(vp_cw_plan *p);
/* Entry of (field, layer), or NULL. */
const vp_cw_entry *vp_cw_plan_find(const vp_cw_plan *p, vp_cw_field f, int layer);

/* ---- random weights (rand_rule.c, values in rand_rule.h) ---- */

/* The rule mkmodel fills tensor (name, init, shape) with for this seed; plus and minus are
 * the LM-head rows it scales ("+" and "-" of the tokenizer). */
int vp_rand_rule_make(const vp_model_config *cfg, const char *name, vp_init_kind init,
                      int ndim, const int64_t *shape, uint64_t seed, int32_t plus,
                      int32_t minus, vp_rand_rule *r, vp_error *err);
/* Host evaluation of n values from element start, rounded to bf16 like a bf16 checkpoint
 * (bf16 true) or kept as float. */
void vp_rand_rule_fill(const vp_rand_rule *r, uint64_t start, size_t n, bool bf16, float *out);

/* ---- working memory (plan_workspace.c) ---- */

typedef enum {
    /* persistent: live for the whole forward */
    VP_WS_FEATURES,   /* f32 [max_tiles * T][H] image features */
    VP_WS_LOGITS,     /* f32 [max_tokens][2] */
    VP_WS_TOKENS,     /* i32 [max_tokens] */
    VP_WS_IMAGE_ROW,  /* i32 [max_tokens] */
    VP_WS_ROPE_ROW,   /* i32 [max_tokens] */
    VP_WS_OUT_INDEX,  /* i32 [max_tokens] */
    VP_WS_ITEMS,      /* vp_attn_item [max_items] language */
    VP_WS_VITEMS,     /* vp_attn_item [max_vitems] one vision chunk */
    VP_WS_RANGES,     /* i32 [max_tokens][3] language: simple kernel, last layer */
    VP_WS_VRANGES,    /* i32 [chunk rows][3] vision, simple kernel */
    VP_WS_ROPE_EXTRA, /* f32 [max_tokens][head_dim] per-batch RoPE rows (cos | sin) */
    VP_WS_HEAD,       /* f32 [2][H] the "+" and "-" rows of the LM head */
    VP_WS_KV_MAP,     /* i32 [max_tokens][2] prefix KV cache copies: {qkv row, cache row} */
    VP_WS_GEMM,       /* cuBLASLt workspace */
    /* vision scratch, one chunk of tiles (R = chunk * Tt rows) */
    VP_WS_TILES,      /* f32 [chunk][C][S][S] */
    VP_WS_PATCHES,    /* bf16 [chunk * G*G][Kpad] */
    VP_WS_VX,         /* f32 [R][Hv] residual stream */
    VP_WS_VY,         /* f32 [R][Hv] block output / patch embedding */
    VP_WS_VXN,        /* bf16 [R][Hv] */
    VP_WS_VQKV,       /* bf16 [R][3 Hv] */
    VP_WS_VATTN,      /* bf16 [R][Hv] */
    VP_WS_VH,         /* bf16 [R][Iv] */
    VP_WS_VVT,        /* f16 [heads][head_dim][round8(R)] values transposed (wgmma attention) */
    VP_WS_SHUF,       /* f32 [chunk * T][4 Hv] pixel-shuffled */
    VP_WS_PN,         /* bf16 [chunk * T][4 Hv] normalised */
    VP_WS_P1,         /* bf16 [chunk * T][H] */
    /* language scratch (max_tokens rows) */
    VP_WS_X,          /* f32 [N][H] residual stream */
    VP_WS_XN,         /* bf16 [N][H] */
    VP_WS_QKV,        /* bf16 [N][Q + 2 KV] */
    VP_WS_ATTN,       /* bf16 [N][Q] */
    VP_WS_VT,         /* f16 [kv_heads][head_dim][round8(N)] values transposed (wgmma attention) */
    VP_WS_GU,         /* f32 [mlp_chunk][2 I] gate | up (fp16 with fp16 activations; none
                       * with the fused MLP kernel) */
    VP_WS_H,          /* bf16 [mlp_chunk][I] */
    VP_WS_XO,         /* f32 [N][H] output rows */
    VP_WS_COUNT
} vp_ws_id;

typedef enum { VP_WS_PERSIST, VP_WS_VISION, VP_WS_LANGUAGE } vp_ws_phase;

/* Token counts padded for the transposed values (16-byte rows of 8 bf16). */
static inline size_t vp_round8(size_t n)
{
    return (n + 7) / 8 * 8;
}

#define VP_WS_ALIGN ((size_t)256)
#define VP_GEMM_WORKSPACE_BYTES ((size_t)32 << 20)
#define VP_VISION_CHUNK_MAX ((size_t)16)
#define VP_MLP_CHUNK_MAX ((size_t)4096)
/* The same with the fused MLP kernel (k_mlp_gated.cu), which writes no gate | up rows: the
 * rows whose hidden [rows][I] 16-bit values take the bytes of the unfused chunk's fp32
 * gate | up and hidden, 10 I bytes a row, so W1's 6,139 rows and a full 16,384-token
 * pass run in one product instead of two and four. */
#define VP_MLP_CHUNK_FUSED_MAX (5 * VP_MLP_CHUNK_MAX)

typedef struct vp_cuda_workspace {
    size_t max_tokens, max_tiles;
    size_t vision_chunk;          /* tiles per vision pass */
    size_t mlp_chunk;             /* rows per language MLP pass */
    size_t max_items, max_vitems; /* attention work items: language batch, vision chunk */
    size_t offset[VP_WS_COUNT];   /* bytes from the start of the allocation */
    size_t bytes[VP_WS_COUNT];
    vp_ws_phase phase[VP_WS_COUNT];
    size_t total;                 /* bytes to allocate */
    size_t persist_bytes, vision_bytes, language_bytes; /* region sizes */
} vp_cuda_workspace;

const char *vp_ws_name(vp_ws_id id);
/* max_tokens, max_tiles >= 1; fused_mlp: the MLP's first half runs as one kernel (no gate |
 * up buffer, VP_WS_GU 0 bytes; chunks of up to VP_MLP_CHUNK_FUSED_MAX rows). Fails
 * (VP_ERR_TOO_LARGE) when a size overflows size_t. */
int vp_cuda_workspace_plan(const vp_model_config *cfg, size_t max_tokens, size_t max_tiles,
                           bool fused_mlp, vp_cuda_workspace *ws, vp_error *err);

/* ---- useful FLOPs (plan_flops.c) ---- */

typedef struct vp_flops {
    double vision;         /* patch embedding + ViT layers (dense and attention) */
    double projector;      /* mlp1 */
    double language_dense; /* LLM matrix products that affect the outputs */
    double language_attn;  /* LLM attention: 4 * heads * head_dim * layers per (query, key) */
    double language_attn_last; /* its last layer's share: the output rows' queries only */
    double head;           /* two LM-head rows at the output positions */
    double total;
} vp_flops;

/* FLOPs a batch needs (PERF.md's cost model): the ViT on every tile, the projector, every
 * LLM layer's projections on every packed token except the last layer's MLP, which only
 * the output rows need, and attention over the (query, visible key) pairs. */
void vp_batch_useful_flops(const vp_model_config *cfg, const vp_batch *b, vp_flops *f);
/* MFU's denominator: the dense bf16 rate PERF.md measured on its H100, TFLOP/s. */
#define VP_PEAK_TFLOPS 790.0

#endif
