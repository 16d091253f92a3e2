/* test_layers.c: every forward/backward pair of src/layers.h.
 *
 * Forward: against a naive reference computed here in double.
 * Backward: against central finite differences of L = sum(out * R) for a
 * fixed random R (the loss itself for cross-entropy), at every coordinate
 * (the tensors are small), with the tolerance rules of gradcheck.h. Plus the
 * contracts of layers.h: backward accumulates (+=), NULL gradients are skipped
 * without changing the others, scratch buffers are write-before-read.
 *
 * Tolerances. Unless a test says otherwise: atol = 1e-3 * max|an|,
 * rtol = 1e-2. The FD error has two parts. Truncation: h^2 |f'''| / 6, with
 * inputs O(1) and h = 1e-2 that is ~2e-5 relative. Rounding: the objective sums
 * (in double) float outputs each wrong by a few ulps (~2e-7 relative); only
 * the outputs that depend on the perturbed coordinate change, so the noise in
 * f(x+h) - f(x-h) is ~1e-6 |dL| over at most a few hundred outputs, ~1e-5
 * after dividing by 2h = 2e-2, i.e. 1e-5 of max|an| ~ O(1). Both are 1-2
 * orders below the tolerance; a real mistake (wrong index, missing term,
 * factor 2, wrong head group) gives errors of O(|an|).
 */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blas.h"
#include "common.h"
#include "fastexp.h"
#include "gradcheck.h"
#include "layers.h"

static const GcOpts GC_DEFAULT = {.h = 1e-2f, .stencil = 2, .atol_frac = 1e-3, .atol_min = 0, .rtol = 1e-2,
                                  .max_coords = 0, .seed = 1};

static float *fbuf(size_t n) { return xalloc_floats(n); }
static float *fcopy(const float *x, size_t n) {
    float *y = fbuf(n);
    memcpy(y, x, n * sizeof *y);
    return y;
}
static void ffill(float *x, size_t n, float v) {
    for (size_t i = 0; i < n; i++) x[i] = v;
}

/* Prefilled-accumulate check: backward into a buffer holding P must give
 * P + g where g is the result on a zeroed buffer (same ~ulp argument as
 * gc_twice_ratio, relative to max(|P|, |g|)). */
static double accum_ratio(const float *pre, const float *g, const float *got, size_t n) {
    double s = fmax(gc_max_abs(pre, n), gc_max_abs(g, n));
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double r = fabs((double)got[i] - ((double)pre[i] + g[i])) / (1e-5 * s + 1e-30);
        if (!(r <= worst)) worst = isnan(r) ? INFINITY : r;
    }
    return worst;
}

/* ------------------------------------------------------------ embedding */

typedef struct {
    int N, C;
    const int *tok;
    float *wte, *out;
    const float *R;
} EmbCtx;

static double emb_obj(void *p) {
    EmbCtx *c = p;
    embedding_forward(c->out, c->tok, c->wte, c->N, c->C);
    return gc_dot(c->out, c->R, (size_t)c->N * c->C);
}

static void test_embedding(void **state) {
    (void)state;
    enum { V = 11, C = 6, N = 10 };
    /* Repeated tokens (3 three times, 7 and 0 twice), unused rows 1 2 4 6 8. */
    const int tok[N] = {3, 7, 3, 0, 10, 3, 7, 5, 0, 9};
    float *wte = fbuf(V * C), *out = fbuf(N * C), *R = fbuf(N * C), *dwte = fbuf(V * C);
    gc_randn(wte, V * C, 1, 1.0f);
    gc_randn(R, N * C, 2, 1.0f);

    embedding_forward(out, tok, wte, N, C);
    for (int n = 0; n < N; n++) assert_memory_equal(out + n * C, wte + tok[n] * C, C * sizeof(float));

    embedding_backward(dwte, R, tok, N, C);
    /* Direct: dwte[v] = sum over positions holding v of R[n]. */
    double ref[V * C] = {0};
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++) ref[tok[n] * C + c] += R[n * C + c];
    for (int i = 0; i < V * C; i++) assert_true(fabs(dwte[i] - ref[i]) <= 1e-6 * (1 + fabs(ref[i])));
    for (int c = 0; c < C; c++) assert_true(dwte[1 * C + c] == 0.0f && dwte[8 * C + c] == 0.0f);

    EmbCtx ctx = {N, C, tok, wte, out, R};
    assert_true(gc_check("embedding dwte", emb_obj, &ctx, wte, dwte, V * C, &GC_DEFAULT) <= 1);

    float *once = fcopy(dwte, V * C);
    embedding_backward(dwte, R, tok, N, C);
    assert_true(gc_twice_ratio(once, dwte, V * C) <= 1);

    float *pre = fbuf(V * C), *got;
    gc_randn(pre, V * C, 3, 1.0f);
    got = fcopy(pre, V * C);
    embedding_backward(got, R, tok, N, C);
    assert_true(accum_ratio(pre, once, got, V * C) <= 1);

    free(wte), free(out), free(R), free(dwte), free(once), free(pre), free(got);
}

/* ------------------------------------------------------------ rmsnorm */

enum { RN = 5, RC = 12 };
static const float RMS_EPS = 1e-5f;

typedef struct {
    float *inp, *w, *out, *rstd;
    const float *R;
} RmsCtx;

static double rms_obj(void *p) {
    RmsCtx *c = p;
    rmsnorm_forward(c->out, c->rstd, c->inp, c->w, RN, RC, RMS_EPS);
    return gc_dot(c->out, c->R, RN * RC);
}

/* Rows at different scales (0.3 .. 3) so a mean taken over the wrong axis or
 * a missing rsqrt shows. */
