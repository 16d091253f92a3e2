/* test_layout.c: rank roles and the balanced split of the anchor into
 * pipeline stages (mpi/layout.h), no MPI. The split must be optimal (checked
 * against brute force), every stage non-empty, and a bad layout refused with
 * a message that names what to change. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/common.h"
#include "mpi/layout.h"
#include "src/rng.h"
#include "testutil.h"

#define assert_contains(text, phrase)                                                                          \
    do {                                                                                                       \
        if (!strstr((text), (phrase))) fail_msg("\"%s\" does not contain \"%s\"", (text), (phrase));           \
    } while (0)

static void test_bad_layouts(void **state) {
    assert_int_equal(layout_check(6, 3, 1, 12), -1);
    assert_error_contains("world size 6 is not a multiple of anchor stages + augment ranks = 3 + 1 = 4");
    assert_int_equal(layout_check(4, 0, 4, 12), -1);
    assert_error_contains("--anchor-stages 0");
    assert_int_equal(layout_check(4, 4, 0, 12), -1);
    assert_error_contains("--augment-ranks 0: need at least 1 augment rank");
    assert_int_equal(layout_check(10, 9, 1, 8), -1);
    assert_error_contains("--anchor-stages 9 is more than the anchor's 8 layers");
    assert_int_equal(layout_check(0, 1, 1, 8), -1);
    assert_error_contains("world size 0");
    /* good ones */
    assert_int_equal(layout_check(2, 1, 1, 1), 0);
    assert_int_equal(layout_check(12, 2, 1, 4), 0);
    assert_int_equal(layout_check(18, 4, 2, 4), 0);

    /* layout_plan refuses the same, and connections outside the anchor */
    double cost[4] = {1, 1, 1, 1};
    Layout lo;
    assert_int_equal(layout_plan(&lo, 5, 2, 1, 4, cost, 0, 0, NULL), -1);
    assert_error_contains("world size 5");
    ComposeConfig cc = {.n_conn = 1, .conn = {{3, 4}}};
    assert_int_equal(layout_plan(&lo, 3, 2, 1, 4, cost, 0, 0, &cc), -1);
    assert_error_contains("connection 3:4: anchor block 4 is not in 0..3");
}

/* Hand-made costs with a known optimum. */
static void test_partition_known(void **state) {
    int first[9];
    double mx;
    double uniform[8] = {1, 1, 1, 1, 1, 1, 1, 1};
    assert_int_equal(layout_partition(8, 4, uniform, 0, 0, first, &mx), 0);
    int want_u[5] = {0, 2, 4, 6, 8};
    assert_memory_equal(first, want_u, sizeof want_u);
    assert_true(mx == 2);

    /* heavy ends isolate themselves */
    double ends[6] = {5, 1, 1, 1, 1, 5};
    assert_int_equal(layout_partition(6, 3, ends, 0, 0, first, &mx), 0);
    int want_e[4] = {0, 1, 5, 6};
    assert_memory_equal(first, want_e, sizeof want_e);
    assert_true(mx == 5);

    /* the embedding and head costs push layers away from the first and last stage */
    double flat[6] = {2, 2, 2, 2, 2, 2};
    assert_int_equal(layout_partition(6, 3, flat, 2, 4, first, &mx), 0);
    int want_h[4] = {0, 2, 5, 6}; /* stage costs 2+4, 6, 2+4 */
    assert_memory_equal(first, want_h, sizeof want_h);
    assert_true(mx == 6);

    /* one stage holds everything; S == L gives one layer each */
    assert_int_equal(layout_partition(6, 1, flat, 1, 1, first, &mx), 0);
    assert_int_equal(first[0], 0);
    assert_int_equal(first[1], 6);
    assert_true(mx == 14);
    assert_int_equal(layout_partition(6, 6, ends, 0, 0, first, &mx), 0);
    for (int s = 0; s <= 6; s++) assert_int_equal(first[s], s);

    assert_int_equal(layout_partition(3, 4, flat, 0, 0, first, &mx), -1);
    assert_error_contains("cannot split 3 layers into 4 non-empty stages");
}

/* Smallest possible largest stage cost by enumerating every split. */
static double brute_force(int L, int S, const double *c, double emb, double head, int s, int from) {
    if (s == S - 1) {
        double v = head + (s == 0 ? emb : 0);
        for (int l = from; l < L; l++) v += c[l];
        return v;
    }
    double best = -1, seg = s == 0 ? emb : 0;
    for (int to = from + 1; to <= L - (S - 1 - s); to++) { /* leave one layer for each later stage */
        seg += c[to - 1];
        double rest = brute_force(L, S, c, emb, head, s + 1, to), v = seg > rest ? seg : rest;
        if (best < 0 || v < best) best = v;
    }
    return best;
}

static void test_partition_optimal(void **state) {
    uint64_t x = 12345;
    for (int L = 1; L <= 10; L++)
        for (int S = 1; S <= L; S++)
            for (int trial = 0; trial < 4; trial++) {
                double c[10], emb, head;
                for (int l = 0; l < L; l++) c[l] = (double)((x = calm_hash64(x)) % 17 + 1);
                emb = (double)((x = calm_hash64(x)) % 9);
                head = (double)((x = calm_hash64(x)) % 25);
                int first[11];
                double mx;
                assert_int_equal(layout_partition(L, S, c, emb, head, first, &mx), 0);
                /* a valid split: contiguous, non-empty stages covering 0..L-1 */
                assert_int_equal(first[0], 0);
                assert_int_equal(first[S], L);
                double worst = 0;
                for (int s = 0; s < S; s++) {
                    assert_true(first[s + 1] > first[s]);
                    double v = (s == 0 ? emb : 0) + (s == S - 1 ? head : 0);
                    for (int l = first[s]; l < first[s + 1]; l++) v += c[l];
                    if (v > worst) worst = v;
                }
                assert_true(worst == mx);
                double want = brute_force(L, S, c, emb, head, 0, 0);
                if (mx != want) fail_msg("L=%d S=%d: max stage cost %g, optimum %g", L, S, mx, want);
            }
}

