/* test_modeldir.c: config.json, model directories, trainer state, SHA-256.
 * A saved model must come back bit for bit; a directory whose weights do not
 * match its config must fail with a message naming the file and the tensor. */
#define _GNU_SOURCE
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/files.h"
#include "src/modeldir.h"
#include "src/common.h"
#include "src/model.h"
#include "src/rng.h"
#include "src/safetensors.h"
#include "testutil.h"
#include "src/sha256.h"
#include "src/tokenizer.h"

/* A small GQA model: 4 query heads sharing 2 key/value heads. */
static ModelConfig small_config(int tied) {
    ModelConfig c;
    model_config_default(&c);
    c.dim = 32;
    c.n_layers = 2;
    c.n_heads = 4;
    c.n_kv_heads = 2;
    c.head_dim = 8;
    c.hidden_dim = 48;
    c.max_seq_len = 64;
    c.tie_embeddings = tied;
    return c;
}

static void assert_config_equal(const ModelConfig *a, const ModelConfig *b) {
    assert_int_equal(a->dim, b->dim);
    assert_int_equal(a->n_layers, b->n_layers);
    assert_int_equal(a->n_heads, b->n_heads);
    assert_int_equal(a->n_kv_heads, b->n_kv_heads);
    assert_int_equal(a->head_dim, b->head_dim);
    assert_int_equal(a->hidden_dim, b->hidden_dim);
    assert_int_equal(a->vocab_size, b->vocab_size);
    assert_int_equal(a->max_seq_len, b->max_seq_len);
    assert_true(a->norm_eps == b->norm_eps);
    assert_true(a->rope_theta == b->rope_theta);
    assert_int_equal(a->tie_embeddings, b->tie_embeddings);
    assert_int_equal(a->bos_id, b->bos_id);
    assert_int_equal(a->eos_id, b->eos_id);
    assert_int_equal(a->pad_id, b->pad_id);
    assert_int_equal(a->attention_bias, b->attention_bias);
    assert_int_equal(a->rope_llama3, b->rope_llama3);
    assert_true(a->rope_factor == b->rope_factor && a->rope_low_freq_factor == b->rope_low_freq_factor &&
                a->rope_high_freq_factor == b->rope_high_freq_factor);
    assert_int_equal(a->rope_original_max_pos, b->rope_original_max_pos);
    assert_int_equal(a->n_eos, b->n_eos);
    assert_memory_equal(a->eos_ids, b->eos_ids, (size_t)a->n_eos * sizeof(int));
}

/* ---- config.json ---- */

static void test_config_defaults(void **state) {
    ModelConfig c;
    model_config_default(&c);
    assert_int_equal(c.vocab_size, TOK_VOCAB_DEFAULT);
    assert_int_equal(c.max_seq_len, 1024);
    assert_true(c.norm_eps == 1e-5f);
    assert_true(c.rope_theta == 10000.0f);
    assert_int_equal(c.bos_id, 256);
    assert_int_equal(c.eos_id, 257);
    assert_int_equal(c.pad_id, 258);
    assert_int_equal(c.tie_embeddings, 0);
    /* sizes are the caller's to fill */
    assert_int_equal(model_config_validate(&c, "cfg"), -1);
    assert_error_contains("cfg: dim (hidden_size) must be positive");

    ModelConfig ok = small_config(0);
    assert_int_equal(model_config_validate(&ok, "cfg"), 0);
    ModelConfig bad = ok;
    bad.n_kv_heads = 3;
    assert_int_equal(model_config_validate(&bad, "cfg"), -1);
    assert_error_contains("not divisible");
    bad = ok;
    bad.head_dim = 7;
    assert_int_equal(model_config_validate(&bad, "cfg"), -1);
    assert_error_contains("head_dim 7 must be even");
    bad = ok;
    bad.vocab_size = 258;
    assert_int_equal(model_config_validate(&bad, "cfg"), -1);
    assert_error_contains("vocab_size 258");
    bad = ok;
    bad.norm_eps = 0;
    assert_int_equal(model_config_validate(&bad, "cfg"), -1);
    assert_error_contains("norm_eps");
}

