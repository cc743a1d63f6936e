/* Response bodies of the HTTP API (API.md), as serialised text ready to send:
 * the score response (built on proto/score_json.h), errors, the tokenize output and
 * the batch envelope. Every function returns a malloc'd NUL-terminated string (free()),
 * or NULL with err set. */
#ifndef VP_RESPONSE_H
#define VP_RESPONSE_H

#include <jansson.h>
#include <stddef.h>

#include "engine/engine.h"
#include "engine/tokenizer/tokenizer.h"
#include "proto/score_json.h"

/* The score response as a JSON value; refuses a result holding a non-finite number
 * (VP_ERR_INTERNAL naming the response and step) instead of writing invalid JSON. */
json_t *vp_response_score_json(const vp_score_result *res, const vp_score_json_opts *o,
                               vp_error *err);

/* {"error": {"type", "message", "param"}} (param omitted when empty); a fixed text when
 * the message cannot be written, NULL only when even that cannot be copied (out of memory:
 * vp_reply_error then answers from static memory). */
char *vp_response_error_text(const vp_error *err, size_t *len);

/* POST /v1/tokenize: {"id", "model", "responses": [{"index", "input_ids", "pieces",
 * "score_positions", "n_tokens"}]} for a prepared job (the body `vprm tokenize` prints). Pieces that are not valid UTF-8
 * are written as "<0xAB>" byte pieces. */
json_t *vp_response_tokenize_json(const char *id, const char *model, const vp_tokenizer *tok,
                                  const vp_job *job, vp_error *err);

/* Serialises a JSON value (compact, UTF-8), consuming the reference. */
char *vp_response_dump(json_t *v, size_t *len, vp_error *err);

#endif
