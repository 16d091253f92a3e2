/* rng.h: counter-based random numbers and a 64-bit hash. */
#ifndef CALM_RNG_H
#define CALM_RNG_H

#include <stdint.h>

/* Counter-based RNG: the same (seed, stream) always yields the same numbers,
 * whatever was drawn before, which keeps data order and init reproducible. */
typedef struct {
    uint64_t state;
} Rng;
void rng_seed(Rng *r, uint64_t seed, uint64_t stream);
uint64_t rng_u64(Rng *r);
float rng_uniform(Rng *r); /* [0, 1) */
float rng_normal(Rng *r);  /* N(0, 1) */
uint64_t calm_hash64(uint64_t x); /* splitmix64 finaliser */

#endif
