/* compose.c: `calm compose`, a CALM composition of two frozen models, as
 * one process (data parallel under mpirun) or with the anchor split over
 * pipeline stages (mpi/pipeline.h). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/init_proj.h"
#include "cli/run.h"
#include "mpi/pipeline.h"
#include "src/common.h"
#include "src/compose.h"
#include "src/modeldir.h"

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
    /* Rank 0 reads the models (gigabytes for a real anchor) and tells the
     * others; a failure there aborts the job. */
    if (g_dist.rank == 0 && (compose_model_hash(anchor, hb) != 0 || compose_model_hash(augment, ha) != 0)) return -1;
    dist_bcast_bytes(&g_dist, hb, sizeof hb);
    dist_bcast_bytes(&g_dist, ha, sizeof ha);
    cJSON_AddStringToObject(cfg, "anchor_sha256", hb);
    cJSON_AddStringToObject(cfg, "augment_sha256", ha);
    compose_format_connections(c->cfg.conn, c->cfg.n_conn, conns, sizeof conns);
    cJSON_AddStringToObject(cfg, "connections", conns);
    cJSON_AddNumberToObject(cfg, "heads", c->H);
    return 0;
}

/* --init-proj and what the least-squares fit needs (RunOpts.fresh_ctx). */
typedef struct {
    const char *how; /* random or lstsq */
    long tokens;
    Composer *c;
    Model *A, *B; /* NULL on a pipeline's ranks: loaded whole for the fit, then let go */
    const char *anchor, *augment;
    const Tokenizer *tok;
    ProjFit fit;
} InitProj;

static int fit_projections(void *ctx) {
    InitProj *ip = ctx;
    if (ip->A) return init_proj_lstsq(ip->c, ip->A, ip->B, ip->tok, &ip->fit);
    /* A stage holds part of one model; the fit needs both whole. Frozen
     * loads map the files, so the extra copy costs address space, not RAM. */
    Model A, B;
    if (model_load_dir_frozen(&B, ip->anchor) != 0) return -1;
    int rc = model_load_dir_frozen(&A, ip->augment);
    if (rc == 0) rc = init_proj_lstsq(ip->c, &A, &B, ip->tok, &ip->fit);
    if (rc == 0) model_free(&A);
    model_free(&B);
    return rc;
}

/* Usage errors of --init-proj, before any model is loaded: 0 or exit 2. */
static int init_proj_check(const InitProj *ip, const RunOpts *r) {
    const char *e = NULL;
    if (strcmp(ip->how, "random") != 0 && strcmp(ip->how, "lstsq") != 0)
        e = "--init-proj: use random or lstsq";
    else if (!strcmp(ip->how, "random") && ip->tokens)
        e = "--init-tokens is for --init-proj lstsq";
    else if (!strcmp(ip->how, "lstsq") && !r->data_dir)
        e = "--init-proj lstsq fits on tokens of a shard store: give --data STORE";
    if (!e) return 0;
    fprintf(stderr, "calm compose: %s\nTry 'calm compose --help'.\n", e);
    return 2;
}

/* Arm the fit for a fresh start and record it in what a resume must match,
 * so that a checkpoint of one init is not continued under the other. Random
 * init adds no key: checkpoints from before --init-proj stay resumable. */
static void init_proj_arm(InitProj *ip, Composer *c, RunOpts *r) {
    if (strcmp(ip->how, "lstsq") != 0) return;
    ip->c = c;
    ip->fit = (ProjFit){r->data_dir, ip->tokens ? ip->tokens : init_proj_default_tokens(c->dA), r->tc.T};
    cJSON_AddStringToObject(run_config(r), "init_proj", "lstsq");
    cJSON_AddNumberToObject(run_config(r), "init_tokens", (double)ip->fit.tokens);
    r->fresh_init = fit_projections;
    r->fresh_ctx = ip;
}

/* Options of the pipeline (--anchor-stages > 0). */
typedef struct {
    int S, A, M, print;
    const char *order;
} PipeFlags;

