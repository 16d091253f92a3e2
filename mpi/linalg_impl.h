/* linalg_impl.h: what linalg.c and linalg_lstsq.c share: the BLACS and
 * ScaLAPACK entry points (Debian ships no header for them) and the layout
 * helpers. Not for use outside mpi/linalg*.c.
 *
 * The Fortran convention from C: a trailing underscore, every argument by
 * pointer, arrays column-major. PBLAS (p?gemm_, p?syrk_) is written in C and
 * takes its character arguments as plain pointers; PDGELS and PDPOSV are
 * Fortran, so gfortran expects each character argument's length appended. */
#ifndef CALM_MPI_LINALG_IMPL_H
#define CALM_MPI_LINALG_IMPL_H

#include <stddef.h>

#include "mpi/linalg.h"

void Cblacs_pinfo(int *me, int *nprocs);
void Cblacs_get(int ctxt, int what, int *val);
void Cblacs_gridinit(int *ctxt, const char *order, int nprow, int npcol);
void Cblacs_gridinfo(int ctxt, int *nprow, int *npcol, int *myrow, int *mycol);
void Cblacs_gridexit(int ctxt);

int numroc_(const int *n, const int *nb, const int *iproc, const int *isrcproc, const int *nprocs);
void descinit_(int *desc, const int *m, const int *n, const int *mb, const int *nb, const int *irsrc,
               const int *icsrc, const int *ctxt, const int *lld, int *info);
void pdgemr2d_(const int *m, const int *n, const double *a, const int *ia, const int *ja, const int *desca,
               double *b, const int *ib, const int *jb, const int *descb, const int *ctxt);
void pdgemm_(const char *transa, const char *transb, const int *m, const int *n, const int *k, const double *alpha,
             const double *a, const int *ia, const int *ja, const int *desca, const double *b, const int *ib,
             const int *jb, const int *descb, const double *beta, double *c, const int *ic, const int *jc,
             const int *descc);
void pdsyrk_(const char *uplo, const char *trans, const int *n, const int *k, const double *alpha, const double *a,
             const int *ia, const int *ja, const int *desca, const double *beta, double *c, const int *ic,
             const int *jc, const int *descc);
void psgemm_(const char *transa, const char *transb, const int *m, const int *n, const int *k, const float *alpha,
             const float *a, const int *ia, const int *ja, const int *desca, const float *b, const int *ib,
             const int *jb, const int *descb, const float *beta, float *c, const int *ic, const int *jc,
             const int *descc);
void pssyrk_(const char *uplo, const char *trans, const int *n, const int *k, const float *alpha, const float *a,
             const int *ia, const int *ja, const int *desca, const float *beta, float *c, const int *ic,
             const int *jc, const int *descc);
void pdgels_(const char *trans, const int *m, const int *n, const int *nrhs, double *a, const int *ia, const int *ja,
             const int *desca, double *b, const int *ib, const int *jb, const int *descb, double *work,
             const int *lwork, int *info, size_t trans_len);
void pdposv_(const char *uplo, const int *n, const int *nrhs, double *a, const int *ia, const int *ja,
             const int *desca, double *b, const int *ib, const int *jb, const int *descb, int *info,
             size_t uplo_len);

/* Every rank's status: 0 if all are 0, else -1 everywhere (a rank that
 * was fine says another failed). */
int la_agree(int rc);
/* The descriptor of an m x n matrix in the grid's layout; returns the
 * local column count (leading dimension in desc[8]), or -1. */
int la_local_shape(const LaGrid *g, int m, int n, int *desc);
/* Zeroed local storage for it. */
double *la_alloc_local(const int *desc, int nloc);
/* The leading m x n corner of a distributed matrix, row-major, on every
 * rank. */
void la_gather(const LaGrid *g, const double *loc, const int *desc, int nloc, int m, int n, double *full);

#endif
