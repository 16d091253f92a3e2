/* shard_loader.c: batches as a pure function of (seed, step).
 *
 * Global sample g is mapped to a record in three stateless steps
 * (docs/shards.md has the math):
 *   1. language: slot g mod W of a precomputed period of W slots in which
 *      language L holds w_L ≈ p_L W slots, laid out by earliest-deadline-first
 *      over Pfair windows, so after any prefix every language's count is
 *      within one sample of its share;
 *   2. ordinal: k = (g div W) w_L + (rank of the slot among L's slots), the
 *      number of earlier samples of L, so epoch = k div n_L, index = k mod n_L;
 *   3. record: a Feistel permutation of [0, n_L) keyed by (seed, L, epoch),
 *      cycle-walked, so each epoch visits every record once in a fresh order.
 */
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "src/common.h"
#include "shards/shard_internal.h"
#include "src/rng.h"
#include "src/tokenizer.h"

#define FEISTEL_ROUNDS 6
#define PERIOD_MIN (1u << 16)
#define PERIOD_MAX (1u << 20)

typedef struct {
    uint32_t lang, rank;
} Slot;

struct ShardLoader {
    ShardStore *s;
    MDB_txn *txn; /* one long read transaction: the store never changes once complete */
    MDB_dbi dbi;
    ShardLoaderOpts o;
    int n_langs;
    uint64_t *n; /* samples per language in the split; 0 if not mixed in */
    uint32_t *w; /* slots per period */
    Slot *slot;  /* [W] */
    uint64_t W;
    int wbits;
    struct KeyCache {
        uint64_t epoch; /* UINT64_MAX: empty */
        uint64_t key[FEISTEL_ROUNDS];
    } *keys; /* per language: the Feistel keys of the epoch read last */
};

void shard_loader_opts_default(ShardLoaderOpts *o) {
    memset(o, 0, sizeof *o);
    o->split = SHARD_TRAIN;
    o->seed = 0;
    o->alpha = 0.3;
    o->shuffle = 1;
    o->verify = 1;
    o->langs = NULL;
}

/* ---- permutation ----------------------------------------------------------
 * A Feistel network on b = ceil(log2 n) bits, halves of floor(b/2) and
 * ceil(b/2) bits, each round xoring a keyed hash of one half into the other
 * (invertible for any widths). It permutes [0, 2^b); cycle walking (apply
 * again while the result is >= n) restricts it to a permutation of [0, n)
 * with fewer than 2 applications expected, since 2^b < 2n. */

static uint64_t feistel(uint64_t x, int bits, const uint64_t *key) {
    int lb = bits / 2, rb = bits - lb;
    uint64_t lmask = (1ULL << lb) - 1, rmask = (1ULL << rb) - 1;
    uint64_t L = x >> rb, R = x & rmask;
    for (int r = 0; r < FEISTEL_ROUNDS; r++) {
        if (r & 1) R ^= calm_hash64(L ^ key[r]) & rmask;
        else L ^= calm_hash64(R ^ key[r]) & lmask;
    }
    return (L << rb) | R;
}

static void feistel_keys(uint64_t seed, uint32_t lang, uint64_t epoch, uint64_t key[FEISTEL_ROUNDS]) {
    uint64_t base = calm_hash64(calm_hash64(seed ^ 0x5ca1ab1e0ddba11ULL) ^
                                calm_hash64(((uint64_t)lang << 32) ^ 0x1a2b3c4dULL) ^
                                calm_hash64(epoch * 0x9e3779b97f4a7c15ULL + 7));
    for (int r = 0; r < FEISTEL_ROUNDS; r++) key[r] = calm_hash64(base + (uint64_t)r);
}

static uint64_t permute_keyed(const uint64_t *key, uint64_t n, uint64_t i) {
    if (n <= 1) return 0;
    int bits = 64 - __builtin_clzll(n - 1);
    uint64_t x = i;
    do x = feistel(x, bits, key);
    while (x >= n);
    return x;
}

uint64_t shard_permute(uint64_t seed, uint32_t lang, uint64_t epoch, uint64_t n, uint64_t i) {
    uint64_t key[FEISTEL_ROUNDS];
    feistel_keys(seed, lang, epoch, key);
    return permute_keyed(key, n, i);
}

