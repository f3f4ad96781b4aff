/* Tiny assertion helpers shared by the C tests. */
#ifndef IMPP_TEST_CHECK_H
#define IMPP_TEST_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int check_failures = 0;

#define CHECK(cond)                                                                   \
    do {                                                                              \
        if (!(cond)) {                                                                \
            fprintf(stderr, "%s:%d: CHECK failed: %s (last error: %s)\n", __FILE__,   \
                    __LINE__, #cond, impp_last_error() ? impp_last_error() : "none"); \
            check_failures++;                                                         \
        }                                                                             \
    } while (0)

#define CHECK_STATUS(call, expected)                                                     \
    do {                                                                                 \
        impp_status check_s_ = (call);                                                   \
        if (check_s_ != (expected)) {                                                    \
            fprintf(stderr, "%s:%d: %s returned %s, expected %s (last error: %s)\n",     \
                    __FILE__, __LINE__, #call, impp_status_name(check_s_),               \
                    impp_status_name(expected),                                          \
                    impp_last_error() ? impp_last_error() : "none");                     \
            check_failures++;                                                            \
        }                                                                                \
    } while (0)

#define CHECK_OK(call) CHECK_STATUS(call, IMPP_OK)

#define CHECK_STR(actual, expected)                                                      \
    do {                                                                                 \
        const char *check_a_ = (actual);                                                 \
        const char *check_e_ = (expected);                                               \
        if (check_a_ == NULL || strcmp(check_a_, check_e_) != 0) {                       \
            fprintf(stderr, "%s:%d: %s is \"%s\", expected \"%s\"\n", __FILE__, __LINE__, \
                    #actual, check_a_ ? check_a_ : "(null)", check_e_);                  \
            check_failures++;                                                            \
        }                                                                                \
    } while (0)

static int check_report(const char *name) {
    if (check_failures) {
        fprintf(stderr, "%s: %d check(s) failed\n", name, check_failures);
        return 1;
    }
    printf("%s: all checks passed\n", name);
    return 0;
}

#endif
