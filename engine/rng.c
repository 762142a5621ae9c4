/*
 * rng.c — seeded random streams: xoshiro256** seeded through splitmix64.
 *
 * Only integer arithmetic decides the stream, and the float conversions are
 * exact, so the same seed gives the same numbers on every machine; normals
 * use libm's log/sqrt/cos, which are correctly rounded in practice on the
 * platforms we ship.
 */
#include "nn.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void nn_rng_seed(nn_rng *rng, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++)
        rng->s[i] = splitmix64(&x);
}

uint64_t nn_seed_derive(uint64_t seed, const char *name)
{
    /* FNV-1a of the name, mixed with the seed: a node's stream depends on
     * the graph seed and its own name only. */
    uint64_t h = 0xcbf29ce484222325ULL;
    for (const unsigned char *p = (const unsigned char *)name; p && *p; p++) {
        h ^= *p;
        h *= 0x100000001b3ULL;
    }
    uint64_t x = seed ^ h;
    splitmix64(&x);
    return splitmix64(&x);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t nn_rng_u64(nn_rng *rng)
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

double nn_rng_uniform(nn_rng *rng)
{
    return (double)(nn_rng_u64(rng) >> 11) * 0x1.0p-53;
}

double nn_rng_normal(nn_rng *rng)
{
    /* Box-Muller, one value per call: the stream state is the four words
     * only, so a cached second value would make copies of a stream diverge. */
    double u1 = 1.0 - nn_rng_uniform(rng); /* (0, 1]: log is finite */
    double u2 = nn_rng_uniform(rng);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

int nn_rng_bernoulli(nn_rng *rng, double p)
{
    return nn_rng_uniform(rng) < p;
}
