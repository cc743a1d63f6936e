/* Shared by the fuzz targets (tests/fuzz/fuzz_*.c). Each target defines
 * LLVMFuzzerTestOneInput and may define LLVMFuzzerInitialize; the same source links
 * with libFuzzer (`make fuzz`, clang) or with replay.c (`make test`, gcc + ASan/UBSan),
 * which feeds it the checked-in corpus.
 *
 * A target checks more than "no crash": FUZZ_REQUIRE states what must hold of every
 * input (an error has a kind and a message, a result respects the limits it was given,
 * a differential twin agrees). A broken promise aborts, which both drivers report as a
 * failure with the message. */
#ifndef VP_FUZZ_H
#define VP_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define FUZZ_REQUIRE(cond, ...)                                                        \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            fprintf(stderr, "%s:%d: fuzz invariant broken: %s: ", __FILE__, __LINE__,  \
                    #cond);                                                            \
            fprintf(stderr, __VA_ARGS__);                                              \
            fputc('\n', stderr);                                                       \
            abort();                                                                   \
        }                                                                              \
    } while (0)

/* An error reported by library code must say what went wrong. */
#define FUZZ_REQUIRE_ERROR(err)                                                        \
    FUZZ_REQUIRE((err).kind != VP_ERR_NONE && (err).message[0] != '\0',                \
                 "failure without an error kind or message (kind %d)", (int)(err).kind)

/* A path inside the repository: run.sh runs the targets in their own folders and sets
 * $VPRM_ROOT; the replay suite runs from the repository root. Static buffer: one call's
 * result at a time. */
static inline const char *fuzz_repo_path(const char *rel)
{
    static char buf[4096];
    const char *root = getenv("VPRM_ROOT");
    snprintf(buf, sizeof buf, "%s/%s", root && *root ? root : ".", rel);
    return buf;
}

/* The directory holding the shared files (../shared): $SHARED, else ../shared. */
static inline const char *fuzz_shared_dir(void)
{
    const char *s = getenv("SHARED");
    return s && *s ? s : "../shared";
}

#endif
