/* test_shards.c: shard store builder and loader on synthetic corpora
 * (shard_synth.h) whose tokens encode (language, document, position), so
 * every row of every batch is checked exactly. test_shards_bad.c: each bad
 * input the loader must refuse. */
#define _GNU_SOURCE
#include "testutil.h"

#include "shard_synth.h"

/* ---- format ------------------------------------------------------------------ */

static void test_crc32c(void **state) {
    (void)state;
    const char *v = "123456789";
    assert_int_equal(shard_crc32c(0, v, 9), 0xE3069283u);
    assert_int_equal(shard_crc32c_sw(0, v, 9), 0xE3069283u);
    uint8_t zeros[32] = {0}, buf[1000];
    assert_int_equal(shard_crc32c_sw(0, zeros, 32), 0x8A9136AAu);
    assert_int_equal(shard_crc32c(0, "", 0), 0);
    for (size_t i = 0; i < sizeof buf; i++) buf[i] = (uint8_t)(calm_hash64(i) >> 13);
    for (size_t n = 0; n < sizeof buf; n += 37) {
        uint32_t whole = shard_crc32c(0, buf, n);
        assert_int_equal(whole, shard_crc32c_sw(0, buf, n));
        assert_int_equal(whole, shard_crc32c(shard_crc32c(0, buf, n / 3), buf + n / 3, n - n / 3));
    }
}

static void test_permutation(void **state) {
    (void)state;
    uint64_t sizes[] = {65535, 65536, 65537, 100003};
    uint8_t *seen = malloc(100003);
    for (uint64_t n = 1; n <= 300; n++) {
        memset(seen, 0, n);
        for (uint64_t i = 0; i < n; i++) {
            uint64_t x = shard_permute(7, 3, 1, n, i);
            assert_true(x < n);
            assert_false(seen[x]);
            seen[x] = 1;
        }
    }
    for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
        uint64_t n = sizes[k];
        memset(seen, 0, n);
        for (uint64_t i = 0; i < n; i++) {
            uint64_t x = shard_permute(1, 0, 0, n, i);
            assert_true(x < n && !seen[x]);
            seen[x] = 1;
        }
    }
    /* Different epochs, languages and seeds give unrelated orders. */
    uint64_t n = 1000;
    int same_epoch = 0, same_lang = 0, same_seed = 0, fixed = 0;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t x = shard_permute(5, 2, 0, n, i);
        same_epoch += x == shard_permute(5, 2, 1, n, i);
        same_lang += x == shard_permute(5, 3, 0, n, i);
        same_seed += x == shard_permute(6, 2, 0, n, i);
        fixed += x == i;
    }
    assert_true(same_epoch < 10 && same_lang < 10 && same_seed < 10 && fixed < 10);
    free(seen);
}

/* ---- batches ------------------------------------------------------------------ */

static void test_batches_exact(void **state) {
    (void)state;
    int n_docs[3] = {5, 17, 40};
    char *dir = build_synth("exact", 3, n_docs, TT, 0, 0, NULL);
    ShardStore *s;
    ShardLoader *l;
    open_loader(dir, &s, &l, 42, 0.3, 1);
    const ShardInfo *in = shard_store_info(s);
    assert_int_equal(in->n_langs, 3);
    assert_int_equal(in->seq_len, TT);
    assert_int_equal(in->kind, SHARD_KIND_LM);
    assert_string_equal(in->tokenizer, TOK_ID);
    for (int L = 0; L < 3; L++) {
        assert_int_equal(in->langs[L].samples[SHARD_TRAIN], n_docs[L]);
        assert_int_equal(in->langs[L].tokens[SHARD_TRAIN], n_docs[L] * TT);
    }
    enum { B = 4, STEPS = 100 };
    int tok[B * TT], tgt[B * TT];
    float w[B * TT];
    int *seen[3], cnt[3] = {0, 0, 0};
    for (int L = 0; L < 3; L++) seen[L] = malloc(sizeof(int) * B * STEPS);
    for (int step = 0; step < STEPS; step++) {
        assert_int_equal(shard_loader_batch(l, step, 0, 1, B, TT, tok, tgt, w), 0);
        for (int b = 0; b < B; b++) {
            ShardPos pos;
            shard_loader_locate(l, (uint64_t)step * B + b, &pos);
            const int *row = tok + b * TT;
            int L = row_lang(row), d = row_doc(row);
            assert_int_equal(L, pos.lang);
            assert_int_equal(d, (int)pos.sample);
            int *docs = iota(n_docs[L]);
            check_row(row, tgt + b * TT, w + b * TT, TT, L, docs, n_docs[L], d, TT);
            free(docs);
            assert_int_equal(pos.epoch, cnt[L] / n_docs[L]);
            assert_int_equal(pos.index, cnt[L] % n_docs[L]);
            seen[L][cnt[L]++] = d;
        }
    }
    for (int L = 0; L < 3; L++) {
        int n = n_docs[L];
        assert_true(cnt[L] >= 2 * n);
        uint8_t *hit = malloc((size_t)n);
        for (int e = 0; (e + 1) * n <= cnt[L]; e++) { /* every epoch: each record exactly once */
            memset(hit, 0, (size_t)n);
            for (int i = 0; i < n; i++) {
                assert_false(hit[seen[L][e * n + i]]);
                hit[seen[L][e * n + i]] = 1;
            }
        }
        if (n >= 17) assert_true(memcmp(seen[L], seen[L] + n, sizeof(int) * (size_t)n) != 0);
        free(hit);
        free(seen[L]);
    }
    close_loader(s, l);
    tu_rmtree(dir);
    free(dir);
}

