/* schedule.c: 1F1B pipeline schedule as data; validation, dry run and timed
 * replay (the grid is printed by schedule_print.c).
 * See schedule.h for the model of a replica and the send/recv semantics. */
#include "mpi/schedule.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "src/common.h"

/* Kinds of message; a send and a receive match when they carry the same
 * message kind and micro-batch between the same two ranks. */
enum { MSG_ACT, MSG_GRAD, MSG_PROJ, MSG_PROJ_GRAD, MSG_N };

static const char *kind_names[ACT_N_KINDS] = {
    [ACT_RECV_ACT] = "RECV_ACT",     [ACT_RECV_PROJ] = "RECV_PROJ",
    [ACT_FWD] = "FWD",               [ACT_SEND_ACT] = "SEND_ACT",
    [ACT_RECV_GRAD] = "RECV_GRAD",   [ACT_BWD] = "BWD",
    [ACT_SEND_GRAD] = "SEND_GRAD",   [ACT_SEND_PROJ_GRAD] = "SEND_PROJ_GRAD",
    [ACT_AUG_FWD] = "AUG_FWD",       [ACT_SEND_PROJ] = "SEND_PROJ",
    [ACT_RECV_PROJ_GRAD] = "RECV_PROJ_GRAD", [ACT_AUG_ACCUM] = "AUG_ACCUM",
};

const char *action_kind_name(ActionKind k) {
    return (unsigned)k < ACT_N_KINDS ? kind_names[k] : "?";
}

/* Message kind of a communication action, and whether it sends; -1 for compute. */
static int msg_of(ActionKind k, int *is_send) {
    switch (k) {
    case ACT_SEND_ACT: *is_send = 1; return MSG_ACT;
    case ACT_RECV_ACT: *is_send = 0; return MSG_ACT;
    case ACT_SEND_GRAD: *is_send = 1; return MSG_GRAD;
    case ACT_RECV_GRAD: *is_send = 0; return MSG_GRAD;
    case ACT_SEND_PROJ: *is_send = 1; return MSG_PROJ;
    case ACT_RECV_PROJ: *is_send = 0; return MSG_PROJ;
    case ACT_SEND_PROJ_GRAD: *is_send = 1; return MSG_PROJ_GRAD;
    case ACT_RECV_PROJ_GRAD: *is_send = 0; return MSG_PROJ_GRAD;
    default: *is_send = 0; return -1;
    }
}

int schedule_tag(const Action *a) {
    int is_send, msg = msg_of(a->kind, &is_send);
    return msg < 0 ? -1 : a->mb * MSG_N + msg;
}

void action_format(const Action *a, char *buf, size_t n) {
    int is_send, msg = msg_of(a->kind, &is_send);
    if (msg < 0)
        snprintf(buf, n, "%s(m=%d)", action_kind_name(a->kind), a->mb);
    else
        snprintf(buf, n, "%s(m=%d, %s %d)", action_kind_name(a->kind), a->mb, is_send ? "to" : "from", a->peer);
}

void schedule_rank_name(const Schedule *sc, int r, char *buf, size_t n) {
    if (r < sc->S)
        snprintf(buf, n, "rank %d (stage %d)", r, r);
    else
        snprintf(buf, n, "rank %d (augment %d)", r, r - sc->S);
}

