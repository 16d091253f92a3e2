/* layers.c: see layers.h for the conventions. Row loops run on OpenMP
 * threads; matrix products go through BLIS (blas.h). */
#include "src/layers.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "src/blas.h"
#include "src/common.h"
#include "src/fastexp.h"

/* ---------------------------------------------------------------- embedding */

void embedding_forward(float *out, const int *tokens, const float *wte, int N, int C) {
#pragma omp parallel for
    for (int n = 0; n < N; n++) memcpy(out + (size_t)n * C, wte + (size_t)tokens[n] * C, sizeof(float) * C);
}

void embedding_backward(float *dwte, const float *dout, const int *tokens, int N, int C) {
    /* Serial over rows: a token may repeat, and the cost is tiny. */
    for (int n = 0; n < N; n++) {
        float *d = dwte + (size_t)tokens[n] * C;
        const float *g = dout + (size_t)n * C;
        for (int c = 0; c < C; c++) d[c] += g[c];
    }
}

/* ------------------------------------------------------------------ rmsnorm */

void rmsnorm_forward(float *out, float *rstd, const float *inp, const float *weight, int N, int C, float eps) {
#pragma omp parallel for
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        float *y = out + (size_t)n * C;
        float ss = 0.0f;
        for (int c = 0; c < C; c++) ss += x[c] * x[c];
        float r = 1.0f / sqrtf(ss / (float)C + eps);
        for (int c = 0; c < C; c++) y[c] = x[c] * r * weight[c];
        rstd[n] = r;
    }
}

void rmsnorm_backward(float *dinp, float *dweight, const float *dout, const float *inp, const float *weight,
                      const float *rstd, int N, int C) {
    /* y = x r w with r = (mean(x^2) + eps)^-1/2:
     *   dx = r (dy w) - x r^3 / C * sum(dy w x),   dw = sum_n dy x r. */
#pragma omp parallel for
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C, *dy = dout + (size_t)n * C;
        float *dx = dinp + (size_t)n * C;
        float r = rstd[n], dot = 0.0f;
        for (int c = 0; c < C; c++) dot += dy[c] * weight[c] * x[c];
        float k = dot * r * r * r / (float)C;
        for (int c = 0; c < C; c++) dx[c] += r * dy[c] * weight[c] - k * x[c];
    }
    if (!dweight) return;
    /* Column sums: each thread takes a slice of columns so no two threads
     * write the same dweight entry, and the sum order is fixed. */
#pragma omp parallel
    {
        int nt = omp_get_num_threads(), t = omp_get_thread_num();
        int c0 = (int)((long)C * t / nt), c1 = (int)((long)C * (t + 1) / nt);
        for (int n = 0; n < N; n++) {
            const float *x = inp + (size_t)n * C, *dy = dout + (size_t)n * C;
            float r = rstd[n];
            for (int c = c0; c < c1; c++) dweight[c] += dy[c] * x[c] * r;
        }
    }
}

/* ------------------------------------------------------------------- linear */

void linear_forward(float *out, const float *inp, const float *weight, const float *bias, int N, int IN, int OUT) {
    float beta = 0.0f;
    if (bias) {
#pragma omp parallel for
        for (int n = 0; n < N; n++) memcpy(out + (size_t)n * OUT, bias, sizeof(float) * OUT);
        beta = 1.0f;
    }
    sgemm(0, 1, N, OUT, IN, 1.0f, inp, IN, weight, IN, beta, out, OUT);
}

void linear_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                     const float *weight, int N, int IN, int OUT) {
    if (dinp) sgemm(0, 0, N, IN, OUT, 1.0f, dout, OUT, weight, IN, 1.0f, dinp, IN);
    if (dweight) sgemm(1, 0, OUT, IN, N, 1.0f, dout, OUT, inp, IN, 1.0f, dweight, IN);
    if (dbias) {
#pragma omp parallel
        {
            int nt = omp_get_num_threads(), t = omp_get_thread_num();
            int o0 = (int)((long)OUT * t / nt), o1 = (int)((long)OUT * (t + 1) / nt);
            for (int n = 0; n < N; n++)
                for (int o = o0; o < o1; o++) dbias[o] += dout[(size_t)n * OUT + o];
        }
    }
}