static void rms_inputs(float *inp, float *w) {
    gc_randn(inp, RN * RC, 10, 1.0f);
    const float scale[RN] = {0.3f, 1.0f, 3.0f, 0.7f, 1.5f};
    for (int n = 0; n < RN; n++)
        for (int c = 0; c < RC; c++) inp[n * RC + c] *= scale[n];
    gc_randn(w, RC, 11, 0.5f);
    for (int c = 0; c < RC; c++) w[c] += 1.0f;
}

static void test_rmsnorm_forward(void **state) {
    (void)state;
    float *inp = fbuf(RN * RC), *w = fbuf(RC), *out = fbuf(RN * RC), *rstd = fbuf(RN), *ref = fbuf(RN * RC);
    float rref[RN];
    rms_inputs(inp, w);
    ffill(inp + 3 * RC, RC, 0.0f); /* an all-zero row: eps keeps it finite */
    rmsnorm_forward(out, rstd, inp, w, RN, RC, RMS_EPS);
    for (int n = 0; n < RN; n++) {
        double ss = 0;
        for (int c = 0; c < RC; c++) ss += (double)inp[n * RC + c] * inp[n * RC + c];
        double r = 1.0 / sqrt(ss / RC + RMS_EPS);
        rref[n] = (float)r;
        for (int c = 0; c < RC; c++) ref[n * RC + c] = (float)(inp[n * RC + c] * r * w[c]);
    }
    /* A handful of float ops per output: 1e-5 relative is ~100 ulps. */
    assert_true(tu_close_ratio(out, ref, RN * RC, 1e-6, 1e-5) <= 1);
    assert_true(tu_close_ratio(rstd, rref, RN, 0, 1e-5) <= 1);
    for (int c = 0; c < RC; c++) assert_true(out[3 * RC + c] == 0.0f);
    free(inp), free(w), free(out), free(rstd), free(ref);
}

static void test_rmsnorm_backward(void **state) {
    (void)state;
    float *inp = fbuf(RN * RC), *w = fbuf(RC), *out = fbuf(RN * RC), *rstd = fbuf(RN), *R = fbuf(RN * RC);
    float *dinp = fbuf(RN * RC), *dw = fbuf(RC);
    rms_inputs(inp, w);
    gc_randn(R, RN * RC, 12, 1.0f);
    rmsnorm_forward(out, rstd, inp, w, RN, RC, RMS_EPS);
    rmsnorm_backward(dinp, dw, R, inp, w, rstd, RN, RC);

    /* The smallest row has scale 0.3: h = 2e-3 keeps h / |x| <= 1e-2. */
    GcOpts o = GC_DEFAULT;
    o.h = 2e-3f;
    RmsCtx ctx = {inp, w, out, rstd, R};
    assert_true(gc_check("rmsnorm dinp", rms_obj, &ctx, inp, dinp, RN * RC, &o) <= 1);
    assert_true(gc_check("rmsnorm dweight", rms_obj, &ctx, w, dw, RC, &o) <= 1);

    /* Accumulate. */
    rmsnorm_forward(out, rstd, inp, w, RN, RC, RMS_EPS);
    float *dinp1 = fcopy(dinp, RN * RC), *dw1 = fcopy(dw, RC);
    rmsnorm_backward(dinp, dw, R, inp, w, rstd, RN, RC);
    assert_true(gc_twice_ratio(dinp1, dinp, RN * RC) <= 1);
    assert_true(gc_twice_ratio(dw1, dw, RC) <= 1);

    /* Frozen weight: NULL dweight leaves dinp exactly as before. */
    float *dinp_frozen = fbuf(RN * RC);
    rmsnorm_backward(dinp_frozen, NULL, R, inp, w, rstd, RN, RC);
    assert_memory_equal(dinp_frozen, dinp1, RN * RC * sizeof(float));

    free(inp), free(w), free(out), free(rstd), free(R), free(dinp), free(dw), free(dinp1), free(dw1),
        free(dinp_frozen);
}

/* ------------------------------------------------------------ linear */

typedef struct {
    int N, IN, OUT;
    float *inp, *w, *b, *out;
    const float *R;
} LinCtx;

static double lin_obj(void *p) {
    LinCtx *c = p;
    linear_forward(c->out, c->inp, c->w, c->b, c->N, c->IN, c->OUT);
    return gc_dot(c->out, c->R, (size_t)c->N * c->OUT);
}

/* Naive reference in double; also sum |inp||w| per output for the error bound. */
static void lin_ref(double *ref, double *mag, const float *inp, const float *w, const float *b, int N, int IN,
                    int OUT) {
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OUT; o++) {
            double s = b ? b[o] : 0, m = b ? fabs(b[o]) : 0;
            for (int i = 0; i < IN; i++) {
                s += (double)inp[n * IN + i] * w[o * IN + i];
                m += fabs((double)inp[n * IN + i] * w[o * IN + i]);
            }
            ref[n * OUT + o] = s;
            mag[n * OUT + o] = m;
        }
}

/* A float dot product of length K is within gamma_K * sum|a_i b_i| of the
 * exact value, gamma_K ~ K u, u = 2^-24 (Higham, Thm 3.1); blocked and FMA
 * summation do better. 2 K u is therefore a bound no correct GEMM exceeds,
 * while any indexing mistake is O(|out|). */
static int within_dot_bound(const float *got, const double *ref, const double *mag, size_t n, int K) {
    double u = ldexp(1.0, -24);
    for (size_t i = 0; i < n; i++) {
        double tol = 2.0 * (K + 2) * u * mag[i] + 1e-30;
        if (!(fabs(got[i] - ref[i]) <= tol)) {
            fprintf(stderr, "linear: [%zu] got %.9g ref %.9g (tol %.3g)\n", i, got[i], ref[i], tol);
            return 0;
        }
    }
    return 1;
}

