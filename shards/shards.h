/* shards.h: tokenized training data in LMDB — store, builder, loader.
 *
 * A store is one LMDB environment (a directory holding data.mdb and lock.mdb)
 * with three named databases: `meta` (format, tokenizer, per-language counts,
 * the completion marker), `train` and `val` (records keyed by the fixed-width
 * big-endian pair (language id, sample id)). docs/shards.md has the format,
 * the mixing and shuffling math and the resume semantics.
 *
 * Dimension letters as elsewhere in calm: B = sequences per replica per step,
 * T = tokens per sequence.
 *
 * What the trainer calls (every function returns 0 or -1 after calm_error()):
 *
 *     ShardStore *store;
 *     ShardLoader *train;
 *     if (shard_store_open(&store, dir) != 0) fail(calm_last_error());
 *     const ShardInfo *info = shard_store_info(store);   // info->vocab_size, ->seq_len, ->langs
 *     ShardLoaderOpts o;
 *     shard_loader_opts_default(&o);                      // train split, alpha 0.3, shuffled
 *     o.seed = seed;
 *     if (shard_loader_open(&train, store, &o) != 0) fail(calm_last_error());
 *     for (int64_t step = resume_step; step < steps; step++) {
 *         // tokens, targets: B*T ints; weights: B*T floats (per-token loss weight, 0 on padding)
 *         if (shard_loader_batch(train, step, rank, n_ranks, B, T, tokens, targets, weights) != 0)
 *             fail(calm_last_error());
 *         ...
 *     }
 *     shard_loader_close(train);
 *     shard_store_close(store);
 *
 * A batch is a pure function of (store, options, step, replica, n_replicas, B):
 * resuming at step k needs nothing but k. The stream depends on B * n_replicas
 * (the global batch), not on how it is split across replicas.
 *
 * Threads: a ShardStore may be shared by any number of threads and loaders; a
 * ShardLoader is used by one thread at a time (give each thread its own).
 * Opening the same directory twice in one process returns the same store
 * (LMDB forbids two environments on one file in a process); close it as often
 * as it was opened. A forked child opens its own. Record pointers returned by shard_loader_record() point
 * into the read-only map and stay valid until the loader is closed.
 */
#ifndef CALM_SHARDS_H
#define CALM_SHARDS_H

#include <stddef.h>
#include <stdint.h>

#include "src/tokenizer.h"

#define SHARD_FORMAT_VERSION 1
#define SHARD_LANG_MAX 32     /* longest language code, bytes */
#define SHARD_MAX_LANGS 65536 /* languages per store */

typedef enum { SHARD_KIND_NONE = 0, SHARD_KIND_LM = 1, SHARD_KIND_TASK = 2 } ShardKind;
typedef enum { SHARD_TRAIN = 0, SHARD_VAL = 1 } ShardSplit;
#define SHARD_N_SPLITS 2

const char *shard_kind_name(ShardKind kind);   /* "lm", "task", "none" */
const char *shard_split_name(ShardSplit split); /* "train", "val" */
int shard_split_parse(const char *name, ShardSplit *out);

/* ---- store ------------------------------------------------------------ */

typedef struct {
    char code[SHARD_LANG_MAX + 1];
    uint64_t docs[SHARD_N_SPLITS];    /* documents (lm) or examples (task) */
    uint64_t samples[SHARD_N_SPLITS]; /* records = training samples */
    uint64_t tokens[SHARD_N_SPLITS];  /* tokens of the packed stream (lm) or of the records (task) */
} ShardLang;

typedef struct {
    int version;         /* SHARD_FORMAT_VERSION */
    char tokenizer[TOK_ID_MAX]; /* tokenizer_id() of the tokenizer that made the ids */
    int vocab_size;      /* every id is < vocab_size */
    int token_bytes;     /* 2 (uint16 ids) or 4 (uint32, when vocab_size > 65535) */
    ShardKind kind;      /* one kind per store */
    int seq_len;         /* T the store was packed for; records hold up to T + 1 tokens */
    double val_fraction; /* share of documents held out in `val` */
    int n_langs;
    ShardLang *langs;    /* [n_langs], indexed by language id */
    char *created_by;    /* the command that built the store */
    char created_at[32]; /* UTC, ISO 8601 */
    int doc_bos;         /* documents start with BOS (meta doc_start = bos; task records always do).
                          * lm stores built before 2026-12-06 do not: their models never saw BOS */
    uint64_t file_bytes; /* size of data.mdb */
} ShardInfo;