/* printf into the caller's error buffer (which may be NULL). */
static int fail(char *err, size_t n, const char *fmt, ...) CALM_PRINTF(3, 4);
static int fail(char *err, size_t n, const char *fmt, ...) {
    if (err && n) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, n, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* ------------------------------------------------------------ building */

int schedule_init(Schedule *sc, int S, int M, int A, const int *stage_has_conn) {
    memset(sc, 0, sizeof *sc);
    if (S < 1 || M < 1 || A < 1)
        return calm_error("schedule: need S >= 1 anchor stages, M >= 1 micro-batches, A >= 1 augment ranks "
                          "(got S=%d, M=%d, A=%d)", S, M, A);
    sc->S = S, sc->M = M, sc->A = A, sc->n_ranks = S + A;
    sc->has_conn = xcalloc(S, sizeof(int));
    for (int s = 0; s < S; s++) sc->has_conn[s] = stage_has_conn && stage_has_conn[s] ? 1 : 0;
    sc->actions = xcalloc(sc->n_ranks, sizeof(Action *));
    sc->n_actions = xcalloc(sc->n_ranks, sizeof(int));
    sc->cap = xcalloc(sc->n_ranks, sizeof(int));
    return 0;
}

void schedule_push(Schedule *sc, int rank, ActionKind kind, int mb, int peer) {
    if (sc->n_actions[rank] == sc->cap[rank]) {
        sc->cap[rank] = sc->cap[rank] ? 2 * sc->cap[rank] : 16;
        sc->actions[rank] = xrealloc(sc->actions[rank], sc->cap[rank] * sizeof(Action));
    }
    sc->actions[rank][sc->n_actions[rank]++] = (Action){kind, mb, peer};
}

void schedule_free(Schedule *sc) {
    if (sc->actions)
        for (int r = 0; r < sc->n_ranks; r++) free(sc->actions[r]);
    free(sc->actions);
    free(sc->n_actions);
    free(sc->cap);
    free(sc->has_conn);
    memset(sc, 0, sizeof *sc);
}

static int aug_rank(const Schedule *sc, int m) { return sc->S + m % sc->A; }

static void stage_forward(Schedule *sc, int s, int m) {
    if (s > 0) schedule_push(sc, s, ACT_RECV_ACT, m, s - 1);
    if (sc->has_conn[s]) schedule_push(sc, s, ACT_RECV_PROJ, m, aug_rank(sc, m));
    schedule_push(sc, s, ACT_FWD, m, -1);
    if (s < sc->S - 1) schedule_push(sc, s, ACT_SEND_ACT, m, s + 1);
}

static void stage_backward(Schedule *sc, int s, int m) {
    if (s < sc->S - 1) schedule_push(sc, s, ACT_RECV_GRAD, m, s + 1);
    schedule_push(sc, s, ACT_BWD, m, -1);
    if (s > 0) schedule_push(sc, s, ACT_SEND_GRAD, m, s - 1);
    /* after the previous stage's gradient: that one is on the critical path */
    if (sc->has_conn[s]) schedule_push(sc, s, ACT_SEND_PROJ_GRAD, m, aug_rank(sc, m));
}

/* Compute order of stage s under 1F1B, as +m+1 (forward m) / -(m+1) (backward m). */
static int order_1f1b(int S, int M, int s, int *seq) {
    int warm = S - s - 1 < M ? S - s - 1 : M, n = 0;
    for (int m = 0; m < warm; m++) seq[n++] = m + 1;
    for (int k = 0; k < M - warm; k++) {
        seq[n++] = warm + k + 1;
        seq[n++] = -(k + 1);
    }
    for (int k = M - warm; k < M; k++) seq[n++] = -(k + 1);
    return n;
}

int schedule_1f1b(Schedule *sc, int S, int M, int A, const int *stage_has_conn) {
    if (schedule_init(sc, S, M, A, stage_has_conn)) return -1;
    int *seq = xmalloc(2 * M * sizeof(int));
    for (int s = 0; s < S; s++) {
        int n = order_1f1b(S, M, s, seq);
        for (int i = 0; i < n; i++) {
            if (seq[i] > 0)
                stage_forward(sc, s, seq[i] - 1);
            else
                stage_backward(sc, s, -seq[i] - 1);
        }
    }
    /* Augment ranks mirror the lowest connected stage: it needs projections
     * first in forward and answers last in backward. Each forward is moved
     * one place earlier (ahead of the backward before it) so the projection
     * is ready when the stage turns from a backward to the next forward,
     * instead of the stage waiting for the augment rank's accumulation. */
    int lo = -1;
    for (int s = S - 1; s >= 0; s--)
        if (sc->has_conn[s]) lo = s;
    if (lo >= 0) {
        int n = order_1f1b(S, M, lo, seq);
        for (int i = 0; i + 1 < n; i++)
            if (seq[i] < 0 && seq[i + 1] > 0) {
                int t = seq[i];
                seq[i] = seq[i + 1], seq[i + 1] = t;
                i++;
            }
        for (int i = 0; i < n; i++) {
            int m = (seq[i] > 0 ? seq[i] : -seq[i]) - 1, r = aug_rank(sc, m);
            if (seq[i] > 0) {
                schedule_push(sc, r, ACT_AUG_FWD, m, -1);
                for (int s = 0; s < S; s++) /* lowest stage first: it forwards first */
                    if (sc->has_conn[s]) schedule_push(sc, r, ACT_SEND_PROJ, m, s);
            } else {
                for (int s = S - 1; s >= 0; s--) /* highest stage first: it backwards first */
                    if (sc->has_conn[s]) schedule_push(sc, r, ACT_RECV_PROJ_GRAD, m, s);
                schedule_push(sc, r, ACT_AUG_ACCUM, m, -1);
            }
        }
    }
    free(seq);
    return 0;
}

/* ---------------------------------------------------------- validation */

/* Is kind k, with this peer and micro-batch, a legal action on rank r? */
static int check_action(const Schedule *sc, int r, const Action *a, char *err, size_t n) {
    char who[48], what[64];
    schedule_rank_name(sc, r, who, sizeof who);
    action_format(a, what, sizeof what);
    int S = sc->S, anchor = r < S, want = -2; /* -2: any stage with a connection */
    if ((unsigned)a->kind >= ACT_N_KINDS) return fail(err, n, "%s: unknown action kind %d", who, (int)a->kind);
    if (a->mb < 0 || a->mb >= sc->M)
        return fail(err, n, "%s: %s: micro-batch out of range 0..%d", who, what, sc->M - 1);
    if (anchor != (a->kind < ACT_AUG_FWD))
        return fail(err, n, "%s: %s is an action of %s ranks", who, what, anchor ? "augment" : "anchor");
    if (!anchor && a->mb % sc->A != r - S)
        return fail(err, n, "%s: %s: micro-batch %d belongs to augment %d", who, what, a->mb, a->mb % sc->A);
    switch (a->kind) {
    case ACT_RECV_ACT: case ACT_SEND_GRAD: want = r > 0 ? r - 1 : -3; break;
    case ACT_SEND_ACT: case ACT_RECV_GRAD: want = r < S - 1 ? r + 1 : -3; break;
    case ACT_RECV_PROJ: case ACT_SEND_PROJ_GRAD: want = sc->has_conn[r] ? aug_rank(sc, a->mb) : -4; break;
    case ACT_SEND_PROJ: case ACT_RECV_PROJ_GRAD: want = -2; break;
    default: want = -1; /* compute */
    }
    if (want == -3) return fail(err, n, "%s: %s: no such neighbour stage", who, what);
    if (want == -4) return fail(err, n, "%s: %s: this stage owns no connection", who, what);
    if (want == -2) {
        if (a->peer < 0 || a->peer >= S || !sc->has_conn[a->peer])
            return fail(err, n, "%s: %s: peer is not a stage with a connection", who, what);
    } else if (a->peer != want) {
        return fail(err, n, "%s: %s: peer should be %d", who, what, want);
    }
    return 0;
}

/* For one rank: how often each (kind, mb[, peer stage]) occurs and where it
 * first occurs. Index: (kind * M + mb) * (S + 1) + (peer stage or S). */
typedef struct {
    int *count, *pos;
    int M, S;
} Occ;

static int occ_index(const Occ *o, ActionKind k, int mb, int peer_stage) {
    return ((int)k * o->M + mb) * (o->S + 1) + (peer_stage < 0 ? o->S : peer_stage);
}

static void occ_fill(Occ *o, const Schedule *sc, int r) {
    size_t sz = (size_t)ACT_N_KINDS * sc->M * (sc->S + 1);
    memset(o->count, 0, sz * sizeof(int));
    for (size_t i = 0; i < sz; i++) o->pos[i] = -1;
    for (int i = 0; i < sc->n_actions[r]; i++) {
        const Action *a = &sc->actions[r][i];
        /* the peer stage only distinguishes an augment rank's per-stage messages */
        int ps = (a->kind == ACT_SEND_PROJ || a->kind == ACT_RECV_PROJ_GRAD) ? a->peer : -1;
        int j = occ_index(o, a->kind, a->mb, ps);
        if (o->count[j]++ == 0) o->pos[j] = i;
    }
}

static int expect_count(const Schedule *sc, const Occ *o, int r, ActionKind k, int mb, int ps, int want, char *err,
                        size_t n) {
    int got = o->count[occ_index(o, k, mb, ps)];
    if (got == want) return 0;
    char who[48], what[64];
    schedule_rank_name(sc, r, who, sizeof who);
    int is_send;
    if (ps >= 0 || msg_of(k, &is_send) < 0) { /* compute, or an augment rank's message to stage ps */
        Action a = {k, mb, ps};
        action_format(&a, what, sizeof what);
    } else {
        snprintf(what, sizeof what, "%s(m=%d)", action_kind_name(k), mb);
    }
    return fail(err, n, "%s: %s appears %d times, expected %d", who, what, got, want);
}

/* Action (k1, mb, ps1) must come before (k2, mb, ps2) on rank r (both present). */
static int expect_before(const Schedule *sc, const Occ *o, int r, ActionKind k1, int ps1, ActionKind k2, int ps2,
                         int mb, char *err, size_t n) {
    int p1 = o->pos[occ_index(o, k1, mb, ps1)], p2 = o->pos[occ_index(o, k2, mb, ps2)];
    if (p1 < 0 || p2 < 0 || p1 < p2) return 0;
    char who[48], w1[64], w2[64];
    schedule_rank_name(sc, r, who, sizeof who);
    action_format(&sc->actions[r][p1], w1, sizeof w1);
    action_format(&sc->actions[r][p2], w2, sizeof w2);
    return fail(err, n, "%s: %s (action %d) must come before %s (action %d)", who, w1, p1, w2, p2);
}

static int validate_rank(const Schedule *sc, Occ *o, int r, char *err, size_t n) {
    int S = sc->S;
    occ_fill(o, sc, r);
    for (int m = 0; m < sc->M; m++) {
        if (r < S) {
            int c = sc->has_conn[r], up = r < S - 1, down = r > 0;
            if (expect_count(sc, o, r, ACT_FWD, m, -1, 1, err, n) || expect_count(sc, o, r, ACT_BWD, m, -1, 1, err, n) ||
                expect_count(sc, o, r, ACT_RECV_ACT, m, -1, down, err, n) ||
                expect_count(sc, o, r, ACT_SEND_ACT, m, -1, up, err, n) ||
                expect_count(sc, o, r, ACT_RECV_GRAD, m, -1, up, err, n) ||
                expect_count(sc, o, r, ACT_SEND_GRAD, m, -1, down, err, n) ||
                expect_count(sc, o, r, ACT_RECV_PROJ, m, -1, c, err, n) ||
                expect_count(sc, o, r, ACT_SEND_PROJ_GRAD, m, -1, c, err, n))
                return -1;
            /* data dependencies: what a compute action needs, and what it produces */
            if (expect_before(sc, o, r, ACT_RECV_ACT, -1, ACT_FWD, -1, m, err, n) ||
                expect_before(sc, o, r, ACT_RECV_PROJ, -1, ACT_FWD, -1, m, err, n) ||
                expect_before(sc, o, r, ACT_FWD, -1, ACT_SEND_ACT, -1, m, err, n) ||
                expect_before(sc, o, r, ACT_FWD, -1, ACT_BWD, -1, m, err, n) ||
                expect_before(sc, o, r, ACT_RECV_GRAD, -1, ACT_BWD, -1, m, err, n) ||
                expect_before(sc, o, r, ACT_BWD, -1, ACT_SEND_GRAD, -1, m, err, n) ||
                expect_before(sc, o, r, ACT_BWD, -1, ACT_SEND_PROJ_GRAD, -1, m, err, n))
                return -1;
        } else {
            /* an augment rank owns its share of micro-batches; with no
             * connection anywhere there is nothing for it to do */
            int any = 0;
            for (int s = 0; s < S; s++) any |= sc->has_conn[s];
            int mine = any && m % sc->A == r - S;
            if (expect_count(sc, o, r, ACT_AUG_FWD, m, -1, mine, err, n) ||
                expect_count(sc, o, r, ACT_AUG_ACCUM, m, -1, mine, err, n))
                return -1;
            for (int s = 0; s < S; s++) {
                int want = mine && sc->has_conn[s];
                if (expect_count(sc, o, r, ACT_SEND_PROJ, m, s, want, err, n) ||
                    expect_count(sc, o, r, ACT_RECV_PROJ_GRAD, m, s, want, err, n) ||
                    expect_before(sc, o, r, ACT_AUG_FWD, -1, ACT_SEND_PROJ, s, m, err, n) ||
                    expect_before(sc, o, r, ACT_RECV_PROJ_GRAD, s, ACT_AUG_ACCUM, -1, m, err, n))
                    return -1;
            }
            if (expect_before(sc, o, r, ACT_AUG_FWD, -1, ACT_AUG_ACCUM, -1, m, err, n)) return -1;
        }
    }
    return 0;
}

/* Message table: one slot per (src, dst, message kind, micro-batch). */
static int msg_slot(const Schedule *sc, int src, int dst, int msg, int mb) {
    return ((src * sc->n_ranks + dst) * MSG_N + msg) * sc->M + mb;
}

/* Slot of a communication action on rank r, or -1 for compute. */
static int action_slot(const Schedule *sc, int r, const Action *a, int *is_send) {
    int msg = msg_of(a->kind, is_send);
    if (msg < 0) return -1;
    return *is_send ? msg_slot(sc, r, a->peer, msg, a->mb) : msg_slot(sc, a->peer, r, msg, a->mb);
}

static size_t n_slots(const Schedule *sc) { return (size_t)sc->n_ranks * sc->n_ranks * MSG_N * sc->M; }

static int validate_matching(const Schedule *sc, char *err, size_t n) {
    size_t ns = n_slots(sc);
    int *sends = xcalloc(ns, sizeof(int)), *recvs = xcalloc(ns, sizeof(int));
    for (int r = 0; r < sc->n_ranks; r++)
        for (int i = 0; i < sc->n_actions[r]; i++) {
            int is_send, k = action_slot(sc, r, &sc->actions[r][i], &is_send);
            if (k >= 0) (is_send ? sends : recvs)[k]++;
        }
    int rc = 0;
    for (int r = 0; r < sc->n_ranks && !rc; r++)
        for (int i = 0; i < sc->n_actions[r] && !rc; i++) {
            const Action *a = &sc->actions[r][i];
            int is_send, k = action_slot(sc, r, a, &is_send);
            if (k < 0 || (sends[k] == 1 && recvs[k] == 1)) continue;
            char who[48], what[64];
            schedule_rank_name(sc, r, who, sizeof who);
            action_format(a, what, sizeof what);
            rc = fail(err, n, "%s: %s: %d matching send%s and %d matching receive%s, expected one each", who, what,
                      sends[k], sends[k] == 1 ? "" : "s", recvs[k], recvs[k] == 1 ? "" : "s");
        }
    free(sends);
    free(recvs);
    return rc;
}

/* Order of the checks: legal actions first (so peers index the message
 * table safely), then send/receive matching (its message names the send
 * that has no receive, the most useful report for a dropped receive), then
 * per-rank counts and data dependencies. */
int schedule_validate(const Schedule *sc, char *err, size_t n) {
    if (err && n) err[0] = 0;
    for (int r = 0; r < sc->n_ranks; r++)
        for (int i = 0; i < sc->n_actions[r]; i++)
            if (check_action(sc, r, &sc->actions[r][i], err, n)) return -1;
    if (validate_matching(sc, err, n)) return -1;
    Occ o = {.M = sc->M, .S = sc->S};
    size_t sz = (size_t)ACT_N_KINDS * sc->M * (sc->S + 1);
    o.count = xmalloc(sz * sizeof(int));
    o.pos = xmalloc(sz * sizeof(int));
    int rc = 0;
    for (int r = 0; r < sc->n_ranks && !rc; r++) rc = validate_rank(sc, &o, r, err, n);
    free(o.count);
    free(o.pos);
    return rc;
}

/* ------------------------------------------------------------- dry run */

static int action_cost(const Action *a, const SchedCost *c) {
    switch (a->kind) {
    case ACT_FWD: return c->fwd;
    case ACT_BWD: return c->bwd;
    case ACT_AUG_FWD: return c->aug_fwd;
    case ACT_AUG_ACCUM: return c->aug_accum;
    default: return 0;
    }
}

void sched_trace_free(SchedTrace *tr) {
    if (tr->start)
        for (int r = 0; r < tr->n_ranks; r++) free(tr->start[r]);
    free(tr->start);
    free(tr->busy);
    memset(tr, 0, sizeof *tr);
}

/* Append to err at its current end (the deadlock report lists every rank). */
static void append(char *err, size_t n, const char *fmt, ...) CALM_PRINTF(3, 4);
static void append(char *err, size_t n, const char *fmt, ...) {
    if (!err || !n) return;
    size_t len = strlen(err);
    if (len + 1 >= n) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err + len, n - len, fmt, ap);
    va_end(ap);
}

