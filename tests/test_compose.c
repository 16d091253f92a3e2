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
 *   bad input   vocabularies, layer indices, heads, order, malformed
 *               --connections, a changed or missing model under a saved
 *               composition, bad connections in calm_config.json;
 *   directories save/load round trip (parameters and logits bitwise).
 */
#define _GNU_SOURCE
#include "testutil.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blas.h"
#include "checkpoint.h"
#include "common.h"
#include "compose.h"
#include "gradcheck.h"
#include "model.h"
#include "optim.h"
#include "tokenizer.h"

enum { B = 2, T = 9, N = B * T, V = 320, DA = 24, DB = 32, L = 4 };

/* Token 256 (BOS) starts both rows; 108 repeats. */
static const int TOKENS[N] = {256, 72, 101, 108, 108, 111, 44, 32, 119, /* row 0 */
                              256, 67, 65, 76, 77, 33, 10, 300, 97};   /* row 1 (300: padded-vocab id) */
static const float WEIGHTS[N] = {0.0f, 1.0f, 0.5f, 1.0f, 1.0f, 2.0f, 1.0f, 0.0f, 1.0f,
                                 1.0f, 1.0f, 1.0f, 0.5f, 1.0f, 1.0f, 1.5f, 1.0f, 1.0f};

typedef struct {
    Model A, B;
    Composer c;
    int targets[N];
} Fx;

static void anchor_config(ModelConfig *c, int vocab) {
    model_config_default(c);
    c->dim = DB;
    c->n_layers = L;
    c->n_heads = 4;
    c->n_kv_heads = 2;
    c->head_dim = DB / 4;
    c->hidden_dim = 48;
    c->vocab_size = vocab;
    c->max_seq_len = 64;
}

static void augment_config(ModelConfig *c, int vocab) {
    model_config_default(c);
    c->dim = DA;
    c->n_layers = L;
    c->n_heads = 2;
    c->n_kv_heads = 2;
    c->head_dim = DA / 2;
    c->hidden_dim = 40;
    c->vocab_size = vocab;
    c->max_seq_len = 16; /* smaller than mB's: compose_generate's cache cap comes from mA */
}

static double rms(const float *x, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)x[i] * x[i];
    return sqrt(s / (double)n);
}

/* model_init_random, then unit gain (see the header comment). */
static void make_model(Model *m, const ModelConfig *cfg, uint64_t seed) {
    assert_int_equal(model_config_validate(cfg, "test"), 0);
    assert_int_equal(model_init(m, cfg), 0);
    model_init_random(m, seed);
    int n;
    const ParamInfo *pt = model_param_table(m, &n);
    for (int i = 0; i < n; i++) {
        float *x = m->params_memory + pt[i].offset;
        gc_randn(x, pt[i].numel, seed * 100 + (uint64_t)i, pt[i].ndim == 1 ? 0.2f : 1.0f / sqrtf((float)pt[i].shape[1]));
        if (pt[i].ndim == 1)
            for (size_t j = 0; j < pt[i].numel; j++) x[j] += 1.0f;
    }
}

static const ParamInfo *cinfo(const Composer *c, int conn, const char *suffix) {
    char name[96];
    snprintf(name, sizeof name, "calm.connections.%d.%s", conn, suffix);
    for (int k = 0; k < c->n_info; k++)
        if (strcmp(c->info[k].name, name) == 0) return &c->info[k];
    fail_msg("composition tensor %s missing", name);
    return NULL;
}

/* o_proj ~ N(0, (o_gain)^2 / dB) and proj bias ~ N(0, 0.1^2), so that the
 * cross-attention contributes and every tensor receives gradient. */
static void perturb_o(Composer *c, float o_gain, uint64_t seed) {
    for (int i = 0; i < c->cfg.n_conn; i++) {
        const ParamInfo *o = cinfo(c, i, "o_proj.weight"), *b = cinfo(c, i, "proj.bias");
        gc_randn(c->params + o->offset, o->numel, seed + 2 * (uint64_t)i, o_gain / sqrtf((float)c->dB));
        gc_randn(c->params + b->offset, b->numel, seed + 2 * (uint64_t)i + 1, 0.1f);
    }
}

static void set_conns(ComposeConfig *cfg, const int (*ab)[2], int n, int heads) {
    memset(cfg, 0, sizeof *cfg);
    cfg->n_conn = n;
    cfg->n_heads = heads;
    for (int i = 0; i < n; i++) cfg->conn[i].a = ab[i][0], cfg->conn[i].b = ab[i][1];
}

static const int WIRE1[2][2] = {{1, 0}, {3, 3}};          /* b = 0 and b = NB-1 */
static const int WIRE2[3][2] = {{3, 1}, {2, 1}, {0, 3}}; /* two into block 1, unordered a */

static void fx_init(Fx *f, const int (*ab)[2], int n, int heads, float o_gain) {
    memset(f, 0, sizeof *f);
    calm_blas_init(0);
    ModelConfig ca, cb;
    augment_config(&ca, V);
    anchor_config(&cb, V);
    make_model(&f->A, &ca, 11);
    make_model(&f->B, &cb, 22);
    ComposeConfig cfg;
    set_conns(&cfg, ab, n, heads);
    if (compose_init(&f->c, &f->A, &f->B, &cfg) != 0) fail_msg("compose_init: %s", calm_last_error());
    compose_init_random(&f->c, 33);
    if (o_gain > 0) perturb_o(&f->c, o_gain, 44);
    gc_randint(f->targets, N, 5, V);
}

static void fx_free(Fx *f) {
    compose_free(&f->c);
    model_free(&f->A);
    model_free(&f->B);
}

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
    GenOpts o = {0.0f, 0, 1, -1};
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
    assert_memory_equal(A2.params_memory, f.A.params_memory, f.A.num_params * sizeof(float));
    assert_memory_equal(B2.params_memory, f.B.params_memory, f.B.num_params * sizeof(float));
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
        cmocka_unit_test(test_grad_two_connections),
        cmocka_unit_test(test_grad_shared_block),
        cmocka_unit_test(test_step0_identity),
        cmocka_unit_test(test_causality),
        cmocka_unit_test(test_generate_equals_recompute),
        cmocka_unit_test(test_generate_batch_equals_single),
        cmocka_unit_test(test_frozen_weights),
        cmocka_unit_test(test_bad_models_and_connections),
        cmocka_unit_test(test_parse_connections),
        cmocka_unit_test(test_default_connections),
        cmocka_unit_test(test_save_load_roundtrip),
        cmocka_unit_test(test_changed_model),
        cmocka_unit_test(test_bad_config_connections),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
