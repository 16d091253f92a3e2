/* test_safetensors.c: the safetensors reader and writer.
 * Round trips must be byte-exact; half-precision files are written by hand
 * with known bit patterns; every malformed file must fail with -1 and a
 * message naming the file and the problem, never crash (run under ASan). */
#define _GNU_SOURCE
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "src/common.h"
#include "src/files.h"
#include "src/safetensors.h"
#include "testutil.h"

/* Write [u64 hlen][header][data] to dir/name; returns the malloc'd path.
 * hlen is normally strlen(header); tests pass other values to lie. */
static char *write_raw_len(const char *dir, const char *name, const char *header, uint64_t hlen, const void *data,
                           size_t dlen) {
    char *path = calm_path_join(dir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    uint8_t lb[8];
    for (int i = 0; i < 8; i++) lb[i] = (uint8_t)(hlen >> (8 * i));
    assert_int_equal(fwrite(lb, 1, 8, f), 8);
    size_t n = strlen(header);
    assert_int_equal(fwrite(header, 1, n, f), n);
    if (dlen) assert_int_equal(fwrite(data, 1, dlen, f), dlen);
    assert_int_equal(fclose(f), 0);
    return path;
}

static char *write_raw(const char *dir, const char *name, const char *header, const void *data, size_t dlen) {
    return write_raw_len(dir, name, header, strlen(header), data, dlen);
}

/* st_open must fail, leave f empty, and explain itself naming the file. */
static void expect_open_error(const char *path, const char *phrase) {
    StFile f;
    assert_int_equal(st_open(&f, path), -1);
    assert_null(f.map);
    assert_null(f.tensors);
    assert_error_contains(path);
    assert_error_contains(phrase);
}

static int count_tmp_files(const char *dir) {
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        if (strstr(e->d_name, ".tmp.")) n++;
    closedir(d);
    return n;
}

/* ---- round trip ---- */

static void test_round_trip(void **state) {
    const char *dir = *state;
    float a[5], b[12], c[12], scalar = 3.25f;
    tu_randn(a, 5, 1, 1.0f);
    tu_randn(b, 12, 2, 1.0f);
    tu_randn(c, 12, 3, 100.0f);
    /* values a lossy path would alter: -0, NaN with payload, a subnormal */
    uint32_t nan_bits = 0x7fc01234u, sub_bits = 0x00000007u;
    b[0] = -0.0f;
    memcpy(&b[1], &nan_bits, 4);
    memcpy(&b[2], &sub_bits, 4);
    StWriteTensor ts[] = {
        {.name = "one_d", .data = a, .ndim = 1, .shape = {5}},
        {.name = "two_d", .data = b, .ndim = 2, .shape = {3, 4}},
        {.name = "model.layers.0.three_d", .data = c, .ndim = 3, .shape = {2, 3, 2}},
        {.name = "scalar", .data = &scalar, .ndim = 0},
        {.name = "empty", .data = NULL, .ndim = 2, .shape = {0, 7}},
    };
    const char *keys[] = {"format", "step", "quoted"};
    const char *values[] = {"pt", "42", "a \"b\"\n\\c"};
    char *path = calm_path_join(dir, "rt.safetensors");
    assert_int_equal(st_write_f32(path, ts, 5, keys, values, 3), 0);
    assert_int_equal(count_tmp_files(dir), 0);

    StFile f;
    assert_int_equal(st_open(&f, path), 0);
    assert_int_equal(f.n_tensors, 5);
    assert_int_equal(f.data_start % 64, 0);
    assert_int_equal(f.size, f.data_start + (5 + 12 + 12 + 1) * sizeof(float));
    assert_int_equal(f.n_meta, 3);
    for (int i = 0; i < 3; i++) assert_string_equal(st_meta(&f, keys[i]), values[i]);
    assert_null(st_meta(&f, "absent"));

    float out[12];
    for (int i = 0; i < 5; i++) {
        const StTensor *t = st_find(&f, ts[i].name);
        assert_non_null(t);
        assert_int_equal(t->dtype, ST_F32);
        assert_int_equal(t->ndim, ts[i].ndim);
        size_t numel = 1;
        for (int d = 0; d < t->ndim; d++) {
            assert_int_equal(t->shape[d], ts[i].shape[d]);
            numel *= (size_t)ts[i].shape[d];
        }
        assert_int_equal(t->end - t->begin, numel * sizeof(float));
        memset(out, 0xAB, sizeof out);
        assert_int_equal(st_read_f32(&f, ts[i].name, ts[i].shape, ts[i].ndim, out), 0);
        if (numel) assert_memory_equal(out, ts[i].data, numel * sizeof(float));
    }
    st_close(&f);
    assert_null(f.map);

    /* Overwriting an existing file goes through a fresh temp file too. */
    StWriteTensor small = {.name = "x", .data = a, .ndim = 1, .shape = {2}};
    assert_int_equal(st_write_f32(path, &small, 1, NULL, NULL, 0), 0);
    assert_int_equal(st_open(&f, path), 0);
    assert_int_equal(f.n_tensors, 1);
    assert_int_equal(f.n_meta, 0);
    assert_null(st_find(&f, "one_d"));
    st_close(&f);
    assert_int_equal(count_tmp_files(dir), 0);
    free(path);
}

/* ---- half precision, written by hand ---- */

static void test_f16(void **state) {
    /* A one-byte U8 tensor first puts the F16 data at an odd address. */
    static const uint16_t h[] = {
        0x3C00, /* 1 */
        0xC000, /* -2 */
        0x3555, /* 0.333251953125 */
        0x7BFF, /* 65504, largest finite */
        0x0001, /* 2^-24, smallest subnormal */
        0x03FF, /* 1023 * 2^-24, largest subnormal */
        0x8200, /* -2^-15, negative subnormal */
        0x0400, /* 2^-14, smallest normal */
        0x8000, /* -0 */
        0x7C00, /* inf */
        0xFC00, /* -inf */
        0x7E00, /* NaN */
    };
    const float want[] = {1.0f,     -2.0f, 0.333251953125f, 65504.0f, 0x1p-24f, 1023 * 0x1p-24f,
                          -0x1p-15f, 0x1p-14f, -0.0f,         INFINITY, -INFINITY, NAN};
    enum { N = sizeof h / sizeof h[0] };
    uint8_t data[1 + 2 * N];
    data[0] = 7;
    memcpy(data + 1, h, sizeof h); /* host is little-endian, as the format */
    char header[256];
    snprintf(header, sizeof header,
             "{\"pad\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
             "\"h\":{\"dtype\":\"F16\",\"shape\":[%d],\"data_offsets\":[1,%d]}}",
             N, 1 + 2 * N);
    char *path = write_raw(*state, "f16.safetensors", header, data, sizeof data);
    StFile f;
    assert_int_equal(st_open(&f, path), 0);
    float out[N];
    int64_t shape[1] = {N};
    assert_int_equal(st_read_f32(&f, "h", shape, 1, out), 0);
    for (int i = 0; i < N; i++) {
        if (isnan(want[i])) {
            assert_true(isnan(out[i]));
        } else {
            if (out[i] != want[i]) fail_msg("F16 0x%04x: got %a, want %a", h[i], (double)out[i], (double)want[i]);
            assert_int_equal(!!signbit(out[i]), !!signbit(want[i]));
        }
    }
    st_close(&f);
    free(path);
}

static void test_bf16_f64(void **state) {
    static const uint16_t h[] = {0x3F80, 0xC040, 0x4049, 0x0001, 0x8000, 0x7F80, 0xFF80, 0x7FC0};
    const float want_h[] = {1.0f, -3.0f, 3.140625f, 0x1p-133f, -0.0f, INFINITY, -INFINITY, NAN};
    static const double d[] = {1.5, -0.25, 1e300, 0.1};
    const float want_d[] = {1.5f, -0.25f, INFINITY, 0.1f};
    /* data: 3 pad bytes, 8 BF16, 4 F64 (unaligned: offset 19) */
    uint8_t data[3 + sizeof h + sizeof d] = {0};
    memcpy(data + 3, h, sizeof h);
    memcpy(data + 3 + sizeof h, d, sizeof d);
    char header[256];
    snprintf(header, sizeof header,
             "{\"b\":{\"dtype\":\"BF16\",\"shape\":[2,4],\"data_offsets\":[3,%zu]},"
             "\"d\":{\"dtype\":\"F64\",\"shape\":[4],\"data_offsets\":[%zu,%zu]}}",
             3 + sizeof h, 3 + sizeof h, sizeof data);
    char *path = write_raw(*state, "bf16.safetensors", header, data, sizeof data);
    StFile f;
    assert_int_equal(st_open(&f, path), 0);
    float out[8];
    int64_t sb[2] = {2, 4}, sd[1] = {4};
    assert_int_equal(st_read_f32(&f, "b", sb, 2, out), 0);
    for (int i = 0; i < 8; i++) {
        if (isnan(want_h[i])) assert_true(isnan(out[i]));
        else if (out[i] != want_h[i] || signbit(out[i]) != signbit(want_h[i]))
            fail_msg("BF16 0x%04x: got %a, want %a", h[i], (double)out[i], (double)want_h[i]);
    }
    assert_int_equal(st_read_f32(&f, "d", sd, 1, out), 0);
    for (int i = 0; i < 4; i++)
        if (out[i] != want_d[i]) fail_msg("F64 %g: got %a, want %a", d[i], (double)out[i], (double)want_d[i]);
    st_close(&f);
    free(path);
}

/* ---- malformed files ---- */

static const char good_header[] = "{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
static const float good_data[2] = {1, 2};

static void test_empty_file(void **state) {
    char *path = write_raw(*state, "x", "", NULL, 0);
    assert_int_equal(truncate(path, 0), 0);
    expect_open_error(path, "too small");
    assert_int_equal(truncate(path, 5), 0);
    expect_open_error(path, "too small");
    free(path);
    char *missing = calm_path_join(*state, "does-not-exist.safetensors");
    expect_open_error(missing, "cannot open");
    free(missing);
}

static void test_truncated_in_data(void **state) {
    const char *dir = *state;
    float x[100];
    tu_randn(x, 100, 5, 1.0f);
    StWriteTensor t = {.name = "model.norm.weight", .data = x, .ndim = 1, .shape = {100}};
    char *path = calm_path_join(dir, "cut.safetensors");
    assert_int_equal(st_write_f32(path, &t, 1, NULL, NULL, 0), 0);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(truncate(path, sb.st_size - 10), 0);
    expect_open_error(path, "tensor model.norm.weight: data_offsets [0, 400] past end of data (390 bytes");
    free(path);
}

static void test_header_past_end(void **state) {
    char *path = write_raw_len(*state, "x", good_header, 1000, good_data, sizeof good_data);
    char want[128];
    snprintf(want, sizeof want, "header length 1000 past end of file (size %zu)",
             8 + strlen(good_header) + sizeof good_data);
    expect_open_error(path, want);
    free(path);
    /* a length so large that 8 + N would overflow */
    path = write_raw_len(*state, "y", good_header, UINT64_MAX - 3, good_data, sizeof good_data);
    expect_open_error(path, "past end of file");
    free(path);
}

static void test_bad_json(void **state) {
    const char *bad[] = {
        "{\"t\":{\"dtype\":\"F32\",\"shape\":[2],",                           /* cut short */
        "{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}} x", /* trailing junk */
        "[1, 2]",                                                             /* not an object */
        "",                                                                   /* empty header */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *path = write_raw(*state, "bad.safetensors", bad[i], good_data, sizeof good_data);
        expect_open_error(path, "bad header JSON");
        free(path);
    }
    /* Trailing spaces are the spec's padding and must be accepted. */
    char padded[256];
    snprintf(padded, sizeof padded, "%s      ", good_header);
    char *path = write_raw(*state, "ok.safetensors", padded, good_data, sizeof good_data);
    StFile f;
    assert_int_equal(st_open(&f, path), 0);
    st_close(&f);
    free(path);
}

/* One header entry per case, each with the phrase its error must carry. */
static void test_bad_entries(void **state) {
    static const struct {
        const char *header, *phrase;
    } cases[] = {
        {"{\"w\":{\"dtype\":\"F8\",\"shape\":[2],\"data_offsets\":[0,8]}}", "tensor w: unknown dtype \"F8\""},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", "past end of data (8 bytes"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}",
         "tensor w: data_offsets span 8 bytes but shape [3] x F32 needs 12"},
        {"{\"w\":{\"dtype\":\"F16\",\"shape\":[2,2],\"data_offsets\":[0,4]}}",
         "data_offsets span 4 bytes but shape [2, 2] x F16 needs 8"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", "end before they begin"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", "non-negative integers"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,8]}}", "non-negative integers"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,2],\"data_offsets\":[0,8]}}", "9 dimensions"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}", "data_offsets must be"},
        {"{\"w\":{\"shape\":[2],\"data_offsets\":[0,8]}}", "dtype missing"},
        {"{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", "shape missing"},
        {"{\"w\":[1]}", "not a JSON object"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],\"data_offsets\":[0,8]}}",
         "too large"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
         "tensor w appears twice"},
        {"{\"__metadata__\":{\"step\":3}}", "not a string"},
        {"{\"__metadata__\":[\"x\"]}", "__metadata__ is not a JSON object"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *path = write_raw(*state, "e.safetensors", cases[i].header, good_data, sizeof good_data);
        expect_open_error(path, cases[i].phrase);
        free(path);
    }
}

