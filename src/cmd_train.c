/* cmd_train.c: `calm train` (a byte-level LM) and `calm compose` (CALM
 * composition of two frozen models). Both share the training options, the
 * data sources (text files or an LMDB shard store) and data parallelism. */
#include <cjson/cJSON.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blas.h"
#include "checkpoint.h"
#include "ckpt.h"
#include "cli.h"
#include "cmd.h"
#include "common.h"
#include "pipeline.h"
#include "shards.h"
#include "textdata.h"
#include "tokenizer.h"
#include "train.h"

/* ------------------------------------------------------- shared options */

/* Exit status of a run stopped by SIGUSR1 / SIGTERM after writing its
 * checkpoint: the batch script requeues the job on it (EX_TEMPFAIL). */
#define CALM_EXIT_REQUEUE 75

typedef struct {
    TrainConfig tc;
    long seed;
    int threads, expect_ranks;
    const char *data_dir, *langs;
    float alpha;
    /* checkpoints and signals */
    const char *resume, *ckpt_dir, *stop_signals;
    long ckpt_every;
    int keep;
    /* filled by the command: what a resume must match (created on first
     * use with run_config: usage errors before that leave nothing to free),
     * and who writes */
    cJSON *config, *hyper;
    char layout[128];
    int writes_part;
} RunOpts;

static void run_opts_default(RunOpts *r) {
    memset(r, 0, sizeof *r);
    r->tc.B = 8;
    r->tc.T = 256;
    r->tc.steps = 1000;
    r->tc.log_every = 10;
    optim_config_default(&r->tc.optim);
    r->tc.optim.lr = 3e-3f;
    r->seed = 1;
    r->alpha = 0.3f;
    r->keep = 3;
    r->stop_signals = "USR1,TERM,INT";
    snprintf(r->layout, sizeof r->layout, "single process");
    r->writes_part = 1;
}

#define RUN_OPTS(r)                                                                                              \
    {"data", OPT_STR, &(r).data_dir, "LMDB shard store (calm shard build) instead of text files", 1, 0},        \
        {"alpha", OPT_FLOAT, &(r).alpha, "--data: language sampling p(L) ~ n_L^alpha", 0, 1},                    \
        {"langs", OPT_STR, &(r).langs, "--data: comma-separated languages to use (default: all)", 1, 0},        \
        {"resume", OPT_STR, &(r).resume,                                                                        \
         "auto: continue from the newest complete checkpoint (or start fresh if none); or a step directory", 1, 0}, \
        {"checkpoint-dir", OPT_STR, &(r).ckpt_dir, "checkpoint directory (default: OUT/checkpoints)", 1, 0},     \
        {"checkpoint-every", OPT_LONG, &(r).ckpt_every,                                                         \
         "checkpoint every N steps (0: only when stopped by a signal)", 0, 1e12},                               \
        {"keep", OPT_INT, &(r).keep, "complete checkpoints to keep", 1, 1 << 20},                                \
        {"stop-signals", OPT_STR, &(r).stop_signals,                                                            \
         "signals that checkpoint and stop after the current step: USR1/TERM exit 75 (requeue), INT exits 130", 1, 0}, \
        {"steps", OPT_LONG, &(r).tc.steps, "optimizer steps (0: write the initial weights)", 0, 1e12},                                          \
        {"batch", OPT_INT, &(r).tc.B, "global batch: sequences per step", 1, 1 << 20},                          \
        {"seq-len", OPT_INT, &(r).tc.T, "tokens per sequence (T)", 1, 1 << 20},                                 \
        {"lr", OPT_FLOAT, &(r).tc.optim.lr, "peak learning rate", 0, 10},                                       \
        {"min-lr-frac", OPT_FLOAT, &(r).tc.optim.min_lr_frac, "final learning rate as a fraction of --lr", 0, 1}, \
        {"warmup", OPT_INT, &(r).tc.optim.warmup_steps, "linear warm-up steps", 0, 1e9},                        \
        {"weight-decay", OPT_FLOAT, &(r).tc.optim.weight_decay, "decoupled weight decay (matrices only)", 0, 10}, \
        {"beta1", OPT_FLOAT, &(r).tc.optim.beta1, "AdamW beta1", 0, 0.99999},                                   \
        {"beta2", OPT_FLOAT, &(r).tc.optim.beta2, "AdamW beta2", 0, 0.999999},                                  \
        {"adam-eps", OPT_FLOAT, &(r).tc.optim.eps, "AdamW epsilon", 0, 1},                                      \
        {"clip", OPT_FLOAT, &(r).tc.optim.clip, "global gradient-norm clip (0: off)", 0, 1e9},                  \
        {"seed", OPT_LONG, &(r).seed, "seed for initialisation and data order", 0, 9e18},                       \
        {"threads", OPT_INT, &(r).threads, "threads (0: cores available)", 0, 4096},                            \
        {"log", OPT_STR, &(r).tc.log_path, "JSONL metrics file", 1, 0},                                         \
        {"log-every", OPT_LONG, &(r).tc.log_every, "progress interval in steps", 1, 1e12},                      \
        {"save-every", OPT_LONG, &(r).tc.save_every, "write --out every N steps (0: at the end only)", 0, 1e12}, \
        {"expect-ranks", OPT_INT, &(r).expect_ranks, "fail unless the job runs exactly N ranks (0: no check)", 0, 1 << 24}

