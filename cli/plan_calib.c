/* plan_calib.c: what `calm plan` predicts with: seconds per layer for one
 * micro-batch, measured on this CPU by running the pieces the pipeline runs
 * (model_forward_part / model_backward_part of one frozen block of each
 * model as stored, the composition's cross-attention and projection of one
 * connection, AdamW), on one thread and on two. Costs go to and come from a
 * JSON file so a cluster plan need not re-measure. */
#include "cli/plan_calib.h"

#include <cjson/cJSON.h>
#include <signal.h>
#include <spawn.h>
#include <stddef.h>
#include <sys/wait.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include "src/blas.h"
#include "src/common.h"
#include "src/files.h"
#include "src/modeldir.h"
#include "src/optim.h"
#include "src/rng.h"

extern char **environ;

#define MIN_SECONDS 0.2 /* repeat a piece until it has run this long (and 5 times) */

typedef void (*Piece)(void *ctx);

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Median seconds of one call, after a warm-up call, over at least 5 calls
 * and MIN_SECONDS (3 calls once they have taken 3 s: a block of an 8B
 * model): single calls vary by 10-20% here, the median by little. */
static double timed(Piece f, void *ctx) {
    f(ctx);
    double t[256], start = calm_now();
    int reps = 0;
    do {
        double t0 = calm_now();
        f(ctx);
        t[reps++] = calm_now() - t0;
    } while (reps < 256 && (reps < 5 || calm_now() - start < MIN_SECONDS) && (reps < 3 || calm_now() - start < 3));
    qsort(t, (size_t)reps, sizeof *t, cmp_double);
    return t[reps / 2];
}

typedef struct {
    Model *m;
    int b, T, *tok, *tgt;
    float *dresid; /* dL/d output for a part without the head */
    Composer *c;
    ConnActs *ca;
    float *resid, *dres2, *P, *dP, *hA, *scratch;
    float *w, *g, *am, *av;
    size_t n_opt;
} Bench;

static void part_fwd(void *x) {
    Bench *k = x;
    model_forward_part(k->m, k->tok, k->m->has_head ? k->tgt : NULL, NULL, k->b, k->T, NULL, NULL);
}
static void part_bwd(void *x) {
    Bench *k = x;
    if (!k->m->has_head) memcpy(k->m->acts.dresid, k->dresid, (size_t)k->b * k->T * k->m->cfg.dim * sizeof(float));
    model_backward_part(k->m, k->tgt, NULL, -1.0f, GRAD_INPUT, 0, NULL, NULL);
}
static void trunk_fwd(void *x) {
    Bench *k = x;
    model_forward_trunk(k->m, k->tok, k->b, k->T, k->m->l1, NULL, NULL);
}
static void xattn_fwd(void *x) {
    Bench *k = x;
    compose_xattn_forward(k->c, 0, k->ca, k->resid, k->b, k->T, k->scratch);
}
static void xattn_bwd(void *x) {
    Bench *k = x;
    compose_xattn_backward(k->c, 0, k->ca, k->dres2, k->dP, k->b, k->T, k->scratch);
}
static void proj_fwd(void *x) {
    Bench *k = x;
    compose_proj_forward(k->c, 0, k->P, k->hA, k->b * k->T);
}
static void proj_bwd(void *x) {
    Bench *k = x;
    compose_proj_backward(k->c, 0, k->dP, k->hA, k->b * k->T);
}
static void adamw(void *x) {
    Bench *k = x;
    OptimConfig oc;
    optim_config_default(&oc);
    memset(k->g, 0, k->n_opt * sizeof(float)); /* compose_zero_grads */
    adamw_update(k->w, k->g, k->am, k->av, k->n_opt, 1, 1e-6f, &oc, 0.0f);
}

static void fill(float *x, size_t n, uint64_t seed, float scale) {
    Rng r;
    rng_seed(&r, seed, 0);
    for (size_t i = 0; i < n; i++) x[i] = scale * (float)((double)(rng_u64(&r) >> 11) / 9007199254740992.0 - 0.5);
}

/* One frozen part of a model directory. */
static int load_part(Model *m, const char *dir, int l0, int l1, int head) {
    ModelLoadOpts o = {.l0 = l0, .l1 = l1, .head = head, .frozen = 1};
    return model_load_dir_opts(m, dir, &o);
}

