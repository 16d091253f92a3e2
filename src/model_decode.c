/* model_decode.c: KV-cache decoding (model.h), one position of n sequences
 * at a time through the same layer functions and typed weights as the
 * forward. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "src/common.h"
#include "src/layers.h"
#include "src/model.h"
#include "src/wmat.h"

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
    wmat_embedding_forward(kc->x, tokens, m->weights.embed, n, C);
    if (n_blocks > c->n_layers) n_blocks = c->n_layers;
    for (int l = 0; l < n_blocks; l++) {
        const LayerWeights *w = &m->weights.layers[l];
        float *kl = kc->k + (size_t)l * layer_stride, *vl = kc->v + (size_t)l * layer_stride;
        rmsnorm_forward(kc->xb, kc->rstd, kc->x, w->attn_norm, n, C, c->norm_eps);
        wmat_linear_forward(kc->q, kc->xb, w->wq, w->bq, n, C, NH * HS);
        wmat_linear_forward(kc->knew, kc->xb, w->wk, w->bk, n, C, KV);
        wmat_linear_forward(kc->vnew, kc->xb, w->wv, w->bv, n, C, KV);
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
        wmat_linear_forward(kc->xb, kc->att, w->wo, w->bo, n, NH * HS, C);
        for (size_t i = 0; i < (size_t)n * C; i++) kc->x[i] += kc->xb[i];
        rmsnorm_forward(kc->xb, kc->rstd, kc->x, w->mlp_norm, n, C, c->norm_eps);
        wmat_linear_forward(kc->hb, kc->xb, w->w_gate, NULL, n, C, F);
        wmat_linear_forward(kc->hb2, kc->xb, w->w_up, NULL, n, C, F);
        swiglu_forward(kc->hb, kc->hb, kc->hb2, n * F);
        wmat_linear_forward(kc->xb, kc->hb, w->w_down, NULL, n, F, C);
        for (size_t i = 0; i < (size_t)n * C; i++) kc->x[i] += kc->xb[i];
        if (hook) hook(hook_ctx, l, kc->x, n, 1);
    }
    if (n_blocks < c->n_layers) { /* a truncated trunk: no head */
        kc->len++;
        return NULL;
    }
    rmsnorm_forward(kc->xb, kc->rstd, kc->x, m->weights.norm, n, C, c->norm_eps);
    wmat_linear_forward(kc->logits, kc->xb, m->weights.lm_head, NULL, n, C, c->vocab_size);
    kc->len++;
    return kc->logits;
}
