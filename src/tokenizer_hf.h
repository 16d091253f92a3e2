/* tokenizer_hf.h: the Hugging Face tokenizer.json tokenizer behind the handle
 * of tokenizer.h; private to src/tokenizer*.c.
 *
 *   tokenizer_hf.c    loading: tokenizer.json, tokenizer_config.json, config.json
 *   tokenizer_bpe.c   vocabulary and merge tables, the BPE merge loop, the
 *                     per-thread workspace with its word cache
 *   tokenizer_run.c   encoding (added tokens, normalizer, pre-tokenizer,
 *                     model, template) and decoding
 *
 * The pipeline is that of the JavaScript reference (transformers.js, as
 * packaged by @lenml/tokenizers), which tests/tokenizer checks id for id:
 * the text is split on added tokens first (longest match); every other
 * section is normalized, pre-tokenized and BPE-encoded on its own.
 *
 * Byte-level models (a ByteLevel pre-tokenizer) keep their vocabulary as the
 * raw bytes each token stands for, not as GPT-2's printable stand-ins, so a
 * pre-token is looked up without mapping its bytes first. */
#ifndef CALM_TOKENIZER_HF_H
#define CALM_TOKENIZER_HF_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "src/tokenizer.h"

/* A byte range of some buffer. */
typedef struct {
    uint32_t off, len;
} Span;

/* Token strings by id, and a hash index from string to id. Ids that the
 * file does not define have len HF_NO_TOKEN. */
#define HF_NO_TOKEN UINT32_MAX
typedef struct {
    char *bytes;
    size_t n, cap;
    uint32_t *off, *len; /* [n_ids] */
    int n_ids;
    uint64_t *slots; /* (hash << 32) | (id + 1); 0 is empty */
    size_t mask;
} Vocab;

/* (left id, right id) -> (rank, merged id). */
typedef struct {
    uint64_t *keys; /* UINT64_MAX is empty */
    uint64_t *vals; /* (rank << 32) | merged id */
    size_t mask;
} PairMap;

typedef enum { NORM_PREPEND, NORM_REPLACE, NORM_NFC } NormKind;
typedef struct {
    NormKind kind;
    char *a, *b; /* Prepend: a; Replace: a -> b */
    size_t alen, blen;
} NormStep;

typedef enum { PRE_SPLIT, PRE_BYTELEVEL, PRE_DIGITS, PRE_METASPACE } PreKind;
typedef struct {
    PreKind kind;
    pcre2_code *re;   /* Split; ByteLevel with use_regex */
    int removed;      /* Split: drop the matches (behavior Removed) */
    int individual;   /* Digits: each digit alone, not runs */
    int prepend;      /* ByteLevel add_prefix_space; Metaspace: 0 never, 1 first, 2 always */
    int split;        /* Metaspace: split before each replacement character */
    char *repl;       /* Metaspace replacement ("\u2581") */
    size_t repl_len;
} PreStep;

typedef enum { DEC_REPLACE, DEC_BYTEFALLBACK, DEC_FUSE, DEC_STRIP, DEC_METASPACE, DEC_BYTELEVEL } DecKind;
typedef struct {
    DecKind kind;
    char *a, *b; /* Replace: a -> b; Strip and Metaspace: a */
    size_t alen, blen;
    int start, stop; /* Strip: how many of a to cut at each end; Metaspace: start = strip the first space */
} DecStep;

/* One added token (tokenizer.json "added_tokens"). */
typedef struct {
    char *content;
    size_t len;
    int id, special, lstrip, rstrip;
} Added;

/* A trie over the added tokens' bytes, for the longest match at a position. */
typedef struct {
    int child, sibling; /* first child, next sibling (-1: none) */
    int added;          /* index into added[] of the token ending here, or -1 */
    unsigned char byte;
} TrieNode;

typedef struct HfTok {
    char *path; /* tokenizer.json, for messages */
    Vocab vocab;          /* model vocabulary and added tokens, by id */
    PairMap merges;
    int byte_level;       /* a ByteLevel pre-tokenizer: vocab holds raw bytes */
    int byte_id[256];     /* byte-level: the token of each byte; SentencePiece: <0xNN>, or -1 */
    int unk_id;           /* -1: none */
    int byte_fallback, fuse_unk, ignore_merges;
    int split_metaspace;  /* no vocabulary token has U+2581 after another character: a word can be cut before each */
    NormStep *norm;
    int n_norm;
    PreStep *pre;
    int n_pre;
    DecStep *dec;
    int n_dec;
    Added *added;
    int n_added;
    TrieNode *trie;
    int n_trie;
    unsigned char added_first[256]; /* bytes that start an added token */
    int has_template;     /* a TemplateProcessing post-processor: it, not tokenizer_config.json, adds BOS/EOS */
    int *prefix, *suffix; /* ids encoding adds around the text (add_special) */
    int n_prefix, n_suffix;
    unsigned char *special; /* [n_ids]: dropped by decode's skip_special */
    int bos, eos, vocab_size;
    pthread_key_t work_key; /* per-thread HfWork */
} HfTok;

/* tokenizer_hf.c */
HfTok *hf_load(const char *dir, const char *path);
void hf_free(HfTok *h);

/* tokenizer_bpe.c */
uint32_t hf_hash(const void *p, size_t n);
void vocab_init(Vocab *v, int n_ids);
void vocab_set(Vocab *v, int id, const char *s, size_t n); /* n_ids must exceed id */
void vocab_index(Vocab *v);                                 /* after every vocab_set */
int vocab_find(const Vocab *v, const char *s, size_t n);    /* -1: not a token */
void vocab_free(Vocab *v);
void pairs_init(PairMap *m, size_t n);
void pairs_put(PairMap *m, int left, int right, uint32_t rank, int merged);
void pairs_free(PairMap *m);
/* The bytes each of the 256 GPT-2 stand-in characters means: -1 for other
 * code points. */
int hf_unicode_to_byte(uint32_t cp);

/* Per-thread scratch: the word cache, match data, buffers. */
typedef struct HfWork HfWork;
HfWork *hf_work(const HfTok *h);
void hf_work_free(void *w);
pcre2_match_data *hf_work_match(HfWork *w);
/* Scratch buffers owned by the workspace, grown to at least n bytes:
 * which = 0..2 for the normalizer's ping-pong and the pre-tokenizer. */
char *hf_work_buf(HfWork *w, int which, size_t n);
Span *hf_work_spans(HfWork *w, int which, size_t n);
/* Append the ids of one pre-token (after the model's byte fallback);
 * -1 when a piece has no token and the model no unk_token. */
int hf_encode_word(const HfTok *h, HfWork *w, const char *s, size_t n, TokIds *out);

/* tokenizer.c: grow the array (inline: the encoder calls it per token) */
void tok_ids_reserve(TokIds *ids, size_t n);
static inline void tok_ids_push(TokIds *ids, int id) {
    if (ids->n == ids->cap) tok_ids_reserve(ids, ids->n + 1);
    ids->v[ids->n++] = id;
}

/* tokenizer_run.c */
int hf_encode(const HfTok *h, const char *text, size_t n, int add_special, TokIds *out);
int hf_decode(const HfTok *h, const int *ids, size_t n, int skip_special, char **text, size_t *len);

#endif
