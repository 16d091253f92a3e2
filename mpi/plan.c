/* plan.c: the performance model of plan.h: per-rank compute from measured
 * per-layer seconds, the 1F1B schedule replayed with alpha-beta message
 * costs, the reductions and the optimiser after it, and memory per rank. */
#include "mpi/plan.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpi/layout.h"
#include "mpi/schedule.h"
#include "src/common.h"

#define GB 1e9
#define PLAN_BASE_BYTES 0.12e9 /* a rank before it holds anything: MPI, BLIS, code (measured: 0.10-0.13 GB) */

const char *plan_verdict_name(PlanVerdict v) {
    static const char *names[] = {"ok", "does not fit the machine", "does not divide the batch",
                                  "more ranks than useful", "out of memory"};
    return names[v];
}

void plan_layout_name(const PlanLayout *lo, char *buf, size_t n) {
    if (lo->S == 0)
        snprintf(buf, n, "%s R=%d x%d thread%s", lo->R == 1 ? "single" : "data-parallel", lo->R, lo->threads,
                 lo->threads == 1 ? "" : "s");
    else
        snprintf(buf, n, "S=%d A=%d R=%d M=%d x%d thread%s", lo->S, lo->A, lo->R, lo->M, lo->threads,
                 lo->threads == 1 ? "" : "s");
}

/* ------------------------------------------------------------ parameters */

static double block_params(const ModelConfig *c) {
    double C = c->dim, Q = (double)c->n_heads * c->head_dim, KV = (double)c->n_kv_heads * c->head_dim,
           F = c->hidden_dim;
    double p = C * Q + 2 * C * KV + Q * C + 3 * C * F;
    if (c->attention_bias) p += Q + 2 * KV;
    return p; /* the norms' 2C are kept in F32 whatever the file's width: negligible */
}

double plan_anchor_params(const ModelConfig *c, int l0, int l1, int head) {
    double p = (double)(l1 - l0) * block_params(c), emb = (double)c->vocab_size * c->dim;
    if (l0 == 0) p += emb;
    if (head && (!c->tie_embeddings || l0 != 0)) p += emb; /* a tied head on another stage keeps a copy */
    return p;
}

double plan_augment_params(const ModelConfig *c, int n_blocks) {
    return (double)n_blocks * block_params(c) + (double)c->vocab_size * c->dim;
}

/* Composition parameters of one connection: its projection, its cross-attention. */
static double proj_params(const PlanJob *j) { return (double)j->cb.dim * j->ca.dim + j->cb.dim; }
static double xattn_params(const PlanJob *j) { return 4.0 * j->cb.dim * j->cb.dim; }

/* ------------------------------------------------------------ the model */

typedef struct {
    const PlanJob *job;
    const PlanCosts *cost;
    const PlanMachine *mc;
    const PlanLayout *lo;
    Layout lay;
    double *speed;      /* [S+A] what each rank's threads are worth (rank_speed) */
    const Schedule *sc;
    double **dur;       /* [S+A][action]: compute seconds when cores are shared (NULL: fwd, bwd, ...) */
    int rpn;            /* ranks per node */
    int b_min, a_max;   /* lowest connected anchor block, highest augment block */
    double *fwd, *bwd;  /* [S] seconds per micro-batch */
    double aug_fwd, aug_accum;
} Model_;

static double compute_time(void *ctx, int r, const Action *a) {
    const Model_ *m = ctx;
    if (m->dur) return m->dur[r][a - m->sc->actions[r]];
    switch (a->kind) {
    case ACT_FWD: return m->fwd[r];
    case ACT_BWD: return m->bwd[r];
    case ACT_AUG_FWD: return m->aug_fwd;
    case ACT_AUG_ACCUM: return m->aug_accum;
    default: return 0;
    }
}

/* Is the link between two ranks of replica 0 inside a node? */
static int same_node(const Model_ *m, int r1, int r2) { return r1 / m->rpn == r2 / m->rpn; }

static double msg_time(const Model_ *m, int r1, int r2, double bytes) {
    if (same_node(m, r1, r2)) return m->mc->shm_alpha + bytes / m->mc->shm_beta;
    return m->mc->net_alpha + bytes / m->mc->net_beta;
}