static void linear_forward_case(int N, int IN, int OUT, int with_bias) {
    float *inp = fbuf((size_t)N * IN), *w = fbuf((size_t)OUT * IN), *b = with_bias ? fbuf(OUT) : NULL;
    float *out = fbuf((size_t)N * OUT);
    double *ref = malloc((size_t)N * OUT * sizeof *ref), *mag = malloc((size_t)N * OUT * sizeof *mag);
    gc_randn(inp, (size_t)N * IN, 20 + N, 1.0f);
    gc_randn(w, (size_t)OUT * IN, 21 + IN, 1.0f);
    if (b) gc_randn(b, OUT, 22, 1.0f);
    ffill(out, (size_t)N * OUT, NAN); /* out is written, never read */
    linear_forward(out, inp, w, b, N, IN, OUT);
    lin_ref(ref, mag, inp, w, b, N, IN, OUT);
    assert_true(within_dot_bound(out, ref, mag, (size_t)N * OUT, IN + 1));
    free(inp), free(w), free(b), free(out), free(ref), free(mag);
}

static void test_linear_forward(void **state) {
    (void)state;
    linear_forward_case(7, 13, 11, 1);
    linear_forward_case(7, 13, 11, 0);
    linear_forward_case(1, 5, 1, 1);      /* a decode step, one output */
    linear_forward_case(64, 515, 70, 1);  /* K past one GEMM block, several threads */
    linear_forward_case(33, 97, 130, 0);
}

/* Backward of larger shapes against the exact formulas in double:
 * dinp = dout W, dW = dout^T inp, db = colsum(dout). */
static void test_linear_backward_large(void **state) {
    (void)state;
    const int N = 67, IN = 301, OUT = 90;
    float *inp = fbuf((size_t)N * IN), *w = fbuf((size_t)OUT * IN), *dout = fbuf((size_t)N * OUT);
    float *dinp = fbuf((size_t)N * IN), *dw = fbuf((size_t)OUT * IN), *db = fbuf(OUT);
    gc_randn(inp, (size_t)N * IN, 30, 1.0f);
    gc_randn(w, (size_t)OUT * IN, 31, 1.0f);
    gc_randn(dout, (size_t)N * OUT, 32, 1.0f);
    linear_backward(dinp, dw, db, dout, inp, w, N, IN, OUT);

    double *ref = malloc((size_t)OUT * IN * sizeof *ref), *mag = malloc((size_t)OUT * IN * sizeof *mag);
    for (int n = 0; n < N; n++)
        for (int i = 0; i < IN; i++) {
            double s = 0, m = 0;
            for (int o = 0; o < OUT; o++) {
                s += (double)dout[n * OUT + o] * w[o * IN + i];
                m += fabs((double)dout[n * OUT + o] * w[o * IN + i]);
            }
            ref[n * IN + i] = s, mag[n * IN + i] = m;
        }
    assert_true(within_dot_bound(dinp, ref, mag, (size_t)N * IN, OUT));
    for (int o = 0; o < OUT; o++)
        for (int i = 0; i < IN; i++) {
            double s = 0, m = 0;
            for (int n = 0; n < N; n++) {
                s += (double)dout[n * OUT + o] * inp[n * IN + i];
                m += fabs((double)dout[n * OUT + o] * inp[n * IN + i]);
            }
            ref[o * IN + i] = s, mag[o * IN + i] = m;
        }
    assert_true(within_dot_bound(dw, ref, mag, (size_t)OUT * IN, N));
    for (int o = 0; o < OUT; o++) {
        double s = 0, m = 0;
        for (int n = 0; n < N; n++) s += dout[n * OUT + o], m += fabs(dout[n * OUT + o]);
        ref[o] = s, mag[o] = m;
    }
    assert_true(within_dot_bound(db, ref, mag, OUT, N));

    /* Accumulate with K = N = 67 rows (dweight) and OUT = 90 (dinp). */
    float *dinp1 = fcopy(dinp, (size_t)N * IN), *dw1 = fcopy(dw, (size_t)OUT * IN), *db1 = fcopy(db, OUT);
    linear_backward(dinp, dw, db, dout, inp, w, N, IN, OUT);
    assert_true(gc_twice_ratio(dinp1, dinp, (size_t)N * IN) <= 1);
    assert_true(gc_twice_ratio(dw1, dw, (size_t)OUT * IN) <= 1);
    assert_true(gc_twice_ratio(db1, db, OUT) <= 1);

    free(inp), free(w), free(dout), free(dinp), free(dw), free(db), free(ref), free(mag), free(dinp1),
        free(dw1), free(db1);
}

