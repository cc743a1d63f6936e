/* Random-weight models in the published folder layout (config.json, safetensors,
 * tokenizer files), deterministic for a seed. Used for tests (tiny scale) and for
 * full-shape GPU checks (8b scale, generated on the test machine). */
#ifndef VP_MKMODEL_H
#define VP_MKMODEL_H

#include <stddef.h>
#include <stdint.h>

#include "engine/model/config.h"
#include "engine/model/tensor.h"
#include "engine/util/err.h"

/* Default split: no shard over this many bytes (InternVL2.5-8B ships 4 shards of ~4 GB). */
#define VP_MKMODEL_SHARD_BYTES ((size_t)5000000000u)

typedef struct vp_mkmodel_opts {
    const char *out_dir;       /* created if missing */
    const char *tokenizer_dir; /* tokenizer.model + tokenizer_config.json (+ added_tokens.json) */
    uint64_t seed;
    vp_dtype dtype;            /* of every tensor */
    int shards;                /* 0: automatic (one file unless over VP_MKMODEL_SHARD_BYTES) */
    int threads;               /* 0: one per online CPU */
    vp_model_config cfg;       /* shapes; cfg.llm.vocab is set from the tokenizer */
    bool config_only;          /* config.json and tokenizer files, no weights: for backends
                                  that draw the weights themselves (--random-weights) */
    bool force;                /* overwrite a model folder mkmodel did not write */
} vp_mkmodel_opts;

/* The file that marks a folder as mkmodel's, written before anything else: without
 * `force`, a folder holding config.json or weights but not this file (a real checkpoint)
 * is refused rather than overwritten. */
#define VP_MKMODEL_MARKER ".vprm-mkmodel"

/* Shapes of a scale: "tiny" (tests) or "8b" (InternVL2.5-8B / VisualPRM-8B). */
int vp_mkmodel_preset(const char *scale, vp_model_config *cfg, vp_error *err);

/* Statistics of what was written. */
typedef struct vp_mkmodel_result {
    size_t n_tensors, n_params, n_bytes;
    int n_files;              /* safetensors files */
    int vocab;                /* llm_config.vocab_size written (the tokenizer's id count) */
    int32_t plus_id, minus_id; /* LM-head rows scaled for spread step scores */
} vp_mkmodel_result;

int vp_mkmodel_write(const vp_mkmodel_opts *o, vp_mkmodel_result *res, vp_error *err);

/* How values are drawn (mkmodel_init.c explains the choices). */
#define VP_MKMODEL_WEIGHT_STD 0.02f  /* every weight, embedding and bias not listed below */
float vp_mkmodel_head_row_std(int hidden); /* LM-head rows of "+" and "-" */
/* query and key rows of the ViT's (vision) or the LLM's attention input projection */
float vp_mkmodel_qk_std(const vp_model_config *cfg, bool vision);
float vp_mkmodel_resid_std(const vp_model_config *cfg); /* LLM wo and w2 */

typedef struct vp_init_params {
    const vp_model_config *cfg; /* as the loader reads it back (derived sizes included) */
    uint64_t seed;
    int32_t plus_id, minus_id;  /* token ids of "+" and "-" */
} vp_init_params;

struct vp_layout_entry;
/* Values of elements [start, start + n) of one tensor: a pure function of (seed, tensor
 * name, element index), so any slice can be drawn on its own. */
void vp_mkmodel_values(const vp_init_params *p, const struct vp_layout_entry *e, size_t start,
                       size_t n, float *out);

#endif