/* Bytes of the message a send action posts. */
static double send_bytes(const Model_ *m, int r, const Action *a) {
    double ND = (double)m->cost->b * m->job->T * m->job->cb.dim * sizeof(float);
    switch (a->kind) {
    case ACT_SEND_ACT: return ND;
    case ACT_SEND_GRAD: return m->bwd[a->peer] > 0 ? ND : 0; /* empty when the stage below runs no backward */
    case ACT_SEND_PROJ_GRAD: return ND * m->lay.stage_n_conn[r];
    case ACT_SEND_PROJ: return ND * m->lay.stage_n_conn[a->peer];
    default: return 0;
    }
}

static double transfer_time(void *ctx, int r, const Action *a) {
    const Model_ *m = ctx;
    return msg_time(m, r, a->peer, send_bytes(m, r, a));
}

/* Ring all-reduce of `bytes` over n ranks; spans nodes when across. */
static double allreduce_time(const PlanMachine *mc, int n, double bytes, int across) {
    if (n <= 1) return 0;
    double al = across ? mc->net_alpha : mc->shm_alpha, be = across ? mc->net_beta : mc->shm_beta;
    return 2.0 * (n - 1) * al + 2.0 * (n - 1) / n * bytes / be;
}

/* A small all-reduce over n ranks (a scalar): a tree, log2(n) hops each way. */
static double scalar_reduce_time(const PlanMachine *mc, int n, int across) {
    if (n <= 1) return 0;
    return 2.0 * ceil(log2((double)n)) * (across ? mc->net_alpha : mc->shm_alpha);
}

/* The machine: ranks per node, threads per rank, and what a rank is worth. */
static int place(const PlanMachine *mc, PlanLayout *lo, PlanResult *r, int ranks) {
    r->ranks = ranks;
    int nodes = ranks < mc->nodes ? ranks : mc->nodes;
    r->ranks_per_node = (ranks + nodes - 1) / nodes;
    if (lo->threads == 0) lo->threads = mc->cores / r->ranks_per_node;
    if (lo->threads < 1) {
        snprintf(r->why, sizeof r->why, "%d ranks a node exceed its %d cores", r->ranks_per_node, mc->cores);
        return PLAN_NO_FIT;
    }
    return PLAN_OK;
}

/* What a rank's threads are worth in one-thread ranks computing alone:
 * threads x the measured 2-thread efficiency, slowed by the ranks beside it
 * on the node in proportion to how busy they are (others: their mean busy
 * fraction; share2 is the speed measured beside one fully busy process).
 * Sharing cores when a node has more threads than cores is not in here:
 * see oversubscribed(). */
static double rank_speed(const PlanCosts *c, const PlanLayout *lo, int rpn, double others) {
    double t = lo->threads, speed = t > 1 ? t * c->eff2 : 1.0;
    if (rpn > 1) speed *= 1 - (1 - c->share2) * others;
    return speed;
}

static int oversubscribed(const PlanMachine *mc, const PlanLayout *lo, int rpn) {
    return (double)rpn * lo->threads > mc->cores;
}

static void refuse(PlanResult *r, PlanVerdict v, const char *fmt, ...) CALM_PRINTF(3, 4);
static void refuse(PlanResult *r, PlanVerdict v, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->why, sizeof r->why, fmt, ap);
    va_end(ap);
    r->verdict = v;
}

/* Floats of one connection's cross-attention activations for b x T
 * (ConnActs: hB, P, q, k, v, att and the probabilities). */
static double conn_act_floats(const PlanJob *j, int b) {
    double N = (double)b * j->T, H = j->cc.n_heads ? j->cc.n_heads : j->cb.n_heads;
    return 6 * N * j->cb.dim + (double)b * H * j->T * j->T;
}

