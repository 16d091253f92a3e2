/* test_compose_io.c: what a composition refuses and what it writes, on the
 * tiny random models of compose_fx.h (described in test_compose.c):
 *   bad input   vocabularies, layer indices, heads, order, malformed
 *               --connections, a changed or missing model under a saved
 *               composition, bad connections in calm_config.json;
 *   directories save/load round trip (parameters and logits bitwise).
 */
#define _GNU_SOURCE
#include "compose_fx.h"

/* ------------------------------------------------------------ bad input */

static void expect_error(int r, const char *const *needles, int n) {
    assert_int_equal(r, -1);
    const char *msg = calm_last_error();
    for (int i = 0; i < n; i++)
        if (!strstr(msg, needles[i])) fail_msg("error message lacks \"%s\": %s", needles[i], msg);
}

static void test_bad_models_and_connections(void **state) {
    (void)state;
    calm_blas_init(0);
    ModelConfig ca, cb;
    augment_config(&ca, V);
    anchor_config(&cb, 300);
    Model A, Bm;
    make_model(&A, &ca, 1);
    make_model(&Bm, &cb, 2);
    Composer c;
    ComposeConfig cfg;
    set_conns(&cfg, WIRE1, 2, 0);
    const char *vocab[] = {"vocabular", "320", "300"};
    expect_error(compose_init(&c, &A, &Bm, &cfg), vocab, 3);
    compose_free(&c); /* safe after a failed init */
    model_free(&Bm);
    anchor_config(&cb, V);
    make_model(&Bm, &cb, 2);
    assert_int_equal(compose_init(&c, &A, &Bm, &cfg), 0);
    compose_free(&c);

    static const struct {
        int a, b, heads;
        const char *needle[2];
    } bad[] = {
        {4, 0, 0, {"augment layer 4", "0..3"}}, {-1, 0, 0, {"augment layer -1", "0..3"}},
        {0, 4, 0, {"anchor layer 4", "0..3"}},  {0, -2, 0, {"anchor layer -2", "0..3"}},
        {0, 0, 3, {"heads 3", "32"}},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int ab[1][2] = {{bad[i].a, bad[i].b}};
        set_conns(&cfg, (const int(*)[2])ab, 1, bad[i].heads);
        expect_error(compose_init(&c, &A, &Bm, &cfg), bad[i].needle, 2);
    }
    static const int unordered[2][2] = {{1, 3}, {3, 0}};
    set_conns(&cfg, unordered, 2, 0);
    const char *order[] = {"order"};
    expect_error(compose_init(&c, &A, &Bm, &cfg), order, 1);
    cfg.n_conn = 0;
    const char *none[] = {"connections"};
    expect_error(compose_init(&c, &A, &Bm, &cfg), none, 1);
    model_free(&A);
    model_free(&Bm);
}

static void test_parse_connections(void **state) {
    (void)state;
    ComposeConfig cfg;
    assert_int_equal(compose_parse_connections("3:5,7:11", &cfg), 0);
    assert_int_equal(cfg.n_conn, 2);
    assert_true(cfg.conn[0].a == 3 && cfg.conn[0].b == 5 && cfg.conn[1].a == 7 && cfg.conn[1].b == 11);
    assert_int_equal(compose_parse_connections("0:0", &cfg), 0);
    assert_true(cfg.n_conn == 1 && cfg.conn[0].a == 0 && cfg.conn[0].b == 0);
    static const char *bad[] = {"3", "a:b", "3:5,", "", ":5", "3:", "3:5,,7:1", "-1:2", "3:-2", "3:5x", "3;5",
                                ",3:5", "99999999999:1"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        calm_error("(none)");
        int r = compose_parse_connections(bad[i], &cfg);
        if (r != -1) fail_msg("compose_parse_connections(\"%s\") accepted it (%d connections)", bad[i], cfg.n_conn);
        assert_true(strstr(calm_last_error(), "connections") != NULL);
    }
}

/* The documented rule: a = 3, 7, 11, ... (or the last block when NA < 4),
 * paired in order with as many mB blocks, uniformly spaced and ending at
 * NB-1 (b_i = round((i+1) NB / k) - 1; gaps differ by at most one). */
