/* config.h: a model's configuration (ModelConfig), its defaults and
 * invariants, and config.json in the Hugging Face LlamaConfig vocabulary
 * (config.c). Dimension letters as in model.h. */
#ifndef CALM_CONFIG_H
#define CALM_CONFIG_H

#define CALM_MAX_EOS 8

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
    /* rope_scaling {"rope_type": "llama3", ...} (rope_llama3 = 1) rescales
     * the inverse frequencies as transformers' _compute_llama3_parameters;
     * rope_llama3 = 0 is plain RoPE (rope_scaling null or "default"). */
    int rope_llama3;
    float rope_factor, rope_low_freq_factor, rope_high_freq_factor;
    int rope_original_max_pos; /* original_max_position_embeddings */
    int attention_bias;        /* bias on q, k, v and o projections */
    int tie_embeddings; /* tie_word_embeddings: lm_head shares embed_tokens */
    int bos_id, eos_id, pad_id; /* eos_id: the first of eos_ids */
    int n_eos;                  /* eos_token_id given as a list: its entries (1: a number) */
    int eos_ids[CALM_MAX_EOS];
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
/* The same with another "torch_dtype" than "float32" (a 16-bit model). */
int model_config_save_dtype(const ModelConfig *c, const char *path, const char *torch_dtype);
/* The HS/2 RoPE inverse frequencies, theta^(-2i/HS), rescaled by
 * rope_scaling when it is llama3. */
void model_config_rope_freqs(const ModelConfig *c, double *inv_freq);

#endif
