/* plan_calib.h: measuring the per-layer costs `calm plan` predicts with
 * (plan_calib.c), and keeping them in a file. */
#ifndef CALM_CLI_PLAN_CALIB_H
#define CALM_CLI_PLAN_CALIB_H

#include "mpi/plan.h"

typedef struct {
    const PlanJob *job;
    const char *anchor_dir, *augment_dir;
    int cores;   /* cores this process may use: 2 or more also measures two threads */
    int threads; /* the thread count to leave set */
} PlanCalibOpts;

/* Seconds of every piece for micro-batches of bs[i] sequences of job->T
 * tokens, into tab[i]: one frozen block of each model as stored (its first;
 * the anchor's last with the head), one connection's cross-attention and
 * projection, AdamW; on one thread; when cores >= 2 also beside a second
 * process doing the same (share2) and on two threads (eff2). */
int plan_calibrate(const PlanCalibOpts *o, const int *bs, int n, PlanCosts *tab);

/* Run the measurement of micro-batch b on one thread forever: the second
 * process the side-by-side measurement starts (calm plan --burn). */
void plan_burn(const PlanCalibOpts *o, int b) __attribute__((noreturn));

/* The costs as JSON ({"models": what, "blis": ..., "costs": [{"b", "T",
 * "blk_f", ...}]}), written atomically; loading refuses a file measured for
 * other models (what differs) or another sequence length. */
int plan_costs_save(const char *path, const char *what, const PlanCosts *tab, int n);
int plan_costs_load(const char *path, const char *what, int T, PlanCosts **tab, int *n);

#endif
