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

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* UTF-8 as RFC 3629 defines it (Unicode table 3-7): no overlongs, no surrogates, at
 * most U+10FFFF. Written apart from engine/util/utf8.c, to be its twin in the targets. */
static inline bool fuzz_utf8_ok(const uint8_t *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        uint8_t b = s[i], lo = 0x80, hi = 0xBF;
        size_t k;
        if (b < 0x80) {
            i++;
            continue;
        }
        if (b >= 0xC2 && b <= 0xDF)
            k = 1;
        else if (b == 0xE0)
            k = 2, lo = 0xA0;
        else if (b == 0xED)
            k = 2, hi = 0x9F;
        else if (b >= 0xE1 && b <= 0xEF)
            k = 2;
        else if (b == 0xF0)
            k = 3, lo = 0x90;
        else if (b == 0xF4)
            k = 3, hi = 0x8F;
        else if (b >= 0xF1 && b <= 0xF3)
            k = 3;
        else
            return false;
        if (n - i - 1 < k || s[i + 1] < lo || s[i + 1] > hi)
            return false;
        for (size_t j = 2; j <= k; j++)
            if ((s[i + j] & 0xC0) != 0x80)
                return false;
        i += k + 1;
    }
    return true;
}

/* A fresh folder for a target's files under $TMPDIR, else /dev/shm (tmpfs: an ext4
 * /tmp makes each run ten times slower with its file rewrites), else /tmp. */
static inline int fuzz_make_temp_dir(char *dir, size_t cap, const char *name)
{
    const char *tmp = getenv("TMPDIR");
    const char *const bases[] = {tmp && *tmp ? tmp : NULL, "/dev/shm", "/tmp"};
    for (size_t i = 0; i < sizeof bases / sizeof bases[0]; i++) {
        if (bases[i] && snprintf(dir, cap, "%s/%s.XXXXXX", bases[i], name) < (int)cap &&
            mkdtemp(dir))
            return 0;
    }
    return -1;
}

/* A growable byte buffer; allocation failure aborts (the targets are not under test).
 * fuzz_put always leaves p allocated, so an empty buffer is still a valid pointer. */
typedef struct fuzz_buf {
    uint8_t *p;
    size_t n, cap;
} fuzz_buf;

static inline void fuzz_put(fuzz_buf *b, const void *s, size_t n)
{
    if (!b->p || b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n)
            cap *= 2;
        b->p = (uint8_t *)realloc(b->p, cap);
        FUZZ_REQUIRE(b->p, "out of memory");
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->n, s, n);
    b->n += n;
}

#endif
