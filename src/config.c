/* config.c: ModelConfig defaults, invariants, and config.json in the Hugging
 * Face LlamaConfig vocabulary, so a saved directory loads with
 * LlamaForCausalLM.from_pretrained and an HF Llama config loads here.
 *
 * Loading refuses anything calm would compute differently from transformers
 * (another activation, MLP biases, RoPE scaling other than llama3) instead of
 * silently ignoring it. */
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
    c->n_eos = 1;
    c->eos_ids[0] = TOK_EOS;
}

/* rope_scaling llama3 as transformers checks it (rope_config_validation). */
static int validate_rope_scaling(const ModelConfig *c, const char *origin) {
    if (!c->rope_llama3) return 0;
    if (!(c->rope_factor >= 1.0f) || !isfinite(c->rope_factor))
        return calm_error("%s: rope_scaling.factor must be >= 1, got %g", origin, (double)c->rope_factor);
    if (!(c->rope_low_freq_factor > 0) || !(c->rope_high_freq_factor > c->rope_low_freq_factor))
        return calm_error("%s: rope_scaling needs 0 < low_freq_factor < high_freq_factor, got %g and %g", origin,
                          (double)c->rope_low_freq_factor, (double)c->rope_high_freq_factor);
    if (c->rope_original_max_pos <= 0)
        return calm_error("%s: rope_scaling.original_max_position_embeddings must be positive, got %d", origin,
                          c->rope_original_max_pos);
    return 0;
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
    if (c->attention_bias != 0 && c->attention_bias != 1)
        return calm_error("%s: attention_bias must be 0 or 1, got %d", origin, c->attention_bias);
    if (validate_rope_scaling(c, origin) != 0) return -1;
    if (c->n_eos > CALM_MAX_EOS || (c->n_eos > 0) != (c->eos_id >= 0) || (c->n_eos > 0 && c->eos_ids[0] != c->eos_id))
        return calm_error("%s: eos_token_id: 0 to %d ids, the first being eos_id", origin, CALM_MAX_EOS);
    for (int i = 1; i < c->n_eos; i++)
        if (c->eos_ids[i] < 0 || c->eos_ids[i] >= c->vocab_size)
            return calm_error("%s: eos_token_id[%d] %d outside the vocabulary [0, %d)", origin, i, c->eos_ids[i],
                              c->vocab_size);
    const struct {
        const char *key;
        int v;
    } ids[] = {{"bos_token_id", c->bos_id}, {"eos_token_id", c->eos_id}, {"pad_token_id", c->pad_id}};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) /* -1: the model has none */
        if (ids[i].v < -1 || ids[i].v >= c->vocab_size)
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

/* "llama", or "mistral" (the same tensors and computation) when its
 * sliding window never binds: calm's attention sees the whole context. */
static int check_model_type(const cJSON *root, const char *path) {
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(root, "model_type");
    if (!cJSON_IsString(t) || strcmp(t->valuestring, "mistral") != 0)
        return expect_string(root, path, "model_type", 1, "llama", "calm implements \"mistral\" and");
    const cJSON *w = cJSON_GetObjectItemCaseSensitive(root, "sliding_window"),
                *n = cJSON_GetObjectItemCaseSensitive(root, "max_position_embeddings");
    if (!w || cJSON_IsNull(w)) return 0;
    if (!cJSON_IsNumber(w) || !cJSON_IsNumber(n) || w->valuedouble < n->valuedouble)
        return calm_error("%s: key sliding_window: %s, below max_position_embeddings; calm computes full causal "
                          "attention, not Mistral's sliding window",
                          path, cJSON_IsNumber(w) ? "a window" : json_kind(w));
    return 0;
}

/* Features transformers supports but calm does not compute: refuse them. */
static int refuse_unsupported(const cJSON *root, const char *path) {
    int r = check_model_type(root, path);
    if (r == 0) r = expect_string(root, path, "hidden_act", 0, "silu", "calm only implements");
    /* written by calm before tokenizers were files of their own (tokenizer.h) */
    if (r == 0) r = expect_string(root, path, "calm_tokenizer", 0, TOK_ID, "calm only knows tokenizer");
    int v = 0;
    if (r == 0) r = get_bool(root, path, "mlp_bias", &v);
    if (r == 0 && v) r = calm_error("%s: key mlp_bias: is true, calm has no MLP bias terms", path);
    return r;
}

/* rope_scaling: null, {"rope_type": "default"} or llama3 (older files say
 * "type", which transformers also reads). */
static int parse_rope_scaling(ModelConfig *c, const cJSON *root, const char *path) {
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(root, "rope_scaling");
    if (!rs || cJSON_IsNull(rs)) return 0;
    if (!cJSON_IsObject(rs))
        return calm_error("%s: key rope_scaling: must be an object or null, got %s", path, json_kind(rs));
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(rs, "rope_type");
    if (!t) t = cJSON_GetObjectItemCaseSensitive(rs, "type");
    if (!cJSON_IsString(t)) return calm_error("%s: key rope_scaling: needs a \"rope_type\" string", path);
    if (strcmp(t->valuestring, "default") == 0) return 0;
    if (strcmp(t->valuestring, "llama3") != 0)
        return calm_error("%s: key rope_scaling: rope_type \"%s\" is not supported, calm implements \"llama3\" "
                          "and \"default\"",
                          path, t->valuestring);
    char where[1024];
    snprintf(where, sizeof where, "%s (rope_scaling)", path);
    c->rope_llama3 = 1;
    int r = get_float(rs, where, "factor", 1, &c->rope_factor);
    if (r == 0) r = get_float(rs, where, "low_freq_factor", 1, &c->rope_low_freq_factor);
    if (r == 0) r = get_float(rs, where, "high_freq_factor", 1, &c->rope_high_freq_factor);
    if (r == 0) r = get_int(rs, where, "original_max_position_embeddings", 1, &c->rope_original_max_pos);
    return r;
}

