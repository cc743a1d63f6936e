/* Softmax attention for packed batches. One task is one query token (all its heads);
 * the keys it sees are at most two contiguous ranges of the packed arrays (its prefix
 * sequence, then its own tokens), always visited in the same order. */
#include <math.h>
#include <stdlib.h>

#include "engine/cpu/cpu_ops.h"
#include "engine/cpu/cpu_simd.h"

typedef struct key_range {
    size_t start, len; /* token indices [start, start + len) */
} key_range;

typedef struct attn_job {
    float *out;          /* [n_tokens][heads][head_dim], or [n_rows] for a rows list */
    const float *q;      /* [n_tokens][heads][head_dim] */
    const float *k, *v;  /* [n_tokens][kv_heads][head_dim] */
    int heads, kv_heads, head_dim;
    float scale;         /* 1 / sqrt(head_dim) */
    float *scores;       /* [threads][max_keys] scratch */
    size_t max_keys;
    /* causal packing */
    const vp_seq *seqs;      /* [n_seqs] */
    const int32_t *tok_seq;  /* [n_tokens] sequence of each token, -1 for none */
    const int32_t *rows;     /* task i is query token rows[i], written to out row i; or NULL */
    /* tiles */
    size_t tile_tokens;
} attn_job;

/* out[hd] = sum over the keys (in range order) of p_key * v_key[hd]. Each out[d] is
 * accumulated in key order in one fp32 lane; 16 dimensions at a time keep four
 * independent vector accumulators in registers. */
static void weighted_sum(float *out, const float *p, const float *vh, const key_range *ranges,
                         int n_ranges, size_t kv_stride, size_t hd)
{
    size_t d = 0;
    for (; d + 16 <= hd; d += 16) {
        v4f a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
        size_t n = 0;
        for (int r = 0; r < n_ranges; r++)
            for (size_t t = ranges[r].start; t < ranges[r].start + ranges[r].len; t++) {
                const float *vt = vh + t * kv_stride + d;
                float pt = p[n++];
                a0 += pt * v4f_load(vt);
                a1 += pt * v4f_load(vt + 4);
                a2 += pt * v4f_load(vt + 8);
                a3 += pt * v4f_load(vt + 12);
            }
        v4f_store(out + d, a0);
        v4f_store(out + d + 4, a1);
        v4f_store(out + d + 8, a2);
        v4f_store(out + d + 12, a3);
    }
    for (; d + 4 <= hd; d += 4) {
        v4f a = {0};
        size_t n = 0;
        for (int r = 0; r < n_ranges; r++)
            for (size_t t = ranges[r].start; t < ranges[r].start + ranges[r].len; t++)
                a += p[n++] * v4f_load(vh + t * kv_stride + d);
        v4f_store(out + d, a);
    }
    for (; d < hd; d++) {
        float a = 0.0f;
        size_t n = 0;
        for (int r = 0; r < n_ranges; r++)
            for (size_t t = ranges[r].start; t < ranges[r].start + ranges[r].len; t++)
                a += p[n++] * vh[t * kv_stride + d];
        out[d] = a;
    }
}

/* out[head_dim] = softmax(q . k_j * scale) . v_j over the keys of the ranges. */
static void attend_head(const attn_job *j, float *out, const float *q, size_t kv_head,
                        const key_range *ranges, int n_ranges, float *scores)
{
    size_t hd = (size_t)j->head_dim, kv_stride = (size_t)j->kv_heads * hd;
    const float *kh = j->k + kv_head * hd, *vh = j->v + kv_head * hd;
    size_t n = 0;
    float max = -INFINITY;
    for (int r = 0; r < n_ranges; r++) {
        size_t end = ranges[r].start + ranges[r].len;
        for (size_t t = ranges[r].start; t < end; t += 4) {
            /* four keys per call (a short group repeats its last key); each score is
             * vp_cpu_dot(q, k_t) whatever the grouping */
            size_t m = end - t < 4 ? end - t : 4;
            const float *kp[4];
            for (size_t i = 0; i < 4; i++)
                kp[i] = kh + (t + (i < m ? i : m - 1)) * kv_stride;
            float d[4];
            vp_cpu_dot4(q, kp[0], kp[1], kp[2], kp[3], hd, d);
            for (size_t i = 0; i < m; i++) {
                float s = d[i] * j->scale;
                scores[n++] = s;
                if (s > max)
                    max = s;
            }
        }
    }
    for (size_t i = 0; i < n; i++)
        scores[i] = expf(scores[i] - max);
    double sum = 0.0;
    for (size_t i = 0; i < n; i++)
        sum += scores[i];
    float inv = (float)(1.0 / sum);
    for (size_t i = 0; i < n; i++)
        scores[i] *= inv; /* now the probabilities, in key order */
    weighted_sum(out, scores, vh, ranges, n_ranges, kv_stride, hd);
}

