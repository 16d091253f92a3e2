/* test_plan.c: the performance model of `calm plan` (mpi/plan.h), no MPI and
 * no measuring: given per-layer seconds, a one-stage pipeline's step time,
 * its bubble and bytes are computed by hand below and must come out to the
 * rounding; two ranks sharing one core double its compute; the whole-composition step
 * is the sum of its pieces; layouts that do not divide the batch, have more
 * stages than blocks, more ranks than cores, or exceed memory are refused
 * with their reason; the enumeration respects the memory limit and sorts
 * by step time; costs scale with the micro-batch. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "mpi/plan.h"
#include "testutil.h"

/* mB: 2 blocks of width 64, mA: 2 blocks of width 32, one connection 0:1
 * (mA after block 0 into mB after block 1, the last: no anchor block runs
 * backward); batch 2 x 8. */
static void tiny_job(PlanJob *j) {
    memset(j, 0, sizeof *j);
    ModelConfig *c[2] = {&j->cb, &j->ca};
    for (int i = 0; i < 2; i++) {
        model_config_default(c[i]);
        c[i]->dim = i ? 32 : 64;
        c[i]->n_layers = 2;
        c[i]->n_heads = c[i]->n_kv_heads = i ? 2 : 4;
        c[i]->head_dim = 16;
        c[i]->hidden_dim = 128;
        c[i]->vocab_size = 320;
        c[i]->max_seq_len = 64;
    }
    j->cc.n_conn = 1;
    j->cc.conn[0] = (Connection){0, 1};
    j->wbytes_a = j->wbytes_b = 4;
    j->B = 2;
    j->T = 8;
}

static PlanCosts tiny_costs(int b) {
    PlanCosts c = {.b = b, .T = 8, .blk_f = 1, .blk_b = 2, .head_f = 0.5, .head_b = 0.25, .xattn_f = 0.1,
                   .xattn_b = 0.2, .ablk_f = 0.3, .proj_f = 0.05, .proj_b = 0.07, .opt_per_param = 0, .eff2 = 1,
                   .share2 = 1};
    return c;
}

static PlanMachine machine(int cores, double mem_gb) {
    PlanMachine m = {.nodes = 1, .cores = cores, .mem_gb = mem_gb, .net_alpha = 1e-2, .net_beta = 1e8,
                     .shm_alpha = 1e-3, .shm_beta = 1e9};
    return m;
}

#define MSG (1e-3 + 2.0 * 8 * 64 * 4 / 1e9) /* one message of b x T x dB floats inside the node */

/* S=1 A=1 M=1 by hand: the augment rank runs mA's block 0 and the projection
 * (0.3 + 0.05), sends P; the stage waits for it, runs forward (2 blocks, the
 * cross-attention, the head: 2 + 0.1 + 0.5) and backward (no block is above
 * the connection: cross-attention and head, 0.2 + 0.25), sends dP; the
 * augment rank accumulates (0.07). Then 4 scalar reductions over 2 ranks
 * (one hop each way: 2 alpha each). */
static void test_one_stage_by_hand(void **state) {
    (void)state;
    PlanJob j;
    tiny_job(&j);
    PlanCosts c = tiny_costs(2);
    PlanMachine mc = machine(2, 100);
    PlanResult r;
    assert_int_equal(plan_predict(&j, &c, &mc, &(PlanLayout){1, 1, 1, 1, 1}, &r), 0);
    double span = 0.35 + MSG + 2.6 + 0.45 + MSG + 0.07;
    assert_true(fabs(r.step_s - (span + 4 * 2e-3)) < 1e-12);
    assert_true(fabs(r.compute_s - 3.05) < 1e-12);
    assert_true(fabs(r.bubble - (1 - 3.05 / span)) < 1e-12);
    assert_true(fabs(r.p2p_bytes - 2 * 2.0 * 8 * 64 * 4) < 1e-6);
    assert_int_equal(r.ranks, 2);
    assert_int_equal(r.b, 2);
    assert_true(fabs(r.tokens_per_s - 16 / r.step_s) < 1e-9);

    /* the same two ranks on one core: the computing one shares it with the
     * waiting one, so computes at half speed; messages do not slow down
     * (the lengths are a fixed point found by iteration: 1e-7) */
    PlanMachine one = machine(1, 100);
    assert_int_equal(plan_predict(&j, &c, &one, &(PlanLayout){1, 1, 1, 1, 1}, &r), 0);
    double want = 2 * (0.35 + 3.05 + 0.07) + 2 * MSG + 4 * 2e-3;
    assert_true(fabs(r.step_s - want) < 1e-7 * want);
}

/* Three ranks on two cores: with one micro-batch only one rank computes at
 * a time, and the waiting ones share the free core, so the step is what it
 * is with a core each; with four, the stages compute at once and the
 * waiting augment rank takes its share: slower, but not by more than the
 * 3/2 of everyone sharing all the time. */
static void test_oversubscribed_node(void **state) {
    (void)state;
    PlanJob j;
    tiny_job(&j);
    j.B = 4;
    j.cc.conn[0] = (Connection){0, 0}; /* stage 0 waits for the projection: nothing overlaps at M = 1 */
    PlanMachine two = machine(2, 100), three = machine(3, 100);
    PlanResult r2, r3;
    PlanCosts c = tiny_costs(4);
    assert_int_equal(plan_predict(&j, &c, &three, &(PlanLayout){2, 1, 1, 1, 1}, &r3), 0);
    assert_int_equal(plan_predict(&j, &c, &two, &(PlanLayout){2, 1, 1, 1, 1}, &r2), 0);
    assert_true(fabs(r2.step_s - r3.step_s) < 1e-9);
    c = tiny_costs(1);
    assert_int_equal(plan_predict(&j, &c, &three, &(PlanLayout){2, 1, 1, 4, 1}, &r3), 0);
    assert_int_equal(plan_predict(&j, &c, &two, &(PlanLayout){2, 1, 1, 4, 1}, &r2), 0);
    assert_true(r2.step_s > 1.05 * r3.step_s);
    assert_true(r2.step_s < 1.5 * r3.step_s);
}

