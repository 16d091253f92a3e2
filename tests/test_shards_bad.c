/* test_shards_bad.c: each bad input the shard store and loader must refuse
 * (version, incomplete or existing stores, empty input, truncation, flipped
 * bytes), on the synthetic stores of shard_synth.h. */
#define _GNU_SOURCE
#include "testutil.h"

#include "shard_synth.h"

/* ---- bad inputs ------------------------------------------------------------- */

static char *data_file(const char *dir) { return calm_path_join(dir, "data.mdb"); }

static void expect_open_error(const char *dir, const char *needle) {
    ShardStore *s;
    assert_int_not_equal(shard_store_open(&s, dir), 0);
    if (!strstr(calm_last_error(), needle)) fprintf(stderr, "error '%s' lacks '%s'\n", calm_last_error(), needle);
    assert_non_null(strstr(calm_last_error(), needle));
}

/* Rewrite one meta key with plain LMDB, as another tool or version would. */
static void put_meta(const char *dir, const char *key, const char *val) {
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    assert_int_equal(mdb_env_create(&env), 0);
    mdb_env_set_maxdbs(env, 4);
    assert_int_equal(mdb_env_open(env, dir, 0, 0644), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "meta", 0, &dbi), 0);
    MDB_val k = {strlen(key), (void *)key}, v = {strlen(val), (void *)val};
    assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
}

static void test_bad_version_and_not_a_store(void **state) {
    (void)state;
    int n_docs[1] = {3};
    char *dir = build_synth("version", 1, n_docs, TT, 0, 0, NULL);
    put_meta(dir, "version", "2");
    expect_open_error(dir, "format version 2");
    put_meta(dir, "magic", "something-else");
    expect_open_error(dir, "not a calm shard store");
    tu_rmtree(dir);
    free(dir);

    dir = tu_mkdtemp("nostore");
    expect_open_error(dir, "no data.mdb");
    MDB_env *env; /* an LMDB environment without calm's databases */
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_open(env, dir, 0, 0644), 0);
    mdb_env_close(env);
    expect_open_error(dir, "not a calm shard store");
    char *missing = calm_path_join(dir, "missing");
    expect_open_error(missing, "No such file");
    free(missing);
    tu_rmtree(dir);
    free(dir);
}

static void test_incomplete_and_existing(void **state) {
    (void)state;
    char *dir = tu_mkdtemp("incomplete");
    ShardBuildOpts o;
    shard_build_opts_default(&o);
    ShardBuilder *b;
    assert_int_equal(shard_builder_open(&b, dir, &o), 0);
    assert_int_equal(shard_builder_add_text(b, "de", "ein Dokument", 12), 0);
    shard_builder_free(b); /* no finish: as if the build crashed */
    expect_open_error(dir, "incomplete");
    assert_int_not_equal(shard_builder_open(&b, dir, &o), 0);
    assert_non_null(strstr(calm_last_error(), "already holds a store"));
    tu_rmtree(dir);
    free(dir);
}

static void test_empty_and_bad_builder_input(void **state) {
    (void)state;
    char *dir = tu_mkdtemp("empty");
    char *out = calm_path_join(dir, "store");
    ShardBuildOpts o;
    shard_build_opts_default(&o);
    ShardBuilder *b;
    assert_int_equal(shard_builder_open(&b, out, &o), 0);
    assert_int_equal(shard_builder_add_text(b, "de", "", 0), 0); /* an empty document is skipped */
    assert_int_not_equal(shard_builder_finish(b), 0);
    assert_non_null(strstr(calm_last_error(), "no documents"));
    shard_builder_discard(b);
    struct stat st;
    assert_int_not_equal(stat(out, &st), 0); /* discard removes what it created */

    assert_int_equal(shard_builder_open(&b, out, &o), 0);
    assert_int_not_equal(shard_builder_add_text(b, "bad code", "x", 1), 0);
    assert_non_null(strstr(calm_last_error(), "bad language code"));
    int ids[2] = {65, TOK_PAD};
    assert_int_not_equal(shard_builder_add_ids(b, "de", ids, 2), 0);
    shard_builder_discard(b);
    o.seq_len = 0;
    assert_int_not_equal(shard_builder_open(&b, out, &o), 0);
    o.seq_len = 16;
    o.val_fraction = 1.0;
    assert_int_not_equal(shard_builder_open(&b, out, &o), 0);
    free(out);
    tu_rmtree(dir);
    free(dir);
}

