/* ntl_write.c: the stores and evaluation files of `calm data ntl`
 * (data_ntl.c describes them). */
#define _GNU_SOURCE
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/data_ntl.h"
#include "shards/shards.h"
#include "src/common.h"
#include "src/files.h"
#include "src/rng.h"

/* "SRC\n=> EN" */
static char *pair_doc(const char *src, const char *en) {
    size_t n = strlen(src) + strlen(PAIR_SEP) + strlen(en) + 1;
    char *d = xmalloc(n);
    snprintf(d, n, "%s%s%s", src, PAIR_SEP, en);
    return d;
}

typedef struct {
    ShardBuilder *b;
    const char *name;
    uint64_t docs;
} Store;

static int store_open(Store *s, const Ntl *x, const char *dir, const char *name, const char *cmdline) {
    memset(s, 0, sizeof *s);
    s->name = name;
    char *sub = calm_path_join(dir, "stores"), *path = calm_path_join(sub, name);
    ShardBuildOpts o;
    shard_build_opts_default(&o);
    o.seq_len = x->seq_len;
    o.command = cmdline;
    int rc = calm_mkdirs(sub) == 0 ? shard_builder_open(&s->b, path, &o) : -1;
    free(sub);
    free(path);
    return rc;
}

static int store_add(Store *s, const char *lang, const char *text) {
    s->docs++;
    return shard_builder_add_text(s->b, lang, text, strlen(text));
}

typedef struct {
    uint64_t h;
    int i;
} Keyed;

static int keyed_cmp(const void *a, const void *b) {
    const Keyed *x = a, *y = b;
    return x->h != y->h ? (x->h < y->h ? -1 : 1) : (x->i < y->i ? -1 : x->i > y->i);
}

/* A fixed pseudo-random order of n items for (seed, key, salt). */
static int *hashed_order(int n, long seed, const char *key, int salt) {
    Keyed *k = xmalloc((size_t)(n > 0 ? n : 1) * sizeof(Keyed));
    uint64_t base = text_hash(key) ^ calm_hash64((uint64_t)seed * 31 + (uint64_t)salt);
    for (int i = 0; i < n; i++) k[i] = (Keyed){calm_hash64(base + (uint64_t)i * 0x9e3779b97f4a7c15ULL), i};
    qsort(k, (size_t)n, sizeof(Keyed), keyed_cmp);
    int *o = xmalloc((size_t)(n > 0 ? n : 1) * sizeof(int));
    for (int i = 0; i < n; i++) o[i] = k[i].i;
    free(k);
    return o;
}

