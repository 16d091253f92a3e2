/* model.c: the Llama decoder, forward and backward, and KV-cache decoding. */
#include "src/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/blas.h"
#include "src/common.h"
#include "src/fastexp.h"
#include "src/layers.h"
#include "src/rng.h"
#include "src/wmat.h"

/* ------------------------------------------------------------- parameters */

/* A frozen model's matrices are mapped, so they take no room in the buffer. */
static void add_param(Model *m, int *k, size_t *off, const char *name, int64_t d0, int64_t d1) {
    ParamInfo *p = &m->param_info[(*k)++];
    snprintf(p->name, sizeof p->name, "%s", name);
    p->ndim = d1 > 0 ? 2 : 1;
    p->shape[0] = d0;
    p->shape[1] = d1 > 0 ? d1 : 0;
    p->numel = (size_t)d0 * (size_t)(d1 > 0 ? d1 : 1);
    p->mapped = m->frozen && p->ndim == 2;
    p->offset = p->mapped ? 0 : *off;
    if (!p->mapped) *off += p->numel;
}

/* The part holds the embedding when it starts the model, or when the LM
 * head it holds is tied to it. */
static int holds_embed(const Model *m) { return m->l0 == 0 || (m->has_head && m->cfg.tie_embeddings); }

/* Lay out the parameter table (HF names, flat-buffer order) of the part
 * held. Within a layer q, k, v are adjacent, as are gate and up, so each
 * group is one contiguous [rows, C] matrix. */
static void build_param_table(Model *m) {
    const ModelConfig *c = &m->cfg;
    const int64_t C = c->dim, Q = (int64_t)c->n_heads * c->head_dim, KV = (int64_t)c->n_kv_heads * c->head_dim;
    const int64_t F = c->hidden_dim, V = c->vocab_size;
    const int per_layer = 9 + (c->attention_bias ? 4 : 0);
    m->n_param_tensors = holds_embed(m) + per_layer * (m->l1 - m->l0) + (m->has_head ? 1 + !c->tie_embeddings : 0);
    m->param_info = xcalloc((size_t)m->n_param_tensors, sizeof(ParamInfo));
    int k = 0;
    size_t off = 0;
    char name[96];
    if (holds_embed(m)) add_param(m, &k, &off, "model.embed_tokens.weight", V, C);
    for (int l = m->l0; l < m->l1; l++) {
#define P(suffix, d0, d1)                                                 \
    snprintf(name, sizeof name, "model.layers.%d.%s", l, suffix);        \
    add_param(m, &k, &off, name, d0, d1)
        P("input_layernorm.weight", C, 0);
        P("self_attn.q_proj.weight", Q, C);
        P("self_attn.k_proj.weight", KV, C);
        P("self_attn.v_proj.weight", KV, C);
        P("self_attn.o_proj.weight", C, Q);
        if (c->attention_bias) {
            P("self_attn.q_proj.bias", Q, 0);
            P("self_attn.k_proj.bias", KV, 0);
            P("self_attn.v_proj.bias", KV, 0);
            P("self_attn.o_proj.bias", C, 0);
        }
        P("post_attention_layernorm.weight", C, 0);
        P("mlp.gate_proj.weight", F, C);
        P("mlp.up_proj.weight", F, C);
        P("mlp.down_proj.weight", C, F);
#undef P
    }
    if (m->has_head) {
        add_param(m, &k, &off, "model.norm.weight", C, 0);
        if (!c->tie_embeddings) add_param(m, &k, &off, "lm_head.weight", V, C);
    }
    m->num_params = off;
}

/* Table entry k in a flat buffer (NULL when it is mapped instead). */
static float *at(const Model *m, float *base, int k) {
    const ParamInfo *p = &m->param_info[k];
    return p->mapped ? NULL : base + p->offset;
}

/* Point the struct-of-pointers view at a flat buffer laid out by the table
 * (pointers of parts not held stay NULL). */
