/* testutil.h: helpers shared by the cmocka tests. */
#ifndef CALM_TESTUTIL_H
#define CALM_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "src/common.h"

/* A fresh empty directory under $TMPDIR (or /tmp), removed by tu_rmtree. */
char *tu_mkdtemp(const char *tag);
void tu_rmtree(const char *path);
/* Write text to dir/name (to name when dir is NULL); fails the test on error. */
void tu_write_file(const char *dir, const char *name, const char *text);
/* Fill with N(0, scale^2) numbers from a fixed seed. */
void tu_randn(float *x, size_t n, uint64_t seed, float scale);
/* Max over i of |a-b| / (atol + rtol*|b|); <= 1 means "close". */
double tu_close_ratio(const float *a, const float *b, size_t n, double atol, double rtol);
/* max |x[i]|. */
double tu_max_abs(const float *x, size_t n);
/* Compare got with ref elementwise, |got - ref| <= atol_frac * max|ref| + rtol * |ref|,
 * print one line "ok|FAIL <tag> <name> ratio ... worst element" and return the
 * ratio (<= 1 passes). Fixture tests use it so one run shows every bad tensor. */
double tu_report_close(const char *tag, const char *name, const float *got, const float *ref, size_t n,
                       double atol_frac, double rtol);

/* cmocka setup/teardown: *state = a fresh temporary directory (a char *). */
int tu_setup_tmpdir(void **state);
int tu_teardown_tmpdir(void **state);

/* Fail unless calm_last_error() contains phrase. */
#define assert_error_contains(phrase)                                                                          \
    do {                                                                                                       \
        const char *e_ = calm_last_error();                                                                    \
        if (!strstr(e_, (phrase))) fail_msg("error \"%s\" does not contain \"%s\"", e_, (phrase));             \
    } while (0)

/* Run a shell command; returns its exit status (-1 if it did not exit). */
int tu_system(const char *fmt, ...);

#endif
