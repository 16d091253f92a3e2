/* shard_store.c: open a complete store read-only, read its meta, verify it. */
#define _GNU_SOURCE
#include <cjson/cJSON.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "src/common.h"
#include "shards/shard_internal.h"
#include "src/files.h"

/* LMDB forbids opening one environment twice in a process (closing either
 * would drop the other's locks), so stores are shared by (device, inode). */
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static ShardStore *registry;

/* Copy meta[key] into buf as a string; 1 if absent. */
static int meta_str(MDB_txn *txn, MDB_dbi dbi, const char *key, char *buf, size_t cap) {
    MDB_val k = {strlen(key), (void *)key}, v;
    int rc = mdb_get(txn, dbi, &k, &v);
    if (rc == MDB_NOTFOUND) return 1;
    if (rc) return calm_error("LMDB: %s", mdb_strerror(rc));
    size_t n = v.mv_size < cap - 1 ? v.mv_size : cap - 1;
    memcpy(buf, v.mv_data, n);
    buf[n] = 0;
    return 0;
}

static int meta_int(const char *dir, MDB_txn *txn, MDB_dbi dbi, const char *key, long lo, long hi, long *out) {
    char buf[64], *end;
    int rc = meta_str(txn, dbi, key, buf, sizeof buf);
    if (rc < 0) return calm_error("%s: meta '%s': %s", dir, key, calm_last_error());
    if (rc > 0) return calm_error("%s: meta key '%s' missing; the store is damaged, rebuild it", dir, key);
    errno = 0;
    long v = strtol(buf, &end, 10);
    if (errno || end == buf || *end || v < lo || v > hi)
        return calm_error("%s: meta '%s' = '%s' is not an integer in [%ld, %ld]", dir, key, buf, lo, hi);
    *out = v;
    return 0;
}

static int json_u64_pair(const cJSON *o, const char *name, uint64_t out[SHARD_N_SPLITS]) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != SHARD_N_SPLITS) return -1;
    for (int i = 0; i < SHARD_N_SPLITS; i++) {
        const cJSON *x = cJSON_GetArrayItem(a, i);
        if (!cJSON_IsNumber(x) || x->valuedouble < 0) return -1;
        out[i] = (uint64_t)x->valuedouble;
    }
    return 0;
}

static int read_lang(const char *dir, MDB_txn *txn, MDB_dbi dbi, int id, ShardLang *L) {
    char key[32], buf[512];
    snprintf(key, sizeof key, "lang/%06d", id);
    int rc = meta_str(txn, dbi, key, buf, sizeof buf);
    if (rc) return calm_error("%s: meta key '%s' missing; the store is damaged, rebuild it", dir, key);
    cJSON *o = cJSON_Parse(buf);
    const cJSON *code = cJSON_GetObjectItemCaseSensitive(o, "code");
    int bad = !cJSON_IsString(code) || strlen(code->valuestring) == 0 || strlen(code->valuestring) > SHARD_LANG_MAX ||
              json_u64_pair(o, "docs", L->docs) || json_u64_pair(o, "samples", L->samples) ||
              json_u64_pair(o, "tokens", L->tokens);
    if (!bad) strcpy(L->code, code->valuestring);
    cJSON_Delete(o);
    if (bad) return calm_error("%s: meta '%s' = '%s' is not a language entry; the store is damaged", dir, key, buf);
    return 0;
}

