/* schedule.h: the pipeline schedule of one data-parallel replica, as data.
 *
 * A replica has S anchor stages (schedule ranks 0..S-1, stage s holds a
 * contiguous range of mB's layers) and A augment ranks (schedule ranks
 * S..S+A-1, each holding mA up to its highest connected block and the
 * projections). A step processes M
 * micro-batches; augment rank j handles micro-batch m when m mod A == j.
 *
 * The schedule is a list of actions per rank, generated before any work,
 * checked by schedule_validate and schedule_dry_run, printable as a grid, and
 * only then executed by the MPI code, which walks each rank's list in order.
 * Keeping the schedule out of the executor means ordering bugs (a deadlock,
 * a backward before its forward) are found here, in a unit test, instead of
 * as a hang on a cluster.
 *
 * Communication semantics assumed by the dry run and required of the
 * executor: a SEND_* posts a non-blocking send (MPI_Isend) and never waits;
 * a RECV_* waits until the matching message has arrived. Messages match by
 * (source, destination, kind, micro-batch), i.e. the MPI tag carries the
 * kind and the micro-batch (schedule_tag), so their arrival order does not
 * matter. Pure C: no MPI here.
 */
#ifndef CALM_SCHEDULE_H
#define CALM_SCHEDULE_H

#include <stddef.h>
#include <stdio.h>

typedef enum {
    /* anchor stage s */
    ACT_RECV_ACT,       /* activations of m from stage s-1 */
    ACT_RECV_PROJ,      /* projected mA representations of m from augment rank m mod A */
    ACT_FWD,            /* forward of m through this stage's layers (and loss on the last stage) */
    ACT_SEND_ACT,       /* activations of m to stage s+1 */
    ACT_RECV_GRAD,      /* gradient of m's output activations from stage s+1 */
    ACT_BWD,            /* backward of m (input gradients, connection weight gradients) */
    ACT_SEND_GRAD,      /* gradient of m's input activations to stage s-1 */
    ACT_SEND_PROJ_GRAD, /* gradient of the projected representations of m to its augment rank */
    /* augment rank j */
    ACT_AUG_FWD,        /* mA forward of m and every connection's projection */
    ACT_SEND_PROJ,      /* projections of m for the connections of stage `peer` */
    ACT_RECV_PROJ_GRAD, /* gradient of those projections from stage `peer` */
    ACT_AUG_ACCUM,      /* accumulate projection weight gradients of m (after all its stages answered) */
    ACT_N_KINDS
} ActionKind;

typedef struct {
    ActionKind kind;
    int mb;   /* micro-batch, 0..M-1 */
    int peer; /* schedule rank on the other end of a send/recv; -1 for compute */
} Action;

typedef struct {
    int S, M, A;
    int n_ranks;      /* S + A */
    int *has_conn;    /* [S]: nonzero when stage s owns at least one connection */
    Action **actions; /* [n_ranks][n_actions[r]] */
    int *n_actions;   /* [n_ranks] */
    int *cap;         /* [n_ranks] allocated length of actions[r] */
} Schedule;

/* Compute cost of each kind of compute action, in whole time units; sends
 * and receives take no time. */
typedef struct {
    int fwd, bwd;           /* one anchor stage, one micro-batch */
    int aug_fwd, aug_accum; /* one augment rank, one micro-batch */
} SchedCost;

/* What a dry run leaves behind: the start time of every action. */
typedef struct {
    int n_ranks;
    int **start;   /* [rank][action] */
    int *busy;     /* [rank] time spent in compute actions */
    int t0, t_end; /* first compute start, last compute end, over all ranks */
} SchedTrace;

typedef enum {
    SEND_EAGER = 0,     /* sends never wait (MPI_Isend): what the executor does */
    SEND_RENDEZVOUS = 1 /* a send waits until the receiver reaches its receive (MPI_Ssend) */
} SendMode;

