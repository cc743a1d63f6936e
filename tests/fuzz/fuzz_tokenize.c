/* Text -> vp_tokenizer_encode with the real InternLM2 tokenizer
 * ($SHARED/tokenizer/internlm2, loaded once as the server loads it: tokenizer.model
 * plus tokenizer_config.json's added tokens).
 * Promises, for any bytes (invalid UTF-8, NUL bytes, "<|im_start|>", "<image>"...):
 * - encode fails exactly when the bytes are not valid UTF-8 (an own RFC 3629 check):
 *   tokenizer.h promises VP_ERR_BAD_REQUEST with a message, and nothing appended to the
 *   ids already in the output (sentencepiece would encode U+FFFD instead; the server
 *   refuses such text before it gets here);
 * - on success every id is in [0, vp_tokenizer_n_ids), none is a control, unknown or
 *   added token (tokenizer.h: plain text never produces them), the ids before the
 *   call are kept, and a second encoding gives the same ids;
 * - round trip: the pieces (byte pieces <0xXX> as that byte) spell the input as the
 *   model's normalizer_spec normalises it: identity normalizer, a U+2581 prefix when
 *   add_dummy_prefix, each ' ' as U+2581 when escape_whitespaces (InternLM2: no prefix,
 *   spaces escaped). An input that already holds U+2581 keeps it, as in sentencepiece,
 *   so the comparison is with the normalised text, not with spaces put back;
 * - the ids equal those of a plain O(n^2) sentencepiece BPE written here from
 *   bpe_model.cc (user-defined pieces matched whole, longest first, never merged; the
 *   best-scoring adjacent pair merged, leftmost on ties; reserved pieces looked up first;
 *   unknown symbols as byte pieces). Pieces whose id is now an added special token
 *   ([UNUSED_TOKEN_141..146] = <|plugin|>..<|im_start|>) are left out of it, as vprm
 *   does on purpose (sentencepiece would still match them: MODEL.md section 3).
 * The real model has no unused pieces, so the reference leaves out sentencepiece's
 * re-segmentation of them; the initialiser refuses a model that has some. */
#include <stdbool.h>
#include <string.h>
#include <unistd.h>

#include "engine/tokenizer/spm_proto.h"
#include "engine/tokenizer/tokenizer.h"
#include "engine/util/file.h"
#include "tests/fuzz/fuzz.h"
#include "tests/fuzz/fuzz_real_tokenizer.h"

static vp_tokenizer *g_tok;
static vp_spm_model g_m;  /* tokenizer.model as parsed: piece texts, scores, types */
static size_t g_n_ids;
static uint8_t *g_special; /* [g_n_ids] 1: control, unknown or added token */
static int16_t *g_byte_of; /* [g_n_ids] the byte of a byte piece, else -1 */
static int32_t g_byte_id[256];

/* Open addressing over piece indices keyed by their text (a map of the reference's
 * own, not engine/tokenizer/str_map.c). */
typedef struct piece_map {
    int32_t *slot; /* [mask + 1] piece index or -1 */
    size_t mask;
} piece_map;

static piece_map g_text, g_reserved, g_user; /* sentencepiece's pieces_, reserved_id_map_,
                                              * and its user-defined prefix matcher */
static size_t g_user_max;
static bool g_user_first[256];
static int32_t g_unk = -1;

static uint64_t fnv(const uint8_t *s, size_t n)
{
    uint64_t h = 14695981039346656037ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ s[i]) * 1099511628211ull;
    return h;
}

static void map_init(piece_map *m, size_t n)
{
    size_t cap = 16;
    while (cap < 2 * n)
        cap *= 2;
    m->slot = malloc(cap * sizeof *m->slot);
    FUZZ_REQUIRE(m->slot, "out of memory");
    memset(m->slot, 0xff, cap * sizeof *m->slot);
    m->mask = cap - 1;
}

static int32_t map_find(const piece_map *m, const uint8_t *s, size_t n)
{
    for (size_t i = fnv(s, n) & m->mask;; i = (i + 1) & m->mask) {
        int32_t id = m->slot[i];
        if (id < 0 || (g_m.len[id] == n && !memcmp(g_m.text[id], s, n)))
            return id;
    }
}

static void map_add(piece_map *m, int32_t id)
{
    size_t i = fnv((const uint8_t *)g_m.text[id], g_m.len[id]) & m->mask;
    while (m->slot[i] >= 0)
        i = (i + 1) & m->mask;
    m->slot[i] = id;
}

