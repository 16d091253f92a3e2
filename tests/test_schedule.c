/* test_schedule.c: the 1F1B pipeline schedule as data (mpi/schedule.h), no MPI.
 * Every generated schedule must validate, run to the end in a dry run, hold
 * at most S-s micro-batches on stage s and have the textbook bubble; every
 * hand-broken schedule must be refused with a message naming rank and action. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpi/schedule.h"
#include "testutil.h"

#define assert_contains(text, phrase)                                                                          \
    do {                                                                                                       \
        if (!strstr((text), (phrase))) fail_msg("\"%s\" does not contain \"%s\"", (text), (phrase));           \
    } while (0)

/* Connection masks over S stages, as bits: none, first, last, all, even, odd. */
#define N_MASKS 6
static unsigned mask_of(int which, int S) {
    unsigned all = (1u << S) - 1;
    switch (which) {
    case 0: return 0;
    case 1: return 1u;
    case 2: return 1u << (S - 1);
    case 3: return all;
    case 4: return 0x55555555u & all;
    default: return 0xAAAAAAAAu & all;
    }
}

static void conn_array(unsigned mask, int S, int *conn) {
    for (int s = 0; s < S; s++) conn[s] = (mask >> s) & 1;
}

static int count_kind(const Schedule *sc, int r, ActionKind k) {
    int c = 0;
    for (int i = 0; i < sc->n_actions[r]; i++) c += sc->actions[r][i].kind == k;
    return c;
}

static int find(const Schedule *sc, int r, ActionKind k, int mb) {
    for (int i = 0; i < sc->n_actions[r]; i++)
        if (sc->actions[r][i].kind == k && sc->actions[r][i].mb == mb) return i;
    return -1;
}

static void remove_at(Schedule *sc, int r, int i) {
    assert_true(i >= 0 && i < sc->n_actions[r]);
    memmove(&sc->actions[r][i], &sc->actions[r][i + 1], (sc->n_actions[r] - i - 1) * sizeof(Action));
    sc->n_actions[r]--;
}

/* Move action i of rank r to position j (shifting what lies between). */
static void move_to(Schedule *sc, int r, int i, int j) {
    Action a = sc->actions[r][i];
    remove_at(sc, r, i);
    memmove(&sc->actions[r][j + 1], &sc->actions[r][j], (sc->n_actions[r] - j) * sizeof(Action));
    sc->actions[r][j] = a;
    sc->n_actions[r]++;
}

/* Largest number of micro-batches forwarded and not yet backwarded on rank r. */
static int max_in_flight(const Schedule *sc, int r, ActionKind f, ActionKind b) {
    int cur = 0, mx = 0;
    for (int i = 0; i < sc->n_actions[r]; i++) {
        if (sc->actions[r][i].kind == f && ++cur > mx) mx = cur;
        if (sc->actions[r][i].kind == b) cur--;
    }
    return mx;
}

/* Independent of schedule_validate: the properties the issue asks for. */
static void check_generated(const Schedule *sc, int S, int M, int A, unsigned mask) {
    char err[1024];
    if (schedule_validate(sc, err, sizeof err)) fail_msg("S=%d M=%d A=%d mask=%x: validate: %s", S, M, A, mask, err);
    if (schedule_dry_run(sc, NULL, SEND_EAGER, NULL, err, sizeof err))
        fail_msg("S=%d M=%d A=%d mask=%x: dry run: %s", S, M, A, mask, err);
    int lo = -1;
    for (int s = S - 1; s >= 0; s--)
        if ((mask >> s) & 1) lo = s;
    for (int s = 0; s < S; s++) {
        assert_int_equal(count_kind(sc, s, ACT_FWD), M);
        assert_int_equal(count_kind(sc, s, ACT_BWD), M);
        assert_int_equal(count_kind(sc, s, ACT_RECV_PROJ), (mask >> s) & 1 ? M : 0);
        for (int m = 0; m < M; m++) {
            int f = find(sc, s, ACT_FWD, m), b = find(sc, s, ACT_BWD, m);
            assert_true(f >= 0 && b > f);
        }
        /* 1F1B: activations of at most S-s micro-batches alive on stage s */
        int inflight = max_in_flight(sc, s, ACT_FWD, ACT_BWD), bound = S - s < M ? S - s : M;
        if (inflight != bound) fail_msg("S=%d M=%d stage %d holds %d micro-batches, want %d", S, M, s, inflight, bound);
    }
    for (int j = 0; j < A; j++) {
        int r = S + j, share = lo < 0 ? 0 : (M - j + A - 1) / A;
        assert_int_equal(count_kind(sc, r, ACT_AUG_FWD), share);
        assert_int_equal(count_kind(sc, r, ACT_AUG_ACCUM), share);
        for (int i = 0; i < sc->n_actions[r]; i++) assert_int_equal(sc->actions[r][i].mb % A, j);
        /* the augment rank runs one forward ahead of its lowest connected stage */
        if (lo >= 0) assert_true(max_in_flight(sc, r, ACT_AUG_FWD, ACT_AUG_ACCUM) <= S - lo + 1);
    }
}

