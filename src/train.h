/* train.h: the training loop, shared by LM training and composition training,
 * and independent of where batches come from (text files here, LMDB shards or
 * MPI replicas in upper layers). */
#ifndef CALM_TRAIN_H
#define CALM_TRAIN_H

#include <stdint.h>

#include "src/model.h"
#include "src/optim.h"

/* Fill rows [row0, row0+B) of the global batch for `step`, from (seed, step)
 * alone. Returns 0, or -1 with calm_error set. */
typedef int (*BatchFn)(void *ctx, long step, int row0, int B, int T, int *tokens, int *targets, float *weights);

/* What is trained: a flat parameter range with its gradients and table, a
 * function that zeroes the gradients, runs forward and backward and returns
 * the mean loss, and one that writes the trained artefact to a directory. */
typedef struct {
    void *ctx;
    float *params, *grads;
    size_t n;
    const ParamInfo *table; /* weight decay applies to 2-D tensors only */
    int n_table;
    float (*step)(void *ctx, const int *tokens, const int *targets, const float *weights, int B, int T);
    int (*save)(void *ctx, const char *dir);
    /* Optional, for parameters spread over processes (pipeline): collective;
     * afterwards the writing process's x [n] holds every process's own part
     * of x. Returns 1 on the process that writes. NULL: this process holds
     * everything. train_save gathers the optimizer moments with it. */
    int (*gather)(void *ctx, float *x, size_t n);
} Trainable;

/* A whole model trained with full gradients. */
Trainable trainable_model(Model *m);

typedef struct {
    int B, T;            /* per-process batch rows and sequence length */
    long steps;          /* total optimizer steps */
    OptimConfig optim;
    const char *out_dir; /* directory written at save points and at the end */
    long save_every;     /* 0: only at the end */
    const char *log_path; /* JSONL metrics, NULL: none */
    long log_every;      /* progress line / log interval in steps */
    /* Hook for data parallelism: called with the flat gradient and
     * {loss sum, weight sum} after backward; must turn them into global
     * values. NULL: one process. */
    void (*reduce)(void *ctx, float *grads, size_t n, double *loss_and_weight);
    void *reduce_ctx;
    int is_main;         /* prints and writes files */
    int row0;            /* first row of the global batch this process trains on */
    int world;           /* batches of B rows per step over all processes (tokens/s) */
    /* Parameters spread over processes: the global sum of squares of the
     * reduced gradient, each parameter counted once (ctx = reduce_ctx).
     * NULL: the sum over this process's gradient. */
    double (*grad_sq)(void *ctx, const float *grads, size_t n);
    int save_all;        /* every process takes part in saving (Trainable.save and gather are collective) */
    /* Checkpoints (checkpoint.h) every ckpt->every steps and when a stop is
     * requested; NULL: none. Its collectives also combine stop requests. */
    const struct CkptConfig *ckpt;
} TrainConfig;

/* What train_run returns when a stop was requested (train_request_stop on
 * any process): the checkpoint of the last finished step is written. */
#define TRAIN_STOPPED 1

/* Async-signal-safe: ask the running train_run to checkpoint after the
 * current step and return TRAIN_STOPPED. sig is remembered (the largest
 * over all processes wins) for train_stop_signal. */
void train_request_stop(int sig);
int train_stop_signal(void);

typedef struct {
    float *adam_m, *adam_v;
    size_t n;
    long step; /* optimizer steps already taken */
} TrainState;

void train_state_init(TrainState *s, size_t n);
void train_state_free(TrainState *s);
/* Load trainer_state.safetensors from dir if present (returns 1), 0 if absent, -1 on error. */
int train_state_load(TrainState *s, const char *dir);
/* Write the artefact (Trainable.save) and then the trainer state beside it. */
int train_save(const Trainable *t, const TrainState *s, const char *dir);

/* Run steps [s->step, cfg->steps). Returns 0, TRAIN_STOPPED or -1. */
int train_run(const Trainable *t, TrainState *s, const TrainConfig *cfg, BatchFn batch, void *batch_ctx);

#endif