static int read_meta(ShardStore *s, MDB_txn *txn) {
    ShardInfo *in = &s->info;
    const char *dir = s->dir;
    char buf[256];
    long v;
    int rc = meta_str(txn, s->meta, "magic", buf, sizeof buf);
    if (rc < 0) return -1;
    if (rc > 0 || strcmp(buf, SHARD_MAGIC) != 0)
        return calm_error("%s: not a calm shard store (meta has no magic '%s'); build one with `calm shard build`", dir,
                          SHARD_MAGIC);
    if (meta_int(dir, txn, s->meta, "version", 0, 1 << 30, &v)) return -1;
    if (v != SHARD_FORMAT_VERSION)
        return calm_error("%s: shard format version %ld, but this calm reads version %d; rebuild the store with this "
                          "calm (calm shard build) or use the calm that built it",
                          dir, v, SHARD_FORMAT_VERSION);
    in->version = (int)v;
    if (meta_str(txn, s->meta, "complete", buf, sizeof buf) != 0)
        return calm_error("%s: the store is incomplete (its build did not finish: no 'complete' marker in meta); "
                          "rebuild it",
                          dir);
    if (meta_str(txn, s->meta, "tokenizer", in->tokenizer, sizeof in->tokenizer) != 0)
        return calm_error("%s: meta key 'tokenizer' missing; the store is damaged, rebuild it", dir);
    if (meta_int(dir, txn, s->meta, "vocab_size", 1, INT32_MAX, &v)) return -1;
    in->vocab_size = (int)v;
    in->token_bytes = 2; /* stores from before uint32 ids say 2 or nothing */
    if (meta_str(txn, s->meta, "token_bytes", buf, sizeof buf) == 0) in->token_bytes = atoi(buf);
    if (in->token_bytes != 2 && in->token_bytes != 4)
        return calm_error("%s: meta token_bytes is '%s' (expected 2 or 4); the store is damaged, rebuild it", dir, buf);
    if (in->token_bytes == 2 && in->vocab_size > 65536)
        return calm_error("%s: vocab_size %d does not fit the store's uint16 ids; the store is damaged", dir,
                          in->vocab_size);
    if (meta_int(dir, txn, s->meta, "seq_len", 1, 1 << 24, &v)) return -1;
    in->seq_len = (int)v;
    if (meta_str(txn, s->meta, "kind", buf, sizeof buf) != 0) return calm_error("%s: meta key 'kind' missing", dir);
    if (strcmp(buf, "lm") == 0) in->kind = SHARD_KIND_LM;
    else if (strcmp(buf, "task") == 0) in->kind = SHARD_KIND_TASK;
    else return calm_error("%s: meta 'kind' = '%s' (expected lm or task)", dir, buf);
    if (meta_str(txn, s->meta, "val_fraction", buf, sizeof buf) == 0) in->val_fraction = strtod(buf, NULL);
    in->doc_bos = in->kind == SHARD_KIND_TASK || (meta_str(txn, s->meta, "doc_start", buf, sizeof buf) == 0 &&
                                                 strcmp(buf, "bos") == 0);
    meta_str(txn, s->meta, "created_at", in->created_at, sizeof in->created_at);
    MDB_val k = {10, "created_by"}, cv;
    if (mdb_get(txn, s->meta, &k, &cv) == 0) {
        in->created_by = xmalloc(cv.mv_size + 1);
        memcpy(in->created_by, cv.mv_data, cv.mv_size);
        in->created_by[cv.mv_size] = 0;
    } else {
        in->created_by = xstrdup("");
    }
    if (meta_int(dir, txn, s->meta, "n_langs", 0, SHARD_MAX_LANGS, &v)) return -1;
    in->n_langs = (int)v;
    in->langs = xcalloc((size_t)in->n_langs + 1, sizeof *in->langs);
    for (int i = 0; i < in->n_langs; i++)
        if (read_lang(dir, txn, s->meta, i, &in->langs[i])) return -1;
    return 0;
}

static int open_env(ShardStore *s) {
    int rc = mdb_env_create(&s->env);
    if (rc) return calm_error("%s: LMDB: %s", s->dir, mdb_strerror(rc));
    mdb_env_set_maxdbs(s->env, SHARD_MAXDBS);
    mdb_env_set_maxreaders(s->env, SHARD_MAXREADERS);
    unsigned flags = MDB_RDONLY | MDB_NOTLS | MDB_NORDAHEAD;
    rc = mdb_env_open(s->env, s->dir, flags, 0644);
    if (rc == EACCES || rc == EROFS) {
        /* A read-only directory cannot hold lock.mdb. The store is never
         * written after it is complete, so readers need no lock. */
        mdb_env_close(s->env);
        mdb_env_create(&s->env);
        mdb_env_set_maxdbs(s->env, SHARD_MAXDBS);
        rc = mdb_env_open(s->env, s->dir, flags | MDB_NOLOCK, 0644);
    }
    if (rc) {
        mdb_env_close(s->env);
        s->env = NULL;
        return calm_error("%s/data.mdb: cannot open as LMDB (%s); the store is damaged or truncated, rebuild it",
                          s->dir, mdb_strerror(rc));
    }
    int dead;
    mdb_reader_check(s->env, &dead); /* free reader slots of processes that died */
    return 0;
}

