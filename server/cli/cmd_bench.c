/* vprm bench: two modes on one command.
 *   --url URL    HTTP load against a running server (server/bench/http_load.c)
 *   --model DIR  in-process engine benchmark (bench_engine_main, server/cli/bench_engine.c) */
#include <stdio.h>
#include <string.h>

#include "server/bench/http_load.h"
#include "server/cli/bench_engine.h"
#include "server/cli/commands.h"

/* The bench parsers take "--flag VALUE" only: "--url=X" is neither mode (usage). */
static int has_flag(int argc, char **argv, const char *flag)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], flag))
            return 1;
    return 0;
}

int cmd_bench(int argc, char **argv)
{
    int url = has_flag(argc, argv, "--url"), model = has_flag(argc, argv, "--model");
    if (url && model) {
        fprintf(stderr, "vprm bench: give either --url (HTTP load) or --model (in-process), not both\n");
        return 2;
    }
    if (model)
        return bench_engine_main(argc, argv);
    if (url)
        return vp_bench_http_main(argc, argv);
    FILE *f = has_flag(argc, argv, "--help") ? stdout : stderr;
    fprintf(f, "usage: vprm bench --url URL ...    HTTP load against a running server\n"
               "       vprm bench --model DIR ...  in-process engine benchmark\n"
               "(vprm bench --url x --help / vprm bench --model x --help for the options)\n");
    return f == stdout ? 0 : 2;
}
