/* gradcheck.h: finite-difference gradient checks shared by the layer and
 * model tests.
 *
 * Header-only (static inline) because tests/CMakeLists.txt links each test
 * from <test>.c and testutil.c alone.
 *
 * Method. The quantity under test is a scalar objective f(x) evaluated in
 * float arithmetic by the code under test and summed in double by the test
 * (so the only noise left is the code's own float rounding, not the
 * reduction). The derivative with respect to one coordinate is estimated by
 * central differences, 2-point (error h^2 f'''/6) or 4-point (error
 * h^4 f^(5)/30, which allows a larger h and so divides the rounding noise by
 * a larger step). The analytic value passes when
 *     |fd - an| <= atol + rtol * |an|,   atol = atol_frac * max_i |an_i|,
 * the max taken over the whole tensor: coordinates whose true gradient is
 * tiny compared to the tensor's largest carry only absolute noise.
 */
#ifndef CALM_GRADCHECK_H
#define CALM_GRADCHECK_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/common.h"
#include "src/rng.h"

typedef double (*gc_objective)(void *ctx);

typedef struct {
    float h;          /* absolute step */
    int stencil;      /* 2 or 4 */
    double atol_frac; /* atol = atol_frac * max|an| (+ atol_min) */
    double atol_min;
    double rtol;
    size_t max_coords; /* all coordinates when n <= max_coords, else a sample of this size */
    uint64_t seed;     /* for the sample */
} GcOpts;

static inline double gc_max_abs(const float *x, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double a = fabs((double)x[i]);
        if (!(a <= m)) m = a; /* NaN wins */
    }
    return m;
}

static inline double gc_dot(const float *a, const float *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * (double)b[i];
    return s;
}

static inline int gc_all_finite(const float *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return 0;
    return 1;
}

/* Central-difference derivative of f with respect to x[i]; x[i] restored. */
static inline double gc_fd(gc_objective f, void *ctx, float *x, size_t i, float h, int stencil) {
    float x0 = x[i];
    double d;
    if (stencil == 4) {
        x[i] = x0 + h;
        double p1 = f(ctx);
        x[i] = x0 - h;
        double m1 = f(ctx);
        x[i] = x0 + 2 * h;
        double p2 = f(ctx);
        x[i] = x0 - 2 * h;
        double m2 = f(ctx);
        d = (8 * (p1 - m1) - (p2 - m2)) / (12.0 * h);
    } else {
        float xp = x0 + h, xm = x0 - h;
        x[i] = xp;
        double p = f(ctx);
        x[i] = xm;
        double m = f(ctx);
        d = (p - m) / ((double)xp - (double)xm); /* the step float actually took */
    }
    x[i] = x0;
    return d;
}

/* Check the analytic gradient an[idx[j]] against finite differences of f in
 * x[idx[j]] for j < nidx; an has n entries (max|an| sets atol). Returns the
 * worst ratio |fd-an| / (atol + rtol|an|); <= 1 passes. Prints the worst
 * coordinate when it fails, or always when $GC_VERBOSE is set. */
static inline double gc_check_idx(const char *what, gc_objective f, void *ctx, float *x, const float *an, size_t n,
                                  const size_t *idx, size_t nidx, const GcOpts *o) {
    double amax = gc_max_abs(an, n);
    double atol = o->atol_frac * amax + o->atol_min;
    double worst = 0, wfd = 0, wan = 0;
    size_t wi = 0;
    for (size_t j = 0; j < nidx; j++) {
        size_t i = idx[j];
        double fd = gc_fd(f, ctx, x, i, o->h, o->stencil);
        double a = an[i];
        double r = fabs(fd - a) / (atol + o->rtol * fabs(a));
        if (!(r <= worst)) { /* NaN counts as the worst */
            worst = isnan(r) ? INFINITY : r;
            wfd = fd;
            wan = a;
            wi = i;
        }
    }
    if (worst > 1 || getenv("GC_VERBOSE"))
        fprintf(stderr, "gradcheck %-34s %s worst %.3g at [%zu]: fd %.6g an %.6g (max|an| %.3g, %zu coords)\n", what,
                worst > 1 ? "FAIL" : "ok  ", worst, wi, wfd, wan, amax, nidx);
    return worst;
}

/* As gc_check_idx over every coordinate of x[n], or a random sample of
 * o->max_coords distinct coordinates when n is larger. */
static inline double gc_check(const char *what, gc_objective f, void *ctx, float *x, const float *an, size_t n,
                              const GcOpts *o) {
    size_t *idx = malloc(n * sizeof *idx);
    for (size_t i = 0; i < n; i++) idx[i] = i;
    size_t k = n;
    if (o->max_coords && n > o->max_coords) { /* partial Fisher-Yates */
        Rng r;
        rng_seed(&r, o->seed, 7);
        k = o->max_coords;
        for (size_t j = 0; j < k; j++) {
            size_t s = j + (size_t)(rng_u64(&r) % (n - j));
            size_t t = idx[j];
            idx[j] = idx[s];
            idx[s] = t;
        }
    }
    double w = gc_check_idx(what, f, ctx, x, an, n, idx, k, o);
    free(idx);
    return w;
}

/* Backward accumulates: a second call on the same buffer must give twice the
 * first result. Not bit-exact: the second call adds each partial sum to a
 * non-zero buffer, so its rounding differs from the first call's by a few ulps
 * of the running sums (GEMM K-blocking, row loops). 1e-5 of the largest entry
 * is ~100 ulps: far below any mistake (overwrite gives 1x, double add 3x). */
static inline double gc_twice_ratio(const float *once, const float *twice, size_t n) {
    double amax = gc_max_abs(once, n);
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double r = fabs((double)twice[i] - 2.0 * once[i]) / (1e-5 * amax + 1e-30);
        if (!(r <= worst)) worst = isnan(r) ? INFINITY : r;
    }
    if (worst > 1) fprintf(stderr, "gradcheck accumulate: twice != 2 x once (worst ratio %.3g)\n", worst);
    return worst;
}

/* Random numbers for tests: N(0, scale^2) or uniform ints in [0, hi). */
static inline void gc_randn(float *x, size_t n, uint64_t seed, float scale) {
    Rng r;
    rng_seed(&r, seed, 11);
    for (size_t i = 0; i < n; i++) x[i] = scale * rng_normal(&r);
}

static inline void gc_randint(int *x, size_t n, uint64_t seed, int hi) {
    Rng r;
    rng_seed(&r, seed, 13);
    for (size_t i = 0; i < n; i++) x[i] = (int)(rng_u64(&r) % (uint64_t)hi);
}

/* The layer tests' default tolerances (test_layers.c explains them) and
 * buffer helpers. */
static const GcOpts GC_DEFAULT = {.h = 1e-2f, .stencil = 2, .atol_frac = 1e-3, .atol_min = 0, .rtol = 1e-2,
                                  .max_coords = 0, .seed = 1};

static inline float *fbuf(size_t n) { return xalloc_floats(n); }
static inline float *fcopy(const float *x, size_t n) {
    float *y = fbuf(n);
    memcpy(y, x, n * sizeof *y);
    return y;
}
static inline void ffill(float *x, size_t n, float v) {
    for (size_t i = 0; i < n; i++) x[i] = v;
}

#endif
