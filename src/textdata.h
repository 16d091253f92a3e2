/* textdata.h: plain-text training data held in memory as one token stream.
 * Each input file is a document: BOS, its tokens, EOS. Batches are windows of
 * T+1 tokens at positions drawn from (seed, step, row), never from the
 * loader's history, so a resumed run sees exactly the batches it would have. */
#ifndef CALM_TEXTDATA_H
#define CALM_TEXTDATA_H

#include <stddef.h>
#include <stdint.h>

struct Tokenizer;

typedef struct {
    int *tokens;
    size_t n, cap;
} TextData;

/* Each file is a document, tokenized with t (tokenizer_encode_doc). */
int textdata_load(TextData *d, const struct Tokenizer *t, const char *const *paths, int n_paths);
/* Append one document of n bytes of text to the stream. */
int textdata_add(TextData *d, const struct Tokenizer *t, const char *text, size_t n);
void textdata_free(TextData *d);

/* Rows [row0, row0 + B) of the global batch for step: tokens/targets [B,T],
 * weights [B,T] all 1. Needs d->n > T. */
void textdata_batch(const TextData *d, uint64_t seed, long step, int row0, int B, int T, int *tokens, int *targets,
                    float *weights);

/* Number of sequential evaluation windows of T targets covering the stream. */
long textdata_eval_windows(const TextData *d, int T);
/* Window w: targets d[wT+1 .. wT+T]; positions past the end get weight 0. */
void textdata_eval_window(const TextData *d, long w, int T, int *tokens, int *targets, float *weights);

#endif