static void bind_params(const Model *m, ModelParams *p, float *base) {
    int k = 0;
    p->embed = holds_embed(m) ? at(m, base, k++) : NULL;
    for (int l = m->l0; l < m->l1; l++) {
        LayerParams *L = &p->layers[l];
        L->attn_norm = at(m, base, k++);
        L->wq = at(m, base, k++);
        L->wk = at(m, base, k++);
        L->wv = at(m, base, k++);
        L->wo = at(m, base, k++);
        if (m->cfg.attention_bias) {
            L->bq = at(m, base, k++);
            L->bk = at(m, base, k++);
            L->bv = at(m, base, k++);
            L->bo = at(m, base, k++);
        }
        L->mlp_norm = at(m, base, k++);
        L->w_gate = at(m, base, k++);
        L->w_up = at(m, base, k++);
        L->w_down = at(m, base, k++);
    }
    if (m->has_head) {
        p->norm = at(m, base, k++);
        p->lm_head = m->cfg.tie_embeddings ? p->embed : at(m, base, k++);
    }
}

/* Table entry k as the math reads it: mapped data, or F32 in the buffer. */
static WMat wm(const Model *m, int k) {
    const ParamInfo *p = &m->param_info[k];
    return p->mapped ? (WMat){p->data, p->dtype} : wmat_f32(m->params_memory + p->offset);
}

/* The typed view, in the table order bind_params walks. */
static void bind_weights(Model *m) {
    ModelWeights *w = &m->weights;
    const ModelParams *p = &m->params;
    int k = 0;
    w->embed = holds_embed(m) ? wm(m, k++) : (WMat){0};
    for (int l = m->l0; l < m->l1; l++) {
        LayerWeights *L = &w->layers[l];
        const LayerParams *P = &p->layers[l];
        L->attn_norm = P->attn_norm;
        k++;
        L->wq = wm(m, k++);
        L->wk = wm(m, k++);
        L->wv = wm(m, k++);
        L->wo = wm(m, k++);
        L->bq = P->bq, L->bk = P->bk, L->bv = P->bv, L->bo = P->bo;
        k += m->cfg.attention_bias ? 4 : 0;
        L->mlp_norm = P->mlp_norm;
        k++;
        L->w_gate = wm(m, k++);
        L->w_up = wm(m, k++);
        L->w_down = wm(m, k++);
    }
    if (m->has_head) {
        w->norm = p->norm;
        k++;
        w->lm_head = m->cfg.tie_embeddings ? w->embed : wm(m, k++);
    }
}

int model_init(Model *m, const ModelConfig *cfg) { return model_init_part(m, cfg, 0, cfg->n_layers, 1); }

static int init_part(Model *m, const ModelConfig *cfg, int l0, int l1, int head, int frozen) {
    memset(m, 0, sizeof *m);
    if (model_config_validate(cfg, "model config") != 0) return -1;
    if (l0 < 0 || l1 > cfg->n_layers || l0 > l1 || (head && l1 != cfg->n_layers))
        return calm_error("model part: blocks %d..%d%s of a %d-layer model", l0, l1 - 1, head ? " with the head" : "",
                          cfg->n_layers);
    m->cfg = *cfg;
    m->l0 = l0;
    m->l1 = l1;
    m->has_head = head;
    m->frozen = frozen;
    build_param_table(m);
    m->params_memory = xalloc_floats(m->num_params);
    m->params.layers = xcalloc((size_t)cfg->n_layers, sizeof(LayerParams));
    m->grads.layers = xcalloc((size_t)cfg->n_layers, sizeof(LayerParams));
    m->weights.layers = xcalloc((size_t)cfg->n_layers, sizeof(LayerWeights));
    bind_params(m, &m->params, m->params_memory);
    bind_weights(m);
    int half = cfg->head_dim / 2;
    m->rope_cos = xalloc_floats((size_t)cfg->max_seq_len * half);
    m->rope_sin = xalloc_floats((size_t)cfg->max_seq_len * half);
    double *inv_freq = xmalloc((size_t)half * sizeof(double));
    model_config_rope_freqs(cfg, inv_freq);
    rope_tables_freq(m->rope_cos, m->rope_sin, cfg->max_seq_len, half, inv_freq);
    free(inv_freq);
    return 0;
}