static void test_sequential_and_seeds(void **state) {
    (void)state;
    int n_docs[2] = {6, 9};
    char *dir = build_synth("seq", 2, n_docs, TT, 0, 0, NULL);
    ShardStore *s;
    ShardLoader *l, *a, *b;
    open_loader(dir, &s, &l, 1, 0.3, 0);
    int cnt[2] = {0, 0};
    int tok[TT], tgt[TT];
    float w[TT];
    for (int g = 0; g < 60; g++) { /* unshuffled: ids in order, epoch after epoch */
        assert_int_equal(shard_loader_batch(l, g, 0, 1, 1, TT, tok, tgt, w), 0);
        int L = row_lang(tok);
        assert_int_equal(row_doc(tok), cnt[L]++ % n_docs[L]);
    }
    shard_loader_close(l);
    ShardLoaderOpts o;
    shard_loader_opts_default(&o);
    o.seed = 1;
    assert_int_equal(shard_loader_open(&a, s, &o), 0);
    o.seed = 2;
    assert_int_equal(shard_loader_open(&b, s, &o), 0);
    int differ = 0;
    for (uint64_t g = 0; g < 200; g++) {
        ShardPos pa, pb;
        shard_loader_locate(a, g, &pa);
        shard_loader_locate(b, g, &pb);
        assert_int_equal(pa.lang, pb.lang); /* the blend does not depend on the seed */
        differ += pa.sample != pb.sample;
    }
    assert_true(differ > 100);
    shard_loader_close(a);
    shard_loader_close(b);
    shard_store_close(s);
    tu_rmtree(dir);
    free(dir);
}

static void test_replicas_disjoint(void **state) {
    (void)state;
    int n_docs[3] = {4, 11, 23};
    char *dir = build_synth("replicas", 3, n_docs, TT, 0, 0, NULL);
    ShardStore *s;
    ShardLoader *l;
    open_loader(dir, &s, &l, 3, 0.3, 1);
    enum { R = 3, B = 2, G = R * B };
    int whole[G * TT], wt[G * TT], part[G * TT], pt[G * TT];
    float ww[G * TT], pw[G * TT];
    for (int step = 0; step < 40; step++) {
        assert_int_equal(shard_loader_batch(l, step, 0, 1, G, TT, whole, wt, ww), 0);
        for (int r = 0; r < R; r++)
            assert_int_equal(shard_loader_batch(l, step, r, R, B, TT, part + r * B * TT, pt + r * B * TT,
                                                pw + r * B * TT), 0);
        /* The replicas' rows, side by side, are the global batch: disjoint and complete. */
        assert_memory_equal(whole, part, sizeof whole);
        assert_memory_equal(wt, pt, sizeof wt);
        assert_memory_equal(ww, pw, sizeof ww);
    }
    assert_int_not_equal(shard_loader_batch(l, 0, 3, 3, B, TT, part, pt, pw), 0);
    assert_int_not_equal(shard_loader_batch(l, -1, 0, 1, B, TT, part, pt, pw), 0);
    close_loader(s, l);
    tu_rmtree(dir);
    free(dir);
}

