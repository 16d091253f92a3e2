/* plan.c: `calm plan`: predict a composition run's step time, bubble,
 * traffic and memory for every rank layout a machine can hold (mpi/plan.h),
 * from per-layer seconds measured here (plan_calib.c), and print the best
 * layouts and why the others lose. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/commands.h"
#include "cli/options.h"
#include "cli/plan_calib.h"
#include "mpi/plan.h"
#include "src/blas.h"
#include "src/common.h"
#include "src/config.h"
#include "src/files.h"
#include "src/modeldir.h"

typedef struct {
    const char *anchor, *augment, *connections, *costs, *save_costs, *json, *layout;
    int heads, B, T, top, threads, max_tokens, burn;
    PlanMachine mc;
    double net_us, net_gbps, shm_us, shm_gbps;
} PlanOpts;

/* Bytes per frozen parameter as the directory stores its matrices. */
static int stored_width(const char *dir, double *width) {
    Model m;
    ModelLoadOpts o = {.l0 = 0, .l1 = 1, .head = 0, .frozen = 1};
    if (model_load_dir_opts(&m, dir, &o) != 0) return -1;
    *width = 4;
    for (int k = 0; k < m.n_param_tensors; k++)
        if (m.param_info[k].mapped) {
            *width = (double)wm_dtype_size(m.param_info[k].dtype);
            break;
        }
    model_free(&m);
    return 0;
}

static int load_job(const PlanOpts *o, PlanJob *j) {
    memset(j, 0, sizeof *j);
    char *pa = calm_path_join(o->augment, CALM_CONFIG_FILE), *pb = calm_path_join(o->anchor, CALM_CONFIG_FILE);
    int rc = model_config_load(&j->cb, pb) || model_config_load(&j->ca, pa) ? -1 : 0;
    free(pa);
    free(pb);
    if (rc == 0) rc = compose_connections(&j->cc, o->connections, o->heads, &j->ca, &j->cb);
    if (rc == 0) rc = stored_width(o->anchor, &j->wbytes_b);
    if (rc == 0) rc = stored_width(o->augment, &j->wbytes_a);
    j->B = o->B;
    j->T = o->T;
    if (rc == 0 && (o->T > j->cb.max_seq_len || o->T > j->ca.max_seq_len))
        rc = calm_error("--seq %d exceeds a model's max_position_embeddings (%d, %d)", o->T, j->cb.max_seq_len,
                        j->ca.max_seq_len);
    return rc;
}

/* What the costs depend on: both models' shapes and widths, the heads. */
static void job_key(const PlanJob *j, char *buf, size_t n) {
    const ModelConfig *c[2] = {&j->cb, &j->ca};
    double w[2] = {j->wbytes_b, j->wbytes_a};
    int k = 0;
    for (int i = 0; i < 2; i++)
        k += snprintf(buf + k, n - (size_t)k, "%s d%d h%d kv%d hd%d ff%d V%d w%g; ", i ? "mA" : "mB", c[i]->dim,
                      c[i]->n_heads, c[i]->n_kv_heads, c[i]->head_dim, c[i]->hidden_dim, c[i]->vocab_size, w[i]);
    snprintf(buf + k, n - (size_t)k, "cross-attention heads %d", j->cc.n_heads ? j->cc.n_heads : j->cb.n_heads);
}

/* The costs: from --costs, or measured at the micro-batches the candidate
 * layouts use (up to --max-calib-tokens a micro-batch; larger ones scale). */
static int get_costs(const PlanOpts *o, const PlanJob *j, const int *bs, int nb, PlanCosts **tab, int *n) {
    char key[512];
    job_key(j, key, sizeof key);
    if (o->costs) return plan_costs_load(o->costs, key, j->T, tab, n);
    *tab = xcalloc((size_t)nb, sizeof **tab);
    *n = 0;
    while (*n < nb && (*n == 0 || (long)bs[*n] * j->T <= o->max_tokens)) (*n)++;
    PlanCalibOpts co = {j, o->anchor, o->augment, calm_threads() >= 2 ? 2 : 1, calm_threads()};
    if (plan_calibrate(&co, bs, *n, *tab) != 0) return -1;
    return o->save_costs ? plan_costs_save(o->save_costs, key, *tab, *n) : 0;
}

