/* jansson's allocations, watched.
 *
 * jansson 2.14 does not always stop when an allocation fails: its lexer drops the byte
 * it could not save and goes on (a string value can parse as another string) or writes
 * past a buffer it could not grow, and its dumper can leave a key out and still return
 * text. So the process hands jansson an allocator (vp_json_alloc_install, once, before
 * threads start) that counts each failure for the calling thread, then gives reserve
 * blocks back to the system one at a time and retries, so that jansson rarely meets the
 * NULL it mishandles. vp_json_parse and vp_json_dump refuse a result made while the count rose:
 * a parse fails as out of memory (vp_json_oom says so), a dump returns NULL.
 *
 * Without the install (unit tests, tools) both behave as json_loadb and json_dumps. */
#ifndef VP_JSON_ALLOC_H
#define VP_JSON_ALLOC_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* The reserve handed back at a failure: blocks of this many bytes in all, allocated and
 * never touched (no resident memory), allocated again after use; one block given back
 * per failed retry. */
#define VP_JSON_RESERVE_BYTES ((size_t)4 << 20)
#define VP_JSON_RESERVE_BLOCKS 4

/* Sets jansson's allocator; call once, before any thread uses jansson (main does). */
void vp_json_alloc_install(void);

/* How many of this thread's jansson allocations have failed so far. */
unsigned long vp_json_alloc_failures(void);

/* json_loadb, except that a tree built while an allocation failed is released and the
 * call fails as out of memory (json_error_out_of_memory in e). */
json_t *vp_json_parse(const char *text, size_t len, size_t flags, json_error_t *e);

/* json_dumps, except that text written while an allocation failed is released (NULL). */
char *vp_json_dump(const json_t *v, size_t flags);

/* Whether a failed parse ran out of memory rather than met bad JSON: jansson says so with
 * json_error_out_of_memory, or (some of its allocation failures) with no text at all; such
 * a failure is not the file's or the client's fault. */
static inline bool vp_json_oom(const json_error_t *e)
{
    return json_error_code(e) == json_error_out_of_memory || !e->text[0];
}

#endif