/* No pipeline: each of R ranks runs the whole composition on B/R rows. */
static int predict_whole(const PlanJob *j, const PlanCosts *c, const PlanMachine *mc, PlanResult *r) {
    const PlanLayout *lo = &r->lo;
    int L = j->cb.n_layers, K = j->cc.n_conn, bmin = L, amax = 0;
    for (int i = 0; i < K; i++) {
        if (j->cc.conn[i].b < bmin) bmin = j->cc.conn[i].b;
        if (j->cc.conn[i].a > amax) amax = j->cc.conn[i].a;
    }
    double speed = rank_speed(c, lo, r->ranks_per_node, 1.0); /* every rank computes all the time */
    if (oversubscribed(mc, lo, r->ranks_per_node)) speed *= mc->cores / ((double)r->ranks_per_node * lo->threads);
    double t = L * c->blk_f + c->head_f + K * (c->xattn_f + c->proj_f) + (amax + 1) * c->ablk_f +
               (L - 1 - bmin) * c->blk_b + c->head_b + K * (c->xattn_b + c->proj_b);
    r->compute_s = t / speed;
    double params = K * (proj_params(j) + xattn_params(j));
    int across = mc->nodes > 1 && r->ranks > r->ranks_per_node;
    r->reduce_bytes = lo->R > 1 ? params * sizeof(float) * lo->R : 0;
    r->comm_s = allreduce_time(mc, lo->R, params * sizeof(float), across) + 3 * scalar_reduce_time(mc, lo->R, across);
    r->opt_s = params * c->opt_per_param / speed;
    r->step_s = r->compute_s + r->comm_s + r->opt_s;
    double N = (double)r->b * j->T;
    double mem = PLAN_BASE_BYTES + j->wbytes_b * plan_anchor_params(&j->cb, 0, L, 1) +
                 j->wbytes_a * plan_augment_params(&j->ca, amax + 1) +
                 4.0 * (model_acts_floats(&j->cb, 0, L, 1, r->b, j->T) +
                        model_acts_floats(&j->ca, 0, amax + 1, 0, r->b, j->T) + K * conn_act_floats(j, r->b) +
                        K * N * (j->ca.dim + j->cb.dim)) +
                 16.0 * params;
    r->mem_gb = mem / GB;
    return 0;
}

/* A node with more threads than cores (3 ranks on 2 cores, say): each
 * compute action stretches by how many threads compete with it while it
 * runs. With waiting ranks yielding their core (Open MPI does when it knows
 * the node is oversubscribed; jobs/scaling sets it), computing threads run
 * at full speed while they number fewer than the cores, the waiting ranks
 * sharing the cores left over; once the computing threads fill the cores,
 * the waiting ranks take a fair share too (a yield gives the core away only
 * to a task that has waited longer). So at an instant with n computing and
 * w waiting threads on c cores a computing thread runs at 1 if n < c, else
 * at c / (n + w). The replay's compute intervals give n over time; each
 * action's length becomes its one-rank-a-core length times its mean
 * slowdown over its interval, and the replay runs again until the lengths
 * settle (damped: half the old length and half the new). The ranks of a
 * node are replica 0's ranks of that node; a node holding k replicas counts
 * each of their threads k times. */