static void test_config_round_trip(void **state) {
    const char *dir = *state;
    char *path = calm_path_join(dir, "config.json");
    for (int tied = 0; tied <= 1; tied++) {
        ModelConfig c = small_config(tied);
        c.norm_eps = 1e-6f;
        c.rope_theta = 500000.0f;
        c.max_seq_len = 2048;
        assert_int_equal(model_config_save(&c, path), 0);
        ModelConfig back;
        memset(&back, 0x5A, sizeof back);
        assert_int_equal(model_config_load(&back, path), 0);
        assert_config_equal(&back, &c);

        /* The file speaks HF: check the keys transformers reads. */
        char *text;
        size_t len;
        assert_int_equal(calm_read_file(path, &text, &len), 0);
        cJSON *j = cJSON_Parse(text);
        assert_non_null(j);
        assert_string_equal(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "architectures"), 0)->valuestring,
                            "LlamaForCausalLM");
        assert_string_equal(cJSON_GetObjectItem(j, "model_type")->valuestring, "llama");
        assert_string_equal(cJSON_GetObjectItem(j, "hidden_act")->valuestring, "silu");
        /* the tokenizer is a file of its own (tokenizer.json) or calm's bytes: config.json names none */
        assert_null(cJSON_GetObjectItem(j, "calm_tokenizer"));
        assert_int_equal(cJSON_GetObjectItem(j, "bos_token_id")->valueint, TOK_BOS);
        assert_int_equal(cJSON_GetObjectItem(j, "num_key_value_heads")->valueint, 2);
        assert_int_equal(cJSON_GetObjectItem(j, "hidden_size")->valueint, 32);
        assert_int_equal(cJSON_GetObjectItem(j, "intermediate_size")->valueint, 48);
        assert_true(cJSON_IsTrue(cJSON_GetObjectItem(j, "tie_word_embeddings")) == tied);
        /* written as the decimal people type, not the float's double expansion */
        assert_true(cJSON_GetObjectItem(j, "rms_norm_eps")->valuedouble == 1e-6);
        cJSON_Delete(j);
        free(text);
    }
    free(path);
}

/* A config as an HF user would write it: optional keys absent get
 * transformers' defaults. */
static void test_config_hf_defaults(void **state) {
    char *path = calm_path_join(*state, "config.json");
    tu_write_file(NULL, path, "{\"model_type\": \"llama\", \"hidden_size\": 64, \"intermediate_size\": 128,"
                     " \"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"vocab_size\": 300,"
                     " \"max_position_embeddings\": 128, \"rms_norm_eps\": 1e-6, \"pad_token_id\": null,"
                     " \"torch_dtype\": \"bfloat16\", \"architectures\": [\"LlamaForCausalLM\"]}");
    ModelConfig c;
    assert_int_equal(model_config_load(&c, path), 0);
    assert_int_equal(c.n_kv_heads, 4);
    assert_int_equal(c.head_dim, 16);
    assert_true(c.rope_theta == 10000.0f);
    assert_int_equal(c.tie_embeddings, 0);
    /* ids left out or null: the model has none (not the byte tokenizer's, ordinary tokens elsewhere) */
    assert_int_equal(c.pad_id, -1);
    assert_int_equal(c.bos_id, -1);
    assert_int_equal(c.eos_id, -1);
    assert_int_equal(c.n_eos, 0);
    assert_int_equal(c.vocab_size, 300);
    /* written back as null, read back the same */
    assert_int_equal(model_config_save(&c, path), 0);
    ModelConfig back;
    assert_int_equal(model_config_load(&back, path), 0);
    assert_config_equal(&back, &c);
    /* Mistral without a sliding window is the same computation */
    tu_write_file(NULL, path, "{\"model_type\": \"mistral\", \"hidden_size\": 64, \"intermediate_size\": 128,"
                     " \"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"vocab_size\": 300,"
                     " \"max_position_embeddings\": 128, \"rms_norm_eps\": 1e-6, \"sliding_window\": null}");
    assert_int_equal(model_config_load(&c, path), 0);
    free(path);
}

/* Llama 3.x keys: rope_scaling llama3, eos_token_id as a list, attention
 * bias, bos/pad null; what calm writes reads back the same. */
