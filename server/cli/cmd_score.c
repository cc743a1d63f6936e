/* vprm score: one request file in, the response JSON of API.md out. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

#include "proto/score_json.h"
#include "server/cli/cli_request.h"
#include "server/cli/commands.h"

int cmd_score(int argc, char **argv)
{
    cli_request_args a;
    int prc = cli_request_parse_args(argc, argv, "score",
                                     "Scores every step of every response of REQUEST.json and prints "
                                     "the response body of POST /v1/score.",
                                     &a);
    if (prc)
        return prc > 0 ? 0 : 2;
    vp_error err = {0};
    vp_score_request req;
    vp_engine *e = NULL;
    vp_job *job = NULL;
    int rc = 1;
    if (cli_request_load(&a, &req, &err))
        goto out_noreq;
    vp_engine_options opt;
    vp_engine_options_default(&opt);
    opt.model_dir = a.model_dir;
    opt.backend = a.backend;
    opt.threads = a.threads;
    opt.max_request_tokens = 0;
    if (vp_engine_open(&opt, &e, &err) || vp_engine_prepare(e, &req, &job, &err) ||
        vp_engine_run(e, &job, 1, &err))
        goto out;
    vp_score_result *res = vp_job_result_mut(job);
    res->timing.total = res->timing.preprocess + res->timing.vision + res->timing.language;
    vp_score_json_opts jo = {.id = "cli",
                             .model_name = vp_engine_config(e)->name,
                             .return_steps = req.return_steps,
                             .return_logits = req.return_logits};
    json_t *root = vp_score_result_json(res, &jo);
    char *text = root ? json_dumps(root, JSON_INDENT(2) | JSON_REAL_PRECISION(9)) : NULL;
    json_decref(root);
    if (!text) {
        vp_fail(&err, VP_ERR_NOMEM, NULL, "out of memory writing JSON");
        goto out;
    }
    puts(text);
    free(text);
    rc = 0;
out:
    vp_job_free(job);
    vp_engine_close(e);
    vp_request_free(&req);
out_noreq:
    if (rc)
        fprintf(stderr, "vprm score: %s%s%s\n", err.param[0] ? err.param : "",
                err.param[0] ? ": " : "", err.message);
    return rc;
}
