/* test_model_grad.c: finite-difference checks of model_backward as a whole.
 *
 * A tiny Llama (C=16, L=2, NH=4, NKV=2, HS=4, F=24, V=259 untied / 320 tied,
 * B=2, T=5) whose loss is differentiated numerically with respect to a random
 * sample of coordinates of EVERY parameter tensor, the residual stream at the
 * input (resid[0], through the embedding rows) and after block 0 (resid[1],
 * through a forward hook), and compared with model_backward.
 *
 * Conditioning. model_init_random's N(0, 0.02) weights give logits ~ 0 and
 * gradients of ~1e-5, below what a float forward can resolve by finite
 * differences. test_param_table checks that init; the gradient tests redraw
 * the weights at unit gain (N(0, 1/fan_in), norms 1 + N(0, 0.2^2)), so every
 * activation is O(1), and set every 11th weight to exactly 0. The per-token
 * loss weights include zeros and unequal values.
 *
 * Noise. The loss (~log V = 5.6) is recomputed in double from the float
 * per-token losses; what is left is the forward's own float rounding, a few
 * 1e-7 per evaluation. Central differences with h = 2e-2 of the tensor's rms
 * turn that into ~1e-4 of absolute error at most (measured: the worst
 * |fd - an| over every check is ~7e-5); the truncation h^2 f'''/6 is ~1e-4
 * relative with O(1) activations. Hence atol = 5e-3 * max|an| (>= 2.5e-4:
 * every tensor here has max|an| >= 0.05) and rtol = 2e-2; the worst ratio
 * seen is 0.12, while every seeded mistake tried (dropped residual or RoPE
 * gradient, wrong saved input, ignored token weights, tied head gradient lost)
 * fails by factors of 10 or more.
 */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/blas.h"
#include "src/common.h"
#include "gradcheck.h"
#include "src/model.h"
#include "src/rng.h"

enum { B = 2, T = 5, N = B * T, C = 16, L = 2 };

static const float FD_REL = 2e-2f; /* FD step relative to the rms of what is perturbed */
static const GcOpts GC_MODEL = {.h = 0, .stencil = 2, .atol_frac = 5e-3, .atol_min = 0, .rtol = 2e-2,
                                .max_coords = 50, .seed = 3};

/* Token 256 (BOS) and 108 appear twice, every other token once. */
static const int TOKENS[N] = {256, 72, 101, 108, 108, 256, 119, 111, 33, 10};
static const float WEIGHTS[N] = {1.0f, 0.5f, 0.0f, 1.0f, 2.0f, 1.0f, 0.0f, 1.0f, 1.0f, 1.5f};

typedef struct {
    Model m;
    int targets[N];
} Fixture;

static void tiny_config(ModelConfig *c, int tied) {
    model_config_default(c);
    c->dim = C;
    c->n_layers = L;
    c->n_heads = 4;
    c->n_kv_heads = 2;
    c->head_dim = 4;
    c->hidden_dim = 24;
    c->vocab_size = tied ? 320 : 259;
    c->max_seq_len = 16;
    c->norm_eps = 1e-5f;
    c->rope_theta = 10000.0f;
    c->tie_embeddings = tied;
}

static const ParamInfo *find_param(const Model *m, const char *name) {
    int n;
    const ParamInfo *pt = model_param_table(m, &n);
    for (int i = 0; i < n; i++)
        if (strcmp(pt[i].name, name) == 0) return &pt[i];
    fail_msg("parameter %s missing from model_param_table", name);
    return NULL;
}

/* Unit-gain weights with some exact zeros (see the header comment). */
static void redraw_params(Model *m, uint64_t seed) {
    int n;
    const ParamInfo *pt = model_param_table(m, &n);
    for (int i = 0; i < n; i++) {
        float *x = m->params_memory + pt[i].offset;
        gc_randn(x, pt[i].numel, seed + i, pt[i].ndim == 1 ? 0.2f : 1.0f / sqrtf((float)pt[i].shape[1]));
        for (size_t j = 0; j < pt[i].numel; j++) {
            if (pt[i].ndim == 1) x[j] += 1.0f;
            if (j % 11 == 5) x[j] = 0.0f;
        }
    }
}

static void fixture_init(Fixture *f, int tied, int alloc_grads) {
    ModelConfig c;
    tiny_config(&c, tied);
    assert_int_equal(model_config_validate(&c, "test"), 0);
    assert_int_equal(model_init(&f->m, &c), 0);
    model_init_random(&f->m, 1234);
    redraw_params(&f->m, 99);
    if (alloc_grads) model_alloc_grads(&f->m);
    gc_randint(f->targets, N, 5, c.vocab_size);
}

