/* Which row of the cos/sin table each token uses. The table's rows are computed on the
 * host by vp_cpu_rope_table (double precision, rounded once to float), so the CUDA
 * backend rotates with exactly the CPU twin's angles: rows 0..base_rows-1 once at init
 * for base theta, the rest per batch for dynamic-NTK bases or far positions. */
#include "engine/cpu/cpu_ops.h"
#include "engine/cuda_plan/cuda_plan.h"

size_t vp_rope_base_rows(const vp_llm_config *l)
{
    if (l->max_pos <= 0)
        return 0;
    return (size_t)l->max_pos < VP_ROPE_TABLE_MAX ? (size_t)l->max_pos : VP_ROPE_TABLE_MAX;
}

static double seq_base(const vp_llm_config *l, const vp_seq *s)
{
    return vp_cpu_rope_base(l->rope_theta, l->rope_dynamic, l->rope_factor, l->max_pos,
                            s->rope_len, l->head_dim);
}

int vp_rope_plan(const vp_batch *b, const vp_llm_config *l, size_t base_rows, int32_t *row_of,
                 vp_rope_extra *extra, size_t *n_extra, vp_error *err)
{
    *n_extra = 0;
    if (b->n_tokens > (size_t)INT32_MAX - base_rows)
        return vp_fail(err, VP_ERR_TOO_LARGE, "n_tokens",
                       "%zu tokens do not fit the RoPE table's 32-bit rows", b->n_tokens);
    size_t k = 0;
    for (size_t i = b->n_cached_seqs; i < b->n_seqs; i++) { /* cached ones have no tokens */
        const vp_seq *sq = &b->seqs[i];
        double base = seq_base(l, sq);
        if (sq->prefix_seq >= 0) {
            const vp_seq *p = &b->seqs[sq->prefix_seq];
            if (seq_base(l, p) != base)
                return vp_fail(err, VP_ERR_BAD_REQUEST, "seqs",
                               "sequence %zu (rope_len %zu) and its prefix sequence %d (rope_len "
                               "%zu) get different dynamic-NTK RoPE bases (max_position_embeddings "
                               "%d); such a prefix cannot be shared",
                               i, sq->rope_len, sq->prefix_seq, p->rope_len, l->max_pos);
        }
        for (size_t t = sq->start; t < sq->start + sq->len; t++) {
            int32_t pos = b->positions[t];
            if (base == l->rope_theta && pos >= 0 && (size_t)pos < base_rows) {
                row_of[t] = pos;
            } else {
                extra[k] = (vp_rope_extra){.position = pos, .base = base};
                row_of[t] = (int32_t)(base_rows + k);
                k++;
            }
        }
    }
    *n_extra = k;
    return 0;
}
