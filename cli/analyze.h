/* analyze.h: what `calm analyze` (analyze.c) hands its report
 * (analyze_report.c): the CKA matrix, the suggested connections, the files. */
#ifndef CALM_CLI_ANALYZE_H
#define CALM_CLI_ANALYZE_H

#include <stdint.h>

typedef struct {
    int LA, LB;        /* mA and mB layer outputs 1..LA, 1..LB */
    double *cka;       /* [LA, LB] row-major: cka[(a-1) * LB + (b-1)] */
    int64_t tokens;    /* rows (tokens) the CKA was computed over */
    int K;             /* connections suggested */
    int pa[64], pb[64]; /* their mA and mB layer outputs, 1-based, increasing */
    /* what the run was */
    const char *anchor, *augment, *data;
    int seq_len, ranks, nprow, npcol;
    double seconds, seconds_forward, seconds_cka; /* whole, models' forward, CKA matrix */
    double peak_rss_mb; /* the largest of the ranks' peak resident memory */
} CkaReport;

/* The K pairs (a1 < a2 < ..., b1 < b2 < ...) of largest total CKA, by
 * dynamic programming over (mA layers, mB layers, pairs); K <= min(LA, LB).
 * Ties go to the lower layers. */
void analyze_best_matching(CkaReport *r);

/* The matrix on stdout; OUT/cka.json (atomically) and OUT/cka.png by gnuplot
 * (with OUT/cka.dat and OUT/cka.gp it reads; without gnuplot a message says
 * the PNG was skipped). Returns 0 or -1 after calm_error. */
int analyze_write(const CkaReport *r, const char *out_dir);

#endif
