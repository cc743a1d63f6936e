/* vp_model_load: config.json + the checkpoint -> vp_weights views into the mappings.
 * Strict in both directions: every tensor the config implies must be present with
 * exactly its shape, and every tensor in the checkpoint must be one of them (a stray
 * tensor usually means the config and the weights disagree). dtypes may differ per tensor. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/model/layout.h"
#include "engine/model/safetensors.h"
#include "engine/model/weights.h"

struct vp_model {
    vp_model_config cfg;
    vp_checkpoint ck;
    vp_weights w;
    size_t n_params;
};

static void format_shape(char *buf, size_t cap, int ndim, const int64_t *shape)
{
    size_t off = (size_t)snprintf(buf, cap, "[");
    for (int d = 0; d < ndim && off < cap; d++)
        off += (size_t)snprintf(buf + off, cap - off, "%s%lld", d ? ", " : "", (long long)shape[d]);
    if (off < cap)
        snprintf(buf + off, cap - off, "]");
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

/* Layer index of "prefix<L>.rest", or -1. */
static long layer_of(const char *name, const char *prefix)
{
    size_t n = strlen(prefix);
    if (strncmp(name, prefix, n))
        return -1;
    char *end;
    long l = strtol(name + n, &end, 10);
    return end != name + n && *end == '.' ? l : -1;
}

/* Why a name the layout does not list might be in the checkpoint; buf receives the hint. */
static const char *stray_hint(const char *name, const vp_model_config *cfg, char *buf, size_t cap)
{
    long vl = layer_of(name, "vision_model.encoder.layers.");
    long ll = layer_of(name, "language_model.model.layers.");
    if (vl >= cfg->vision.layers)
        snprintf(buf, cap, " (layer %ld, but vision_config.num_hidden_layers is %d)", vl,
                 cfg->vision.layers);
    else if (ll >= cfg->llm.layers)
        snprintf(buf, cap, " (layer %ld, but llm_config.num_hidden_layers is %d)", ll,
                 cfg->llm.layers);
    else if (ends_with(name, ".attn.qkv.bias") && !cfg->vision.qkv_bias)
        snprintf(buf, cap, " (config.json has vision_config.qkv_bias false)");
    else if ((ends_with(name, ".attn.q_norm.weight") || ends_with(name, ".attn.k_norm.weight")) &&
             !cfg->vision.qk_norm)
        snprintf(buf, cap, " (config.json has vision_config.qk_normalization false)");
    else if ((ends_with(name, ".norm1.bias") || ends_with(name, ".norm2.bias")) &&
             cfg->vision.norm == VP_NORM_RMS)
        snprintf(buf, cap, " (config.json has vision_config.norm_type rms_norm, which has no bias)");
    else if (ll >= 0 && ends_with(name, ".bias"))
        snprintf(buf, cap, " (config.json has llm_config.bias false)");
    else
        buf[0] = 0;
    return buf;
}

static int bind_weights(vp_model *m, vp_error *err)
{
    vp_layout_entry *list;
    size_t n;
    if (vp_layout_build(&m->cfg, &m->w, &list, &n, err))
        return -1;
    bool *used = calloc(m->ck.n ? m->ck.n : 1, sizeof *used);
    if (!used) {
        free(list);
        return vp_fail(err, VP_ERR_NOMEM, NULL, "out of memory");
    }
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        const vp_layout_entry *e = &list[i];
        char want[96], got[96];
        format_shape(want, sizeof want, e->ndim, e->shape);
        long k = vp_checkpoint_find(&m->ck, e->name);
        if (k < 0) {
            rc = vp_fail(err, VP_ERR_MODEL, e->name, "tensor '%s' %s is missing from the checkpoint",
                         e->name, want);
            break;
        }
        const vp_tensor *t = m->ck.tensors[k];
        bool same = t->ndim == e->ndim;
        for (int d = 0; same && d < e->ndim; d++)
            same = t->shape[d] == e->shape[d];
        if (!same) {
            format_shape(got, sizeof got, t->ndim, t->shape);
            rc = vp_fail(err, VP_ERR_MODEL, e->name,
                         "tensor '%s' in %s has shape %s, expected %s from config.json", e->name,
                         m->ck.files[m->ck.file_of[k]].path, got, want);
            break;
        }
        used[k] = true;
        *e->slot = *t;
    }
    for (size_t k = 0; k < m->ck.n && !rc; k++) {
        if (used[k])
            continue;
        const char *name = m->ck.tensors[k]->name;
        char hint[128];
        rc = vp_fail(err, VP_ERR_MODEL, name,
                     "unexpected tensor '%s' in %s: not part of the model config.json describes%s",
                     name, m->ck.files[m->ck.file_of[k]].path,
                     stray_hint(name, &m->cfg, hint, sizeof hint));
    }
    for (size_t k = 0; k < m->ck.n; k++)
        m->n_params += vp_tensor_numel(m->ck.tensors[k]);
    free(used);
    free(list);
    return rc;
}

int vp_model_load(const char *dir, vp_model **out, vp_error *err)
{
    *out = NULL;
    vp_model *m = calloc(1, sizeof *m);
    if (!m)
        return vp_fail(err, VP_ERR_NOMEM, NULL, "out of memory");
    if (vp_model_config_load(dir, &m->cfg, err)) {
        free(m);
        return -1;
    }
    m->w.vit = calloc((size_t)m->cfg.vision.layers, sizeof *m->w.vit);
    m->w.llm = calloc((size_t)m->cfg.llm.layers, sizeof *m->w.llm);
    if (!m->w.vit || !m->w.llm) {
        vp_model_free(m);
        return vp_fail(err, VP_ERR_NOMEM, NULL, "out of memory");
    }
    if (vp_checkpoint_open(dir, &m->ck, err) || bind_weights(m, err)) {
        vp_error_prefix(err, "loading model %s", dir);
        vp_model_free(m);
        return -1;
    }
    *out = m;
    return 0;
}

int vp_model_load_config_only(const char *dir, vp_model **out, vp_error *err)
{
    *out = NULL;
    vp_model *m = calloc(1, sizeof *m);
    if (!m)
        return vp_fail(err, VP_ERR_NOMEM, NULL, "out of memory");
    vp_layout_entry *list = NULL;
    size_t n = 0;
    if (vp_model_config_load(dir, &m->cfg, err) ||
        vp_layout_build(&m->cfg, NULL, &list, &n, err)) {
        vp_model_free(m);
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        m->n_params += vp_layout_numel(&list[i]);
    free(list);
    *out = m;
    return 0;
}

void vp_model_free(vp_model *m)
{
    if (!m)
        return;
    vp_checkpoint_close(&m->ck);
    free(m->w.vit);
    free(m->w.llm);
    vp_model_config_free(&m->cfg);
    free(m);
}

const vp_model_config *vp_model_cfg(const vp_model *m)
{
    return &m->cfg;
}

const vp_weights *vp_model_weights(const vp_model *m)
{
    return &m->w;
}

size_t vp_model_n_params(const vp_model *m)
{
    return m->n_params;
}
