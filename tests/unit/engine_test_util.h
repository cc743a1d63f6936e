/* Shared by the engine tests: score request bodies, job preparation, logit comparison. */
#ifndef VP_ENGINE_TEST_UTIL_H
#define VP_ENGINE_TEST_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "engine/model/mkmodel.h"
#include "proto/request.h"

/* A random tiny model (mkmodel, tiny tokenizer) in a new folder from the mkdtemp template
 * dir, and engine options for it (CPU backend, 2 threads); -1 with a message on failure. */
static inline int test_tiny_model(char *dir, uint64_t seed, vp_engine_options *opt)
{
    vp_error err = {0};
    vp_mkmodel_opts mo = {.out_dir = dir, .tokenizer_dir = "engine/assets/tiny_tokenizer",
                          .seed = seed, .dtype = VP_DT_BF16, .threads = 1};
    vp_mkmodel_result mr;
    if (!mkdtemp(dir) || vp_mkmodel_preset("tiny", &mo.cfg, &err) ||
        vp_mkmodel_write(&mo, &mr, &err)) {
        fprintf(stderr, "tiny model in %s: %s\n", dir, err.message);
        return -1;
    }
    vp_engine_options_default(opt);
    opt->model_dir = dir;
    opt->threads = 2;
    return 0;
}

/* Removes the folder test_tiny_model made; 0 when it went. */
static inline int test_remove_dir(const char *dir)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd);
}

/* {"question", "image" (omitted when NULL), "max_tiles", "return_logits", "responses"};
 * the strings are pasted in as JSON string contents. */
static inline char *test_request_json(const char *image, const char *question, int max_tiles,
                                      const char *const *responses, size_t n)
{
    size_t cap = strlen(question) + (image ? strlen(image) : 0) + 256;
    for (size_t r = 0; r < n; r++)
        cap += strlen(responses[r]) + 4;
    char *s = malloc(cap);
    if (!s)
        return NULL;
    int k = snprintf(s, cap, "{\"question\": \"%s\", %s%s%s\"max_tiles\": %d, "
                     "\"return_logits\": true, \"responses\": [", question,
                     image ? "\"image\": \"" : "", image ? image : "", image ? "\", " : "",
                     max_tiles);
    for (size_t r = 0; r < n; r++)
        k += snprintf(s + k, cap - (size_t)k, "%s\"%s\"", r ? ", " : "", responses[r]);
    snprintf(s + k, cap - (size_t)k, "]}");
    return s;
}

static inline vp_job *test_prepare(vp_engine *e, const char *body)
{
    vp_request_limits lim;
    vp_request_limits_default(&lim);
    vp_score_request req;
    vp_error err = {0};
    vp_job *job = NULL;
    if (vp_request_parse(body, strlen(body), &lim, &req, &err) == 0) {
        if (vp_engine_prepare(e, &req, &job, &err))
            fprintf(stderr, "prepare: %s\n", err.message);
        vp_request_free(&req);
    } else {
        fprintf(stderr, "parse: %s\n", err.message);
    }
    return job;
}

/* Bit-identical step logits. */
static inline int test_same_logits(const vp_job *a, const vp_job *b)
{
    const vp_score_result *x = vp_job_result(a), *y = vp_job_result(b);
    if (x->n_responses != y->n_responses)
        return 0;
    for (size_t r = 0; r < x->n_responses; r++) {
        if (x->responses[r].n_steps != y->responses[r].n_steps)
            return 0;
        if (memcmp(x->responses[r].step_logits, y->responses[r].step_logits,
                   2 * x->responses[r].n_steps * sizeof(float)))
            return 0;
    }
    return 1;
}

#endif