/* sentencepiece's PieceToId: reserved pieces first, then the others, else unk. */
static int32_t piece_to_id(const uint8_t *s, size_t n)
{
    int32_t id = map_find(&g_reserved, s, n);
    if (id < 0)
        id = map_find(&g_text, s, n);
    return id < 0 ? g_unk : id;
}

static void push(vp_ids *a, int32_t id) { FUZZ_REQUIRE(vp_ids_push(a, id) == 0, "out of memory"); }

static void must_init(bool ok, const char *what, const char *detail)
{
    if (!ok) {
        fprintf(stderr, "fuzz_tokenize: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
        abort();
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_load_real_tokenizer(&g_tok, &g_m);

    fuzz_id_tables(g_tok, &g_n_ids, &g_special, &g_byte_of);

    /* The reference's tables, from the model file (and the added tokens vprm keeps out
     * of what text can produce). */
    map_init(&g_text, g_m.n_pieces);
    map_init(&g_reserved, g_m.n_pieces);
    map_init(&g_user, g_m.n_pieces);
    for (size_t i = 0; i < g_m.n_pieces; i++) {
        uint8_t t = g_m.type[i];
        must_init(t != VP_PIECE_UNUSED, "the reference BPE does not re-segment unused pieces",
                  g_m.text[i]);
        if (t == VP_PIECE_CONTROL || t == VP_PIECE_UNKNOWN || t == VP_PIECE_BYTE) {
            map_add(&g_reserved, (int32_t)i);
            if (t == VP_PIECE_UNKNOWN)
                g_unk = (int32_t)i;
            continue;
        }
        if (g_special[i])
            continue; /* its id is an added token now */
        map_add(&g_text, (int32_t)i);
        if (t == VP_PIECE_USER_DEFINED) {
            map_add(&g_user, (int32_t)i);
            g_user_first[(uint8_t)g_m.text[i][0]] = true;
            if (g_m.len[i] > g_user_max)
                g_user_max = g_m.len[i];
        }
    }
    must_init(g_unk >= 0, "the model has no unknown piece", NULL);
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b);
        g_byte_id[b] = piece_to_id((const uint8_t *)name, 6);
    }
    return 0;
}

/* The model's normalisation (identity normalizer: dummy prefix and escaped spaces). */
static uint8_t *normalize(const uint8_t *s, size_t n, size_t *out_n)
{
    uint8_t *out = malloc(3 * n + 3), *o = out;
    FUZZ_REQUIRE(out, "out of memory");
    if (g_m.add_dummy_prefix) {
        if (g_m.escape_whitespaces)
            memcpy(o, "\xe2\x96\x81", 3), o += 3;
        else
            *o++ = ' ';
    }
    for (size_t i = 0; i < n; i++) {
        if (s[i] == ' ' && g_m.escape_whitespaces)
            memcpy(o, "\xe2\x96\x81", 3), o += 3;
        else
            *o++ = s[i];
    }
    *out_n = (size_t)(o - out);
    return out;
}

static size_t user_match(const uint8_t *s, size_t n)
{
    if (!g_user_first[s[0]])
        return 0;
    for (size_t len = n < g_user_max ? n : g_user_max; len > 0; len--)
        if (map_find(&g_user, s, len) >= 0)
            return len;
    return 0;
}

static size_t char_len(uint8_t b) { return b < 0x80 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4; }

/* sentencepiece BPE (bpe_model.cc Encode, then the processor's byte fallback) the
 * slow, obvious way: each round scans every adjacent pair. */
