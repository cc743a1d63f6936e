/* Shared by the server's files: the server context, the per-request context and the
 * helpers routes use to answer.
 *
 * Waiting for the engine: a request whose jobs are queued SUSPENDS its libmicrohttpd
 * connection (MHD_suspend_connection) and returns its pool thread to other clients; the
 * scheduler's done callback resumes it and the access handler then writes the answer.
 * So a thousand waiting clients cost a thousand small contexts, not a thousand blocked
 * threads, and a few pool threads keep serving /health, /metrics and new uploads. A
 * suspended connection is invisible to MHD (no timeout, no disconnect detection), so a
 * watcher thread peeks at the sockets of waiting requests and cancels the jobs of
 * clients that hung up.
 *
 * Fetching image URLs: the same suspension, earlier. A request with http(s) images is
 * parsed, suspended and handed to a fetch worker (fetch_task.c, fetch_pool.c); the worker
 * resumes it when the bytes are in, and the pool thread that picks it up prepares and
 * queues it like a request that sent them inline. A slow image host holds a fetch worker,
 * never an HTTP thread. */
#ifndef VP_SERVER_INTERNAL_H
#define VP_SERVER_INTERNAL_H

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>

#include "config/config.h"
#include "engine/engine.h"
#include "engine/sched/sched.h"
#include "proto/request.h"
#include "server/api_keys.h"
#include "server/key_quota.h"
#include "server/key_usage.h"
#include "server/tls_clients.h"
#include "server/fetch_pool.h"
#include "server/metrics.h"
#include "server/reqid.h"
#include "server/server.h"

typedef struct vp_conn vp_conn;

/* tls.c: the certificate and key of --tls-cert and --tls-key, handed to each TLS handshake
 * by vp_tls_retrieve (libmicrohttpd's certificate callback); vp_tls_reload swaps in the
 * files' new contents while serving. One HTTPS server a process. */
int vp_tls_load(const vp_config *cfg, vp_error *err);   /* at start; err names the file */
int vp_tls_reload(const vp_config *cfg, vp_error *err); /* on failure the old pair stays */
/* A connection pins the pair current when it opens (before its handshake) until it
 * closes: a replaced pair is freed once nothing pins it or an older one. */
void *vp_tls_pin(void);
void vp_tls_unpin(void *pin);
double vp_tls_not_after(void);   /* the certificate's expiry (Unix time); 0 without HTTPS */
size_t vp_tls_pairs_held(void);  /* the current pair and replaced ones still pinned */
int vp_tls_retrieve(gnutls_session_t session, const gnutls_datum_t *req_ca_dn, int n_req,
                    const gnutls_pk_algorithm_t *pk_algos, int n_pk_algos,
                    gnutls_pcert_st **chain, unsigned int *n_chain, gnutls_privkey_t *key);
void vp_tls_unload(void);        /* after the daemon stopped */
typedef struct vp_head vp_head;

/* What tells a credential file changed (reload.c) */
typedef struct vp_file_stamp {
    unsigned long long dev, ino;
    long long size, mtime_ns, ctime_ns;
} vp_file_stamp;
#define VP_CREDENTIAL_FILES 4 /* api_keys_file, tls_cert, tls_key, tls_client_ca */