static void test_default_connections(void **state) {
    (void)state;
    ModelConfig a, b;
    model_config_default(&a);
    model_config_default(&b);
    ComposeConfig cfg;
    a.n_layers = 12, b.n_layers = 8;
    assert_int_equal(compose_default_connections(&a, &b, &cfg), 0);
    print_message("default connections NA=12 NB=8: %d:%d, %d:%d, %d:%d\n", cfg.conn[0].a, cfg.conn[0].b,
                  cfg.conn[1].a, cfg.conn[1].b, cfg.conn[2].a, cfg.conn[2].b);
    assert_int_equal(cfg.n_conn, 3);
    static const int want[3][2] = {{3, 2}, {7, 4}, {11, 7}};
    for (int i = 0; i < 3; i++) assert_true(cfg.conn[i].a == want[i][0] && cfg.conn[i].b == want[i][1]);
    a.n_layers = 12, b.n_layers = 12; /* equal depths: the paper's a = b */
    compose_default_connections(&a, &b, &cfg);
    for (int i = 0; i < 3; i++) assert_true(cfg.conn[i].a == 4 * i + 3 && cfg.conn[i].b == 4 * i + 3);

    for (int na = 1; na <= 40; na++)
        for (int nb = 1; nb <= 40; nb++) {
            a.n_layers = na, b.n_layers = nb;
            assert_int_equal(compose_default_connections(&a, &b, &cfg), 0);
            int k = na < 4 ? 1 : na / 4; /* #{3, 7, ...} below na */
            if (k > nb) k = nb;
            assert_int_equal(cfg.n_conn, k);
            int gmin = nb, gmax = 0;
            for (int i = 0; i < k; i++) {
                assert_int_equal(cfg.conn[i].a, na < 4 ? na - 1 : 4 * i + 3);
                int gap = cfg.conn[i].b - (i ? cfg.conn[i - 1].b : -1);
                assert_true(gap >= 1);
                gmin = gap < gmin ? gap : gmin;
                gmax = gap > gmax ? gap : gmax;
            }
            assert_int_equal(cfg.conn[k - 1].b, nb - 1);
            assert_true(gmax - gmin <= 1);
        }
}

/* ------------------------------------------------------------ directories */

typedef struct {
    char *root, *anchor, *augment, *comp;
} Dirs;

static void dirs_make(Dirs *d, Fx *f) {
    d->root = tu_mkdtemp("compose");
    d->anchor = calm_path_join(d->root, "anchor");
    d->augment = calm_path_join(d->root, "augment");
    d->comp = calm_path_join(d->root, "comp");
    if (model_save_dir(&f->B, d->anchor) != 0 || model_save_dir(&f->A, d->augment) != 0)
        fail_msg("model_save_dir: %s", calm_last_error());
    if (compose_save_dir(&f->c, d->comp, d->anchor, d->augment) != 0)
        fail_msg("compose_save_dir: %s", calm_last_error());
}

static void dirs_free(Dirs *d) {
    tu_rmtree(d->root);
    free(d->root), free(d->anchor), free(d->augment), free(d->comp);
}

/* Every tensor of frozen model a (mapped or copied) equals F32 model b's. */
static void assert_same_params(const Model *a, const Model *b) {
    assert_int_equal(a->n_param_tensors, b->n_param_tensors);
    for (int k = 0; k < a->n_param_tensors; k++) {
        const ParamInfo *p = &a->param_info[k];
        const void *x = p->mapped ? p->data : (const void *)(a->params_memory + p->offset);
        if (p->mapped) assert_int_equal(p->dtype, WM_F32);
        assert_memory_equal(x, b->params_memory + b->param_info[k].offset, p->numel * sizeof(float));
    }
}

static void test_save_load_roundtrip(void **state) {
    (void)state;
    Fx f;
    fx_init(&f, WIRE2, 3, 2, 1.0f);
    Dirs d;
    dirs_make(&d, &f);
    const size_t NV = (size_t)N * V;
    float *ref = xalloc_floats(NV);
    float l0 = compose_forward(&f.c, TOKENS, f.targets, WEIGHTS, B, T);
    memcpy(ref, f.B.acts.logits, NV * sizeof(float));

    Composer c2;
    Model A2, B2;
    if (compose_load_dir(&c2, d.comp, &A2, &B2) != 0) fail_msg("compose_load_dir: %s", calm_last_error());
    assert_int_equal(c2.cfg.n_conn, 3);
    for (int i = 0; i < 3; i++) assert_true(c2.cfg.conn[i].a == WIRE2[i][0] && c2.cfg.conn[i].b == WIRE2[i][1]);
    assert_int_equal(c2.H, 2);
    assert_int_equal(c2.num_params, f.c.num_params);
    assert_memory_equal(c2.params, f.c.params, f.c.num_params * sizeof(float));
    /* the models load frozen: matrices mapped (F32 here), norms copied */
    assert_true(A2.frozen && B2.frozen);
    assert_same_params(&A2, &f.A);
    assert_same_params(&B2, &f.B);
    float l1 = compose_forward(&c2, TOKENS, f.targets, WEIGHTS, B, T);
    assert_memory_equal(B2.acts.logits, ref, NV * sizeof(float));
    assert_memory_equal(&l1, &l0, sizeof(float));
    compose_free(&c2);
    model_free(&A2);
    model_free(&B2);

    /* Weights for a wiring with more connections are refused (a tensor is missing). */
    Composer c3;
    ComposeConfig cfg;
    static const int four[4][2] = {{0, 0}, {1, 1}, {2, 2}, {3, 3}};
    set_conns(&cfg, four, 4, 2);
    assert_int_equal(compose_init(&c3, &f.A, &f.B, &cfg), 0);
    assert_int_equal(compose_load_weights(&c3, d.comp), -1);
    compose_free(&c3);
    free(ref);
    dirs_free(&d);
    fx_free(&f);
}

