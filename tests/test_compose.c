/* test_compose.c: CALM composition (src/compose.h) on tiny random models.
 *
 * mB (anchor): C=32, L=4, NH=4, NKV=2, F=48; mA (augment): C=24, L=4, NH=2,
 * F=40; V=320; B=2, T=9. Both are drawn with model_init_random (different
 * seeds) and then redrawn at unit gain (N(0, 1/fan_in), norms 1 + N(0, 0.2^2))
 * as in test_model_grad.c: the default N(0, 0.02) weights give logits ~ 0 and
 * gradients far below what finite differences of a float forward resolve.
 *
 * What is tested (issue 4, "## Tests"):
 *   gradients   finite differences of the loss vs compose_backward for every
 *               composition tensor, on two wirings: {1:0, 3:3} (b = 0 and
 *               b = NB-1) and {3:1, 2:1, 0:3} (two connections into one
 *               anchor block, unordered a, 2 cross-attention heads, stop at
 *               block 2); accumulation (two backwards = 2x);
 *   identity    after compose_init_random (o_proj = 0) the composed logits and
 *               loss are mB's own, bit for bit;
 *   causality   changing the token at t0 leaves logits at t < t0 bitwise equal;
 *   generation  compose_generate (greedy) equals the argmax of compose_forward
 *               recomputed on the growing sequence, also when the cache fills;
 *   frozen      AdamW on the composition leaves mA and mB bit-identical, no
 *               model gradients are ever allocated, mA stops at its highest
 *               connected block;
 * test_compose_io.c: bad models and connections, and composition
 * directories; the fixture is compose_fx.h.
 */
#define _GNU_SOURCE
#include "compose_fx.h"

/* The weighted mean loss re-summed in double from the per-token losses. */
typedef struct {
    Fx *f;
} LossCtx;

static double loss_obj(void *p) {
    Fx *f = ((LossCtx *)p)->f;
    compose_forward(&f->c, TOKENS, f->targets, WEIGHTS, B, T);
    double s = 0, sw = 0;
    for (int n = 0; n < N; n++) s += f->B.acts.losses[n], sw += WEIGHTS[n];
    return s / sw;
}

/* ------------------------------------------------------------ gradients */

/* FD_REL, stencil and tolerances: see check_grads. */
static const float FD_REL = 1e-1f;
static const double MIN_MAX_GRAD = 1e-2;
static const GcOpts GC_COMPOSE = {.h = 0, .stencil = 4, .atol_frac = 2e-3, .atol_min = 2e-5, .rtol = 1e-2,
                                  .max_coords = 32, .seed = 0};

/* Every composition tensor, >= 30 coordinates each (32 sampled; a bias has 32).
 *
 * Noise and tolerance. The objective (~6) is re-summed in double from the
 * float per-token losses, so what is left is the forward's own float rounding:
 * ~3e-7 absolute per evaluation (half an ulp of 6 is 2.4e-7). The 4-point
 * stencil's truncation error h^4 f^(5)/30 is negligible even at h = 10% of the
 * tensor's rms (h ~ 0.02 for the N(0, 1/fan_in) weights, 0.01 for the bias),
 * and its rounding error is ~sigma/h ~ 1.5e-5 -- what is measured: every
 * |fd - an| is <= ~2e-5 absolute, whatever the size of the gradient. Per-tensor
 * max|an| ranges over 0.03..0.28 here (GC_VERBOSE=1 prints each; below
 * MIN_MAX_GRAD the noise floor would swamp a 1% check, so that is asserted),
 * so atol = 2e-3 * max|an| + 2e-5 (the noise floor) and rtol = 1e-2 give worst
 * ratios of ~0.15 ({1:0, 3:3}) and ~0.2 ({3:1, 2:1, 0:3}), 5x headroom for
 * other BLIS kernels' rounding. Seeded bugs fail by 15x..300x (the query
 * path's gradient into the stream dropped or doubled, the proj bias ignored
 * in forward, a future mA position read); a backward that stops one block too
 * high leaves the lowest connection without gradient (MIN_MAX_GRAD). */