/* The weighted mean loss, re-summed in double from the per-token losses. */
typedef struct {
    Model *m;
    const int *targets;
    ResidHook hook;
    void *hook_ctx;
    const float *G; /* optional: the objective is loss + <G, resid[g_layer+1]> */
    int g_layer;
} LossCtx;

static double loss_obj(void *p) {
    LossCtx *c = p;
    model_forward(c->m, TOKENS, c->targets, WEIGHTS, B, T, c->hook, c->hook_ctx);
    double s = 0, sw = 0;
    for (int n = 0; n < N; n++) s += c->m->acts.losses[n], sw += WEIGHTS[n];
    s /= sw;
    if (c->G) s += gc_dot(c->G, c->m->acts.resid + (size_t)(c->g_layer + 1) * N * C, (size_t)N * C);
    return s;
}

static void full_backward(Model *m, const int *targets, GradMode mode, int stop_layer, ResidHook hook, void *ctx) {
    if (m->grads_memory) model_zero_grads(m);
    model_forward(m, TOKENS, targets, WEIGHTS, B, T, NULL, NULL);
    model_backward(m, targets, WEIGHTS, mode, stop_layer, hook, ctx);
}

static double rms(const float *x, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)x[i] * x[i];
    return sqrt(s / n);
}

static int all_zero(const float *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (x[i] != 0.0f) return 0;
    return 1;
}

/* ------------------------------------------------------------ structure */

static void check_table(int tied) {
    Fixture f;
    ModelConfig c;
    tiny_config(&c, tied);
    assert_int_equal(model_init(&f.m, &c), 0);
    model_init_random(&f.m, 1234);
    int n;
    const ParamInfo *pt = model_param_table(&f.m, &n);
    assert_int_equal(n, 9 * L + (tied ? 2 : 3));
    size_t off = 0;
    for (int i = 0; i < n; i++) { /* contiguous, in order, shapes consistent */
        assert_int_equal(pt[i].offset, off);
        assert_int_equal(pt[i].numel, pt[i].ndim == 1 ? (size_t)pt[i].shape[0]
                                                      : (size_t)(pt[i].shape[0] * pt[i].shape[1]));
        off += pt[i].numel;
        /* model_init_random: norms exactly 1, matrices N(0, 0.02^2). */
        const float *x = f.m.params_memory + pt[i].offset;
        if (pt[i].ndim == 1)
            for (size_t j = 0; j < pt[i].numel; j++) assert_true(x[j] == 1.0f);
        else
            assert_true(fabs(rms(x, pt[i].numel) - 0.02) < 0.004);
    }
    assert_int_equal(off, f.m.num_params);

    /* The struct pointers and the table agree (the FD below relies on it). */
    const ModelParams *p = &f.m.params;
    float *base = f.m.params_memory;
    assert_ptr_equal(p->embed, base + find_param(&f.m, "model.embed_tokens.weight")->offset);
    assert_ptr_equal(p->norm, base + find_param(&f.m, "model.norm.weight")->offset);
    if (tied)
        assert_ptr_equal(p->lm_head, p->embed);
    else
        assert_ptr_equal(p->lm_head, base + find_param(&f.m, "lm_head.weight")->offset);
    model_alloc_grads(&f.m); /* the gradient struct mirrors the parameter one */
    assert_ptr_equal(f.m.grads.embed, f.m.grads_memory + (p->embed - base));
    assert_ptr_equal(f.m.grads.lm_head, f.m.grads_memory + (p->lm_head - base));
    assert_ptr_equal(f.m.grads.layers[L - 1].w_down, f.m.grads_memory + (p->layers[L - 1].w_down - base));
    for (int l = 0; l < L; l++) {
        char nm[96];
        const LayerParams *lp = &p->layers[l];
        struct {
            const char *suffix;
            float *ptr;
        } k[9] = {{"input_layernorm.weight", lp->attn_norm}, {"self_attn.q_proj.weight", lp->wq},
                  {"self_attn.k_proj.weight", lp->wk},       {"self_attn.v_proj.weight", lp->wv},
                  {"self_attn.o_proj.weight", lp->wo},       {"post_attention_layernorm.weight", lp->mlp_norm},
                  {"mlp.gate_proj.weight", lp->w_gate},      {"mlp.up_proj.weight", lp->w_up},
                  {"mlp.down_proj.weight", lp->w_down}};
        for (int j = 0; j < 9; j++) {
            snprintf(nm, sizeof nm, "model.layers.%d.%s", l, k[j].suffix);
            assert_ptr_equal(k[j].ptr, base + find_param(&f.m, nm)->offset);
        }
        assert_int_equal(find_param(&f.m, "model.layers.0.self_attn.k_proj.weight")->shape[0], 2 * 4);
    }
    model_free(&f.m);
}

