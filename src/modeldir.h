/* modeldir.h: model directories and trainer state on disk.
 *
 * A model directory is a plain Hugging Face model, loadable with
 * LlamaForCausalLM.from_pretrained(dir):
 *   dir/config.json          LlamaConfig keys (model_config_save)
 *   dir/model.safetensors    F32 weights under HF names, __metadata__ {"format": "pt"}
 * Loading also reads what transformers writes for large models: 16-bit
 * weights, and model.safetensors.index.json with model-0000i-of-0000n shards.
 * Optimizer state lives in its own file, CALM_TRAINER_STATE_FILE, next to (or
 * away from) the model directory, so resuming needs nothing HF would trip on.
 * Every file is written atomically (temp file, fsync, rename). */
#ifndef CALM_MODELDIR_H
#define CALM_MODELDIR_H

#include <stddef.h>

#include "src/model.h"
#include "src/safetensors.h"

#define CALM_CONFIG_FILE "config.json"
#define CALM_WEIGHTS_FILE "model.safetensors"
#define CALM_WEIGHTS_INDEX_FILE "model.safetensors.index.json"
/* Conventional name of the trainer state file inside a checkpoint directory. */
#define CALM_TRAINER_STATE_FILE "trainer_state.safetensors"

/* Create dir (mkdir -p) and write config.json and model.safetensors. When the
 * embeddings are tied, lm_head.weight is not written (as transformers does). */
int model_save_dir(const Model *m, const char *dir);

/* Where the weights come from: model.safetensors, or (when it is absent) the
 * shards that model.safetensors.index.json ({"weight_map": {tensor: file}})
 * names; a part opens only the shards holding its own tensors. */
typedef struct {
    int l0, l1, head; /* the part (model_init_part); l1 = -1: to the last block */
    /* Frozen (a model that is never trained): matrices are used in place in
     * the mapped files, BF16/F16 staying 16-bit; only norms and biases are
     * copied to F32. The model then supports GRAD_INPUT only. */
    int frozen;
    /* out: files opened and tensors read or mapped (what the part needed) */
    int files_opened, tensors_read;
} ModelLoadOpts;

/* Read config.json, model_init*(m, ...) and fill every parameter of the part
 * (F32, F16, BF16 or F64 converted to F32; frozen: see above). An untied
 * config needs lm_head.weight; a tied one ignores it if present. Tensors the
 * part does not hold are not read. On failure m is freed and -1 returned, the
 * error naming the file and tensor. */
int model_load_dir_opts(Model *m, const char *dir, ModelLoadOpts *o);
/* The whole model, F32 (for training). */
int model_load_dir(Model *m, const char *dir);
/* The whole model, frozen. */
int model_load_dir_frozen(Model *m, const char *dir);
/* A part, F32. */
int model_load_dir_part(Model *m, const char *dir, int l0, int l1, int head);

/* Write a model directory with random weights (model_write.c): the values
 * model_init_random(seed) gives the whole model, rounded to dtype, streamed
 * tensor by tensor (a few MB of memory whatever the model's size). With
 * shard_bytes > 0, tensors go in table order into model-0000i-of-0000n
 * files of at most that size (a larger tensor alone in its own) plus the
 * index; otherwise, or if all fits, one model.safetensors. Each file is
 * written atomically and config.json last. */
int model_write_random(const ModelConfig *cfg, const char *dir, WmDtype dtype, uint64_t shard_bytes, uint64_t seed);

/* The files holding a directory's weights: model.safetensors, or the index
 * followed by the shards it names (sorted, each once). malloc'd strings in a
 * malloc'd array. */
int model_weight_files(const char *dir, char ***paths, int *n);

/* AdamW moments as tensors "adam.m" and "adam.v" of shape [n], plus string
 * metadata (step, seed, data position, ...). */
int trainer_state_save(const char *path, const float *adam_m, const float *adam_v, size_t n,
                       const char *const *keys, const char *const *values, int n_meta);

/* Read both moments (each must have shape [n]). If f_out is non-NULL it
 * receives the open file on success, for st_meta(); the caller st_close()s
 * it. On failure nothing is left open. */
int trainer_state_load(const char *path, float *adam_m, float *adam_v, size_t n, StFile *f_out);

#endif
