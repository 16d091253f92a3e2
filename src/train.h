/* train.h: the language-model training loop, independent of where batches
 * come from (text files here, LMDB shards or MPI replicas in upper layers). */
#ifndef CALM_TRAIN_H
#define CALM_TRAIN_H

#include <stdint.h>

#include "model.h"
#include "optim.h"

/* Fill rows [row0, row0+B) of the global batch for `step`, from (seed, step)
 * alone. Returns 0, or -1 with calm_error set. */
typedef int (*BatchFn)(void *ctx, long step, int row0, int B, int T, int *tokens, int *targets, float *weights);

typedef struct {
    int B, T;            /* per-process batch rows and sequence length */
    long steps;          /* total optimizer steps */
    OptimConfig optim;
    const char *out_dir; /* model directory written at save points and at the end */
    long save_every;     /* 0: only at the end */
    const char *log_path; /* JSONL metrics, NULL: none */
    long log_every;      /* progress line / log interval in steps */
    /* Hook for data parallelism: called with the flat gradient and the loss
     * sum after backward; must turn them into global averages. NULL: one process. */
    void (*reduce)(void *ctx, float *grads, size_t n, double *loss_and_weight);
    void *reduce_ctx;
    int is_main;         /* prints and writes files */
    int row0;            /* first row of the global batch this process trains on */
    int world;           /* processes sharing each step (tokens/s counts them all) */
} TrainConfig;

typedef struct {
    float *adam_m, *adam_v;
    long step; /* optimizer steps already taken */
} TrainState;

void train_state_init(TrainState *s, const Model *m);
void train_state_free(TrainState *s);
/* Load trainer_state.safetensors from dir if present (returns 1), 0 if absent, -1 on error. */
int train_state_load(TrainState *s, const Model *m, const char *dir);
int train_save(const Model *m, const TrainState *s, const char *dir);

/* Run steps [s->step, cfg->steps). Returns 0 or -1. */
int train_run(Model *m, TrainState *s, const TrainConfig *cfg, BatchFn batch, void *batch_ctx);

#endif
