/* shard_synth.h: synthetic shard stores for test_shards.c and
 * test_shards_bad.c, whose tokens encode (language, document, position) so
 * that every row of every batch can be checked exactly. Header-only (static
 * inline): tests/CMakeLists.txt links each test from <test>.c and testutil.c
 * alone. */
#ifndef CALM_TEST_SHARD_SYNTH_H
#define CALM_TEST_SHARD_SYNTH_H

#include "testutil.h"

#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "src/common.h"
#include "shards/shard_internal.h"
#include "shards/shards.h"
#include "src/files.h"
#include "src/rng.h"
#include "src/tokenizer.h"

#define TT 16 /* seq_len of most synthetic stores */

/* ---- synthetic corpora ----------------------------------------------------
 * Document d of language L is T-2 ids between the builder's BOS and EOS:
 * exactly T tokens, so lm record j of a split is that split's j-th document
 * plus the first token (BOS) of the next one. ids: L lo, L hi, d lo, d hi,
 * then a function of (L, d, position). */

static inline void synth_doc(int L, int d, int T, int *ids) {
    ids[0] = L & 255;
    ids[1] = L >> 8;
    ids[2] = d & 255;
    ids[3] = d >> 8;
    for (int p = 4; p < T - 2; p++) ids[p] = (L * 131 + d * 31 + p * 7) % 256;
}

static inline void lang_code(int L, char *code) { sprintf(code, "l%d", L); }

/* Indices of a language's documents that the builder puts in `split`. */
static inline int split_docs(int n_docs, double val, ShardSplit split, int *out) {
    uint64_t ppm = (uint64_t)(val * 1e6 + 0.5);
    int m = 0;
    for (int i = 0; i < n_docs; i++) {
        int is_val = ((uint64_t)(i + 1) * ppm) / 1000000 > ((uint64_t)i * ppm) / 1000000;
        if (is_val == (split == SHARD_VAL)) out[m++] = i;
    }
    return m;
}

/* Expected tokens of record j of a split holding documents docs[0..m). */
static inline int expect_record(int L, const int *docs, int m, int j, int T, int *out) {
    out[0] = TOK_BOS;
    synth_doc(L, docs[j], T, out + 1);
    out[T - 1] = TOK_EOS;
    if (j + 1 < m) {
        out[T] = TOK_BOS;
        return T + 1;
    }
    return T;
}

/* Build a store with n_docs[L] documents per language, added round-robin
 * across languages (so keys arrive out of order, as from mixed JSON Lines). */
static inline char *build_synth(const char *tag, int n_langs, const int *n_docs, int T, double val, size_t map_size,
                         uint64_t *map_after) {
    char *dir = tu_mkdtemp(tag);
    ShardBuildOpts o;
    shard_build_opts_default(&o);
    o.seq_len = T;
    o.val_fraction = val;
    o.command = "test_shards";
    if (map_size) o.map_size = map_size;
    ShardBuilder *b;
    assert_int_equal(shard_builder_open(&b, dir, &o), 0);
    int maxd = 0, *ids = malloc(sizeof(int) * (size_t)T);
    for (int L = 0; L < n_langs; L++) maxd = n_docs[L] > maxd ? n_docs[L] : maxd;
    for (int d = 0; d < maxd; d++)
        for (int L = 0; L < n_langs; L++) {
            if (d >= n_docs[L]) continue;
            char code[16];
            lang_code(L, code);
            synth_doc(L, d, T, ids);
            assert_int_equal(shard_builder_add_ids(b, code, ids, (size_t)T - 2), 0);
        }
    int rc = shard_builder_finish(b);
    if (rc) fprintf(stderr, "%s\n", calm_last_error());
    assert_int_equal(rc, 0);
    if (map_after) *map_after = shard_builder_map_size(b);
    shard_builder_free(b);
    free(ids);
    return dir;
}

/* Check one row against record j of language L (store seq_len T, batch Tb). */
static inline void check_row(const int *tok, const int *tgt, const float *w, int Tb, int L, const int *docs, int m, int j,
                      int T) {
    int *exp = malloc(sizeof(int) * ((size_t)T + 1));
    int n = expect_record(L, docs, m, j, T, exp);
    if (n > Tb + 1) n = Tb + 1;
    for (int t = 0; t < Tb; t++) {
        assert_int_equal(tok[t], t < n ? exp[t] : TOK_PAD);
        assert_int_equal(tgt[t], t + 1 < n ? exp[t + 1] : TOK_PAD);
        assert_true(w[t] == (t + 1 < n ? 1.0f : 0.0f));
    }
    free(exp);
}

static inline int row_lang(const int *tok) { return tok[1] | tok[2] << 8; } /* after the BOS */
static inline int row_doc(const int *tok) { return tok[3] | tok[4] << 8; }

static inline void open_loader(const char *dir, ShardStore **s, ShardLoader **l, uint64_t seed, double alpha, int shuffle) {
    assert_int_equal(shard_store_open(s, dir), 0);
    ShardLoaderOpts o;
    shard_loader_opts_default(&o);
    o.seed = seed;
    o.alpha = alpha;
    o.shuffle = shuffle;
    int rc = shard_loader_open(l, *s, &o);
    if (rc) fprintf(stderr, "%s\n", calm_last_error());
    assert_int_equal(rc, 0);
}

static inline void close_loader(ShardStore *s, ShardLoader *l) {
    shard_loader_close(l);
    shard_store_close(s);
}

static inline int *iota(int n) {
    int *a = malloc(sizeof(int) * (size_t)(n ? n : 1));
    for (int i = 0; i < n; i++) a[i] = i;
    return a;
}

static inline const char *map_of(const char *dir, size_t *len) {
    char *data = calm_path_join(dir, "data.mdb"), real[4096], line[8192], path[4096];
    assert_non_null(realpath(data, real));
    free(data);
    FILE *f = fopen("/proc/self/maps", "r");
    assert_non_null(f);
    const char *base = NULL;
    while (!base && fgets(line, sizeof line, f)) {
        unsigned long lo, hi, off;
        if (sscanf(line, "%lx-%lx %*s %lx %*s %*s %4095s", &lo, &hi, &off, path) == 4 && off == 0 &&
            strcmp(path, real) == 0) {
            base = (const char *)lo;
            *len = hi - lo;
        }
    }
    fclose(f);
    assert_non_null(base);
    return base;
}

#endif
