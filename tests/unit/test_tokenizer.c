/* Unit tests of the SentencePiece BPE tokenizer: the embedded tiny tokenizer (the
 * prompt builder's "assistant\n+" property, added tokens, special tokens spelled in
 * text, UTF-8 refusal, round trips, long inputs), hand-built models whose encodings are
 * worked out by hand (merge order, ties, user-defined, unused and byte pieces), and
 * corrupt or unsupported model files (clear errors, no crash). Exact agreement with
 * python3-sentencepiece is tests/tokenizer/suite_oracle.sh. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "engine/tokenizer/tokenizer.h"
#include "engine/util/file.h"
#include "tests/unit/check.h"

#define TINY "engine/assets/tiny_tokenizer"

static char tmpdir[512];

/* ---- a small protobuf writer for hand-built models ---- */

typedef struct buf {
    uint8_t *b;
    size_t n, cap;
} buf;

static void put(buf *o, const void *p, size_t n)
{
    if (o->n + n > o->cap) {
        o->cap = (o->n + n) * 2 + 64;
        o->b = realloc(o->b, o->cap);
    }
    memcpy(o->b + o->n, p, n);
    o->n += n;
}

static void put_varint(buf *o, uint64_t v)
{
    do {
        uint8_t c = (uint8_t)(v & 127);
        v >>= 7;
        if (v)
            c |= 128;
        put(o, &c, 1);
    } while (v);
}

static void put_field_varint(buf *o, unsigned field, uint64_t v)
{
    put_varint(o, field << 3 | 0);
    put_varint(o, v);
}

static void put_field_bytes(buf *o, unsigned field, const void *p, size_t n)
{
    put_varint(o, field << 3 | 2);
    put_varint(o, n);
    put(o, p, n);
}

static void put_piece(buf *o, const char *text, float score, int type)
{
    buf p = {0};
    put_field_bytes(&p, 1, text, strlen(text));
    put_varint(&p, 2 << 3 | 5);
    put(&p, &score, 4); /* little-endian host */
    if (type != 1)
        put_field_varint(&p, 3, (uint64_t)type);
    put_field_bytes(o, 1, p.b, p.n);
    free(p.b);
}

typedef struct model_opts {
    int model_type;          /* 2 = BPE */
    int byte_fallback;
    const char *norm_name;
    int charsmap;            /* write a non-empty precompiled_charsmap */
    int remove_ws;
    int dummy_prefix;
    int no_unk;              /* leave the unknown piece out */
    int two_unk;
    int duplicate;           /* a piece twice */
    int nan_score;
    int no_specs;            /* no trainer/normalizer spec at all */
    const char *user_defined; /* pieces made user-defined, '|' separated */
    const char *unused;       /* pieces made unused, '|' separated */
} model_opts;

static int in_list(const char *list, const char *s)
{
    if (!list)
        return 0;
    size_t n = strlen(s);
    for (const char *p = list; *p;) {
        const char *e = strchr(p, '|');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == n && memcmp(p, s, n) == 0)
            return 1;
        if (!e)
            break;
        p = e + 1;
    }
    return 0;
}

/* ids: 0 <unk>, 1 <s>, 2 </s>, 3.. the normal pieces below, then 256 byte pieces. */
static const char *const kPieces[] = {"a", "b", "c", "d", "x", "\xe2\x96\x81", "ab", "bc", "abc",
                                      "aa", "aaaa", "cd", "\xe2\x96\x81" "a", "bcd", "\xc3\xa9"};
static const float kScores[] = {-1, -2, -3, -4, -5, -6, -10, -11, -12, -13, -14, -9, -15, -8, -7};
#define N_NORMAL (sizeof kPieces / sizeof *kPieces)
#define BYTE0 (3 + (int)N_NORMAL)

