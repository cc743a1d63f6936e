/* Placeholder of the in-process engine benchmark (vprm bench --model DIR): another
 * issue replaces this file. */
#include "server/cli/bench_engine.h"

#include <stdio.h>

int bench_engine_main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "vprm bench --model: not yet available (use --url URL for the HTTP load "
                    "benchmark)\n");
    return 1;
}
