/* The plan cache: hits, misses, replacement and least-recently-used
 * eviction, with the cache owning every plan it is given. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "arena.h"
#include "plan_cache.h"

static struct gn_plan *fake_plan(void)
{
	struct gn_plan *p = calloc(1, sizeof(*p));

	p->arena = gn_arena_create(0);
	return p;
}

static void test_lru(void **state)
{
	struct gn_plan_cache *c = gn_plan_cache_create(2);
	struct gn_plan_cache_stats st;
	struct gn_plan *a = fake_plan(), *b = fake_plan(), *d = fake_plan();

	(void)state;
	assert_null(gn_plan_cache_lookup(c, 1));
	gn_plan_cache_insert(c, 1, a);
	gn_plan_cache_insert(c, 2, b);
	assert_ptr_equal(gn_plan_cache_lookup(c, 1), a); /* 1 now newest */
	gn_plan_cache_insert(c, 3, d);			 /* evicts 2 */
	assert_null(gn_plan_cache_lookup(c, 2));
	assert_ptr_equal(gn_plan_cache_lookup(c, 1), a);
	assert_ptr_equal(gn_plan_cache_lookup(c, 3), d);
	/* Same key: the new plan replaces the old one. */
	gn_plan_cache_insert(c, 3, fake_plan());
	assert_ptr_not_equal(gn_plan_cache_lookup(c, 3), d);
	gn_plan_cache_get_stats(c, &st);
	assert_int_equal(st.entries, 2);
	assert_int_equal(st.evictions, 1);
	assert_int_equal(st.misses, 2);
	assert_int_equal(st.hits, 4);
	gn_plan_cache_destroy(&c); /* frees the plans it holds */
	assert_null(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lru),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