/* Each rank runs its list in order with its own clock. Compute advances the
 * clock by its time. Eager: a send posts its message stamped with the
 * sender's clock plus the transfer time and goes on; a receive waits until
 * the message is posted, then moves its clock to at least the stamp.
 * Rendezvous: send and receive complete together, when both ranks have
 * reached them, plus the transfer time. Messages match by slot, so the
 * result does not depend on the order ranks are visited in. start[r][i],
 * busy[r], *t0 and *t_end as in SchedReplay. */
static int replay(const Schedule *sc, const SchedTimer *tm, SendMode mode, double **start, double *busy, double *t0,
                  double *t_end, char *err, size_t n) {
    if (err && n) err[0] = 0;
    /* peers index the message table: refuse illegal actions before running */
    for (int r = 0; r < sc->n_ranks; r++)
        for (int i = 0; i < sc->n_actions[r]; i++)
            if (check_action(sc, r, &sc->actions[r][i], err, n)) return -1;
    int R = sc->n_ranks;
    size_t ns = n_slots(sc);
    int *posted = xcalloc(ns, sizeof(int)), *taken = xcalloc(ns, sizeof(int)), *pc = xcalloc(R, sizeof(int));
    double *stamp = xcalloc(ns, sizeof(double)), *clock = xcalloc(R, sizeof(double));
    *t0 = -1;
    *t_end = 0;
    for (int progress = 1; progress;) {
        progress = 0;
        for (int r = 0; r < R; r++) {
            while (pc[r] < sc->n_actions[r]) {
                const Action *a = &sc->actions[r][pc[r]];
                int is_send, k = action_slot(sc, r, a, &is_send);
                if (k < 0) { /* compute */
                    double c = tm->compute(tm->ctx, r, a);
                    start[r][pc[r]] = clock[r];
                    if (c > 0) {
                        if (*t0 < 0 || clock[r] < *t0) *t0 = clock[r];
                        if (clock[r] + c > *t_end) *t_end = clock[r] + c;
                    }
                    clock[r] += c;
                    busy[r] += c;
                } else if (mode == SEND_EAGER) {
                    if (is_send) {
                        posted[k]++;
                        stamp[k] = clock[r] + (tm->transfer ? tm->transfer(tm->ctx, r, a) : 0);
                    } else {
                        if (taken[k] >= posted[k]) break; /* blocked */
                        taken[k]++;
                        if (stamp[k] > clock[r]) clock[r] = stamp[k];
                    }
                    start[r][pc[r]] = clock[r];
                } else { /* rendezvous: the peer must stand at the matching action */
                    int p = a->peer;
                    if (p < 0 || p >= R || pc[p] >= sc->n_actions[p]) break;
                    int p_send, kp = action_slot(sc, p, &sc->actions[p][pc[p]], &p_send);
                    if (kp != k || p_send == is_send) break;
                    const Action *snd = is_send ? a : &sc->actions[p][pc[p]];
                    double t = (clock[r] > clock[p] ? clock[r] : clock[p]) +
                               (tm->transfer ? tm->transfer(tm->ctx, is_send ? r : p, snd) : 0);
                    clock[r] = clock[p] = t;
                    start[r][pc[r]] = start[p][pc[p]] = t;
                    pc[p]++;
                }
                pc[r]++;
                progress = 1;
            }
        }
    }

    int rc = 0;
    for (int r = 0; r < R; r++) {
        if (pc[r] == sc->n_actions[r]) continue;
        char who[48], what[64];
        schedule_rank_name(sc, r, who, sizeof who);
        action_format(&sc->actions[r][pc[r]], what, sizeof what);
        if (!rc) append(err, n, "deadlock:");
        append(err, n, " %s stuck at %s (action %d);", who, what, pc[r]);
        rc = -1;
    }
    /* a message sent but never received is a leak in MPI and a bug here */
    for (int r = 0; r < R && !rc; r++)
        for (int i = 0; i < sc->n_actions[r] && !rc; i++) {
            int is_send, k = action_slot(sc, r, &sc->actions[r][i], &is_send);
            if (k < 0 || !is_send || mode != SEND_EAGER || taken[k] >= posted[k]) continue;
            char who[48], what[64];
            schedule_rank_name(sc, r, who, sizeof who);
            action_format(&sc->actions[r][i], what, sizeof what);
            rc = fail(err, n, "%s: %s is never received", who, what);
        }
    if (*t0 < 0) *t0 = 0;
    free(posted);
    free(taken);
    free(stamp);
    free(pc);
    free(clock);
    return rc;
}

