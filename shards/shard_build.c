/* shard_build.c: write a store. Records are staged in memory and written in
 * batches, one write transaction per batch; MDB_MAP_FULL doubles the map and
 * replays the batch. The `complete` marker goes in last, in its own
 * transaction, after everything before it is on disk. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "src/common.h"
#include "shards/shard_internal.h"
#include "src/files.h"
#include "src/tokenizer.h"

#define STAGE_BYTES_MAX (32u << 20)

typedef struct {
    ShardLang stat;
    uint32_t *buf[SHARD_N_SPLITS]; /* lm: the record being packed, seq_len + 1 tokens */
    uint32_t len[SHARD_N_SPLITS];
} BuildLang;

typedef struct {
    size_t off; /* of the key in stage; the value follows */
    uint32_t bytes;
    uint8_t split;
} Staged;

struct ShardBuilder {
    char *dir;
    int created_dir;
    MDB_env *env;
    MDB_dbi meta, db[SHARD_N_SPLITS];
    ShardBuildOpts o;
    char *command;
    size_t map_size;
    ShardKind kind;
    uint64_t val_ppm; /* val fraction in parts per million */
    BuildLang *langs;
    int n_langs, cap_langs;
    int *ht; /* open addressing: language id + 1, 0 empty */
    size_t ht_cap;
    uint8_t *stage;
    size_t stage_len, stage_cap;
    Staged *staged;
    size_t n_staged, cap_staged;
    uint8_t last_key[SHARD_N_SPLITS][SHARD_KEY_BYTES]; /* largest key written per database */
    int has_last[SHARD_N_SPLITS];
    uint64_t n_docs;
    int broken; /* a write failed: the builder refuses further work */
    int token_bytes;      /* 2, or 4 when vocab_size > 65535 */
    Tokenizer *own_tok;   /* the byte tokenizer when the options name none */
    const Tokenizer *tok; /* o.tokenizer or own_tok */
    TokIds ids;           /* the document or example being added */
    uint32_t *scratch;
    uint8_t *scratch_mask;
};

void shard_build_opts_default(ShardBuildOpts *o) {
    memset(o, 0, sizeof *o);
    o->seq_len = 256;
    o->vocab_size = TOK_VOCAB_DEFAULT;
    o->val_fraction = 0;
    o->map_size = (size_t)64 << 20;
    o->batch_records = 8192;
    o->command = "";
    o->kind = SHARD_KIND_NONE;
}

/* ---- write transactions with map growth ---------------------------------- */

typedef int (*TxnFn)(ShardBuilder *b, MDB_txn *txn, void *arg);

/* Run fn in a write transaction. On MDB_MAP_FULL (from a put or the commit)
 * abort, double the map and run fn again from the start: fn must be
 * replayable. Returns 0, or -1 with the error recorded. */
static int with_write_txn(ShardBuilder *b, TxnFn fn, void *arg, const char *what) {
    for (;;) {
        MDB_txn *txn;
        int rc = mdb_txn_begin(b->env, NULL, 0, &txn);
        if (rc) return calm_error("%s: LMDB begin (%s): %s", b->dir, what, mdb_strerror(rc));
        rc = fn(b, txn, arg);
        if (rc == 0) rc = mdb_txn_commit(txn);
        else mdb_txn_abort(txn);
        if (rc == 0) return 0;
        if (rc != MDB_MAP_FULL) return calm_error("%s: LMDB write (%s): %s", b->dir, what, mdb_strerror(rc));
        size_t grown = b->map_size * 2;
        rc = mdb_env_set_mapsize(b->env, grown);
        if (rc) return calm_error("%s: cannot grow the LMDB map to %zu bytes: %s", b->dir, grown, mdb_strerror(rc));
        b->map_size = grown;
        char mb[32];
        calm_log("%s: map full, grown to %s", b->dir, shard_fmt_bytes(mb, sizeof mb, (double)grown));
    }
}

static int staged_cmp(const void *x, const void *y, void *ctx) {
    const Staged *a = x, *c = y;
    const uint8_t *stage = ctx;
    if (a->split != c->split) return a->split < c->split ? -1 : 1;
    return memcmp(stage + a->off, stage + c->off, SHARD_KEY_BYTES);
}

typedef struct {
    uint8_t last[SHARD_N_SPLITS][SHARD_KEY_BYTES];
    int has[SHARD_N_SPLITS];
} LastKeys;

