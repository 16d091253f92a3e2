/* streams.h: the residual streams of two frozen models over the first N
 * tokens of a store's train split, each MPI rank running its own share of
 * the sequences. What `calm analyze` compares (CKA) and what
 * `calm compose --init-proj lstsq` fits the projections on. */
#ifndef CALM_CLI_STREAMS_H
#define CALM_CLI_STREAMS_H

#include <stdint.h>

#include "shards/shards.h"
#include "src/model.h"

/* This rank's rows of one model's stream after each of its first L blocks. */
typedef struct {
    int L, C;
    float **h;         /* [L][rows * C]; NULL for a block whose stream is not kept */
    const float *keep; /* the current chunk's weights: a row is kept where > 0 */
    int64_t n;         /* rows kept so far */
} Streams;

/* Room for `rows` rows after each of blocks 0..L-1, or only after the blocks
 * with want[l] != 0 (want NULL: all); L is also how many blocks run. */
void streams_init(Streams *s, int L, int C, int64_t rows, const unsigned char *want);
void streams_free(Streams *s);

/* This rank's share of the first `tokens` tokens of the train split in
 * sequences of T: sequences [r S, (r+1) S) of ceil(tokens / T), S per rank,
 * so every rank count reads the same tokens. Positions past the last token
 * and padding get weight 0. Returns the sequences held (S), or -1 after
 * calm_error. */
int streams_load_tokens(ShardStore *st, long tokens, int T, int **tok, float **weights);

/* Both models forward over this rank's S sequences, `batch` at a time,
 * keeping the rows of weight > 0; progress is logged as `what`. */
void streams_run(Model *A, Model *B, Streams *sa, Streams *sb, const int *tokens, const float *w, int S, int T,
                 int batch, const char *what);

#endif
