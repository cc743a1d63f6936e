/* Fetching image URLs (only when allow_image_urls is on): http and https only (an https
 * URL's redirects https only), a byte
 * limit, a time limit, a redirect limit, and every address actually connected to (after
 * DNS, on each redirect) checked against loopback/private/link-local ranges unless
 * url_allow_private is set, and its port against url_ports. */
#ifndef VP_FETCH_H
#define VP_FETCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "engine/util/err.h"

typedef struct vp_fetch_opts {
    size_t max_bytes;
    long timeout_ms;
    /* the options that set max_bytes and timeout_ms (what was left of them), named with
     * their values in the errors (NULL: "url_max_bytes" and "url_timeout_ms", max_bytes
     * and timeout_ms) */
    const char *max_bytes_name, *timeout_name;
    size_t max_bytes_option;
    long timeout_option;
    long max_redirects;
    bool allow_private;
    const char *ports;      /* the ports connected to (config/port_list.h); NULL = any */
    /* polled while the transfer runs (about once a second when nothing arrives): true
     * abandons it (VP_ERR_UNAVAILABLE); NULL = never */
    bool (*cancelled)(void *ctx);
    void *cancel_ctx;
} vp_fetch_opts;

/* Whether url's redirects may only go to https (it is an https URL). */
bool vp_fetch_https_only(const char *url);

/* Downloads url into a malloc'd buffer; errors name `param` (e.g. "images[1]"). */
int vp_fetch_url(const char *url, const vp_fetch_opts *o, const char *param, uint8_t **out,
                 size_t *len, vp_error *err);

/* True for every address that is not globally reachable: IANA's special-purpose
 * registries for IPv4 and IPv6 (loopback, private, ULA, link-local, CGNAT, unspecified,
 * documentation, benchmarking, reserved...), site-local, multicast and broadcast; an
 * IPv6 address embedding an IPv4 one (mapped, translated, NAT64, 6to4) is judged by
 * the IPv4 address. tests/http/addr_policy.py holds the registries' table. */
bool vp_addr_is_private(const struct sockaddr *sa);

#endif