/* Checks shared by both commands; splits the global batch over the ranks
 * unless a pipeline does (split = 0). */
static int run_opts_check(RunOpts *r, const char *cmd, int nfiles, int split) {
    if (!r->tc.out_dir) {
        fprintf(stderr, "%s: --out DIR is required\nTry '%s --help'.\n", cmd, cmd);
        return 2;
    }
    if ((nfiles > 0) == (r->data_dir != NULL)) {
        fprintf(stderr, "%s: give either --data STORE or text files\nTry '%s --help'.\n", cmd, cmd);
        return 2;
    }
    if (dist_expect_ranks(&g_dist, r->expect_ranks) != 0) {
        if (g_dist.rank == 0) fprintf(stderr, "%s: %s\n", cmd, calm_last_error());
        return 2;
    }
    /* ranks sharing a node share its cores: BLIS threads spin while they
     * wait, so more threads than cores would slow every rank down */
    if (r->threads == 0 && g_dist.local_size > 1 && !getenv("CALM_THREADS")) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        r->threads = cores > g_dist.local_size ? (int)(cores / g_dist.local_size) : 1;
    }
    if (r->tc.optim.warmup_steps > r->tc.steps) r->tc.optim.warmup_steps = (int)r->tc.steps;
    r->tc.optim.total_steps = (int)r->tc.steps;
    if (!split) {
        calm_blas_init(r->threads);
        return 0;
    }
    if (r->tc.B % g_dist.size) {
        fprintf(stderr, "%s: --batch %d (global) is not divisible by %d ranks\n", cmd, r->tc.B, g_dist.size);
        return 2;
    }
    /* Data parallel: rank r trains rows [r B/size, (r+1) B/size) of the
     * global batch, so any world size sees the same data. */
    r->tc.B /= g_dist.size;
    r->tc.row0 = g_dist.rank * r->tc.B;
    r->tc.world = g_dist.size;
    r->tc.is_main = g_dist.rank == 0;
    if (g_dist.size > 1) {
        r->tc.reduce = dist_train_reduce;
        r->tc.reduce_ctx = &g_dist;
    }
    calm_blas_init(r->threads);
    return 0;
}

/* ---------------------------------------------------------- data sources */

typedef struct {
    TextData text;
    uint64_t seed;
    ShardStore *store;
    ShardLoader *loader;
    int n_replicas;
} DataSource;