static const char *limit_of(const PlanResult *r, char *buf, size_t n) {
    if (r->verdict != PLAN_OK) return r->why;
    double rest = r->step_s - r->comm_s - r->opt_s;
    if (r->bubble >= 0.25)
        snprintf(buf, n, "bubble: stages idle %.0f%% of the schedule", 100 * r->bubble);
    else if (r->comm_s + (rest - r->compute_s) >= 0.25 * r->step_s)
        snprintf(buf, n, "communication and waiting: %.0f%% of the step",
                 100 * (r->comm_s + rest - r->compute_s) / r->step_s);
    else
        snprintf(buf, n, "compute (%.0f%% of the step)", 100 * r->compute_s / r->step_s);
    return buf;
}

static void print_row(const PlanResult *r, int rank, FILE *f) {
    char name[64], why[160];
    plan_layout_name(&r->lo, name, sizeof name);
    if (r->verdict != PLAN_OK) {
        fprintf(f, "%4s  %-28s %5d  %s\n", "-", name, r->ranks, r->why);
        return;
    }
    fprintf(f, "%4d  %-28s %5d %9.3f %9.0f %8.3f %6.1f%% %8.4f %9.1f %7.2f  %s\n", rank, name, r->ranks, r->step_s,
            r->tokens_per_s, r->compute_s, 100 * r->bubble, r->comm_s, r->p2p_bytes / 1e6, r->mem_gb,
            limit_of(r, why, sizeof why));
}

static void print_header(FILE *f) {
    fprintf(f, "%4s  %-28s %5s %9s %9s %8s %7s %8s %9s %7s  %s\n", "rank", "layout", "ranks", "step s", "tokens/s",
            "compute", "bubble", "reduce s", "p2p MB", "GB/rank", "limited by / refused because");
}

/* One JSON object a line, atomically. */
static int write_json(const char *path, const PlanResult *res, int n) {
    AtomicFile af;
    if (calm_atomic_open(&af, path) != 0) return -1;
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        const PlanResult *r = &res[i];
        cJSON *o = cJSON_CreateObject();
        const struct {
            const char *key;
            double v;
        } nums[] = {{"S", r->lo.S}, {"A", r->lo.A}, {"R", r->lo.R}, {"M", r->lo.M}, {"threads", r->lo.threads},
                    {"ranks", r->ranks}, {"ranks_per_node", r->ranks_per_node}, {"b", r->b}};
        for (size_t k = 0; k < sizeof nums / sizeof *nums; k++) cJSON_AddNumberToObject(o, nums[k].key, nums[k].v);
        cJSON_AddBoolToObject(o, "ok", r->verdict == PLAN_OK);
        cJSON_AddStringToObject(o, "why", r->verdict == PLAN_OK ? "" : r->why);
        const struct {
            const char *key;
            double v;
        } figs[] = {{"step_s", r->step_s},     {"tokens_per_s", r->tokens_per_s}, {"compute_s", r->compute_s},
                    {"bubble", r->bubble},     {"comm_s", r->comm_s},             {"opt_s", r->opt_s},
                    {"p2p_bytes", r->p2p_bytes}, {"reduce_bytes", r->reduce_bytes}, {"mem_gb", r->mem_gb}};
        for (size_t k = 0; k < sizeof figs / sizeof *figs; k++) cJSON_AddNumberToObject(o, figs[k].key, figs[k].v);
        char *line = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
        if (!line) calm_fatal("free memory", "out of memory printing %s", path);
        rc = calm_atomic_write(&af, line, strlen(line));
        if (rc == 0) rc = calm_atomic_write(&af, "\n", 1);
        cJSON_free(line);
    }
    return rc == 0 ? calm_atomic_commit(&af) : -1;
}

/* "S,A,R,M[,threads]" or "single" / "dp,R[,threads]". */
static int parse_layout(const char *s, PlanLayout *lo) {
    memset(lo, 0, sizeof *lo);
    lo->M = 1;
    if (strcmp(s, "single") == 0) {
        lo->R = 1;
        return 0;
    }
    if (sscanf(s, "dp,%d,%d", &lo->R, &lo->threads) >= 1) return 0;
    int n = sscanf(s, "%d,%d,%d,%d,%d", &lo->S, &lo->A, &lo->R, &lo->M, &lo->threads);
    if (n < 4 || lo->S < 1 || lo->A < 1 || lo->R < 1 || lo->M < 1 || lo->threads < 0)
        return calm_error("--layout %s: give S,A,R,M[,threads] (a pipeline), dp,R[,threads] or single", s);
    return 0;
}

