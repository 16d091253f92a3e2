/* tokenizer.h: the byte-level tokenizer shared by every model calm builds.
 * Ids 0..255 are bytes, 256 BOS, 257 EOS, 258 PAD; the model's vocabulary is
 * padded past that (default 320) so embedding rows stay cache-friendly. */
#ifndef CALM_TOKENIZER_H
#define CALM_TOKENIZER_H

#include <stddef.h>

#define TOK_BOS 256
#define TOK_EOS 257
#define TOK_PAD 258
#define TOK_N_SPECIAL 259 /* smallest vocabulary that holds every id */
#define TOK_VOCAB_DEFAULT 320
#define TOK_ID "calm-bytes-v1" /* recorded in model configs and shard stores */

/* Encode n bytes into out (room for n + 2); adds BOS / EOS when asked.
 * Returns the number of ids written. */
size_t tok_encode(int *out, const unsigned char *bytes, size_t n, int add_bos, int add_eos);

/* Decode ids to bytes; special ids are dropped. Returns bytes written (<= n). */
size_t tok_decode(unsigned char *out, const int *ids, size_t n);

#endif
