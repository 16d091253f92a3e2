/* tokenizer_bpe.c: the tables of a BPE tokenizer and its merge loop.
 *
 * Speed comes from four things: strings are found through open-addressing
 * hash tables (vocabulary string -> id, (left id, right id) -> (rank, merged
 * id)), so the merge loop works on ints; a word is merged with a min-heap
 * over a linked list of symbols, O(n log n) for the long words of scripts
 * written without spaces; each thread keeps a cache of word -> ids, so the
 * common words of a text are merged once; and the PCRE2 match data and
 * buffers live in the same per-thread workspace instead of being allocated
 * per call. */
#include <stdlib.h>
#include <string.h>

#include "src/common.h"
#include "src/tokenizer_hf.h"
#include "src/utf8.h"

uint32_t hf_hash(const void *p, size_t n) {
    const unsigned char *s = p;
    uint64_t h = 0x9e3779b97f4a7c15ull ^ (n * 0xff51afd7ed558ccdull);
    while (n >= 8) {
        uint64_t x;
        memcpy(&x, s, 8);
        h = (h ^ x) * 0xc4ceb9fe1a85ec53ull;
        h ^= h >> 31;
        s += 8;
        n -= 8;
    }
    uint64_t x = 0;
    memcpy(&x, s, n);
    h = (h ^ x) * 0xff51afd7ed558ccdull;
    h ^= h >> 29;
    return (uint32_t)(h ^ (h >> 32));
}

static size_t table_size(size_t n) {
    size_t cap = 16;
    while (cap < 2 * n) cap <<= 1;
    return cap;
}

/* ------------------------------------------------------------ vocabulary */

void vocab_init(Vocab *v, int n_ids) {
    memset(v, 0, sizeof *v);
    v->n_ids = n_ids;
    v->off = xcalloc((size_t)n_ids, sizeof *v->off);
    v->len = xmalloc((size_t)n_ids * sizeof *v->len);
    for (int i = 0; i < n_ids; i++) v->len[i] = HF_NO_TOKEN;
}

void vocab_set(Vocab *v, int id, const char *s, size_t n) {
    if (v->n + n > v->cap) {
        v->cap = 2 * (v->n + n) + 4096;
        v->bytes = xrealloc(v->bytes, v->cap);
    }
    memcpy(v->bytes + v->n, s, n);
    v->off[id] = (uint32_t)v->n;
    v->len[id] = (uint32_t)n;
    v->n += n;
}

void vocab_index(Vocab *v) {
    free(v->slots);
    size_t cap = table_size((size_t)v->n_ids);
    v->slots = xcalloc(cap, sizeof *v->slots);
    v->mask = cap - 1;
    for (int id = 0; id < v->n_ids; id++) {
        if (v->len[id] == HF_NO_TOKEN) continue;
        uint32_t h = hf_hash(v->bytes + v->off[id], v->len[id]);
        size_t i = h & v->mask;
        while (v->slots[i]) i = (i + 1) & v->mask;
        v->slots[i] = ((uint64_t)h << 32) | (uint32_t)(id + 1);
    }
}

int vocab_find(const Vocab *v, const char *s, size_t n) {
    uint32_t h = hf_hash(s, n);
    for (size_t i = h & v->mask; v->slots[i]; i = (i + 1) & v->mask) {
        if ((uint32_t)(v->slots[i] >> 32) != h) continue;
        int id = (int)(uint32_t)v->slots[i] - 1;
        if (v->len[id] == n && memcmp(v->bytes + v->off[id], s, n) == 0) return id;
    }
    return -1;
}

void vocab_free(Vocab *v) {
    free(v->bytes);
    free(v->off);
    free(v->len);
    free(v->slots);
}

/* ----------------------------------------------------------------- merges */

void pairs_init(PairMap *m, size_t n) {
    size_t cap = table_size(n);
    m->keys = xmalloc(cap * sizeof *m->keys);
    m->vals = xmalloc(cap * sizeof *m->vals);
    memset(m->keys, 0xff, cap * sizeof *m->keys);
    m->mask = cap - 1;
}