static void test_config_llama3(void **state) {
    char *path = calm_path_join(*state, "config.json");
    tu_write_file(NULL, path, "{\"model_type\": \"llama\", \"hidden_size\": 64, \"intermediate_size\": 128,"
                     " \"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"head_dim\": 24, \"vocab_size\": 300,"
                     " \"max_position_embeddings\": 128, \"rms_norm_eps\": 1e-5, \"rope_theta\": 500000.0,"
                     " \"rope_scaling\": {\"factor\": 8.0, \"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0,"
                     " \"original_max_position_embeddings\": 32, \"rope_type\": \"llama3\"},"
                     " \"attention_bias\": true, \"bos_token_id\": null, \"eos_token_id\": [261, 259, 262]}");
    ModelConfig c;
    assert_int_equal(model_config_load(&c, path), 0);
    assert_int_equal(c.rope_llama3, 1);
    assert_true(c.rope_factor == 8.0f && c.rope_high_freq_factor == 4.0f && c.rope_original_max_pos == 32);
    assert_int_equal(c.attention_bias, 1);
    assert_int_equal(c.head_dim, 24);
    assert_int_equal(c.bos_id, -1);
    assert_int_equal(c.eos_id, 261);
    assert_int_equal(c.n_eos, 3);
    assert_int_equal(c.eos_ids[2], 262);
    /* llama3 keeps the high frequencies, divides the lowest by factor. */
    double f[12];
    model_config_rope_freqs(&c, f);
    assert_true(f[0] == 1.0);
    assert_true(fabs(f[11] - pow(500000.0, -22.0 / 24) / 8.0) < 1e-20);
    ModelConfig back;
    assert_int_equal(model_config_save(&c, path), 0);
    assert_int_equal(model_config_load(&back, path), 0);
    assert_config_equal(&back, &c);
    free(path);
}

static void test_config_errors(void **state) {
    static const char base[] = "\"hidden_size\": 64, \"intermediate_size\": 128, \"num_hidden_layers\": 2,"
                               " \"vocab_size\": 320, \"max_position_embeddings\": 128, \"rms_norm_eps\": 1e-5";
    static const struct {
        const char *extra, *phrase;
    } cases[] = {
        {"\"model_type\": \"gpt2\", \"num_attention_heads\": 4", "key model_type: is \"gpt2\""},
        {"\"num_attention_heads\": 4", "key model_type: missing"},
        {"\"model_type\": \"llama\", \"num_attention_heads\": 4, \"num_key_value_heads\": 3", "not divisible"},
        {"\"model_type\": \"llama\", \"num_attention_heads\": 4, \"hidden_act\": \"gelu\"", "key hidden_act"},
        {"\"model_type\": \"llama\", \"num_attention_heads\": 4, \"attention_bias\": 1",
         "key attention_bias: must be true or false"},
        {"\"model_type\": \"llama\", \"num_attention_heads\": 4, \"rope_scaling\": {\"rope_type\": \"llama3\", "
         "\"factor\": 8.0, \"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0}",
         "original_max_position_embeddings: missing"},
        {"\"model_type\": \"llama\", \"num_attention_heads\": 4, \"rope_scaling\": {\"rope_type\": \"yarn\", "
         "\"factor\": 4.0}",
         "rope_type \"yarn\" is not supported"},
        {"\"model_type\": \"llama\", \"num_attention_heads\": 4, \"eos_token_id\": [300, 400]",
         "eos_token_id[1] 400 outside the vocabulary"},
        {"\"model_type\": \"llama\", \"num_attention_heads\": 4, \"mlp_bias\": true", "key mlp_bias"},
        {"\"model_type\": \"llama\", \"num_attention_heads\": 4, \"rope_scaling\": {\"type\": \"linear\"}",
         "key rope_scaling"},
        {"\"model_type\": \"llama\", \"num_attention_heads\": \"4\"", "key num_attention_heads: must be an integer"},
        {"\"model_type\": \"llama\", \"num_attention_heads\": 4.5", "key num_attention_heads: must be an integer"},
        {"\"model_type\": \"llama\", \"num_attention_heads\": 3", "key head_dim: missing"},
        {"\"model_type\": \"llama\", \"num_attention_heads\": 4, \"tie_word_embeddings\": 1",
         "key tie_word_embeddings: must be true or false"},
        {"\"model_type\": \"llama\", \"num_attention_heads\": 4, \"calm_tokenizer\": \"gpt2-bpe\"",
         "key calm_tokenizer"},
        {"\"model_type\": \"mistral\", \"num_attention_heads\": 4, \"sliding_window\": 64",
         "key sliding_window"},
    };
    char *path = calm_path_join(*state, "config.json");
    char text[1024];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(text, sizeof text, "{%s, %s}", base, cases[i].extra);
        tu_write_file(NULL, path, text);
        ModelConfig c = small_config(0), before = c;
        assert_int_equal(model_config_load(&c, path), -1);
        assert_error_contains(path);
        assert_error_contains(cases[i].phrase);
        assert_config_equal(&c, &before); /* untouched on failure */
    }
    ModelConfig c;
    tu_write_file(NULL, path, "{\"model_type\": \"llama\", \"intermediate_size\": 128, \"num_hidden_layers\": 2,"
                     " \"num_attention_heads\": 4, \"vocab_size\": 320, \"max_position_embeddings\": 128,"
                     " \"rms_norm_eps\": 1e-5}");
    assert_int_equal(model_config_load(&c, path), -1);
    assert_error_contains("key hidden_size: missing");
    tu_write_file(NULL, path, "{\"model_type\": \"llama\", \"hidden_size\": 64,");
    assert_int_equal(model_config_load(&c, path), -1);
    assert_error_contains("bad JSON");
    tu_write_file(NULL, path, "[1]");
    assert_int_equal(model_config_load(&c, path), -1);
    assert_error_contains("bad JSON");
    char *missing = calm_path_join(*state, "nope.json");
    assert_int_equal(model_config_load(&c, missing), -1);
    assert_error_contains(missing);
    free(missing);
    free(path);
}

