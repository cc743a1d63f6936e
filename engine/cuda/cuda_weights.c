/* The device weights: uploaded once from the model's (memory-mapped) tensors, converted
 * to the planned element type on the GPU; or generated there with mkmodel's seeded rule.
 * Then the per-layer pointers are bound from the plan. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/cuda/cuda_check.h"
#include "engine/cuda/cuda_model.h"
#include "engine/util/log.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The model tensor of a plan entry. */
static const vp_tensor *source_of(const vp_weights *w, const vp_cw_entry *e)
{
    const vp_vit_layer *v = e->layer >= 0 && w->vit ? &w->vit[e->layer] : NULL;
    const vp_llm_layer *l = e->layer >= 0 && w->llm ? &w->llm[e->layer] : NULL;
    switch (e->field) {
    case VP_CW_CLASS_EMB: return &w->class_embedding;
    case VP_CW_PATCH_W: return &w->patch_w;
    case VP_CW_PATCH_B: return &w->patch_b;
    case VP_CW_POS_EMB: return &w->pos_embedding;
    case VP_CW_V_NORM1_W: return v ? &v->norm1_w : NULL;
    case VP_CW_V_NORM1_B: return v ? &v->norm1_b : NULL;
    case VP_CW_V_QKV_W: return v ? &v->qkv_w : NULL;
    case VP_CW_V_QKV_B: return v ? &v->qkv_b : NULL;
    case VP_CW_V_Q_NORM: return v ? &v->q_norm_w : NULL;
    case VP_CW_V_K_NORM: return v ? &v->k_norm_w : NULL;
    case VP_CW_V_PROJ_W: return v ? &v->proj_w : NULL;
    case VP_CW_V_PROJ_B: return v ? &v->proj_b : NULL;
    case VP_CW_V_LS1: return v ? &v->ls1 : NULL;
    case VP_CW_V_LS2: return v ? &v->ls2 : NULL;
    case VP_CW_V_NORM2_W: return v ? &v->norm2_w : NULL;
    case VP_CW_V_NORM2_B: return v ? &v->norm2_b : NULL;
    case VP_CW_V_FC1_W: return v ? &v->fc1_w : NULL;
    case VP_CW_V_FC1_B: return v ? &v->fc1_b : NULL;
    case VP_CW_V_FC2_W: return v ? &v->fc2_w : NULL;
    case VP_CW_V_FC2_B: return v ? &v->fc2_b : NULL;
    case VP_CW_PN_W: return &w->proj_norm_w;
    case VP_CW_PN_B: return &w->proj_norm_b;
    case VP_CW_P1_W: return &w->proj1_w;
    case VP_CW_P1_B: return &w->proj1_b;
    case VP_CW_P2_W: return &w->proj2_w;
    case VP_CW_P2_B: return &w->proj2_b;
    case VP_CW_TOK_EMB: return &w->tok_embeddings;
    case VP_CW_L_ATTN_NORM: return l ? &l->attention_norm : NULL;
    case VP_CW_L_WQKV: return l ? &l->wqkv : NULL;
    case VP_CW_L_WO: return l ? &l->wo : NULL;
    case VP_CW_L_FFN_NORM: return l ? &l->ffn_norm : NULL;
    case VP_CW_L_W1: return l ? &l->w1 : NULL;
    case VP_CW_L_W3: return l ? &l->w3 : NULL;
    case VP_CW_L_W2: return l ? &l->w2 : NULL;
    case VP_CW_NORM: return &w->norm;
    case VP_CW_OUTPUT: return &w->output;
    case VP_CW_FIELD_COUNT: break;
    }
    return NULL;
}

static void *entry_ptr(const vp_backend *b, const vp_cw_entry *e)
{
    return (unsigned char *)b->arena + e->offset;
}

#define UPLOAD_CHUNK ((size_t)64 << 20)

/* Double-buffered upload: while the GPU converts chunk k, the host copies chunk k + 1 out
 * of the mapping into the other pinned buffer (that copy is where the disk is read). */
typedef struct uploader {
    void *pinned[2];
    void *staged[2];
    cudaEvent_t done[2];
    int next;
    size_t bytes_done, bytes_total, next_report;
} uploader;