static buf build_model(const model_opts *o)
{
    buf m = {0};
    if (!o->no_unk)
        put_piece(&m, "<unk>", 0, 2);
    put_piece(&m, "<s>", 0, 3);
    put_piece(&m, "</s>", 0, 3);
    for (size_t i = 0; i < N_NORMAL; i++) {
        int type = in_list(o->user_defined, kPieces[i]) ? 4 : in_list(o->unused, kPieces[i]) ? 5 : 1;
        put_piece(&m, kPieces[i], o->nan_score && i == 2 ? NAN : kScores[i], type);
    }
    if (o->duplicate)
        put_piece(&m, "ab", -20, 1);
    if (o->two_unk)
        put_piece(&m, "<unk2>", 0, 2);
    if (o->byte_fallback || o->model_type == 99) /* 99: bytes without byte_fallback */
        for (int b = 0; b < 256; b++) {
            char name[8];
            snprintf(name, sizeof name, "<0x%02X>", b);
            put_piece(&m, name, 0, 6);
        }
    if (o->no_specs)
        return m;
    buf t = {0};
    put_field_varint(&t, 3, (uint64_t)(o->model_type == 99 ? 2 : o->model_type));
    put_field_varint(&t, 35, (uint64_t)o->byte_fallback);
    put_field_varint(&t, 43, (uint64_t)(int64_t)-1); /* pad_id -1: a 10-byte varint */
    put_field_bytes(&m, 2, t.b, t.n);
    buf n = {0};
    const char *name = o->norm_name ? o->norm_name : "identity";
    put_field_bytes(&n, 1, name, strlen(name));
    if (o->charsmap)
        put_field_bytes(&n, 2, "\x01\x02\x03", 3);
    put_field_varint(&n, 3, (uint64_t)o->dummy_prefix);
    put_field_varint(&n, 4, (uint64_t)o->remove_ws);
    put_field_bytes(&m, 3, n.b, n.n);
    free(t.b);
    free(n.b);
    return m;
}

static void write_file(const char *path, const void *p, size_t n)
{
    vp_error err;
    if (vp_write_file(path, p, n, &err) != 0) {
        fprintf(stderr, "cannot write %s: %s\n", path, err.message);
        exit(1);
    }
}

/* Loads a hand-built model; NULL with err filled on refusal. */
static vp_tokenizer *load_built(const model_opts *o, vp_error *err)
{
    char path[600];
    snprintf(path, sizeof path, "%s/built.model", tmpdir);
    buf m = build_model(o);
    write_file(path, m.b, m.n);
    free(m.b);
    vp_tokenizer *tok = NULL;
    memset(err, 0, sizeof *err);
    if (vp_tokenizer_load_model_file(path, &tok, err) != 0)
        return NULL;
    return tok;
}

/* Encodes and compares with the expected ids (-1 terminated). */
static int encodes_to(const vp_tokenizer *tok, const char *text, const int32_t *want)
{
    vp_ids ids = {0};
    vp_error err;
    int ok = vp_tokenizer_encode(tok, text, strlen(text), &ids, &err) == 0;
    size_t n = 0;
    while (want[n] >= 0)
        n++;
    ok = ok && ids.n == n && (n == 0 || memcmp(ids.v, want, n * sizeof *want) == 0);
    if (!ok) {
        fprintf(stderr, "  '%s' ->", text);
        for (size_t i = 0; i < ids.n; i++)
            fprintf(stderr, " %d", (int)ids.v[i]);
        fprintf(stderr, "\n");
    }
    vp_ids_free(&ids);
    return ok;
}

#define P(s) (3 + piece_index(s))
static int piece_index(const char *s)
{
    for (size_t i = 0; i < N_NORMAL; i++)
        if (strcmp(kPieces[i], s) == 0)
            return (int)i;
    return -1000;
}

