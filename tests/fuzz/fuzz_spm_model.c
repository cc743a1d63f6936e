/* tokenizer.model bytes (a SentencePiece ModelProto): vp_spm_parse, then, when that
 * succeeds, the same bytes loaded as a tokenizer (vp_tokenizer_load_model_file through
 * a memfd) and a text made of the model's own pieces encoded with it.
 * Promises:
 * - parse failure: a VP_ERR_MODEL (or NOMEM) error with a message, and the model is
 *   safe to free (tokenizer.c frees it after a failure);
 * - parse success: 1 <= n_pieces <= size / 5 (a piece message needs a tag, a length and
 *   a non-empty text field), every text non-empty, NUL-terminated, inside the arena and
 *   found verbatim in the input; types in 1..6; bos/eos piece and normalizer name
 *   NUL-terminated in their buffers;
 * - the parsed model, written back as canonical protobuf, parses to the same model
 *   (every piece's text, score bits and type; every setting);
 * - load: success only for the settings tokenizer.c says it implements (BPE, identity
 *   normalizer without charsmap, no remove_extra_whitespaces, no whitespace suffix,
 *   exactly one UNKNOWN piece, no NaN score, byte pieces only with byte_fallback and
 *   then all 256 of them, as sentencepiece requires);
 *   failure: an error with a message; success: n_ids == n_pieces, id_to_piece gives
 *   each piece's text, unk_id is the UNKNOWN piece;
 * - encode of the pieces' text: fails (BAD_REQUEST, nothing appended) exactly when
 *   the text is not valid UTF-8 (own check); else ids in [0, n_ids), the same twice,
 *   and, when no unknown id is output, the pieces (byte pieces <0xXX> as their byte)
 *   spell the text as the model's normalizer_spec defines it (dummy prefix, spaces
 *   as U+2581). Models with a piece other than a byte piece spelled <0xXX> are left
 *   out of that check: sentencepiece and vprm may output one for the other.
 *
 * Seeds (corpus/fuzz_spm_model/seed_*) come from this generator (python3 gen.py
 * engine/assets/tiny_tokenizer/tokenizer.model OUT_DIR); seed_tiny_head is that
 * model's first 4 KB of pieces plus a BPE spec, seed_tiny_cut its first 3000 bytes:
 *
 *   import struct, sys
 *   def v(n):  # varint; negatives as 10-byte two's complement (proto int32)
 *       n &= (1 << 64) - 1; o = b""
 *       while True:
 *           b = n & 0x7F; n >>= 7
 *           if not n: return o + bytes([b])
 *           o += bytes([b | 0x80])
 *   def f(no, x):  # int: varint, float: fixed32, bytes/str: length-delimited
 *       if isinstance(x, float): return v(no << 3 | 5) + struct.pack("<f", x)
 *       if isinstance(x, int): return v(no << 3) + v(x)
 *       x = x.encode() if isinstance(x, str) else x
 *       return v(no << 3 | 2) + v(len(x)) + x
 *   def piece(t, s=0.0, ty=1): return f(1, f(1, t) + f(2, s) + (f(3, ty) if ty != 1 else b""))
 *   def spec(bf=1, dummy=0, esc=1): return (f(2, f(3, 2) + f(35, bf) + f(40, 0) + f(41, 1)
 *       + f(42, 2) + f(43, -1) + f(46, "<s>") + f(47, "</s>"))
 *       + f(3, f(1, "identity") + f(3, dummy) + f(4, 0) + f(5, esc)))
 *   ctl = piece("<unk>", 0.0, 2) + piece("<s>", 0.0, 3) + piece("</s>", 0.0, 3)
 *   byt = b"".join(piece("<0x%02X>" % i, 0.0, 6) for i in range(256))
 *   words = [("\u2581", -1.0), ("a", -2.0), ("b", -3.0), ("ab", -4.0), ("\u2581a", -5.0),
 *            ("ba", -6.0), ("\u2581ab", -7.0), ("\u00e9", -8.0), ("\u2581\u2581", -9.0)]
 *   norm = b"".join(piece(t, s) for t, s in words)
 *   seeds = {
 *       "seed_minimal": piece("a"),
 *       "seed_bpe_bytes": ctl + byt + norm + piece("<u>", 0.0, 4) + spec(),
 *       "seed_bpe_nobytes": ctl + norm + spec(bf=0, dummy=1),
 *       "seed_bpe_unused": ctl + byt + norm + piece("aba", -0.5, 5) + piece("bab", -0.6, 5)
 *                          + spec(esc=0),
 *       "seed_err_trunc_varint": piece("a") + b"\x0a\x80",
 *       "seed_err_len_past_end": b"\x0a\x7f\x0a\x01a",
 *       "seed_err_wire_type": piece("a") + b"\x0b",
 *       "seed_err_piece_type": f(1, f(1, "a") + f(3, 9)),
 *       "seed_err_empty_piece": f(1, f(2, 1.0)),
 *       "seed_err_long_bos": piece("a") + f(2, f(46, "x" * 64)),
 *       "seed_unknown_fields": piece("a") + f(4, f(1, f(1, "a") + f(2, "b"))) + f(99, 7)
 *                              + v(100 << 3 | 1) + b"\0" * 8,
 *   }
 *   tiny = open(sys.argv[1], "rb").read()
 *   i = 0  # cut after the last piece (one-byte length) that ends before 4 KB
 *   while tiny[i] == 0x0A and tiny[i + 1] < 0x80 and i + 2 + tiny[i + 1] <= 4096:
 *       i += 2 + tiny[i + 1]
 *   seeds["seed_tiny_head"] = tiny[:i] + spec()
 *   seeds["seed_tiny_cut"] = tiny[:3000]
 *   for name, data in seeds.items():
 *       open(sys.argv[2] + "/" + name, "wb").write(data)
 */