typedef struct ShardStore ShardStore;

/* Open DIR read-only (MDB_RDONLY | MDB_NOTLS | MDB_NORDAHEAD). Refuses a
 * store of another format version, an incomplete build and a truncated file. */
int shard_store_open(ShardStore **out, const char *dir);
void shard_store_close(ShardStore *s);
const ShardInfo *shard_store_info(const ShardStore *s);
const char *shard_store_dir(const ShardStore *s);
/* Language id of a code; -1 with an error naming the code and the store. */
int shard_store_lang(const ShardStore *s, const char *code);

/* Check every record of both splits: header, length, checksum, token range,
 * contiguous ids and the per-language counts in meta. On failure the error
 * names the first bad key. Counts are optional outputs. */
int shard_store_verify(ShardStore *s, uint64_t *n_records, uint64_t *n_tokens);

/* ---- builder ---------------------------------------------------------- */

typedef struct {
    int seq_len;          /* T (default 256): lm records hold T + 1 tokens, overlapping by one */
    int vocab_size;       /* recorded in meta; ids must be below it (default TOK_VOCAB_DEFAULT); above
                           * 65535 the ids are stored as uint32 */
    const struct Tokenizer *tokenizer; /* what turns text into ids (NULL: calm's byte tokenizer) */
    double val_fraction;  /* [0, 1): every (1/f)-th document of each language goes to `val` */
    size_t map_size;      /* initial LMDB map size; doubled on MDB_MAP_FULL (default 64 MiB) */
    int batch_records;    /* records per write transaction (default 8192) */
    const char *command;  /* recorded in meta as created_by (default "") */
    ShardKind kind;       /* SHARD_KIND_NONE: decided by the first record added */
} ShardBuildOpts;

typedef struct ShardBuilder ShardBuilder;

void shard_build_opts_default(ShardBuildOpts *o);
/* Create a new store in DIR (created if missing; refused if it holds one). */
int shard_builder_open(ShardBuilder **out, const char *dir, const ShardBuildOpts *o);
/* One lm document of UTF-8 text: BOS, its tokens, EOS (tokenizer_encode_doc),
 * appended to the language's packed stream. Languages get ids in order of
 * first appearance. */
int shard_builder_add_text(ShardBuilder *b, const char *lang, const char *text, size_t n);
/* The same for a document given as token ids (each < vocab_size; not PAD
 * in a byte-tokenizer store), framed by the tokenizer's BOS and EOS. */
int shard_builder_add_ids(ShardBuilder *b, const char *lang, const int *ids, size_t n);
/* One task example: BOS prompt target EOS (tokenizer_encode_task), loss
 * mask 1 on target and EOS.
 * Must fit in seq_len + 1 tokens. */
int shard_builder_add_task(ShardBuilder *b, const char *lang, const char *prompt, size_t np,
                           const char *target, size_t nt);
/* Flush, write meta, sync, then write the `complete` marker in its own final
 * transaction. Fails on an empty build. */
int shard_builder_finish(ShardBuilder *b);
uint64_t shard_builder_map_size(const ShardBuilder *b); /* current LMDB map size */
/* Close. Without a successful finish the store stays incomplete and every
 * reader refuses it, as after a crash. */
void shard_builder_free(ShardBuilder *b);
/* Close and delete the files this builder created (for a failed build). */
void shard_builder_discard(ShardBuilder *b);

/* ---- loader ----------------------------------------------------------- */