static void test_sweep(void **state) {
    int conn[8];
    for (int S = 1; S <= 8; S++)
        for (int M = 1; M <= 16; M++)
            for (int A = 1; A <= 3; A++)
                for (int w = 0; w < N_MASKS; w++) {
                    unsigned mask = mask_of(w, S);
                    conn_array(mask, S, conn);
                    Schedule sc;
                    assert_int_equal(schedule_1f1b(&sc, S, M, A, conn), 0);
                    check_generated(&sc, S, M, A, mask);
                    schedule_free(&sc);
                }
}

/* With free augment ranks and no communication cost, every stage of 1F1B
 * idles (S-1)(f+b) of (M+S-1)(f+b): bubble (S-1)/(M+S-1), for f = b and
 * f != b alike. */
static void test_bubble(void **state) {
    int conn[8];
    SchedCost costs[] = {{1, 1, 0, 0}, {1, 2, 0, 0}, {2, 3, 0, 0}};
    for (int S = 1; S <= 8; S++)
        for (int M = 1; M <= 16; M++)
            for (int w = 0; w < N_MASKS; w++) {
                conn_array(mask_of(w, S), S, conn);
                Schedule sc;
                assert_int_equal(schedule_1f1b(&sc, S, M, 1, conn), 0);
                double frac[16], want = (double)(S - 1) / (M + S - 1);
                for (size_t c = 0; c < sizeof costs / sizeof costs[0]; c++) {
                    double b = schedule_bubble_fraction(&sc, &costs[c], frac);
                    if (b < want - 1e-12 || b > want + 1e-12)
                        fail_msg("S=%d M=%d f=%d b=%d: bubble %.6f, want %.6f", S, M, costs[c].fwd, costs[c].bwd, b,
                                 want);
                    for (int s = 0; s < S; s++) assert_true(frac[s] > want - 1e-12 && frac[s] < want + 1e-12);
                }
                /* unit-cost augment ranks (A=1, the slowest case) cost the step
                 * at most their first forward and their last accumulation */
                SchedTrace tr;
                assert_int_equal(schedule_dry_run(&sc, NULL, SEND_EAGER, &tr, NULL, 0), 0);
                int ideal = 2 * (M + S - 1) + (mask_of(w, S) ? 2 : 0);
                if (tr.t_end - tr.t0 > ideal)
                    fail_msg("S=%d M=%d mask=%x: unit-cost step takes %d, want <= %d", S, M, mask_of(w, S),
                             tr.t_end - tr.t0, ideal);
                sched_trace_free(&tr);
                schedule_free(&sc);
            }
}

