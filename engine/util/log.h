/* Levelled log lines on stderr, one per event:
 *   text: "2026-11-26T14:00:00.123Z INFO [req] message"
 *   json: {"time": "2026-11-26T14:00:00.123Z", "level": "info", "request_id": "req",
 *          "message": "message"} (request_id null when none), for log pipelines. */
#ifndef VP_LOG_H
#define VP_LOG_H

#include <jansson.h>
#include <stdbool.h>

typedef enum { VP_LOG_DEBUG, VP_LOG_INFO, VP_LOG_WARN, VP_LOG_ERROR } vp_log_level;

void vp_log_set_level(vp_log_level level);
bool vp_log_enabled(vp_log_level level);
void vp_log_set_json(bool json);
bool vp_log_json(void);
void vp_log_write(vp_log_level level, const char *req_id, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* JSON format only: one line of `fields` (stolen) with time, level and request_id added
 * first; a line whose fields cannot be written is logged as a plain message instead. */
void vp_log_write_fields(vp_log_level level, const char *req_id, json_t *fields);
/* s[0..n) as a JSON string, bytes that are not UTF-8 replaced by U+FFFD; NULL on OOM. */
json_t *vp_log_string(const char *s, size_t n);

#define VP_LOGD(req, ...) vp_log_write(VP_LOG_DEBUG, req, __VA_ARGS__)
#define VP_LOGI(req, ...) vp_log_write(VP_LOG_INFO, req, __VA_ARGS__)
#define VP_LOGW(req, ...) vp_log_write(VP_LOG_WARN, req, __VA_ARGS__)
#define VP_LOGE(req, ...) vp_log_write(VP_LOG_ERROR, req, __VA_ARGS__)

#endif
