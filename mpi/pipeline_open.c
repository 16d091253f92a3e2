/* pipeline_open.c: planning a pipeline (layout and schedule), opening and
 * closing it, and its per-rank report; see pipeline.h. */
#include <limits.h>
#include <mpi.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "mpi/pipeline_impl.h"
#include "src/common.h"
#include "src/files.h"
#include "src/modeldir.h"

/* ------------------------------------------------------------- planning */

static int load_configs(const PipeOpts *o, ModelConfig *ca, ModelConfig *cb, ComposeConfig *cc) {
    char *pa = calm_path_join(o->augment_dir, CALM_CONFIG_FILE), *pb = calm_path_join(o->anchor_dir, CALM_CONFIG_FILE);
    int r = model_config_load(cb, pb) || model_config_load(ca, pa) ? -1 : 0;
    free(pa);
    free(pb);
    return r ? -1 : compose_connections(cc, o->connections, o->heads, ca, cb);
}

/* Layout and schedule, checked: the part of opening that needs no MPI. */
static int plan(const PipeOpts *o, int world, const ModelConfig *cb, const Composer *comp, Layout *lo, Schedule *sc,
                int *b) {
    if (o->M < 1) return calm_error("--micro-batches %d: need at least 1", o->M);
    if (layout_check(world, o->S, o->A, cb->n_layers)) return -1;
    int R = world / (o->S + o->A);
    if (o->B % (R * o->M))
        return calm_error("--batch %d is not divisible by %d replica%s x %d micro-batches", o->B, R, R == 1 ? "" : "s",
                          o->M);
    *b = o->B / (R * o->M);
    double *cost = xmalloc((size_t)cb->n_layers * sizeof(double)), embed, head;
    layout_costs(cb, &comp->cfg, *b, o->T, cost, &embed, &head);
    int r = layout_plan(lo, world, o->S, o->A, cb->n_layers, cost, embed, head, &comp->cfg);
    free(cost);
    if (r) return -1;
    lo->role_major = o->role_major;
    if (schedule_1f1b(sc, o->S, o->M, o->A, lo->stage_n_conn)) {
        layout_free(lo);
        return -1;
    }
    char err[512];
    SchedCost unit = {1, 1, 1, 1};
    if (schedule_validate(sc, err, sizeof err) || schedule_dry_run(sc, &unit, SEND_EAGER, NULL, err, sizeof err)) {
        schedule_free(sc);
        layout_free(lo);
        return calm_error("pipeline schedule S=%d M=%d A=%d is unsound: %s", o->S, o->M, o->A, err);
    }
    return 0;
}

int pipeline_print_plan(const PipeOpts *o, int world, FILE *f) {
    ModelConfig ca, cb;
    ComposeConfig cc;
    Composer comp;
    Layout lo;
    Schedule sc;
    int b;
    if (load_configs(o, &ca, &cb, &cc) || compose_init_configs(&comp, &ca, &cb, &cc)) return -1;
    int r = plan(o, world, &cb, &comp, &lo, &sc, &b);
    if (r == 0) {
        layout_print(&lo, f);
        fprintf(f, "\nmicro-batch: %d rows x %d tokens; step: %d micro-batches per replica\n\n", b, o->T, o->M);
        schedule_print_grid(&sc, f);
        double *frac = xmalloc((size_t)sc.n_ranks * sizeof(double));
        double bub = schedule_bubble_fraction(&sc, NULL, frac);
        fprintf(f, "\nbubble fraction (unit costs, free augment ranks): %.3f; 1F1B ideal (S-1)/(M+S-1) = %.3f\n", bub,
                (double)(o->S - 1) / (o->M + o->S - 1));
        free(frac);
        schedule_free(&sc);
        layout_free(&lo);
    }
    compose_free(&comp);
    return r;
}

/* ------------------------------------------------------------ open/close */

