/* main.c: the `calm` command line: dispatch to the commands (commands.h),
 * with MPI set up when an MPI launcher started us. */
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"

Dist g_dist;

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *help;
    int distributed; /* meaningful under mpirun with more than one rank */
} Subcommand;

static const Subcommand subcommands[] = {
    {"train", cmd_train, "train a byte-level LM (data parallel under mpirun/srun)", 1},
    {"compose", cmd_compose, "train a CALM composition of two frozen models", 1},
    {"eval", cmd_eval, "loss / perplexity on text, or exact-match accuracy on a task", 0},
    {"generate", cmd_generate, "continue a prompt (greedy or sampled, KV caches)", 0},
    {"forward", cmd_forward, "write logits for a file as safetensors", 0},
    {"data", cmd_data, "make experiment data (calm data kv | ntl)", 0},
    {"shard", cmd_shard, "LMDB shard stores: build, info, verify, bench", 0},
    {"bench", cmd_bench, "sgemm and training-step throughput", 0},
};

static void usage(FILE *out) {
    fprintf(out, "usage: calm <command> [options]\n\n"
                 "calm composes two frozen language models (CALM, Bansal et al. 2024).\n\ncommands:\n");
    for (size_t i = 0; i < sizeof subcommands / sizeof *subcommands; i++)
        fprintf(out, "  %-10s %s\n", subcommands[i].name, subcommands[i].help);
    fprintf(out, "\n'calm <command> --help' describes each command.\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof subcommands / sizeof *subcommands; i++) {
        if (strcmp(argv[1], subcommands[i].name)) continue;
        dist_init(&g_dist, &argc, &argv);
        if (g_dist.size > 1 && !subcommands[i].distributed) {
            if (g_dist.rank == 0)
                fprintf(stderr, "calm %s runs as one process; start it without mpirun/srun\n", argv[1]);
            dist_finalize(&g_dist);
            return 2;
        }
        int rc = subcommands[i].run(argc - 1, argv + 1);
        dist_finalize(&g_dist);
        return rc;
    }
    fprintf(stderr, "calm: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