static void test_param_table(void **state) {
    (void)state;
    check_table(0);
    check_table(1);
}

/* ------------------------------------------------------------ parameters */

/* FD of the loss at a sample of every tensor's coordinates vs grads_memory.
 * [V, C] tensors: a third of the sample from the rows of the input tokens and
 * a third from the rows of the targets, where the large gradients are (tied:
 * the embedding row of a target collects the lm_head gradient). */
static void check_all_params(int tied) {
    Fixture f;
    fixture_init(&f, tied, 1);
    Model *m = &f.m;
    full_backward(m, f.targets, GRAD_FULL, 0, NULL, NULL);

    /* The per-token losses are weighted, as the objective assumes. */
    LossCtx lc = {m, f.targets, NULL, NULL, NULL, 0};
    float mean = model_forward(m, TOKENS, f.targets, WEIGHTS, B, T, NULL, NULL);
    assert_true(fabs(loss_obj(&lc) - mean) <= 1e-6 * fabs(mean));

    int n;
    const ParamInfo *pt = model_param_table(m, &n);
    Rng r;
    rng_seed(&r, 77, (uint64_t)tied);
    enum { K = 12 };
    size_t idx[K];
    int failed = 0, checked = 0;
    for (int i = 0; i < n; i++) {
        float *x = m->params_memory + pt[i].offset;
        const float *an = m->grads_memory + pt[i].offset;
        size_t k = pt[i].numel < K ? pt[i].numel : K;
        for (size_t j = 0; j < k; j++) {
            if (k == pt[i].numel)
                idx[j] = j;
            else if (pt[i].shape[0] == m->cfg.vocab_size && j % 3 == 0) /* rows read by the input */
                idx[j] = (size_t)TOKENS[rng_u64(&r) % N] * C + rng_u64(&r) % C;
            else if (pt[i].shape[0] == m->cfg.vocab_size && j % 3 == 1) /* rows of the targets */
                idx[j] = (size_t)f.targets[rng_u64(&r) % N] * C + rng_u64(&r) % C;
            else
                idx[j] = rng_u64(&r) % pt[i].numel;
        }
        GcOpts o = GC_MODEL;
        o.h = FD_REL * (float)rms(x, pt[i].numel);
        char what[128];
        snprintf(what, sizeof what, "%s%s", tied ? "tied " : "", pt[i].name);
        double w = gc_check_idx(what, loss_obj, &lc, x, an, pt[i].numel, idx, k, &o);
        failed += !(w <= 1);
        checked += (int)k;
        assert_true(gc_max_abs(an, pt[i].numel) > 0); /* every tensor receives gradient */
    }
    assert_true(checked >= 50);
    assert_int_equal(failed, 0);

    if (!tied) { /* rows of tokens never seen get nothing */
        for (int v = 0; v < m->cfg.vocab_size; v++) {
            int used = 0;
            for (int t = 0; t < N; t++) used |= TOKENS[t] == v;
            if (!used) assert_true(all_zero(m->grads.embed + (size_t)v * C, C));
        }
    }
    model_free(m);
}

static void test_params_untied(void **state) {
    (void)state;
    check_all_params(0);
}

static void test_params_tied(void **state) {
    (void)state;
    check_all_params(1);
}

/* ------------------------------------------------------------ resid[0] */

/* dL/d resid[0] through the embedding rows: for a token seen once at
 * position t, d embed[tok] == dresid[t] (untied: nothing else reads the row). */