/* ---- model directories ---- */

static void make_model(Model *m, const ModelConfig *c, uint64_t seed) {
    assert_int_equal(model_init(m, c), 0);
    tu_randn(m->params_memory, m->num_params, seed, 0.5f);
}

static void test_model_dir_round_trip(void **state) {
    for (int tied = 0; tied <= 1; tied++) {
        char *dir = calm_path_join(*state, tied ? "nested/tied" : "untied"); /* mkdir -p */
        ModelConfig c = small_config(tied);
        Model a, b;
        make_model(&a, &c, 10 + (uint64_t)tied);
        assert_int_equal(model_save_dir(&a, dir), 0);
        assert_int_equal(model_load_dir(&b, dir), 0);
        assert_config_equal(&b.cfg, &a.cfg);
        assert_int_equal(b.num_params, a.num_params);
        assert_memory_equal(b.params_memory, a.params_memory, a.num_params * sizeof(float));
        if (tied) assert_ptr_equal(b.params.lm_head, b.params.embed);

        /* The weights file is what transformers expects. */
        char *w = calm_path_join(dir, CALM_WEIGHTS_FILE);
        StFile f;
        assert_int_equal(st_open(&f, w), 0);
        assert_string_equal(st_meta(&f, "format"), "pt");
        int n;
        model_param_table(&a, &n);
        assert_int_equal(f.n_tensors, n);
        assert_int_equal(st_find(&f, "lm_head.weight") != NULL, !tied);
        const StTensor *q = st_find(&f, "model.layers.1.self_attn.k_proj.weight");
        assert_non_null(q);
        assert_int_equal(q->ndim, 2);
        assert_int_equal(q->shape[0], 2 * 8);
        assert_int_equal(q->shape[1], 32);
        st_close(&f);
        free(w);
        model_free(&a);
        model_free(&b);
        free(dir);
    }
}

