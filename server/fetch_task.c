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

/* The URL images of one request replaced by their bytes; errors name the image as the
 * engine names it ("requests[2].images[1]"). On the fetch worker. */
static int fetch_images(vp_conn *x, vp_score_request *req, const char *prefix, vp_error *err)
{
    vp_server *s = x->srv;
    const vp_config *c = s->cfg;
    vp_fetch_opts o = {
        .max_bytes = c->url_max_bytes < c->max_image_bytes ? c->url_max_bytes : c->max_image_bytes,
        .timeout_ms = c->url_timeout_ms,
        .max_redirects = c->url_max_redirects,
        .allow_private = c->url_allow_private,
        .cancelled = fetch_cancelled,
        .cancel_ctx = x,
    };
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
        if (vp_fetch_url(img->url, &o, param, &data, &len, err)) {
            if (err->kind != VP_ERR_UNAVAILABLE) /* not abandoned */
                vp_metrics_event(&s->metrics, VP_EV_URL_FAILED);
            return -1;
        }
        vp_metrics_event(&s->metrics, VP_EV_URL_FETCHED);
        free(img->data);
        img->data = data;
        img->len = len;
        img->kind = VP_IMAGE_BYTES;
    }
    return 0;
}

/* The fetch pool's task: every stashed request's URLs, then the connection resumed. */
static void fetch_run(void *arg, bool abandoned)
{
    vp_conn *x = arg;
    vp_server *s = x->srv;
    bool cut = abandoned;
    for (size_t i = 0; i < x->n_fetch && !cut; i++) {
        vp_fetch_req *r = &x->fetch[i];
        if (fetch_cancelled(x)) {
            cut = true;
            break;
        }
        r->rc = fetch_images(x, &r->req, r->prefix, &r->err);
        cut = r->rc && r->err.kind == VP_ERR_UNAVAILABLE;
    }
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
    for (size_t i = 0; i < x->n_held; i++)
        vp_job_free(x->held_jobs[i]);
    free(x->held_jobs);
    free(x->held_item_of_job);
}