static void linear_grad_case(int N, int IN, int OUT, int with_bias) {
    size_t ni = (size_t)N * IN, nw = (size_t)OUT * IN, no = (size_t)N * OUT;
    float *inp = fbuf(ni), *w = fbuf(nw), *b = with_bias ? fbuf(OUT) : NULL, *out = fbuf(no), *R = fbuf(no);
    float *dinp = fbuf(ni), *dw = fbuf(nw), *db = with_bias ? fbuf(OUT) : NULL;
    gc_randn(inp, ni, 40, 1.0f);
    gc_randn(w, nw, 41, 0.3f);
    if (b) gc_randn(b, OUT, 42, 1.0f);
    gc_randn(R, no, 43, 1.0f);
    linear_backward(dinp, dw, db, R, inp, w, N, IN, OUT);

    /* L is linear in each single coordinate: the FD has no truncation error. */
    LinCtx ctx = {N, IN, OUT, inp, w, b, out, R};
    char name[64];
    snprintf(name, sizeof name, "linear %dx%d->%d%s dinp", N, IN, OUT, b ? "" : " nobias");
    assert_true(gc_check(name, lin_obj, &ctx, inp, dinp, ni, &GC_DEFAULT) <= 1);
    snprintf(name, sizeof name, "linear %dx%d->%d%s dweight", N, IN, OUT, b ? "" : " nobias");
    assert_true(gc_check(name, lin_obj, &ctx, w, dw, nw, &GC_DEFAULT) <= 1);
    if (b) assert_true(gc_check("linear dbias", lin_obj, &ctx, b, db, OUT, &GC_DEFAULT) <= 1);

    /* Accumulate. */
    float *dinp1 = fcopy(dinp, ni), *dw1 = fcopy(dw, nw), *db1 = b ? fcopy(db, OUT) : NULL;
    linear_backward(dinp, dw, db, R, inp, w, N, IN, OUT);
    assert_true(gc_twice_ratio(dinp1, dinp, ni) <= 1);
    assert_true(gc_twice_ratio(dw1, dw, nw) <= 1);
    if (b) assert_true(gc_twice_ratio(db1, db, OUT) <= 1);

    /* Frozen: no weight gradients, the same dinp. */
    float *d2 = fbuf(ni);
    linear_backward(d2, NULL, NULL, R, inp, w, N, IN, OUT);
    assert_memory_equal(d2, dinp1, ni * sizeof(float));
    /* First layer of a chain: no dinp, the same weight gradients. */
    float *dw2 = fbuf(nw), *db2 = b ? fbuf(OUT) : NULL;
    linear_backward(NULL, dw2, db2, R, inp, w, N, IN, OUT);
    assert_memory_equal(dw2, dw1, nw * sizeof(float));
    if (b) assert_memory_equal(db2, db1, OUT * sizeof(float));

    free(inp), free(w), free(b), free(out), free(R), free(dinp), free(dw), free(db), free(dinp1), free(dw1),
        free(db1), free(d2), free(dw2), free(db2);
}

static void test_linear_backward(void **state) {
    (void)state;
    linear_grad_case(7, 13, 11, 1);
    linear_grad_case(7, 13, 11, 0);
    linear_grad_case(3, 5, 17, 1); /* OUT > IN */
    linear_grad_case(1, 9, 2, 0);
}

/* ------------------------------------------------------------ rope */

enum { PB = 2, PT = 7, PNH = 3, PHS = 8 };
#define PN ((size_t)PB * PT * PNH * PHS)

static void rope_ref(double *out, const float *x, int B, int T, int NH, int HS, int pos0, double theta) {
    int H = HS / 2;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int h = 0; h < NH; h++) {
                const float *xr = x + (((size_t)b * T + t) * NH + h) * HS;
                double *o = out + (((size_t)b * T + t) * NH + h) * HS;
                for (int i = 0; i < H; i++) {
                    double ang = (pos0 + t) * pow(theta, -2.0 * i / HS);
                    double c = cos(ang), s = sin(ang);
                    o[i] = xr[i] * c - xr[i + H] * s;
                    o[i + H] = xr[i + H] * c + xr[i] * s;
                }
            }
}

static void test_rope_tables(void **state) {
    (void)state;
    const float thetas[2] = {10000.0f, 500000.0f};
    const int T = 40, HS = 16;
    float *ct = fbuf(T * HS / 2), *st = fbuf(T * HS / 2);
    for (int k = 0; k < 2; k++) {
        rope_tables(ct, st, T, HS, thetas[k]);
        for (int t = 0; t < T; t++)
            for (int i = 0; i < HS / 2; i++) {
                double ang = t * pow((double)thetas[k], -2.0 * i / HS);
                /* Angles up to 40 rad computed in float (as HF does): the
                 * rounding of the angle alone is up to ~2e-6 rad. */
                assert_true(fabs(ct[t * HS / 2 + i] - cos(ang)) <= 1e-5);
                assert_true(fabs(st[t * HS / 2 + i] - sin(ang)) <= 1e-5);
            }
    }
    free(ct), free(st);
}

static void test_rope_forward(void **state) {
    (void)state;
    const int TT = 12, pos0 = 5; /* second call: rows 5..11 with the offset table */
    float *ct = fbuf(TT * PHS / 2), *st = fbuf(TT * PHS / 2);
    rope_tables(ct, st, TT, PHS, 10000.0f);
    float *x = fbuf(PN), *y = fcopy(x, PN);
    double *ref = malloc(PN * sizeof *ref);
    gc_randn(x, PN, 50, 1.0f);
    memcpy(y, x, PN * sizeof *y);
    rope_forward(y, ct, st, PB, PT, PNH, PHS);
    rope_ref(ref, x, PB, PT, PNH, PHS, 0, 10000.0);
    for (size_t i = 0; i < PN; i++) assert_true(fabs(y[i] - ref[i]) <= 2e-5 * (1 + fabs(ref[i])));

    /* Decoding: a block of rows at positions pos0.. with the table offset. */
    float *x2 = fbuf(PN);
    gc_randn(x2, PN, 51, 1.0f);
    float *y2 = fcopy(x2, PN);
    rope_forward(y2, ct + pos0 * PHS / 2, st + pos0 * PHS / 2, PB, PT, PNH, PHS);
    rope_ref(ref, x2, PB, PT, PNH, PHS, pos0, 10000.0);
    for (size_t i = 0; i < PN; i++) assert_true(fabs(y2[i] - ref[i]) <= 2e-5 * (1 + fabs(ref[i])));

    /* Rotations preserve the norm of every (i, i + HS/2) pair. */
    for (size_t r = 0; r < PN / PHS; r++)
        for (int i = 0; i < PHS / 2; i++) {
            const float *a = x + r * PHS, *c = y + r * PHS;
            double n0 = (double)a[i] * a[i] + (double)a[i + PHS / 2] * a[i + PHS / 2];
            double n1 = (double)c[i] * c[i] + (double)c[i + PHS / 2] * c[i + PHS / 2];
            assert_true(fabs(n0 - n1) <= 1e-5 * (1 + n0));
        }
    free(ct), free(st), free(x), free(y), free(x2), free(y2), free(ref);
}