/* A send and its receive carry the same tag; different messages differ. */
static void test_tags(void **state) {
    Schedule sc;
    int conn[3] = {1, 0, 1};
    assert_int_equal(schedule_1f1b(&sc, 3, 4, 2, conn), 0);
    Action s = sc.actions[0][find(&sc, 0, ACT_SEND_ACT, 2)], r = sc.actions[1][find(&sc, 1, ACT_RECV_ACT, 2)];
    assert_int_equal(schedule_tag(&s), schedule_tag(&r));
    Action g = sc.actions[1][find(&sc, 1, ACT_SEND_GRAD, 2)];
    assert_int_not_equal(schedule_tag(&g), schedule_tag(&s));
    Action s3 = sc.actions[0][find(&sc, 0, ACT_SEND_ACT, 3)];
    assert_int_not_equal(schedule_tag(&s3), schedule_tag(&s));
    Action f = sc.actions[0][find(&sc, 0, ACT_FWD, 0)];
    assert_int_equal(schedule_tag(&f), -1);
    schedule_free(&sc);
    /* (message kind, micro-batch) -> tag is one to one, and small: MPI
     * guarantees tags up to 32767 only */
    static int seen[4 * 64];
    memset(seen, 0, sizeof seen);
    ActionKind sends[4] = {ACT_SEND_ACT, ACT_SEND_GRAD, ACT_SEND_PROJ, ACT_SEND_PROJ_GRAD};
    for (int k = 0; k < 4; k++)
        for (int m = 0; m < 64; m++) {
            Action a = {sends[k], m, 0};
            int t = schedule_tag(&a);
            assert_true(t >= 0 && t < 4 * 64);
            assert_int_equal(seen[t]++, 0);
        }
}

/* A missing receive: validate names the rank and the action; the dry run
 * finds the message nobody receives. */
static void test_removed_receive(void **state) {
    Schedule sc;
    char err[1024];
    int conn[3] = {0, 1, 0};
    assert_int_equal(schedule_1f1b(&sc, 3, 4, 1, conn), 0);
    remove_at(&sc, 1, find(&sc, 1, ACT_RECV_ACT, 2));
    assert_int_equal(schedule_validate(&sc, err, sizeof err), -1);
    assert_contains(err, "rank 0 (stage 0): SEND_ACT(m=2, to 1): 1 matching send and 0 matching receives");
    assert_int_equal(schedule_dry_run(&sc, NULL, SEND_EAGER, NULL, err, sizeof err), -1);
    assert_contains(err, "rank 0 (stage 0): SEND_ACT(m=2, to 1) is never received");
    schedule_free(&sc);

    /* a removed projection receive on the connected stage */
    assert_int_equal(schedule_1f1b(&sc, 3, 4, 2, conn), 0);
    remove_at(&sc, 1, find(&sc, 1, ACT_RECV_PROJ, 3));
    assert_int_equal(schedule_validate(&sc, err, sizeof err), -1);
    assert_contains(err, "rank 4 (augment 1): SEND_PROJ(m=3, to 1): 1 matching send and 0 matching receives");
    schedule_free(&sc);

    /* a send and its receive both dropped: matching is silent, the counts are not */
    assert_int_equal(schedule_1f1b(&sc, 3, 4, 1, conn), 0);
    remove_at(&sc, 2, find(&sc, 2, ACT_SEND_GRAD, 1));
    remove_at(&sc, 1, find(&sc, 1, ACT_RECV_GRAD, 1));
    assert_int_equal(schedule_validate(&sc, err, sizeof err), -1);
    assert_contains(err, "rank 1 (stage 1): RECV_GRAD(m=1) appears 0 times, expected 1");
    schedule_free(&sc);

    /* a receive posted twice */
    assert_int_equal(schedule_1f1b(&sc, 3, 4, 1, conn), 0);
    schedule_push(&sc, 2, ACT_RECV_ACT, 0, 1);
    assert_int_equal(schedule_validate(&sc, err, sizeof err), -1);
    assert_contains(err, "rank 1 (stage 1): SEND_ACT(m=0, to 2): 1 matching send and 2 matching receives");
    schedule_free(&sc);
}

/* Orders that are locally sound but deadlock together: only the dry run
 * can catch them, and it must name every stuck rank and its action. */