int model_init_part(Model *m, const ModelConfig *cfg, int l0, int l1, int head) {
    return init_part(m, cfg, l0, l1, head, 0);
}

int model_init_frozen_part(Model *m, const ModelConfig *cfg, int l0, int l1, int head) {
    return init_part(m, cfg, l0, l1, head, 1);
}

void model_map_tensor(Model *m, int k, const void *data, WmDtype dtype) {
    ParamInfo *p = &m->param_info[k];
    if (!p->mapped) calm_fatal(NULL, "model_map_tensor: %s is held in the buffer, not mapped", p->name);
    p->data = data;
    p->dtype = dtype;
    bind_weights(m);
}

size_t model_param_count(const Model *m) {
    size_t n = 0;
    for (int k = 0; k < m->n_param_tensors; k++) n += m->param_info[k].numel;
    return n;
}

ParamInfo *model_table_new(const ModelConfig *cfg, int *n) {
    Model m = {.cfg = *cfg, .l0 = 0, .l1 = cfg->n_layers, .has_head = 1};
    build_param_table(&m);
    *n = m.n_param_tensors;
    return m.param_info;
}

/* Linear biases start at 0, as transformers initialises them. */
static int is_bias(const ParamInfo *p) {
    size_t len = strlen(p->name);
    return len > 5 && strcmp(p->name + len - 5, ".bias") == 0;
}

void model_init_random(Model *m, uint64_t seed) {
    if (m->frozen) calm_fatal(NULL, "model_init_random on a frozen model");
    for (int k = 0; k < m->n_param_tensors; k++) {
        const ParamInfo *p = &m->param_info[k];
        float *w = m->params_memory + p->offset;
        if (p->ndim == 1) {
            float v = is_bias(p) ? 0.0f : 1.0f; /* RMSNorm gains are 1 */
            for (size_t i = 0; i < p->numel; i++) w[i] = v;
        } else {
            Rng r;
            rng_seed(&r, seed, (uint64_t)k); /* per tensor: independent of table order elsewhere */
            for (size_t i = 0; i < p->numel; i++) w[i] = 0.02f * rng_normal(&r);
        }
    }
}

void model_acts_free(Activations *a) {
    free(a->memory);
    free(a->blocks);
    memset(a, 0, sizeof *a);
}

void model_free(Model *m) {
    if (m->storage_free) m->storage_free(m->storage);
    free(m->weights.layers);
    free(m->params_memory);
    free(m->grads_memory);
    free(m->params.layers);
    free(m->grads.layers);
    free(m->param_info);
    free(m->rope_cos);
    free(m->rope_sin);
    model_acts_free(&m->acts);
    memset(m, 0, sizeof *m);
}

void model_alloc_grads(Model *m) {
    if (m->grads_memory) return;
    if (m->frozen)
        calm_fatal("load the model for training (model_load_dir), not frozen",
                   "a frozen model has no weight gradients (GRAD_FULL)");
    m->grads_memory = xalloc_floats(m->num_params);
    bind_params(m, &m->grads, m->grads_memory);
}

void model_zero_grads(Model *m) {
    if (m->grads_memory) memset(m->grads_memory, 0, m->num_params * sizeof(float));
}

const ParamInfo *model_param_table(const Model *m, int *n) {
    *n = m->n_param_tensors;
    return m->param_info;
}

/* ------------------------------------------------------------ activations */

/* The activations of blocks l0..l1-1 (and the head's when head) for [B, T]
 * in one flat buffer: counted (a == NULL) or carved from a->memory. Returns
 * the floats. */
