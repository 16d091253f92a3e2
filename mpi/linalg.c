/* linalg.c: the grid, the distribution of tall matrices and the CKA
 * products (linalg.h). Least squares is in linalg_lstsq.c. */
#include "mpi/linalg.h"

#include <limits.h>
#include <math.h>
#include <mpi.h>
#include <stdlib.h>
#include <string.h>

#include "mpi/linalg_impl.h"
#include "src/common.h"

#define LA_PANEL 1024

struct LaGrid {
    int ctxt;      /* the grid the products run on */
    int ctxt_rows; /* P x 1, rank r in row r: where each rank's block of rows starts from */
    int nprow, npcol, myrow, mycol, nb;
    int rank, size;
};

/* PBLAS asks PILAENV for the width of the panels its products loop over.
 * ScaLAPACK's own returns 32, which turns each tall product X^T Y here
 * (K = tokens) into K/32 rank-32 updates that rewrite the whole result every
 * time: half NumPy's speed on one node. Defining it in the program replaces
 * the library's (CP2K does the same); PBLAS caps it by the distribution's
 * block where that matters. */
int pilaenv_(const int *ictxt, const char *prec) {
    (void)ictxt;
    (void)prec;
    return LA_PANEL;
}

int la_grid_open(LaGrid **out, Dist *d, int nprow, int npcol, int block) {
    *out = NULL;
    dist_require_mpi(d); /* BLACS runs on MPI even in a world of one */
    int me, np;
    Cblacs_pinfo(&me, &np);
    if (nprow == 0 && npcol == 0) nprow = np, npcol = 1;
    if (nprow < 1 || npcol < 1 || (long)nprow * npcol != np)
        return calm_error("linalg: a %d x %d process grid does not cover the %d rank%s of the job: choose rows x "
                          "columns = %d", nprow, npcol, np, np == 1 ? "" : "s", np);
    if (block < 0) return calm_error("linalg: block size %d is negative", block);
    LaGrid *g = xcalloc(1, sizeof *g);
    g->nb = block ? block : 64;
    g->rank = me;
    g->size = np;
    Cblacs_get(-1, 0, &g->ctxt);
    Cblacs_gridinit(&g->ctxt, "Row", nprow, npcol);
    Cblacs_gridinfo(g->ctxt, &g->nprow, &g->npcol, &g->myrow, &g->mycol);
    Cblacs_get(-1, 0, &g->ctxt_rows);
    Cblacs_gridinit(&g->ctxt_rows, "Col", np, 1);
    *out = g;
    return 0;
}

void la_grid_close(LaGrid *g) {
    if (!g) return;
    Cblacs_gridexit(g->ctxt);
    Cblacs_gridexit(g->ctxt_rows);
    free(g);
}

void la_grid_shape(const LaGrid *g, int *nprow, int *npcol) {
    *nprow = g->nprow;
    *npcol = g->npcol;
}

