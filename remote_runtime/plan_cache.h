/*
 * The plan cache: decoded, validated plans by structural fingerprint.
 *
 * A client that runs the same graph structure again (the next token of a
 * decoder, the next batch of a classifier) sends only the plan's
 * fingerprint; the runtime finds the plan here and skips unpacking,
 * validation and memory planning. One cache per connection, so a client
 * can neither read nor poison another client's entries. Least recently
 * used plans go first when it is full. Not thread-safe: the connection's
 * thread owns it.
 */
#ifndef GN_RUNTIME_PLAN_CACHE_H
#define GN_RUNTIME_PLAN_CACHE_H

#include <stdint.h>

#include "plan.h"

struct gn_plan_cache;

/* A cache of up to `capacity` plans. NULL with -ENOMEM set. */
struct gn_plan_cache *gn_plan_cache_create(uint32_t capacity);

/* Free the cache and every plan in it; sets *c to NULL. NULL: no-op. */
void gn_plan_cache_destroy(struct gn_plan_cache **c);

/*
 * The plan cached under `fingerprint`, now the most recently used, or
 * NULL. The cache keeps ownership; the plan stays valid until the next
 * insert into this cache.
 */
struct gn_plan *gn_plan_cache_lookup(struct gn_plan_cache *c,
				     uint64_t fingerprint);

/*
 * Keep `plan` under `fingerprint`, replacing an entry with the same key
 * and evicting the least recently used one when full. The cache takes
 * ownership of `plan` in every case.
 */
void gn_plan_cache_insert(struct gn_plan_cache *c, uint64_t fingerprint,
			  struct gn_plan *plan);

struct gn_plan_cache_stats {
	uint64_t hits, misses, inserts, evictions;
	uint32_t entries;
};

void gn_plan_cache_get_stats(const struct gn_plan_cache *c,
			     struct gn_plan_cache_stats *s);

#endif /* GN_RUNTIME_PLAN_CACHE_H */