/* eos_token_id: a number, a list of them (Llama 3.1: the first is the
 * model's EOS, generation stops at any), or null / missing (none). */
static int parse_eos(ModelConfig *c, const cJSON *root, const char *path) {
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(root, "eos_token_id");
    if (!cJSON_IsArray(j)) {
        c->eos_id = -1;
        int r = get_int(root, path, "eos_token_id", 0, &c->eos_id);
        c->n_eos = c->eos_id >= 0;
        c->eos_ids[0] = c->eos_id;
        return r;
    }
    int n = cJSON_GetArraySize(j);
    if (n < 1 || n > CALM_MAX_EOS)
        return calm_error("%s: key eos_token_id: a list of %d ids, calm takes 1 to %d", path, n, CALM_MAX_EOS);
    for (int i = 0; i < n; i++) {
        const cJSON *e = cJSON_GetArrayItem(j, i);
        if (!cJSON_IsNumber(e) || e->valuedouble != floor(e->valuedouble) || e->valuedouble < 0 ||
            e->valuedouble > INT_MAX)
            return calm_error("%s: key eos_token_id: entry %d is not a token id", path, i);
        c->eos_ids[i] = (int)e->valuedouble;
    }
    c->n_eos = n;
    c->eos_id = c->eos_ids[0];
    return 0;
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
    if (r == 0) r = get_bool(root, path, "attention_bias", &c->attention_bias);
    if (r == 0) r = parse_rope_scaling(c, root, path);
    /* special ids a config leaves out (or null) the model does not have:
     * not calm's byte-tokenizer defaults, which are ordinary tokens elsewhere */
    c->bos_id = c->pad_id = -1;
    if (r == 0) r = get_int(root, path, "bos_token_id", 0, &c->bos_id);
    if (r == 0) r = parse_eos(c, root, path);
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

/* A special token id, or null when the model has none (-1). */
static void add_id(cJSON *root, const char *key, int id) {
    if (id >= 0) cJSON_AddNumberToObject(root, key, id);
    else cJSON_AddNullToObject(root, key);
}

static void add_rope_scaling(cJSON *root, const ModelConfig *c) {
    if (!c->rope_llama3) {
        cJSON_AddNullToObject(root, "rope_scaling");
        return;
    }
    cJSON *rs = cJSON_AddObjectToObject(root, "rope_scaling");
    cJSON_AddStringToObject(rs, "rope_type", "llama3");
    cJSON_AddNumberToObject(rs, "factor", float_for_json(c->rope_factor));
    cJSON_AddNumberToObject(rs, "low_freq_factor", float_for_json(c->rope_low_freq_factor));
    cJSON_AddNumberToObject(rs, "high_freq_factor", float_for_json(c->rope_high_freq_factor));
    cJSON_AddNumberToObject(rs, "original_max_position_embeddings", c->rope_original_max_pos);
}

int model_config_save(const ModelConfig *c, const char *path) { return model_config_save_dtype(c, path, "float32"); }

int model_config_save_dtype(const ModelConfig *c, const char *path, const char *torch_dtype) {
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
    add_rope_scaling(root, c);
    cJSON_AddBoolToObject(root, "tie_word_embeddings", c->tie_embeddings);
    add_id(root, "bos_token_id", c->bos_id);
    if (c->n_eos > 1) cJSON_AddItemToObject(root, "eos_token_id", cJSON_CreateIntArray(c->eos_ids, c->n_eos));
    else add_id(root, "eos_token_id", c->eos_id);
    add_id(root, "pad_token_id", c->pad_id);
    cJSON_AddStringToObject(root, "hidden_act", "silu");
    cJSON_AddBoolToObject(root, "attention_bias", c->attention_bias);
    cJSON_AddNumberToObject(root, "attention_dropout", 0.0);
    cJSON_AddBoolToObject(root, "mlp_bias", 0);
    cJSON_AddStringToObject(root, "torch_dtype", torch_dtype);
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

/* transformers' _compute_llama3_parameters: wavelengths shorter than
 * original_max / high_freq_factor keep their frequency, longer than
 * original_max / low_freq_factor are divided by factor, and those between
 * are interpolated smoothly. In double; transformers works in F32, which
 * moves an angle by at most ~1e-7 relative. */
void model_config_rope_freqs(const ModelConfig *c, double *inv_freq) {
    const int half = c->head_dim / 2;
    for (int i = 0; i < half; i++) {
        double f = pow((double)c->rope_theta, -2.0 * i / c->head_dim);
        if (c->rope_llama3) {
            const double factor = c->rope_factor, lo = c->rope_low_freq_factor, hi = c->rope_high_freq_factor;
            const double old_len = c->rope_original_max_pos, wavelen = 2.0 * 3.14159265358979323846 / f;
            if (wavelen > old_len / lo) {
                f /= factor;
            } else if (!(wavelen < old_len / hi)) {
                double smooth = (old_len / wavelen - lo) / (hi - lo);
                f = (1.0 - smooth) * f / factor + smooth * f;
            }
        }
        inv_freq[i] = f;
    }
}
