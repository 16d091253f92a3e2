/* compose_generate.c: decoding with a composition (compose.h): both models'
 * KV caches and a cross-attention cache per connection, many sequences in
 * lockstep (sample.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "src/blas.h"
#include "src/common.h"
#include "src/compose.h"
#include "src/layers.h"
#include "src/sample.h"
#include "src/tokenizer.h"

/* Lockstep decoding of n_seq sequences through both models: mA up to its
 * highest connected block, then mB with each connection's cross-attention
 * over a growing cache of K, V rows projected from mA's stream. */
typedef struct {
    Composer *c;
    KVCache ka, kb;
    int n_seq, max_T, pos;
    const int *seqs; /* the rows of the current step: their sequences */
    float *hA;       /* [n_conn, n_seq, dA]: mA's stream at this position, by row */
    float *kc, *vc;  /* [n_conn, n_seq, max_T, dB] */
    float *tmp;      /* [n_seq, 4 * dB]: P, q, att, out of each row */
    float *scores;   /* [n_seq, H, max_T] */
} GenState;

static void gen_augment_hook(void *ctx, int layer, float *x, int n, int T) {
    GenState *s = ctx;
    const size_t dA = (size_t)s->c->dA;
    for (int i = 0; i < s->c->cfg.n_conn; i++)
        if (s->c->cfg.conn[i].a == layer) memcpy(s->hA + (size_t)i * s->n_seq * dA, x, (size_t)n * dA * sizeof(float));
}

static void gen_anchor_hook(void *ctx, int layer, float *x, int n, int T) {
    GenState *s = ctx;
    Composer *c = s->c;
    const int dA = c->dA, dB = c->dB, HS = c->HS, pos = s->pos;
    const float scale = 1.0f / sqrtf((float)HS);
    const size_t seq_stride = (size_t)s->max_T * dB;
    float *P = s->tmp, *q = P + (size_t)n * dB, *att = q + (size_t)n * dB, *out = att + (size_t)n * dB;
    for (int i = 0; i < c->cfg.n_conn; i++) {
        if (c->cfg.conn[i].b != layer) continue;
        const ConnParams *w = &c->p[i];
        float *K = s->kc + (size_t)i * s->n_seq * seq_stride, *V = s->vc + (size_t)i * s->n_seq * seq_stride;
        linear_forward(P, s->hA + (size_t)i * s->n_seq * dA, w->proj_w, w->proj_b, n, dA, dB);
        linear_forward(att, P, w->wk, NULL, n, dB, dB); /* att, out: scratch for the new K, V rows */
        linear_forward(out, P, w->wv, NULL, n, dB, dB);
        for (int r = 0; r < n; r++) {
            size_t at = (size_t)s->seqs[r] * seq_stride + (size_t)pos * dB;
            memcpy(K + at, att + (size_t)r * dB, (size_t)dB * sizeof(float));
            memcpy(V + at, out + (size_t)r * dB, (size_t)dB * sizeof(float));
        }
        linear_forward(q, x, w->wq, NULL, n, dB, dB);
#pragma omp parallel for collapse(2) schedule(static) if (n * c->H >= 8)
        for (int r = 0; r < n; r++)
            for (int h = 0; h < c->H; h++) {
                const float *qh = q + (size_t)r * dB + (size_t)h * HS;
                const float *Kh = K + (size_t)s->seqs[r] * seq_stride + (size_t)h * HS;
                const float *Vh = V + (size_t)s->seqs[r] * seq_stride + (size_t)h * HS;
                float *sc = s->scores + ((size_t)r * c->H + h) * s->max_T, *o = att + (size_t)r * dB + (size_t)h * HS;
                attention_decode_row(o, sc, qh, Kh, Vh, pos, HS, (size_t)dB, scale);
            }
        linear_forward(out, att, w->wo, NULL, n, dB, dB);
        for (size_t e = 0; e < (size_t)n * dB; e++) x[e] += out[e];
    }
}

static float *compose_decode_step(void *ctx, const int *seqs, const int *tokens, int n) {
    GenState *s = ctx;
    Composer *c = s->c;
    s->seqs = seqs;
    model_decode_step_ex(c->A, &s->ka, seqs, tokens, n, c->a_max + 1, gen_augment_hook, s);
    float *logits = model_decode_step_ex(c->B, &s->kb, seqs, tokens, n, c->B->cfg.n_layers, gen_anchor_hook, s);
    s->pos++;
    return logits;
}

long compose_generate_batch(Composer *c, GenSeq *seqs, int n, const GenOpts *o) {
    int max_T = c->B->cfg.max_seq_len < c->A->cfg.max_seq_len ? c->B->cfg.max_seq_len : c->A->cfg.max_seq_len;
    int cap = generate_positions(seqs, n, max_T);
    if (n <= 0 || cap <= 0) return 0;
    GenState s;
    memset(&s, 0, sizeof s);
    s.c = c;
    s.n_seq = n;
    s.max_T = cap;
    kvcache_init(&s.ka, &c->A->cfg, n, cap);
    kvcache_init(&s.kb, &c->B->cfg, n, cap);
    const size_t nc = (size_t)c->cfg.n_conn, ns = (size_t)n;
    s.hA = xalloc_floats(nc * ns * c->dA);
    s.kc = xalloc_floats(nc * ns * cap * c->dB);
    s.vc = xalloc_floats(nc * ns * cap * c->dB);
    s.tmp = xalloc_floats(ns * 4 * c->dB);
    s.scores = xalloc_floats(ns * c->H * cap);
    long total = generate_lockstep(compose_decode_step, &s, &c->B->cfg, cap, seqs, n, o);
    free(s.hA);
    free(s.kc);
    free(s.vc);
    free(s.tmp);
    free(s.scores);
    kvcache_free(&s.ka);
    kvcache_free(&s.kb);
    return total;
}

int compose_generate(Composer *c, const int *prompt, int n_prompt, int max_new, float temperature, int top_k,
                     uint64_t seed, int *out) {
    GenSeq s = {prompt, n_prompt, max_new, out, 0};
    GenOpts o = {temperature, top_k, seed, -1, TOK_N_SPECIAL, TOK_EOS};
    compose_generate_batch(c, &s, 1, &o);
    return s.n_out;
}

