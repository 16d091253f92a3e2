/* tokenizer.h: text <-> token ids.
 *
 * Two kinds of tokenizer behind one handle:
 *  - calm's byte-level tokenizer, for models calm trains itself and for any
 *    model directory without tokenizer.json: ids 0..255 are bytes, 256 BOS,
 *    257 EOS, 258 PAD; the model's vocabulary is padded past that (default
 *    320) so embedding rows stay cache-friendly;
 *  - a Hugging Face tokenizer.json (tokenizer_hf.c): byte-level BPE
 *    (Llama-3, Qwen, GPT-2, SmolLM) and SentencePiece-style BPE with byte
 *    fallback (Llama-2, TinyLlama, Mistral), with added and special tokens;
 *    BOS/EOS and add_bos_token from tokenizer_config.json / config.json.
 * A tokenizer is named by tokenizer_id(): TOK_ID for the byte tokenizer,
 * the sha256 of tokenizer.json and the BOS and EOS ids otherwise. Model configs and shard stores
 * record it, and calm refuses to mix ids made by different tokenizers. */
#ifndef CALM_TOKENIZER_H
#define CALM_TOKENIZER_H

#include <stddef.h>

#define TOK_BOS 256
#define TOK_EOS 257
#define TOK_PAD 258
#define TOK_N_SPECIAL 259 /* smallest vocabulary that holds every id */
#define TOK_VOCAB_DEFAULT 320
#define TOK_ID "calm-bytes-v1" /* recorded in model configs and shard stores */
#define TOK_FILE "tokenizer.json"
#define TOK_ID_MAX 96 /* longest tokenizer_id() plus NUL */

/* The files of a Hugging Face tokenizer, copied with a model directory. */
#define TOK_FILES {TOK_FILE, "tokenizer_config.json", "special_tokens_map.json"}

/* Copy from_dir's tokenizer files (those present) into to_dir, each
 * atomically, so a model trained from from_dir keeps its tokenizer. */
int tokenizer_copy_files(const char *from_dir, const char *to_dir);

/* ---- the byte-level tokenizer as plain functions ---- */

/* Encode n bytes into out (room for n + 2); adds BOS / EOS when asked.
 * Returns the number of ids written. */
size_t tok_encode(int *out, const unsigned char *bytes, size_t n, int add_bos, int add_eos);

/* Decode ids to bytes; special ids are dropped. Returns bytes written (<= n). */
size_t tok_decode(unsigned char *out, const int *ids, size_t n);

/* ---- either kind, behind a handle ---- */

typedef struct Tokenizer Tokenizer;

/* A growable id array (tokenizer_encode appends to it). */
typedef struct {
    int *v;
    size_t n, cap;
} TokIds;
void tok_ids_free(TokIds *ids);

/* dir/tokenizer.json if present, else the byte tokenizer. NULL after
 * calm_error naming the file and what is wrong or not supported. */
Tokenizer *tokenizer_load(const char *dir);
Tokenizer *tokenizer_bytes(void);
void tokenizer_free(Tokenizer *t);

/* TOK_ID, or "sha256:<64 hex of tokenizer.json> bos=N eos=M" (-1: none) */
const char *tokenizer_id(const Tokenizer *t);
int tokenizer_vocab_size(const Tokenizer *t);  /* 1 + the largest id it can produce */
int tokenizer_bos(const Tokenizer *t);         /* -1 when the model has none */
int tokenizer_eos(const Tokenizer *t);
int tokenizer_is_special(const Tokenizer *t, int id); /* BOS/EOS/PAD and special added tokens */

/* Append the ids of n bytes of UTF-8 text to out. add_special: the special
 * tokens the model's configuration adds (BOS when add_bos_token, EOS when
 * add_eos_token; the byte tokenizer adds BOS). Returns 0, or -1 (invalid
 * UTF-8 where the tokenizer needs characters, an id out of range). */
int tokenizer_encode(const Tokenizer *t, const char *text, size_t n, int add_special, TokIds *out);

/* A document as calm trains on it: BOS (when the tokenizer has one), the
 * text's ids without any other special token, EOS (when it has one). */
int tokenizer_encode_doc(const Tokenizer *t, const char *text, size_t n, TokIds *out);

/* The same for a document given as ids: BOS, ids, EOS (those it has). */
void tokenizer_frame_ids(const Tokenizer *t, const int *ids, size_t n, TokIds *out);

/* A prompt to continue, as a document starts: BOS (when the tokenizer has
 * one), then the text's ids. */
int tokenizer_encode_prompt(const Tokenizer *t, const char *text, size_t n, TokIds *out);

/* A task example as calm trains and scores it: BOS (when the tokenizer has
 * one) and the prompt's ids, then the target's ids and EOS (when it has one);
 * *n_prompt gets the length of the first part. Prompt and target are encoded
 * separately, so the boundary between them is always a token boundary. */
int tokenizer_encode_task(const Tokenizer *t, const char *prompt, size_t np, const char *target, size_t nt,
                          TokIds *out, size_t *n_prompt);

/* Decode n ids to text into a malloc'd NUL-terminated string (*len bytes).
 * skip_special drops special tokens. -1 on an id outside the vocabulary. */
int tokenizer_decode(const Tokenizer *t, const int *ids, size_t n, int skip_special, char **text, size_t *len);

#endif
