/* pipeline_impl.h: the state of an open pipeline, shared by the executor
 * (pipeline.c) and opening, planning and reporting (pipeline_open.c).
 * Private to mpi/. */
#ifndef CALM_MPI_PIPELINE_IMPL_H
#define CALM_MPI_PIPELINE_IMPL_H

#include <mpi.h>

#include "mpi/layout.h"
#include "mpi/pipeline.h"
#include "mpi/schedule.h"

/* One micro-batch in flight on an anchor stage or an augment rank. A slot
 * is BUSY from the micro-batch's first action on this rank to its last,
 * then DRAINING until the sends from its buffers complete. */
enum { SLOT_FREE, SLOT_BUSY, SLOT_DRAINING };

/* Sends from one slot: an anchor stage sends at most 3 messages per
 * micro-batch, an augment rank one per stage with connections (at most
 * COMPOSE_MAX_CONN). */
#define MAX_SLOT_SENDS COMPOSE_MAX_CONN

typedef struct {
    int state;
    Activations acts; /* anchor: the model part's activations for this micro-batch */
    ConnActs *ca;     /* anchor: [own connections] */
    float *mem;
    float *hA;        /* augment: [n_conn, N, dA] mA's stream at each connection */
    float *P, *dP;    /* anchor: [own, N, dB]; augment: [n_conn, N, dB] */
    int *projected;   /* augment: [n_conn] */
    int *sent;        /* augment: [S] projections of stage s posted */
    MPI_Request sends[MAX_SLOT_SENDS];
    int n_sends;
} Slot;

struct Pipeline {
    Dist dist;
    Layout lo;
    RankInfo me;
    Schedule sc;
    int S, A, M, R, b, T, N, last_stage;
    ModelConfig cfg_a, cfg_b;
    Model model;     /* anchor part, or mA's trunk */
    Composer comp;   /* full parameter set; this rank uses its own part */
    int *cfirst;     /* [S+1]: stage s owns connections cfirst[s] .. cfirst[s+1]-1 */
    int c0, c1;      /* this anchor stage's connections */
    int stop;        /* the anchor backward stops at block b_min + 1 */
    ParamInfo *own;  /* this rank's parameter tensors */
    int n_own;
    int counts;      /* this rank's copy counts in norms and saves (replica 0, augment 0) */
    MPI_Comm rep, pos, role; /* replica; same place in every replica; same role */
    Slot *slots;
    int n_slots;
    int *slot_of;    /* [M] */
    int *last_action;/* [M] index of micro-batch m's last action on this rank */
    MPI_Request *recv_req; /* [actions] */
    int *recv_posted;
    float *scratch;
    Slot *cur;       /* the slot the hooks work on */
    int cur_mb;      /* and its micro-batch */
    /* this step */
    const int *tokens, *targets;
    const float *weights;
    float grad_scale;
    double W, loss_sum;
    /* statistics since open */
    double busy, wait, t_total, bytes;
    long steps;
    const char *anchor_dir, *augment_dir;
};

void slot_free(Slot *s);
/* Stage s runs a backward (the anchor backward reaches its blocks). */
int stage_has_backward(const Pipeline *p, int s);
/* The Trainable and the TrainConfig fields of an open pipeline. */
Trainable pipeline_trainable(Pipeline *p);
void pipeline_train_config(Pipeline *p, TrainConfig *tc);

#endif
