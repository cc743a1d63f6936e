/* POST /v1/score (and /score), /v1/score/batch, /v1/tokenize.
 * The pool thread parses, prepares (decode, tile, tokenize) and queues; the engine thread
 * computes; the pool thread that handles the resumed connection writes the answer. A
 * request with image URLs is first suspended while a fetch worker downloads them
 * (fetch_task.c); the *_fetched handlers then take it up where the others go on. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/util/log.h"
#include "proto/json_blobs.h"
#include "proto/response.h"
#include "server/internal.h"

/* Errors from the engine name fields of one request; inside a batch they get the
 * item's prefix ("requests[2].images[0]"). */
static void prefix_param(vp_error *err, const char *prefix)
{
    char p[sizeof err->param];
    if (prefix[0] && strncmp(err->param, prefix, strlen(prefix)))
        snprintf(p, sizeof p, "%s%s", prefix, err->param);
    else
        memcpy(p, err->param, sizeof p);
    size_t n = strlen(p);
    if (n && p[n - 1] == '.') /* "requests[2]." names the item itself */
        p[n - 1] = 0;
    memcpy(err->param, p, sizeof p);
}

/* Parsed request (its image URLs fetched) -> prepared job; the request is freed in every
 * case. */
static int prepare(vp_conn *x, vp_score_request *req, const char *prefix, vp_item *item,
                   vp_job **job, vp_error *err)
{
    vp_server *s = x->srv;
    item->return_steps = req->return_steps;
    item->return_logits = req->return_logits;
    item->priority = req->priority;
    if (req->priority < x->max_priority) { /* more than its API key may: lowered, and said
                                             * in the answer when the client chose it */
        item->priority_lowered = req->priority_given;
        item->asked = req->priority;
        item->priority = x->max_priority;
    }
    memcpy(item->unknown_fields, req->unknown_fields, sizeof item->unknown_fields);
    int rc;
    if (vp_request_has_urls(req)) /* a route queues these for a fetch worker first */
        rc = vp_fail(err, VP_ERR_INTERNAL, "", "an image URL reached prepare unfetched");
    else if ((rc = vp_engine_prepare(atomic_load(&s->engine), req, job, err)))
        prefix_param(err, prefix);
    if (rc == 0) {
        x->n_responses += req->n_responses;
        x->tokens += vp_job_tokens(*job);
    }
    vp_request_free(req);
    return rc;
}

/* A stashed request after its fetch: its fetch error, or prepare's outcome; freed in
 * every case. */
static int take_fetched(vp_conn *x, vp_fetch_req *r, vp_item *item, vp_job **job,
                        vp_error *err)
{
    r->live = false; /* prepare, or this, frees it */
    if (r->rc) {
        *err = r->err;
        vp_request_free(&r->req);
        return -1;
    }
    return prepare(x, &r->req, r->prefix, item, job, err);
}

/* Admission of the image tiles of the n requests reqs[i] (each at stride bytes from the
 * last; those with skip[i] set left out) before any is decoded, as vp_sched_submit will
 * judge them: a refusal (413 past max_queued_tiles, 429 while the queue holds its bound)
 * costs no decoding, and no request holds more tiles than the queue may. */
static int admit_tiles(vp_conn *x, const void *reqs, size_t stride, const bool *skip, size_t n,
                       vp_error *err)
{
    vp_server *s = x->srv;
    vp_engine *e = atomic_load(&s->engine);
    size_t *tiles = calloc(n ? n : 1, sizeof *tiles), any = 0;
    vp_priority *prio = calloc(n ? n : 1, sizeof *prio);
    int rc = 0;
    if (!tiles || !prio) {
        rc = vp_fail(err, VP_ERR_NOMEM, "", "out of memory admitting the request");
    } else {
        for (size_t i = 0; i < n; i++) {
            const vp_score_request *r = (const vp_score_request *)((const char *)reqs + i * stride);
            if (skip && skip[i])
                continue;
            tiles[i] = vp_engine_count_tiles(e, r);
            prio[i] = r->priority < x->max_priority ? x->max_priority : r->priority; /* prepare's */
            any += tiles[i];
        }
        if (any)
            rc = vp_sched_admit_tiles(s->sched, prio, tiles, n, err);
        if (rc && err->kind == VP_ERR_BUSY)
            vp_metrics_event(&s->metrics, VP_EV_BUSY);
        else if (rc && err->kind == VP_ERR_UNAVAILABLE)
            vp_metrics_event(&s->metrics, VP_EV_DRAINING);
    }
    free(tiles);
    free(prio);
    return rc;
}