struct vp_server {
    const vp_config *cfg;
    struct MHD_Daemon *daemon;
    int port;
    double t_started;
    _Atomic(vp_engine *) engine;   /* NULL while loading */
    vp_sched *sched;               /* created with the engine */
    atomic_bool ready, draining;
    vp_request_limits limits;
    char model_name[128];
    char *openapi;                 /* GET /openapi.json's body (proto/openapi.h) */
    bool tls;                      /* serving HTTPS (tls.c holds the certificate) */
    /* the API keys (NULL = open), swapped by a reload (reload.c) */
    pthread_rwlock_t keys_lock;
    vp_api_keys *keys;
    vp_client_cas *client_cas;     /* --tls-client-ca's, swapped with the keys (NULL = none) */
    vp_key_quota *quota;           /* jobs in flight per key name (max_queued) */
    vp_key_usage *usage;           /* what each key name used (accounting) */
    pthread_mutex_t reload_mu;     /* one reload at a time */
    vp_file_stamp cred_stamps[VP_CREDENTIAL_FILES]; /* under reload_mu (reload.c) */
    size_t openapi_len;
    vp_metrics metrics;
    vp_fetch_pool *fetch_pool;     /* image URL downloads (NULL unless allow_image_urls) */
    atomic_size_t inflight;        /* request contexts alive */
    atomic_size_t body_bytes;      /* request body bytes reserved (max_bodies_bytes) */
    atomic_size_t answering;       /* of those, requests received whole (or answered early):
                                    * what a drain waits for; uploads still arriving do not
                                    * hold it up (they get 503 or the closed connection) */
    /* requests suspended while their jobs wait or run, for the disconnect watcher */
    pthread_mutex_t wait_mu;
    vp_conn *waiting;              /* doubly linked through wprev/wnext */
    size_t n_waiting;
    pthread_t watcher;
    bool watcher_started;
    atomic_bool watcher_stop;
    /* every open connection, for the request-head deadline (head_deadline.c) */
    pthread_mutex_t heads_mu;
    vp_head *heads;
};

/* BODY: receiving; FETCH: suspended while a worker fetches its image URLs; WAIT:
 * suspended while the engine computes; ANSWERED: a response is queued */
typedef enum { PHASE_BODY, PHASE_FETCH, PHASE_WAIT, PHASE_ANSWERED } conn_phase;

typedef struct vp_route vp_route;

/* One item of a request: a score request has one, a batch one per element. */
typedef struct vp_item {
    vp_sched_ticket *ticket;  /* NULL when the item failed before queueing */
    vp_error err;             /* the failure when ticket == NULL */
    bool return_steps, return_logits;
    vp_priority priority;     /* the request's, or the batch's, at most the key's */
    bool priority_lowered;    /* it asked for more than its API key allows */
    vp_priority asked;        /* what it asked for, then */
    char unknown_fields[VP_UNKNOWN_FIELDS_MAX]; /* the request's, warned about in its answer */
} vp_item;

/* A parsed request (a batch: one item) whose image URLs are to be fetched. */
typedef struct vp_fetch_req {
    vp_score_request req;
    bool live;                /* req not yet freed */
    size_t item;              /* its index in x->items */
    char prefix[48];          /* names its fields: "requests[2]." inside a batch, else "" */
    int rc;                   /* the fetch's outcome: 0, or -1 and err */
    vp_error err;
} vp_fetch_req;

