/* commands.h: the commands of the one binary, build/calm (cli/main.c), one
 * file per command family. cli/ is the top layer: the only one that may use
 * src/, shards/ and mpi/ together. */
#ifndef CALM_CLI_COMMANDS_H
#define CALM_CLI_COMMANDS_H

#include "mpi/dist.h"
#include "src/compose.h"
#include "src/model.h"
#include "src/tokenizer.h"

extern Dist g_dist; /* world of one unless started by mpirun / srun */

/* Each takes argv[0] = its name and returns the exit status: 0 ok,
 * 1 failure, 2 usage error. */
int cmd_train(int argc, char **argv);    /* train.c */
int cmd_compose(int argc, char **argv);  /* compose.c */
int cmd_eval(int argc, char **argv);     /* eval.c */
int cmd_plan(int argc, char **argv);     /* plan.c: predict rank layouts' step time and memory */
int cmd_analyze(int argc, char **argv);  /* analyze.c: CKA between two models' layers */
int cmd_generate(int argc, char **argv); /* generate.c */
int cmd_forward(int argc, char **argv);  /* generate.c */
int cmd_data(int argc, char **argv);     /* data_kv.c: calm data kv | ntl */
int cmd_data_kv(int argc, char **argv);  /* data_kv.c */
int cmd_data_ntl(int argc, char **argv); /* data_ntl.c */
int cmd_bench(int argc, char **argv);    /* bench.c */
int cmd_tokenize(int argc, char **argv); /* tokenize.c */
int cmd_init(int argc, char **argv);     /* init.c: a random-weight model directory */
/* `calm shard build|info|verify|bench` (shard.c); returns instead of exiting
 * on every error, so that tests can run it in process. */
int cmd_shard(int argc, char **argv);

/* A plain model (--model) or a composition (--calm) behind one interface
 * (runner.c), for eval, generate and forward. */
typedef struct {
    Model A, B; /* B: the model, or the anchor; A: the augmenting model */
    Composer comp;
    int composed;
    Tokenizer *tok; /* the model's (or both models') tokenizer */
} Runner;

/* Exactly one of model_dir / calm_dir. Exits with a message on failure. */
void runner_load(Runner *r, const char *cmd, const char *model_dir, const char *calm_dir);
void runner_free(Runner *r);
const ModelConfig *runner_config(const Runner *r);
/* The longest context both models take. */
int runner_max_context(const Runner *r);
/* Forward; logits [Bsz*T, V] are left in runner_logits(). */
float runner_forward(Runner *r, const int *tokens, const int *targets, const float *weights, int Bsz, int T);
const float *runner_logits(const Runner *r);
const float *runner_losses(const Runner *r);
long runner_generate_batch(Runner *r, GenSeq *seqs, int n, const GenOpts *o);
int runner_generate(Runner *r, const int *prompt, int n_prompt, int max_new, float temperature, int top_k,
                    uint64_t seed, int *out);

#endif
