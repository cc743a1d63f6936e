/* Reading samples back from a Prometheus text body (what /metrics serves). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/bench/bench.h"

/* Finds the line that starts with `prefix` followed by a space; returns its value text. */
static const char *find_sample(const char *text, const char *prefix)
{
    size_t n = strlen(prefix);
    for (const char *p = text; p && *p;) {
        if (!strncmp(p, prefix, n) && p[n] == ' ')
            return p + n + 1;
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    return NULL;
}

int vp_prom_value(const char *text, const char *series, double *out)
{
    const char *v = find_sample(text, series);
    if (!v)
        return -1;
    *out = strtod(v, NULL);
    return 0;
}

int vp_prom_hist_read(const char *text, const char *name, vp_prom_hist *h)
{
    memset(h, 0, sizeof *h);
    char prefix[160];
    snprintf(prefix, sizeof prefix, "%s_bucket{le=\"", name);
    size_t pn = strlen(prefix);
    for (const char *p = text; p && *p && h->n < VP_PROM_MAX_BUCKETS;) {
        if (!strncmp(p, prefix, pn)) {
            const char *le = p + pn;
            const char *close = strstr(le, "\"} ");
            if (!close)
                return -1;
            h->le[h->n] = !strncmp(le, "+Inf", 4) ? 1e300 : strtod(le, NULL);
            h->cum[h->n] = strtod(close + 3, NULL);
            h->n++;
        }
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    char s[160];
    snprintf(s, sizeof s, "%s_sum", name);
    if (vp_prom_value(text, s, &h->sum))
        return -1;
    snprintf(s, sizeof s, "%s_count", name);
    if (vp_prom_value(text, s, &h->count))
        return -1;
    return h->n ? 0 : -1;
}