/* Re-save a model with one weight changed: the composition must refuse it
 * (and load again once the weight is restored: the refusal is the hash). */
static void check_changed(Fx *f, Dirs *d, Model *m, const char *dir, const char *role) {
    Composer c2;
    Model A2, B2;
    float keep = m->params_memory[5];
    m->params_memory[5] += 0.25f;
    assert_int_equal(model_save_dir(m, dir), 0);
    const char *needles[] = {"changed", "sha256", role};
    expect_error(compose_load_dir(&c2, d->comp, &A2, &B2), needles, 3);
    m->params_memory[5] = keep;
    assert_int_equal(model_save_dir(m, dir), 0);
    if (compose_load_dir(&c2, d->comp, &A2, &B2) != 0) fail_msg("after restoring: %s", calm_last_error());
    compose_free(&c2);
    model_free(&A2);
    model_free(&B2);
    (void)f;
}

static void test_changed_model(void **state) {
    (void)state;
    Fx f;
    fx_init(&f, WIRE1, 2, 0, 1.0f);
    Dirs d;
    dirs_make(&d, &f);
    check_changed(&f, &d, &f.A, d.augment, "augment");
    check_changed(&f, &d, &f.B, d.anchor, "anchor");

    /* A model directory that has gone: the message names the role and why. */
    char *moved = calm_path_join(d.root, "anchor.moved");
    assert_int_equal(rename(d.anchor, moved), 0);
    Composer c2;
    Model A2, B2;
    const char *gone[] = {"anchor model", CALM_WEIGHTS_FILE};
    expect_error(compose_load_dir(&c2, d.comp, &A2, &B2), gone, 2);
    assert_int_equal(rename(moved, d.anchor), 0);
    free(moved);
    dirs_free(&d);
    fx_free(&f);
}

/* A hand-edited calm_config.json with an anchor layer out of range: refused,
 * the message naming the file and the layer. */
static void test_bad_config_connections(void **state) {
    (void)state;
    Fx f;
    fx_init(&f, WIRE1, 2, 0, 1.0f);
    Dirs d;
    dirs_make(&d, &f);
    char *cpath = calm_path_join(d.comp, CALM_COMPOSE_CONFIG), *text;
    size_t len;
    assert_int_equal(calm_read_file(cpath, &text, &len), 0);
    cJSON *root = cJSON_Parse(text);
    free(text);
    assert_non_null(root);
    int pairs[2][2] = {{1, 0}, {3, 9}};
    cJSON *cs = cJSON_CreateArray();
    for (int i = 0; i < 2; i++) cJSON_AddItemToArray(cs, cJSON_CreateIntArray(pairs[i], 2));
    assert_true(cJSON_ReplaceItemInObjectCaseSensitive(root, "connections", cs));
    text = cJSON_Print(root);
    cJSON_Delete(root);
    FILE *fp = fopen(cpath, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
    free(text);

    Composer c2;
    Model A2, B2;
    const char *needles[] = {CALM_COMPOSE_CONFIG, "anchor layer 9"};
    expect_error(compose_load_dir(&c2, d.comp, &A2, &B2), needles, 2);
    free(cpath);
    dirs_free(&d);
    fx_free(&f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_models_and_connections),
        cmocka_unit_test(test_parse_connections),
        cmocka_unit_test(test_default_connections),
        cmocka_unit_test(test_save_load_roundtrip),
        cmocka_unit_test(test_changed_model),
        cmocka_unit_test(test_bad_config_connections),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
