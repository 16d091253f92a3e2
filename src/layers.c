/* layers.c: see layers.h for the conventions. Row loops run on OpenMP
 * threads; matrix products go through BLIS (blas.h). */
#include "layers.h"

#include <math.h>
#include <omp.h>
#include <string.h>

#include "blas.h"
#include "common.h"
#include "fastexp.h"

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
    for (int t = 0; t < T; t++)
        for (int i = 0; i < half; i++) {
            double inv_freq = pow((double)theta, -2.0 * i / HS);
            cos_t[(size_t)t * half + i] = (float)cos(t * inv_freq);
            sin_t[(size_t)t * half + i] = (float)sin(t * inv_freq);
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

/* Causal attention touches only the keys at or before each query, so the
 * rows are taken in blocks of ATT_BLOCK queries and each block's products
 * stop at its last key: the masked upper blocks of the T x T score matrix
 * are never computed (5/8 of the full products at T = 4 blocks). Entries
 * above the diagonal are stored as zeros, as before. */
#define ATT_BLOCK 64

void attention_forward(float *out, float *probs, const float *q, const float *k, const float *v, int B, int T,
                       int NH, int NKV, int HS) {
    const float scale = 1.0f / sqrtf((float)HS);
    const int group = NH / NKV;
    const int qs = NH * HS, ks = NKV * HS; /* row strides */
#pragma omp parallel for collapse(2) schedule(dynamic)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            const float *qb = q + (size_t)b * T * qs + (size_t)h * HS;
            const float *kb = k + (size_t)b * T * ks + (size_t)(h / group) * HS;
            const float *vb = v + (size_t)b * T * ks + (size_t)(h / group) * HS;
            float *ob = out + (size_t)b * T * qs + (size_t)h * HS;
            float *P = probs + ((size_t)b * NH + h) * T * T;
            for (int i0 = 0; i0 < T; i0 += ATT_BLOCK) {
                const int i1 = i0 + ATT_BLOCK < T ? i0 + ATT_BLOCK : T; /* keys [0, i1) */
                sgemm_1t(0, 1, i1 - i0, i1, HS, scale, qb + (size_t)i0 * qs, qs, kb, ks, 0.0f, P + (size_t)i0 * T, T);
                for (int t = i0; t < i1; t++) {
                    float *p = P + (size_t)t * T;
                    float mx = p[0];
#pragma omp simd reduction(max : mx)
                    for (int j = 1; j <= t; j++) mx = p[j] > mx ? p[j] : mx;
                    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
                    for (int j = 0; j <= t; j++) sum += (p[j] = calm_expf(p[j] - mx));
                    float inv = 1.0f / sum;
                    for (int j = 0; j <= t; j++) p[j] *= inv;
                    for (int j = t + 1; j < T; j++) p[j] = 0.0f; /* causal */
                }
                sgemm_1t(0, 0, i1 - i0, HS, i1, 1.0f, P + (size_t)i0 * T, T, vb, ks, 0.0f, ob + (size_t)i0 * qs, qs);
            }
        }
}

void attention_backward(float *dq, float *dk, float *dv, float *scratch, const float *dout, const float *q,
                        const float *k, const float *v, const float *probs, int B, int T, int NH, int NKV, int HS) {
    const float scale = 1.0f / sqrtf((float)HS);
    const int group = NH / NKV;
    const int qs = NH * HS, ks = NKV * HS;
    /* One task per (batch, kv head): the query heads of a group all write the
     * same dk/dv rows, so they run in one task, in order. */
#pragma omp parallel for collapse(2) schedule(dynamic)
    for (int b = 0; b < B; b++)
        for (int g = 0; g < NKV; g++) {
            const float *kb = k + (size_t)b * T * ks + (size_t)g * HS;
            const float *vb = v + (size_t)b * T * ks + (size_t)g * HS;
            float *dkb = dk + (size_t)b * T * ks + (size_t)g * HS;
            float *dvb = dv + (size_t)b * T * ks + (size_t)g * HS;
            for (int h = g * group; h < (g + 1) * group; h++) {
                const float *P = probs + ((size_t)b * NH + h) * T * T;
                float *dS = scratch + ((size_t)b * NH + h) * T * T;
                const float *qb = q + (size_t)b * T * qs + (size_t)h * HS;
                const float *dob = dout + (size_t)b * T * qs + (size_t)h * HS;
                float *dqb = dq + (size_t)b * T * qs + (size_t)h * HS;
                for (int i0 = 0; i0 < T; i0 += ATT_BLOCK) { /* query blocks: keys [0, i1) */
                    const int i1 = i0 + ATT_BLOCK < T ? i0 + ATT_BLOCK : T;
                    float *dSi = dS + (size_t)i0 * T;
                    sgemm_1t(0, 1, i1 - i0, i1, HS, 1.0f, dob + (size_t)i0 * qs, qs, vb, ks, 0.0f, dSi, T); /* dP = dO V^T */
                    for (int t = i0; t < i1; t++) {                                   /* softmax backward */
                        const float *p = P + (size_t)t * T;
                        float *d = dS + (size_t)t * T, dot = 0.0f;
                        for (int j = 0; j <= t; j++) dot += d[j] * p[j];
                        for (int j = 0; j <= t; j++) d[j] = p[j] * (d[j] - dot);
                        for (int j = t + 1; j < i1; j++) d[j] = 0.0f;
                    }
                    sgemm_1t(0, 0, i1 - i0, HS, i1, scale, dSi, T, kb, ks, 1.0f, dqb + (size_t)i0 * qs, qs); /* dQ += s dS K */
                }
                for (int j0 = 0; j0 < T; j0 += ATT_BLOCK) { /* key blocks: queries [j0, T) */
                    const int jn = (j0 + ATT_BLOCK < T ? j0 + ATT_BLOCK : T) - j0;
                    sgemm_1t(1, 0, jn, HS, T - j0, 1.0f, P + (size_t)j0 * T + j0, T, dob + (size_t)j0 * qs, qs, 1.0f,
                             dvb + (size_t)j0 * ks, ks); /* dV += P^T dO */
                    sgemm_1t(1, 0, jn, HS, T - j0, scale, dS + (size_t)j0 * T + j0, T, qb + (size_t)j0 * qs, qs, 1.0f,
                             dkb + (size_t)j0 * ks, ks); /* dK += s dS^T Q */
                }
            }
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
