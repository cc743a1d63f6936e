/* A request with image URLs, fetched off the HTTP threads. The HTTP thread that read it
 * stashes the parsed request(s) in the connection, queues a task on the fetch pool and
 * suspends the connection, as vp_conn_submit does for the engine, so its thread goes back
 * to the other connections libmicrohttpd gave it. A fetch worker downloads the images,
 * then resumes the connection; the HTTP thread that picks it up prepares (decode,
 * tokenize) and queues it exactly like a request that sent the bytes inline.
 *
 * Lifetime: a suspended connection is never closed by libmicrohttpd, so x stays alive
 * until the worker resumes it; the worker touches nothing of x after that. The watcher
 * (watch.c) sees the suspended connection as it sees one waiting for the engine: a client
 * that hangs up sets x->fetch_abort, and the download in progress stops within about a
 * second (libcurl's progress callback). A shutdown stops the pool the same way: running
 * downloads stop, queued tasks resume their connections at once, and those get 503. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/util/log.h"
#include "server/fetch.h"
#include "server/internal.h"

int vp_fetch_start_pool(vp_server *s, vp_error *err)
{
    return vp_fetch_pool_start(s->cfg->url_fetch_threads, s->cfg->url_fetch_queue,
                               &s->fetch_pool, err);
}

bool vp_request_has_urls(const vp_score_request *req)
{
    for (size_t i = 0; i < req->n_images; i++)
        if (req->images[i].kind == VP_IMAGE_URL)
            return true;
    return false;
}

int vp_fetch_stash(vp_conn *x, vp_score_request *req, const char *prefix, size_t item,
                   size_t cap)
{
    if (!x->fetch && !(x->fetch = calloc(cap, sizeof *x->fetch))) {
        vp_request_free(req);
        return -1;
    }
    vp_fetch_req *r = &x->fetch[x->n_fetch++];
    r->req = *req;
    memset(req, 0, sizeof *req);
    r->live = true;
    r->item = item;
    snprintf(r->prefix, sizeof r->prefix, "%s", prefix);
    return 0;
}

static bool fetch_cancelled(void *ctx)
{
    vp_conn *x = ctx;
    return atomic_load(&x->fetch_abort) || vp_fetch_pool_stopping(x->srv->fetch_pool);
}

static uint64_t url_hash(const char *url)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (const unsigned char *p = (const unsigned char *)url; *p; p++)
        h = (h ^ *p) * 1099511628211ull;
    return h;
}

/* The image URLs of one connection's requests fetched so far (each its first place), and
 * what the connection may still spend: time (its wait for a fetch thread included) and
 * bytes held. */
typedef struct fetch_seen {
    uint64_t hash;
    const char *url;
    const vp_image_src *img; /* its bytes (url kept); NULL: the fetch failed, with err */
    vp_error err;
} fetch_seen;

typedef struct fetch_budget {
    double deadline;
    size_t bytes_left;
    bool started;
    fetch_seen *seen; /* [n_seen] each URL fetched (or tried) once */
    size_t n_seen;
} fetch_budget;

static const fetch_seen *fetched_before(const fetch_budget *b, const char *url, uint64_t h)
{
    for (size_t i = 0; i < b->n_seen; i++)
        if (b->seen[i].hash == h && !strcmp(b->seen[i].url, url))
            return &b->seen[i];
    return NULL;
}

/* One URL image's bytes: a copy of an earlier fetch of the same URL, or fetched within
 * what is left of the budget (each limit that applies named in its error). */
