/* main.c: the `calm` command line. This file is the top of the stack: the
 * only one in src/ that may reach into shards/ and mpi/; everything else in
 * src/ is single-process math that knows nothing of either. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "blas.h"
#include "checkpoint.h"
#include "cli.h"
#include "common.h"
#include "dist.h"
#include "model.h"
#include "sample.h"
#include "shards.h"
#include "textdata.h"
#include "tokenizer.h"
#include "train.h"

int cmd_bench(int argc, char **argv);

static Dist g_dist; /* world of one unless started by mpirun / srun */

/* ------------------------------------------------------------------ train */

typedef struct {
    int dim, layers, heads, kv_heads, ffn, vocab, max_seq_len, tie;
} SizeFlags;

static int text_batch(void *ctx, long step, int row0, int B, int T, int *tokens, int *targets, float *weights) {
    const TextData *d = ((void **)ctx)[0];
    uint64_t seed = *(uint64_t *)((void **)ctx)[1];
    textdata_batch(d, seed, step, row0, B, T, tokens, targets, weights);
    return 0;
}

/* Batches from an LMDB shard store; every rank reads the store itself. */
typedef struct {
    ShardStore *store;
    ShardLoader *loader;
    int n_replicas;
} ShardSource;

static int shard_batch(void *ctx, long step, int row0, int B, int T, int *tokens, int *targets, float *weights) {
    ShardSource *s = ctx;
    return shard_loader_batch(s->loader, step, row0 / B, s->n_replicas, B, T, tokens, targets, weights);
}

static int shard_source_open(ShardSource *s, const char *dir, uint64_t seed, float alpha, const char *langs, int T,
                             int vocab, int n_replicas) {
    memset(s, 0, sizeof *s);
    if (shard_store_open(&s->store, dir) != 0) return -1;
    const ShardInfo *info = shard_store_info(s->store);
    if (strcmp(info->tokenizer, TOK_ID) != 0)
        return calm_error("%s: tokenizer '%s' is not calm's byte tokenizer '%s'", dir, info->tokenizer, TOK_ID);
    if (info->vocab_size > vocab)
        return calm_error("%s: store vocabulary %d exceeds the model's %d", dir, info->vocab_size, vocab);
    if (T > info->seq_len)
        return calm_error("%s: --seq-len %d exceeds the store's sample length %d", dir, T, info->seq_len);
    ShardLoaderOpts o;
    shard_loader_opts_default(&o);
    o.seed = seed;
    o.alpha = alpha;
    o.langs = langs;
    s->n_replicas = n_replicas;
    return shard_loader_open(&s->loader, s->store, &o);
}

static void shard_source_close(ShardSource *s) {
    if (s->loader) shard_loader_close(s->loader);
    if (s->store) shard_store_close(s->store);
}

