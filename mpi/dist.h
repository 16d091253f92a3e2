/* dist.h: process-level set-up for running calm under mpirun / srun, and the
 * collectives of data-parallel training. A process started without an MPI
 * launcher never calls MPI at all and behaves as a world of one. */
#ifndef CALM_DIST_H
#define CALM_DIST_H

#include <stddef.h>

typedef struct {
    int rank, size;
    int mpi; /* MPI_Init was called */
} Dist;

/* Initialise MPI if an MPI launcher started us (Open MPI, PMIx or PMI
 * environment). Refuses (exit 1) a world whose size disagrees with the
 * launcher's task count, so a mis-launched job never runs N copies of rank 0. */
void dist_init(Dist *d, int *argc, char ***argv);
void dist_finalize(Dist *d);

/* TrainConfig.reduce for data parallelism (ctx = Dist*): turns each replica's
 * mean-loss gradient into the gradient of the global weighted mean loss:
 * g = sum_r w_r g_r / sum_r w_r, where w_r is replica r's loss-weight sum, and
 * lw = {loss sum, weight sum} into global sums. */
void dist_train_reduce(void *ctx, float *grads, size_t n, double *lw);

#endif
