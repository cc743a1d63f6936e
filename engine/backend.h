/* The backend interface: one packed forward pass over image tiles and many token
 * sequences, returning the two logits (+, -) at requested positions.
 *
 * Packing. Tokens of all sequences sit in one array. A sequence attends causally to
 * its own tokens and, when prefix_seq >= 0, to every token of that earlier sequence
 * first (its shared prefix: system prompt + image + question, computed once for the N
 * responses of a request). A prefix sequence has no prefix itself and comes earlier in
 * the seqs array than the sequences that use it. Positions are given per token (a
 * suffix continues from its prefix's length).
 *
 * Prefix KV cache. A backend may keep a cache of keys and values, kv_cache_rows rows
 * per layer (vp_backend_memory), whose rows the engine manages (engine/prefix_cache.c).
 * A batch may then carry n_cached_tokens rows of keys and values after its n_tokens
 * tokens: key rows [n_tokens, n_tokens + n_cached_tokens) have no token data and are not
 * computed; kv_loads fill them from the cache at every layer. The n_cached_seqs sequences
 * that cover them come first in seqs, tile those rows in order, have no prefix and no
 * outputs, and serve only as prefix_seq of later sequences. kv_stores copy computed rows'
 * keys and values (after RoPE) into the cache at every layer, for later passes.
 *
 * Images. tiles[n_tiles] are normalised 3 x S x S tiles, or tiles_u8[n_tiles] point at
 * the 8-bit S x S x 3 tiles (RGB, row-major) that the backend normalises itself
 * exactly as vp_tiles_normalize (the engine passes these: a quarter of the bytes to move
 * to a GPU, no normalisation pass on the engine thread, no copy of the jobs' tiles); the
 * vision encoder + projector turn tile t into num_image_token rows of features. A token with image_row[i] = r >= 0
 * takes feature row r (tile r / T, row r % T) as its input embedding instead of its
 * token embedding.
 *
 * The CPU backend (engine/cpu) is the fp32 reference; the CUDA backend must agree with it
 * within its stated tolerance. */
#ifndef VP_BACKEND_H
#define VP_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "engine/model/weights.h"
#include "engine/util/err.h"

typedef struct vp_seq {
    size_t start;       /* index of its first token in the packed arrays */
    size_t len;         /* number of its own tokens */
    int32_t prefix_seq; /* earlier sequence it sees in full, or -1 */
    size_t rope_len;    /* full length L (prefix + own) for dynamic-NTK RoPE scaling */
} vp_seq;

/* Rows [row, row + len) of a pass's keys and values <-> rows [slot, slot + len) of the
 * cache, in every layer. */
typedef struct vp_kv_copy {
    size_t row, slot, len;
} vp_kv_copy;

typedef struct vp_batch {
    /* vision */
    size_t n_tiles;
    const float *tiles;        /* [n_tiles][3][S][S], or NULL when tiles_u8 is set */
    const uint8_t *const *tiles_u8; /* [n_tiles] -> [S][S][3] 8-bit tiles, or NULL */
    /* language */
    size_t n_tokens;
    const int32_t *tokens;     /* [n_tokens] */
    const int32_t *positions;  /* [n_tokens] */
    const int32_t *image_row;  /* [n_tokens]: feature row or -1; NULL when no images */
    size_t n_seqs;
    const vp_seq *seqs;        /* [n_seqs]: the n_cached_seqs cached ones first */
    /* prefix KV cache (all 0 / NULL without one) */
    size_t n_cached_tokens;    /* key rows after the tokens, loaded from the cache */
    size_t n_cached_seqs;      /* seqs[0..n_cached_seqs) cover them */
    size_t n_kv_loads;
    const vp_kv_copy *kv_loads;  /* cache -> rows in [n_tokens, n_tokens + n_cached_tokens) */
    size_t n_kv_stores;
    const vp_kv_copy *kv_stores; /* rows in [0, n_tokens) -> cache */
    /* outputs */
    size_t n_out;
    const int32_t *out_index;  /* [n_out] token indices whose logits are wanted */
    int32_t plus_id, minus_id; /* vocabulary rows of "+" and "-" */
} vp_batch;

typedef struct vp_forward_stats {
    double vision_ms, language_ms;
} vp_forward_stats;