/* --------------------------------------------------------------------- rope */

void rope_tables(float *cos_t, float *sin_t, int T, int HS, float theta) {
    int half = HS / 2;
    double *inv_freq = xmalloc((size_t)half * sizeof(double));
    for (int i = 0; i < half; i++) inv_freq[i] = pow((double)theta, -2.0 * i / HS);
    rope_tables_freq(cos_t, sin_t, T, half, inv_freq);
    free(inv_freq);
}

void rope_tables_freq(float *cos_t, float *sin_t, int T, int half, const double *inv_freq) {
    for (int t = 0; t < T; t++)
        for (int i = 0; i < half; i++) {
            cos_t[(size_t)t * half + i] = (float)cos(t * inv_freq[i]);
            sin_t[(size_t)t * half + i] = (float)sin(t * inv_freq[i]);
        }
}

/* rotate_half: (x1, x2) -> (x1 cos - x2 sin, x2 cos + x1 sin) per head; the
 * backward is the transposed rotation (sign of sin flipped). */
static void rope_apply(float *x, const float *cos_t, const float *sin_t, int B, int T, int NH, int HS, float sign) {
    int half = HS / 2;
#pragma omp parallel for collapse(2)
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            const float *cs = cos_t + (size_t)t * half, *sn = sin_t + (size_t)t * half;
            for (int h = 0; h < NH; h++) {
                float *v = x + (((size_t)b * T + t) * NH + h) * HS;
                for (int i = 0; i < half; i++) {
                    float x1 = v[i], x2 = v[i + half], s = sign * sn[i];
                    v[i] = x1 * cs[i] - x2 * s;
                    v[i + half] = x2 * cs[i] + x1 * s;
                }
            }
        }
}

void rope_forward(float *x, const float *cos_t, const float *sin_t, int B, int T, int NH, int HS) {
    rope_apply(x, cos_t, sin_t, B, T, NH, HS, 1.0f);
}

void rope_backward(float *dx, const float *cos_t, const float *sin_t, int B, int T, int NH, int HS) {
    rope_apply(dx, cos_t, sin_t, B, T, NH, HS, -1.0f);
}

/* ---------------------------------------------------------------- attention */

/* The attention products are small: per head, T x T x HS with HS = 64
 * typically. BLIS spends as much on packing and call set-up as on
 * arithmetic at these sizes (30-80 GFLOP/s on one core, against ~95 for
 * large products), so they are done here by one register-tiled kernel that
 * reads its operands in place. Each OpenMP task runs one (batch, head) on
 * one thread.
 *
 * The kernel computes TILE_M rows of a product C = alpha A B (+ C), where
 * row r of A is a[r*ar + k*ak] (so A may be read transposed) and B is
 * row-major with 16-float vectors along its rows. Causal attention takes
 * the rows in tiles of TILE_M queries; each tile's products stop at its
 * last key, so the masked upper triangle is never computed. Entries of
 * probs above the diagonal are stored as zeros. */

typedef float vf16 __attribute__((vector_size(64))); /* one AVX-512 register */

enum { VL = 16, TILE_M = 6 };

