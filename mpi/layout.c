/* layout.c: rank roles and the balanced split of the anchor into stages. */
#include "mpi/layout.h"

#include <stdlib.h>
#include <string.h>

#include "src/common.h"

int layout_check(int world, int S, int A, int L) {
    if (S < 1) return calm_error("--anchor-stages %d: need at least 1 anchor stage", S);
    if (A < 1)
        return calm_error("--augment-ranks %d: need at least 1 augment rank (it runs the augmenting model and "
                          "the projections)", A);
    if (S > L)
        return calm_error("--anchor-stages %d is more than the anchor's %d layers: every stage needs at least "
                          "one layer", S, L);
    if (world < 1 || world % (S + A) != 0)
        return calm_error("world size %d is not a multiple of anchor stages + augment ranks = %d + %d = %d: "
                          "launch %d, %d, ... ranks or change --anchor-stages / --augment-ranks",
                          world, S, A, S + A, S + A, 2 * (S + A));
    return 0;
}

int layout_partition(int L, int S, const double *layer_cost, double embed_cost, double head_cost, int *first,
                     double *max_cost) {
    if (S < 1 || S > L) return calm_error("cannot split %d layers into %d non-empty stages", L, S);
    /* pre[i] = cost of blocks 0..i-1; a stage [j, i) costs pre[i] - pre[j]
     * plus the embedding if j == 0 and the head if i == L. */
    double *pre = xmalloc((L + 1) * sizeof(double));
    pre[0] = 0;
    for (int l = 0; l < L; l++) pre[l + 1] = pre[l] + layer_cost[l];
    /* best[k*(L+1) + i]: smallest possible largest stage cost when blocks
     * 0..i-1 form stages 0..k-1 (k >= 1); arg: where stage k-1 starts. */
    double *best = xmalloc((size_t)(S + 1) * (L + 1) * sizeof(double));
    int *arg = xmalloc((size_t)(S + 1) * (L + 1) * sizeof(int));
#define SEG(j, i) (pre[i] - pre[j] + ((j) == 0 ? embed_cost : 0) + ((i) == L ? head_cost : 0))
    for (int i = 1; i <= L; i++) best[1 * (L + 1) + i] = SEG(0, i), arg[1 * (L + 1) + i] = 0;
    for (int k = 2; k <= S; k++)
        for (int i = k; i <= L; i++) {
            double b = -1;
            int bj = k - 1;
            for (int j = k - 1; j < i; j++) { /* stages 0..k-2 hold blocks 0..j-1, stage k-1 holds j..i-1 */
                double prev = best[(k - 1) * (L + 1) + j], seg = SEG(j, i), v = prev > seg ? prev : seg;
                if (b < 0 || v < b) b = v, bj = j;
            }
            best[k * (L + 1) + i] = b, arg[k * (L + 1) + i] = bj;
        }
#undef SEG
    first[S] = L;
    for (int k = S, i = L; k >= 1; k--) {
        i = arg[k * (L + 1) + i];
        first[k - 1] = i;
    }
    if (max_cost) *max_cost = best[S * (L + 1) + L];
    free(pre);
    free(best);
    free(arg);
    return 0;
}

int layout_plan(Layout *lo, int world, int S, int A, int L, const double *layer_cost, double embed_cost,
                double head_cost, const ComposeConfig *cc) {
    memset(lo, 0, sizeof *lo);
    if (layout_check(world, S, A, L)) return -1;
    int n_conn = cc ? cc->n_conn : 0;
    for (int i = 0; i < n_conn; i++)
        if (cc->conn[i].b < 0 || cc->conn[i].b >= L)
            return calm_error("connection %d:%d: anchor block %d is not in 0..%d", cc->conn[i].a, cc->conn[i].b,
                              cc->conn[i].b, L - 1);
    lo->world = world, lo->S = S, lo->A = A, lo->R = world / (S + A), lo->L = L;
    lo->first = xmalloc((S + 1) * sizeof(int));
    lo->cost = xmalloc(S * sizeof(double));
    if (layout_partition(L, S, layer_cost, embed_cost, head_cost, lo->first, NULL)) {
        layout_free(lo);
        return -1;
    }
    for (int s = 0; s < S; s++) {
        lo->cost[s] = (s == 0 ? embed_cost : 0) + (s == S - 1 ? head_cost : 0);
        for (int l = lo->first[s]; l < lo->first[s + 1]; l++) lo->cost[s] += layer_cost[l];
    }
    lo->n_conn = n_conn;
    lo->conn = xcalloc(n_conn + 1, sizeof(Connection));
    lo->conn_stage = xcalloc(n_conn + 1, sizeof(int));
    lo->stage_n_conn = xcalloc(S, sizeof(int));
    for (int i = 0; i < n_conn; i++) {
        lo->conn[i] = cc->conn[i];
        int s = 0;
        while (cc->conn[i].b >= lo->first[s + 1]) s++;
        lo->conn_stage[i] = s;
        lo->stage_n_conn[s]++;
    }
    return 0;
}