static int run_plan(const PlanOpts *o) {
    PlanJob job;
    if (load_job(o, &job) != 0) return -1;
    if (o->burn) plan_burn(&(PlanCalibOpts){&job, o->anchor, o->augment, 1, 1}, job.B);
    PlanMachine mc = o->mc;
    mc.net_alpha = o->net_us * 1e-6, mc.net_beta = o->net_gbps * 1e9 / 8;
    mc.shm_alpha = o->shm_us * 1e-6, mc.shm_beta = o->shm_gbps * 1e9;
    PlanLayout one;
    if (o->layout && parse_layout(o->layout, &one) != 0) return -1;
    int bs[256], nb;
    if (o->layout) {
        int parts = one.R * (one.S ? one.M : 1);
        if (job.B % parts) /* before spending a measurement on it */
            return calm_error("--layout %s: batch %d is not divisible by %d replicas x %d micro-batches", o->layout,
                              job.B, one.R, one.S ? one.M : 1);
        bs[0] = job.B / parts;
        nb = 1;
    } else
        nb = plan_micro_batches(&job, &mc, bs, 256);
    if (nb == 0) return calm_error("plan: no layout of this batch fits %d node(s) x %d cores", mc.nodes, mc.cores);
    PlanCosts *tab;
    int ntab;
    if (get_costs(o, &job, bs, nb, &tab, &ntab) != 0) return -1;
    char conn[256];
    compose_format_connections(job.cc.conn, job.cc.n_conn, conn, sizeof conn);
    printf("calm plan: anchor %s (%d blocks, width %d, %g bytes/weight), augment %s (%d blocks, width %d), "
           "connections %s; batch %d x %d tokens\nmachine: %d node(s) x %d cores, %.0f GB; network %.1f us, %.0f Gb/s; "
           "in a node %.1f us, %.0f GB/s\n\n",
           o->anchor, job.cb.n_layers, job.cb.dim, job.wbytes_b, o->augment, job.ca.n_layers, job.ca.dim, conn,
           job.B, job.T, mc.nodes, mc.cores, mc.mem_gb, o->net_us, o->net_gbps, o->shm_us, o->shm_gbps);
    PlanResult *res;
    int n, rc = 0;
    if (o->layout) {
        PlanCosts c;
        res = xmalloc(sizeof *res);
        n = 1;
        plan_costs_at(tab, ntab, bs[0], &c);
        plan_predict(&job, &c, &mc, &one, res);
    } else if (plan_enumerate(&job, tab, ntab, &mc, &res, &n) != 0) {
        free(tab);
        return -1;
    }
    print_header(stdout);
    int valid = 0;
    for (int i = 0; i < n; i++) valid += res[i].verdict == PLAN_OK;
    for (int i = 0; i < n && i < (o->layout ? 1 : o->top); i++) print_row(&res[i], i + 1, stdout);
    if (!o->layout) {
        /* the best of each kind the top rows left out, and every reason for refusal once */
        printf("\nbest of each pipeline depth not shown above:\n");
        for (int S = 0; S <= job.cb.n_layers; S++)
            for (int i = o->top; i < valid; i++)
                if (res[i].lo.S == S) {
                    print_row(&res[i], i + 1, stdout);
                    break;
                }
        printf("\n%d layouts predicted, %d refused:\n", n, n - valid);
        for (int v = PLAN_NO_FIT; v <= PLAN_NO_MEMORY; v++) {
            int count = 0, first = -1;
            for (int i = valid; i < n; i++)
                if ((int)res[i].verdict == v && count++ == 0) first = i;
            if (count) printf("  %5d %s, e.g. %s\n", count, plan_verdict_name((PlanVerdict)v), res[first].why);
        }
    }
    if (o->json) rc = write_json(o->json, res, n);
    if (o->layout && res[0].verdict != PLAN_OK) rc = calm_error("--layout %s: %s", o->layout, res[0].why);
    free(res);
    free(tab);
    return rc;
}

