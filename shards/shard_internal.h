/* shard_internal.h: what the shard builder, store, loader and CLI share.
 * Not part of the public API; see shards.h and docs/shards.md. */
#ifndef CALM_SHARD_INTERNAL_H
#define CALM_SHARD_INTERNAL_H

#include <lmdb.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "shards/shards.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "shards: records store little-endian uint16 tokens read in place; big-endian hosts are not supported"
#endif

#define SHARD_MAGIC "calm-shards"
#define SHARD_REC_MAGIC 0x7363u /* bytes "cs" */
#define SHARD_REC_VERSION 1
#define SHARD_HDR_BYTES 16
#define SHARD_KEY_BYTES 8
#define SHARD_MAXDBS 4 /* meta, train, val (one database for all languages) */
#define SHARD_MAXREADERS 4096
#define SHARD_DB_META "meta"

/* Record header, little-endian, then tokens[n] (uint16, or uint32 in a store
 * whose meta says token_bytes 4), then (task) uint8 mask[n]:
 *   0 u16 magic "cs"   2 u8 kind   3 u8 record version
 *   4 u32 language     8 u32 n     12 u32 crc32c(key ‖ header[0,12) ‖ payload)
 */

/* CRC-32C (Castagnoli). The dispatching version uses the SSE4.2 instruction
 * when the CPU has it; the table version exists for tests and other CPUs. */
uint32_t shard_crc32c(uint32_t crc, const void *p, size_t n);
uint32_t shard_crc32c_sw(uint32_t crc, const void *p, size_t n);

static inline uint32_t shard_rd32(const uint8_t *p) {
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}
static inline uint32_t shard_rdbe32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline void shard_wrbe32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* Key: big-endian language id then big-endian sample id, so keys sort by
 * language then sample and each language is one contiguous range. */
static inline void shard_key(uint8_t key[SHARD_KEY_BYTES], uint32_t lang, uint32_t id) {
    shard_wrbe32(key, lang);
    shard_wrbe32(key + 4, id);
}

/* The ordering LMDB's default comparator gives (memcmp, then shorter first),
 * without its call to memcmp for the usual 8-byte keys. Equivalent ordering
 * keeps stores readable by any LMDB tool. */
int shard_key_cmp(const MDB_val *a, const MDB_val *b);

size_t shard_record_bytes(ShardKind kind, uint32_t n, int token_bytes);
/* Encode a record into out[shard_record_bytes(kind, n, token_bytes)]; each
 * id is stored in token_bytes bytes (the caller checked that it fits). */
void shard_record_encode(uint8_t *out, const uint8_t key[SHARD_KEY_BYTES], ShardKind kind, uint32_t lang,
                         const uint32_t *tokens, const uint8_t *mask, uint32_t n, int token_bytes);
/* "train record 'de' #5 (key 00000001:00000005)" into buf. */
const char *shard_key_desc(char *buf, size_t cap, const ShardInfo *info, ShardSplit split, const uint8_t *key,
                           size_t key_len);
/* Check a record read from `split` and point rec into it. Errors name the
 * store, the split and the key. */
int shard_record_check(const char *dir, const ShardInfo *info, ShardSplit split, const MDB_val *key,
                       const MDB_val *val, int verify, ShardRecord *rec);

struct ShardStore {
    char *dir;
    MDB_env *env;
    MDB_dbi meta, db[SHARD_N_SPLITS];
    ShardInfo info;
    int refs;
    uint64_t dev, ino; /* of data.mdb: identifies the store in the process registry */
    long pid;          /* the process that opened it: a forked child must open its own */
    struct ShardStore *next;
};

/* Seconds since the epoch for "created_at" (honours SOURCE_DATE_EPOCH). */
void shard_utc_now(char out[32]);
/* "LMDB: <message>" wording for an LMDB return code. */
const char *shard_mdb_strerror(int rc);

/* Element i of the permutation of [0, n) for (seed, language, epoch). */
uint64_t shard_permute(uint64_t seed, uint32_t lang, uint64_t epoch, uint64_t n, uint64_t i);

#endif