static size_t acts_layout(Activations *a, const ModelConfig *c, int l0, int l1, int head, int B, int T) {
    const size_t N = (size_t)B * T, C = c->dim, Q = (size_t)c->n_heads * c->head_dim,
                 KV = (size_t)c->n_kv_heads * c->head_dim, F = c->hidden_dim, V = c->vocab_size,
                 PT = (size_t)B * c->n_heads * T * T, L = c->n_layers;
    Activations count_only = {0};
    Activations *d = a ? a : &count_only;
    BlockActs none;
    size_t off = 0;
#define TAKE(ptr, n)                                     \
    do {                                                 \
        if (a) (ptr) = a->memory + off;                  \
        off += ((size_t)(n) + 15) & ~(size_t)15;         \
    } while (0)
    TAKE(d->resid, (L + 1) * N * C);
    for (size_t l = (size_t)l0; l < (size_t)l1; l++) {
        BlockActs *b = a ? &a->blocks[l] : &none;
        TAKE(b->ln1, N * C);
        TAKE(b->ln1_rstd, N);
        TAKE(b->q, N * Q);
        TAKE(b->k, N * KV);
        TAKE(b->v, N * KV);
        TAKE(b->probs, PT);
        TAKE(b->att, N * Q);
        TAKE(b->mid, N * C);
        TAKE(b->ln2, N * C);
        TAKE(b->ln2_rstd, N);
        TAKE(b->gate, N * F);
        TAKE(b->up, N * F);
        TAKE(b->act, N * F);
    }
    const size_t NV = head ? N * V : 0; /* only the last part has a head */
    TAKE(d->lnf, N * C);
    TAKE(d->lnf_rstd, N);
    TAKE(d->logits, NV);
    TAKE(d->losses, N);
    TAKE(d->dresid, N * C);
    TAKE(d->dx, N * C);
    TAKE(d->dq, N * Q);
    TAKE(d->dk, N * KV);
    TAKE(d->dv, N * KV);
    TAKE(d->datt, N * Q);
    TAKE(d->dprobs, PT);
    TAKE(d->dgate, N * F);
    TAKE(d->dup, N * F);
    TAKE(d->dact, N * F);
    TAKE(d->dln, N * C);
    TAKE(d->dlogits, NV);
#undef TAKE
    return off;
}

size_t model_acts_floats(const ModelConfig *c, int l0, int l1, int head, int B, int T) {
    return acts_layout(NULL, c, l0, l1, head, B, T);
}

/* One flat allocation, counted and then carved by acts_layout. */
static void ensure_acts(Model *m, int B, int T) {
    Activations *a = &m->acts;
    if (a->memory && a->B == B && a->T == T) return;
    model_acts_free(a);
    a->B = B;
    a->T = T;
    a->blocks = xcalloc((size_t)m->cfg.n_layers, sizeof(BlockActs));
    a->numel = model_acts_floats(&m->cfg, m->l0, m->l1, m->has_head, B, T);
    a->memory = xalloc_floats(a->numel);
    acts_layout(a, &m->cfg, m->l0, m->l1, m->has_head, B, T);
}

static void add_inplace(float *y, const float *x, size_t n) {
#pragma omp parallel for
    for (size_t i = 0; i < n; i++) y[i] += x[i];
}

/* ---------------------------------------------------------------- forward */

static void block_forward(Model *m, int l, int B, int T) {
    const ModelConfig *c = &m->cfg;
    const int N = B * T, C = c->dim, NH = c->n_heads, NKV = c->n_kv_heads, HS = c->head_dim, F = c->hidden_dim;
    const LayerWeights *w = &m->weights.layers[l];
    BlockActs *a = &m->acts.blocks[l];
    const float *x = m->acts.resid + (size_t)l * N * C;
    float *out = m->acts.resid + (size_t)(l + 1) * N * C;

    rmsnorm_forward(a->ln1, a->ln1_rstd, x, w->attn_norm, N, C, c->norm_eps);
    wmat_linear_forward(a->q, a->ln1, w->wq, w->bq, N, C, NH * HS);
    wmat_linear_forward(a->k, a->ln1, w->wk, w->bk, N, C, NKV * HS);
    wmat_linear_forward(a->v, a->ln1, w->wv, w->bv, N, C, NKV * HS);
    rope_forward(a->q, m->rope_cos, m->rope_sin, B, T, NH, HS);
    rope_forward(a->k, m->rope_cos, m->rope_sin, B, T, NKV, HS);
    attention_forward(a->att, a->probs, a->q, a->k, a->v, B, T, NH, NKV, HS);
    wmat_linear_forward(a->mid, a->att, w->wo, w->bo, N, NH * HS, C);
    add_inplace(a->mid, x, (size_t)N * C);

    rmsnorm_forward(a->ln2, a->ln2_rstd, a->mid, w->mlp_norm, N, C, c->norm_eps);
    wmat_linear_forward(a->gate, a->ln2, w->w_gate, NULL, N, C, F);
    wmat_linear_forward(a->up, a->ln2, w->w_up, NULL, N, C, F);
    swiglu_forward(a->act, a->gate, a->up, (long)N * F);
    wmat_linear_forward(out, a->act, w->w_down, NULL, N, F, C);
    add_inplace(out, a->mid, (size_t)N * C);
}