static void test_resume(void **state) {
    (void)state;
    int n_docs[3] = {5, 17, 40};
    char *dir = build_synth("resume", 3, n_docs, TT, 0, 0, NULL);
    enum { B = 3, S = 70, N = B * TT };
    int *tok = malloc(sizeof(int) * S * N), *tgt = malloc(sizeof(int) * S * N);
    float *w = malloc(sizeof(float) * S * N);
    ShardStore *s;
    ShardLoader *l;
    open_loader(dir, &s, &l, 9, 0.3, 1);
    for (int step = 0; step < S; step++)
        assert_int_equal(shard_loader_batch(l, step, 0, 1, B, TT, tok + step * N, tgt + step * N, w + step * N), 0);
    ShardPos last;
    shard_loader_locate(l, (uint64_t)S * B - 1, &last);
    close_loader(s, l);
    int ks[] = {1, 7, 23, 44, S - 1};
    int rt[N], rg[N];
    float rw[N];
    for (size_t i = 0; i < sizeof ks / sizeof *ks; i++) {
        open_loader(dir, &s, &l, 9, 0.3, 1); /* a fresh process would do the same */
        for (int step = ks[i]; step < S; step++) {
            assert_int_equal(shard_loader_batch(l, step, 0, 1, B, TT, rt, rg, rw), 0);
            assert_memory_equal(rt, tok + step * N, sizeof rt);
            assert_memory_equal(rg, tgt + step * N, sizeof rg);
            assert_memory_equal(rw, w + step * N, sizeof rw);
        }
        /* Resuming late is not a restart: the first batch is not step 0's. */
        assert_true(memcmp(tok + ks[i] * N, tok, sizeof rt) != 0);
        close_loader(s, l);
    }
    /* By the end, the smallest language is well past epoch 0 and its later
     * epochs come in other orders (checked exactly in test_batches_exact). */
    open_loader(dir, &s, &l, 9, 0.3, 1);
    ShardPos p1;
    int differ = 0;
    for (int i = 0; i < 17; i++)
        differ += shard_permute(9, 1, 0, 17, (uint64_t)i) != shard_permute(9, 1, 3, 17, (uint64_t)i);
    shard_loader_locate(l, (uint64_t)S * B - 1, &p1);
    assert_int_equal(p1.lang, last.lang);
    assert_int_equal(p1.sample, last.sample);
    assert_true(differ > 0);
    assert_true(shard_loader_epochs(l, (uint64_t)S * B) > 1.0);
    close_loader(s, l);
    free(tok);
    free(tgt);
    free(w);
    tu_rmtree(dir);
    free(dir);
}

/* Proportions: the realised share of every language is within one sample of
 * its target after every prefix, and within 1% over every 10k window. */
static void test_mixing(void **state) {
    (void)state;
    enum { NL = 5 };
    int n_docs[NL] = {2000, 300, 50, 7, 1};
    char *dir = build_synth("mix", NL, n_docs, 5, 0, 0, NULL);
    double alphas[] = {0.3, 0.0, 1.0};
    const int N = 150000, WIN = 10000;
    int *prefix = malloc(sizeof(int) * (size_t)(N + 1) * NL);
    for (size_t a = 0; a < sizeof alphas / sizeof *alphas; a++) {
        ShardStore *s;
        ShardLoader *l;
        open_loader(dir, &s, &l, 1, alphas[a], 1);
        double p[NL], sum = 0, share[NL];
        for (int L = 0; L < NL; L++) sum += p[L] = pow(n_docs[L], alphas[a]);
        for (int L = 0; L < NL; L++) {
            p[L] /= sum;
            share[L] = shard_loader_share(l, L);
            assert_true(fabs(share[L] - p[L]) <= 2.0 / 65536);
        }
        int cnt[NL] = {0};
        memcpy(prefix, cnt, sizeof cnt);
        for (int g = 0; g < N; g++) {
            ShardPos pos;
            shard_loader_locate(l, (uint64_t)g, &pos);
            cnt[pos.lang]++;
            memcpy(prefix + (size_t)(g + 1) * NL, cnt, sizeof cnt);
            for (int L = 0; L < NL; L++) assert_true(fabs(cnt[L] - (g + 1) * share[L]) < 1.0);
        }
        for (int st = 0; st + WIN <= N; st += 7)
            for (int L = 0; L < NL; L++) {
                int c = prefix[(size_t)(st + WIN) * NL + L] - prefix[(size_t)st * NL + L];
                assert_true(fabs((double)c / WIN - p[L]) <= 0.01);
            }
        close_loader(s, l);
    }
    free(prefix);
    tu_rmtree(dir);
    free(dir);
}

