/* xxHash (XXH3) behind Genie names. */
#include <errno.h>

#include <xxhash.h>

#include "gn_error.h"
#include "hash.h"

uint64_t gn_hash64(const void *data, size_t len, uint64_t seed)
{
	return XXH3_64bits_withSeed(data, len, seed);
}

int gn_hasher_init(struct gn_hasher *h, uint64_t seed)
{
	XXH3_state_t *st = XXH3_createState();

	h->state = st;
	if (st == NULL)
		return gn_error_set(-ENOMEM,
				    "hasher: cannot allocate XXH3 state");
	XXH3_64bits_reset_withSeed(st, seed);
	return 0;
}

void gn_hasher_update(struct gn_hasher *h, const void *data, size_t len)
{
	XXH3_64bits_update(h->state, data, len);
}

uint64_t gn_hasher_digest(const struct gn_hasher *h)
{
	return XXH3_64bits_digest(h->state);
}

void gn_hasher_fini(struct gn_hasher *h)
{
	XXH3_freeState(h->state);
	h->state = NULL;
}
