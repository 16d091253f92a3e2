/* test_layers.c: the forward/backward pairs of src/layers.h for embedding,
 * RMSNorm, linear and RoPE (test_attention.c: attention, exp, SwiGLU and
 * cross-entropy).
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

#include "src/blas.h"
#include "src/common.h"
#include "src/fastexp.h"
#include "gradcheck.h"
#include "src/layers.h"

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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