typedef struct {
    const float *ct, *st, *R;
    float *x, *tmp;
} RopeCtx;

static double rope_obj(void *p) {
    RopeCtx *c = p;
    memcpy(c->tmp, c->x, PN * sizeof(float));
    rope_forward(c->tmp, c->ct, c->st, PB, PT, PNH, PHS);
    return gc_dot(c->tmp, c->R, PN);
}

static void test_rope_backward(void **state) {
    (void)state;
    float *ct = fbuf(PT * PHS / 2), *st = fbuf(PT * PHS / 2);
    rope_tables(ct, st, PT, PHS, 10000.0f);
    float *x = fbuf(PN), *y = fbuf(PN), *rx = fbuf(PN), *bty = fbuf(PN), *tmp = fbuf(PN);
    gc_randn(x, PN, 60, 1.0f);
    gc_randn(y, PN, 61, 1.0f);

    /* Adjoint: <rope(x), y> == <x, rope_backward(y)>. Both sides are sums of
     * PN products of O(1) numbers each off by ~2 ulps: 1e-5 * sum|x||y|. */
    memcpy(rx, x, PN * sizeof *rx);
    rope_forward(rx, ct, st, PB, PT, PNH, PHS);
    memcpy(bty, y, PN * sizeof *bty);
    rope_backward(bty, ct, st, PB, PT, PNH, PHS);
    double lhs = gc_dot(rx, y, PN), rhs = gc_dot(x, bty, PN), mag = 0;
    for (size_t i = 0; i < PN; i++) mag += fabs((double)x[i] * y[i]);
    assert_true(fabs(lhs - rhs) <= 1e-5 * mag);

    /* Orthogonal: backward undoes forward. */
    rope_backward(rx, ct, st, PB, PT, PNH, PHS);
    assert_true(tu_close_ratio(rx, x, PN, 1e-5, 1e-5) <= 1);

    /* FD: grad of sum(rope(x) * y) is rope_backward(y). */
    RopeCtx ctx = {ct, st, y, x, tmp};
    assert_true(gc_check("rope dx", rope_obj, &ctx, x, bty, PN, &GC_DEFAULT) <= 1);

    free(ct), free(st), free(x), free(y), free(rx), free(bty), free(tmp);
}

/* ------------------------------------------------------------ attention */

typedef struct {
    int B, T, NH, NKV, HS;
    float *q, *k, *v, *out, *probs;
    const float *R;
} AttCtx;

static double att_obj(void *p) {
    AttCtx *c = p;
    attention_forward(c->out, c->probs, c->q, c->k, c->v, c->B, c->T, c->NH, c->NKV, c->HS);
    return gc_dot(c->out, c->R, (size_t)c->B * c->T * c->NH * c->HS);
}

/* Softmax attention in double, causal, scale 1/sqrt(HS) (Llama). */
static void att_ref(double *out, double *probs, const float *q, const float *k, const float *v, int B, int T,
                    int NH, int NKV, int HS) {
    double *sc = malloc(T * sizeof *sc);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            int g = h / (NH / NKV);
            for (int t = 0; t < T; t++) {
                const float *qr = q + (((size_t)b * T + t) * NH + h) * HS;
                double mx = -INFINITY, z = 0;
                for (int s = 0; s <= t; s++) {
                    const float *kr = k + (((size_t)b * T + s) * NKV + g) * HS;
                    double d = 0;
                    for (int i = 0; i < HS; i++) d += (double)qr[i] * kr[i];
                    sc[s] = d / sqrt((double)HS);
                    if (sc[s] > mx) mx = sc[s];
                }
                for (int s = 0; s <= t; s++) z += sc[s] = exp(sc[s] - mx);
                double *pr = probs + (((size_t)b * NH + h) * T + t) * T;
                double *o = out + (((size_t)b * T + t) * NH + h) * HS;
                for (int s = 0; s < T; s++) pr[s] = s <= t ? sc[s] / z : 0;
                for (int i = 0; i < HS; i++) {
                    double a = 0;
                    for (int s = 0; s <= t; s++) a += pr[s] * v[(((size_t)b * T + s) * NKV + g) * HS + i];
                    o[i] = a;
                }
            }
        }
    free(sc);
}

static void attention_forward_case(int B, int T, int NH, int NKV, int HS) {
    size_t nq = (size_t)B * T * NH * HS, nk = (size_t)B * T * NKV * HS, np = (size_t)B * NH * T * T;
    float *q = fbuf(nq), *k = fbuf(nk), *v = fbuf(nk), *out = fbuf(nq), *probs = fbuf(np);
    double *ro = malloc(nq * sizeof *ro), *rp = malloc(np * sizeof *rp);
    gc_randn(q, nq, 70, 1.0f);
    gc_randn(k, nk, 71, 1.0f);
    gc_randn(v, nk, 72, 1.0f);
    ffill(out, nq, NAN);
    ffill(probs, np, NAN); /* every entry, the masked half too, must be written */
    attention_forward(out, probs, q, k, v, B, T, NH, NKV, HS);
    att_ref(ro, rp, q, k, v, B, T, NH, NKV, HS);
    /* O(1) values, softmax and T-term sums in float: ~1e-6 absolute. */
    for (size_t i = 0; i < nq; i++) assert_true(fabs(out[i] - ro[i]) <= 1e-5 + 1e-4 * fabs(ro[i]));
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int t = 0; t < T; t++)
                for (int s = 0; s < T; s++) {
                    size_t i = (((size_t)b * NH + h) * T + t) * T + s;
                    if (s > t)
                        assert_true(probs[i] == 0.0f); /* a GEMM over all T x T must see zeros */
                    else
                        assert_true(fabs(probs[i] - rp[i]) <= 1e-6 + 1e-4 * rp[i]);
                }
    /* Position 0 attends to itself only: out == v of its kv head. */
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int i = 0; i < HS; i++)
                assert_true(fabs(out[(((size_t)b * T) * NH + h) * HS + i] -
                                 v[(((size_t)b * T) * NKV + h / (NH / NKV)) * HS + i]) <= 1e-6);

    /* Causality: new k and v at position t0 leave rows < t0 bit for bit,
     * and the rows from t0 on do see them. */
    int t0 = T / 2 + 1;
    float *out0 = fcopy(out, nq);
    size_t row = (size_t)NH * HS;
    if (t0 < T) {
        for (int b = 0; b < B; b++)
            for (int j = 0; j < NKV * HS; j++) {
                k[((size_t)b * T + t0) * NKV * HS + j] += 1.0f;
                v[((size_t)b * T + t0) * NKV * HS + j] -= 2.0f;
            }
        attention_forward(out, probs, q, k, v, B, T, NH, NKV, HS);
        for (int b = 0; b < B; b++) {
            assert_memory_equal(out + (size_t)b * T * row, out0 + (size_t)b * T * row, t0 * row * sizeof(float));
            assert_memory_not_equal(out + ((size_t)b * T + t0) * row, out0 + ((size_t)b * T + t0) * row,
                                    row * sizeof(float));
        }
    }
    free(q), free(k), free(v), free(out), free(probs), free(ro), free(rp), free(out0);
}