static void test_swapped_order_deadlock(void **state) {
    Schedule sc;
    char err[1024];
    /* stage 0 waits for the gradient of m=0 before it sends m=0's activations */
    assert_int_equal(schedule_1f1b(&sc, 2, 4, 1, NULL), 0);
    move_to(&sc, 0, find(&sc, 0, ACT_RECV_GRAD, 0), find(&sc, 0, ACT_SEND_ACT, 0));
    assert_int_equal(schedule_validate(&sc, err, sizeof err), 0);
    assert_int_equal(schedule_dry_run(&sc, NULL, SEND_EAGER, NULL, err, sizeof err), -1);
    assert_contains(err, "deadlock");
    assert_contains(err, "rank 0 (stage 0) stuck at RECV_GRAD(m=0, from 1)");
    assert_contains(err, "rank 1 (stage 1) stuck at RECV_ACT(m=0, from 0)");
    assert_int_equal(schedule_bubble_fraction(&sc, NULL, NULL), -1);
    schedule_free(&sc);

    /* the augment rank waits for m=0's projection gradient before projecting
     * m=1, but stage 0 (two warm-up forwards) needs m=1 before backward 0 */
    int conn[2] = {1, 0};
    assert_int_equal(schedule_1f1b(&sc, 2, 2, 1, conn), 0);
    int r = 2;
    move_to(&sc, r, find(&sc, r, ACT_AUG_FWD, 1), sc.n_actions[r] - 2); /* ... RECV_PROJ_GRAD(1), AUG_ACCUM(1) */
    move_to(&sc, r, find(&sc, r, ACT_SEND_PROJ, 1), sc.n_actions[r] - 2);
    /* now: AUG_FWD 0, SEND_PROJ 0, RECV_PROJ_GRAD 0, AUG_ACCUM 0, AUG_FWD 1, SEND_PROJ 1, RECV_PROJ_GRAD 1, ... */
    move_to(&sc, r, find(&sc, r, ACT_RECV_PROJ_GRAD, 0), 2);
    move_to(&sc, r, find(&sc, r, ACT_AUG_ACCUM, 0), 3);
    assert_int_equal(schedule_validate(&sc, err, sizeof err), 0);
    assert_int_equal(schedule_dry_run(&sc, NULL, SEND_EAGER, NULL, err, sizeof err), -1);
    assert_contains(err, "rank 2 (augment 0) stuck at RECV_PROJ_GRAD(m=0, from 0)");
    assert_contains(err, "rank 0 (stage 0) stuck at RECV_PROJ(m=1, from 2)");
    schedule_free(&sc);
}

static void test_backward_before_forward(void **state) {
    Schedule sc;
    char err[1024];
    assert_int_equal(schedule_1f1b(&sc, 2, 3, 1, NULL), 0);
    /* the last stage runs BWD(1) before FWD(1) */
    move_to(&sc, 1, find(&sc, 1, ACT_BWD, 1), find(&sc, 1, ACT_FWD, 1));
    assert_int_equal(schedule_validate(&sc, err, sizeof err), -1);
    assert_contains(err, "rank 1 (stage 1): FWD(m=1)");
    assert_contains(err, "must come before BWD(m=1)");
    schedule_free(&sc);

    /* an augment rank accumulating before it has the gradient */
    int conn[2] = {0, 1};
    assert_int_equal(schedule_1f1b(&sc, 2, 3, 1, conn), 0);
    move_to(&sc, 2, find(&sc, 2, ACT_AUG_ACCUM, 0), find(&sc, 2, ACT_RECV_PROJ_GRAD, 0));
    assert_int_equal(schedule_validate(&sc, err, sizeof err), -1);
    assert_contains(err, "rank 2 (augment 0): RECV_PROJ_GRAD(m=0, from 1)");
    assert_contains(err, "must come before AUG_ACCUM(m=0)");
    schedule_free(&sc);
}

