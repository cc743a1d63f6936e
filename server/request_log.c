/* The one log line of each request: text ("POST /v1/score 200 responses=2 tokens=300
 * 1.9 ms ... key=NAME") or, with --log-format json, an object of the same facts. The key
 * is named by its name in api_keys_file ("api_key" for --api-key), never by its bytes. */
#include <stdio.h>
#include <string.h>

#include "engine/util/log.h"
#include "server/internal.h"

/* Why the request ended other than by its answer being sent ("" when it was). */
static const char *termination_name(const vp_conn *x, enum MHD_RequestTerminationCode toe)
{
    if (x->client_gone || x->gone) /* gone: set by the watcher, which let go of x on resume */
        return "cancelled: the client disconnected while waiting";
    switch (toe) {
    case MHD_REQUEST_TERMINATED_COMPLETED_OK: return "";
    case MHD_REQUEST_TERMINATED_WITH_ERROR: return "terminated: error";
    case MHD_REQUEST_TERMINATED_TIMEOUT_REACHED: return "terminated: connection timeout";
    case MHD_REQUEST_TERMINATED_DAEMON_SHUTDOWN: return "terminated: shutdown";
    case MHD_REQUEST_TERMINATED_READ_ERROR: return "terminated: client closed";
    case MHD_REQUEST_TERMINATED_CLIENT_ABORT: return "terminated: client aborted";
    }
    return "terminated";
}

/* "high" or "high,low": the priorities of x's queued jobs when not all normal, else "". */
static void priority_names(const vp_conn *x, char *out, size_t cap)
{
    out[0] = 0;
    if (!(x->priorities & ~(1u << VP_PRIORITY_NORMAL))) /* the queue order was arrival's */
        return;
    for (int p = VP_PRIORITY_HIGH; p <= VP_PRIORITY_LOW; p++)
        if (x->priorities & 1u << p)
            snprintf(out + strlen(out), cap - strlen(out), "%s%s", out[0] ? "," : "",
                     vp_priority_name((vp_priority)p));
}

static void log_json(vp_log_level level, const vp_conn *x, const char *prio, const char *ended,
                     double ms)
{
    json_t *f = json_object();
    if (!f)
        return;
    json_object_set_new(f, "method", vp_log_string(x->method, strlen(x->method)));
    json_object_set_new(f, "path", vp_log_string(x->path, strlen(x->path)));
    json_object_set_new(f, "status", x->status ? json_integer(x->status) : json_null());
    json_object_set_new(f, "responses", json_integer((json_int_t)x->n_responses));
    json_object_set_new(f, "tokens", json_integer((json_int_t)x->tokens));
    json_object_set_new(f, "ms", json_real(ms));
    if (x->fetch_ms >= 0)
        json_object_set_new(f, "url_fetch_ms", json_real(x->fetch_ms));
    if (prio[0])
        json_object_set_new(f, "priority", json_string(prio));
    if (ended[0])
        json_object_set_new(f, "ended", json_string(ended));
    if (x->client_id[0]) /* checked characters (reqid.h) */
        json_object_set_new(f, "client_request_id", json_string(x->client_id));
    if (x->key_name[0]) /* checked characters (api_keys.h) */
        json_object_set_new(f, "key", json_string(x->key_name));
    vp_log_write_fields(level, x->id, f);
}

void vp_log_request(const vp_conn *x, enum MHD_RequestTerminationCode toe, double ms)
{
    /* probes and scrapes that succeeded are logged at debug level only */
    bool quiet = x->route && x->status == 200 &&
                 (!strcmp(x->route->path, "/health") || !strcmp(x->route->path, "/ready") ||
                  !strcmp(x->route->path, "/metrics"));
    vp_log_level level = quiet ? VP_LOG_DEBUG : VP_LOG_INFO;
    if (!vp_log_enabled(level))
        return;
    char prio[40];
    priority_names(x, prio, sizeof prio);
    const char *ended = termination_name(x, toe);
    if (vp_log_json()) {
        log_json(level, x, prio, ended, ms);
        return;
    }
    if (level == VP_LOG_DEBUG) {
        VP_LOGD(x->id, "%s %s %d %.1f ms%s%s%s%s", x->method, x->path, x->status, ms,
                x->client_id[0] ? " client_request_id=" : "", x->client_id,
                x->key_name[0] ? " key=" : "", x->key_name);
        return;
    }
    char status[8], fetch[40] = "";
    snprintf(status, sizeof status, x->status ? "%d" : "-", x->status);
    if (x->fetch_ms >= 0) /* waiting for a fetch worker, then fetching */
        snprintf(fetch, sizeof fetch, " url_fetch=%.1f ms", x->fetch_ms);
    VP_LOGI(x->id, "%s %s %s responses=%zu tokens=%zu %.1f ms%s%s%s%s%s%s%s%s%s%s", x->method,
            x->path, status, x->n_responses, x->tokens, ms, fetch,
            prio[0] ? " priority=" : "", prio, ended[0] ? " (" : "", ended, ended[0] ? ")" : "",
            x->client_id[0] ? " client_request_id=" : "", x->client_id,
            x->key_name[0] ? " key=" : "", x->key_name);
}