static void test_dresid_input(void **state) {
    (void)state;
    Fixture f;
    fixture_init(&f, 0, 1);
    Model *m = &f.m;
    full_backward(m, f.targets, GRAD_FULL, 0, NULL, NULL);
    float *dresid = xalloc_floats((size_t)N * C);
    memcpy(dresid, m->acts.dresid, (size_t)N * C * sizeof(float));
    assert_true(gc_max_abs(dresid, (size_t)N * C) > 0);

    LossCtx lc = {m, f.targets, NULL, NULL, NULL, 0};
    GcOpts o = GC_MODEL;
    o.h = FD_REL * (float)rms(m->params.embed, (size_t)m->cfg.vocab_size * C);
    int failed = 0;
    for (int t = 0; t < N; t++) {
        int tok = TOKENS[t], count = 0;
        for (int s = 0; s < N; s++) count += TOKENS[s] == tok;
        float *row = m->params.embed + (size_t)tok * C;
        if (count == 1) {
            char what[64];
            snprintf(what, sizeof what, "dresid[0] at t=%d (token %d)", t, tok);
            size_t idx[C];
            for (int c = 0; c < C; c++) idx[c] = (size_t)c;
            /* atol from the whole dresid, not this row */
            GcOpts ot = o;
            ot.atol_frac = 0;
            ot.atol_min = o.atol_frac * gc_max_abs(dresid, (size_t)N * C);
            failed += !(gc_check_idx(what, loss_obj, &lc, row, dresid + (size_t)t * C, C, idx, C, &ot) <= 1);
            /* the embedding gradient is that row, exactly summed */
            assert_true(tu_close_ratio(m->grads.embed + (size_t)tok * C, dresid + (size_t)t * C, C, 1e-7, 1e-6) <=
                        1);
        } else { /* a repeated token collects every position */
            float sum[C] = {0};
            for (int s = 0; s < N; s++)
                if (TOKENS[s] == tok)
                    for (int c = 0; c < C; c++) sum[c] += dresid[(size_t)s * C + c];
            assert_true(tu_close_ratio(m->grads.embed + (size_t)tok * C, sum, C, 1e-7, 1e-5) <= 1);
        }
    }
    assert_int_equal(failed, 0);
    free(dresid);
    model_free(m);
}

/* ------------------------------------------------------------ modes */

static void check_input_mode(int tied) {
    Fixture f, g;
    fixture_init(&f, tied, 1);
    fixture_init(&g, tied, 0); /* same weights, never had gradients */
    Model *m = &f.m;
    size_t nr = (size_t)N * C;

    full_backward(m, f.targets, GRAD_FULL, 0, NULL, NULL);
    float *d_full = xalloc_floats(nr), *grads = xalloc_floats(m->num_params);
    memcpy(d_full, m->acts.dresid, nr * sizeof(float));
    memcpy(grads, m->grads_memory, m->num_params * sizeof(float));
    assert_true(gc_max_abs(d_full, nr) > 0);

    /* Frozen: the same dresid (up to GEMM rounding; the weight-gradient work
     * is skipped, not the input-gradient work), parameter gradients untouched. */
    full_backward(m, f.targets, GRAD_INPUT, 0, NULL, NULL);
    assert_true(tu_close_ratio(m->acts.dresid, d_full, nr, 1e-6 * gc_max_abs(d_full, nr), 1e-5) <= 1);
    assert_true(all_zero(m->grads_memory, m->num_params));

    /* ... also with no gradient buffers at all. */
    assert_null(g.m.grads_memory);
    full_backward(&g.m, f.targets, GRAD_INPUT, 0, NULL, NULL);
    assert_true(tu_close_ratio(g.m.acts.dresid, d_full, nr, 1e-6 * gc_max_abs(d_full, nr), 1e-5) <= 1);

    /* Accumulation across micro-batches: two forward+backward = 2x. */
    model_zero_grads(m);
    for (int rep = 0; rep < 2; rep++) {
        model_forward(m, TOKENS, f.targets, WEIGHTS, B, T, NULL, NULL);
        model_backward(m, f.targets, WEIGHTS, GRAD_FULL, 0, NULL, NULL);
    }
    assert_true(gc_twice_ratio(grads, m->grads_memory, m->num_params) <= 1);

    /* NULL weights == all ones. */
    float ones[N];
    for (int i = 0; i < N; i++) ones[i] = 1.0f;
    model_zero_grads(m);
    float l1 = model_forward(m, TOKENS, f.targets, ones, B, T, NULL, NULL);
    model_backward(m, f.targets, ones, GRAD_FULL, 0, NULL, NULL);
    memcpy(grads, m->grads_memory, m->num_params * sizeof(float));
    model_zero_grads(m);
    float l2 = model_forward(m, TOKENS, f.targets, NULL, B, T, NULL, NULL);
    model_backward(m, f.targets, NULL, GRAD_FULL, 0, NULL, NULL);
    assert_true(fabsf(l1 - l2) <= 1e-6f * fabsf(l1));
    assert_true(tu_close_ratio(m->grads_memory, grads, m->num_params,
                               1e-6 * gc_max_abs(grads, m->num_params), 1e-5) <= 1);

    free(d_full), free(grads);
    model_free(m);
    model_free(&g.m);
}

