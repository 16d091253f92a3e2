/* wmat.c: see wmat.h. The conversion loops are plain branch-free C over
 * 16-bit integers, which gcc vectorises for whatever the build targets (no
 * intrinsics, so nothing to detect at run time). */
#include "src/wmat.h"

#include <stdlib.h>
#include <string.h>

#include "src/blas.h"
#include "src/common.h"
#include "src/layers.h"

size_t wm_dtype_size(WmDtype d) { return d == WM_F32 ? 4 : 2; }

const char *wm_dtype_name(WmDtype d) { return d == WM_F32 ? "F32" : d == WM_BF16 ? "BF16" : "F16"; }

static inline float bits_f32(uint32_t b) {
    float f;
    memcpy(&f, &b, sizeof f);
    return f;
}

static inline uint32_t f32_bits(float f) {
    uint32_t b;
    memcpy(&b, &f, sizeof b);
    return b;
}

/* BF16 is the top half of an F32. */
static void bf16_to_f32(float *dst, const uint16_t *src, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] = bits_f32((uint32_t)src[i] << 16);
}

/* binary16 -> binary32 without branches: the exponent and mantissa shifted
 * into an F32 and multiplied by 2^112 (the exponent bias difference) is the
 * value for normals and subnormals alike; exponent 31 is inf/NaN. Relies on
 * subnormal F32 arithmetic (no DAZ), which is the C default. */
static void f16_to_f32(float *dst, const uint16_t *src, size_t n) {
    for (size_t i = 0; i < n; i++) {
        uint32_t h = src[i], em = h & 0x7fffu;
        uint32_t b = f32_bits(bits_f32(em << 13) * 0x1p112f);
        b = em >= 0x7c00u ? 0x7f800000u | (em & 0x3ffu) << 13 : b;
        dst[i] = bits_f32(b | (h & 0x8000u) << 16);
    }
}

void wm_to_f32(float *dst, const void *src, WmDtype d, size_t n) {
    if (d == WM_BF16) bf16_to_f32(dst, src, n);
    else if (d == WM_F16) f16_to_f32(dst, src, n);
    else memcpy(dst, src, n * sizeof(float));
}

static uint16_t f32_to_bf16(float f) {
    uint32_t u = f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u); /* quiet NaN */
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

/* binary32 -> binary16, round to nearest even: the method of Marat Dukhan's
 * FP16 library (MIT), which lets the F32 adder do the rounding. */
static uint16_t f32_to_f16(float f) {
    float base = (__builtin_fabsf(f) * 0x1p112f) * 0x1p-110f;
    uint32_t w = f32_bits(f), shl1_w = w + w, sign = w & 0x80000000u;
    uint32_t bias = shl1_w & 0xff000000u;
    if (bias < 0x71000000u) bias = 0x71000000u;
    base = bits_f32((bias >> 1) + 0x07800000u) + base;
    uint32_t bits = f32_bits(base);
    uint32_t nonsign = ((bits >> 13) & 0x7c00u) + (bits & 0x0fffu);
    return (uint16_t)((sign >> 16) | (shl1_w > 0xff000000u ? 0x7e00u : nonsign));
}

void wm_from_f32(void *dst, const float *src, WmDtype d, size_t n) {
    uint16_t *h = dst;
    if (d == WM_BF16)
        for (size_t i = 0; i < n; i++) h[i] = f32_to_bf16(src[i]);
    else if (d == WM_F16)
        for (size_t i = 0; i < n; i++) h[i] = f32_to_f16(src[i]);
    else memcpy(dst, src, n * sizeof(float));
}

void wmat_rows_f32(float *dst, WMat w, size_t r0, size_t n, size_t cols) {
    const char *src = (const char *)w.data + r0 * cols * wm_dtype_size(w.dtype);
    wm_to_f32(dst, src, w.dtype, n * cols);
}

/* Rows per converted panel: large enough that sgemm's repacking of the
 * input for every panel (N*IN floats) stays a few per cent of the panel's
 * 2*N*IN*rows flops, small enough that the scratch stays at most ~16 MB. */
static int panel_rows(int IN, int OUT) {
    int rows = (int)((4u << 20) / (unsigned)IN);
    if (rows > 1024) rows = 1024;
    if (rows < 256) rows = 256;
    return rows < OUT ? rows : OUT;
}

/* Convert rows [r0, r0+n) of W into panel, on all threads. */
static void convert_panel(float *panel, WMat w, int r0, int n, int IN) {
#pragma omp parallel for schedule(static) if (n >= 64)
    for (int r = 0; r < n; r++) wmat_rows_f32(panel + (size_t)r * IN, w, (size_t)(r0 + r), 1, (size_t)IN);
}

/* The products with a 16-bit W [OUT, IN], a panel of its rows widened to F32
 * at a time: forward out = inp W^T (overwrites), or the input gradient
 * dinp += dout W. */
static void panel_products(float *y, const float *x, WMat w, int N, int IN, int OUT, int input_grad) {
    const int R = panel_rows(IN, OUT);
    float *panel = xmalloc((size_t)R * IN * sizeof(float));
    for (int r0 = 0; r0 < OUT; r0 += R) {
        int n = OUT - r0 < R ? OUT - r0 : R;
        convert_panel(panel, w, r0, n, IN);
        if (input_grad) sgemm(0, 0, N, IN, n, 1.0f, x + r0, OUT, panel, IN, 1.0f, y, IN);
        else sgemm(0, 1, N, n, IN, 1.0f, x, IN, panel, IN, 0.0f, y + r0, OUT);
    }
    free(panel);
}

void wmat_linear_forward(float *out, const float *inp, WMat w, const float *bias, int N, int IN, int OUT) {
    if (w.dtype == WM_F32) {
        linear_forward(out, inp, w.data, bias, N, IN, OUT);
        return;
    }
    panel_products(out, inp, w, N, IN, OUT, 0);
    if (bias) {
#pragma omp parallel for
        for (int r = 0; r < N; r++)
            for (int o = 0; o < OUT; o++) out[(size_t)r * OUT + o] += bias[o];
    }
}

void wmat_linear_backward_input(float *dinp, const float *dout, WMat w, int N, int IN, int OUT) {
    if (w.dtype == WM_F32) {
        linear_backward(dinp, NULL, NULL, dout, NULL, w.data, N, IN, OUT);
        return;
    }
    panel_products(dinp, dout, w, N, IN, OUT, 1);
}

void wmat_embedding_forward(float *out, const int *tokens, WMat w, int N, int C) {
#pragma omp parallel for
    for (int n = 0; n < N; n++) wmat_rows_f32(out + (size_t)n * C, w, (size_t)tokens[n], 1, (size_t)C);
}