/* ---- mixing schedule ------------------------------------------------------ */

typedef struct {
    uint64_t key;
    uint32_t lang;
} HeapEnt;

typedef struct {
    HeapEnt *a;
    size_t n;
} Heap;

static int heap_less(HeapEnt x, HeapEnt y) { return x.key < y.key || (x.key == y.key && x.lang < y.lang); }

static void heap_push(Heap *h, HeapEnt e) {
    size_t i = h->n++;
    while (i > 0 && heap_less(e, h->a[(i - 1) / 2])) {
        h->a[i] = h->a[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h->a[i] = e;
}

static HeapEnt heap_pop(Heap *h) {
    HeapEnt top = h->a[0], e = h->a[--h->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n) break;
        if (c + 1 < h->n && heap_less(h->a[c + 1], h->a[c])) c++;
        if (!heap_less(h->a[c], e)) break;
        h->a[i] = h->a[c];
        i = c;
    }
    if (h->n > 0) h->a[i] = e;
    return top;
}

typedef struct {
    double key;
    uint32_t lang;
} Ranked;

static int ranked_desc(const void *x, const void *y) {
    const Ranked *a = x, *b = y;
    if (a->key != b->key) return a->key > b->key ? -1 : 1;
    return a->lang < b->lang ? -1 : a->lang > b->lang;
}

/* Integer slots w_L summing to W with w_L ≈ p_L W (largest remainder), at
 * least one for every language mixed in. W is a power of two, grown until the
 * smallest share gets a slot of its own. */
static void quantize(ShardLoader *l, const double *p) {
    int m = 0;
    double pmin = 1;
    for (int i = 0; i < l->n_langs; i++)
        if (p[i] > 0) {
            m++;
            if (p[i] < pmin) pmin = p[i];
        }
    uint64_t W = PERIOD_MIN;
    while (W < 2 * (uint64_t)m) W <<= 1;
    while (W < PERIOD_MAX && pmin * (double)W < 1) W <<= 1;
    Ranked *r = xmalloc((size_t)m * sizeof *r);
    uint64_t sum = 0;
    int k = 0;
    for (int i = 0; i < l->n_langs; i++) {
        l->w[i] = 0;
        if (p[i] <= 0) continue;
        double x = p[i] * (double)W, f = floor(x);
        l->w[i] = f >= 1 ? (uint32_t)f : 1;
        sum += l->w[i];
        r[k++] = (Ranked){x - f, (uint32_t)i};
    }
    if (sum < W) {
        qsort(r, (size_t)m, sizeof *r, ranked_desc);
        for (int j = 0; sum < W; j = (j + 1) % m, sum++) l->w[r[j].lang]++;
    } else if (sum > W) { /* only when forced ones overshoot: take from the largest */
        for (int j = 0; j < m; j++) r[j].key = l->w[r[j].lang];
        qsort(r, (size_t)m, sizeof *r, ranked_desc);
        for (int j = 0; sum > W; j = (j + 1) % m)
            if (l->w[r[j].lang] > 1) {
                l->w[r[j].lang]--;
                sum--;
            }
    }
    free(r);
    l->W = W;
    l->wbits = __builtin_ctzll(W);
}

/* Lay out one period: job j of language L (its j-th slot) may run in slots
 * [floor(j W / w_L), ceil((j+1) W / w_L)) (its Pfair window); each slot runs
 * the eligible job with the earliest deadline. With sum w_L = W this meets
 * every deadline, which bounds |count_L(s) - s w_L / W| below 1 for every
 * prefix s: proportions track the targets as tightly as integers allow. */
static int build_schedule(ShardLoader *l) {
    uint64_t W = l->W;
    l->slot = xmalloc(W * sizeof *l->slot);
    Heap pending = {xmalloc((size_t)l->n_langs * sizeof(HeapEnt)), 0};
    Heap ready = {xmalloc((size_t)l->n_langs * sizeof(HeapEnt)), 0};
    uint32_t *done = xcalloc((size_t)l->n_langs, sizeof *done);
    int err = 0;
    for (int i = 0; i < l->n_langs; i++)
        if (l->w[i]) heap_push(&pending, (HeapEnt){0, (uint32_t)i});
    for (uint64_t s = 0; s < W && !err; s++) {
        while (pending.n && pending.a[0].key <= s) {
            HeapEnt e = heap_pop(&pending);
            uint64_t j = done[e.lang], w = l->w[e.lang];
            heap_push(&ready, (HeapEnt){((j + 1) * W + w - 1) / w, e.lang});
        }
        if (!ready.n) {
            err = calm_error("internal: mixing schedule has no eligible language at slot %llu", (unsigned long long)s);
            break;
        }
        HeapEnt e = heap_pop(&ready);
        if (s >= e.key)
            err = calm_error("internal: mixing schedule misses a deadline at slot %llu", (unsigned long long)s);
        l->slot[s] = (Slot){e.lang, done[e.lang]};
        uint64_t j = ++done[e.lang], w = l->w[e.lang];
        if (j < w) heap_push(&pending, (HeapEnt){j * W / w, e.lang});
    }
    free(pending.a);
    free(ready.a);
    free(done);
    return err;
}

/* ---- open / close --------------------------------------------------------- */

static int select_langs(ShardLoader *l, const char *langs) {
    const ShardInfo *in = &l->s->info;
    ShardSplit split = l->o.split;
    if (!langs) {
        for (int i = 0; i < l->n_langs; i++) l->n[i] = in->langs[i].samples[split];
        return 0;
    }
    char *list = xstrdup(langs), *save = NULL;
    int err = 0, any = 0;
    for (char *code = strtok_r(list, ", ", &save); code && !err; code = strtok_r(NULL, ", ", &save)) {
        int id = shard_store_lang(l->s, code);
        if (id < 0) err = -1;
        else if (l->n[id]) err = calm_error("language '%s' listed twice", code);
        else if (in->langs[id].samples[split] == 0)
            err = calm_error("%s: language '%s' has no %s samples", l->s->dir, code, shard_split_name(split));
        else l->n[id] = in->langs[id].samples[split];
        any = 1;
    }
    free(list);
    if (!err && !any) err = calm_error("empty language list");
    return err;
}

int shard_loader_open(ShardLoader **out, ShardStore *s, const ShardLoaderOpts *o) {
    *out = NULL;
    if (o->split != SHARD_TRAIN && o->split != SHARD_VAL) return calm_error("unknown split %d", (int)o->split);
    ShardLoader *l = xcalloc(1, sizeof *l);
    l->s = s;
    l->o = *o;
    l->o.langs = NULL; /* the caller's string is not kept */
    l->n_langs = s->info.n_langs;
    l->n = xcalloc((size_t)l->n_langs + 1, sizeof *l->n);
    l->w = xcalloc((size_t)l->n_langs + 1, sizeof *l->w);
    l->keys = xmalloc(((size_t)l->n_langs + 1) * sizeof *l->keys);
    for (int i = 0; i <= l->n_langs; i++) l->keys[i].epoch = UINT64_MAX;
    l->dbi = s->db[o->split];
    double *p = xcalloc((size_t)l->n_langs + 1, sizeof *p);
    int err = select_langs(l, o->langs);
    uint64_t total = 0;
    for (int i = 0; i < l->n_langs && !err; i++) total += l->n[i];
    if (!err && total == 0)
        err = calm_error("%s: the %s split has no samples%s", s->dir, shard_split_name(o->split),
                         o->split == SHARD_VAL ? " (build with --val-fraction)" : "");
    if (!err && shard_mix_shares(l->n, l->n_langs, o->alpha, p)) err = calm_error("%s: %s", s->dir, calm_last_error());
    if (!err) {
        quantize(l, p);
        err = build_schedule(l);
    }
    free(p);
    if (!err) {
        int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &l->txn);
        if (rc) err = calm_error("%s: LMDB read transaction: %s", s->dir, mdb_strerror(rc));
    }
    if (err) {
        shard_loader_close(l);
        return -1;
    }
    *out = l;
    return 0;
}