/* Keys arrive in order per language; with several languages interleaved they
 * do not, so each put is an MDB_APPEND (fast, dense pages) when its key is
 * past the database's largest and an ordinary put otherwise. `arg` holds the
 * largest keys before this batch, so a replay after MDB_MAP_FULL starts over
 * from them. */
static int put_staged(ShardBuilder *b, MDB_txn *txn, void *arg) {
    LastKeys k = *(const LastKeys *)arg;
    for (size_t i = 0; i < b->n_staged; i++) {
        const Staged *s = &b->staged[i];
        uint8_t *key = b->stage + s->off;
        MDB_val kv = {SHARD_KEY_BYTES, key}, v = {s->bytes, key + SHARD_KEY_BYTES};
        int append = !k.has[s->split] || memcmp(key, k.last[s->split], SHARD_KEY_BYTES) > 0;
        int rc = mdb_put(txn, b->db[s->split], &kv, &v, append ? MDB_APPEND : MDB_NOOVERWRITE);
        if (rc) return rc;
        if (append) {
            memcpy(k.last[s->split], key, SHARD_KEY_BYTES);
            k.has[s->split] = 1;
        }
    }
    memcpy(b->last_key, k.last, sizeof k.last);
    memcpy(b->has_last, k.has, sizeof k.has);
    return 0;
}

static int flush(ShardBuilder *b) {
    if (b->n_staged == 0) return 0;
    qsort_r(b->staged, b->n_staged, sizeof *b->staged, staged_cmp, b->stage);
    LastKeys before;
    memcpy(before.last, b->last_key, sizeof before.last);
    memcpy(before.has, b->has_last, sizeof before.has);
    if (with_write_txn(b, put_staged, &before, "records")) {
        b->broken = 1;
        return -1;
    }
    b->n_staged = 0;
    b->stage_len = 0;
    return 0;
}

static int stage_record(ShardBuilder *b, int lang, ShardSplit split, const uint32_t *tok, const uint8_t *mask,
                        uint32_t n) {
    BuildLang *L = &b->langs[lang];
    uint64_t id = L->stat.samples[split];
    if (id > UINT32_MAX)
        return calm_error("%s: language '%s' has more than 2^32 %s samples (keys hold 32-bit ids)", b->dir,
                          L->stat.code, shard_split_name(split));
    size_t bytes = shard_record_bytes(b->kind, n, b->token_bytes);
    if (b->stage_len + SHARD_KEY_BYTES + bytes + 1 > b->stage_cap) {
        while (b->stage_len + SHARD_KEY_BYTES + bytes + 1 > b->stage_cap) b->stage_cap = b->stage_cap * 2 + 4096;
        b->stage = xrealloc(b->stage, b->stage_cap);
    }
    if (b->n_staged == b->cap_staged) {
        b->cap_staged = b->cap_staged * 2 + 256;
        b->staged = xrealloc(b->staged, b->cap_staged * sizeof *b->staged);
    }
    uint8_t *key = b->stage + b->stage_len;
    shard_key(key, (uint32_t)lang, (uint32_t)id);
    shard_record_encode(key + SHARD_KEY_BYTES, key, b->kind, (uint32_t)lang, tok, mask, n, b->token_bytes);
    b->staged[b->n_staged++] = (Staged){b->stage_len, (uint32_t)bytes, (uint8_t)split};
    /* Keep the next key 2-byte aligned in the stage (values are copied anyway). */
    b->stage_len += (SHARD_KEY_BYTES + bytes + 1) & ~(size_t)1;
    L->stat.samples[split]++;
    if (b->n_staged >= (size_t)b->o.batch_records || b->stage_len >= STAGE_BYTES_MAX) return flush(b);
    return 0;
}

/* ---- languages ------------------------------------------------------------ */

