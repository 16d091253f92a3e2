/* la_run.c: mpi/linalg.h on matrices from files, for test_linalg.sh to
 * compare with NumPy. Rank r of P reads rows [r N / P, (r+1) N / P) of X
 * and of Y (so the ranks hold different counts and the padding of the
 * layout is exercised), then computes linear CKA(X, Y) and the
 * least-squares fit of Y from X with a bias, by QR and by the float normal
 * equations. Rank 0 writes OUT as JSON: {"cka", "W", "b", "W_normal",
 * "b_normal"} (W row-major [q, p]). An error prints calm's message and
 * exits 1, on every rank.
 *
 * Usage: la_run X.f32 NX P Y.f32 NY Q OUT.json [NPROW NPCOL]
 * (.f32: raw little-endian float32, row-major) */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpi/dist.h"
#include "mpi/linalg.h"
#include "src/common.h"

static float *read_rows(const char *path, int n, int cols, int rank, int size, int *n_local) {
    long r0 = (long)rank * n / size, r1 = (long)(rank + 1) * n / size;
    *n_local = (int)(r1 - r0);
    float *x = xmalloc(((size_t)*n_local * cols + 1) * sizeof *x);
    FILE *f = fopen(path, "rb");
    if (!f) calm_fatal("run it from test_linalg.sh", "%s: cannot open", path);
    if (fseek(f, r0 * cols * (long)sizeof(float), SEEK_SET) != 0 ||
        fread(x, sizeof(float), (size_t)*n_local * cols, f) != (size_t)*n_local * cols)
        calm_fatal("regenerate the matrices", "%s: shorter than %d x %d floats", path, n, cols);
    fclose(f);
    return x;
}

static cJSON *doubles(const double *x, int n) {
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber(x[i]));
    return a;
}

static int fail(Dist *d) {
    fprintf(stderr, "la_run: rank %d: %s\n", d->rank, calm_last_error());
    return 1;
}

int main(int argc, char **argv) {
    if (argc != 8 && argc != 10) {
        fprintf(stderr, "usage: la_run X.f32 NX P Y.f32 NY Q OUT.json [NPROW NPCOL]\n");
        return 2;
    }
    Dist d;
    dist_init(&d, &argc, &argv);
    int nx = atoi(argv[2]), p = atoi(argv[3]), ny = atoi(argv[5]), q = atoi(argv[6]);
    int nprow = argc == 10 ? atoi(argv[8]) : 0, npcol = argc == 10 ? atoi(argv[9]) : 0;
    LaGrid *g;
    if (la_grid_open(&g, &d, nprow, npcol, 4) != 0) return fail(&d); /* small blocks: many per rank */
    int nxl, nyl;
    float *x = read_rows(argv[1], nx, p, d.rank, d.size, &nxl);
    float *y = read_rows(argv[4], ny, q, d.rank, d.size, &nyl);
    double cka = 0, *w = xmalloc((size_t)p * q * sizeof *w), *b = xmalloc((size_t)q * sizeof *b);
    double *wn = xmalloc((size_t)p * q * sizeof *wn), *bn = xmalloc((size_t)q * sizeof *bn);
    if (la_lstsq(g, x, nxl, p, y, nyl, q, LA_QR, w, b) != 0) return fail(&d);
    if (la_lstsq(g, x, nxl, p, y, nyl, q, LA_NORMAL_F32, wn, bn) != 0) return fail(&d);
    if (la_cka(g, x, p, y, q, nxl, &cka) != 0) return fail(&d);
    int rc = 0;
    if (d.rank == 0) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "cka", cka);
        cJSON_AddItemToObject(o, "W", doubles(w, p * q));
        cJSON_AddItemToObject(o, "b", doubles(b, q));
        cJSON_AddItemToObject(o, "W_normal", doubles(wn, p * q));
        cJSON_AddItemToObject(o, "b_normal", doubles(bn, q));
        char *s = cJSON_Print(o);
        FILE *f = fopen(argv[7], "w");
        rc = !f || fputs(s, f) < 0 || fclose(f) != 0;
        if (rc) fprintf(stderr, "la_run: %s: cannot write\n", argv[7]);
        free(s);
        cJSON_Delete(o);
    }
    free(x), free(y), free(w), free(b), free(wn), free(bn);
    la_grid_close(g);
    dist_finalize(&d);
    return rc;
}