static int share_cores(Model_ *m, const Schedule *sc, const SchedTimer *tm, SchedReplay *rp, char *err, size_t n) {
    const int R = sc->n_ranks, rpn = m->rpn;
    const double t = m->lo->threads, cores = m->mc->cores, copies = rpn > R ? (double)rpn / R : 1;
    double **base = xcalloc((size_t)R, sizeof *base), **dur = xcalloc((size_t)R, sizeof *dur);
    for (int k = 0; k < R; k++) { /* the lengths with a core a thread, as the replay so far used them */
        base[k] = xcalloc((size_t)sc->n_actions[k] + 1, sizeof **base);
        dur[k] = xcalloc((size_t)sc->n_actions[k] + 1, sizeof **dur);
        for (int i = 0; i < sc->n_actions[k]; i++) base[k][i] = dur[k][i] = compute_time(m, k, &sc->actions[k][i]);
    }
    m->dur = dur;
    int rc = 0;
    size_t cap = 2;
    for (int k = 0; k < R; k++) cap += 2 * (size_t)sc->n_actions[k];
    double *cut = xmalloc(cap * sizeof *cut);
    for (int round = 0; round < 80 && rc == 0; round++) {
        double change = 0;
        for (int k = 0; k < R; k++) {
            int node = rpn >= R ? 0 : k / rpn;
            for (int i = 0; i < sc->n_actions[k]; i++) {
                if (base[k][i] <= 0) continue;
                double s0 = rp->start[k][i], e0 = s0 + dur[k][i], slow = 0;
                int nc = 0;
                cut[nc++] = s0, cut[nc++] = e0;
                for (int q = 0; q < R; q++) { /* where the count of computing ranks can change */
                    if ((rpn >= R ? 0 : q / rpn) != node) continue;
                    for (int p = 0; p < sc->n_actions[q]; p++) {
                        if (base[q][p] <= 0) continue;
                        double a = rp->start[q][p], b = a + dur[q][p];
                        if (a > s0 && a < e0) cut[nc++] = a;
                        if (b > s0 && b < e0) cut[nc++] = b;
                    }
                }
                for (int x = 1; x < nc; x++) /* few cuts: insertion sort */
                    for (int y = x; y > 0 && cut[y] < cut[y - 1]; y--) {
                        double tmp = cut[y];
                        cut[y] = cut[y - 1], cut[y - 1] = tmp;
                    }
                for (int x = 0; x + 1 < nc; x++) {
                    double len = cut[x + 1] - cut[x], mid = 0.5 * (cut[x] + cut[x + 1]);
                    if (len <= 0) continue;
                    int computing = 0, ranks = 0;
                    for (int q = 0; q < R; q++) {
                        if ((rpn >= R ? 0 : q / rpn) != node) continue;
                        ranks++;
                        for (int p = 0; p < sc->n_actions[q]; p++)
                            if (base[q][p] > 0 && rp->start[q][p] <= mid && mid < rp->start[q][p] + dur[q][p]) {
                                computing++;
                                break;
                            }
                    }
                    double need = computing * t * copies, waiting = (ranks - computing) * copies;
                    slow += len * (need < cores ? 1.0 : (need + waiting) / cores);
                }
                double want = base[k][i] * slow / (e0 - s0), next = 0.5 * (dur[k][i] + want);
                double d = fabs(next - dur[k][i]) / dur[k][i];
                if (d > change) change = d;
                dur[k][i] = next;
            }
        }
        sched_replay_free(rp);
        rc = schedule_replay(sc, tm, SEND_EAGER, rp, err, n);
        if (change < 1e-9) break;
    }
    free(cut);
    for (int k = 0; k < R; k++) free(base[k]);
    free(base);
    return rc;
}

