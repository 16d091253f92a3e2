/* streams.c: two frozen models' residual streams over a store's tokens
 * (streams.h). */
#include "cli/streams.h"

#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "src/common.h"

void streams_init(Streams *s, int L, int C, int64_t rows, const unsigned char *want) {
    s->L = L;
    s->C = C;
    s->n = 0;
    s->h = xcalloc((size_t)L, sizeof *s->h);
    for (int l = 0; l < L; l++)
        if (!want || want[l]) s->h[l] = xmalloc(((size_t)rows * C + 1) * sizeof(float));
}

void streams_free(Streams *s) {
    for (int l = 0; l < s->L && s->h; l++) free(s->h[l]);
    free(s->h);
    s->h = NULL;
}

/* ResidHook: block `layer` has written resid, the stream after it. */
static void keep_stream(void *ctx, int layer, float *resid, int B, int T) {
    Streams *s = ctx;
    if (layer >= s->L) return;
    int64_t r = s->n;
    float *h = s->h[layer];
    for (int i = 0; i < B * T; i++) {
        if (!(s->keep[i] > 0)) continue;
        if (h) memcpy(h + (size_t)r * s->C, resid + (size_t)i * s->C, s->C * sizeof(float));
        r++;
    }
    if (layer == s->L - 1) s->n = r;
}

int streams_load_tokens(ShardStore *st, long tokens, int T, int **tok, float **weights) {
    long n_seq = (tokens + T - 1) / T;
    int S = (int)((n_seq + g_dist.size - 1) / g_dist.size);
    *tok = xmalloc((size_t)S * T * sizeof **tok);
    *weights = xmalloc((size_t)S * T * sizeof **weights);
    int *targets = xmalloc((size_t)S * T * sizeof *targets);
    ShardLoaderOpts lo;
    shard_loader_opts_default(&lo);
    ShardLoader *l;
    int rc = shard_loader_open(&l, st, &lo);
    if (rc == 0) rc = shard_loader_batch(l, 0, g_dist.rank, g_dist.size, S, T, *tok, targets, *weights);
    if (rc == 0) shard_loader_close(l);
    free(targets);
    if (rc != 0) return -1;
    for (int s = 0; s < S; s++)
        for (int t = 0; t < T; t++) {
            long g = ((long)g_dist.rank * S + s) * T + t; /* global token index */
            if (g >= tokens) (*weights)[(size_t)s * T + t] = 0;
        }
    return S;
}

void streams_run(Model *A, Model *B, Streams *sa, Streams *sb, const int *tokens, const float *w, int S, int T,
                 int batch, const char *what) {
    double t0 = calm_now(), last = t0;
    for (int s0 = 0; s0 < S; s0 += batch) {
        int nb = S - s0 < batch ? S - s0 : batch;
        const int *tk = tokens + (size_t)s0 * T;
        sa->keep = sb->keep = w + (size_t)s0 * T;
        model_forward_trunk(A, tk, nb, T, sa->L, keep_stream, sa);
        model_forward_trunk(B, tk, nb, T, sb->L, keep_stream, sb);
        if (calm_now() - last > 10 || s0 + nb == S) {
            last = calm_now();
            calm_log("%s: forward %d/%d sequences on rank 0 (%.0f s)", what, s0 + nb, S, last - t0);
        }
    }
}