/* `calm compose` with the anchor split over ranks (mpi/pipeline.h). */
static int compose_pipeline(RunOpts *r, const PipeFlags *pf, InitProj *ip, const Tokenizer *tok, const char *anchor,
                            const char *augment, const char *conns, int heads, char **files, int nfiles) {
    int role_major = pf->order && !strcmp(pf->order, "role");
    if (pf->order && !role_major && strcmp(pf->order, "replica") != 0) {
        fprintf(stderr, "calm compose: --rank-order '%s': use replica or role\n", pf->order);
        return 2;
    }
    PipeOpts po = {anchor, augment, conns, heads, pf->S, pf->A, pf->M, r->tc.B, r->tc.T, role_major};
    if (pf->print) {
        int world = g_dist.size > 1 ? g_dist.size : pf->S + pf->A;
        if (g_dist.rank == 0 && pipeline_print_plan(&po, world, stdout) != 0) cli_fail("compose");
        return 0;
    }
    int rc = run_opts_check(r, "calm compose", nfiles, 0);
    if (rc) return rc;
    Pipeline *p;
    PipelineRun run;
    if (pipeline_open(&p, &run, &r->tc, &po, &g_dist) != 0) cli_fail("compose");
    /* on every rank alike; a resume overwrites its own part */
    compose_init_random(run.composer, (uint64_t)r->seed);
    if (compose_config_json(run.composer, anchor, augment, run_config(r)) != 0) cli_fail("compose");
    init_proj_arm(ip, run.composer, r);
    r->writes_part = run.owns_part;
    snprintf(r->layout, sizeof r->layout, "%s", run.layout);
    rc = run_training("compose", r, &run.trainable, tok, files, nfiles, run.vocab);
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
    InitProj ip = {.how = "random"};
    const Opt opts[] = {
        {"anchor", OPT_STR, &anchor, "anchor model mB (HF directory); frozen", 1, 0},
        {"augment", OPT_STR, &augment, "augmenting model mA (HF directory); frozen", 1, 0},
        {"out", OPT_STR, &r.tc.out_dir, "composition directory to write (calm_config.json, calm.safetensors)", 1, 0},
        {"connections", OPT_STR, &conns, "A:B pairs, e.g. 3:5,7:11 (default: every 4th mA layer)", 1, 0},
        {"heads", OPT_INT, &heads, "cross-attention heads (0: the anchor's)", 0, 4096},
        {"init-proj", OPT_STR, &ip.how,
         "projection init: random, or lstsq: each connection's projection fitted by least squares (QR, over the "
         "ranks) from mA's stream after block a to mB's after block b on --init-tokens tokens of --data; "
         "o_proj stays zero either way, so step 0 is the anchor", 1, 0},
        {"init-tokens", OPT_LONG, &ip.tokens,
         "--init-proj lstsq: tokens to fit on, at least mA's width + 1 (0: 4096, or 2 (width + 1) if more)", 0,
         1e12},
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
    if (pf.print && pf.S == 0) pf.S = 1;
    if (init_proj_check(&ip, &r) != 0) return 2;
    ip.anchor = anchor, ip.augment = augment;
    Tokenizer *tok = compose_tokenizer(anchor, augment);
    if (!tok) cli_fail("compose");
    ip.tok = tok;
    if (pf.S > 0) {
        int rc = compose_pipeline(&r, &pf, &ip, tok, anchor, augment, conns, heads, files, nfiles);
        tokenizer_free(tok);
        return rc;
    }

    int rc = run_opts_check(&r, "calm compose", nfiles, 1);
    if (rc) return rc;
    Model A, B;
    if (model_load_dir_frozen(&B, anchor) != 0) cli_fail("compose: anchor");
    if (model_load_dir_frozen(&A, augment) != 0) cli_fail("compose: augment");
    if (r.tc.T > B.cfg.max_seq_len || r.tc.T > A.cfg.max_seq_len) {
        fprintf(stderr, "calm compose: --seq-len %d exceeds a model's max_position_embeddings\n", r.tc.T);
        model_free(&A);
        model_free(&B);
        return 2;
    }
    ComposeConfig cc;
    Composer c;
    if (compose_connections(&cc, conns, heads, &A.cfg, &B.cfg) != 0 || compose_init(&c, &A, &B, &cc) != 0)
        cli_fail("compose");
    compose_init_random(&c, (uint64_t)r.seed);
    if (compose_config_json(&c, anchor, augment, run_config(&r)) != 0) cli_fail("compose");
    ip.A = &A, ip.B = &B;
    init_proj_arm(&ip, &c, &r);
    r.writes_part = g_dist.rank == 0;
    if (g_dist.size > 1) snprintf(r.layout, sizeof r.layout, "data parallel, %d ranks", g_dist.size);
    char line[1024];
    compose_format_connections(c.cfg.conn, c.cfg.n_conn, line, sizeof line);
    calm_log("composition: connections %s, %d heads, %zu trainable parameters (anchor %zu, augment %zu frozen)",
             line, c.H, c.num_params, model_param_count(&B), model_param_count(&A));
    ComposeCtx ctx = {&c, anchor, augment};
    Trainable tr = {&ctx, c.params, c.grads, c.num_params, c.info, c.n_info, compose_step, compose_save, NULL};
    rc = run_training("compose", &r, &tr, tok, files, nfiles, B.cfg.vocab_size);
    tokenizer_free(tok);
    compose_free(&c);
    model_free(&A);
    model_free(&B);
    return rc;
}
