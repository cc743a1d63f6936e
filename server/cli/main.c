/* vprm: one binary, several subcommands (serve, score, tokenize, preprocess, mkmodel, bench,
 * openapi). */
#include <stdio.h>
#include <string.h>

#include "engine/util/json_alloc.h"
#include "server/cli/commands.h"

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} command;

static const command commands[] = {
    {"serve", cmd_serve, "serve the HTTP API (POST /v1/score ...) for a model folder"},
    {"score", cmd_score, "score one request file and print the response JSON"},
    {"tokenize", cmd_tokenize, "print token ids, pieces and score positions for a request"},
    {"preprocess", cmd_preprocess, "tile and normalise an image, write a float32 .npy"},
    {"mkmodel", cmd_mkmodel, "write a random-weight model folder (tiny or 8b shape)"},
    {"bench", cmd_bench, "benchmark the standard workloads (W1..W4)"},
    {"openapi", cmd_openapi, "print the OpenAPI 3.1 description of the HTTP API"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: vprm <command> [options]   (vprm <command> --help for its options)\n\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-11s %s\n", commands[i].name, commands[i].summary);
}

int main(int argc, char **argv)
{
    vp_json_alloc_install(); /* before any thread: jansson's allocator is process-wide */
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
        !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name))
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "vprm: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