/* LMDB maps the file and would fault (SIGBUS) on a page past its end, so a
 * file shorter than the pages its newest meta page uses is refused up front. */
static int check_length(ShardStore *s, uint64_t file_bytes) {
    MDB_envinfo ei;
    MDB_stat st;
    mdb_env_info(s->env, &ei);
    mdb_env_stat(s->env, &st);
    uint64_t need = ((uint64_t)ei.me_last_pgno + 1) * st.ms_psize;
    if (file_bytes < need)
        return calm_error("%s/data.mdb: truncated: %llu bytes, but the store uses %llu; rebuild it", s->dir,
                          (unsigned long long)file_bytes, (unsigned long long)need);
    return 0;
}

static int open_dbs(ShardStore *s) {
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    if (rc) return calm_error("%s: LMDB: %s", s->dir, mdb_strerror(rc));
    rc = mdb_dbi_open(txn, SHARD_DB_META, 0, &s->meta);
    if (rc) {
        mdb_txn_abort(txn);
        if (rc == MDB_NOTFOUND)
            return calm_error("%s: not a calm shard store (no 'meta' database); build one with `calm shard build`",
                              s->dir);
        return calm_error("%s: LMDB: %s", s->dir, mdb_strerror(rc));
    }
    if (read_meta(s, txn)) {
        mdb_txn_abort(txn);
        return -1;
    }
    for (int i = 0; i < SHARD_N_SPLITS; i++) {
        rc = mdb_dbi_open(txn, shard_split_name((ShardSplit)i), 0, &s->db[i]);
        if (!rc) rc = mdb_set_compare(txn, s->db[i], shard_key_cmp);
        if (rc) {
            mdb_txn_abort(txn);
            return calm_error("%s: database '%s': %s; the store is damaged, rebuild it", s->dir,
                              shard_split_name((ShardSplit)i), mdb_strerror(rc));
        }
    }
    /* Handles opened in a read transaction become shared once it commits. */
    rc = mdb_txn_commit(txn);
    if (rc) return calm_error("%s: LMDB: %s", s->dir, mdb_strerror(rc));
    return 0;
}

static void store_free(ShardStore *s) {
    if (!s) return;
    if (s->env) mdb_env_close(s->env);
    free(s->info.langs);
    free(s->info.created_by);
    free(s->dir);
    free(s);
}

int shard_store_open(ShardStore **out, const char *dir) {
    *out = NULL;
    struct stat st;
    if (stat(dir, &st) != 0) return calm_error("%s: %s", dir, strerror(errno));
    if (!S_ISDIR(st.st_mode)) return calm_error("%s: not a directory (a shard store is a directory)", dir);
    char *data = calm_path_join(dir, "data.mdb");
    int rc = stat(data, &st);
    free(data);
    if (rc != 0)
        return calm_error("%s: not a shard store (no data.mdb); build one with `calm shard build --out %s`", dir, dir);

    pthread_mutex_lock(&registry_lock);
    for (ShardStore *r = registry; r; r = r->next)
        if (r->dev == (uint64_t)st.st_dev && r->ino == (uint64_t)st.st_ino && r->pid == (long)getpid()) {
            r->refs++;
            *out = r;
            pthread_mutex_unlock(&registry_lock);
            return 0;
        }
    ShardStore *s = xcalloc(1, sizeof *s);
    s->dir = xstrdup(dir);
    s->dev = (uint64_t)st.st_dev;
    s->ino = (uint64_t)st.st_ino;
    s->pid = (long)getpid();
    s->info.file_bytes = (uint64_t)st.st_size;
    if (st.st_size < 2 * 4096) /* LMDB's two meta pages; a read-only open would try to create them */
        rc = calm_error("%s/data.mdb: truncated: %lld bytes is less than LMDB's two meta pages; rebuild the store",
                        dir, (long long)st.st_size);
    if (rc || open_env(s) || check_length(s, (uint64_t)st.st_size) || open_dbs(s)) {
        pthread_mutex_unlock(&registry_lock);
        store_free(s);
        return -1;
    }
    s->refs = 1;
    s->next = registry;
    registry = s;
    pthread_mutex_unlock(&registry_lock);
    *out = s;
    return 0;
}

