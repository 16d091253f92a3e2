/* test_shards_cli.c: `calm shard build|info|verify|bench` through cmd_shard:
 * every input format, exit codes (0 ok, 1 failure, 2 usage), and error
 * messages that name the file, line or key. */
#define _GNU_SOURCE
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/commands.h"
#include "src/common.h"
#include "shards/shards.h"
#include "src/files.h"
#include "src/tokenizer.h"

static char last_err[8192]; /* stderr of the last run() */

/* cmd_shard on a space-separated command line (no quoting: test paths have
 * no spaces), with stderr captured into last_err. */
static int run(const char *fmt, ...) CALM_PRINTF(1, 2);
static int run(const char *fmt, ...) {
    char line[4096], *argv[64];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    int argc = 0;
    argv[argc++] = "shard";
    for (char *save, *a = strtok_r(line, " ", &save); a && argc < 63; a = strtok_r(NULL, " ", &save)) argv[argc++] = a;
    argv[argc] = NULL;
    fflush(stderr);
    fflush(stdout);
    int saved = dup(2);
    FILE *cap = tmpfile();
    dup2(fileno(cap), 2);
    int rc = cmd_shard(argc, argv);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    rewind(cap);
    size_t n = fread(last_err, 1, sizeof last_err - 1, cap);
    last_err[n] = 0;
    fclose(cap);
    if (n) fprintf(stderr, "%s", last_err); /* keep it in the test log */
    return rc;
}

static int exists(const char *dir, const char *name) {
    char *p = calm_path_join(dir, name);
    struct stat st;
    int r = stat(p, &st) == 0;
    free(p);
    return r;
}

static void test_usage_errors(void **state) {
    (void)state;
    char *d = tu_mkdtemp("cliusage");
    tu_write_file(d, "in.txt", "a document\n");
    assert_int_equal(run("%s", ""), 2);
    assert_int_equal(run("--help"), 0);
    assert_int_equal(run("frobnicate"), 2);
    const char *cmds[] = {"build", "info", "verify", "bench"};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(run("%s --help", cmds[i]), 0);
        assert_int_equal(run("%s --no-such-flag %s", cmds[i], d), 2);
        assert_non_null(strstr(last_err, "unknown option '--no-such-flag'"));
    }
    const char *bad_build[] = {"", /* no --out */
                               "--out %s/s",
                               "--out %s/s --seq-len abc in.txt",
                               "--out %s/s --seq-len 0 in.txt",
                               "--out %s/s --seq-len -3 in.txt",
                               "--out %s/s --val-fraction 1.5 in.txt",
                               "--out %s/s --val-fraction half in.txt",
                               "--out %s/s --format xml in.txt",
                               "--out %s/s --docs paragraph in.txt",
                               "--out %s/s --map-size 12Q in.txt",
                               "--out %s/s --vocab 100 in.txt",
                               "--out %s/s --quiet=1 in.txt",
                               "--out %s/s --lang de.txt in.txt",
                               "--out %s/s in.txt --seq-len"};
    for (size_t i = 0; i < sizeof bad_build / sizeof *bad_build; i++) {
        char args[512];
        snprintf(args, sizeof args, bad_build[i], d);
        assert_int_equal(run("build %s", args), 2);
    }
    assert_false(exists(d, "s"));
    assert_int_equal(run("info"), 2);
    assert_int_equal(run("info %s %s", d, d), 2);
    assert_int_equal(run("info %s --alpha -1", d), 2);
    assert_int_equal(run("verify"), 2);
    assert_int_equal(run("bench %s --batch 0", d), 2);
    assert_int_equal(run("bench %s --split test", d), 2);
    assert_int_equal(run("bench %s --alpha -0.5", d), 2);
    assert_int_equal(run("bench %s --seconds 0", d), 2);
    tu_rmtree(d);
    free(d);
}