static int text_batch(void *ctx, long step, int row0, int B, int T, int *tokens, int *targets, float *weights) {
    DataSource *d = ctx;
    textdata_batch(&d->text, d->seed, step, row0, B, T, tokens, targets, weights);
    return 0;
}

static int shard_batch(void *ctx, long step, int row0, int B, int T, int *tokens, int *targets, float *weights) {
    DataSource *d = ctx;
    return shard_loader_batch(d->loader, step, row0 / B, d->n_replicas, B, T, tokens, targets, weights);
}

/* Open text files or a shard store; every rank reads the store itself. */
static int data_open(DataSource *d, const RunOpts *r, char **files, int nfiles, int vocab, BatchFn *fn) {
    memset(d, 0, sizeof *d);
    d->seed = (uint64_t)r->seed;
    d->n_replicas = r->tc.world > 0 ? r->tc.world : 1; /* slices of B rows in the global batch */
    const int T = r->tc.T;
    if (!r->data_dir) {
        if (textdata_load(&d->text, (const char *const *)files, nfiles) != 0) return -1;
        if (d->text.n <= (size_t)T + 1)
            return calm_error("the text (%zu tokens) is shorter than --seq-len %d + 1", d->text.n, T);
        calm_log("data: %zu tokens from %d file(s); %ld steps of %d x %d tokens", d->text.n, nfiles, r->tc.steps,
                 r->tc.B * d->n_replicas, T);
        *fn = text_batch;
        return 0;
    }
    const char *dir = r->data_dir;
    if (shard_store_open(&d->store, dir) != 0) return -1;
    const ShardInfo *info = shard_store_info(d->store);
    if (strcmp(info->tokenizer, TOK_ID) != 0)
        return calm_error("%s: tokenizer '%s' is not calm's byte tokenizer '%s'", dir, info->tokenizer, TOK_ID);
    if (info->vocab_size > vocab)
        return calm_error("%s: store vocabulary %d exceeds the model's %d", dir, info->vocab_size, vocab);
    if (T > info->seq_len)
        return calm_error("%s: --seq-len %d exceeds the store's sample length %d", dir, T, info->seq_len);
    if (!info->doc_bos)
        calm_log("warning: %s was built before lm documents began with BOS: a model trained on it never sees the "
                 "BOS that evaluation and generation put first; rebuild it with calm shard build",
                 dir);
    ShardLoaderOpts o;
    shard_loader_opts_default(&o);
    o.seed = d->seed;
    o.alpha = r->alpha;
    o.langs = r->langs;
    if (shard_loader_open(&d->loader, d->store, &o) != 0) return -1;
    calm_log("data: %s; %ld steps of %d x %d tokens", dir, r->tc.steps, r->tc.B * d->n_replicas, T);
    *fn = shard_batch;
    return 0;
}

static void data_close(DataSource *d) {
    if (d->loader) shard_loader_close(d->loader);
    if (d->store) shard_store_close(d->store);
    textdata_free(&d->text);
}

static cJSON *run_config(RunOpts *r) { return r->config ? r->config : (r->config = cJSON_CreateObject()); }
static cJSON *run_hyper(RunOpts *r) { return r->hyper ? r->hyper : (r->hyper = cJSON_CreateObject()); }