#include <math.h>
#include <stdbool.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "engine/tokenizer/spm_proto.h"
#include "engine/tokenizer/tokenizer.h"
#include "tests/fuzz/fuzz.h"

#define MAX_TEXT 4096 /* bytes of piece text encoded per input */

static void put_varint(fuzz_buf *b, uint64_t v)
{
    uint8_t t[10];
    size_t n = 0;
    do {
        t[n] = (uint8_t)(v & 0x7F);
        v >>= 7;
        if (v)
            t[n] |= 0x80;
        n++;
    } while (v);
    fuzz_put(b, t, n);
}

static void put_int(fuzz_buf *b, uint32_t field, int64_t v) /* proto int32/bool: sign-extended */
{
    put_varint(b, (uint64_t)field << 3);
    put_varint(b, (uint64_t)v);
}

static void put_bytes(fuzz_buf *b, uint32_t field, const void *s, size_t n)
{
    put_varint(b, (uint64_t)field << 3 | 2);
    put_varint(b, n);
    fuzz_put(b, s, n);
}

/* The model written back as canonical protobuf (only the fields vp_spm_parse keeps). */
static void serialize(const vp_spm_model *m, fuzz_buf *out)
{
    fuzz_buf sub = {0};
    for (size_t i = 0; i < m->n_pieces; i++) {
        uint32_t bits;
        memcpy(&bits, &m->score[i], 4);
        uint8_t le[4] = {(uint8_t)bits, (uint8_t)(bits >> 8), (uint8_t)(bits >> 16),
                         (uint8_t)(bits >> 24)};
        sub.n = 0;
        put_bytes(&sub, 1, m->text[i], m->len[i]);
        put_varint(&sub, 2 << 3 | 5);
        fuzz_put(&sub, le, 4);
        put_int(&sub, 3, m->type[i]);
        put_bytes(out, 1, sub.p, sub.n);
    }
    sub.n = 0;
    put_int(&sub, 3, m->model_type);
    put_int(&sub, 24, m->treat_whitespace_as_suffix);
    put_int(&sub, 35, m->byte_fallback);
    put_int(&sub, 40, m->unk_id);
    put_int(&sub, 41, m->bos_id);
    put_int(&sub, 42, m->eos_id);
    put_int(&sub, 43, m->pad_id);
    put_bytes(&sub, 46, m->bos_piece, strlen(m->bos_piece));
    put_bytes(&sub, 47, m->eos_piece, strlen(m->eos_piece));
    put_bytes(out, 2, sub.p, sub.n);
    sub.n = 0;
    put_bytes(&sub, 1, m->normalizer_name, strlen(m->normalizer_name));
    if (m->charsmap_len) {
        uint8_t *zeros = calloc(1, m->charsmap_len);
        FUZZ_REQUIRE(zeros, "out of memory");
        put_bytes(&sub, 2, zeros, m->charsmap_len);
        free(zeros);
    }
    put_int(&sub, 3, m->add_dummy_prefix);
    put_int(&sub, 4, m->remove_extra_whitespaces);
    put_int(&sub, 5, m->escape_whitespaces);
    put_bytes(out, 3, sub.p, sub.n);
    free(sub.p);
}