static void test_attention_forward(void **state) {
    (void)state;
    attention_forward_case(2, 7, 4, 4, 6);
    attention_forward_case(2, 7, 4, 2, 6);
    attention_forward_case(2, 7, 4, 1, 6);
    attention_forward_case(1, 1, 2, 1, 4);
    attention_forward_case(1, 33, 6, 2, 16);
    /* Longer than the 64-query blocks of attention_forward, with a partial
     * last block: the skipped upper blocks must still read as zeros. */
    attention_forward_case(2, 150, 2, 1, 8);
    /* Head sizes that take the kernel's vector paths: four, three and one
     * 16-float vectors per row, and one vector plus a scalar tail; T not a
     * multiple of the 6-query tiles or of 16 keys. */
    attention_forward_case(2, 70, 4, 2, 64);
    attention_forward_case(1, 37, 2, 1, 48);
    attention_forward_case(1, 23, 3, 3, 20);
}

static void attention_grad_case(int B, int T, int NH, int NKV, int HS) {
    size_t nq = (size_t)B * T * NH * HS, nk = (size_t)B * T * NKV * HS, np = (size_t)B * NH * T * T;
    float *q = fbuf(nq), *k = fbuf(nk), *v = fbuf(nk), *out = fbuf(nq), *probs = fbuf(np), *R = fbuf(nq);
    float *dq = fbuf(nq), *dk = fbuf(nk), *dv = fbuf(nk), *scratch = fbuf(np);
    gc_randn(q, nq, 80, 1.0f);
    gc_randn(k, nk, 81, 1.0f);
    gc_randn(v, nk, 82, 1.0f);
    gc_randn(R, nq, 83, 1.0f);
    attention_forward(out, probs, q, k, v, B, T, NH, NKV, HS);
    ffill(scratch, np, NAN); /* scratch is write-before-read */
    attention_backward(dq, dk, dv, scratch, R, q, k, v, probs, B, T, NH, NKV, HS);

    AttCtx ctx = {B, T, NH, NKV, HS, q, k, v, out, fbuf(np), R};
    char name[64];
    snprintf(name, sizeof name, "attention NH%d NKV%d T%d dq", NH, NKV, T);
    assert_true(gc_check(name, att_obj, &ctx, q, dq, nq, &GC_DEFAULT) <= 1);
    snprintf(name, sizeof name, "attention NH%d NKV%d T%d dk", NH, NKV, T);
    assert_true(gc_check(name, att_obj, &ctx, k, dk, nk, &GC_DEFAULT) <= 1);
    snprintf(name, sizeof name, "attention NH%d NKV%d T%d dv", NH, NKV, T);
    assert_true(gc_check(name, att_obj, &ctx, v, dv, nk, &GC_DEFAULT) <= 1);

    /* Accumulate. */
    float *dq1 = fcopy(dq, nq), *dk1 = fcopy(dk, nk), *dv1 = fcopy(dv, nk);
    attention_backward(dq, dk, dv, scratch, R, q, k, v, probs, B, T, NH, NKV, HS);
    assert_true(gc_twice_ratio(dq1, dq, nq) <= 1);
    assert_true(gc_twice_ratio(dk1, dk, nk) <= 1);
    assert_true(gc_twice_ratio(dv1, dv, nk) <= 1);

    free(q), free(k), free(v), free(out), free(probs), free(R), free(dq), free(dk), free(dv), free(scratch),
        free(ctx.probs), free(dq1), free(dk1), free(dv1);
}

static void test_attention_backward(void **state) {
    (void)state;
    attention_grad_case(2, 7, 4, 4, 6);
    attention_grad_case(2, 7, 4, 2, 6);
    attention_grad_case(2, 7, 4, 1, 6);
    attention_grad_case(1, 5, 2, 2, 3); /* odd head size */
    attention_grad_case(1, 140, 2, 1, 4); /* many query tiles, the last partial */
    attention_grad_case(1, 70, 2, 1, 64); /* the vector paths, as in the forward cases */
    attention_grad_case(1, 37, 4, 2, 48);
    attention_grad_case(2, 23, 2, 2, 20);
}

/* ------------------------------------------------------------ exp */

/* calm_expf against double exp: within 2 ulp wherever exp is a normal float
 * (two million evenly spaced points of that range and the powers of two
 * near zero), and the edges. */
static double exp_ulps(float x) {
    double e = exp((double)x);
    return fabs((double)calm_expf(x) - e) / ldexp(1.0, ilogb(e) - 23);
}