static int uploader_close(uploader *u, vp_error *err)
{
    int rc = 0;
    for (int i = 0; i < 2; i++) {
        if (u->done[i] && cudaEventSynchronize(u->done[i]) != cudaSuccess && rc == 0)
            rc = vp_fail(err, VP_ERR_INTERNAL, "cuda", "weight upload failed on the device");
        if (u->done[i])
            cudaEventDestroy(u->done[i]);
        if (u->pinned[i])
            cudaFreeHost(u->pinned[i]);
        if (u->staged[i])
            cudaFree(u->staged[i]);
    }
    memset(u, 0, sizeof *u);
    return rc;
}

static int uploader_open(uploader *u, size_t total, vp_error *err)
{
    memset(u, 0, sizeof *u);
    u->bytes_total = total;
    u->next_report = (size_t)2 << 30;
    for (int i = 0; i < 2; i++) {
        CUDA_CHECK(cudaHostAlloc(&u->pinned[i], UPLOAD_CHUNK, cudaHostAllocDefault));
        CUDA_CHECK(cudaMalloc(&u->staged[i], UPLOAD_CHUNK));
        CUDA_CHECK(cudaEventCreateWithFlags(&u->done[i], cudaEventDisableTiming));
    }
    return 0;
}

static int upload_tensor(vp_backend *b, uploader *u, const vp_cw_entry *e, const vp_tensor *t,
                         vp_error *err)
{
    size_t es = vp_dtype_size(t->dtype), numel = e->rows * e->cols;
    size_t per = UPLOAD_CHUNK / es;
    const unsigned char *src = t->data;
    for (size_t at = 0; at < numel; at += per) {
        size_t cnt = numel - at < per ? numel - at : per;
        int k = u->next;
        u->next ^= 1;
        CUDA_CHECK(cudaEventSynchronize(u->done[k])); /* buffer k is free again */
        memcpy(u->pinned[k], src + at * es, cnt * es);
        CUDA_CHECK(cudaMemcpyAsync(u->staged[k], u->pinned[k], cnt * es, cudaMemcpyHostToDevice,
                                   b->stream));
        CUDA_CHECK(vpk_convert(b->stream, entry_ptr(b, e), (int)e->type, u->staged[k],
                               (int)t->dtype, at, cnt, e->cols, e->pitch));
        CUDA_CHECK(cudaEventRecord(u->done[k], b->stream));
        u->bytes_done += cnt * es;
        if (u->bytes_done >= u->next_report) {
            VP_LOGI("-", "cuda: uploading weights, %.1f of %.1f GB", (double)u->bytes_done / 1e9,
                    (double)u->bytes_total / 1e9);
            u->next_report += (size_t)2 << 30;
        }
    }
    return 0;
}

/* Checks a model tensor against its plan entry (present, element count). */
static int check_source(const vp_cw_entry *e, const vp_tensor *t, vp_error *err)
{
    if (!t || !t->data)
        return vp_fail(err, VP_ERR_MODEL, e->name, "tensor %s is missing", e->name);
    if (vp_tensor_numel(t) != e->rows * e->cols)
        return vp_fail(err, VP_ERR_MODEL, e->name, "tensor %s has %zu elements, the config needs %zu",
                       e->name, vp_tensor_numel(t), e->rows * e->cols);
    if (vp_dtype_size(t->dtype) == 0)
        return vp_fail(err, VP_ERR_MODEL, e->name, "tensor %s has an unsupported dtype", e->name);
    return 0;
}

int cuda_weights_upload(vp_backend *b, const vp_weights *w, bool *touched, vp_error *err)
{
    size_t total = 0;
    for (size_t i = 0; i < b->plan.n; i++) {
        const vp_cw_entry *e = &b->plan.e[i];
        const vp_tensor *t = source_of(w, e);
        if (check_source(e, t, err))
            return -1;
        if (e->on_device)
            total += t->nbytes ? t->nbytes : vp_tensor_numel(t) * vp_dtype_size(t->dtype);
        else
            b->head_src = t;
    }
    double t0 = now_s();
    uploader u;
    if (uploader_open(&u, total, err)) {
        uploader_close(&u, NULL);
        return -1;
    }
    int rc = 0;
    if (touched)
        *touched = true;
    for (size_t i = 0; i < b->plan.n && rc == 0; i++) {
        const vp_cw_entry *e = &b->plan.e[i];
        if (e->on_device)
            rc = upload_tensor(b, &u, e, source_of(w, e), err);
    }
    if (uploader_close(&u, rc ? NULL : err) != 0)
        rc = -1;
    if (rc == 0)
        VP_LOGI("-", "cuda: %.2f GB of weights uploaded in %.1f s (%.2f GB on the device)",
                (double)total / 1e9, now_s() - t0, (double)b->plan.arena_bytes / 1e9);
    return rc;
}