static void drop_body(vp_conn *x)
{
    vp_conn_body_free(x);
}

/* A single request (score, tokenize) with image URLs: to a fetch worker. */
static enum MHD_Result fetch_later(vp_conn *x, vp_score_request *req)
{
    if (vp_fetch_stash(x, req, "", 0, 1))
        return vp_reply_errorf(x, VP_ERR_NOMEM, "", "out of memory");
    return vp_fetch_start(x);
}

/* A single request's body (score, tokenize) parsed and its job prepared (for the queue:
 * its tiles admitted first): 1 with *job, or 0 with *answer (its error's, or a fetch
 * worker's once its image URLs are in). */
static int single_job(vp_conn *x, bool queued, vp_item *item, vp_job **job,
                      enum MHD_Result *answer)
{
    vp_score_request req;
    vp_error err;
    memset(&err, 0, sizeof err);
    int rc = vp_request_parse(x->body, x->len, &x->srv->limits, &req, &err);
    drop_body(x);
    if (rc) {
        *answer = vp_reply_error(x, &err);
    } else if (vp_request_has_urls(&req)) {
        *answer = fetch_later(x, &req);
    } else if (queued && admit_tiles(x, &req, 0, NULL, 1, &err)) {
        vp_request_free(&req);
        *answer = vp_reply_error(x, &err);
    } else if (prepare(x, &req, "", item, job, &err)) {
        *answer = vp_reply_error(x, &err);
    } else {
        return 1;
    }
    return 0;
}

enum MHD_Result vp_route_score(vp_conn *x)
{
    x->items = calloc(1, sizeof *x->items);
    if (!x->items)
        return vp_reply_errorf(x, VP_ERR_NOMEM, "", "out of memory");
    x->n_items = 1;
    vp_job *job;
    enum MHD_Result answer;
    if (!single_job(x, true, &x->items[0], &job, &answer))
        return answer;
    size_t item = 0;
    return vp_conn_submit(x, &job, 1, &item);
}

enum MHD_Result vp_route_score_fetched(vp_conn *x)
{
    vp_error err;
    vp_job *job;
    vp_fetch_req *r = &x->fetch[0];
    if (r->rc == 0 && admit_tiles(x, &r->req, 0, NULL, 1, &err)) {
        r->live = false;
        vp_request_free(&r->req);
        return vp_reply_error(x, &err);
    }
    if (take_fetched(x, r, &x->items[0], &job, &err))
        return vp_reply_error(x, &err);
    size_t item = 0;
    return vp_conn_submit(x, &job, 1, &item);
}

/* One finished item as JSON (a score response with this id, or {"error": ...}); NULL =
 * client gone. */
static json_t *item_json(vp_conn *x, vp_item *it, const char *id, bool *gone)
{
    vp_server *s = x->srv;
    vp_error err;
    if (!it->ticket)
        return vp_error_json(&it->err);
    if (vp_sched_ticket_cancelled(it->ticket)) {
        *gone = true;
        return NULL;
    }
    double q = vp_sched_ticket_queue_ms(it->ticket);
    if (q > x->queue_ms)
        x->queue_ms = q;
    const vp_error *e;
    if (vp_sched_ticket_outcome(it->ticket, &e)) {
        if (vp_sched_ticket_expired(it->ticket))
            vp_metrics_event(&s->metrics, VP_EV_EXPIRED);
        else if (e->kind != VP_ERR_UNAVAILABLE) /* not a shutdown's refusal */
            VP_LOGE(x->id, "engine: %s", e->message);
        return vp_error_json(e);
    }
    vp_score_result *r = vp_job_result_mut(vp_sched_ticket_job(it->ticket));
    double inf = r->timing.vision + r->timing.language;
    if (inf > x->inference_ms)
        x->inference_ms = inf;
    vp_metrics_result(&s->metrics, r, vp_effective_priority(s, it->priority));
    if (x->key_name[0])
        vp_key_usage_result(s->usage, x->key_name, r);
    char note[128];
    if (it->priority_lowered)
        snprintf(note, sizeof note, "priority \"%s\" lowered to \"%s\": the most this %s "
                 "may ask for", vp_priority_name(it->asked), vp_priority_name(it->priority),
                 vp_client_kind(x));
    vp_score_json_opts o = {.id = id, .model_name = s->model_name,
                            .return_steps = it->return_steps, .return_logits = it->return_logits,
                            .unknown_fields = it->unknown_fields,
                            .note = it->priority_lowered ? note : NULL};
    json_t *j = vp_response_score_json(r, &o, &err);
    if (!j) {
        VP_LOGE(x->id, "%s", err.message);
        return vp_error_json(&err);
    }
    return j;
}