/* Wrong peers, wrong roles, duplicates, micro-batches on the wrong augment rank. */
static void test_malformed_actions(void **state) {
    Schedule sc;
    char err[1024];
    int conn[3] = {1, 0, 1};

    assert_int_equal(schedule_1f1b(&sc, 3, 4, 2, conn), 0);
    sc.actions[0][find(&sc, 0, ACT_SEND_ACT, 1)].peer = 2;
    assert_int_equal(schedule_validate(&sc, err, sizeof err), -1);
    assert_contains(err, "rank 0 (stage 0): SEND_ACT(m=1, to 2): peer should be 1");
    assert_int_equal(schedule_dry_run(&sc, NULL, SEND_EAGER, NULL, err, sizeof err), -1);
    assert_contains(err, "peer should be 1");
    sc.actions[0][find(&sc, 0, ACT_SEND_ACT, 1)].peer = 99; /* would index past the message table */
    assert_int_equal(schedule_dry_run(&sc, NULL, SEND_EAGER, NULL, err, sizeof err), -1);
    schedule_free(&sc);

    assert_int_equal(schedule_1f1b(&sc, 3, 4, 2, conn), 0);
    sc.actions[2][find(&sc, 2, ACT_RECV_PROJ, 1)].peer = 3; /* m=1 belongs to augment 1 = rank 4 */
    assert_int_equal(schedule_validate(&sc, err, sizeof err), -1);
    assert_contains(err, "rank 2 (stage 2): RECV_PROJ(m=1, from 3): peer should be 4");
    schedule_free(&sc);

    assert_int_equal(schedule_1f1b(&sc, 3, 4, 2, conn), 0);
    schedule_push(&sc, 3, ACT_FWD, 0, -1);
    assert_int_equal(schedule_validate(&sc, err, sizeof err), -1);
    assert_contains(err, "rank 3 (augment 0): FWD(m=0) is an action of anchor ranks");
    schedule_free(&sc);

    /* micro-batch 1 belongs to augment 1 (m mod A) */
    assert_int_equal(schedule_1f1b(&sc, 3, 4, 2, conn), 0);
    sc.actions[3][find(&sc, 3, ACT_AUG_ACCUM, 0)].mb = 1;
    assert_int_equal(schedule_validate(&sc, err, sizeof err), -1);
    assert_contains(err, "rank 3 (augment 0): AUG_ACCUM(m=1): micro-batch 1 belongs to augment 1");
    schedule_free(&sc);

    assert_int_equal(schedule_1f1b(&sc, 3, 4, 2, conn), 0);
    schedule_push(&sc, 1, ACT_FWD, 3, -1);
    assert_int_equal(schedule_validate(&sc, err, sizeof err), -1);
    assert_contains(err, "rank 1 (stage 1): FWD(m=3) appears 2 times, expected 1");
    schedule_free(&sc);

    assert_int_equal(schedule_1f1b(&sc, 3, 4, 2, conn), 0);
    schedule_push(&sc, 1, ACT_RECV_PROJ, 0, 3); /* stage 1 owns no connection */
    assert_int_equal(schedule_validate(&sc, err, sizeof err), -1);
    assert_contains(err, "rank 1 (stage 1): RECV_PROJ(m=0, from 3): this stage owns no connection");
    schedule_free(&sc);

    /* a send and receive pair both duplicated: one message per tag and micro-batch */
    assert_int_equal(schedule_1f1b(&sc, 2, 2, 1, NULL), 0);
    schedule_push(&sc, 0, ACT_SEND_ACT, 1, 1);
    schedule_push(&sc, 1, ACT_RECV_ACT, 1, 0);
    assert_int_equal(schedule_validate(&sc, err, sizeof err), -1);
    assert_contains(err, "rank 0 (stage 0): SEND_ACT(m=1, to 1): 2 matching sends and 2 matching receives");
    schedule_free(&sc);

    assert_int_equal(schedule_1f1b(&sc, 2, 2, 1, NULL), -0);
    sc.actions[1][0].mb = 7;
    assert_int_equal(schedule_validate(&sc, err, sizeof err), -1);
    assert_contains(err, "micro-batch out of range 0..1");
    schedule_free(&sc);

    assert_int_equal(schedule_1f1b(&sc, 0, 2, 1, NULL), -1);
    assert_int_equal(schedule_1f1b(&sc, 2, 2, 0, NULL), -1);
}

/* The generated 1F1B relies on non-blocking sends: with synchronous sends
 * neighbouring stages both send in the steady state and wait for each other.
 * This pins down the executor's contract (MPI_Isend, never MPI_Ssend/MPI_Send
 * of large buffers) and shows the rendezvous simulation works. */