static void check_seq_len(const ModelConfig *c, int T) {
    if (T > c->max_seq_len)
        calm_fatal("use a shorter --seq-len or a model with larger max_position_embeddings",
                   "sequence length %d exceeds max_position_embeddings %d", T, c->max_seq_len);
}

void model_forward_trunk(Model *m, const int *tokens, int B, int T, int n_blocks, ResidHook hook, void *hook_ctx) {
    const ModelConfig *c = &m->cfg;
    check_seq_len(c, T);
    if (m->l0 != 0) calm_fatal(NULL, "model_forward_trunk on a part without the embedding");
    ensure_acts(m, B, T);
    m->B = B;
    m->T = T;
    m->tokens = tokens;
    const size_t NC = (size_t)B * T * c->dim;
    wmat_embedding_forward(m->acts.resid, tokens, m->weights.embed, B * T, c->dim);
    for (int l = 0; l < n_blocks && l < m->l1; l++) {
        block_forward(m, l, B, T);
        if (hook) hook(hook_ctx, l, m->acts.resid + (size_t)(l + 1) * NC, B, T);
    }
}

float *model_part_input(Model *m, int B, int T) {
    ensure_acts(m, B, T);
    return m->acts.resid + (size_t)m->l0 * B * T * m->cfg.dim;
}

float *model_part_output(Model *m) { return m->acts.resid + (size_t)m->l1 * m->acts.B * m->acts.T * m->cfg.dim; }

float model_forward_part(Model *m, const int *tokens, const int *targets, const float *weights, int B, int T,
                         ResidHook hook, void *hook_ctx) {
    const ModelConfig *c = &m->cfg;
    check_seq_len(c, T);
    ensure_acts(m, B, T);
    const int N = B * T, C = c->dim, V = c->vocab_size;
    Activations *a = &m->acts;
    m->B = B;
    m->T = T;
    m->tokens = tokens;

    if (m->l0 == 0) wmat_embedding_forward(a->resid, tokens, m->weights.embed, N, C);
    for (int l = m->l0; l < m->l1; l++) {
        block_forward(m, l, B, T);
        if (hook) hook(hook_ctx, l, a->resid + (size_t)(l + 1) * N * C, B, T);
    }
    m->has_targets = targets != NULL;
    m->mean_loss = 0.0f;
    if (!m->has_head) return 0.0f;
    const float *top = a->resid + (size_t)c->n_layers * N * C;
    rmsnorm_forward(a->lnf, a->lnf_rstd, top, m->weights.norm, N, C, c->norm_eps);
    wmat_linear_forward(a->logits, a->lnf, m->weights.lm_head, NULL, N, C, V);
    m->mean_loss = targets ? crossentropy_forward(a->losses, a->logits, targets, weights, N, V) : 0.0f;
    return m->mean_loss;
}

float model_forward(Model *m, const int *tokens, const int *targets, const float *weights, int B, int T,
                    ResidHook hook, void *hook_ctx) {
    return model_forward_part(m, tokens, targets, weights, B, T, hook, hook_ctx);
}

/* --------------------------------------------------------------- backward */

