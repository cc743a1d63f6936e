/* A score request (API.md POST /v1/score), parsed and validated from JSON.
 * Every error names the field path ("responses[2].steps[0]") and, for a limit, the
 * limit and the value. Steps are split and merged here (MODEL.md section 1.1). */
#ifndef VP_REQUEST_H
#define VP_REQUEST_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/util/err.h"

typedef enum { VP_AGG_MEAN = 0, VP_AGG_MIN, VP_AGG_MAX, VP_AGG_LAST, VP_AGG_PRODUCT } vp_aggregation;

const char *vp_aggregation_name(vp_aggregation a);

/* Which queued work a pass takes first (engine/sched: a bounded head start, not a strict
 * order). The order of the values is the order of service. */
typedef enum { VP_PRIORITY_HIGH = 0, VP_PRIORITY_NORMAL, VP_PRIORITY_LOW } vp_priority;

const char *vp_priority_name(vp_priority p);
/* "high", "normal", "low" (exactly); -1 when s is none of them. */
int vp_priority_parse(const char *s, size_t len, vp_priority *out);

typedef struct vp_text {
    char *s;     /* UTF-8, NUL-terminated, may contain NUL (use len) */
    size_t len;
} vp_text;

typedef enum { VP_IMAGE_BYTES = 0, VP_IMAGE_URL } vp_image_kind;

typedef struct vp_image_src {
    vp_image_kind kind;
    uint8_t *data;   /* [len] encoded image bytes (PNG/JPEG/GIF/BMP) when kind == BYTES */
    size_t len;
    char *url;       /* http(s) URL when kind == URL (fetched by the server if allowed) */
} vp_image_src;

typedef struct vp_response_in {
    vp_text *steps;  /* [n_steps] after splitting by the separator and max_steps merging */
    size_t n_steps;
} vp_response_in;

#define VP_UNKNOWN_FIELDS_MAX 160

typedef struct vp_score_request {
    vp_text question;
    vp_image_src *images;      /* [n_images] */
    size_t n_images;
    vp_response_in *responses; /* [n_responses] */
    size_t n_responses;
    vp_aggregation aggregation;
    int max_tiles;             /* 0 = the model's max_dynamic_patch */
    int max_steps;             /* 0 = no merging */
    bool return_steps;         /* default true */
    bool return_logits;        /* default false */
    vp_priority priority;      /* default VP_PRIORITY_NORMAL */
    bool priority_given;       /* the request named one (a batch's own applies otherwise) */
    /* fields the request names that nothing reads, top-level ones and those of response
     * objects ("a, responses[2].b", "" = none; at most VP_UNKNOWN_FIELDS_MAX - 1 bytes,
     * "..." when cut): answered as a warning, so that a typo ("aggregaton") does not pass
     * silently as the default */
    char unknown_fields[VP_UNKNOWN_FIELDS_MAX];
} vp_score_request;

/* Appends to out (a NUL-terminated list, "" to start) the keys of obj not in known[],
 * each after prefix, ", "-separated, a key cut at 40 bytes, the list at cap - 1 bytes
 * with "..." (after which nothing more is appended). */
void vp_note_unknown_fields(const json_t *obj, const char *const *known, size_t n_known,
                            const char *prefix, char *out, size_t cap);

/* Server limits applied while parsing (all configurable; 0 = unlimited). */
typedef struct vp_request_limits {
    size_t max_responses;
    size_t max_steps;          /* steps per response after splitting/merging */
    size_t max_images;
    size_t max_image_bytes;    /* decoded bytes per image */
    size_t max_text_bytes;     /* question or one response */
    int max_tiles;             /* upper bound for the request's max_tiles */
    size_t max_json_values;    /* of a whole body (vp_request_parse; 0 = no limit) */
    bool allow_urls;           /* accept http(s):// image URLs */
    size_t max_url_length;     /* characters of one image URL */
} vp_request_limits;

void vp_request_limits_default(vp_request_limits *l);

/* A "priority" value (a batch's own, or a request's): VP_ERR_BAD_REQUEST naming param
 * unless it is one of the names. */
int vp_request_priority_json(const json_t *v, const char *param, vp_priority *out,
                             vp_error *err);

/* Parse from a JSON value (param_prefix prefixes field paths, e.g. "requests[3]"). */
int vp_request_from_json(const json_t *root, const char *param_prefix,
                         const vp_request_limits *lim, vp_score_request *out, vp_error *err);
/* TOO_LARGE when body may hold more than lim->max_json_values values (checked before
 * any parse: vp_json_value_bound). */
int vp_request_check_values(const char *body, size_t len, const vp_request_limits *lim,
                            vp_error *err);
/* Parse a whole body (invalid JSON or invalid UTF-8 -> VP_ERR_BAD_REQUEST; too many
 * values -> VP_ERR_TOO_LARGE). */
int vp_request_parse(const char *body, size_t len, const vp_request_limits *lim,
                     vp_score_request *out, vp_error *err);
void vp_request_free(vp_score_request *r);
/* A body jansson refused (jerr) as VP_ERR_BAD_REQUEST, worded by its cause: a byte order
 * mark, a number out of range, a repeated key, a NUL in a key, data after the value, else
 * malformed JSON; each with its line and column. */
int vp_json_fail(vp_error *err, const json_error_t *jerr, const char *body, size_t len);

/* Split text by sep (plain split, empty parts kept) and merge to at most max_steps
 * (0 = no merge) with g = ceil(n / max_steps) parts per step joined by "\n\n". */
int vp_split_steps(const char *text, size_t len, const char *sep, size_t sep_len, int max_steps,
                   vp_text **steps, size_t *n_steps, vp_error *err);

/* Decode a "data:<mime>;base64,<...>" URL or bare base64 into bytes. */
int vp_decode_image_field(const char *s, size_t len, size_t max_bytes, const char *param,
                          uint8_t **out, size_t *out_len, vp_error *err);

#endif