typedef struct vp_backend_options {
    int threads;          /* CPU threads (0 = all cores) */
    int device;           /* CUDA device ordinal */
    size_t max_tokens;    /* largest packed batch the caller will send, cached rows
                           * included (working memory) */
    size_t max_tiles;     /* largest number of tiles in one batch */
    size_t kv_cache_bytes;/* prefix KV cache to allocate (0 = none, VP_KV_CACHE_AUTO: the
                           * backend's own size); rounded down to rows */
} vp_backend_options;

/* kv_cache_bytes asking the backend to size the prefix KV cache itself
 * (vp_kv_cache_auto_bytes on a GPU, VP_KV_CACHE_AUTO_CPU_BYTES on the CPU). */
#define VP_KV_CACHE_AUTO SIZE_MAX
#define VP_KV_CACHE_AUTO_CPU_BYTES ((size_t)1 << 30)
/* Rows the automatic size stops at: 128 GiB at the 8B shape, so it binds only for small
 * models, whose rows are tiny and would otherwise take half a GPU for nothing. */
#define VP_KV_CACHE_AUTO_MAX_ROWS ((size_t)1 << 20)

/* The automatic GPU size: half the device memory still free once the weights and the
 * working memory are allocated (the other half stays for the CUDA libraries, a weight
 * reload and other processes), at most VP_KV_CACHE_AUTO_MAX_ROWS rows of row_bytes, and a
 * whole number of rows. */
size_t vp_kv_cache_auto_bytes(size_t free_bytes, size_t row_bytes);

typedef struct vp_backend vp_backend;

/* Memory a backend holds, for /v1/models and /metrics. */
typedef struct vp_backend_memory {
    size_t weights_bytes;      /* resident weights (device or host) */
    size_t working_bytes;      /* working memory kept between passes (0: allocated per pass) */
    size_t device_total_bytes; /* the GPU's memory, and what is free on it now; 0 on the CPU */
    size_t device_free_bytes;
    size_t kv_cache_bytes;     /* the prefix KV cache's storage ... */
    size_t kv_cache_rows;      /* ... and its rows per layer (0 = no cache) */
} vp_backend_memory;

typedef struct vp_backend_ops {
    const char *name; /* "cpu", "cuda" */
    int (*init)(vp_backend **out, const vp_model *model, const vp_backend_options *opt,
                vp_error *err);
    /* Weights drawn like `vprm mkmodel --seed seed` by the backend itself (no checkpoint:
     * the full 8B shape on a GPU in seconds); plus/minus are the scored LM-head rows.
     * NULL when the backend cannot (cpu). */
    int (*init_random)(vp_backend **out, const vp_model_config *cfg, uint64_t seed,
                       int32_t plus, int32_t minus, const vp_backend_options *opt,
                       vp_error *err);
    /* logits[n_out][2] = {logit(+), logit(-)} at batch->out_index */
    int (*forward)(vp_backend *b, const vp_batch *batch, float *logits,
                   vp_forward_stats *stats, vp_error *err);
    /* One-line description of the device (for /v1/models and benchmarks). */
    const char *(*device_name)(vp_backend *b);
    void (*memory)(vp_backend *b, vp_backend_memory *m);
    void (*free)(vp_backend *b);
    /* The number format of the activations now ("float32", "bfloat16", "float16", ...: a
     * static string). NULL: "float32". */
    const char *(*activations)(vp_backend *b);
    /* After a pass whose logits were not all finite: a backend computing in a narrower
     * format than it may fall back to (CUDA with VPRM_CUDA_ACTIVATIONS=auto: fp16, whose
     * range a checkpoint's activations can exceed, then bf16) switches for good and
     * returns 1, `what` naming the change; 0 when there is nothing wider (the overflow is
     * the model's); -1 when the switch failed, the backend then being unusable (err).
     * After a switch the caller computes the pass again and drops its prefix KV cache
     * (the cached rows are in the old format). NULL: nothing to widen. */
    int (*widen)(vp_backend *b, char *what, size_t what_cap, vp_error *err);
} vp_backend_ops;

extern const vp_backend_ops vp_backend_cpu;
/* NULL when built without CUDA. */
const vp_backend_ops *vp_backend_find(const char *name);

/* Checks a batch for internal consistency (ranges, prefix order, image rows). */
int vp_batch_validate(const vp_batch *batch, size_t n_feature_rows, size_t vocab,
                      vp_error *err);

/* Checks that the batch's KV copies stay inside a cache of kv_cache_rows rows. */
int vp_batch_check_kv_slots(const vp_batch *b, size_t kv_cache_rows, vp_error *err);

#endif
