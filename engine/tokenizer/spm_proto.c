/* A small protobuf (proto2 wire format) reader for SentencePiece's ModelProto.
 * Field numbers follow sentencepiece_model.proto:
 *   ModelProto:      1 pieces (repeated SentencePiece), 2 trainer_spec, 3 normalizer_spec,
 *                    4 self_test_data, 5 denormalizer_spec
 *   SentencePiece:   1 piece (string), 2 score (float), 3 type (enum, default NORMAL)
 *   TrainerSpec:     3 model_type, 24 treat_whitespace_as_suffix, 35 byte_fallback,
 *                    40 unk_id, 41 bos_id, 42 eos_id, 43 pad_id, 46 bos_piece, 47 eos_piece
 *   NormalizerSpec:  1 name, 2 precompiled_charsmap, 3 add_dummy_prefix,
 *                    4 remove_extra_whitespaces, 5 escape_whitespaces */
#include "engine/tokenizer/spm_proto.h"

#include <stdlib.h>
#include <string.h>

enum { WIRE_VARINT = 0, WIRE_I64 = 1, WIRE_LEN = 2, WIRE_I32 = 5 };

typedef struct pb_reader {
    const uint8_t *base; /* start of the whole file, for offsets in messages */
    const uint8_t *p;    /* next byte */
    const uint8_t *end;  /* end of the current message */
    const char *what;    /* file name for messages */
} pb_reader;

static size_t pb_offset(const pb_reader *r) { return (size_t)(r->p - r->base); }

static int pb_varint(pb_reader *r, uint64_t *out, vp_error *err)
{
    size_t start = pb_offset(r);
    uint64_t v = 0;
    for (int shift = 0; shift < 70; shift += 7) {
        if (r->p >= r->end)
            return vp_fail(err, VP_ERR_MODEL, NULL, "%s: truncated varint at byte %zu", r->what,
                           start);
        uint8_t b = *r->p++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *out = v;
            return 0;
        }
    }
    return vp_fail(err, VP_ERR_MODEL, NULL, "%s: varint longer than 10 bytes at byte %zu",
                   r->what, start);
}

static int pb_tag(pb_reader *r, uint32_t *field, uint32_t *wire, vp_error *err)
{
    size_t start = pb_offset(r);
    uint64_t tag;
    if (pb_varint(r, &tag, err) != 0)
        return -1;
    *field = (uint32_t)(tag >> 3);
    *wire = (uint32_t)(tag & 7);
    if (*field == 0 || tag >> 32)
        return vp_fail(err, VP_ERR_MODEL, NULL, "%s: invalid field tag at byte %zu", r->what,
                       start);
    return 0;
}

/* A length-delimited field: *sub covers its bytes and r moves past them. */
static int pb_len(pb_reader *r, pb_reader *sub, vp_error *err)
{
    size_t start = pb_offset(r);
    uint64_t n;
    if (pb_varint(r, &n, err) != 0)
        return -1;
    if (n > (uint64_t)(r->end - r->p))
        return vp_fail(err, VP_ERR_MODEL, NULL,
                       "%s: field at byte %zu has length %llu, past the end of its message",
                       r->what, start, (unsigned long long)n);
    *sub = *r;
    sub->end = r->p + n;
    r->p += n;
    return 0;
}

static int pb_skip(pb_reader *r, uint32_t field, uint32_t wire, vp_error *err)
{
    size_t start = pb_offset(r);
    uint64_t v;
    pb_reader sub;
    switch (wire) {
    case WIRE_VARINT: return pb_varint(r, &v, err);
    case WIRE_LEN: return pb_len(r, &sub, err);
    case WIRE_I64:
    case WIRE_I32: {
        size_t n = wire == WIRE_I64 ? 8 : 4;
        if ((size_t)(r->end - r->p) < n)
            return vp_fail(err, VP_ERR_MODEL, NULL, "%s: truncated fixed field at byte %zu",
                           r->what, start);
        r->p += n;
        return 0;
    }
    default:
        return vp_fail(err, VP_ERR_MODEL, NULL,
                       "%s: field %u at byte %zu has unsupported wire type %u", r->what, field,
                       start, wire);
    }
}

static int pb_expect(const pb_reader *r, const char *msg, uint32_t field, uint32_t wire,
                     uint32_t want, vp_error *err)
{
    if (wire == want)
        return 0;
    return vp_fail(err, VP_ERR_MODEL, NULL, "%s: %s field %u has wire type %u, expected %u (byte %zu)",
                   r->what, msg, field, wire, want, pb_offset(r));
}

static int pb_read_varint_field(pb_reader *r, const char *msg, uint32_t field, uint32_t wire,
                                uint64_t *v, vp_error *err)
{
    if (pb_expect(r, msg, field, wire, WIRE_VARINT, err) != 0)
        return -1;
    return pb_varint(r, v, err);
}

