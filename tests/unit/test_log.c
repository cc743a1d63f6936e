/* Log lines (engine/util/log.c), read back from a redirected stderr: the text layout, and
 * the JSON one parsed by jansson (quotes, newlines and bytes that are not UTF-8 in a
 * message; a request line's fields; the level filter). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/util/log.h"
#include "tests/unit/check.h"

/* Runs fn with stderr going to a temporary file; returns what it wrote (malloc'd). */
static char *captured(void (*fn)(void))
{
    fflush(stderr);
    FILE *tmp = tmpfile();
    int saved = dup(2);
    if (!tmp || saved < 0 || dup2(fileno(tmp), 2) < 0)
        return NULL;
    fn();
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    long n = ftell(tmp);
    char *out = n >= 0 ? calloc((size_t)n + 1, 1) : NULL;
    rewind(tmp);
    if (out && fread(out, 1, (size_t)n, tmp) != (size_t)n) {
        free(out);
        out = NULL;
    }
    fclose(tmp);
    return out;
}

static void write_text(void)
{
    vp_log_set_json(false);
    vp_log_set_level(VP_LOG_INFO);
    VP_LOGI("scr_a", "hello %d", 42);
    VP_LOGD("scr_a", "not shown");
    VP_LOGW(NULL, "no request");
    VP_LOGW("scr_d", "forged\n2026-01-01T00:00:00.000Z ERROR [x] \x1b[31mred\x7f\ttab\r");
}

static void write_json(void)
{
    vp_log_set_json(true);
    vp_log_set_level(VP_LOG_INFO);
    VP_LOGI("scr_b", "quote \" newline \n tab \t bad \xff\xfe end \xc3\xa9");
    VP_LOGD("scr_b", "not shown");
    VP_LOGE("-", "none");
    json_t *f = json_pack("{s:s, s:i, s:f}", "method", "POST", "status", 413, "ms", 1.25);
    vp_log_write_fields(VP_LOG_INFO, "scr_c", f);
    vp_log_write_fields(VP_LOG_DEBUG, "scr_c", json_pack("{s:s}", "method", "GET")); /* filtered */
    vp_log_set_json(false);
}

int main(void)
{
    char *text = captured(write_text);
    CHECK(text != NULL);
    if (text) {
        /* "2026-11-27T19:22:32.912Z INFO [scr_a] hello 42" */
        char *second = strchr(text, '\n');
        CHECK(strlen(text) > 24 && text[4] == '-' && text[10] == 'T' && text[23] == 'Z');
        CHECK(!strncmp(text + 24, " INFO [scr_a] hello 42\n", 23));
        CHECK(second && strstr(second, " WARN [-] no request\n") && !strstr(text, "not shown"));
        /* control bytes escaped: one line, no escape sequence */
        CHECK_MSG(strstr(text, " WARN [scr_d] forged\\x0a2026-01-01T00:00:00.000Z ERROR [x] "
                               "\\x1b[31mred\\x7f\ttab\\x0d\n"),
                  "%s", text);
        size_t lines = 0;
        for (const char *c = text; *c; c++)
            lines += *c == '\n';
        CHECK(lines == 3);
        free(text);
    }
    char *js = captured(write_json);
    CHECK(js != NULL);
    size_t n_lines = 0;
    for (char *line = js, *end; line && *line; line = end ? end + 1 : NULL) {
        end = strchr(line, '\n');
        json_error_t jerr;
        json_t *j = json_loadb(line, end ? (size_t)(end - line) : strlen(line), 0, &jerr);
        CHECK_MSG(j != NULL, "line %zu is not JSON: %s", n_lines, jerr.text);
        const char *level = json_string_value(json_object_get(j, "level"));
        const char *time = json_string_value(json_object_get(j, "time"));
        CHECK(level && time && strlen(time) == 24 && time[23] == 'Z');
        if (n_lines == 0) {
            CHECK(!strcmp(level, "info"));
            CHECK(!strcmp(json_string_value(json_object_get(j, "request_id")), "scr_b"));
            CHECK(!strcmp(json_string_value(json_object_get(j, "message")),
                          "quote \" newline \n tab \t bad \xef\xbf\xbd\xef\xbf\xbd end \xc3\xa9"));
        } else if (n_lines == 1) {
            CHECK(!strcmp(level, "error") && json_is_null(json_object_get(j, "request_id")));
            CHECK(!strcmp(json_string_value(json_object_get(j, "message")), "none"));
        } else if (n_lines == 2) {
            CHECK(!strcmp(json_string_value(json_object_get(j, "request_id")), "scr_c"));
            CHECK(!strcmp(json_string_value(json_object_get(j, "method")), "POST"));
            CHECK(json_integer_value(json_object_get(j, "status")) == 413);
            CHECK(json_real_value(json_object_get(j, "ms")) == 1.25);
            CHECK(!json_object_get(j, "message"));
        }
        json_decref(j);
        n_lines++;
    }
    CHECK_MSG(n_lines == 3, "%zu JSON lines (want 3: two filtered)", n_lines);
    free(js);
    json_t *s = vp_log_string("a\x80" "b", 3);
    CHECK(s && !strcmp(json_string_value(s), "a\xef\xbf\xbd" "b"));
    json_decref(s);
    return check_summary("test_log");
}
