/* The watcher thread. About once a second it closes connections whose request head is
 * late (head_deadline.c). And it watches for disconnects: libmicrohttpd does not look at
 * suspended connections, so every 50 ms this thread peeks (MSG_PEEK, non-blocking) at the
 * socket of each request waiting for the engine or for its image URLs: end of stream or
 * a socket error means the client is gone, and its jobs are cancelled (a queued job is
 * skipped, a running one has its result dropped), or its fetch is abandoned. Bytes waiting
 * to be read (a pipelined next request, a TLS record) mean the client is still there,
 * unless the kernel says its FIN came after them (CLOSE_WAIT: a TLS client's close_notify
 * comes just before it). A half-close (the client shut only its sending side) reads as
 * end of stream too (and so does one that pipelined its next request before it: both are
 * cancelled), which is why --no-cancel-on-disconnect turns this check off. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine/util/log.h"
#include "server/internal.h"

#define WATCH_INTERVAL_US 50000
#define HEADS_EVERY 20 /* intervals between two checks of the request-head deadline */

void vp_watch_add_locked(vp_server *s, vp_conn *x)
{
    x->wprev = NULL;
    x->wnext = s->waiting;
    if (s->waiting)
        s->waiting->wprev = x;
    s->waiting = x;
    s->n_waiting++;
}

void vp_watch_remove_locked(vp_server *s, vp_conn *x)
{
    if (x->wprev)
        x->wprev->wnext = x->wnext;
    else if (s->waiting == x)
        s->waiting = x->wnext;
    if (x->wnext)
        x->wnext->wprev = x->wprev;
    x->wprev = x->wnext = NULL;
    s->n_waiting--;
}

static bool client_gone(int fd)
{
    if (fd < 0)
        return false;
    char c;
    ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0)
        return true;
    if (n < 0)
        return errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
    /* bytes wait unread, yet the client may have closed after them: over TLS a closing
     * client sends its close_notify alert before the FIN, and nothing reads it while the
     * connection is suspended. The kernel knows the FIN came (CLOSE_WAIT). */
    struct tcp_info ti;
    socklen_t tl = sizeof ti;
    return getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &tl) == 0 && ti.tcpi_state == TCP_CLOSE_WAIT;
}

static void *watch_main(void *arg)
{
    vp_server *s = arg;
    size_t cap = 0;
    vp_sched_ticket **gone = NULL;
    for (unsigned tick = 1; !atomic_load(&s->watcher_stop); tick++) {
        usleep(WATCH_INTERVAL_US);
        if (tick % HEADS_EVERY == 0)
            vp_heads_reap(s);
        if (!s->cfg->cancel_on_disconnect)
            continue;
        size_t n = 0;
        pthread_mutex_lock(&s->wait_mu);
        /* a connection in the list is suspended, so its socket is still open */
        for (vp_conn *x = s->waiting; x; x = x->wnext) {
            if (x->gone || !client_gone(x->fd))
                continue;
            if (n + x->n_items > cap) {
                size_t nc = (n + x->n_items) * 2;
                vp_sched_ticket **ng = realloc(gone, nc * sizeof *ng);
                if (!ng)
                    break; /* x stays not gone: the next round tries again */
                gone = ng;
                cap = nc;
            }
            x->gone = true;
            atomic_store(&x->fetch_abort, true); /* a fetch worker polls it */
            VP_LOGI(x->id, "client disconnected while waiting: cancelling its work");
            for (size_t i = 0; i < x->n_items; i++)
                if (x->items[i].ticket) {
                    vp_sched_ticket_retain(x->items[i].ticket);
                    gone[n++] = x->items[i].ticket;
                }
        }
        pthread_mutex_unlock(&s->wait_mu);
        /* cancel without the list lock (a cancel may complete the request at once), all
         * in one call: no sibling of a cancelled job starts in between */
        for (size_t i = n ? vp_sched_cancel_many(s->sched, gone, n) : 0; i > 0; i--)
            vp_metrics_event(&s->metrics, VP_EV_CANCELLED);
        for (size_t i = 0; i < n; i++)
            vp_sched_ticket_release(gone[i]);
    }
    free(gone);
    return NULL;
}

int vp_watch_start(vp_server *s, vp_error *err)
{
    if (!s->cfg->cancel_on_disconnect)
        VP_LOGI(NULL, "cancel_on_disconnect is off: work of clients that close is computed");
    atomic_store(&s->watcher_stop, false);
    if (pthread_create(&s->watcher, NULL, watch_main, s))
        return vp_fail(err, VP_ERR_INTERNAL, "", "cannot start the connection watcher thread");
    s->watcher_started = true;
    return 0;
}

void vp_watch_stop(vp_server *s)
{
    if (!s->watcher_started)
        return;
    atomic_store(&s->watcher_stop, true);
    pthread_join(s->watcher, NULL);
    s->watcher_started = false;
}