static void test_truncated_file(void **state) {
    (void)state;
    int n_docs[3] = {50, 40, 30};
    char *dir = build_synth("trunc", 3, n_docs, 64, 0, 0, NULL);
    char *data = data_file(dir);
    struct stat st;
    assert_int_equal(stat(data, &st), 0);
    assert_true(st.st_size > 8 * 4096);
    assert_int_equal(truncate(data, st.st_size / 2), 0);
    expect_open_error(dir, "truncated");
    assert_int_equal(truncate(data, 100), 0);
    expect_open_error(dir, "data.mdb");
    assert_int_equal(truncate(data, 0), 0);
    expect_open_error(dir, "data.mdb");
    free(data);
    tu_rmtree(dir);
    free(dir);
}

/* Flip one byte of a record in the file: reads of that record fail with the
 * key named, and so does verify; other records still read. */
static void test_flipped_byte(void **state) {
    (void)state;
    int n_docs[3] = {5, 8, 6};
    char *dir = build_synth("flip", 3, n_docs, TT, 0, 0, NULL);
    ShardStore *s;
    ShardLoader *l;
    ShardRecord r;
    size_t len;
    open_loader(dir, &s, &l, 0, 0.3, 0);
    assert_int_equal(shard_loader_record(l, 1, 2, &r), 0);
    off_t tok_off = (off_t)((const char *)r.tokens - map_of(dir, &len));
    close_loader(s, l);

    char *data = data_file(dir);
    int fd = open(data, O_RDWR);
    assert_true(fd >= 0);
    uint8_t byte;
    assert_int_equal(pread(fd, &byte, 1, tok_off + 5), 1);
    byte ^= 0x20;
    assert_int_equal(pwrite(fd, &byte, 1, tok_off + 5), 1);
    close(fd);

    open_loader(dir, &s, &l, 0, 0.3, 0);
    assert_int_equal(shard_loader_record(l, 1, 1, &r), 0);
    assert_int_not_equal(shard_loader_record(l, 1, 2, &r), 0);
    assert_non_null(strstr(calm_last_error(), "checksum mismatch"));
    assert_non_null(strstr(calm_last_error(), "key 00000001:00000002"));
    assert_non_null(strstr(calm_last_error(), "'l1' #2"));
    assert_int_not_equal(shard_store_verify(s, NULL, NULL), 0);
    assert_non_null(strstr(calm_last_error(), "key 00000001:00000002"));
    /* The batch that needs the record fails (unshuffled, so it comes soon). */
    int tok[TT], tgt[TT], bad = 0;
    float w[TT];
    for (int g = 0; g < 40 && !bad; g++) bad = shard_loader_batch(l, g, 0, 1, 1, TT, tok, tgt, w) != 0;
    assert_true(bad);
    assert_non_null(strstr(calm_last_error(), "00000001:00000002"));
    close_loader(s, l);

    /* A damaged length field is caught before the checksum. */
    fd = open(data, O_RDWR);
    uint32_t n = 3;
    assert_int_equal(pwrite(fd, &n, 4, tok_off - SHARD_HDR_BYTES + 8), 4);
    close(fd);
    open_loader(dir, &s, &l, 0, 0.3, 0);
    assert_int_not_equal(shard_loader_record(l, 1, 2, &r), 0);
    assert_non_null(strstr(calm_last_error(), "length mismatch"));
    close_loader(s, l);
    free(data);
    tu_rmtree(dir);
    free(dir);
}

static void test_empty_val_split(void **state) {
    (void)state;
    int n_docs[2] = {3, 3};
    char *dir = build_synth("noval", 2, n_docs, TT, 0, 0, NULL);
    ShardStore *s;
    ShardLoader *l;
    assert_int_equal(shard_store_open(&s, dir), 0);
    ShardLoaderOpts o;
    shard_loader_opts_default(&o);
    o.split = SHARD_VAL;
    assert_int_not_equal(shard_loader_open(&l, s, &o), 0);
    assert_non_null(strstr(calm_last_error(), "val split has no samples"));
    shard_store_close(s);
    tu_rmtree(dir);
    free(dir);
}

int main(void) {
    calm_quiet = 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_version_and_not_a_store),
        cmocka_unit_test(test_incomplete_and_existing),
        cmocka_unit_test(test_empty_and_bad_builder_input),
        cmocka_unit_test(test_truncated_file),
        cmocka_unit_test(test_flipped_byte),
        cmocka_unit_test(test_empty_val_split),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