/* Copies a string field into a fixed buffer; refuses strings that do not fit. */
static int pb_read_short_string(pb_reader *r, const char *msg, uint32_t field, uint32_t wire,
                                char *buf, size_t cap, vp_error *err)
{
    pb_reader s;
    if (pb_expect(r, msg, field, wire, WIRE_LEN, err) != 0 || pb_len(r, &s, err) != 0)
        return -1;
    size_t n = (size_t)(s.end - s.p);
    if (n >= cap)
        return vp_fail(err, VP_ERR_MODEL, NULL, "%s: %s field %u is %zu bytes, over %zu",
                       r->what, msg, field, n, cap - 1);
    memcpy(buf, s.p, n);
    buf[n] = 0;
    return 0;
}

static int parse_trainer_spec(pb_reader *r, vp_spm_model *m, vp_error *err)
{
    static const char msg[] = "trainer_spec";
    while (r->p < r->end) {
        uint32_t field, wire;
        uint64_t v;
        if (pb_tag(r, &field, &wire, err) != 0)
            return -1;
        switch (field) {
        case 3:
        case 24:
        case 35:
        case 40:
        case 41:
        case 42:
        case 43:
            if (pb_read_varint_field(r, msg, field, wire, &v, err) != 0)
                return -1;
            if (field == 3)
                m->model_type = (int32_t)v;
            else if (field == 24)
                m->treat_whitespace_as_suffix = v != 0;
            else if (field == 35)
                m->byte_fallback = v != 0;
            else if (field == 40)
                m->unk_id = (int32_t)v; /* int32: negatives are sign-extended varints */
            else if (field == 41)
                m->bos_id = (int32_t)v;
            else if (field == 42)
                m->eos_id = (int32_t)v;
            else
                m->pad_id = (int32_t)v;
            break;
        case 46:
            if (pb_read_short_string(r, msg, field, wire, m->bos_piece, sizeof m->bos_piece, err))
                return -1;
            break;
        case 47:
            if (pb_read_short_string(r, msg, field, wire, m->eos_piece, sizeof m->eos_piece, err))
                return -1;
            break;
        default:
            if (pb_skip(r, field, wire, err) != 0)
                return -1;
        }
    }
    return 0;
}

static int parse_normalizer_spec(pb_reader *r, vp_spm_model *m, vp_error *err)
{
    static const char msg[] = "normalizer_spec";
    while (r->p < r->end) {
        uint32_t field, wire;
        uint64_t v;
        pb_reader s;
        if (pb_tag(r, &field, &wire, err) != 0)
            return -1;
        switch (field) {
        case 1:
            if (pb_read_short_string(r, msg, field, wire, m->normalizer_name,
                                     sizeof m->normalizer_name, err) != 0)
                return -1;
            break;
        case 2:
            if (pb_expect(r, msg, field, wire, WIRE_LEN, err) != 0 || pb_len(r, &s, err) != 0)
                return -1;
            m->charsmap_len = (size_t)(s.end - s.p);
            break;
        case 3:
        case 4:
        case 5:
            if (pb_read_varint_field(r, msg, field, wire, &v, err) != 0)
                return -1;
            if (field == 3)
                m->add_dummy_prefix = v != 0;
            else if (field == 4)
                m->remove_extra_whitespaces = v != 0;
            else
                m->escape_whitespaces = v != 0;
            break;
        default:
            if (pb_skip(r, field, wire, err) != 0)
                return -1;
        }
    }
    return 0;
}