static void test_model_dir_mismatch(void **state) {
    const char *root = *state;
    ModelConfig c = small_config(0);
    Model a, b;

    /* Weights saved from a model with a narrower MLP, config of the wider one. */
    ModelConfig narrow = c;
    narrow.hidden_dim = 40;
    char *dir = calm_path_join(root, "shape");
    make_model(&a, &narrow, 1);
    assert_int_equal(model_save_dir(&a, dir), 0);
    model_free(&a);
    char *cfg = calm_path_join(dir, CALM_CONFIG_FILE);
    assert_int_equal(model_config_save(&c, cfg), 0);
    memset(&b, 0, sizeof b);
    assert_int_equal(model_load_dir(&b, dir), -1);
    assert_error_contains("model.safetensors: tensor model.layers.0.mlp.gate_proj.weight has shape [40, 32], "
                          "expected [48, 32]");
    assert_null(b.params_memory); /* freed */
    free(cfg);
    free(dir);

    /* A tensor left out of the file. */
    dir = calm_path_join(root, "missing");
    make_model(&a, &c, 2);
    assert_int_equal(model_save_dir(&a, dir), 0);
    int n;
    const ParamInfo *pi = model_param_table(&a, &n);
    StWriteTensor *ts = calloc((size_t)n, sizeof *ts);
    int k = 0;
    for (int i = 0; i < n; i++) {
        if (strcmp(pi[i].name, "model.norm.weight") == 0) continue;
        ts[k] = (StWriteTensor){.name = pi[i].name, .data = a.params_memory + pi[i].offset, .ndim = pi[i].ndim};
        memcpy(ts[k].shape, pi[i].shape, sizeof pi[i].shape);
        k++;
    }
    assert_int_equal(k, n - 1);
    char *w = calm_path_join(dir, CALM_WEIGHTS_FILE);
    assert_int_equal(st_write_f32(w, ts, k, NULL, NULL, 0), 0);
    assert_int_equal(model_load_dir(&b, dir), -1);
    assert_error_contains("model.safetensors: tensor model.norm.weight not found");
    free(ts);
    free(w);
    model_free(&a);
    free(dir);

    /* No config.json at all. */
    dir = calm_path_join(root, "empty");
    assert_int_equal(calm_mkdirs(dir), 0);
    assert_int_equal(model_load_dir(&b, dir), -1);
    assert_error_contains("config.json: cannot open");
    free(dir);
}

static void test_model_dir_tying(void **state) {
    const char *root = *state;
    ModelConfig tied = small_config(1), untied = small_config(0);
    Model a, b;

    /* Untied config, weights from a tied model: lm_head.weight is missing. */
    char *dir = calm_path_join(root, "t2u");
    make_model(&a, &tied, 3);
    assert_int_equal(model_save_dir(&a, dir), 0);
    char *cfg = calm_path_join(dir, CALM_CONFIG_FILE);
    assert_int_equal(model_config_save(&untied, cfg), 0);
    assert_int_equal(model_load_dir(&b, dir), -1);
    assert_error_contains("model.safetensors: tensor lm_head.weight not found");
    assert_error_contains("tie_word_embeddings false");
    model_free(&a);
    free(cfg);
    free(dir);

    /* Tied config, weights that also carry lm_head.weight: it is ignored. */
    dir = calm_path_join(root, "u2t");
    make_model(&a, &untied, 4);
    assert_int_equal(model_save_dir(&a, dir), 0);
    cfg = calm_path_join(dir, CALM_CONFIG_FILE);
    assert_int_equal(model_config_save(&tied, cfg), 0);
    assert_int_equal(model_load_dir(&b, dir), 0);
    assert_int_equal(b.cfg.tie_embeddings, 1);
    assert_int_equal(b.num_params + (size_t)tied.vocab_size * tied.dim, a.num_params);
    size_t VC = (size_t)tied.vocab_size * tied.dim;
    assert_memory_equal(b.params.embed, a.params.embed, VC * sizeof(float));
    assert_memory_equal(b.params.norm, a.params.norm, (size_t)tied.dim * sizeof(float));
    assert_ptr_equal(b.params.lm_head, b.params.embed);
    model_free(&a);
    model_free(&b);
    free(cfg);
    free(dir);
}

/* ---- trainer state ---- */

