/* SentencePiece BPE encoding of normalized text, in O(n log n):
 * - the text is split into initial symbols: user-defined pieces matched whole (longest
 *   first, never merged again), else one UTF-8 character each;
 * - every adjacent pair whose concatenation is a piece goes into a max-heap ordered by
 *   the piece's score, the leftmost pair first on equal scores;
 * - the best pair is merged (symbols form a linked list), stale heap entries are
 *   recognised by their size no longer matching, and the merged symbol's new pairs
 *   with its neighbours are pushed;
 * - on output, unused pieces are split back into the two halves most recently queued
 *   for them (sentencepiece's re-segmentation), and symbols that are not pieces become
 *   byte pieces <0xXX> (byte_fallback) or one unk per run of unknown symbols.
 * The text is first cut where no piece can span (see run_bpe), which keeps the heap
 * small on long inputs without changing the result. */
#include <stdlib.h>
#include <string.h>

#include "engine/tokenizer/tok_internal.h"

typedef struct bpe_symbol {
    uint32_t start, len; /* bytes of the normalized text; len 0 once merged away */
    int32_t prev, next;  /* neighbours in the list, -1 at the ends */
    int32_t id;          /* id of the symbol's text (sentencepiece PieceToId) */
    uint8_t frozen;      /* a user-defined piece: never merged */
} bpe_symbol;

typedef struct bpe_pair {
    float score;     /* score of the merged piece */
    int32_t left, right;
    uint32_t size;   /* bytes of the merged piece, to detect stale entries */
    int32_t piece;   /* text_map id of the merged piece */
} bpe_pair;

/* Per unused piece: byte length of the left half of the last pair queued for it. */
typedef struct rev_map {
    int32_t *key;  /* [cap] piece id, -1 when empty */
    uint32_t *val; /* [cap] */
    size_t cap, count;
} rev_map;

typedef struct bpe_ctx {
    const vp_tokenizer *tok;
    const char *s;
    bpe_symbol *sym; /* [n_sym] */
    bpe_pair *heap;  /* [heap_n], heap_cap allocated */
    size_t heap_n, heap_cap;
    rev_map rev;
    vp_ids *out;
    bool prev_unk;
} bpe_ctx;