static void check_grads(const int (*ab)[2], int n, int heads) {
    Fx f;
    fx_init(&f, ab, n, heads, 1.0f);
    Composer *c = &f.c;
    compose_zero_grads(c);
    float loss = compose_forward(c, TOKENS, f.targets, WEIGHTS, B, T);
    compose_backward(c, f.targets, WEIGHTS);
    /* Frozen models: no gradient buffers were ever created. */
    assert_null(f.A.grads_memory);
    assert_null(f.B.grads_memory);

    LossCtx lc = {&f};
    assert_true(fabs(loss_obj(&lc) - loss) <= 1e-6 * fabs(loss));

    float *an = xalloc_floats(c->num_params);
    memcpy(an, c->grads, c->num_params * sizeof(float));
    int failed = 0;
    double worst = 0;
    for (int k = 0; k < c->n_info; k++) {
        const ParamInfo *p = &c->info[k];
        float *x = c->params + p->offset;
        const float *g = an + p->offset;
        if (!(gc_max_abs(g, p->numel) >= MIN_MAX_GRAD)) /* every tensor receives (checkable) gradient */
            fail_msg("%s: max|grad| %.3g < %.0e", p->name, gc_max_abs(g, p->numel), MIN_MAX_GRAD);
        assert_true(gc_all_finite(g, p->numel));
        GcOpts o = GC_COMPOSE;
        o.h = FD_REL * (float)rms(x, p->numel);
        o.seed = 100 + (uint64_t)k;
        assert_true(o.h > 0);
        char what[128];
        snprintf(what, sizeof what, "H=%d %s", c->H, p->name);
        double w = gc_check(what, loss_obj, &lc, x, g, p->numel, &o);
        failed += !(w <= 1);
        worst = w > worst ? w : worst;
    }
    print_message("gradcheck H=%d %d connections: worst ratio %.3g over %d tensors\n", c->H, n, worst, c->n_info);
    assert_int_equal(failed, 0);

    /* Backward accumulates: a second forward+backward doubles the gradients. */
    compose_forward(c, TOKENS, f.targets, WEIGHTS, B, T);
    compose_backward(c, f.targets, WEIGHTS);
    assert_true(gc_twice_ratio(an, c->grads, c->num_params) <= 1);
    free(an);
    fx_free(&f);
}

static void test_grad_two_connections(void **state) {
    (void)state;
    check_grads(WIRE1, 2, 0);
}

static void test_grad_shared_block(void **state) {
    (void)state;
    check_grads(WIRE2, 3, 2);
}

/* ------------------------------------------------------------ step 0 */

/* o_proj = 0 adds exactly +0.0 to mB's stream, and the hook runs the same
 * forward code as a plain model_forward: the logits must be the same bits. */
static void check_identity(const int (*ab)[2], int n, int heads) {
    Fx f;
    fx_init(&f, ab, n, heads, 0.0f);
    Composer *c = &f.c;
    for (int k = 0; k < c->n_info; k++) {
        const ParamInfo *p = &c->info[k];
        double r = rms(c->params + p->offset, p->numel);
        if (strstr(p->name, "o_proj") || p->ndim == 1)
            assert_true(r == 0.0);
        else /* N(0, 1/fan_in) */
            assert_true(fabs(r * sqrt((double)p->shape[1]) - 1.0) < 0.15);
    }
    const size_t NV = (size_t)N * V;
    float *ref = xalloc_floats(NV);
    float lref = model_forward(&f.B, TOKENS, f.targets, WEIGHTS, B, T, NULL, NULL);
    memcpy(ref, f.B.acts.logits, NV * sizeof(float));
    float lc = compose_forward(c, TOKENS, f.targets, WEIGHTS, B, T);
    assert_memory_equal(f.B.acts.logits, ref, NV * sizeof(float));
    assert_memory_equal(&lc, &lref, sizeof(float));
    /* ... and the cross-attention really ran (the identity is not vacuous). */
    for (int i = 0; i < c->cfg.n_conn; i++) assert_true(rms(c->acts[i].att, (size_t)N * DB) > 1e-2);

    /* Control: the same comparison sees a single nonzero o_proj entry. */
    c->p[0].wo[3] = 1e-3f;
    compose_forward(c, TOKENS, f.targets, WEIGHTS, B, T);
    assert_true(memcmp(f.B.acts.logits, ref, NV * sizeof(float)) != 0);
    free(ref);
    fx_free(&f);
}

static void test_step0_identity(void **state) {
    (void)state;
    check_identity(WIRE1, 2, 0);
    check_identity(WIRE2, 3, 2);
    ModelConfig ca, cb;
    augment_config(&ca, V);
    anchor_config(&cb, V);
    ComposeConfig d;
    compose_default_connections(&ca, &cb, &d);
    int ab[COMPOSE_MAX_CONN][2];
    for (int i = 0; i < d.n_conn; i++) ab[i][0] = d.conn[i].a, ab[i][1] = d.conn[i].b;
    check_identity((const int(*)[2])ab, d.n_conn, 0);
}

/* ------------------------------------------------------------ causality */

/* Bitwise: every op is row-local (linears, norms, loss) or causal with the
 * masked probabilities exactly 0, and 0 * v adds nothing to a float sum; BLIS
 * reduces each output element in an order fixed by the shapes, not the data.
 * So an implementation whose anchor position t reads mA positions <= t only
 * gives the same bits at t < t0; a leak of mA position t0 (non-causal mask,
 * an off-by-one, mA run on shifted tokens) changes them. */