static void test_rendezvous(void **state) {
    Schedule sc;
    char err[1024];
    /* one stage without connections, or one micro-batch: no two sends face each other */
    assert_int_equal(schedule_1f1b(&sc, 1, 8, 1, NULL), 0);
    assert_int_equal(schedule_dry_run(&sc, NULL, SEND_RENDEZVOUS, NULL, err, sizeof err), 0);
    schedule_free(&sc);
    /* ... and then a send waiting for its receiver costs nothing extra:
     * both simulations take the same time */
    SchedTrace te, tr;
    assert_int_equal(schedule_1f1b(&sc, 4, 1, 1, (int[]){1, 0, 0, 1}), 0);
    if (schedule_dry_run(&sc, NULL, SEND_RENDEZVOUS, &tr, err, sizeof err)) fail_msg("%s", err);
    assert_int_equal(schedule_dry_run(&sc, NULL, SEND_EAGER, &te, err, sizeof err), 0);
    assert_int_equal(tr.t_end, te.t_end);
    assert_int_equal(te.t_end, 2 * 4 + 2);
    sched_trace_free(&tr);
    sched_trace_free(&te);
    schedule_free(&sc);
    /* the augment rank projects one micro-batch ahead, so it sends m=1 while
     * the stage sends m=0's gradient back */
    assert_int_equal(schedule_1f1b(&sc, 1, 8, 1, (int[]){1}), 0);
    assert_int_equal(schedule_dry_run(&sc, NULL, SEND_RENDEZVOUS, NULL, err, sizeof err), -1);
    assert_contains(err, "rank 0 (stage 0) stuck at SEND_PROJ_GRAD(m=0, to 1)");
    assert_contains(err, "rank 1 (augment 0) stuck at SEND_PROJ(m=1, to 0)");
    schedule_free(&sc);
    /* steady state: stage 0 sends activations while stage 1 sends a gradient */
    assert_int_equal(schedule_1f1b(&sc, 2, 4, 1, NULL), 0);
    assert_int_equal(schedule_dry_run(&sc, NULL, SEND_RENDEZVOUS, NULL, err, sizeof err), -1);
    assert_contains(err, "rank 0 (stage 0) stuck at SEND_ACT(m=1, to 1)");
    assert_contains(err, "rank 1 (stage 1) stuck at SEND_GRAD(m=0, to 0)");
    schedule_free(&sc);
}

static char *grid_of(const Schedule *sc) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    schedule_print_grid(sc, f);
    fclose(f);
    return buf;
}

static void test_grid(void **state) {
    Schedule sc;
    assert_int_equal(schedule_1f1b(&sc, 4, 8, 1, (int[]){0, 1, 0, 1}), 0);
    char *g = grid_of(&sc);
    if (getenv("CALM_PRINT_GRID")) fputs(g, stdout);
    /* stage 0: four forwards back to back, then idle until the first gradient */
    assert_contains(g, "stage 0    F0 F1 F2 F3  .  .  . B0 F4");
    /* the last stage alternates from its first micro-batch */
    assert_contains(g, "stage 3*    .  .  . F0 B0 F1 B1 F2 B2");
    /* the augment rank projects one micro-batch ahead of stage 1, its lowest connected stage */
    assert_contains(g, "aug 0      A0 A1 A2 A3  .  .  . G0 A4 G1");
    assert_contains(g, "steps 22; anchor bubble 0.273, (S-1)/(M+S-1) = 0.273");
    free(g);
    /* a broken schedule prints the reason instead of a grid */
    move_to(&sc, 0, find(&sc, 0, ACT_RECV_GRAD, 0), 0);
    g = grid_of(&sc);
    assert_contains(g, "does not run: deadlock");
    free(g);
    schedule_free(&sc);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sweep),
        cmocka_unit_test(test_bubble),
        cmocka_unit_test(test_tags),
        cmocka_unit_test(test_removed_receive),
        cmocka_unit_test(test_swapped_order_deadlock),
        cmocka_unit_test(test_backward_before_forward),
        cmocka_unit_test(test_malformed_actions),
        cmocka_unit_test(test_rendezvous),
        cmocka_unit_test(test_grid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