/* The three stores. */
int ntl_stores(Ntl *x, const char *dir, const char *cmdline, cJSON *manifest) {
    Store anchor, ntl, dc;
    memset(&ntl, 0, sizeof ntl);
    memset(&dc, 0, sizeof dc);
    if (store_open(&anchor, x, dir, "anchor", cmdline) || store_open(&ntl, x, dir, "ntl", cmdline) ||
        store_open(&dc, x, dir, "dc", cmdline)) {
        shard_builder_free(anchor.b); /* the caller removes the directory */
        shard_builder_free(ntl.b);
        shard_builder_free(dc.b);
        return -1;
    }
    const int en = QURAN_EN;
    int rc = 0;
    long pairs_anchor = 0, pairs_dc = 0;
    for (int i = 0; i < x->n && rc == 0; i++) {
        Lang *l = &x->lang[i];
        const char *code = l->decl.code;
        for (int k = 0; k < l->train.n && rc == 0; k++) {
            rc = store_add(&ntl, code, l->train.doc[k]);
            if (rc == 0 && l->high) rc = store_add(&anchor, code, l->train.doc[k]);
        }
        if (rc == 0 && !l->dc_unseen) { /* DC: about dc_fraction of the language's bytes, at least one document */
            int *o = hashed_order(l->train.n, x->seed, code, 1);
            size_t bytes = 0;
            double share = l->high && x->dc_high >= 0 ? x->dc_high : x->dc_fraction;
            for (int k = 0; k < l->train.n && rc == 0 && (k == 0 || bytes < share * l->train.bytes); k++) {
                bytes += strlen(l->train.doc[o[k]]);
                rc = store_add(&dc, code, l->train.doc[o[k]]);
            }
            free(o);
        }
        if (rc || l->quran < 0 || l->quran == en) continue;
        /* XX -> En pairs on the training verses: all of them for mB (H), a share for DC (L) */
        const Verses *src = &x->verses[l->quran], *eng = &x->verses[en];
        char pcode[80];
        snprintf(pcode, sizeof pcode, "%s-eng", code);
        int *o = hashed_order(src->n, x->seed, code, 2);
        int want = l->high ? src->n : (int)(x->dc_pairs * src->n + 0.5), took = 0;
        for (int k = 0; k < src->n && took < want && rc == 0; k++) {
            int v = o[k];
            if (verse_held(x, v)) continue;
            if (held_contains(x, src->text[v]) || held_contains(x, eng->text[v])) {
                x->dropped++;
                continue;
            }
            char *d = pair_doc(src->text[v], eng->text[v]);
            rc = store_add(l->high ? &anchor : &dc, pcode, d);
            free(d);
            took++;
        }
        free(o);
        if (l->high) pairs_anchor += took;
        else pairs_dc += took;
    }
    Store *all[3] = {&anchor, &ntl, &dc};
    cJSON *st = cJSON_AddObjectToObject(manifest, "stores");
    for (int k = 0; k < 3; k++) {
        if (rc == 0) rc = shard_builder_finish(all[k]->b);
        if (rc == 0) cJSON_AddNumberToObject(st, all[k]->name, (double)all[k]->docs);
        shard_builder_free(all[k]->b);
    }
    cJSON_AddNumberToObject(manifest, "pairs_anchor", (double)pairs_anchor);
    cJSON_AddNumberToObject(manifest, "pairs_dc", (double)pairs_dc);
    if (rc == 0)
        calm_log("stores: anchor %llu docs (%ld H->En pairs), ntl %llu, dc %llu (%ld L->En pairs)",
                 (unsigned long long)anchor.docs, pairs_anchor, (unsigned long long)ntl.docs,
                 (unsigned long long)dc.docs, pairs_dc);
    return rc;
}

static int write_text(const char *path, const char *text, size_t n) {
    const void *bufs[] = {text};
    return calm_write_atomic(path, bufs, &n, 1);
}

/* Documents separated by blank lines (no document holds one). */
static int write_docs(const char *dir, const char *code, const Docs *d) {
    size_t n = 0;
    for (int k = 0; k < d->n; k++) n += strlen(d->doc[k]) + 2;
    char *text = xmalloc(n + 1), *p = text;
    for (int k = 0; k < d->n; k++) p = stpcpy(stpcpy(p, d->doc[k]), k + 1 < d->n ? "\n\n" : "\n");
    char name[96];
    snprintf(name, sizeof name, "%s.txt", code);
    char *path = calm_path_join(dir, name);
    int rc = calm_mkdirs(dir) == 0 ? write_text(path, text, (size_t)(p - text)) : -1;
    free(path);
    free(text);
    return rc;
}

/* JSON Lines built in memory and written atomically. */
typedef struct {
    char *p;
    size_t n, cap;
} Lines;

static void lines_add(Lines *ls, cJSON *o) {
    char *s = cJSON_PrintUnformatted(o);
    size_t k = strlen(s);
    if (ls->n + k + 2 > ls->cap) ls->p = xrealloc(ls->p, ls->cap = 2 * (ls->n + k + 2));
    memcpy(ls->p + ls->n, s, k);
    ls->p[ls->n + k] = '\n';
    ls->n += k + 1;
    cJSON_free(s);
    cJSON_Delete(o);
}

