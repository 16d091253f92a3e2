#define _GNU_SOURCE
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "src/common.h"
#include "src/files.h"
#include "src/rng.h"

char *tu_mkdtemp(const char *tag) {
    const char *base = getenv("TMPDIR");
    char buf[512];
    snprintf(buf, sizeof buf, "%s/calm-%s-XXXXXX", base && *base ? base : "/tmp", tag);
    if (!mkdtemp(buf)) {
        perror("mkdtemp");
        abort();
    }
    return xstrdup(buf);
}

void tu_rmtree(const char *path) {
    if (!path || strlen(path) < 8) return;
    tu_system("rm -rf '%s'", path);
}

int tu_setup_tmpdir(void **state) {
    *state = tu_mkdtemp("test");
    return 0;
}

int tu_teardown_tmpdir(void **state) {
    tu_rmtree(*state);
    free(*state);
    return 0;
}

void tu_write_file(const char *dir, const char *name, const char *text) {
    char *p = dir ? calm_path_join(dir, name) : xstrdup(name);
    FILE *f = fopen(p, "wb");
    if (!f) fail_msg("cannot create %s", p);
    fputs(text, f);
    if (fclose(f) != 0) fail_msg("cannot write %s", p);
    free(p);
}

void tu_randn(float *x, size_t n, uint64_t seed, float scale) {
    Rng r;
    rng_seed(&r, seed, 0);
    for (size_t i = 0; i < n; i++) x[i] = scale * rng_normal(&r);
}

double tu_close_ratio(const float *a, const float *b, size_t n, double atol, double rtol) {
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double r = fabs((double)a[i] - (double)b[i]) / (atol + rtol * fabs((double)b[i]));
        if (!(r <= worst)) worst = r; /* NaN propagates as worst */
        if (isnan(r)) return INFINITY;
    }
    return worst;
}

double tu_max_abs(const float *x, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fabs(x[i]) > m ? fabs(x[i]) : m;
    return m;
}

double tu_report_close(const char *tag, const char *name, const float *got, const float *ref, size_t n,
                       double atol_frac, double rtol) {
    double mx = tu_max_abs(ref, n);
    double r = tu_close_ratio(got, ref, n, atol_frac * mx, rtol);
    size_t worst = 0;
    double werr = -1;
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)got[i] - ref[i]);
        if (!(e <= werr)) {
            werr = e;
            worst = i;
        }
    }
    print_message("%-5s %-6s %-46s ratio %-9.3g max|ref| %-9.3g max|err| %-9.3g at [%zu] got %.7g ref %.7g\n",
                  r <= 1.0 ? "ok" : "FAIL", tag, name, r, mx, werr, worst, got[worst], ref[worst]);
    return r;
}

int tu_system(const char *fmt, ...) {
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int st = system(cmd);
    if (st == -1 || !WIFEXITED(st)) return -1;
    return WEXITSTATUS(st);
}