static void test_val_split_and_subset(void **state) {
    (void)state;
    int n_docs[3] = {20, 12, 8};
    double val = 0.25;
    char *dir = build_synth("val", 3, n_docs, TT, val, 0, NULL);
    ShardStore *s;
    assert_int_equal(shard_store_open(&s, dir), 0);
    const ShardInfo *in = shard_store_info(s);
    for (int sp = 0; sp < SHARD_N_SPLITS; sp++) {
        ShardLoaderOpts o;
        shard_loader_opts_default(&o);
        o.split = (ShardSplit)sp;
        ShardLoader *l;
        assert_int_equal(shard_loader_open(&l, s, &o), 0);
        for (int L = 0; L < 3; L++) {
            int docs[64], m = split_docs(n_docs[L], val, (ShardSplit)sp, docs);
            assert_int_equal(in->langs[L].samples[sp], m);
            assert_int_equal(in->langs[L].docs[sp], m);
            for (int j = 0; j < m; j++) { /* record j of the split is the split's j-th document */
                ShardRecord r;
                assert_int_equal(shard_loader_record(l, L, (uint64_t)j, &r), 0);
                int exp[TT + 1], n = expect_record(L, docs, m, j, TT, exp);
                assert_int_equal(r.n, n);
                for (int t = 0; t < n; t++) assert_int_equal(r.tokens[t], exp[t]);
            }
        }
        shard_loader_close(l);
    }
    /* A subset of languages: only they appear, mixed among themselves. */
    ShardLoaderOpts o;
    shard_loader_opts_default(&o);
    o.langs = "l2,l0";
    ShardLoader *l;
    assert_int_equal(shard_loader_open(&l, s, &o), 0);
    assert_true(shard_loader_share(l, 1) == 0);
    for (uint64_t g = 0; g < 500; g++) {
        ShardPos pos;
        shard_loader_locate(l, g, &pos);
        assert_true(pos.lang == 0 || pos.lang == 2);
    }
    shard_loader_close(l);
    o.langs = "l0,xx";
    assert_int_not_equal(shard_loader_open(&l, s, &o), 0);
    assert_non_null(strstr(calm_last_error(), "no language 'xx'"));
    assert_int_equal(shard_store_lang(s, "xx"), -1);
    assert_int_equal(shard_store_lang(s, "l2"), 2);
    o.langs = "l0,l0";
    assert_int_not_equal(shard_loader_open(&l, s, &o), 0);
    o.langs = NULL;
    o.alpha = -1;
    assert_int_not_equal(shard_loader_open(&l, s, &o), 0);
    shard_store_close(s);
    tu_rmtree(dir);
    free(dir);
}

