/* Fetching image URLs (only when allow_image_urls is on): http and https only, a byte
 * limit, a time limit, a redirect limit, and every address actually connected to (after
 * DNS, on each redirect) checked against loopback/private/link-local ranges unless
 * url_allow_private is set. */
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
    long max_redirects;
    bool allow_private;
} vp_fetch_opts;

/* Downloads url into a malloc'd buffer; errors name `param` (e.g. "images[1]"). */
int vp_fetch_url(const char *url, const vp_fetch_opts *o, const char *param, uint8_t **out,
                 size_t *len, vp_error *err);

/* True for loopback, private (RFC 1918, ULA), link-local, CGNAT, unspecified, multicast
 * and broadcast addresses (IPv4-mapped IPv6 checked as IPv4). */
bool vp_addr_is_private(const struct sockaddr *sa);

#endif