static void test_causality(void **state) {
    (void)state;
    Fx f;
    fx_init(&f, WIRE1, 2, 0, 1.0f);
    Composer *c = &f.c;
    const size_t NV = (size_t)N * V;
    float *ref = xalloc_floats(NV), *plain = xalloc_floats(NV);
    model_forward(&f.B, TOKENS, NULL, NULL, B, T, NULL, NULL);
    memcpy(plain, f.B.acts.logits, NV * sizeof(float));
    compose_forward(c, TOKENS, NULL, NULL, B, T);
    memcpy(ref, f.B.acts.logits, NV * sizeof(float));
    /* The composition changes the logits by O(1): there is something to leak. */
    assert_true(tu_close_ratio(ref, plain, NV, 0.1, 0) > 1);

    const int t0s[] = {1, 4, 8};
    for (size_t k = 0; k < sizeof t0s / sizeof *t0s; k++) {
        int t0 = t0s[k], tok[N];
        memcpy(tok, TOKENS, sizeof tok);
        for (int b = 0; b < B; b++) tok[b * T + t0] = (tok[b * T + t0] + 37) % 259;
        compose_forward(c, tok, NULL, NULL, B, T);
        for (int b = 0; b < B; b++)
            for (int t = 0; t < T; t++) {
                const float *x = f.B.acts.logits + ((size_t)b * T + t) * V, *y = ref + ((size_t)b * T + t) * V;
                int same = memcmp(x, y, V * sizeof(float)) == 0;
                if (t < t0 && !same) fail_msg("t0=%d: logits at row %d position %d changed", t0, b, t);
                if (t == t0 && same) fail_msg("t0=%d: logits at row %d position %d did not change", t0, b, t);
            }
    }
    free(ref);
    free(plain);
    fx_free(&f);
}

/* ------------------------------------------------------------ generation */

static int argmax(const float *x, int n, double *margin) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i; /* first maximum, as sample_token */
    double second = -INFINITY;
    for (int i = 0; i < n; i++)
        if (i != best && x[i] > second) second = x[i];
    *margin = (double)x[best] - second;
    return best;
}

/* Greedy tokens from the cached decoder equal the argmax of a full
 * recomputation on the growing sequence. compose_generate returns tokens only
 * (its logits live in a cache it frees), so the logits are compared through
 * their argmax; the smallest top-1/top-2 margin met is printed: a decision
 * with margin m checks |cached - recomputed| < m/2 on those two logits. */
static void test_generate_equals_recompute(void **state) {
    (void)state;
    Fx f;
    fx_init(&f, WIRE1, 2, 0, 1.0f);
    Composer *c = &f.c;
    const int n_valid = TOK_N_SPECIAL;
    static const int prompts[3][5] = {{256, 72, 105, 33, 0}, {256, 50, 43, 51, 61}, {256, 119, 0, 0, 0}};
    static const int n_prompt[3] = {4, 5, 2};
    /* Case 3 runs into mA's max_seq_len (16): the cache holds 16 positions and
     * the last of 15 new tokens comes from the final logits. */
    static const int max_new[3] = {8, 10, 30};
    double min_margin = INFINITY;
    int decisions = 0;
    for (int p = 0; p < 3; p++) {
        int out[64], seq[64];
        int n = compose_generate(c, prompts[p], n_prompt[p], max_new[p], 0.0f, 0, 1, out);
        int cap = f.A.cfg.max_seq_len;
        int expect = n_prompt[p] + max_new[p] <= cap ? max_new[p] : cap - n_prompt[p] + 1;
        assert_true(n >= 1 && n <= expect);
        if (n < expect) assert_int_equal(out[n - 1], TOK_EOS); /* stopped early only at EOS */
        memcpy(seq, prompts[p], sizeof(int) * n_prompt[p]);
        for (int i = 0; i < n; i++) {
            int len = n_prompt[p] + i;
            compose_forward(c, seq, NULL, NULL, 1, len);
            double m;
            int want = argmax(f.B.acts.logits + (size_t)(len - 1) * V, n_valid, &m);
            if (out[i] != want)
                fail_msg("prompt %d step %d: generated %d, recomputation's argmax %d (margin %.3g)", p, i, out[i],
                         want, m);
            min_margin = m < min_margin ? m : min_margin;
            decisions++;
            seq[len] = out[i];
        }
    }
    print_message("generate: %d greedy decisions equal recomputation (smallest margin %.3g)\n", decisions,
                  min_margin);
    assert_true(decisions >= 10);
    fx_free(&f);
}

/* The three prompts decoded together in lockstep (compose_generate_batch)
 * give each the tokens it gets alone: prompts of different lengths, one
 * sequence that runs into the context cap while the others stop earlier. */
