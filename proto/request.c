/* Parsing and validation of a score request (API.md). */
#include "proto/request.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proto/base64.h"
#include "proto/json_blobs.h"
#include "engine/util/json_alloc.h"

#define DEFAULT_SEPARATOR "\n\n"

const char *vp_aggregation_name(vp_aggregation a)
{
    static const char *names[] = {"mean", "min", "max", "last", "product"};
    return (unsigned)a < sizeof names / sizeof names[0] ? names[a] : "mean";
}

static const char *const priority_names[] = {"high", "normal", "low"};

const char *vp_priority_name(vp_priority p)
{
    return (unsigned)p < sizeof priority_names / sizeof *priority_names ? priority_names[p]
                                                                        : "normal";
}

int vp_priority_parse(const char *s, size_t len, vp_priority *out)
{
    for (size_t i = 0; i < sizeof priority_names / sizeof *priority_names; i++)
        if (len == strlen(priority_names[i]) && !memcmp(s, priority_names[i], len)) {
            *out = (vp_priority)i;
            return 0;
        }
    return -1;
}

int vp_request_priority_json(const json_t *v, const char *param, vp_priority *out,
                             vp_error *err)
{
    if (!json_is_string(v) ||
        vp_priority_parse(json_string_value(v), json_string_length(v), out))
        return vp_fail(err, VP_ERR_BAD_REQUEST, param, "must be one of high, normal, low");
    return 0;
}

void vp_request_limits_default(vp_request_limits *l)
{
    l->max_responses = 64;
    l->max_steps = 64;
    l->max_images = 8;
    l->max_image_bytes = 32u << 20;
    l->max_text_bytes = 256u << 10;
    l->max_tiles = 12;
    l->max_json_values = 2000000;
    l->allow_urls = false;
    l->max_url_length = 8192;
}

static void text_free(vp_text *t)
{
    free(t->s);
    t->s = NULL;
    t->len = 0;
}

static int text_dup(vp_text *t, const char *s, size_t len)
{
    t->s = malloc(len + 1);
    if (!t->s)
        return -1;
    memcpy(t->s, s, len);
    t->s[len] = 0;
    t->len = len;
    return 0;
}

void vp_request_free(vp_score_request *r)
{
    if (!r)
        return;
    text_free(&r->question);
    for (size_t i = 0; i < r->n_images; i++) {
        free(r->images[i].data);
        free(r->images[i].url);
    }
    free(r->images);
    for (size_t i = 0; i < r->n_responses; i++) {
        for (size_t k = 0; k < r->responses[i].n_steps; k++)
            text_free(&r->responses[i].steps[k]);
        free(r->responses[i].steps);
    }
    free(r->responses);
    memset(r, 0, sizeof *r);
}

/* Joins parts[first..last) with sep into one text. */
static int join_parts(const vp_text *parts, size_t first, size_t last, const char *sep,
                      size_t sep_len, vp_text *out)
{
    size_t total = 0;
    for (size_t i = first; i < last; i++)
        total += parts[i].len + (i > first ? sep_len : 0);
    out->s = malloc(total + 1);
    if (!out->s)
        return -1;
    size_t o = 0;
    for (size_t i = first; i < last; i++) {
        if (i > first) {
            memcpy(out->s + o, sep, sep_len);
            o += sep_len;
        }
        memcpy(out->s + o, parts[i].s, parts[i].len);
        o += parts[i].len;
    }
    out->s[o] = 0;
    out->len = o;
    return 0;
}

/* Merges steps to at most max_steps groups of g = ceil(n / max_steps), each group joined
 * with "\n\n" as MODEL.md 1.1 says (also when the request split by another separator). */
