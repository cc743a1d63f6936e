/* Levelled log lines on stderr: "2026-11-26T14:00:00.123Z INFO [req] message". */
#ifndef VP_LOG_H
#define VP_LOG_H

typedef enum { VP_LOG_DEBUG, VP_LOG_INFO, VP_LOG_WARN, VP_LOG_ERROR } vp_log_level;

void vp_log_set_level(vp_log_level level);
void vp_log_write(vp_log_level level, const char *req_id, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define VP_LOGD(req, ...) vp_log_write(VP_LOG_DEBUG, req, __VA_ARGS__)
#define VP_LOGI(req, ...) vp_log_write(VP_LOG_INFO, req, __VA_ARGS__)
#define VP_LOGW(req, ...) vp_log_write(VP_LOG_WARN, req, __VA_ARGS__)
#define VP_LOGE(req, ...) vp_log_write(VP_LOG_ERROR, req, __VA_ARGS__)

#endif
