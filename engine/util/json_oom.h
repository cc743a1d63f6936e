/* Whether a failed json_loadb ran out of memory rather than met bad JSON: jansson says so
 * with json_error_out_of_memory, or (some of its allocation failures) with no text at all;
 * such a failure is not the file's or the client's fault. */
#ifndef VP_JSON_OOM_H
#define VP_JSON_OOM_H

#include <jansson.h>
#include <stdbool.h>

static inline bool vp_json_oom(const json_error_t *e)
{
    return json_error_code(e) == json_error_out_of_memory || !e->text[0];
}

#endif
