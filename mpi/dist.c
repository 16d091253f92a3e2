#define _GNU_SOURCE /* on_exit */
#include "mpi/dist.h"

#include <limits.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

#include "src/common.h"
#include "src/optim.h"

static int launched_by_mpi(void) {
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMIX_RANK") || getenv("PMI_RANK") || getenv("PMI_SIZE");
}

static int g_mpi_live; /* between MPI_Init and MPI_Finalize */

/* An error exit on one rank must end the job: without this the other ranks
 * would wait forever in a receive from the rank that is gone. */
static void abort_on_error_exit(int status, void *arg) {
    (void)arg;
    if (!g_mpi_live) return;
    g_mpi_live = 0;
    fflush(stderr);
    if (status != 0) MPI_Abort(MPI_COMM_WORLD, status);
    MPI_Finalize(); /* a clean early exit (--help) on every rank */
}

static void start_mpi(Dist *d, int *argc, char ***argv) {
    int provided;
    MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
    MPI_Comm_rank(MPI_COMM_WORLD, &d->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &d->size);
    d->mpi = 1;
    g_mpi_live = 1;
    on_exit(abort_on_error_exit, NULL);
}

void dist_init(Dist *d, int *argc, char ***argv) {
    d->rank = 0;
    d->size = 1;
    d->local_size = 1;
    d->mpi = 0;
    if (!launched_by_mpi()) {
        /* srun without an MPI plugin starts N independent processes, each
         * believing it is rank 0 of 1: refuse rather than train N copies. */
        const char *n = getenv("SLURM_STEP_NUM_TASKS");
        if (n && atoi(n) > 1)
            calm_fatal("launch with `srun --mpi=pmix` (or mpirun inside the allocation)",
                       "started by srun as one of %s tasks, but without MPI: every task would be rank 0", n);
        return;
    }
    start_mpi(d, argc, argv);
    MPI_Comm node;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, d->rank, MPI_INFO_NULL, &node);
    MPI_Comm_size(node, &d->local_size);
    MPI_Comm_free(&node);
    const char *var = getenv("SLURM_STEP_NUM_TASKS") ? "SLURM_STEP_NUM_TASKS" : "SLURM_NTASKS";
    const char *n = getenv(var);
    if (n && atoi(n) != d->size) {
        fprintf(stderr, "calm: rank %d: MPI world has %d ranks but Slurm started %s tasks (%s): launch with "
                "srun --mpi=pmix, or mpirun -np %s inside the allocation\n", d->rank, d->size, n, var, n);
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    if (d->rank != 0) calm_quiet = 1; /* one voice in the log */
}

int dist_expect_ranks(const Dist *d, int n) {
    if (n <= 0 || n == d->size) return 0;
    return calm_error("--expect-ranks %d, but the job runs %d rank%s: check the launch (mpirun -np / srun "
                      "--ntasks)", n, d->size, d->size == 1 ? "" : "s");
}

void dist_require_mpi(Dist *d) {
    if (d->mpi) return;
    /* Open MPI starts a singleton world without a launcher. */
    start_mpi(d, NULL, NULL);
}

void dist_finalize(Dist *d) {
    if (d->mpi) {
        g_mpi_live = 0;
        MPI_Finalize();
    }
    d->mpi = 0;
}

/* MPI counts are ints: reduce in chunks so any parameter count works. */
static void allreduce_floats(float *x, size_t n) {
    const size_t chunk = (size_t)1 << 30;
    for (size_t off = 0; off < n; off += chunk) {
        int cnt = (int)(n - off < chunk ? n - off : chunk);
        MPI_Allreduce(MPI_IN_PLACE, x + off, cnt, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    }
}

void dist_train_reduce(void *ctx, float *grads, size_t n, double *lw) {
    Dist *d = ctx;
    if (d->size == 1) return;
    double local_w = lw[1];
    scale_inplace(grads, n, (float)local_w); /* mean-form -> sum-form */
    allreduce_floats(grads, n);
    MPI_Allreduce(MPI_IN_PLACE, lw, 2, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    if (lw[1] > 0) scale_inplace(grads, n, (float)(1.0 / lw[1]));
}

long dist_max_long(void *ctx, long x) {
    long y = x;
    if (((Dist *)ctx)->mpi) MPI_Allreduce(&x, &y, 1, MPI_LONG, MPI_MAX, MPI_COMM_WORLD);
    return y;
}

void dist_bcast_bytes(const Dist *d, void *buf, size_t n) {
    if (d->mpi) MPI_Bcast(buf, (int)n, MPI_BYTE, 0, MPI_COMM_WORLD);
}

long dist_sum_long(void *ctx, long x) {
    long y = x;
    if (((Dist *)ctx)->mpi) MPI_Allreduce(&x, &y, 1, MPI_LONG, MPI_SUM, MPI_COMM_WORLD);
    return y;
}

void dist_sum_doubles(const Dist *d, double *x, int n) {
    if (d->mpi) MPI_Allreduce(MPI_IN_PLACE, x, n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
}
