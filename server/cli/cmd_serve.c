/* vprm serve: placeholder until its issue lands; it says so and fails. */
#include <stdio.h>
#include <string.h>

#include "server/cli/commands.h"

int cmd_serve(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "--help")) {
        printf("usage: vprm serve ...  (not available in this build yet)\n");
        return 0;
    }
    fprintf(stderr, "vprm serve: not available in this build yet\n");
    return 1;
}
