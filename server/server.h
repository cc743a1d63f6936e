/* The HTTP daemon (libmicrohttpd) of API.md.
 *
 * Life cycle, as `vprm serve` drives it:
 *   vp_server_start          listen (GET /health 200, /ready 503, scoring 503 "loading")
 *   vp_server_attach_engine  after the model loaded and a warm-up pass succeeded: start
 *                            the scheduler's engine thread, /ready 200
 *   vp_server_reload         SIGHUP: the API keys and the TLS certificate read again
 *   vp_server_drain          SIGTERM: new requests 503, queued work finishes
 *   vp_server_stop           close the listener and connections, stop the scheduler */
#ifndef VP_SERVER_H
#define VP_SERVER_H

#include "config/config.h"
#include "engine/engine.h"
#include "engine/util/err.h"

/* The server's version: /v1/models, the OpenAPI document's info.version. */
#define VP_BUILD_VERSION "0.1.0"

typedef struct vp_server vp_server;

/* libmicrohttpd's memory per connection: cfg->max_header_bytes and room for the answer. */
size_t vp_server_connection_memory(const vp_config *cfg);

/* cfg must outlive the server. */
int vp_server_start(const vp_config *cfg, vp_server **out, vp_error *err);
/* The bound TCP port (useful with --port 0). */
int vp_server_port(const vp_server *s);
/* Hands the engine to the server (it stays the caller's to close after vp_server_stop). */
int vp_server_attach_engine(vp_server *s, vp_engine *e, vp_error *err);
/* Reads --api-keys-file and the TLS certificate and key again and swaps them in, all or
 * nothing: on failure (-1, err naming the file and the problem) the server goes on with
 * what it had. Connections already open keep the certificate their handshake took. */
int vp_server_reload(vp_server *s, vp_error *err);
/* With credentials_check_s set: whether those files changed since they were last read
 * (inode, size, times) and, if so, vp_server_reload. 0: unchanged (or the check is off),
 * 1: reloaded, -1: changed but refused (err). Called every credentials_check_s seconds. */
int vp_server_check_credentials(vp_server *s, vp_error *err);
/* Refuse new work and wait up to timeout_ms for queued and in-flight requests to be
 * answered. Returns 0 when everything was answered, -1 on timeout. */
int vp_server_drain(vp_server *s, double timeout_ms);
/* How long the engine's pass running now has run, in ms (0: none, or no engine yet). */
double vp_server_pass_ms(vp_server *s);
void vp_server_stop(vp_server *s);

/* The warm-up request run before readiness: text only, two responses of two steps. */
extern const char vp_server_warmup_request[];

#endif