int ntl_write(Ntl *x, const char *dir, cJSON *manifest) {
    char *train_dir = calm_path_join(dir, "text/train"), *held_dir = calm_path_join(dir, "text/heldout");
    int rc = 0;
    Lines heldout = {0}, translate = {0};
    cJSON *langs = cJSON_CreateArray();
    long n_translate = 0, heldout_docs = 0;
    for (int i = 0; i < x->n && rc == 0; i++) {
        Lang *l = &x->lang[i];
        heldout_docs += l->held.n;
        rc = write_docs(train_dir, l->decl.code, &l->train);
        if (rc == 0) rc = write_docs(held_dir, l->decl.code, &l->held);
        for (int k = 0; k < l->held.n; k++) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "lang", l->decl.code);
            cJSON_AddStringToObject(o, "text", l->held.doc[k]);
            lines_add(&heldout, o);
        }
        int n_tr = 0;
        if (l->quran >= 0 && l->quran != QURAN_EN) { /* held-out XX -> En examples that fit --max-pair-bytes */
            const Verses *src = &x->verses[l->quran], *eng = &x->verses[QURAN_EN];
            for (int v = 0; v < src->n && n_tr < x->translate; v++) {
                if (!verse_held(x, v)) continue;
                if (strlen(src->text[v]) + strlen(PAIR_SEP) + strlen(eng->text[v]) > (size_t)x->max_pair) continue;
                char *prompt = pair_doc(src->text[v], "");
                cJSON *o = cJSON_CreateObject();
                cJSON_AddStringToObject(o, "lang", l->decl.code);
                cJSON_AddStringToObject(o, "prompt", prompt);
                cJSON_AddStringToObject(o, "target", eng->text[v]);
                lines_add(&translate, o);
                free(prompt);
                n_tr++;
            }
        }
        n_translate += n_tr;
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "code", l->decl.code);
        cJSON_AddStringToObject(j, "name", l->decl.name);
        cJSON_AddStringToObject(j, "iso6393", l->decl.iso6393);
        cJSON_AddStringToObject(j, "bcp47", l->decl.bcp47);
        cJSON_AddStringToObject(j, "script", l->script);
        cJSON_AddStringToObject(j, "direction", l->decl.direction);
        cJSON_AddStringToObject(j, "group", l->high ? "H" : "L");
        cJSON_AddBoolToObject(j, "dc_unseen", l->dc_unseen);
        if (l->quran >= 0) cJSON_AddStringToObject(j, "quran", quran_langs[l->quran].quran);
        else cJSON_AddNullToObject(j, "quran");
        cJSON_AddNumberToObject(j, "train_docs", l->train.n);
        cJSON_AddNumberToObject(j, "train_bytes", (double)l->train.bytes);
        cJSON_AddNumberToObject(j, "heldout_docs", l->held.n);
        cJSON_AddNumberToObject(j, "heldout_bytes", (double)l->held.bytes);
        cJSON_AddNumberToObject(j, "translate_examples", n_tr);
        cJSON_AddItemToArray(langs, j);
    }
    free(train_dir);
    free(held_dir);
    char *p;
    if (rc == 0) rc = write_text(p = calm_path_join(dir, "heldout.jsonl"), heldout.p, heldout.n), free(p);
    if (rc == 0) rc = write_text(p = calm_path_join(dir, "translate.jsonl"), translate.p ? translate.p : "", translate.n), free(p);
    if (rc == 0) rc = calm_write_json(p = calm_path_join(dir, "languages.json"), langs), free(p);
    cJSON_AddNumberToObject(manifest, "heldout_docs", (double)heldout_docs);
    cJSON_AddNumberToObject(manifest, "translate_examples", (double)n_translate);
    cJSON_Delete(langs);
    free(heldout.p);
    free(translate.p);
    return rc;
}

