/* mkbatch: writes a standard workload's first request, prepared by the engine (real
 * tokenizer, prompt template, image tiling, shared prefix), as a batch file
 * (batch_file.h) for the GPU checks. Runs on the CPU machine: the GPU machine's
 * sentencepiece cannot read InternLM2's tokenizer and has none of our libraries.
 *   mkbatch --model DIR --out FILE [--workload W1] [--seed N] [--max-side PX] [--words N]
 * (--max-side / --words: the generator's scale-downs for CPU runs, 0 = PERF.md's shape)
 * DIR is any model folder with the tokenizer wanted (weights are not read for scoring:
 * the engine is opened with backend "none"). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "engine/job.h"
#include "proto/request.h"
#include "server/bench/bench.h"
#include "tests/gpu/batch_file.h"

static int put(FILE *fp, int32_t v)
{
    return fwrite(&v, sizeof v, 1, fp) == 1 ? 0 : -1;
}

int main(int argc, char **argv)
{
    const char *model = NULL, *out = NULL, *workload = "W1";
    uint64_t seed = 1;
    uint32_t max_side = 0;
    size_t words = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--model")) model = argv[i + 1];
        else if (!strcmp(argv[i], "--out")) out = argv[i + 1];
        else if (!strcmp(argv[i], "--workload")) workload = argv[i + 1];
        else if (!strcmp(argv[i], "--seed")) seed = strtoull(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--max-side")) max_side = (uint32_t)atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--words")) words = (size_t)atoi(argv[i + 1]);
        else {
            fprintf(stderr, "mkbatch: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (!model || !out) {
        fprintf(stderr, "usage: mkbatch --model DIR --out FILE [--workload W1] [--seed N] "
                        "[--max-side PX] [--words N]\n");
        return 2;
    }
    vp_error err = {0};
    vp_workload_opts wo = {.seed = seed, .max_image_side = max_side, .words_per_step = words};
    vp_workload_request wr = {0};
    vp_score_request req;
    vp_request_limits lim;
    vp_request_limits_default(&lim);
    lim.max_responses = lim.max_steps = lim.max_images = 0;
    lim.max_text_bytes = lim.max_image_bytes = 0;
    vp_engine_options eo;
    vp_engine_options_default(&eo);
    eo.model_dir = model;
    eo.backend = "none";
    eo.max_request_tokens = 0;
    vp_engine *e = NULL;
    vp_job *job = NULL;
    int rc = 1;
    if (vp_workload_parse(workload, &wo.kind) ||
        vp_workload_make(&wo, 0, &wr, &err) || vp_request_parse(wr.body, wr.len, &lim, &req, &err)) {
        fprintf(stderr, "mkbatch: workload %s: %s\n", workload, err.message);
        vp_workload_request_free(&wr);
        return 1;
    }
    if (vp_engine_open(&eo, &e, &err) || vp_engine_prepare(e, &req, &job, &err)) {
        fprintf(stderr, "mkbatch: %s%s%s\n", err.param, err.param[0] ? ": " : "", err.message);
        goto done;
    }
    const vp_prompt_ctx *pr = vp_engine_prompt(e);
    FILE *fp = fopen(out, "wb");
    if (!fp) {
        fprintf(stderr, "mkbatch: cannot write %s\n", out);
        goto done;
    }
    int w = put(fp, VPB_MAGIC) | put(fp, 1) | put(fp, vp_engine_config(e)->llm.vocab) |
            put(fp, pr->plus) | put(fp, pr->minus) | put(fp, pr->img_context) |
            put(fp, (int32_t)job->n_tiles) | put(fp, vp_engine_config(e)->num_image_token) |
            put(fp, (int32_t)job->n_responses) | put(fp, (int32_t)job->prefix_len);
    size_t total = 0, outputs = 0;
    /* the job's distinct responses (a repeat is computed once): the workloads have none */
    for (size_t r = 0; r < job->n_responses; r++) {
        w |= put(fp, (int32_t)job->ids[r].n);
        w |= fwrite(job->ids[r].v, 4, job->ids[r].n, fp) != job->ids[r].n;
        w |= put(fp, (int32_t)job->score_pos[r].n);
        w |= fwrite(job->score_pos[r].v, 4, job->score_pos[r].n, fp) != job->score_pos[r].n;
        total += job->ids[r].n;
        outputs += job->score_pos[r].n;
    }
    if (fclose(fp) || w) {
        fprintf(stderr, "mkbatch: write error on %s\n", out);
        goto done;
    }
    printf("mkbatch: %s seed %llu -> %s: %zu tiles, %zu responses, %zu prompt tokens, shared prefix "
           "%zu, %zu tokens computed, %zu score positions, \"+\" %d \"-\" %d\n",
           workload, (unsigned long long)seed, out, job->n_tiles, job->n_responses, total,
           job->prefix_len, job->computed_tokens, outputs, pr->plus, pr->minus);
    rc = 0;
done:
    vp_job_free(job);
    vp_engine_close(e);
    vp_request_free(&req);
    vp_workload_request_free(&wr);
    return rc;
}