struct vp_conn {
    vp_server *srv;
    struct MHD_Connection *mhd;
    const vp_route *route;
    char id[VP_REQID_LEN + 1];
    char client_id[VP_CLIENT_REQID_MAX + 1]; /* the client's own id ("" = none; reqid.h) */
    char key_name[VP_API_KEY_NAME_MAX + 1];  /* the name of its API key ("" = none) */
    vp_priority max_priority;    /* the most its jobs may ask for (its API key's) */
    size_t max_queued;           /* its key's jobs in flight at most (0 = no bound) */
    unsigned weight;             /* its key's share of the passes (fair sharing) */
    size_t quota_held;           /* jobs counted against it (under mu once queued), given
                                  * back when the last is done (on_done) */
    unsigned priorities;         /* bit p: a job of vp_priority p was queued (the log line) */
    char method[8];
    char path[64];
    double t_start;              /* vp_sched_now_ms when the headers arrived */
    conn_phase phase;
    /* body */
    char *body;                  /* [len] (+1 NUL), up to max_body_bytes */
    size_t len, cap;
    size_t discarded;            /* bytes dropped after the limit was passed */
    size_t body_reserved;        /* of s->body_bytes: what its buffer holds room for */
    size_t declared;             /* its Content-Length (0: none, or chunked) */
    bool too_large;
    /* waiting */
    pthread_mutex_t mu;          /* guards pending and suspended */
    size_t pending;              /* tickets not yet done */
    bool suspended;
    int fd;                      /* the client socket, for the watcher's peek */
    vp_item *items;              /* [n_items] */
    size_t n_items;
    char *batch_unknown;         /* a batch's unknown top-level fields, for its warning */
    vp_conn *wprev, *wnext;
    bool gone;                   /* the watcher saw the client hang up (under wait_mu) */
    /* fetching image URLs (fetch_task.c): written by the HTTP thread before the task is
     * queued, by the fetch worker before it resumes the connection */
    vp_fetch_req *fetch;         /* [n_fetch] (a batch: every item parsed) */
    size_t n_fetch;
    size_t n_urls;               /* the URL images among them */
    atomic_bool fetch_abort;     /* set by the watcher when the client left: stop fetching */
    bool fetch_refused;          /* the fetch was cut short by a shutdown: 503 */
    bool fetch_busy;             /* the fetch threads were too busy: fetch_busy_err (429) */
    vp_error fetch_busy_err;
    double t_fetch;              /* when the fetch was queued */
    double fetch_ms;             /* queued to done, on the log line; < 0 = no fetch */
    /* for the log line and metrics */
    int status;                  /* 0 until a response is queued */
    size_t n_responses, tokens;
    double queue_ms, inference_ms; /* x-queue-time / x-inference-time; < 0 = absent */
    const char *allow;           /* Allow header of a 405 */
    bool client_gone;            /* its jobs were cancelled: closed without an answer */
    bool answering;              /* counted in srv->answering */
    bool close_after;            /* the answer closes the connection (ambiguous framing) */
    /* an error known from the head (404, 405, 401, 503), answered once the body has been
     * read and dropped (http.c: answer_after_body) */
    bool early;
    vp_error early_err;          /* its kind VP_ERR_NONE: the 405 of x->allow */
};

/* Counts x among the requests a drain waits for (once). */
/* The priority a job is queued at: with priority_boost_ms 0 the scheduler queues every
 * job as normal, so the log and the metrics say normal too. */
static inline vp_priority vp_effective_priority(const vp_server *s, vp_priority p)
{
    return s->cfg->priority_boost_ms > 0 ? p : VP_PRIORITY_NORMAL;
}

static inline void vp_conn_answering(vp_conn *x)
{
    if (!x->answering) {
        x->answering = true;
        atomic_fetch_add(&x->srv->answering, 1);
    }
}

typedef enum MHD_Result (*vp_route_fn)(vp_conn *x);

struct vp_route {
    const char *path;
    const char *method;          /* "GET" (HEAD too) or "POST" */
    bool needs_auth;
    bool needs_engine;           /* 503 while loading */
    vp_route_fn handle;          /* GET: at once; POST: when the body is complete */
    vp_route_fn finish;          /* after a suspended request resumed (NULL if never) */
    vp_route_fn fetched;         /* after its image URLs were fetched (NULL if never) */
};

/* routes_info.c */
enum MHD_Result vp_route_health(vp_conn *x);
enum MHD_Result vp_route_ready(vp_conn *x);
enum MHD_Result vp_route_models(vp_conn *x);
enum MHD_Result vp_route_metrics(vp_conn *x);
enum MHD_Result vp_route_openapi(vp_conn *x);
/* routes_score.c */
enum MHD_Result vp_route_score(vp_conn *x);
enum MHD_Result vp_route_score_finish(vp_conn *x);
enum MHD_Result vp_route_batch(vp_conn *x);
enum MHD_Result vp_route_batch_finish(vp_conn *x);
enum MHD_Result vp_route_tokenize(vp_conn *x);
enum MHD_Result vp_route_score_fetched(vp_conn *x);
enum MHD_Result vp_route_batch_fetched(vp_conn *x);
enum MHD_Result vp_route_tokenize_fetched(vp_conn *x);