static int merge_steps(vp_text **steps, size_t *n_steps, int max_steps, vp_error *err)
{
    const char *sep = DEFAULT_SEPARATOR;
    size_t sep_len = sizeof DEFAULT_SEPARATOR - 1;
    size_t n = *n_steps;
    if (max_steps <= 0 || n <= (size_t)max_steps)
        return 0;
    size_t g = (n + (size_t)max_steps - 1) / (size_t)max_steps;
    size_t m = (n + g - 1) / g;
    vp_text *merged = calloc(m, sizeof *merged);
    if (!merged)
        return vp_fail(err, VP_ERR_NOMEM, NULL, "out of memory merging steps");
    for (size_t k = 0; k < m; k++) {
        size_t last = (k + 1) * g < n ? (k + 1) * g : n;
        if (join_parts(*steps, k * g, last, sep, sep_len, &merged[k])) {
            for (size_t j = 0; j < k; j++)
                text_free(&merged[j]);
            free(merged);
            return vp_fail(err, VP_ERR_NOMEM, NULL, "out of memory merging steps");
        }
    }
    for (size_t i = 0; i < n; i++)
        text_free(&(*steps)[i]);
    free(*steps);
    *steps = merged;
    *n_steps = m;
    return 0;
}

/* Where the first separator at or after `from` starts, or len when none does. memmem,
 * not a memcmp at every place: that costs the separator's length a byte, quadratic for
 * a long separator over long text. */
static size_t next_sep(const char *text, size_t len, size_t from, const char *sep,
                       size_t sep_len)
{
    if (from > len)
        return len;
    const char *p = memmem(text + from, len - from, sep, sep_len);
    return p ? (size_t)(p - text) : len;
}

int vp_split_steps(const char *text, size_t len, const char *sep, size_t sep_len, int max_steps,
                   vp_text **steps_out, size_t *n_out, vp_error *err)
{
    *steps_out = NULL;
    *n_out = 0;
    if (sep_len == 0)
        return vp_fail(err, VP_ERR_BAD_REQUEST, "step_separator", "step_separator must not be empty");
    size_t n = 1;
    for (size_t i = next_sep(text, len, 0, sep, sep_len); i < len;
         i = next_sep(text, len, i + sep_len, sep, sep_len))
        n++;
    vp_text *steps = calloc(n, sizeof *steps);
    if (!steps)
        return vp_fail(err, VP_ERR_NOMEM, NULL, "out of memory splitting steps");
    size_t k = 0, start = 0;
    for (size_t i = next_sep(text, len, 0, sep, sep_len); i < len;
         i = next_sep(text, len, start, sep, sep_len)) {
        if (text_dup(&steps[k++], text + start, i - start))
            goto oom;
        start = i + sep_len;
    }
    if (text_dup(&steps[k++], text + start, len - start))
        goto oom;
    if (merge_steps(&steps, &k, max_steps, err)) {
        for (size_t i = 0; i < n; i++)
            text_free(&steps[i]);
        free(steps);
        return -1;
    }
    *steps_out = steps;
    *n_out = k;
    return 0;
oom:
    for (size_t i = 0; i < n; i++)
        text_free(&steps[i]);
    free(steps);
    return vp_fail(err, VP_ERR_NOMEM, NULL, "out of memory splitting steps");
}

