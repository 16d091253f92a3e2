/* linalg_lstsq.c: least squares with a bias over row-distributed matrices
 * (linalg.h): QR by PDGELS, and the single-precision normal equations as
 * the baseline QR is measured against. */
#include <math.h>
#include <mpi.h>
#include <stdlib.h>

#include "mpi/linalg.h"
#include "mpi/linalg_impl.h"
#include "src/common.h"

/* Row counts must match rank by rank (row i of X explains row i of Y), and
 * the fit needs at least as many rows as unknowns (p weights and a bias). */
static int check_shapes(int nx, int p, int ny, int q) {
    long long v[3] = {nx != ny, nx, ny};
    MPI_Allreduce(MPI_IN_PLACE, v, 1, MPI_LONG_LONG, MPI_MAX, MPI_COMM_WORLD);
    MPI_Allreduce(MPI_IN_PLACE, &v[1], 2, MPI_LONG_LONG, MPI_SUM, MPI_COMM_WORLD);
    if (v[0]) return calm_error("linalg: X and Y hold different rows (%lld and %lld over all ranks, or split "
                                "differently): every row of X needs its row of Y", v[1], v[2]);
    if (p < 1 || q < 1) return calm_error("linalg: least squares of width %d onto width %d", p, q);
    if (v[1] < (long long)p + 1)
        return calm_error("linalg: %lld rows cannot determine %d weights and a bias: least squares needs at least "
                          "%d rows (tokens)", v[1], p, p + 1);
    return 0;
}

/* Solution rows [p+1, q] of a distributed right-hand side -> W [q, p], b [q]. */
static void unpack(const LaGrid *g, const double *loc, const int *desc, int nloc, int p, int q, double *w,
                   double *b) {
    double *sol = xmalloc((size_t)(p + 1) * q * sizeof *sol);
    la_gather(g, loc, desc, nloc, p + 1, q, sol);
    for (int j = 0; j < q; j++) {
        for (int i = 0; i < p; i++) w[(size_t)j * p + i] = sol[(size_t)i * q + j];
        b[j] = sol[(size_t)p * q + j];
    }
    free(sol);
}

static int solve_qr(LaGrid *g, LaMat *A, LaMat *B, int p, int q, double *w, double *b) {
    int one = 1, info = 0, lwork = -1;
    double wsize = 0;
    pdgels_("N", &A->rows, &A->cols, &q, A->a, &one, &one, A->desc, B->a, &one, &one, B->desc, &wsize, &lwork, &info,
            1);
    lwork = (int)wsize + 1;
    double *work = xmalloc((size_t)lwork * sizeof *work);
    pdgels_("N", &A->rows, &A->cols, &q, A->a, &one, &one, A->desc, B->a, &one, &one, B->desc, work, &lwork, &info,
            1);
    free(work);
    if (info != 0) return calm_error("linalg: PDGELS failed (info %d)", info);
    unpack(g, B->a, B->desc, B->nloc, p, q, w, b);
    return 0;
}

static float *to_float(const double *x, size_t n) {
    float *y = xmalloc((n ? n : 1) * sizeof *y);
    for (size_t i = 0; i < n; i++) y[i] = (float)x[i];
    return y;
}

/* G = [X 1]^T [X 1] and R = [X 1]^T Y in float, then G w = R in double:
 * what forming the normal equations with sgemm over float hidden states
 * gives, digits lost included. */
static int solve_normal_f32(LaGrid *g, const LaMat *A, const LaMat *B, int p, int q, double *w, double *b) {
    int one = 1, info = 0, k = A->cols, dg[9], dr[9];
    int ng = la_local_shape(g, k, k, dg), nr = la_local_shape(g, k, q, dr);
    if (ng < 0 || nr < 0) return -1;
    float *a32 = to_float(A->a, (size_t)A->desc[8] * A->nloc), *b32 = to_float(B->a, (size_t)B->desc[8] * B->nloc);
    size_t gn = (size_t)dg[8] * (ng > 1 ? ng : 1), rn = (size_t)dr[8] * (nr > 1 ? nr : 1);
    float *g32 = calloc(gn, sizeof *g32), *r32 = calloc(rn, sizeof *r32), alpha = 1, beta = 0;
    if (!g32 || !r32) calm_fatal("less --tokens", "out of memory for the normal equations");
    pssyrk_("U", "T", &k, &A->rows, &alpha, a32, &one, &one, A->desc, &beta, g32, &one, &one, dg);
    psgemm_("T", "N", &k, &q, &A->rows, &alpha, a32, &one, &one, A->desc, b32, &one, &one, B->desc, &beta, r32, &one,
            &one, dr);
    double *G = la_alloc_local(dg, ng), *R = la_alloc_local(dr, nr);
    for (size_t i = 0; i < gn; i++) G[i] = g32[i];
    for (size_t i = 0; i < rn; i++) R[i] = r32[i];
    free(a32), free(b32), free(g32), free(r32);
    pdposv_("U", &k, &q, G, &one, &one, dg, R, &one, &one, dr, &info, 1);
    int rc = 0;
    if (info != 0) rc = calm_error("linalg: the normal equations are not positive definite in single precision "
                                   "(PDPOSV info %d)", info);
    else unpack(g, R, dr, nr, p, q, w, b);
    free(G), free(R);
    return rc;
}

int la_lstsq(LaGrid *g, const float *x, int nx, int p, const float *y, int ny, int q, LaSolver how, double *w,
             double *b) {
    if (check_shapes(nx, p, ny, q) != 0) return -1;
    LaMat A, B;
    if (la_mat_rows(g, &A, x, nx, p, LA_ONES) != 0) return -1;
    if (la_mat_rows(g, &B, y, ny, q, 0) != 0) {
        la_mat_free(&A);
        return -1;
    }
    int rc = how == LA_QR ? solve_qr(g, &A, &B, p, q, w, b) : solve_normal_f32(g, &A, &B, p, q, w, b);
    la_mat_free(&A);
    la_mat_free(&B);
    if (rc == 0) {
        for (size_t i = 0; i < (size_t)p * q && rc == 0; i++)
            if (!isfinite(w[i])) rc = calm_error("linalg: the least-squares solution is not finite: is X rank "
                                                 "deficient (a constant or repeated feature)?");
    }
    return la_agree(rc);
}
