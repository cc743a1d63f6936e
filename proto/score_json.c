#include "proto/score_json.h"

#include <stdio.h>

#include "proto/request.h"

static json_t *usage_json(const vp_usage *u)
{
    return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I}", "prompt_tokens", (json_int_t)u->prompt_tokens,
                     "image_tiles", (json_int_t)u->image_tiles, "image_tokens",
                     (json_int_t)u->image_tokens, "shared_prefix_tokens",
                     (json_int_t)u->shared_prefix_tokens, "cached_prefix_tokens",
                     (json_int_t)u->cached_prefix_tokens, "computed_tokens",
                     (json_int_t)u->computed_tokens);
}

static json_t *timing_json(const vp_timing_ms *t)
{
    return json_pack("{s:f, s:f, s:f, s:f, s:f}", "queue", t->queue, "preprocess", t->preprocess,
                     "vision", t->vision, "language", t->language, "total", t->total);
}

static json_t *result_json(const vp_response_result *r, size_t index, const vp_score_json_opts *o)
{
    json_t *j = json_pack("{s:I, s:f, s:I}", "index", (json_int_t)index, "score", r->score,
                          "steps", (json_int_t)r->n_steps);
    if (!j)
        return NULL;
    if (o->return_steps) {
        json_t *s = json_array();
        for (size_t k = 0; k < r->n_steps; k++)
            if (json_array_append_new(s, json_real(r->step_scores[k]))) {
                json_decref(s);
                json_decref(j);
                return NULL;
            }
        if (json_object_set_new(j, "step_scores", s)) {
            json_decref(j);
            return NULL;
        }
    }
    if (o->return_logits) {
        json_t *l = json_array();
        for (size_t k = 0; k < r->n_steps; k++)
            if (json_array_append_new(l, json_pack("[f, f]", (double)r->step_logits[2 * k],
                                                   (double)r->step_logits[2 * k + 1]))) {
                json_decref(l);
                json_decref(j);
                return NULL;
            }
        if (json_object_set_new(j, "step_logits", l)) {
            json_decref(j);
            return NULL;
        }
    }
    return j;
}

json_t *vp_score_result_json(const vp_score_result *res, const vp_score_json_opts *o)
{
    json_t *results = json_array(), *ranking = json_array();
    for (size_t i = 0; i < res->n_responses; i++) {
        /* json_pack refuses NaN/Inf: a non-finite score fails the whole body (NULL) rather
         * than dropping a result silently */
        if (json_array_append_new(results, result_json(&res->responses[i], i, o)) ||
            json_array_append_new(ranking, json_integer((json_int_t)res->ranking[i]))) {
            json_decref(results);
            json_decref(ranking);
            return NULL;
        }
    }
    /* a field that cannot be added (out of memory) fails the whole body, never a 200
     * without it; json_object_set_new and json_array_append_new take NULL as a failure */
    json_t *root = json_object();
    int bad = json_object_set_new(root, "id", json_string(o->id ? o->id : ""));
    bad |= json_object_set_new(root, "model", json_string(o->model_name ? o->model_name : ""));
    bad |= json_object_set_new(root, "results", results);
    bad |= json_object_set_new(root, "ranking", ranking);
    bad |= json_object_set_new(root, "best_index", res->n_responses
                                                        ? json_integer((json_int_t)res->ranking[0])
                                                        : json_null());
    bad |= json_object_set_new(root, "usage", usage_json(&res->usage));
    bad |= json_object_set_new(root, "timing_ms", timing_json(&res->timing));
    json_t *warnings = json_array();
    bad |= !warnings;
    if (o->unknown_fields && o->unknown_fields[0]) {
        char w[VP_UNKNOWN_FIELDS_MAX + 64];
        snprintf(w, sizeof w, "unknown fields ignored: %s", o->unknown_fields);
        bad |= json_array_append_new(warnings, json_string(w));
    }
    if (o->note)
        bad |= json_array_append_new(warnings, json_string(o->note));
    if (json_array_size(warnings))
        bad |= json_object_set_new(root, "warnings", json_incref(warnings));
    json_decref(warnings);
    if (bad) {
        json_decref(root);
        return NULL;
    }
    return root;
}

json_t *vp_error_json(const vp_error *err)
{
    /* "param" always there (API.md's shape): the field at fault, null when none is */
    json_t *e = json_pack("{s:s, s:s, s:o}", "type", vp_err_type(err->kind), "message",
                          err->message, "param",
                          err->param[0] ? json_string(err->param) : json_null());
    return e ? json_pack("{s:o}", "error", e) : NULL;
}