/* Every piece at the current thread count. */
static int measure(const PlanCalibOpts *o, int b, PlanCosts *pc) {
    const ModelConfig *cb = &o->job->cb, *ca = &o->job->ca;
    const int T = o->job->T, L = cb->n_layers;
    const size_t N = (size_t)b * T;
    Bench k = {.b = b, .T = T};
    k.tok = xmalloc(N * sizeof(int));
    k.tgt = xmalloc(N * sizeof(int));
    Rng r;
    rng_seed(&r, 11, 0);
    int V = ca->vocab_size < cb->vocab_size ? ca->vocab_size : cb->vocab_size;
    for (size_t i = 0; i < N; i++) k.tok[i] = (int)(rng_u64(&r) % V), k.tgt[i] = (int)(rng_u64(&r) % V);
    k.dresid = xalloc_floats(N * cb->dim);
    fill(k.dresid, N * cb->dim, 3, 1e-3f);

    Model first, last, aug;
    int rc = load_part(&first, o->anchor_dir, 0, 1, L == 1);
    if (rc == 0 && L > 1) rc = load_part(&last, o->anchor_dir, L - 1, L, 1);
    if (rc == 0) rc = load_part(&aug, o->augment_dir, 0, 1, 0);
    if (rc != 0) {
        free(k.tok), free(k.tgt), free(k.dresid);
        return -1;
    }
    k.m = &first;
    model_part_input(&first, b, T);
    pc->blk_f = timed(part_fwd, &k);
    pc->blk_b = timed(part_bwd, &k);
    if (L > 1) {
        k.m = &last;
        float *in = model_part_input(&last, b, T);
        fill(in, N * cb->dim, 4, 1.0f);
        pc->head_f = timed(part_fwd, &k) - pc->blk_f;
        pc->head_b = timed(part_bwd, &k) - pc->blk_b;
        if (pc->head_f < 0) pc->head_f = 0; /* a head smaller than the noise */
        if (pc->head_b < 0) pc->head_b = 0;
        model_free(&last);
    }
    model_free(&first);
    k.m = &aug;
    pc->ablk_f = timed(trunk_fwd, &k);
    model_free(&aug);

    /* one connection, 0:0, with the run's cross-attention heads */
    Composer c;
    ComposeConfig cc = {.n_conn = 1, .conn = {{0, 0}}, .n_heads = o->job->cc.n_heads};
    if (compose_init_configs(&c, ca, cb, &cc) != 0) {
        free(k.tok), free(k.tgt), free(k.dresid);
        return -1;
    }
    compose_init_random(&c, 5);
    for (size_t i = 0; i < (size_t)c.dB * c.dB; i++) c.p[0].wo[i] = 1e-3f * (float)((i % 7) - 3); /* not zero */
    ConnActs acts;
    float *amem = xalloc_floats(compose_conn_acts_floats(&c, b, T));
    compose_conn_acts_bind(&c, &acts, amem, b, T);
    k.c = &c;
    k.ca = &acts;
    k.P = acts.P = xalloc_floats(N * c.dB);
    k.dP = xalloc_floats(N * c.dB);
    k.hA = xalloc_floats(N * c.dA);
    k.resid = xalloc_floats(N * c.dB);
    k.dres2 = xalloc_floats(N * c.dB);
    k.scratch = xalloc_floats(compose_scratch_floats(&c, b, T));
    fill(k.hA, N * c.dA, 6, 1.0f);
    fill(k.resid, N * c.dB, 7, 1.0f);
    fill(k.dres2, N * c.dB, 8, 1e-3f);
    pc->proj_f = timed(proj_fwd, &k);
    pc->proj_b = timed(proj_bwd, &k);
    pc->xattn_f = timed(xattn_fwd, &k);
    pc->xattn_b = timed(xattn_bwd, &k);
    free(amem), free(k.P), free(k.dP), free(k.hA), free(k.resid), free(k.dres2), free(k.scratch);
    compose_free(&c);

    k.n_opt = (size_t)1 << 22;
    k.w = xalloc_floats(k.n_opt), k.g = xalloc_floats(k.n_opt), k.am = xalloc_floats(k.n_opt);
    k.av = xalloc_floats(k.n_opt);
    pc->opt_per_param = timed(adamw, &k) / (double)k.n_opt;
    free(k.w), free(k.g), free(k.am), free(k.av);
    free(k.tok), free(k.tgt), free(k.dresid);
    return 0;
}

