/* pipeline.c: the executor of the composition pipeline (pipeline.h): slots,
 * hooks, the schedule's actions, the step, reductions and saves. */
#include <limits.h>
#include <mpi.h>
#include <stdlib.h>
#include <string.h>

#include "mpi/pipeline_impl.h"
#include "src/common.h"
#include "src/modeldir.h"
#include "src/optim.h"

static double now(void) { return MPI_Wtime(); }

/* ------------------------------------------------------------------ slots */

static Slot *slot_new(Pipeline *p) {
    p->slots = xrealloc(p->slots, (size_t)(p->n_slots + 1) * sizeof(Slot));
    Slot *s = &p->slots[p->n_slots++];
    memset(s, 0, sizeof *s);
    const size_t ND = (size_t)p->N * p->comp.dB, NA = (size_t)p->N * p->comp.dA;
    if (p->me.role == ROLE_ANCHOR) {
        Activations keep = p->model.acts;
        memset(&p->model.acts, 0, sizeof p->model.acts);
        model_part_input(&p->model, p->b, p->T); /* allocates this slot's activations */
        s->acts = p->model.acts;
        p->model.acts = keep;
        int n = p->c1 - p->c0;
        size_t per = compose_conn_acts_floats(&p->comp, p->b, p->T);
        s->mem = xalloc_floats((per + 2 * ND) * (size_t)(n > 0 ? n : 1));
        s->ca = xcalloc((size_t)(n > 0 ? n : 1), sizeof(ConnActs));
        s->P = s->mem + per * n;
        s->dP = s->P + ND * n;
        for (int k = 0; k < n; k++) {
            compose_conn_acts_bind(&p->comp, &s->ca[k], s->mem + per * k, p->b, p->T);
            s->ca[k].P = s->P + ND * k;
        }
    } else {
        int n = p->comp.cfg.n_conn;
        s->mem = xalloc_floats((NA + 2 * ND) * n);
        s->hA = s->mem;
        s->P = s->hA + NA * n;
        s->dP = s->P + ND * n;
        s->projected = xcalloc((size_t)n, sizeof(int));
        s->sent = xcalloc((size_t)p->S, sizeof(int));
    }
    return s;
}

void slot_free(Slot *s) {
    model_acts_free(&s->acts);
    free(s->mem);
    free(s->ca);
    free(s->projected);
    free(s->sent);
}

/* Slot of micro-batch m, taking a free one (or one whose sends are done, or
 * a new one) on m's first action. */
static Slot *slot_get(Pipeline *p, int m) {
    if (p->slot_of[m] >= 0) return &p->slots[p->slot_of[m]];
    int k = -1;
    for (int i = 0; i < p->n_slots && k < 0; i++) {
        Slot *s = &p->slots[i];
        if (s->state == SLOT_DRAINING) {
            int done;
            MPI_Testall(s->n_sends, s->sends, &done, MPI_STATUSES_IGNORE);
            if (done) s->state = SLOT_FREE, s->n_sends = 0;
        }
        if (s->state == SLOT_FREE) k = i;
    }
    if (k < 0) {
        slot_new(p);
        k = p->n_slots - 1;
    }
    Slot *s = &p->slots[k];
    s->state = SLOT_BUSY;
    if (s->projected) memset(s->projected, 0, (size_t)p->comp.cfg.n_conn * sizeof(int));
    if (s->sent) memset(s->sent, 0, (size_t)p->S * sizeof(int));
    p->slot_of[m] = k;
    return s;
}

static void slot_send(Pipeline *p, Slot *s, const float *buf, size_t n, int to, const Action *a) {
    if (s->n_sends == MAX_SLOT_SENDS) calm_fatal(NULL, "pipeline: more than %d sends from one micro-batch", MAX_SLOT_SENDS);
    MPI_Isend(buf, (int)n, MPI_FLOAT, to, schedule_tag(a), p->rep, &s->sends[s->n_sends++]);
    p->bytes += (double)n * sizeof(float);
}

/* ---------------------------------------------------------------- compute */

static void stage_forward_hook(void *ctx, int layer, float *resid, int B, int T) {
    Pipeline *p = ctx;
    for (int i = p->c0; i < p->c1; i++)
        if (p->comp.cfg.conn[i].b == layer)
            compose_xattn_forward(&p->comp, i, &p->cur->ca[i - p->c0], resid, B, T, p->scratch);
}