static void test_fast_exp(void **state) {
    (void)state;
    double worst = 0.0;
    long n = 2000000;
    for (long i = 0; i <= n; i++) {
        double e = exp_ulps((float)(-87.33 + (88.72 + 87.33) * (double)i / (double)n));
        worst = e > worst ? e : worst;
    }
    for (int k = 1; k < 100; k++)
        for (int sign = -1; sign <= 1; sign += 2) {
            double e = exp_ulps((float)(sign * ldexp(1.0, -k)));
            worst = e > worst ? e : worst;
        }
    printf("calm_expf: max error %.3f ulp\n", worst);
    assert_true(worst <= 2.0);
    assert_true(calm_expf(0.0f) == 1.0f);
    assert_true(isfinite(calm_expf(88.72f)) && calm_expf(88.72f) > 3.39e38f);
    assert_true(isinf(calm_expf(88.73f)) && isinf(calm_expf(INFINITY)));
    assert_true(calm_expf(-87.34f) == 0.0f && calm_expf(-INFINITY) == 0.0f);
    assert_true(isnan(calm_expf(NAN)));
}

/* ------------------------------------------------------------ swiglu */

enum { SN = 41 };

typedef struct {
    float *g, *u, *out;
    const float *R;
} SwiCtx;

static double swi_obj(void *p) {
    SwiCtx *c = p;
    swiglu_forward(c->out, c->g, c->u, SN);
    return gc_dot(c->out, c->R, SN);
}

static void swi_inputs(float *g, float *u) {
    gc_randn(g, SN, 90, 2.0f);
    gc_randn(u, SN, 91, 1.0f);
    /* Saturated gates: exp overflows in float for |g| > 88; must stay finite. */
    g[0] = -100.0f, g[1] = 100.0f, g[2] = -30.0f, g[3] = 30.0f, g[4] = 0.0f;
}

static void test_swiglu(void **state) {
    (void)state;
    float *g = fbuf(SN), *u = fbuf(SN), *out = fbuf(SN), *R = fbuf(SN), *dg = fbuf(SN), *du = fbuf(SN);
    swi_inputs(g, u);
    gc_randn(R, SN, 92, 1.0f);
    swiglu_forward(out, g, u, SN);
    assert_true(gc_all_finite(out, SN));
    for (int i = 0; i < SN; i++) {
        double sg = 1.0 / (1.0 + exp(-(double)g[i]));
        double ref = g[i] * sg * u[i];
        assert_true(fabs(out[i] - ref) <= 1e-6 + 1e-5 * fabs(ref));
    }

    swiglu_backward(dg, du, R, g, u, SN);
    assert_true(gc_all_finite(dg, SN) && gc_all_finite(du, SN));
    for (int i = 0; i < SN; i++) { /* the closed form, before FD */
        double sg = 1.0 / (1.0 + exp(-(double)g[i]));
        double rg = R[i] * u[i] * sg * (1 + g[i] * (1 - sg)), ru = R[i] * g[i] * sg;
        assert_true(fabs(dg[i] - rg) <= 1e-6 + 1e-5 * fabs(rg));
        assert_true(fabs(du[i] - ru) <= 1e-6 + 1e-5 * fabs(ru));
    }
    /* Elementwise: only out[i] moves, so the noise is an ulp of out[i] over
     * 2h; h = 1e-3 keeps truncation ~1e-7 for |g| <= 6. */
    GcOpts o = GC_DEFAULT;
    o.h = 1e-3f;
    SwiCtx ctx = {g, u, out, R};
    assert_true(gc_check("swiglu dgate", swi_obj, &ctx, g, dg, SN, &o) <= 1);
    assert_true(gc_check("swiglu dup", swi_obj, &ctx, u, du, SN, &o) <= 1);

    float *dg1 = fcopy(dg, SN), *du1 = fcopy(du, SN);
    swiglu_backward(dg, du, R, g, u, SN);
    assert_true(gc_twice_ratio(dg1, dg, SN) <= 1);
    assert_true(gc_twice_ratio(du1, du, SN) <= 1);
    free(g), free(u), free(out), free(R), free(dg), free(du), free(dg1), free(du1);
}

/* ------------------------------------------------------------ cross-entropy */

typedef struct {
    int N, V;
    float *logits, *losses;
    const int *tg;
    const float *w;
} CeCtx;

/* The mean loss, re-summed in double from the per-token losses. */
static double ce_obj(void *p) {
    CeCtx *c = p;
    crossentropy_forward(c->losses, c->logits, c->tg, c->w, c->N, c->V);
    double s = 0, sw = 0;
    for (int n = 0; n < c->N; n++) s += c->losses[n], sw += c->w ? c->w[n] : 1;
    return sw > 0 ? s / sw : 0;
}

static void ce_ref(double *loss, const float *logits, const int *tg, const float *w, int N, int V) {
    for (int n = 0; n < N; n++) {
        const float *x = logits + (size_t)n * V;
        double mx = -INFINITY, z = 0;
        for (int j = 0; j < V; j++) mx = fmax(mx, x[j]);
        for (int j = 0; j < V; j++) z += exp(x[j] - mx);
        loss[n] = (w ? w[n] : 1) * (mx + log(z) - x[tg[n]]);
    }
}