static void require_same(const vp_spm_model *a, const vp_spm_model *b)
{
    FUZZ_REQUIRE(a->n_pieces == b->n_pieces, "%zu pieces, %zu after a rewrite", a->n_pieces,
                 b->n_pieces);
    for (size_t i = 0; i < a->n_pieces; i++)
        FUZZ_REQUIRE(a->len[i] == b->len[i] && !memcmp(a->text[i], b->text[i], a->len[i]) &&
                         !memcmp(&a->score[i], &b->score[i], 4) && a->type[i] == b->type[i],
                     "piece %zu differs after a rewrite", i);
    FUZZ_REQUIRE(a->model_type == b->model_type && a->byte_fallback == b->byte_fallback &&
                     a->treat_whitespace_as_suffix == b->treat_whitespace_as_suffix &&
                     a->unk_id == b->unk_id && a->bos_id == b->bos_id &&
                     a->eos_id == b->eos_id && a->pad_id == b->pad_id &&
                     !strcmp(a->bos_piece, b->bos_piece) && !strcmp(a->eos_piece, b->eos_piece),
                 "trainer_spec differs after a rewrite");
    FUZZ_REQUIRE(!strcmp(a->normalizer_name, b->normalizer_name) &&
                     a->charsmap_len == b->charsmap_len &&
                     a->add_dummy_prefix == b->add_dummy_prefix &&
                     a->remove_extra_whitespaces == b->remove_extra_whitespaces &&
                     a->escape_whitespaces == b->escape_whitespaces,
                 "normalizer_spec differs after a rewrite");
}

static void check_parsed(const vp_spm_model *m, const uint8_t *data, size_t size)
{
    FUZZ_REQUIRE(m->n_pieces >= 1 && m->n_pieces <= size / 5, "%zu pieces from %zu bytes",
                 m->n_pieces, size);
    FUZZ_REQUIRE(m->text && m->len && m->score && m->type && m->arena, "missing arrays");
    /* the arena holds at most each piece message's bytes plus a NUL */
    const char *arena_end = m->arena + size + m->n_pieces;
    for (size_t i = 0; i < m->n_pieces; i++) {
        const char *t = m->text[i];
        FUZZ_REQUIRE(t && m->len[i] >= 1 && t >= m->arena && t + m->len[i] < arena_end &&
                         t[m->len[i]] == '\0',
                     "piece %zu: text of %u bytes outside the arena or unterminated", i,
                     (unsigned)m->len[i]);
        FUZZ_REQUIRE(memmem(data, size, t, m->len[i]), "piece %zu: text not in the input", i);
        FUZZ_REQUIRE(m->type[i] >= VP_PIECE_NORMAL && m->type[i] <= VP_PIECE_BYTE,
                     "piece %zu: type %d", i, m->type[i]);
    }
    FUZZ_REQUIRE(memchr(m->bos_piece, 0, sizeof m->bos_piece) &&
                     memchr(m->eos_piece, 0, sizeof m->eos_piece) &&
                     memchr(m->normalizer_name, 0, sizeof m->normalizer_name),
                 "unterminated setting string");
}