static void test_roles(void **state) {
    double cost[8] = {1, 1, 1, 1, 1, 1, 1, 1};
    /* blocks 3 and 4 sit on either side of the stage boundary */
    ComposeConfig cc = {.n_conn = 4, .conn = {{3, 1}, {5, 3}, {6, 4}, {11, 7}}};
    Layout lo;
    assert_int_equal(layout_plan(&lo, 12, 2, 1, 8, cost, 0, 0, &cc), 0);
    assert_int_equal(lo.R, 4);
    assert_int_equal(lo.first[1], 4);
    /* connection (a, b) lives with the stage holding block b */
    int want_stage[4] = {0, 0, 1, 1};
    for (int i = 0; i < 4; i++) assert_int_equal(lo.conn_stage[i], want_stage[i]);
    assert_int_equal(lo.stage_n_conn[0], 2);
    assert_int_equal(lo.stage_n_conn[1], 2);
    RankInfo ri;
    layout_rank(&lo, 7, &ri); /* replica 2: ranks 6, 7 anchor, 8 augment */
    assert_int_equal(ri.role, ROLE_ANCHOR);
    assert_int_equal(ri.replica, 2);
    assert_int_equal(ri.index, 1);
    layout_rank(&lo, 8, &ri);
    assert_int_equal(ri.role, ROLE_AUGMENT);
    assert_int_equal(ri.replica, 2);
    assert_int_equal(ri.index, 0);
    assert_int_equal(ri.local, 2);
    for (int r = 0; r < lo.world; r++) {
        layout_rank(&lo, r, &ri);
        assert_int_equal(layout_world_rank(&lo, ri.replica, ri.role, ri.index), r);
    }

    /* ordered by role (Slurm heterogeneous jobs): 8 anchor ranks, then 4 augment ranks */
    lo.role_major = 1;
    layout_rank(&lo, 7, &ri);
    assert_int_equal(ri.role, ROLE_ANCHOR);
    assert_int_equal(ri.replica, 3);
    assert_int_equal(ri.index, 1);
    layout_rank(&lo, 9, &ri);
    assert_int_equal(ri.role, ROLE_AUGMENT);
    assert_int_equal(ri.replica, 1);
    assert_int_equal(ri.local, 2);
    for (int r = 0; r < lo.world; r++) {
        layout_rank(&lo, r, &ri);
        assert_int_equal(layout_world_rank(&lo, ri.replica, ri.role, ri.index), r);
    }
    lo.role_major = 0;

    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    layout_print(&lo, f);
    fclose(f);
    if (getenv("CALM_PRINT_LAYOUT")) fputs(buf, stdout);
    assert_contains(buf, "layout: 12 ranks = 4 replicas x (2 anchor stages + 1 augment rank)");
    assert_contains(buf, "     6  anchor       2  0       0-3 +emb       3:1,5:3\n");
    assert_contains(buf, "     7  anchor       2  1       4-7 +head      6:4,11:7\n");
    assert_contains(buf, "     8  augment      2  0       mA 0-11        projections of all 4");
    free(buf);
    layout_free(&lo);
}

/* FLOP costs from a config: blocks the backward reaches cost more, a
 * connection adds its cross-attention to its block, the head is the LM head. */
static void test_costs(void **state) {
    ModelConfig c;
    model_config_default(&c);
    c.dim = 64, c.n_layers = 6, c.n_heads = 4, c.n_kv_heads = 4, c.head_dim = 16, c.hidden_dim = 128;
    c.vocab_size = 300;
    ComposeConfig cc = {.n_conn = 2, .conn = {{1, 2}, {3, 4}}};
    double lc[6], emb, head, att;
    layout_costs(&c, &cc, 2, 8, lc, &emb, &head);
    double fwd = model_block_flops(&c, 2, 8, &att) + att;
    assert_true(lc[0] == fwd && lc[1] == fwd); /* below the lowest connection: forward only */
    assert_true(lc[3] > lc[0] && lc[5] > lc[0]);
    assert_true(lc[3] == lc[5]);
    assert_true(lc[2] > lc[0] && lc[4] > lc[3]); /* cross-attention */
    /* block 2 holds the lowest connection: it runs forward only (the backward
     * stops at resid[3]), so it differs from block 0 by the cross-attention
     * alone, as block 4 differs from block 3 */
    assert_true(lc[2] - lc[0] == lc[4] - lc[3]);
    assert_true(emb == 0);
    assert_true(head == 2.0 * 2.0 * 16 * 64 * 300);

    /* and the plan made from them puts the head and the connections into the balance */
    Layout lo;
    assert_int_equal(layout_plan(&lo, 3, 2, 1, 6, lc, emb, head, &cc), 0);
    assert_true(lo.cost[0] > 0 && lo.cost[1] > 0);
    double mx;
    int first[3];
    assert_int_equal(layout_partition(6, 2, lc, emb, head, first, &mx), 0);
    assert_true((lo.cost[0] > lo.cost[1] ? lo.cost[0] : lo.cost[1]) == mx);
    layout_free(&lo);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_layouts),
        cmocka_unit_test(test_partition_known),
        cmocka_unit_test(test_partition_optimal),
        cmocka_unit_test(test_roles),
        cmocka_unit_test(test_costs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
