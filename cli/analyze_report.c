/* analyze_report.c: the suggested connections and the files of
 * `calm analyze` (analyze.h). */
#include <cjson/cJSON.h>
#include <errno.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "cli/analyze.h"
#include "src/common.h"
#include "src/compose.h"
#include "src/files.h"

extern char **environ;

void analyze_best_matching(CkaReport *r) {
    const int LA = r->LA, LB = r->LB, K = r->K;
    /* f[i][j][k]: the largest total of k pairs among the first i mA and the
     * first j mB layers; -1 (below any total) where k pairs do not fit. */
#define F(i, j, k) f[((size_t)(i) * (LB + 1) + (j)) * (K + 1) + (k)]
    double *f = xmalloc((size_t)(LA + 1) * (LB + 1) * (K + 1) * sizeof *f);
    for (int i = 0; i <= LA; i++)
        for (int j = 0; j <= LB; j++)
            for (int k = 0; k <= K; k++) {
                double v = k == 0 ? 0 : -1;
                if (k > 0 && i > 0 && j > 0) {
                    if (F(i - 1, j, k) > v) v = F(i - 1, j, k);
                    if (F(i, j - 1, k) > v) v = F(i, j - 1, k);
                    if (F(i - 1, j - 1, k - 1) >= 0) {
                        double take = F(i - 1, j - 1, k - 1) + r->cka[(size_t)(i - 1) * LB + (j - 1)];
                        if (take > v) v = take;
                    }
                }
                F(i, j, k) = v;
            }
    /* Walk back: leave a layer out whenever that loses nothing, so ties keep
     * the lower layers' pairs. */
    for (int i = LA, j = LB, k = K; k > 0;) {
        if (F(i - 1, j, k) == F(i, j, k)) i--;
        else if (F(i, j - 1, k) == F(i, j, k)) j--;
        else {
            k--;
            r->pa[k] = i--;
            r->pb[k] = j--;
        }
    }
#undef F
    free(f);
}

static void print_matrix(const CkaReport *r) {
    printf("linear CKA over %lld tokens: rows mA layer outputs 1..%d, columns mB 1..%d\n      ", (long long)r->tokens,
           r->LA, r->LB);
    for (int b = 1; b <= r->LB; b++) printf(" %6d", b);
    printf("\n");
    for (int a = 1; a <= r->LA; a++) {
        printf("mA %3d", a);
        for (int b = 1; b <= r->LB; b++) printf(" %6.4f", r->cka[(size_t)(a - 1) * r->LB + (b - 1)]);
        printf("\n");
    }
    printf("suggested (mA:mB layer outputs, 1-based):");
    for (int k = 0; k < r->K; k++) printf(" %d:%d", r->pa[k], r->pb[k]);
    printf("\n");
}

static cJSON *report_json(const CkaReport *r) {
    cJSON *o = cJSON_CreateObject(), *m = cJSON_AddArrayToObject(o, "cka");
    for (int a = 0; a < r->LA; a++) cJSON_AddItemToArray(m, cJSON_CreateDoubleArray(r->cka + (size_t)a * r->LB, r->LB));
    cJSON *s = cJSON_AddArrayToObject(o, "suggested");
    Connection conn[64];
    for (int k = 0; k < r->K; k++) {
        int pair[2] = {r->pa[k], r->pb[k]};
        cJSON_AddItemToArray(s, cJSON_CreateIntArray(pair, 2));
        conn[k] = (Connection){r->pa[k] - 1, r->pb[k] - 1}; /* block a-1's output is layer output a */
    }
    char line[1024];
    compose_format_connections(conn, r->K, line, sizeof line);
    cJSON_AddStringToObject(o, "connections", line);
    cJSON_AddNumberToObject(o, "tokens", (double)r->tokens);
    cJSON_AddStringToObject(o, "anchor", r->anchor);
    cJSON_AddStringToObject(o, "augment", r->augment);
    cJSON_AddStringToObject(o, "data", r->data);
    cJSON_AddNumberToObject(o, "seq_len", r->seq_len);
    cJSON_AddNumberToObject(o, "ranks", r->ranks);
    char grid[32];
    snprintf(grid, sizeof grid, "%dx%d", r->nprow, r->npcol);
    cJSON_AddStringToObject(o, "grid", grid);
    cJSON_AddNumberToObject(o, "seconds", r->seconds);
    cJSON_AddNumberToObject(o, "seconds_forward", r->seconds_forward);
    cJSON_AddNumberToObject(o, "seconds_cka", r->seconds_cka);
    cJSON_AddNumberToObject(o, "peak_rss_mb", r->peak_rss_mb);
    return o;
}

