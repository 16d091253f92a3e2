/* config.c: ModelConfig defaults, invariants, and config.json in the Hugging
 * Face LlamaConfig vocabulary, so a saved directory loads with
 * LlamaForCausalLM.from_pretrained and an HF Llama config loads here.
 *
 * Loading refuses anything calm would compute differently from transformers
 * (another activation, biases, RoPE scaling) instead of silently ignoring it. */
#include <cjson/cJSON.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "src/common.h"
#include "src/config.h"
#include "src/files.h"
#include "src/tokenizer.h"

/* Sizes (dim, n_layers, n_heads, n_kv_heads, head_dim, hidden_dim) stay 0:
 * the caller chooses them, and validate names any it forgot. */
void model_config_default(ModelConfig *c) {
    memset(c, 0, sizeof *c);
    c->vocab_size = TOK_VOCAB_DEFAULT;
    c->max_seq_len = 1024;
    c->norm_eps = 1e-5f;
    c->rope_theta = 10000.0f;
    c->tie_embeddings = 0;
    c->bos_id = TOK_BOS;
    c->eos_id = TOK_EOS;
    c->pad_id = TOK_PAD;
}

/* Messages carry both our field name and the config.json key, since either
 * may be what the user is looking at. */
int model_config_validate(const ModelConfig *c, const char *origin) {
    const struct {
        const char *name, *key;
        int v;
    } pos[] = {
        {"dim", "hidden_size", c->dim},
        {"n_layers", "num_hidden_layers", c->n_layers},
        {"n_heads", "num_attention_heads", c->n_heads},
        {"n_kv_heads", "num_key_value_heads", c->n_kv_heads},
        {"head_dim", "head_dim", c->head_dim},
        {"hidden_dim", "intermediate_size", c->hidden_dim},
        {"vocab_size", "vocab_size", c->vocab_size},
        {"max_seq_len", "max_position_embeddings", c->max_seq_len},
    };
    for (size_t i = 0; i < sizeof pos / sizeof pos[0]; i++)
        if (pos[i].v <= 0)
            return calm_error("%s: %s (%s) must be positive, got %d", origin, pos[i].name, pos[i].key, pos[i].v);
    if (c->n_heads % c->n_kv_heads != 0)
        return calm_error("%s: n_heads (num_attention_heads) %d is not divisible by n_kv_heads "
                          "(num_key_value_heads) %d",
                          origin, c->n_heads, c->n_kv_heads);
    if (c->head_dim % 2 != 0)
        return calm_error("%s: head_dim %d must be even (RoPE rotates pairs)", origin, c->head_dim);
    /* Later code multiplies these in int; keep every product representable. */
    if ((int64_t)c->n_heads * c->head_dim > INT_MAX / 2 || (int64_t)c->vocab_size * c->dim > INT_MAX ||
        (int64_t)c->hidden_dim * c->dim > INT_MAX)
        return calm_error("%s: model dimensions too large", origin);
    if (c->vocab_size < TOK_N_SPECIAL)
        return calm_error("%s: vocab_size %d is too small for the byte-level tokenizer (needs >= %d)", origin,
                          c->vocab_size, TOK_N_SPECIAL);
    if (!(c->norm_eps > 0) || !isfinite(c->norm_eps))
        return calm_error("%s: norm_eps (rms_norm_eps) must be positive, got %g", origin, (double)c->norm_eps);
    if (!(c->rope_theta > 0) || !isfinite(c->rope_theta))
        return calm_error("%s: rope_theta must be positive, got %g", origin, (double)c->rope_theta);
    if (c->tie_embeddings != 0 && c->tie_embeddings != 1)
        return calm_error("%s: tie_embeddings must be 0 or 1, got %d", origin, c->tie_embeddings);
    const struct {
        const char *key;
        int v;
    } ids[] = {{"bos_token_id", c->bos_id}, {"eos_token_id", c->eos_id}, {"pad_token_id", c->pad_id}};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++)
        if (ids[i].v < 0 || ids[i].v >= c->vocab_size)
            return calm_error("%s: %s %d outside the vocabulary [0, %d)", origin, ids[i].key, ids[i].v,
                              c->vocab_size);
    return 0;
}

/* ---- config.json reading ---- */

static const char *json_kind(const cJSON *j) {
    if (cJSON_IsNull(j)) return "null";
    if (cJSON_IsBool(j)) return "a boolean";
    if (cJSON_IsNumber(j)) return "a number";
    if (cJSON_IsString(j)) return "a string";
    if (cJSON_IsArray(j)) return "an array";
    if (cJSON_IsObject(j)) return "an object";
    return "invalid";
}

