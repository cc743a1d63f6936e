/* vp_batch_validate: a good packed batch passes; each kind of inconsistency is refused
 * with VP_ERR_BAD_REQUEST and a message naming it. */
#include <string.h>

#include "engine/backend.h"
#include "tests/unit/check.h"

enum { VOCAB = 100, ROWS = 8 };

typedef struct fixture {
    int32_t tokens[10], positions[10], image_row[10], out[3];
    vp_seq seqs[3];
    float tiles[1];
    vp_batch b;
} fixture;

/* prefix seq 0 (tokens 0..4, two image rows), seq 1 (5..7) and seq 2 (8..9) use it */
static void good(fixture *f)
{
    memset(f, 0, sizeof *f);
    int32_t tok[10] = {1, 5, 99, 99, 6, 7, 8, 9, 10, 11};
    int32_t img[10] = {-1, -1, 0, 1, -1, -1, -1, -1, -1, -1};
    int32_t pos[10] = {0, 1, 2, 3, 4, 5, 6, 7, 5, 6};
    memcpy(f->tokens, tok, sizeof tok);
    memcpy(f->image_row, img, sizeof img);
    memcpy(f->positions, pos, sizeof pos);
    f->seqs[0] = (vp_seq){0, 5, -1, 5};
    f->seqs[1] = (vp_seq){5, 3, 0, 8};
    f->seqs[2] = (vp_seq){8, 2, 0, 7};
    f->out[0] = 7;
    f->out[1] = 9;
    f->out[2] = 4;
    f->b = (vp_batch){.n_tiles = 1, .tiles = f->tiles, .n_tokens = 10, .tokens = f->tokens,
                      .positions = f->positions, .image_row = f->image_row, .n_seqs = 3,
                      .seqs = f->seqs, .n_out = 3, .out_index = f->out, .plus_id = 42,
                      .minus_id = 43};
}

static void expect_bad(const fixture *f, const char *needle, const char *what)
{
    vp_error err = {0};
    int rc = vp_batch_validate(&f->b, ROWS, VOCAB, &err);
    CHECK_MSG(rc == -1 && err.kind == VP_ERR_BAD_REQUEST, "%s: accepted", what);
    CHECK_MSG(strstr(err.message, needle) != NULL, "%s: message \"%s\" lacks \"%s\"", what,
              err.message, needle);
}

int main(void)
{
    fixture f;
    vp_error err = {0};
    good(&f);
    CHECK_MSG(vp_batch_validate(&f.b, ROWS, VOCAB, &err) == 0, "good batch refused: %s", err.message);
    f.b.image_row = NULL; /* no images at all is fine */
    CHECK(vp_batch_validate(&f.b, 0, VOCAB, &err) == 0);

    good(&f), f.tokens[3] = VOCAB;
    expect_bad(&f, "vocabulary", "token id = vocab");
    good(&f), f.tokens[0] = -1;
    expect_bad(&f, "vocabulary", "negative token id");
    good(&f), f.image_row[3] = ROWS;
    expect_bad(&f, "feature row", "image row past the features");
    good(&f), f.image_row[3] = -2;
    expect_bad(&f, "feature row", "image row -2");
    good(&f), f.b.n_tiles = 0, f.b.tiles = NULL;
    {
        vp_error e2 = {0};
        CHECK(vp_batch_validate(&f.b, 0, VOCAB, &e2) == -1 && strstr(e2.message, "feature row"));
    }
    good(&f), f.b.tiles = NULL;
    expect_bad(&f, "tile data", "tiles missing");
    {
        static const uint8_t bytes[3] = {1, 2, 3};
        const uint8_t *one[1] = {bytes}, *none[1] = {NULL};
        good(&f), f.b.tiles = NULL, f.b.tiles_u8 = one; /* 8-bit tiles instead: fine */
        CHECK_MSG(vp_batch_validate(&f.b, ROWS, VOCAB, &err) == 0, "8-bit tiles refused: %s",
                  err.message);
        good(&f), f.b.tiles_u8 = one;
        expect_bad(&f, "both float and 8-bit", "float and 8-bit tiles at once");
        good(&f), f.b.tiles = NULL, f.b.tiles_u8 = none;
        expect_bad(&f, "8-bit tile 0 has no data", "8-bit tile pointer missing");
    }
    good(&f), f.out[1] = 10;
    expect_bad(&f, "out_index", "out_index past the tokens");
    good(&f), f.out[0] = -1;
    expect_bad(&f, "out_index", "negative out_index");
    good(&f), f.seqs[1].prefix_seq = 1;
    expect_bad(&f, "not an earlier sequence", "sequence is its own prefix");
    good(&f), f.seqs[1].prefix_seq = 2;
    expect_bad(&f, "not an earlier sequence", "prefix comes later");
    good(&f), f.seqs[2].prefix_seq = 1;
    expect_bad(&f, "has a prefix itself", "prefix of a prefix");
    good(&f), f.seqs[2].prefix_seq = -3;
    expect_bad(&f, "prefix_seq -3", "prefix_seq -3");
    good(&f), f.seqs[1].start = 4;
    expect_bad(&f, "tile", "overlapping sequences");
    good(&f), f.seqs[2].len = 3;
    expect_bad(&f, "outside", "sequence past the end");
    good(&f), f.seqs[2].len = 1;
    expect_bad(&f, "cover 9 of the 10", "tokens outside every sequence");
    good(&f), f.seqs[1].len = 0;
    expect_bad(&f, "length 0", "empty sequence");
    good(&f), f.seqs[1].rope_len = 7;
    expect_bad(&f, "rope_len", "rope_len shorter than prefix + own");
    good(&f), f.positions[6] = 8;
    expect_bad(&f, "position 8", "position >= rope_len");
    good(&f), f.positions[0] = -1;
    expect_bad(&f, "position -1", "negative position");
    good(&f), f.b.plus_id = VOCAB;
    expect_bad(&f, "plus_id", "plus_id outside the vocabulary");
    good(&f), f.b.minus_id = -1;
    expect_bad(&f, "minus_id", "minus_id negative");
    good(&f), f.b.seqs = NULL;
    expect_bad(&f, "missing", "no seqs");
    good(&f), f.b.out_index = NULL;
    expect_bad(&f, "no out_index", "no out_index");
    return check_summary("test_cpu_batch_validate");
}
