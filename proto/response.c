/* Response bodies: checks that make a bad result an explicit 500, never invalid JSON. */
#include "proto/response.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/util/json_alloc.h"
#include "engine/util/utf8.h"

static int check_finite(const vp_score_result *res, vp_error *err)
{
    for (size_t i = 0; i < res->n_responses; i++) {
        const vp_response_result *r = &res->responses[i];
        if (!isfinite(r->score))
            return vp_fail(err, VP_ERR_INTERNAL, "",
                           "the model produced a non-finite score for responses[%zu]", i);
        for (size_t k = 0; k < r->n_steps; k++) {
            if (!isfinite(r->step_scores[k]) ||
                (r->step_logits && (!isfinite(r->step_logits[2 * k]) ||
                                    !isfinite(r->step_logits[2 * k + 1]))))
                return vp_fail(err, VP_ERR_INTERNAL, "",
                               "the model produced a non-finite value for responses[%zu] step %zu",
                               i, k);
        }
    }
    return 0;
}

json_t *vp_response_score_json(const vp_score_result *res, const vp_score_json_opts *o,
                               vp_error *err)
{
    if (check_finite(res, err))
        return NULL;
    /* NULL when any part could not be added: the body is whole or not at all */
    json_t *j = vp_score_result_json(res, o);
    if (!j)
        vp_fail(err, VP_ERR_NOMEM, "", "out of memory writing the response");
    return j;
}

char *vp_response_error_text(const vp_error *err, size_t *len)
{
    json_t *j = vp_error_json(err);
    char *s = j ? vp_json_dump(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!s) {
        /* message not valid UTF-8 or out of memory: a fixed body keeps the contract */
        static const char fallback[] =
            "{\"error\":{\"type\":\"internal_error\",\"message\":\"the error could not be "
            "serialised\",\"param\":null}}";
        s = strdup(fallback);
        if (!s) {
            *len = 0;
            return NULL;
        }
    }
    *len = strlen(s);
    return s;
}

static json_t *piece_json(const char *piece)
{
    size_t n = strlen(piece);
    size_t bad;
    if (vp_utf8_valid(piece, n, &bad)) /* jansson's rules: NULL then means out of memory */
        return json_stringn(piece, n);
    /* not valid UTF-8: spell the bytes */
    char *buf = malloc(n * 6 + 1);
    if (!buf)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n; i++)
        o += (size_t)snprintf(buf + o, 7, "<0x%02X>", (unsigned char)piece[i]);
    buf[o] = 0;
    json_t *s = json_string(buf);
    free(buf);
    return s;
}

json_t *vp_response_tokenize_json(const char *id, const char *model, const vp_tokenizer *tok,
                                  const vp_job *job, vp_error *err)
{
    json_t *root = json_object(), *results = json_array();
    if (!root || !results)
        goto oom;
    if (json_object_set_new(root, "id", json_string(id ? id : "")) ||
        json_object_set_new(root, "model", json_string(model ? model : "")) ||
        json_object_set(root, "responses", results)) /* the key vprm tokenize prints */
        goto oom;
    size_t n = vp_job_n_responses(job);
    for (size_t r = 0; r < n; r++) {
        const vp_ids *ids = vp_job_ids(job, r);
        const vp_ids *pos = vp_job_score_positions(job, r);
        json_t *jids = json_array(), *pieces = json_array(), *jpos = json_array();
        json_t *item = json_object();
        if (!jids || !pieces || !jpos || !item) {
            json_decref(jids);
            json_decref(pieces);
            json_decref(jpos);
            json_decref(item);
            goto oom;
        }
        int bad = 0;
        for (size_t i = 0; i < ids->n; i++) {
            const char *p = vp_tokenizer_id_to_piece(tok, ids->v[i]);
            bad |= json_array_append_new(jids, json_integer(ids->v[i]));
            bad |= json_array_append_new(pieces, p ? piece_json(p) : json_null());
        }
        for (size_t i = 0; i < pos->n; i++)
            bad |= json_array_append_new(jpos, json_integer(pos->v[i]));
        bad |= json_object_set_new(item, "index", json_integer((json_int_t)r));
        bad |= json_object_set_new(item, "n_tokens", json_integer((json_int_t)ids->n));
        bad |= json_object_set_new(item, "input_ids", jids);
        bad |= json_object_set_new(item, "pieces", pieces);
        bad |= json_object_set_new(item, "score_positions", jpos);
        bad |= json_array_append_new(results, item);
        if (bad)
            goto oom;
    }
    json_decref(results);
    return root;
oom:
    json_decref(results);
    json_decref(root);
    vp_fail(err, VP_ERR_NOMEM, "", "out of memory writing the tokenize response");
    return NULL;
}

char *vp_response_dump(json_t *v, size_t *len, vp_error *err)
{
    if (!v) {
        vp_fail(err, VP_ERR_NOMEM, "", "out of memory writing the response");
        return NULL;
    }
    char *s = vp_json_dump(v, JSON_COMPACT);
    json_decref(v);
    if (!s) {
        vp_fail(err, VP_ERR_NOMEM, "", "out of memory writing the response");
        return NULL;
    }
    *len = strlen(s);
    return s;
}