/* Each getter: absent (or null, for optional keys) leaves *out untouched and
 * returns 0 unless the key is required. */
static int get_int(const cJSON *root, const char *path, const char *key, int required, int *out) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!j || (!required && cJSON_IsNull(j)))
        return required ? calm_error("%s: key %s: missing (required)", path, key) : 0;
    if (!cJSON_IsNumber(j)) return calm_error("%s: key %s: must be an integer, got %s", path, key, json_kind(j));
    double d = j->valuedouble;
    if (d != floor(d) || d < INT_MIN || d > INT_MAX)
        return calm_error("%s: key %s: must be an integer, got %g", path, key, d);
    *out = (int)d;
    return 0;
}

static int get_float(const cJSON *root, const char *path, const char *key, int required, float *out) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!j || (!required && cJSON_IsNull(j)))
        return required ? calm_error("%s: key %s: missing (required)", path, key) : 0;
    if (!cJSON_IsNumber(j)) return calm_error("%s: key %s: must be a number, got %s", path, key, json_kind(j));
    *out = (float)j->valuedouble;
    return 0;
}

static int get_bool(const cJSON *root, const char *path, const char *key, int *out) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!j || cJSON_IsNull(j)) return 0;
    if (!cJSON_IsBool(j)) return calm_error("%s: key %s: must be true or false, got %s", path, key, json_kind(j));
    *out = cJSON_IsTrue(j) ? 1 : 0;
    return 0;
}

/* A string key that must hold `want` (when present, or always if required). */
static int expect_string(const cJSON *root, const char *path, const char *key, int required, const char *want,
                         const char *why) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!j) return required ? calm_error("%s: key %s: missing (required, must be \"%s\")", path, key, want) : 0;
    if (!cJSON_IsString(j)) return calm_error("%s: key %s: must be a string, got %s", path, key, json_kind(j));
    if (strcmp(j->valuestring, want) != 0)
        return calm_error("%s: key %s: is \"%s\", %s \"%s\"", path, key, j->valuestring, why, want);
    return 0;
}

/* Features transformers supports but calm does not compute: refuse them. */
static int refuse_unsupported(const cJSON *root, const char *path) {
    int r = expect_string(root, path, "model_type", 1, "llama", "calm only implements");
    if (r == 0) r = expect_string(root, path, "hidden_act", 0, "silu", "calm only implements");
    if (r == 0) r = expect_string(root, path, "calm_tokenizer", 0, TOK_ID, "calm only knows tokenizer");
    const char *flags[] = {"attention_bias", "mlp_bias"};
    for (int i = 0; i < 2 && r == 0; i++) {
        int v = 0;
        r = get_bool(root, path, flags[i], &v);
        if (r == 0 && v) r = calm_error("%s: key %s: is true, calm has no bias terms", path, flags[i]);
    }
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(root, "rope_scaling");
    if (r == 0 && rs && !cJSON_IsNull(rs))
        r = calm_error("%s: key rope_scaling: is %s, calm only supports null (plain RoPE)", path, json_kind(rs));
    return r;
}

static int parse_config(ModelConfig *c, const cJSON *root, const char *path) {
    int r = refuse_unsupported(root, path);
    if (r == 0) r = get_int(root, path, "hidden_size", 1, &c->dim);
    if (r == 0) r = get_int(root, path, "intermediate_size", 1, &c->hidden_dim);
    if (r == 0) r = get_int(root, path, "num_hidden_layers", 1, &c->n_layers);
    if (r == 0) r = get_int(root, path, "num_attention_heads", 1, &c->n_heads);
    if (r == 0) r = get_int(root, path, "vocab_size", 1, &c->vocab_size);
    if (r == 0) r = get_int(root, path, "max_position_embeddings", 1, &c->max_seq_len);
    if (r == 0) r = get_float(root, path, "rms_norm_eps", 1, &c->norm_eps);
    if (r != 0) return r;

    /* Defaults as transformers applies them. */
    c->n_kv_heads = c->n_heads;
    c->head_dim = 0;
    r = get_int(root, path, "num_key_value_heads", 0, &c->n_kv_heads);
    if (r == 0) r = get_int(root, path, "head_dim", 0, &c->head_dim);
    if (r == 0 && c->head_dim == 0 && c->n_heads > 0) { /* n_heads <= 0 is left to validate */
        if (c->dim % c->n_heads != 0)
            return calm_error("%s: key head_dim: missing, and hidden_size %d is not divisible by "
                              "num_attention_heads %d",
                              path, c->dim, c->n_heads);
        c->head_dim = c->dim / c->n_heads;
    }
    if (r == 0) r = get_float(root, path, "rope_theta", 0, &c->rope_theta);
    if (r == 0) r = get_bool(root, path, "tie_word_embeddings", &c->tie_embeddings);
    if (r == 0) r = get_int(root, path, "bos_token_id", 0, &c->bos_id);
    if (r == 0) r = get_int(root, path, "eos_token_id", 0, &c->eos_id);
    if (r == 0) r = get_int(root, path, "pad_token_id", 0, &c->pad_id);
    return r;
}

