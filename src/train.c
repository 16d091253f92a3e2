#include "src/files.h"
#include "src/train.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "src/modeldir.h"
#include "src/checkpoint.h"
#include "src/common.h"

#include <signal.h>

static volatile sig_atomic_t g_stop_signal;

void train_request_stop(int sig) { g_stop_signal = sig > 0 ? sig : 1; }
int train_stop_signal(void) { return g_stop_signal; }

static float model_step(void *ctx, const int *tokens, const int *targets, const float *weights, int B, int T) {
    Model *m = ctx;
    model_zero_grads(m);
    float loss = model_forward(m, tokens, targets, weights, B, T, NULL, NULL);
    model_backward(m, targets, weights, GRAD_FULL, 0, NULL, NULL);
    return loss;
}

static int model_save(void *ctx, const char *dir) { return model_save_dir(ctx, dir); }

Trainable trainable_model(Model *m) {
    model_alloc_grads(m);
    Trainable t = {m, m->params_memory, m->grads_memory, m->num_params, m->param_info, m->n_param_tensors,
                   model_step, model_save, NULL};
    return t;
}

void train_state_init(TrainState *s, size_t n) {
    s->adam_m = xmap_floats(n); /* only the trained tensors' pages are ever written */
    s->adam_v = xmap_floats(n);
    s->n = n;
    s->step = 0;
}

void train_state_free(TrainState *s) {
    calm_unmap_floats(s->adam_m, s->n);
    calm_unmap_floats(s->adam_v, s->n);
    memset(s, 0, sizeof *s);
}

int train_state_load(TrainState *s, const char *dir) {
    char *path = calm_path_join(dir, CALM_TRAINER_STATE_FILE);
    if (access(path, F_OK) != 0) {
        free(path);
        return 0;
    }
    StFile f;
    int r = trainer_state_load(path, s->adam_m, s->adam_v, s->n, &f);
    if (r == 0) {
        const char *step = st_meta(&f, "step");
        char *end = NULL;
        s->step = step ? strtol(step, &end, 10) : -1;
        if (!step || *end || s->step < 0) r = calm_error("%s: metadata 'step' missing or not a number", path);
        st_close(&f);
    }
    free(path);
    return r == 0 ? 1 : -1;
}

int train_save(const Trainable *t, const TrainState *s, const char *dir) {
    if (t->save(t->ctx, dir) != 0) return -1;
    const float *m = s->adam_m, *v = s->adam_v;
    float *gm = NULL, *gv = NULL;
    int writer = 1;
    if (t->gather) { /* every process's own moments, gathered on the writer */
        gm = xmap_floats(s->n);
        gv = xmap_floats(s->n);
        for (int k = 0; k < t->n_table; k++) { /* this process's tensors; the gather adds the others' */
            const ParamInfo *p = &t->table[k];
            memcpy(gm + p->offset, m + p->offset, p->numel * sizeof(float));
            memcpy(gv + p->offset, v + p->offset, p->numel * sizeof(float));
        }
        writer = t->gather(t->ctx, gm, s->n);
        t->gather(t->ctx, gv, s->n);
        m = gm, v = gv;
    }
    int r = 0;
    if (writer) {
        char *path = calm_path_join(dir, CALM_TRAINER_STATE_FILE);
        char step[32];
        snprintf(step, sizeof step, "%ld", s->step);
        const char *keys[] = {"step"}, *values[] = {step};
        r = trainer_state_save(path, m, v, s->n, keys, values, 1);
        free(path);
    }
    calm_unmap_floats(gm, s->n);
    calm_unmap_floats(gv, s->n);
    return r;
}

static void format_eta(char *buf, size_t n, double seconds) {
    long s = (long)(seconds + 0.5);
    if (s >= 3600) snprintf(buf, n, "%ldh%02ldm", s / 3600, (s % 3600) / 60);
    else snprintf(buf, n, "%ldm%02lds", s / 60, s % 60);
}

/* AdamW over every tensor; weight decay only on matrices (not norm gains). */
static void optimizer_step(const Trainable *tr, TrainState *s, const OptimConfig *o, float lr) {
    for (int k = 0; k < tr->n_table; k++) {
        const ParamInfo *t = &tr->table[k];
        size_t off = t->offset;
        adamw_update(tr->params + off, tr->grads + off, s->adam_m + off, s->adam_v + off, t->numel,
                     (int)s->step + 1, lr, o, t->ndim == 2 ? o->weight_decay : 0.0f);
    }
}