static void ref_encode(const uint8_t *s, size_t n, vp_ids *out)
{
    if (n == 0)
        return;
    size_t *start = malloc(n * sizeof *start), *len = malloc(n * sizeof *len);
    long *next = malloc(n * sizeof *next), *prev = malloc(n * sizeof *prev);
    int32_t *pair = malloc(n * sizeof *pair); /* piece of (i, next[i]), or -1 */
    bool *frozen = malloc(n * sizeof *frozen);
    FUZZ_REQUIRE(start && len && next && prev && pair && frozen, "out of memory");
    size_t n_sym = 0;
    for (size_t i = 0; i < n; n_sym++) {
        size_t l = user_match(s + i, n - i);
        frozen[n_sym] = l > 0;
        if (!l)
            l = char_len(s[i]);
        start[n_sym] = i;
        len[n_sym] = l;
        prev[n_sym] = (long)n_sym - 1;
        i += l;
        next[n_sym] = i < n ? (long)n_sym + 1 : -1;
    }
#define PAIR_OF(i)                                                                        \
    ((i) < 0 || next[i] < 0 || frozen[i] || frozen[next[i]]                               \
         ? -1                                                                             \
         : map_find(&g_text, s + start[i], len[i] + len[next[i]]))
    for (long i = 0; i < (long)n_sym; i++)
        pair[i] = PAIR_OF(i);
    for (;;) {
        long best = -1;
        for (long i = 0; i >= 0; i = next[i])
            if (pair[i] >= 0 && (best < 0 || g_m.score[pair[i]] > g_m.score[pair[best]]))
                best = i;
        if (best < 0)
            break;
        long r = next[best];
        len[best] += len[r];
        next[best] = next[r];
        if (next[r] >= 0)
            prev[next[r]] = best;
        pair[best] = PAIR_OF(best);
        if (prev[best] >= 0)
            pair[prev[best]] = PAIR_OF(prev[best]);
    }
#undef PAIR_OF
    bool prev_unk = false;
    for (long i = 0; i >= 0; i = next[i]) {
        int32_t id = piece_to_id(s + start[i], len[i]);
        bool unk = id == g_unk;
        if (unk && g_m.byte_fallback) {
            for (size_t k = 0; k < len[i]; k++)
                push(out, g_byte_id[s[start[i] + k]]);
        } else if (!(unk && prev_unk)) {
            push(out, id);
        }
        prev_unk = unk;
    }
    free(start);
    free(len);
    free(next);
    free(prev);
    free(pair);
    free(frozen);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const int32_t sentinel = 13;
    vp_ids ids = {0}, again = {0}, want = {0};
    vp_error err = {0};
    push(&ids, sentinel);
    int rc = vp_tokenizer_encode(g_tok, (const char *)data, size, &ids, &err);
    if (!fuzz_utf8_ok(data, size)) {
        FUZZ_REQUIRE(rc != 0, "%zu bytes of invalid UTF-8 were encoded", size);
        FUZZ_REQUIRE_ERROR(err);
        FUZZ_REQUIRE(err.kind == VP_ERR_BAD_REQUEST, "error kind %d: %s", (int)err.kind,
                     err.message);
        FUZZ_REQUIRE(ids.n == 1 && ids.v[0] == sentinel, "%zu ids after a refusal", ids.n);
        vp_ids_free(&ids);
        return 0;
    }
    FUZZ_REQUIRE(rc == 0, "valid UTF-8 of %zu bytes refused: %s", size, err.message);
    FUZZ_REQUIRE(ids.v[0] == sentinel, "the ids already in the output were changed");
    const int32_t *v = ids.v + 1;
    size_t n = ids.n - 1;
    for (size_t k = 0; k < n; k++) {
        FUZZ_REQUIRE(v[k] >= 0 && (size_t)v[k] < g_n_ids, "id %d at %zu out of [0, %zu)",
                     (int)v[k], k, g_n_ids);
        FUZZ_REQUIRE(!g_special[v[k]], "text produced the special id %d '%s' at %zu", (int)v[k],
                     vp_tokenizer_id_to_piece(g_tok, v[k]), k);
    }
    FUZZ_REQUIRE(vp_tokenizer_encode(g_tok, (const char *)data, size, &again, &err) == 0 &&
                     again.n == n && (n == 0 || !memcmp(again.v, v, n * sizeof *v)),
                 "a second encoding differs");

    size_t norm_n;
    uint8_t *norm = normalize(data, size, &norm_n);
    /* Round trip: the pieces spell the normalised text. */
    size_t at = 0;
    for (size_t k = 0; k < n; k++) {
        int32_t id = v[k];
        const uint8_t *p;
        size_t plen;
        uint8_t byte;
        if (g_byte_of[id] >= 0) {
            byte = (uint8_t)g_byte_of[id];
            p = &byte, plen = 1;
        } else {
            p = (const uint8_t *)g_m.text[id], plen = g_m.len[id]; /* not added: see above */
        }
        FUZZ_REQUIRE(plen <= norm_n - at && !memcmp(p, norm + at, plen),
                     "id %d (piece %zu of %zu) does not spell the normalised text at byte %zu",
                     (int)id, k, n, at);
        at += plen;
    }
    FUZZ_REQUIRE(at == norm_n, "the ids spell %zu of %zu normalised bytes", at, norm_n);

    ref_encode(norm, norm_n, &want);
    size_t k = 0;
    while (k < n && k < want.n && v[k] == want.v[k])
        k++;
    FUZZ_REQUIRE(k == n && k == want.n,
                 "ids differ from the reference BPE at %zu: %d vs %d (%zu vs %zu ids)", k,
                 k < n ? (int)v[k] : -1, k < want.n ? (int)want.v[k] : -1, n, want.n);
    free(norm);
    vp_ids_free(&ids);
    vp_ids_free(&again);
    vp_ids_free(&want);
    return 0;
}
