#include "src/optim.h"

#include <math.h>

void optim_config_default(OptimConfig *o) {
    o->lr = 3e-3f; /* the default of calm train and calm compose: set here only */
    o->min_lr_frac = 0.1f;
    o->warmup_steps = 100;
    o->total_steps = 1000;
    o->beta1 = 0.9f;
    o->beta2 = 0.95f;
    o->eps = 1e-8f;
    o->weight_decay = 0.1f;
    o->clip = 1.0f;
}

float lr_at(const OptimConfig *o, int step) {
    if (o->warmup_steps > 0 && step < o->warmup_steps) return o->lr * (float)(step + 1) / (float)o->warmup_steps;
    int span = o->total_steps - o->warmup_steps;
    if (span <= 0 || step >= o->total_steps) return o->lr * o->min_lr_frac;
    double progress = (double)(step - o->warmup_steps) / span;
    double cosine = 0.5 * (1.0 + cos(M_PI * progress));
    return (float)(o->lr * (o->min_lr_frac + (1.0 - o->min_lr_frac) * cosine));
}

double sum_squares(const float *x, size_t n) {
    double s = 0.0;
#pragma omp parallel for reduction(+ : s)
    for (size_t i = 0; i < n; i++) s += (double)x[i] * x[i];
    return s;
}

void scale_inplace(float *x, size_t n, float scale) {
#pragma omp parallel for
    for (size_t i = 0; i < n; i++) x[i] *= scale;
}

float clip_factor(const OptimConfig *o, double global_norm) {
    if (o->clip <= 0.0f || !(global_norm > o->clip)) return 1.0f;
    return (float)(o->clip / global_norm);
}

void adamw_update(float *params, const float *grads, float *m, float *v, size_t n, int t, float lr,
                  const OptimConfig *o, float wd) {
    const float b1 = o->beta1, b2 = o->beta2;
    const float c1 = 1.0f - powf(b1, (float)t), c2 = 1.0f - powf(b2, (float)t);
#pragma omp parallel for
    for (size_t i = 0; i < n; i++) {
        float g = grads[i];
        float mi = m[i] = b1 * m[i] + (1.0f - b1) * g;
        float vi = v[i] = b2 * v[i] + (1.0f - b2) * g * g;
        float mhat = mi / c1, vhat = vi / c2;
        params[i] -= lr * (mhat / (sqrtf(vhat) + o->eps) + wd * params[i]);
    }
}