static void open_store(const char *dir, const char *name, ShardStore **s) {
    char *p = calm_path_join(dir, name);
    int rc = shard_store_open(s, p);
    if (rc) fprintf(stderr, "%s\n", calm_last_error());
    assert_int_equal(rc, 0);
    free(p);
}

static void test_build_text(void **state) {
    (void)state;
    char *d = tu_mkdtemp("clitext");
    tu_write_file(d, "a.txt", "first document\r\nsecond one\n\nthird\n");
    tu_write_file(d, "b.txt", "whole file\nas one document\n");
    assert_int_equal(run("build --out %s/lines --lang de --seq-len 8 --quiet %s/a.txt", d, d), 0);
    ShardStore *s;
    open_store(d, "lines", &s);
    const ShardInfo *in = shard_store_info(s);
    assert_int_equal(in->kind, SHARD_KIND_LM);
    assert_int_equal(in->seq_len, 8);
    assert_int_equal(in->n_langs, 1);
    assert_string_equal(in->langs[0].code, "de");
    assert_int_equal(in->langs[0].docs[SHARD_TRAIN], 3);
    assert_int_equal(in->langs[0].tokens[SHARD_TRAIN], 16 + 12 + 7); /* BOS bytes EOS each, CR stripped */
    assert_non_null(strstr(in->created_by, "calm shard build --out"));
    shard_store_close(s);
    char dir[512];
    snprintf(dir, sizeof dir, "%s/lines", d);
    assert_int_equal(run("info %s", dir), 0);
    assert_int_equal(run("info %s --json --alpha 1", dir), 0);
    assert_int_equal(run("verify %s", dir), 0);
    assert_int_equal(run("bench %s --seconds 0.02 --batch 3", dir), 0);
    assert_int_equal(run("bench %s --seconds 0.02 --seq-len 9", dir), 2); /* T > the store's seq_len */
    assert_int_equal(run("bench %s --seconds 0.02 --lang xx", dir), 1);
    assert_non_null(strstr(last_err, "no language 'xx'"));
    assert_int_equal(run("bench %s --seconds 0.02 --split val", dir), 1);

    assert_int_equal(run("build --out %s/files --docs file --format text --quiet %s/a.txt %s/b.txt", d, d, d), 0);
    open_store(d, "files", &s);
    in = shard_store_info(s);
    assert_string_equal(in->langs[0].code, "und");
    assert_int_equal(in->langs[0].docs[SHARD_TRAIN], 2);
    assert_int_equal(in->langs[0].tokens[SHARD_TRAIN], (34 + 2) + (27 + 2)); /* whole files, newlines kept */
    shard_store_close(s);
    assert_int_equal(run("build --out %s/files --quiet %s/a.txt", d, d), 1); /* never over an existing store */
    assert_non_null(strstr(last_err, "already holds a store"));
    tu_rmtree(d);
    free(d);
}