static void test_trainer_state(void **state) {
    enum { N = 1000 };
    float *m = malloc(N * sizeof(float)), *v = malloc(N * sizeof(float));
    float *m2 = malloc(N * sizeof(float)), *v2 = malloc(N * sizeof(float));
    tu_randn(m, N, 7, 1.0f);
    tu_randn(v, N, 8, 1.0f);
    for (int i = 0; i < N; i++) v[i] *= v[i];
    char *path = calm_path_join(*state, CALM_TRAINER_STATE_FILE);
    const char *keys[] = {"step", "seed", "data_position"};
    const char *values[] = {"123", "7", "987654321"};
    assert_int_equal(trainer_state_save(path, m, v, N, keys, values, 3), 0);

    StFile f;
    assert_int_equal(trainer_state_load(path, m2, v2, N, &f), 0);
    assert_memory_equal(m2, m, N * sizeof(float));
    assert_memory_equal(v2, v, N * sizeof(float));
    assert_string_equal(st_meta(&f, "step"), "123");
    assert_string_equal(st_meta(&f, "data_position"), "987654321");
    st_close(&f);

    memset(m2, 0, N * sizeof(float));
    assert_int_equal(trainer_state_load(path, m2, v2, N, NULL), 0);
    assert_memory_equal(m2, m, N * sizeof(float));

    /* State from a different model size is refused. */
    assert_int_equal(trainer_state_load(path, m2, v2, N - 1, &f), -1);
    assert_error_contains("tensor adam.m has shape [1000], expected [999]");
    assert_null(f.map); /* nothing left open */
    free(path);
    free(m);
    free(v);
    free(m2);
    free(v2);
}

/* ---- SHA-256 ---- */

static void test_sha256(void **state) {
    static const struct {
        const char *text, *hex;
    } vec[] = {
        {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        /* 56 bytes: the length no longer fits in the first padding block */
        {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
    };
    char *path = calm_path_join(*state, "h.txt");
    char hex[65];
    for (size_t i = 0; i < sizeof vec / sizeof vec[0]; i++) {
        tu_write_file(NULL, path, vec[i].text);
        assert_int_equal(calm_sha256_file(path, hex), 0);
        assert_string_equal(hex, vec[i].hex);
    }

    /* One million 'a' (FIPS 180-2 appendix B.3), then 3 MiB + 7 bytes so the
     * 1 MiB read buffer boundaries land mid-block; checked against sha256sum. */
    size_t big = (3u << 20) + 7;
    char *buf = malloc(big);
    memset(buf, 'a', 1000000);
    FILE *f = fopen(path, "wb");
    assert_int_equal(fwrite(buf, 1, 1000000, f), 1000000);
    fclose(f);
    assert_int_equal(calm_sha256_file(path, hex), 0);
    assert_string_equal(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");

    for (size_t i = 0; i < big; i++) buf[i] = (char)(calm_hash64(i) & 0xff);
    f = fopen(path, "wb");
    assert_int_equal(fwrite(buf, 1, big, f), big);
    fclose(f);
    free(buf);
    assert_int_equal(calm_sha256_file(path, hex), 0);
    char *ref = calm_path_join(*state, "ref.txt");
    if (tu_system("sha256sum '%s' > '%s' 2>/dev/null", path, ref) == 0) {
        char *text;
        size_t len;
        assert_int_equal(calm_read_file(ref, &text, &len), 0);
        assert_true(len >= 64);
        text[64] = 0;
        assert_string_equal(hex, text);
        free(text);
    }
    free(ref);

    char *missing = calm_path_join(*state, "nope");
    assert_int_equal(calm_sha256_file(missing, hex), -1);
    assert_error_contains(missing);
    free(missing);
    free(path);
}

int main(void) {
    calm_quiet = 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_defaults),
        cmocka_unit_test_setup_teardown(test_config_round_trip, tu_setup_tmpdir, tu_teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_config_hf_defaults, tu_setup_tmpdir, tu_teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_config_llama3, tu_setup_tmpdir, tu_teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_config_errors, tu_setup_tmpdir, tu_teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_model_dir_round_trip, tu_setup_tmpdir, tu_teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_model_dir_mismatch, tu_setup_tmpdir, tu_teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_model_dir_tying, tu_setup_tmpdir, tu_teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_trainer_state, tu_setup_tmpdir, tu_teardown_tmpdir),
        cmocka_unit_test_setup_teardown(test_sha256, tu_setup_tmpdir, tu_teardown_tmpdir),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
