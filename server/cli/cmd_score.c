/* vprm score: one request file in, the response JSON of API.md out. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

#include "engine/util/json_alloc.h"
#include "proto/response.h"
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
    cli_session s;
    int failed = 1;
    if (cli_session_open(&a, a.backend, &s) == 0 && vp_engine_run(s.engine, &s.job, 1, &s.err) == 0) {
        vp_score_result *res = vp_job_result_mut(s.job);
        res->timing.total = res->timing.preprocess + res->timing.vision + res->timing.language;
        vp_score_json_opts jo = {.id = "cli",
                                 .model_name = vp_engine_config(s.engine)->name,
                                 .return_steps = s.req.return_steps,
                                 .return_logits = s.req.return_logits,
                                 .unknown_fields = s.req.unknown_fields};
        json_t *root = vp_response_score_json(res, &jo, &s.err);
        /* the server's digits (every double in full), indented for a person */
        char *text = root ? vp_json_dump(root, JSON_INDENT(2)) : NULL;
        json_decref(root);
        if (text) {
            failed = cli_write_answer(text, &s.err);
            free(text);
        } else if (root) {
            vp_fail(&s.err, VP_ERR_NOMEM, NULL, "out of memory writing JSON");
        }
    }
    cli_session_close(&s, "score", failed);
    return failed;
}