int vp_decode_image_field(const char *s, size_t len, size_t max_bytes, const char *param,
                          uint8_t **out, size_t *out_len, vp_error *err)
{
    *out = NULL;
    *out_len = 0;
    const char *b64 = s;
    size_t b64_len = len;
    if (len >= 5 && !strncasecmp(s, "data:", 5)) { /* URL schemes ignore case */
        const char *comma = memchr(s, ',', len);
        if (!comma)
            return vp_fail(err, VP_ERR_BAD_REQUEST, param, "data URL has no ',' before its data");
        size_t meta_len = (size_t)(comma - s);
        if (meta_len < 7 || strncasecmp(comma - 7, ";base64", 7))
            return vp_fail(err, VP_ERR_BAD_REQUEST, param,
                           "data URL must be base64-encoded (data:image/png;base64,...)");
        b64 = comma + 1;
        b64_len = len - meta_len - 1;
    }
    if (b64_len == 0)
        return vp_fail(err, VP_ERR_BAD_REQUEST, param, "image data is empty");
    size_t cap = vp_base64_decoded_max(b64_len);
    /* cap overestimates by at most 3 bytes plus skipped whitespace: check exactly after */
    uint8_t *buf = malloc(cap);
    if (!buf)
        return vp_fail(err, VP_ERR_NOMEM, param, "out of memory decoding image (%zu bytes)", cap);
    size_t n = 0, bad = 0;
    if (vp_base64_decode(b64, b64_len, buf, &n, &bad)) {
        free(buf);
        if (bad >= b64_len) /* nothing wrong but the end: a last group of one character */
            return vp_fail(err, VP_ERR_BAD_REQUEST, param,
                           "the image's base64 is cut short: its last group has one character "
                           "(a group of 4 encodes 3 bytes; 2 or 3 characters end one)");
        return vp_fail(err, VP_ERR_BAD_REQUEST, param,
                       "invalid base64 at character %zu of the image data (send a data: URL or "
                       "the base64 of the image file's bytes; file paths are not read)", bad);
    }
    if (n == 0) { /* padding or whitespace only */
        free(buf);
        return vp_fail(err, VP_ERR_BAD_REQUEST, param, "image data is empty (its base64 holds no bytes)");
    }
    if (max_bytes && n > max_bytes) {
        free(buf);
        return vp_fail(err, VP_ERR_TOO_LARGE, param,
                       "image is %zu bytes, over the limit max_image_bytes=%zu", n, max_bytes);
    }
    *out = buf;
    *out_len = n;
    return 0;
}

static int parse_image(const json_t *v, const char *param, const vp_request_limits *lim,
                       vp_image_src *img, vp_error *err)
{
    if (!json_is_string(v))
        return vp_fail(err, VP_ERR_BAD_REQUEST, param,
                       "must be a string: a data: URL, base64 image bytes or an http(s) URL");
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    if ((len >= 7 && !strncasecmp(s, "http://", 7)) || (len >= 8 && !strncasecmp(s, "https://", 8))) {
        if (!lim->allow_urls)
            return vp_fail(err, VP_ERR_BAD_REQUEST, param,
                           "image URLs are not enabled on this server; send the image as base64");
        if (strlen(s) != len)
            return vp_fail(err, VP_ERR_BAD_REQUEST, param, "image URL contains a NUL character");
        if (lim->max_url_length && len > lim->max_url_length)
            return vp_fail(err, VP_ERR_TOO_LARGE, param,
                           "image URL of %zu characters, over the limit url_max_length=%zu", len,
                           lim->max_url_length);
        img->kind = VP_IMAGE_URL;
        img->url = strdup(s);
        return img->url ? 0 : vp_fail(err, VP_ERR_NOMEM, param, "out of memory");
    }
    img->kind = VP_IMAGE_BYTES;
    return vp_decode_image_field(s, len, lim->max_image_bytes, param, &img->data, &img->len, err);
}

static int parse_images(const json_t *root, const char *pre, const vp_request_limits *lim,
                        vp_score_request *r, vp_error *err)
{
    const json_t *one = json_object_get(root, "image");
    const json_t *many = json_object_get(root, "images");
    char param[128];
    if (one && json_is_null(one))
        one = NULL;
    if (many && json_is_null(many))
        many = NULL;
    if (one && many) {
        snprintf(param, sizeof param, "%simages", pre);
        return vp_fail(err, VP_ERR_BAD_REQUEST, param, "give either \"image\" or \"images\", not both");
    }
    if (!one && !many)
        return 0;
    size_t n = 1;
    if (many) {
        snprintf(param, sizeof param, "%simages", pre);
        if (!json_is_array(many))
            return vp_fail(err, VP_ERR_BAD_REQUEST, param, "must be an array of images");
        n = json_array_size(many);
        if (lim->max_images && n > lim->max_images)
            return vp_fail(err, VP_ERR_TOO_LARGE, param,
                           "%zu images, over the limit max_images=%zu", n, lim->max_images);
        if (n == 0)
            return 0;
    }
    r->images = calloc(n, sizeof *r->images);
    if (!r->images)
        return vp_fail(err, VP_ERR_NOMEM, NULL, "out of memory");
    r->n_images = n;
    for (size_t i = 0; i < n; i++) {
        if (many)
            snprintf(param, sizeof param, "%simages[%zu]", pre, i);
        else
            snprintf(param, sizeof param, "%simage", pre);
        if (parse_image(many ? json_array_get(many, i) : one, param, lim, &r->images[i], err))
            return -1;
    }
    return 0;
}

