/*
 * Hashing (common/hash.c): one-shot and incremental XXH3 must agree, be
 * deterministic, and depend on the seed and on every byte.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "hash.h"

/*
 * Lengths that cross XXH3's internal size classes (0, 1-3, 4-8, 9-16,
 * 17-128, 129-240, longer, and longer than its 1 KiB stripe block).
 */
static const size_t g_lens[] = {0,   1,	  3,   4,   8,	  9,	16,   17,  64,
				128, 129, 240, 241, 1024, 1025, 4096, 5000};
#define NLENS (sizeof(g_lens) / sizeof(g_lens[0]))

static uint8_t g_data[5000];

static int setup(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(g_data); i++)
		g_data[i] = (uint8_t)(i * 131 + (i >> 8));
	return 0;
}

static void test_deterministic(void **state)
{
	uint8_t copy[5000];

	(void)state;
	memcpy(copy, g_data, sizeof(copy));
	for (size_t i = 0; i < NLENS; i++) {
		/* Same bytes at another address give the same value. */
		assert_true(gn_hash64(g_data, g_lens[i], 7) ==
			    gn_hash64(copy, g_lens[i], 7));
		assert_true(gn_hash64(g_data, g_lens[i], 0) ==
			    gn_hash64(g_data, g_lens[i], 0));
	}
}

static void test_seed_changes_value(void **state)
{
	(void)state;
	for (size_t i = 0; i < NLENS; i++) {
		uint64_t h0 = gn_hash64(g_data, g_lens[i], 0);

		assert_true(h0 != gn_hash64(g_data, g_lens[i], 1));
		assert_true(h0 != gn_hash64(g_data, g_lens[i], 0x9e3779b9));
		assert_true(gn_hash64(g_data, g_lens[i], 1) !=
			    gn_hash64(g_data, g_lens[i], 2));
	}
}

static void test_every_byte_and_length_counts(void **state)
{
	uint8_t buf[300];
	uint64_t h;

	(void)state;
	memcpy(buf, g_data, sizeof(buf));
	h = gn_hash64(buf, sizeof(buf), 5);
	for (size_t i = 0; i < sizeof(buf); i++) {
		buf[i] ^= 1;
		assert_true(gn_hash64(buf, sizeof(buf), 5) != h);
		buf[i] ^= 1;
	}
	assert_true(gn_hash64(buf, sizeof(buf), 5) == h);
	/* A prefix is not the whole. */
	assert_true(gn_hash64(buf, sizeof(buf) - 1, 5) != h);
}

/* Feed `len` bytes in pieces of `piece` (the last one shorter). */
static uint64_t hash_in_pieces(size_t len, size_t piece, uint64_t seed)
{
	struct gn_hasher h;
	uint64_t d;

	assert_int_equal(gn_hasher_init(&h, seed), 0);
	assert_non_null(h.state);
	for (size_t off = 0; off < len; off += piece)
		gn_hasher_update(&h, g_data + off,
				 len - off < piece ? len - off : piece);
	d = gn_hasher_digest(&h);
	gn_hasher_fini(&h);
	assert_null(h.state);
	return d;
}

static void test_incremental_equals_one_shot(void **state)
{
	static const size_t pieces[] = {1, 2, 7, 16, 64, 100, 256, 1024, 4999};
	static const uint64_t seeds[] = {0, 1, 0xdeadbeefcafef00dull};

	(void)state;
	for (size_t s = 0; s < sizeof(seeds) / sizeof(seeds[0]); s++)
		for (size_t i = 0; i < NLENS; i++)
			for (size_t p = 0;
			     p < sizeof(pieces) / sizeof(pieces[0]); p++)
				assert_true(
					hash_in_pieces(g_lens[i], pieces[p],
						       seeds[s]) ==
					gn_hash64(g_data, g_lens[i], seeds[s]));
}

/* The digest leaves the hasher usable: digest, feed more, digest again. */
static void test_digest_midway(void **state)
{
	struct gn_hasher h;

	(void)state;
	assert_int_equal(gn_hasher_init(&h, 3), 0);
	gn_hasher_update(&h, g_data, 100);
	assert_true(gn_hasher_digest(&h) == gn_hash64(g_data, 100, 3));
	assert_true(gn_hasher_digest(&h) == gn_hash64(g_data, 100, 3));
	gn_hasher_update(&h, g_data + 100, 900);
	assert_true(gn_hasher_digest(&h) == gn_hash64(g_data, 1000, 3));
	gn_hasher_fini(&h);
	/* Empty input: the digest of nothing is the one-shot of nothing. */
	assert_int_equal(gn_hasher_init(&h, 9), 0);
	assert_true(gn_hasher_digest(&h) == gn_hash64(g_data, 0, 9));
	gn_hasher_fini(&h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_deterministic),
		cmocka_unit_test(test_seed_changes_value),
		cmocka_unit_test(test_every_byte_and_length_counts),
		cmocka_unit_test(test_incremental_equals_one_shot),
		cmocka_unit_test(test_digest_midway),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
