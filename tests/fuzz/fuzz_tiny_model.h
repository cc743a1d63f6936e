/* A random tiny model (mkmodel "tiny", the shipped tiny tokenizer) in a temporary
 * folder, for the targets that run requests end to end. */
#ifndef VP_FUZZ_TINY_MODEL_H
#define VP_FUZZ_TINY_MODEL_H

#include "engine/model/mkmodel.h"
#include "tests/fuzz/fuzz.h"

/* Writes the model into a new folder; dir must hold 4096 bytes. Aborts on failure. */
static inline void fuzz_tiny_model(char *dir, const char *name, uint64_t seed)
{
    vp_error err = {0};
    vp_mkmodel_opts mo = {.tokenizer_dir = fuzz_repo_path("engine/assets/tiny_tokenizer"),
                          .seed = seed, .dtype = VP_DT_BF16, .threads = 1, .out_dir = dir};
    vp_mkmodel_result mr;
    FUZZ_REQUIRE(fuzz_make_temp_dir(dir, 4096, name) == 0, "no temporary folder for %s", name);
    FUZZ_REQUIRE(vp_mkmodel_preset("tiny", &mo.cfg, &err) == 0 &&
                     vp_mkmodel_write(&mo, &mr, &err) == 0,
                 "tiny model: %s", err.message);
}

/* Removes what fuzz_tiny_model wrote (at exit). */
static inline void fuzz_remove_tree(const char *dir)
{
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
}

#endif
