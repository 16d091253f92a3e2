/* generate.c: `calm generate` (continue a prompt) and `calm forward` (logits
 * for a file as safetensors) on a model or a composition. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/options.h"
#include "src/blas.h"
#include "src/common.h"
#include "src/files.h"
#include "src/safetensors.h"
#include "src/sample.h"
#include "src/textdata.h"
#include "src/tokenizer.h"

int cmd_generate(int argc, char **argv) {
    const char *model_dir = NULL, *calm_dir = NULL, *prompt = "";
    int max_new = 200, top_k = 0, threads = 1;
    float temperature = 0.0f;
    long seed = 1;
    const Opt opts[] = {{"model", OPT_STR, &model_dir, "model directory", 1, 0},
                        {"calm", OPT_STR, &calm_dir, "composition directory (instead of --model)", 1, 0},
                        {"prompt", OPT_STR, &prompt, "text to continue", 1, 0},
                        {"max-tokens", OPT_INT, &max_new, "tokens to generate at most", 1, 1 << 20},
                        {"temperature", OPT_FLOAT, &temperature, "sampling temperature (0: greedy)", 0, 100},
                        {"top-k", OPT_INT, &top_k, "sample among the k most likely (0: all)", 0, 1 << 20},
                        {"seed", OPT_LONG, &seed, "sampling seed", 0, 9e18},
                        {"threads", OPT_INT, &threads, "threads", 0, 4096},
                        OPT_END};
    const Command cmd = {"calm generate", "(--model DIR | --calm DIR) [--prompt TEXT] [options]",
                         "Continue a prompt with KV caches, greedily or by temperature / top-k sampling. The "
                         "continuation goes to stdout; generation stops at EOS.",
                         opts, 0, 0};
    char **pos;
    int npos;
    cli_parse(&cmd, argc, argv, &pos, &npos);
    calm_blas_init(threads);
    Runner r;
    runner_load(&r, "calm generate", model_dir, calm_dir);
    size_t plen = strlen(prompt);
    int *ids = xmalloc((plen + 2) * sizeof(int));
    int n_prompt = (int)tok_encode(ids, (const unsigned char *)prompt, plen, 1, 0);
    if (n_prompt >= runner_max_context(&r)) {
        fprintf(stderr, "calm generate: prompt of %d tokens does not fit the context of %d\n", n_prompt, runner_max_context(&r));
        return 2;
    }
    int *out = xmalloc((size_t)max_new * sizeof(int));
    int n = runner_generate(&r, ids, n_prompt, max_new, temperature, top_k, (uint64_t)seed, out);
    unsigned char *bytes = xmalloc((size_t)n + 1);
    size_t nb = tok_decode(bytes, out, (size_t)n);
    fwrite(bytes, 1, nb, stdout);
    fputc('\n', stdout);
    free(bytes);
    free(out);
    free(ids);
    runner_free(&r);
    return 0;
}

/* ---------------------------------------------------------------- forward */

int cmd_forward(int argc, char **argv) {
    const char *model_dir = NULL, *calm_dir = NULL, *input = NULL, *out = NULL;
    int threads = 0;
    const Opt opts[] = {{"model", OPT_STR, &model_dir, "model directory", 1, 0},
                        {"calm", OPT_STR, &calm_dir, "composition directory (instead of --model)", 1, 0},
                        {"input", OPT_STR, &input, "file whose bytes are the input (BOS is prepended)", 1, 0},
                        {"out", OPT_STR, &out, "safetensors file to write with tensor `logits` [T, V]", 1, 0},
                        {"threads", OPT_INT, &threads, "threads (0: cores available)", 0, 4096},
                        OPT_END};
    const Command cmd = {"calm forward", "(--model DIR | --calm DIR) --input FILE --out FILE",
                         "Write the logits of a model or composition for the bytes of a file, for debugging and "
                         "for comparing with other implementations.",
                         opts, 0, 0};
    char **pos;
    int npos;
    cli_parse(&cmd, argc, argv, &pos, &npos);
    if (!input || !out) {
        fprintf(stderr, "calm forward: --input and --out are required\nTry 'calm forward --help'.\n");
        return 2;
    }
    calm_blas_init(threads);
    Runner r;
    runner_load(&r, "calm forward", model_dir, calm_dir);
    char *buf;
    size_t len;
    if (calm_read_file(input, &buf, &len) != 0) cli_fail("forward");
    if (len + 1 > (size_t)runner_max_context(&r)) {
        fprintf(stderr, "calm forward: %s: %zu bytes + BOS exceed the context of %d\n", input, len, runner_max_context(&r));
        return 1;
    }
    int *ids = xmalloc((len + 2) * sizeof(int));
    int T = (int)tok_encode(ids, (const unsigned char *)buf, len, 1, 0);
    runner_forward(&r, ids, NULL, NULL, 1, T);
    StWriteTensor t = {"logits", runner_logits(&r), 2, {T, runner_config(&r)->vocab_size}};
    if (st_write_f32(out, &t, 1, NULL, NULL, 0) != 0) cli_fail("forward");
    free(ids);
    free(buf);
    runner_free(&r);
    return 0;
}