/* What a resume must match besides the command's own keys: the data. */
static int add_data_config(RunOpts *r, char **files, int nfiles) {
    cJSON *c = run_config(r);
    if (r->data_dir) {
        char real[PATH_MAX];
        cJSON_AddStringToObject(c, "data", realpath(r->data_dir, real) ? real : r->data_dir);
        ShardStore *st;
        if (shard_store_open(&st, r->data_dir) != 0) return -1;
        const ShardInfo *in = shard_store_info(st);
        uint64_t samples = 0, tokens = 0;
        for (int l = 0; l < in->n_langs; l++)
            for (int k = 0; k < SHARD_N_SPLITS; k++) samples += in->langs[l].samples[k], tokens += in->langs[l].tokens[k];
        char buf[96];
        snprintf(buf, sizeof buf, "%llu samples, %llu tokens", (unsigned long long)samples, (unsigned long long)tokens);
        cJSON_AddStringToObject(c, "data_size", buf);
        cJSON_AddStringToObject(c, "langs", r->langs ? r->langs : "all");
        cJSON_AddNumberToObject(c, "alpha", r->alpha);
        shard_store_close(st);
    } else {
        cJSON *arr = cJSON_AddArrayToObject(c, "data_sha256");
        for (int i = 0; i < nfiles; i++) {
            char hex[65];
            if (calm_sha256_file(files[i], hex) != 0) return -1;
            cJSON_AddItemToArray(arr, cJSON_CreateString(hex));
        }
    }
    cJSON_AddNumberToObject(c, "batch", r->tc.B * (r->tc.world > 0 ? r->tc.world : 1));
    cJSON_AddNumberToObject(c, "seq_len", r->tc.T);
    cJSON_AddNumberToObject(c, "seed", (double)r->seed);
    const OptimConfig *o = &r->tc.optim;
    cJSON *h = run_hyper(r);
    cJSON_AddNumberToObject(h, "steps", (double)r->tc.steps);
    cJSON_AddNumberToObject(h, "lr", o->lr);
    cJSON_AddNumberToObject(h, "min_lr_frac", o->min_lr_frac);
    cJSON_AddNumberToObject(h, "warmup", o->warmup_steps);
    cJSON_AddNumberToObject(h, "weight_decay", o->weight_decay);
    cJSON_AddNumberToObject(h, "beta1", o->beta1);
    cJSON_AddNumberToObject(h, "beta2", o->beta2);
    cJSON_AddNumberToObject(h, "adam_eps", o->eps);
    cJSON_AddNumberToObject(h, "clip", o->clip);
    return 0;
}

static void on_stop_signal(int sig) { train_request_stop(sig); }

/* "USR1,TERM,INT" -> handlers that only set the stop flag. */
static int install_stop_signals(const char *list) {
    static const struct {
        const char *name;
        int sig;
    } known[] = {{"USR1", SIGUSR1}, {"USR2", SIGUSR2}, {"TERM", SIGTERM}, {"INT", SIGINT}, {"HUP", SIGHUP}};
    char *copy = xstrdup(list), *save = NULL;
    int r = 0;
    for (char *t = strtok_r(copy, ",", &save); t && r == 0; t = strtok_r(NULL, ",", &save)) {
        if (!strncmp(t, "SIG", 3)) t += 3;
        size_t k = 0;
        while (k < sizeof known / sizeof *known && strcmp(known[k].name, t)) k++;
        if (k == sizeof known / sizeof *known) {
            r = calm_error("--stop-signals '%s': unknown signal '%s' (USR1, USR2, TERM, INT, HUP)", list, t);
            break;
        }
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_stop_signal;
        sigemptyset(&sa.sa_mask);
        sa.sa_flags = SA_RESTART;
        sigaction(known[k].sig, &sa, NULL);
    }
    free(copy);
    return r;
}

/* A resumed run continues the metrics log: drop lines after its step (a
 * crash may have logged steps whose checkpoint was never completed). */
static void truncate_log(const char *path, long step) {
    char *text;
    size_t len;
    if (!path || calm_read_file(path, &text, &len) != 0) return;
    char *out = xmalloc(len + 1), *line = text;
    size_t n = 0;
    while (*line) {
        char *nl = strchr(line, '\n');
        size_t ll = nl ? (size_t)(nl - line + 1) : strlen(line);
        const char *k = strstr(line, "\"step\": ");
        if (k && k < line + ll && strtol(k + 8, NULL, 10) <= step) memcpy(out + n, line, ll), n += ll;
        line += ll;
    }
    const void *bufs[] = {out};
    calm_write_atomic(path, bufs, &n, 1);
    free(out);
    free(text);
}