static void crossentropy_case(int N, int V, float shift) {
    float *logits = fbuf((size_t)N * V), *losses = fbuf(N), *w = fbuf(N), *dl = fbuf((size_t)N * V);
    int *tg = malloc(N * sizeof *tg);
    double *ref = malloc(N * sizeof *ref);
    gc_randn(logits, (size_t)N * V, 100 + V, 2.0f);
    for (size_t i = 0; i < (size_t)N * V; i++) logits[i] += shift;
    gc_randint(tg, N, 101, V);
    tg[0] = 0, tg[N - 1] = V - 1; /* both ends of the row */
    double sw = 0;
    for (int n = 0; n < N; n++) sw += w[n] = (n % 3 == 1) ? 0.0f : 0.5f + n; /* zeros and unequal weights */

    float mean = crossentropy_forward(losses, logits, tg, w, N, V);
    ce_ref(ref, logits, tg, w, N, V);
    double rs = 0;
    for (int n = 0; n < N; n++) {
        /* lse - x[t] of O(5) values: float gives ~1e-6 relative; shifted
         * logits (|x| ~ 200, ulp 1.5e-5) cost at most a few of their ulps. */
        assert_true(fabs(losses[n] - ref[n]) <= 1e-4 * (1 + fabs(ref[n])));
        if (w[n] == 0) assert_true(losses[n] == 0.0f);
        rs += ref[n];
    }
    assert_true(fabs(mean - rs / sw) <= 1e-4 * (1 + rs / sw));

    crossentropy_backward(dl, logits, tg, w, (float)(1.0 / sw), N, V);
    assert_true(gc_all_finite(dl, (size_t)N * V));
    for (int n = 0; n < N; n++) {
        double rsum = 0;
        for (int j = 0; j < V; j++) {
            rsum += dl[(size_t)n * V + j];
            if (w[n] == 0) assert_true(dl[(size_t)n * V + j] == 0.0f);
        }
        /* softmax - onehot sums to 0, up to the rounding of V float
         * probabilities each within ~2u of exact: 2 V u of the row's scale */
        double rtol = 2.0 * V * ldexp(1.0, -24) * (w[n] / sw) + 1e-30;
        if (!(fabs(rsum) <= rtol)) fprintf(stderr, "crossentropy row %d: sum %.3g > %.3g\n", n, rsum, rtol);
        assert_true(fabs(rsum) <= rtol);
    }
    /* Only row n of the loss moves when a logit of row n moves. */
    CeCtx ctx = {N, V, logits, losses, tg, w};
    char name[64];
    snprintf(name, sizeof name, "crossentropy N%d V%d shift%g", N, V, shift);
    GcOpts o = GC_DEFAULT;
    if (shift != 0) { /* ulp(200) = 1.5e-5: a step of 2^-4 is exact there, and the
                       * 4-point stencil keeps its truncation at ~h^4/30 = 5e-7 */
        o.h = 0.0625f;
        o.stencil = 4;
    }
    assert_true(gc_check(name, ce_obj, &ctx, logits, dl, (size_t)N * V, &o) <= 1);

    float *dl1 = fcopy(dl, (size_t)N * V);
    crossentropy_backward(dl, logits, tg, w, (float)(1.0 / sw), N, V);
    assert_true(gc_twice_ratio(dl1, dl, (size_t)N * V) <= 1);

    /* NULL weights == all ones. */
    float *ones = fbuf(N), *l2 = fbuf(N);
    ffill(ones, N, 1.0f);
    float m1 = crossentropy_forward(losses, logits, tg, ones, N, V);
    float m2 = crossentropy_forward(l2, logits, tg, NULL, N, V);
    assert_true(m1 == m2);
    assert_memory_equal(losses, l2, N * sizeof(float));
    float *d1 = fbuf((size_t)N * V), *d2 = fbuf((size_t)N * V);
    crossentropy_backward(d1, logits, tg, ones, 1.0f / N, N, V);
    crossentropy_backward(d2, logits, tg, NULL, 1.0f / N, N, V);
    assert_memory_equal(d1, d2, (size_t)N * V * sizeof(float));

    free(logits), free(losses), free(w), free(dl), free(tg), free(ref), free(dl1), free(ones), free(l2),
        free(d1), free(d2);
}

static void test_crossentropy(void **state) {
    (void)state;
    crossentropy_case(6, 37, 0.0f);
    crossentropy_case(4, 259, 0.0f);
    crossentropy_case(3, 50, 200.0f); /* exp(200) overflows float */
}

static void test_crossentropy_zero_weights(void **state) {
    (void)state;
    enum { N = 4, V = 23 };
    float *logits = fbuf(N * V), *losses = fbuf(N), *w = fbuf(N), *dl = fbuf(N * V);
    int tg[N] = {0, 5, 22, 7};
    gc_randn(logits, N * V, 110, 2.0f);
    ffill(losses, N, NAN);
    assert_true(crossentropy_forward(losses, logits, tg, w, N, V) == 0.0f);
    for (int n = 0; n < N; n++) assert_true(losses[n] == 0.0f);
    /* With no weight there is no gradient, whatever scale the caller passes. */
    gc_randn(dl, N * V, 111, 1.0f);
    float *pre = fcopy(dl, N * V);
    crossentropy_backward(dl, logits, tg, w, 0.0f, N, V);
    assert_memory_equal(dl, pre, N * V * sizeof(float));
    crossentropy_backward(dl, logits, tg, w, 1.0f, N, V);
    assert_memory_equal(dl, pre, N * V * sizeof(float));
    free(logits), free(losses), free(w), free(dl), free(pre);
}

int main(void) {
    calm_quiet = 1;
    calm_blas_init(0); /* threads from CALM_THREADS (ctest sets 1) */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_embedding),
        cmocka_unit_test(test_rmsnorm_forward),
        cmocka_unit_test(test_rmsnorm_backward),
        cmocka_unit_test(test_linear_forward),
        cmocka_unit_test(test_linear_backward),
        cmocka_unit_test(test_linear_backward_large),
        cmocka_unit_test(test_rope_tables),
        cmocka_unit_test(test_rope_forward),
        cmocka_unit_test(test_rope_backward),
        cmocka_unit_test(test_attention_forward),
        cmocka_unit_test(test_attention_backward),
        cmocka_unit_test(test_fast_exp),
        cmocka_unit_test(test_swiglu),
        cmocka_unit_test(test_crossentropy),
        cmocka_unit_test(test_crossentropy_zero_weights),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