static bool pair_before(const bpe_pair *a, const bpe_pair *b)
{
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

/* A 4-ary max-heap: half the depth of a binary one, and the four children share a
 * cache line or two, which matters when one long input queues millions of pairs. */
static int heap_push(bpe_ctx *c, const bpe_pair *p)
{
    if (c->heap_n == c->heap_cap) {
        size_t cap = c->heap_cap ? c->heap_cap * 2 : 64;
        bpe_pair *h = realloc(c->heap, cap * sizeof *h);
        if (!h)
            return -1;
        c->heap = h;
        c->heap_cap = cap;
    }
    size_t i = c->heap_n++;
    while (i > 0) {
        size_t parent = (i - 1) / 4;
        if (!pair_before(p, &c->heap[parent]))
            break;
        c->heap[i] = c->heap[parent];
        i = parent;
    }
    c->heap[i] = *p;
    return 0;
}

static bpe_pair heap_pop(bpe_ctx *c)
{
    bpe_pair top = c->heap[0];
    bpe_pair last = c->heap[--c->heap_n];
    size_t n = c->heap_n, i = 0;
    for (;;) {
        size_t first = 4 * i + 1;
        if (first >= n)
            break;
        size_t best = first, end = first + 4 < n ? first + 4 : n;
        for (size_t k = first + 1; k < end; k++)
            if (pair_before(&c->heap[k], &c->heap[best]))
                best = k;
        if (!pair_before(&c->heap[best], &last))
            break;
        c->heap[i] = c->heap[best];
        i = best;
    }
    if (n > 0)
        c->heap[i] = last;
    return top;
}

static int rev_set(rev_map *m, int32_t key, uint32_t val)
{
    if ((m->count + 1) * 2 > m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 64;
        int32_t *k = malloc(cap * sizeof *k);
        uint32_t *v = malloc(cap * sizeof *v);
        if (!k || !v) {
            free(k);
            free(v);
            return -1;
        }
        memset(k, 0xff, cap * sizeof *k);
        for (size_t i = 0; i < m->cap; i++) {
            if (m->key[i] < 0)
                continue;
            size_t j = ((uint32_t)m->key[i] * 2654435761u) & (cap - 1);
            while (k[j] >= 0)
                j = (j + 1) & (cap - 1);
            k[j] = m->key[i];
            v[j] = m->val[i];
        }
        free(m->key);
        free(m->val);
        m->key = k;
        m->val = v;
        m->cap = cap;
    }
    size_t j = ((uint32_t)key * 2654435761u) & (m->cap - 1);
    while (m->key[j] >= 0 && m->key[j] != key)
        j = (j + 1) & (m->cap - 1);
    if (m->key[j] < 0) {
        m->key[j] = key;
        m->count++;
    }
    m->val[j] = val;
    return 0;
}

static uint32_t rev_get(const rev_map *m, int32_t key)
{
    if (m->cap == 0)
        return 0;
    size_t j = ((uint32_t)key * 2654435761u) & (m->cap - 1);
    while (m->key[j] >= 0) {
        if (m->key[j] == key)
            return m->val[j];
        j = (j + 1) & (m->cap - 1);
    }
    return 0;
}

/* Queues the pair (left, right) if their concatenation is a piece. */
static int maybe_add_pair(bpe_ctx *c, int32_t left, int32_t right)
{
    if (left < 0 || right < 0)
        return 0;
    const bpe_symbol *l = &c->sym[left], *r = &c->sym[right];
    if (l->frozen || r->frozen)
        return 0;
    const vp_tokenizer *tok = c->tok;
    uint32_t size = l->len + r->len;
    if (size > tok->max_piece_len)
        return 0;
    int32_t piece = vp_str_map_find(&tok->text_map, c->s + l->start, size);
    if (piece < 0)
        return 0;
    bpe_pair p = {tok->model.score[piece], left, right, size, piece};
    if (heap_push(c, &p) != 0)
        return -1;
    if (tok->model.type[piece] == VP_PIECE_UNUSED && rev_set(&c->rev, piece, l->len) != 0)
        return -1;
    return 0;
}

static int push_id(bpe_ctx *c, int32_t id, uint32_t start, uint32_t len)
{
    const vp_tokenizer *tok = c->tok;
    bool is_unk = tok->model.type[id] == VP_PIECE_UNKNOWN;
    int rc = 0;
    if (is_unk && tok->model.byte_fallback) {
        for (uint32_t i = 0; i < len && rc == 0; i++)
            rc = vp_ids_push(c->out, tok->byte_id[(uint8_t)c->s[start + i]]);
    } else if (!(is_unk && c->prev_unk)) {
        rc = vp_ids_push(c->out, id); /* a run of unknown symbols is one unk */
    }
    c->prev_unk = is_unk;
    return rc;
}

/* Outputs one final symbol; unused pieces are split back (the depth is bounded by the
 * piece length, as each half is shorter). */
static int emit_symbol(bpe_ctx *c, int32_t id, uint32_t start, uint32_t len)
{
    const vp_tokenizer *tok = c->tok;
    if (tok->model.type[id] == VP_PIECE_UNUSED) {
        uint32_t left = rev_get(&c->rev, id);
        if (left > 0 && left < len) {
            int32_t lid = vp_tok_piece_to_id(tok, c->s + start, left);
            int32_t rid = vp_tok_piece_to_id(tok, c->s + start + left, len - left);
            if (emit_symbol(c, lid, start, left) != 0)
                return -1;
            return emit_symbol(c, rid, start + left, len - left);
        }
    }
    return push_id(c, id, start, len);
}

static int32_t char_id(const vp_tokenizer *tok, const char *s, size_t len)
{
    if (len == 1 && (uint8_t)s[0] < 128)
        return tok->ascii_id[(uint8_t)s[0]];
    return vp_tok_piece_to_id(tok, s, len);
}

/* BPE over s[begin, end): one segment, merged on its own. */
static int bpe_segment(bpe_ctx *c, size_t begin, size_t end)
{
    const vp_tokenizer *tok = c->tok;
    const char *s = c->s;
    bool has_user_defined = tok->user_defined.n > 0;

    /* Initial symbols. */
    size_t n_sym = 0;
    for (size_t i = begin; i < end;) {
        bpe_symbol *sym = &c->sym[n_sym];
        size_t len = 0;
        int32_t id = -1;
        sym->frozen = 0;
        if (has_user_defined &&
            (len = vp_trie_longest(&tok->user_defined, s + i, end - i, &id)))
            sym->frozen = 1;
        if (len) {
            id = tok->emit_id[id];
        } else {
            len = vp_utf8_char_len((uint8_t)s[i]);
            if (len > end - i)
                len = end - i;
            id = char_id(tok, s + i, len);
        }
        sym->start = (uint32_t)i;
        sym->len = (uint32_t)len;
        sym->id = id;
        sym->prev = n_sym == 0 ? -1 : (int32_t)(n_sym - 1);
        i += len;
        sym->next = i < end ? (int32_t)(n_sym + 1) : -1;
        n_sym++;
    }
    if (n_sym == 0)
        return 0;
    c->heap_n = 0;
    for (size_t i = 1; i < n_sym; i++)
        if (maybe_add_pair(c, (int32_t)(i - 1), (int32_t)i) != 0)
            return -1;

    /* Merges. */
    while (c->heap_n > 0) {
        bpe_pair top = heap_pop(c);
        bpe_symbol *l = &c->sym[top.left], *r = &c->sym[top.right];
        if (l->len == 0 || r->len == 0 || l->len + r->len != top.size)
            continue; /* stale: one side has changed since it was queued */
        l->len = top.size;
        l->id = tok->emit_id[top.piece];
        l->next = r->next;
        if (r->next >= 0)
            c->sym[r->next].prev = top.left;
        r->len = 0;
        if (maybe_add_pair(c, l->prev, top.left) != 0 || maybe_add_pair(c, top.left, l->next))
            return -1;
    }

    for (int32_t i = 0; i != -1; i = c->sym[i].next)
        if (emit_symbol(c, c->sym[i].id, c->sym[i].start, c->sym[i].len) != 0)
            return -1;
    return 0;
}

/* Cuts the text where no piece can span: between bytes x and y (y starting a
 * character) when no piece contains the byte pair xy, no merged symbol or user-defined
 * match can cross, so the two sides merge independently and each segment can be
 * encoded alone, with a small heap. Unused pieces need the whole text's queue history
 * (re-segmentation uses the last split queued anywhere), so they disable the cuts. */
static int run_bpe(bpe_ctx *c, size_t n)
{
    const vp_tokenizer *tok = c->tok;
    const uint8_t *s = (const uint8_t *)c->s;
    size_t begin = 0;
    if (!tok->has_unused) {
        for (size_t i = 1; i < n; i++) {
            if ((s[i] & 0xC0) == 0x80 || vp_tok_pair_in_piece(tok, s[i - 1], s[i]))
                continue;
            if (bpe_segment(c, begin, i) != 0)
                return -1;
            begin = i;
        }
    }
    return bpe_segment(c, begin, n);
}

int vp_bpe_encode(const vp_tokenizer *tok, const char *s, size_t n, vp_ids *out, vp_error *err)
{
    if (n == 0)
        return 0;
    if (n >= INT32_MAX)
        return vp_fail(err, VP_ERR_TOO_LARGE, NULL, "text of %zu bytes is too long to tokenize",
                       n);
    bpe_ctx c = {.tok = tok, .s = s, .out = out};
    /* One symbol per character at most; n bounds it without counting. */
    c.sym = malloc(n * sizeof *c.sym);
    int rc = c.sym ? run_bpe(&c, n) : -1;
    free(c.sym);
    free(c.heap);
    free(c.rev.key);
    free(c.rev.val);
    if (rc != 0)
        return vp_fail(err, VP_ERR_NOMEM, NULL, "out of memory tokenizing %zu bytes", n);
    return 0;
}