typedef struct {
    ShardSplit split;  /* SHARD_TRAIN */
    uint64_t seed;     /* shuffling seed (default 0) */
    double alpha;      /* mixing exponent, p(L) ∝ n_L^alpha (default 0.3; 1 proportional, 0 uniform) */
    int shuffle;       /* 1: each (language, epoch) in its own permuted order; 0: ids in order */
    int verify;        /* 1: check each record's checksum as it is read (default) */
    const char *langs; /* NULL: every language with samples in the split; else "de,fr,sw" (not kept) */
} ShardLoaderOpts;

typedef struct ShardLoader ShardLoader;

typedef struct {
    ShardKind kind;
    int lang;
    uint32_t n;             /* tokens in the record */
    int token_bytes;        /* 2 or 4, as the store's */
    const uint16_t *tokens; /* [n] uint16 ids in the map (zero-copy) when token_bytes is 2, else NULL */
    const uint8_t *tokens32; /* [4n] bytes of little-endian uint32 ids when token_bytes is 4 (LMDB aligns
                              * values to 2 bytes only: read them with shard_record_token) */
    const uint8_t *mask;    /* task: [n] loss mask (1 = target token); lm: NULL */
} ShardRecord;

/* Id t of a record, whatever its width. */
static inline uint32_t shard_record_token(const ShardRecord *r, uint32_t t) {
    if (r->tokens) return r->tokens[t];
    const uint8_t *p = r->tokens32 + 4 * (size_t)t;
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Where global sample g of the stream comes from. */
typedef struct {
    int lang;
    uint64_t epoch;  /* how many times this language has been gone through before */
    uint64_t index;  /* position within the epoch, [0, samples of lang) */
    uint64_t sample; /* record id read: the epoch's permutation of index */
} ShardPos;

void shard_loader_opts_default(ShardLoaderOpts *o);
/* The store must outlive the loader. Errors: empty split, unknown language,
 * alpha < 0. */
int shard_loader_open(ShardLoader **out, ShardStore *s, const ShardLoaderOpts *o);
void shard_loader_close(ShardLoader *l);

/* Fill tokens, targets [B*T] and weights [B*T] (may be NULL) for this
 * replica's B rows of global batch `step` (global batch = B * n_replicas
 * samples; replica r gets rows [r*B, (r+1)*B)). Row b is global sample
 * g = step*B*n_replicas + replica*B + b. targets[t] = tokens[t+1] of the
 * record; weights are 1 on real targets and 0 on padding (lm) or the record's
 * loss mask at the target position (task). Records shorter than T + 1 are
 * padded with TOK_PAD; T may be below the store's seq_len (records are cut). */
int shard_loader_batch(ShardLoader *l, int64_t step, int replica, int n_replicas, int B, int T, int *tokens,
                       int *targets, float *weights);

/* Pure function of g: the language, epoch and record of global sample g. */
void shard_loader_locate(const ShardLoader *l, uint64_t g, ShardPos *pos);
/* Read one record of the loader's split (checksum checked if opts.verify). */
int shard_loader_record(ShardLoader *l, int lang, uint64_t id, ShardRecord *rec);
/* The mixing share the schedule realises for a language (0 if not mixed in). */
double shard_loader_share(const ShardLoader *l, int lang);
/* Epochs completed by the most-repeated language after n global samples. */
double shard_loader_epochs(const ShardLoader *l, uint64_t n_samples);

/* ---- helpers for tools ---------------------------------------------------- */

/* A language code: 1 to SHARD_LANG_MAX characters of A-Z a-z 0-9 _ -. */
int shard_lang_code_ok(const char *code);
/* Format a byte count as "12.3 MiB". */
const char *shard_fmt_bytes(char *buf, size_t cap, double bytes);

/* Mixing shares p(L) ∝ n_L^alpha over the languages with n_L > 0; 0 elsewhere. */
int shard_mix_shares(const uint64_t *n, int n_langs, double alpha, double *p);

/* Read every record of a split once, so that timings see a warm page cache;
 * *bytes: the bytes read. */
int shard_store_warm(ShardStore *s, ShardSplit split, uint64_t *bytes);

#endif
