/* tokenizer_config.json (and added_tokens.json) through vp_tokenizer_load, which only
 * takes a folder. LLVMFuzzerInitialize makes one folder per process (mkdtemp under
 * $TMPDIR, /dev/shm or /tmp, removed at exit) with a copy of the tiny tokenizer.model
 * (engine/assets/tiny_tokenizer, 1500 pieces; found through fuzz_repo_path), and loads
 * that model alone as the baseline.
 * Input: tokenizer_config.json up to the first NUL byte; the bytes after that NUL, when
 * there is one, are added_tokens.json (else that file is removed).
 * Promises: a failure carries a kind (MODEL, IO or NOMEM) and a message; a success
 * keeps the model's pieces (n_ids >= 1500, same unk and eos ids), finds every added
 * token of both files (as jansson reads them) by its content at its id, and back from
 * its id; the bos id is the bos_token's when one is given, else the model's; and plain
 * text that spells an added token (the first 8, up to 256 bytes) encodes to ids whose
 * text is still the model's piece text: text never yields an id an added token took over.
 * Seeds (corpus/fuzz_tokenizer_config/seed_*): seed_tiny is the tiny tokenizer's
 * tokenizer_config.json with the keys the loader ignores dropped (python3:
 * json.dumps({k: v for k, v in cfg.items() if k in ('added_tokens_decoder',
 * 'bos_token')}) with each decoder entry cut to content and special); the others are
 * small hand-written variants (added_tokens.json after a NUL, bos_token as an object,
 * an added token over a normal, control, byte or unknown piece, ids past the vocabulary,
 * conflicting declarations). */
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/tokenizer/tokenizer.h"
#include "engine/util/file.h"
#include "engine/util/vec.h"
#include "tests/fuzz/fuzz.h"

#define TINY_MODEL "engine/assets/tiny_tokenizer/tokenizer.model"

static char g_dir[4096];
static char g_model[4200], g_config[4200], g_added[4200];
static vp_tokenizer *g_base; /* the model alone: what every id means without added tokens */

static void remove_dir(void)
{
    unlink(g_model);
    unlink(g_config);
    unlink(g_added);
    rmdir(g_dir);
    vp_tokenizer_free(g_base);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    FUZZ_REQUIRE(fuzz_make_temp_dir(g_dir, sizeof g_dir, "fuzz_tokenizer_config") == 0,
                 "cannot create a temporary folder (TMPDIR, /dev/shm, /tmp)");
    snprintf(g_model, sizeof g_model, "%s/tokenizer.model", g_dir);
    snprintf(g_config, sizeof g_config, "%s/tokenizer_config.json", g_dir);
    snprintf(g_added, sizeof g_added, "%s/added_tokens.json", g_dir);
    atexit(remove_dir);
    uint8_t *model;
    size_t len;
    vp_error err = {0};
    FUZZ_REQUIRE(vp_read_file(fuzz_repo_path(TINY_MODEL), 0, &model, &len, &err) == 0,
                 "%s (run from the repository root)", err.message);
    FUZZ_REQUIRE(vp_write_file(g_model, model, len, &err) == 0, "%s", err.message);
    free(model);
    FUZZ_REQUIRE(vp_tokenizer_load_model_file(g_model, &g_base, &err) == 0, "%s", err.message);
    return 0;
}

/* An added token as the input declares it (only read once the load succeeded). */
typedef struct declared {
    long id;
    const char *content;
} declared;

/* Collects the tokens of both files; returns how many (at most cap). */
static size_t collect(json_t *cfg, json_t *extra, declared *out, size_t cap)
{
    size_t n = 0;
    const char *key;
    json_t *v;
    json_t *dec = json_object_get(cfg, "added_tokens_decoder");
    json_object_foreach(dec, key, v) {
        if (n < cap)
            out[n++] = (declared){strtol(key, NULL, 10),
                                  json_string_value(json_object_get(v, "content"))};
    }
    json_object_foreach(extra, key, v) {
        if (n < cap)
            out[n++] = (declared){(long)json_integer_value(v), key};
    }
    return n;
}