static int fetch_one(vp_conn *x, fetch_budget *b, const vp_image_src *img, const char *param,
                     uint8_t **data, size_t *len, bool *fetched, vp_error *err)
{
    *fetched = false;
    const vp_config *c = x->srv->cfg;
    uint64_t h = url_hash(img->url);
    const fetch_seen *seen = fetched_before(b, img->url, h);
    if (seen && !seen->img) { /* tried once: a repeat gets its error, not another fetch */
        *err = seen->err;
        snprintf(err->param, sizeof err->param, "%s", param);
        return -1;
    }
    const vp_image_src *same = seen ? seen->img : NULL;
    if (same) { /* fetched once: repeats are copies, counted as held bytes */
        if (same->len > b->bytes_left)
            return vp_fail(err, VP_ERR_TOO_LARGE, param,
                           "image URLs of this request are over the limit "
                           "url_max_request_bytes=%zu (a repeated URL counts each time)",
                           c->url_max_request_bytes);
        if (!(*data = malloc(same->len)))
            return vp_fail(err, VP_ERR_NOMEM, param, "out of memory");
        memcpy(*data, same->data, same->len);
        *len = same->len;
        return 0;
    }
    double now = vp_sched_now_ms(), left_ms = b->deadline - now;
    /* over half the time spent waiting for a fetch thread: the server is too busy, not the
     * image host too slow; refused before a fetch that would likely run out of time */
    if (!b->started && now - x->t_fetch > c->url_request_timeout_ms / 2.0)
        return vp_fail(err, VP_ERR_BUSY, param,
                       "image URL fetching is at capacity: this request waited %.0f ms of its "
                       "url_request_timeout_ms=%d for a fetch thread; retry later, or send the "
                       "image as base64", now - x->t_fetch, c->url_request_timeout_ms);
    if (left_ms < 1) {
        return vp_fail(err, VP_ERR_BAD_REQUEST, param,
                       "the image URL fetches of this request took longer than "
                       "url_request_timeout_ms=%d", c->url_request_timeout_ms);
    }
    vp_fetch_opts o = {
        .max_bytes = c->url_max_bytes,
        .max_bytes_name = "url_max_bytes",
        .max_bytes_option = c->url_max_bytes,
        .timeout_ms = c->url_timeout_ms,
        .timeout_name = "url_timeout_ms",
        .timeout_option = c->url_timeout_ms,
        .max_redirects = c->url_max_redirects,
        .allow_private = c->url_allow_private,
        .ports = c->url_ports,
        .cancelled = fetch_cancelled,
        .cancel_ctx = x,
    };
    if (c->max_image_bytes < o.max_bytes)
        o.max_bytes = o.max_bytes_option = c->max_image_bytes, o.max_bytes_name = "max_image_bytes";
    if (b->bytes_left < o.max_bytes) {
        o.max_bytes = b->bytes_left;
        o.max_bytes_name = "url_max_request_bytes";
        o.max_bytes_option = c->url_max_request_bytes;
    }
    if (left_ms < (double)o.timeout_ms) {
        o.timeout_ms = (long)left_ms;
        o.timeout_name = "url_request_timeout_ms";
        o.timeout_option = c->url_request_timeout_ms;
    }
    if (o.max_bytes == 0)
        return vp_fail(err, VP_ERR_TOO_LARGE, param,
                       "image URLs of this request are over the limit url_max_request_bytes=%zu",
                       c->url_max_request_bytes);
    b->started = true;
    *fetched = true;
    int rc = vp_fetch_url(img->url, &o, param, data, len, err);
    b->seen[b->n_seen++] = (fetch_seen){.hash = h, .url = img->url, .img = rc ? NULL : img,
                                        .err = rc ? *err : (vp_error){0}};
    return rc;
}

/* The URL images of one request replaced by their bytes; errors name the image as the
 * engine names it ("requests[2].images[1]"). On the fetch worker. */
static int fetch_images(vp_conn *x, fetch_budget *b, vp_score_request *req, const char *prefix,
                        vp_error *err)
{
    vp_server *s = x->srv;
    for (size_t i = 0; i < req->n_images; i++) {
        vp_image_src *img = &req->images[i];
        if (img->kind != VP_IMAGE_URL)
            continue;
        char param[128];
        if (req->n_images == 1)
            snprintf(param, sizeof param, "%simage", prefix);
        else
            snprintf(param, sizeof param, "%simages[%zu]", prefix, i);
        uint8_t *data;
        size_t len;
        bool fetched; /* a download ran (not a repeat, not refused before one) */
        if (fetch_one(x, b, img, param, &data, &len, &fetched, err)) {
            if (fetched && err->kind != VP_ERR_UNAVAILABLE) /* not abandoned */
                vp_metrics_event(&s->metrics, VP_EV_URL_FAILED);
            return -1;
        }
        if (fetched)
            vp_metrics_event(&s->metrics, VP_EV_URL_FETCHED);
        free(img->data);
        img->data = data;
        img->len = len;
        img->kind = VP_IMAGE_BYTES; /* img->url kept: a later repeat copies these bytes */
        b->bytes_left -= len;
    }
    return 0;
}

/* The URL images of x's stashed requests: how many, and an error naming the first past
 * url_max_per_request different ones. */
static int count_urls(vp_conn *x, size_t *n_urls, vp_error *err)
{
    size_t n = 0;
    for (size_t i = 0; i < x->n_fetch; i++)
        for (size_t j = 0; j < x->fetch[i].req.n_images; j++)
            n += x->fetch[i].req.images[j].kind == VP_IMAGE_URL;
    *n_urls = n;
    size_t cap = 16;
    while (cap < 2 * n)
        cap *= 2;
    const char **set = calloc(cap, sizeof *set); /* open addressing by hash; NULL = empty */
    if (!set)
        return vp_fail(err, VP_ERR_NOMEM, "", "out of memory");
    size_t distinct = 0, limit = x->srv->cfg->url_max_per_request;
    for (size_t i = 0; i < x->n_fetch; i++) {
        const vp_score_request *req = &x->fetch[i].req;
        for (size_t j = 0; j < req->n_images; j++) {
            if (req->images[j].kind != VP_IMAGE_URL)
                continue;
            const char *url = req->images[j].url;
            size_t k = (size_t)url_hash(url) & (cap - 1);
            while (set[k] && strcmp(set[k], url))
                k = (k + 1) & (cap - 1);
            if (set[k])
                continue; /* the same URL again */
            set[k] = url;
            if (++distinct > limit) {
                free(set);
                char param[128];
                if (req->n_images == 1)
                    snprintf(param, sizeof param, "%simage", x->fetch[i].prefix);
                else
                    snprintf(param, sizeof param, "%simages[%zu]", x->fetch[i].prefix, j);
                return vp_fail(err, VP_ERR_TOO_LARGE, param,
                               "more than url_max_per_request=%zu different image URLs in one "
                               "request", limit);
            }
        }
    }
    free(set);
    return 0;
}

