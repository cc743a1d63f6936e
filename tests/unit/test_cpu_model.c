/* The CPU backend on small synthetic models built in memory (no loader):
 *  - logits against a textbook double-precision forward pass written here (vision,
 *    projector, language model, both norm/qk-norm variants, dynamic NTK RoPE);
 *  - packing: prefix + suffixes, unrelated requests together, prefixes with image rows,
 *    all equal to computing each sequence alone; threads change no bit;
 *  - init refuses broken weights and unsupported configs with clear errors. */
#include <math.h>
#include <string.h>

#include "engine/cpu/cpu.h"
#include "engine/image/image.h"
#include "tests/unit/cpu_test_util.h"
#include "tests/unit/cuda_plan_test_util.h"

/* ================= a synthetic model ================= */

enum { MAX_TENSORS = 128 };

typedef struct test_model {
    vp_model_config cfg;
    vp_weights w;
    vp_vit_layer vit[2];
    vp_llm_layer llm[2];
    void *bufs[MAX_TENSORS]; /* tensor data, owned */
    int n_bufs;
} test_model;

/* Round-to-nearest-even f32 -> bf16, written out here (independent of tensor.c). */
static uint16_t to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

static float from_bf16(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* A random tensor of n elements (stored as fp32, or bf16 when bf16 != 0). */
static vp_tensor mk(test_model *m, const char *name, size_t n, float scale, float offset, int bf16)
{
    vp_tensor t = {.name = name, .dtype = bf16 ? VP_DT_BF16 : VP_DT_F32, .ndim = 1,
                   .shape = {(int64_t)n}};
    void *p = malloc(n * (bf16 ? 2 : 4));
    if (!p || m->n_bufs == MAX_TENSORS)
        exit(2);
    for (size_t i = 0; i < n; i++) {
        float v = offset + scale * test_uniform();
        if (bf16)
            ((uint16_t *)p)[i] = to_bf16(v);
        else
            ((float *)p)[i] = v;
    }
    m->bufs[m->n_bufs++] = p;
    t.data = p;
    t.nbytes = n * (bf16 ? 2 : 4);
    return t;
}

/* Element i of a tensor as double (F32 or BF16), read independently of tensor.c. */
static double val(const vp_tensor *t, size_t i)
{
    if (t->dtype == VP_DT_BF16)
        return from_bf16(((const uint16_t *)t->data)[i]);
    return ((const float *)t->data)[i];
}

/* variant 0: the real model's choices (LayerNorm, qkv bias, no qk norm, no NTK in use);
 * variant 1: RMSNorm, qk normalization, no qkv bias, short max_pos so NTK scaling acts. */
static void build_model(test_model *m, int variant, uint64_t seed)
{
    memset(m, 0, sizeof *m);
    test_seed(seed);
    vp_model_config *c = &m->cfg;
    c->vision = (vp_vision_config){.hidden = 32, .layers = 2, .heads = 2, .intermediate = 64,
                                   .patch = 4, .image_size = 16, .channels = 3,
                                   .norm = variant ? VP_NORM_RMS : VP_NORM_LAYER,
                                   .norm_eps = 1e-6f, .qkv_bias = !variant, .qk_norm = variant};
    c->llm = (vp_llm_config){.hidden = 48, .layers = 2, .heads = 4, .kv_heads = 2, .head_dim = 12,
                             .intermediate = 96, .vocab = 40, .rms_eps = 1e-5f,
                             .rope_theta = 10000.0, .rope_dynamic = true, .rope_factor = 2.0,
                             .max_pos = variant ? 8 : 256};
    c->downsample_ratio = 0.5;
    c->select_layer = -1;
    c->num_image_token = 4; /* 4x4 patch grid -> 2x2 */
    snprintf(c->name, sizeof c->name, "synthetic-%d", variant);
    size_t hv = 32, iv = 64, h = 48, im = 96, q = 48, kv = 24, vocab = 40, cp = 128;
    float sv = 1.0f / sqrtf((float)hv), sh = 1.0f / sqrtf((float)h);
    vp_weights *w = &m->w;
    w->class_embedding = mk(m, "class_embedding", hv, 1.0f, 0, 0);
    w->patch_w = mk(m, "patch_w", hv * 3 * 16, 0.25f, 0, 1);
    w->patch_b = mk(m, "patch_b", hv, 0.1f, 0, 0);
    w->pos_embedding = mk(m, "pos_embedding", 17 * hv, 0.5f, 0, 0);
    for (int l = 0; l < 2; l++) {
        vp_vit_layer *L = &m->vit[l];
        L->norm1_w = mk(m, "norm1_w", hv, 0.1f, 1.0f, 0);
        if (!variant)
            L->norm1_b = mk(m, "norm1_b", hv, 0.1f, 0, 0);
        L->qkv_w = mk(m, "qkv_w", 3 * hv * hv, 2 * sv, 0, 1);
        if (!variant)
            L->qkv_b = mk(m, "qkv_b", 3 * hv, 0.1f, 0, 0);
        if (variant) {
            L->q_norm_w = mk(m, "q_norm_w", hv, 0.1f, 1.0f, 0);
            L->k_norm_w = mk(m, "k_norm_w", hv, 0.1f, 1.0f, 0);
        }
        L->proj_w = mk(m, "proj_w", hv * hv, sv, 0, 1);
        L->proj_b = mk(m, "proj_b", hv, 0.1f, 0, 0);
        L->ls1 = mk(m, "ls1", hv, 0.45f, 0.55f, 0);
        L->ls2 = mk(m, "ls2", hv, 0.45f, 0.55f, 0);
        L->norm2_w = mk(m, "norm2_w", hv, 0.1f, 1.0f, 0);
        if (!variant)
            L->norm2_b = mk(m, "norm2_b", hv, 0.1f, 0, 0);
        L->fc1_w = mk(m, "fc1_w", iv * hv, sv, 0, 1);
        L->fc1_b = mk(m, "fc1_b", iv, 0.1f, 0, 0);
        L->fc2_w = mk(m, "fc2_w", hv * iv, 1.0f / 8, 0, 1);
        L->fc2_b = mk(m, "fc2_b", hv, 0.1f, 0, 0);
    }
    w->vit = m->vit;
    w->proj_norm_w = mk(m, "mlp1.0.weight", cp, 0.1f, 1.0f, 0);
    w->proj_norm_b = mk(m, "mlp1.0.bias", cp, 0.1f, 0, 0);
    w->proj1_w = mk(m, "mlp1.1.weight", h * cp, 1.0f / sqrtf((float)cp), 0, 1);
    w->proj1_b = mk(m, "mlp1.1.bias", h, 0.1f, 0, 0);
    w->proj2_w = mk(m, "mlp1.3.weight", h * h, sh, 0, 1);
    w->proj2_b = mk(m, "mlp1.3.bias", h, 0.1f, 0, 0);
    w->tok_embeddings = mk(m, "tok_embeddings", vocab * h, 1.0f, 0, 1);
    for (int l = 0; l < 2; l++) {
        vp_llm_layer *L = &m->llm[l];
        L->attention_norm = mk(m, "attention_norm", h, 0.1f, 1.0f, 0);
        L->wqkv = mk(m, "wqkv", (q + 2 * kv) * h, 2 * sh, 0, 1);
        L->wo = mk(m, "wo", h * q, sh, 0, 1);
        L->ffn_norm = mk(m, "ffn_norm", h, 0.1f, 1.0f, 0);
        L->w1 = mk(m, "w1", im * h, 2 * sh, 0, 1);
        L->w3 = mk(m, "w3", im * h, 2 * sh, 0, 1);
        L->w2 = mk(m, "w2", h * im, 1.0f / sqrtf((float)im), 0, 1);
    }
    w->llm = m->llm;
    w->norm = mk(m, "norm", h, 0.1f, 1.0f, 0);
    w->output = mk(m, "output", vocab * h, 2 * sh, 0, 1);
}

static void free_model(test_model *m)
{
    for (int i = 0; i < m->n_bufs; i++)
        free(m->bufs[i]);
}

/* ================= the textbook forward pass, in double ================= */

static double *dnew(size_t n)
{
    double *p = calloc(n ? n : 1, sizeof *p);
    if (!p)
        exit(2);
    return p;
}

/* y[out] = W[out][in] x[in] + b */
static void lin(double *y, const vp_tensor *W, const vp_tensor *b, const double *x, size_t in,
                size_t out)
{
    for (size_t o = 0; o < out; o++) {
        double s = b && b->data ? val(b, o) : 0.0;
        for (size_t k = 0; k < in; k++)
            s += val(W, o * in + k) * x[k];
        y[o] = s;
    }
}

static void norm_row(double *y, const double *x, size_t n, const vp_tensor *w, const vp_tensor *b,
                     int rms, double eps)
{
    double mean = 0, var = 0;
    if (!rms) {
        for (size_t i = 0; i < n; i++)
            mean += x[i];
        mean /= (double)n;
    }
    for (size_t i = 0; i < n; i++)
        var += (x[i] - mean) * (x[i] - mean);
    var /= (double)n;
    for (size_t i = 0; i < n; i++)
        y[i] = (x[i] - mean) / sqrt(var + eps) * val(w, i) + (b && b->data ? val(b, i) : 0.0);
}

static double gelu(double x)
{
    return 0.5 * x * (1.0 + erf(x / sqrt(2.0)));
}

/* softmax(q.k/sqrt(d)) v over keys 0..nk-1 given as row pointers */
static void attend(double *out, const double *q, double *const *k, double *const *v, size_t nk,
                   size_t d)
{
    double *p = dnew(nk), mx = -INFINITY, sum = 0;
    for (size_t j = 0; j < nk; j++) {
        double s = 0;
        for (size_t i = 0; i < d; i++)
            s += q[i] * k[j][i];
        p[j] = s / sqrt((double)d);
        mx = p[j] > mx ? p[j] : mx;
    }
    for (size_t j = 0; j < nk; j++)
        sum += (p[j] = exp(p[j] - mx));
    for (size_t i = 0; i < d; i++) {
        out[i] = 0;
        for (size_t j = 0; j < nk; j++)
            out[i] += p[j] / sum * v[j][i];
    }
    free(p);
}

/* One tile [3][16][16] -> feat[4][48]. */
static void naive_vision(const test_model *m, const float *tile, double *feat)
{
    const vp_vision_config *c = &m->cfg.vision;
    const vp_weights *w = &m->w;
    enum { HV = 32, G = 4, TT = 17, P = 4, S = 16, IV = 64, HEADS = 2, HD = 16, H = 48 };
    int rms = c->norm == VP_NORM_RMS;
    static double x[TT][HV], xn[TT][HV], qkv[TT][3 * HV], q[TT][HV], k[TT][HV], v[TT][HV],
        att[TT][HV], o[HV], mlp[IV];
    /* embeddings: class token, then the conv over bf16-rounded pixels */
    for (int d = 0; d < HV; d++)
        x[0][d] = val(&w->class_embedding, (size_t)d) + val(&w->pos_embedding, (size_t)d);
    for (int gy = 0; gy < G; gy++)
        for (int gx = 0; gx < G; gx++)
            for (int d = 0; d < HV; d++) {
                double s = val(&w->patch_b, (size_t)d);
                for (int ch = 0; ch < 3; ch++)
                    for (int py = 0; py < P; py++)
                        for (int px = 0; px < P; px++)
                            s += val(&w->patch_w, (size_t)(((d * 3 + ch) * P + py) * P + px)) *
                                 from_bf16(to_bf16(tile[(ch * S + gy * P + py) * S + gx * P + px]));
                int t = 1 + gy * G + gx;
                x[t][d] = s + val(&w->pos_embedding, (size_t)(t * HV + d));
            }
    for (int l = 0; l < c->layers; l++) {
        const vp_vit_layer *L = &w->vit[l];
        for (int t = 0; t < TT; t++) {
            norm_row(xn[t], x[t], HV, &L->norm1_w, &L->norm1_b, rms, c->norm_eps);
            lin(qkv[t], &L->qkv_w, &L->qkv_b, xn[t], HV, 3 * HV);
            memcpy(q[t], qkv[t], sizeof q[t]);
            memcpy(k[t], qkv[t] + HV, sizeof k[t]);
            memcpy(v[t], qkv[t] + 2 * HV, sizeof v[t]);
            if (c->qk_norm) {
                norm_row(q[t], q[t], HV, &L->q_norm_w, NULL, 1, c->norm_eps);
                norm_row(k[t], k[t], HV, &L->k_norm_w, NULL, 1, c->norm_eps);
            }
        }
        for (int t = 0; t < TT; t++)
            for (int hh = 0; hh < HEADS; hh++) {
                double *kr[TT], *vr[TT];
                for (int j = 0; j < TT; j++) {
                    kr[j] = k[j] + hh * HD;
                    vr[j] = v[j] + hh * HD;
                }
                attend(att[t] + hh * HD, q[t] + hh * HD, kr, vr, TT, HD);
            }
        for (int t = 0; t < TT; t++) {
            lin(o, &L->proj_w, &L->proj_b, att[t], HV, HV);
            for (int d = 0; d < HV; d++)
                x[t][d] += val(&L->ls1, (size_t)d) * o[d];
            norm_row(xn[t], x[t], HV, &L->norm2_w, &L->norm2_b, rms, c->norm_eps);
            lin(mlp, &L->fc1_w, &L->fc1_b, xn[t], HV, IV);
            for (int i = 0; i < IV; i++)
                mlp[i] = gelu(mlp[i]);
            lin(o, &L->fc2_w, &L->fc2_b, mlp, IV, HV);
            for (int d = 0; d < HV; d++)
                x[t][d] += val(&L->ls2, (size_t)d) * o[d];
        }
    }
    /* drop the class token; output (i, j) = cells (2i,2j), (2i,2j+1), (2i+1,2j), (2i+1,2j+1) */
    for (int i = 0; i < G / 2; i++)
        for (int j = 0; j < G / 2; j++) {
            double cat[4 * HV], ln[4 * HV], hid[H];
            for (int cell = 0; cell < 4; cell++) {
                int r = 2 * i + cell / 2, col = 2 * j + cell % 2;
                memcpy(cat + cell * HV, x[1 + r * G + col], HV * sizeof(double));
            }
            norm_row(ln, cat, 4 * HV, &w->proj_norm_w, &w->proj_norm_b, 0, 1e-5);
            lin(hid, &w->proj1_w, &w->proj1_b, ln, 4 * HV, H);
            for (int d = 0; d < H; d++)
                hid[d] = gelu(hid[d]);
            lin(feat + (i * (G / 2) + j) * H, &w->proj2_w, &w->proj2_b, hid, H, H);
        }
}

/* One whole sequence (positions 0..n-1) -> logits[n][2] for "+" = plus, "-" = minus. */
static void naive_language(const test_model *m, const int32_t *tokens, const int32_t *img_row,
                           size_t n, const double *feat, int plus, int minus, double *logits)
{
    const vp_llm_config *c = &m->cfg.llm;
    const vp_weights *w = &m->w;
    enum { H = 48, HEADS = 4, KV = 2, HD = 12, QPK = 2, I = 96, ROW = (HEADS + 2 * KV) * HD };
    double base = c->rope_theta; /* dynamic NTK when the sequence outgrows max_pos */
    if (c->rope_dynamic && n > (size_t)c->max_pos)
        base *= pow(c->rope_factor * (double)n / c->max_pos - (c->rope_factor - 1), HD / (HD - 2.0));
    double *x = dnew(n * H), *xn = dnew(H), *qkv = dnew(ROW), *q = dnew(n * HEADS * HD),
           *k = dnew(n * KV * HD), *v = dnew(n * KV * HD), *att = dnew(HEADS * HD), *o = dnew(H),
           *g = dnew(I), *u = dnew(I);
    double **kr = calloc(n, sizeof *kr), **vr = calloc(n, sizeof *vr);
    for (size_t t = 0; t < n; t++)
        for (int d = 0; d < H; d++)
            x[t * H + d] = img_row && img_row[t] >= 0 ? feat[img_row[t] * H + d]
                                                      : val(&w->tok_embeddings, (size_t)tokens[t] * H + d);
    for (int l = 0; l < c->layers; l++) {
        const vp_llm_layer *L = &w->llm[l];
        for (size_t t = 0; t < n; t++) {
            norm_row(xn, x + t * H, H, &L->attention_norm, NULL, 1, c->rms_eps);
            lin(qkv, &L->wqkv, NULL, xn, H, ROW);
            /* KV group g holds query heads g*QPK.., then key head g, then value head g */
            for (int hh = 0; hh < HEADS; hh++)
                memcpy(q + (t * HEADS + hh) * HD, qkv + ((hh / QPK) * (QPK + 2) + hh % QPK) * HD,
                       HD * sizeof(double));
            for (int g2 = 0; g2 < KV; g2++) {
                memcpy(k + (t * KV + g2) * HD, qkv + (g2 * (QPK + 2) + QPK) * HD, HD * sizeof(double));
                memcpy(v + (t * KV + g2) * HD, qkv + (g2 * (QPK + 2) + QPK + 1) * HD,
                       HD * sizeof(double));
            }
            /* rotate half: pair d with d + HD/2, angle = t * base^(-2d/HD) */
            double *vecs[HEADS + KV];
            for (int hh = 0; hh < HEADS; hh++)
                vecs[hh] = q + (t * HEADS + hh) * HD;
            for (int g2 = 0; g2 < KV; g2++)
                vecs[HEADS + g2] = k + (t * KV + g2) * HD;
            for (int r = 0; r < HEADS + KV; r++)
                for (int d = 0; d < HD / 2; d++) {
                    double ang = (double)t * pow(base, -2.0 * d / HD);
                    double a = vecs[r][d], b = vecs[r][d + HD / 2];
                    vecs[r][d] = a * cos(ang) - b * sin(ang);
                    vecs[r][d + HD / 2] = b * cos(ang) + a * sin(ang);
                }
        }
        for (size_t t = 0; t < n; t++) {
            for (int hh = 0; hh < HEADS; hh++) {
                for (size_t j = 0; j <= t; j++) {
                    kr[j] = k + (j * KV + hh / QPK) * HD;
                    vr[j] = v + (j * KV + hh / QPK) * HD;
                }
                attend(att + hh * HD, q + (t * HEADS + hh) * HD, kr, vr, t + 1, HD);
            }
            lin(o, &L->wo, NULL, att, HEADS * HD, H);
            for (int d = 0; d < H; d++)
                x[t * H + d] += o[d]; /* later tokens' attention already used this layer's k, v */
        }
        for (size_t t = 0; t < n; t++) {
            norm_row(xn, x + t * H, H, &L->ffn_norm, NULL, 1, c->rms_eps);
            lin(g, &L->w1, NULL, xn, H, I);
            lin(u, &L->w3, NULL, xn, H, I);
            for (int i = 0; i < I; i++)
                g[i] = g[i] / (1 + exp(-g[i])) * u[i];
            lin(o, &L->w2, NULL, g, I, H);
            for (int d = 0; d < H; d++)
                x[t * H + d] += o[d];
        }
    }
    for (size_t t = 0; t < n; t++) {
        norm_row(xn, x + t * H, H, &w->norm, NULL, 1, c->rms_eps);
        double lp = 0, lm = 0;
        for (int d = 0; d < H; d++) {
            lp += val(&w->output, (size_t)plus * H + d) * xn[d];
            lm += val(&w->output, (size_t)minus * H + d) * xn[d];
        }
        logits[2 * t] = lp;
        logits[2 * t + 1] = lm;
    }
    free(x), free(xn), free(qkv), free(q), free(k), free(v), free(att), free(o), free(g), free(u);
    free(kr), free(vr);
}

/* ================= packed batches ================= */

enum { PLUS = 7, MINUS = 3, T_IMG = 4, MAXTOK = 160 };

typedef struct packed {
    int32_t tokens[MAXTOK], positions[MAXTOK], image_row[MAXTOK], out[MAXTOK];
    vp_seq seqs[16];
    size_t n_tokens, n_seqs, n_out;
    const float *tiles;
    const uint8_t *const *tiles_u8; /* instead of tiles */
    size_t n_tiles;
} packed;

/* Appends tokens[n] (image_row r >= 0 for image tokens) as a sequence seeing `prefix`,
 * positions from pos0; every token becomes an output. Returns the sequence index. */
static int32_t add_seq(packed *p, const int32_t *tokens, const int32_t *rows, size_t n,
                       int32_t prefix, size_t pos0, size_t rope_len)
{
    p->seqs[p->n_seqs] = (vp_seq){p->n_tokens, n, prefix, rope_len};
    for (size_t i = 0; i < n; i++) {
        size_t t = p->n_tokens++;
        p->tokens[t] = tokens[i];
        p->image_row[t] = rows ? rows[i] : -1;
        p->positions[t] = (int32_t)(pos0 + i);
        p->out[p->n_out++] = (int32_t)t;
    }
    return (int32_t)p->n_seqs++;
}

static int run(vp_backend *be, const packed *p, float *logits, vp_error *err)
{
    vp_batch b = {.n_tiles = p->n_tiles, .tiles = p->tiles, .tiles_u8 = p->tiles_u8,
                  .n_tokens = p->n_tokens,
                  .tokens = p->tokens, .positions = p->positions, .image_row = p->image_row,
                  .n_seqs = p->n_seqs, .seqs = p->seqs, .n_out = p->n_out, .out_index = p->out,
                  .plus_id = PLUS, .minus_id = MINUS};
    vp_forward_stats st;
    int rc = vp_backend_cpu.forward(be, &b, logits, &st, err);
    if (rc == 0)
        CHECK(st.vision_ms >= 0 && st.language_ms >= 0);
    return rc;
}

/* Random text tokens in [2, 40) except the image tokens marked by rows. */
static void random_tokens(int32_t *t, size_t n)
{
    for (size_t i = 0; i < n; i++)
        t[i] = 2 + (int32_t)((test_uniform() + 1.0f) * 18.99f);
}

/* A prompt: BOS, 2 text tokens, T_IMG * n_tiles image tokens (rows row0..), 2 text tokens. */
static size_t make_prompt(int32_t *tok, int32_t *rows, size_t n_tiles, int32_t row0)
{
    size_t n = 0;
    tok[n] = 1, rows[n++] = -1;
    for (int i = 0; i < 2; i++)
        tok[n] = 2 + i * 5, rows[n++] = -1;
    for (size_t r = 0; r < n_tiles * T_IMG; r++)
        tok[n] = 39, rows[n++] = row0 + (int32_t)r; /* an "<IMG_CONTEXT>" id */
    for (int i = 0; i < 2; i++)
        tok[n] = 11 + i, rows[n++] = -1;
    return n;
}

/* make_prompt over n_tiles tiles, then n_text random text tokens: the sequence's length. */
static size_t prompt_and_text(int32_t *tok, int32_t *rows, size_t n_tiles, size_t n_text)
{
    size_t n = make_prompt(tok, rows, n_tiles, 0);
    random_tokens(tok + n, n_text);
    for (size_t i = 0; i < n_text; i++)
        rows[n + i] = -1;
    return n + n_text;
}

/* logits of the seq's tokens in `a` (packed) vs in `b`, compared close. */
static void compare(const char *what, const float *a, const float *b, size_t n2)
{
    double *want = dnew(n2);
    for (size_t i = 0; i < n2; i++)
        want[i] = b[i];
    test_close(what, a, want, n2, 1e-5, 1e-6);
    if (memcmp(a, b, n2 * sizeof *a))
        printf("    (close but not bit-identical)\n");
    free(want);
}

static vp_backend *open_backend(test_model *m, int threads)
{
    vp_backend_options opt = {.threads = threads};
    vp_backend *be = NULL;
    vp_error err;
    if (vp_cpu_init_weights(&be, &m->cfg, &m->w, &opt, &err) != 0) {
        fprintf(stderr, "init failed: %s\n", err.message);
        CHECK(0);
        return NULL;
    }
    return be;
}

/* ================= the tests ================= */

static void test_against_naive(test_model *m, vp_backend *be, const float *tiles, const char *tag)
{
    /* vision features alone */
    float feat[2 * T_IMG * 48];
    double want_feat[2 * T_IMG * 48];
    vp_error err;
    CHECK(vp_cpu_vision(be, tiles, 2, feat, &err) == 0);
    naive_vision(m, tiles, want_feat);
    naive_vision(m, tiles + 3 * 16 * 16, want_feat + T_IMG * 48);
    char what[96];
    snprintf(what, sizeof what, "%s: vision features vs naive", tag);
    test_close(what, feat, want_feat, 2 * T_IMG * 48, 1e-4, 1e-4);

    /* a 16-token sequence with 2 tiles, all logits */
    int32_t tok[MAXTOK], rows[MAXTOK];
    size_t n = prompt_and_text(tok, rows, 2, 3);
    packed p = {.tiles = tiles, .n_tiles = 2};
    add_seq(&p, tok, rows, n, -1, 0, n);
    float logits[2 * MAXTOK];
    CHECK(run(be, &p, logits, &err) == 0);
    double *want = dnew(2 * n);
    naive_language(m, tok, rows, n, want_feat, PLUS, MINUS, want);
    snprintf(what, sizeof what, "%s: logits (%zu tokens) vs naive", tag, n);
    test_close(what, logits, want, 2 * n, 1e-4, 1e-4);
    double spread = 0;
    for (size_t i = 1; i < n; i++)
        spread = fmax(spread, fabs(want[2 * i] - want[0]));
    CHECK_MSG(spread > 1e-2, "logits barely vary (%g): the test would be weak", spread);
    free(want);
}

/* The backend reads no source tensor after load: a checkpoint file rewritten in place
 * under a running server (or cut short: SIGBUS) must change nothing. The source buffers
 * (the mapping's stand-in) are overwritten after the backend opened, and the logits stay
 * bit for bit; the embedding and LM head were the ones still read from it. */
static void test_source_not_read_after_load(test_model *m, const float *tiles)
{
    vp_backend *be = open_backend(m, 2);
    if (!be)
        return;
    int32_t tok[MAXTOK], rows[MAXTOK];
    size_t n = prompt_and_text(tok, rows, 1, 4);
    packed p = {.tiles = tiles, .n_tiles = 1};
    add_seq(&p, tok, rows, n, -1, 0, n);
    float before[2 * MAXTOK], after[2 * MAXTOK];
    vp_error err;
    CHECK(run(be, &p, before, &err) == 0);
    uint8_t *emb = (uint8_t *)m->w.tok_embeddings.data, *head = (uint8_t *)m->w.output.data;
    for (size_t i = 0; i < m->w.tok_embeddings.nbytes; i++)
        emb[i] ^= 0x5a;
    for (size_t i = 0; i < m->w.output.nbytes; i++)
        head[i] ^= 0xa5;
    CHECK(run(be, &p, after, &err) == 0);
    CHECK_MSG(!memcmp(before, after, sizeof(float) * 2 * n),
              "logits changed when the source tensors were overwritten after load");
    for (size_t i = 0; i < m->w.tok_embeddings.nbytes; i++) /* as they were, for later tests */
        emb[i] ^= 0x5a;
    for (size_t i = 0; i < m->w.output.nbytes; i++)
        head[i] ^= 0xa5;
    vp_backend_cpu.free(be);
}

/* (a) one request as prefix + 3 suffixes == each full sequence alone;
 * (c) the prefix carries image rows. */
static void test_prefix_suffixes(vp_backend *be, const float *tiles, int equal_lengths,
                                 const char *tag)
{
    int32_t pre[MAXTOK], prow[MAXTOK], suf[3][8];
    size_t np = make_prompt(pre, prow, 2, 0);
    size_t ns[3] = {3, 5, 4};
    if (equal_lengths)
        ns[0] = ns[1] = ns[2] = 4;
    for (int i = 0; i < 3; i++)
        random_tokens(suf[i], ns[i]);
    size_t longest = np + (ns[1] > ns[2] ? ns[1] : ns[2]);
    packed p = {.tiles = tiles, .n_tiles = 2};
    /* the prefix's rope_len: equal to its users' when they share one (NTK case) */
    int32_t ps = add_seq(&p, pre, prow, np, -1, 0, equal_lengths ? longest : np);
    for (int i = 0; i < 3; i++)
        add_seq(&p, suf[i], NULL, ns[i], ps, np, np + ns[i]);
    float packed_logits[2 * MAXTOK], alone[2 * MAXTOK];
    vp_error err;
    CHECK(run(be, &p, packed_logits, &err) == 0);
    size_t off = np;
    for (int i = 0; i < 3; i++) {
        int32_t tok[MAXTOK], rows[MAXTOK];
        memcpy(tok, pre, np * sizeof *tok);
        memcpy(rows, prow, np * sizeof *rows);
        memcpy(tok + np, suf[i], ns[i] * sizeof *tok);
        for (size_t j = 0; j < ns[i]; j++)
            rows[np + j] = -1;
        packed q = {.tiles = tiles, .n_tiles = 2};
        add_seq(&q, tok, rows, np + ns[i], -1, 0, np + ns[i]);
        CHECK(run(be, &q, alone, &err) == 0);
        char what[96];
        snprintf(what, sizeof what, "%s: suffix %d with shared prefix", tag, i);
        compare(what, packed_logits + 2 * off, alone + 2 * np, 2 * ns[i]);
        if (i == 0) {
            snprintf(what, sizeof what, "%s: prefix tokens (vs full sequence)", tag);
            compare(what, packed_logits, alone, 2 * np);
        }
        off += ns[i];
    }
}

/* (b) two unrelated requests, each with its own images, packed == alone; also two
 * requests each with a prefix and suffixes in one batch. */
static void test_two_requests(vp_backend *be, const float *tiles)
{
    int32_t t1[MAXTOK], r1[MAXTOK], t2[MAXTOK], r2[MAXTOK], r2alone[MAXTOK];
    size_t n1 = make_prompt(t1, r1, 2, 0);   /* tiles 0, 1 */
    size_t n2 = make_prompt(t2, r2, 1, 8);   /* tile 2 in the packed batch */
    make_prompt(t2, r2alone, 1, 0);          /* tile 0 when alone */
    random_tokens(t1 + n1, 4);
    random_tokens(t2 + n2, 6);
    for (int i = 0; i < 6; i++)
        r1[n1 + (size_t)i] = r2[n2 + (size_t)i] = r2alone[n2 + (size_t)i] = -1;
    n1 += 4;
    n2 += 6;
    packed p = {.tiles = tiles, .n_tiles = 3};
    add_seq(&p, t1, r1, n1, -1, 0, n1);
    add_seq(&p, t2, r2, n2, -1, 0, n2);
    float both[2 * MAXTOK], a1[2 * MAXTOK], a2[2 * MAXTOK];
    vp_error err;
    CHECK(run(be, &p, both, &err) == 0);
    packed q1 = {.tiles = tiles, .n_tiles = 2}, q2 = {.tiles = tiles + 2 * 3 * 16 * 16, .n_tiles = 1};
    add_seq(&q1, t1, r1, n1, -1, 0, n1);
    add_seq(&q2, t2, r2alone, n2, -1, 0, n2);
    CHECK(run(be, &q1, a1, &err) == 0);
    CHECK(run(be, &q2, a2, &err) == 0);
    compare("two requests packed: request 1", both, a1, 2 * n1);
    compare("two requests packed: request 2", both + 2 * n1, a2, 2 * n2);

    /* request 1 = prefix (2 tiles) + 2 suffixes, request 2 = prefix (1 tile) + 1 suffix,
     * sequences interleaved so a prefix_seq is not always the previous sequence */
    size_t np1 = n1 - 4, np2 = n2 - 6;
    packed r = {.tiles = tiles, .n_tiles = 3};
    int32_t s1 = add_seq(&r, t1, r1, np1, -1, 0, np1);
    int32_t s2 = add_seq(&r, t2, r2, np2, -1, 0, np2);
    add_seq(&r, t1 + np1, NULL, 4, s1, np1, n1);
    add_seq(&r, t2 + np2, NULL, 6, s2, np2, n2);
    add_seq(&r, t1 + np1, NULL, 2, s1, np1, np1 + 2);
    float mixed[2 * MAXTOK];
    CHECK(run(be, &r, mixed, &err) == 0);
    size_t o = np1 + np2;
    compare("two prefixed requests: req 1 suffix", mixed + 2 * o, a1 + 2 * np1, 2 * 4);
    compare("two prefixed requests: req 2 suffix", mixed + 2 * (o + 4), a2 + 2 * np2, 2 * 6);
    compare("two prefixed requests: req 1 short suffix", mixed + 2 * (o + 10), a1 + 2 * np1, 2 * 2);
    compare("two prefixed requests: req 2 prefix", mixed + 2 * np1, a2, 2 * np2);
}

static void test_threads_identical(test_model *m, const float *tiles)
{
    vp_backend *b1 = open_backend(m, 1), *b3 = open_backend(m, 3);
    if (!b1 || !b3)
        return;
    CHECK(vp_cpu_threads(b1) == 1 && vp_cpu_threads(b3) == 3);
    CHECK(strstr(vp_backend_cpu.device_name(b3), "cpu (3 threads") != NULL);
    int32_t tok[MAXTOK], rows[MAXTOK];
    size_t n = make_prompt(tok, rows, 3, 0);
    packed p = {.tiles = tiles, .n_tiles = 3};
    int32_t s = add_seq(&p, tok, rows, n, -1, 0, n);
    random_tokens(tok, 9);
    add_seq(&p, tok, NULL, 9, s, n, n + 9);
    float l1[2 * MAXTOK], l3[2 * MAXTOK];
    vp_error err;
    CHECK(run(b1, &p, l1, &err) == 0);
    CHECK(run(b3, &p, l3, &err) == 0);
    CHECK_MSG(!memcmp(l1, l3, 2 * p.n_out * sizeof *l1), "1 thread and 3 threads differ");
    vp_backend_cpu.free(b1);
    vp_backend_cpu.free(b3);
}

/* 8-bit tiles (what the engine passes: pointers into each request's own tiles, in any
 * order in memory) give exactly the logits of the same tiles normalised by
 * vp_tiles_normalize. */
static void test_u8_tiles(vp_backend *be)
{
    enum { S = 16, TILE = S * S * 3 };
    uint8_t *bytes[3];
    float *norm = malloc(3 * TILE * sizeof *norm);
    const uint8_t *ptr[3];
    for (int t = 0; t < 3; t++) {
        bytes[t] = malloc(TILE);
        for (size_t i = 0; i < TILE; i++) /* every channel sees low, middle and high bytes */
            bytes[t][i] = (uint8_t)(i * 37u + (size_t)t * 101u + (i * i) % 7u);
    }
    for (int t = 0; t < 3; t++)
        ptr[t] = bytes[2 - t]; /* separate buffers, listed in reverse allocation order */
    for (int t = 0; t < 3; t++)
        vp_tiles_normalize(ptr[t], 1, S, norm + (size_t)t * TILE);
    int32_t tok[MAXTOK], rows[MAXTOK];
    size_t n = make_prompt(tok, rows, 3, 0);
    packed pf = {.tiles = norm, .n_tiles = 3};
    add_seq(&pf, tok, rows, n, -1, 0, n);
    packed pu = pf;
    pu.tiles = NULL, pu.tiles_u8 = ptr;
    float lf[2 * MAXTOK], lu[2 * MAXTOK];
    vp_error err = {0};
    CHECK_MSG(run(be, &pf, lf, &err) == 0, "float tiles: %s", err.message);
    CHECK_MSG(run(be, &pu, lu, &err) == 0, "8-bit tiles: %s", err.message);
    CHECK_MSG(!memcmp(lf, lu, 2 * pf.n_out * sizeof *lf), "8-bit tiles differ from float tiles");
    ptr[0] = bytes[0], ptr[2] = bytes[2]; /* the tiles matter: another order, other logits */
    CHECK(run(be, &pu, lu, &err) == 0);
    CHECK_MSG(memcmp(lf, lu, 2 * pf.n_out * sizeof *lf) != 0,
              "swapping two 8-bit tiles left every logit unchanged");
    for (int t = 0; t < 3; t++)
        free(bytes[t]);
    free(norm);
}

static void test_ntk_prefix_refused(vp_backend *be, const float *tiles)
{
    int32_t pre[MAXTOK], prow[MAXTOK], s[8];
    size_t np = make_prompt(pre, prow, 1, 0); /* 9 tokens > max_pos 8 */
    random_tokens(s, 5);
    packed p = {.tiles = tiles, .n_tiles = 1};
    int32_t ps = add_seq(&p, pre, prow, np, -1, 0, np + 5);
    add_seq(&p, s, NULL, 5, ps, np, np + 5);
    add_seq(&p, s, NULL, 3, ps, np, np + 3); /* a different NTK base than its prefix */
    float logits[2 * MAXTOK];
    vp_error err = {0};
    CHECK(run(be, &p, logits, &err) == -1);
    CHECK(err.kind == VP_ERR_BAD_REQUEST);
    CHECK_MSG(strstr(err.message, "NTK") != NULL, "message: %s", err.message);
}

/* The prefix KV cache (backend.h): a pass that stores its prefixes' keys and values, and a
 * pass that loads them instead of computing the prefix tokens (and so needs no tiles),
 * give exactly the logits of computing everything; loads from the wrong rows do not; and
 * batches whose copies do not fit are refused with the reason. */
static void test_kv_cache(test_model *m, const float *tiles)
{
    vp_backend_options opt = {.threads = 2, .kv_cache_bytes = 1 << 20};
    vp_backend *be = NULL;
    vp_error err = {0};
    CHECK(vp_cpu_init_weights(&be, &m->cfg, &m->w, &opt, &err) == 0 && be);
    if (!be)
        return;
    vp_backend_memory mem;
    vp_backend_cpu.memory(be, &mem);
    CHECK(mem.kv_cache_rows > 0 && mem.kv_cache_bytes <= opt.kv_cache_bytes);
    { /* "auto" on the CPU: 1 GiB, in whole rows */
        vp_backend_options auto_opt = {.threads = 1, .kv_cache_bytes = VP_KV_CACHE_AUTO};
        vp_backend *ab = NULL;
        CHECK(vp_cpu_init_weights(&ab, &m->cfg, &m->w, &auto_opt, &err) == 0 && ab);
        vp_backend_memory am = {0};
        if (ab)
            vp_backend_cpu.memory(ab, &am);
        size_t row = am.kv_cache_rows ? am.kv_cache_bytes / am.kv_cache_rows : 0;
        CHECK_MSG(row > 0 && am.kv_cache_bytes <= VP_KV_CACHE_AUTO_CPU_BYTES &&
                      am.kv_cache_bytes + row > VP_KV_CACHE_AUTO_CPU_BYTES,
                  "auto: %zu rows, %zu bytes", am.kv_cache_rows, am.kv_cache_bytes);
        if (ab)
            vp_backend_cpu.free(ab);
    }
    for (int round = 0; round < 3; round++) {
        test_batch tb, store, load;
        test_batch_make(&tb, 3 + (size_t)round, 24, 40, 3 * T_IMG);
        tb.b.plus_id = PLUS, tb.b.minus_id = MINUS, tb.b.n_tiles = 3, tb.b.tiles = tiles;
        size_t rows = test_batch_cache_prefixes(&tb, &store, &load);
        CHECK(rows > 0 && rows <= mem.kv_cache_rows && load.b.n_cached_tokens == rows);
        size_t n2 = 2 * tb.b.n_out;
        float *want = malloc(n2 * 4), *got = malloc(n2 * 4), *stored = malloc(n2 * 4);
        CHECK(vp_backend_cpu.forward(be, &tb.b, want, NULL, &err) == 0);
        CHECK(vp_backend_cpu.forward(be, &store.b, stored, NULL, &err) == 0);
        CHECK_MSG(vp_backend_cpu.forward(be, &load.b, got, NULL, &err) == 0, "%s", err.message);
        CHECK(!memcmp(stored, want, n2 * 4));
        CHECK_MSG(!memcmp(got, want, n2 * 4), "round %d: cached prefixes change the logits", round);
        /* extensions: each prefix's first half loaded, its rest computed by every user and
         * the first user's rows of it stored; then the two runs loaded as one prefix */
        test_batch extend, chain;
        size_t all_rows = test_batch_extend_prefixes(&tb, &load, rows, &extend, &chain);
        CHECK(all_rows > rows && all_rows <= mem.kv_cache_rows && extend.b.n_kv_stores > 0);
        float *ext_got = malloc(n2 * 4);
        CHECK_MSG(vp_backend_cpu.forward(be, &extend.b, ext_got, NULL, &err) == 0, "%s", err.message);
        CHECK_MSG(!memcmp(ext_got, want, n2 * 4), "round %d: a partial load changes the logits",
                  round);
        CHECK_MSG(vp_backend_cpu.forward(be, &chain.b, ext_got, NULL, &err) == 0, "%s", err.message);
        CHECK_MSG(!memcmp(ext_got, want, n2 * 4), "round %d: a chain's runs change the logits",
                  round);
        /* the test can fail: an extension's run loaded one row early gives other keys
         * (its rows come after the stored ones: one row early is still a cache row) */
        for (size_t k = 0; k < chain.b.n_kv_loads; k++)
            if (chain.kv[k].slot >= rows) { /* an extension's rows */
                chain.kv[k].slot -= 1;
                CHECK(vp_backend_cpu.forward(be, &chain.b, ext_got, NULL, &err) == 0 &&
                      memcmp(ext_got, want, n2 * 4));
                chain.kv[k].slot += 1;
                break;
            }
        free(ext_got);
        test_batch_free(&extend), test_batch_free(&chain);
        /* the test can fail: rows shifted by one give other keys */
        vp_kv_copy shifted = load.kv[0];
        load.kv[0].slot += 1;
        CHECK(vp_backend_cpu.forward(be, &load.b, got, NULL, &err) == 0 && memcmp(got, want, n2 * 4));
        load.kv[0] = shifted;
        /* refused: a load past the cache, rows loaded twice, a store over a load's rows */
        load.kv[0].slot = mem.kv_cache_rows;
        CHECK(vp_backend_cpu.forward(be, &load.b, got, NULL, &err) == -1 &&
              strstr(err.message, "outside the backend's"));
        load.kv[0] = shifted;
        load.b.n_cached_tokens += 1;
        CHECK(vp_backend_cpu.forward(be, &load.b, got, NULL, &err) == -1);
        load.b.n_cached_tokens -= 1;
        vp_kv_copy st = {.row = 0, .slot = shifted.slot, .len = 1};
        load.b.kv_stores = &st, load.b.n_kv_stores = 1;
        CHECK(vp_backend_cpu.forward(be, &load.b, got, NULL, &err) == -1 &&
              strstr(err.message, "that load"));
        load.b.n_kv_stores = 0;
        free(want), free(got), free(stored);
        test_batch_free(&tb), test_batch_free(&store), test_batch_free(&load);
    }
    vp_backend_cpu.free(be);
}

static void test_init_errors(void)
{
    test_model m;
    build_model(&m, 0, 99);
    vp_backend *be = (vp_backend *)1;
    vp_error err = {0};
    vp_backend_options opt = {.threads = 1};
    int64_t keep = m.llm[1].w2.shape[0];
    m.llm[1].w2.shape[0] = keep - 1;
    CHECK(vp_cpu_init_weights(&be, &m.cfg, &m.w, &opt, &err) == -1 && be == NULL);
    CHECK(err.kind == VP_ERR_MODEL);
    CHECK_MSG(strstr(err.message, "w2") && strstr(err.message, "elements"), "%s", err.message);
    m.llm[1].w2.shape[0] = keep;
    const void *d = m.vit[1].qkv_b.data;
    m.vit[1].qkv_b.data = NULL;
    CHECK(vp_cpu_init_weights(&be, &m.cfg, &m.w, &opt, &err) == -1);
    CHECK_MSG(strstr(err.message, "qkv_b") && strstr(err.message, "missing"), "%s", err.message);
    m.vit[1].qkv_b.data = d;
    m.cfg.downsample_ratio = 0.25;
    CHECK(vp_cpu_init_weights(&be, &m.cfg, &m.w, &opt, &err) == -1);
    CHECK_MSG(strstr(err.message, "downsample_ratio") != NULL, "%s", err.message);
    m.cfg.downsample_ratio = 0.5;
    m.cfg.llm.kv_heads = 3;
    CHECK(vp_cpu_init_weights(&be, &m.cfg, &m.w, &opt, &err) == -1);
    CHECK_MSG(strstr(err.message, "key/value heads") != NULL, "%s", err.message);
    m.cfg.llm.kv_heads = 2;
    CHECK(vp_cpu_init_weights(&be, &m.cfg, &m.w, &opt, &err) == 0 && be);
    /* forward refuses a batch that does not validate */
    packed p = {0};
    int32_t tok[3] = {1, 40, 2};
    add_seq(&p, tok, NULL, 3, -1, 0, 3);
    float logits[6];
    CHECK(run(be, &p, logits, &err) == -1 && err.kind == VP_ERR_BAD_REQUEST);
    CHECK_MSG(strstr(err.message, "vocabulary") != NULL, "%s", err.message);
    vp_backend_cpu.free(be);
    free_model(&m);
}

int main(void)
{
    CHECK(vp_backend_find("cpu") == &vp_backend_cpu);
    CHECK(vp_backend_find("nope") == NULL);
    for (int variant = 0; variant < 2; variant++) {
        test_model m;
        build_model(&m, variant, 1234 + (uint64_t)variant);
        float *tiles = test_random(3 * 3 * 16 * 16, 2.0f, 0.0f); /* normalised pixels */
        const char *tag = variant ? "rms/qk-norm/NTK" : "layernorm/bias";
        printf("model variant %d (%s)\n", variant, tag);
        vp_backend *be = open_backend(&m, 2);
        if (be) {
            test_against_naive(&m, be, tiles, tag);
            test_prefix_suffixes(be, tiles, variant, tag);
            if (variant == 0)
                test_two_requests(be, tiles), test_u8_tiles(be), test_kv_cache(&m, tiles);
            else
                test_ntk_prefix_refused(be, tiles);
            vp_backend_cpu.free(be);
        }
        if (variant == 0)
            test_threads_identical(&m, tiles), test_source_not_read_after_load(&m, tiles);
        free(tiles);
        free_model(&m);
    }
    test_init_errors();
    return check_summary("test_cpu_model");
}