static int is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int cmd_train(int argc, char **argv) {
    SizeFlags z = {256, 4, 4, 0, 0, TOK_VOCAB_DEFAULT, 1024, 0};
    TrainConfig tc = {.B = 8, .T = 256, .steps = 1000, .log_every = 10, .is_main = 1};
    optim_config_default(&tc.optim);
    tc.optim.lr = 3e-3f;
    long seed = 1;
    int threads = 0, resume = 0;
    const char *init = NULL, *data_dir = NULL, *langs = NULL;
    float alpha = 0.3f;
    const Opt opts[] = {
        {"data", OPT_STR, &data_dir, "LMDB shard store (calm shard build) instead of text files", 1, 0},
        {"alpha", OPT_FLOAT, &alpha, "--data: language sampling p(L) ~ n_L^alpha", 0, 1},
        {"langs", OPT_STR, &langs, "--data: comma-separated languages to use (default: all)", 1, 0},
        {"out", OPT_STR, &tc.out_dir, "model directory to write (config.json, model.safetensors, trainer state)", 1, 0},
        {"model", OPT_STR, &init, "start from this model directory instead of random weights", 1, 0},
        {"resume", OPT_FLAG, &resume, "continue the run saved in --out (weights, optimizer, step)", 1, 0},
        {"steps", OPT_LONG, &tc.steps, "optimizer steps", 1, 1e12},
        {"batch", OPT_INT, &tc.B, "sequences per step (B)", 1, 1 << 20},
        {"seq-len", OPT_INT, &tc.T, "tokens per sequence (T)", 1, 1 << 20},
        {"lr", OPT_FLOAT, &tc.optim.lr, "peak learning rate", 0, 10},
        {"min-lr-frac", OPT_FLOAT, &tc.optim.min_lr_frac, "final learning rate as a fraction of --lr", 0, 1},
        {"warmup", OPT_INT, &tc.optim.warmup_steps, "linear warm-up steps", 0, 1e9},
        {"weight-decay", OPT_FLOAT, &tc.optim.weight_decay, "decoupled weight decay (matrices only)", 0, 10},
        {"beta1", OPT_FLOAT, &tc.optim.beta1, "AdamW beta1", 0, 0.99999},
        {"beta2", OPT_FLOAT, &tc.optim.beta2, "AdamW beta2", 0, 0.999999},
        {"adam-eps", OPT_FLOAT, &tc.optim.eps, "AdamW epsilon", 0, 1},
        {"clip", OPT_FLOAT, &tc.optim.clip, "global gradient-norm clip (0: off)", 0, 1e9},
        {"seed", OPT_LONG, &seed, "seed for initialisation and data order", 0, 9e18},
        {"threads", OPT_INT, &threads, "threads (0: cores available)", 0, 4096},
        {"log", OPT_STR, &tc.log_path, "JSONL metrics file", 1, 0},
        {"log-every", OPT_LONG, &tc.log_every, "progress interval in steps", 1, 1e12},
        {"save-every", OPT_LONG, &tc.save_every, "write --out every N steps (0: at the end only)", 0, 1e12},
        {"dim", OPT_INT, &z.dim, "new model: hidden size", 2, 65536},
        {"layers", OPT_INT, &z.layers, "new model: layers", 1, 4096},
        {"heads", OPT_INT, &z.heads, "new model: attention heads", 1, 4096},
        {"kv-heads", OPT_INT, &z.kv_heads, "new model: key/value heads (0: = heads)", 0, 4096},
        {"ffn", OPT_INT, &z.ffn, "new model: MLP width (0: about 8/3 dim, multiple of 32)", 0, 1 << 20},
        {"vocab", OPT_INT, &z.vocab, "new model: vocabulary (>= 259)", TOK_N_SPECIAL, 1 << 20},
        {"max-seq-len", OPT_INT, &z.max_seq_len, "new model: max_position_embeddings", 1, 1 << 20},
        {"tie", OPT_FLAG, &z.tie, "new model: tie lm_head to the embedding", 1, 0},
        OPT_END};
    const Command cmd = {"calm train", "--out DIR [options] (--data STORE | TEXT_FILE...)",
                         "Train a byte-level Llama-style LM on an LMDB shard store or on text files (each file one "
                         "document), from random weights, from --model, or continuing a saved run with --resume. "
                         "--batch is the global batch: under mpirun/srun each rank trains its share of it.",
                         opts, 0, -1};
    char **files;
    int nfiles;
    cli_parse(&cmd, argc, argv, &files, &nfiles);
    if (!tc.out_dir) {
        fprintf(stderr, "calm train: --out DIR is required\nTry 'calm train --help'.\n");
        return 2;
    }
    if (tc.optim.warmup_steps > tc.steps) tc.optim.warmup_steps = (int)tc.steps;
    tc.optim.total_steps = (int)tc.steps;
    if (tc.B % g_dist.size) {
        fprintf(stderr, "calm train: --batch %d (global) is not divisible by %d ranks\n", tc.B, g_dist.size);
        return 2;
    }
    /* Data parallel: --batch is the global batch; rank r trains rows
     * [r B/size, (r+1) B/size) of it, so any world size sees the same data. */
    tc.B /= g_dist.size;
    tc.row0 = g_dist.rank * tc.B;
    tc.world = g_dist.size;
    tc.is_main = g_dist.rank == 0;
    if (g_dist.size > 1) {
        tc.reduce = dist_train_reduce;
        tc.reduce_ctx = &g_dist;
    }
    calm_blas_init(threads);

    if ((nfiles > 0) == (data_dir != NULL)) {
        fprintf(stderr, "calm train: give either --data STORE or text files\nTry 'calm train --help'.\n");
        return 2;
    }
    TextData data = {0};
    if (!data_dir) {
        if (textdata_load(&data, (const char *const *)files, nfiles) != 0) cli_fail("train");
        if (data.n <= (size_t)tc.T + 1) {
            fprintf(stderr, "calm train: the text (%zu tokens) is shorter than --seq-len %d + 1\n", data.n, tc.T);
            return 1;
        }
    }
    Model m;
    const char *from = resume && is_dir(tc.out_dir) ? tc.out_dir : init;
    if (from) {
        if (model_load_dir(&m, from) != 0) cli_fail("train");
        calm_log("loaded %s (%zu parameters)", from, m.num_params);
    } else {
        ModelConfig c;
        model_config_default(&c);
        c.dim = z.dim;
        c.n_layers = z.layers;
        c.n_heads = z.heads;
        c.n_kv_heads = z.kv_heads ? z.kv_heads : z.heads;
        c.head_dim = z.heads > 0 ? z.dim / z.heads : 0;
        c.hidden_dim = z.ffn ? z.ffn : ((8 * z.dim / 3 + 31) / 32) * 32;
        c.vocab_size = z.vocab;
        c.max_seq_len = z.max_seq_len;
        c.tie_embeddings = z.tie;
        if (z.dim % z.heads) {
            fprintf(stderr, "calm train: --dim %d is not divisible by --heads %d\n", z.dim, z.heads);
            return 2;
        }
        if (model_init(&m, &c) != 0) cli_fail("train");
        model_init_random(&m, (uint64_t)seed);
        calm_log("new model: dim %d, %d layers, %d heads (%d kv), ffn %d, vocab %d: %zu parameters", c.dim,
                 c.n_layers, c.n_heads, c.n_kv_heads, c.hidden_dim, c.vocab_size, m.num_params);
    }
    if (tc.T > m.cfg.max_seq_len) {
        fprintf(stderr, "calm train: --seq-len %d exceeds the model's max_position_embeddings %d\n", tc.T,
                m.cfg.max_seq_len);
        return 2;
    }
    Trainable tr = trainable_model(&m);
    TrainState st;
    train_state_init(&st, tr.n);
    if (resume) {
        int r = train_state_load(&st, tc.out_dir);
        if (r < 0) cli_fail("train");
        if (r > 0) calm_log("resuming %s at step %ld", tc.out_dir, st.step);
    }
    uint64_t useed = (uint64_t)seed;
    void *ctx[2] = {&data, &useed};
    ShardSource shards = {0};
    int rc;
    if (data_dir) {
        if (shard_source_open(&shards, data_dir, useed, alpha, langs, tc.T, m.cfg.vocab_size, g_dist.size) != 0)
            cli_fail("train");
        calm_log("data: %s; %ld steps of %d x %d tokens", data_dir, tc.steps, tc.B * g_dist.size, tc.T);
        rc = train_run(&tr, &st, &tc, shard_batch, &shards);
        shard_source_close(&shards);
    } else {
        calm_log("data: %zu tokens from %d file(s); %ld steps of %d x %d tokens", data.n, nfiles, tc.steps,
                 tc.B * g_dist.size, tc.T);
        rc = train_run(&tr, &st, &tc, text_batch, ctx);
    }
    if (rc != 0) cli_fail("train");
    calm_log("wrote %s", tc.out_dir);
    train_state_free(&st);
    textdata_free(&data);
    model_free(&m);
    return 0;
}