/* reply.c: every answer goes through these; they take ownership of body (malloc'd). */
enum MHD_Result vp_reply(vp_conn *x, int status, char *body, size_t len,
                         const char *content_type);
enum MHD_Result vp_reply_json(vp_conn *x, int status, json_t *v); /* consumes v */
enum MHD_Result vp_reply_error(vp_conn *x, const vp_error *err);
enum MHD_Result vp_reply_method_not_allowed(vp_conn *x, const char *allow);
/* 501 for a Transfer-Encoding libmicrohttpd cannot read (coding: the header's value;
 * repeated: it is a second "chunked" header) */
enum MHD_Result vp_reply_not_implemented(vp_conn *x, const char *coding, bool repeated);
enum MHD_Result vp_reply_errorf(vp_conn *x, vp_err_kind kind, const char *param,
                                const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* http.c: queue items' jobs and suspend the connection until all are done. On failure
 * (queue full, draining) the jobs are freed and an error answer is queued. */
/* Suspends x (x->mu held) in phase PHASE_WAIT or PHASE_FETCH until the engine or a fetch
 * worker resumes it, on the watcher's list so that a client that hangs up is noticed. */
void vp_conn_suspend_locked(vp_conn *x, conn_phase phase);
enum MHD_Result vp_conn_submit(vp_conn *x, vp_job **jobs, size_t n_jobs, size_t *item_of_job);

/* head_deadline.c: the request-head deadline. vp_heads_notify is the daemon's connection
 * notifier; vp_heads_mark records a complete head (answered false) or a completed answer
 * (true); vp_heads_reap closes the connections past header_timeout_s. */
void vp_heads_notify(void *cls, struct MHD_Connection *c, void **socket_context,
                     enum MHD_ConnectionNotificationCode code);
void vp_heads_mark(vp_server *s, struct MHD_Connection *c, bool answered);
void vp_heads_reap(vp_server *s);

/* request_log.c: the request's log line, when its connection is done with it */
void vp_log_request(const vp_conn *x, enum MHD_RequestTerminationCode toe, double ms);

/* reload.c: keys accepted now (0 = open); the credential files' stamps, taken at start
 * before they are read */
size_t vp_server_api_keys(vp_server *s);
void vp_reload_watch_init(vp_server *s);

/* watch.c */
int vp_watch_start(vp_server *s, vp_error *err);
void vp_watch_stop(vp_server *s);
void vp_watch_add_locked(vp_server *s, vp_conn *x);    /* caller holds s->wait_mu */
void vp_watch_remove_locked(vp_server *s, vp_conn *x); /* caller holds s->wait_mu */

/* What names x's client in messages: "client certificate" for a cert:NAME, else
 * "API key". */
static inline const char *vp_client_kind(const vp_conn *x)
{
    return strncmp(x->key_name, "cert:", 5) ? "API key" : "client certificate";
}

/* fetch_task.c: image URLs fetched off the HTTP threads */
int vp_fetch_start_pool(vp_server *s, vp_error *err); /* when allow_image_urls */
bool vp_request_has_urls(const vp_score_request *req);
/* Takes *req (leaves it zeroed) into x->fetch, to be fetched by vp_fetch_start; -1 when
 * out of memory (req freed). cap: the most requests x will stash (a batch's size). */
int vp_fetch_stash(vp_conn *x, vp_score_request *req, const char *prefix, size_t item,
                   size_t cap);
/* Queues the fetch of x's stashed requests and suspends x until it is done; when the
 * queue is full (429) or the server stopping (503), answers that instead. */
enum MHD_Result vp_fetch_start(vp_conn *x);
/* x resumed after its fetch: closes if the client left, 503 if a shutdown cut it short,
 * else the route's fetched handler. */
enum MHD_Result vp_fetch_resumed(vp_conn *x);
void vp_fetch_free(vp_conn *x); /* what conn_free must free of the fetch */
/* Frees x's body and gives its bytes back to max_bodies_bytes (once parsed, or at close). */
void vp_conn_body_free(vp_conn *x);

#endif