static void check_success(const vp_tokenizer *tok, const char *cfg_text, size_t cfg_len,
                          const char *extra_text, size_t extra_len)
{
    size_t n_base = vp_tokenizer_n_ids(g_base);
    FUZZ_REQUIRE(vp_tokenizer_n_ids(tok) >= n_base, "%zu ids, the model has %zu",
                 vp_tokenizer_n_ids(tok), n_base);
    FUZZ_REQUIRE(vp_tokenizer_unk_id(tok) == vp_tokenizer_unk_id(g_base) &&
                     vp_tokenizer_eos_id(tok) == vp_tokenizer_eos_id(g_base),
                 "unk %d / eos %d changed", (int)vp_tokenizer_unk_id(tok),
                 (int)vp_tokenizer_eos_id(tok));

    json_t *cfg = json_loadb(cfg_text, cfg_len, 0, NULL);
    json_t *extra = extra_text ? json_loadb(extra_text, extra_len, 0, NULL) : NULL;
    FUZZ_REQUIRE(json_is_object(cfg) && (!extra_text || json_is_object(extra)),
                 "loaded from files jansson does not read as objects");

    json_t *bos = json_object_get(cfg, "bos_token");
    if (json_is_object(bos))
        bos = json_object_get(bos, "content");
    if (json_is_string(bos))
        FUZZ_REQUIRE(vp_tokenizer_bos_id(tok) >= 0 &&
                         vp_tokenizer_bos_id(tok) ==
                             vp_tokenizer_special_id(tok, json_string_value(bos)),
                     "bos id %d for bos_token '%s'", (int)vp_tokenizer_bos_id(tok),
                     json_string_value(bos));
    else
        FUZZ_REQUIRE(vp_tokenizer_bos_id(tok) == vp_tokenizer_bos_id(g_base),
                     "bos id %d without a bos_token", (int)vp_tokenizer_bos_id(tok));

    declared toks[64];
    size_t n = collect(cfg, extra, toks, sizeof toks / sizeof toks[0]);
    for (size_t i = 0; i < n; i++) {
        const declared *d = &toks[i];
        FUZZ_REQUIRE(d->content && d->id >= 0 && (size_t)d->id < vp_tokenizer_n_ids(tok),
                     "added token %zu: id %ld", i, d->id);
        FUZZ_REQUIRE(vp_tokenizer_special_id(tok, d->content) == d->id,
                     "added token '%s' (id %ld) is found as id %d", d->content, d->id,
                     (int)vp_tokenizer_special_id(tok, d->content));
        const char *back = vp_tokenizer_id_to_piece(tok, (int32_t)d->id);
        FUZZ_REQUIRE(back && !strcmp(back, d->content), "id %ld reads back as '%s', not '%s'",
                     d->id, back ? back : "(null)", d->content);
    }
    /* text spelling an added token never produces an id whose text an added token replaced */
    vp_ids ids = {0};
    for (size_t i = 0; i < n && i < 8; i++) {
        size_t len = strlen(toks[i].content);
        if (len > 256)
            continue;
        vp_error err = {0};
        ids.n = 0;
        FUZZ_REQUIRE(vp_tokenizer_encode(tok, toks[i].content, len, &ids, &err) == 0,
                     "encoding '%s': %s", toks[i].content, err.message);
        for (size_t k = 0; k < ids.n; k++) {
            int32_t id = ids.v[k];
            const char *now = vp_tokenizer_id_to_piece(tok, id);
            const char *was = vp_tokenizer_id_to_piece(g_base, id);
            FUZZ_REQUIRE(now && was && !strcmp(now, was),
                         "text '%s' encodes to id %d, which now means '%s' (the model's '%s')",
                         toks[i].content, (int)id, now ? now : "(null)", was ? was : "(null)");
        }
    }
    vp_ids_free(&ids);
    json_decref(cfg);
    json_decref(extra);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    size_t clen = nul ? (size_t)(nul - data) : size;
    vp_error err = {0};
    FUZZ_REQUIRE(vp_write_file(g_config, data, clen, &err) == 0, "%s", err.message);
    if (nul)
        FUZZ_REQUIRE(vp_write_file(g_added, nul + 1, size - clen - 1, &err) == 0, "%s",
                     err.message);
    else
        unlink(g_added);

    vp_tokenizer *tok = NULL;
    if (vp_tokenizer_load(g_dir, &tok, &err)) {
        FUZZ_REQUIRE_ERROR(err);
        FUZZ_REQUIRE(err.kind == VP_ERR_MODEL || err.kind == VP_ERR_IO ||
                         err.kind == VP_ERR_NOMEM,
                     "unexpected error kind %d: %s", (int)err.kind, err.message);
        FUZZ_REQUIRE(tok == NULL, "a failed load returned a tokenizer");
        return 0;
    }
    check_success(tok, (const char *)data, clen, nul ? (const char *)nul + 1 : NULL,
                  nul ? size - clen - 1 : 0);
    vp_tokenizer_free(tok);
    return 0;
}
