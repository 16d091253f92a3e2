/* shard_format.c: record layout, CRC-32C, key names and small shared helpers. */
#define _GNU_SOURCE
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "src/common.h"
#include "shards/shard_internal.h"
#include "src/tokenizer.h"

const char *shard_kind_name(ShardKind kind) {
    switch (kind) {
    case SHARD_KIND_LM: return "lm";
    case SHARD_KIND_TASK: return "task";
    default: return "none";
    }
}

const char *shard_split_name(ShardSplit split) { return split == SHARD_VAL ? "val" : "train"; }

int shard_split_parse(const char *name, ShardSplit *out) {
    if (strcmp(name, "train") == 0) *out = SHARD_TRAIN;
    else if (strcmp(name, "val") == 0) *out = SHARD_VAL;
    else return calm_error("unknown split '%s' (expected train or val)", name);
    return 0;
}

/* ---- CRC-32C ----------------------------------------------------------
 * Castagnoli polynomial (reflected 0x82F63B78): unlike a 64-bit hash it
 * detects every burst error of up to 32 bits, so a flipped byte is always
 * caught, and x86-64 computes it in hardware (SSE4.2 crc32). */

static uint32_t crc_table[8][256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1)));
        crc_table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++) crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^ crc_table[0][crc_table[t - 1][i] & 0xff];
}

uint32_t shard_crc32c_sw(uint32_t crc, const void *data, size_t n) {
    pthread_once(&crc_once, crc_init);
    const uint8_t *p = data;
    uint32_t c = ~crc;
    while (n >= 8) { /* slice-by-8 */
        uint32_t lo = shard_rd32(p) ^ c, hi = shard_rd32(p + 4);
        c = crc_table[7][lo & 0xff] ^ crc_table[6][(lo >> 8) & 0xff] ^ crc_table[5][(lo >> 16) & 0xff] ^
            crc_table[4][lo >> 24] ^ crc_table[3][hi & 0xff] ^ crc_table[2][(hi >> 8) & 0xff] ^
            crc_table[1][(hi >> 16) & 0xff] ^ crc_table[0][hi >> 24];
        p += 8;
        n -= 8;
    }
    while (n--) c = (c >> 8) ^ crc_table[0][(c ^ *p++) & 0xff];
    return ~c;
}

#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("sse4.2"))) static uint32_t crc32c_hw(uint32_t crc, const void *data, size_t n) {
    const uint8_t *p = data;
    uint64_t c = ~crc;
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c = __builtin_ia32_crc32di(c, v);
        p += 8;
        n -= 8;
    }
    uint32_t c32 = (uint32_t)c;
    while (n--) c32 = __builtin_ia32_crc32qi(c32, *p++);
    return ~c32;
}

uint32_t shard_crc32c(uint32_t crc, const void *p, size_t n) {
    static int hw = -1;
    int h = __atomic_load_n(&hw, __ATOMIC_RELAXED);
    if (h < 0) {
        h = __builtin_cpu_supports("sse4.2") ? 1 : 0;
        __atomic_store_n(&hw, h, __ATOMIC_RELAXED);
    }
    return h ? crc32c_hw(crc, p, n) : shard_crc32c_sw(crc, p, n);
}
#else
uint32_t shard_crc32c(uint32_t crc, const void *p, size_t n) { return shard_crc32c_sw(crc, p, n); }
#endif

/* ---- records ------------------------------------------------------------ */

int shard_key_cmp(const MDB_val *a, const MDB_val *b) {
    if (a->mv_size == SHARD_KEY_BYTES && b->mv_size == SHARD_KEY_BYTES) {
        uint64_t x, y;
        memcpy(&x, a->mv_data, 8);
        memcpy(&y, b->mv_data, 8);
        x = __builtin_bswap64(x);
        y = __builtin_bswap64(y);
        return x < y ? -1 : x > y;
    }
    size_t n = a->mv_size < b->mv_size ? a->mv_size : b->mv_size;
    int c = memcmp(a->mv_data, b->mv_data, n);
    if (c) return c;
    return a->mv_size < b->mv_size ? -1 : a->mv_size > b->mv_size;
}

size_t shard_record_bytes(ShardKind kind, uint32_t n, int token_bytes) {
    return SHARD_HDR_BYTES + (size_t)n * token_bytes + (kind == SHARD_KIND_TASK ? n : 0);
}

static uint32_t record_crc(const uint8_t *key, const uint8_t *rec, size_t bytes) {
    uint32_t c = shard_crc32c(0, key, SHARD_KEY_BYTES);
    c = shard_crc32c(c, rec, 12);
    return shard_crc32c(c, rec + SHARD_HDR_BYTES, bytes - SHARD_HDR_BYTES);
}

void shard_record_encode(uint8_t *out, const uint8_t key[SHARD_KEY_BYTES], ShardKind kind, uint32_t lang,
                         const uint32_t *tokens, const uint8_t *mask, uint32_t n, int token_bytes) {
    uint16_t magic = SHARD_REC_MAGIC;
    memcpy(out, &magic, 2);
    out[2] = (uint8_t)kind;
    out[3] = SHARD_REC_VERSION;
    memcpy(out + 4, &lang, 4);
    memcpy(out + 8, &n, 4);
    uint8_t *p = out + SHARD_HDR_BYTES;
    for (uint32_t t = 0; t < n; t++) {
        if (token_bytes == 2) {
            uint16_t v = (uint16_t)tokens[t];
            memcpy(p + 2 * (size_t)t, &v, 2);
        } else {
            memcpy(p + 4 * (size_t)t, &tokens[t], 4);
        }
    }
    if (kind == SHARD_KIND_TASK) memcpy(p + (size_t)n * token_bytes, mask, n);
    uint32_t crc = record_crc(key, out, shard_record_bytes(kind, n, token_bytes));
    memcpy(out + 12, &crc, 4);
}

