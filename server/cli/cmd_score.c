/* vprm score: placeholder until its issue lands; it says so and fails. */
#include <stdio.h>
#include <string.h>

#include "server/cli/commands.h"

int cmd_score(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "--help")) {
        printf("usage: vprm score ...  (not available in this build yet)\n");
        return 0;
    }
    fprintf(stderr, "vprm score: not available in this build yet\n");
    return 1;
}