static int check_text_limit(size_t len, const vp_request_limits *lim, const char *param,
                            vp_error *err)
{
    if (lim->max_text_bytes && len > lim->max_text_bytes)
        return vp_fail(err, VP_ERR_TOO_LARGE, param, "%zu bytes of text, over the limit max_text_bytes=%zu",
                       len, lim->max_text_bytes);
    return 0;
}

/* Steps a response may list before merging: max_steps, or with "max_steps" merging this
 * many times more (bounds the memory a request can make the parser allocate). */
#define MERGE_INPUT_FACTOR 64

static int parse_step_array(const json_t *arr, const char *param, int max_steps,
                            const vp_request_limits *lim, vp_response_in *resp, vp_error *err)
{
    size_t n = json_array_size(arr);
    if (n == 0)
        return vp_fail(err, VP_ERR_BAD_REQUEST, param, "steps list is empty");
    size_t raw_limit = lim->max_steps * (max_steps > 0 ? MERGE_INPUT_FACTOR : 1);
    if (lim->max_steps && n > raw_limit)
        return vp_fail(err, VP_ERR_TOO_LARGE, param,
                       "%zu steps, over the limit max_steps=%zu%s", n, lim->max_steps,
                       max_steps > 0 ? " (x64 before max_steps merging)" : " (set \"max_steps\" to merge steps)");
    resp->steps = calloc(n, sizeof *resp->steps);
    if (!resp->steps)
        return vp_fail(err, VP_ERR_NOMEM, param, "out of memory");
    size_t total = 0;
    for (size_t k = 0; k < n; k++) {
        const json_t *s = json_array_get(arr, k);
        if (!json_is_string(s)) {
            char p[256];
            snprintf(p, sizeof p, "%.200s[%zu]", param, k);
            return vp_fail(err, VP_ERR_BAD_REQUEST, p, "each step must be a string");
        }
        total += json_string_length(s);
        if (text_dup(&resp->steps[k], json_string_value(s), json_string_length(s)))
            return vp_fail(err, VP_ERR_NOMEM, param, "out of memory");
        resp->n_steps = k + 1;
    }
    return check_text_limit(total, lim, param, err);
}

static int parse_response(const json_t *v, const char *param, const char *sep, size_t sep_len,
                          int max_steps, const vp_request_limits *lim, vp_response_in *resp,
                          vp_error *err)
{
    if (json_is_string(v)) {
        if (check_text_limit(json_string_length(v), lim, param, err))
            return -1;
        if (vp_split_steps(json_string_value(v), json_string_length(v), sep, sep_len, max_steps,
                           &resp->steps, &resp->n_steps, err))
            return -1;
    } else if (json_is_array(v)) {
        if (parse_step_array(v, param, max_steps, lim, resp, err) ||
            merge_steps(&resp->steps, &resp->n_steps, max_steps, err))
            return -1;
    } else if (json_is_object(v)) {
        const json_t *steps = json_object_get(v, "steps");
        char p[256];
        snprintf(p, sizeof p, "%.200s.steps", param);
        if (!steps)
            return vp_fail(err, VP_ERR_BAD_REQUEST, p, "missing: an object response needs \"steps\"");
        if (!json_is_array(steps))
            return vp_fail(err, VP_ERR_BAD_REQUEST, p, "must be an array of step strings");
        if (parse_step_array(steps, p, max_steps, lim, resp, err) ||
            merge_steps(&resp->steps, &resp->n_steps, max_steps, err))
            return -1;
    } else {
        return vp_fail(err, VP_ERR_BAD_REQUEST, param,
                       "must be a string, an array of step strings, or {\"steps\": [...]}");
    }
    /* a request's own max_steps above the server's merges too little: say so, since
     * "set max_steps" alone reads as a contradiction to a client that did */
    if (lim->max_steps && resp->n_steps > lim->max_steps)
        return vp_fail(err, VP_ERR_TOO_LARGE, param,
                       "%zu steps, over the limit max_steps=%zu (%s \"max_steps\" to at most %zu "
                       "to merge steps)", resp->n_steps, lim->max_steps,
                       max_steps > 0 ? "lower the request's" : "set", lim->max_steps);
    return 0;
}