static void test_build_jsonl_and_dir(void **state) {
    (void)state;
    char *d = tu_mkdtemp("clijsonl");
    tu_write_file(d, "mix.jsonl",
               "{\"text\": \"guten Tag\", \"lang\": \"de\"}\n"
               "\n"
               "{\"text\": \"bonjour\", \"lang\": \"fr\"}\n"
               "{\"text\": \"no language given\"}\n"
               "{\"text\": \"hallo\", \"lang\": \"de\"}\n");
    assert_int_equal(run("build --out %s/mix --lang en --quiet %s/mix.jsonl", d, d), 0);
    ShardStore *s;
    open_store(d, "mix", &s);
    const ShardInfo *in = shard_store_info(s);
    assert_int_equal(in->n_langs, 3);
    assert_int_equal(shard_store_lang(s, "de"), 0); /* ids in order of first appearance */
    assert_int_equal(shard_store_lang(s, "fr"), 1);
    assert_int_equal(shard_store_lang(s, "en"), 2);
    assert_int_equal(in->langs[0].docs[SHARD_TRAIN], 2);
    shard_store_close(s);

    /* Task examples: the loss falls on the target only. */
    tu_write_file(d, "task.jsonl", "{\"prompt\": \"2+2=\", \"target\": \"4\"}\n{\"prompt\": \"k=v;k?\", \"target\": \"v\", \"lang\": \"kv\"}\n");
    assert_int_equal(run("build --out %s/task --seq-len 16 --quiet %s/task.jsonl", d, d), 0);
    open_store(d, "task", &s);
    assert_int_equal(shard_store_info(s)->kind, SHARD_KIND_TASK);
    ShardLoader *l;
    ShardLoaderOpts o;
    shard_loader_opts_default(&o);
    o.langs = "und";
    assert_int_equal(shard_loader_open(&l, s, &o), 0);
    int tok[16], tgt[16];
    float w[16];
    assert_int_equal(shard_loader_batch(l, 0, 0, 1, 1, 16, tok, tgt, w), 0);
    int want_tok[] = {TOK_BOS, '2', '+', '2', '=', '4', TOK_EOS};
    for (int t = 0; t < 16; t++) {
        assert_int_equal(tok[t], t < 7 ? want_tok[t] : TOK_PAD);
        assert_int_equal(tgt[t], t < 6 ? want_tok[t + 1] : TOK_PAD);
        assert_true(w[t] == (t == 4 || t == 5 ? 1.0f : 0.0f)); /* predicting '4' and EOS */
    }
    shard_loader_close(l);
    shard_store_close(s);

    /* A directory of per-language files, with a held-out split. */
    char *corpus = calm_path_join(d, "corpus");
    assert_int_equal(calm_mkdirs(corpus), 0);
    tu_write_file(corpus, "sw.txt", "a\nb\nc\nd\n");
    tu_write_file(corpus, "de.txt", "eins\nzwei\ndrei\nvier\nfuenf\nsechs\n");
    tu_write_file(corpus, "fr.jsonl", "{\"text\": \"un\"}\n{\"text\": \"deux\"}\n");
    tu_write_file(corpus, ".hidden", "ignored\n");
    char *sub = calm_path_join(corpus, "nested");
    assert_int_equal(calm_mkdirs(sub), 0);
    assert_int_equal(run("build --out %s/langs --val-fraction 0.5 --quiet %s", d, corpus), 0);
    open_store(d, "langs", &s);
    in = shard_store_info(s);
    assert_int_equal(in->n_langs, 3);
    assert_string_equal(in->langs[0].code, "de"); /* file name order */
    assert_string_equal(in->langs[1].code, "fr");
    assert_string_equal(in->langs[2].code, "sw");
    assert_int_equal(in->langs[0].docs[SHARD_TRAIN], 3);
    assert_int_equal(in->langs[0].docs[SHARD_VAL], 3);
    assert_int_equal(in->langs[2].docs[SHARD_VAL], 2);
    shard_store_close(s);
    char dir[512];
    snprintf(dir, sizeof dir, "%s/langs", d);
    assert_int_equal(run("verify %s", dir), 0);
    assert_int_equal(run("bench %s --seconds 0.02 --split val --lang de,sw", dir), 0);
    free(sub);
    free(corpus);
    tu_rmtree(d);
    free(d);
}

