#ifndef CALM_FASTEXP_H
#define CALM_FASTEXP_H

#include <math.h>
#include <stdint.h>
#include <string.h>

/* exp(x) in float without a libm call, so that the loops of softmax and
 * SwiGLU that call it vectorise (glibc vectorises expf only under
 * -ffast-math). Within 2 ulp of exp where exp is a normal float
 * (tests/test_layers.c checks it against double exp); infinity above 88.72
 * and NaN for NaN like expf, but 0 below -87.33, where expf's results
 * become subnormal (nothing here uses those: softmax and SwiGLU only add
 * them to 1 or to sums of at least 1).
 *
 * x = k ln2 + r with k an integer and |r| <= ln2 / 2 (ln2 in two parts, so r
 * is exact); exp(r) by its Taylor polynomial of degree 7 (remainder below
 * 6e-9 relative); 2^k built in the exponent bits. k comes from the float
 * sum x log2(e) + 1.5 * 2^23, whose low mantissa bits hold k, so there is no
 * float-to-int conversion (and no undefined behaviour for NaN). */
static inline float calm_expf(float x) {
    const float shift = 12582912.0f; /* 1.5 * 2^23, bit pattern 0x4B400000 */
    float xc = x < -87.33f ? -87.33f : x; /* keeps 2^k normal */
    xc = xc > 88.72f ? 88.72f : xc;
    float kk = xc * 1.44269504088896341f + shift, k = kk - shift;
    float r = xc - k * 0.693359375f; /* ln2 = 0.693359375 - 2.12194440e-4 */
    r = r + k * 2.12194440e-4f;
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    int32_t e;
    memcpy(&e, &kk, sizeof e);
    e = e - 0x4B400000 + 127; /* biased exponent of 2^k, 1..255 */
    float top = e > 254 ? 2.0f : 1.0f; /* k = 128 (x near 88.72): 2^127 * 2 */
    e = e > 254 ? 254 : e;
    uint32_t bits = (uint32_t)e << 23;
    float s;
    memcpy(&s, &bits, sizeof s);
    float y = p * top * s;
    y = x < -87.33f ? 0.0f : y;
    return x > 88.72f ? INFINITY : y;
}

#endif
