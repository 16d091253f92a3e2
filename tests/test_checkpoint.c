/* test_checkpoint.c: run checkpoints (src/checkpoint.c) in one process: round trip,
 * pruning, damaged checkpoints, configuration checks, parts from several
 * owners, and a stop request that checkpoints through train_run. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "src/checkpoint.h"
#include "src/files.h"
#include "testutil.h"

/* Two "processes" owning one tensor each of a 3-tensor set. */
static ParamInfo g_table[3] = {
    {.name = "w.a", .ndim = 2, .shape = {4, 3}, .offset = 0, .numel = 12},
    {.name = "w.b", .ndim = 1, .shape = {5, 0}, .offset = 12, .numel = 5},
    {.name = "w.c", .ndim = 2, .shape = {2, 2}, .offset = 17, .numel = 4},
};
#define NP 21

static float dummy_step(void *ctx, const int *tok, const int *tgt, const float *w, int B, int T) {
    (void)ctx, (void)tok, (void)tgt, (void)w, (void)B, (void)T;
    return 0.0f;
}
static int dummy_save(void *ctx, const char *dir) {
    (void)ctx, (void)dir;
    return 0;
}

static Trainable make(float *p, float *g, const ParamInfo *table, int n) {
    Trainable t = {NULL, p, g, NP, table, n, dummy_step, dummy_save, NULL};
    return t;
}

static CkptConfig config(const char *dir, const char *cfg) {
    CkptConfig c = {dir, 1, 2, 0, 1, 1, 42, cfg, "{\"lr\": 0.001}", "single process", {NULL, NULL, NULL}};
    return c;
}

static char *ckdir(void **state) { return calm_path_join(*state, "ck"); }

/* One trainable of NP parameters, its run configuration and training state,
 * checkpointing under the test's directory: what most tests start from. */
typedef struct {
    char *dir;
    float p[NP], g[NP];
    Trainable t;
    CkptConfig c;
    TrainState s;
} Run;

static void run_open(Run *r, void **state, const char *cfg) {
    memset(r, 0, sizeof *r);
    r->dir = ckdir(state);
    r->t = make(r->p, r->g, g_table, 3);
    r->c = config(r->dir, cfg);
    train_state_init(&r->s, NP);
}

static void run_close(Run *r) {
    train_state_free(&r->s);
    free(r->dir);
}

static void fill(float *x, size_t n, float base) {
    for (size_t i = 0; i < n; i++) x[i] = base + (float)i;
}

static void test_round_trip_and_prune(void **state) {
    Run r;
    run_open(&r, state, "{\"model\": \"m1\"}");
    for (long step = 1; step <= 4; step++) {
        fill(r.p, NP, (float)step);
        fill(r.s.adam_m, NP, 100.0f * step);
        fill(r.s.adam_v, NP, 1000.0f * step);
        r.s.step = step;
        assert_int_equal(ckpt_write(&r.c, &r.t, &r.s), 0);
    }
    /* keep = 2: steps 3 and 4 remain */
    char *s2 = calm_path_join(r.dir, "step-00000002"), *s3 = calm_path_join(r.dir, "step-00000003");
    assert_int_not_equal(access(s2, F_OK), 0);
    assert_int_equal(access(s3, F_OK), 0);
    memset(r.p, 0, sizeof r.p);
    TrainState back;
    train_state_init(&back, NP);
    assert_int_equal(ckpt_resume(&r.c, &r.t, &back, "auto"), 1);
    assert_int_equal(back.step, 4);
    float want[NP];
    fill(want, NP, 4.0f);
    assert_memory_equal(r.p, want, sizeof want);
    fill(want, NP, 400.0f);
    assert_memory_equal(back.adam_m, want, sizeof want);
    /* an explicit step directory */
    assert_int_equal(ckpt_resume(&r.c, &r.t, &back, s3), 1);
    assert_int_equal(back.step, 3);
    free(s2);
    free(s3);
    train_state_free(&back);
    run_close(&r);
}