const char *shard_key_desc(char *buf, size_t cap, const ShardInfo *info, ShardSplit split, const uint8_t *key,
                           size_t key_len) {
    if (key_len != SHARD_KEY_BYTES) {
        snprintf(buf, cap, "%s key of %zu bytes (expected %d)", shard_split_name(split), key_len, SHARD_KEY_BYTES);
        return buf;
    }
    uint32_t lang = shard_rdbe32(key), id = shard_rdbe32(key + 4);
    const char *code = info && lang < (uint32_t)info->n_langs ? info->langs[lang].code : "?";
    snprintf(buf, cap, "%s record '%s' #%u (key %08x:%08x)", shard_split_name(split), code, id, lang, id);
    return buf;
}

/* Record the error "DIR: <key description>: <message>; the store is damaged,
 * rebuild it". The key is only formatted on this cold path. */
static int rec_error(const char *dir, const ShardInfo *info, ShardSplit split, const MDB_val *key, const char *fmt,
                     ...) CALM_PRINTF(5, 6);
static int rec_error(const char *dir, const ShardInfo *info, ShardSplit split, const MDB_val *key, const char *fmt,
                     ...) {
    char kd[160], msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    shard_key_desc(kd, sizeof kd, info, split, key->mv_data, key->mv_size);
    return calm_error("%s: %s: %s; the store is damaged, rebuild it", dir, kd, msg);
}

int shard_record_check(const char *dir, const ShardInfo *info, ShardSplit split, const MDB_val *key,
                       const MDB_val *val, int verify, ShardRecord *rec) {
    const uint8_t *k = key->mv_data, *v = val->mv_data;
    if (key->mv_size != SHARD_KEY_BYTES) return rec_error(dir, info, split, key, "bad key length");
    uint32_t lang = shard_rdbe32(k);
    if (lang >= (uint32_t)info->n_langs)
        return rec_error(dir, info, split, key, "language id %u not in meta (%d languages)", lang, info->n_langs);
    if (val->mv_size < SHARD_HDR_BYTES)
        return rec_error(dir, info, split, key, "record of %zu bytes is shorter than its header", val->mv_size);
    uint16_t magic;
    memcpy(&magic, v, 2);
    uint32_t hlang = shard_rd32(v + 4), n = shard_rd32(v + 8), stored = shard_rd32(v + 12);
    if (magic != SHARD_REC_MAGIC || v[3] != SHARD_REC_VERSION)
        return rec_error(dir, info, split, key, "bad record header (magic %04x version %u, expected %04x version %u)",
                         magic, v[3], SHARD_REC_MAGIC, SHARD_REC_VERSION);
    if (v[2] != (uint8_t)info->kind)
        return rec_error(dir, info, split, key, "record kind %u in a store of kind %s", v[2],
                         shard_kind_name(info->kind));
    if (hlang != lang) return rec_error(dir, info, split, key, "record header says language %u", hlang);
    size_t want = shard_record_bytes(info->kind, n, info->token_bytes);
    if (n > (uint32_t)info->seq_len + 1 || val->mv_size != want)
        return rec_error(dir, info, split, key, "length mismatch (header: %u tokens = %zu bytes; record: %zu bytes; "
                         "seq_len %d)", n, want, val->mv_size, info->seq_len);
    if (verify) {
        uint32_t crc = record_crc(k, v, val->mv_size);
        if (crc != stored)
            return rec_error(dir, info, split, key, "checksum mismatch (stored %08x, computed %08x)", stored, crc);
    }
    /* LMDB places values at even offsets (nodes are 2-byte aligned, keys are
     * 8 bytes), so the uint16 tokens can be read where they lie. */
    if (((uintptr_t)(v + SHARD_HDR_BYTES) & 1) != 0)
        return rec_error(dir, info, split, key, "record not 2-byte aligned in the map (LMDB layout changed?)");
    rec->kind = info->kind;
    rec->lang = (int)lang;
    rec->n = n;
    rec->token_bytes = info->token_bytes;
    rec->tokens = info->token_bytes == 2 ? (const uint16_t *)(const void *)(v + SHARD_HDR_BYTES) : NULL;
    rec->tokens32 = info->token_bytes == 4 ? v + SHARD_HDR_BYTES : NULL;
    rec->mask = info->kind == SHARD_KIND_TASK ? v + SHARD_HDR_BYTES + (size_t)n * info->token_bytes : NULL;
    return 0;
}

/* ---- helpers ------------------------------------------------------------ */

void shard_utc_now(char out[32]) {
    const char *sde = getenv("SOURCE_DATE_EPOCH");
    time_t t = sde && *sde ? (time_t)strtoll(sde, NULL, 10) : time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

const char *shard_mdb_strerror(int rc) { return mdb_strerror(rc); }

const char *shard_fmt_bytes(char *buf, size_t cap, double bytes) {
    static const char *unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (bytes >= 1024 && u < 4) {
        bytes /= 1024;
        u++;
    }
    snprintf(buf, cap, u ? "%.1f %s" : "%.0f %s", bytes, unit[u]);
    return buf;
}

int shard_mix_shares(const uint64_t *n, int n_langs, double alpha, double *p) {
    if (!(alpha >= 0) || !isfinite(alpha)) return calm_error("mixing alpha must be a number >= 0, got %g", alpha);
    double sum = 0;
    for (int i = 0; i < n_langs; i++) {
        p[i] = n[i] > 0 ? pow((double)n[i], alpha) : 0.0;
        sum += p[i];
    }
    if (!(sum > 0) || !isfinite(sum)) return calm_error("no samples to mix");
    for (int i = 0; i < n_langs; i++) p[i] /= sum;
    return 0;
}
