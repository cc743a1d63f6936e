/* The request-head deadline (--header-timeout-s). libmicrohttpd's idle timeout restarts
 * on every byte, so a client that sends its request line and headers a byte at a time
 * keeps a connection slot as long as it likes (slowloris). This bounds how long one
 * connection can hold a slot that way; it does not bound how many connections one
 * address opens (--max-connections-per-ip, or a proxy, does that).
 * Every connection is tracked from accept to close (the daemon's connection notifier).
 * Its request head must be complete header_timeout_s after the connection opened or, on a
 * kept-alive connection, after the first byte that follows the previous answer: an idle
 * kept-alive connection stays the idle timeout's business, as in nginx. The kernel's
 * TCP_INFO says when bytes last arrived, which tells an idle connection from one whose
 * next head is trickling in. A late head gets its socket shut down; libmicrohttpd then
 * reads the end of the stream and closes the connection. The watcher thread (watch.c)
 * calls vp_heads_reap about once a second, so a deadline holds to within a second. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>

#include "engine/util/log.h"
#include "server/internal.h"

#define ADDR_LEN (INET6_ADDRSTRLEN + 8) /* an IPv6 literal, a colon and a port */

struct vp_head {
    int fd;
    bool in_head;     /* no complete request head since the last answer (or the accept) */
    bool kept_alive;  /* in_head after an answer: the deadline starts at the next byte */
    bool shut;
    void *tls_pin;    /* the TLS certificate pair it may use (tls.c), NULL on plain HTTP */
    double t_start;   /* when the deadline started (vp_sched_now_ms) */
    double t_answer;  /* when the previous answer completed */
    char addr[ADDR_LEN]; /* the client, for the log */
    vp_head *prev, *next;
};

static void client_address(struct MHD_Connection *c, char *out)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *sa = ci ? ci->client_addr : NULL;
    char ip[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (sa && sa->sa_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip);
        port = ntohs(a->sin_port);
    } else if (sa && sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof ip);
        port = ntohs(a->sin6_port);
    }
    snprintf(out, ADDR_LEN, "%s:%d", ip, port);
}

static void head_started(vp_server *s, struct MHD_Connection *c, void **socket_context)
{
    /* before the handshake; without h to unpin it at the close, the pin stays for good:
     * replaced certificates are kept, never freed in use */
    void *pin = s->tls ? vp_tls_pin() : NULL;
    if (s->cfg->tls_client_ca) {
        /* the handshake asks the client for its certificate (the session exists by now, its
         * handshake not yet begun); whether we trust it is checked per request */
        const union MHD_ConnectionInfo *si =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_GNUTLS_SESSION);
        if (si && si->tls_session)
            gnutls_certificate_server_set_request((gnutls_session_t)si->tls_session,
                                                  GNUTLS_CERT_REQUEST);
    }
    vp_head *h = calloc(1, sizeof *h);
    if (!h) {
        VP_LOGW(NULL, "out of memory: a connection goes without its request-head deadline");
        return;
    }
    h->tls_pin = pin;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    h->fd = ci ? ci->connect_fd : -1;
    h->in_head = true;
    h->t_start = vp_sched_now_ms();
    client_address(c, h->addr);
    pthread_mutex_lock(&s->heads_mu);
    h->next = s->heads;
    if (s->heads)
        s->heads->prev = h;
    s->heads = h;
    pthread_mutex_unlock(&s->heads_mu);
    *socket_context = h;
}

void vp_heads_notify(void *cls, struct MHD_Connection *c, void **socket_context,
                     enum MHD_ConnectionNotificationCode code)
{
    vp_server *s = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED)
        head_started(s, c, socket_context);
    vp_head *h = *socket_context;
    if (code != MHD_CONNECTION_NOTIFY_CLOSED || !h)
        return;
    /* the daemon closes the socket after this returns: under heads_mu, the reaper never
     * shuts down a descriptor number that another connection may have been given */
    pthread_mutex_lock(&s->heads_mu);
    if (h->prev)
        h->prev->next = h->next;
    else
        s->heads = h->next;
    if (h->next)
        h->next->prev = h->prev;
    pthread_mutex_unlock(&s->heads_mu);
    vp_tls_unpin(h->tls_pin);
    free(h);
    *socket_context = NULL;
}

void vp_heads_mark(vp_server *s, struct MHD_Connection *c, bool answered)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    vp_head *h = ci ? ci->socket_context : NULL;
    if (!h)
        return;
    pthread_mutex_lock(&s->heads_mu);
    h->in_head = answered;
    h->kept_alive = answered;
    if (answered)
        h->t_answer = vp_sched_now_ms();
    pthread_mutex_unlock(&s->heads_mu);
}

/* The kernel counts tcpi_last_data_recv in scheduler ticks (up to 10 ms) against its own
 * clock, and a quick answer completes within a millisecond of its request's last byte:
 * bytes within this much after an answer count as that request's. */
#define LAST_BYTES_SLACK_MS 100.0

/* When bytes last arrived on fd (vp_sched_now_ms clock), or < 0 when the kernel cannot say. */
static double last_bytes_ms(int fd, double now)
{
    struct tcp_info ti;
    socklen_t len = sizeof ti;
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) || len < sizeof ti)
        return -1;
    return now - (double)ti.tcpi_last_data_recv;
}

/* Whether h's head is late at now (heads_mu held). */
static bool head_late(vp_head *h, double now, double limit_ms)
{
    if (!h->in_head || h->shut || h->fd < 0)
        return false;
    if (h->kept_alive) {
        double last = last_bytes_ms(h->fd, now);
        if (last < 0 || last <= h->t_answer + LAST_BYTES_SLACK_MS)
            return false; /* idle since the answer (or the kernel cannot say): not a head */
        h->kept_alive = false; /* bytes of the next head: its deadline starts */
        h->t_start = last;
    }
    return now - h->t_start > limit_ms;
}

#define LOG_CLOSED_MAX 8 /* connections named in the log each check; the rest counted */

void vp_heads_reap(vp_server *s)
{
    double limit_ms = 1000.0 * s->cfg->header_timeout_s;
    char named[LOG_CLOSED_MAX][ADDR_LEN];
    double took[LOG_CLOSED_MAX];
    size_t n_closed = 0;
    pthread_mutex_lock(&s->heads_mu);
    double now = vp_sched_now_ms();
    for (vp_head *h = s->heads; h; h = h->next) {
        if (!head_late(h, now, limit_ms))
            continue;
        h->shut = true;
        /* counted before the client can see the close (and read /metrics after it); the
         * metrics lock is a leaf: nothing holding it takes heads_mu */
        vp_metrics_event(&s->metrics, VP_EV_HEAD_TIMEOUT);
        shutdown(h->fd, SHUT_RDWR);
        if (n_closed < LOG_CLOSED_MAX) {
            snprintf(named[n_closed], ADDR_LEN, "%s", h->addr);
            took[n_closed] = (now - h->t_start) / 1000.0;
        }
        n_closed++;
    }
    pthread_mutex_unlock(&s->heads_mu);
    /* logged outside the lock: every connection's start and end take it */
    for (size_t i = 0; i < n_closed && i < LOG_CLOSED_MAX; i++)
        VP_LOGW(NULL, "closing the connection of %s: no complete request head after %.1f s "
                      "(header_timeout_s=%d)", named[i], took[i], s->cfg->header_timeout_s);
    if (n_closed > LOG_CLOSED_MAX)
        VP_LOGW(NULL, "closing %zu more connections without a complete request head",
                n_closed - LOG_CLOSED_MAX);
}
