/* wmat.h: weight matrices kept in the precision they were stored in (F32,
 * BF16 or F16), and the products a model needs with them.
 *
 * A frozen model reads its matrices where they lie in a memory-mapped
 * checkpoint, so a BF16 parameter costs 2 bytes instead of the 4 of an F32
 * copy. Products convert panels of weight rows to F32 in a scratch buffer
 * and hand them to the same BLIS sgemm the F32 path uses, so the arithmetic
 * is F32 on the exactly widened weights; only the conversion is extra work.
 * An F32 matrix goes straight to sgemm, exactly as before.
 *
 * Gradients are never 16-bit: they stay `float *` (model.h), and a weight
 * gradient is only ever computed for an F32 model. */
#ifndef CALM_WMAT_H
#define CALM_WMAT_H

#include <stddef.h>
#include <stdint.h>

typedef enum { WM_F32 = 0, WM_BF16, WM_F16 } WmDtype;

typedef struct {
    const void *data; /* [rows, cols] row-major; NULL when the part is not held */
    WmDtype dtype;
} WMat;

static inline WMat wmat_f32(const float *p) { return (WMat){p, WM_F32}; }
size_t wm_dtype_size(WmDtype d);
const char *wm_dtype_name(WmDtype d); /* "F32", "BF16", "F16" as safetensors spells them */

/* Widen n elements of src (dtype d) to float; exact for every input. */
void wm_to_f32(float *dst, const void *src, WmDtype d, size_t n);
/* Narrow n floats to d, rounding to nearest even (NaN stays NaN, overflow
 * goes to infinity as IEEE rounding does). */
void wm_from_f32(void *dst, const float *src, WmDtype d, size_t n);

/* Rows [r0, r0+n) of a matrix with `cols` columns into dst [n, cols]. */
void wmat_rows_f32(float *dst, WMat w, size_t r0, size_t n, size_t cols);

/* out[N,OUT] = inp[N,IN] W[OUT,IN]^T (+ bias[OUT]) */
void wmat_linear_forward(float *out, const float *inp, WMat w, const float *bias, int N, int IN, int OUT);
/* dinp[N,IN] += dout[N,OUT] W[OUT,IN]: the input gradient of the above. */
void wmat_linear_backward_input(float *dinp, const float *dout, WMat w, int N, int IN, int OUT);
/* out[N,C] = W[tokens[n], :] */
void wmat_embedding_forward(float *out, const int *tokens, WMat w, int N, int C);

#endif
