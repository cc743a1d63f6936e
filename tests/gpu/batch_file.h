/* The workload file the GPU checks share with the PyTorch reference (tests/gpu/torch_ref.py):
 * a prepared request (prompt ids and score positions per response, tiles per request,
 * the shared prefix length) as little-endian int32 words:
 *   'VPB1' 1 vocab plus minus img_context n_tiles num_image_token n_responses prefix_len
 *   then per response: n_ids ids[n_ids] n_score score_pos[n_score]
 * Written on the CPU machine by mkbatch (real tokenizer), read on the GPU machine. */
#ifndef VP_GPU_BATCH_FILE_H
#define VP_GPU_BATCH_FILE_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/backend.h"

#define VPB_MAGIC 0x31425056 /* "VPB1" */

typedef struct vpb_file {
    int32_t vocab, plus, minus, img_context, n_tiles, num_image_token, n_responses, prefix_len;
    int32_t **ids, *n_ids;     /* [n_responses][n_ids[r]] */
    int32_t **score, *n_score; /* [n_responses][n_score[r]] */
} vpb_file;

static inline void vpb_free(vpb_file *f)
{
    for (int32_t r = 0; f->ids && r < f->n_responses; r++) {
        free(f->ids[r]);
        free(f->score[r]);
    }
    free(f->ids);
    free(f->score);
    free(f->n_ids);
    free(f->n_score);
    memset(f, 0, sizeof *f);
}

static inline int vpb_read_words(FILE *fp, int32_t *w, size_t n)
{
    return fread(w, sizeof *w, n, fp) == n ? 0 : -1;
}

/* 0, or -1 with a message on stderr. */
static inline int vpb_read(const char *path, vpb_file *f)
{
    memset(f, 0, sizeof *f);
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        fprintf(stderr, "cannot open %s\n", path);
        return -1;
    }
    int32_t head[10];
    int rc = vpb_read_words(fp, head, 10);
    if (rc || head[0] != VPB_MAGIC || head[1] != 1 || head[8] <= 0 || head[8] > 4096) {
        fprintf(stderr, "%s is not a version-1 batch file\n", path);
        fclose(fp);
        return -1;
    }
    f->vocab = head[2], f->plus = head[3], f->minus = head[4], f->img_context = head[5];
    f->n_tiles = head[6], f->num_image_token = head[7], f->n_responses = head[8];
    f->prefix_len = head[9];
    size_t nr = (size_t)f->n_responses;
    f->ids = calloc(nr, sizeof *f->ids);
    f->score = calloc(nr, sizeof *f->score);
    f->n_ids = calloc(nr, sizeof *f->n_ids);
    f->n_score = calloc(nr, sizeof *f->n_score);
    for (size_t r = 0; r < nr && rc == 0 && f->ids && f->score && f->n_ids && f->n_score; r++) {
        rc |= vpb_read_words(fp, &f->n_ids[r], 1);
        if (rc || f->n_ids[r] <= 0 || f->n_ids[r] > (1 << 24) || !(f->ids[r] = malloc((size_t)f->n_ids[r] * 4)))
            rc = -1;
        rc = rc ? rc : vpb_read_words(fp, f->ids[r], (size_t)f->n_ids[r]);
        rc = rc ? rc : vpb_read_words(fp, &f->n_score[r], 1);
        if (rc || f->n_score[r] < 0 || f->n_score[r] > f->n_ids[r] ||
            !(f->score[r] = malloc(((size_t)f->n_score[r] + 1) * 4)))
            rc = -1;
        rc = rc ? rc : vpb_read_words(fp, f->score[r], (size_t)f->n_score[r]);
    }
    fclose(fp);
    if (rc || !f->ids || !f->score || !f->n_ids || !f->n_score) {
        fprintf(stderr, "%s is truncated or malformed\n", path);
        vpb_free(f);
        return -1;
    }
    return 0;
}

/* The packed batch the engine would form (engine/pack.c): the shared prefix once as its
 * own sequence, then each response's suffix seeing it; one output per score position. */
typedef struct vpb_packed {
    vp_batch b;
    int32_t *tokens, *positions, *image_row, *out_index;
    vp_seq *seqs;
} vpb_packed;

static inline void vpb_packed_free(vpb_packed *p)
{
    free(p->tokens);
    free(p->positions);
    free(p->image_row);
    free(p->out_index);
    free(p->seqs);
    memset(p, 0, sizeof *p);
}

static inline void vpb_add_seq(vpb_packed *p, const vpb_file *f, int r, size_t from, size_t to,
                               int32_t prefix_seq)
{
    vp_seq *s = &p->seqs[p->b.n_seqs++];
    s->start = p->b.n_tokens;
    s->len = to - from;
    s->prefix_seq = prefix_seq;
    s->rope_len = (size_t)f->n_ids[r];
    int32_t image_k = 0;
    for (size_t t = 0; t < to; t++) {
        int is_image = f->ids[r][t] == f->img_context;
        if (t >= from) {
            size_t o = p->b.n_tokens++;
            p->tokens[o] = f->ids[r][t];
            p->positions[o] = (int32_t)t;
            p->image_row[o] = is_image ? image_k : -1;
        }
        image_k += is_image;
    }
}

/* shared != 0: prefix once (the engine's way); else one full sequence per response. */
static inline int vpb_pack(const vpb_file *f, int shared, const float *tiles, vpb_packed *p)
{
    memset(p, 0, sizeof *p);
    size_t prefix = shared ? (size_t)f->prefix_len : 0, n_tok = prefix, n_out = 0;
    for (int32_t r = 0; r < f->n_responses; r++) {
        n_tok += (size_t)f->n_ids[r] - prefix;
        n_out += (size_t)f->n_score[r];
    }
    p->tokens = malloc(n_tok * 4);
    p->positions = malloc(n_tok * 4);
    p->image_row = malloc(n_tok * 4);
    p->out_index = malloc((n_out ? n_out : 1) * 4);
    p->seqs = malloc(((size_t)f->n_responses + 1) * sizeof *p->seqs);
    if (!p->tokens || !p->positions || !p->image_row || !p->out_index || !p->seqs)
        return -1;
    int32_t prefix_seq = -1;
    if (prefix) {
        prefix_seq = 0;
        vpb_add_seq(p, f, 0, 0, prefix, -1);
        size_t longest = 0;
        for (int32_t r = 0; r < f->n_responses; r++)
            longest = (size_t)f->n_ids[r] > longest ? (size_t)f->n_ids[r] : longest;
        p->seqs[0].rope_len = longest;
    }
    for (int32_t r = 0; r < f->n_responses; r++) {
        size_t start = p->b.n_tokens;
        vpb_add_seq(p, f, r, prefix, (size_t)f->n_ids[r], prefix_seq);
        for (int32_t k = 0; k < f->n_score[r]; k++)
            p->out_index[p->b.n_out++] = (int32_t)(start + (size_t)f->score[r][k] - prefix);
    }
    p->b.n_tiles = (size_t)f->n_tiles;
    p->b.tiles = tiles;
    p->b.tokens = p->tokens;
    p->b.positions = p->positions;
    p->b.image_row = p->image_row;
    p->b.seqs = p->seqs;
    p->b.out_index = p->out_index;
    p->b.plus_id = f->plus;
    p->b.minus_id = f->minus;
    return 0;
}

#endif
