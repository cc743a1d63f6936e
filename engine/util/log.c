#include "engine/util/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

static vp_log_level g_min_level = VP_LOG_INFO;

void vp_log_set_level(vp_log_level level) { g_min_level = level; }

void vp_log_write(vp_log_level level, const char *req_id, const char *fmt, ...)
{
    if (level < g_min_level)
        return;
    static const char *names[] = {"DEBUG", "INFO", "WARN", "ERROR"};
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char line[2048];
    int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s [%s] ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, ts.tv_nsec / 1000000, names[level], req_id ? req_id : "-");
    va_list ap;
    va_start(ap, fmt);
    if (n > 0 && (size_t)n < sizeof line)
        vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    /* one fputs per line so concurrent threads do not interleave inside a line */
    fprintf(stderr, "%s\n", line);
}