static void test_task_records(void **state) {
    (void)state;
    char *dir = tu_mkdtemp("task");
    ShardBuildOpts bo;
    shard_build_opts_default(&bo);
    bo.seq_len = 16;
    ShardBuilder *b;
    assert_int_equal(shard_builder_open(&b, dir, &bo), 0);
    for (int i = 0; i < 30; i++) {
        char prompt[16], target[16];
        snprintf(prompt, sizeof prompt, "q%03d=", i);
        snprintf(target, sizeof target, "%d", i * 7);
        assert_int_equal(shard_builder_add_task(b, i % 3 ? "kv" : "ar", prompt, strlen(prompt), target, strlen(target)),
                         0);
    }
    assert_int_not_equal(shard_builder_add_text(b, "kv", "doc", 3), 0); /* one kind per store */
    assert_non_null(strstr(calm_last_error(), "one record kind"));
    assert_int_not_equal(shard_builder_add_task(b, "kv", "0123456789", 10, "0123456", 7), 0); /* > seq_len + 1 */
    assert_non_null(strstr(calm_last_error(), "does not fit"));
    assert_int_equal(shard_builder_finish(b), 0);
    shard_builder_free(b);

    ShardStore *s;
    ShardLoader *l;
    open_loader(dir, &s, &l, 0, 0.3, 1);
    assert_int_equal(shard_store_info(s)->kind, SHARD_KIND_TASK);
    enum { B = 5, T = 16 };
    int tok[B * T], tgt[B * T];
    float w[B * T];
    for (int step = 0; step < 12; step++) {
        assert_int_equal(shard_loader_batch(l, step, 0, 1, B, T, tok, tgt, w), 0);
        for (int r = 0; r < B; r++) {
            const int *x = tok + r * T, *y = tgt + r * T;
            const float *m = w + r * T;
            int i = (x[2] - '0') * 100 + (x[3] - '0') * 10 + (x[4] - '0');
            char want[40];
            int np = snprintf(want, sizeof want, "q%03d=", i), nt = snprintf(want + np, sizeof want - np, "%d", i * 7);
            int n = np + nt + 2; /* BOS prompt target EOS */
            assert_int_equal(x[0], TOK_BOS);
            for (int t = 0; t < T; t++) {
                int in_tok = t == 0 ? TOK_BOS : t <= np + nt ? (unsigned char)want[t - 1] : t == n - 1 ? TOK_EOS : TOK_PAD;
                int out_tok = t + 1 < n - 1 ? (unsigned char)want[t] : t + 1 == n - 1 ? TOK_EOS : TOK_PAD;
                float weight = t + 1 > np && t + 1 < n ? 1.0f : 0.0f; /* loss on target bytes and EOS only */
                assert_int_equal(x[t], in_tok);
                assert_int_equal(y[t], out_tok);
                assert_true(m[t] == weight);
            }
        }
    }
    assert_int_equal(shard_store_verify(s, NULL, NULL), 0);
    close_loader(s, l);
    tu_rmtree(dir);
    free(dir);
}

/* A vocabulary past 65535 stores uint32 ids: ids above 65535 come back
 * exactly through records, batches and verify, in lm and in task stores;
 * an id past the vocabulary is refused. */
static void test_uint32_ids(void **state) {
    (void)state;
    char *dir = tu_mkdtemp("u32");
    ShardBuildOpts bo;
    shard_build_opts_default(&bo);
    bo.seq_len = 8;
    bo.vocab_size = 128256; /* Llama-3's */
    ShardBuilder *b;
    assert_int_equal(shard_builder_open(&b, dir, &bo), 0);
    int doc[20];
    for (int i = 0; i < 20; i++) doc[i] = 128255 - 997 * i; /* spans both halves of the uint16 range and past it */
    assert_int_equal(shard_builder_add_ids(b, "xx", doc, 20), 0);
    int bad = 128256;
    assert_int_not_equal(shard_builder_add_ids(b, "xx", &bad, 1), 0);
    assert_non_null(strstr(calm_last_error(), "128256"));
    assert_int_equal(shard_builder_finish(b), 0);
    shard_builder_free(b);

    ShardStore *s;
    ShardLoader *l;
    open_loader(dir, &s, &l, 0, 0.3, 0);
    const ShardInfo *in = shard_store_info(s);
    assert_int_equal(in->token_bytes, 4);
    assert_int_equal(in->vocab_size, 128256);
    /* the stream is BOS doc EOS in records of 9 tokens overlapping by one */
    int stream[22] = {TOK_BOS};
    memcpy(stream + 1, doc, sizeof doc);
    stream[21] = TOK_EOS;
    for (uint64_t j = 0; j < 3; j++) {
        ShardRecord r;
        assert_int_equal(shard_loader_record(l, 0, j, &r), 0);
        assert_int_equal(r.token_bytes, 4);
        assert_null(r.tokens);
        for (uint32_t t = 0; t < r.n; t++) assert_int_equal(shard_record_token(&r, t), stream[8 * j + t]);
    }
    enum { B = 3, T = 8 };
    int tok[B * T], tgt[B * T];
    float w[B * T];
    assert_int_equal(shard_loader_batch(l, 0, 0, 1, B, T, tok, tgt, w), 0);
    for (int r = 0; r < B; r++)
        for (int t = 0; t < T; t++) {
            int at = 8 * r + t; /* sequential order: row r is record r */
            if (at + 1 < 22) {
                assert_int_equal(tok[r * T + t], stream[at]);
                assert_int_equal(tgt[r * T + t], stream[at + 1]);
                assert_true(w[r * T + t] == 1.0f);
            } else {
                assert_true(w[r * T + t] == 0.0f);
            }
        }
    uint64_t n_rec, n_tok;
    assert_int_equal(shard_store_verify(s, &n_rec, &n_tok), 0);
    assert_int_equal(n_rec, 3);
    close_loader(s, l);
    tu_rmtree(dir);
    free(dir);
}

