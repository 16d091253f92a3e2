/* cmd_infer.c: `calm eval`, `calm generate`, `calm forward` on a model
 * (--model) or a composition (--calm). */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blas.h"
#include "checkpoint.h"
#include "cli.h"
#include "cmd.h"
#include "common.h"
#include "safetensors.h"
#include "sample.h"
#include "textdata.h"
#include "tokenizer.h"

/* ---------------------------------------------------------------- runner */

void runner_load(Runner *r, const char *cmd, const char *model_dir, const char *calm_dir) {
    memset(r, 0, sizeof *r);
    if ((model_dir != NULL) == (calm_dir != NULL)) {
        fprintf(stderr, "%s: give exactly one of --model DIR and --calm DIR\nTry '%s --help'.\n", cmd, cmd);
        exit(2);
    }
    if (model_dir) {
        if (model_load_dir(&r->B, model_dir) != 0) cli_fail(cmd);
        return;
    }
    if (compose_load_dir(&r->comp, calm_dir, &r->A, &r->B) != 0) cli_fail(cmd);
    r->composed = 1;
}

void runner_free(Runner *r) {
    if (r->composed) {
        compose_free(&r->comp);
        model_free(&r->A);
    }
    model_free(&r->B);
}

const ModelConfig *runner_config(const Runner *r) { return &r->B.cfg; }

float runner_forward(Runner *r, const int *tokens, const int *targets, const float *weights, int Bsz, int T) {
    if (r->composed) return compose_forward(&r->comp, tokens, targets, weights, Bsz, T);
    return model_forward(&r->B, tokens, targets, weights, Bsz, T, NULL, NULL);
}

const float *runner_logits(const Runner *r) { return r->B.acts.logits; }
const float *runner_losses(const Runner *r) { return r->B.acts.losses; }

int runner_generate(Runner *r, const int *prompt, int n_prompt, int max_new, float temperature, int top_k,
                    uint64_t seed, int *out) {
    if (r->composed) return compose_generate(&r->comp, prompt, n_prompt, max_new, temperature, top_k, seed, out);
    return generate(&r->B, prompt, n_prompt, max_new, temperature, top_k, seed, out);
}

static int max_context(const Runner *r) {
    int T = r->B.cfg.max_seq_len;
    if (r->composed && r->A.cfg.max_seq_len < T) T = r->A.cfg.max_seq_len;
    return T;
}

/* ------------------------------------------------------------------- eval */

/* Exact-match accuracy of greedy answers on JSON Lines {"prompt", "target"}. */
static int eval_task(Runner *r, const char *path, long limit, int json_only) {
    FILE *f = fopen(path, "r");
    if (!f) return calm_error("%s: cannot open", path);
    char *line = NULL;
    size_t cap = 0;
    long lineno = 0, n = 0, correct = 0;
    int rc = 0;
    while (getline(&line, &cap, f) > 0 && (limit <= 0 || n < limit)) {
        lineno++;
        if (line[strspn(line, " \t\r\n")] == 0) continue;
        cJSON *o = cJSON_Parse(line);
        const cJSON *p = o ? cJSON_GetObjectItemCaseSensitive(o, "prompt") : NULL;
        const cJSON *t = o ? cJSON_GetObjectItemCaseSensitive(o, "target") : NULL;
        if (!cJSON_IsString(p) || !cJSON_IsString(t)) {
            cJSON_Delete(o);
            rc = calm_error("%s:%ld: expected a JSON object with string fields \"prompt\" and \"target\"", path, lineno);
            break;
        }
        size_t pl = strlen(p->valuestring), tl = strlen(t->valuestring);
        int *ids = xmalloc((pl + 2) * sizeof(int));
        int np = (int)tok_encode(ids, (const unsigned char *)p->valuestring, pl, 1, 0);
        int max_new = (int)tl + 1; /* the answer and its EOS */
        if (np + max_new > max_context(r)) {
            free(ids);
            cJSON_Delete(o);
            rc = calm_error("%s:%ld: prompt + target (%zu tokens) exceed the model's context", path, lineno, pl + tl + 2);
            break;
        }
        int *out = xmalloc((size_t)max_new * sizeof(int));
        int k = runner_generate(r, ids, np, max_new, 0.0f, 0, 0, out);
        /* correct: exactly the target bytes, then EOS */
        int ok = k == max_new && out[tl] == TOK_EOS;
        for (size_t i = 0; ok && i < tl; i++) ok = out[i] == (unsigned char)t->valuestring[i];
        correct += ok;
        n++;
        free(out);
        free(ids);
        cJSON_Delete(o);
    }
    free(line);
    fclose(f);
    if (rc) return rc;
    if (n == 0) return calm_error("%s: no examples", path);
    if (!json_only) calm_log("%s: %ld of %ld exact", path, correct, n);
    printf("{\"examples\": %ld, \"correct\": %ld, \"accuracy\": %.6f}\n", n, correct, (double)correct / n);
    return 0;
}