int pipeline_open(Pipeline **out, PipelineRun *run, TrainConfig *tc, const PipeOpts *o, const Dist *d) {
    Pipeline *p = xcalloc(1, sizeof *p);
    p->dist = *d;
    p->anchor_dir = o->anchor_dir;
    p->augment_dir = o->augment_dir;
    ComposeConfig cc;
    if (load_configs(o, &p->cfg_a, &p->cfg_b, &cc) || compose_init_configs(&p->comp, &p->cfg_a, &p->cfg_b, &cc) ||
        plan(o, d->size, &p->cfg_b, &p->comp, &p->lo, &p->sc, &p->b)) {
        free(p);
        return -1;
    }
    if (o->T > p->cfg_a.max_seq_len || o->T > p->cfg_b.max_seq_len)
        return calm_error("--seq-len %d exceeds a model's max_position_embeddings (anchor %d, augment %d)", o->T,
                          p->cfg_b.max_seq_len, p->cfg_a.max_seq_len);
    p->S = o->S, p->A = o->A, p->M = o->M, p->R = p->lo.R, p->T = o->T, p->N = p->b * o->T;
    const size_t ND = (size_t)p->N * p->comp.dB;
    int tag_ub_ok = 0, *tag_ub, flag;
    MPI_Comm_get_attr(MPI_COMM_WORLD, MPI_TAG_UB, &tag_ub, &flag);
    tag_ub_ok = flag && (long)p->M * ACT_N_KINDS < (long)*tag_ub;
    if (!tag_ub_ok) return calm_error("--micro-batches %d: too many for MPI's tag range", p->M);
    if (ND * (size_t)(p->comp.cfg.n_conn > 0 ? p->comp.cfg.n_conn : 1) > (size_t)INT_MAX)
        return calm_error("a micro-batch's messages exceed 2^31 floats: use more --micro-batches");
    layout_rank(&p->lo, d->rank, &p->me);
    p->last_stage = p->me.role == ROLE_ANCHOR && p->me.index == p->S - 1;
    p->stop = p->comp.b_min + 1;
    p->cfirst = xcalloc((size_t)p->S + 1, sizeof(int));
    for (int i = 0; i < p->comp.cfg.n_conn; i++) p->cfirst[p->lo.conn_stage[i] + 1]++;
    for (int s = 0; s < p->S; s++) p->cfirst[s + 1] += p->cfirst[s];
    MPI_Comm_split(MPI_COMM_WORLD, p->me.replica, p->me.local, &p->rep);
    MPI_Comm_split(MPI_COMM_WORLD, p->me.local, p->me.replica, &p->pos);
    MPI_Comm_split(MPI_COMM_WORLD, (int)p->me.role, d->rank, &p->role);

    /* this rank's part of the models and of the composition parameters */
    int rc;
    if (p->me.role == ROLE_ANCHOR) {
        int s = p->me.index;
        p->c0 = p->cfirst[s], p->c1 = p->cfirst[s + 1];
        ModelLoadOpts lo = {.l0 = p->lo.first[s], .l1 = p->lo.first[s + 1], .head = s == p->S - 1, .frozen = 1};
        rc = model_load_dir_opts(&p->model, o->anchor_dir, &lo);
        p->own = xcalloc((size_t)(4 * (p->c1 - p->c0) + 1), sizeof(ParamInfo));
        for (int i = p->c0; i < p->c1; i++)
            for (int j = 2; j < 6; j++) p->own[p->n_own++] = p->comp.info[6 * i + j]; /* q, k, v, o */
        p->counts = p->me.replica == 0;
    } else {
        ModelLoadOpts lo = {.l0 = 0, .l1 = p->comp.a_max + 1, .head = 0, .frozen = 1};
        rc = model_load_dir_opts(&p->model, o->augment_dir, &lo);
        p->own = xcalloc((size_t)(2 * p->comp.cfg.n_conn), sizeof(ParamInfo));
        for (int i = 0; i < p->comp.cfg.n_conn; i++)
            for (int j = 0; j < 2; j++) p->own[p->n_own++] = p->comp.info[6 * i + j]; /* proj weight and bias */
        p->counts = p->me.replica == 0 && p->me.index == 0;
    }
    p->comp.own = p->own; /* the rest of the composition stays unallocated here */
    p->comp.n_own = p->n_own;
    if (rc) return -1;
    if (memcmp(&p->model.cfg, p->me.role == ROLE_ANCHOR ? &p->cfg_b : &p->cfg_a, sizeof(ModelConfig)) != 0)
        return calm_error("%s: config.json changed while loading", p->me.role == ROLE_ANCHOR ? o->anchor_dir
                                                                                                : o->augment_dir);
    p->scratch = xalloc_floats(compose_scratch_floats(&p->comp, p->b, p->T));
    p->slot_of = xmalloc((size_t)p->M * sizeof(int));
    p->last_action = xmalloc((size_t)p->M * sizeof(int));
    const int me = p->me.local, n = p->sc.n_actions[me];
    for (int m = 0; m < p->M; m++) p->last_action[m] = -1;
    for (int i = 0; i < n; i++) p->last_action[p->sc.actions[me][i].mb] = i;
    p->recv_req = xcalloc((size_t)n + 1, sizeof(MPI_Request));
    p->recv_posted = xcalloc((size_t)n + 1, sizeof(int));
    if (d->rank == 0) layout_print(&p->lo, stderr);
    calm_log("pipeline: %d micro-batches of %d x %d per replica and step; bubble (S-1)/(M+S-1) = %.3f", p->M, p->b,
             p->T, (double)(p->S - 1) / (p->M + p->S - 1));
    memset(run, 0, sizeof *run);
    run->composer = &p->comp;
    run->trainable = pipeline_trainable(p);
    run->vocab = p->cfg_b.vocab_size;
    run->owns_part = p->counts;
    snprintf(run->layout, sizeof run->layout, "pipeline S=%d A=%d R=%d M=%d", p->S, p->A, p->R, p->M);
    pipeline_train_config(p, tc);
    *out = p;
    return 0;
}

