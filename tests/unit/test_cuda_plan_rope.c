/* RoPE table rows for the CUDA backend (engine/cuda_plan/plan_rope.c): a token uses the
 * init-time row of its position when its sequence's base is theta, else a per-batch row
 * holding exactly (position, base); a prefix whose base differs from its user's is
 * refused like the CPU backend refuses it. */
#include "engine/cpu/cpu_ops.h"
#include "engine/cuda_plan/cuda_plan.h"
#include "tests/unit/check.h"
#include "tests/unit/cuda_plan_test_util.h"

static vp_llm_config llm(int max_pos, bool dynamic)
{
    return (vp_llm_config){.hidden = 64, .layers = 1, .heads = 2, .kv_heads = 1, .head_dim = 32,
                           .intermediate = 64, .vocab = 100, .rms_eps = 1e-5f,
                           .rope_theta = 1e6, .rope_dynamic = dynamic,
                           .rope_factor = dynamic ? 2.0 : 1.0, .max_pos = max_pos};
}

static double base_of(const vp_llm_config *l, const vp_seq *s)
{
    return vp_cpu_rope_base(l->rope_theta, l->rope_dynamic, l->rope_factor, l->max_pos,
                            s->rope_len, l->head_dim);
}

/* Every token's row holds (its position, its sequence's base), by the definition; a
 * batch where a sequence's base differs from its prefix's is refused. Returns whether
 * the batch was planned. */
static int check_rows(const vp_batch *b, const vp_llm_config *l, size_t base_rows)
{
    int32_t *row = tb_alloc(b->n_tokens, sizeof *row);
    vp_rope_extra *extra = tb_alloc(b->n_tokens, sizeof *extra);
    size_t n_extra = 0;
    vp_error err = {0};
    int mismatch = 0;
    for (size_t s = 0; s < b->n_seqs; s++)
        if (b->seqs[s].prefix_seq >= 0)
            mismatch |= base_of(l, &b->seqs[s]) != base_of(l, &b->seqs[b->seqs[s].prefix_seq]);
    int rc = vp_rope_plan(b, l, base_rows, row, extra, &n_extra, &err);
    CHECK(rc == (mismatch ? -1 : 0));
    if (rc) {
        CHECK(err.kind == VP_ERR_BAD_REQUEST);
        free(extra);
        free(row);
        return 0;
    }
    CHECK(n_extra <= b->n_tokens);
    int bad = 0;
    for (size_t s = 0; s < b->n_seqs; s++) {
        const vp_seq *sq = &b->seqs[s];
        double base = base_of(l, sq);
        for (size_t t = sq->start; t < sq->start + sq->len; t++) {
            int32_t r = row[t];
            if (r < 0 || (size_t)r >= base_rows + n_extra) {
                bad++;
            } else if ((size_t)r < base_rows) {
                bad += base != l->rope_theta || r != b->positions[t];
            } else {
                const vp_rope_extra *e = &extra[(size_t)r - base_rows];
                bad += e->position != b->positions[t] || e->base != base;
                /* a row is only spent when the init table cannot serve the token */
                bad += base == l->rope_theta && (size_t)b->positions[t] < base_rows;
            }
        }
    }
    CHECK_MSG(bad == 0, "%d tokens with a wrong RoPE row", bad);
    free(extra);
    free(row);
    return 1;
}

int main(void)
{
    vp_llm_config l = llm(32768, true);
    CHECK(vp_rope_base_rows(&l) == 32768);
    l.max_pos = 1000000;
    CHECK(vp_rope_base_rows(&l) == VP_ROPE_TABLE_MAX);
    l.max_pos = 0;
    CHECK(vp_rope_base_rows(&l) == 0);

    int planned_small = 0, refused_small = 0;
    for (int round = 0; round < 12; round++) {
        test_batch tb;
        test_batch_make(&tb, 3, 60, 100, 0);
        vp_llm_config big = llm(32768, true); /* every token from the init table */
        CHECK(check_rows(&tb.b, &big, vp_rope_base_rows(&big)));
        /* max_pos 100 with dynamic NTK: sequences over 100 tokens get scaled bases */
        vp_llm_config small = llm(100, true);
        if (check_rows(&tb.b, &small, vp_rope_base_rows(&small)))
            planned_small++;
        else
            refused_small++;
        /* no scaling, but the table is shorter than the positions */
        vp_llm_config plain = llm(50, false);
        CHECK(check_rows(&tb.b, &plain, vp_rope_base_rows(&plain)));
        test_batch_free(&tb);
    }
    CHECK(planned_small > 0 && refused_small > 0); /* both branches ran */

    /* a prefix whose length keeps base theta while its user passes max_pos */
    int32_t pos[6] = {0, 1, 2, 3, 4, 5};
    vp_seq seqs[2] = {{0, 3, -1, 3}, {3, 3, 0, 6}};
    vp_batch b = {.n_tokens = 6, .positions = pos, .n_seqs = 2, .seqs = seqs};
    vp_llm_config tiny = llm(4, true);
    int32_t row[6];
    vp_rope_extra extra[6];
    size_t n_extra = 0;
    vp_error err = {0};
    CHECK(vp_rope_plan(&b, &tiny, 4, row, extra, &n_extra, &err) == -1);
    CHECK(err.kind == VP_ERR_BAD_REQUEST && strstr(err.message, "prefix"));
    seqs[0].rope_len = 6; /* the engine gives the prefix its longest user's length */
    CHECK(vp_rope_plan(&b, &tiny, 4, row, extra, &n_extra, &err) == 0);
    CHECK(n_extra == 6 && extra[5].position == 5 && extra[5].base > 1e6);
    return check_summary("cuda_plan_rope");
}