/* Query token t's heads into out row `row`. */
static void attend_token(const attn_job *j, size_t t, size_t row, const key_range *ranges,
                         int n_ranges, int thread)
{
    size_t hd = (size_t)j->head_dim, q_stride = (size_t)j->heads * hd;
    size_t group = (size_t)(j->heads / j->kv_heads);
    float *scores = j->scores + (size_t)thread * j->max_keys;
    for (size_t h = 0; h < (size_t)j->heads; h++)
        attend_head(j, j->out + row * q_stride + h * hd, j->q + t * q_stride + h * hd, h / group,
                    ranges, n_ranges, scores);
}

static void causal_task(void *ctx, size_t i, int thread)
{
    const attn_job *j = ctx;
    size_t t = j->rows ? (size_t)j->rows[i] : i;
    int32_t s = j->tok_seq[t];
    if (s < 0)
        return;
    const vp_seq *sq = &j->seqs[s];
    key_range ranges[2];
    int n = 0;
    if (sq->prefix_seq >= 0) {
        const vp_seq *p = &j->seqs[sq->prefix_seq];
        ranges[n++] = (key_range){p->start, p->len};
    }
    ranges[n++] = (key_range){sq->start, t - sq->start + 1};
    attend_token(j, t, i, ranges, n, thread);
}

static void tile_task(void *ctx, size_t t, int thread)
{
    const attn_job *j = ctx;
    key_range r = {t / j->tile_tokens * j->tile_tokens, j->tile_tokens};
    attend_token(j, t, t, &r, 1, thread);
}

static int alloc_scores(attn_job *j, vp_pool *pool, size_t max_keys, vp_error *err)
{
    size_t threads = (size_t)vp_pool_threads(pool);
    j->max_keys = max_keys ? max_keys : 1;
    if (j->max_keys > SIZE_MAX / sizeof(float) / threads ||
        !(j->scores = malloc(threads * j->max_keys * sizeof(float))))
        return vp_fail(err, VP_ERR_NOMEM, "", "out of memory for attention scores (%zu keys x %zu threads)",
                       j->max_keys, threads);
    return 0;
}

int vp_cpu_attention_causal(vp_pool *pool, float *out, const float *q, const float *k,
                            const float *v, size_t n_tokens, int heads, int kv_heads,
                            int head_dim, const vp_seq *seqs, size_t n_seqs, vp_error *err)
{
    return vp_cpu_attention_causal_rows(pool, out, q, k, v, n_tokens, NULL, n_tokens, heads,
                                        kv_heads, head_dim, seqs, n_seqs, err);
}

int vp_cpu_attention_causal_rows(vp_pool *pool, float *out, const float *q, const float *k,
                                 const float *v, size_t n_tokens, const int32_t *rows,
                                 size_t n_rows, int heads, int kv_heads, int head_dim,
                                 const vp_seq *seqs, size_t n_seqs, vp_error *err)
{
    attn_job j = {.out = out, .q = q, .k = k, .v = v, .heads = heads, .kv_heads = kv_heads,
                  .head_dim = head_dim, .scale = (float)(1.0 / sqrt((double)head_dim)),
                  .seqs = seqs, .rows = rows};
    for (size_t i = 0; rows && i < n_rows; i++)
        if (rows[i] < 0 || (size_t)rows[i] >= n_tokens)
            return vp_fail(err, VP_ERR_INTERNAL, "", "attention row %zu is token %d, outside "
                           "the %zu tokens", i, rows[i], n_tokens);
    int32_t *tok_seq = malloc((n_tokens ? n_tokens : 1) * sizeof *tok_seq);
    if (!tok_seq)
        return vp_fail(err, VP_ERR_NOMEM, "", "out of memory for the token-to-sequence map");
    for (size_t t = 0; t < n_tokens; t++)
        tok_seq[t] = -1;
    size_t max_keys = 0;
    for (size_t s = 0; s < n_seqs; s++) {
        size_t keys = seqs[s].len;
        if (seqs[s].prefix_seq >= 0)
            keys += seqs[seqs[s].prefix_seq].len;
        if (keys > max_keys)
            max_keys = keys;
        if (seqs[s].start >= n_tokens) /* a cached prefix: keys only, no queries */
            continue;
        for (size_t t = seqs[s].start; t < seqs[s].start + seqs[s].len; t++)
            tok_seq[t] = (int32_t)s;
    }
    j.tok_seq = tok_seq;
    if (alloc_scores(&j, pool, max_keys, err) != 0) {
        free(tok_seq);
        return -1;
    }
    vp_pool_for(pool, n_rows, causal_task, &j);
    free(j.scores);
    free(tok_seq);
    return 0;
}

int vp_cpu_attention_tiles(vp_pool *pool, float *out, const float *q, const float *k,
                           const float *v, size_t n_tiles, size_t tile_tokens, int heads,
                           int head_dim, vp_error *err)
{
    attn_job j = {.out = out, .q = q, .k = k, .v = v, .heads = heads, .kv_heads = heads,
                  .head_dim = head_dim, .scale = (float)(1.0 / sqrt((double)head_dim)),
                  .tile_tokens = tile_tokens};
    if (alloc_scores(&j, pool, tile_tokens, err) != 0)
        return -1;
    vp_pool_for(pool, n_tiles * tile_tokens, tile_task, &j);
    free(j.scores);
    return 0;
}