static void test_generate_batch_equals_single(void **state) {
    (void)state;
    Fx f;
    fx_init(&f, WIRE1, 2, 0, 1.0f);
    static const int prompts[3][5] = {{256, 72, 105, 33, 0}, {256, 50, 43, 51, 61}, {256, 119, 0, 0, 0}};
    static const int n_prompt[3] = {4, 5, 2}, max_new[3] = {8, 10, 30};
    int single[3][64], n_single[3], batch[3][64];
    GenSeq seqs[3];
    for (int p = 0; p < 3; p++) {
        n_single[p] = compose_generate(&f.c, prompts[p], n_prompt[p], max_new[p], 0.0f, 0, 1, single[p]);
        seqs[p] = (GenSeq){prompts[p], n_prompt[p], max_new[p], batch[p], -1};
    }
    GenOpts o = {0.0f, 0, 1, -1, TOK_N_SPECIAL, TOK_EOS};
    long total = compose_generate_batch(&f.c, seqs, 3, &o);
    assert_int_equal(total, n_single[0] + n_single[1] + n_single[2]);
    for (int p = 0; p < 3; p++) {
        assert_int_equal(seqs[p].n_out, n_single[p]);
        for (int i = 0; i < n_single[p]; i++)
            if (batch[p][i] != single[p][i])
                fail_msg("prompt %d token %d: %d in the batch, %d alone", p, i, batch[p][i], single[p][i]);
    }
    fx_free(&f);
}

/* ------------------------------------------------------------ frozen weights */

static void test_frozen_weights(void **state) {
    (void)state;
    Fx f;
    fx_init(&f, WIRE1, 2, 0, 0.0f); /* as training starts: o_proj = 0 */
    Composer *c = &f.c;
    float *a0 = xalloc_floats(f.A.num_params), *b0 = xalloc_floats(f.B.num_params);
    float *c0 = xalloc_floats(c->num_params);
    memcpy(a0, f.A.params_memory, f.A.num_params * sizeof(float));
    memcpy(b0, f.B.params_memory, f.B.num_params * sizeof(float));
    memcpy(c0, c->params, c->num_params * sizeof(float));
    float *m = xcalloc(c->num_params, sizeof(float)), *v = xcalloc(c->num_params, sizeof(float));
    OptimConfig o;
    optim_config_default(&o);
    o.lr = 1e-2f;
    float first = 0, last = 0;
    for (int step = 1; step <= 6; step++) {
        compose_zero_grads(c);
        last = compose_forward(c, TOKENS, f.targets, WEIGHTS, B, T);
        if (step == 1) first = last;
        compose_backward(c, f.targets, WEIGHTS);
        adamw_update(c->params, c->grads, m, v, c->num_params, step, o.lr, &o, o.weight_decay);
    }
    assert_memory_equal(f.A.params_memory, a0, f.A.num_params * sizeof(float));
    assert_memory_equal(f.B.params_memory, b0, f.B.num_params * sizeof(float));
    assert_null(f.A.grads_memory);
    assert_null(f.B.grads_memory);
    for (int k = 0; k < c->n_info; k++) { /* every composition tensor moved */
        const ParamInfo *p = &c->info[k];
        if (memcmp(c->params + p->offset, c0 + p->offset, p->numel * sizeof(float)) == 0)
            fail_msg("%s did not change in training", p->name);
    }
    print_message("frozen: composition loss %.4f -> %.4f over 6 AdamW steps\n", first, last);
    assert_true(last < first);

    /* mA runs only up to its highest connected block (a = 3 here is its last;
     * rewire to a_max = 1): the stream after blocks 2 and 3 is never written. */
    compose_free(c);
    static const int w[2][2] = {{0, 0}, {1, 2}};
    ComposeConfig cfg;
    set_conns(&cfg, w, 2, 0);
    assert_int_equal(compose_init(c, &f.A, &f.B, &cfg), 0);
    compose_init_random(c, 3);
    compose_forward(c, TOKENS, NULL, NULL, B, T);
    float *hi = f.A.acts.resid + (size_t)3 * N * DA; /* resid[3], resid[4] */
    for (size_t i = 0; i < (size_t)2 * N * DA; i++) hi[i] = NAN;
    compose_forward(c, TOKENS, NULL, NULL, B, T);
    for (size_t i = 0; i < (size_t)2 * N * DA; i++)
        if (!isnan(hi[i])) fail_msg("mA ran a block above its highest connection (resid[%zu] written)", 3 + i / (N * DA));
    free(a0), free(b0), free(c0), free(m), free(v);
    fx_free(&f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grad_two_connections),
        cmocka_unit_test(test_grad_shared_block),
        cmocka_unit_test(test_step0_identity),
        cmocka_unit_test(test_causality),
        cmocka_unit_test(test_generate_equals_recompute),
        cmocka_unit_test(test_generate_batch_equals_single),
        cmocka_unit_test(test_frozen_weights),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
