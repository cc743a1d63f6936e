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

#endif
