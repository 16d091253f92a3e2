/* run.c: what `calm train` and `calm compose` share (run.h). */
#include "cli/run.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/commands.h"
#include "shards/shards.h"
#include "src/blas.h"
#include "src/checkpoint.h"
#include "src/common.h"
#include "src/files.h"
#include "src/sha256.h"
#include "src/textdata.h"
#include "src/tokenizer.h"

void run_opts_default(RunOpts *r) {
    memset(r, 0, sizeof *r);
    r->tc.B = 8;
    r->tc.T = 256;
    r->tc.steps = 1000;
    r->tc.log_every = 10;
    optim_config_default(&r->tc.optim);
    r->seed = 1;
    r->alpha = 0.3f;
    r->keep = 3;
    r->stop_signals = "USR1,TERM,INT";
    snprintf(r->layout, sizeof r->layout, "single process");
    r->writes_part = 1;
}

int run_opts_check(RunOpts *r, const char *cmd, int nfiles, int split) {
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

int run_check_store(ShardStore *store, const Tokenizer *tok, int vocab, int T) {
    const ShardInfo *info = shard_store_info(store);
    const char *dir = shard_store_dir(store);
    if (strcmp(info->tokenizer, tokenizer_id(tok)) != 0)
        return calm_error("%s: the store was tokenized with %s, but the model's tokenizer is %s; rebuild the store "
                          "with calm shard build --tokenizer MODEL_DIR",
                          dir, info->tokenizer, tokenizer_id(tok));
    if (info->vocab_size > vocab)
        return calm_error("%s: store vocabulary %d exceeds the model's %d", dir, info->vocab_size, vocab);
    if (T > info->seq_len)
        return calm_error("%s: --seq-len %d exceeds the store's sample length %d", dir, T, info->seq_len);
    if (!info->doc_bos)
        calm_log("warning: %s was built before lm documents began with BOS: a model trained on it never sees the "
                 "BOS that evaluation and generation put first; rebuild it with calm shard build",
                 dir);
    return 0;
}

/* Open text files or a shard store; every rank reads the store itself. */
static int data_open(DataSource *d, const RunOpts *r, const Tokenizer *tok, char **files, int nfiles, int vocab,
                     BatchFn *fn) {
    memset(d, 0, sizeof *d);
    d->seed = (uint64_t)r->seed;
    d->n_replicas = r->tc.world > 0 ? r->tc.world : 1; /* slices of B rows in the global batch */
    const int T = r->tc.T;
    if (!r->data_dir) {
        if (textdata_load(&d->text, tok, (const char *const *)files, nfiles) != 0) return -1;
        if (d->text.n <= (size_t)T + 1)
            return calm_error("the text (%zu tokens) is shorter than --seq-len %d + 1", d->text.n, T);
        calm_log("data: %zu tokens from %d file(s); %ld steps of %d x %d tokens", d->text.n, nfiles, r->tc.steps,
                 r->tc.B * d->n_replicas, T);
        *fn = text_batch;
        return 0;
    }
    const char *dir = r->data_dir;
    if (shard_store_open(&d->store, dir) != 0) return -1;
    if (run_check_store(d->store, tok, vocab, T) != 0) return -1;
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

cJSON *run_config(RunOpts *r) { return r->config ? r->config : (r->config = cJSON_CreateObject()); }
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

int run_training(const char *cmd, RunOpts *r, Trainable *tr, const Tokenizer *tok, char **files, int nfiles,
                 int vocab) {
    if (add_data_config(r, files, nfiles) != 0) cli_fail(cmd);
    if (tokenizer_vocab_size(tok) > vocab) {
        calm_error("the tokenizer (%s) has %d ids but the model's vocab_size is %d", tokenizer_id(tok),
                   tokenizer_vocab_size(tok), vocab);
        cli_fail(cmd);
    }
    cJSON_AddStringToObject(run_config(r), "tokenizer", tokenizer_id(tok));
    char *cfg_json = cJSON_PrintUnformatted(r->config), *hyp_json = cJSON_PrintUnformatted(r->hyper);
    char *ckdir = r->ckpt_dir ? xstrdup(r->ckpt_dir) : calm_path_join(r->tc.out_dir, "checkpoints");
    CkptConfig ck = {ckdir, r->ckpt_every, r->keep, g_dist.rank, r->writes_part, g_dist.rank == 0,
                     (uint64_t)r->seed, cfg_json, hyp_json, r->layout, {NULL, NULL, NULL}};
    if (g_dist.size > 1) ck.comm = (CkptComm){&g_dist, dist_max_long, dist_sum_long};
    r->tc.ckpt = &ck;
    TrainState st;
    train_state_init(&st, tr->n);
    int got = 0;
    if (r->resume) {
        got = ckpt_resume(&ck, tr, &st, r->resume);
        if (got < 0) cli_fail(cmd);
        if (got) {
            calm_log("resuming at step %ld from %s", st.step, strcmp(r->resume, "auto") ? r->resume : ckdir);
            if (r->tc.is_main) truncate_log(r->tc.log_path, st.step);
        } else {
            calm_log("no checkpoint in %s: starting at step 0", ckdir);
        }
    }
    if (r->fresh_init && !got && r->fresh_init(r->fresh_ctx) != 0) cli_fail(cmd);
    if (r->fresh_init && got) calm_log("resumed: the initialisation before step 1 comes from the checkpoint, not redone");
    if (install_stop_signals(r->stop_signals) != 0) cli_fail(cmd);
    DataSource data;
    BatchFn fn = NULL;
    if (data_open(&data, r, tok, files, nfiles, vocab, &fn) != 0) cli_fail(cmd);
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

