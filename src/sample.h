/* sample.h: choosing the next token from logits, and generation with KV
 * caches, one sequence or many decoded in lockstep. */
#ifndef CALM_SAMPLE_H
#define CALM_SAMPLE_H

#include <stddef.h>
#include <stdint.h>

#include "src/common.h"
#include "src/model.h"
#include "src/rng.h"

/* temperature <= 0: greedy (argmax). top_k > 0 keeps the k most likely.
 * Only ids below n_valid are candidates (the padded vocabulary tail never is). */
int sample_token(const float *logits, int n_valid, float temperature, int top_k, Rng *rng);

/* One sequence of a generation: its prompt (at least one id, usually BOS
 * first), how many ids it may add, and where they go. */
typedef struct {
    const int *prompt;
    int n_prompt;
    int max_new;
    int *out;  /* room for max_new ids */
    int n_out; /* set by the generation: ids written (EOS or the stop id included) */
} GenSeq;

typedef struct {
    float temperature; /* <= 0: greedy */
    int top_k;         /* 0: all */
    uint64_t seed;     /* sequence i samples from its own stream (seed, i) */
    int stop;          /* an id besides EOS that ends a sequence (-1: none) */
    int n_ids;         /* ids 0..n_ids-1 may be generated: the tokenizer's vocabulary, which a model's
                        * padded one may exceed (0: the byte tokenizer's TOK_N_SPECIAL) */
    int eos;           /* the tokenizer's EOS (-1: none), which ends a sequence as the config's EOS ids do */
} GenOpts;

/* A decoder in lockstep: feed tokens[r] to sequence seqs[r] (r < n) at the
 * next position and return their logits [n, vocab]. */
typedef float *(*DecodeFn)(void *ctx, const int *seqs, const int *tokens, int n);

/* Generate for n sequences together: at position p every unfinished
 * sequence is fed its prompt id p, or its last generated id once the prompt
 * is used up, in one decoder call. A sequence ends at an EOS (generate_ends), after
 * max_new ids or when the context of max_T positions is full (the logits of
 * the last position still give one id). Each sequence gets the ids it would
 * get alone, up to the rounding of the matrix products (BLIS may sum a row
 * in another order when it multiplies several; tests/test_generate.c and
 * test_compose.c find the same ids). Returns the total ids generated. */
long generate_lockstep(DecodeFn fn, void *ctx, const ModelConfig *cfg, int max_T, GenSeq *seqs, int n,
                       const GenOpts *o);
/* id ends a sequence: one of the config's EOS ids (eos_token_id may be a
 * list), the tokenizer's EOS (o->eos) or o->stop. */
int generate_ends(const ModelConfig *cfg, const GenOpts *o, int id);
/* Positions a lockstep generation of these sequences needs, capped at max_T. */
int generate_positions(const GenSeq *seqs, int n, int max_T);

/* A model's generation with a KV cache (model_decode_step). */
long generate_batch(Model *m, GenSeq *seqs, int n, const GenOpts *o);
/* One sequence: feed the prompt, then generate up to max_new ids, stopping
 * after EOS. Writes them to out and returns how many. */
int generate(Model *m, const int *prompt, int n_prompt, int max_new, float temperature, int top_k, uint64_t seed,
             int *out);

#endif
