/* Inside the CPU backend: its fp32 weights and state, shared by cpu_backend.c,
 * cpu_weights.c, cpu_vision.c and cpu_language.c. Not for use outside engine/cpu. */
#ifndef VP_CPU_MODEL_H
#define VP_CPU_MODEL_H

#include <stdbool.h>
#include <stddef.h>

#include "engine/backend.h"
#include "engine/cpu/cpu_pool.h"
#include "engine/model/config.h"
#include "engine/model/weights.h"

/* Hv = vision hidden, Iv = vision MLP, Cp = 4*Hv (after pixel shuffle),
 * H = llm hidden, I = llm MLP, Q = heads*head_dim, KV = kv_heads*head_dim. */
typedef struct cpu_vit_layer {
    float *norm1_w, *norm1_b;   /* [Hv]; bias NULL for rms_norm */
    float *qkv_w, *qkv_b;       /* [3*Hv][Hv], [3*Hv] or NULL */
    float *q_norm_w, *k_norm_w; /* [Hv] or NULL without qk normalization */
    float *proj_w, *proj_b;     /* [Hv][Hv], [Hv] */
    float *ls1, *ls2;           /* [Hv] */
    float *norm2_w, *norm2_b;   /* [Hv]; bias NULL for rms_norm */
    float *fc1_w, *fc1_b;       /* [Iv][Hv], [Iv] */
    float *fc2_w, *fc2_b;       /* [Hv][Iv], [Hv] */
} cpu_vit_layer;

typedef struct cpu_llm_layer {
    float *attention_norm;      /* [H] */
    float *wqkv;                /* [Q + 2*KV][H], packed per KV group */
    float *wo;                  /* [H][Q] */
    float *ffn_norm;            /* [H] */
    float *w1, *w3;             /* [I][H] */
    float *w2;                  /* [H][I] */
} cpu_llm_layer;

typedef struct cpu_weights {
    float *class_embedding;     /* [Hv] */
    float *patch_w, *patch_b;   /* [Hv][channels*P*P], [Hv] */
    float *pos_embedding;       /* [1 + G*G][Hv], G = S/P */
    cpu_vit_layer *vit;         /* [vision.layers] */
    float *proj_norm_w, *proj_norm_b; /* [Cp] */
    float *proj1_w, *proj1_b;   /* [H][Cp], [H] */
    float *proj2_w, *proj2_b;   /* [H][H], [H] */
    cpu_llm_layer *llm;         /* [llm.layers] */
    float *norm;                /* [H] final RMSNorm */
    /* the embedding and the LM head, read a row at a time: copies in the file's dtype (not
     * fp32: 2 x 0.76 GB of bf16 at the 8B shape), not the mapping, which a file rewritten
     * in place would change under a running server (or truncate: SIGBUS) */
    vp_tensor tok_embeddings, output;
    float **owned;              /* [n_owned] every buffer above, for freeing */
    size_t n_owned, cap_owned;
    size_t bytes;               /* total bytes held (fp32, and the two copies) */
} cpu_weights;

struct vp_backend {
    vp_model_config cfg;        /* copy; system_message not owned (NULL) */
    cpu_weights w;
    vp_pool *pool;
    size_t max_tokens, max_tiles; /* 0 = no limit */
    long fail_after;            /* test hook: passes before a simulated device failure (-1) */
    long passes;
    long overflow_after;        /* test hook: passes before simulated overflows (-1) ... */
    bool narrow;                /* ... until the engine widens the backend */
    long narrow_passes;
    bool widen_fails;           /* test hook: the widening fails */
    long stall_ms;              /* test hook: each pass sleeps this long first (0) */
    float *kv_cache;            /* [layers][kv_rows][2][kv_heads * head_dim]: prefix KV cache */
    size_t kv_rows;
    char device_name[256];
};

/* cpu_weights.c: checks the config is one the backend computes, then converts. */
int cpu_check_config(const vp_model_config *cfg, vp_error *err);
int cpu_weights_build(cpu_weights *cw, const vp_model_config *cfg, const vp_weights *w,
                      vp_error *err);
void cpu_weights_free(cpu_weights *cw);

/* cpu_language.c: the language model over a validated batch. features[rows][H] are the
 * image features (may be NULL when no token uses one); logits[n_out][2]. */
size_t cpu_kv_row_floats(const vp_backend *b);
int cpu_language_forward(vp_backend *b, const vp_batch *batch, const float *features,
                         float *logits, vp_error *err);

/* Allocates count * size bytes or fills err naming what (NULL on failure). */
void *cpu_alloc(size_t count, size_t size, const char *what, vp_error *err);

#endif