void shard_loader_close(ShardLoader *l) {
    if (!l) return;
    if (l->txn) mdb_txn_abort(l->txn);
    free(l->n);
    free(l->w);
    free(l->slot);
    free(l->keys);
    free(l);
}

/* ---- reading -------------------------------------------------------------- */

/* Language, epoch and index of global sample g; the record id is left to the caller. */
static void locate_index(const ShardLoader *l, uint64_t g, ShardPos *pos) {
    const Slot *sl = &l->slot[g & (l->W - 1)];
    uint32_t L = sl->lang;
    uint64_t k = (g >> l->wbits) * l->w[L] + sl->rank, n = l->n[L];
    pos->lang = (int)L;
    pos->epoch = k / n;
    pos->index = k % n;
}

void shard_loader_locate(const ShardLoader *l, uint64_t g, ShardPos *pos) {
    locate_index(l, g, pos);
    pos->sample = l->o.shuffle ? shard_permute(l->o.seed, (uint32_t)pos->lang, pos->epoch, l->n[pos->lang], pos->index)
                               : pos->index;
}

/* shard_loader_locate with the epoch's Feistel keys cached per language. */
static void locate_cached(ShardLoader *l, uint64_t g, ShardPos *pos) {
    locate_index(l, g, pos);
    if (!l->o.shuffle) {
        pos->sample = pos->index;
        return;
    }
    struct KeyCache *c = &l->keys[pos->lang];
    if (c->epoch != pos->epoch) {
        feistel_keys(l->o.seed, (uint32_t)pos->lang, pos->epoch, c->key);
        c->epoch = pos->epoch;
    }
    pos->sample = permute_keyed(c->key, l->n[pos->lang], pos->index);
}

