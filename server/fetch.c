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
#include <strings.h>
#include <unistd.h>

#include "config/port_list.h"

/* An IPv4 address (host order) that is not globally reachable: IANA's IPv4
 * Special-Purpose Address Registry (RFC 6890 and updates), plus multicast. Whole blocks
 * are refused where the registry marks only some of their addresses global (192.0.0/24):
 * no image is served from those. */
static bool v4_not_global(uint32_t a)
{
    static const struct { uint32_t net; int bits; } blocks[] = {
        {0x00000000, 8},  /* 0/8 "this network" */
        {0x0a000000, 8},  /* 10/8 private */
        {0x64400000, 10}, /* 100.64/10 shared (CGNAT) */
        {0x7f000000, 8},  /* 127/8 loopback */
        {0xa9fe0000, 16}, /* 169.254/16 link-local (cloud metadata) */
        {0xac100000, 12}, /* 172.16/12 private */
        {0xc0000000, 24}, /* 192.0.0/24 IETF protocol assignments */
        {0xc0000200, 24}, /* 192.0.2/24 documentation */
        {0xc0586300, 24}, /* 192.88.99/24 6to4 relay anycast (deprecated) */
        {0xc0a80000, 16}, /* 192.168/16 private */
        {0xc6120000, 15}, /* 198.18/15 benchmarking */
        {0xc6336400, 24}, /* 198.51.100/24 documentation */
        {0xcb007100, 24}, /* 203.0.113/24 documentation */
        {0xe0000000, 4},  /* 224/4 multicast */
        {0xf0000000, 4},  /* 240/4 reserved, 255.255.255.255 broadcast */
    };
    for (size_t i = 0; i < sizeof blocks / sizeof *blocks; i++)
        if ((a ^ blocks[i].net) >> (32 - blocks[i].bits) == 0)
            return true;
    return false;
}