static size_t pair_slot(uint64_t key, size_t mask) {
    key *= 0x9e3779b97f4a7c15ull;
    return (size_t)(key >> 32) & mask;
}

/* A pair merged twice keeps its first (best) rank. */
void pairs_put(PairMap *m, int left, int right, uint32_t rank, int merged) {
    uint64_t key = ((uint64_t)(uint32_t)left << 32) | (uint32_t)right;
    size_t i = pair_slot(key, m->mask);
    while (m->keys[i] != UINT64_MAX && m->keys[i] != key) i = (i + 1) & m->mask;
    if (m->keys[i] == key) return;
    m->keys[i] = key;
    m->vals[i] = ((uint64_t)rank << 32) | (uint32_t)merged;
}

/* The (rank << 32 | merged id) of a pair, or UINT64_MAX. */
static inline uint64_t pairs_get(const PairMap *m, int left, int right) {
    uint64_t key = ((uint64_t)(uint32_t)left << 32) | (uint32_t)right;
    for (size_t i = pair_slot(key, m->mask); m->keys[i] != UINT64_MAX; i = (i + 1) & m->mask)
        if (m->keys[i] == key) return m->vals[i];
    return UINT64_MAX;
}

void pairs_free(PairMap *m) {
    free(m->keys);
    free(m->vals);
}

/* GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves,
 * the other 68 bytes for U+0100.. in byte order. */
static int stand_in_byte[256 + 68];
static pthread_once_t stand_in_once = PTHREAD_ONCE_INIT;

static void stand_in_init(void) {
    int n = 0;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
        stand_in_byte[printable ? b : 256 + n++] = b;
    }
}

int hf_unicode_to_byte(uint32_t cp) {
    pthread_once(&stand_in_once, stand_in_init);
    return cp < 256 + 68 ? stand_in_byte[cp] : -1;
}

/* -------------------------------------------------------------- workspace */

typedef struct {
    int id; /* -1: a character the vocabulary lacks */
    int prev, next;
    uint32_t off, len; /* bytes of the word; len 0: merged away */
} Sym;

typedef struct {
    uint32_t rank, pos;
} HeapEnt;

typedef struct {
    uint32_t hash, koff, klen, ioff, nids;
} CacheEnt;

#define CACHE_MAX_WORD 256     /* longer words are rarely seen twice */
#define CACHE_MAX_SLOTS (1u << 20)

struct HfWork {
    pcre2_match_data *md;
    char *buf[3];
    size_t bufcap[3];
    Span *spans[2];
    size_t spancap[2];
    Sym *sym;
    size_t symcap;
    HeapEnt *heap;
    size_t heapcap;
    CacheEnt *cache; /* klen 0: empty */
    size_t cmask, cused;
    char *ckeys;
    size_t cklen, ckcap;
    int *cids;
    size_t cilen, cicap;
};

HfWork *hf_work(const HfTok *h) {
    HfWork *w = pthread_getspecific(h->work_key);
    if (w) return w;
    w = xcalloc(1, sizeof *w);
    w->md = pcre2_match_data_create(1, NULL);
    if (!w->md) calm_fatal("out of memory", "pcre2_match_data_create failed");
    w->cmask = 4095;
    w->cache = xcalloc(w->cmask + 1, sizeof *w->cache);
    pthread_setspecific(h->work_key, w);
    return w;
}

void hf_work_free(void *p) {
    HfWork *w = p;
    if (!w) return;
    pcre2_match_data_free(w->md);
    for (int i = 0; i < 3; i++) free(w->buf[i]);
    for (int i = 0; i < 2; i++) free(w->spans[i]);
    free(w->sym);
    free(w->heap);
    free(w->cache);
    free(w->ckeys);
    free(w->cids);
    free(w);
}

pcre2_match_data *hf_work_match(HfWork *w) { return w->md; }

static void *grow(void *p, size_t *cap, size_t n, size_t size) {
    if (n <= *cap) return p;
    *cap = n + n / 2 + 64;
    return xrealloc(p, *cap * size);
}

char *hf_work_buf(HfWork *w, int which, size_t n) {
    return w->buf[which] = grow(w->buf[which], &w->bufcap[which], n, 1);
}