static void test_built_models(void)
{
    vp_error err;
    model_opts base = {.model_type = 2, .byte_fallback = 1};
    vp_tokenizer *tok = load_built(&base, &err);
    CHECK_MSG(tok != NULL, "%s", err.message);
    if (!tok)
        return;
    CHECK(vp_tokenizer_n_ids(tok) == (size_t)BYTE0 + 256);
    CHECK(vp_tokenizer_bos_id(tok) == 1 && vp_tokenizer_eos_id(tok) == 2);
    CHECK(vp_tokenizer_unk_id(tok) == 0);
    /* "abc": ab (-10) beats bc (-11); then ab+c = abc (-12). */
    CHECK(encodes_to(tok, "abc", (int32_t[]){P("abc"), -1}));
    /* "abcd": cd (-9) goes first, then b+cd = bcd (-8) beats ab (-10), which is then
     * stale; abcd is no piece. */
    CHECK(encodes_to(tok, "abcd", (int32_t[]){P("a"), P("bcd"), -1}));
    /* "bcd": cd (-9) before bc (-11): b cd, b+cd = bcd (-8). */
    CHECK(encodes_to(tok, "bcd", (int32_t[]){P("bcd"), -1}));
    /* Ties go to the leftmost pair: aaa -> aa a; aaaaa -> aaaa a. */
    CHECK(encodes_to(tok, "aaa", (int32_t[]){P("aa"), P("a"), -1}));
    CHECK(encodes_to(tok, "aaaaa", (int32_t[]){P("aaaa"), P("a"), -1}));
    /* Spaces become U+2581 and merge as pieces. */
    CHECK(encodes_to(tok, "x a", (int32_t[]){P("x"), P("\xe2\x96\x81" "a"), -1}));
    CHECK(encodes_to(tok, "  ", (int32_t[]){P("\xe2\x96\x81"), P("\xe2\x96\x81"), -1}));
    /* A character outside the vocabulary becomes its UTF-8 byte pieces; a known one not. */
    CHECK(encodes_to(tok, "a\xc3\xbc", (int32_t[]){P("a"), BYTE0 + 0xc3, BYTE0 + 0xbc, -1}));
    CHECK(encodes_to(tok, "\xc3\xa9", (int32_t[]){P("\xc3\xa9"), -1}));
    /* Control pieces are never produced from text. */
    CHECK(encodes_to(tok, "<s>", (int32_t[]){BYTE0 + '<', BYTE0 + 's', BYTE0 + '>', -1}));
    CHECK(encodes_to(tok, "", (int32_t[]){-1}));
    vp_tokenizer_free(tok);

    /* Without byte fallback a run of unknown characters is one unk. */
    model_opts nobytes = {.model_type = 2};
    tok = load_built(&nobytes, &err);
    CHECK_MSG(tok != NULL, "%s", err.message);
    if (tok) {
        CHECK(encodes_to(tok, "a\xc3\xbc\xc3\xbcz b", (int32_t[]){P("a"), 0, P("\xe2\x96\x81"), P("b"), -1}));
        vp_tokenizer_free(tok);
    }

    /* Dummy prefix: a leading U+2581. */
    model_opts dummy = base;
    dummy.dummy_prefix = 1;
    tok = load_built(&dummy, &err);
    CHECK_MSG(tok != NULL, "%s", err.message);
    if (tok) {
        CHECK(encodes_to(tok, "a", (int32_t[]){P("\xe2\x96\x81" "a"), -1}));
        CHECK(encodes_to(tok, "", (int32_t[]){-1}));
        vp_tokenizer_free(tok);
    }

    /* User-defined pieces are matched whole and never merged further. */
    model_opts ud = base;
    ud.user_defined = "bc";
    tok = load_built(&ud, &err);
    CHECK_MSG(tok != NULL, "%s", err.message);
    if (tok) {
        CHECK(encodes_to(tok, "abc", (int32_t[]){P("a"), P("bc"), -1}));
        CHECK(encodes_to(tok, "bcd", (int32_t[]){P("bc"), P("d"), -1}));
        vp_tokenizer_free(tok);
    }

    /* An unused piece may be merged through, but is output as the halves it was made
     * of: abc (unused) = ab + c. */
    model_opts un = base;
    un.unused = "abc";
    tok = load_built(&un, &err);
    CHECK_MSG(tok != NULL, "%s", err.message);
    if (tok) {
        CHECK(encodes_to(tok, "abc", (int32_t[]){P("ab"), P("c"), -1}));
        vp_tokenizer_free(tok);
    }
    un.unused = "ab|abc";
    tok = load_built(&un, &err);
    CHECK_MSG(tok != NULL, "%s", err.message);
    if (tok) {
        CHECK(encodes_to(tok, "abc", (int32_t[]){P("a"), P("b"), P("c"), -1}));
        vp_tokenizer_free(tok);
    }
}

static void expect_refused(const model_opts *o, const char *needle, const char *what)
{
    vp_error err;
    vp_tokenizer *tok = load_built(o, &err);
    CHECK_MSG(tok == NULL, "%s: loaded", what);
    vp_tokenizer_free(tok);
    CHECK_MSG(err.kind == VP_ERR_MODEL && strstr(err.message, needle), "%s: kind %d message '%s'",
              what, (int)err.kind, err.message);
}

