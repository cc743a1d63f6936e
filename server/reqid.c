#include "server/reqid.h"

#include <stdint.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

static const char crockford[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

void vp_reqid_new(char *buf)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t ms = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
    uint8_t rnd[10];
    if (getrandom(rnd, sizeof rnd, GRND_NONBLOCK) != (ssize_t)sizeof rnd) {
        /* no entropy yet (early boot): mix the clock and the stack address instead */
        uint64_t x = (uint64_t)ts.tv_nsec ^ ((uint64_t)(uintptr_t)buf << 17) ^ ms;
        for (size_t i = 0; i < sizeof rnd; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            rnd[i] = (uint8_t)x;
        }
    }
    memcpy(buf, "scr_", 4);
    char *p = buf + 4;
    /* 10 characters of time (50 bits, the top 2 always zero) */
    for (int i = 9; i >= 0; i--) {
        p[i] = crockford[ms & 31];
        ms >>= 5;
    }
    /* 16 characters of randomness (80 bits) */
    uint64_t hi = 0, lo = 0;
    for (int i = 0; i < 5; i++)
        hi = hi << 8 | rnd[i];
    for (int i = 5; i < 10; i++)
        lo = lo << 8 | rnd[i];
    for (int i = 7; i >= 0; i--) {
        p[10 + i] = crockford[hi & 31];
        hi >>= 5;
        p[18 + i] = crockford[lo & 31];
        lo >>= 5;
    }
    buf[VP_REQID_LEN] = 0;
}

bool vp_reqid_client_take(const char *s, char out[VP_CLIENT_REQID_MAX + 1])
{
    if (!s)
        return false;
    while (*s == ' ' || *s == '\t') /* a header value's surrounding whitespace is not its */
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    if (!n || n > VP_CLIENT_REQID_MAX)
        return false;
    char id[VP_CLIENT_REQID_MAX + 1];
    memcpy(id, s, n);
    id[n] = 0;
    if (!vp_reqid_client_ok(id))
        return false;
    memcpy(out, id, n + 1);
    return true;
}

bool vp_reqid_client_ok(const char *s)
{
    if (!s || !*s)
        return false;
    size_t n = 0;
    for (; s[n]; n++) {
        unsigned char c = (unsigned char)s[n];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  (c && strchr("._:-/+=@", c));
        if (!ok || n >= VP_CLIENT_REQID_MAX)
            return false;
    }
    return true;
}