static int get_bool(const json_t *root, const char *key, const char *pre, bool *out, vp_error *err)
{
    const json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_boolean(v)) {
        char p[256];
        snprintf(p, sizeof p, "%s%s", pre, key);
        return vp_fail(err, VP_ERR_BAD_REQUEST, p, "must be true or false");
    }
    *out = json_is_true(v);
    return 0;
}

/* Optional positive integer field; returns 1 when present. */
static int get_positive_int(const json_t *root, const char *key, const char *pre, int *out,
                            vp_error *err)
{
    const json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v))
        return 0;
    char p[256];
    snprintf(p, sizeof p, "%s%s", pre, key);
    /* a whole number written as 2.0 or 2e0 is an integer too, as JSON Schema counts it */
    double d = json_is_integer(v) ? (double)json_integer_value(v)
                                  : json_is_real(v) ? json_real_value(v) : 0.0;
    if (!(d >= 1.0 && d <= (double)INT_MAX && d == floor(d)))
        return vp_fail(err, VP_ERR_BAD_REQUEST, p, "must be a positive integer (1 to %d)", INT_MAX);
    *out = (int)d;
    return 1;
}

/* The fields of a score request; "model" too, which OpenAI-style clients send and a
 * server of one model has no use for. */
static const char *const known_fields[] = {
    "question",    "image",        "images",        "responses",  "step_separator", "max_steps",
    "max_tiles",   "aggregation",  "return_steps",  "return_logits", "priority",    "model"};

void vp_note_unknown_fields(const json_t *obj, const char *const *known, size_t n_known,
                            const char *prefix, char *out, size_t cap)
{
    const char *key;
    const json_t *v;
    size_t at = strlen(out), plen = strlen(prefix);
    if (at + 4 > cap || (at >= 3 && !strcmp(out + at - 3, "...")))
        return; /* full already */
    json_object_foreach((json_t *)obj, key, v) {
        bool is_known = false;
        for (size_t i = 0; i < n_known && !is_known; i++)
            is_known = !strcmp(key, known[i]);
        if (is_known)
            continue;
        const char *name = *key ? key : "\"\""; /* the empty name spelled so it shows (key
                                                  * itself is the loop's iterator) */
        size_t len = strlen(name);
        if (len > 40) /* a long name cut at 40 bytes, on a UTF-8 character's start */
            for (len = 40; len && ((unsigned char)name[len] & 0xC0) == 0x80; len--)
                ;
        size_t sep = at ? 2 : 0;
        if (at + sep + plen + len + 4 > cap) { /* room for "..." and the NUL kept */
            memcpy(out + at, "...", 4);
            return;
        }
        memcpy(out + at, ", ", sep);
        memcpy(out + at + sep, prefix, plen);
        memcpy(out + at + sep + plen, name, len);
        at += sep + plen + len;
        out[at] = 0;
    }
}