static uint32_t v4_at(const uint8_t *b)
{
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

/* True when the first `bits` bits of the IPv6 address b equal those of prefix. */
static bool v6_in(const uint8_t *b, const uint8_t *prefix, int bits)
{
    int whole = bits / 8, rest = bits % 8;
    if (memcmp(b, prefix, (size_t)whole))
        return false;
    return rest == 0 || ((b[whole] ^ prefix[whole]) >> (8 - rest)) == 0;
}

/* An IPv6 address that is not globally reachable (IANA's IPv6 Special-Purpose Address
 * Registry, plus site-local and multicast), or that embeds an IPv4 address which is not
 * (mapped, translated, NAT64, 6to4): a gateway would carry the connection there. */
static bool v6_not_global(const uint8_t *b)
{
    typedef uint8_t v6_prefix[16]; /* whole addresses: v6_in may read the byte after */
    static const v6_prefix zero, mapped = {[10] = 0xff, [11] = 0xff},
                           translated = {[8] = 0xff, [9] = 0xff}, nat64 = {0, 0x64, 0xff, 0x9b},
                           nat64_local = {0, 0x64, 0xff, 0x9b, 0, 1}, discard = {1},
                           ietf = {0x20, 0x01}, doc = {0x20, 0x01, 0x0d, 0xb8},
                           doc2 = {0x3f, 0xff}, srv6 = {0x5f, 0x00}, six_to_four = {0x20, 0x02},
                           ula = {0xfc}, link_local = {0xfe, 0x80}, site_local = {0xfe, 0xc0},
                           multicast = {0xff};
    if (v6_in(b, mapped, 96) || v6_in(b, translated, 96) || v6_in(b, nat64, 96))
        return v4_not_global(v4_at(b + 12));
    if (v6_in(b, six_to_four, 16))
        return v4_not_global(v4_at(b + 2));
    return v6_in(b, zero, 96) ||        /* ::, ::1 and the deprecated ::a.b.c.d */
           v6_in(b, nat64_local, 48) || /* 64:ff9b:1::/48 local-use NAT64 */
           v6_in(b, discard, 63) ||     /* 100::/64 discard-only, 100:0:0:1::/64 dummy */
           v6_in(b, ietf, 23) ||        /* 2001::/23 IETF protocol assignments (Teredo...) */
           v6_in(b, doc, 32) ||         /* 2001:db8::/32 documentation */
           v6_in(b, doc2, 20) ||        /* 3fff::/20 documentation */
           v6_in(b, srv6, 16) ||        /* 5f00::/16 segment routing */
           v6_in(b, ula, 7) ||          /* fc00::/7 unique local */
           v6_in(b, link_local, 10) ||  /* fe80::/10 */
           v6_in(b, site_local, 10) ||  /* fec0::/10 site-local (deprecated, still routed) */
           v6_in(b, multicast, 8);
}

bool vp_addr_is_private(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return v4_not_global(ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr));
    if (sa->sa_family == AF_INET6)
        return v6_not_global(((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr);
    return true; /* anything else is not a public internet address */
}

typedef struct fetch_ctx {
    const vp_fetch_opts *o;
    uint8_t *buf;
    size_t len, cap;
    bool too_large;
    bool refused;
    char refused_addr[INET6_ADDRSTRLEN];
    unsigned refused_port; /* not in o->ports (0: none refused) */
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

static int on_progress(void *clientp, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    fetch_ctx *c = clientp;
    (void)dltotal, (void)dlnow, (void)ultotal, (void)ulnow;
    return c->o->cancelled(c->o->cancel_ctx) ? 1 : 0; /* non-zero aborts the transfer */
}

/* True when the host of the URL libcurl last worked on (the first or a redirect's) is an
 * IP address literal: only then may a refusal name the address, which the client knows
 * already; a host name's address would tell it what internal names resolve to. */
static bool effective_host_is_literal(CURL *h)
{
    char *eff = NULL, *host = NULL;
    bool literal = false;
    CURLU *u = curl_url();
    if (u && curl_easy_getinfo(h, CURLINFO_EFFECTIVE_URL, &eff) == CURLE_OK && eff &&
        curl_url_set(u, CURLUPART_URL, eff, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK && host) {
        unsigned char a[16];
        char v6[INET6_ADDRSTRLEN + 1];
        size_t n = strlen(host);
        if (host[0] == '[' && n > 2 && n - 2 < sizeof v6) {
            memcpy(v6, host + 1, n - 2);
            v6[n - 2] = 0;
            v6[strcspn(v6, "%")] = 0; /* a zone id */
            literal = inet_pton(AF_INET6, v6, a) == 1;
        } else {
            literal = inet_pton(AF_INET, host, a) == 1;
        }
    }
    curl_free(host);
    curl_url_cleanup(u);
    return literal;
}

bool vp_fetch_https_only(const char *url)
{
    return strncasecmp(url, "https://", 8) == 0;
}

/* Only http and https, for the first URL and every redirect (https only after an https
 * URL: a client that asked for https gets no plain-text hop): the options that say so
 * must take, or nothing is fetched. */
static CURLcode restrict_protocols(CURL *h, bool https_only)
{
#if LIBCURL_VERSION_NUM >= 0x075500 /* 7.85: the string forms; the bit masks are deprecated */
    CURLcode rc = curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    return rc ? rc : curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, https_only ? "https" : "http,https");
#else
    CURLcode rc = curl_easy_setopt(h, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
    long redir = https_only ? (long)CURLPROTO_HTTPS : (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS);
    return rc ? rc : curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS, redir);
#endif
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
    unsigned port = ntohs(address->family == AF_INET6
                              ? ((struct sockaddr_in6 *)&address->addr)->sin6_port
                              : ((struct sockaddr_in *)&address->addr)->sin_port);
    if (!vp_port_list_has(c->o->ports, port)) {
        c->refused_port = port;
        return CURL_SOCKET_BAD;
    }
    return socket(address->family, address->socktype, address->protocol);
}

int vp_fetch_url(const char *url, const vp_fetch_opts *o, const char *param, uint8_t **out,
                 size_t *len, vp_error *err)
{
    *out = NULL;
    *len = 0;
    if (strncasecmp(url, "http://", 7) && strncasecmp(url, "https://", 8))
        return vp_fail(err, VP_ERR_BAD_REQUEST, param, "only http:// and https:// image URLs are fetched");
    CURL *h = curl_easy_init();
    if (!h)
        return vp_fail(err, VP_ERR_NOMEM, param, "cannot start an image URL fetch");
    fetch_ctx c = {.o = o};
    char curl_err[CURL_ERROR_SIZE] = "";
    CURLcode sc = curl_easy_setopt(h, CURLOPT_URL, url);
    if (sc != CURLE_OK) {
        curl_easy_cleanup(h);
        return vp_fail(err, VP_ERR_BAD_REQUEST, param, "image URL not taken by libcurl: %s",
                       curl_easy_strerror(sc));
    }
    /* the guards: fail closed when libcurl does not take one */
    bool https_only = vp_fetch_https_only(url);
    if (restrict_protocols(h, https_only) != CURLE_OK ||
        curl_easy_setopt(h, CURLOPT_PROXY, "") != CURLE_OK || /* no proxy from the environment */
        curl_easy_setopt(h, CURLOPT_OPENSOCKETFUNCTION, on_open_socket) != CURLE_OK ||
        curl_easy_setopt(h, CURLOPT_OPENSOCKETDATA, &c) != CURLE_OK ||
        curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)o->max_bytes) != CURLE_OK ||
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, o->timeout_ms) != CURLE_OK) {
        curl_easy_cleanup(h);
        return vp_fail(err, VP_ERR_INTERNAL, param,
                       "this libcurl does not take an option the image URL fetch needs");
    }
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, o->max_redirects > 0 ? 1L : 0L);
    curl_easy_setopt(h, CURLOPT_MAXREDIRS, o->max_redirects);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, o->timeout_ms);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &c);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, curl_err);
    if (o->cancelled) {
        curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(h, CURLOPT_XFERINFODATA, &c);
    }
    curl_easy_setopt(h, CURLOPT_USERAGENT, "vprm-image-fetch/1");
    CURLcode rc = curl_easy_perform(h);
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    bool literal = c.refused && effective_host_is_literal(h);
    curl_easy_cleanup(h);
    const char *bytes_name = o->max_bytes_name ? o->max_bytes_name : "url_max_bytes";
    const char *time_name = o->timeout_name ? o->timeout_name : "url_timeout_ms";
    int ret = 0;
    if (c.refused && literal)
        ret = vp_fail(err, VP_ERR_BAD_REQUEST, param,
                      "image URL names a loopback/private/link-local address (%s): refused "
                      "(url_allow_private is off)",
                      c.refused_addr);
    else if (c.refused)
        ret = vp_fail(err, VP_ERR_BAD_REQUEST, param,
                      "image URL's host resolves to a loopback/private/link-local address: "
                      "refused (url_allow_private is off)");
    else if (c.refused_port) /* the list is the operator's: not told to clients */
        ret = vp_fail(err, VP_ERR_BAD_REQUEST, param,
                      "image URL (or a redirect of it) goes to port %u, which url_ports does "
                      "not list: refused", c.refused_port);
    else if (rc == CURLE_ABORTED_BY_CALLBACK)
        ret = vp_fail(err, VP_ERR_UNAVAILABLE, param, "image URL fetch abandoned");
    else if (c.too_large || rc == CURLE_FILESIZE_EXCEEDED)
        ret = vp_fail(err, VP_ERR_TOO_LARGE, param,
                      "image URL body is over the limit %s=%zu", bytes_name,
                      o->max_bytes_name ? o->max_bytes_option : o->max_bytes);
    else if (rc == CURLE_OPERATION_TIMEDOUT)
        ret = vp_fail(err, VP_ERR_BAD_REQUEST, param,
                      "image URL fetch took longer than %s=%ld", time_name,
                      o->timeout_name ? o->timeout_option : o->timeout_ms);
    else if (rc == CURLE_TOO_MANY_REDIRECTS)
        ret = vp_fail(err, VP_ERR_BAD_REQUEST, param,
                      "image URL redirected more than url_max_redirects=%ld times",
                      o->max_redirects);
    else if (rc == CURLE_UNSUPPORTED_PROTOCOL && https_only)
        ret = vp_fail(err, VP_ERR_BAD_REQUEST, param,
                      "image URL redirected from https to another scheme: refused");
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