static void test_refused_settings(void)
{
    model_opts o = {.model_type = 1, .byte_fallback = 1};
    expect_refused(&o, "UNIGRAM", "unigram");
    o.model_type = 2;
    o.charsmap = 1;
    expect_refused(&o, "precompiled_charsmap", "charsmap");
    o.charsmap = 0;
    o.norm_name = "nmt_nfkc";
    expect_refused(&o, "nmt_nfkc", "normalizer rule");
    o.norm_name = NULL;
    o.remove_ws = 1;
    expect_refused(&o, "remove_extra_whitespaces", "remove_extra_whitespaces");
    o.remove_ws = 0;
    o.no_unk = 1;
    expect_refused(&o, "UNKNOWN", "no unk");
    o.no_unk = 0;
    o.two_unk = 1;
    expect_refused(&o, "UNKNOWN", "two unk");
    o.two_unk = 0;
    o.duplicate = 1;
    expect_refused(&o, "already defined", "duplicate piece");
    o.duplicate = 0;
    o.nan_score = 1;
    expect_refused(&o, "NaN", "NaN score");
    o.nan_score = 0;
    o.model_type = 99;
    o.byte_fallback = 0;
    expect_refused(&o, "byte_fallback", "byte pieces without byte_fallback");
    model_opts bare = {.model_type = 2, .no_specs = 1};
    expect_refused(&bare, "UNIGRAM", "no trainer_spec (proto2 default UNIGRAM)");
}

static void expect_corrupt(const uint8_t *data, size_t n, const char *needle, const char *what)
{
    char path[600];
    snprintf(path, sizeof path, "%s/corrupt.model", tmpdir);
    write_file(path, data, n);
    vp_tokenizer *tok = NULL;
    vp_error err = {0};
    int rc = vp_tokenizer_load_model_file(path, &tok, &err);
    CHECK_MSG(rc != 0 && tok == NULL, "%s: loaded", what);
    vp_tokenizer_free(tok);
    CHECK_MSG(err.kind == VP_ERR_MODEL && (!needle || strstr(err.message, needle)),
              "%s: kind %d message '%s'", what, (int)err.kind, err.message);
}

