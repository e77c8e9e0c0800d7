/*
 * Plan cache (see plan_cache.h). Capacities are small (tens of plans per
 * connection), so a linear scan over an array ordered by last use is both
 * simple and fast enough next to executing any plan.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "gn_error.h"
#include "plan_cache.h"

struct slot {
	uint64_t fp;
	struct gn_plan *plan;
	uint64_t last_use;
};

struct gn_plan_cache {
	struct slot *slots;
	uint32_t cap, n;
	uint64_t clock;
	struct gn_plan_cache_stats st;
};

struct gn_plan_cache *gn_plan_cache_create(uint32_t capacity)
{
	struct gn_plan_cache *c = calloc(1, sizeof(*c));

	if (c != NULL)
		c->slots = calloc(capacity ? capacity : 1, sizeof(*c->slots));
	if (c == NULL || c->slots == NULL) {
		free(c);
		gn_error_set(-ENOMEM, "plan cache: out of memory");
		return NULL;
	}
	c->cap = capacity ? capacity : 1;
	return c;
}

void gn_plan_cache_destroy(struct gn_plan_cache **cp)
{
	if (cp == NULL || *cp == NULL)
		return;
	for (uint32_t i = 0; i < (*cp)->n; i++)
		gn_plan_free(&(*cp)->slots[i].plan);
	free((*cp)->slots);
	free(*cp);
	*cp = NULL;
}

static struct slot *find(struct gn_plan_cache *c, uint64_t fp)
{
	for (uint32_t i = 0; i < c->n; i++)
		if (c->slots[i].fp == fp)
			return &c->slots[i];
	return NULL;
}

struct gn_plan *gn_plan_cache_lookup(struct gn_plan_cache *c,
				     uint64_t fingerprint)
{
	struct slot *s = find(c, fingerprint);

	if (s == NULL) {
		c->st.misses++;
		return NULL;
	}
	c->st.hits++;
	s->last_use = ++c->clock;
	return s->plan;
}

void gn_plan_cache_insert(struct gn_plan_cache *c, uint64_t fingerprint,
			  struct gn_plan *plan)
{
	struct slot *s = find(c, fingerprint);

	if (s == NULL && c->n < c->cap) {
		s = &c->slots[c->n++];
	} else if (s == NULL) {
		s = &c->slots[0];
		for (uint32_t i = 1; i < c->n; i++)
			if (c->slots[i].last_use < s->last_use)
				s = &c->slots[i];
		c->st.evictions++;
	}
	if (s->plan != plan)
		gn_plan_free(&s->plan);
	s->fp = fingerprint;
	s->plan = plan;
	s->last_use = ++c->clock;
	c->st.inserts++;
}

void gn_plan_cache_get_stats(const struct gn_plan_cache *c,
			     struct gn_plan_cache_stats *s)
{
	*s = c->st;
	s->entries = c->n;
}
