/* pipeline.h: distributed CALM composition training.
 *
 * World = R data-parallel replicas of (S anchor stages + A augment ranks)
 * (layout.h). Anchor stage s holds a contiguous range of the anchor's blocks
 * (embedding on stage 0, final norm and LM head on stage S-1) and the
 * cross-attention parameters (q, k, v, o) of the connections after its
 * blocks; it loads only its own tensors. Augment ranks hold mA up to its
 * highest connected block and every connection's projection. A step runs the
 * replica's M micro-batches through a 1F1B schedule (schedule.h) that is
 * validated and dry-run before use:
 *   - augment rank m mod A runs mA forward on micro-batch m and, as soon as
 *     the last connection a stage needs is projected, posts a non-blocking
 *     send of that stage's projections;
 *   - stages pass activations forward and input gradients backward; each
 *     stage with connections returns dL/dP of its projections, from which the
 *     augment rank accumulates the projection gradients (mA never runs
 *     backward);
 *   - after the last backward, each parameter's gradient is summed over the
 *     ranks that hold it (one stage position over the replicas, or all
 *     augment ranks), the global gradient norm is one reduction over all
 *     parameters, and every rank applies AdamW to its own parameters.
 * Every rank reads its replica's rows of the global batch from the data
 * source itself; micro-batch m is rows [m b, (m+1) b) of them, b = B/(R M).
 * The token gradient is scaled by 1 / (global weight sum) on the last stage,
 * as the single-process run scales the whole batch, so that gradients only
 * need summing.
 */
#ifndef CALM_PIPELINE_H
#define CALM_PIPELINE_H

#include <stdint.h>
#include <stdio.h>

#include "src/compose.h"
#include "mpi/dist.h"
#include "src/train.h"

typedef struct {
    const char *anchor_dir, *augment_dir;
    const char *connections; /* "3:5,7:11", or NULL: the default (compose_connections) */
    int heads;               /* cross-attention heads; 0 = the anchor's */
    int S, A, M; /* anchor stages, augment ranks, micro-batches per step */
    int B, T;    /* global batch rows, sequence length */
    int role_major; /* world ordered by role (Slurm heterogeneous jobs), see layout.h */
} PipeOpts;

typedef struct Pipeline Pipeline;

/* What the command trains with, handed back by pipeline_open. */
typedef struct {
    Composer *composer;   /* the full parameter set, which every rank initialises or
                           * loads identically; a rank trains only its own part */
    Trainable trainable;  /* this rank's own parameters; save and gather are collective */
    int vocab;            /* the anchor's vocabulary */
    int owns_part;        /* this rank writes a checkpoint part: its copy of its parameters
                           * is the one that counts (replica 0; augment rank 0) */
    char layout[64];      /* "pipeline S=2 A=1 R=1 M=4", for the record */
} PipelineRun;

/* Print what a run with these options would do on `world` ranks: the rank
 * layout, the schedule grid and its bubble fraction. No MPI needed. */
int pipeline_print_plan(const PipeOpts *o, int world, FILE *f);

/* Collective: plan the layout (printed by rank 0), load this rank's part of
 * the models, build the schedule and check it, set up communicators. Fills
 * run and the distribution fields of tc (B, row0, world, is_main, reduce,
 * grad_sq, save_all). -1 with calm_error on bad input (every rank sees the
 * same error). */
int pipeline_open(Pipeline **out, PipelineRun *run, TrainConfig *tc, const PipeOpts *o, const Dist *d);
void pipeline_close(Pipeline *p);

/* Collective: per-rank busy and waiting time, bubble fraction and bytes sent
 * per step since open, printed as a table by rank 0. */
void pipeline_report(Pipeline *p, FILE *f);

#endif
