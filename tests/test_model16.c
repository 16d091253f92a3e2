/* test_model16.c: frozen models with 16-bit weights against the F32 path,
 * the conversions under them, sharded checkpoints loaded by part, and the
 * random-model writer (calm init).
 *
 * The model has everything a Llama 3 checkpoint may bring: head_dim 16 !=
 * C/NH = 12, grouped KV heads, attention biases, llama3 rope_scaling (with
 * original_max_position_embeddings 16 < T, so the scaled frequencies are
 * used), tied or untied embeddings. Its weights are rounded to the 16-bit
 * dtype first, so the F32 model and the frozen 16-bit one hold the same
 * values and differ only in how the products get them: the frozen path
 * widens panels of rows and calls the same sgemm. Tolerance: |got - ref| <=
 * 1e-5 max|ref| + 1e-4 |ref| (both compute in F32; the panels split the
 * output columns, not the sums, so in practice they agree to a few ulps). */
#include <cjson/cJSON.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "src/common.h"
#include "src/files.h"
#include "src/model.h"
#include "src/modeldir.h"
#include "src/safetensors.h"
#include "src/wmat.h"
#include "testutil.h"

enum { B = 2, T = 24, N = B * T };
#define ATOL_K 1e-5
#define RTOL 1e-4

static ModelConfig config16(int tied) {
    ModelConfig c;
    model_config_sized(&c, 48, 3, 4, 2, 80, 300, 64);
    c.head_dim = 16;
    c.attention_bias = 1;
    c.rope_llama3 = 1;
    c.rope_factor = 8.0f;
    c.rope_low_freq_factor = 1.0f;
    c.rope_high_freq_factor = 4.0f;
    c.rope_original_max_pos = 16;
    c.rope_theta = 500000.0f;
    c.tie_embeddings = tied;
    return c;
}

static void make_tokens(int *tok, int *tgt) {
    for (int i = 0; i < N; i++) {
        tok[i] = (int)((i * 37u + 11u) % 300u);
        tgt[i] = (int)((i * 53u + 7u) % 300u);
    }
}

/* An F32 model with weights of N(0, 0.3), norms 1 + N(0, 0.1), biases N(0,
 * 0.3), rounded to d so that d holds them exactly. */
static void make_f32(Model *m, const ModelConfig *c, WmDtype d) {
    assert_int_equal(model_init(m, c), 0);
    tu_randn(m->params_memory, m->num_params, 42, 0.3f);
    for (int k = 0; k < m->n_param_tensors; k++) {
        const ParamInfo *p = &m->param_info[k];
        float *x = m->params_memory + p->offset;
        if (strstr(p->name, "norm"))
            for (size_t i = 0; i < p->numel; i++) x[i] = 1.0f + x[i] / 3.0f;
    }
    uint16_t *h = xmalloc(m->num_params * sizeof(uint16_t));
    wm_from_f32(h, m->params_memory, d, m->num_params);
    wm_to_f32(m->params_memory, h, d, m->num_params);
    free(h);
}

/* m's tensors in dtype d, as transformers saves a 16-bit model. */
static void save16(const Model *m, const char *dir, WmDtype d) {
    int n;
    const ParamInfo *pi = model_param_table(m, &n);
    StSpec *specs = xcalloc((size_t)n, sizeof *specs);
    for (int k = 0; k < n; k++)
        specs[k] = (StSpec){pi[k].name, d == WM_BF16 ? ST_BF16 : ST_F16, pi[k].ndim, {pi[k].shape[0], pi[k].shape[1]}};
    char *path = calm_path_join(dir, CALM_WEIGHTS_FILE);
    StStream s;
    assert_int_equal(st_stream_open(&s, path, specs, n, NULL, NULL, 0), 0);
    uint16_t *h = xmalloc(m->num_params * sizeof(uint16_t));
    for (int k = 0; k < n; k++) {
        wm_from_f32(h, m->params_memory + pi[k].offset, d, pi[k].numel);
        assert_int_equal(st_stream_write(&s, h, pi[k].numel * 2), 0);
    }
    assert_int_equal(st_stream_close(&s), 0);
    char *cpath = calm_path_join(dir, CALM_CONFIG_FILE);
    assert_int_equal(model_config_save_dtype(&m->cfg, cpath, "bfloat16"), 0);
    free(cpath);
    free(h);
    free(path);
    free(specs);
}

static void assert_close(const char *what, const float *got, const float *ref, size_t n) {
    double ratio = tu_close_ratio(got, ref, n, ATOL_K * tu_max_abs(ref, n), RTOL);
    if (!(ratio <= 1.0)) fail_msg("%s: ratio %g > 1", what, ratio);
}

/* Logits, loss, input gradient and KV-cache decoding of the frozen 16-bit
 * model against the F32 model; the frozen model owns only norms and biases. */
