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

/* ------------------------------------------------------------- parameters */

static void add_param(Model *m, int *k, size_t *off, const char *name, int64_t d0, int64_t d1) {
    ParamInfo *p = &m->param_info[(*k)++];
    snprintf(p->name, sizeof p->name, "%s", name);
    p->ndim = d1 > 0 ? 2 : 1;
    p->shape[0] = d0;
    p->shape[1] = d1 > 0 ? d1 : 0;
    p->numel = (size_t)d0 * (size_t)(d1 > 0 ? d1 : 1);
    p->offset = *off;
    *off += p->numel;
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
    m->n_param_tensors = holds_embed(m) + 9 * (m->l1 - m->l0) + (m->has_head ? 1 + !c->tie_embeddings : 0);
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

/* Point the struct-of-pointers view at a flat buffer laid out by the table
 * (pointers of parts not held stay NULL). */
static void bind_params(const Model *m, ModelParams *p, float *base) {
    const ParamInfo *t = m->param_info;
    int k = 0;
    p->embed = holds_embed(m) ? base + t[k++].offset : NULL;
    for (int l = m->l0; l < m->l1; l++) {
        LayerParams *L = &p->layers[l];
        L->attn_norm = base + t[k++].offset;
        L->wq = base + t[k++].offset;
        L->wk = base + t[k++].offset;
        L->wv = base + t[k++].offset;
        L->wo = base + t[k++].offset;
        L->mlp_norm = base + t[k++].offset;
        L->w_gate = base + t[k++].offset;
        L->w_up = base + t[k++].offset;
        L->w_down = base + t[k++].offset;
    }
    if (m->has_head) {
        p->norm = base + t[k++].offset;
        p->lm_head = m->cfg.tie_embeddings ? p->embed : base + t[k++].offset;
    }
}

int model_init(Model *m, const ModelConfig *cfg) { return model_init_part(m, cfg, 0, cfg->n_layers, 1); }

int model_init_part(Model *m, const ModelConfig *cfg, int l0, int l1, int head) {
    memset(m, 0, sizeof *m);
    if (model_config_validate(cfg, "model config") != 0) return -1;
    if (l0 < 0 || l1 > cfg->n_layers || l0 > l1 || (head && l1 != cfg->n_layers))
        return calm_error("model part: blocks %d..%d%s of a %d-layer model", l0, l1 - 1, head ? " with the head" : "",
                          cfg->n_layers);
    m->cfg = *cfg;
    m->l0 = l0;
    m->l1 = l1;
    m->has_head = head;
    build_param_table(m);
    m->params_memory = xalloc_floats(m->num_params);
    m->params.layers = xcalloc((size_t)cfg->n_layers, sizeof(LayerParams));
    m->grads.layers = xcalloc((size_t)cfg->n_layers, sizeof(LayerParams));
    bind_params(m, &m->params, m->params_memory);
    int half = cfg->head_dim / 2;
    m->rope_cos = xalloc_floats((size_t)cfg->max_seq_len * half);
    m->rope_sin = xalloc_floats((size_t)cfg->max_seq_len * half);
    rope_tables(m->rope_cos, m->rope_sin, cfg->max_seq_len, cfg->head_dim, cfg->rope_theta);
    return 0;
}

void model_init_random(Model *m, uint64_t seed) {
    for (int k = 0; k < m->n_param_tensors; k++) {
        const ParamInfo *p = &m->param_info[k];
        float *w = m->params_memory + p->offset;
        if (p->ndim == 1) {
            for (size_t i = 0; i < p->numel; i++) w[i] = 1.0f; /* RMSNorm gains */
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

/* One flat allocation, carved in two passes: the first counts, the second
 * assigns pointers. */
static void ensure_acts(Model *m, int B, int T) {
    Activations *a = &m->acts;
    if (a->memory && a->B == B && a->T == T) return;
    model_acts_free(a);
    const ModelConfig *c = &m->cfg;
    const size_t N = (size_t)B * T, C = c->dim, Q = (size_t)c->n_heads * c->head_dim,
                 KV = (size_t)c->n_kv_heads * c->head_dim, F = c->hidden_dim, V = c->vocab_size,
                 PT = (size_t)B * c->n_heads * T * T, L = c->n_layers;
    a->B = B;
    a->T = T;
    a->blocks = xcalloc(L, sizeof(BlockActs));
    for (int pass = 0; pass < 2; pass++) {
        size_t off = 0;
#define TAKE(ptr, n)                                     \
    do {                                                 \
        if (pass) (ptr) = a->memory + off;               \
        off += ((size_t)(n) + 15) & ~(size_t)15;         \
    } while (0)
        TAKE(a->resid, (L + 1) * N * C);
        for (size_t l = (size_t)m->l0; l < (size_t)m->l1; l++) {
            BlockActs *b = &a->blocks[l];
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
        const size_t NV = m->has_head ? N * V : 0; /* only the last part has a head */
        TAKE(a->lnf, N * C);
        TAKE(a->lnf_rstd, N);
        TAKE(a->logits, NV);
        TAKE(a->losses, N);
        TAKE(a->dresid, N * C);
        TAKE(a->dx, N * C);
        TAKE(a->dq, N * Q);
        TAKE(a->dk, N * KV);
        TAKE(a->dv, N * KV);
        TAKE(a->datt, N * Q);
        TAKE(a->dprobs, PT);
        TAKE(a->dgate, N * F);
        TAKE(a->dup, N * F);
        TAKE(a->dact, N * F);
        TAKE(a->dln, N * C);
        TAKE(a->dlogits, NV);
#undef TAKE
        if (!pass) {
            a->numel = off;
            a->memory = xalloc_floats(off);
        }
    }
}

static void add_inplace(float *y, const float *x, size_t n) {
#pragma omp parallel for
    for (size_t i = 0; i < n; i++) y[i] += x[i];
}

/* ---------------------------------------------------------------- forward */

static void block_forward(Model *m, int l, int B, int T) {
    const ModelConfig *c = &m->cfg;
    const int N = B * T, C = c->dim, NH = c->n_heads, NKV = c->n_kv_heads, HS = c->head_dim, F = c->hidden_dim;
    const LayerParams *w = &m->params.layers[l];
    BlockActs *a = &m->acts.blocks[l];
    const float *x = m->acts.resid + (size_t)l * N * C;
    float *out = m->acts.resid + (size_t)(l + 1) * N * C;

    rmsnorm_forward(a->ln1, a->ln1_rstd, x, w->attn_norm, N, C, c->norm_eps);
    linear_forward(a->q, a->ln1, w->wq, NULL, N, C, NH * HS);
    linear_forward(a->k, a->ln1, w->wk, NULL, N, C, NKV * HS);
    linear_forward(a->v, a->ln1, w->wv, NULL, N, C, NKV * HS);
    rope_forward(a->q, m->rope_cos, m->rope_sin, B, T, NH, HS);
    rope_forward(a->k, m->rope_cos, m->rope_sin, B, T, NKV, HS);
    attention_forward(a->att, a->probs, a->q, a->k, a->v, B, T, NH, NKV, HS);
    linear_forward(a->mid, a->att, w->wo, NULL, N, NH * HS, C);
    add_inplace(a->mid, x, (size_t)N * C);

    rmsnorm_forward(a->ln2, a->ln2_rstd, a->mid, w->mlp_norm, N, C, c->norm_eps);
    linear_forward(a->gate, a->ln2, w->w_gate, NULL, N, C, F);
    linear_forward(a->up, a->ln2, w->w_up, NULL, N, C, F);
    swiglu_forward(a->act, a->gate, a->up, (long)N * F);
    linear_forward(out, a->act, w->w_down, NULL, N, F, C);
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
    embedding_forward(m->acts.resid, tokens, m->params.embed, B * T, c->dim);
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

    if (m->l0 == 0) embedding_forward(a->resid, tokens, m->params.embed, N, C);
    for (int l = m->l0; l < m->l1; l++) {
        block_forward(m, l, B, T);
        if (hook) hook(hook_ctx, l, a->resid + (size_t)(l + 1) * N * C, B, T);
    }
    m->has_targets = targets != NULL;
    m->mean_loss = 0.0f;
    if (!m->has_head) return 0.0f;
    const float *top = a->resid + (size_t)c->n_layers * N * C;
    rmsnorm_forward(a->lnf, a->lnf_rstd, top, m->params.norm, N, C, c->norm_eps);
    linear_forward(a->logits, a->lnf, m->params.lm_head, NULL, N, C, V);
    m->mean_loss = targets ? crossentropy_forward(a->losses, a->logits, targets, weights, N, V) : 0.0f;
    return m->mean_loss;
}

float model_forward(Model *m, const int *tokens, const int *targets, const float *weights, int B, int T,
                    ResidHook hook, void *hook_ctx) {
    return model_forward_part(m, tokens, targets, weights, B, T, hook, hook_ctx);
}

/* --------------------------------------------------------------- backward */

/* On entry a->dresid = dL/d resid[l+1]; on exit dL/d resid[l].
 * g (NULL in GRAD_INPUT mode) receives the weight gradients. */
static void block_backward(Model *m, int l, const LayerParams *g) {
    const ModelConfig *c = &m->cfg;
    const int B = m->B, T = m->T, N = B * T, C = c->dim, NH = c->n_heads, NKV = c->n_kv_heads,
              HS = c->head_dim, F = c->hidden_dim;
    const LayerParams *w = &m->params.layers[l];
    BlockActs *a = &m->acts.blocks[l];
    Activations *s = &m->acts;
    const float *x = s->resid + (size_t)l * N * C;
    const size_t NC = (size_t)N * C;

    /* out = mid + down(swiglu(gate(ln2), up(ln2))), ln2 = rmsnorm(mid) */
    float *dmid = s->dx;
    memcpy(dmid, s->dresid, NC * sizeof(float));
    memset(s->dact, 0, (size_t)N * F * sizeof(float));
    linear_backward(s->dact, g ? g->w_down : NULL, NULL, s->dresid, a->act, w->w_down, N, F, C);
    memset(s->dgate, 0, (size_t)N * F * sizeof(float));
    memset(s->dup, 0, (size_t)N * F * sizeof(float));
    swiglu_backward(s->dgate, s->dup, s->dact, a->gate, a->up, (long)N * F);
    memset(s->dln, 0, NC * sizeof(float));
    linear_backward(s->dln, g ? g->w_gate : NULL, NULL, s->dgate, a->ln2, w->w_gate, N, C, F);
    linear_backward(s->dln, g ? g->w_up : NULL, NULL, s->dup, a->ln2, w->w_up, N, C, F);
    rmsnorm_backward(dmid, g ? g->mlp_norm : NULL, s->dln, a->mid, w->mlp_norm, a->ln2_rstd, N, C);

    /* mid = x + o(attention(rope(q(ln1)), rope(k(ln1)), v(ln1))), ln1 = rmsnorm(x) */
    memcpy(s->dresid, dmid, NC * sizeof(float));
    memset(s->datt, 0, (size_t)N * NH * HS * sizeof(float));
    linear_backward(s->datt, g ? g->wo : NULL, NULL, dmid, a->att, w->wo, N, NH * HS, C);
    memset(s->dq, 0, (size_t)N * NH * HS * sizeof(float));
    memset(s->dk, 0, (size_t)N * NKV * HS * sizeof(float));
    memset(s->dv, 0, (size_t)N * NKV * HS * sizeof(float));
    attention_backward(s->dq, s->dk, s->dv, s->dprobs, s->datt, a->q, a->k, a->v, a->probs, B, T, NH, NKV, HS);
    rope_backward(s->dq, m->rope_cos, m->rope_sin, B, T, NH, HS);
    rope_backward(s->dk, m->rope_cos, m->rope_sin, B, T, NKV, HS);
    memset(s->dln, 0, NC * sizeof(float));
    linear_backward(s->dln, g ? g->wq : NULL, NULL, s->dq, a->ln1, w->wq, N, C, NH * HS);
    linear_backward(s->dln, g ? g->wk : NULL, NULL, s->dk, a->ln1, w->wk, N, C, NKV * HS);
    linear_backward(s->dln, g ? g->wv : NULL, NULL, s->dv, a->ln1, w->wv, N, C, NKV * HS);
    rmsnorm_backward(s->dresid, g ? g->attn_norm : NULL, s->dln, x, w->attn_norm, a->ln1_rstd, N, C);
}

void model_backward_part(Model *m, const int *targets, const float *weights, float grad_scale, GradMode mode,
                         int stop_layer, ResidHook hook, void *hook_ctx) {
    const ModelConfig *c = &m->cfg;
    const int N = m->B * m->T, C = c->dim, V = c->vocab_size;
    Activations *a = &m->acts;
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
        linear_backward(a->dln, g ? g->lm_head : NULL, NULL, a->dlogits, a->lnf, m->params.lm_head, N, C, V);
        memset(a->dresid, 0, (size_t)N * C * sizeof(float));
        rmsnorm_backward(a->dresid, g ? g->norm : NULL, a->dln, top, m->params.norm, a->lnf_rstd, N, C);
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

/* ---------------------------------------------------------- KV-cache decode */

void kvcache_init(KVCache *k, const ModelConfig *c, int n_seq, int max_T) {
    memset(k, 0, sizeof *k);
    k->n_seq = n_seq;
    k->max_T = max_T;
    const size_t KV = (size_t)c->n_kv_heads * c->head_dim, Q = (size_t)c->n_heads * c->head_dim, n = (size_t)n_seq;
    k->k = xalloc_floats((size_t)c->n_layers * n * max_T * KV);
    k->v = xalloc_floats((size_t)c->n_layers * n * max_T * KV);
    k->x = xalloc_floats(n * c->dim);
    k->xb = xalloc_floats(n * c->dim);
    k->q = xalloc_floats(n * Q);
    k->knew = xalloc_floats(n * KV);
    k->vnew = xalloc_floats(n * KV);
    k->att = xalloc_floats(n * Q);
    k->hb = xalloc_floats(n * c->hidden_dim);
    k->hb2 = xalloc_floats(n * c->hidden_dim);
    k->rstd = xalloc_floats(n);
    k->scores = xalloc_floats(n * c->n_heads * max_T);
    k->logits = xalloc_floats(n * c->vocab_size);
}

void kvcache_free(KVCache *k) {
    float *bufs[] = {k->k, k->v, k->x, k->xb, k->q, k->knew, k->vnew, k->att, k->hb, k->hb2, k->rstd, k->scores,
                     k->logits};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) free(bufs[i]);
    memset(k, 0, sizeof *k);
}

float *model_decode_step(Model *m, KVCache *kc, const int *seqs, const int *tokens, int n) {
    return model_decode_step_ex(m, kc, seqs, tokens, n, m->cfg.n_layers, NULL, NULL);
}

/* One position of n sequences through the model with the same layer
 * functions as training (n rows, T = 1); row r is sequence seqs[r] and
 * attends over that sequence's cached keys and values. */
float *model_decode_step_ex(Model *m, KVCache *kc, const int *seqs, const int *tokens, int n, int n_blocks,
                            ResidHook hook, void *hook_ctx) {
    const ModelConfig *c = &m->cfg;
    const int C = c->dim, NH = c->n_heads, NKV = c->n_kv_heads, HS = c->head_dim, F = c->hidden_dim;
    const int KV = NKV * HS, pos = kc->len, half = HS / 2, group = NH / NKV;
    if (pos >= kc->max_T || pos >= c->max_seq_len)
        calm_fatal("ask for fewer tokens", "KV cache full at position %d", pos);
    if (n < 1 || n > kc->n_seq) calm_fatal("feed at most the cache's sequences", "%d rows for a cache of %d", n, kc->n_seq);
    const float scale = 1.0f / sqrtf((float)HS);
    const float *cos_t = m->rope_cos + (size_t)pos * half, *sin_t = m->rope_sin + (size_t)pos * half;
    const size_t seq_stride = (size_t)kc->max_T * KV, layer_stride = (size_t)kc->n_seq * seq_stride;
    embedding_forward(kc->x, tokens, m->params.embed, n, C);
    if (n_blocks > c->n_layers) n_blocks = c->n_layers;
    for (int l = 0; l < n_blocks; l++) {
        const LayerParams *w = &m->params.layers[l];
        float *kl = kc->k + (size_t)l * layer_stride, *vl = kc->v + (size_t)l * layer_stride;
        rmsnorm_forward(kc->xb, kc->rstd, kc->x, w->attn_norm, n, C, c->norm_eps);
        linear_forward(kc->q, kc->xb, w->wq, NULL, n, C, NH * HS);
        linear_forward(kc->knew, kc->xb, w->wk, NULL, n, C, KV);
        linear_forward(kc->vnew, kc->xb, w->wv, NULL, n, C, KV);
        rope_forward(kc->q, cos_t, sin_t, n, 1, NH, HS);
        rope_forward(kc->knew, cos_t, sin_t, n, 1, NKV, HS);
        for (int r = 0; r < n; r++) {
            size_t at = (size_t)(seqs ? seqs[r] : r) * seq_stride + (size_t)pos * KV;
            memcpy(kl + at, kc->knew + (size_t)r * KV, (size_t)KV * sizeof(float));
            memcpy(vl + at, kc->vnew + (size_t)r * KV, (size_t)KV * sizeof(float));
        }
#pragma omp parallel for collapse(2) schedule(static) if (n * NH >= 8)
        for (int r = 0; r < n; r++)
            for (int h = 0; h < NH; h++) {
                size_t base = (size_t)(seqs ? seqs[r] : r) * seq_stride + (size_t)(h / group) * HS;
                attention_decode_row(kc->att + ((size_t)r * NH + h) * HS, kc->scores + ((size_t)r * NH + h) * kc->max_T,
                              kc->q + ((size_t)r * NH + h) * HS, kl + base, vl + base, pos, HS, (size_t)KV, scale);
            }
        linear_forward(kc->xb, kc->att, w->wo, NULL, n, NH * HS, C);
        for (size_t i = 0; i < (size_t)n * C; i++) kc->x[i] += kc->xb[i];
        rmsnorm_forward(kc->xb, kc->rstd, kc->x, w->mlp_norm, n, C, c->norm_eps);
        linear_forward(kc->hb, kc->xb, w->w_gate, NULL, n, C, F);
        linear_forward(kc->hb2, kc->xb, w->w_up, NULL, n, C, F);
        swiglu_forward(kc->hb, kc->hb, kc->hb2, n * F);
        linear_forward(kc->xb, kc->hb, w->w_down, NULL, n, F, C);
        for (size_t i = 0; i < (size_t)n * C; i++) kc->x[i] += kc->xb[i];
        if (hook) hook(hook_ctx, l, kc->x, n, 1);
    }
    if (n_blocks < c->n_layers) { /* a truncated trunk: no head */
        kc->len++;
        return NULL;
    }
    rmsnorm_forward(kc->xb, kc->rstd, kc->x, m->params.norm, n, C, c->norm_eps);
    linear_forward(kc->logits, kc->xb, m->params.lm_head, NULL, n, C, c->vocab_size);
    kc->len++;
    return kc->logits;
}