/* mdb_get of (lang, id) in the loader's split; the value points into the map. */
static int lookup(ShardLoader *l, int lang, uint64_t id, uint8_t key[SHARD_KEY_BYTES], MDB_val *val) {
    const ShardInfo *in = &l->s->info;
    if (lang < 0 || lang >= in->n_langs || id >= in->langs[lang].samples[l->o.split])
        return calm_error("%s: no %s record for language %d sample %llu", l->s->dir, shard_split_name(l->o.split),
                          lang, (unsigned long long)id);
    shard_key(key, (uint32_t)lang, (uint32_t)id);
    MDB_val k = {SHARD_KEY_BYTES, key};
    int rc = mdb_get(l->txn, l->dbi, &k, val);
    if (rc) {
        char kd[160];
        shard_key_desc(kd, sizeof kd, in, l->o.split, key, SHARD_KEY_BYTES);
        return calm_error("%s: %s: %s; the store is damaged, rebuild it", l->s->dir, kd,
                          rc == MDB_NOTFOUND ? "missing" : mdb_strerror(rc));
    }
    return 0;
}

int shard_loader_record(ShardLoader *l, int lang, uint64_t id, ShardRecord *rec) {
    uint8_t key[SHARD_KEY_BYTES];
    MDB_val k = {SHARD_KEY_BYTES, key}, v;
    if (lookup(l, lang, id, key, &v)) return -1;
    return shard_record_check(l->s->dir, &l->s->info, l->o.split, &k, &v, l->o.verify, rec);
}

/* Widen n uint16 ids to int. The fixed-width inner loop lets the compiler
 * vectorise at -O2 too (its cheapest cost model wants known trip counts). */
#define WIDEN_CHUNK 16
static void widen(int *restrict dst, const uint16_t *restrict src, int n) {
    int t = 0;
    for (; t + WIDEN_CHUNK <= n; t += WIDEN_CHUNK)
        for (int k = 0; k < WIDEN_CHUNK; k++) dst[t + k] = src[t + k];
    for (; t < n; t++) dst[t] = src[t];
}

/* The same for ids t0..t0+n-1 of a record of either width. */
static void record_ids(int *restrict dst, const ShardRecord *r, int t0, int n) {
    if (r->tokens) {
        widen(dst, r->tokens + t0, n);
        return;
    }
    memcpy(dst, r->tokens32 + 4 * (size_t)t0, (size_t)n * 4); /* little-endian host (shard_internal.h) */
}

static void mask_to_weights(float *restrict dst, const uint8_t *restrict mask, int n) {
    int t = 0;
    for (; t + WIDEN_CHUNK <= n; t += WIDEN_CHUNK)
        for (int k = 0; k < WIDEN_CHUNK; k++) dst[t + k] = (float)mask[t + k];
    for (; t < n; t++) dst[t] = (float)mask[t];
}