static inline vf16 vload(const float *p) {
    vf16 v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void vstore(float *p, vf16 v) { memcpy(p, &v, sizeof v); }

/* c[r][0 : NV*VL] = alpha * sum_{k<K} a[r*ar + k*ak] * b[k*ldb + 0 : NV*VL] (+ c if add), r < m <= TILE_M.
 * NV (1-4) is a constant at every call, so the 6 x NV accumulators live in
 * registers. Rows past m repeat row m-1 and are not stored. */
static inline __attribute__((always_inline)) void tile_kernel(const int NV, int m, int K, float alpha, const float *a,
                                                              long ar, long ak, const float *b, long ldb, float *c,
                                                              long ldc, int add) {
    vf16 acc[TILE_M][4];
    const float *ap[TILE_M];
    for (int r = 0; r < TILE_M; r++) {
        ap[r] = a + (r < m ? r : m - 1) * ar;
        for (int v = 0; v < NV; v++) acc[r][v] = (vf16){0};
    }
    for (int k = 0; k < K; k++) {
        vf16 bv[4];
        for (int v = 0; v < NV; v++) bv[v] = vload(b + k * ldb + v * VL);
        for (int r = 0; r < TILE_M; r++) {
            vf16 x = ap[r][k * ak] - (vf16){0}; /* broadcast (x - 0 is exact, so GCC emits just the broadcast) */
            for (int v = 0; v < NV; v++) acc[r][v] += x * bv[v];
        }
    }
    for (int r = 0; r < m; r++)
        for (int v = 0; v < NV; v++) {
            float *cp = c + r * ldc + v * VL;
            vf16 y = alpha * acc[r][v];
            if (add) y += vload(cp);
            vstore(cp, y);
        }
}

/* The same for n columns: 64-column blocks, one block of 16-48, then a
 * scalar tail for n not a multiple of 16. */
static void tile_rows(int m, int n, int K, float alpha, const float *a, long ar, long ak, const float *b, long ldb,
                      float *c, long ldc, int add) {
    int j = 0;
    for (; j + 4 * VL <= n; j += 4 * VL) tile_kernel(4, m, K, alpha, a, ar, ak, b + j, ldb, c + j, ldc, add);
    switch ((n - j) / VL) {
    case 3: tile_kernel(3, m, K, alpha, a, ar, ak, b + j, ldb, c + j, ldc, add); break;
    case 2: tile_kernel(2, m, K, alpha, a, ar, ak, b + j, ldb, c + j, ldc, add); break;
    case 1: tile_kernel(1, m, K, alpha, a, ar, ak, b + j, ldb, c + j, ldc, add); break;
    }
    j += (n - j) / VL * VL;
    for (; j < n; j++)
        for (int r = 0; r < m; r++) {
            float s = 0.0f;
            for (int k = 0; k < K; k++) s += a[r * ar + k * ak] * b[k * ldb + j];
            c[r * ldc + j] = alpha * s + (add ? c[r * ldc + j] : 0.0f);
        }
}

static int round_up(int n, int to) { return (n + to - 1) / to * to; }

/* xt[d][j] = x[j*stride + d] for j < T, zero for T <= j < Tp: an [HS, Tp] copy
 * of one head's keys or values, so that the products with them run along
 * its rows. */
static void transpose_head(float *xt, const float *x, long stride, int T, int Tp, int HS) {
    for (int d = 0; d < HS; d++) {
        for (int j = 0; j < T; j++) xt[(size_t)d * Tp + j] = x[j * stride + d];
        for (int j = T; j < Tp; j++) xt[(size_t)d * Tp + j] = 0.0f;
    }
}

void attention_forward(float *out, float *probs, const float *q, const float *k, const float *v, int B, int T,
                       int NH, int NKV, int HS) {
    const float scale = 1.0f / sqrtf((float)HS);
    const int group = NH / NKV;
    const long qs = (long)NH * HS, ks = (long)NKV * HS; /* row strides */
    const int Tp = round_up(T, VL);
#pragma omp parallel
    {
        float *kt = xalloc_floats((size_t)HS * Tp), *s = xalloc_floats((size_t)TILE_M * Tp);
#pragma omp for collapse(2) schedule(dynamic)
        for (int b = 0; b < B; b++)
            for (int h = 0; h < NH; h++) {
                const float *qb = q + (size_t)b * T * qs + (size_t)h * HS;
                const float *kb = k + (size_t)b * T * ks + (size_t)(h / group) * HS;
                const float *vb = v + (size_t)b * T * ks + (size_t)(h / group) * HS;
                float *ob = out + (size_t)b * T * qs + (size_t)h * HS;
                float *P = probs + ((size_t)b * NH + h) * T * T;
                transpose_head(kt, kb, ks, T, Tp, HS);
                for (int i0 = 0; i0 < T; i0 += TILE_M) {
                    const int m = T - i0 < TILE_M ? T - i0 : TILE_M, n = i0 + m; /* queries, keys [0, n) */
                    /* scores of the tile's queries against keys [0, n), rounded up to whole vectors */
                    tile_rows(m, round_up(n, VL), HS, scale, qb + (size_t)i0 * qs, qs, 1, kt, Tp, s, Tp, 0);
                    for (int r = 0; r < m; r++) {
                        const int t = i0 + r;
                        const float *x = s + (size_t)r * Tp;
                        float *p = P + (size_t)t * T;
                        float mx = x[0];
#pragma omp simd reduction(max : mx)
                        for (int j = 1; j <= t; j++) mx = x[j] > mx ? x[j] : mx;
                        float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
                        for (int j = 0; j <= t; j++) sum += (p[j] = calm_expf(x[j] - mx));
                        const float inv = 1.0f / sum;
                        for (int j = 0; j <= t; j++) p[j] *= inv;
                        for (int j = t + 1; j < T; j++) p[j] = 0.0f; /* causal */
                    }
                    tile_rows(m, HS, n, 1.0f, P + (size_t)i0 * T, T, 1, vb, ks, ob + (size_t)i0 * qs, qs, 0);
                }
            }
        free(kt), free(s);
    }
}

void attention_backward(float *dq, float *dk, float *dv, float *scratch, const float *dout, const float *q,
                        const float *k, const float *v, const float *probs, int B, int T, int NH, int NKV, int HS) {
    const float scale = 1.0f / sqrtf((float)HS);
    const int group = NH / NKV;
    const long qs = (long)NH * HS, ks = (long)NKV * HS;
    const int Tp = round_up(T, VL);
#pragma omp parallel
    {
        float *vt = xalloc_floats((size_t)HS * Tp), *s = xalloc_floats((size_t)TILE_M * Tp);
        /* One task per (batch, kv head): the query heads of a group all write
         * the same dk/dv rows, so they run in one task, in order. */
#pragma omp for collapse(2) schedule(dynamic)
        for (int b = 0; b < B; b++)
            for (int g = 0; g < NKV; g++) {
                const float *kb = k + (size_t)b * T * ks + (size_t)g * HS;
                const float *vb = v + (size_t)b * T * ks + (size_t)g * HS;
                float *dkb = dk + (size_t)b * T * ks + (size_t)g * HS;
                float *dvb = dv + (size_t)b * T * ks + (size_t)g * HS;
                transpose_head(vt, vb, ks, T, Tp, HS);
                for (int h = g * group; h < (g + 1) * group; h++) {
                    const float *P = probs + ((size_t)b * NH + h) * T * T;
                    float *dS = scratch + ((size_t)b * NH + h) * T * T;
                    const float *qb = q + (size_t)b * T * qs + (size_t)h * HS;
                    const float *dob = dout + (size_t)b * T * qs + (size_t)h * HS;
                    float *dqb = dq + (size_t)b * T * qs + (size_t)h * HS;
                    for (int i0 = 0; i0 < T; i0 += TILE_M) { /* query tiles: keys [0, n) */
                        const int m = T - i0 < TILE_M ? T - i0 : TILE_M, n = i0 + m;
                        tile_rows(m, round_up(n, VL), HS, 1.0f, dob + (size_t)i0 * qs, qs, 1, vt, Tp, s, Tp,
                                  0); /* dP = dO V^T */
                        for (int r = 0; r < m; r++) { /* softmax backward */
                            const int t = i0 + r;
                            const float *p = P + (size_t)t * T, *x = s + (size_t)r * Tp;
                            float *d = dS + (size_t)t * T, dot = 0.0f;
#pragma omp simd reduction(+ : dot)
                            for (int j = 0; j <= t; j++) dot += x[j] * p[j];
                            for (int j = 0; j <= t; j++) d[j] = p[j] * (x[j] - dot);
                            for (int j = t + 1; j < T; j++) d[j] = 0.0f; /* read as zeros below */
                        }
                        tile_rows(m, HS, n, scale, dS + (size_t)i0 * T, T, 1, kb, ks, dqb + (size_t)i0 * qs, qs,
                                  1); /* dQ += s dS K */
                    }
                    for (int j0 = 0; j0 < T; j0 += TILE_M) { /* key tiles: queries [j0, T), read down columns */
                        const int m = T - j0 < TILE_M ? T - j0 : TILE_M;
                        const size_t at = (size_t)j0 * T + j0;
                        tile_rows(m, HS, T - j0, 1.0f, P + at, 1, T, dob + (size_t)j0 * qs, qs, dvb + (size_t)j0 * ks,
                                  ks, 1); /* dV += P^T dO */
                        tile_rows(m, HS, T - j0, scale, dS + at, 1, T, qb + (size_t)j0 * qs, qs,
                                  dkb + (size_t)j0 * ks, ks, 1); /* dK += s dS^T Q */
                    }
                }
            }
        free(vt), free(s);
    }
}

/* ------------------------------------------------------------------- swiglu */

void swiglu_forward(float *out, const float *gate, const float *up, long n) {
#pragma omp parallel for simd
    for (long i = 0; i < n; i++) {
        float g = gate[i];
        out[i] = g / (1.0f + calm_expf(-g)) * up[i];
    }
}

void swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate, const float *up, long n) {
    /* silu(g) = g s(g);  silu'(g) = s(g) (1 + g (1 - s(g))). */
#pragma omp parallel for simd
    for (long i = 0; i < n; i++) {
        float g = gate[i], s = 1.0f / (1.0f + calm_expf(-g));
        if (dgate) dgate[i] += dout[i] * up[i] * s * (1.0f + g * (1.0f - s));
        if (dup) dup[i] += dout[i] * g * s;
    }
}

