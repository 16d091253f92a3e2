/* test_attention.c: the forward/backward pairs of src/layers.h for
 * attention, the fast exp, SwiGLU and cross-entropy: forward against a naive
 * reference in double, backward against central finite differences, with
 * the tolerances explained at the top of test_layers.c. */
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
        cmocka_unit_test(test_attention_forward),
        cmocka_unit_test(test_attention_backward),
        cmocka_unit_test(test_fast_exp),
        cmocka_unit_test(test_swiglu),
        cmocka_unit_test(test_crossentropy),
        cmocka_unit_test(test_crossentropy_zero_weights),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
