#define _GNU_SOURCE
#include "src/blas.h"

#include <blis.h>
#include <omp.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/common.h"

static int g_threads = 0;
static const char *g_arch = "uninitialised";

static int cores_available(void) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) return CPU_COUNT(&set);
    return 1;
}

/* The best kernel set this BLIS build has for the running CPU, judged by
 * instruction-set features rather than by vendor and model number (which is
 * what BLIS 0.9 does, and why it calls a Zen 5 `generic`). -1: let BLIS decide. */
static int best_arch(const char **why) {
    __builtin_cpu_init();
#ifdef BLIS_CONFIG_SKX
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl")) {
        *why = "CPU has AVX-512 F/DQ/BW/VL";
        return BLIS_ARCH_SKX;
    }
#endif
#ifdef BLIS_CONFIG_HASWELL
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        *why = "CPU has AVX2 and FMA";
        return BLIS_ARCH_HASWELL;
    }
#endif
    *why = "no AVX2/AVX-512: BLIS's own choice";
    return -1;
}

/* BLIS's and OpenMP's thread counts, and calm's record of them. */
static void use_threads(int threads) {
    g_threads = threads;
    bli_thread_set_num_threads(threads);
    omp_set_num_threads(threads);
}

void calm_blas_init(int threads) {
    if (g_threads > 0) return;
    if (threads <= 0) {
        const char *env = getenv("CALM_THREADS");
        threads = env && atoi(env) > 0 ? atoi(env) : cores_available();
    }
    const char *user = getenv("BLIS_ARCH_TYPE");
    const char *why = "set by the user (BLIS_ARCH_TYPE)";
    if (user && *user) {
        char *end;
        long id = strtol(user, &end, 10);
        if (*end || id < 0 || id >= BLIS_NUM_ARCHS)
            calm_fatal("unset BLIS_ARCH_TYPE to let calm choose, or give an index into BLIS's arch_t enum",
                       "BLIS_ARCH_TYPE=%s is not an architecture index in [0, %d)", user, (int)BLIS_NUM_ARCHS);
    } else {
        int id = best_arch(&why);
        if (id >= 0) {
            char buf[16];
            snprintf(buf, sizeof buf, "%d", id);
            setenv("BLIS_ARCH_TYPE", buf, 1); /* read once, by the bli_init below */
        }
    }
    /* bli_init first: BLIS 0.9 aborts if the arch is queried before its
     * kernel contexts are registered. */
    bli_init();
    g_arch = bli_arch_string(bli_arch_query_id());
    use_threads(threads);
    calm_log("BLIS kernels: %s (%s), threads: %d", g_arch, why, threads);
}

void calm_blas_set_threads(int threads) {
    calm_blas_init(threads);
    use_threads(threads);
}

int calm_threads(void) { return g_threads > 0 ? g_threads : 1; }
const char *calm_blas_arch(void) { return g_arch; }

static void gemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
                 float beta, float *C, int ldc, rntm_t *rntm) {
    if (M == 0 || N == 0) return;
    /* BLIS takes the stored matrix with explicit row/column strides, so a
     * row-major matrix is simply (rs = ld, cs = 1), transposed or not. */
    bli_sgemm_ex(ta ? BLIS_TRANSPOSE : BLIS_NO_TRANSPOSE, tb ? BLIS_TRANSPOSE : BLIS_NO_TRANSPOSE, M, N, K,
                 &alpha, (float *)A, lda, 1, (float *)B, ldb, 1, &beta, C, ldc, 1, NULL, rntm);
}

void sgemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
           float beta, float *C, int ldc) {
    gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, NULL);
}

void sgemm_1t(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
              float beta, float *C, int ldc) {
    rntm_t rntm = BLIS_RNTM_INITIALIZER;
    bli_rntm_set_num_threads(1, &rntm);
    gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, &rntm);
}
