/* dist.h: process-level set-up for running calm under mpirun / srun, and the
 * collectives of data-parallel training. A process started without an MPI
 * launcher never calls MPI at all and behaves as a world of one. */
#ifndef CALM_DIST_H
#define CALM_DIST_H

#include <stddef.h>

typedef struct {
    int rank, size;
    int local_size; /* ranks on this node */
    int mpi;        /* MPI_Init was called */
} Dist;

/* Initialise MPI if an MPI launcher started us (Open MPI, PMIx or PMI
 * environment). Refuses (exit 1) a world whose size disagrees with Slurm's
 * task count (SLURM_STEP_NUM_TASKS under srun, else SLURM_NTASKS), so a
 * mis-launched job never runs N copies of rank 0. From then on a process
 * that exits with a non-zero status (an error on any rank) aborts the whole
 * job at once instead of leaving the other ranks waiting for it. */
void dist_init(Dist *d, int *argc, char ***argv);
/* --expect-ranks N: exit with a message unless the world has N ranks. */
int dist_expect_ranks(const Dist *d, int n);
void dist_finalize(Dist *d);
/* MPI for a library that cannot run without it (BLACS) in a process started
 * without a launcher: a world of one from here on, finalised by
 * dist_finalize. Nothing if MPI is already running. */
void dist_require_mpi(Dist *d);

/* Collectives over the world for checkpoints and stop requests (ctx = Dist*). */
long dist_max_long(void *ctx, long x);
long dist_sum_long(void *ctx, long x);
/* x [n] summed over the world, in place (nothing without MPI). */
void dist_sum_doubles(const Dist *d, double *x, int n);
/* Rank 0's n bytes of buf to every rank (nothing without MPI). */
void dist_bcast_bytes(const Dist *d, void *buf, size_t n);

/* TrainConfig.reduce for data parallelism (ctx = Dist*): turns each replica's
 * mean-loss gradient into the gradient of the global weighted mean loss:
 * g = sum_r w_r g_r / sum_r w_r, where w_r is replica r's loss-weight sum, and
 * lw = {loss sum, weight sum} into global sums. */
void dist_train_reduce(void *ctx, float *grads, size_t n, double *lw);

#endif
