/*
 * Fixed-seed driver for fuzz targets when libFuzzer is not in use: feeds
 * the target its valid seed inputs (fuzz_seed(), from the target's file),
 * then seeded random mutations of them (bit flips, byte overwrites,
 * truncations, insertions), then random bytes.
 *
 *   fuzz_driver [ITERATIONS] [SEED]
 *   fuzz_driver --write-seeds DIR   (a seed corpus for libFuzzer)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "gn_error.h"

static uint64_t g_state;

static uint32_t rnd(void)
{
	g_state ^= g_state << 13;
	g_state ^= g_state >> 7;
	g_state ^= g_state << 17;
	return (uint32_t)(g_state >> 11);
}

int main(int argc, char **argv)
{
	long iters = argc > 1 ? strtol(argv[1], NULL, 0) : 50000;
	static uint8_t seeds[FUZZ_SEEDS][FUZZ_SEED_MAX], buf[2 * FUZZ_SEED_MAX];
	size_t seed_len[FUZZ_SEEDS];
	long ok_decodes = 0;

	g_state = argc > 2 ? strtoull(argv[2], NULL, 0) : 0x9e3779b97f4a7c15ull;
	if (argc == 3 && strcmp(argv[1], "--write-seeds") == 0) {
		for (int v = 0; v < FUZZ_SEEDS; v++) {
			char path[512];
			FILE *f;

			seed_len[v] = fuzz_seed(seeds[v], sizeof(seeds[v]), v);
			snprintf(path, sizeof(path), "%s/seed%d", argv[2], v);
			f = fopen(path, "wb");
			if (f == NULL ||
			    fwrite(seeds[v], 1, seed_len[v], f) !=
				    seed_len[v] ||
			    fclose(f) != 0) {
				perror(path);
				return 1;
			}
		}
		return 0;
	}
	for (int v = 0; v < FUZZ_SEEDS; v++) {
		seed_len[v] = fuzz_seed(seeds[v], sizeof(seeds[v]), v);
		/* The seeds themselves must be accepted. */
		gn_error_clear();
		LLVMFuzzerTestOneInput(seeds[v], seed_len[v]);
		if (seed_len[v] == 0 || gn_last_error()[0] != '\0') {
			fprintf(stderr, "seed %d (%zu bytes) is refused: %s\n",
				v, seed_len[v], gn_last_error());
			return 1;
		}
	}
	for (long it = 0; it < iters; it++) {
		int v = (int)(rnd() % FUZZ_SEEDS);
		size_t n = seed_len[v];

		memcpy(buf, seeds[v], n);
		switch (rnd() % 5) {
		case 0: /* flip bits */
			for (int k = 0; k < 1 + (int)(rnd() % 4); k++)
				buf[rnd() % n] ^= (uint8_t)(1u << (rnd() % 8));
			break;
		case 1: /* overwrite bytes */
			for (int k = 0; k < 1 + (int)(rnd() % 8); k++)
				buf[rnd() % n] = (uint8_t)rnd();
			break;
		case 2: /* truncate */ n = rnd() % n; break;
		case 3: /* insert */
			if (n + 8 < sizeof(buf)) {
				size_t at = rnd() % n;

				memmove(buf + at + 8, buf + at, n - at);
				for (int k = 0; k < 8; k++)
					buf[at + k] = (uint8_t)rnd();
				n += 8;
			}
			break;
		default: /* random bytes */
			n = rnd() % 512;
			for (size_t k = 0; k < n; k++)
				buf[k] = (uint8_t)rnd();
		}
		gn_error_clear();
		LLVMFuzzerTestOneInput(buf, n);
		ok_decodes += gn_last_error()[0] == '\0';
	}
	printf("fuzz driver: %ld inputs, %ld decoded without error, no "
	       "crash\n",
	       iters, ok_decodes);
	return 0;
}
