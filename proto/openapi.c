/* proto/openapi.json inside the binary: nothing is read from disk at run time. */
#include "proto/openapi.h"

#include <jansson.h>
#include <string.h>

#include "engine/util/json_alloc.h"

/* The file's bytes between two symbols, then a NUL. The path is relative to the folder
 * the compiler runs in (the Makefile's, the repository root); the Makefile makes the
 * object depend on the file. */
__asm__(".pushsection .rodata\n"
        ".balign 16\n"
        ".globl vp_openapi_src\n"
        "vp_openapi_src:\n"
        ".incbin \"proto/openapi.json\"\n"
        ".globl vp_openapi_src_end\n"
        "vp_openapi_src_end:\n"
        ".byte 0\n"
        ".popsection\n");
extern const char vp_openapi_src[], vp_openapi_src_end[];

char *vp_openapi_document(const char *version, size_t *len)
{
    json_error_t jerr;
    json_t *doc = vp_json_parse(vp_openapi_src, (size_t)(vp_openapi_src_end - vp_openapi_src),
                                JSON_REJECT_DUPLICATES, &jerr);
    json_t *info = doc ? json_object_get(doc, "info") : NULL;
    /* the file is checked by the tests; a broken one can only be a build of ours */
    if (!info || json_object_set_new(info, "version", json_string(version))) {
        json_decref(doc);
        return NULL;
    }
    char *s = vp_json_dump(doc, JSON_INDENT(2));
    json_decref(doc);
    if (s && len)
        *len = strlen(s);
    return s;
}
