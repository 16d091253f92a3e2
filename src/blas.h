/* blas.h: BLIS set-up and the few BLAS calls calm makes.
 *
 * Debian's BLIS 0.9 chooses kernels by CPU vendor and model, so a new CPU
 * (Zen 5) falls back to `generic` (~39 GFLOP/s/core) although its AVX-512
 * `skx` kernels run ~200. calm_blas_init() picks the best kernel set the CPU
 * supports from its feature flags and tells BLIS through BLIS_ARCH_TYPE before
 * BLIS initialises; a BLIS_ARCH_TYPE already set by the user wins. */
#ifndef CALM_BLAS_H
#define CALM_BLAS_H

/* threads <= 0: the cores available to this process. Idempotent; logs the
 * kernel set and thread count once. Must run before any BLIS call. */
void calm_blas_init(int threads);
int calm_threads(void);
/* Change the thread count after calm_blas_init (calm plan measures 1 and 2). */
void calm_blas_set_threads(int threads);
const char *calm_blas_arch(void); /* e.g. "skx" */

/* C[M,N] = alpha * op(A) op(B) + beta * C, row-major, with leading dimensions.
 * ta/tb: 0 = as stored, 1 = transposed. Uses every thread. */
void sgemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
           float beta, float *C, int ldc);
/* The same on one thread, for use inside an OpenMP parallel loop. */
void sgemm_1t(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
              float beta, float *C, int ldc);

#endif