static double sum_layer(const PlanCosts *c) {
    return c->blk_f + c->blk_b + c->head_f + c->head_b + c->xattn_f + c->xattn_b + c->ablk_f + c->proj_f + c->proj_b;
}

void plan_burn(const PlanCalibOpts *o, int b) {
    PlanCosts dummy;
    calm_blas_set_threads(1);
    for (;;)
        if (measure(o, b, &dummy) != 0) exit(1);
}

/* The same pieces on one thread while a second process runs them too, as
 * two one-thread ranks of a node do: what sharing the node costs. The
 * second process is this program again (calm plan --burn), started on its
 * own rather than forked, as a rank would be. */
static int measure_beside_another(const PlanCalibOpts *o, int b, PlanCosts *pc) {
    char conn[512], heads[16], batch[16], seq[16], layout[32];
    compose_format_connections(o->job->cc.conn, o->job->cc.n_conn, conn, sizeof conn);
    snprintf(heads, sizeof heads, "%d", o->job->cc.n_heads);
    snprintf(batch, sizeof batch, "%d", b);
    snprintf(seq, sizeof seq, "%d", o->job->T);
    snprintf(layout, sizeof layout, "dp,1,1");
    char *argv[] = {"calm", "plan", "--anchor", (char *)o->anchor_dir, "--augment", (char *)o->augment_dir,
                    "--connections", conn, "--heads", heads, "--global-batch", batch, "--seq", seq, "--layout", layout,
                    "--threads", "1", "--burn", NULL};
    fflush(NULL);
    pid_t child;
    int err = posix_spawn(&child, "/proc/self/exe", NULL, NULL, argv, environ);
    if (err != 0) return calm_error("plan: cannot start a second copy of calm to measure beside: %s", strerror(err));
    sleep(1); /* let it load its models and start computing */
    int rc = measure(o, b, pc), status = 0;
    kill(child, SIGKILL);
    waitpid(child, &status, 0);
    if (rc == 0 && !(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL))
        rc = calm_error("plan: the second copy of calm (plan --burn) ended on its own, status %d", status);
    return rc;
}

static void log_costs(const PlanCosts *pc, double seconds) {
    calm_log("plan: measured micro-batch %d x %d in %.1f s: anchor block %.2f/%.2f ms, head %.2f/%.2f ms, "
             "cross-attention %.2f/%.2f ms, augment block %.2f ms, projection %.2f/%.2f ms (forward/backward, "
             "one thread); 2 threads %.0f%% efficient; beside a second process %.0f%% of the speed",
             pc->b, pc->T, seconds, pc->blk_f * 1e3, pc->blk_b * 1e3, pc->head_f * 1e3, pc->head_b * 1e3,
             pc->xattn_f * 1e3, pc->xattn_b * 1e3, pc->ablk_f * 1e3, pc->proj_f * 1e3, pc->proj_b * 1e3,
             pc->eff2 * 100, pc->share2 * 100);
}

int plan_calibrate(const PlanCalibOpts *o, const int *bs, int n, PlanCosts *tab) {
    double *secs = xcalloc((size_t)(n > 0 ? n : 1), sizeof *secs);
    int rc = 0;
    /* one-thread figures, alone and beside a second process; then two threads */
    calm_blas_set_threads(1);
    for (int i = 0; i < n && rc == 0; i++) {
        PlanCosts *pc = &tab[i];
        memset(pc, 0, sizeof *pc);
        pc->b = bs[i];
        pc->T = o->job->T;
        pc->eff2 = pc->share2 = 1;
        double t0 = calm_now();
        rc = measure(o, bs[i], pc);
        if (rc == 0 && o->cores >= 2) { /* two one-thread processes side by side */
            PlanCosts two = *pc;
            rc = measure_beside_another(o, bs[i], &two);
            pc->share2 = sum_layer(pc) / sum_layer(&two);
        }
        secs[i] = calm_now() - t0;
    }
    if (o->cores >= 2) calm_blas_set_threads(2);
    for (int i = 0; i < n && rc == 0 && o->cores >= 2; i++) { /* how well two threads add up here */
        PlanCosts two = tab[i];
        double t0 = calm_now();
        rc = measure(o, bs[i], &two);
        tab[i].eff2 = sum_layer(&tab[i]) / (2 * sum_layer(&two));
        secs[i] += calm_now() - t0;
    }
    calm_blas_set_threads(o->threads);
    for (int i = 0; i < n && rc == 0; i++) log_costs(&tab[i], secs[i]);
    free(secs);
    return rc;
}

