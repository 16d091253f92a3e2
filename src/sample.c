#include "src/rng.h"
#include "src/sample.h"

#include <math.h>
#include <stdlib.h>

#include "src/tokenizer.h"

int sample_token(const float *logits, int n_valid, float temperature, int top_k, Rng *rng) {
    int best = 0;
    for (int i = 1; i < n_valid; i++)
        if (logits[i] > logits[best]) best = i;
    if (temperature <= 0.0f) return best;
    /* threshold = k-th largest logit (k small: selection by repeated scans) */
    float threshold = -INFINITY;
    if (top_k > 0 && top_k < n_valid) {
        float prev = INFINITY;
        int taken = 0;
        while (taken < top_k) {
            float cur = -INFINITY;
            int cnt = 0;
            for (int i = 0; i < n_valid; i++)
                if (logits[i] < prev && logits[i] > cur) cur = logits[i];
            for (int i = 0; i < n_valid; i++) cnt += logits[i] == cur;
            taken += cnt;
            threshold = prev = cur;
        }
    }
    double sum = 0.0;
    for (int i = 0; i < n_valid; i++)
        if (logits[i] >= threshold) sum += exp((logits[i] - logits[best]) / temperature);
    double u = rng_uniform(rng) * sum, acc = 0.0;
    for (int i = 0; i < n_valid; i++) {
        if (logits[i] < threshold) continue;
        acc += exp((logits[i] - logits[best]) / temperature);
        if (acc > u) return i;
    }
    return best;
}

int generate_positions(const GenSeq *seqs, int n, int max_T) {
    int cap = 0;
    for (int i = 0; i < n; i++)
        if (seqs[i].n_prompt + seqs[i].max_new > cap) cap = seqs[i].n_prompt + seqs[i].max_new;
    return cap < max_T ? cap : max_T;
}

int generate_ends(const ModelConfig *cfg, const GenOpts *o, int id) {
    if (id == o->stop || id == o->eos) return 1;
    for (int i = 0; i < cfg->n_eos; i++)
        if (id == cfg->eos_ids[i]) return 1;
    return 0;
}

long generate_lockstep(DecodeFn fn, void *ctx, const ModelConfig *cfg, int max_T, GenSeq *seqs, int n,
                       const GenOpts *o) {
    const int vocab = cfg->vocab_size;
    const int cap = generate_positions(seqs, n, max_T);
    const int n_ids = o->n_ids > 0 ? o->n_ids : TOK_N_SPECIAL;
    const int n_valid = vocab < n_ids ? vocab : n_ids;
    int *active = xmalloc((size_t)(n > 0 ? n : 1) * sizeof(int)), *tok = xmalloc((size_t)(n > 0 ? n : 1) * sizeof(int));
    Rng *rng = xmalloc((size_t)(n > 0 ? n : 1) * sizeof(Rng));
    int n_active = 0;
    for (int i = 0; i < n; i++) {
        seqs[i].n_out = 0;
        rng_seed(&rng[i], o->seed, 0x5a3eu + (uint64_t)i);
        if (seqs[i].n_prompt > 0 && seqs[i].max_new > 0) active[n_active++] = i;
    }
    long total = 0;
    for (int pos = 0; pos < cap && n_active > 0; pos++) {
        for (int r = 0; r < n_active; r++) {
            const GenSeq *s = &seqs[active[r]];
            tok[r] = pos < s->n_prompt ? s->prompt[pos] : s->out[s->n_out - 1];
        }
        const float *logits = fn(ctx, active, tok, n_active);
        int kept = 0;
        for (int r = 0; r < n_active; r++) {
            GenSeq *s = &seqs[active[r]];
            int done = 0;
            if (pos >= s->n_prompt - 1) {
                int y = sample_token(logits + (size_t)r * vocab, n_valid, o->temperature, o->top_k, &rng[active[r]]);
                s->out[s->n_out++] = y;
                total++;
                done = generate_ends(cfg, o, y) || s->n_out == s->max_new || pos + 1 == cap;
            }
            if (!done) active[kept++] = active[r];
        }
        n_active = kept;
    }
    free(active);
    free(tok);
    free(rng);
    return total;
}

typedef struct {
    Model *m;
    KVCache kc;
} ModelDecoder;

static float *model_decoder_step(void *ctx, const int *seqs, const int *tokens, int n) {
    ModelDecoder *d = ctx;
    return model_decode_step(d->m, &d->kc, seqs, tokens, n);
}

long generate_batch(Model *m, GenSeq *seqs, int n, const GenOpts *o) {
    int cap = generate_positions(seqs, n, m->cfg.max_seq_len);
    if (n <= 0 || cap <= 0) return 0;
    ModelDecoder d = {m, {0}};
    kvcache_init(&d.kc, &m->cfg, n, cap);
    long total = generate_lockstep(model_decoder_step, &d, &m->cfg, cap, seqs, n, o);
    kvcache_free(&d.kc);
    return total;
}

int generate(Model *m, const int *prompt, int n_prompt, int max_new, float temperature, int top_k, uint64_t seed,
             int *out) {
    GenSeq s = {prompt, n_prompt, max_new, out, 0};
    GenOpts o = {temperature, top_k, seed, -1, TOK_N_SPECIAL, TOK_EOS};
    generate_batch(m, &s, 1, &o);
    return s.n_out;
}
