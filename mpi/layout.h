/* layout.h: which rank does what, planned before MPI does anything.
 *
 * World of N ranks = R data-parallel replicas of (S anchor stages + A augment
 * ranks). A replica's ranks are contiguous, so pipeline neighbours share a
 * node when a node holds a replica:
 *     world rank = replica * (S + A) + local,
 *     local < S: anchor stage `local`;  local >= S: augment rank `local - S`.
 * The local index is also the rank's index in the replica's Schedule.
 * With role_major (a Slurm heterogeneous job, whose components come in
 * order: all anchor ranks, then all augment ranks) the world is ordered by
 * role instead:
 *     world rank = replica * S + stage               for anchor ranks,
 *     world rank = R * S + replica * A + index      for augment ranks.
 *
 * The anchor's L blocks are split into S contiguous, non-empty ranges that
 * minimise the largest stage cost (the pipeline runs at the pace of its
 * slowest stage). The embedding goes with stage 0, the final norm and LM head
 * with stage S-1, and each connection (a, b) with the stage holding block b,
 * since its cross-attention is added to the stream right after block b.
 * Pure C: no MPI here.
 */
#ifndef CALM_LAYOUT_H
#define CALM_LAYOUT_H

#include <stdio.h>

#include "src/compose.h"
#include "src/model.h"

typedef enum { ROLE_ANCHOR = 0, ROLE_AUGMENT = 1 } RankRole;

typedef struct {
    RankRole role;
    int replica;
    int index; /* anchor stage s, or augment rank j */
    int local; /* rank inside the replica = schedule rank */
} RankInfo;

typedef struct {
    int world, S, A, R;
    int role_major;    /* world ordered by role (see above) instead of by replica */
    int L;             /* anchor blocks */
    int *first;        /* [S+1]: stage s holds blocks first[s] .. first[s+1]-1 */
    double *cost;      /* [S] cost of each stage (same units as the input costs) */
    int n_conn;
    Connection *conn;  /* [n_conn] copy of the connections */
    int *conn_stage;   /* [n_conn] stage owning each connection */
    int *stage_n_conn; /* [S] connections per stage: the stage_has_conn of schedule_1f1b */
} Layout;

/* Check N, S, A against each other and against L: N a multiple of S + A,
 * 1 <= S <= L, A >= 1. -1 with a message naming the flag to change. */
int layout_check(int world, int S, int A, int L);

/* Split L blocks of cost layer_cost[l] into S contiguous non-empty stages,
 * stage 0 also paying embed_cost and stage S-1 head_cost, minimising the
 * largest stage cost (exact: dynamic programming over split points).
 * first: [S+1]; *max_cost (may be NULL) gets the optimum. -1 if S > L. */
int layout_partition(int L, int S, const double *layer_cost, double embed_cost, double head_cost, int *first,
                     double *max_cost);

/* Full plan: checks, partition, connection owners. cc may be NULL (no
 * connections); a connection whose anchor block b is not in 0..L-1 is an
 * error. Free with layout_free. */
int layout_plan(Layout *lo, int world, int S, int A, int L, const double *layer_cost, double embed_cost,
                double head_cost, const ComposeConfig *cc);
void layout_free(Layout *lo);

/* Role of a world rank, and the world rank of a role. */
void layout_rank(const Layout *lo, int rank, RankInfo *info);
int layout_world_rank(const Layout *lo, int replica, RankRole role, int index);

/* Costs (FLOPs of forward + backward of one micro-batch of Bsz x T tokens)
 * for layout_partition, from the anchor's config and the connections: a block
 * costs its forward (model_block_flops), plus its input-gradient backward if
 * the backward reaches it (blocks above the lowest connected block), plus the
 * anchor-side cross-attention of the connections after it (q, k, v, o and
 * attention, forward and backward; the projection runs on augment ranks).
 * The embedding is a lookup (cost 0); the head is the LM-head matmul forward
 * and its input gradient. layer_cost: [L]. */
void layout_costs(const ModelConfig *anchor, const ComposeConfig *cc, int Bsz, int T, double *layer_cost,
                  double *embed_cost, double *head_cost);

/* The table printed at start: one line per world rank with role, replica,
 * blocks held and connections held. */
void layout_print(const Layout *lo, FILE *f);

#endif