static void check_frozen(const char *dir, WmDtype d, int tied) {
    ModelConfig c = config16(tied);
    Model f, z;
    make_f32(&f, &c, d);
    save16(&f, dir, d);
    assert_int_equal(model_load_dir_frozen(&z, dir), 0);
    assert_true(z.frozen);
    size_t vectors = 0;
    for (int k = 0; k < z.n_param_tensors; k++) {
        const ParamInfo *p = &z.param_info[k];
        if (p->ndim == 1) vectors += p->numel;
        else assert_true(p->mapped && p->dtype == d && p->data);
    }
    assert_int_equal(z.num_params, vectors); /* no F32 copy of any matrix */
    assert_int_equal(model_param_count(&z), f.num_params);

    int tok[N], tgt[N];
    make_tokens(tok, tgt);
    float lf = model_forward(&f, tok, tgt, NULL, B, T, NULL, NULL);
    float lz = model_forward(&z, tok, tgt, NULL, B, T, NULL, NULL);
    assert_true(fabsf(lf - lz) <= 1e-5f * fabsf(lf));
    const size_t NV = (size_t)N * c.vocab_size, NC = (size_t)N * c.dim;
    assert_close("logits", z.acts.logits, f.acts.logits, NV);
    model_backward(&f, tgt, NULL, GRAD_INPUT, 0, NULL, NULL);
    model_backward(&z, tgt, NULL, GRAD_INPUT, 0, NULL, NULL);
    assert_true(tu_max_abs(f.acts.dresid, NC) > 0);
    assert_close("input gradient", z.acts.dresid, f.acts.dresid, NC);

    KVCache kc;
    kvcache_init(&kc, &c, 1, T);
    for (int t = 0; t < T; t++) {
        const float *lg = model_decode_step(&z, &kc, NULL, &tok[t], 1);
        assert_close("decode logits", lg, f.acts.logits + (size_t)t * c.vocab_size, (size_t)c.vocab_size);
    }
    kvcache_free(&kc);
    model_free(&z);
    model_free(&f);
}

static void test_frozen_bf16(void **state) {
    check_frozen(*state, WM_BF16, 0);
    check_frozen(*state, WM_BF16, 1);
}

static void test_frozen_f16(void **state) {
    check_frozen(*state, WM_F16, 0);
    check_frozen(*state, WM_F16, 1);
}

/* Every 16-bit pattern widens exactly and narrows back to itself; known
 * values and ties (round to even) pin down the rounding. */
static void test_conversions(void **state) {
    (void)state;
    uint16_t *h = xmalloc(65536 * 2), *back = xmalloc(65536 * 2);
    float *f = xmalloc(65536 * sizeof(float));
    for (WmDtype d = WM_BF16; d <= WM_F16; d++) {
        for (int i = 0; i < 65536; i++) h[i] = (uint16_t)i;
        wm_to_f32(f, h, d, 65536);
        wm_from_f32(back, f, d, 65536);
        for (int i = 0; i < 65536; i++)
            if (isnan(f[i])) assert_true(isnan(f[i]) && (back[i] & 0x7fff) > (d == WM_F16 ? 0x7c00 : 0x7f80));
            else if (back[i] != h[i]) fail_msg("%s 0x%04x -> %g -> 0x%04x", wm_dtype_name(d), i, (double)f[i], back[i]);
    }
    const uint16_t hv[] = {0x3c00, 0x0001, 0x7bff, 0xfc00, 0x8000};
    const float fv[] = {1.0f, 0x1p-24f, 65504.0f, -INFINITY, -0.0f};
    wm_to_f32(f, hv, WM_F16, 5);
    for (int i = 0; i < 5; i++) assert_true(f[i] == fv[i] && signbit(f[i]) == signbit(fv[i]));
    const float ties[] = {1.0f + 0x1p-8f, 1.0f + 3 * 0x1p-8f, 1.0f + 0x1p-11f, 65520.0f};
    wm_from_f32(back, ties, WM_BF16, 2);
    assert_int_equal(back[0], 0x3f80); /* tie to even: down */
    assert_int_equal(back[1], 0x3f82); /* tie to even: up */
    wm_from_f32(back, ties + 2, WM_F16, 2);
    assert_int_equal(back[0], 0x3c00);
    assert_int_equal(back[1], 0x7c00); /* past the largest half: infinity */
    free(h);
    free(back);
    free(f);
}

/* The shards of the index that hold the given tensors, counted. */
static int shards_holding(const char *dir, const Model *m) {
    char *path = calm_path_join(dir, CALM_WEIGHTS_INDEX_FILE);
    cJSON *root = calm_read_json(path);
    assert_non_null(root);
    const cJSON *map = cJSON_GetObjectItem(root, "weight_map");
    const char *seen[64];
    int n = 0;
    for (int k = 0; k < m->n_param_tensors; k++) {
        const char *file = cJSON_GetObjectItem(map, m->param_info[k].name)->valuestring;
        int found = 0;
        for (int i = 0; i < n; i++) found |= strcmp(seen[i], file) == 0;
        if (!found) seen[n++] = file;
    }
    cJSON_Delete(root);
    free(path);
    return n;
}

