#include "server/bench/http_client.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

size_t vp_http_buf_append(char *ptr, size_t size, size_t nmemb, void *ud)
{
    vp_http_buf *g = ud;
    size_t n = size * nmemb;
    char *np = realloc(g->p, g->n + n + 1);
    if (!np)
        return 0;
    memcpy(np + g->n, ptr, n);
    g->p = np;
    g->n += n;
    g->p[g->n] = 0;
    return n;
}

static const char *client_cert, *client_key;

void vp_http_set_client_cert(const char *cert, const char *key)
{
    client_cert = cert;
    client_key = key;
}

void vp_http_set_tls(void *curl)
{
    const char *ca = getenv("CURL_CA_BUNDLE");
    if (ca && *ca)
        curl_easy_setopt((CURL *)curl, CURLOPT_CAINFO, ca);
    if (client_cert) {
        curl_easy_setopt((CURL *)curl, CURLOPT_SSLCERT, client_cert);
        curl_easy_setopt((CURL *)curl, CURLOPT_SSLKEY, client_key);
    }
}

int vp_http_request(const char *method, const char *url, const char *body, size_t len,
                    const char *const *headers, long timeout_s, vp_http_reply *out)
{
    memset(out, 0, sizeof *out);
    CURL *h = curl_easy_init();
    if (!h) {
        snprintf(out->error, sizeof out->error, "curl_easy_init failed");
        return -1;
    }
    struct curl_slist *hl = curl_slist_append(NULL, "Expect:");
    for (size_t i = 0; headers && headers[i]; i++)
        hl = curl_slist_append(hl, headers[i]);
    vp_http_buf b = {0}, hd = {0};
    curl_easy_setopt(h, CURLOPT_URL, url);
    vp_http_set_tls(h);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    if (body) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    }
    if (!strcmp(method, "HEAD"))
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, vp_http_buf_append);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, vp_http_buf_append);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &hd);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, timeout_s);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    CURLcode rc = curl_easy_perform(h);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    out->ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &out->status);
    curl_easy_cleanup(h);
    curl_slist_free_all(hl);
    out->body = b.p ? b.p : calloc(1, 1);
    out->len = b.n;
    out->headers = hd.p ? hd.p : calloc(1, 1);
    if (rc != CURLE_OK) {
        snprintf(out->error, sizeof out->error, "%s", curl_easy_strerror(rc));
        out->status = 0;
        return -1;
    }
    return 0;
}

void vp_http_reply_free(vp_http_reply *r)
{
    free(r->body);
    free(r->headers);
    memset(r, 0, sizeof *r);
}

const char *vp_http_header(const vp_http_reply *r, const char *name, char *buf, size_t cap)
{
    size_t n = strlen(name);
    for (const char *p = r->headers; p && *p;) {
        if (!strncasecmp(p, name, n) && p[n] == ':') {
            const char *v = p + n + 1;
            while (*v == ' ')
                v++;
            size_t k = strcspn(v, "\r\n");
            if (k >= cap)
                k = cap - 1;
            memcpy(buf, v, k);
            buf[k] = 0;
            return buf;
        }
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    return NULL;
}