/* Checkpoints, resume, signals, data, loop: the part both commands share.
 * Returns the exit status. */
static int run_training(const char *cmd, RunOpts *r, Trainable *tr, char **files, int nfiles, int vocab) {
    if (add_data_config(r, files, nfiles) != 0) cli_fail(cmd);
    char *cfg_json = cJSON_PrintUnformatted(r->config), *hyp_json = cJSON_PrintUnformatted(r->hyper);
    char *ckdir = r->ckpt_dir ? xstrdup(r->ckpt_dir) : calm_path_join(r->tc.out_dir, "checkpoints");
    CkptConfig ck = {ckdir, r->ckpt_every, r->keep, g_dist.rank, r->writes_part, g_dist.rank == 0,
                     (uint64_t)r->seed, cfg_json, hyp_json, r->layout, {NULL, NULL, NULL}};
    if (g_dist.size > 1) ck.comm = (CkptComm){&g_dist, dist_max_long, dist_sum_long};
    r->tc.ckpt = &ck;
    TrainState st;
    train_state_init(&st, tr->n);
    if (r->resume) {
        int got = ckpt_resume(&ck, tr, &st, r->resume);
        if (got < 0) cli_fail(cmd);
        if (got) {
            calm_log("resuming at step %ld from %s", st.step, strcmp(r->resume, "auto") ? r->resume : ckdir);
            if (r->tc.is_main) truncate_log(r->tc.log_path, st.step);
        } else {
            calm_log("no checkpoint in %s: starting at step 0", ckdir);
        }
    }
    if (install_stop_signals(r->stop_signals) != 0) cli_fail(cmd);
    DataSource data;
    BatchFn fn = NULL;
    if (data_open(&data, r, files, nfiles, vocab, &fn) != 0) cli_fail(cmd);
    int rc = train_run(tr, &st, &r->tc, fn, &data);
    if (rc < 0) cli_fail(cmd);
    int status = 0;
    if (rc == TRAIN_STOPPED) {
        int sig = train_stop_signal();
        status = sig == SIGINT ? 128 + SIGINT : CALM_EXIT_REQUEUE;
        calm_log("stopped by signal %d after step %ld; checkpoint in %s; exit status %d%s", sig, st.step, ckdir,
                 status, status == CALM_EXIT_REQUEUE ? " (requeue and --resume auto)" : "");
    } else if (r->tc.is_main) {
        calm_log("wrote %s", r->tc.out_dir);
    }
    data_close(&data);
    train_state_free(&st);
    free(ckdir);
    free(cfg_json);
    free(hyp_json);
    cJSON_Delete(r->config);
    cJSON_Delete(r->hyper);
    r->config = r->hyper = NULL;
    return status;
}

/* ------------------------------------------------------------------ train */

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
    Trainable tr = trainable_model(&m);
    rc = run_training("train", &r, &tr, files, nfiles, m.cfg.vocab_size);
    model_free(&m);
    return rc;
}

/* ---------------------------------------------------------------- compose */

typedef struct {
    Composer *c;
    const char *anchor, *augment;
} ComposeCtx;

static float compose_step(void *ctx, const int *tokens, const int *targets, const float *weights, int B, int T) {
    Composer *c = ((ComposeCtx *)ctx)->c;
    compose_zero_grads(c);
    float loss = compose_forward(c, tokens, targets, weights, B, T);
    compose_backward(c, targets, weights);
    return loss;
}

static int compose_save(void *ctx, const char *dir) {
    ComposeCtx *x = ctx;
    return compose_save_dir(x->c, dir, x->anchor, x->augment);
}