enum MHD_Result vp_route_score_finish(vp_conn *x)
{
    vp_item *it = &x->items[0];
    const vp_error *e;
    if (!vp_sched_ticket_cancelled(it->ticket) && vp_sched_ticket_outcome(it->ticket, &e)) {
        x->queue_ms = vp_sched_ticket_queue_ms(it->ticket);
        if (vp_sched_ticket_expired(it->ticket))
            vp_metrics_event(&x->srv->metrics, VP_EV_EXPIRED);
        return vp_reply_error(x, e);
    }
    bool gone = false;
    json_t *j = item_json(x, it, x->id, &gone);
    if (gone) {
        x->client_gone = true;
        return MHD_NO; /* nobody to answer: close */
    }
    if (!j)
        return vp_reply_errorf(x, VP_ERR_NOMEM, "", "out of memory writing the response");
    /* an error object here is a result that could not be serialised (non-finite) */
    return vp_reply_json(x, json_object_get(j, "error") ? 500 : 200, j);
}

/* A batch without image URLs: its parsed items prepared and queued (reqs[i] taken where
 * parsed[i]), or answered at once when every item failed. */
static enum MHD_Result submit_items(vp_conn *x, vp_score_request *reqs, const bool *parsed)
{
    bool *skip = calloc(x->n_items, sizeof *skip);
    vp_error aerr;
    int admitted = skip ? 0 : vp_fail(&aerr, VP_ERR_NOMEM, "", "out of memory");
    for (size_t i = 0; skip && i < x->n_items; i++)
        skip[i] = !parsed[i];
    if (!admitted)
        admitted = admit_tiles(x, reqs, sizeof *reqs, skip, x->n_items, &aerr);
    free(skip);
    if (admitted) { /* the whole batch, as the queue would refuse it */
        for (size_t i = 0; i < x->n_items; i++)
            if (parsed[i])
                vp_request_free(&reqs[i]);
        return vp_reply_error(x, &aerr);
    }
    vp_job **jobs = calloc(x->n_items, sizeof *jobs);
    size_t *item_of_job = calloc(x->n_items, sizeof *item_of_job);
    size_t n_jobs = 0;
    for (size_t i = 0; i < x->n_items; i++) {
        char prefix[48];
        snprintf(prefix, sizeof prefix, "requests[%zu].", i);
        vp_item *it = &x->items[i];
        if (!parsed[i])
            continue;
        if (!jobs || !item_of_job) {
            vp_request_free(&reqs[i]);
            vp_fail(&it->err, VP_ERR_NOMEM, "", "out of memory");
            continue;
        }
        if (prepare(x, &reqs[i], prefix, it, &jobs[n_jobs], &it->err))
            continue;
        item_of_job[n_jobs++] = i;
    }
    enum MHD_Result ret = n_jobs == 0 ? vp_route_batch_finish(x) /* every item failed */
                                      : vp_conn_submit(x, jobs, n_jobs, item_of_job);
    free(jobs);
    free(item_of_job);
    return ret;
}