int cmd_plan(int argc, char **argv) {
    long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGE_SIZE);
    PlanOpts o = {.B = 8, .T = 256, .top = 10, .max_tokens = 8192, .net_us = 2, .net_gbps = 100, .shm_us = 0.5,
                  .shm_gbps = 8};
    o.mc.nodes = 1;
    o.mc.cores = (int)sysconf(_SC_NPROCESSORS_ONLN);
    o.mc.mem_gb = pages > 0 && psize > 0 ? (double)pages * psize / 1e9 : 16;
    const Opt opts[] = {
        {"anchor", OPT_STR, &o.anchor, "anchor model mB (HF directory)", 1, 0},
        {"augment", OPT_STR, &o.augment, "augmenting model mA (HF directory)", 1, 0},
        {"connections", OPT_STR, &o.connections, "connections a:b,... as calm compose (default: every 4th mA block)",
         1, 0},
        {"heads", OPT_INT, &o.heads, "cross-attention heads (0: the anchor's)", 0, 4096},
        {"global-batch", OPT_INT, &o.B, "sequences per step, over all replicas", 1, 1 << 24},
        {"seq", OPT_INT, &o.T, "tokens per sequence", 1, 1 << 20},
        {"nodes", OPT_INT, &o.mc.nodes, "nodes of the machine planned for", 1, 1 << 20},
        {"cores-per-node", OPT_INT, &o.mc.cores, "cores per node (default: this machine's)", 1, 1 << 16},
        {"mem-per-node", OPT_DOUBLE, &o.mc.mem_gb, "memory per node, GB (default: this machine's)", 0.01, 1e9},
        {"net-latency-us", OPT_DOUBLE, &o.net_us, "network latency between nodes, microseconds", 0, 1e6},
        {"net-gbps", OPT_DOUBLE, &o.net_gbps, "network bandwidth between nodes, Gbit/s", 1e-3, 1e6},
        {"shm-latency-us", OPT_DOUBLE, &o.shm_us, "latency between ranks of one node, microseconds", 0, 1e6},
        {"shm-gbps", OPT_DOUBLE, &o.shm_gbps, "bandwidth between ranks of one node, GByte/s", 1e-3, 1e6},
        {"layout", OPT_STR, &o.layout, "predict one layout only: S,A,R,M[,threads] | dp,R[,threads] | single", 1, 0},
        {"top", OPT_INT, &o.top, "layouts to list", 1, 1 << 20},
        {"costs", OPT_STR, &o.costs, "per-layer costs measured before (--save-costs) instead of measuring now", 1,
         0},
        {"save-costs", OPT_STR, &o.save_costs, "write the measured per-layer costs to this JSON file", 1, 0},
        {"max-calib-tokens", OPT_INT, &o.max_tokens, "largest micro-batch (tokens) measured; larger ones scale", 1,
         1 << 30},
        {"json", OPT_STR, &o.json, "every prediction as JSON Lines to this file", 1, 0},
        {"threads", OPT_INT, &o.threads, "threads for measuring (0: cores available; 2 also measures scaling)", 0,
         4096},
        {"burn", OPT_FLAG, &o.burn, "internal: measure micro-batches of --global-batch sequences until killed (the "
                                    "second process of the side-by-side measurement)", 0, 0},
        OPT_END};
    const Command cmd = {
        "calm plan", "--anchor DIR --augment DIR [--nodes N --cores-per-node C --mem-per-node GB] [options]",
        "Predict, for every rank layout the machine can hold (R data-parallel replicas of S anchor stages and A "
        "augment ranks running M micro-batches, or R whole-composition ranks), the step time, tokens/s, pipeline "
        "bubble, bytes moved and peak memory per rank; list the best and why the others lose. Compute comes from "
        "per-layer seconds measured on this CPU for the models as stored (one and two threads; --save-costs keeps "
        "them, --costs reuses them, e.g. for a cluster's plan made elsewhere), the 1F1B schedule is replayed with "
        "alpha-beta costs for every message, and ring all-reduces and AdamW follow it (mpi/plan.h, "
        "docs/scaling.md).",
        opts, 0, 0};
    char **pos;
    int npos;
    cli_parse(&cmd, argc, argv, &pos, &npos);
    if (!o.anchor || !o.augment) return cli_usage_error(&cmd, "--anchor and --augment are required");
    calm_blas_init(o.threads);
    return run_plan(&o) == 0 ? 0 : cli_error("plan");
}