int train_run(const Trainable *tr, TrainState *s, const TrainConfig *cfg, BatchFn batch, void *batch_ctx) {
    const int B = cfg->B, T = cfg->T;
    const size_t N = (size_t)B * T;
    int *tokens = xmalloc(N * sizeof(int)), *targets = xmalloc(N * sizeof(int));
    float *weights = xmalloc(N * sizeof(float));
    FILE *log = NULL;
    if (cfg->is_main && cfg->log_path) {
        char *dir = xstrdup(cfg->log_path), *slash = strrchr(dir, '/');
        if (slash && slash != dir) *slash = 0;
        int made = slash ? calm_mkdirs(dir) : 0;
        free(dir);
        if (made != 0) return -1;
        log = fopen(cfg->log_path, s->step > 0 ? "a" : "w");
        if (!log) return calm_error("%s: cannot open metrics log: %s", cfg->log_path, strerror(errno));
    }
    int tty = cfg->is_main && isatty(fileno(stderr));
    double t_start = calm_now(), t_last = t_start, tokens_since = 0;
    long first_step = s->step;
    int rc = 0;
    for (; s->step < cfg->steps; ) {
        long step = s->step;
        if (batch(batch_ctx, step, cfg->row0, B, T, tokens, targets, weights) != 0) {
            rc = -1;
            break;
        }
        float loss = tr->step(tr->ctx, tokens, targets, weights, B, T);
        double lw[2] = {0, 0}; /* weighted loss sum and weight sum, for the global mean */
        for (size_t i = 0; i < N; i++) lw[1] += weights[i];
        lw[0] = (double)loss * lw[1];
        if (cfg->reduce) cfg->reduce(cfg->reduce_ctx, tr->grads, tr->n, lw);
        double mean_loss = lw[1] > 0 ? lw[0] / lw[1] : 0.0;
        double norm = sqrt(cfg->grad_sq ? cfg->grad_sq(cfg->reduce_ctx, tr->grads, tr->n)
                                        : sum_squares(tr->grads, tr->n));
        float cf = clip_factor(&cfg->optim, norm);
        if (cf < 1.0f) scale_inplace(tr->grads, tr->n, cf);
        float lr = lr_at(&cfg->optim, (int)step);
        optimizer_step(tr, s, &cfg->optim, lr);
        s->step++;
        tokens_since += (double)N * (cfg->world > 0 ? cfg->world : 1);
        if (!isfinite(mean_loss)) {
            rc = calm_error("loss is %f at step %ld: training diverged (lower --lr or raise --warmup)", mean_loss, step);
            break;
        }
        int last = s->step == cfg->steps;
        if (cfg->is_main && (s->step % cfg->log_every == 0 || last)) {
            double now = calm_now(), dt = now - t_last;
            double tps = dt > 0 ? tokens_since / dt : 0;
            double eta = (double)(cfg->steps - s->step) * (now - t_start) / (double)(s->step - first_step);
            char etab[32];
            format_eta(etab, sizeof etab, eta);
            fprintf(stderr, "%sstep %ld/%ld | loss %.4f | lr %.2e | gnorm %.3f | %.0f tok/s | ETA %s%s", tty ? "\r" : "",
                    s->step, cfg->steps, mean_loss, lr, norm, tps, etab, tty ? "   " : "\n");
            if (log) {
                fprintf(log,
                        "{\"step\": %ld, \"loss\": %.6f, \"lr\": %.6g, \"grad_norm\": %.6g, \"tokens_per_s\": %.1f, "
                        "\"elapsed_s\": %.3f}\n",
                        s->step, mean_loss, lr, norm, tps, now - t_start);
                fflush(log);
            }
            t_last = now;
            tokens_since = 0;
        }
        /* a stop requested on any process stops all of them after the same step */
        const struct CkptConfig *ck = cfg->ckpt;
        int stop = g_stop_signal;
        if (ck && ck->comm.max) g_stop_signal = stop = (int)ck->comm.max(ck->comm.ctx, stop);
        if (last) stop = 0; /* finishing anyway: the final save and checkpoint follow */
        int periodic = ck && ck->every > 0 && s->step % ck->every == 0 && !last;
        if (ck && (periodic || stop)) {
            if (ckpt_write(ck, tr, s) != 0) {
                rc = -1;
                break;
            }
            if (cfg->is_main) calm_log("checkpoint: step %ld in %s", s->step, ck->dir);
        }
        if (stop) {
            rc = TRAIN_STOPPED;
            break;
        }
        int saver = cfg->is_main || cfg->save_all;
        if (saver && cfg->out_dir && cfg->save_every > 0 && s->step % cfg->save_every == 0 && !last)
            if (train_save(tr, s, cfg->out_dir) != 0) {
                rc = -1;
                break;
            }
    }
    if (tty) fputc('\n', stderr);
    if (rc == 0 && (cfg->is_main || cfg->save_all) && cfg->out_dir) rc = train_save(tr, s, cfg->out_dir);
    if (rc == 0 && cfg->ckpt && cfg->ckpt->every > 0) { /* the final state is a checkpoint too */
        if (ckpt_write(cfg->ckpt, tr, s) != 0) rc = -1;
    }
    if (log) fclose(log);
    free(tokens);
    free(targets);
    free(weights);
    return rc;
}
