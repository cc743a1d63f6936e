#include "engine/util/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/util/json_alloc.h"
#include "engine/util/utf8.h"

static vp_log_level g_min_level = VP_LOG_INFO;
static bool g_json;

void vp_log_set_level(vp_log_level level) { g_min_level = level; }
bool vp_log_enabled(vp_log_level level) { return level >= g_min_level; }
void vp_log_set_json(bool json) { g_json = json; }
bool vp_log_json(void) { return g_json; }

static const char *const level_text[] = {"DEBUG", "INFO", "WARN", "ERROR"};
static const char *const level_json[] = {"debug", "info", "warn", "error"};

static void timestamp(char out[64])
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    snprintf(out, 64, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
}

json_t *vp_log_string(const char *s, size_t n)
{
    size_t bad;
    if (vp_utf8_valid(s, n, &bad))
        return json_stringn(s, n);
    char *buf = malloc(3 * n + 1); /* each bad byte becomes 3 (U+FFFD) */
    if (!buf)
        return NULL;
    size_t o = 0;
    while (n) {
        if (vp_utf8_valid(s, n, &bad))
            bad = n;
        memcpy(buf + o, s, bad);
        o += bad;
        if (bad == n)
            break;
        memcpy(buf + o, "\xEF\xBF\xBD", 3);
        o += 3;
        s += bad + 1;
        n -= bad + 1;
    }
    json_t *j = json_stringn(buf, o);
    free(buf);
    return j;
}

/* Writes one line; one fprintf per line so concurrent threads do not interleave. */
static void emit(const char *line) { fprintf(stderr, "%s\n", line); }

/* {"time", "level", "request_id"}: what every JSON line starts with; NULL on OOM. */
static json_t *json_head(vp_log_level level, const char *req_id)
{
    char ts[64];
    timestamp(ts);
    if (req_id && !strcmp(req_id, "-")) /* what some callers pass for "none" */
        req_id = NULL;
    json_t *line = json_object();
    if (line && (json_object_set_new(line, "time", json_string(ts)) ||
                 json_object_set_new(line, "level", json_string(level_json[level])) ||
                 json_object_set_new(line, "request_id",
                                     req_id ? vp_log_string(req_id, strlen(req_id)) : json_null()))) {
        json_decref(line);
        return NULL;
    }
    return line;
}

/* Writes and releases line; -1 when it could not be written (out of memory). */
static int emit_json(json_t *line)
{
    /* 10 significant digits: milliseconds to the microsecond up to 10^4 s */
    char *text = line ? vp_json_dump(line, JSON_COMPACT | JSON_REAL_PRECISION(10)) : NULL;
    json_decref(line);
    if (!text)
        return -1;
    emit(text);
    free(text);
    return 0;
}

void vp_log_write_fields(vp_log_level level, const char *req_id, json_t *fields)
{
    if (!vp_log_enabled(level)) {
        json_decref(fields);
        return;
    }
    json_t *line = json_head(level, req_id);
    if (line && (!fields || json_object_update(line, fields))) {
        json_decref(line);
        line = NULL;
    }
    json_decref(fields);
    if (emit_json(line))
        vp_log_write(VP_LOG_ERROR, req_id, "a log line could not be written (out of memory?)");
}

void vp_log_write(vp_log_level level, const char *req_id, const char *fmt, ...)
{
    if (!vp_log_enabled(level))
        return;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (g_json) {
        json_t *line = json_head(level, req_id);
        if (line && json_object_set_new(line, "message", vp_log_string(msg, strlen(msg)))) {
            json_decref(line);
            line = NULL;
        }
        if (!emit_json(line))
            return;
        /* out of memory: the text line below still says it */
    }
    /* one line whatever the message holds: control bytes (a newline, an escape sequence)
     * as \xNN, so text that came from a client cannot forge or hide lines */
    char safe[4 * sizeof msg], ts[64], line[sizeof safe + 200];
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)msg; *p; p++) {
        if (*p < 0x20 ? *p != '\t' : *p == 0x7f)
            o += (size_t)snprintf(safe + o, sizeof safe - o, "\\x%02x", *p);
        else
            safe[o++] = (char)*p;
    }
    safe[o] = 0;
    timestamp(ts);
    snprintf(line, sizeof line, "%s %s [%s] %s", ts, level_text[level], req_id ? req_id : "-", safe);
    emit(line);
}
