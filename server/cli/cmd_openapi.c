/* vprm openapi: the OpenAPI document GET /openapi.json serves, without a server (to
 * generate a client, or read the API offline). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/openapi.h"
#include "server/cli/commands.h"
#include "server/server.h"

int cmd_openapi(int argc, char **argv)
{
    if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        printf("usage: vprm openapi\n\nPrints the OpenAPI 3.1 description of the HTTP API "
               "(what GET /openapi.json serves) on stdout.\n");
        return 0;
    }
    if (argc > 1) {
        fprintf(stderr, "vprm openapi: unexpected argument '%s' (it takes none)\n", argv[1]);
        return 2;
    }
    size_t len = 0;
    char *doc = vp_openapi_document(VP_BUILD_VERSION, &len);
    if (!doc) {
        fprintf(stderr, "vprm openapi: out of memory\n");
        return 1;
    }
    int rc = fwrite(doc, 1, len, stdout) == len && fputc('\n', stdout) != EOF ? 0 : 1;
    free(doc);
    if (rc)
        fprintf(stderr, "vprm openapi: could not write the document\n");
    return rc;
}