enum MHD_Result vp_route_batch(vp_conn *x)
{
    vp_server *s = x->srv;
    vp_error verr;
    if (vp_request_check_values(x->body, x->len, &s->limits, &verr)) {
        drop_body(x);
        return vp_reply_error(x, &verr);
    }
    json_error_t jerr;
    json_t *root = vp_json_loadb(x->body, x->len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    if (!root) {
        vp_json_fail(&verr, &jerr, x->body, x->len);
        drop_body(x);
        return vp_reply_error(x, &verr);
    }
    drop_body(x);
    const json_t *reqs_json = json_is_object(root) ? json_object_get(root, "requests") : NULL;
    enum MHD_Result ret;
    if (!json_is_object(root)) {
        ret = vp_reply_errorf(x, VP_ERR_BAD_REQUEST, "", "the body must be a JSON object {\"requests\": [...]}");
        goto out;
    }
    if (!json_is_array(reqs_json)) {
        ret = vp_reply_errorf(x, VP_ERR_BAD_REQUEST, "requests",
                              reqs_json ? "must be an array of score requests" : "missing required field");
        goto out;
    }
    /* the batch's own priority: that of every item that names none */
    vp_priority batch_priority = VP_PRIORITY_NORMAL;
    const json_t *bp = json_object_get(root, "priority");
    if (bp && !json_is_null(bp) &&
        vp_request_priority_json(bp, "priority", &batch_priority, &verr)) {
        ret = vp_reply_error(x, &verr);
        goto out;
    }
    /* a batch-level field that is not one (e.g. "aggregation" meant for every item) is
     * named in the answer's warnings rather than passing silently */
    static const char *const batch_fields[] = {"requests", "priority"};
    char unknown[VP_UNKNOWN_FIELDS_MAX] = "";
    vp_note_unknown_fields(root, batch_fields, 2, "", unknown, sizeof unknown);
    if (unknown[0] && !(x->batch_unknown = strdup(unknown))) {
        ret = vp_reply_errorf(x, VP_ERR_NOMEM, "", "out of memory");
        goto out;
    }
    size_t n = json_array_size(reqs_json);
    if (n == 0) {
        ret = vp_reply_errorf(x, VP_ERR_BAD_REQUEST, "requests", "must contain at least one request");
        goto out;
    }
    if (n > s->cfg->max_batch_requests) {
        ret = vp_reply_errorf(x, VP_ERR_TOO_LARGE, "requests",
                              "%zu requests, over the limit max_batch_requests=%zu", n,
                              s->cfg->max_batch_requests);
        goto out;
    }
    if (x->max_queued && n > x->max_queued) { /* could never fit: refused before any work */
        ret = vp_reply_errorf(x, VP_ERR_TOO_LARGE, "requests",
                              "%zu requests, over the %s's max_queued=%zu (%s)", n,
                              vp_client_kind(x), x->max_queued, x->key_name);
        goto out;
    }
    x->items = calloc(n, sizeof *x->items);
    vp_score_request *reqs = calloc(n, sizeof *reqs);
    bool *parsed = calloc(n, sizeof *parsed);
    if (!x->items || !reqs || !parsed) {
        free(reqs);
        free(parsed);
        ret = vp_reply_errorf(x, VP_ERR_NOMEM, "", "out of memory");
        goto out;
    }
    x->n_items = n;
    bool any_urls = false;
    for (size_t i = 0; i < n; i++) {
        char prefix[48];
        snprintf(prefix, sizeof prefix, "requests[%zu].", i);
        vp_item *it = &x->items[i];
        if (vp_request_from_json(json_array_get(reqs_json, i), prefix, &s->limits, &reqs[i],
                                 &it->err)) {
            prefix_param(&it->err, prefix);
            continue;
        }
        parsed[i] = true;
        if (!reqs[i].priority_given) {
            reqs[i].priority = batch_priority;
            reqs[i].priority_given = bp && !json_is_null(bp);
        }
        any_urls = any_urls || vp_request_has_urls(&reqs[i]);
    }
    if (any_urls) {
        /* every item waits for the fetch as it was parsed: none is decoded into tiles
         * (held outside the queue's bounds) while the URLs download */
        for (size_t i = 0; i < n; i++) {
            char prefix[48];
            snprintf(prefix, sizeof prefix, "requests[%zu].", i);
            if (parsed[i] && vp_fetch_stash(x, &reqs[i], prefix, i, n))
                vp_fail(&x->items[i].err, VP_ERR_NOMEM, "", "out of memory");
        }
        ret = vp_fetch_start(x);
    } else {
        ret = submit_items(x, reqs, parsed);
    }
    free(reqs);
    free(parsed);
out:
    json_decref(root);
    return ret;
}

enum MHD_Result vp_route_batch_fetched(vp_conn *x)
{
    bool *skip = calloc(x->n_fetch ? x->n_fetch : 1, sizeof *skip);
    vp_error aerr;
    int admitted = skip ? 0 : vp_fail(&aerr, VP_ERR_NOMEM, "", "out of memory");
    for (size_t i = 0; skip && i < x->n_fetch; i++)
        skip[i] = x->fetch[i].rc != 0;
    if (!admitted)
        admitted = admit_tiles(x, &x->fetch[0].req, sizeof x->fetch[0], skip, x->n_fetch, &aerr);
    free(skip);
    if (admitted) { /* the whole batch, as the queue would refuse it */
        for (size_t i = 0; i < x->n_fetch; i++) {
            x->fetch[i].live = false;
            vp_request_free(&x->fetch[i].req);
        }
        return vp_reply_error(x, &aerr);
    }
    vp_job **jobs = calloc(x->n_fetch ? x->n_fetch : 1, sizeof *jobs);
    size_t *item_of_job = calloc(x->n_fetch ? x->n_fetch : 1, sizeof *item_of_job);
    size_t n_jobs = 0;
    for (size_t i = 0; i < x->n_fetch; i++) {
        vp_fetch_req *r = &x->fetch[i];
        vp_item *it = &x->items[r->item];
        if (!jobs || !item_of_job) {
            r->live = false;
            vp_request_free(&r->req);
            vp_fail(&it->err, VP_ERR_NOMEM, "", "out of memory");
            continue;
        }
        if (take_fetched(x, r, it, &jobs[n_jobs], &it->err))
            continue;
        item_of_job[n_jobs++] = r->item;
    }
    enum MHD_Result ret = n_jobs == 0 ? vp_route_batch_finish(x) /* every item failed */
                                      : vp_conn_submit(x, jobs, n_jobs, item_of_job);
    free(jobs);
    free(item_of_job);
    return ret;
}

enum MHD_Result vp_route_batch_finish(vp_conn *x)
{
    json_t *results = json_array();
    if (!results)
        return vp_reply_errorf(x, VP_ERR_NOMEM, "", "out of memory");
    for (size_t i = 0; i < x->n_items; i++) {
        bool gone = false;
        char id[VP_REQID_LEN + 24]; /* each item its own id: the batch's, then its index */
        snprintf(id, sizeof id, "%s-%zu", x->id, i);
        json_t *j = item_json(x, &x->items[i], id, &gone);
        if (gone) {
            json_decref(results);
            x->client_gone = true;
            return MHD_NO;
        }
        if (!j || json_array_append_new(results, j)) {
            json_decref(results);
            return vp_reply_errorf(x, VP_ERR_NOMEM, "", "out of memory writing the response");
        }
    }
    json_t *body = json_pack("{s:s, s:o}", "id", x->id, "results", results);
    if (body && x->batch_unknown) {
        char w[VP_UNKNOWN_FIELDS_MAX + 32];
        snprintf(w, sizeof w, "unknown fields ignored: %s", x->batch_unknown);
        json_object_set_new(body, "warnings", json_pack("[s]", w));
    }
    return vp_reply_json(x, 200, body);
}

/* The tokenize answer of a prepared request. */
static enum MHD_Result tokenize_reply(vp_conn *x, vp_job *job, const vp_item *item)
{
    vp_server *s = x->srv;
    vp_error err;
    vp_engine *e = atomic_load(&s->engine);
    json_t *j = vp_response_tokenize_json(x->id, s->model_name, vp_engine_tokenizer(e), job, &err);
    vp_job_free(job);
    if (!j)
        return vp_reply_error(x, &err);
    if (item->unknown_fields[0]) { /* as a score answer says them */
        char w[VP_UNKNOWN_FIELDS_MAX + 32];
        snprintf(w, sizeof w, "unknown fields ignored: %s", item->unknown_fields);
        json_object_set_new(j, "warnings", json_pack("[s]", w));
    }
    return vp_reply_json(x, 200, j);
}

enum MHD_Result vp_route_tokenize(vp_conn *x)
{
    vp_item item;
    vp_job *job;
    enum MHD_Result answer;
    if (!single_job(x, false, &item, &job, &answer))
        return answer;
    return tokenize_reply(x, job, &item);
}

enum MHD_Result vp_route_tokenize_fetched(vp_conn *x)
{
    vp_item item;
    vp_job *job;
    vp_error err;
    if (take_fetched(x, &x->fetch[0], &item, &job, &err))
        return vp_reply_error(x, &err);
    return tokenize_reply(x, job, &item);
}
