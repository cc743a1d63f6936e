/* The real InternLM2 tokenizer ($SHARED/tokenizer/internlm2) for the targets that check
 * text against it: loaded, and its model file parsed on its own (the targets build
 * their expectations from the pieces and settings, not from the encoder under test). */
#ifndef VP_FUZZ_REAL_TOKENIZER_H
#define VP_FUZZ_REAL_TOKENIZER_H

#include <unistd.h>

#include "engine/tokenizer/spm_proto.h"
#include "engine/tokenizer/tokenizer.h"
#include "engine/util/file.h"
#include "tests/fuzz/fuzz.h"

/* Aborts, saying what to set, when the files are missing. */
static inline void fuzz_load_real_tokenizer(vp_tokenizer **tok, vp_spm_model *model)
{
    char dir[4096], path[4096];
    vp_error err = {0};
    FUZZ_REQUIRE(vp_path_join(dir, sizeof dir, fuzz_shared_dir(), "tokenizer/internlm2") == 0 &&
                     vp_path_join(path, sizeof path, dir, "tokenizer.model") == 0,
                 "SHARED is too long");
    FUZZ_REQUIRE(access(path, R_OK) == 0,
                 "cannot read %s: set SHARED to the shared folder that holds tokenizer/internlm2 "
                 "(the real InternLM2 tokenizer)", path);
    FUZZ_REQUIRE(vp_tokenizer_load(dir, tok, &err) == 0, "cannot load the tokenizer: %s",
                 err.message);
    uint8_t *data;
    size_t len;
    FUZZ_REQUIRE(vp_read_file(path, 0, &data, &len, &err) == 0, "%s", err.message);
    FUZZ_REQUIRE(vp_spm_parse(data, len, path, model, &err) == 0, "%s", err.message);
    free(data);
}

/* For every id: 1 when vp_tokenizer_special_id names it (control, unknown or added
 * tokens), and the byte a byte-fallback piece <0xXX> stands for (-1 for other pieces).
 * Both arrays are malloc'd. */
static inline void fuzz_id_tables(const vp_tokenizer *tok, size_t *n_ids, uint8_t **special,
                                  int16_t **byte_of)
{
    size_t n = vp_tokenizer_n_ids(tok);
    *n_ids = n;
    *special = calloc(n, 1);
    *byte_of = malloc(n * sizeof **byte_of);
    FUZZ_REQUIRE(*special && *byte_of, "out of memory");
    for (size_t i = 0; i < n; i++) {
        const char *p = vp_tokenizer_id_to_piece(tok, (int32_t)i);
        (*special)[i] = p && vp_tokenizer_special_id(tok, p) == (int32_t)i;
        (*byte_of)[i] = -1;
    }
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b);
        int32_t id = vp_tokenizer_piece_id(tok, name);
        if (id >= 0 && (size_t)id < n)
            (*byte_of)[id] = (int16_t)b;
    }
}

#endif