void shard_store_close(ShardStore *s) {
    if (!s) return;
    pthread_mutex_lock(&registry_lock);
    int last = --s->refs == 0;
    if (last)
        for (ShardStore **p = &registry; *p; p = &(*p)->next)
            if (*p == s) {
                *p = s->next;
                break;
            }
    pthread_mutex_unlock(&registry_lock);
    if (last) store_free(s);
}

const ShardInfo *shard_store_info(const ShardStore *s) { return &s->info; }
const char *shard_store_dir(const ShardStore *s) { return s->dir; }

int shard_store_lang(const ShardStore *s, const char *code) {
    for (int i = 0; i < s->info.n_langs; i++)
        if (strcmp(s->info.langs[i].code, code) == 0) return i;
    char have[256] = "";
    size_t k = 0;
    for (int i = 0; i < s->info.n_langs && k + SHARD_LANG_MAX + 8 < sizeof have; i++)
        k += (size_t)snprintf(have + k, sizeof have - k, "%s%s", i ? ", " : "", s->info.langs[i].code);
    if (s->info.n_langs > 0 && k + SHARD_LANG_MAX + 8 >= sizeof have) snprintf(have + k, sizeof have - k, ", ...");
    return calm_error("%s: no language '%s' in the store (it has %d: %s)", s->dir, code, s->info.n_langs, have);
}

/* ---- verify --------------------------------------------------------------- */

typedef struct {
    uint64_t records, tokens;
    uint64_t *lang_tokens; /* stream tokens per language seen in this split */
    int64_t lang;          /* language of the previous key, -1 before the first */
    uint64_t next_id;      /* id the next key of `lang` must have */
    uint32_t last_n;       /* tokens in the previous record */
} VerifyState;

static int verify_lang_end(ShardStore *s, ShardSplit split, VerifyState *vs) {
    if (vs->lang < 0) return 0;
    const ShardLang *L = &s->info.langs[vs->lang];
    if (vs->next_id != L->samples[split])
        return calm_error("%s: %s '%s' has %llu records but meta says %llu; the store is damaged, rebuild it", s->dir,
                          shard_split_name(split), L->code, (unsigned long long)vs->next_id,
                          (unsigned long long)L->samples[split]);
    return 0;
}

static int verify_record(ShardStore *s, ShardSplit split, VerifyState *vs, const MDB_val *k, const MDB_val *v) {
    const ShardInfo *in = &s->info;
    ShardRecord r;
    char kd[160];
    if (shard_record_check(s->dir, in, split, k, v, 1, &r)) return -1;
    uint32_t id = shard_rdbe32((const uint8_t *)k->mv_data + 4);
    shard_key_desc(kd, sizeof kd, in, split, k->mv_data, k->mv_size);
    if (r.lang != vs->lang) {
        if (verify_lang_end(s, split, vs)) return -1;
        vs->lang = r.lang;
        vs->next_id = 0;
    } else if (in->kind == SHARD_KIND_LM && vs->last_n != (uint32_t)in->seq_len + 1) {
        return calm_error("%s: the record before %s has %u tokens; only a language's last lm record may be shorter "
                          "than seq_len + 1 = %d",
                          s->dir, kd, vs->last_n, in->seq_len + 1);
    }
    if (id != vs->next_id)
        return calm_error("%s: %s: expected sample id %llu (ids of a language are 0, 1, ...); the store is damaged",
                          s->dir, kd, (unsigned long long)vs->next_id);
    if (r.n < 2) return calm_error("%s: %s: record of %u tokens has no target", s->dir, kd, r.n);
    for (uint32_t t = 0; t < r.n; t++) {
        if (shard_record_token(&r, t) >= (uint32_t)in->vocab_size)
            return calm_error("%s: %s: token %u at position %u is outside the vocabulary (%d)", s->dir, kd,
                              shard_record_token(&r, t), t, in->vocab_size);
        if (r.mask && r.mask[t] > 1)
            return calm_error("%s: %s: loss mask %u at position %u (expected 0 or 1)", s->dir, kd, r.mask[t], t);
    }
    /* lm records overlap by one token: each adds n - 1 new stream tokens. */
    vs->lang_tokens[r.lang] += in->kind == SHARD_KIND_LM ? r.n - (id ? 1 : 0) : r.n;
    vs->records++;
    vs->tokens += r.n;
    vs->next_id++;
    vs->last_n = r.n;
    return 0;
}

