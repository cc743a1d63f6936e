/* Useful FLOPs of a batch (PERF.md's cost model), for MFU figures: a multiply-add
 * counts 2. Attention counts QK^T and PV over the keys each query actually sees. Only the
 * output rows need the last layer past its keys and values: its queries, attention, wo
 * and MLP count for them alone. */
#include "engine/cuda_plan/cuda_plan.h"

/* The sequence holding token t: past the cached ones, sequences cover the tokens in order
 * (vp_batch_validate), so a binary search over their starts, once per output row of
 * every pass. */
static const vp_seq *seq_of(const vp_batch *b, size_t t)
{
    size_t lo = b->n_cached_seqs, hi = b->n_seqs;
    if (lo >= hi)
        return NULL;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (b->seqs[mid].start <= t)
            lo = mid;
        else
            hi = mid;
    }
    const vp_seq *sq = &b->seqs[lo];
    return t >= sq->start && t < sq->start + sq->len ? sq : NULL;
}

void vp_batch_useful_flops(const vp_model_config *cfg, const vp_batch *b, vp_flops *f)
{
    const vp_vision_config *v = &cfg->vision;
    const vp_llm_config *l = &cfg->llm;
    double hv = v->hidden, iv = v->intermediate, g = v->image_size / v->patch;
    double tt = 1 + g * g, unf = (double)v->channels * v->patch * v->patch;
    double t = cfg->num_image_token, cp = 4 * hv, h = l->hidden, im = l->intermediate;
    double hd = l->head_dim, q = l->heads * hd, kv = l->kv_heads * hd;
    double tiles = (double)b->n_tiles;
    *f = (vp_flops){0};
    double vit_layer = 2 * tt * (4 * hv * hv + 2 * hv * iv) + 4 * tt * tt * hv;
    f->vision = tiles * (2 * g * g * unf * hv + v->layers * vit_layer);
    f->projector = tiles * 2 * t * (cp * h + h * h);
    double attn_proj = 2 * (h * (q + 2 * kv) + q * h), mlp = 2 * 3 * h * im;
    double kv_proj = 2 * h * 2 * kv, q_wo = attn_proj - kv_proj;
    double n = (double)b->n_tokens, n_out = (double)b->n_out;
    if (l->layers > 0)
        f->language_dense = n * (l->layers - 1) * (attn_proj + mlp) + n * kv_proj +
                            n_out * (q_wo + mlp);
    double pairs = 0, out_keys = 0;
    for (size_t s = b->n_cached_seqs; s < b->n_seqs; s++) { /* cached ones: no queries */
        const vp_seq *sq = &b->seqs[s];
        double prefix = sq->prefix_seq >= 0 ? (double)b->seqs[sq->prefix_seq].len : 0;
        double len = (double)sq->len;
        pairs += len * prefix + len * (len + 1) / 2;
    }
    for (size_t i = 0; i < b->n_out && b->n_seqs; i++) { /* keys each output row sees */
        const vp_seq *sq = seq_of(b, (size_t)b->out_index[i]);
        if (sq)
            out_keys += (sq->prefix_seq >= 0 ? (double)b->seqs[sq->prefix_seq].len : 0) +
                        (double)((size_t)b->out_index[i] - sq->start + 1);
    }
    if (l->layers > 0) {
        f->language_attn_last = out_keys * 4 * q;
        f->language_attn = pairs * 4 * q * (l->layers - 1) + f->language_attn_last;
    }
    f->head = n_out * 2 * 2 * h;
    f->total = f->vision + f->projector + f->language_dense + f->language_attn + f->head;
}