/* ------------------------------------------------------------ the file */

static const struct {
    const char *name;
    size_t off;
} fields[] = {
    {"blk_f", offsetof(PlanCosts, blk_f)},     {"blk_b", offsetof(PlanCosts, blk_b)},
    {"head_f", offsetof(PlanCosts, head_f)},   {"head_b", offsetof(PlanCosts, head_b)},
    {"xattn_f", offsetof(PlanCosts, xattn_f)}, {"xattn_b", offsetof(PlanCosts, xattn_b)},
    {"ablk_f", offsetof(PlanCosts, ablk_f)},   {"proj_f", offsetof(PlanCosts, proj_f)},
    {"proj_b", offsetof(PlanCosts, proj_b)},   {"opt_per_param", offsetof(PlanCosts, opt_per_param)},
    {"eff2", offsetof(PlanCosts, eff2)},       {"share2", offsetof(PlanCosts, share2)},
};

int plan_costs_save(const char *path, const char *what, const PlanCosts *tab, int n) {
    cJSON *root = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(root, "costs");
    cJSON_AddStringToObject(root, "models", what);
    cJSON_AddStringToObject(root, "blis", calm_blas_arch());
    for (int i = 0; i < n; i++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "b", tab[i].b);
        cJSON_AddNumberToObject(e, "T", tab[i].T);
        for (size_t f = 0; f < sizeof fields / sizeof *fields; f++)
            cJSON_AddNumberToObject(e, fields[f].name, *(const double *)((const char *)&tab[i] + fields[f].off));
        cJSON_AddItemToArray(arr, e);
    }
    int rc = calm_write_json(path, root);
    cJSON_Delete(root);
    return rc;
}

int plan_costs_load(const char *path, const char *what, int T, PlanCosts **tab, int *n) {
    cJSON *root = calm_read_json(path);
    if (!root) return -1;
    const cJSON *models = cJSON_GetObjectItem(root, "models"), *arr = cJSON_GetObjectItem(root, "costs");
    int rc = 0;
    if (!cJSON_IsString(models) || !cJSON_IsArray(arr) || cJSON_GetArraySize(arr) == 0)
        rc = calm_error("%s: not a calm plan costs file (\"models\" and a non-empty \"costs\" list)", path);
    else if (strcmp(models->valuestring, what) != 0)
        rc = calm_error("%s: measured for %s, not for %s: measure again (--save-costs)", path, models->valuestring,
                        what);
    *n = 0;
    *tab = rc ? NULL : xcalloc((size_t)cJSON_GetArraySize(arr), sizeof **tab);
    for (const cJSON *e = rc ? NULL : arr->child; e && rc == 0; e = e->next) {
        PlanCosts *c = &(*tab)[(*n)++];
        const cJSON *b = cJSON_GetObjectItem(e, "b"), *t = cJSON_GetObjectItem(e, "T");
        if (!cJSON_IsNumber(b) || !cJSON_IsNumber(t) || b->valueint < 1) {
            rc = calm_error("%s: costs entry %d has no micro-batch \"b\" and \"T\"", path, *n);
            break;
        }
        c->b = b->valueint, c->T = t->valueint;
        if (c->T != T) rc = calm_error("%s: measured at sequence length %d, the plan is for %d", path, c->T, T);
        for (size_t f = 0; f < sizeof fields / sizeof *fields && rc == 0; f++) {
            const cJSON *v = cJSON_GetObjectItem(e, fields[f].name);
            if (!cJSON_IsNumber(v) || v->valuedouble < 0)
                rc = calm_error("%s: costs entry %d: \"%s\" missing or negative", path, *n, fields[f].name);
            else
                *(double *)((char *)c + fields[f].off) = v->valuedouble;
        }
    }
    cJSON_Delete(root);
    if (rc) {
        free(*tab);
        *tab = NULL;
    }
    return rc;
}
