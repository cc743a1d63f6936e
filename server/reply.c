/* Answers: the response object is created, headers added, then queued. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/util/log.h"
#include "proto/response.h"
#include "server/internal.h"

static void add_ms_header(struct MHD_Response *r, const char *name, double ms)
{
    if (ms < 0)
        return;
    char v[32];
    snprintf(v, sizeof v, "%.3f", ms);
    MHD_add_response_header(r, name, v);
}

/* body is freed by libmicrohttpd (mode MUST_FREE), or static (PERSISTENT). */
static enum MHD_Result reply_mem(vp_conn *x, int status, char *body, size_t len,
                                 const char *content_type, enum MHD_ResponseMemoryMode mode)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, mode);
    if (!r) {
        if (mode == MHD_RESPMEM_MUST_FREE)
            free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    MHD_add_response_header(r, "x-request-id", x->id);
    if (x->client_id[0])
        MHD_add_response_header(r, "x-client-request-id", x->client_id);
    add_ms_header(r, "x-queue-time", x->queue_ms);
    add_ms_header(r, "x-inference-time", x->inference_ms);
    if (status == 429 || status == 503) {
        char v[16];
        snprintf(v, sizeof v, "%d", x->srv->cfg->retry_after_s);
        MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, v);
    }
    if (status == 401)
        MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    if (status == 405 && x->allow)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, x->allow);
    if (atomic_load(&x->srv->draining) || x->close_after)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
    vp_conn_answering(x);
    enum MHD_Result rc = MHD_queue_response(x->mhd, (unsigned)status, r);
    MHD_destroy_response(r);
    if (rc == MHD_YES) {
        x->status = status;
        x->phase = PHASE_ANSWERED;
    }
    return rc;
}

enum MHD_Result vp_reply(vp_conn *x, int status, char *body, size_t len,
                         const char *content_type)
{
    static char empty[] = "";
    return body ? reply_mem(x, status, body, len, content_type, MHD_RESPMEM_MUST_FREE)
                : reply_mem(x, status, empty, 0, content_type, MHD_RESPMEM_PERSISTENT);
}

enum MHD_Result vp_reply_json(vp_conn *x, int status, json_t *v)
{
    vp_error err;
    size_t len;
    char *s = vp_response_dump(v, &len, &err);
    if (!s)
        return vp_reply_error(x, &err);
    return vp_reply(x, status, s, len, "application/json");
}

enum MHD_Result vp_reply_error(vp_conn *x, const vp_error *err)
{
    int status = vp_err_http_status(err->kind);
    if (status == 200) /* an error without a kind is a bug of ours */
        status = 500;
    if (status >= 500 && err->kind != VP_ERR_UNAVAILABLE && err->kind != VP_ERR_DEVICE)
        VP_LOGE(x->id, "%s %s: %s (%s)", x->method, x->path, err->message,
                vp_err_type(err->kind));
    size_t len;
    char *s = vp_response_error_text(err, &len);
    if (!s) { /* out of memory for the body itself: a fixed one, allocating nothing */
        static char oom[] = "{\"error\":{\"type\":\"out_of_memory\",\"message\":\"out of "
                            "memory writing the answer\",\"param\":null}}";
        return reply_mem(x, 500, oom, sizeof oom - 1, "application/json", MHD_RESPMEM_PERSISTENT);
    }
    return vp_reply(x, status, s, len, "application/json");
}

enum MHD_Result vp_reply_method_not_allowed(vp_conn *x, const char *allow)
{
    x->allow = allow;
    char msg[200];
    snprintf(msg, sizeof msg, "method %s is not allowed on %s (allowed: %s)", x->method, x->path,
             allow);
    json_t *e = json_pack("{s:{s:s, s:s, s:n}}", "error", "type", "method_not_allowed", "message",
                          msg, "param");
    return vp_reply_json(x, 405, e);
}

enum MHD_Result vp_reply_not_implemented(vp_conn *x, const char *coding, bool repeated)
{
    char shown[64]; /* the client's bytes: printable ASCII only, so the JSON dumps */
    size_t n = 0;
    for (; coding[n] && n + 1 < sizeof shown; n++)
        shown[n] = coding[n] >= ' ' && coding[n] < 0x7f ? coding[n] : '?';
    shown[n] = 0;
    char msg[200];
    if (repeated)
        snprintf(msg, sizeof msg, "Transfer-Encoding is given more than once (chunked twice "
                 "would decode the body twice): send one \"Transfer-Encoding: chunked\" or "
                 "Content-Length");
    else
        snprintf(msg, sizeof msg, "Transfer-Encoding \"%s\" is not supported: send the body "
                 "with Content-Length or \"Transfer-Encoding: chunked\"", shown);
    json_t *e = json_pack("{s:{s:s, s:s, s:n}}", "error", "type", "not_implemented", "message",
                          msg, "param");
    return vp_reply_json(x, 501, e);
}

enum MHD_Result vp_reply_errorf(vp_conn *x, vp_err_kind kind, const char *param,
                                const char *fmt, ...)
{
    vp_error err;
    err.kind = kind;
    snprintf(err.param, sizeof err.param, "%s", param ? param : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err.message, sizeof err.message, fmt, ap);
    va_end(ap);
    return vp_reply_error(x, &err);
}
