/* run.h: what `calm train` and `calm compose` share: the training options,
 * the data sources (text files or an LMDB shard store), data parallelism,
 * checkpoints, resume and stop signals. */
#ifndef CALM_CLI_RUN_H
#define CALM_CLI_RUN_H

#include <cjson/cJSON.h>

#include "cli/options.h"
#include "src/tokenizer.h"
#include "src/train.h"

/* Exit status of a run stopped by SIGUSR1 / SIGTERM after writing its
 * checkpoint: the batch script requeues the job on it (EX_TEMPFAIL). */
#define CALM_EXIT_REQUEUE 75

typedef struct {
    TrainConfig tc;
    long seed;
    int threads, expect_ranks;
    const char *data_dir, *langs;
    float alpha;
    /* checkpoints and signals */
    const char *resume, *ckpt_dir, *stop_signals;
    long ckpt_every;
    int keep;
    /* filled by the command: what a resume must match (created on first
     * use with run_config: usage errors before that leave nothing to free),
     * and who writes */
    cJSON *config, *hyper;
    char layout[128];
    int writes_part;
    /* Optional, collective: run once before training when the run starts
     * fresh, never on a resume, whose checkpoint already holds what it made
     * (calm compose --init-proj lstsq: a resume must not refit). */
    int (*fresh_init)(void *ctx);
    void *fresh_ctx;
} RunOpts;

/* Defaults of both commands (the optimizer's are optim_config_default's). */
void run_opts_default(RunOpts *r);

/* The options both commands take, as Opt table entries. */
#define RUN_OPTS(r)                                                                                              \
    {"data", OPT_STR, &(r).data_dir, "LMDB shard store (calm shard build) instead of text files", 1, 0},        \
        {"alpha", OPT_FLOAT, &(r).alpha, "--data: language sampling p(L) ~ n_L^alpha", 0, 1},                    \
        {"langs", OPT_STR, &(r).langs, "--data: comma-separated languages to use (default: all)", 1, 0},        \
        {"resume", OPT_STR, &(r).resume,                                                                        \
         "auto: continue from the newest complete checkpoint (or start fresh if none); or a step directory", 1, 0}, \
        {"checkpoint-dir", OPT_STR, &(r).ckpt_dir, "checkpoint directory (default: OUT/checkpoints)", 1, 0},     \
        {"checkpoint-every", OPT_LONG, &(r).ckpt_every,                                                         \
         "checkpoint every N steps (0: only when stopped by a signal)", 0, 1e12},                               \
        {"keep", OPT_INT, &(r).keep, "complete checkpoints to keep", 1, 1 << 20},                                \
        {"stop-signals", OPT_STR, &(r).stop_signals,                                                            \
         "signals that checkpoint and stop after the current step: USR1/TERM exit 75 (requeue), INT exits 130", 1, 0}, \
        {"steps", OPT_LONG, &(r).tc.steps, "optimizer steps (0: write the initial weights)", 0, 1e12},                                          \
        {"batch", OPT_INT, &(r).tc.B, "global batch: sequences per step", 1, 1 << 20},                          \
        {"seq-len", OPT_INT, &(r).tc.T, "tokens per sequence (T)", 1, 1 << 20},                                 \
        {"lr", OPT_FLOAT, &(r).tc.optim.lr, "peak learning rate", 0, 10},                                       \
        {"min-lr-frac", OPT_FLOAT, &(r).tc.optim.min_lr_frac, "final learning rate as a fraction of --lr", 0, 1}, \
        {"warmup", OPT_INT, &(r).tc.optim.warmup_steps, "linear warm-up steps", 0, 1e9},                        \
        {"weight-decay", OPT_FLOAT, &(r).tc.optim.weight_decay, "decoupled weight decay (matrices only)", 0, 10}, \
        {"beta1", OPT_FLOAT, &(r).tc.optim.beta1, "AdamW beta1", 0, 0.99999},                                   \
        {"beta2", OPT_FLOAT, &(r).tc.optim.beta2, "AdamW beta2", 0, 0.999999},                                  \
        {"adam-eps", OPT_FLOAT, &(r).tc.optim.eps, "AdamW epsilon", 0, 1},                                      \
        {"clip", OPT_FLOAT, &(r).tc.optim.clip, "global gradient-norm clip (0: off)", 0, 1e9},                  \
        {"seed", OPT_LONG, &(r).seed, "seed for initialisation and data order", 0, 9e18},                       \
        {"threads", OPT_INT, &(r).threads, "threads (0: cores available)", 0, 4096},                            \
        {"log", OPT_STR, &(r).tc.log_path, "JSONL metrics file", 1, 0},                                         \
        {"log-every", OPT_LONG, &(r).tc.log_every, "progress interval in steps", 1, 1e12},                      \
        {"save-every", OPT_LONG, &(r).tc.save_every, "write --out every N steps (0: at the end only)", 0, 1e12}, \
        {"expect-ranks", OPT_INT, &(r).expect_ranks, "fail unless the job runs exactly N ranks (0: no check)", 0, 1 << 24}

/* Checks shared by both commands; splits the global batch over the ranks
 * unless a pipeline does (split = 0). Returns 0 or the exit status. */
int run_opts_check(RunOpts *r, const char *cmd, int nfiles, int split);

/* A store calm may read for a model with this tokenizer and vocabulary, in
 * sequences of T tokens: made by the same tokenizer, ids within the
 * vocabulary, samples at least T long. 0, or -1 after calm_error. */
struct ShardStore;
int run_check_store(struct ShardStore *store, const Tokenizer *tok, int vocab, int T);

/* What a resume must match (created on first use). */
cJSON *run_config(RunOpts *r);

/* Checkpoints, resume, signals, data and the loop. The data must have been
 * made by tok (a store records its tokenizer; text files are tokenized with
 * it) and fit the model's vocabulary. Returns the exit status. */
int run_training(const char *cmd, RunOpts *r, Trainable *tr, const Tokenizer *tok, char **files, int nfiles,
                 int vocab);

#endif
