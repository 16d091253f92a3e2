/* main.c: the `calm` command line: dispatch to the commands (commands.h),
 * with MPI set up when an MPI launcher started us. */
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/options.h"

Dist g_dist;

static const Subcommand subcommands[] = {
    {"train", cmd_train, "train a byte-level LM (data parallel under mpirun/srun)", 1},
    {"compose", cmd_compose, "train a CALM composition of two frozen models", 1},
    {"analyze", cmd_analyze, "which layers to connect: linear CKA between two models' layers (ScaLAPACK over the ranks)", 1},
    {"plan", cmd_plan, "predict step time, bubble and memory of every rank layout for a machine", 0},
    {"eval", cmd_eval, "loss / perplexity on text, or exact-match accuracy on a task", 0},
    {"generate", cmd_generate, "continue a prompt (greedy or sampled, KV caches)", 0},
    {"forward", cmd_forward, "write logits for a file as safetensors", 0},
    {"data", cmd_data, "make experiment data (calm data kv | ntl)", 0},
    {"shard", cmd_shard, "LMDB shard stores: build, info, verify, bench", 0},
    {"tokenize", cmd_tokenize, "text to token ids and back with a model's tokenizer", 0},
    {"bench", cmd_bench, "sgemm and training-step throughput", 0},
    {"init", cmd_init, "write a random-weight model (BF16/F16/F32, sharded) for a config.json", 0},
};

int main(int argc, char **argv) {
    const CommandGroup g = {"calm", "calm composes two frozen language models (CALM, Bansal et al. 2024).",
                            subcommands, (int)(sizeof subcommands / sizeof *subcommands)};
    int status;
    const Subcommand *s = cli_subcommand(&g, argc, argv, &status);
    if (!s) return status;
    dist_init(&g_dist, &argc, &argv);
    if (g_dist.size > 1 && !s->distributed) {
        if (g_dist.rank == 0) fprintf(stderr, "calm %s runs as one process; start it without mpirun/srun\n", s->name);
        dist_finalize(&g_dist);
        return 2;
    }
    int rc = s->run(argc - 1, argv + 1);
    dist_finalize(&g_dist);
    return rc;
}