int cuda_weights_random(vp_backend *b, uint64_t seed, int32_t plus, int32_t minus, vp_error *err)
{
    double t0 = now_s();
    for (size_t i = 0; i < b->plan.n; i++) {
        const vp_cw_entry *e = &b->plan.e[i];
        vp_rand_rule r;
        if (vp_rand_rule_make(&b->cfg, e->name, e->init, e->ndim, e->shape, seed, plus, minus, &r,
                              err))
            return -1;
        if (!e->on_device) {
            b->head_rule = r;
            continue;
        }
        CUDA_CHECK(vpk_random_fill(b->stream, entry_ptr(b, e), (int)e->type, &r, 1, 0,
                                   e->rows * e->cols, e->cols, e->pitch));
    }
    CUDA_CHECK(cudaStreamSynchronize(b->stream));
    b->random_weights = true;
    VP_LOGI("-", "cuda: random weights (seed %llu) generated on the device in %.2f s",
            (unsigned long long)seed, now_s() - t0);
    return 0;
}

int cuda_weights_to_act(vp_backend *b, vp_error *err)
{
    if (b->act != VPK_ACT_F16 && b->act_vision != VPK_ACT_F16)
        return 0;
    unsigned long long *count = NULL, over = 0;
    CUDA_CHECK(cudaMalloc((void **)&count, sizeof *count));
    int rc = 0;
    for (size_t i = 0; i < b->plan.n && rc == 0; i++) {
        const vp_cw_entry *e = &b->plan.e[i];
        /* the token embeddings are gathered into the fp32 residual, not multiplied */
        int act = vp_cw_field_is_vision(e->field) ? b->act_vision : b->act;
        if (!e->on_device || e->type != VP_CW_BF16 || e->field == VP_CW_TOK_EMB ||
            act != VPK_ACT_F16)
            continue;
        cudaError_t c = cudaMemsetAsync(count, 0, sizeof *count, b->stream);
        if (c == cudaSuccess)
            c = vpk_bf16_to_f16(b->stream, entry_ptr(b, e), e->rows * e->pitch, count);
        if (c == cudaSuccess)
            c = cudaMemcpyAsync(&over, count, sizeof over, cudaMemcpyDeviceToHost, b->stream);
        if (c == cudaSuccess)
            c = cudaStreamSynchronize(b->stream);
        if (c != cudaSuccess)
            rc = vp_fail(err, VP_ERR_INTERNAL, "cuda", "fp16 weights: %s", cudaGetErrorString(c));
        else if (over)
            rc = vp_fail(err, VP_ERR_MODEL, e->name,
                         "%llu values of %s exceed fp16's range (65504): fp16 activations "
                         "(VPRM_CUDA_ACTIVATIONS) cannot hold this checkpoint (use bf16 or auto)",
                         over, e->name);
    }
    cudaFree(count);
    return rc;
}