static void test_read_errors(void **state) {
    int32_t ints[3] = {1, 2, 3};
    char *path = write_raw(*state, "model.safetensors",
                           "{\"model.layers.0.self_attn.q_proj.weight\":"
                           "{\"dtype\":\"F32\",\"shape\":[1,3],\"data_offsets\":[0,12]},"
                           "\"ids\":{\"dtype\":\"I32\",\"shape\":[3],\"data_offsets\":[0,12]}}",
                           ints, sizeof ints);
    StFile f;
    assert_int_equal(st_open(&f, path), 0);
    float out[3] = {9, 9, 9};

    int64_t wrong[2] = {3, 1};
    assert_int_equal(st_read_f32(&f, "model.layers.0.self_attn.q_proj.weight", wrong, 2, out), -1);
    char want[256];
    snprintf(want, sizeof want, "%s: tensor model.layers.0.self_attn.q_proj.weight has shape [1, 3], expected [3, 1]",
             path);
    assert_error_contains(want);
    int64_t flat[1] = {3};
    assert_int_equal(st_read_f32(&f, "model.layers.0.self_attn.q_proj.weight", flat, 1, out), -1);
    assert_error_contains("has shape [1, 3], expected [3]");
    assert_true(out[0] == 9 && out[1] == 9 && out[2] == 9); /* untouched */

    assert_int_equal(st_read_f32(&f, "ids", flat, 1, out), -1);
    assert_error_contains("tensor ids has integer dtype I32");

    assert_int_equal(st_read_f32(&f, "lm_head.weight", flat, 1, out), -1);
    snprintf(want, sizeof want, "%s: tensor lm_head.weight not found", path);
    assert_error_contains(want);
    st_close(&f);
    free(path);
}

