/* sample.h: choosing the next token from logits, and generation with a KV cache. */
#ifndef CALM_SAMPLE_H
#define CALM_SAMPLE_H

#include <stddef.h>

#include "common.h"
#include "model.h"

/* temperature <= 0: greedy (argmax). top_k > 0 keeps the k most likely.
 * Only ids below n_valid are candidates (the padded vocabulary tail never is). */
int sample_token(const float *logits, int n_valid, float temperature, int top_k, Rng *rng);

/* Feed prompt ids through the cache, then generate up to max_new tokens,
 * stopping after EOS. Writes generated ids to out (room for max_new) and
 * returns how many. */
int generate(Model *m, const int *prompt, int n_prompt, int max_new, float temperature, int top_k, uint64_t seed,
             int *out);

#endif
