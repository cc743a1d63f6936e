/* The score response body of API.md, built from an engine result. */
#ifndef VP_SCORE_JSON_H
#define VP_SCORE_JSON_H

#include <jansson.h>
#include <stdbool.h>

#include "engine/engine.h"

typedef struct vp_score_json_opts {
    const char *id;          /* "scr_..." */
    const char *model_name;
    bool return_steps;       /* include step_scores */
    bool return_logits;      /* include step_logits */
    const char *unknown_fields; /* the request's (vp_score_request): "warnings" when not "" */
    const char *note;        /* another line of "warnings" (NULL = none) */
} vp_score_json_opts;

/* New reference, whole, or NULL when memory runs out (or a score is not finite). */
json_t *vp_score_result_json(const vp_score_result *res, const vp_score_json_opts *o);
/* {"error": {"type", "message", "param"}} */
json_t *vp_error_json(const vp_error *err);

#endif