/* ---- writer failures ---- */

static void test_write_failures(void **state) {
    const char *dir = *state;
    float x[4] = {1, 2, 3, 4};
    StWriteTensor t = {.name = "x", .data = x, .ndim = 1, .shape = {4}};

    char *nodir = calm_path_join(dir, "no/such/dir/m.safetensors");
    assert_int_equal(st_write_f32(nodir, &t, 1, NULL, NULL, 0), -1);
    assert_error_contains(nodir);
    free(nodir);

    /* A good file survives a write that fails. */
    char *path = calm_path_join(dir, "keep.safetensors");
    assert_int_equal(st_write_f32(path, &t, 1, NULL, NULL, 0), 0);
    StWriteTensor dup[2] = {t, t};
    assert_int_equal(st_write_f32(path, dup, 2, NULL, NULL, 0), -1);
    assert_error_contains("tensor x given twice");
    StWriteTensor neg = {.name = "y", .data = x, .ndim = 2, .shape = {2, -2}};
    assert_int_equal(st_write_f32(path, &neg, 1, NULL, NULL, 0), -1);
    assert_error_contains("negative dimension");
    StWriteTensor reserved = {.name = "__metadata__", .data = x, .ndim = 1, .shape = {1}};
    assert_int_equal(st_write_f32(path, &reserved, 1, NULL, NULL, 0), -1);
    StFile f;
    assert_int_equal(st_open(&f, path), 0);
    float out[4];
    assert_int_equal(st_read_f32(&f, "x", t.shape, 1, out), 0);
    assert_memory_equal(out, x, sizeof x);
    st_close(&f);

    /* Failing at the very end: rename onto a non-empty directory. The temp
     * file must be cleaned up and the error must name the target. */
    char *target = calm_path_join(dir, "occupied");
    char *inside = calm_path_join(target, "file");
    assert_int_equal(calm_mkdirs(target), 0);
    FILE *fp = fopen(inside, "w");
    assert_non_null(fp);
    fclose(fp);
    assert_int_equal(st_write_f32(target, &t, 1, NULL, NULL, 0), -1);
    assert_error_contains(target);
    assert_int_equal(count_tmp_files(dir), 0);
    free(inside);
    free(target);
    free(path);
}

int main(void) {
    calm_quiet = 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip, tu_setup_tmpdir, tu_teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_f16, tu_setup_tmpdir, tu_teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_bf16_f64, tu_setup_tmpdir, tu_teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_empty_file, tu_setup_tmpdir, tu_teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_truncated_in_data, tu_setup_tmpdir, tu_teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_header_past_end, tu_setup_tmpdir, tu_teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_bad_json, tu_setup_tmpdir, tu_teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_bad_entries, tu_setup_tmpdir, tu_teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_read_errors, tu_setup_tmpdir, tu_teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_write_failures, tu_setup_tmpdir, tu_teardown_tmpdir),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