/* Pipeline: stage costs, the schedule replayed, then the reductions. */
static int predict_pipeline(const PlanJob *j, const PlanCosts *c, const PlanMachine *mc, PlanResult *r) {
    const PlanLayout *lo = &r->lo;
    const int S = lo->S, A = lo->A, L = j->cb.n_layers, K = j->cc.n_conn;
    Model_ m = {.job = j, .cost = c, .mc = mc, .lo = lo, .rpn = r->ranks_per_node, .b_min = L};
    double *lc = xmalloc((size_t)L * sizeof(double)), embed, head;
    layout_costs(&j->cb, &j->cc, r->b, j->T, lc, &embed, &head); /* the partition the pipeline will use */
    int rc = layout_plan(&m.lay, r->ranks, S, A, L, lc, embed, head, &j->cc);
    free(lc);
    if (rc) {
        refuse(r, PLAN_NO_FIT, "the anchor's %d blocks do not split into %d stages", L, S);
        return -1;
    }
    for (int i = 0; i < K; i++) {
        if (j->cc.conn[i].b < m.b_min) m.b_min = j->cc.conn[i].b;
        if (j->cc.conn[i].a > m.a_max) m.a_max = j->cc.conn[i].a;
    }
    m.fwd = xcalloc((size_t)S, sizeof(double));
    m.bwd = xcalloc((size_t)S, sizeof(double));
    m.speed = xcalloc((size_t)(S + A), sizeof(double));
    double *f1 = xcalloc((size_t)S, sizeof(double)), *b1 = xcalloc((size_t)S, sizeof(double)); /* one thread */
    double worst_mem = 0, opt1 = 0, red = 0;
    int across = mc->nodes > 1 && r->ranks > r->ranks_per_node;
    for (int s = 0; s < S; s++) {
        int f = m.lay.first[s], l1 = m.lay.first[s + 1], nk = m.lay.stage_n_conn[s], nb = 0, last = s == S - 1;
        for (int l = f; l < l1; l++) nb += l > m.b_min;
        f1[s] = (l1 - f) * c->blk_f + nk * c->xattn_f + (last ? c->head_f : 0);
        b1[s] = nb * c->blk_b + nk * c->xattn_b + (last ? c->head_b : 0);
        double own = nk * xattn_params(j), inflight = S - s < lo->M ? S - s : lo->M;
        double acts = model_acts_floats(&j->cb, f, l1, last, r->b, j->T) + nk * conn_act_floats(j, r->b) +
                      nk * (double)r->b * j->T * j->cb.dim; /* dP */
        double mem = PLAN_BASE_BYTES + j->wbytes_b * plan_anchor_params(&j->cb, f, l1, last) + 16.0 * own +
                     4.0 * acts * inflight;
        if (mem > worst_mem) worst_mem = mem, r->mem_rank_role = 0;
        double t_red = allreduce_time(mc, lo->R, own * sizeof(float), across);
        r->reduce_bytes += lo->R > 1 ? own * sizeof(float) * lo->R : 0;
        if (own * c->opt_per_param + t_red > opt1 + red) opt1 = own * c->opt_per_param, red = t_red;
    }
    double N = (double)r->b * j->T, pp = K * proj_params(j);
    double af1 = (m.a_max + 1) * c->ablk_f + K * c->proj_f, aa1 = K * c->proj_b;
    double aug_inflight = lo->M < S + 1 ? lo->M : S + 1;
    double aug_mem = PLAN_BASE_BYTES + j->wbytes_a * plan_augment_params(&j->ca, m.a_max + 1) + 16.0 * pp +
                     4.0 * (model_acts_floats(&j->ca, 0, m.a_max + 1, 0, r->b, j->T) +
                            aug_inflight * K * N * (j->ca.dim + 2.0 * j->cb.dim));
    if (aug_mem > worst_mem) worst_mem = aug_mem, r->mem_rank_role = 1;
    {
        double t_red = allreduce_time(mc, A * lo->R, pp * sizeof(float), across);
        r->reduce_bytes += A * lo->R > 1 ? pp * sizeof(float) * A * lo->R : 0;
        if (pp * c->opt_per_param + t_red > opt1 + red) opt1 = pp * c->opt_per_param, red = t_red;
    }

    /* Replay the schedule; the busy fractions it gives set how much the
     * ranks of a node slow each other, which changes the replay: iterate to
     * a fixed point (a few rounds settle it to well under a percent). */
    Schedule sc = {0};
    SchedReplay rp = {0};
    char err[256];
    rc = schedule_1f1b(&sc, S, lo->M, A, m.lay.stage_n_conn);
    SchedTimer tm = {compute_time, transfer_time, &m};
    double *busy = xmalloc((size_t)(S + A) * sizeof(double));
    for (int k = 0; k < S + A; k++) busy[k] = 1.0;
    for (int round = 0; round < 8 && rc == 0; round++) {
        double tot = 0;
        for (int k = 0; k < S + A; k++) tot += busy[k];
        for (int k = 0; k < S + A; k++) {
            double others = S + A > 1 ? (tot - busy[k]) / (S + A - 1) : 0;
            m.speed[k] = rank_speed(c, lo, r->ranks_per_node, others);
        }
        for (int s = 0; s < S; s++) m.fwd[s] = f1[s] / m.speed[s], m.bwd[s] = b1[s] / m.speed[s];
        m.aug_fwd = af1 / m.speed[S], m.aug_accum = aa1 / m.speed[S];
        sched_replay_free(&rp);
        rc = schedule_replay(&sc, &tm, SEND_EAGER, &rp, err, sizeof err);
        for (int k = 0; k < S + A && rc == 0; k++) busy[k] = rp.t_end > 0 ? rp.busy[k] / rp.t_end : 0;
    }
    m.sc = &sc;
    if (rc == 0 && oversubscribed(mc, lo, r->ranks_per_node)) rc = share_cores(&m, &sc, &tm, &rp, err, sizeof err);
    if (rc == 0) {
        double span = rp.t_end, most = 0, slowest = m.speed[0];
        r->bubble = 0;
        for (int s = 0; s < S; s++) {
            double idle = span > 0 ? 1 - rp.busy[s] / span : 0;
            if (idle > r->bubble) r->bubble = idle;
        }
        for (int k = 0; k < S + A; k++) {
            if (rp.busy[k] > most) most = rp.busy[k];
            if (m.speed[k] < slowest) slowest = m.speed[k];
        }
        r->compute_s = most;
        /* p2p bytes: every send of the replica, times the replicas */
        for (int k = 0; k < S + A; k++)
            for (int i = 0; i < sc.n_actions[k]; i++) {
                const Action *a = &sc.actions[k][i];
                if (a->kind == ACT_SEND_ACT || a->kind == ACT_SEND_GRAD || a->kind == ACT_SEND_PROJ ||
                    a->kind == ACT_SEND_PROJ_GRAD)
                    r->p2p_bytes += send_bytes(&m, k, a) * lo->R;
            }
        r->comm_s = red + 4 * scalar_reduce_time(mc, r->ranks, across);
        r->opt_s = opt1 / slowest;
        r->step_s = span + r->comm_s + r->opt_s;
    } else
        refuse(r, PLAN_NO_FIT, "schedule: %s", err);
    sched_replay_free(&rp);
    free(busy);
    free(f1);
    free(b1);
    if (sc.actions) schedule_free(&sc);
    r->mem_gb = worst_mem / GB;
    if (m.dur)
        for (int k = 0; k < S + A; k++) free(m.dur[k]);
    free(m.dur);
    free(m.fwd);
    free(m.bwd);
    free(m.speed);
    layout_free(&m.lay);
    return rc ? -1 : 0;
}

