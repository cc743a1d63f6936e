#include "engine/util/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int vp_fail(vp_error *err, vp_err_kind kind, const char *param, const char *fmt, ...)
{
    if (!err)
        return -1;
    err->kind = kind;
    snprintf(err->param, sizeof err->param, "%s", param ? param : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    return -1;
}

void vp_error_prefix(vp_error *err, const char *fmt, ...)
{
    if (!err)
        return;
    char prefix[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    char old[sizeof err->message];
    memcpy(old, err->message, sizeof old);
    size_t n = strlen(prefix);
    if (n + 2 >= sizeof err->message)
        n = sizeof err->message - 3;
    memcpy(err->message, prefix, n);
    memcpy(err->message + n, ": ", 2);
    size_t room = sizeof err->message - n - 2;
    size_t ol = strnlen(old, room - 1);
    memcpy(err->message + n + 2, old, ol);
    err->message[n + 2 + ol] = 0;
}

int vp_err_http_status(vp_err_kind kind)
{
    switch (kind) {
    case VP_ERR_NONE: return 200;
    case VP_ERR_BAD_REQUEST: return 400;
    case VP_ERR_UNAUTHORIZED: return 401;
    case VP_ERR_NOT_FOUND: return 404;
    case VP_ERR_TOO_LARGE: return 413;
    case VP_ERR_UNSUPPORTED: return 415;
    case VP_ERR_UNDECODABLE: return 422;
    case VP_ERR_BUSY: return 429;
    case VP_ERR_UNAVAILABLE:
    case VP_ERR_DEVICE: return 503;
    case VP_ERR_HEAD_TOO_LARGE: return 431;
    case VP_ERR_IO:
    case VP_ERR_MODEL:
    case VP_ERR_NOMEM:
    case VP_ERR_INTERNAL: return 500;
    }
    return 500;
}

const char *vp_err_type(vp_err_kind kind)
{
    switch (kind) {
    case VP_ERR_NONE: return "ok";
    case VP_ERR_BAD_REQUEST: return "invalid_request";
    case VP_ERR_UNAUTHORIZED: return "unauthorized";
    case VP_ERR_NOT_FOUND: return "not_found";
    case VP_ERR_TOO_LARGE: return "limit_exceeded";
    case VP_ERR_UNSUPPORTED: return "unsupported_media_type";
    case VP_ERR_UNDECODABLE: return "undecodable_image";
    case VP_ERR_BUSY: return "queue_full";
    case VP_ERR_UNAVAILABLE:
    case VP_ERR_DEVICE: return "unavailable";
    case VP_ERR_HEAD_TOO_LARGE: return "header_too_large";
    case VP_ERR_IO: return "io_error";
    case VP_ERR_MODEL: return "model_error";
    case VP_ERR_NOMEM: return "out_of_memory";
    case VP_ERR_INTERNAL: return "internal_error";
    }
    return "internal_error";
}