/* This process's mapping of DIR/data.mdb (LMDB maps the file from offset 0). */
static void test_short_T_and_zero_copy(void **state) {
    (void)state;
    int n_docs[2] = {9, 4};
    char *dir = build_synth("shortT", 2, n_docs, TT, 0, 0, NULL);
    ShardStore *s, *s2;
    ShardLoader *l;
    open_loader(dir, &s, &l, 5, 0.3, 1);
    assert_int_equal(shard_store_open(&s2, dir), 0); /* one environment per file per process */
    assert_ptr_equal(s, s2);
    shard_store_close(s2);
    enum { B = 4, T = 8 };
    int tok[B * T], tgt[B * T];
    float w[B * T];
    for (int step = 0; step < 10; step++) {
        assert_int_equal(shard_loader_batch(l, step, 0, 1, B, T, tok, tgt, w), 0);
        for (int r = 0; r < B; r++) {
            int L = row_lang(tok + r * T), *docs = iota(n_docs[L]);
            check_row(tok + r * T, tgt + r * T, w + r * T, T, L, docs, n_docs[L], row_doc(tok + r * T), TT);
            free(docs);
        }
    }
    assert_int_not_equal(shard_loader_batch(l, 0, 0, 1, B, TT + 1, tok, tgt, w), 0);
    assert_non_null(strstr(calm_last_error(), "exceeds the store's seq_len"));
    /* Records are read in place from the map. */
    ShardRecord r;
    size_t len;
    const char *base = map_of(dir, &len);
    assert_int_equal(shard_loader_record(l, 1, 2, &r), 0);
    assert_true((const char *)r.tokens > base && (const char *)r.tokens < base + len);
    assert_null(r.mask);
    close_loader(s, l);
    tu_rmtree(dir);
    free(dir);
}

static void test_600_languages(void **state) {
    (void)state;
    enum { NL = 600, D = 3, T = 8 };
    int n_docs[NL];
    for (int L = 0; L < NL; L++) n_docs[L] = D;
    char *dir = build_synth("ntl", NL, n_docs, T, 0, 0, NULL);
    ShardStore *s;
    ShardLoader *l;
    open_loader(dir, &s, &l, 11, 0.3, 1);
    assert_int_equal(shard_store_info(s)->n_langs, NL);
    assert_int_equal(shard_store_lang(s, "l599"), 599);
    assert_int_equal(shard_store_verify(s, NULL, NULL), 0);
    enum { B = 8, STEPS = 330 };
    int tok[B * T], tgt[B * T], cnt[NL] = {0};
    float w[B * T];
    uint8_t hit[NL][D];
    memset(hit, 0, sizeof hit);
    int docs[D] = {0, 1, 2};
    for (int step = 0; step < STEPS; step++) {
        assert_int_equal(shard_loader_batch(l, step, 0, 1, B, T, tok, tgt, w), 0);
        for (int r = 0; r < B; r++) {
            int L = row_lang(tok + r * T), d = row_doc(tok + r * T);
            assert_true(L < NL && d < D);
            check_row(tok + r * T, tgt + r * T, w + r * T, T, L, docs, D, d, T);
            if (cnt[L]++ < D) { /* epoch 0 of every language: each document once */
                assert_false(hit[L][d]);
                hit[L][d] = 1;
            }
        }
    }
    for (int L = 0; L < NL; L++) assert_true(cnt[L] >= D);
    close_loader(s, l);
    tu_rmtree(dir);
    free(dir);
}