static void test_build_errors(void **state) {
    (void)state;
    char *d = tu_mkdtemp("clierr");
    tu_write_file(d, "empty.txt", "");
    tu_write_file(d, "blank.txt", "\n\n\r\n");
    tu_write_file(d, "bad.jsonl", "{\"text\": \"fine\"}\n{\"text\": 3}\n");
    tu_write_file(d, "broken.jsonl", "{\"text\": \"fine\"}\n{\"text\": \"unterminated}\n");
    tu_write_file(d, "mixed.jsonl", "{\"text\": \"doc\"}\n{\"prompt\": \"p\", \"target\": \"t\"}\n");
    tu_write_file(d, "long.jsonl", "{\"prompt\": \"0123456789\", \"target\": \"0123456789\"}\n");
    assert_int_equal(run("build --out %s/s %s/empty.txt", d, d), 1);
    assert_non_null(strstr(last_err, "empty.txt: no documents (empty input)"));
    assert_false(exists(d, "s")); /* a failed build leaves nothing behind */
    assert_int_equal(run("build --out %s/s %s/blank.txt", d, d), 1);
    assert_non_null(strstr(last_err, "no documents"));
    assert_int_equal(run("build --out %s/s %s/missing.txt", d, d), 1);
    assert_non_null(strstr(last_err, "missing.txt"));
    assert_false(exists(d, "s"));
    assert_int_equal(run("build --out %s/s %s/bad.jsonl", d, d), 1);
    assert_non_null(strstr(last_err, "bad.jsonl:2:"));
    assert_int_equal(run("build --out %s/s %s/broken.jsonl", d, d), 1);
    assert_non_null(strstr(last_err, "broken.jsonl:2: invalid JSON"));
    assert_int_equal(run("build --out %s/s %s/mixed.jsonl", d, d), 1);
    assert_non_null(strstr(last_err, "mixed.jsonl:2:"));
    assert_int_equal(run("build --out %s/s --seq-len 8 %s/long.jsonl", d, d), 1);
    assert_non_null(strstr(last_err, "long.jsonl:1:"));
    assert_int_equal(run("build --out %s/s --lang x/y %s/blank.txt", d, d), 2);
    assert_non_null(strstr(last_err, "--lang 'x/y'"));
    char *corpus = calm_path_join(d, "corpus");
    assert_int_equal(calm_mkdirs(corpus), 0);
    tu_write_file(corpus, "b@d.txt", "text\n");
    assert_int_equal(run("build --out %s/s %s", d, corpus), 1);
    assert_non_null(strstr(last_err, "bad language code 'b@d'"));
    assert_false(exists(d, "s"));
    assert_int_equal(run("info %s/nowhere", d), 1);
    assert_int_equal(run("verify %s", d), 1);
    assert_non_null(strstr(last_err, "no data.mdb"));
    free(corpus);
    tu_rmtree(d);
    free(d);
}

/* verify finds a flipped byte, names the key and exits 1. */
static void test_verify_flipped_byte(void **state) {
    (void)state;
    char *d = tu_mkdtemp("cliflip");
    tu_write_file(d, "de.txt", "some words before the marker\nand a ZQXJMARKER in this document\nafter\n");
    assert_int_equal(run("build --out %s/s --lang de --seq-len 16 --quiet %s/de.txt", d, d), 0);
    char path[512];
    snprintf(path, sizeof path, "%s/s/data.mdb", d);
    char *data;
    size_t len;
    assert_int_equal(calm_read_file(path, &data, &len), 0);
    const char pat[] = {'Z', 0, 'Q', 0, 'X', 0, 'J', 0}; /* uint16 little-endian tokens */
    char *hit = memmem(data, len, pat, sizeof pat);
    assert_non_null(hit);
    FILE *f = fopen(path, "r+b");
    fseek(f, hit - data + 2, SEEK_SET);
    fputc('R', f);
    fclose(f);
    free(data);
    snprintf(path, sizeof path, "%s/s", d);
    assert_int_equal(run("verify %s", path), 1);
    assert_non_null(strstr(last_err, "checksum mismatch"));
    assert_non_null(strstr(last_err, "train record 'de' #"));
    assert_non_null(strstr(last_err, "(key 00000000:0000000"));
    tu_rmtree(d);
    free(d);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_usage_errors),
        cmocka_unit_test(test_build_text),
        cmocka_unit_test(test_build_jsonl_and_dir),
        cmocka_unit_test(test_build_errors),
        cmocka_unit_test(test_verify_flipped_byte),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
