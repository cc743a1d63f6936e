/* A model that overflows (an inf weight in a checkpoint: the same as activations beyond
 * the number format) gives a pass error that names the non-finite logits, never scores:
 * the CPU backend on a random tiny model whose final norm has one weight set to +inf in
 * the safetensors file. The same model unmodified scores. */
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/engine.h"
#include "engine/job.h"
#include "engine/model/safetensors.h"
#include "tests/unit/check.h"
#include "tests/unit/engine_test_util.h"

/* Element 0 of tensor name in dir/model.safetensors (bf16) set to +inf. */
static int poison(const char *dir, const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    vp_st_file f;
    vp_error err = {0};
    if (vp_st_open(path, &f, &err)) {
        fprintf(stderr, "%s\n", err.message);
        return -1;
    }
    const vp_tensor *t = vp_st_find(&f, name);
    long at = t && t->dtype == VP_DT_BF16 ? (long)((const uint8_t *)t->data - f.map.data) : -1;
    vp_st_close(&f);
    const unsigned char inf_bf16[2] = {0x80, 0x7f}; /* 0x7f80, little-endian */
    int fd = at >= 0 ? open(path, O_WRONLY) : -1;
    int ok = fd >= 0 && pwrite(fd, inf_bf16, 2, at) == 2;
    if (fd >= 0)
        close(fd);
    return ok ? 0 : -1;
}

static int run_one(vp_engine *e, const char *body, vp_error *err)
{
    vp_job *job = test_prepare(e, body);
    if (!job)
        return -2;
    int rc = vp_engine_run(e, &job, 1, err);
    if (rc == 0) {
        const vp_score_result *r = vp_job_result(job);
        for (size_t i = 0; i < vp_job_n_responses(job); i++)
            for (size_t k = 0; k < r->responses[i].n_steps; k++)
                CHECK_MSG(isfinite(r->responses[i].step_scores[k]), "a scored pass gave NaN");
    }
    vp_job_free(job);
    return rc;
}

int main(void)
{
    char dir[] = "/tmp/vprm-test-overflow-XXXXXX";
    vp_engine_options opt;
    if (test_tiny_model(dir, 5, &opt))
        return 1;
    const char *resp[] = {"Step 1: add the numbers.\\n\\nStep 2: the answer is 4."};
    char *body = test_request_json(NULL, "What is 2 + 2?", 6, resp, 1);
    vp_error err = {0};
    vp_engine *e = NULL;
    CHECK_MSG(vp_engine_open(&opt, &e, &err) == 0, "%s", err.message);
    if (e) { /* the unmodified model scores: the check below is about the poison */
        CHECK_MSG(run_one(e, body, &err) == 0, "clean model: %s", err.message);
        vp_engine_close(e);
        e = NULL;
    }
    CHECK(poison(dir, "language_model.model.norm.weight") == 0);
    CHECK_MSG(vp_engine_open(&opt, &e, &err) == 0, "%s", err.message);
    if (e) {
        memset(&err, 0, sizeof err);
        int rc = run_one(e, body, &err);
        CHECK_MSG(rc == -1 && err.kind == VP_ERR_MODEL && strstr(err.message, "non-finite logits"),
                  "poisoned model: rc %d, kind %d, \"%s\"", rc, (int)err.kind, err.message);
        printf("poisoned model: %s\n", err.message);
        vp_engine_close(e);
    }
    free(body);
    CHECK(test_remove_dir(dir) == 0);
    return check_summary("test_engine_overflow");
}
