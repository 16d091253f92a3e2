/* analyze.c: `calm analyze`: which layers of two frozen models carry
 * matching information. Both models run over N tokens of a store (the ranks
 * split the sequences), a hook keeps the residual stream after every block,
 * and linear CKA between every mA and every mB layer output is computed by
 * ScaLAPACK over the ranks (mpi/linalg.h). The report (analyze_report.c)
 * prints the matrix, writes OUT/cka.json and a heatmap, and suggests the
 * monotone connection set of largest total CKA. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "cli/analyze.h"
#include "cli/commands.h"
#include "cli/options.h"
#include "cli/run.h"
#include "cli/streams.h"
#include "mpi/linalg.h"
#include "shards/shards.h"
#include "src/blas.h"
#include "src/common.h"
#include "src/modeldir.h"

typedef struct {
    const char *anchor, *augment, *data, *out, *dump;
    long tokens;
    int K, T, batch, threads;
} AnalyzeOpts;

/* CKA of every (mA, mB) layer pair: each layer distributed and its Gram
 * norm taken once; the mB layers stay distributed while mA's pass by. Each
 * float stream is freed once it is distributed. */
static int cka_matrix(LaGrid *g, Streams *sa, Streams *sb, double *cka) {
    int LB = sb->L, rc = 0;
    LaMat *mb = xcalloc((size_t)LB, sizeof *mb);
    double *gb = xcalloc((size_t)LB, sizeof *gb), ga = 0, c2 = 0;
    double t0 = calm_now();
    for (int b = 0; b < LB && rc == 0; b++) {
        rc = la_mat_rows(g, &mb[b], sb->h[b], (int)sb->n, sb->C, LA_CENTRE);
        if (rc == 0) rc = la_gram_norm(g, &mb[b], &gb[b]);
        free(sb->h[b]);
        sb->h[b] = NULL;
    }
    for (int a = 0; a < sa->L && rc == 0; a++) {
        LaMat x;
        rc = la_mat_rows(g, &x, sa->h[a], (int)sa->n, sa->C, LA_CENTRE);
        free(sa->h[a]);
        sa->h[a] = NULL;
        if (rc == 0) rc = la_gram_norm(g, &x, &ga);
        for (int b = 0; b < LB && rc == 0; b++) {
            rc = la_cross_norm2(g, &x, &mb[b], &c2);
            cka[(size_t)a * LB + b] = la_cka_from(c2, ga, gb[b]);
        }
        la_mat_free(&x);
        calm_log("analyze: CKA of mA layer %d/%d against %d mB layers (%.1f s)", a + 1, sa->L, LB, calm_now() - t0);
    }
    for (int b = 0; b < LB; b++) la_mat_free(&mb[b]);
    free(mb);
    free(gb);
    return rc;
}

/* Refusals found before any work: the store and the token count. */
static int check_inputs(ShardStore *st, const Tokenizer *tok, const Model *A, const Model *B, AnalyzeOpts *o) {
    const ShardInfo *in = shard_store_info(st);
    int maxT = A->cfg.max_seq_len < B->cfg.max_seq_len ? A->cfg.max_seq_len : B->cfg.max_seq_len;
    if (o->T == 0) o->T = in->seq_len < maxT ? in->seq_len : maxT;
    if (o->T > maxT) return calm_error("--seq-len %d exceeds a model's max_position_embeddings (%d)", o->T, maxT);
    int vocab = A->cfg.vocab_size < B->cfg.vocab_size ? A->cfg.vocab_size : B->cfg.vocab_size;
    if (run_check_store(st, tok, vocab, o->T) != 0) return -1;
    int width = A->cfg.dim > B->cfg.dim ? A->cfg.dim : B->cfg.dim;
    if (o->tokens < width)
        return calm_error("--tokens %ld is below the models' width %d: the centred Gram matrices would be rank "
                          "deficient and every CKA near 1; use at least %d tokens (many more is better)",
                          o->tokens, width, width);
    int L = A->cfg.n_layers < B->cfg.n_layers ? A->cfg.n_layers : B->cfg.n_layers;
    if (o->K > L) return calm_error("--connections %d: a monotone matching has at most %d pairs here", o->K, L);
    return 0;
}

/* --dump DIR: every layer output this rank computed, as DIR/mA.A.rR.npy and
 * DIR/mB.B.rR.npy (A, B 1-based as in cka.json, R the rank), [rows, width]
 * float32, for checking the CKA outside calm (jobs/analyze_numpy.py). All
 * ranks fail together. */
static int dump_streams(const char *dir, const Streams *sa, const Streams *sb) {
    int rc = calm_mkdirs(dir);
    const Streams *s[2] = {sa, sb};
    for (int m = 0; m < 2 && rc == 0; m++)
        for (int l = 0; l < s[m]->L && rc == 0; l++) {
            char name[64];
            snprintf(name, sizeof name, "m%c.%d.r%d.npy", "AB"[m], l + 1, g_dist.rank);
            char *path = calm_path_join(dir, name);
            rc = calm_write_npy_f32(path, s[m]->h[l], (long)s[m]->n, s[m]->C);
            free(path);
        }
    if (dist_max_long(&g_dist, rc != 0)) rc = rc ? rc : calm_error("%s: another rank could not write its streams", dir);
    if (rc == 0) calm_log("analyze: hidden streams written to %s (one .npy per model, layer and rank)", dir);
    return rc;
}