/* The fetch pool's task: every stashed request's URLs, then the connection resumed. */
static void fetch_run(void *arg, bool abandoned)
{
    vp_conn *x = arg;
    vp_server *s = x->srv;
    bool cut = abandoned;
    fetch_budget b = {.deadline = x->t_fetch + s->cfg->url_request_timeout_ms,
                      .bytes_left = s->cfg->url_max_request_bytes};
    b.seen = calloc(x->n_urls ? x->n_urls : 1, sizeof *b.seen);
    for (size_t i = 0; i < x->n_fetch && !cut; i++) {
        vp_fetch_req *r = &x->fetch[i];
        if (fetch_cancelled(x)) {
            cut = true;
            break;
        }
        if (!b.seen)
            r->rc = vp_fail(&r->err, VP_ERR_NOMEM, "", "out of memory");
        else
            r->rc = fetch_images(x, &b, &r->req, r->prefix, &r->err);
        cut = r->rc && r->err.kind == VP_ERR_UNAVAILABLE;
        if (r->rc && r->err.kind == VP_ERR_BUSY) { /* the server's state, not the item's: the
                                                     * whole request gets the 429 */
            x->fetch_busy = true;
            x->fetch_busy_err = r->err;
            break;
        }
    }
    free(b.seen);
    /* cut short: by the client leaving (the watcher set x->gone first: no answer) or by
     * a shutdown (503) */
    x->fetch_refused = cut;
    x->fetch_ms = vp_sched_now_ms() - x->t_fetch;
    pthread_mutex_lock(&x->mu);
    pthread_mutex_lock(&s->wait_mu);
    vp_watch_remove_locked(s, x);
    pthread_mutex_unlock(&s->wait_mu);
    x->suspended = false;
    /* under x->mu: vp_fetch_start suspended under it, so resume follows suspend */
    MHD_resume_connection(x->mhd);
    pthread_mutex_unlock(&x->mu);
    /* x is the HTTP thread's again (it may be freed by now) */
}

enum MHD_Result vp_fetch_start(vp_conn *x)
{
    vp_server *s = x->srv;
    vp_error err;
    if (!s->fetch_pool) /* the parser refuses URLs then: not reached */
        return vp_reply_errorf(x, VP_ERR_BAD_REQUEST, "",
                               "image URLs are not enabled on this server; send the image as base64");
    if (count_urls(x, &x->n_urls, &err))
        return vp_reply_error(x, &err);
    x->t_fetch = vp_sched_now_ms();
    pthread_mutex_lock(&x->mu);
    if (vp_fetch_pool_submit(s->fetch_pool, fetch_run, x, &err)) {
        pthread_mutex_unlock(&x->mu);
        vp_metrics_event(&s->metrics, err.kind == VP_ERR_BUSY ? VP_EV_URL_BUSY : VP_EV_DRAINING);
        return vp_reply_error(x, &err);
    }
    vp_conn_suspend_locked(x, PHASE_FETCH);
    pthread_mutex_unlock(&x->mu);
    return MHD_YES;
}

enum MHD_Result vp_fetch_resumed(vp_conn *x)
{
    /* the worker wrote x->fetch before its unlock of x->mu: this lock orders the reads
     * after those writes in the program's own synchronisation, not only libmicrohttpd's */
    pthread_mutex_lock(&x->mu);
    pthread_mutex_unlock(&x->mu);
    if (x->gone) {
        x->client_gone = true;
        return MHD_NO; /* nobody to answer: close */
    }
    if (x->fetch_busy) {
        vp_metrics_event(&x->srv->metrics, VP_EV_URL_BUSY);
        return vp_reply_error(x, &x->fetch_busy_err);
    }
    if (x->fetch_refused) {
        vp_metrics_event(&x->srv->metrics, VP_EV_DRAINING);
        return vp_reply_errorf(x, VP_ERR_UNAVAILABLE, "",
                               "the server is shutting down: the image URL fetch was abandoned");
    }
    return x->route->fetched(x);
}

void vp_fetch_free(vp_conn *x)
{
    for (size_t i = 0; i < x->n_fetch; i++)
        if (x->fetch[i].live)
            vp_request_free(&x->fetch[i].req);
    free(x->fetch);
}