/* 1F1B: stage s runs min(S-s-1, M) warm-up forwards, then alternates one
 * forward and one backward, then drains the remaining backwards, so it never
 * holds more than S-s micro-batches' activations. Augment ranks follow the
 * compute order of the lowest stage with a connection, one forward ahead.
 * stage_has_conn: [S] (NULL = no connections). Returns -1 on bad sizes. */
int schedule_1f1b(Schedule *sc, int S, int M, int A, const int *stage_has_conn);
void schedule_free(Schedule *sc);

/* An empty schedule of the given shape, to be filled with schedule_push
 * (tests build broken schedules this way; other generators may too). */
int schedule_init(Schedule *sc, int S, int M, int A, const int *stage_has_conn);
void schedule_push(Schedule *sc, int rank, ActionKind kind, int mb, int peer);

/* Static checks: kinds belong to the rank's role, peers are the right
 * neighbours, each stage forwards and backwards every micro-batch exactly
 * once and each augment rank its share, data dependencies are in order on
 * every rank (recv before use, compute before send, FWD before BWD), and
 * every send has exactly one matching receive. 0 if sound; else -1 with the
 * first problem (naming rank and action) in err. */
int schedule_validate(const Schedule *sc, char *err, size_t n);

/* Simulate all ranks step by step. Returns 0 when every rank finishes;
 * -1 on a deadlock, with every stuck rank and the action it waits at in err,
 * on a message sent and never received, or on an illegal action (see validate).
 * trace (may be NULL) receives the start times; free with sched_trace_free. */
int schedule_dry_run(const Schedule *sc, const SchedCost *cost, SendMode mode, SchedTrace *trace, char *err,
                     size_t n);
void sched_trace_free(SchedTrace *tr);

/* Idle fraction of each rank over the step (first compute start to last
 * compute end, over all ranks) from an eager dry run with the given costs
 * (NULL = all ones). frac: [n_ranks]. Returns the largest fraction over the
 * anchor stages, or -1 if the schedule deadlocks. For 1F1B with free
 * augment ranks this is (S-1)/(M+S-1) on every stage. */
double schedule_bubble_fraction(const Schedule *sc, const SchedCost *cost, double *frac);

/* Timed replay, the dry run with real times (what calm plan predicts a step
 * with): compute(ctx, rank, action) is the seconds a compute action takes;
 * transfer(ctx, rank, action) (NULL: none) the seconds from posting a send
 * to the message's arrival at its receiver. The dry run is this replay with
 * integer costs and no transfer time. */
typedef struct {
    double (*compute)(void *ctx, int rank, const Action *a);
    double (*transfer)(void *ctx, int rank, const Action *a);
    void *ctx;
} SchedTimer;

typedef struct {
    int n_ranks;
    double **start; /* [rank][action] start time */
    double *busy;   /* [rank] time in compute */
    double t0, t_end; /* first compute start, last compute end, over all ranks */
} SchedReplay;

/* 0, or -1 with the reason in err as schedule_dry_run. */
int schedule_replay(const Schedule *sc, const SchedTimer *tm, SendMode mode, SchedReplay *out, char *err, size_t n);
void sched_replay_free(SchedReplay *rp);

/* Time-step grid from a unit-cost dry run: one row per rank, one column per
 * time unit, cells "F3" (forward of micro-batch 3), "B3" (backward), "A3"
 * (augment forward), "G3" (augment weight gradients), "." idle. */
void schedule_print_grid(const Schedule *sc, FILE *f);
/* Every rank's action list, one action per line. */
void schedule_print_actions(const Schedule *sc, FILE *f);

/* "stage 1", "aug 0": rank r of the schedule, for messages. */
void schedule_rank_name(const Schedule *sc, int r, char *buf, size_t n);
/* "RECV_ACT(m=3, from 0)" and the like. */
const char *action_kind_name(ActionKind k);
void action_format(const Action *a, char *buf, size_t n);
/* MPI tag of the message an action sends or receives: kind of message and
 * micro-batch, the same on both ends. -1 for compute actions. */
int schedule_tag(const Action *a);

#endif