/* dinp += dout W; with dw / db (GRAD_FULL, F32 weights) the weight and bias
 * gradients too. The same sgemm calls, in the same order, as
 * linear_backward. */
static void linear_back(float *dinp, float *dw, float *db, const float *dout, const float *inp, WMat w, int N, int IN,
                        int OUT) {
    wmat_linear_backward_input(dinp, dout, w, N, IN, OUT);
    if (dw || db) linear_backward(NULL, dw, db, dout, inp, NULL, N, IN, OUT);
}

/* On entry a->dresid = dL/d resid[l+1]; on exit dL/d resid[l].
 * g (NULL in GRAD_INPUT mode) receives the weight gradients. */
static void block_backward(Model *m, int l, const LayerParams *g) {
    const ModelConfig *c = &m->cfg;
    const int B = m->B, T = m->T, N = B * T, C = c->dim, NH = c->n_heads, NKV = c->n_kv_heads,
              HS = c->head_dim, F = c->hidden_dim;
    const LayerWeights *w = &m->weights.layers[l];
    BlockActs *a = &m->acts.blocks[l];
    Activations *s = &m->acts;
    const float *x = s->resid + (size_t)l * N * C;
    const size_t NC = (size_t)N * C;

    /* out = mid + down(swiglu(gate(ln2), up(ln2))), ln2 = rmsnorm(mid) */
    float *dmid = s->dx;
    memcpy(dmid, s->dresid, NC * sizeof(float));
    memset(s->dact, 0, (size_t)N * F * sizeof(float));
    linear_back(s->dact, g ? g->w_down : NULL, NULL, s->dresid, a->act, w->w_down, N, F, C);
    memset(s->dgate, 0, (size_t)N * F * sizeof(float));
    memset(s->dup, 0, (size_t)N * F * sizeof(float));
    swiglu_backward(s->dgate, s->dup, s->dact, a->gate, a->up, (long)N * F);
    memset(s->dln, 0, NC * sizeof(float));
    linear_back(s->dln, g ? g->w_gate : NULL, NULL, s->dgate, a->ln2, w->w_gate, N, C, F);
    linear_back(s->dln, g ? g->w_up : NULL, NULL, s->dup, a->ln2, w->w_up, N, C, F);
    rmsnorm_backward(dmid, g ? g->mlp_norm : NULL, s->dln, a->mid, w->mlp_norm, a->ln2_rstd, N, C);

    /* mid = x + o(attention(rope(q(ln1)), rope(k(ln1)), v(ln1))), ln1 = rmsnorm(x) */
    memcpy(s->dresid, dmid, NC * sizeof(float));
    memset(s->datt, 0, (size_t)N * NH * HS * sizeof(float));
    linear_back(s->datt, g ? g->wo : NULL, g ? g->bo : NULL, dmid, a->att, w->wo, N, NH * HS, C);
    memset(s->dq, 0, (size_t)N * NH * HS * sizeof(float));
    memset(s->dk, 0, (size_t)N * NKV * HS * sizeof(float));
    memset(s->dv, 0, (size_t)N * NKV * HS * sizeof(float));
    attention_backward(s->dq, s->dk, s->dv, s->dprobs, s->datt, a->q, a->k, a->v, a->probs, B, T, NH, NKV, HS);
    rope_backward(s->dq, m->rope_cos, m->rope_sin, B, T, NH, HS);
    rope_backward(s->dk, m->rope_cos, m->rope_sin, B, T, NKV, HS);
    memset(s->dln, 0, NC * sizeof(float));
    linear_back(s->dln, g ? g->wq : NULL, g ? g->bq : NULL, s->dq, a->ln1, w->wq, N, C, NH * HS);
    linear_back(s->dln, g ? g->wk : NULL, g ? g->bk : NULL, s->dk, a->ln1, w->wk, N, C, NKV * HS);
    linear_back(s->dln, g ? g->wv : NULL, g ? g->bv : NULL, s->dv, a->ln1, w->wv, N, C, NKV * HS);
    rmsnorm_backward(s->dresid, g ? g->attn_norm : NULL, s->dln, x, w->attn_norm, a->ln1_rstd, N, C);
}

