/* rng.c: counter-based random numbers (rng.h). */
#include "src/rng.h"

#include <math.h>

uint64_t calm_hash64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

void rng_seed(Rng *r, uint64_t seed, uint64_t stream) { r->state = calm_hash64(seed ^ calm_hash64(stream + 1)); }

uint64_t rng_u64(Rng *r) {
    r->state += 0x9e3779b97f4a7c15ULL;
    return calm_hash64(r->state);
}

float rng_uniform(Rng *r) { return (float)(rng_u64(r) >> 40) * (1.0f / 16777216.0f); }

float rng_normal(Rng *r) {
    /* Box-Muller; u1 in (0, 1] so log is finite. */
    float u1 = ((float)(rng_u64(r) >> 40) + 1.0f) * (1.0f / 16777216.0f);
    float u2 = rng_uniform(r);
    return sqrtf(-2.0f * logf(u1)) * cosf(6.2831853071795864f * u2);
}