static int write_text(const char *dir, const char *name, const char *text) {
    char *path = calm_path_join(dir, name);
    size_t len = strlen(text);
    const void *bufs[1] = {text};
    int rc = calm_write_atomic(path, bufs, &len, 1);
    free(path);
    return rc;
}

/* gnuplot's input: the matrix, and a script drawing it as a heatmap. */
static int write_plot_files(const CkaReport *r, const char *dir) {
    size_t cap = (size_t)r->LA * r->LB * 12 + 64, n = 0;
    char *dat = xmalloc(cap);
    for (int a = 0; a < r->LA; a++)
        for (int b = 0; b < r->LB; b++)
            n += (size_t)snprintf(dat + n, cap - n, "%.6f%c", r->cka[(size_t)a * r->LB + b], b + 1 < r->LB ? ' ' : '\n');
    int rc = write_text(dir, "cka.dat", dat);
    free(dat);
    char gp[1024];
    snprintf(gp, sizeof gp,
             "# gnuplot cka.gp, in this folder: cka.png from cka.dat (rows mA layers, columns mB layers)\n"
             "set terminal pngcairo size 800,640\nset output 'cka.png'\n"
             "set title 'linear CKA over %lld tokens'\nset xlabel 'mB layer output (anchor)'\n"
             "set ylabel 'mA layer output (augment)'\nset cbrange [0:1]\nset palette rgb 33,13,10\n"
             "set xrange [0.5:%d.5]\nset yrange [0.5:%d.5]\nset xtics 1\nset ytics 1\n"
             "plot 'cka.dat' matrix using ($1+1):($2+1):3 with image notitle\n",
             (long long)r->tokens, r->LB, r->LA);
    if (rc == 0) rc = write_text(dir, "cka.gp", gp);
    return rc;
}

/* gnuplot cka.gp in dir: 1 drawn, 0 gnuplot not installed, -1 failed. */
static int run_gnuplot(const char *dir) {
    char *gp = calm_path_join(dir, "cka.gp");
    char *argv[] = {"gnuplot", "-e", NULL, NULL};
    size_t n = strlen(dir) * 2 + 32;
    char *cd = xmalloc(n);
    snprintf(cd, n, "cd '%s'; load 'cka.gp'", dir); /* gnuplot writes the PNG where it runs */
    argv[2] = cd;
    pid_t pid;
    int err = posix_spawnp(&pid, "gnuplot", NULL, NULL, argv, environ), status = 0, rc = 1;
    if (err == ENOENT) rc = 0;
    else if (err != 0 || waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        rc = calm_error("%s: gnuplot failed (status %d)", gp, status);
    free(cd);
    free(gp);
    return rc;
}

int analyze_write(const CkaReport *r, const char *out_dir) {
    print_matrix(r);
    if (calm_mkdirs(out_dir) != 0) return -1;
    cJSON *o = report_json(r);
    char *path = calm_path_join(out_dir, "cka.json");
    int rc = calm_write_json(path, o);
    cJSON_Delete(o);
    if (rc == 0) calm_log("wrote %s", path);
    free(path);
    if (rc == 0) rc = write_plot_files(r, out_dir);
    if (rc == 0) {
        int drawn = run_gnuplot(out_dir);
        if (drawn < 0) return -1;
        if (drawn) calm_log("wrote %s/cka.png", out_dir);
        else calm_log("gnuplot not found (apt-get install gnuplot-nox): %s/cka.png skipped; cka.gp draws it", out_dir);
    }
    return rc;
}
