/* linalg.h: distributed dense linear algebra over the MPI ranks with
 * ScaLAPACK and BLACS, for what calm asks of many tokens' hidden states:
 * linear CKA between layers (which layers to connect) and least squares with
 * a bias (where a connection's projection should start).
 *
 * Data model: a tall matrix [N, cols] whose rows (tokens) are spread over
 * the ranks, each rank holding a contiguous block of n_local rows as calm
 * produces them (row-major float; ranks may hold different counts, zero
 * included). la_mat_rows widens them to double and redistributes them
 * (PDGEMR2D) onto the grid's 2-D block-cyclic layout, where PDSYRK, PDGEMM
 * and PDGELS work. Every call here is collective over the world: all ranks
 * call it with their own rows, and all return the same status, so an error
 * found on one rank never leaves the others waiting.
 *
 * A process started without mpirun is a 1x1 grid: la_grid_open starts MPI
 * for it (BLACS cannot run without), and MPI ends with the process
 * (dist_finalize). */
#ifndef CALM_MPI_LINALG_H
#define CALM_MPI_LINALG_H

#include <stdint.h>

#include "mpi/dist.h"

typedef struct LaGrid LaGrid;

/* A BLACS grid of nprow x npcol over the world's ranks; 0 x 0 is every
 * rank in one column (P x 1: tall matrices split by rows, which is what a
 * QR of hidden states wants). A shape that does not cover the world exactly
 * is refused. block: the square block size of the layout (0: 64). */
int la_grid_open(LaGrid **out, Dist *d, int nprow, int npcol, int block);
void la_grid_close(LaGrid *g);
void la_grid_shape(const LaGrid *g, int *nprow, int *npcol);

/* A tall matrix in the grid's layout, double precision. Its ScaLAPACK
 * rows are the ranks' rows padded with zero rows (a zero row changes no
 * cross product and no least-squares fit). */
typedef struct {
    int64_t n;      /* rows holding data, over all ranks */
    int rows, cols; /* global shape in the layout (rows >= n) */
    int desc[9];    /* ScaLAPACK array descriptor */
    double *a;      /* local part, column-major, leading dimension desc[8] */
    int mloc, nloc; /* local rows and columns */
} LaMat;

enum {
    LA_CENTRE = 1, /* subtract each column's mean over all n rows */
    LA_ONES = 2    /* append a column of ones (the bias of a least-squares fit) */
};

/* Distribute this rank's n_local rows [n_local, cols] (row-major float;
 * NULL when n_local is 0). Every rank must pass the same cols. */
int la_mat_rows(LaGrid *g, LaMat *m, const float *rows, int n_local, int cols, int flags);
void la_mat_free(LaMat *m);

/* ||X^T X||_F, by PDSYRK (half the work of the full product). */
int la_gram_norm(LaGrid *g, const LaMat *x, double *out);
/* ||Y^T X||_F^2, by PDGEMM. x and y must hold the same rows. */
int la_cross_norm2(LaGrid *g, const LaMat *x, const LaMat *y, double *out);
/* Linear CKA (Kornblith et al. 2019) of two centred matrices, from their
 * cross product and the two Gram norms (computed once per matrix when many
 * pairs are compared): ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F); 0 when
 * either matrix is constant. */
double la_cka_from(double cross2, double gram_x, double gram_y);
/* The same in one call, from both matrices' rows (centred here). */
int la_cka(LaGrid *g, const float *x, int p, const float *y, int q, int n_local, double *cka);

typedef enum {
    LA_QR,        /* PDGELS on [X 1] in double: error ~ eps * cond([X 1]) */
    LA_NORMAL_F32 /* the normal equations as a float pipeline forms them (PSSYRK, PSGEMM), solved in double
                   * (PDPOSV): error ~ eps_float * cond^2. A baseline, to show what QR buys. */
} LaSolver;

/* Least squares with a bias: W [q, p] (row-major, as a projection's
 * weight) and b [q] minimising ||Y - X W^T - 1 b^T||_F, on every rank. X
 * holds this rank's nx rows [nx, p], Y its ny rows [ny, q]; nx must equal
 * ny on every rank, and all ranks together must hold at least p + 1 rows. */
int la_lstsq(LaGrid *g, const float *x, int nx, int p, const float *y, int ny, int q, LaSolver how, double *w,
             double *b);

#endif
