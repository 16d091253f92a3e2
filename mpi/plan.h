/* plan.h: a performance model of a composition run, to choose a rank layout
 * before a cluster allocation is spent (`calm plan`).
 *
 * A layout is R data-parallel replicas of S anchor stages and A augment
 * ranks, each replica running M micro-batches of b = B / (R M) sequences
 * per step (pipeline.h); S = 0 means no pipeline: each of R ranks runs the
 * whole composition on its B / R sequences (data parallel, or one process
 * when R = 1). The step time is predicted by
 *   - compute: per-layer seconds measured on this CPU for one micro-batch
 *     (PlanCosts, plan_calib.c), summed over what each rank holds, divided
 *     by the rank's threads times the measured thread efficiency, and
 *     stretched when a node's ranks ask for more threads than it has cores;
 *   - the 1F1B schedule of the layout replayed as data (schedule_replay),
 *     every send costing alpha + bytes / beta (shared memory inside a node,
 *     the network between nodes);
 *   - after the schedule: the gradient all-reduce of each parameter over the
 *     ranks holding it (ring: 2 (n-1) alpha + 2 (n-1)/n bytes / beta), the
 *     scalar reductions, and AdamW on each rank's own parameters.
 * Memory per rank: frozen weights held (at their stored width), the
 * composition's parameters, gradients and AdamW moments it owns (16 bytes a
 * parameter), and the activations of the micro-batches it keeps in flight.
 * Pure C: no MPI here. */
#ifndef CALM_PLAN_H
#define CALM_PLAN_H

#include <stdio.h>

#include "src/compose.h"
#include "src/model.h"

/* Seconds for one micro-batch of b sequences x T tokens on one thread,
 * measured on this CPU (plan_calibrate), with the 2-thread efficiency. */
typedef struct {
    int b, T;
    double blk_f, blk_b;     /* one anchor block: forward; input-gradient backward */
    double head_f, head_b;   /* final norm, LM head and loss; their backward */
    double xattn_f, xattn_b; /* one connection's cross-attention (anchor side): forward; backward */
    double ablk_f;           /* one augment block forward */
    double proj_f, proj_b;   /* one connection's projection: forward; weight gradient */
    double opt_per_param;    /* AdamW on one parameter (zeroing the gradient included) */
    double eff2;             /* speed of 2 threads / (2 x speed of 1), measured; 1 when not */
    double share2;           /* speed of one thread while another process computes beside it / alone */
} PlanCosts;

/* The machine a layout runs on. */
typedef struct {
    int nodes, cores; /* cores per node */
    double mem_gb;    /* memory per node */
    double net_alpha, net_beta; /* seconds per message, bytes per second, between nodes */
    double shm_alpha, shm_beta; /* the same inside a node */
} PlanMachine;

/* What is planned. */
typedef struct {
    ModelConfig ca, cb; /* augment, anchor */
    ComposeConfig cc;
    double wbytes_a, wbytes_b; /* bytes per frozen parameter as stored (2 for BF16) */
    int B, T;                  /* global batch (sequences), sequence length */
} PlanJob;

typedef struct {
    int S, A, R, M; /* S = 0: no pipeline, R whole-composition ranks */
    int threads;    /* per rank (0: the node's cores / its ranks) */
} PlanLayout;

typedef enum { PLAN_OK = 0, PLAN_NO_FIT, PLAN_NO_DIVIDE, PLAN_TOO_MANY, PLAN_NO_MEMORY } PlanVerdict;

typedef struct {
    PlanLayout lo;
    PlanVerdict verdict;
    char why[160];        /* the reason a layout is refused */
    int ranks, ranks_per_node, b;
    double step_s, tokens_per_s;
    double compute_s;     /* the slowest rank's compute */
    double bubble;        /* anchor stages' idle fraction of the schedule */
    double comm_s;        /* after the schedule: all-reduces and reductions */
    double opt_s;         /* AdamW */
    double p2p_bytes;     /* sent per step by all ranks: activations, projections, their gradients */
    double reduce_bytes;  /* all-reduced per step, summed over ranks */
    double mem_gb;        /* the largest rank's peak */
    int mem_rank_role;    /* 0 anchor stage (or whole composition), 1 augment rank */
} PlanResult;

/* Predict one layout. Fills r (verdict and why for a refused one); returns 0,
 * or -1 when the layout is refused. */
int plan_predict(const PlanJob *job, const PlanCosts *costs, const PlanMachine *mc, const PlanLayout *lo,
                 PlanResult *r);

/* Costs at micro-batch b from a table measured at some micro-batch sizes:
 * the entry for b, else the nearest (the largest below b, else the smallest
 * above) scaled by the rows. -1 when the table is empty. */
int plan_costs_at(const PlanCosts *tab, int n, int b, PlanCosts *out);

/* The micro-batch sizes (sequences) of every candidate layout, ascending,
 * at most cap: what plan_enumerate needs costs for. */
int plan_micro_batches(const PlanJob *job, const PlanMachine *mc, int *bs, int cap);

/* Every candidate layout the machine's cores can hold: S = 0 with R
 * dividing B; S = 1..L with A = 1..min(M, 4), R and M dividing B, M <= 8 S.
 * Costs from the table (plan_costs_at). *out: malloc'd, *n entries, refused
 * ones included: valid first, fastest first. */
int plan_enumerate(const PlanJob *job, const PlanCosts *tab, int ntab, const PlanMachine *mc, PlanResult **out,
                   int *n);

/* "S=2 A=1 R=1 M=4 x1 thread" */
void plan_layout_name(const PlanLayout *lo, char *buf, size_t n);
const char *plan_verdict_name(PlanVerdict v);

/* Frozen weights a rank holds, in parameters: anchor blocks [l0, l1) with the
 * embedding (l0 == 0) and the head (head); the augment model's trunk up to
 * block n_blocks. */
double plan_anchor_params(const ModelConfig *c, int l0, int l1, int head);
double plan_augment_params(const ModelConfig *c, int n_blocks);

#endif