/* What tokenizer.c's check_settings accepts (duplicate pieces aside). */
static bool supported(const vp_spm_model *m)
{
    if (m->model_type != VP_SPM_BPE || m->charsmap_len ||
        (m->normalizer_name[0] && strcmp(m->normalizer_name, "identity")) ||
        m->remove_extra_whitespaces || m->treat_whitespace_as_suffix)
        return false;
    size_t unk = 0, bytes = 0;
    for (size_t i = 0; i < m->n_pieces; i++) {
        if (isnan(m->score[i]) || (m->type[i] == VP_PIECE_BYTE && !m->byte_fallback))
            return false;
        unk += m->type[i] == VP_PIECE_UNKNOWN;
        bytes += m->type[i] == VP_PIECE_BYTE;
    }
    return unk == 1 && (!m->byte_fallback || bytes == 256);
}

static bool producible(uint8_t type)
{
    return type == VP_PIECE_NORMAL || type == VP_PIECE_USER_DEFINED || type == VP_PIECE_UNUSED;
}

static bool byte_name(const char *s, size_t len, uint8_t *byte)
{
    static const char hex[] = "0123456789ABCDEF";
    const char *h1, *h2;
    if (len != 6 || memcmp(s, "<0x", 3) || s[5] != '>' || !s[3] || !s[4] ||
        !(h1 = strchr(hex, s[3])) || !(h2 = strchr(hex, s[4])))
        return false;
    *byte = (uint8_t)((h1 - hex) << 4 | (h2 - hex));
    return true;
}

/* The model's normalisation of text (identity normalizer: only the dummy prefix and
 * the escaping of ' ' to U+2581, as normalizer_spec says). */
static void normalize(const vp_spm_model *m, const uint8_t *s, size_t n, fuzz_buf *out)
{
    static const char space[] = "\xe2\x96\x81";
    if (m->add_dummy_prefix)
        fuzz_put(out, m->escape_whitespaces ? space : " ", m->escape_whitespaces ? 3 : 1);
    for (size_t i = 0; i < n; i++) {
        if (s[i] == ' ' && m->escape_whitespaces)
            fuzz_put(out, space, 3);
        else
            fuzz_put(out, &s[i], 1);
    }
}

static void check_encode(const vp_tokenizer *tok, const vp_spm_model *m)
{
    fuzz_buf text = {0};
    for (size_t i = 0; i < m->n_pieces && text.n < MAX_TEXT; i++) {
        if (!producible(m->type[i]))
            continue;
        fuzz_put(&text, m->text[i], m->len[i]);
        if (i % 3 == 0)
            fuzz_put(&text, " ", 1);
    }
    if (text.n == 0)
        fuzz_put(&text, "a b", 3);

    const int32_t sentinel = 7;
    vp_ids ids = {0}, again = {0};
    vp_error err = {0};
    FUZZ_REQUIRE(vp_ids_push(&ids, sentinel) == 0, "out of memory");
    int rc = vp_tokenizer_encode(tok, (const char *)text.p, text.n, &ids, &err);
    if (!fuzz_utf8_ok(text.p, text.n)) {
        FUZZ_REQUIRE(rc != 0, "invalid UTF-8 of %zu bytes was encoded", text.n);
        FUZZ_REQUIRE_ERROR(err);
        FUZZ_REQUIRE(err.kind == VP_ERR_BAD_REQUEST && ids.n == 1 && ids.v[0] == sentinel,
                     "kind %d, %zu ids after a refusal", (int)err.kind, ids.n);
        goto out;
    }
    FUZZ_REQUIRE(rc == 0, "valid UTF-8 refused: %s", err.message);
    FUZZ_REQUIRE(ids.v[0] == sentinel, "ids already in the output were changed");
    size_t n_ids = vp_tokenizer_n_ids(tok);
    bool unk = false;
    for (size_t k = 1; k < ids.n; k++) {
        FUZZ_REQUIRE(ids.v[k] >= 0 && (size_t)ids.v[k] < n_ids, "id %d out of [0, %zu)",
                     (int)ids.v[k], n_ids);
        unk |= m->type[ids.v[k]] == VP_PIECE_UNKNOWN;
    }
    FUZZ_REQUIRE(vp_tokenizer_encode(tok, (const char *)text.p, text.n, &again, &err) == 0 &&
                     again.n == ids.n - 1 &&
                     (again.n == 0 || !memcmp(again.v, ids.v + 1, again.n * sizeof *again.v)),
                 "a second encoding differs");

    /* Round trip, unless an unknown id hides text or a piece other than a byte piece
     * is named <0xXX>: sentencepiece looks reserved pieces up first, then the others,
     * so that piece may stand for a byte (byte fallback) or a byte piece for its text;
     * vprm does the same. */
    uint8_t byte;
    for (size_t i = 0; i < m->n_pieces; i++)
        if (m->type[i] != VP_PIECE_BYTE && byte_name(m->text[i], m->len[i], &byte))
            unk = true;
    if (!unk) {
        fuzz_buf want = {0}, got = {0};
        normalize(m, text.p, text.n, &want);
        for (size_t k = 1; k < ids.n; k++) {
            int32_t id = ids.v[k];
            if (m->type[id] == VP_PIECE_BYTE && byte_name(m->text[id], m->len[id], &byte))
                fuzz_put(&got, &byte, 1);
            else
                fuzz_put(&got, m->text[id], m->len[id]);
        }
        FUZZ_REQUIRE(got.n == want.n && !memcmp(got.p, want.p, got.n),
                     "the %zu ids spell %zu bytes, not the %zu normalized bytes of the text",
                     ids.n - 1, got.n, want.n);
        free(want.p);
        free(got.p);
    }
out:
    vp_ids_free(&ids);
    vp_ids_free(&again);
    free(text.p);
}

