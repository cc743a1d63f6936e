/* Minimal unit-test support: CHECK records a failure with file:line and goes on;
 * check_summary() prints "N passed, N failed" and returns the exit status. */
#ifndef VP_CHECK_H
#define VP_CHECK_H

#include <stdio.h>

static int check_pass_count, check_fail_count;

#define CHECK(cond)                                                                    \
    do {                                                                               \
        if (cond) {                                                                    \
            check_pass_count++;                                                        \
        } else {                                                                       \
            check_fail_count++;                                                        \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);   \
        }                                                                              \
    } while (0)

#define CHECK_MSG(cond, ...)                                                           \
    do {                                                                               \
        if (cond) {                                                                    \
            check_pass_count++;                                                        \
        } else {                                                                       \
            check_fail_count++;                                                        \
            fprintf(stderr, "%s:%d: CHECK failed: %s: ", __FILE__, __LINE__, #cond);   \
            fprintf(stderr, __VA_ARGS__);                                              \
            fputc('\n', stderr);                                                       \
        }                                                                              \
    } while (0)

static inline int check_summary(const char *suite)
{
    printf("%s: %d passed, %d failed\n", suite, check_pass_count, check_fail_count);
    return check_fail_count ? 1 : 0;
}

#endif