static void stage_backward_hook(void *ctx, int layer, float *dresid, int B, int T) {
    Pipeline *p = ctx;
    const size_t ND = (size_t)B * T * p->comp.dB;
    for (int i = p->c1 - 1; i >= p->c0; i--)
        if (p->comp.cfg.conn[i].b == layer)
            compose_xattn_backward(&p->comp, i, &p->cur->ca[i - p->c0], dresid, p->cur->dP + ND * (i - p->c0), B, T,
                                   p->scratch);
}

/* Post the projections of every stage whose connections are all done. */
static void post_projections(Pipeline *p, Slot *s, int m) {
    const size_t ND = (size_t)p->N * p->comp.dB;
    for (int st = 0; st < p->S; st++) {
        if (s->sent[st] || p->cfirst[st] == p->cfirst[st + 1]) continue;
        int ready = 1;
        for (int i = p->cfirst[st]; i < p->cfirst[st + 1]; i++) ready &= s->projected[i];
        if (!ready) continue;
        Action a = {ACT_SEND_PROJ, m, st};
        slot_send(p, s, s->P + ND * p->cfirst[st], ND * (p->cfirst[st + 1] - p->cfirst[st]), st, &a);
        s->sent[st] = 1;
    }
}

static void augment_hook(void *ctx, int layer, float *x, int B, int T) {
    Pipeline *p = ctx;
    Slot *s = p->cur;
    const size_t N = (size_t)B * T, NA = N * p->comp.dA, ND = N * p->comp.dB;
    int any = 0;
    for (int i = 0; i < p->comp.cfg.n_conn; i++) {
        if (p->comp.cfg.conn[i].a != layer) continue;
        memcpy(s->hA + NA * i, x, NA * sizeof(float));
        compose_proj_forward(&p->comp, i, s->P + ND * i, s->hA + NA * i, (int)N);
        s->projected[i] = 1;
        any = 1;
    }
    if (any) post_projections(p, s, p->cur_mb); /* as soon as a stage's last one is ready */
}

static void compute(Pipeline *p, const Action *a) {
    const int m = a->mb;
    const size_t off = (size_t)m * p->b * p->T, ND = (size_t)p->N * p->comp.dB, NA = (size_t)p->N * p->comp.dA;
    Slot *s = slot_get(p, m);
    p->cur = s;
    p->cur_mb = m;
    switch (a->kind) {
    case ACT_FWD: {
        Activations keep = p->model.acts;
        p->model.acts = s->acts;
        float loss = model_forward_part(&p->model, p->tokens + off, p->targets + off, p->weights + off, p->b, p->T,
                                        stage_forward_hook, p);
        s->acts = p->model.acts;
        p->model.acts = keep;
        if (p->last_stage) {
            double w = 0;
            for (size_t i = 0; i < (size_t)p->N; i++) w += p->weights[off + i];
            p->loss_sum += (double)loss * w;
        }
        break;
    }
    case ACT_BWD: {
        Activations keep = p->model.acts;
        p->model.acts = s->acts;
        model_backward_part(&p->model, p->targets + off, p->weights + off, p->grad_scale, GRAD_INPUT, p->stop,
                            stage_backward_hook, p);
        s->acts = p->model.acts;
        p->model.acts = keep;
        break;
    }
    case ACT_AUG_FWD:
        model_forward_trunk(&p->model, p->tokens + off, p->b, p->T, p->comp.a_max + 1, augment_hook, p);
        break;
    case ACT_AUG_ACCUM:
        for (int i = 0; i < p->comp.cfg.n_conn; i++)
            compose_proj_backward(&p->comp, i, s->dP + ND * i, s->hA + NA * i, p->N);
        break;
    default:
        calm_fatal(NULL, "pipeline: %s is not a compute action", action_kind_name(a->kind));
    }
}

/* ---------------------------------------------------------- communication */

static int is_compute(ActionKind k) { return k == ACT_FWD || k == ACT_BWD || k == ACT_AUG_FWD || k == ACT_AUG_ACCUM; }
static int is_recv(ActionKind k) {
    return k == ACT_RECV_ACT || k == ACT_RECV_PROJ || k == ACT_RECV_GRAD || k == ACT_RECV_PROJ_GRAD;
}

/* Stage s runs a backward (needs gradients) when the anchor backward reaches
 * its blocks or the hook right below them: stop <= first[s+1]. */
int stage_has_backward(const Pipeline *p, int s) { return p->stop <= p->lo.first[s + 1]; }