Span *hf_work_spans(HfWork *w, int which, size_t n) {
    return w->spans[which] = grow(w->spans[which], &w->spancap[which], n, sizeof(Span));
}

/* ------------------------------------------------------------ word cache */

static const CacheEnt *cache_find(const HfWork *w, const char *s, size_t n, uint32_t h) {
    for (size_t i = h & w->cmask; w->cache[i].klen; i = (i + 1) & w->cmask) {
        const CacheEnt *e = &w->cache[i];
        if (e->hash == h && e->klen == n && memcmp(w->ckeys + e->koff, s, n) == 0) return e;
    }
    return NULL;
}

/* Start over when the table is full at its largest: a text with that many
 * distinct words gains little from remembering old ones. */
static void cache_make_room(HfWork *w) {
    if (2 * (w->cused + 1) <= w->cmask + 1) return;
    size_t cap = w->cmask + 1;
    CacheEnt *old = w->cache;
    if (cap >= CACHE_MAX_SLOTS) {
        memset(w->cache, 0, cap * sizeof *w->cache);
        w->cused = w->cklen = w->cilen = 0;
        return;
    }
    w->cache = xcalloc(2 * cap, sizeof *w->cache);
    w->cmask = 2 * cap - 1;
    for (size_t i = 0; i < cap; i++) {
        if (!old[i].klen) continue;
        size_t j = old[i].hash & w->cmask;
        while (w->cache[j].klen) j = (j + 1) & w->cmask;
        w->cache[j] = old[i];
    }
    free(old);
}

static void cache_put(HfWork *w, const char *s, size_t n, uint32_t h, const int *ids, size_t nids) {
    cache_make_room(w);
    w->ckeys = grow(w->ckeys, &w->ckcap, w->cklen + n, 1);
    w->cids = grow(w->cids, &w->cicap, w->cilen + nids, sizeof(int));
    size_t i = h & w->cmask;
    while (w->cache[i].klen) i = (i + 1) & w->cmask;
    w->cache[i] = (CacheEnt){h, (uint32_t)w->cklen, (uint32_t)n, (uint32_t)w->cilen, (uint32_t)nids};
    memcpy(w->ckeys + w->cklen, s, n);
    memcpy(w->cids + w->cilen, ids, nids * sizeof(int));
    w->cklen += n;
    w->cilen += nids;
    w->cused++;
}

/* ------------------------------------------------------------- merge loop */

static inline int heap_less(HeapEnt a, HeapEnt b) { return a.rank < b.rank || (a.rank == b.rank && a.pos < b.pos); }

static void heap_push(HeapEnt *heap, size_t *n, HeapEnt e) {
    size_t i = (*n)++;
    while (i > 0 && heap_less(e, heap[(i - 1) / 2])) {
        heap[i] = heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    heap[i] = e;
}

static HeapEnt heap_pop(HeapEnt *heap, size_t *n) {
    HeapEnt top = heap[0], last = heap[--*n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && heap_less(heap[c + 1], heap[c])) c++;
        if (!heap_less(heap[c], last)) break;
        heap[i] = heap[c];
        i = c;
    }
    heap[i] = last;
    return top;
}

/* Queue the merge of symbol i with its right neighbour, if there is one. */
static void queue_pair(const HfTok *h, HfWork *w, size_t *nheap, int i) {
    int r = w->sym[i].next;
    if (r < 0 || w->sym[i].id < 0 || w->sym[r].id < 0) return;
    uint64_t m = pairs_get(&h->merges, w->sym[i].id, w->sym[r].id);
    if (m != UINT64_MAX) heap_push(w->heap, nheap, (HeapEnt){(uint32_t)(m >> 32), (uint32_t)i});
}

/* Merge the lowest-ranked pair first, the leftmost among equals (as the
 * reference does). A queued pair is stale once either side has been merged
 * into something else; its rank then no longer matches the pair's. */