static void test_input_mode_untied(void **state) {
    (void)state;
    check_input_mode(0);
}

static void test_input_mode_tied(void **state) {
    (void)state;
    check_input_mode(1);
}

/* ------------------------------------------------------------ hooks, stop_layer */

/* Forward hook adding delta[layer] to resid[layer+1]: the FD handle on the
 * residual stream after a block. */
typedef struct {
    float *delta[L];
} AddHook;

static void add_hook(void *ctx, int layer, float *resid, int b, int t) {
    AddHook *h = ctx;
    assert_true(layer >= 0 && layer < L && b == B && t == T);
    for (int i = 0; i < N * C; i++) resid[i] += h->delta[layer][i];
}

/* Backward hook recording the gradient it is shown for each layer. */
typedef struct {
    float *grad[L];
    int calls[L];
} CaptureHook;

static void capture_hook(void *ctx, int layer, float *dresid, int b, int t) {
    CaptureHook *h = ctx;
    assert_true(layer >= 0 && layer < L && b == B && t == T);
    memcpy(h->grad[layer], dresid, (size_t)N * C * sizeof(float));
    h->calls[layer]++;
}

static void check_stop_layer(int tied) {
    Fixture f;
    fixture_init(&f, tied, 1);
    Model *m = &f.m;
    size_t nr = (size_t)N * C;

    /* Whole backward with a capturing hook; keep the gradients. */
    CaptureHook cap = {{xalloc_floats(nr), xalloc_floats(nr)}, {0, 0}};
    full_backward(m, f.targets, GRAD_FULL, 0, capture_hook, &cap);
    for (int l = 0; l < L; l++) assert_int_equal(cap.calls[l], 1);
    float *grads = xalloc_floats(m->num_params);
    memcpy(grads, m->grads_memory, m->num_params * sizeof(float));

    /* FD of the loss in resid[l+1] (hook perturbation) vs the hook's view. */
    AddHook add = {{xalloc_floats(nr), xalloc_floats(nr)}};
    LossCtx lc = {m, f.targets, add_hook, &add, NULL, 0};
    for (int l = 0; l < L; l++) {
        GcOpts o = GC_MODEL;
        model_forward(m, TOKENS, f.targets, WEIGHTS, B, T, NULL, NULL);
        o.h = FD_REL * (float)rms(m->acts.resid + (size_t)(l + 1) * nr, nr);
        char what[64];
        snprintf(what, sizeof what, "%sdresid[%d] (backward hook)", tied ? "tied " : "", l + 1);
        assert_true(gc_check(what, loss_obj, &lc, add.delta[l], cap.grad[l], nr, &o) <= 1);
    }

    /* stop_layer = 1: dresid is dL/d resid[1]; only block 1 and above get
     * gradients, and exactly the ones the whole backward gave them. The hook
     * still sees every gradient down to resid[1], once each. */
    for (int mode = GRAD_FULL; mode <= GRAD_INPUT; mode++) {
        CaptureHook c1 = {{xalloc_floats(nr), xalloc_floats(nr)}, {0, 0}};
        full_backward(m, f.targets, (GradMode)mode, 1, capture_hook, &c1);
        for (int l = 0; l < L; l++) {
            assert_int_equal(c1.calls[l], 1);
            assert_true(tu_close_ratio(c1.grad[l], cap.grad[l], nr, 1e-6 * gc_max_abs(cap.grad[l], nr), 1e-5) <= 1);
        }
        free(c1.grad[0]), free(c1.grad[1]);
        assert_true(tu_close_ratio(m->acts.dresid, cap.grad[0], nr, 1e-6 * gc_max_abs(cap.grad[0], nr), 1e-5) <=
                    1);
        int n;
        const ParamInfo *pt = model_param_table(m, &n);
        for (int i = 0; i < n; i++) {
            const float *g = m->grads_memory + pt[i].offset, *ref = grads + pt[i].offset;
            int below = strncmp(pt[i].name, "model.layers.0.", 15) == 0 ||
                        (!tied && strcmp(pt[i].name, "model.embed_tokens.weight") == 0);
            if (mode == GRAD_INPUT || below)
                assert_true(all_zero(g, pt[i].numel));
            else if (!(tied && g == m->grads.embed)) /* tied: only the lm_head half */
                assert_true(tu_close_ratio(g, ref, pt[i].numel, 1e-6 * gc_max_abs(ref, pt[i].numel), 1e-5) <= 1);
        }
    }

    free(cap.grad[0]), free(cap.grad[1]), free(add.delta[0]), free(add.delta[1]), free(grads);
    model_free(m);
}

