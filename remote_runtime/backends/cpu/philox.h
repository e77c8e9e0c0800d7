/*
 * Philox-4x32-10 (Salmon et al., "Parallel random numbers: as easy as
 * 1, 2, 3", SC'11): a counter-based generator, so element i of a seeded
 * random tensor depends only on (seed, i) and every backend — this one,
 * CUDA, the client's constant folding — produces the same bits.
 *
 * Genie's definition: key = (seed low 32 bits, seed high 32 bits),
 * counter = (i low, i high, 0, 0), ten rounds; the block's four 32-bit
 * words w0..w3.
 *   uniform(low, high):  low + (high - low) * ((w0 >> 8) * 2^-24)
 *   normal(mean, std):   u1 = ((w0 >> 8) + 1) * 2^-24 in (0, 1],
 *                        u2 = (w1 >> 8) * 2^-24,
 *                        mean + std * sqrt(-2 ln u1) * cos(2 pi u2)
 */
#ifndef GN_PHILOX_H
#define GN_PHILOX_H

#include <math.h>
#include <stdint.h>

static inline void gn_philox4x32(uint64_t seed, uint64_t index, uint32_t w[4])
{
	uint32_t c0 = (uint32_t)index, c1 = (uint32_t)(index >> 32), c2 = 0,
		 c3 = 0;
	uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);

	for (int r = 0; r < 10; r++) {
		uint64_t p0 = (uint64_t)0xD2511F53u * c0;
		uint64_t p1 = (uint64_t)0xCD9E8D57u * c2;
		uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0;
		uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;

		c1 = (uint32_t)p1;
		c3 = (uint32_t)p0;
		c0 = n0;
		c2 = n2;
		k0 += 0x9E3779B9u;
		k1 += 0xBB67AE85u;
	}
	w[0] = c0;
	w[1] = c1;
	w[2] = c2;
	w[3] = c3;
}

static inline double gn_philox_uniform(uint64_t seed, uint64_t i, double low,
				       double high)
{
	uint32_t w[4];

	gn_philox4x32(seed, i, w);
	return low + (high - low) * ((double)(w[0] >> 8) * 0x1p-24);
}

static inline double gn_philox_normal(uint64_t seed, uint64_t i, double mean,
				      double std)
{
	uint32_t w[4];
	double u1, u2;

	gn_philox4x32(seed, i, w);
	u1 = ((double)(w[0] >> 8) + 1.0) * 0x1p-24;
	u2 = (double)(w[1] >> 8) * 0x1p-24;
	return mean + std * sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

#endif /* GN_PHILOX_H */