int cmd_eval(int argc, char **argv) {
    const char *model_dir = NULL, *calm_dir = NULL, *task = NULL;
    int T = 256, B = 8, threads = 0;
    long limit = 0;
    const Opt opts[] = {{"model", OPT_STR, &model_dir, "model directory", 1, 0},
                        {"calm", OPT_STR, &calm_dir, "composition directory (instead of --model)", 1, 0},
                        {"task", OPT_STR, &task, "JSON Lines {prompt, target}: exact-match accuracy of greedy answers", 1, 0},
                        {"limit", OPT_LONG, &limit, "--task: score at most N examples (0: all)", 0, 1e12},
                        {"seq-len", OPT_INT, &T, "window length", 1, 1 << 20},
                        {"batch", OPT_INT, &B, "windows per forward pass", 1, 1 << 20},
                        {"threads", OPT_INT, &threads, "threads (0: cores available)", 0, 4096},
                        OPT_END};
    const Command cmd = {"calm eval", "(--model DIR | --calm DIR) (--task FILE | TEXT_FILE...)",
                         "Loss (nats/token), bits per token and perplexity on text files over non-overlapping "
                         "windows that cover every token once; or, with --task, exact-match accuracy of greedy "
                         "answers (answer bytes followed by EOS).",
                         opts, 0, -1};
    char **files;
    int nfiles;
    cli_parse(&cmd, argc, argv, &files, &nfiles);
    if ((task != NULL) == (nfiles > 0)) {
        fprintf(stderr, "calm eval: give either --task FILE or text files\nTry 'calm eval --help'.\n");
        return 2;
    }
    calm_blas_init(threads);
    Runner r;
    runner_load(&r, "calm eval", model_dir, calm_dir);
    if (task) {
        if (eval_task(&r, task, limit, 0) != 0) cli_fail("eval");
        runner_free(&r);
        return 0;
    }
    if (T > max_context(&r)) T = max_context(&r);
    TextData d;
    if (textdata_load(&d, (const char *const *)files, nfiles) != 0) cli_fail("eval");
    long nw = textdata_eval_windows(&d, T);
    int *tok = xmalloc((size_t)B * T * sizeof(int)), *tgt = xmalloc((size_t)B * T * sizeof(int));
    float *w = xmalloc((size_t)B * T * sizeof(float));
    double loss_sum = 0, count = 0;
    for (long w0 = 0; w0 < nw; w0 += B) {
        int b = (int)(nw - w0 < B ? nw - w0 : B);
        for (int i = 0; i < b; i++)
            textdata_eval_window(&d, w0 + i, T, tok + (size_t)i * T, tgt + (size_t)i * T, w + (size_t)i * T);
        runner_forward(&r, tok, tgt, w, b, T);
        const float *losses = runner_losses(&r);
        for (size_t i = 0; i < (size_t)b * T; i++) {
            loss_sum += losses[i];
            count += w[i];
        }
    }
    double loss = loss_sum / count;
    printf("{\"tokens\": %.0f, \"loss\": %.6f, \"bits_per_token\": %.6f, \"perplexity\": %.4f}\n", count, loss,
           loss / log(2.0), exp(loss));
    free(tok);
    free(tgt);
    free(w);
    textdata_free(&d);
    runner_free(&r);
    return 0;
}

/* --------------------------------------------------------------- generate */

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
    if (n_prompt >= max_context(&r)) {
        fprintf(stderr, "calm generate: prompt of %d tokens does not fit the context of %d\n", n_prompt, max_context(&r));
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
    if (len + 1 > (size_t)max_context(&r)) {
        fprintf(stderr, "calm forward: %s: %zu bytes + BOS exceed the context of %d\n", input, len, max_context(&r));
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