static int verify_split(ShardStore *s, MDB_txn *txn, ShardSplit split, VerifyState *vs) {
    MDB_cursor *cur;
    MDB_val k, v;
    int rc = mdb_cursor_open(txn, s->db[split], &cur);
    if (rc) return calm_error("%s: LMDB: %s", s->dir, mdb_strerror(rc));
    vs->lang = -1;
    memset(vs->lang_tokens, 0, sizeof *vs->lang_tokens * ((size_t)s->info.n_langs + 1));
    int err = 0;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0 && !err; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
        err = verify_record(s, split, vs, &k, &v);
    mdb_cursor_close(cur);
    if (err) return -1;
    if (rc != MDB_NOTFOUND) return calm_error("%s: reading %s: LMDB: %s", s->dir, shard_split_name(split), mdb_strerror(rc));
    if (verify_lang_end(s, split, vs)) return -1;
    for (int i = 0; i < s->info.n_langs; i++) {
        const ShardLang *L = &s->info.langs[i];
        if (vs->lang_tokens[i] != L->tokens[split] || (L->samples[split] > 0) != (vs->lang_tokens[i] > 0))
            return calm_error("%s: %s '%s': records hold %llu tokens (%s), meta says %llu in %llu samples; the store "
                              "is damaged, rebuild it",
                              s->dir, shard_split_name(split), L->code, (unsigned long long)vs->lang_tokens[i],
                              vs->lang_tokens[i] ? "present" : "no records", (unsigned long long)L->tokens[split],
                              (unsigned long long)L->samples[split]);
    }
    return 0;
}

int shard_store_verify(ShardStore *s, uint64_t *n_records, uint64_t *n_tokens) {
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    if (rc) return calm_error("%s: LMDB: %s", s->dir, mdb_strerror(rc));
    VerifyState vs = {0};
    vs.lang_tokens = xcalloc((size_t)s->info.n_langs + 1, sizeof *vs.lang_tokens);
    int err = verify_split(s, txn, SHARD_TRAIN, &vs) || verify_split(s, txn, SHARD_VAL, &vs);
    mdb_txn_abort(txn);
    free(vs.lang_tokens);
    if (err) return -1;
    if (n_records) *n_records = vs.records;
    if (n_tokens) *n_tokens = vs.tokens;
    return 0;
}

int shard_store_warm(ShardStore *s, ShardSplit split, uint64_t *bytes) {
    MDB_txn *txn;
    MDB_cursor *cur;
    MDB_val k, v;
    volatile uint8_t sink = 0;
    *bytes = 0;
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    if (rc) return calm_error("%s: LMDB: %s", s->dir, shard_mdb_strerror(rc));
    rc = mdb_cursor_open(txn, s->db[split], &cur);
    if (rc) {
        mdb_txn_abort(txn);
        return calm_error("%s: LMDB: %s", s->dir, shard_mdb_strerror(rc));
    }
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        for (size_t i = 0; i < v.mv_size; i += 512) sink ^= ((const uint8_t *)v.mv_data)[i]; /* one byte a page */
        *bytes += v.mv_size;
    }
    (void)sink;
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    return 0;
}
