/* Errors carried up to the caller: a kind (mapped to an HTTP status by the
 * server), the request field it concerns, and a message a person can act on.
 * Library code never exits; it fills a vp_error and returns -1. */
#ifndef VP_ERR_H
#define VP_ERR_H

#include <stddef.h>

typedef enum {
    VP_ERR_NONE = 0,
    VP_ERR_BAD_REQUEST,     /* 400: malformed or invalid input */
    VP_ERR_UNAUTHORIZED,    /* 401 */
    VP_ERR_NOT_FOUND,       /* 404 */
    VP_ERR_TOO_LARGE,       /* 413: a configured limit was exceeded */
    VP_ERR_UNSUPPORTED,     /* 415: unsupported media (image format) */
    VP_ERR_UNDECODABLE,     /* 422: bytes of a supported format that do not decode */
    VP_ERR_BUSY,            /* 429: queue full */
    VP_ERR_UNAVAILABLE,     /* 503: not ready or shutting down */
    VP_ERR_IO,              /* file could not be read or written */
    VP_ERR_MODEL,           /* broken or unsupported checkpoint */
    VP_ERR_NOMEM,           /* allocation failed */
    VP_ERR_INTERNAL,        /* 500: a bug */
    VP_ERR_DEVICE,          /* 503: the compute device failed for good (a lost GPU context):
                               nothing more can run in this process */
    VP_ERR_HEAD_TOO_LARGE   /* 431: the request line and headers over max_header_bytes */
} vp_err_kind;

typedef struct vp_error {
    vp_err_kind kind;
    char param[128];   /* request field path, e.g. "responses[2]"; may be empty */
    char message[512];
} vp_error;

/* Fill err (if non-NULL) and return -1, so callers can `return vp_fail(...)`. */
int vp_fail(vp_error *err, vp_err_kind kind, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Prefix the message with context ("loading shard x: ..."); keeps kind and param. */
void vp_error_prefix(vp_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* HTTP status for an error kind, and the error "type" string of API.md. */
int vp_err_http_status(vp_err_kind kind);
const char *vp_err_type(vp_err_kind kind);

#endif
