/* cmd.h: the subcommands of the calm CLI (src/main.c, src/cmd_*.c). The CLI is
 * the top of the stack: the only code in src/ that may use shards/ and mpi/. */
#ifndef CALM_CMD_H
#define CALM_CMD_H

#include "compose.h"
#include "dist.h"
#include "model.h"

extern Dist g_dist; /* world of one unless started by mpirun / srun */

int cmd_train(int argc, char **argv);
int cmd_compose(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_forward(int argc, char **argv);
int cmd_data(int argc, char **argv);
/* `calm data ntl` (cmd_ntl.c); cmdline is recorded in what it writes. */
int cmd_data_ntl(int argc, char **argv, const char *cmdline);
int cmd_bench(int argc, char **argv);

/* A plain model (--model) or a composition (--calm) behind one interface. */
typedef struct {
    Model A, B; /* B: the model, or the anchor; A: the augmenting model */
    Composer comp;
    int composed;
} Runner;

/* Exactly one of model_dir / calm_dir. Exits with a message on failure. */
void runner_load(Runner *r, const char *cmd, const char *model_dir, const char *calm_dir);
void runner_free(Runner *r);
const ModelConfig *runner_config(const Runner *r);
/* Forward; logits [Bsz*T, V] are left in runner_logits(). */
float runner_forward(Runner *r, const int *tokens, const int *targets, const float *weights, int Bsz, int T);
const float *runner_logits(const Runner *r);
const float *runner_losses(const Runner *r);
long runner_generate_batch(Runner *r, GenSeq *seqs, int n, const GenOpts *o);
int runner_generate(Runner *r, const int *prompt, int n_prompt, int max_new, float temperature, int top_k,
                    uint64_t seed, int *out);

#endif