static void test_map_growth(void **state) {
    (void)state;
    int n_docs[3] = {300, 200, 100};
    uint64_t map;
    char *dir = build_synth("grow", 3, n_docs, 64, 0, 65536, &map);
    assert_true(map > 65536);
    ShardStore *s;
    ShardLoader *l;
    open_loader(dir, &s, &l, 2, 0.3, 1);
    uint64_t records;
    assert_int_equal(shard_store_verify(s, &records, NULL), 0);
    assert_int_equal(records, 600);
    enum { B = 16, T = 64 };
    int tok[B * T], tgt[B * T];
    float w[B * T];
    for (int step = 0; step < 20; step++) {
        assert_int_equal(shard_loader_batch(l, step, 0, 1, B, T, tok, tgt, w), 0);
        for (int r = 0; r < B; r++) {
            int L = row_lang(tok + r * T), *docs = iota(n_docs[L]);
            check_row(tok + r * T, tgt + r * T, w + r * T, T, L, docs, n_docs[L], row_doc(tok + r * T), T);
            free(docs);
        }
    }
    close_loader(s, l);
    tu_rmtree(dir);
    free(dir);
}

/* Many readers: threads with a loader each, and another process, read the
 * same store at once and get the same batches as a lone reader. */
typedef struct {
    ShardStore *s;
    const int *want;
    int steps, ok;
} ReaderArg;

enum { RB = 4, RSTEPS = 40 };

static int read_stream(ShardStore *s, int *out) {
    ShardLoader *l;
    ShardLoaderOpts o;
    shard_loader_opts_default(&o);
    o.seed = 77;
    if (shard_loader_open(&l, s, &o)) return -1;
    int rc = 0, tgt[RB * TT];
    for (int step = 0; step < RSTEPS && !rc; step++)
        rc = shard_loader_batch(l, step, 0, 1, RB, TT, out + step * RB * TT, tgt, NULL);
    shard_loader_close(l);
    return rc;
}

static void *reader_thread(void *p) {
    ReaderArg *a = p;
    int *got = malloc(sizeof(int) * RSTEPS * RB * TT);
    a->ok = read_stream(a->s, got) == 0 && memcmp(got, a->want, sizeof(int) * RSTEPS * RB * TT) == 0;
    free(got);
    return NULL;
}

static void test_many_readers(void **state) {
    (void)state;
    int n_docs[3] = {30, 12, 50};
    char *dir = build_synth("readers", 3, n_docs, TT, 0, 0, NULL);
    size_t bytes = sizeof(int) * RSTEPS * RB * TT;
    int *want = malloc(bytes);
    ShardStore *s;
    assert_int_equal(shard_store_open(&s, dir), 0);
    assert_int_equal(read_stream(s, want), 0);
    pid_t child = fork(); /* another process, reading while the threads below do */
    if (child == 0) {
        ShardStore *cs; /* the child opens its own environment, not the parent's */
        int *got = malloc(bytes), ok = shard_store_open(&cs, dir) == 0 && cs != s && read_stream(cs, got) == 0 &&
                                   memcmp(got, want, bytes) == 0;
        _exit(ok ? 0 : 1);
    }
    assert_true(child > 0);
    pthread_t th[4];
    ReaderArg args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (ReaderArg){s, want, RSTEPS, 0};
        assert_int_equal(pthread_create(&th[i], NULL, reader_thread, &args[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_true(args[i].ok);
    }
    int status;
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    shard_store_close(s);
    free(want);
    tu_rmtree(dir);
    free(dir);
}

int main(void) {
    calm_quiet = 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc32c),
        cmocka_unit_test(test_permutation),
        cmocka_unit_test(test_batches_exact),
        cmocka_unit_test(test_sequential_and_seeds),
        cmocka_unit_test(test_replicas_disjoint),
        cmocka_unit_test(test_resume),
        cmocka_unit_test(test_mixing),
        cmocka_unit_test(test_val_split_and_subset),
        cmocka_unit_test(test_task_records),
        cmocka_unit_test(test_short_T_and_zero_copy),
        cmocka_unit_test(test_uint32_ids),
        cmocka_unit_test(test_600_languages),
        cmocka_unit_test(test_map_growth),
        cmocka_unit_test(test_many_readers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
