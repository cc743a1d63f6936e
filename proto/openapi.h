/* The OpenAPI 3.1 description of the HTTP API (proto/openapi.json), linked into the binary:
 * served at GET /openapi.json and printed by `vprm openapi`, so clients can be generated
 * from the server they talk to. */
#ifndef VP_OPENAPI_H
#define VP_OPENAPI_H

#include <stddef.h>

/* The document as indented JSON with info.version set to `version`; *len its length.
 * malloc'd (free it), or NULL when memory runs out. */
char *vp_openapi_document(const char *version, size_t *len);

#endif
