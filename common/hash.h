/*
 * Hashing: a thin wrapper over xxHash (XXH3), so the rest of Genie names
 * one function and the algorithm can change in one place. Not for secrets:
 * capabilities use a CSPRNG and authentication uses HMAC.
 */
#ifndef GN_COMMON_HASH_H
#define GN_COMMON_HASH_H

#include <stddef.h>
#include <stdint.h>

/* 64-bit hash of `len` bytes at `data` with `seed`. */
uint64_t gn_hash64(const void *data, size_t len, uint64_t seed);

/* Incremental hashing for values built piece by piece (fingerprints). */
struct gn_hasher {
	void *state; /* XXH3_state_t, owned */
};

/* Start a hash with `seed`. Returns 0 or -ENOMEM. */
int gn_hasher_init(struct gn_hasher *h, uint64_t seed);
void gn_hasher_update(struct gn_hasher *h, const void *data, size_t len);
/* The hash of everything fed so far; the hasher stays usable. */
uint64_t gn_hasher_digest(const struct gn_hasher *h);
/* Free the state. Safe on a hasher whose init failed. */
void gn_hasher_fini(struct gn_hasher *h);

#endif /* GN_COMMON_HASH_H */
