/* The libmicrohttpd daemon: routing, authentication, body limits, suspend/resume around
 * the scheduler, the per-request log line, start, drain and stop. */
#include <arpa/inet.h>
#include <stdarg.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine/util/log.h"
#include "proto/openapi.h"
#include "server/internal.h"

const char vp_server_warmup_request[] =
    "{\"question\": \"What is 12 + 30?\", \"responses\": [\"12 + 30 = 42\\n\\nThe answer is 42\","
    " [\"12 + 30 = 40\", \"The answer is 40\"]]}";

/* Bodies past the limit are read and dropped (MHD cannot answer mid-body) up to this
 * much more, so the client gets its 413; beyond it the connection is closed. */
#define DISCARD_ALLOWANCE (16u << 20)

static const vp_route routes[] = {
    {"/health", "GET", false, false, vp_route_health, NULL, NULL},
    {"/ready", "GET", false, false, vp_route_ready, NULL, NULL},
    {"/metrics", "GET", true, false, vp_route_metrics, NULL, NULL},
    {"/v1/models", "GET", true, false, vp_route_models, NULL, NULL},
    {"/v1/score", "POST", true, true, vp_route_score, vp_route_score_finish,
     vp_route_score_fetched},
    {"/score", "POST", true, true, vp_route_score, vp_route_score_finish, vp_route_score_fetched},
    {"/v1/score/batch", "POST", true, true, vp_route_batch, vp_route_batch_finish,
     vp_route_batch_fetched},
    {"/v1/tokenize", "POST", true, true, vp_route_tokenize, NULL, vp_route_tokenize_fetched},
    {"/openapi.json", "GET", false, false, vp_route_openapi, NULL, NULL},
};

static const vp_route *find_route(const char *path)
{
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++)
        if (!strcmp(routes[i].path, path))
            return &routes[i];
    return NULL;
}

/* Whether x's client certificate is one of the client CAs' (when they are set): 0 and its
 * common name as x's client name when no API key named it, else -1 and err. keys_lock
 * held. */
static int client_certificate_ok(vp_conn *x, vp_error *err)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(x->mhd, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    char cn[VP_CLIENT_NAME_MAX + 1];
    if (vp_client_cas_check(x->srv->client_cas, ci ? (gnutls_session_t)ci->tls_session : NULL,
                            cn, sizeof cn, err)) {
        x->key_name[0] = 0; /* refused: counted under no name, as a wrong key */
        return -1;
    }
    if (!x->key_name[0]) { /* named by its certificate: that name's grants, if any */
        snprintf(x->key_name, sizeof x->key_name, "cert:%s", cn);
        vp_api_key_grant g;
        if (vp_api_keys_cert_grant(x->srv->keys, x->key_name, &g)) {
            x->max_priority = g.max_priority;
            x->max_queued = g.max_queued;
            x->weight = g.weight;
        }
    }
    return 0;
}

/* Whether x may use its route: its Authorization header holds a key of the set (the key's
 * name kept for its log line), when keys are set, and its client certificate verifies,
 * when client CAs are set. 0, or -1 and err saying why. */
static int authorize(vp_conn *x, vp_error *err)
{
    vp_server *s = x->srv;
    pthread_rwlock_rdlock(&s->keys_lock);
    const vp_api_keys *keys = s->keys;
    bool ok = vp_api_keys_count(keys) == 0; /* a file of certificate grants asks for no key */
    const char *h = ok ? NULL : MHD_lookup_connection_value(x->mhd, MHD_HEADER_KIND,
                                                             MHD_HTTP_HEADER_AUTHORIZATION);
    if (h && !strncasecmp(h, "Bearer ", 7)) {
        h += 7;
        while (*h == ' ' || *h == '\t')
            h++;
        size_t n = strlen(h); /* a header value's trailing whitespace is not part of it */
        while (n && (h[n - 1] == ' ' || h[n - 1] == '\t'))
            n--;
        vp_api_key_grant g;
        if (vp_api_keys_match(keys, h, n, &g)) {
            memcpy(x->key_name, g.name, sizeof x->key_name);
            x->max_priority = g.max_priority;
            x->max_queued = g.max_queued;
            x->weight = g.weight;
            ok = true;
        }
    }
    int rc = 0;
    if (!ok)
        rc = vp_fail(err, VP_ERR_UNAUTHORIZED, "",
                     "missing or wrong API key: send \"Authorization: Bearer <key>\"");
    else if (s->client_cas)
        rc = client_certificate_ok(x, err);
    pthread_rwlock_unlock(&s->keys_lock);
    return rc;
}

/* Copies src into dst (cap bytes), replacing bytes outside printable ASCII by '?'. */
static void printable_copy(char *dst, size_t cap, const char *src)
{
    size_t n = 0;
    for (const char *p = src; *p && n + 1 < cap; p++)
        dst[n++] = (*p > ' ' && *p < 0x7f) ? *p : '?';
    dst[n] = 0;
}

