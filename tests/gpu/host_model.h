/* A model in host memory with `vprm mkmodel --seed N` values (bf16 tensors), built from
 * the layout and the random-weight rule, for the CPU backend in the GPU checks. */
#ifndef VP_GPU_HOST_MODEL_H
#define VP_GPU_HOST_MODEL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/cuda_plan/cuda_plan.h"
#include "engine/model/layout.h"
#include "tests/gpu/gpu_util.h"

typedef struct host_model {
    vp_model_config cfg;
    vp_weights w;
    void **bufs; /* [n] tensor data */
    char **names;
    size_t n;
} host_model;

static inline void host_model_free(host_model *m)
{
    for (size_t i = 0; i < m->n; i++) {
        free(m->bufs[i]);
        free(m->names[i]);
    }
    free(m->bufs);
    free(m->names);
    free(m->w.vit);
    free(m->w.llm);
}

/* Every tensor of cfg as bf16 with mkmodel's values for seed. */
static inline int host_model_build(host_model *m, const vp_model_config *cfg, uint64_t seed,
                            int32_t plus, int32_t minus)
{
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    m->w.vit = host_alloc((size_t)(cfg->vision.layers + 1) * sizeof *m->w.vit);
    m->w.llm = host_alloc((size_t)(cfg->llm.layers + 1) * sizeof *m->w.llm);
    vp_layout_entry *list;
    vp_error err = {0};
    if (vp_layout_build(&m->cfg, &m->w, &list, &m->n, &err)) {
        fprintf(stderr, "layout: %s\n", err.message);
        return -1;
    }
    m->bufs = host_alloc(m->n * sizeof *m->bufs);
    m->names = host_alloc(m->n * sizeof *m->names);
    for (size_t i = 0; i < m->n; i++) {
        const vp_layout_entry *e = &list[i];
        size_t numel = vp_layout_numel(e);
        vp_rand_rule r;
        if (vp_rand_rule_make(&m->cfg, e->name, e->init, e->ndim, e->shape, seed, plus, minus, &r,
                              &err)) {
            fprintf(stderr, "rule: %s\n", err.message);
            free(list);
            return -1;
        }
        float *f = host_alloc(numel * 4);
        vp_rand_rule_fill(&r, 0, numel, true, f);
        m->bufs[i] = to_bf16(f, numel);
        free(f);
        m->names[i] = strdup(e->name);
        vp_tensor *t = e->slot;
        *t = (vp_tensor){.name = m->names[i], .dtype = VP_DT_BF16, .ndim = e->ndim,
                         .data = m->bufs[i], .nbytes = numel * 2};
        memcpy(t->shape, e->shape, sizeof t->shape);
    }
    free(list);
    return 0;
}

#endif