int vp_request_from_json(const json_t *root, const char *pre, const vp_request_limits *lim,
                         vp_score_request *r, vp_error *err)
{
    memset(r, 0, sizeof *r);
    r->return_steps = true;
    r->aggregation = VP_AGG_MEAN;
    r->priority = VP_PRIORITY_NORMAL;
    if (!pre)
        pre = "";
    char p[256];
    int rc = -1;
    if (!json_is_object(root)) {
        vp_fail(err, VP_ERR_BAD_REQUEST, pre, "the request must be a JSON object");
        goto out;
    }
    /* question */
    const json_t *q = json_object_get(root, "question");
    snprintf(p, sizeof p, "%squestion", pre);
    if (!q) {
        vp_fail(err, VP_ERR_BAD_REQUEST, p, "missing required field");
        goto out;
    }
    if (!json_is_string(q)) {
        vp_fail(err, VP_ERR_BAD_REQUEST, p, "must be a string");
        goto out;
    }
    if (check_text_limit(json_string_length(q), lim, p, err))
        goto out;
    if (text_dup(&r->question, json_string_value(q), json_string_length(q))) {
        vp_fail(err, VP_ERR_NOMEM, p, "out of memory");
        goto out;
    }
    /* options */
    const json_t *sep_v = json_object_get(root, "step_separator");
    const char *sep = DEFAULT_SEPARATOR;
    size_t sep_len = strlen(DEFAULT_SEPARATOR);
    if (sep_v && !json_is_null(sep_v)) {
        snprintf(p, sizeof p, "%sstep_separator", pre);
        if (!json_is_string(sep_v) || json_string_length(sep_v) == 0) {
            vp_fail(err, VP_ERR_BAD_REQUEST, p, "must be a non-empty string");
            goto out;
        }
        sep = json_string_value(sep_v);
        sep_len = json_string_length(sep_v);
    }
    if (get_positive_int(root, "max_steps", pre, &r->max_steps, err) < 0)
        goto out;
    int tiles_rc = get_positive_int(root, "max_tiles", pre, &r->max_tiles, err);
    if (tiles_rc < 0)
        goto out;
    if (tiles_rc > 0 && lim->max_tiles && r->max_tiles > lim->max_tiles) {
        snprintf(p, sizeof p, "%smax_tiles", pre);
        vp_fail(err, VP_ERR_TOO_LARGE, p, "max_tiles=%d is over the server limit max_tiles=%d",
                r->max_tiles, lim->max_tiles);
        goto out;
    }
    const json_t *agg = json_object_get(root, "aggregation");
    if (agg && !json_is_null(agg)) {
        snprintf(p, sizeof p, "%saggregation", pre);
        int found = -1;
        for (int a = VP_AGG_MEAN; a <= VP_AGG_PRODUCT && json_is_string(agg); a++) {
            const char *name = vp_aggregation_name((vp_aggregation)a);
            if (json_string_length(agg) == strlen(name) && !strcmp(json_string_value(agg), name))
                found = a;
        }
        if (found < 0) {
            vp_fail(err, VP_ERR_BAD_REQUEST, p, "must be one of mean, min, max, last, product");
            goto out;
        }
        r->aggregation = (vp_aggregation)found;
    }
    if (get_bool(root, "return_steps", pre, &r->return_steps, err) ||
        get_bool(root, "return_logits", pre, &r->return_logits, err))
        goto out;
    const json_t *prio = json_object_get(root, "priority");
    if (prio && !json_is_null(prio)) {
        snprintf(p, sizeof p, "%spriority", pre);
        if (vp_request_priority_json(prio, p, &r->priority, err))
            goto out;
        r->priority_given = true;
    }
    /* images */
    if (parse_images(root, pre, lim, r, err))
        goto out;
    if (r->question.len == 0 && r->n_images == 0) {
        snprintf(p, sizeof p, "%squestion", pre);
        vp_fail(err, VP_ERR_BAD_REQUEST, p, "may be empty only when an image is given");
        goto out;
    }
    /* responses */
    const json_t *resp = json_object_get(root, "responses");
    snprintf(p, sizeof p, "%sresponses", pre);
    if (!resp) {
        vp_fail(err, VP_ERR_BAD_REQUEST, p, "missing required field");
        goto out;
    }
    if (!json_is_array(resp)) {
        vp_fail(err, VP_ERR_BAD_REQUEST, p, "must be an array of responses");
        goto out;
    }
    size_t n = json_array_size(resp);
    if (n == 0) {
        vp_fail(err, VP_ERR_BAD_REQUEST, p, "must contain at least one response");
        goto out;
    }
    if (lim->max_responses && n > lim->max_responses) {
        vp_fail(err, VP_ERR_TOO_LARGE, p, "%zu responses, over the limit max_responses=%zu", n,
                lim->max_responses);
        goto out;
    }
    r->responses = calloc(n, sizeof *r->responses);
    if (!r->responses) {
        vp_fail(err, VP_ERR_NOMEM, p, "out of memory");
        goto out;
    }
    r->n_responses = n;
    for (size_t i = 0; i < n; i++) {
        snprintf(p, sizeof p, "%sresponses[%zu]", pre, i);
        if (parse_response(json_array_get(resp, i), p, sep, sep_len, r->max_steps, lim,
                           &r->responses[i], err))
            goto out;
    }
    r->unknown_fields[0] = 0;
    vp_note_unknown_fields(root, known_fields, sizeof known_fields / sizeof *known_fields, "",
                           r->unknown_fields, sizeof r->unknown_fields);
    static const char *const response_fields[] = {"steps"};
    for (size_t i = 0; i < n; i++) {
        const json_t *v = json_array_get(resp, i);
        if (!json_is_object(v))
            continue;
        snprintf(p, sizeof p, "responses[%zu].", i);
        vp_note_unknown_fields(v, response_fields, 1, p, r->unknown_fields,
                               sizeof r->unknown_fields);
    }
    rc = 0;
out:
    if (rc)
        vp_request_free(r);
    return rc;
}