int model_config_load(ModelConfig *c, const char *path) {
    char *text = NULL;
    size_t len = 0;
    if (calm_read_file(path, &text, &len) != 0) return -1;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    int r = 0;
    if (!root)
        r = calm_error("%s: bad JSON (error near byte %zu)", path, end ? (size_t)(end - text) : (size_t)0);
    else if (!cJSON_IsObject(root))
        r = calm_error("%s: bad JSON (top level is %s, expected an object)", path, json_kind(root));
    ModelConfig cfg;
    model_config_default(&cfg);
    if (r == 0) r = parse_config(&cfg, root, path);
    if (r == 0) r = model_config_validate(&cfg, path);
    if (r == 0) *c = cfg;
    cJSON_Delete(root);
    free(text);
    return r;
}

/* ---- config.json writing ---- */

/* The shortest decimal that reads back as the same float, so 1e-5f is
 * written "1e-05" rather than its double expansion 9.99999974737875e-06. */
static double float_for_json(float x) {
    char buf[32];
    for (int prec = 6; prec <= 9; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, (double)x);
        if (strtof(buf, NULL) == x) break;
    }
    return strtod(buf, NULL);
}

int model_config_save(const ModelConfig *c, const char *path) {
    if (model_config_validate(c, path) != 0) return -1;
    cJSON *root = cJSON_CreateObject();
    cJSON *arch = cJSON_AddArrayToObject(root, "architectures");
    cJSON_AddItemToArray(arch, cJSON_CreateString("LlamaForCausalLM"));
    cJSON_AddStringToObject(root, "model_type", "llama");
    cJSON_AddNumberToObject(root, "hidden_size", c->dim);
    cJSON_AddNumberToObject(root, "intermediate_size", c->hidden_dim);
    cJSON_AddNumberToObject(root, "num_hidden_layers", c->n_layers);
    cJSON_AddNumberToObject(root, "num_attention_heads", c->n_heads);
    cJSON_AddNumberToObject(root, "num_key_value_heads", c->n_kv_heads);
    cJSON_AddNumberToObject(root, "head_dim", c->head_dim);
    cJSON_AddNumberToObject(root, "vocab_size", c->vocab_size);
    cJSON_AddNumberToObject(root, "max_position_embeddings", c->max_seq_len);
    cJSON_AddNumberToObject(root, "rms_norm_eps", float_for_json(c->norm_eps));
    cJSON_AddNumberToObject(root, "rope_theta", float_for_json(c->rope_theta));
    cJSON_AddNullToObject(root, "rope_scaling");
    cJSON_AddBoolToObject(root, "tie_word_embeddings", c->tie_embeddings);
    cJSON_AddNumberToObject(root, "bos_token_id", c->bos_id);
    cJSON_AddNumberToObject(root, "eos_token_id", c->eos_id);
    cJSON_AddNumberToObject(root, "pad_token_id", c->pad_id);
    cJSON_AddStringToObject(root, "hidden_act", "silu");
    cJSON_AddBoolToObject(root, "attention_bias", 0);
    cJSON_AddNumberToObject(root, "attention_dropout", 0.0);
    cJSON_AddBoolToObject(root, "mlp_bias", 0);
    cJSON_AddStringToObject(root, "torch_dtype", "float32");
    cJSON_AddStringToObject(root, "calm_tokenizer", TOK_ID);
    int r = calm_write_json(path, root);
    cJSON_Delete(root);
    return r;
}

void model_config_sized(ModelConfig *c, int dim, int n_layers, int n_heads, int n_kv_heads, int hidden_dim,
                        int vocab_size, int max_seq_len) {
    model_config_default(c);
    c->dim = dim;
    c->n_layers = n_layers;
    c->n_heads = n_heads;
    c->n_kv_heads = n_kv_heads > 0 ? n_kv_heads : n_heads;
    c->head_dim = n_heads > 0 ? dim / n_heads : 0;
    c->hidden_dim = hidden_dim;
    c->vocab_size = vocab_size;
    c->max_seq_len = max_seq_len;
}