/* calm init's writer: sharded BF16, the values of model_init_random; each
 * part opens only its shards and reads only its tensors. */
static void test_sharded_parts(void **state) {
    const char *dir = *state;
    ModelConfig c = config16(1);
    assert_int_equal(model_write_random(&c, dir, WM_BF16, 16 << 10, 7), 0);
    char *index = calm_path_join(dir, CALM_WEIGHTS_INDEX_FILE);
    assert_int_equal(access(index, F_OK), 0);

    Model r, w;
    assert_int_equal(model_init(&r, &c), 0);
    model_init_random(&r, 7);
    ModelLoadOpts all = {.l1 = -1, .head = 1};
    assert_int_equal(model_load_dir_opts(&w, dir, &all), 0);
    assert_true(all.files_opened > 3);
    assert_int_equal(all.tensors_read, w.n_param_tensors);
    for (size_t i = 0; i < r.num_params; i++) /* BF16 of the same normals */
        assert_true(fabsf(w.params_memory[i] - r.params_memory[i]) <= 0x1p-8f * fabsf(r.params_memory[i]));

    const struct {
        int l0, l1, head, tensors;
    } parts[] = {{0, 1, 0, 1 + 13}, {1, 2, 0, 13}, {2, 3, 1, 13 + 2}}; /* embed; a block; tied head needs embed */
    for (int i = 0; i < 3; i++) {
        Model p;
        ModelLoadOpts o = {.l0 = parts[i].l0, .l1 = parts[i].l1, .head = parts[i].head, .frozen = 1};
        assert_int_equal(model_load_dir_opts(&p, dir, &o), 0);
        assert_int_equal(o.tensors_read, parts[i].tensors);
        assert_int_equal(o.files_opened, shards_holding(dir, &p));
        assert_true(o.files_opened < all.files_opened);
        model_free(&p);
    }
    model_free(&w);
    model_free(&r);
    free(index);
}

/* Set weight_map[tensor] in dir's index to file; returns the old file (malloc'd). */
static char *remap(const char *dir, const char *tensor, const char *file) {
    char *path = calm_path_join(dir, CALM_WEIGHTS_INDEX_FILE);
    cJSON *root = calm_read_json(path);
    cJSON *map = cJSON_GetObjectItem(root, "weight_map");
    char *old = xstrdup(cJSON_GetObjectItem(map, tensor)->valuestring);
    if (file) cJSON_ReplaceItemInObject(map, tensor, cJSON_CreateString(file));
    assert_int_equal(calm_write_json(path, root), 0);
    cJSON_Delete(root);
    free(path);
    return old;
}

/* Errors name the file and the tensor. */
static void test_sharded_errors(void **state) {
    const char *dir = *state;
    ModelConfig c = config16(0);
    assert_int_equal(model_write_random(&c, dir, WM_BF16, 16 << 10, 7), 0);
    Model m;
    /* a tensor mapped to a shard that does not hold it */
    char *first = remap(dir, "model.embed_tokens.weight", NULL);
    char *norm = remap(dir, "model.norm.weight", first);
    assert_string_not_equal(first, norm);
    assert_int_equal(model_load_dir_frozen(&m, dir), -1);
    assert_error_contains(first);
    assert_error_contains("tensor model.norm.weight not found");
    /* a shard missing */
    free(remap(dir, "model.norm.weight", norm));
    char *shard_name = remap(dir, "model.layers.1.mlp.up_proj.weight", NULL);
    char *shard = calm_path_join(dir, shard_name);
    assert_int_equal(unlink(shard), 0);
    assert_int_equal(model_load_dir(&m, dir), -1);
    assert_error_contains(shard);
    assert_error_contains("not found");
    /* shapes that disagree with config.json */
    assert_int_equal(model_write_random(&c, dir, WM_BF16, 16 << 10, 7), 0);
    char *cpath = calm_path_join(dir, CALM_CONFIG_FILE);
    c.hidden_dim = 96;
    assert_int_equal(model_config_save(&c, cpath), 0);
    assert_int_equal(model_load_dir_frozen(&m, dir), -1);
    assert_error_contains(".safetensors: tensor model.layers.0.mlp.gate_proj.weight has shape [80, 48], expected [96, 48]");
    free(cpath);
    free(shard);
    free(shard_name);
    free(norm);
    free(first);
}

int main(void) {
    calm_quiet = 1; /* the writer logs every shard */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conversions),
        cmocka_unit_test_setup_teardown(test_frozen_bf16, tu_setup_tmpdir, tu_teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_frozen_f16, tu_setup_tmpdir, tu_teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_sharded_parts, tu_setup_tmpdir, tu_teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_sharded_errors, tu_setup_tmpdir, tu_teardown_tmpdir),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
