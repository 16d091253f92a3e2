/* train.c: `calm train`, a Llama-style LM from random weights (byte level) or
 * from a model directory. */
#include <cjson/cJSON.h>
#include <stdio.h>

#include "cli/commands.h"
#include "cli/run.h"
#include "src/common.h"
#include "src/compose.h"
#include "src/modeldir.h"
#include "src/tokenizer.h"

/* A model trained from a Hugging Face directory is saved with its
 * tokenizer: the model's Trainable, with a save that copies the files. */
typedef struct {
    Trainable model;
    const char *tokenizer_dir;
} TrainCtx;

static float with_tokenizer_step(void *ctx, const int *tokens, const int *targets, const float *weights, int B, int T) {
    TrainCtx *x = ctx;
    return x->model.step(x->model.ctx, tokens, targets, weights, B, T);
}

static int with_tokenizer_save(void *ctx, const char *dir) {
    TrainCtx *x = ctx;
    /* the tokenizer first: the model's config.json, written last, marks the directory complete */
    if (x->tokenizer_dir && (calm_mkdirs(dir) != 0 || tokenizer_copy_files(x->tokenizer_dir, dir) != 0)) return -1;
    return x->model.save(x->model.ctx, dir);
}

int cmd_train(int argc, char **argv) {
    RunOpts r;
    run_opts_default(&r);
    int dim = 256, layers = 4, heads = 4, kv_heads = 0, ffn = 0, vocab = TOK_VOCAB_DEFAULT, max_seq = 1024, tie = 0;
    const char *init = NULL;
    const Opt opts[] = {
        {"out", OPT_STR, &r.tc.out_dir, "model directory to write (config.json, model.safetensors, trainer state)", 1, 0},
        {"model", OPT_STR, &init, "start from this model directory instead of random weights", 1, 0},
        RUN_OPTS(r),
        {"dim", OPT_INT, &dim, "new model: hidden size", 2, 65536},
        {"layers", OPT_INT, &layers, "new model: layers", 1, 4096},
        {"heads", OPT_INT, &heads, "new model: attention heads", 1, 4096},
        {"kv-heads", OPT_INT, &kv_heads, "new model: key/value heads (0: = heads)", 0, 4096},
        {"ffn", OPT_INT, &ffn, "new model: MLP width (0: about 8/3 dim, multiple of 32)", 0, 1 << 20},
        {"vocab", OPT_INT, &vocab, "new model: vocabulary (>= 259)", TOK_N_SPECIAL, 1 << 20},
        {"max-seq-len", OPT_INT, &max_seq, "new model: max_position_embeddings", 1, 1 << 20},
        {"tie", OPT_FLAG, &tie, "new model: tie lm_head to the embedding", 1, 0},
        OPT_END};
    const Command cmd = {"calm train", "--out DIR [options] (--data STORE | TEXT_FILE...)",
                         "Train a byte-level Llama-style LM on an LMDB shard store or on text files (each file one "
                         "document), from random weights or from --model; checkpoints (--checkpoint-every, "
                         "signals) let --resume auto continue a stopped run exactly. "
                         "Under mpirun/srun each rank trains its share of the global --batch.",
                         opts, 0, -1};
    char **files;
    int nfiles;
    cli_parse(&cmd, argc, argv, &files, &nfiles);
    if (dim % heads) {
        fprintf(stderr, "calm train: --dim %d is not divisible by --heads %d\n", dim, heads);
        return 2;
    }
    int rc = run_opts_check(&r, "calm train", nfiles, 1);
    if (rc) return rc;

    Model m;
    Tokenizer *tok = init ? tokenizer_load(init) : tokenizer_bytes();
    if (!tok) cli_fail("train: --init");
    if (init) {
        if (model_load_dir(&m, init) != 0) cli_fail("train");
        calm_log("loaded %s (%zu parameters)", init, m.num_params);
    } else {
        ModelConfig c;
        model_config_sized(&c, dim, layers, heads, kv_heads, ffn ? ffn : ((8 * dim / 3 + 31) / 32) * 32, vocab,
                           max_seq);
        c.tie_embeddings = tie;
        if (model_init(&m, &c) != 0) cli_fail("train");
        model_init_random(&m, (uint64_t)r.seed);
        calm_log("new model: dim %d, %d layers, %d heads (%d kv), ffn %d, vocab %d: %zu parameters", c.dim,
                 c.n_layers, c.n_heads, c.n_kv_heads, c.hidden_dim, c.vocab_size, m.num_params);
    }
    if (r.tc.T > m.cfg.max_seq_len) {
        fprintf(stderr, "calm train: --seq-len %d exceeds the model's max_position_embeddings %d\n", r.tc.T,
                m.cfg.max_seq_len);
        model_free(&m);
        return 2;
    }
    if (init) {
        char hex[65];
        if (compose_model_hash(init, hex) != 0) cli_fail("train");
        cJSON_AddStringToObject(run_config(&r), "init_sha256", hex);
    }
    char arch[256];
    snprintf(arch, sizeof arch, "dim %d, layers %d, heads %d/%d, head_dim %d, ffn %d, vocab %d, max_seq %d, tie %d",
             m.cfg.dim, m.cfg.n_layers, m.cfg.n_heads, m.cfg.n_kv_heads, m.cfg.head_dim, m.cfg.hidden_dim,
             m.cfg.vocab_size, m.cfg.max_seq_len, m.cfg.tie_embeddings);
    cJSON_AddStringToObject(run_config(&r), "model", arch);
    r.writes_part = g_dist.rank == 0; /* data-parallel replicas hold the same weights */
    if (g_dist.size > 1) snprintf(r.layout, sizeof r.layout, "data parallel, %d ranks", g_dist.size);
    TrainCtx ctx = {trainable_model(&m), init};
    Trainable tr = ctx.model;
    tr.ctx = &ctx;
    tr.step = with_tokenizer_step;
    tr.save = with_tokenizer_save;
    rc = run_training("train", &r, &tr, tok, files, nfiles, m.cfg.vocab_size);
    model_free(&m);
    tokenizer_free(tok);
    return rc;
}

