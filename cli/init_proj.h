/* init_proj.h: `calm compose --init-proj lstsq`: each connection's
 * projection starts as the least-squares map from mA's residual stream after
 * block a to mB's after block b (model stitching), fitted over tokens of the
 * training store by QR on the ranks (mpi/linalg.h, la_lstsq). o_proj stays
 * zero, so step 0 still computes mB exactly; the fit only decides where the
 * projection starts. */
#ifndef CALM_CLI_INIT_PROJ_H
#define CALM_CLI_INIT_PROJ_H

#include "src/compose.h"
#include "src/tokenizer.h"

typedef struct {
    const char *data; /* the training store: the fit reads the first `tokens` tokens of its train split */
    long tokens;      /* 0: init_proj_default_tokens */
    int T;            /* tokens per sequence: the run's --seq-len */
} ProjFit;

/* 4096 tokens, or twice the unknowns per output (dA weights and a bias) when
 * mA is wider: a fit with barely more rows than unknowns interpolates. */
long init_proj_default_tokens(int dA);

/* Collective over the world: every rank runs both full frozen models, A and
 * B, over its share of the tokens; la_lstsq fits every connection, and each
 * rank keeps the projections it owns (compose_set_proj), the same on every
 * rank and for any rank count up to rounding. Logs the tokens used and each
 * connection's relative residual. 0, or -1 after calm_error (on every rank).
 * CALM_TEST_INIT_PROJ_DUMP=DIR: also write the fitted rows, for the tests,
 * as raw float32 DIR/c<i>.r<rank>.x (mA) and .y (mB). */
int init_proj_lstsq(Composer *c, Model *A, Model *B, const Tokenizer *tok, const ProjFit *o);

#endif