static double unit_time(void *ctx, int r, const Action *a) {
    (void)r;
    return action_cost(a, ctx);
}

int schedule_dry_run(const Schedule *sc, const SchedCost *cost, SendMode mode, SchedTrace *trace, char *err,
                     size_t n) {
    static const SchedCost unit = {1, 1, 1, 1};
    SchedTimer tm = {unit_time, NULL, (void *)(cost ? cost : &unit)};
    SchedReplay rp;
    int rc = schedule_replay(sc, &tm, mode, &rp, err, n);
    if (rc || !trace) {
        sched_replay_free(&rp);
        return rc;
    }
    /* integer costs add up exactly in double */
    SchedTrace tr = {.n_ranks = rp.n_ranks, .t0 = (int)rp.t0, .t_end = (int)rp.t_end};
    tr.start = xcalloc(tr.n_ranks, sizeof(int *));
    tr.busy = xcalloc(tr.n_ranks, sizeof(int));
    for (int r = 0; r < tr.n_ranks; r++) {
        tr.start[r] = xmalloc((sc->n_actions[r] + 1) * sizeof(int));
        for (int i = 0; i < sc->n_actions[r]; i++) tr.start[r][i] = (int)rp.start[r][i];
        tr.busy[r] = (int)rp.busy[r];
    }
    sched_replay_free(&rp);
    *trace = tr;
    return 0;
}

