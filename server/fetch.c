/* Image URL fetching with libcurl, guarded against SSRF through CURLOPT_OPENSOCKETFUNCTION:
 * the check runs on the resolved address of every connection, redirects included, so
 * DNS tricks cannot reach an internal address. */
#include "server/fetch.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

bool vp_addr_is_private(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        uint32_t a = ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr);
        return (a >> 24) == 0 ||                /* 0.0.0.0/8 */
               (a >> 24) == 10 ||               /* 10/8 */
               (a >> 24) == 127 ||              /* loopback */
               (a >> 22) == (100u << 2 | 1) ||  /* 100.64/10 CGNAT */
               (a >> 16) == (169u << 8 | 254) || /* link-local */
               (a >> 20) == (172u << 4 | 1) ||  /* 172.16/12 */
               (a >> 16) == (192u << 8 | 168) || /* 192.168/16 */
               (a >> 28) >= 14;                 /* multicast, reserved, broadcast */
    }
    if (sa->sa_family == AF_INET6) {
        const uint8_t *b = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
        static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (!memcmp(b, mapped, 12)) {
            struct sockaddr_in v4;
            memset(&v4, 0, sizeof v4);
            v4.sin_family = AF_INET;
            memcpy(&v4.sin_addr, b + 12, 4);
            return vp_addr_is_private((const struct sockaddr *)&v4);
        }
        bool zero_prefix = true; /* :: and ::1 (and the deprecated ::a.b.c.d) */
        for (int i = 0; i < 12; i++)
            zero_prefix &= b[i] == 0;
        return zero_prefix || (b[0] & 0xfe) == 0xfc || /* fc00::/7 unique local */
               (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) || /* fe80::/10 link-local */
               b[0] == 0xff;                              /* multicast */
    }
    return true; /* anything else is not a public internet address */
}

typedef struct fetch_ctx {
    const vp_fetch_opts *o;
    uint8_t *buf;
    size_t len, cap;
    bool too_large;
    bool refused;
    char refused_addr[INET6_ADDRSTRLEN];
} fetch_ctx;

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    fetch_ctx *c = userdata;
    size_t n = size * nmemb;
    if (c->len + n > c->o->max_bytes) {
        c->too_large = true;
        return 0; /* aborts the transfer */
    }
    if (c->len + n > c->cap) {
        size_t nc = c->cap ? c->cap : 65536;
        while (nc < c->len + n)
            nc *= 2;
        if (nc > c->o->max_bytes)
            nc = c->o->max_bytes;
        uint8_t *nb = realloc(c->buf, nc);
        if (!nb)
            return 0;
        c->buf = nb;
        c->cap = nc;
    }
    memcpy(c->buf + c->len, ptr, n);
    c->len += n;
    return n;
}

static curl_socket_t on_open_socket(void *clientp, curlsocktype purpose,
                                    struct curl_sockaddr *address)
{
    fetch_ctx *c = clientp;
    (void)purpose;
    if (!c->o->allow_private && vp_addr_is_private(&address->addr)) {
        c->refused = true;
        const void *a = address->family == AF_INET6
                            ? (const void *)&((struct sockaddr_in6 *)&address->addr)->sin6_addr
                            : (const void *)&((struct sockaddr_in *)&address->addr)->sin_addr;
        inet_ntop(address->family, a, c->refused_addr, sizeof c->refused_addr);
        return CURL_SOCKET_BAD;
    }
    return socket(address->family, address->socktype, address->protocol);
}

int vp_fetch_url(const char *url, const vp_fetch_opts *o, const char *param, uint8_t **out,
                 size_t *len, vp_error *err)
{
    *out = NULL;
    *len = 0;
    if (strncmp(url, "http://", 7) && strncmp(url, "https://", 8))
        return vp_fail(err, VP_ERR_BAD_REQUEST, param, "only http:// and https:// image URLs are fetched");
    CURL *h = curl_easy_init();
    if (!h)
        return vp_fail(err, VP_ERR_NOMEM, param, "cannot start an image URL fetch");
    fetch_ctx c = {.o = o};
    char curl_err[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, o->max_redirects > 0 ? 1L : 0L);
    curl_easy_setopt(h, CURLOPT_MAXREDIRS, o->max_redirects);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, o->timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, o->timeout_ms);
    curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)o->max_bytes);
    curl_easy_setopt(h, CURLOPT_PROXY, ""); /* no proxy from the environment */
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &c);
    curl_easy_setopt(h, CURLOPT_OPENSOCKETFUNCTION, on_open_socket);
    curl_easy_setopt(h, CURLOPT_OPENSOCKETDATA, &c);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, curl_err);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "vprm-image-fetch/1");
    CURLcode rc = curl_easy_perform(h);
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(h);
    int ret = 0;
    if (c.refused)
        ret = vp_fail(err, VP_ERR_BAD_REQUEST, param,
                      "image URL resolves to a loopback/private/link-local address (%s): refused "
                      "(url_allow_private is off)",
                      c.refused_addr);
    else if (c.too_large || rc == CURLE_FILESIZE_EXCEEDED)
        ret = vp_fail(err, VP_ERR_TOO_LARGE, param,
                      "image URL body is over the limit url_max_bytes=%zu", o->max_bytes);
    else if (rc == CURLE_OPERATION_TIMEDOUT)
        ret = vp_fail(err, VP_ERR_BAD_REQUEST, param,
                      "image URL fetch took longer than url_timeout_ms=%ld", o->timeout_ms);
    else if (rc == CURLE_TOO_MANY_REDIRECTS)
        ret = vp_fail(err, VP_ERR_BAD_REQUEST, param,
                      "image URL redirected more than url_max_redirects=%ld times",
                      o->max_redirects);
    else if (rc != CURLE_OK)
        ret = vp_fail(err, VP_ERR_BAD_REQUEST, param, "image URL could not be fetched: %s",
                      curl_err[0] ? curl_err : curl_easy_strerror(rc));
    else if (status < 200 || status >= 300)
        ret = vp_fail(err, VP_ERR_BAD_REQUEST, param, "image URL answered HTTP %ld", status);
    else if (c.len == 0)
        ret = vp_fail(err, VP_ERR_BAD_REQUEST, param, "image URL returned an empty body");
    if (ret) {
        free(c.buf);
        return ret;
    }
    *out = c.buf;
    *len = c.len;
    return 0;
}
