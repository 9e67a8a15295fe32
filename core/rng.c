/* core/rng.c — xoshiro256** seeded through splitmix64: the project's one random generator, so
 * that a seed printed by a failing test or stored in a case means the same everywhere. */
#include <math.h>

#include "flashmask/core.h"

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void fm_rng_seed(fm_rng *rng, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) rng->s[i] = splitmix64(&x);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t fm_rng_u64(fm_rng *rng)
{
    uint64_t *s = rng->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

uint64_t fm_rng_below(fm_rng *rng, uint64_t n)
{
    if (n == 0) return 0;
    /* rejection sampling: no modulo bias */
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do x = fm_rng_u64(rng);
    while (x >= limit);
    return x % n;
}

int64_t fm_rng_range(fm_rng *rng, int64_t lo, int64_t hi)
{
    if (hi <= lo) return lo;
    return lo + (int64_t)fm_rng_below(rng, (uint64_t)(hi - lo) + 1);
}

double fm_rng_uniform(fm_rng *rng) { return (double)(fm_rng_u64(rng) >> 11) * 0x1.0p-53; }

double fm_rng_normal(fm_rng *rng)
{
    /* Box-Muller; 1 - u keeps the logarithm finite */
    double u = 1.0 - fm_rng_uniform(rng), w = fm_rng_uniform(rng);
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * w);
}