int schedule_replay(const Schedule *sc, const SchedTimer *tm, SendMode mode, SchedReplay *out, char *err, size_t n) {
    SchedReplay rp = {.n_ranks = sc->n_ranks};
    rp.start = xcalloc(sc->n_ranks, sizeof(double *));
    rp.busy = xcalloc(sc->n_ranks, sizeof(double));
    for (int r = 0; r < sc->n_ranks; r++) rp.start[r] = xcalloc(sc->n_actions[r] + 1, sizeof(double));
    int rc = replay(sc, tm, mode, rp.start, rp.busy, &rp.t0, &rp.t_end, err, n);
    if (rc) sched_replay_free(&rp);
    *out = rp;
    return rc;
}

void sched_replay_free(SchedReplay *rp) {
    if (rp->start)
        for (int r = 0; r < rp->n_ranks; r++) free(rp->start[r]);
    free(rp->start);
    free(rp->busy);
    memset(rp, 0, sizeof *rp);
}

double schedule_bubble_fraction(const Schedule *sc, const SchedCost *cost, double *frac) {
    SchedTrace tr;
    if (schedule_dry_run(sc, cost, SEND_EAGER, &tr, NULL, 0)) return -1;
    double span = tr.t_end - tr.t0, worst = 0;
    for (int r = 0; r < sc->n_ranks; r++) {
        double f = span > 0 ? 1.0 - tr.busy[r] / span : 0;
        if (frac) frac[r] = f;
        if (r < sc->S && f > worst) worst = f;
    }
    sched_trace_free(&tr);
    return worst;
}