/* No pipeline: the step is the sum of every piece on the rank's threads. */
static void test_whole_composition(void **state) {
    (void)state;
    PlanJob j;
    tiny_job(&j);
    PlanCosts c = tiny_costs(2);
    PlanMachine mc = machine(2, 100);
    PlanResult r;
    double sum = 2 * 1 + 0.5 + 0.1 + 0.05 + 0.3 + 0.25 + 0.2 + 0.07;
    assert_int_equal(plan_predict(&j, &c, &mc, &(PlanLayout){0, 0, 1, 1, 1}, &r), 0);
    assert_true(fabs(r.step_s - sum) < 1e-12);
    c.eff2 = 0.75; /* two threads worth 1.5 */
    assert_int_equal(plan_predict(&j, &c, &mc, &(PlanLayout){0, 0, 1, 1, 0}, &r), 0);
    assert_int_equal(r.lo.threads, 2);
    assert_true(fabs(r.step_s - sum / 1.5) < 1e-12);
}

static void test_refusals(void **state) {
    (void)state;
    PlanJob j;
    tiny_job(&j);
    PlanCosts c = tiny_costs(1);
    PlanMachine mc = machine(2, 100);
    PlanResult r;
    j.B = 3;
    assert_int_equal(plan_predict(&j, &c, &mc, &(PlanLayout){0, 0, 2, 1, 1}, &r), -1);
    assert_int_equal(r.verdict, PLAN_NO_DIVIDE);
    assert_non_null(strstr(r.why, "not divisible"));
    j.B = 2;
    assert_int_equal(plan_predict(&j, &c, &mc, &(PlanLayout){3, 1, 1, 2, 1}, &r), -1);
    assert_int_equal(r.verdict, PLAN_NO_FIT);
    assert_non_null(strstr(r.why, "3 stages"));
    /* 2 replicas of 2 ranks on a 2-core node, threads left to the planner: none to give */
    assert_int_equal(plan_predict(&j, &c, &mc, &(PlanLayout){1, 1, 2, 1, 0}, &r), -1);
    assert_int_equal(r.verdict, PLAN_NO_FIT);
    assert_non_null(strstr(r.why, "exceed its 2 cores"));
    /* costs measured for another micro-batch */
    assert_int_equal(plan_predict(&j, &c, &mc, &(PlanLayout){0, 0, 1, 1, 1}, &r), -1);
    assert_non_null(strstr(r.why, "costs are for"));
    /* memory: 10 MB cannot hold a rank */
    PlanCosts c2 = tiny_costs(2);
    PlanMachine small = machine(2, 0.01);
    assert_int_equal(plan_predict(&j, &c2, &small, &(PlanLayout){1, 1, 1, 1, 1}, &r), -1);
    assert_int_equal(r.verdict, PLAN_NO_MEMORY);
    assert_non_null(strstr(r.why, "exceed 0.01 GB"));
}

/* Every layout the enumeration calls valid fits the node's memory, and the
 * valid ones come first, fastest first. */
static void test_enumerate_respects_memory(void **state) {
    (void)state;
    PlanJob j;
    tiny_job(&j);
    j.B = 8;
    PlanCosts tab[2] = {tiny_costs(1), tiny_costs(8)};
    for (double mem = 0.2; mem <= 2.0; mem *= 2) {
        PlanMachine mc = machine(8, mem);
        PlanResult *res;
        int n, valid = 0;
        assert_int_equal(plan_enumerate(&j, tab, 2, &mc, &res, &n), 0);
        assert_true(n > 0);
        for (int i = 0; i < n; i++) {
            if (res[i].verdict != PLAN_OK) continue;
            valid++;
            assert_true(i + 1 == valid); /* valid ones first */
            assert_true(res[i].mem_gb * res[i].ranks_per_node <= mem);
            assert_true(res[i].ranks <= 8);
            if (i > 0) assert_true(res[i - 1].step_s <= res[i].step_s);
        }
        free(res);
    }
}

static void test_costs_scale(void **state) {
    (void)state;
    PlanCosts tab[2] = {tiny_costs(2), tiny_costs(8)}, c;
    assert_int_equal(plan_costs_at(tab, 2, 8, &c), 0);
    assert_true(c.blk_f == 1);
    assert_int_equal(plan_costs_at(tab, 2, 4, &c), 0); /* from b = 2, doubled */
    assert_true(fabs(c.blk_f - 2) < 1e-12 && fabs(c.proj_b - 0.14) < 1e-12 && c.b == 4);
    assert_int_equal(plan_costs_at(tab, 2, 1, &c), 0); /* below every entry: the smallest, halved */
    assert_true(fabs(c.head_f - 0.25) < 1e-12);
    assert_int_equal(plan_costs_at(tab, 0, 1, &c), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_stage_by_hand), cmocka_unit_test(test_oversubscribed_node),
        cmocka_unit_test(test_whole_composition),
        cmocka_unit_test(test_refusals),          cmocka_unit_test(test_enumerate_respects_memory),
        cmocka_unit_test(test_costs_scale),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