int shard_lang_code_ok(const char *code) {
    size_t n = strlen(code);
    if (n == 0 || n > SHARD_LANG_MAX) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = code[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

static uint64_t str_hash(const char *s) {
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    while (*s) h = (h ^ (uint8_t)*s++) * 1099511628211ULL;
    return h;
}

static void ht_insert(ShardBuilder *b, int id) {
    size_t i = str_hash(b->langs[id].stat.code) & (b->ht_cap - 1);
    while (b->ht[i]) i = (i + 1) & (b->ht_cap - 1);
    b->ht[i] = id + 1;
}

/* Id of a language, added on first sight. */
static int lang_id(ShardBuilder *b, const char *code) {
    if (b->ht_cap) {
        for (size_t i = str_hash(code) & (b->ht_cap - 1); b->ht[i]; i = (i + 1) & (b->ht_cap - 1))
            if (strcmp(b->langs[b->ht[i] - 1].stat.code, code) == 0) return b->ht[i] - 1;
    }
    if (!shard_lang_code_ok(code))
        return calm_error("bad language code '%s' (1 to %d characters of A-Z a-z 0-9 _ -)", code, SHARD_LANG_MAX);
    if (b->n_langs >= SHARD_MAX_LANGS) return calm_error("more than %d languages", SHARD_MAX_LANGS);
    if (b->n_langs == b->cap_langs) {
        b->cap_langs = b->cap_langs * 2 + 16;
        b->langs = xrealloc(b->langs, (size_t)b->cap_langs * sizeof *b->langs);
    }
    int id = b->n_langs++;
    BuildLang *L = &b->langs[id];
    memset(L, 0, sizeof *L);
    strcpy(L->stat.code, code);
    if ((size_t)b->n_langs * 2 > b->ht_cap) {
        free(b->ht);
        b->ht_cap = b->ht_cap ? b->ht_cap * 2 : 64;
        b->ht = xcalloc(b->ht_cap, sizeof *b->ht);
        for (int i = 0; i < b->n_langs; i++) ht_insert(b, i);
    } else {
        ht_insert(b, id);
    }
    return id;
}

/* Document i of a language goes to val when floor((i+1)f) > floor(i f): exactly
 * floor(n f) of n documents, spread evenly, decided without randomness. */
static ShardSplit doc_split(const ShardBuilder *b, uint64_t i) {
    return ((i + 1) * b->val_ppm) / 1000000 > (i * b->val_ppm) / 1000000 ? SHARD_VAL : SHARD_TRAIN;
}

static int set_kind(ShardBuilder *b, ShardKind kind) {
    if (b->broken) return calm_error("%s: an earlier write failed; discard this build", b->dir);
    if (b->kind == SHARD_KIND_NONE) b->kind = kind;
    if (b->kind != kind)
        return calm_error("a store holds one record kind: this one is '%s', so a '%s' record cannot go in",
                          shard_kind_name(b->kind), shard_kind_name(kind));
    return 0;
}

/* ---- adding documents ----------------------------------------------------- */

/* Append one token to a language's packed lm stream; a full record
 * (seq_len + 1 tokens) is staged and its last token starts the next one, so
 * every stream token but the first is a target exactly once. */
static int push_token(ShardBuilder *b, int lang, ShardSplit split, uint32_t tok) {
    BuildLang *L = &b->langs[lang];
    uint32_t full = (uint32_t)b->o.seq_len + 1;
    if (!L->buf[split]) L->buf[split] = xmalloc(full * sizeof(uint32_t));
    L->buf[split][L->len[split]++] = tok;
    L->stat.tokens[split]++;
    if (L->len[split] < full) return 0;
    int rc = stage_record(b, lang, split, L->buf[split], NULL, full);
    L->buf[split][0] = L->buf[split][full - 1];
    L->len[split] = 1;
    return rc;
}

/* Ids past the store's vocabulary cannot be stored; PAD is not a document
 * token of the byte tokenizer (a loader pads with it). */
static int check_ids(const ShardBuilder *b, const int *ids, size_t n) {
    int bytes = strcmp(tokenizer_id(b->tok), TOK_ID) == 0;
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= b->o.vocab_size || (bytes && ids[i] == TOK_PAD))
            return calm_error("token id %d at position %zu is not a document token (vocab %d%s)", ids[i], i,
                              b->o.vocab_size, bytes ? ", PAD 258" : "");
    return 0;
}

/* A document's ids, framed by BOS and EOS, appended to its language's stream. */
static int add_doc(ShardBuilder *b, const char *lang, const int *ids, size_t n) {
    if (set_kind(b, SHARD_KIND_LM)) return -1;
    if (check_ids(b, ids, n)) return -1;
    int id = lang_id(b, lang);
    if (id < 0) return -1;
    BuildLang *L = &b->langs[id];
    ShardSplit split = doc_split(b, L->stat.docs[SHARD_TRAIN] + L->stat.docs[SHARD_VAL]);
    L->stat.docs[split]++;
    b->n_docs++;
    for (size_t i = 0; i < n; i++)
        if (push_token(b, id, split, (uint32_t)ids[i])) return -1;
    return 0;
}

/* BOS tokens EOS, as text files are read (textdata.h) and as evaluation and
 * generation present a document, so a model trained on a store has seen a
 * document start the way it will be asked to continue one. */
int shard_builder_add_text(ShardBuilder *b, const char *lang, const char *text, size_t n) {
    if (n == 0) return 0; /* an empty document adds nothing */
    b->ids.n = 0;
    if (tokenizer_encode_doc(b->tok, text, n, &b->ids)) return -1;
    return add_doc(b, lang, b->ids.v, b->ids.n);
}

int shard_builder_add_ids(ShardBuilder *b, const char *lang, const int *ids, size_t n) {
    if (n == 0) return 0;
    if (check_ids(b, ids, n)) return -1;
    b->ids.n = 0;
    tokenizer_frame_ids(b->tok, ids, n, &b->ids);
    return add_doc(b, lang, b->ids.v, b->ids.n);
}

int shard_builder_add_task(ShardBuilder *b, const char *lang, const char *prompt, size_t np, const char *target,
                           size_t nt) {
    if (set_kind(b, SHARD_KIND_TASK)) return -1;
    if (nt == 0) return calm_error("task example with an empty target has nothing to learn");
    size_t n_prompt;
    b->ids.n = 0;
    if (tokenizer_encode_task(b->tok, prompt, np, target, nt, &b->ids, &n_prompt)) return -1;
    size_t k = b->ids.n;
    if (k > (size_t)b->o.seq_len + 1)
        return calm_error("task example of %zu tokens (%zu of BOS + prompt, %zu of target + EOS) does not fit "
                          "seq_len + 1 = %d; raise --seq-len",
                          k, n_prompt, k - n_prompt, b->o.seq_len + 1);
    if (check_ids(b, b->ids.v, k)) return -1;
    int id = lang_id(b, lang);
    if (id < 0) return -1;
    uint32_t *tok = b->scratch;
    uint8_t *mask = b->scratch_mask;
    for (size_t i = 0; i < k; i++) {
        tok[i] = (uint32_t)b->ids.v[i];
        mask[i] = i >= n_prompt; /* the loss is on the target and EOS */
    }
    BuildLang *L = &b->langs[id];
    ShardSplit split = doc_split(b, L->stat.docs[SHARD_TRAIN] + L->stat.docs[SHARD_VAL]);
    L->stat.docs[split]++;
    L->stat.tokens[split] += k;
    b->n_docs++;
    return stage_record(b, id, split, tok, mask, (uint32_t)k);
}

/* ---- open / finish -------------------------------------------------------- */

/* An lm record larger than LMDB's largest node (about half a 4 KiB page)
 * moves to its own overflow pages, whose unused tail is wasted. */
static void warn_page_fill(int seq_len, int token_bytes) {
    size_t rec = SHARD_HDR_BYTES + (size_t)token_bytes * ((size_t)seq_len + 1), page = 4096;
    if (SHARD_KEY_BYTES + 8 + rec <= (page - 16) / 2 - 2) return;
    size_t pages = (rec + 16 + page - 1) / page;
    if (pages * page > rec + rec / 4)
        calm_log("seq_len %d: each lm record (%zu bytes) fills %zu LMDB overflow page(s) of %zu bytes, %.0f%% used; "
                 "seq_len <= 1002 or = 2048k - 17 (2031, 4079, ...) packs densely (docs/shards.md)",
                 seq_len, rec, pages, page, 100.0 * (double)rec / (double)(pages * page));
}

int shard_builder_open(ShardBuilder **out, const char *dir, const ShardBuildOpts *o) {
    *out = NULL;
    if (o->seq_len < 1 || o->seq_len > (1 << 20)) return calm_error("seq_len %d outside [1, 2^20]", o->seq_len);
    int min_vocab = o->tokenizer ? tokenizer_vocab_size(o->tokenizer) : TOK_N_SPECIAL;
    if (o->vocab_size < min_vocab)
        return calm_error("vocab_size %d is below the tokenizer's %d ids", o->vocab_size, min_vocab);
    if (!(o->val_fraction >= 0 && o->val_fraction < 1))
        return calm_error("val fraction %g outside [0, 1)", o->val_fraction);
    if (o->batch_records < 1) return calm_error("batch_records %d < 1", o->batch_records);
    struct stat st;
    int existed = stat(dir, &st) == 0;
    if (calm_mkdirs(dir)) return -1;
    char *data = calm_path_join(dir, "data.mdb");
    int exists = stat(data, &st) == 0;
    free(data);
    if (exists) return calm_error("%s: already holds a store (data.mdb); remove it or choose another --out", dir);

    ShardBuilder *b = xcalloc(1, sizeof *b);
    b->dir = xstrdup(dir);
    b->created_dir = !existed;
    b->o = *o;
    b->command = xstrdup(o->command ? o->command : "");
    b->o.command = b->command;
    b->kind = o->kind;
    b->map_size = o->map_size < 65536 ? 65536 : o->map_size;
    b->val_ppm = (uint64_t)(o->val_fraction * 1e6 + 0.5);
    b->token_bytes = o->vocab_size > 65535 ? 4 : 2;
    b->own_tok = o->tokenizer ? NULL : tokenizer_bytes();
    b->tok = o->tokenizer ? o->tokenizer : b->own_tok;
    b->o.tokenizer = b->tok;
    b->scratch = xmalloc(((size_t)o->seq_len + 1) * sizeof *b->scratch);
    b->scratch_mask = xmalloc((size_t)o->seq_len + 1);
    warn_page_fill(o->seq_len, b->token_bytes);

    int rc = mdb_env_create(&b->env);
    if (!rc) rc = mdb_env_set_maxdbs(b->env, SHARD_MAXDBS);
    if (!rc) rc = mdb_env_set_maxreaders(b->env, SHARD_MAXREADERS);
    if (!rc) rc = mdb_env_set_mapsize(b->env, b->map_size);
    /* No fsync per batch: a crash loses the build anyway (no `complete`),
     * and finish syncs before it writes the marker. */
    if (!rc) rc = mdb_env_open(b->env, dir, MDB_NOSYNC | MDB_NOTLS, 0644);
    if (rc) {
        calm_error("%s: cannot create LMDB store: %s", dir, mdb_strerror(rc));
        shard_builder_discard(b);
        return -1;
    }
    MDB_txn *txn;
    rc = mdb_txn_begin(b->env, NULL, 0, &txn);
    if (!rc) rc = mdb_dbi_open(txn, SHARD_DB_META, MDB_CREATE, &b->meta);
    for (int i = 0; i < SHARD_N_SPLITS && !rc; i++) {
        rc = mdb_dbi_open(txn, shard_split_name((ShardSplit)i), MDB_CREATE, &b->db[i]);
        if (!rc) rc = mdb_set_compare(txn, b->db[i], shard_key_cmp);
    }
    if (!rc) rc = mdb_txn_commit(txn);
    else mdb_txn_abort(txn);
    if (rc) {
        calm_error("%s: cannot create databases: %s", dir, mdb_strerror(rc));
        shard_builder_discard(b);
        return -1;
    }
    *out = b;
    return 0;
}

static int put_str(MDB_txn *txn, MDB_dbi dbi, const char *key, const char *val) {
    MDB_val k = {strlen(key), (void *)key}, v = {strlen(val), (void *)val};
    return mdb_put(txn, dbi, &k, &v, 0);
}

static int put_meta(ShardBuilder *b, MDB_txn *txn, void *arg) {
    const char *created_at = arg;
    char buf[512];
    int rc = put_str(txn, b->meta, "magic", SHARD_MAGIC);
    snprintf(buf, sizeof buf, "%d", SHARD_FORMAT_VERSION);
    if (!rc) rc = put_str(txn, b->meta, "version", buf);
    if (!rc) rc = put_str(txn, b->meta, "tokenizer", tokenizer_id(b->tok));
    snprintf(buf, sizeof buf, "%d", b->o.vocab_size);
    if (!rc) rc = put_str(txn, b->meta, "vocab_size", buf);
    if (!rc) rc = put_str(txn, b->meta, "kind", shard_kind_name(b->kind));
    snprintf(buf, sizeof buf, "%d", b->o.seq_len);
    if (!rc) rc = put_str(txn, b->meta, "seq_len", buf);
    snprintf(buf, sizeof buf, "%.6f", b->val_ppm / 1e6);
    if (!rc) rc = put_str(txn, b->meta, "val_fraction", buf);
    snprintf(buf, sizeof buf, "%d", b->token_bytes);
    if (!rc) rc = put_str(txn, b->meta, "token_bytes", buf);
    if (!rc && b->kind == SHARD_KIND_LM) rc = put_str(txn, b->meta, "doc_start", "bos");
    if (!rc) rc = put_str(txn, b->meta, "created_by", b->command);
    if (!rc) rc = put_str(txn, b->meta, "created_at", created_at);
    snprintf(buf, sizeof buf, "%d", b->n_langs);
    if (!rc) rc = put_str(txn, b->meta, "n_langs", buf);
    for (int i = 0; i < b->n_langs && !rc; i++) {
        const ShardLang *L = &b->langs[i].stat;
        char key[32];
        snprintf(key, sizeof key, "lang/%06d", i);
        snprintf(buf, sizeof buf, "{\"code\":\"%s\",\"docs\":[%llu,%llu],\"samples\":[%llu,%llu],\"tokens\":[%llu,%llu]}",
                 L->code, (unsigned long long)L->docs[0], (unsigned long long)L->docs[1],
                 (unsigned long long)L->samples[0], (unsigned long long)L->samples[1],
                 (unsigned long long)L->tokens[0], (unsigned long long)L->tokens[1]);
        rc = put_str(txn, b->meta, key, buf);
    }
    return rc;
}

static int put_complete(ShardBuilder *b, MDB_txn *txn, void *arg) { return put_str(txn, b->meta, "complete", arg); }

int shard_builder_finish(ShardBuilder *b) {
    if (b->broken) return calm_error("%s: an earlier write failed; discard this build", b->dir);
    for (int i = 0; i < b->n_langs; i++)
        for (int s = 0; s < SHARD_N_SPLITS; s++) {
            BuildLang *L = &b->langs[i];
            /* The last, shorter record of each stream (one token is only the carry). */
            if (L->len[s] > 1 && stage_record(b, i, (ShardSplit)s, L->buf[s], NULL, L->len[s])) return -1;
            L->len[s] = 0;
        }
    if (flush(b)) return -1;
    if (b->n_docs == 0) return calm_error("%s: no documents: the input is empty", b->dir);
    uint64_t train = 0;
    for (int i = 0; i < b->n_langs; i++) train += b->langs[i].stat.samples[SHARD_TRAIN];
    if (train == 0) return calm_error("%s: every document went to val; lower --val-fraction", b->dir);
    char created_at[32];
    shard_utc_now(created_at);
    if (with_write_txn(b, put_meta, created_at, "meta")) return -1;
    int rc = mdb_env_sync(b->env, 1);
    /* The marker's own commit is synchronous: LMDB flushes its pages before
     * the meta page that makes it visible. */
    if (!rc) rc = mdb_env_set_flags(b->env, MDB_NOSYNC, 0);
    if (rc) return calm_error("%s: sync: %s", b->dir, mdb_strerror(rc));
    if (with_write_txn(b, put_complete, created_at, "complete marker")) return -1;
    rc = mdb_env_sync(b->env, 1);
    if (rc) return calm_error("%s: sync: %s", b->dir, mdb_strerror(rc));
    return 0;
}

uint64_t shard_builder_map_size(const ShardBuilder *b) { return b->map_size; }

void shard_builder_free(ShardBuilder *b) {
    if (!b) return;
    if (b->env) mdb_env_close(b->env);
    for (int i = 0; i < b->n_langs; i++)
        for (int s = 0; s < SHARD_N_SPLITS; s++) free(b->langs[i].buf[s]);
    free(b->langs);
    free(b->ht);
    free(b->stage);
    free(b->staged);
    free(b->scratch);
    free(b->scratch_mask);
    tok_ids_free(&b->ids);
    tokenizer_free(b->own_tok);
    free(b->command);
    free(b->dir);
    free(b);
}

void shard_builder_discard(ShardBuilder *b) {
    if (!b) return;
    if (b->env) mdb_env_close(b->env);
    b->env = NULL;
    const char *files[] = {"data.mdb", "lock.mdb"};
    for (int i = 0; i < 2; i++) {
        char *p = calm_path_join(b->dir, files[i]);
        unlink(p);
        free(p);
    }
    if (b->created_dir) rmdir(b->dir); /* only if empty */
    shard_builder_free(b);
}