static void fill_ones(float *restrict dst, int n) {
    int t = 0;
    for (; t + WIDEN_CHUNK <= n; t += WIDEN_CHUNK)
        for (int k = 0; k < WIDEN_CHUNK; k++) dst[t + k] = 1.0f;
    for (; t < n; t++) dst[t] = 1.0f;
}

/* One row: inputs are the record's first T tokens, targets the next ones;
 * past the record's end both are PAD with weight 0. */
static void fill_row(const ShardRecord *r, int T, int *restrict tok, int *restrict tgt, float *restrict w) {
    int n = r->n < (uint32_t)T + 1 ? (int)r->n : T + 1;
    int m = n > 0 ? n - 1 : 0; /* real targets */
    record_ids(tok, r, 0, m);
    record_ids(tgt, r, 1, m);
    if (w && r->mask) mask_to_weights(w, r->mask + 1, m);
    else if (w) fill_ones(w, m);
    for (int t = m; t < T; t++) {
        tok[t] = t < n ? (int)shard_record_token(r, (uint32_t)t) : TOK_PAD;
        tgt[t] = TOK_PAD;
        if (w) w[t] = 0.0f;
    }
}

int shard_loader_batch(ShardLoader *l, int64_t step, int replica, int n_replicas, int B, int T, int *tokens,
                       int *targets, float *weights) {
    const char *dir = l->s->dir;
    if (step < 0) return calm_error("%s: step %lld < 0", dir, (long long)step);
    if (B < 1 || T < 1) return calm_error("%s: batch %d x %d: both must be >= 1", dir, B, T);
    if (n_replicas < 1 || replica < 0 || replica >= n_replicas)
        return calm_error("%s: replica %d of %d", dir, replica, n_replicas);
    if (T > l->s->info.seq_len)
        return calm_error("%s: T = %d exceeds the store's seq_len %d; rebuild with --seq-len %d or train with T <= %d",
                          dir, T, l->s->info.seq_len, T, l->s->info.seq_len);
    uint64_t global = (uint64_t)B * (uint64_t)n_replicas;
    if ((uint64_t)step > (UINT64_MAX - global) / global) return calm_error("%s: step %lld too large", dir, (long long)step);
    uint64_t g0 = (uint64_t)step * global + (uint64_t)replica * (uint64_t)B;
    /* Rows go in groups: look up and prefetch every record of the group, then
     * check and widen them, so that the cache misses of a shuffled batch
     * (records far apart in the map) overlap instead of queueing. */
    enum { GROUP = 8 };
    uint8_t keys[GROUP][SHARD_KEY_BYTES];
    MDB_val vals[GROUP];
    for (int b0 = 0; b0 < B; b0 += GROUP) {
        int nb = B - b0 < GROUP ? B - b0 : GROUP;
        for (int i = 0; i < nb; i++) {
            ShardPos pos;
            locate_cached(l, g0 + (uint64_t)(b0 + i), &pos);
            if (lookup(l, pos.lang, pos.sample, keys[i], &vals[i])) return -1;
            for (size_t off = 0; off < vals[i].mv_size; off += 64) __builtin_prefetch((const char *)vals[i].mv_data + off);
        }
        for (int i = 0; i < nb; i++) {
            MDB_val k = {SHARD_KEY_BYTES, keys[i]};
            ShardRecord r;
            if (shard_record_check(dir, &l->s->info, l->o.split, &k, &vals[i], l->o.verify, &r)) return -1;
            size_t off = (size_t)(b0 + i) * (size_t)T;
            fill_row(&r, T, tokens + off, targets + off, weights ? weights + off : NULL);
        }
    }
    return 0;
}

double shard_loader_share(const ShardLoader *l, int lang) {
    if (lang < 0 || lang >= l->n_langs) return 0;
    return (double)l->w[lang] / (double)l->W;
}

double shard_loader_epochs(const ShardLoader *l, uint64_t n_samples) {
    double most = 0;
    for (int i = 0; i < l->n_langs; i++)
        if (l->n[i]) {
            double e = (double)n_samples * (double)l->w[i] / (double)l->W / (double)l->n[i];
            if (e > most) most = e;
        }
    return most;
}