/* ------------------------------------------------------------ cross-entropy */

static float row_logsumexp(const float *x, int V) {
    float mx = x[0];
#pragma omp simd reduction(max : mx)
    for (int i = 1; i < V; i++) mx = x[i] > mx ? x[i] : mx;
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int i = 0; i < V; i++) s += calm_expf(x[i] - mx);
    return mx + logf(s);
}

float crossentropy_forward(float *losses, const float *logits, const int *targets, const float *weights, int N,
                           int V) {
    double total = 0.0, wsum = 0.0;
#pragma omp parallel for reduction(+ : total, wsum)
    for (int n = 0; n < N; n++) {
        float w = weights ? weights[n] : 1.0f;
        float l = 0.0f;
        if (w != 0.0f) {
            const float *x = logits + (size_t)n * V;
            l = w * (row_logsumexp(x, V) - x[targets[n]]);
        }
        losses[n] = l;
        total += l;
        wsum += w;
    }
    return wsum > 0.0 ? (float)(total / wsum) : 0.0f;
}

void crossentropy_backward(float *dlogits, const float *logits, const int *targets, const float *weights,
                           float scale, int N, int V) {
#pragma omp parallel for
    for (int n = 0; n < N; n++) {
        float w = (weights ? weights[n] : 1.0f) * scale;
        if (w == 0.0f) continue;
        const float *x = logits + (size_t)n * V;
        float *d = dlogits + (size_t)n * V;
        float lse = row_logsumexp(x, V);
#pragma omp simd
        for (int i = 0; i < V; i++) d[i] += w * calm_expf(x[i] - lse);
        d[targets[n]] -= w;
    }
}

/* One query row of a KV-cache decode (see layers.h). */
void attention_decode_row(float *o, float *sc, const float *q, const float *kb, const float *vb, int pos, int HS,
                          size_t stride, float scale) {
    float mx = -INFINITY, sum = 0.0f;
    for (int j = 0; j <= pos; j++) {
        float d = 0.0f;
        for (int i = 0; i < HS; i++) d += q[i] * kb[(size_t)j * stride + i];
        sc[j] = d * scale;
        mx = sc[j] > mx ? sc[j] : mx;
    }
    for (int j = 0; j <= pos; j++) sum += (sc[j] = calm_expf(sc[j] - mx));
    for (int i = 0; i < HS; i++) o[i] = 0.0f;
    for (int j = 0; j <= pos; j++) {
        float p = sc[j] / sum;
        for (int i = 0; i < HS; i++) o[i] += p * vb[(size_t)j * stride + i];
    }
}