static void merge_symbols(const HfTok *h, HfWork *w, int nsym) {
    w->heap = grow(w->heap, &w->heapcap, (size_t)nsym * 2, sizeof(HeapEnt));
    size_t nheap = 0;
    for (int i = 0; i + 1 < nsym; i++) queue_pair(h, w, &nheap, i);
    while (nheap > 0) {
        HeapEnt e = heap_pop(w->heap, &nheap);
        Sym *l = &w->sym[e.pos];
        if (l->len == 0 || l->next < 0 || l->id < 0 || w->sym[l->next].id < 0) continue;
        Sym *r = &w->sym[l->next];
        uint64_t m = pairs_get(&h->merges, l->id, r->id);
        if (m == UINT64_MAX || (uint32_t)(m >> 32) != e.rank) continue;
        l->id = (int)(uint32_t)m;
        l->len += r->len;
        r->len = 0;
        l->next = r->next;
        if (l->next >= 0) w->sym[l->next].prev = (int)e.pos;
        if (l->prev >= 0) queue_pair(h, w, &nheap, l->prev);
        queue_pair(h, w, &nheap, (int)e.pos);
        /* the heap holds at most one live entry per symbol plus stale ones;
         * each merge adds two, so keep room */
        w->heap = grow(w->heap, &w->heapcap, nheap + 2, sizeof(HeapEnt));
    }
}

/* Initial symbols: bytes for byte-level models, characters otherwise. */
static int split_symbols(const HfTok *h, HfWork *w, const char *s, size_t n) {
    w->sym = grow(w->sym, &w->symcap, n, sizeof(Sym));
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    int k = 0;
    for (size_t i = 0; i < n; k++) {
        size_t len = 1;
        int id;
        if (h->byte_level) {
            id = h->byte_id[p[i]];
        } else {
            uint32_t cp;
            len = (size_t)utf8_next(p + i, end, &cp);
            id = vocab_find(&h->vocab, s + i, len);
        }
        w->sym[k] = (Sym){id, k - 1, k + 1, (uint32_t)i, (uint32_t)len};
        i += len;
    }
    w->sym[k - 1].next = -1;
    return k;
}

/* A symbol the vocabulary lacks: its bytes as <0xNN> tokens when the model
 * has them all, else the unknown token. */
static int emit_unknown(const HfTok *h, const char *s, size_t n, TokIds *out) {
    int all = h->byte_fallback;
    for (size_t i = 0; all && i < n; i++) all = h->byte_id[(unsigned char)s[i]] >= 0;
    if (all) {
        for (size_t i = 0; i < n; i++) tok_ids_push(out, h->byte_id[(unsigned char)s[i]]);
        return 0;
    }
    if (h->unk_id < 0)
        return calm_error("%s: the text holds \"%.*s\", which has no token, and the model has no unk_token", h->path,
                          (int)n, s);
    tok_ids_push(out, h->unk_id);
    return 0;
}

static int bpe_word(const HfTok *h, HfWork *w, const char *s, size_t n, TokIds *out) {
    if (h->ignore_merges) {
        int id = vocab_find(&h->vocab, s, n);
        if (id >= 0) {
            tok_ids_push(out, id);
            return 0;
        }
    }
    int nsym = split_symbols(h, w, s, n);
    if (nsym > 1) merge_symbols(h, w, nsym);
    for (int i = 0; i >= 0; i = w->sym[i].next) {
        const Sym *y = &w->sym[i];
        if (y->id >= 0)
            tok_ids_push(out, y->id);
        else if (emit_unknown(h, s + y->off, y->len, out) != 0)
            return -1;
    }
    return 0;
}

int hf_encode_word(const HfTok *h, HfWork *w, const char *s, size_t n, TokIds *out) {
    if (n == 0) return 0;
    if (n > CACHE_MAX_WORD) return bpe_word(h, w, s, n, out);
    uint32_t hash = hf_hash(s, n);
    const CacheEnt *e = cache_find(w, s, n, hash);
    if (e) {
        for (uint32_t i = 0; i < e->nids; i++) tok_ids_push(out, w->cids[e->ioff + i]);
        return 0;
    }
    size_t start = out->n;
    if (bpe_word(h, w, s, n, out) != 0) return -1;
    cache_put(w, s, n, hash, out->v + start, out->n - start);
    return 0;
}
