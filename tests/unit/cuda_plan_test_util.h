/* Random packed batches shaped like engine/pack.c makes them (prefix sequences followed
 * by the sequences that use them, standalone sequences, positions continuing after a
 * prefix), for the CUDA planning tests and the GPU checks (tests/gpu). */
#ifndef VP_CUDA_PLAN_TEST_UTIL_H
#define VP_CUDA_PLAN_TEST_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/backend.h"

typedef struct test_batch {
    vp_batch b;
    vp_seq *seqs;        /* [n_seqs] */
    int32_t *tokens;     /* [n_tokens] */
    int32_t *positions;  /* [n_tokens] */
    int32_t *image_row;  /* [n_tokens] */
    int32_t *out_index;  /* [n_out] */
} test_batch;

static uint64_t tb_state = 88172645463325252ull;

static inline uint64_t tb_next(void)
{
    tb_state ^= tb_state << 13;
    tb_state ^= tb_state >> 7;
    tb_state ^= tb_state << 17;
    return tb_state;
}

/* Uniform in [lo, hi]. */
static inline size_t tb_range(size_t lo, size_t hi)
{
    return lo + (size_t)(tb_next() % (uint64_t)(hi - lo + 1));
}

static inline void *tb_alloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size);
    if (!p) {
        fprintf(stderr, "out of memory in test\n");
        exit(2);
    }
    return p;
}

static inline void test_batch_free(test_batch *t)
{
    free(t->seqs);
    free(t->tokens);
    free(t->positions);
    free(t->image_row);
    free(t->out_index);
    memset(t, 0, sizeof *t);
}

/* groups of (optional prefix + users) or standalone sequences; lengths 1..max_len;
 * token ids in [0, vocab); image rows on some prefix tokens (n_rows feature rows);
 * outputs: a few tokens of every sequence that is not a prefix. */
static inline void test_batch_make(test_batch *t, size_t groups, size_t max_len, int32_t vocab,
                                   size_t n_rows)
{
    memset(t, 0, sizeof *t);
    size_t cap_seqs = groups * 5, cap_tok = cap_seqs * max_len;
    t->seqs = tb_alloc(cap_seqs, sizeof *t->seqs);
    t->tokens = tb_alloc(cap_tok, sizeof *t->tokens);
    t->positions = tb_alloc(cap_tok, sizeof *t->positions);
    t->image_row = tb_alloc(cap_tok, sizeof *t->image_row);
    t->out_index = tb_alloc(cap_tok, sizeof *t->out_index);
    size_t n = 0, ns = 0, no = 0, row = 0;
    for (size_t g = 0; g < groups; g++) {
        int with_prefix = tb_range(0, 9) < 7;
        size_t users = tb_range(1, 4);
        int32_t prefix = -1;
        size_t plen = 0;
        if (with_prefix) {
            plen = tb_range(1, max_len);
            prefix = (int32_t)ns;
            t->seqs[ns++] = (vp_seq){.start = n, .len = plen, .prefix_seq = -1, .rope_len = plen};
            for (size_t k = 0; k < plen; k++, n++) {
                t->positions[n] = (int32_t)k;
                t->image_row[n] = n_rows && row < n_rows && tb_range(0, 3) == 0 ? (int32_t)row++ : -1;
            }
        }
        for (size_t u = 0; u < users; u++) {
            size_t len = tb_range(1, max_len);
            vp_seq *s = &t->seqs[ns++];
            *s = (vp_seq){.start = n, .len = len, .prefix_seq = prefix, .rope_len = plen + len};
            if (prefix >= 0 && t->seqs[prefix].rope_len < plen + len)
                t->seqs[prefix].rope_len = plen + len;
            for (size_t k = 0; k < len; k++, n++) {
                t->positions[n] = (int32_t)(plen + k);
                t->image_row[n] = -1;
                if (k + 1 == len || tb_range(0, 7) == 0)
                    t->out_index[no++] = (int32_t)n;
            }
        }
    }
    for (size_t i = 0; i < n; i++)
        t->tokens[i] = (int32_t)(tb_next() % (uint64_t)vocab);
    t->b = (vp_batch){.n_tokens = n, .tokens = t->tokens, .positions = t->positions,
                      .image_row = n_rows ? t->image_row : NULL, .n_seqs = ns, .seqs = t->seqs,
                      .n_out = no, .out_index = t->out_index, .plus_id = 0,
                      .minus_id = vocab > 1 ? 1 : 0};
}

#endif