static void post_recv(Pipeline *p, const Action *a, int i) {
    Slot *s = slot_get(p, a->mb);
    const size_t ND = (size_t)p->N * p->comp.dB;
    float *buf = NULL;
    size_t n = 0;
    switch (a->kind) {
    case ACT_RECV_ACT:
        buf = s->acts.resid + (size_t)p->model.l0 * ND, n = ND;
        break;
    case ACT_RECV_GRAD:
        buf = s->acts.dresid, n = stage_has_backward(p, p->me.index) ? ND : 0;
        break;
    case ACT_RECV_PROJ:
        buf = s->P, n = ND * (p->c1 - p->c0);
        break;
    case ACT_RECV_PROJ_GRAD: {
        int st = a->peer;
        buf = s->dP + ND * p->cfirst[st], n = ND * (p->cfirst[st + 1] - p->cfirst[st]);
        break;
    }
    default:
        calm_fatal(NULL, "pipeline: %s is not a receive", action_kind_name(a->kind));
    }
    MPI_Irecv(buf, (int)n, MPI_FLOAT, a->peer, schedule_tag(a), p->rep, &p->recv_req[i]);
    p->recv_posted[i] = 1;
}

static void do_send(Pipeline *p, const Action *a) {
    Slot *s = slot_get(p, a->mb);
    const size_t ND = (size_t)p->N * p->comp.dB;
    switch (a->kind) {
    case ACT_SEND_ACT:
        slot_send(p, s, s->acts.resid + (size_t)p->model.l1 * ND, ND, a->peer, a);
        break;
    case ACT_SEND_GRAD: /* empty when the stage below has no backward: the message only keeps the order */
        slot_send(p, s, s->acts.dresid, stage_has_backward(p, a->peer) ? ND : 0, a->peer, a);
        break;
    case ACT_SEND_PROJ_GRAD:
        slot_send(p, s, s->dP, ND * (p->c1 - p->c0), a->peer, a);
        break;
    case ACT_SEND_PROJ: /* normally posted by the forward as soon as it was ready */
        if (!s->sent[a->peer]) {
            post_projections(p, s, a->mb);
            if (!s->sent[a->peer]) calm_fatal(NULL, "pipeline: projections for stage %d not ready", a->peer);
        }
        break;
    default:
        calm_fatal(NULL, "pipeline: %s is not a send", action_kind_name(a->kind));
    }
}

/* Walk this rank's action list once (one step). Receives are posted one
 * compute action ahead, so a message can land while the rank computes. */
static void run_schedule(Pipeline *p) {
    const int me = p->me.local, n = p->sc.n_actions[me];
    const Action *act = p->sc.actions[me];
    for (int m = 0; m < p->M; m++) p->slot_of[m] = -1;
    memset(p->recv_posted, 0, (size_t)n * sizeof(int));
    for (int i = 0; i < n; i++) {
        const Action *a = &act[i];
        if (is_compute(a->kind)) {
            for (int j = i + 1; j < n && !is_compute(act[j].kind); j++)
                if (is_recv(act[j].kind) && !p->recv_posted[j]) post_recv(p, &act[j], j);
            double t0 = now();
            compute(p, a);
            p->busy += now() - t0;
        } else if (is_recv(a->kind)) {
            if (!p->recv_posted[i]) post_recv(p, a, i);
            double t0 = now();
            MPI_Wait(&p->recv_req[i], MPI_STATUS_IGNORE);
            p->wait += now() - t0;
        } else {
            do_send(p, a);
        }
        if (i == p->last_action[a->mb]) p->slots[p->slot_of[a->mb]].state = SLOT_DRAINING;
    }
    double t0 = now();
    for (int k = 0; k < p->n_slots; k++) {
        Slot *s = &p->slots[k];
        MPI_Waitall(s->n_sends, s->sends, MPI_STATUSES_IGNORE);
        s->n_sends = 0;
        s->state = SLOT_FREE;
    }
    p->wait += now() - t0;
}

/* ------------------------------------------------------------- training */

static float pipe_step(void *ctx, const int *tokens, const int *targets, const float *weights, int B, int T) {
    Pipeline *p = ctx;
    (void)T;
    double t0 = now();
    compose_zero_grads(&p->comp);
    p->tokens = tokens, p->targets = targets, p->weights = weights;
    /* the global weight sum scales every token's gradient, as one process
     * scales its whole batch; one rank per replica contributes */
    double w = 0;
    for (size_t i = 0; i < (size_t)B * p->T; i++) w += weights[i];
    MPI_Allreduce(&w, &p->W, 1, MPI_DOUBLE, MPI_SUM, p->pos);
    p->grad_scale = p->W > 0 ? (float)(1.0 / p->W) : 0.0f;
    p->loss_sum = 0;
    run_schedule(p);
    p->t_total += now() - t0;
    p->steps++;
    return p->W > 0 ? (float)(p->loss_sum / p->W) : 0.0f;
}