/* Peak resident memory of this process in MB: what the kernel counts,
 * including the pages of memory-mapped weights this rank has touched. */
static double peak_rss_mb(void) {
    struct rusage ru;
    return getrusage(RUSAGE_SELF, &ru) == 0 ? ru.ru_maxrss / 1024.0 : 0.0;
}

void pipeline_report(Pipeline *p, FILE *f) {
    enum { K = 5 };
    double mine[K] = {p->busy, p->wait, p->t_total, p->bytes, peak_rss_mb()}, *all = NULL;
    if (p->dist.rank == 0) all = xmalloc((size_t)K * p->dist.size * sizeof(double));
    MPI_Gather(mine, K, MPI_DOUBLE, all, K, MPI_DOUBLE, 0, MPI_COMM_WORLD);
    if (p->dist.rank != 0 || p->steps == 0) {
        free(all);
        return;
    }
    const double ND = (double)p->N * p->comp.dB * sizeof(float);
    fprintf(f, "pipeline over %ld steps (busy: compute; idle = 1 - busy / step time; ideal 1F1B bubble %.3f)\n",
            p->steps, (double)(p->S - 1) / (p->M + p->S - 1));
    /* every rank steps together: rank 0's mean step time is the job's */
    const double step_s = all[2] / p->steps, tokens = (double)p->N * p->M * p->R;
    const double flops = compose_flops(&p->comp, &p->cfg_a, &p->cfg_b, p->b * p->M * p->R, p->T);
    fprintf(f, "step %.3f s: %.1f tokens/s, %.2f model GFLOP/s (%.3g FLOP a step)\n", step_s, tokens / step_s,
            flops / step_s / 1e9, flops);
    fprintf(f, "%6s  %-10s %5s  %9s %9s %7s  %12s %12s %10s\n", "rank", "role", "repl", "busy s", "wait s", "idle",
            "sent MB/step", "model MB/st", "peak RSS MB");
    for (int r = 0; r < p->dist.size; r++) {
        RankInfo ri;
        layout_rank(&p->lo, r, &ri);
        const double *x = all + K * r;
        /* bytes this rank must send per step by the model: activations up,
         * gradients down (only where a backward needs them), projections
         * and their gradients */
        double model = 0;
        int M = p->M;
        if (ri.role == ROLE_ANCHOR) {
            int s = ri.index, own = p->cfirst[s + 1] - p->cfirst[s];
            if (s < p->S - 1) model += M * ND;
            if (s > 0 && stage_has_backward(p, s - 1)) model += M * ND;
            model += (double)M * own * ND;
        } else {
            int mine_mb = M / p->A + (ri.index < M % p->A);
            model += (double)mine_mb * p->comp.cfg.n_conn * ND;
        }
        char role[16];
        snprintf(role, sizeof role, "%s %d", ri.role == ROLE_ANCHOR ? "stage" : "augment", ri.index);
        fprintf(f, "%6d  %-10s %5d  %9.3f %9.3f %7.3f  %12.3f %12.3f %10.0f\n", r, role, ri.replica, x[0], x[1],
                x[2] > 0 ? 1.0 - x[0] / x[2] : 0, x[3] / p->steps / 1e6, model / 1e6, x[4]);
    }
    free(all);
}

void pipeline_close(Pipeline *p) {
    if (!p) return;
    for (int k = 0; k < p->n_slots; k++) slot_free(&p->slots[k]);
    free(p->slots);
    free(p->slot_of);
    free(p->last_action);
    free(p->recv_req);
    free(p->recv_posted);
    free(p->scratch);
    free(p->own);
    free(p->cfirst);
    MPI_Comm_free(&p->rep);
    MPI_Comm_free(&p->pos);
    MPI_Comm_free(&p->role);
    model_free(&p->model);
    compose_free(&p->comp);
    schedule_free(&p->sc);
    layout_free(&p->lo);
    free(p);
}
