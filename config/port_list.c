#include "config/port_list.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

static const char *skip_spaces(const char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

/* A port number at *p (digits, 1-65535); 0 when there is none or it is out of range. */
static unsigned read_port(const char **p)
{
    unsigned long v = 0;
    const char *s = *p;
    if (!isdigit((unsigned char)*s))
        return 0;
    for (; isdigit((unsigned char)*s); s++)
        if ((v = v * 10 + (unsigned long)(*s - '0')) > 65535)
            return 0;
    *p = s;
    return (unsigned)v;
}

static bool is_any(const char *list)
{
    const char *p = skip_spaces(list);
    return !strncmp(p, "any", 3) && !*skip_spaces(p + 3);
}

/* Walks list; with port != 0, whether a range holds it; with why != NULL, reports the
 * first fault. Returns -1 at a fault, 1 when port is held, 0 otherwise. */
static int walk(const char *list, unsigned port, char *why, size_t why_cap)
{
    const char *p = list;
    for (size_t item = 1;; item++) {
        p = skip_spaces(p);
        const char *at = p;
        unsigned lo = read_port(&p), hi = lo;
        if (lo && *p == '-') {
            p++;
            hi = read_port(&p);
        }
        if (!lo || !hi) {
            if (why)
                snprintf(why, why_cap, "item %zu (\"%.*s\") is not a port 1-65535 or a range "
                         "of them (\"8000-8999\"); write \"any\" for every port",
                         item, (int)strcspn(at, ","), at);
            return -1;
        }
        if (hi < lo) {
            if (why)
                snprintf(why, why_cap, "item %zu, the range %u-%u, ends before it starts",
                         item, lo, hi);
            return -1;
        }
        if (port && port >= lo && port <= hi)
            return 1;
        p = skip_spaces(p);
        if (!*p)
            return 0;
        if (*p != ',') {
            if (why)
                snprintf(why, why_cap, "item %zu is followed by '%c', not a comma", item, *p);
            return -1;
        }
        p++;
    }
}

int vp_port_list_check(const char *list, char *why, size_t why_cap)
{
    if (is_any(list))
        return 0;
    return walk(list, 0, why, why_cap) < 0 ? -1 : 0;
}

bool vp_port_list_has(const char *list, unsigned port)
{
    return !list || is_any(list) || (port && walk(list, port, NULL, 0) == 1);
}