static int hex_value(char c)
{
    return c >= '0' && c <= '9' ? c - '0'
         : c >= 'a' && c <= 'f' ? c - 'a' + 10
         : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* libmicrohttpd's URL decoding (%XX), except that %00 stays as it is: decoded, it would
 * end the path as a C string, and "/metrics%00.txt" would be routed as "/metrics" (a
 * proxy rule for the exact path bypassed). */
static size_t unescape_keep_nul(void *cls, struct MHD_Connection *c, char *s)
{
    (void)cls;
    (void)c;
    char *w = s;
    for (const char *r = s; *r;) {
        int hi = r[0] == '%' ? hex_value(r[1]) : -1, lo = hi >= 0 ? hex_value(r[2]) : -1;
        if (lo >= 0 && (hi | lo)) {
            *w++ = (char)(hi * 16 + lo);
            r += 3;
        } else {
            *w++ = *r++;
        }
    }
    *w = 0;
    return (size_t)(w - s);
}

static vp_conn *conn_new(vp_server *s, struct MHD_Connection *c, const char *url,
                         const char *method)
{
    vp_conn *x = calloc(1, sizeof *x);
    if (!x)
        return NULL;
    x->srv = s;
    x->mhd = c;
    x->fd = -1;
    x->t_start = vp_sched_now_ms();
    x->queue_ms = x->inference_ms = x->fetch_ms = -1;
    x->max_priority = VP_PRIORITY_HIGH; /* until its API key says otherwise */
    x->weight = 1;
    vp_reqid_new(x->id);
    /* bounded, printable copies: they reach the log and JSON error bodies */
    printable_copy(x->method, sizeof x->method, method);
    printable_copy(x->path, sizeof x->path, url);
    pthread_mutex_init(&x->mu, NULL);
    atomic_fetch_add(&s->inflight, 1);
    return x;
}

static void conn_free(vp_conn *x)
{
    if (x->quota_held) /* given back by on_done when its jobs finished; else here */
        vp_key_quota_give(x->srv->quota, x->key_name, x->quota_held);
    if (x->answering)
        atomic_fetch_sub(&x->srv->answering, 1);
    for (size_t i = 0; i < x->n_items; i++)
        vp_sched_ticket_release(x->items[i].ticket);
    free(x->items);
    free(x->batch_unknown);
    vp_conn_body_free(x);
    vp_fetch_free(x);
    pthread_mutex_destroy(&x->mu);
    atomic_fetch_sub(&x->srv->inflight, 1);
    free(x);
}

/* The headers that say where a body ends. */
typedef struct framing {
    const char *length;  /* the first Content-Length */
    bool conflict;       /* another Content-Length with another value */
    bool chunked;        /* a Transfer-Encoding header */
    const char *coding;  /* a Transfer-Encoding other than one plain "chunked" */
    const char *bad_name; /* the first header name that is not an RFC 9110 token */
} framing;

/* RFC 9110 5.1: a field name is a token (tchar: letters, digits, !#$%&'*+-.^_`|~). */
static bool header_name_ok(const char *k)
{
    if (!*k)
        return false;
    for (; *k; k++)
        if (!((*k >= 'a' && *k <= 'z') || (*k >= 'A' && *k <= 'Z') || (*k >= '0' && *k <= '9') ||
              strchr("!#$%&'*+-.^_`|~", *k)))
            return false;
    return true;
}

/* libmicrohttpd reads a chunked body only when the first Transfer-Encoding is exactly
 * "chunked" (any case, trimmed); for any other value it waits for a body it never
 * delimits, and the client hangs until the idle timeout closes it without an answer. */
static bool plain_chunked(const char *v)
{
    while (*v == ' ' || *v == '\t')
        v++;
    size_t n = strlen(v);
    while (n && (v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    return n == 7 && !strncasecmp(v, "chunked", 7);
}

static enum MHD_Result note_framing(void *cls, enum MHD_ValueKind kind, const char *key,
                                    const char *value)
{
    framing *f = cls;
    (void)kind;
    if (!f->bad_name && !header_name_ok(key))
        f->bad_name = key;
    if (!strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH)) {
        if (f->length && strcmp(f->length, value ? value : ""))
            f->conflict = true;
        if (!f->length)
            f->length = value ? value : "";
    } else if (!strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING)) {
        if (!f->coding && (f->chunked || !plain_chunked(value ? value : "")))
            f->coding = value ? value : ""; /* a second header counts as another coding */
        f->chunked = true;
    }
    return MHD_YES;
}

/* An error known from the head. Queued at once, libmicrohttpd closes the connection
 * with the body unread: the kernel resets it under a client still sending, and a client
 * that writes its whole body before reading (Python's http.client, urllib) gets a
 * broken pipe instead of the answer. So a body up to DISCARD_ALLOWANCE is read and
 * dropped first, and the connection stays open for the next request. Answered at once
 * when the client waits for "100 Continue" (it sends no body) or declares a larger one. */
static bool expects_continue(vp_conn *x)
{
    const char *expect = MHD_lookup_connection_value(x->mhd, MHD_HEADER_KIND,
                                                     MHD_HTTP_HEADER_EXPECT);
    return expect && !strcasecmp(expect, "100-continue");
}

static bool answer_after_body(vp_conn *x)
{
    if (expects_continue(x))
        return false;
    const char *cl = MHD_lookup_connection_value(x->mhd, MHD_HEADER_KIND,
                                                 MHD_HTTP_HEADER_CONTENT_LENGTH);
    return !cl || strtoull(cl, NULL, 10) <= DISCARD_ALLOWANCE;
}

static enum MHD_Result early_error(vp_conn *x, vp_err_kind kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static enum MHD_Result early_error(vp_conn *x, vp_err_kind kind, const char *fmt, ...)
{
    vp_error *e = &x->early_err;
    e->kind = kind;
    e->param[0] = 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    if (answer_after_body(x)) {
        x->early = true;
        x->phase = PHASE_BODY;
        return MHD_YES;
    }
    return kind == VP_ERR_NONE ? vp_reply_method_not_allowed(x, x->allow) : vp_reply_error(x, e);
}

/* libmicrohttpd's memory per connection is max_header_bytes plus this: room for its own
 * records and for the answer's header lines, which it cannot send without (it closes the
 * connection unanswered when a head leaves less than ~650 bytes). */
#define VP_HEAD_RESERVE 4096u
/* what libmicrohttpd keeps per header, cookie and query argument besides the text */
#define HEAD_RECORD_BYTES 64u

static enum MHD_Result sum_value(void *cls, enum MHD_ValueKind kind, const char *key,
                                 const char *value)
{
    (void)kind;
    *(size_t *)cls += strlen(key) + (value ? strlen(value) : 0) + 4 + HEAD_RECORD_BYTES;
    return MHD_YES;
}

/* Bytes libmicrohttpd holds for the request line and headers, about: their text, a record
 * for each header, cookie and argument (the Cookie header's text is held twice). The URL
 * counts decoded, as the handler gets it. */
static size_t head_bytes(struct MHD_Connection *c, const char *method, const char *url,
                         const char *version)
{
    size_t n = strlen(method) + strlen(url) + strlen(version) + 4;
    MHD_get_connection_values(c, MHD_HEADER_KIND | MHD_COOKIE_KIND | MHD_GET_ARGUMENT_KIND,
                              sum_value, &n);
    return n;
}

size_t vp_server_connection_memory(const vp_config *cfg)
{
    return cfg->max_header_bytes + VP_HEAD_RESERVE;
}

/* Reserves n more body bytes for x against max_bodies_bytes: 0, or -1 (nothing taken)
 * when they do not fit beside the bodies other connections hold. */
static int body_reserve(vp_conn *x, size_t n)
{
    vp_server *s = x->srv;
    size_t held = atomic_load(&s->body_bytes);
    do { /* never over the bound, even for a moment: another's reservation is not refused */
        if (held + n > s->cfg->max_bodies_bytes)
            return -1;
    } while (!atomic_compare_exchange_weak(&s->body_bytes, &held, held + n));
    x->body_reserved += n;
    return 0;
}

void vp_conn_body_free(vp_conn *x)
{
    free(x->body);
    x->body = NULL;
    x->len = x->cap = 0;
    if (x->body_reserved)
        atomic_fetch_sub(&x->srv->body_bytes, x->body_reserved);
    x->body_reserved = 0;
}

static enum MHD_Result on_first_call(vp_conn *x, size_t head)
{
    vp_server *s = x->srv;
    /* the client's own id: X-Client-Request-Id, else (missing or not an id) X-Request-Id */
    if (!vp_reqid_client_take(MHD_lookup_connection_value(x->mhd, MHD_HEADER_KIND,
                                                          "X-Client-Request-Id"), x->client_id))
        vp_reqid_client_take(MHD_lookup_connection_value(x->mhd, MHD_HEADER_KIND, "X-Request-Id"),
                             x->client_id);
    if (head > s->cfg->max_header_bytes) { /* answered now and closed, the body unread */
        x->close_after = true;
        return vp_reply_errorf(x, VP_ERR_HEAD_TOO_LARGE, "",
                               "the request line and headers take about %zu bytes, over the "
                               "limit max_header_bytes=%zu", head, s->cfg->max_header_bytes);
    }
    /* two Content-Lengths that differ, or one with Transfer-Encoding: a proxy in front may
     * read the body's end otherwise than libmicrohttpd (request smuggling). 400 and the
     * connection closed, as RFC 9112 (6.3) asks. */
    framing fr = {NULL, false, false, NULL, NULL};
    MHD_get_connection_values(x->mhd, MHD_HEADER_KIND, note_framing, &fr);
    if (fr.bad_name) {
        /* libmicrohttpd keeps "Content-Length : 5" as a header named "Content-Length ",
         * which the framing checks would not see while a proxy may read it as the length
         * (request smuggling): RFC 9112 5.1 asks for 400, and the connection is closed */
        char shown[41]; /* printable ASCII (spaces too) only: the message must dump as JSON */
        size_t n = 0;
        for (; fr.bad_name[n] && n + 1 < sizeof shown; n++)
            shown[n] = fr.bad_name[n] >= ' ' && fr.bad_name[n] < 0x7f ? fr.bad_name[n] : '?';
        shown[n] = 0;
        x->close_after = true;
        return vp_reply_errorf(x, VP_ERR_BAD_REQUEST, "",
                               "header name \"%s\" is not a token (no spaces or separators, "
                               "none before the colon)", shown);
    }
    if (fr.coding && !fr.length) { /* RFC 9112 6.1: 501 for a coding not understood */
        x->close_after = true;
        return vp_reply_not_implemented(x, fr.coding, plain_chunked(fr.coding));
    }
    if (fr.conflict || (fr.length && fr.chunked)) {
        x->close_after = true;
        return vp_reply_errorf(x, VP_ERR_BAD_REQUEST, "",
                               fr.conflict ? "the request has Content-Length headers that disagree"
                                           : "the request has both Content-Length and "
                                             "Transfer-Encoding headers");
    }
    x->route = find_route(x->path);
    if (!x->route)
        return early_error(x, VP_ERR_NOT_FOUND, "no such endpoint: %s %s", x->method, x->path);
    bool is_get = !strcmp(x->route->method, "GET");
    bool method_ok = !strcmp(x->method, x->route->method) || (is_get && !strcmp(x->method, "HEAD"));
    if (!method_ok) {
        x->allow = is_get ? "GET, HEAD" : "POST";
        return early_error(x, VP_ERR_NONE, "%s", "");
    }
    vp_error auth_err;
    if (x->route->needs_auth && authorize(x, &auth_err))
        return early_error(x, auth_err.kind, "%s", auth_err.message);
    /* a compressed body would reach the JSON parser as bytes: "malformed JSON near '\u001F'"
     * says nothing of the cause (RFC 9110 15.5.16: 415 for a content coding not supported) */
    const char *ce = MHD_lookup_connection_value(x->mhd, MHD_HEADER_KIND,
                                                 MHD_HTTP_HEADER_CONTENT_ENCODING);
    if (ce && *ce && strcasecmp(ce, "identity")) {
        char shown[41]; /* printable ASCII only: the message must dump as JSON */
        size_t n = 0;
        for (; ce[n] && n + 1 < sizeof shown; n++)
            shown[n] = ce[n] >= ' ' && ce[n] < 0x7f ? ce[n] : '?';
        shown[n] = 0;
        return early_error(x, VP_ERR_UNSUPPORTED,
                           "Content-Encoding \"%s\" is not supported: send the body uncompressed",
                           shown);
    }
    if (is_get) { /* answered on the next call: an answer queued now would close the connection */
        x->phase = PHASE_BODY;
        return MHD_YES;
    }
    if (atomic_load(&s->draining)) {
        vp_metrics_event(&s->metrics, VP_EV_DRAINING);
        return early_error(x, VP_ERR_UNAVAILABLE,
                           "the server is shutting down and accepts no new requests");
    }
    if (x->route->needs_engine && !atomic_load(&s->ready))
        return early_error(x, VP_ERR_UNAVAILABLE,
                           "the model is still loading; retry when GET /ready answers 200");
    const char *failed = x->route->needs_engine ? vp_engine_device_failure(atomic_load(&s->engine))
                                                : NULL;
    if (failed) /* no pass can succeed in this process any more */
        return early_error(x, VP_ERR_DEVICE, "%s", failed);
    if (!fr.length && !fr.chunked) {
        /* no framing: HTTP/1.1 says the request has no body, and whatever the client sends
         * next would be read as another request; say what is missing and close */
        x->close_after = true;
        return vp_reply_errorf(x, VP_ERR_BAD_REQUEST, "",
                               "a %s needs a body: send Content-Length (or Transfer-Encoding: "
                               "chunked) with the JSON", x->method);
    }
    const char *cl = fr.length;
    if (cl) {
        char *end;
        unsigned long long declared = strtoull(cl, &end, 10);
        if (declared > s->cfg->max_body_bytes) {
            /* read and dropped, then the 413 (answer_after_body says why), unless the
             * client waits for "100 Continue" or the excess is past DISCARD_ALLOWANCE */
            if (declared - s->cfg->max_body_bytes <= DISCARD_ALLOWANCE && !expects_continue(x)) {
                x->too_large = true;
                x->phase = PHASE_BODY;
                return MHD_YES;
            }
            return vp_reply_errorf(x, VP_ERR_TOO_LARGE, "",
                                   "request body of %llu bytes is over the limit max_body_bytes=%zu",
                                   declared, s->cfg->max_body_bytes);
        }
        /* every connection's bodies together (max_bodies_bytes): a body larger than all
         * of it gets 413 (no retry could fit it); one that does not fit beside the bodies
         * held now, 429 before any of it is read. Bytes are reserved as its buffer grows,
         * not by the declaration: a client that declares and sends nothing holds little */
        if (declared > s->cfg->max_bodies_bytes)
            return vp_reply_errorf(x, VP_ERR_TOO_LARGE, "",
                                   "request body of %llu bytes is over the limit "
                                   "max_bodies_bytes=%zu (every connection's bodies together)",
                                   declared, s->cfg->max_bodies_bytes);
        size_t first = declared < (1u << 20) ? (size_t)declared : (1u << 20);
        if (atomic_load(&s->body_bytes) + declared > s->cfg->max_bodies_bytes ||
            (first && body_reserve(x, first))) {
            vp_metrics_event(&s->metrics, VP_EV_BODIES_BUSY);
            return vp_reply_errorf(x, VP_ERR_BUSY, "",
                                   "the server holds %zu bytes of request bodies, and this one "
                                   "(%llu bytes) does not fit in max_bodies_bytes=%zu beside "
                                   "them: retry after the Retry-After delay",
                                   atomic_load(&s->body_bytes), declared,
                                   s->cfg->max_bodies_bytes);
        }
        x->declared = (size_t)declared;
        /* the buffer sized from the declaration, but not beyond 1 MiB up front: a client
         * that declares a large body and sends nothing must not hold that memory */
        if (first) {
            x->body = malloc(first + 1);
            if (!x->body)
                return vp_reply_errorf(x, VP_ERR_NOMEM, "", "out of memory for the request body");
            x->cap = first + 1;
        }
    }
    x->phase = PHASE_BODY;
    return MHD_YES;
}

static int body_append(vp_conn *x, const char *data, size_t n)
{
    size_t max = x->srv->cfg->max_body_bytes;
    if (x->too_large || x->len + n > max) {
        if (!x->too_large) { /* what came is dropped too: its buffer need not stay */
            x->discarded = x->len;
            x->len = 0;
            vp_conn_body_free(x);
        }
        x->too_large = true;
        x->discarded += n;
        return x->discarded > DISCARD_ALLOWANCE + max ? -1 : 0;
    }
    if (x->len + n + 1 > x->cap) {
        size_t nc = x->cap ? x->cap * 2 : 16384;
        while (nc < x->len + n + 1)
            nc *= 2;
        if (nc > max + 1)
            nc = max + 1;
        if (x->declared >= x->len + n && nc > x->declared + 1)
            nc = x->declared + 1; /* its declared length (and the NUL): no more is coming */
        /* the buffer's bytes reserved as it grows (its NUL aside); when the doubled size does
         * not fit, the size the bytes need */
        if (nc - 1 > x->body_reserved && body_reserve(x, nc - 1 - x->body_reserved)) {
            nc = x->len + n + 1;
            if (nc - 1 > x->body_reserved && body_reserve(x, nc - 1 - x->body_reserved))
                return -2;
        }
        char *nb = realloc(x->body, nc);
        if (!nb)
            return -1;
        x->body = nb;
        x->cap = nc;
    }
    memcpy(x->body + x->len, data, n);
    x->len += n;
    return 0;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    vp_server *s = cls;
    vp_conn *x = *con_cls;
    (void)version;
    if (!x) {
        vp_heads_mark(s, c, false); /* the request head is complete */
        x = conn_new(s, c, url, method);
        if (!x) { /* nothing to answer with: the connection closes, said here */
            VP_LOGE("-", "out of memory for a new request: its connection is closed unanswered");
            return MHD_NO;
        }
        *con_cls = x;
        return on_first_call(x, head_bytes(c, method, url, version));
    }
    switch (x->phase) {
    case PHASE_BODY:
        if (*upload_data_size) {
            /* a body trickling in past the limit holds a connection slot: close it */
            double took_s = (vp_sched_now_ms() - x->t_start) / 1000.0;
            if (took_s > s->cfg->body_timeout_s) {
                VP_LOGW(x->id, "closing: the body is still arriving after %.0f s (body_timeout_s=%d)",
                        took_s, s->cfg->body_timeout_s);
                return MHD_NO;
            }
            /* dropped when the answer is already known, or for a GET (no GET reads a body:
             * kept, it let clients without the key hold max_body_bytes per connection) */
            if (x->early || !strcmp(x->route->method, "GET")) {
                x->discarded += *upload_data_size;
                *upload_data_size = 0;
                if (x->discarded <= DISCARD_ALLOWANCE)
                    return MHD_YES;
                VP_LOGW(x->id, "closing: a body past %u bytes that no route reads",
                        DISCARD_ALLOWANCE);
                return MHD_NO;
            }
            int rc = body_append(x, upload_data, *upload_data_size);
            *upload_data_size = 0;
            if (rc == -2) {
                vp_metrics_event(&s->metrics, VP_EV_BODIES_BUSY);
                VP_LOGW(x->id, "closing: a body outgrew what max_bodies_bytes=%zu leaves beside "
                        "the other connections' bodies", s->cfg->max_bodies_bytes);
                return MHD_NO;
            }
            if (rc) {
                VP_LOGW(x->id, "closing: body far over max_body_bytes=%zu or out of memory",
                        s->cfg->max_body_bytes);
                return MHD_NO;
            }
            return MHD_YES;
        }
        vp_conn_answering(x); /* received whole: a drain now waits for its answer */
        if (x->early)
            return x->early_err.kind == VP_ERR_NONE ? vp_reply_method_not_allowed(x, x->allow)
                                                    : vp_reply_error(x, &x->early_err);
        if (!strcmp(x->route->method, "GET"))
            return x->route->handle(x);
        if (x->too_large)
            return vp_reply_errorf(x, VP_ERR_TOO_LARGE, "",
                                   "request body of %zu bytes is over the limit max_body_bytes=%zu",
                                   x->len + x->discarded, s->cfg->max_body_bytes);
        if (!x->body) { /* no body at all */
            x->body = malloc(1);
            if (!x->body)
                return MHD_NO;
        }
        x->body[x->len] = 0;
        if (s->cfg->log_bodies) { /* its first 512 bytes, a NUL among them spelt out (the
                                   * log escapes control bytes itself) */
            char head[512 * 4 + 1];
            size_t o = 0;
            for (size_t i = 0; i < x->len && i < 512; i++) {
                if (x->body[i])
                    head[o++] = x->body[i];
                else
                    memcpy(head + o, "\\x00", 4), o += 4;
            }
            head[o] = 0;
            VP_LOGI(x->id, "body (%zu bytes): %s", x->len, head);
        }
        if (atomic_load(&s->draining)) {
            vp_metrics_event(&s->metrics, VP_EV_DRAINING);
            return vp_reply_errorf(x, VP_ERR_UNAVAILABLE, "",
                                   "the server is shutting down and accepts no new requests");
        }
        return x->route->handle(x);
    case PHASE_FETCH:
    case PHASE_WAIT:
        if (*upload_data_size) { /* cannot happen after the body; be safe */
            *upload_data_size = 0;
            return MHD_YES;
        }
        return x->phase == PHASE_FETCH ? vp_fetch_resumed(x) : x->route->finish(x);
    case PHASE_ANSWERED:
        *upload_data_size = 0;
        return MHD_YES;
    }
    return MHD_NO;
}

static void on_done(void *user, vp_sched_ticket *t)
{
    vp_conn *x = user;
    (void)t;
    pthread_mutex_lock(&x->mu);
    x->pending--;
    if (x->quota_held) { /* each job given back as it is done: the key may queue more */
        vp_key_quota_give(x->srv->quota, x->key_name, 1);
        x->quota_held--;
    }
    if (x->pending == 0 && x->suspended) {
        pthread_mutex_lock(&x->srv->wait_mu);
        vp_watch_remove_locked(x->srv, x);
        pthread_mutex_unlock(&x->srv->wait_mu);
        x->suspended = false;
        /* under x->mu: the handler suspended under it too, so resume follows suspend */
        MHD_resume_connection(x->mhd);
    }
    pthread_mutex_unlock(&x->mu);
}

/* Counts n jobs against x's API key's max_queued: 0, or -1 and err (413 when n alone is
 * over it, 429 when the key's jobs in flight leave no room; *quota_busy then). */
static int quota_take(vp_conn *x, size_t n, bool *quota_busy, vp_error *err)
{
    if (!x->max_queued)
        return 0;
    if (n > x->max_queued)
        return vp_fail(err, VP_ERR_TOO_LARGE, "requests",
                       "%zu jobs in one request, over the %s's max_queued=%zu (%s)", n,
                       vp_client_kind(x), x->max_queued, x->key_name);
    size_t held = 0;
    int rc = vp_key_quota_take(x->srv->quota, x->key_name, n, x->max_queued, &held);
    if (rc == -2)
        return vp_fail(err, VP_ERR_NOMEM, "", "out of memory counting the %s's jobs",
                       vp_client_kind(x));
    if (rc) {
        *quota_busy = true;
        vp_metrics_event(&x->srv->metrics, VP_EV_KEY_BUSY);
        return vp_fail(err, VP_ERR_BUSY, "", "the %s %s has %zu jobs queued or running, "
                       "its max_queued is %zu: %zu more do not fit; retry later",
                       vp_client_kind(x), x->key_name, held, x->max_queued, n);
    }
    x->quota_held = n;
    return 0;
}

enum MHD_Result vp_conn_submit(vp_conn *x, vp_job **jobs, size_t n_jobs, size_t *item_of_job)
{
    vp_server *s = x->srv;
    vp_sched_ticket **tickets = calloc(n_jobs ? n_jobs : 1, sizeof *tickets);
    if (!tickets) {
        for (size_t i = 0; i < n_jobs; i++)
            vp_job_free(jobs[i]);
        return vp_reply_errorf(x, VP_ERR_NOMEM, "", "out of memory queueing the request");
    }
    vp_priority *prio = calloc(n_jobs ? n_jobs : 1, sizeof *prio);
    if (!prio) {
        free(tickets);
        for (size_t i = 0; i < n_jobs; i++)
            vp_job_free(jobs[i]);
        return vp_reply_errorf(x, VP_ERR_NOMEM, "", "out of memory queueing the request");
    }
    unsigned queued = 0;
    for (size_t i = 0; i < n_jobs; i++) {
        prio[i] = x->items[item_of_job[i]].priority;
        queued |= 1u << vp_effective_priority(s, prio[i]);
    }
    vp_error err;
    bool quota_busy = false;
    int rc = quota_take(x, n_jobs, &quota_busy, &err);
    pthread_mutex_lock(&x->mu);
    if (rc == 0)
        rc = vp_sched_submit(s->sched, jobs, prio, n_jobs,
                             &(vp_sched_client){.name = x->key_name, .weight = x->weight},
                             x->t_start, on_done, x, tickets, &err);
    free(prio);
    if (rc == 0)
        x->priorities = queued;
    if (rc) {
        if (x->quota_held) {
            vp_key_quota_give(s->quota, x->key_name, x->quota_held);
            x->quota_held = 0;
        }
        pthread_mutex_unlock(&x->mu);
        free(tickets);
        for (size_t i = 0; i < n_jobs; i++)
            vp_job_free(jobs[i]);
        if (err.kind == VP_ERR_BUSY && !quota_busy) /* the shared queue's, not the key's */
            vp_metrics_event(&s->metrics, VP_EV_BUSY);
        else if (err.kind == VP_ERR_UNAVAILABLE)
            vp_metrics_event(&s->metrics, VP_EV_DRAINING);
        return vp_reply_error(x, &err);
    }
    for (size_t i = 0; i < n_jobs; i++)
        x->items[item_of_job[i]].ticket = tickets[i];
    free(tickets);
    x->pending = n_jobs;
    vp_conn_suspend_locked(x, PHASE_WAIT);
    pthread_mutex_unlock(&x->mu);
    return MHD_YES;
}

void vp_conn_suspend_locked(vp_conn *x, conn_phase phase)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(x->mhd, MHD_CONNECTION_INFO_CONNECTION_FD);
    x->fd = ci ? ci->connect_fd : -1;
    x->phase = phase;
    MHD_suspend_connection(x->mhd);
    x->suspended = true;
    pthread_mutex_lock(&x->srv->wait_mu);
    vp_watch_add_locked(x->srv, x);
    pthread_mutex_unlock(&x->srv->wait_mu);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    vp_server *s = cls;
    vp_conn *x = *con_cls;
    vp_heads_mark(s, c, true); /* a kept-alive connection waits for its next head */
    if (!x)
        return;
    *con_cls = NULL;
    pthread_mutex_lock(&x->mu);
    size_t pending = x->pending;
    pthread_mutex_unlock(&x->mu);
    if (pending) {
        /* cannot happen while connections are only closed once resumed; if it ever does,
         * the scheduler still holds x for its done callback: keep x rather than free it */
        VP_LOGE(x->id, "connection closed with %zu jobs pending; keeping its context", pending);
        return;
    }
    double ms = vp_sched_now_ms() - x->t_start;
    /* a request refused before its route was looked up (431, 501, a broken head) still
     * counts under its route when its path names one */
    const vp_route *r = x->route ? x->route : find_route(x->path);
    const char *route = r ? r->path : "other";
    vp_metrics_request(&s->metrics, route, x->status);
    if (x->key_name[0])
        vp_key_usage_request(s->usage, x->key_name, x->status);
    vp_log_request(x, toe, ms);
    conn_free(x);
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    vp_server *s = cls;
    char buf[512];
    vsnprintf(buf, sizeof buf, fmt, ap);
    size_t n = strlen(buf);
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        buf[--n] = 0;
    /* our handler returns MHD_NO on purpose for clients that left, and a client that closes
     * mid-upload ends its request: our own request line says so */
    if (strstr(buf, "Application reported internal error") ||
        strstr(buf, "closed by remote side with incomplete request") ||
        strstr(buf, "Failed to send") || strstr(buf, "forcibly closed") ||
        strstr(buf, "Connection socket is closed")) { /* a client that left: not a warning */
        VP_LOGD(NULL, "microhttpd: %s", buf);
    } else if (strstr(buf, "handshake") || strstr(buf, "Not enough memory in pool") ||
               strstr(buf, "Error processing request") || strstr(buf, "Content-Length")) {
        /* a client's doing (anyone can send garbage or a huge head): counted, not warned.
         * A huge head logs "Not enough memory" first, then its "Error processing" line, and
         * so does a Content-Length that is not a number or too large (whose "Error
         * processing" line names Content-Length again, in the page it answers): each
         * refusal counted once, at that line (or a failed handshake's) */
        if (strstr(buf, "Error processing request") || strstr(buf, "handshake"))
            vp_metrics_event(&s->metrics, VP_EV_MHD_CLIENT_ERROR);
        VP_LOGD(NULL, "microhttpd: %s", buf);
    } else
        VP_LOGW(NULL, "microhttpd: %s", buf);
}

static int resolve_host(const char *host, int port, struct sockaddr_storage *ss, bool *v6,
                        vp_error *err)
{
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    char ps[8];
    snprintf(ps, sizeof ps, "%d", port);
    int rc = getaddrinfo(host, ps, &hints, &res);
    if (rc || !res)
        return vp_fail(err, VP_ERR_BAD_REQUEST, "host", "option host: cannot resolve '%s': %s",
                       host, gai_strerror(rc));
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *v6 = res->ai_family == AF_INET6;
    freeaddrinfo(res);
    return 0;
}

int vp_server_start(const vp_config *cfg, vp_server **out, vp_error *err)
{
    *out = NULL;
    vp_server *s = calloc(1, sizeof *s);
    if (!s)
        return vp_fail(err, VP_ERR_NOMEM, "", "out of memory");
    s->cfg = cfg;
    s->t_started = vp_sched_now_ms();
    vp_metrics_init(&s->metrics);
    pthread_mutex_init(&s->wait_mu, NULL);
    pthread_mutex_init(&s->heads_mu, NULL);
    pthread_mutex_init(&s->reload_mu, NULL);
    pthread_rwlock_init(&s->keys_lock, NULL);
    vp_request_limits_default(&s->limits);
    s->limits.max_responses = cfg->max_responses;
    s->limits.max_steps = cfg->max_steps;
    s->limits.max_images = cfg->max_images;
    s->limits.max_image_bytes = cfg->max_image_bytes;
    s->limits.max_text_bytes = cfg->max_text_bytes;
    s->limits.max_tiles = cfg->max_tiles;
    s->limits.max_json_values = cfg->max_json_values;
    s->limits.allow_urls = cfg->allow_image_urls;
    s->limits.max_url_length = cfg->url_max_length;
    vp_reload_watch_init(s); /* before the files are read: a change meanwhile is seen */
    if (vp_api_keys_load(cfg->api_key, cfg->api_keys_file, &s->keys, err))
        goto fail;
    if (vp_api_keys_cert_grants(s->keys) && !cfg->tls_client_ca) {
        vp_fail(err, VP_ERR_BAD_REQUEST, "api_keys_file", "%s grants clients known by their "
                "certificate (cert:NAME lines), but tls_client_ca is not set: no client is",
                cfg->api_keys_file);
        goto fail;
    }
    if (cfg->tls_client_ca) {
        if (vp_client_cas_load(cfg->tls_client_ca, &s->client_cas, err))
            goto fail;
        VP_LOGI(NULL, "mutual TLS: accepting client certificates issued by the %zu "
                "certificate%s of %s (%zu revocation list%s)",
                vp_client_cas_count(s->client_cas),
                vp_client_cas_count(s->client_cas) == 1 ? "" : "s", cfg->tls_client_ca,
                vp_client_cas_crls(s->client_cas),
                vp_client_cas_crls(s->client_cas) == 1 ? "" : "s");
    }
    if (!(s->quota = vp_key_quota_new()) || !(s->usage = vp_key_usage_new())) {
        vp_fail(err, VP_ERR_NOMEM, "", "out of memory");
        goto fail;
    }
    s->openapi = vp_openapi_document(VP_BUILD_VERSION, &s->openapi_len);
    if (!s->openapi) {
        vp_fail(err, VP_ERR_NOMEM, "", "out of memory for the OpenAPI document");
        goto fail;
    }

    struct sockaddr_storage ss;
    bool v6 = false;
    if (resolve_host(cfg->host, cfg->port, &ss, &v6, err))
        goto fail;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    flags |= MHD_is_feature_supported(MHD_FEATURE_EPOLL) == MHD_YES ? MHD_USE_EPOLL : MHD_USE_POLL;
    if (v6)
        flags |= MHD_USE_IPv6;
    struct MHD_OptionItem opts[] = {
        {MHD_OPTION_THREAD_POOL_SIZE, cfg->http_threads, NULL},
        {MHD_OPTION_CONNECTION_LIMIT, cfg->max_connections, NULL},
        {MHD_OPTION_CONNECTION_TIMEOUT, cfg->connection_timeout_s, NULL},
        {MHD_OPTION_CONNECTION_MEMORY_LIMIT, (intptr_t)vp_server_connection_memory(cfg), NULL},
        {MHD_OPTION_PER_IP_CONNECTION_LIMIT, cfg->max_connections_per_ip, NULL},
        {MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024, NULL},
        {MHD_OPTION_UNESCAPE_CALLBACK, (intptr_t)unescape_keep_nul, NULL},
        {MHD_OPTION_SOCK_ADDR, 0, &ss},
        {MHD_OPTION_END, 0, NULL}, /* the TLS options, when set */
        {MHD_OPTION_END, 0, NULL},
        {MHD_OPTION_END, 0, NULL},
        {MHD_OPTION_END, 0, NULL},
    };
    if (cfg->tls_cert) {
        if (vp_tls_load(cfg, err))
            goto fail;
        s->tls = true;
        flags |= MHD_USE_TLS;
        /* each handshake asks tls.c for the pair: a reload can replace it */
        opts[sizeof opts / sizeof opts[0] - 4] = (struct MHD_OptionItem){
            MHD_OPTION_HTTPS_CERT_CALLBACK, 0, (void *)&vp_tls_retrieve};
        /* TLS 1.2 and 1.3 only: 1.0 and 1.1 are deprecated (RFC 8996) */
        opts[sizeof opts / sizeof opts[0] - 3] = (struct MHD_OptionItem){
            MHD_OPTION_HTTPS_PRIORITIES, 0,
            (void *)"NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"};
    }
    s->daemon = MHD_start_daemon(flags, (uint16_t)cfg->port, NULL, NULL, on_request, s,
                                 MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, s,
                                 MHD_OPTION_ARRAY, opts,
                                 MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                                 MHD_OPTION_NOTIFY_CONNECTION, vp_heads_notify, s,
                                 MHD_OPTION_END);
    if (!s->daemon) {
        if (cfg->tls_cert)
            vp_fail(err, VP_ERR_IO, "port", "cannot serve HTTPS on %s port %d: the port is in "
                    "use or not allowed, or libmicrohttpd cannot set up TLS (its message above)",
                    cfg->host, cfg->port);
        else
            vp_fail(err, VP_ERR_IO, "port", "cannot listen on %s port %d (in use, or not allowed?)",
                    cfg->host, cfg->port);
        goto fail;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : cfg->port;
    if (cfg->allow_image_urls && vp_fetch_start_pool(s, err)) {
        MHD_stop_daemon(s->daemon);
        goto fail;
    }
    if (vp_watch_start(s, err)) {
        MHD_stop_daemon(s->daemon);
        vp_fetch_pool_free(s->fetch_pool);
        goto fail;
    }
    *out = s;
    return 0;
fail:
    pthread_mutex_destroy(&s->heads_mu);
    pthread_mutex_destroy(&s->wait_mu);
    pthread_mutex_destroy(&s->reload_mu);
    pthread_rwlock_destroy(&s->keys_lock);
    vp_api_keys_free(s->keys);
    vp_client_cas_free(s->client_cas);
    vp_key_quota_free(s->quota);
    vp_key_usage_free(s->usage);
    vp_metrics_destroy(&s->metrics);
    if (s->tls)
        vp_tls_unload();
    free(s->openapi);
    free(s);
    return -1;
}

int vp_server_port(const vp_server *s) { return s->port; }

static void on_batch(void *ctx, size_t n_jobs, size_t tokens, size_t tiles, double ms,
                     double flops)
{
    vp_metrics_batch(ctx, n_jobs, tokens, tiles, ms, flops);
}

int vp_server_attach_engine(vp_server *s, vp_engine *e, vp_error *err)
{
    const vp_config *c = s->cfg;
    vp_sched_engine eng;
    vp_sched_engine_of(e, &eng);
    eng.on_batch = on_batch;
    eng.obs_ctx = &s->metrics;
    vp_sched_options so = {.max_queue = c->max_queue,
                           .max_queued_tiles = c->max_queued_tiles,
                           .max_batch_tokens = c->batch_tokens,
                           .max_batch_tiles = c->batch_tiles,
                           .queue_timeout_ms = c->queue_timeout_ms,
                           .priority_boost_ms = c->priority_boost_ms,
                           .fair_share = c->fair_share};
    if (c->max_body_bytes > c->max_bodies_bytes)
        VP_LOGW(NULL, "max_body_bytes (%zu) is over max_bodies_bytes (%zu), every connection's "
                "bodies together: a body over %zu bytes gets 413", c->max_body_bytes,
                c->max_bodies_bytes, c->max_bodies_bytes);
    /* a low job ranks 2 boosts behind a high one that arrives at the same time */
    if (c->queue_timeout_ms > 0 && 2.0 * c->priority_boost_ms >= c->queue_timeout_ms)
        VP_LOGW(NULL, "priority_boost_ms (%d) is not under half of queue_timeout_ms (%d): under a "
                "steady stream of high-priority work a low-priority job (a normal one, once the "
                "boost reaches the timeout) reaches its deadline before its head start ends, and "
                "is answered 503 instead of running",
                c->priority_boost_ms, c->queue_timeout_ms);
    if (vp_sched_start(&so, &eng, &s->sched, err))
        return -1;
    const vp_model_config *mc = vp_engine_config(e);
    snprintf(s->model_name, sizeof s->model_name, "%s", mc && mc->name[0] ? mc->name : "model");
    atomic_store(&s->engine, e);
    atomic_store(&s->ready, true);
    return 0;
}

double vp_server_pass_ms(vp_server *s)
{
    return vp_engine_pass_ms(atomic_load(&s->engine));
}

int vp_server_drain(vp_server *s, double timeout_ms)
{
    atomic_store(&s->draining, true);
    atomic_store(&s->ready, false);
    double until = vp_sched_now_ms() + timeout_ms;
    int rc = 0;
    /* a request still fetching its images could only be refused by the draining
     * scheduler once they are in: stop the downloads now (within about a second), and
     * those requests get their 503 at once */
    vp_fetch_pool_stop(s->fetch_pool);
    if (s->sched) {
        vp_sched_drain(s->sched);
        rc = vp_sched_wait_idle(s->sched, timeout_ms);
    }
    /* answers of finished jobs are written by the pool threads: wait for them too (not for
     * uploads still arriving: they get 503 if they finish, else the closed connection),
     * but not for a client that does not read its answer: it would hold the exit for the
     * idle timeout, past an orchestrator's grace period */
    double answers_until = vp_sched_now_ms() + s->cfg->drain_answer_timeout_s * 1000.0;
    if (answers_until > until)
        answers_until = until;
    while (atomic_load(&s->answering) > 0 && vp_sched_now_ms() < answers_until)
        usleep(10000);
    size_t left = atomic_load(&s->answering);
    if (left > 0 && rc == 0 && vp_sched_now_ms() < until)
        VP_LOGW(NULL, "%zu answer%s still being written after drain_answer_timeout_s=%d: "
                "%s connection%s closed", left, left == 1 ? "" : "s",
                s->cfg->drain_answer_timeout_s, left == 1 ? "its" : "their", left == 1 ? " is" : "s are");
    else if (left > 0)
        rc = -1;
    return rc;
}

void vp_server_stop(vp_server *s)
{
    if (!s)
        return;
    atomic_store(&s->draining, true);
    atomic_store(&s->ready, false);
    /* the scheduler answers what is still queued (503), which resumes every suspended
     * connection: MHD must not be stopped while any is suspended */
    /* the fetch workers resume the connections they hold, first: same reason */
    vp_fetch_pool_stop(s->fetch_pool);
    if (s->sched)
        vp_sched_stop(s->sched);
    for (int i = 0; i < 200 && atomic_load(&s->answering) > 0; i++)
        usleep(10000); /* let pool threads write those answers */
    vp_watch_stop(s);
    MHD_stop_daemon(s->daemon);
    vp_fetch_pool_free(s->fetch_pool); /* after MHD: handlers may still submit (refused) */
    vp_sched_free(s->sched); /* after MHD: handlers may still read the queue depth */
    if (s->tls)
        vp_tls_unload(); /* after MHD: no session is left */
    pthread_mutex_destroy(&s->heads_mu);
    pthread_mutex_destroy(&s->wait_mu);
    pthread_mutex_destroy(&s->reload_mu);
    pthread_rwlock_destroy(&s->keys_lock);
    vp_api_keys_free(s->keys);
    vp_client_cas_free(s->client_cas);
    vp_key_quota_free(s->quota); /* after MHD: every connection gave its jobs back */
    vp_key_usage_free(s->usage);
    vp_metrics_destroy(&s->metrics);
    free(s->openapi);
    free(s);
}