/* What a composition's resume must match: both models and the wiring. */
static int compose_config_json(const Composer *c, const char *anchor, const char *augment, cJSON *cfg) {
    char ha[65], hb[65], conns[1024];
    if (compose_model_hash(anchor, hb) != 0 || compose_model_hash(augment, ha) != 0) return -1;
    cJSON_AddStringToObject(cfg, "anchor_sha256", hb);
    cJSON_AddStringToObject(cfg, "augment_sha256", ha);
    size_t k = 0;
    conns[0] = 0;
    for (int i = 0; i < c->cfg.n_conn && k < sizeof conns; i++)
        k += (size_t)snprintf(conns + k, sizeof conns - k, "%s%d:%d", i ? "," : "", c->cfg.conn[i].a, c->cfg.conn[i].b);
    cJSON_AddStringToObject(cfg, "connections", conns);
    cJSON_AddNumberToObject(cfg, "heads", c->H);
    return 0;
}

/* Options of the pipeline (--anchor-stages > 0). */
typedef struct {
    int S, A, M, print;
    const char *order;
} PipeFlags;

/* `calm compose` with the anchor split over ranks (mpi/pipeline.h). */
static int compose_pipeline(RunOpts *r, const PipeFlags *pf, const char *anchor, const char *augment,
                            const ComposeConfig *cc, int default_conns, char **files, int nfiles) {
    int role_major = pf->order && !strcmp(pf->order, "role");
    if (pf->order && !role_major && strcmp(pf->order, "replica") != 0) {
        fprintf(stderr, "calm compose: --rank-order '%s': use replica or role\n", pf->order);
        return 2;
    }
    PipeOpts po = {anchor, augment, *cc, default_conns, pf->S, pf->A, pf->M, r->tc.B, r->tc.T, role_major};
    if (pf->print) {
        int world = g_dist.size > 1 ? g_dist.size : pf->S + pf->A;
        if (g_dist.rank == 0 && pipeline_print_plan(&po, world, stdout) != 0) cli_fail("compose");
        return 0;
    }
    int rc = run_opts_check(r, "calm compose", nfiles, 0);
    if (rc) return rc;
    Pipeline *p;
    if (pipeline_open(&p, &po, &g_dist) != 0) cli_fail("compose");
    Composer *c = pipeline_composer(p);
    compose_init_random(c, (uint64_t)r->seed); /* on every rank alike; a resume overwrites its own part */
    if (compose_config_json(c, anchor, augment, run_config(r)) != 0) cli_fail("compose");
    r->writes_part = pipeline_owns_part(p);
    pipeline_layout_name(p, r->layout, sizeof r->layout);
    pipeline_train_config(p, &r->tc);
    Trainable tr = pipeline_trainable(p);
    rc = run_training("compose", r, &tr, files, nfiles, pipeline_anchor_config(p)->vocab_size);
    pipeline_report(p, stderr);
    pipeline_close(p);
    return rc;
}