static void test_corrupt_files(void)
{
    /* Crafted breakage of the wire format. */
    static const uint8_t long_varint[] = {0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                          0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
    expect_corrupt(long_varint, sizeof long_varint, "varint", "11-byte varint");
    static const uint8_t trunc_varint[] = {0x0a, 0x85};
    expect_corrupt(trunc_varint, sizeof trunc_varint, "truncated varint", "truncated varint");
    static const uint8_t past_end[] = {0x0a, 0x40, 0x0a, 0x01, 'a'};
    expect_corrupt(past_end, sizeof past_end, "past the end", "length past the end");
    static const uint8_t inner_past[] = {0x0a, 0x04, 0x0a, 0x09, 'a', 'b'};
    expect_corrupt(inner_past, sizeof inner_past, "past the end", "inner length past the end");
    static const uint8_t group[] = {0x0b, 0x0c};
    expect_corrupt(group, sizeof group, "wire type", "group wire type");
    static const uint8_t bad_type[] = {0x0a, 0x05, 0x0a, 0x01, 'a', 0x18, 0x07};
    expect_corrupt(bad_type, sizeof bad_type, "unknown type 7", "piece type 7");
    static const uint8_t empty_piece[] = {0x0a, 0x02, 0x18, 0x01};
    expect_corrupt(empty_piece, sizeof empty_piece, "empty", "piece without text");
    static const uint8_t wrong_wire[] = {0x08, 0x01};
    expect_corrupt(wrong_wire, sizeof wrong_wire, "wire type", "pieces as a varint");
    static const uint8_t trunc_score[] = {0x0a, 0x05, 0x0a, 0x01, 'a', 0x15, 0x00};
    expect_corrupt(trunc_score, sizeof trunc_score, "score", "truncated float");
    expect_corrupt((const uint8_t *)"", 0, "no pieces", "empty file");

    /* Every truncation of the tiny model is refused: the specs come after the pieces,
     * so a cut anywhere loses trainer_spec (the proto2 default UNIGRAM is refused) or
     * breaks a message. */
    uint8_t *data;
    size_t n;
    vp_error err;
    if (vp_read_file(TINY "/tokenizer.model", 0, &data, &n, &err) != 0) {
        CHECK_MSG(0, "%s", err.message);
        return;
    }
    size_t truncations = 0;
    for (size_t cut = 0; cut < n; cut += cut < 200 || cut > n - 300 ? 1 : 97) {
        expect_corrupt(data, cut, NULL, "truncated tiny model");
        truncations++;
    }
    /* Random byte corruption: a clear error or a working tokenizer, never a crash. */
    char path[600];
    snprintf(path, sizeof path, "%s/flipped.model", tmpdir);
    uint8_t *copy = malloc(n);
    unsigned seed = 12345;
    int loaded = 0, refused = 0;
    for (int trial = 0; trial < 300; trial++) {
        memcpy(copy, data, n);
        for (int k = 0; k < 1 + trial % 4; k++) {
            seed = seed * 1103515245u + 12345u;
            size_t at = (seed >> 8) % n;
            seed = seed * 1103515245u + 12345u;
            copy[at] = (uint8_t)(seed >> 16);
        }
        write_file(path, copy, n);
        vp_tokenizer *tok = NULL;
        if (vp_tokenizer_load_model_file(path, &tok, &err) == 0) {
            loaded++;
            vp_ids ids = {0};
            const char *text = "Step 1: the answer is $\\frac{1}{2}$.\n+";
            if (vp_tokenizer_encode(tok, text, strlen(text), &ids, &err) == 0)
                for (size_t i = 0; i < ids.n; i++)
                    CHECK(ids.v[i] >= 0 && (size_t)ids.v[i] < vp_tokenizer_n_ids(tok));
            vp_ids_free(&ids);
            vp_tokenizer_free(tok);
        } else {
            refused++;
            CHECK(err.message[0] != 0);
        }
    }
    printf("corrupt models: %zu truncations refused; 300 random corruptions: %d loaded, %d "
           "refused\n", truncations, loaded, refused);
    free(copy);
    free(data);
}

/* Concatenated piece texts with U+2581 as space and <0xXX> as the byte. */
static char *decode(const vp_tokenizer *tok, const vp_ids *ids, size_t *len)
{
    buf o = {0};
    for (size_t i = 0; i < ids->n; i++) {
        const char *p = vp_tokenizer_id_to_piece(tok, ids->v[i]);
        unsigned b;
        if (strlen(p) == 6 && sscanf(p, "<0x%2X>", &b) == 1) {
            uint8_t c = (uint8_t)b;
            put(&o, &c, 1);
            continue;
        }
        for (; *p; p++) {
            if (strncmp(p, "\xe2\x96\x81", 3) == 0) {
                put(&o, " ", 1);
                p += 2;
            } else {
                put(&o, p, 1);
            }
        }
    }
    put(&o, "", 1);
    *len = o.n - 1;
    return (char *)o.b;
}

static void test_tiny(void)
{
    vp_tokenizer *tok = NULL;
    vp_error err;
    if (vp_tokenizer_load(TINY, &tok, &err) != 0) {
        CHECK_MSG(0, "loading %s: %s", TINY, err.message);
        return;
    }
    /* 1500 pieces + 15 added tokens from 1500 upward (tokenizer_config.json). */
    CHECK(vp_tokenizer_n_ids(tok) == 1515);
    CHECK(vp_tokenizer_bos_id(tok) == 1);
    CHECK(vp_tokenizer_special_id(tok, "<s>") == 1);
    CHECK(vp_tokenizer_special_id(tok, "</s>") == 2);
    CHECK(vp_tokenizer_special_id(tok, "<|plugin|>") == 1500);
    CHECK(vp_tokenizer_special_id(tok, "<|im_end|>") == 1504);
    CHECK(vp_tokenizer_special_id(tok, "<|im_start|>") == 1505);
    CHECK(vp_tokenizer_special_id(tok, "<IMG_CONTEXT>") == 1508);
    CHECK(vp_tokenizer_special_id(tok, "</box>") == 1514);
    CHECK(vp_tokenizer_special_id(tok, "+") == -1);
    CHECK(vp_tokenizer_special_id(tok, "<none>") == -1);
    CHECK(strcmp(vp_tokenizer_id_to_piece(tok, 1505), "<|im_start|>") == 0);
    CHECK(vp_tokenizer_id_to_piece(tok, 1515) == NULL);
    CHECK(vp_tokenizer_id_to_piece(tok, -1) == NULL);

    /* The prompt builder's requirement: ... "\n" "+" as the last two single pieces. */
    int32_t plus = vp_tokenizer_piece_id(tok, "+"), minus = vp_tokenizer_piece_id(tok, "-");
    int32_t nl = vp_tokenizer_piece_id(tok, "\n");
    CHECK(plus >= 0 && minus >= 0 && nl >= 0 && plus != minus);
    const char *signs[2] = {"assistant\n+", "assistant\n-"};
    for (int k = 0; k < 2; k++) {
        vp_ids ids = {0};
        CHECK(vp_tokenizer_encode(tok, signs[k], strlen(signs[k]), &ids, &err) == 0);
        CHECK_MSG(ids.n >= 3 && ids.v[ids.n - 1] == (k ? minus : plus) && ids.v[ids.n - 2] == nl,
                  "%s", signs[k]);
        vp_ids_free(&ids);
    }
    /* Values from python3-sentencepiece on this model. */
    CHECK(encodes_to(tok, "assistant\n+", (int32_t[]){724, 3, 1403, -1}));
    CHECK(encodes_to(tok, "The answer is 42.", (int32_t[]){265, 343, 272, 1359, 1384, 1375, 1368, -1}));
    CHECK(encodes_to(tok, "  \t\n", (int32_t[]){1359, 1359, 4, 3, -1}));
    /* Special tokens spelled in text stay text (no id at or above 1500, no control). */
    CHECK(encodes_to(tok, "<|im_end|>", (int32_t[]){65, 129, 1043, 1406, 490, 129, 1487, -1}));
    CHECK(encodes_to(tok, "<s>", (int32_t[]){65, 1362, 1487, -1}));
    const char *spelled = "<|im_start|>user\n<IMG_CONTEXT><img></img><|im_end|></s><unk>";
    vp_ids ids = {0};
    CHECK(vp_tokenizer_encode(tok, spelled, strlen(spelled), &ids, &err) == 0);
    for (size_t i = 0; i < ids.n; i++)
        CHECK_MSG(ids.v[i] > 2 && ids.v[i] < 1500, "id %d from text", (int)ids.v[i]);

    /* Appends to what is already there. */
    size_t before = ids.n;
    CHECK(vp_tokenizer_encode(tok, "+", 1, &ids, &err) == 0);
    CHECK(ids.n == before + 1 && ids.v[before] == plus);

    /* Invalid UTF-8: refused, naming the byte offset, the output untouched. */
    static const struct {
        const char *s;
        size_t len, offset;
    } bad[] = {{"ab\xff", 3, 2},          {"abc\xc3", 4, 3},       {"\xc0\xaf", 2, 0},
               {"x\xed\xa0\x80", 4, 1},   {"\xf4\x90\x80\x80", 4, 0}, {"ok \x80", 4, 3},
               {"\xe2\x96", 2, 0},       {"a\xf8\x88\x80\x80\x80", 6, 1}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        before = ids.n;
        int rc = vp_tokenizer_encode(tok, bad[i].s, bad[i].len, &ids, &err);
        char want[64];
        snprintf(want, sizeof want, "byte offset %zu", bad[i].offset);
        CHECK_MSG(rc != 0 && err.kind == VP_ERR_BAD_REQUEST && strstr(err.message, want) &&
                      ids.n == before,
                  "bad UTF-8 #%zu: rc %d '%s'", i, rc, err.message);
    }
    /* Valid edge cases pass: U+FFFD, U+10FFFF, U+FFFF, NUL. */
    CHECK(vp_tokenizer_encode(tok, "\xef\xbf\xbd\xf4\x8f\xbf\xbf\xef\xbf\xbf\0", 11, &ids, &err) == 0);
    vp_ids_free(&ids);

    /* Round trips: the pieces spell the text back. */
    static const char *const texts[] = {
        "Step 2: Since $\\angle ABC = 90^\\circ$, the area is $\\frac{1}{2} \\cdot 3 \\cdot 4 = 6$.",
        "  leading and trailing  ", "tabs\tand\nnewlines\n\n\n", "\xe5\x9b\xa0\xe6\xad\xa4 42",
        "emoji \xf0\x9f\x91\xa8\xe2\x80\x8d\xf0\x9f\x91\xa9\xe2\x80\x8d\xf0\x9f\x91\xa7!",
        "\x01\x02\x7f ctrl", "\xe2\x96\x81 literal U+2581"};
    for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) {
        vp_ids t = {0};
        size_t len;
        CHECK(vp_tokenizer_encode(tok, texts[i], strlen(texts[i]), &t, &err) == 0);
        char *back = decode(tok, &t, &len);
        /* A literal U+2581 in the text reads back as a space: compare with that. */
        char want[256];
        snprintf(want, sizeof want, "%s", texts[i]);
        char *u = strstr(want, "\xe2\x96\x81");
        if (u)
            memmove(u + 1, u + 3, strlen(u + 3) + 1), *u = ' ';
        CHECK_MSG(strcmp(back, want) == 0, "round trip of '%s' gave '%s'", texts[i], back);
        free(back);
        vp_ids_free(&t);
    }

    /* Long inputs stay fast (no quadratic behaviour): 1 MB of one character that merges
     * ("#": ##, ###; "s": ss), and 1 MB without spaces; all round-trip. */
    size_t big = 1 << 20;
    char *s = malloc(big + 1);
    static const char *const words[] = {"the", "area", "is", "\\frac", "{1}", "42", "step"};
    static const char *const repeated[] = {"#", "s", NULL};
    for (int variant = 0; variant < 3; variant++) {
        size_t k = 0;
        for (unsigned w = 1; k < big; w = w * 1103515245u + 12345u) {
            const char *wd = repeated[variant] ? repeated[variant] : words[(w >> 16) % 7];
            for (size_t j = 0; wd[j] && k < big; j++)
                s[k++] = wd[j];
        }
        s[big] = 0;
        vp_ids t = {0};
        clock_t t0 = clock();
        CHECK(vp_tokenizer_encode(tok, s, big, &t, &err) == 0);
        double secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
        CHECK_MSG(secs < 20.0, "1 MB took %.1f s", secs);
        size_t len;
        char *back = decode(tok, &t, &len);
        CHECK(len == big && memcmp(back, s, big) == 0);
        printf("1 MB %s%s: %zu tokens in %.2f s\n", repeated[variant] ? "of " : "without spaces",
               repeated[variant] ? repeated[variant] : "", t.n, secs);
        free(back);
        vp_ids_free(&t);
    }
    free(s);
    vp_tokenizer_free(tok);
}

