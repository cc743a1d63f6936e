/* vprm tokenize: the prompt ids, pieces and score positions of every response. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/cli/cli_request.h"
#include "server/cli/commands.h"

static json_t *response_json(const vp_tokenizer *tok, const vp_ids *ids, const vp_ids *pos)
{
    json_t *o = json_object(), *jids = json_array(), *jpos = json_array(), *jp = json_array();
    for (size_t i = 0; i < ids->n; i++) {
        json_array_append_new(jids, json_integer(ids->v[i]));
        const char *piece = vp_tokenizer_id_to_piece(tok, ids->v[i]);
        json_array_append_new(jp, json_string(piece ? piece : ""));
    }
    for (size_t i = 0; i < pos->n; i++)
        json_array_append_new(jpos, json_integer(pos->v[i]));
    json_object_set_new(o, "input_ids", jids);
    json_object_set_new(o, "score_positions", jpos);
    json_object_set_new(o, "pieces", jp);
    return o;
}

int cmd_tokenize(int argc, char **argv)
{
    cli_request_args a;
    int prc = cli_request_parse_args(argc, argv, "tokenize",
                                     "Prints, for every response of the request, the prompt's token "
                                     "ids (BOS first), their pieces and the score positions.",
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
    opt.backend = "none"; /* tokenizing needs no weights on a device */
    opt.max_request_tokens = 0;
    if (vp_engine_open(&opt, &e, &err) || vp_engine_prepare(e, &req, &job, &err))
        goto out;
    json_t *root = json_object(), *arr = json_array();
    for (size_t r = 0; r < vp_job_n_responses(job); r++)
        json_array_append_new(arr, response_json(vp_engine_tokenizer(e), vp_job_ids(job, r),
                                                 vp_job_score_positions(job, r)));
    json_object_set_new(root, "responses", arr);
    char *text = json_dumps(root, JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref(root);
    if (text) {
        puts(text);
        free(text);
        rc = 0;
    } else {
        vp_fail(&err, VP_ERR_NOMEM, NULL, "out of memory writing JSON");
    }
out:
    vp_job_free(job);
    vp_engine_close(e);
    vp_request_free(&req);
out_noreq:
    if (rc)
        fprintf(stderr, "vprm tokenize: %s%s%s\n", err.param[0] ? err.param : "",
                err.param[0] ? ": " : "", err.message);
    return rc;
}
