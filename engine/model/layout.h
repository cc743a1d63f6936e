/* The list of tensors a config implies: name, shape, how the random-weight generator
 * fills it, and which vp_weights field holds it. The loader and mkmodel both walk this
 * one list, so the two cannot disagree about what a checkpoint contains. */
#ifndef VP_LAYOUT_H
#define VP_LAYOUT_H

#include <stddef.h>
#include <stdint.h>

#include "engine/model/config.h"
#include "engine/model/weights.h"

typedef enum {
    VP_INIT_WEIGHT, /* linear / conv weight: normal(0, 0.02) */
    VP_INIT_EMBED,  /* embeddings: normal(0, 0.02) */
    VP_INIT_NORM,   /* norm scale: 1 + small noise */
    VP_INIT_BIAS,   /* bias: small noise */
    VP_INIT_SCALE,  /* ViT layer scale: uniform in [0.1, 1] */
    VP_INIT_HEAD,   /* LM head: like WEIGHT, the "+" and "-" rows scaled (mkmodel_init.c) */
    VP_INIT_QKV,    /* attention input projection: query and key rows larger (mkmodel_init.c) */
    VP_INIT_RESID   /* LLM products that feed the residual stream (wo, w2): smaller in deep models */
} vp_init_kind;

typedef struct vp_layout_entry {
    char name[96];
    int ndim;
    int64_t shape[VP_MAX_DIMS];
    vp_init_kind init;
    vp_tensor *slot; /* the vp_weights field for this tensor, or NULL when none was given */
} vp_layout_entry;

/* Fills *out[*n] (heap; free()) in model order: vision, projector, language model.
 * w may be NULL; otherwise w->vit[vision.layers] and w->llm[llm.layers] must exist. */
int vp_layout_build(const vp_model_config *cfg, vp_weights *w, vp_layout_entry **out, size_t *n,
                    vp_error *err);
/* Elements of one entry. */
size_t vp_layout_numel(const vp_layout_entry *e);

#endif