/* One SentencePiece message into slot i; its text is copied to *arena_pos. */
static int parse_piece(pb_reader *r, vp_spm_model *m, size_t i, char **arena_pos, vp_error *err)
{
    static const char msg[] = "piece";
    size_t start = pb_offset(r);
    bool have_text = false;
    m->score[i] = 0.0f;
    m->type[i] = VP_PIECE_NORMAL;
    while (r->p < r->end) {
        uint32_t field, wire;
        uint64_t v;
        pb_reader s;
        if (pb_tag(r, &field, &wire, err) != 0)
            return -1;
        if (field == 1) {
            if (pb_expect(r, msg, field, wire, WIRE_LEN, err) != 0 || pb_len(r, &s, err) != 0)
                return -1;
            size_t n = (size_t)(s.end - s.p);
            if (n > UINT32_MAX / 2)
                return vp_fail(err, VP_ERR_MODEL, NULL, "%s: piece %zu is too long", r->what, i);
            /* A repeated string field keeps its last value; the arena holds at most
             * the message's bytes, so a rewrite stays within the bound. */
            char *dst = *arena_pos;
            memcpy(dst, s.p, n);
            dst[n] = 0;
            m->text[i] = dst;
            m->len[i] = (uint32_t)n;
            *arena_pos = dst + n + 1;
            have_text = true;
        } else if (field == 2) {
            if (pb_expect(r, msg, field, wire, WIRE_I32, err) != 0)
                return -1;
            if (r->end - r->p < 4)
                return vp_fail(err, VP_ERR_MODEL, NULL, "%s: truncated score of piece %zu",
                               r->what, i);
            uint32_t bits = (uint32_t)r->p[0] | (uint32_t)r->p[1] << 8 |
                            (uint32_t)r->p[2] << 16 | (uint32_t)r->p[3] << 24;
            memcpy(&m->score[i], &bits, 4);
            r->p += 4;
        } else if (field == 3) {
            if (pb_read_varint_field(r, msg, field, wire, &v, err) != 0)
                return -1;
            if (v < VP_PIECE_NORMAL || v > VP_PIECE_BYTE)
                return vp_fail(err, VP_ERR_MODEL, NULL, "%s: piece %zu has unknown type %llu",
                               r->what, i, (unsigned long long)v);
            m->type[i] = (uint8_t)v;
        } else if (pb_skip(r, field, wire, err) != 0) {
            return -1;
        }
    }
    if (!have_text || m->len[i] == 0)
        return vp_fail(err, VP_ERR_MODEL, NULL, "%s: piece %zu (byte %zu) has an empty text",
                       r->what, i, start);
    return 0;
}

static void set_defaults(vp_spm_model *m)
{
    memset(m, 0, sizeof *m);
    m->model_type = VP_SPM_UNIGRAM;
    m->unk_id = 0;
    m->bos_id = 1;
    m->eos_id = 2;
    m->pad_id = -1;
    strcpy(m->bos_piece, "<s>");
    strcpy(m->eos_piece, "</s>");
    m->add_dummy_prefix = true;
    m->remove_extra_whitespaces = true;
    m->escape_whitespaces = true;
}

int vp_spm_parse(const uint8_t *data, size_t len, const char *what, vp_spm_model *m,
                 vp_error *err)
{
    set_defaults(m);
    pb_reader top = {data, data, data + len, what};

    /* Pass 1: count pieces and bound the text they need. */
    size_t n = 0, text_bound = 0;
    while (top.p < top.end) {
        uint32_t field, wire;
        pb_reader sub;
        if (pb_tag(&top, &field, &wire, err) != 0)
            return -1;
        if (field == 1 || field == 2 || field == 3) {
            if (pb_expect(&top, "model", field, wire, WIRE_LEN, err) != 0 ||
                pb_len(&top, &sub, err) != 0)
                return -1;
            if (field == 1) {
                n++;
                text_bound += (size_t)(sub.end - sub.p) + 1;
            }
        } else if (pb_skip(&top, field, wire, err) != 0) {
            return -1;
        }
    }
    if (n == 0)
        return vp_fail(err, VP_ERR_MODEL, NULL, "%s: no pieces (not a SentencePiece model?)",
                       what);
    if (n > INT32_MAX)
        return vp_fail(err, VP_ERR_MODEL, NULL, "%s: %zu pieces, too many", what, n);

    m->n_pieces = n;
    m->text = calloc(n, sizeof *m->text);
    m->len = calloc(n, sizeof *m->len);
    m->score = calloc(n, sizeof *m->score);
    m->type = calloc(n, sizeof *m->type);
    m->arena = malloc(text_bound);
    if (!m->text || !m->len || !m->score || !m->type || !m->arena) {
        vp_spm_model_free(m);
        return vp_fail(err, VP_ERR_NOMEM, NULL, "%s: out of memory for %zu pieces", what, n);
    }

    /* Pass 2: fill. The wire format was checked in pass 1 at the top level only. */
    top.p = data;
    size_t i = 0;
    char *arena_pos = m->arena;
    while (top.p < top.end) {
        uint32_t field, wire;
        pb_reader sub;
        if (pb_tag(&top, &field, &wire, err) != 0)
            goto fail;
        if (field == 1 || field == 2 || field == 3) {
            if (pb_len(&top, &sub, err) != 0)
                goto fail;
            int rc = field == 1   ? parse_piece(&sub, m, i++, &arena_pos, err)
                     : field == 2 ? parse_trainer_spec(&sub, m, err)
                                  : parse_normalizer_spec(&sub, m, err);
            if (rc != 0)
                goto fail;
        } else if (pb_skip(&top, field, wire, err) != 0) {
            goto fail;
        }
    }
    return 0;
fail:
    vp_spm_model_free(m);
    return -1;
}

void vp_spm_model_free(vp_spm_model *m)
{
    free(m->text);
    free(m->len);
    free(m->score);
    free(m->type);
    free(m->arena);
    m->text = NULL;
    m->len = NULL;
    m->score = NULL;
    m->type = NULL;
    m->arena = NULL;
    m->n_pieces = 0;
}