int vp_request_check_values(const char *body, size_t len, const vp_request_limits *lim,
                            vp_error *err)
{
    size_t n = lim->max_json_values ? vp_json_value_bound(body, len) : 0;
    if (lim->max_json_values && n > lim->max_json_values)
        return vp_fail(err, VP_ERR_TOO_LARGE, "",
                       "request body holds up to %zu JSON values (strings, numbers, keys, arrays, "
                       "objects), over the limit max_json_values=%zu",
                       n, lim->max_json_values);
    return 0;
}

int vp_json_fail(vp_error *err, const json_error_t *jerr, const char *body, size_t len)
{
    if (len >= 3 && !memcmp(body, "\xEF\xBB\xBF", 3))
        return vp_fail(err, VP_ERR_BAD_REQUEST, "",
                       "the body starts with a UTF-8 byte order mark: send the JSON without it");
    switch (json_error_code(jerr)) {
    case json_error_numeric_overflow:
        return vp_fail(err, VP_ERR_BAD_REQUEST, "",
                       "a number out of range at line %d column %d (integers must fit in 64 "
                       "bits, other numbers in a double): %s", jerr->line, jerr->column, jerr->text);
    case json_error_duplicate_key:
        return vp_fail(err, VP_ERR_BAD_REQUEST, "",
                       "a key repeated in one object at line %d column %d (each key may appear "
                       "once): %s", jerr->line, jerr->column, jerr->text);
    case json_error_null_byte_in_key:
        return vp_fail(err, VP_ERR_BAD_REQUEST, "",
                       "an object key holding a NUL character (\\u0000) at line %d column %d",
                       jerr->line, jerr->column);
    case json_error_end_of_input_expected: {
        size_t at = jerr->position > 0 ? (size_t)jerr->position - 1 : 0;
        return vp_fail(err, VP_ERR_BAD_REQUEST, "",
                       "data after the JSON value at line %d column %d%s", jerr->line,
                       jerr->column, at < len && body[at] == 0 ? " (a NUL byte)" : "");
    }
    default:
        if (vp_json_oom(jerr))
            return vp_fail(err, VP_ERR_NOMEM, "", "out of memory parsing the JSON body");
        return vp_fail(err, VP_ERR_BAD_REQUEST, "", "malformed JSON at line %d column %d: %s",
                       jerr->line, jerr->column, jerr->text);
    }
}

int vp_request_parse(const char *body, size_t len, const vp_request_limits *lim,
                     vp_score_request *out, vp_error *err)
{
    memset(out, 0, sizeof *out);
    if (vp_request_check_values(body, len, lim, err))
        return -1;
    json_error_t jerr;
    json_t *root = vp_json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    if (!root)
        return vp_json_fail(err, &jerr, body, len);
    int rc = vp_request_from_json(root, "", lim, out, err);
    json_decref(root);
    return rc;
}