void model_backward_part(Model *m, const int *targets, const float *weights, float grad_scale, GradMode mode,
                         int stop_layer, ResidHook hook, void *hook_ctx) {
    const ModelConfig *c = &m->cfg;
    const int N = m->B * m->T, C = c->dim, V = c->vocab_size;
    Activations *a = &m->acts;
    if (mode == GRAD_FULL && m->frozen)
        calm_fatal("load the model for training (model_load_dir), not frozen",
                   "GRAD_FULL backward of a frozen model: its weights have no gradients");
    if (mode == GRAD_FULL && !m->grads_memory) model_alloc_grads(m);
    const ModelParams *g = mode == GRAD_FULL ? &m->grads : NULL;

    if (m->has_head) {
        if (grad_scale < 0.0f) {
            double wsum = 0.0;
            for (int n = 0; n < N; n++) wsum += weights ? weights[n] : 1.0;
            grad_scale = wsum > 0.0 ? (float)(1.0 / wsum) : 0.0f;
        }
        memset(a->dlogits, 0, (size_t)N * V * sizeof(float));
        if (grad_scale > 0.0f) crossentropy_backward(a->dlogits, a->logits, targets, weights, grad_scale, N, V);
        const float *top = a->resid + (size_t)c->n_layers * N * C;
        memset(a->dln, 0, (size_t)N * C * sizeof(float));
        linear_back(a->dln, g ? g->lm_head : NULL, NULL, a->dlogits, a->lnf, m->weights.lm_head, N, C, V);
        memset(a->dresid, 0, (size_t)N * C * sizeof(float));
        rmsnorm_backward(a->dresid, g ? g->norm : NULL, a->dln, top, m->weights.norm, a->lnf_rstd, N, C);
    }
    if (stop_layer > m->l1) return; /* nothing of this part is reached */
    const int lo = stop_layer > m->l0 ? stop_layer : m->l0;
    for (int l = m->l1 - 1; l >= lo; l--) {
        if (hook) hook(hook_ctx, l, a->dresid, m->B, m->T);
        block_backward(m, l, g ? &g->layers[l] : NULL);
    }
    /* dresid is now dL/d resid[lo], the output of block lo-1; that block's
     * hook is ours to call only if the backward stops inside this part */
    if (hook && stop_layer > m->l0) hook(hook_ctx, stop_layer - 1, a->dresid, m->B, m->T);
    if (stop_layer == 0 && m->l0 == 0 && g) embedding_backward(g->embed, a->dresid, m->tokens, N, C);
}

void model_backward(Model *m, const int *targets, const float *weights, GradMode mode, int stop_layer,
                    ResidHook hook, void *hook_ctx) {
    model_backward_part(m, targets, weights, -1.0f, mode, stop_layer, hook, hook_ctx);
}

/* ------------------------------------------------------------------ FLOPs */

double model_block_flops(const ModelConfig *c, int B, int T, double *att) {
    const double N = (double)B * T, C = c->dim, Q = (double)c->n_heads * c->head_dim,
                 KV = (double)c->n_kv_heads * c->head_dim, F = c->hidden_dim;
    /* attention: QK^T and PV over the causal half (what a model needs) */
    *att = 2.0 * 2.0 * B * c->n_heads * ((double)T * (T + 1) / 2.0) * c->head_dim;
    return 2.0 * N * (C * Q + 2.0 * C * KV + Q * C + 3.0 * C * F);
}

double model_flops_per_step(const ModelConfig *c, int B, int T, GradMode mode) {
    double att, layer = model_block_flops(c, B, T, &att);
    double mm = c->n_layers * layer + 2.0 * (double)B * T * c->dim * c->vocab_size;
    att *= c->n_layers;
    double fwd = mm + att;
    /* backward: input gradients cost one forward's matmuls, weight gradients
     * another (skipped when frozen); attention backward is twice its forward. */
    return mode == GRAD_FULL ? fwd + 2.0 * mm + 2.0 * att : fwd + mm + 2.0 * att;
}