/* Frees A and B as soon as the streams are taken: the CKA needs only them. */
static int analyze(const AnalyzeOpts *o0, const Tokenizer *tok, Model *A, Model *B) {
    AnalyzeOpts o = *o0;
    double t0 = calm_now();
    ShardStore *st;
    if (shard_store_open(&st, o.data) != 0) {
        model_free(A);
        model_free(B);
        return -1;
    }
    int *tokens = NULL, S = -1;
    float *w = NULL;
    if (check_inputs(st, tok, A, B, &o) == 0) S = streams_load_tokens(st, o.tokens, o.T, &tokens, &w);
    shard_store_close(st);
    if (S < 0) {
        model_free(A);
        model_free(B);
        return -1;
    }
    Streams sa, sb;
    streams_init(&sa, A->cfg.n_layers, A->cfg.dim, (int64_t)S * o.T, NULL);
    streams_init(&sb, B->cfg.n_layers, B->cfg.dim, (int64_t)S * o.T, NULL);
    streams_run(A, B, &sa, &sb, tokens, w, S, o.T, o.batch, "analyze");
    model_free(A);
    model_free(B);
    free(tokens);
    free(w);
    double t_fwd = calm_now() - t0;
    CkaReport r = {.LA = sa.L, .LB = sb.L, .K = o.K, .anchor = o.anchor, .augment = o.augment, .data = o.data,
                   .seq_len = o.T, .ranks = g_dist.size};
    r.tokens = dist_sum_long(&g_dist, (long)sa.n);
    r.cka = xcalloc((size_t)r.LA * r.LB, sizeof *r.cka);
    LaGrid *g = NULL;
    int width = sa.C > sb.C ? sa.C : sb.C, rc = 0;
    if (r.tokens < width) /* padding left fewer than asked for */
        rc = calm_error("%s: only %lld of the %ld tokens read are not padding, below the models' width %d: use more "
                        "--tokens", o.data, (long long)r.tokens, o.tokens, width);
    if (rc == 0 && o.dump) rc = dump_streams(o.dump, &sa, &sb);
    if (rc == 0) rc = la_grid_open(&g, &g_dist, 0, 0, 0); /* a single process starts MPI here */
    double t_cka = calm_now();
    if (rc == 0) {
        la_grid_shape(g, &r.nprow, &r.npcol);
        rc = cka_matrix(g, &sa, &sb, r.cka);
    }
    r.seconds_forward = t_fwd;
    struct rusage ru;
    r.peak_rss_mb = dist_max_long(&g_dist, getrusage(RUSAGE_SELF, &ru) == 0 ? ru.ru_maxrss : 0) / 1024.0;
    r.seconds_cka = calm_now() - t_cka;
    la_grid_close(g);
    streams_free(&sa);
    streams_free(&sb);
    if (rc == 0) {
        analyze_best_matching(&r);
        r.seconds = calm_now() - t0;
        if (g_dist.rank == 0) rc = analyze_write(&r, o.out);
    }
    free(r.cka);
    return rc;
}

int cmd_analyze(int argc, char **argv) {
    AnalyzeOpts o = {.tokens = 4096, .K = 4, .batch = 8};
    const Opt opts[] = {
        {"anchor", OPT_STR, &o.anchor, "anchor model mB (HF directory); frozen", 1, 0},
        {"augment", OPT_STR, &o.augment, "augmenting model mA (HF directory); frozen", 1, 0},
        {"data", OPT_STR, &o.data, "LMDB shard store (calm shard build) made with the models' tokenizer", 1, 0},
        {"out", OPT_STR, &o.out, "directory for cka.json and the heatmap cka.png", 1, 0},
        {"tokens", OPT_LONG, &o.tokens, "tokens of the store's train split to compare the layers over", 1, 1e12},
        {"connections", OPT_INT, &o.K, "connections to suggest (a monotone matching of mA to mB layers)", 1, 64},
        {"seq-len", OPT_INT, &o.T, "tokens per sequence (0: the store's, within both models' context)", 0, 1 << 20},
        {"batch", OPT_INT, &o.batch, "sequences per forward", 1, 1 << 20},
        {"threads", OPT_INT, &o.threads, "threads (0: cores available)", 0, 4096},
        {"dump", OPT_STR, &o.dump, "also write every layer output as DIR/mA.A.rR.npy, DIR/mB.B.rR.npy (float32, "
                                   "one per rank R) for checking outside calm", 0, 0},
        OPT_END};
    const Command cmd = {"calm analyze", "--anchor DIR --augment DIR --data STORE --out DIR [options]",
                         "Which layers to connect: run both frozen models over --tokens tokens of the store (split "
                         "over the ranks under mpirun/srun), and compute linear CKA (Kornblith et al. 2019) between "
                         "every mA and every mB layer output with ScaLAPACK over the ranks. Prints the matrix "
                         "(rows mA layer outputs 1..LA, columns mB 1..LB), writes OUT/cka.json and OUT/cka.png, and "
                         "suggests the --connections pairs of largest total CKA with both layer sequences "
                         "increasing (as calm compose --connections, 0-based, in cka.json's \"connections\").",
                         opts, 0, 0};
    char **pos;
    int npos;
    cli_parse(&cmd, argc, argv, &pos, &npos);
    if (!o.anchor || !o.augment || !o.data || !o.out)
        return cli_usage_error(&cmd, "--anchor, --augment, --data and --out are required");
    calm_blas_init(o.threads);
    Tokenizer *tok = compose_tokenizer(o.anchor, o.augment);
    if (!tok) cli_fail("analyze");
    Model A, B;
    if (model_load_dir_frozen(&B, o.anchor) != 0) cli_fail("analyze: anchor");
    if (model_load_dir_frozen(&A, o.augment) != 0) cli_fail("analyze: augment");
    int rc = analyze(&o, tok, &A, &B) == 0 ? 0 : cli_error("analyze"); /* frees A and B */
    tokenizer_free(tok);
    return rc;
}