/* MPI counts are ints: large arrays go in chunks. */
static void allreduce_chunks(float *x, size_t n, MPI_Comm comm) {
    const size_t chunk = (size_t)1 << 30;
    for (size_t off = 0; off < n; off += chunk)
        MPI_Allreduce(MPI_IN_PLACE, x + off, (int)(n - off < chunk ? n - off : chunk), MPI_FLOAT, MPI_SUM, comm);
}

/* Sum each own gradient over the ranks holding the same parameter; the loss
 * and weight sums over the world for the log. */
static void pipe_reduce(void *ctx, float *grads, size_t n, double *lw) {
    Pipeline *p = ctx;
    (void)n;
    int sz;
    MPI_Comm holders = p->me.role == ROLE_ANCHOR ? p->pos : p->role;
    MPI_Comm_size(holders, &sz);
    if (sz > 1)
        for (int k = 0; k < p->n_own; k++) allreduce_chunks(grads + p->own[k].offset, p->own[k].numel, holders);
    double loss = p->last_stage ? p->loss_sum : 0.0;
    MPI_Allreduce(&loss, &lw[0], 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    lw[1] = p->W;
}

static double pipe_grad_sq(void *ctx, const float *grads, size_t n) {
    Pipeline *p = ctx;
    (void)n;
    double local = 0, total = 0;
    if (p->counts)
        for (int k = 0; k < p->n_own; k++) local += sum_squares(grads + p->own[k].offset, p->own[k].numel);
    MPI_Allreduce(&local, &total, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    return total;
}

/* Sum of every counting rank's own tensors of x into world rank 0's x. */
static int pipe_gather(void *ctx, float *x, size_t n) {
    Pipeline *p = ctx;
    float *buf = xmap_floats(n); /* written only where this rank owns */
    if (p->counts)
        for (int k = 0; k < p->n_own; k++)
            memcpy(buf + p->own[k].offset, x + p->own[k].offset, p->own[k].numel * sizeof(float));
    const size_t chunk = (size_t)1 << 30;
    for (size_t off = 0; off < n; off += chunk) {
        int cnt = (int)(n - off < chunk ? n - off : chunk);
        MPI_Reduce(buf + off, x + off, cnt, MPI_FLOAT, MPI_SUM, 0, MPI_COMM_WORLD);
    }
    calm_unmap_floats(buf, n);
    return p->dist.rank == 0;
}

static int pipe_save(void *ctx, const char *dir) {
    Pipeline *p = ctx;
    float *all = xmap_floats(p->comp.num_params);
    for (int k = 0; k < p->n_own; k++)
        memcpy(all + p->own[k].offset, p->comp.params + p->own[k].offset, p->own[k].numel * sizeof(float));
    int writer = pipe_gather(p, all, p->comp.num_params), rc = 0;
    if (writer) {
        Composer view = p->comp;
        view.params = all;
        rc = compose_save_dir(&view, dir, p->anchor_dir, p->augment_dir);
    }
    calm_unmap_floats(all, p->comp.num_params);
    MPI_Bcast(&rc, 1, MPI_INT, 0, MPI_COMM_WORLD); /* every rank learns whether the save worked */
    return rc == 0 ? 0 : (writer ? -1 : calm_error("%s: rank 0 could not write the composition", dir));
}

Trainable pipeline_trainable(Pipeline *p) {
    Trainable t = {p, p->comp.params, p->comp.grads, p->comp.num_params, p->own, p->n_own, pipe_step, pipe_save,
                   pipe_gather};
    return t;
}

void pipeline_train_config(Pipeline *p, TrainConfig *tc) {
    tc->B = p->b * p->M; /* the replica's rows; pipe_step cuts them into micro-batches */
    tc->row0 = p->me.replica * tc->B;
    tc->world = p->R;
    tc->is_main = p->dist.rank == 0;
    tc->reduce = pipe_reduce;
    tc->reduce_ctx = p;
    tc->grad_sq = pipe_grad_sq;
    tc->save_all = 1;
}
