/* init_proj.c: least-squares initialisation of a composition's projections
 * (init_proj.h). */
#include "cli/init_proj.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli/commands.h"
#include "cli/run.h"
#include "cli/streams.h"
#include "mpi/linalg.h"
#include "src/blas.h"
#include "src/common.h"
#include "src/files.h"

long init_proj_default_tokens(int dA) { return 2L * (dA + 1) > 4096 ? 2L * (dA + 1) : 4096; }

/* ||Y - X W^T - 1 b^T||_F / ||Y - mean(Y)||_F over all ranks: the share of
 * mB's variation the projection leaves unexplained (sqrt(1 - R^2)); 0 is a
 * perfect map, 1 no better than the bias alone. */
static double relative_residual(const float *x, const float *y, int n, int p, int q, const double *w,
                                const double *b) {
    float *wf = xmalloc((size_t)q * p * sizeof *wf), *r = xmalloc(((size_t)n * q + 1) * sizeof *r);
    for (size_t e = 0; e < (size_t)q * p; e++) wf[e] = (float)w[e];
    for (int i = 0; i < n; i++)
        for (int j = 0; j < q; j++) r[(size_t)i * q + j] = y[(size_t)i * q + j] - (float)b[j];
    if (n > 0) sgemm(0, 1, n, q, p, -1.0f, x, p, wf, p, 1.0f, r, q);
    /* sums[0]: residual^2, sums[1]: y^2, sums[2 + j]: column j of y */
    double *sums = xcalloc((size_t)q + 2, sizeof *sums);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < q; j++) {
            double e = r[(size_t)i * q + j], v = y[(size_t)i * q + j];
            sums[0] += e * e, sums[1] += v * v, sums[2 + j] += v;
        }
    dist_sum_doubles(&g_dist, sums, q + 2);
    long total = dist_sum_long(&g_dist, n);
    double centred = sums[1];
    for (int j = 0; j < q; j++) centred -= sums[2 + j] * sums[2 + j] / (double)total;
    double rel = centred > 0 ? sqrt(sums[0] / centred) : 0;
    free(sums);
    free(wf);
    free(r);
    return rel;
}

static int fit_one(Composer *c, LaGrid *g, int i, const Streams *sa, const Streams *sb) {
    const Connection *k = &c->cfg.conn[i];
    int p = sa->C, q = sb->C, n = (int)sa->n;
    double *w = xmalloc((size_t)q * p * sizeof *w), *b = xmalloc((size_t)q * sizeof *b);
    int rc = la_lstsq(g, sa->h[k->a], n, p, sb->h[k->b], n, q, LA_QR, w, b);
    if (rc == 0) {
        compose_set_proj(c, i, w, b);
        double rel = relative_residual(sa->h[k->a], sb->h[k->b], n, p, q, w, b);
        calm_log("init-proj lstsq: connection %d:%d fitted, relative residual %.4f "
                 "(||Y - X W^T - b|| / ||Y - mean Y||, 1 = no better than the bias)",
                 k->a, k->b, rel);
    }
    free(w);
    free(b);
    return rc;
}

/* CALM_TEST_INIT_PROJ_DUMP: the rows connection i was fitted on. */
static int dump_rows(const Composer *c, int i, const Streams *sa, const Streams *sb) {
    const char *dir = getenv("CALM_TEST_INIT_PROJ_DUMP");
    if (!dir) return 0;
    const Streams *s[2] = {sa, sb};
    const int layer[2] = {c->cfg.conn[i].a, c->cfg.conn[i].b};
    for (int j = 0; j < 2; j++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/c%d.r%d.%c", dir, i, g_dist.rank, "xy"[j]);
        const void *buf[1] = {s[j]->h[layer[j]]};
        size_t len = (size_t)s[j]->n * s[j]->C * sizeof(float);
        if (calm_write_atomic(path, buf, &len, 1) != 0) return -1;
    }
    return 0;
}

/* Room only for the streams the connections read, and run no block above
 * the highest of them. */
static void streams_for(Streams *sa, Streams *sb, const ComposeConfig *cc, const Model *A, const Model *B,
                        int64_t rows) {
    unsigned char *wa = xcalloc((size_t)A->cfg.n_layers, 1), *wb = xcalloc((size_t)B->cfg.n_layers, 1);
    int la = 0, lb = 0;
    for (int i = 0; i < cc->n_conn; i++) {
        const Connection *k = &cc->conn[i];
        wa[k->a] = wb[k->b] = 1;
        if (k->a + 1 > la) la = k->a + 1;
        if (k->b + 1 > lb) lb = k->b + 1;
    }
    streams_init(sa, la, A->cfg.dim, rows, wa);
    streams_init(sb, lb, B->cfg.dim, rows, wb);
    free(wa);
    free(wb);
}

/* This rank's tokens; checks that hold on every rank alike (one store). */
static int fit_tokens(const Model *A, const Model *B, const Tokenizer *tok, const ProjFit *o, long n, int **tokens,
                      float **w) {
    ShardStore *st;
    if (shard_store_open(&st, o->data) != 0) return -1;
    int vocab = A->cfg.vocab_size < B->cfg.vocab_size ? A->cfg.vocab_size : B->cfg.vocab_size, S = -1;
    if (run_check_store(st, tok, vocab, o->T) == 0) S = streams_load_tokens(st, n, o->T, tokens, w);
    shard_store_close(st);
    return S;
}

int init_proj_lstsq(Composer *c, Model *A, Model *B, const Tokenizer *tok, const ProjFit *o) {
    int dA = A->cfg.dim;
    long n = o->tokens ? o->tokens : init_proj_default_tokens(dA);
    if (n < dA + 1L)
        return calm_error("--init-tokens %ld is below the augmenting model's width + 1 (%d): a least-squares fit of "
                          "%d weights and a bias per output needs more tokens than that (many more is better)",
                          n, dA + 1, dA);
    double t0 = calm_now();
    int *tokens = NULL;
    float *w = NULL;
    int S = fit_tokens(A, B, tok, o, n, &tokens, &w);
    if (S < 0) return -1;
    Streams sa, sb;
    streams_for(&sa, &sb, &c->cfg, A, B, (int64_t)S * o->T);
    streams_run(A, B, &sa, &sb, tokens, w, S, o->T, 8, "init-proj");
    free(tokens);
    free(w);
    long total = dist_sum_long(&g_dist, (long)sa.n);
    int rc = 0;
    if (total < dA + 1L) /* padding left fewer than asked for */
        rc = calm_error("%s: only %ld of the %ld tokens read are not padding, below mA's width + 1 (%d): use more "
                        "--init-tokens", o->data, total, n, dA + 1);
    LaGrid *g = NULL;
    if (rc == 0) rc = la_grid_open(&g, &g_dist, 0, 0, 0);
    if (rc == 0) calm_log("init-proj lstsq: fitting %d projections over %ld tokens", c->cfg.n_conn, total);
    for (int i = 0; i < c->cfg.n_conn && rc == 0; i++) rc = fit_one(c, g, i, &sa, &sb);
    la_grid_close(g);
    for (int i = 0; i < c->cfg.n_conn && rc == 0; i++) rc = dump_rows(c, i, &sa, &sb);
    if (getenv("CALM_TEST_INIT_PROJ_DUMP") && dist_max_long(&g_dist, rc != 0)) /* all ranks fail together */
        rc = rc ? rc : calm_error("CALM_TEST_INIT_PROJ_DUMP: another rank could not write its rows");
    streams_free(&sa);
    streams_free(&sb);
    if (rc == 0) calm_log("init-proj lstsq: done in %.1f s", calm_now() - t0);
    return rc;
}