int plan_predict(const PlanJob *job, const PlanCosts *costs, const PlanMachine *mc, const PlanLayout *lo,
                 PlanResult *r) {
    memset(r, 0, sizeof *r);
    r->lo = *lo;
    const int S = lo->S, A = S ? lo->A : 0, R = lo->R, M = S ? lo->M : 1;
    r->lo.A = A;
    r->lo.M = M;
    if (R < 1 || M < 1 || S < 0 || (S > 0 && A < 1)) {
        refuse(r, PLAN_NO_FIT, "S=%d A=%d R=%d M=%d is not a layout", S, A, R, M);
        return -1;
    }
    if (S > job->cb.n_layers) {
        refuse(r, PLAN_NO_FIT, "%d stages for the anchor's %d blocks", S, job->cb.n_layers);
        return -1;
    }
    if (job->B % (R * M)) {
        refuse(r, PLAN_NO_DIVIDE, "batch %d is not divisible by %d replicas x %d micro-batches", job->B, R, M);
        return -1;
    }
    r->b = job->B / (R * M);
    if (costs->b != r->b || costs->T != job->T) {
        refuse(r, PLAN_NO_FIT, "costs are for micro-batches of %d x %d, the layout needs %d x %d", costs->b,
               costs->T, r->b, job->T);
        return -1;
    }
    int v = place(mc, &r->lo, r, S ? R * (S + A) : R);
    if (v != PLAN_OK) {
        r->verdict = v;
        return -1;
    }
    if ((S ? predict_pipeline(job, costs, mc, r) : predict_whole(job, costs, mc, r)) != 0) return -1;
    r->tokens_per_s = (double)job->B * job->T / r->step_s;
    if (r->mem_gb * r->ranks_per_node > mc->mem_gb) {
        refuse(r, PLAN_NO_MEMORY, "%d ranks a node x %.1f GB (the largest, %s) exceed %.3g GB", r->ranks_per_node,
               r->mem_gb, r->mem_rank_role ? "an augment rank" : "an anchor rank", mc->mem_gb);
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------ layouts */

int plan_costs_at(const PlanCosts *tab, int n, int b, PlanCosts *out) {
    const PlanCosts *near = NULL;
    for (int i = 0; i < n; i++) {
        if (tab[i].b == b) {
            *out = tab[i];
            return 0;
        }
        /* the largest below b, else the smallest above */
        if (!near || (tab[i].b < b && (near->b > b || tab[i].b > near->b)) || (near->b > b && tab[i].b < near->b))
            near = &tab[i];
    }
    if (!near) return -1;
    double k = (double)b / near->b;
    *out = *near;
    out->b = b;
    out->blk_f *= k, out->blk_b *= k, out->head_f *= k, out->head_b *= k, out->xattn_f *= k, out->xattn_b *= k;
    out->ablk_f *= k, out->proj_f *= k, out->proj_b *= k;
    return 0;
}

static int by_speed(const void *x, const void *y) {
    const PlanResult *a = x, *b = y;
    if ((a->verdict == PLAN_OK) != (b->verdict == PLAN_OK)) return a->verdict == PLAN_OK ? -1 : 1;
    if (a->verdict != PLAN_OK) return a->verdict - b->verdict;
    return a->step_s < b->step_s ? -1 : a->step_s > b->step_s;
}

/* Visit every candidate layout: S = 0 with R dividing B; S = 1..L with
 * A = 1..min(M, 4), R and M dividing B, M <= 8 S; at most the machine's cores. */
static int candidates(const PlanJob *j, const PlanMachine *mc, PlanLayout *out, int cap) {
    int n = 0, cores = mc->nodes * mc->cores, B = j->B;
    for (int R = 1; R <= B && R <= cores; R++)
        if (B % R == 0 && n < cap) out[n++] = (PlanLayout){0, 0, R, 1, 0};
    for (int S = 1; S <= j->cb.n_layers; S++)
        for (int R = 1; R <= B && R * (S + 1) <= cores; R++) {
            if (B % R) continue;
            for (int M = 1; M <= B / R && M <= 8 * S; M++) {
                if ((B / R) % M) continue;
                for (int A = 1; A <= M && A <= 4 && R * (S + A) <= cores; A++)
                    if (n < cap) out[n++] = (PlanLayout){S, A, R, M, 0};
            }
        }
    return n;
}

int plan_micro_batches(const PlanJob *job, const PlanMachine *mc, int *bs, int cap) {
    int nl = 1 << 20, n = 0;
    PlanLayout *los = xmalloc((size_t)nl * sizeof *los);
    nl = candidates(job, mc, los, nl);
    for (int i = 0; i < nl; i++) {
        int b = job->B / (los[i].R * (los[i].S ? los[i].M : 1)), seen = 0;
        for (int k = 0; k < n; k++) seen |= bs[k] == b;
        if (!seen && n < cap) bs[n++] = b;
    }
    free(los);
    for (int i = 1; i < n; i++) /* ascending */
        for (int k = i; k > 0 && bs[k] < bs[k - 1]; k--) {
            int t = bs[k];
            bs[k] = bs[k - 1];
            bs[k - 1] = t;
        }
    return n;
}

int plan_enumerate(const PlanJob *job, const PlanCosts *tab, int ntab, const PlanMachine *mc, PlanResult **out,
                   int *n) {
    int nl = 1 << 20;
    PlanLayout *los = xmalloc((size_t)nl * sizeof *los);
    nl = candidates(job, mc, los, nl);
    PlanResult *res = xmalloc((size_t)(nl > 0 ? nl : 1) * sizeof *res);
    for (int i = 0; i < nl; i++) {
        PlanCosts c;
        int b = job->B / (los[i].R * (los[i].S ? los[i].M : 1));
        if (plan_costs_at(tab, ntab, b, &c) != 0) {
            free(los);
            free(res);
            return calm_error("plan: no measured costs to scale to micro-batches of %d", b);
        }
        plan_predict(job, &c, mc, &los[i], &res[i]);
    }
    free(los);
    qsort(res, (size_t)nl, sizeof *res, by_speed);
    *out = res;
    *n = nl;
    return 0;
}
