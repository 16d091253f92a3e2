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
    TokIds ids = {0};
    if (tokenizer_encode_prompt(r.tok, prompt, strlen(prompt), &ids) != 0) cli_fail("generate: --prompt");
    int n_prompt = (int)ids.n;
    if (n_prompt >= runner_max_context(&r)) {
        fprintf(stderr, "calm generate: prompt of %d tokens does not fit the context of %d\n", n_prompt, runner_max_context(&r));
        return 2;
    }
    int *out = xmalloc((size_t)max_new * sizeof(int));
    int n = runner_generate(&r, ids.v, n_prompt, max_new, temperature, top_k, (uint64_t)seed, out);
    char *text;
    size_t nb;
    if (tokenizer_decode(r.tok, out, (size_t)n, 1, &text, &nb) != 0) cli_fail("generate");
    fwrite(text, 1, nb, stdout);
    fputc('\n', stdout);
    free(text);
    free(out);
    tok_ids_free(&ids);
    runner_free(&r);
    return 0;
}

/* ---------------------------------------------------------------- forward */

int cmd_forward(int argc, char **argv) {
    const char *model_dir = NULL, *calm_dir = NULL, *input = NULL, *out = NULL;
    int threads = 0;
    const Opt opts[] = {{"model", OPT_STR, &model_dir, "model directory", 1, 0},
                        {"calm", OPT_STR, &calm_dir, "composition directory (instead of --model)", 1, 0},
                        {"input", OPT_STR, &input, "file whose text is the input (tokenized as the model's "
                         "tokenizer does, with its BOS)", 1, 0},
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
    TokIds ids = {0};
    if (tokenizer_encode_prompt(r.tok, buf, len, &ids) != 0) cli_fail("forward: --input");
    if (ids.n > (size_t)runner_max_context(&r)) {
        fprintf(stderr, "calm forward: %s: %zu tokens exceed the context of %d\n", input, ids.n, runner_max_context(&r));
        return 1;
    }
    int T = (int)ids.n;
    runner_forward(&r, ids.v, NULL, NULL, 1, T);
    StWriteTensor t = {"logits", runner_logits(&r), 2, {T, runner_config(&r)->vocab_size}};
    if (st_write_f32(out, &t, 1, NULL, NULL, 0) != 0) cli_fail("forward");
    tok_ids_free(&ids);
    free(buf);
    runner_free(&r);
    return 0;
}