/* ------------------------------------------------------------------- eval */

static int cmd_eval(int argc, char **argv) {
    const char *model_dir = NULL;
    int T = 256, B = 8, threads = 0;
    const Opt opts[] = {{"model", OPT_STR, &model_dir, "model directory", 1, 0},
                        {"seq-len", OPT_INT, &T, "window length", 1, 1 << 20},
                        {"batch", OPT_INT, &B, "windows per forward pass", 1, 1 << 20},
                        {"threads", OPT_INT, &threads, "threads (0: cores available)", 0, 4096},
                        OPT_END};
    const Command cmd = {"calm eval", "--model DIR [options] TEXT_FILE...",
                         "Loss (nats/token), bits per byte and perplexity of a model on text files, over "
                         "non-overlapping windows that cover every token once.",
                         opts, 1, -1};
    char **files;
    int nfiles;
    cli_parse(&cmd, argc, argv, &files, &nfiles);
    if (!model_dir) {
        fprintf(stderr, "calm eval: --model DIR is required\nTry 'calm eval --help'.\n");
        return 2;
    }
    calm_blas_init(threads);
    Model m;
    if (model_load_dir(&m, model_dir) != 0) cli_fail("eval");
    if (T > m.cfg.max_seq_len) T = m.cfg.max_seq_len;
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
        model_forward(&m, tok, tgt, w, b, T, NULL, NULL);
        for (size_t i = 0; i < (size_t)b * T; i++) {
            loss_sum += m.acts.losses[i];
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
    model_free(&m);
    return 0;
}

/* --------------------------------------------------------------- generate */

static int cmd_generate(int argc, char **argv) {
    const char *model_dir = NULL, *prompt = "";
    int max_new = 200, top_k = 0, threads = 1;
    float temperature = 0.0f;
    long seed = 1;
    const Opt opts[] = {{"model", OPT_STR, &model_dir, "model directory", 1, 0},
                        {"prompt", OPT_STR, &prompt, "text to continue", 1, 0},
                        {"max-tokens", OPT_INT, &max_new, "tokens to generate at most", 1, 1 << 20},
                        {"temperature", OPT_FLOAT, &temperature, "sampling temperature (0: greedy)", 0, 100},
                        {"top-k", OPT_INT, &top_k, "sample among the k most likely (0: all)", 0, 1 << 20},
                        {"seed", OPT_LONG, &seed, "sampling seed", 0, 9e18},
                        {"threads", OPT_INT, &threads, "threads", 0, 4096},
                        OPT_END};
    const Command cmd = {"calm generate", "--model DIR [--prompt TEXT] [options]",
                         "Continue a prompt with a KV cache, greedily or by temperature / top-k sampling. The "
                         "continuation goes to stdout; generation stops at EOS.",
                         opts, 0, 0};
    char **pos;
    int npos;
    cli_parse(&cmd, argc, argv, &pos, &npos);
    if (!model_dir) {
        fprintf(stderr, "calm generate: --model DIR is required\nTry 'calm generate --help'.\n");
        return 2;
    }
    calm_blas_init(threads);
    Model m;
    if (model_load_dir(&m, model_dir) != 0) cli_fail("generate");
    size_t plen = strlen(prompt);
    int *ids = xmalloc((plen + 2) * sizeof(int));
    int n_prompt = (int)tok_encode(ids, (const unsigned char *)prompt, plen, 1, 0);
    if (n_prompt >= m.cfg.max_seq_len) {
        fprintf(stderr, "calm generate: prompt of %d tokens does not fit max_position_embeddings %d\n", n_prompt,
                m.cfg.max_seq_len);
        return 2;
    }
    int *out = xmalloc((size_t)max_new * sizeof(int));
    int n = generate(&m, ids, n_prompt, max_new, temperature, top_k, (uint64_t)seed, out);
    unsigned char *bytes = xmalloc((size_t)n + 1);
    size_t nb = tok_decode(bytes, out, (size_t)n);
    fwrite(bytes, 1, nb, stdout);
    fputc('\n', stdout);
    free(bytes);
    free(out);
    free(ids);
    model_free(&m);
    return 0;
}

/* ---------------------------------------------------------------- forward */

static int cmd_shard(int argc, char **argv) {
    argv[0] = "shard";
    return shard_main(argc, argv);
}

static int cmd_forward(int argc, char **argv) {
    const char *model_dir = NULL, *input = NULL, *out = NULL;
    int threads = 0;
    const Opt opts[] = {{"model", OPT_STR, &model_dir, "model directory", 1, 0},
                        {"input", OPT_STR, &input, "file whose bytes are the input (BOS is prepended)", 1, 0},
                        {"out", OPT_STR, &out, "safetensors file to write with tensor `logits` [T, V]", 1, 0},
                        {"threads", OPT_INT, &threads, "threads (0: cores available)", 0, 4096},
                        OPT_END};
    const Command cmd = {"calm forward", "--model DIR --input FILE --out FILE",
                         "Write the logits of a model for the bytes of a file, for debugging and for comparing "
                         "with other implementations.",
                         opts, 0, 0};
    char **pos;
    int npos;
    cli_parse(&cmd, argc, argv, &pos, &npos);
    if (!model_dir || !input || !out) {
        fprintf(stderr, "calm forward: --model, --input and --out are required\nTry 'calm forward --help'.\n");
        return 2;
    }
    calm_blas_init(threads);
    Model m;
    if (model_load_dir(&m, model_dir) != 0) cli_fail("forward");
    char *buf;
    size_t len;
    if (calm_read_file(input, &buf, &len) != 0) cli_fail("forward");
    if (len + 1 > (size_t)m.cfg.max_seq_len) {
        fprintf(stderr, "calm forward: %s: %zu bytes + BOS exceed max_position_embeddings %d\n", input, len,
                m.cfg.max_seq_len);
        return 1;
    }
    int *ids = xmalloc((len + 2) * sizeof(int));
    int T = (int)tok_encode(ids, (const unsigned char *)buf, len, 1, 0);
    model_forward(&m, ids, NULL, NULL, 1, T, NULL, NULL);
    StWriteTensor t = {"logits", m.acts.logits, 2, {T, m.cfg.vocab_size}};
    if (st_write_f32(out, &t, 1, NULL, NULL, 0) != 0) cli_fail("forward");
    free(ids);
    free(buf);
    model_free(&m);
    return 0;
}

/* ------------------------------------------------------------------- main */

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *help;
    int distributed; /* meaningful under mpirun with more than one rank */
} Subcommand;

static const Subcommand subcommands[] = {
    {"train", cmd_train, "train a byte-level LM on text (data parallel under mpirun/srun)", 1},
    {"eval", cmd_eval, "loss and perplexity of a model on text", 0},
    {"generate", cmd_generate, "continue a prompt (greedy or sampled, KV cache)", 0},
    {"forward", cmd_forward, "write a model's logits for a file as safetensors", 0},
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