void layout_free(Layout *lo) {
    free(lo->first);
    free(lo->cost);
    free(lo->conn);
    free(lo->conn_stage);
    free(lo->stage_n_conn);
    memset(lo, 0, sizeof *lo);
}

void layout_rank(const Layout *lo, int rank, RankInfo *info) {
    int g = lo->S + lo->A;
    if (lo->role_major) {
        int anchors = lo->R * lo->S;
        info->role = rank < anchors ? ROLE_ANCHOR : ROLE_AUGMENT;
        info->replica = rank < anchors ? rank / lo->S : (rank - anchors) / lo->A;
        info->index = rank < anchors ? rank % lo->S : (rank - anchors) % lo->A;
        info->local = info->role == ROLE_ANCHOR ? info->index : lo->S + info->index;
        return;
    }
    info->replica = rank / g;
    info->local = rank % g;
    info->role = info->local < lo->S ? ROLE_ANCHOR : ROLE_AUGMENT;
    info->index = info->role == ROLE_ANCHOR ? info->local : info->local - lo->S;
}

int layout_world_rank(const Layout *lo, int replica, RankRole role, int index) {
    if (lo->role_major)
        return role == ROLE_ANCHOR ? replica * lo->S + index : lo->R * lo->S + replica * lo->A + index;
    return replica * (lo->S + lo->A) + (role == ROLE_ANCHOR ? index : lo->S + index);
}

void layout_costs(const ModelConfig *anchor, const ComposeConfig *cc, int Bsz, int T, double *layer_cost,
                  double *embed_cost, double *head_cost) {
    const int L = anchor->n_layers;
    const double N = (double)Bsz * T, C = anchor->dim;
    double att, mm = model_block_flops(anchor, Bsz, T, &att);
    /* the backward stops at the lowest connected block: blocks above it run
     * backward (input gradients: one forward's matmuls, attention twice) */
    int b_min = L - 1;
    for (int i = 0; cc && i < cc->n_conn; i++)
        if (cc->conn[i].b < b_min) b_min = cc->conn[i].b;
    for (int l = 0; l < L; l++) layer_cost[l] = mm + att + (l > b_min ? mm + 2.0 * att : 0);
    /* cross-attention on the anchor side, as in compose_flops_per_step:
     * forward q, k, v, o + attention; backward weight and input gradients of
     * q, k, v, o and attention twice */
    double sq = 2.0 * N * C * C, xatt = 2.0 * 2.0 * Bsz * ((double)T * (T + 1) / 2.0) * C;
    for (int i = 0; cc && i < cc->n_conn; i++)
        if (cc->conn[i].b >= 0 && cc->conn[i].b < L) layer_cost[cc->conn[i].b] += (4 * sq + xatt) + 8 * sq + 2 * xatt;
    *embed_cost = 0;
    *head_cost = 2.0 * (2.0 * N * C * anchor->vocab_size);
}

void layout_print(const Layout *lo, FILE *f) {
    fprintf(f, "layout: %d ranks = %d replica%s x (%d anchor stage%s + %d augment rank%s)%s\n", lo->world, lo->R,
            lo->R == 1 ? "" : "s", lo->S, lo->S == 1 ? "" : "s", lo->A, lo->A == 1 ? "" : "s",
            lo->role_major ? ", ranks ordered by role" : "");
    fprintf(f, "%6s  %-8s %5s  %-7s %-14s %s\n", "rank", "role", "repl", "index", "blocks", "connections (a:b)");
    for (int r = 0; r < lo->world; r++) {
        RankInfo ri;
        layout_rank(lo, r, &ri);
        char blocks[64], conns[256] = "";
        if (ri.role == ROLE_ANCHOR) {
            int s = ri.index;
            snprintf(blocks, sizeof blocks, "%d-%d%s%s", lo->first[s], lo->first[s + 1] - 1, s == 0 ? " +emb" : "",
                     s == lo->S - 1 ? " +head" : "");
            Connection mine[COMPOSE_MAX_CONN];
            int n = 0;
            for (int i = 0; i < lo->n_conn; i++)
                if (lo->conn_stage[i] == s) mine[n++] = lo->conn[i];
            compose_format_connections(mine, n, conns, sizeof conns);
        } else {
            int a_max = 0;
            for (int i = 0; i < lo->n_conn; i++) a_max = lo->conn[i].a > a_max ? lo->conn[i].a : a_max;
            snprintf(blocks, sizeof blocks, "mA 0-%d", a_max); /* up to its highest connected block */
            /* every augment rank projects for every connection, on its micro-batches */
            snprintf(conns, sizeof conns, "projections of all %d, micro-batches m %% %d == %d", lo->n_conn, lo->A,
                     ri.index);
        }
        fprintf(f, "%6d  %-8s %5d  %-7d %-14s %s\n", r, ri.role == ROLE_ANCHOR ? "anchor" : "augment", ri.replica,
                ri.index, blocks, conns[0] ? conns : "-");
    }
}