static void test_fresh_start_creates_dir(void **state) {
    char *dir = calm_path_join(*state, "a/b/ck");
    float p[NP], g[NP];
    Trainable t = make(p, g, g_table, 3);
    CkptConfig c = config(dir, "{}");
    TrainState s;
    train_state_init(&s, NP);
    assert_int_equal(ckpt_resume(&c, &t, &s, "auto"), 0);
    struct stat st;
    assert_int_equal(stat(dir, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    train_state_free(&s);
    free(dir);
}

/* Damage the newest checkpoint's part in place; resume must fall back. */
static void damage_and_resume(void **state, int truncate_it) {
    Run r;
    run_open(&r, state, "{}");
    for (long step = 1; step <= 2; step++) {
        fill(r.p, NP, (float)step);
        r.s.step = step;
        assert_int_equal(ckpt_write(&r.c, &r.t, &r.s), 0);
    }
    char *part = calm_path_join(r.dir, "step-00000002/part-00000.safetensors");
    if (truncate_it) {
        assert_int_equal(truncate(part, 100), 0);
    } else {
        FILE *f = fopen(part, "r+b");
        assert_non_null(f);
        fseek(f, -7, SEEK_END);
        int ch = fgetc(f);
        fseek(f, -7, SEEK_END);
        fputc(ch ^ 0x20, f);
        fclose(f);
    }
    assert_int_equal(ckpt_resume(&r.c, &r.t, &r.s, "auto"), 1);
    assert_int_equal(r.s.step, 1);
    float want[NP];
    fill(want, NP, 1.0f);
    assert_memory_equal(r.p, want, sizeof want);
    /* asked for by name, the damaged one is an error naming the file */
    char *s2 = calm_path_join(r.dir, "step-00000002");
    assert_int_equal(ckpt_resume(&r.c, &r.t, &r.s, s2), -1);
    assert_error_contains("part-00000.safetensors");
    free(s2);
    free(part);
    run_close(&r);
}

static void test_flipped_byte(void **state) { damage_and_resume(state, 0); }
static void test_truncated_part(void **state) { damage_and_resume(state, 1); }

static void test_incomplete_is_ignored(void **state) {
    Run r;
    run_open(&r, state, "{}");
    r.s.step = 5;
    fill(r.p, NP, 5.0f);
    assert_int_equal(ckpt_write(&r.c, &r.t, &r.s), 0);
    r.s.step = 6;
    fill(r.p, NP, 6.0f);
    assert_int_equal(ckpt_write(&r.c, &r.t, &r.s), 0);
    char *done = calm_path_join(r.dir, "step-00000006/DONE");
    assert_int_equal(unlink(done), 0); /* as if killed before DONE */
    assert_int_equal(ckpt_resume(&r.c, &r.t, &r.s, "auto"), 1);
    assert_int_equal(r.s.step, 5);
    free(done);
    run_close(&r);
}

static void test_other_configuration_refused(void **state) {
    Run r;
    run_open(&r, state, "{\"model\": \"m1\", \"connections\": \"3:3\"}");
    r.s.step = 1;
    assert_int_equal(ckpt_write(&r.c, &r.t, &r.s), 0);
    CkptConfig other = config(r.dir, "{\"model\": \"m1\", \"connections\": \"3:5\"}");
    assert_int_equal(ckpt_resume(&other, &r.t, &r.s, "auto"), -1);
    assert_error_contains("connections: checkpoint \"3:3\", this run \"3:5\"");
    CkptConfig missing = config(r.dir, "{\"model\": \"m1\"}");
    assert_int_equal(ckpt_resume(&missing, &r.t, &r.s, "auto"), -1);
    assert_error_contains("connections: checkpoint \"3:3\", this run (none)");
    /* a changed setting is accepted (reported) */
    CkptConfig lr = config(r.dir, "{\"model\": \"m1\", \"connections\": \"3:3\"}");
    lr.hyper_json = "{\"lr\": 0.002}";
    assert_int_equal(ckpt_resume(&lr, &r.t, &r.s, "auto"), 1);
    run_close(&r);
}

/* Two writers own different tensors (a pipeline); a reader owning all of
 * them (another layout) finds each in its part. The processes are played one
 * after the other; the fake sum reports both writers. */
static long id_max(void *ctx, long x) { (void)ctx; return x; }
static long two_writers(void *ctx, long x) { (void)ctx, (void)x; return 2; }

static void test_parts_from_two_owners(void **state) {
    char *dir = ckdir(state);
    float p[NP], g[NP];
    TrainState s;
    train_state_init(&s, NP);
    s.step = 7;
    fill(p, NP, 7.0f);
    fill(s.adam_m, NP, 70.0f);
    fill(s.adam_v, NP, 700.0f);
    Trainable t0 = make(p, g, g_table, 2), t1 = make(p, g, g_table + 2, 1); /* w.a, w.b | w.c */
    CkptConfig c0 = config(dir, "{}"), c1 = config(dir, "{}");
    c0.comm = (CkptComm){NULL, id_max, two_writers};
    c1.comm = c0.comm;
    c1.part = 1;
    c1.is_main = 0;
    assert_int_equal(ckpt_write(&c0, &t0, &s), 0); /* main: empties the step, writes part 0 and DONE */
    assert_int_equal(ckpt_write(&c1, &t1, &s), 0); /* rank 1: part 1 */
    TrainState r;
    train_state_init(&r, NP);
    Trainable all = make(p, g, g_table, 3);
    memset(p, 0, sizeof p);
    CkptConfig reader = config(dir, "{}");
    assert_int_equal(ckpt_resume(&reader, &all, &r, "auto"), 1);
    float want[NP];
    fill(want, NP, 7.0f);
    assert_memory_equal(p, want, sizeof want);
    fill(want, NP, 700.0f);
    assert_memory_equal(r.adam_v, want, sizeof want);
    /* a part missing: DONE's count no longer matches */
    char *p1 = calm_path_join(dir, "step-00000007/part-00001.safetensors");
    assert_int_equal(unlink(p1), 0);
    assert_int_equal(ckpt_resume(&reader, &all, &r, "auto"), -1);
    assert_error_contains("all 1 complete checkpoints are damaged");
    free(p1);
    train_state_free(&r);
    train_state_free(&s);
    free(dir);
}

/* train_run stops after the step during which a stop was requested, with a
 * checkpoint of that step, and returns TRAIN_STOPPED. */
typedef struct {
    int calls;
} StepCtx;

static float counting_step(void *ctx, const int *tok, const int *tgt, const float *w, int B, int T) {
    (void)tok, (void)tgt, (void)w, (void)B, (void)T;
    StepCtx *s = ctx;
    if (++s->calls == 3) train_request_stop(10);
    return 1.0f;
}

static int no_batch(void *ctx, long step, int row0, int B, int T, int *tokens, int *targets, float *weights) {
    (void)ctx, (void)step, (void)row0;
    for (int i = 0; i < B * T; i++) tokens[i] = targets[i] = 0, weights[i] = 1.0f;
    return 0;
}

static void test_stop_request(void **state) {
    char *dir = ckdir(state);
    float p[NP] = {0}, g[NP] = {0};
    StepCtx sc = {0};
    Trainable t = {&sc, p, g, NP, g_table, 3, counting_step, dummy_save, NULL};
    CkptConfig c = config(dir, "{}");
    c.every = 0;
    TrainConfig tc = {0};
    tc.B = 1, tc.T = 2, tc.steps = 10, tc.log_every = 100;
    optim_config_default(&tc.optim);
    tc.optim.total_steps = 10;
    tc.ckpt = &c;
    TrainState s;
    train_state_init(&s, NP);
    int quiet = calm_quiet;
    calm_quiet = 1;
    assert_int_equal(train_run(&t, &s, &tc, no_batch, NULL), TRAIN_STOPPED);
    calm_quiet = quiet;
    assert_int_equal(s.step, 3);
    assert_int_equal(train_stop_signal(), 10);
    char *done = calm_path_join(dir, "step-00000003/DONE");
    assert_int_equal(access(done, F_OK), 0);
    free(done);
    train_state_free(&s);
    free(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip_and_prune, tu_setup_tmpdir, tu_teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_fresh_start_creates_dir, tu_setup_tmpdir, tu_teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_flipped_byte, tu_setup_tmpdir, tu_teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_truncated_part, tu_setup_tmpdir, tu_teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_incomplete_is_ignored, tu_setup_tmpdir, tu_teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_other_configuration_refused, tu_setup_tmpdir, tu_teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_parts_from_two_owners, tu_setup_tmpdir, tu_teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_stop_request, tu_setup_tmpdir, tu_teardown_tmpdir),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