static void check_load(const uint8_t *data, size_t size, const vp_spm_model *m)
{
    static int fd = -1;
    static char path[64];
    if (fd < 0) {
        fd = memfd_create("fuzz_spm_model", 0);
        FUZZ_REQUIRE(fd >= 0, "memfd_create failed");
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    }
    FUZZ_REQUIRE(ftruncate(fd, 0) == 0 && pwrite(fd, data, size, 0) == (ssize_t)size,
                 "cannot write the memfd");
    vp_tokenizer *tok = NULL;
    vp_error err = {0};
    if (vp_tokenizer_load_model_file(path, &tok, &err) != 0) {
        FUZZ_REQUIRE_ERROR(err);
        FUZZ_REQUIRE(err.kind == VP_ERR_MODEL || err.kind == VP_ERR_NOMEM,
                     "load: unexpected error kind %d: %s", (int)err.kind, err.message);
        FUZZ_REQUIRE(tok == NULL, "load failed but returned a tokenizer");
        return;
    }
    FUZZ_REQUIRE(supported(m), "a model with settings tokenizer.c refuses was loaded");
    FUZZ_REQUIRE(vp_tokenizer_n_ids(tok) == m->n_pieces, "%zu ids for %zu pieces",
                 vp_tokenizer_n_ids(tok), m->n_pieces);
    for (size_t i = 0; i < m->n_pieces; i++) {
        const char *p = vp_tokenizer_id_to_piece(tok, (int32_t)i);
        FUZZ_REQUIRE(p && !strcmp(p, m->text[i]), "id %zu: piece text differs", i);
    }
    int32_t unk = vp_tokenizer_unk_id(tok);
    FUZZ_REQUIRE(unk >= 0 && (size_t)unk < m->n_pieces && m->type[unk] == VP_PIECE_UNKNOWN,
                 "unk id %d", (int)unk);
    check_encode(tok, m);
    vp_tokenizer_free(tok);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    vp_spm_model m, again;
    vp_error err = {0};
    if (vp_spm_parse(data, size, "fuzz", &m, &err) != 0) {
        FUZZ_REQUIRE_ERROR(err);
        FUZZ_REQUIRE(err.kind == VP_ERR_MODEL || err.kind == VP_ERR_NOMEM,
                     "unexpected error kind %d: %s", (int)err.kind, err.message);
        vp_spm_model_free(&m);
        return 0;
    }
    check_parsed(&m, data, size);

    fuzz_buf out = {0};
    serialize(&m, &out);
    FUZZ_REQUIRE(vp_spm_parse(out.p, out.n, "rewrite", &again, &err) == 0,
                 "the rewritten model does not parse: %s", err.message);
    require_same(&m, &again);
    vp_spm_model_free(&again);
    free(out.p);

    check_load(data, size, &m);
    vp_spm_model_free(&m);
    return 0;
}