int cmd_compose(int argc, char **argv) {
    RunOpts r;
    run_opts_default(&r);
    r.tc.optim.weight_decay = 0.0f;
    const char *anchor = NULL, *augment = NULL, *conns = NULL;
    int heads = 0;
    PipeFlags pf = {0, 1, 4, 0, NULL};
    const Opt opts[] = {
        {"anchor", OPT_STR, &anchor, "anchor model mB (HF directory); frozen", 1, 0},
        {"augment", OPT_STR, &augment, "augmenting model mA (HF directory); frozen", 1, 0},
        {"out", OPT_STR, &r.tc.out_dir, "composition directory to write (calm_config.json, calm.safetensors)", 1, 0},
        {"connections", OPT_STR, &conns, "A:B pairs, e.g. 3:5,7:11 (default: every 4th mA layer)", 1, 0},
        {"heads", OPT_INT, &heads, "cross-attention heads (0: the anchor's)", 0, 4096},
        RUN_OPTS(r),
        {"anchor-stages", OPT_INT, &pf.S,
         "pipeline: split the anchor over S ranks (0: every rank holds both models, data parallel)", 0, 4096},
        {"augment-ranks", OPT_INT, &pf.A, "pipeline: ranks running mA and the projections, per replica", 1, 4096},
        {"micro-batches", OPT_INT, &pf.M, "pipeline: micro-batches per replica and step (1F1B)", 1, 1 << 20},
        {"rank-order", OPT_STR, &pf.order,
         "pipeline: replica (each replica's ranks contiguous, default) or role (all anchor ranks, then all augment "
         "ranks: Slurm heterogeneous jobs)", 1, 0},
        {"print-schedule", OPT_FLAG, &pf.print, "pipeline: print the rank layout and the schedule grid, then exit",
         1, 0},
        OPT_END};
    const Command cmd = {"calm compose", "--anchor DIR --augment DIR --out DIR [options] (--data STORE | TEXT_FILE...)",
                         "Train a CALM composition: cross-attention from the frozen augmenting model's layers into "
                         "the frozen anchor's. Only the composition parameters learn; with task records (prompt + "
                         "target) only the target tokens count in the loss. Under mpirun/srun with "
                         "--anchor-stages S --augment-ranks A, N ranks form N/(S+A) data-parallel replicas of an "
                         "S-stage anchor pipeline fed by A augment ranks.",
                         opts, 0, -1};
    char **files;
    int nfiles;
    cli_parse(&cmd, argc, argv, &files, &nfiles);
    if (!anchor || !augment) {
        fprintf(stderr, "calm compose: --anchor and --augment are required\nTry 'calm compose --help'.\n");
        return 2;
    }
    ComposeConfig cc = {0};
    if (conns && compose_parse_connections(conns, &cc) != 0) cli_fail("compose");
    cc.n_heads = heads;
    if (pf.print && pf.S == 0) pf.S = 1;
    if (pf.S > 0) return compose_pipeline(&r, &pf, anchor, augment, &cc, conns == NULL, files, nfiles);

    int rc = run_opts_check(&r, "calm compose", nfiles, 1);
    if (rc) return rc;
    Model A, B;
    if (model_load_dir(&B, anchor) != 0) cli_fail("compose: anchor");
    if (model_load_dir(&A, augment) != 0) cli_fail("compose: augment");
    if (r.tc.T > B.cfg.max_seq_len || r.tc.T > A.cfg.max_seq_len) {
        fprintf(stderr, "calm compose: --seq-len %d exceeds a model's max_position_embeddings\n", r.tc.T);
        model_free(&A);
        model_free(&B);
        return 2;
    }
    if (!conns) compose_default_connections(&A.cfg, &B.cfg, &cc);
    cc.n_heads = heads;
    Composer c;
    if (compose_init(&c, &A, &B, &cc) != 0) cli_fail("compose");
    compose_init_random(&c, (uint64_t)r.seed);
    if (compose_config_json(&c, anchor, augment, run_config(&r)) != 0) cli_fail("compose");
    r.writes_part = g_dist.rank == 0;
    if (g_dist.size > 1) snprintf(r.layout, sizeof r.layout, "data parallel, %d ranks", g_dist.size);
    char line[1024];
    int k = 0;
    for (int i = 0; i < cc.n_conn; i++)
        k += snprintf(line + k, sizeof line - (size_t)k, "%s%d:%d", i ? "," : "", c.cfg.conn[i].a, c.cfg.conn[i].b);
    calm_log("composition: connections %s, %d heads, %zu trainable parameters (anchor %zu, augment %zu frozen)",
             line, c.H, c.num_params, B.num_params, A.num_params);
    ComposeCtx ctx = {&c, anchor, augment};
    Trainable tr = {&ctx, c.params, c.grads, c.num_params, c.info, c.n_info, compose_step, compose_save, NULL};
    rc = run_training("compose", &r, &tr, files, nfiles, B.cfg.vocab_size);
    compose_free(&c);
    model_free(&A);
    model_free(&B);
    return rc;
}