static void write_text(const char *dir, const char *name, const char *text)
{
    char path[700];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    write_file(path, text, strlen(text));
}

static void copy_tiny_model(const char *dir)
{
    uint8_t *data;
    size_t n;
    vp_error err;
    char path[700];
    if (vp_read_file(TINY "/tokenizer.model", 0, &data, &n, &err) != 0) {
        fprintf(stderr, "%s\n", err.message);
        exit(1);
    }
    snprintf(path, sizeof path, "%s/tokenizer.model", dir);
    write_file(path, data, n);
    free(data);
}

static void remove_file(const char *dir, const char *name)
{
    char path[700];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    unlink(path);
}

static vp_tokenizer *load_dir(const char *dir, vp_error *err)
{
    vp_tokenizer *tok = NULL;
    memset(err, 0, sizeof *err);
    return vp_tokenizer_load(dir, &tok, err) == 0 ? tok : NULL;
}

static void test_added_tokens(void)
{
    char dir[600];
    snprintf(dir, sizeof dir, "%s/folder", tmpdir);
    mkdir(dir, 0700);
    copy_tiny_model(dir);
    vp_error err;

    /* Missing tokenizer_config.json is an error. */
    vp_tokenizer *tok = load_dir(dir, &err);
    CHECK_MSG(!tok && err.kind == VP_ERR_IO && strstr(err.message, "tokenizer_config.json"),
              "%s", err.message);

    /* An added token on a user-defined piece ("\n" is id 3) takes it over: text "\n"
     * then no longer produces id 3 but its byte piece <0x0A>. added_tokens.json adds
     * beyond, with a gap. */
    write_text(dir, "tokenizer_config.json",
               "{\"added_tokens_decoder\": {\"3\": {\"content\": \"<|nl|>\", \"special\": true},"
               " \"1500\": {\"content\": \"<a>\"}}, \"bos_token\": \"<s>\"}");
    write_text(dir, "added_tokens.json", "{\"<a>\": 1500, \"<far>\": 1600}");
    tok = load_dir(dir, &err);
    CHECK_MSG(tok != NULL, "%s", err.message);
    if (tok) {
        CHECK(vp_tokenizer_n_ids(tok) == 1601);
        CHECK(vp_tokenizer_special_id(tok, "<|nl|>") == 3);
        CHECK(vp_tokenizer_special_id(tok, "<far>") == 1600);
        CHECK(vp_tokenizer_piece_id(tok, "\n") == -1);
        CHECK(vp_tokenizer_id_to_piece(tok, 1550) == NULL);
        CHECK(strcmp(vp_tokenizer_id_to_piece(tok, 3), "<|nl|>") == 0);
        CHECK(encodes_to(tok, "\n", (int32_t[]){15, -1})); /* <0x0A> */
        vp_ids ids = {0};
        CHECK(vp_tokenizer_encode(tok, "<|nl|><a><far>", 14, &ids, &err) == 0);
        for (size_t i = 0; i < ids.n; i++)
            CHECK(ids.v[i] != 3 && ids.v[i] < 1500);
        vp_ids_free(&ids);
        vp_tokenizer_free(tok);
    }

    /* Declared non-special with its own text, the piece stays producible. */
    remove_file(dir, "added_tokens.json");
    write_text(dir, "tokenizer_config.json",
               "{\"added_tokens_decoder\": {\"3\": {\"content\": \"\\n\", \"special\": false}}}");
    tok = load_dir(dir, &err);
    CHECK_MSG(tok != NULL, "%s", err.message);
    if (tok) {
        CHECK(encodes_to(tok, "\n", (int32_t[]){3, -1}));
        vp_tokenizer_free(tok);
    }

    /* Broken configurations are refused with the reason. */
    static const struct {
        const char *config, *added, *needle;
    } bad[] = {
        {"{\"added_tokens_decoder\": {\"x1\": {\"content\": \"<a>\"}}}", NULL, "x1"},
        {"{\"added_tokens_decoder\": {\"99999999\": {\"content\": \"<a>\"}}}", NULL, "99999999"},
        {"{\"added_tokens_decoder\": {\"1600\": {\"content\": \"\"}}}", NULL, "content"},
        {"{\"added_tokens_decoder\": {\"1600\": {}}}", NULL, "content"},
        {"{\"added_tokens_decoder\": [1]}", NULL, "not an object"},
        {"{\"added_tokens_decoder\": {\"1600\": {\"content\": \"<a>\"}}}", "{\"<b>\": 1600}",
         "'<a>' and as '<b>'"},
        {"{\"added_tokens_decoder\": {\"1600\": {\"content\": \"<a>\"}, "
         "\"1601\": {\"content\": \"<a>\"}}}", NULL, "both '<a>'"},
        {"{\"added_tokens_decoder\": {}}", "{\"<b>\": -3}", "<b>"},
        {"{\"bos_token\": \"<nope>\"}", NULL, "<nope>"},
        {"{\"bos_token\": {\"__type\": \"AddedToken\"}}", NULL, "bos_token is an object"},
        {"{\"added_tokens_decoder\": {\"15\": {\"content\": \"<nl>\"}}}", NULL, "byte piece '<0x0A>'"},
        {"{\"added_tokens_decoder\": {\"0\": {\"content\": \"<oov>\"}}}", NULL, "unknown piece"},
        {"{\"added_tokens_decoder\": ", NULL, "invalid JSON"},
        {"[]", NULL, "not a JSON object"},
        /* MODEL.md's prompt begins with BOS: a tokenizer that leaves it out is refused */
        {"{\"add_bos_token\": false}", NULL, "add_bos_token is false"},
        {"{\"add_bos_token\": \"yes\"}", NULL, "add_bos_token is not a boolean"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        write_text(dir, "tokenizer_config.json", bad[i].config);
        if (bad[i].added)
            write_text(dir, "added_tokens.json", bad[i].added);
        else
            remove_file(dir, "added_tokens.json");
        tok = load_dir(dir, &err);
        CHECK_MSG(!tok && err.kind == VP_ERR_MODEL && strstr(err.message, bad[i].needle),
                  "bad config #%zu: '%s'", i, err.message);
        vp_tokenizer_free(tok);
    }
    /* add_bos_token true and add_eos_token true load (EOS after the last score position
     * changes no score); an added_tokens.json that is a symlink to nothing is refused, not
     * taken for an absent file (a download cut short) */
    remove_file(dir, "added_tokens.json");
    write_text(dir, "tokenizer_config.json", "{\"add_bos_token\": true, \"add_eos_token\": true}");
    tok = load_dir(dir, &err);
    CHECK_MSG(tok != NULL, "add_bos_token true: %s", err.message);
    vp_tokenizer_free(tok);
    char link_path[700];
    snprintf(link_path, sizeof link_path, "%s/added_tokens.json", dir);
    CHECK(symlink("/nonexistent/vprm-added-tokens.json", link_path) == 0);
    tok = load_dir(dir, &err);
    CHECK_MSG(!tok && err.kind == VP_ERR_IO && strstr(err.message, "a symlink to nothing"),
              "dangling added_tokens.json: '%s'", tok ? "loaded" : err.message);
    vp_tokenizer_free(tok);
    remove_file(dir, "added_tokens.json");
    remove_file(dir, "tokenizer_config.json");
    remove_file(dir, "tokenizer.model");
    rmdir(dir);
}

int main(void)
{
    const char *base = getenv("VPRM_TMP");
    snprintf(tmpdir, sizeof tmpdir, "%s/test_tokenizer.XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_built_models();
    test_refused_settings();
    test_corrupt_files();
    test_tiny();
    test_added_tokens();
    remove_file(tmpdir, "built.model");
    remove_file(tmpdir, "corrupt.model");
    remove_file(tmpdir, "flipped.model");
    rmdir(tmpdir);
    return check_summary("test_tokenizer");
}
