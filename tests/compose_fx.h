/* compose_fx.h: the tiny random models and the composition fixture of
 * test_compose.c and test_compose_io.c (test_compose.c describes them).
 * Header-only (static inline): tests/CMakeLists.txt links each test from
 * <test>.c and testutil.c alone. */
#ifndef CALM_TEST_COMPOSE_FX_H
#define CALM_TEST_COMPOSE_FX_H

#include "testutil.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/blas.h"
#include "src/files.h"
#include "src/modeldir.h"
#include "src/common.h"
#include "src/compose.h"
#include "gradcheck.h"
#include "src/model.h"
#include "src/optim.h"
#include "src/tokenizer.h"

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

static inline void anchor_config(ModelConfig *c, int vocab) {
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

static inline void augment_config(ModelConfig *c, int vocab) {
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

static inline double rms(const float *x, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)x[i] * x[i];
    return sqrt(s / (double)n);
}

/* model_init_random, then unit gain (see the header comment). */
static inline void make_model(Model *m, const ModelConfig *cfg, uint64_t seed) {
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
static inline void perturb_o(Composer *c, float o_gain, uint64_t seed) {
    for (int i = 0; i < c->cfg.n_conn; i++) {
        const ParamInfo *o = cinfo(c, i, "o_proj.weight"), *b = cinfo(c, i, "proj.bias");
        gc_randn(c->params + o->offset, o->numel, seed + 2 * (uint64_t)i, o_gain / sqrtf((float)c->dB));
        gc_randn(c->params + b->offset, b->numel, seed + 2 * (uint64_t)i + 1, 0.1f);
    }
}

static inline void set_conns(ComposeConfig *cfg, const int (*ab)[2], int n, int heads) {
    memset(cfg, 0, sizeof *cfg);
    cfg->n_conn = n;
    cfg->n_heads = heads;
    for (int i = 0; i < n; i++) cfg->conn[i].a = ab[i][0], cfg->conn[i].b = ab[i][1];
}

static const int WIRE1[2][2] = {{1, 0}, {3, 3}};          /* b = 0 and b = NB-1 */
static const int WIRE2[3][2] = {{3, 1}, {2, 1}, {0, 3}}; /* two into block 1, unordered a */

static inline void fx_init(Fx *f, const int (*ab)[2], int n, int heads, float o_gain) {
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

static inline void fx_free(Fx *f) {
    compose_free(&f->c);
    model_free(&f->A);
    model_free(&f->B);
}

#endif