int la_agree(int rc) {
    int worst = rc;
    MPI_Allreduce(&rc, &worst, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (worst != 0 && rc == 0) return calm_error("linalg: another rank failed (its message is in the log)");
    return worst;
}

/* The global index of local row (or column) l of a block-cyclic layout
 * whose first block sits on process 0. */
static int l2g(int l, int nb, int me, int nprocs) { return ((l / nb) * nprocs + me) * nb + l % nb; }

int la_local_shape(const LaGrid *g, int m, int n, int *desc) {
    int zero = 0, info;
    int mloc = numroc_(&m, &g->nb, &g->myrow, &zero, &g->nprow);
    int nloc = numroc_(&n, &g->nb, &g->mycol, &zero, &g->npcol);
    int lld = mloc > 1 ? mloc : 1;
    descinit_(desc, &m, &n, &g->nb, &g->nb, &zero, &zero, &g->ctxt, &lld, &info);
    if (info != 0) return calm_error("linalg: descinit refused a %d x %d matrix (argument %d)", m, n, -info);
    return nloc;
}

double *la_alloc_local(const int *desc, int nloc) {
    return xcalloc((size_t)desc[8] * (size_t)(nloc > 1 ? nloc : 1), sizeof(double));
}

void la_gather(const LaGrid *g, const double *loc, const int *desc, int nloc, int m, int n, double *full) {
    memset(full, 0, (size_t)m * n * sizeof *full);
    int lld = desc[8], mloc = numroc_(&desc[2], &g->nb, &g->myrow, &(int){0}, &g->nprow);
    for (int jl = 0; jl < nloc; jl++) {
        int gj = l2g(jl, g->nb, g->mycol, g->npcol);
        if (gj >= n) continue;
        for (int il = 0; il < mloc; il++) {
            int gi = l2g(il, g->nb, g->myrow, g->nprow);
            if (gi < m) full[(size_t)gi * n + gj] = loc[(size_t)jl * lld + il];
        }
    }
    MPI_Allreduce(MPI_IN_PLACE, full, m * n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
}

/* Column means over all ranks' rows, in double. */
static void column_means(const float *rows, int n_local, int cols, int64_t n, double *mean) {
    memset(mean, 0, (size_t)cols * sizeof *mean);
    for (int i = 0; i < n_local; i++)
        for (int j = 0; j < cols; j++) mean[j] += rows[(size_t)i * cols + j];
    MPI_Allreduce(MPI_IN_PLACE, mean, cols, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    for (int j = 0; j < cols; j++) mean[j] /= (double)n;
}

/* Shapes every rank must agree on, checked before any collective that
 * would hang on a disagreement. */
static int check_rows(const LaGrid *g, int n_local, int cols, int64_t *n, int *blk) {
    int bad = n_local < 0 || cols < 1 || (n_local > 0 && cols > INT_MAX / n_local);
    int v[3] = {cols, -cols, n_local};
    MPI_Allreduce(MPI_IN_PLACE, v, 2, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    MPI_Allreduce(MPI_IN_PLACE, &v[2], 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    MPI_Allreduce(MPI_IN_PLACE, &bad, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    if (bad) return calm_error("linalg: a rank passed %d rows of width %d (negative or too large)", n_local, cols);
    if (v[0] != -v[1]) return calm_error("linalg: the ranks' rows have different widths (%d to %d)", v[0], -v[1]);
    long long total = n_local;
    MPI_Allreduce(MPI_IN_PLACE, &total, 1, MPI_LONG_LONG, MPI_SUM, MPI_COMM_WORLD);
    if (total < 1) return calm_error("linalg: no rows on any rank");
    *blk = v[2];
    if ((long long)*blk * g->size > INT_MAX)
        return calm_error("linalg: %d ranks x %d rows exceed ScaLAPACK's 32-bit indices", g->size, *blk);
    *n = total;
    return 0;
}

int la_mat_rows(LaGrid *g, LaMat *m, const float *rows, int n_local, int cols, int flags) {
    memset(m, 0, sizeof *m);
    int blk;
    if (check_rows(g, n_local, cols, &m->n, &blk) != 0) return -1;
    double *mean = xcalloc((size_t)cols, sizeof *mean);
    if (flags & LA_CENTRE) column_means(rows, n_local, cols, m->n, mean);
    int width = cols + ((flags & LA_ONES) != 0);
    /* Each rank's rows as one block of blk rows (zero-padded) of a P x 1
     * layout: a valid block-cyclic matrix, which PDGEMR2D can move onto the
     * grid, whatever its shape. */
    double *src = xcalloc((size_t)blk * width, sizeof *src);
    for (int i = 0; i < n_local; i++) {
        for (int j = 0; j < cols; j++) src[(size_t)j * blk + i] = (double)rows[(size_t)i * cols + j] - mean[j];
        if (flags & LA_ONES) src[(size_t)cols * blk + i] = 1.0;
    }
    free(mean);
    int zero = 0, one = 1, info, desc_src[9];
    m->rows = blk * g->size;
    m->cols = width;
    descinit_(desc_src, &m->rows, &width, &blk, &width, &zero, &zero, &g->ctxt_rows, &blk, &info);
    if (info != 0) {
        free(src);
        return calm_error("linalg: descinit refused the %d x %d row layout (argument %d)", m->rows, width, -info);
    }
    m->nloc = la_local_shape(g, m->rows, width, m->desc);
    if (m->nloc < 0) {
        free(src);
        return -1;
    }
    m->mloc = m->desc[8];
    m->a = la_alloc_local(m->desc, m->nloc);
    pdgemr2d_(&m->rows, &width, src, &one, &one, desc_src, m->a, &one, &one, m->desc, &g->ctxt_rows);
    free(src);
    return 0;
}

void la_mat_free(LaMat *m) {
    free(m->a);
    memset(m, 0, sizeof *m);
}

/* Sum of squares of the local part of a [m, n] result; with upper_only the
 * strict upper triangle counts twice and the lower one not at all (PDSYRK
 * leaves it unset). Summed over the ranks. */
static double sum_squares(const LaGrid *g, const double *c, const int *desc, int nloc, int upper_only) {
    int mloc = numroc_(&desc[2], &g->nb, &g->myrow, &(int){0}, &g->nprow);
    double s = 0;
    for (int jl = 0; jl < nloc; jl++) {
        int gj = l2g(jl, g->nb, g->mycol, g->npcol);
        for (int il = 0; il < mloc; il++) {
            int gi = l2g(il, g->nb, g->myrow, g->nprow);
            double v = c[(size_t)jl * desc[8] + il];
            if (!upper_only) s += v * v;
            else if (gi < gj) s += 2 * v * v;
            else if (gi == gj) s += v * v;
        }
    }
    MPI_Allreduce(MPI_IN_PLACE, &s, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    return s;
}

int la_gram_norm(LaGrid *g, const LaMat *x, double *out) {
    int desc[9], one = 1;
    int nloc = la_local_shape(g, x->cols, x->cols, desc);
    if (nloc < 0) return -1;
    double *c = la_alloc_local(desc, nloc), alpha = 1, beta = 0;
    pdsyrk_("U", "T", &x->cols, &x->rows, &alpha, x->a, &one, &one, x->desc, &beta, c, &one, &one, desc);
    *out = sqrt(sum_squares(g, c, desc, nloc, 1));
    free(c);
    return 0;
}

int la_cross_norm2(LaGrid *g, const LaMat *x, const LaMat *y, double *out) {
    if (x->n != y->n || x->rows != y->rows)
        return calm_error("linalg: the matrices hold %lld and %lld rows; a cross product needs the same rows",
                          (long long)x->n, (long long)y->n);
    int desc[9], one = 1;
    int nloc = la_local_shape(g, y->cols, x->cols, desc);
    if (nloc < 0) return -1;
    double *c = la_alloc_local(desc, nloc), alpha = 1, beta = 0;
    pdgemm_("T", "N", &y->cols, &x->cols, &x->rows, &alpha, y->a, &one, &one, y->desc, x->a, &one, &one, x->desc,
            &beta, c, &one, &one, desc);
    *out = sum_squares(g, c, desc, nloc, 0);
    free(c);
    return 0;
}

double la_cka_from(double cross2, double gram_x, double gram_y) {
    return gram_x > 0 && gram_y > 0 ? cross2 / (gram_x * gram_y) : 0.0;
}

int la_cka(LaGrid *g, const float *x, int p, const float *y, int q, int n_local, double *cka) {
    LaMat X, Y;
    double gx = 0, gy = 0, c2 = 0;
    int rc = la_mat_rows(g, &X, x, n_local, p, LA_CENTRE);
    if (rc == 0) rc = la_mat_rows(g, &Y, y, n_local, q, LA_CENTRE);
    else memset(&Y, 0, sizeof Y);
    if (rc == 0) rc = la_gram_norm(g, &X, &gx);
    if (rc == 0) rc = la_gram_norm(g, &Y, &gy);
    if (rc == 0) rc = la_cross_norm2(g, &X, &Y, &c2);
    if (rc == 0) *cka = la_cka_from(c2, gx, gy);
    la_mat_free(&X);
    la_mat_free(&Y);
    return rc;
}