void cuda_weights_bind(vp_backend *b)
{
    cuda_weights *w = &b->w;
    for (size_t i = 0; i < b->plan.n; i++) {
        const vp_cw_entry *e = &b->plan.e[i];
        if (!e->on_device)
            continue;
        const void *p = entry_ptr(b, e);
        cuda_vit_layer *v = e->layer >= 0 ? &w->vit[e->layer] : NULL;
        cuda_llm_layer *l = e->layer >= 0 ? &w->llm[e->layer] : NULL;
        switch (e->field) {
        case VP_CW_CLASS_EMB: w->class_emb = p; break;
        case VP_CW_PATCH_W: w->patch_w = p; break;
        case VP_CW_PATCH_B: w->patch_b = p; break;
        case VP_CW_POS_EMB: w->pos_emb = p; break;
        case VP_CW_V_NORM1_W: v->norm1_w = p; break;
        case VP_CW_V_NORM1_B: v->norm1_b = p; break;
        case VP_CW_V_QKV_W: v->qkv_w = p; break;
        case VP_CW_V_QKV_B: v->qkv_b = p; break;
        case VP_CW_V_Q_NORM: v->q_norm_w = p; break;
        case VP_CW_V_K_NORM: v->k_norm_w = p; break;
        case VP_CW_V_PROJ_W: v->proj_w = p; break;
        case VP_CW_V_PROJ_B: v->proj_b = p; break;
        case VP_CW_V_LS1: v->ls1 = p; break;
        case VP_CW_V_LS2: v->ls2 = p; break;
        case VP_CW_V_NORM2_W: v->norm2_w = p; break;
        case VP_CW_V_NORM2_B: v->norm2_b = p; break;
        case VP_CW_V_FC1_W: v->fc1_w = p; break;
        case VP_CW_V_FC1_B: v->fc1_b = p; break;
        case VP_CW_V_FC2_W: v->fc2_w = p; break;
        case VP_CW_V_FC2_B: v->fc2_b = p; break;
        case VP_CW_PN_W: w->pn_w = p; break;
        case VP_CW_PN_B: w->pn_b = p; break;
        case VP_CW_P1_W: w->p1_w = p; break;
        case VP_CW_P1_B: w->p1_b = p; break;
        case VP_CW_P2_W: w->p2_w = p; break;
        case VP_CW_P2_B: w->p2_b = p; break;
        case VP_CW_TOK_EMB: w->tok_emb = p; break;
        case VP_CW_L_ATTN_NORM: l->attention_norm = p; break;
        case VP_CW_L_WQKV: l->wqkv = p; break;
        case VP_CW_L_WO: l->wo = p; break;
        case VP_CW_L_FFN_NORM: l->ffn_norm = p; break;
        case VP_CW_L_W1: l->w13 = p; break; /* w3 follows: one [2 I][H] matrix */
        case VP_CW_L_W2: l->w2 = p; break;
        case VP_CW_NORM: w->norm = p; break;
        case VP_CW_L_W3: case VP_CW_OUTPUT: case VP_CW_FIELD_COUNT: break;
        }
    }
}

int cuda_head_rows(vp_backend *b, int32_t plus, int32_t minus, vp_error *err)
{
    if (b->head_ids[0] == plus && b->head_ids[1] == minus)
        return 0;
    size_t h = (size_t)b->cfg.llm.hidden;
    float *dst = cuda_ws(b, VP_WS_HEAD);
    int32_t ids[2] = {plus, minus};
    if (b->random_weights) {
        for (int k = 0; k < 2; k++) /* pitch 0: the one row lands at dst + k * h */
            CUDA_CHECK(vpk_random_fill(b->stream, dst + (size_t)k * h, VP_CW_F32, &b->head_rule, 1,
                                       (uint64_t)ids[k] * h, h, h, 0));
    } else {
        if (!b->head_src || !b->head_src->data)
            return vp_fail(err, VP_ERR_MODEL, "language_model.output.weight",
                           "the LM head tensor is missing");
        float *rows = malloc(2 * h * sizeof *rows);
        if (!rows)
            return vp_fail(err, VP_ERR_NOMEM, "", "out of memory for the LM head rows");
        for (int k = 0; k < 2; k++)
            for (size_t d = 0; d < h; d++)
                rows[(size_t)k * h + d] = vp_tensor_get(b->head_src, (size_t)ids[k] * h + d);
        cudaError_t rc = cudaMemcpyAsync(dst, rows, 2 * h * sizeof *rows, cudaMemcpyHostToDevice,
                                         b->stream);
        if (rc == cudaSuccess)
            rc = cudaStreamSynchronize(b->stream); /* rows is freed next */
        free(rows);
        CUDA_CHECK(rc);
    }
    b->head_ids[0] = plus;
    b->head_ids[1] = minus;
    return 0;
}
