#include "sample.h"

#include <math.h>
#include <stdlib.h>

#include "tokenizer.h"

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

int generate(Model *m, const int *prompt, int n_prompt, int max_new, float temperature, int top_k, uint64_t seed,
             int *out) {
    KVCache kc;
    int cap = n_prompt + max_new;
    if (cap > m->cfg.max_seq_len) cap = m->cfg.max_seq_len;
    kvcache_init(&kc, &m->cfg, cap);
    Rng rng;
    rng_seed(&rng, seed, 0x5a3e);
    float *logits = NULL;
    for (int i = 0; i < n_prompt && i < cap; i++) logits = model_decode_step(m, &kc, prompt[i]);
    int n = 0;
    int n_valid = m->cfg.vocab_size < TOK_N_SPECIAL ? m->cfg.vocab_size : TOK_N_SPECIAL;
    while (logits && n < max_new) {
        int tok = sample_token(logits, n_valid, temperature, top_k, &rng);
        out[n++] = tok;
        if (tok == TOK_EOS || kc.len >= cap) break;
        logits = model_decode_step(m, &kc, tok);
    }
    kvcache_free(&kc);
    return n;
}
