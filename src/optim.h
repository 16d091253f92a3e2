/* optim.h: AdamW with decoupled weight decay, the learning-rate schedule and
 * global-norm gradient clipping. All work on flat float ranges so that the
 * same code serves the LM trainer and the composition trainer. */
#ifndef CALM_OPTIM_H
#define CALM_OPTIM_H

#include <stddef.h>

typedef struct {
    float lr;           /* peak learning rate */
    float min_lr_frac;  /* cosine decays to lr * min_lr_frac */
    int warmup_steps;   /* linear warm-up from 0 */
    int total_steps;    /* end of the cosine */
    float beta1, beta2, eps;
    float weight_decay; /* decoupled: p -= lr * wd * p */
    float clip;         /* global-norm clip; <= 0 disables */
} OptimConfig;

void optim_config_default(OptimConfig *o);

/* Learning rate at step (0-based): linear warm-up to lr over warmup_steps,
 * then cosine decay to lr * min_lr_frac at total_steps, flat after. */
float lr_at(const OptimConfig *o, int step);

/* Sum of squares in double (for the global norm across ranges or ranks). */
double sum_squares(const float *x, size_t n);
/* Multiply by scale. */
void scale_inplace(float *x, size_t n, float scale);
/* Clip factor for a global norm: min(1, clip / norm). */
float clip_factor(const OptimConfig *o, double global_norm);

/* One AdamW update of n parameters. t is the 1-based update count (bias
 * correction); wd is the weight decay for this range (0 for norms). */
void adamw_update(float *params, const float *grads, float *m, float *v, size_t n, int t, float lr,
                  const OptimConfig *o, float wd);

#endif
