/* schedule_print.c: a schedule as a time-step grid and as action lists
 * (schedule.h). */
#include <stdlib.h>
#include <string.h>

#include "mpi/schedule.h"
#include "src/common.h"

void schedule_print_grid(const Schedule *sc, FILE *f) {
    SchedTrace tr;
    char err[1024];
    if (schedule_dry_run(sc, NULL, SEND_EAGER, &tr, err, sizeof err)) {
        fprintf(f, "schedule S=%d M=%d A=%d does not run: %s\n", sc->S, sc->M, sc->A, err);
        return;
    }
    int w = 2; /* letter + digits of the largest micro-batch, + a space */
    for (int m = sc->M - 1; m >= 10; m /= 10) w++;
    int T = tr.t_end;
    fprintf(f, "1F1B S=%d M=%d A=%d, unit costs: F/B forward/backward of a micro-batch on a stage, "
               "A/G augment forward/projection gradients\n", sc->S, sc->M, sc->A);
    fprintf(f, "%-10s", "t");
    for (int t = 0; t < T; t++) fprintf(f, " %*d", w, t);
    fputc('\n', f);
    char *row = xmalloc((size_t)T * (w + 1) + 1);
    for (int r = 0; r < sc->n_ranks; r++) {
        for (int t = 0; t < T; t++) snprintf(row + t * (w + 1), w + 2, " %*s", w, ".");
        for (int i = 0; i < sc->n_actions[r]; i++) {
            const Action *a = &sc->actions[r][i];
            char c = a->kind == ACT_FWD ? 'F' : a->kind == ACT_BWD ? 'B' : a->kind == ACT_AUG_FWD ? 'A'
                   : a->kind == ACT_AUG_ACCUM ? 'G' : 0;
            if (!c) continue;
            int t = tr.start[r][i], c1 = 1; /* unit costs: every compute action one step */
            char cell[16];
            snprintf(cell, sizeof cell, "%c%d", c, a->mb);
            for (int u = t; u < t + c1 && u < T; u++) {
                char tmp[20];
                snprintf(tmp, sizeof tmp, " %*s", w, cell);
                memcpy(row + u * (w + 1), tmp, w + 1);
            }
        }
        char label[32];
        if (r < sc->S)
            snprintf(label, sizeof label, "stage %d%s", r, sc->has_conn[r] ? "*" : "");
        else
            snprintf(label, sizeof label, "aug %d", r - sc->S);
        fprintf(f, "%-10s%s\n", label, row);
    }
    free(row);
    double *frac = xmalloc(sc->n_ranks * sizeof(double));
    double b = schedule_bubble_fraction(sc, NULL, frac);
    fprintf(f, "(* = stage owns a connection) steps %d; anchor bubble %.3f, (S-1)/(M+S-1) = %.3f\n", T - tr.t0, b,
            (double)(sc->S - 1) / (sc->M + sc->S - 1));
    free(frac);
    sched_trace_free(&tr);
}

void schedule_print_actions(const Schedule *sc, FILE *f) {
    for (int r = 0; r < sc->n_ranks; r++) {
        char who[48];
        schedule_rank_name(sc, r, who, sizeof who);
        fprintf(f, "%s:", who);
        for (int i = 0; i < sc->n_actions[r]; i++) {
            char what[64];
            action_format(&sc->actions[r][i], what, sizeof what);
            fprintf(f, "%s %s", i % 6 ? "" : "\n ", what);
        }
        fputc('\n', f);
    }
}