static void test_stop_layer_untied(void **state) {
    (void)state;
    check_stop_layer(0);
}

static void test_stop_layer_tied(void **state) {
    (void)state;
    check_stop_layer(1);
}

/* A backward hook may add to the gradient it is shown (composition adds the
 * cross-attention's contribution there). Adding G at layer l must give the
 * gradients of loss + <G, resid[l+1]>, in every tensor below that point and
 * in dresid[0]; with stop_layer = l + 1 the result is dL/d resid[l+1] + G. */
typedef struct {
    int layer;
    const float *G;
} AddGradHook;

static void add_grad_hook(void *ctx, int layer, float *dresid, int b, int t) {
    AddGradHook *h = ctx;
    if (layer == h->layer)
        for (int i = 0; i < N * C; i++) dresid[i] += h->G[i];
}

static void test_backward_hook_adds(void **state) {
    (void)state;
    Fixture f;
    fixture_init(&f, 0, 1);
    Model *m = &f.m;
    size_t nr = (size_t)N * C;
    float *G = xalloc_floats(nr), *d1 = xalloc_floats(nr);
    gc_randn(G, nr, 321, 0.05f); /* the size of dL/d resid here */

    /* stop_layer = 1: the hook at layer 0 runs last, on dL/d resid[1]. */
    full_backward(m, f.targets, GRAD_INPUT, 1, NULL, NULL);
    memcpy(d1, m->acts.dresid, nr * sizeof(float));
    AddGradHook ah = {0, G};
    full_backward(m, f.targets, GRAD_INPUT, 1, add_grad_hook, &ah);
    for (size_t i = 0; i < nr; i++) assert_true(fabsf(m->acts.dresid[i] - (d1[i] + G[i])) <= 1e-6f);

    /* Whole backward, G added at layer 0: FD of loss + <G, resid[1]> in the
     * block-0 weights and the embedding rows. */
    full_backward(m, f.targets, GRAD_FULL, 0, add_grad_hook, &ah);
    LossCtx lc = {m, f.targets, NULL, NULL, G, 0};
    Rng r;
    rng_seed(&r, 41, 0);
    int n, failed = 0;
    const ParamInfo *pt = model_param_table(m, &n);
    for (int i = 0; i < n; i++) {
        if (strncmp(pt[i].name, "model.layers.0.", 15) != 0 && strcmp(pt[i].name, "model.embed_tokens.weight") != 0)
            continue;
        float *x = m->params_memory + pt[i].offset;
        GcOpts o = GC_MODEL;
        o.h = FD_REL * (float)rms(x, pt[i].numel);
        enum { K = 12 };
        size_t idx[K], k = pt[i].numel < K ? pt[i].numel : K;
        for (size_t j = 0; j < k; j++) /* embedding: the rows in use */
            idx[j] = k == pt[i].numel ? j
                     : x == m->params.embed ? (size_t)TOKENS[rng_u64(&r) % N] * C + rng_u64(&r) % C
                                            : rng_u64(&r) % pt[i].numel;
        char what[128];
        snprintf(what, sizeof what, "hook+G %s", pt[i].name);
        failed += !(gc_check_idx(what, loss_obj, &lc, x, m->grads_memory + pt[i].offset, pt[i].numel, idx, k, &o) <= 1);
    }
    assert_int_equal(failed, 0);
    free(G), free(d1);
    model_free(m);
}

int main(void) {
    calm_quiet = 1;
    calm_blas_init(0); /* threads from CALM_THREADS (ctest sets 1) */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_param_table),       cmocka_unit_test(test_params_untied),
        cmocka_unit_test(test_params_tied),       cmocka_unit_test(test_dresid_input),
        cmocka_unit_test(test_input_mode_untied), cmocka_unit_test(test_input_mode_tied),
        cmocka_unit_test(test_stop_layer_untied), cmocka_unit_test(test_stop_layer_tied),
        cmocka_unit_test(test_backward_hook_adds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
