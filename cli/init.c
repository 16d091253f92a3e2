/* init.c: `calm init`, a random-weight model directory from a config.json,
 * e.g. a Llama-3.2-1B / 3B / 3.1-8B configuration for benchmarks, written
 * without ever holding the model in memory (model_write_random). */
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/options.h"
#include "src/modeldir.h"

int cmd_init(int argc, char **argv) {
    const char *config = NULL, *out = NULL, *dtype = "bf16";
    uint64_t shard = (uint64_t)5 << 30, seed = 1;
    const Opt opts[] = {
        {"config", OPT_STR, &config, "config.json with LlamaConfig keys (a Hugging Face model's config)", 1, 0},
        {"out", OPT_STR, &out, "model directory to write (created if missing)", 1, 0},
        {"dtype", OPT_STR, &dtype, "bf16 (default), f16 or f32", 1, 0},
        {"shard-size", OPT_SIZE, &shard, "largest shard file (K, M, G suffixes; default 5G as transformers; "
                                         "0: one model.safetensors)", 0, 1e18},
        {"seed", OPT_SIZE, &seed, "random seed (default 1)", 0, 1e18},
        OPT_END};
    const Command cmd = {"calm init", "--config CONFIG.json --out DIR [options]",
                         "Write a Hugging Face model directory with random weights for the configuration: "
                         "matrices normal(0, 0.02) as `calm train` initialises them (the same values for the same "
                         "seed), norm gains 1, biases 0, in the chosen dtype. Larger models are split into "
                         "model-0000i-of-0000n.safetensors shards with model.safetensors.index.json. Tensors are "
                         "generated and written one chunk at a time, so an 8B model needs a few MB of memory; "
                         "every file is written atomically and config.json last.",
                         opts, 0, 0};
    char **pos;
    int npos;
    cli_parse(&cmd, argc, argv, &pos, &npos);
    if (!config || !out) return cli_usage_error(&cmd, "--config and --out are required");
    WmDtype d;
    if (strcmp(dtype, "bf16") == 0) d = WM_BF16;
    else if (strcmp(dtype, "f16") == 0) d = WM_F16;
    else if (strcmp(dtype, "f32") == 0) d = WM_F32;
    else return cli_usage_error(&cmd, "--dtype must be bf16, f16 or f32, not %s", dtype);
    ModelConfig c;
    if (model_config_load(&c, config) != 0) return cli_error("init");
    if (model_write_random(&c, out, d, shard, seed) != 0) return cli_error("init");
    return 0;
}
