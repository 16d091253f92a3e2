/* config.h: a model's configuration (ModelConfig), its defaults and
 * invariants, and config.json in the Hugging Face LlamaConfig vocabulary
 * (config.c). Dimension letters as in model.h. */
#ifndef CALM_CONFIG_H
#define CALM_CONFIG_H

typedef struct {
    int dim;         /* C: hidden_size */
    int n_layers;    /* L: num_hidden_layers */
    int n_heads;     /* NH: num_attention_heads */
    int n_kv_heads;  /* NKV: num_key_value_heads (divides NH) */
    int head_dim;    /* HS: head_dim (default C / NH) */
    int hidden_dim;  /* F: intermediate_size */
    int vocab_size;  /* V */
    int max_seq_len; /* max_position_embeddings */
    float norm_eps;  /* rms_norm_eps */
    float rope_theta;
    int tie_embeddings; /* tie_word_embeddings: lm_head shares embed_tokens */
    int bos_id, eos_id, pad_id;
} ModelConfig;

/* Defaults for a byte-level model; callers fill the sizes they care about. */
void model_config_default(ModelConfig *c);
/* Defaults plus the sizes of a new model: n_kv_heads 0 means = n_heads,
 * head_dim = dim / n_heads. */
void model_config_sized(ModelConfig *c, int dim, int n_layers, int n_heads, int n_kv_heads, int hidden_dim,
                        int vocab_size, int max_seq_len);
/* Check invariants (positive sizes, NH % NKV == 0, vocab >= 259, ...). */
int model_config_validate(const ModelConfig *c, const char *origin);
/* Read / write config.json with LlamaConfig keys ("model_type": "llama"). */
int model_config_load(ModelConfig *c, const char *path);
int model_config_save(const ModelConfig *c, const char *path);

#endif
