/*
 * The recording API: errors at the line that makes them (and nothing
 * recorded), NULL propagation, in-place rebinding, split, sources and
 * seeded random numbers, copy versus borrow.
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "client_internal.h"

static struct gn_session *local(void)
{
	struct gn_session *s = gn_session_create(NULL);

	assert_non_null(s);
	return s;
}

static void test_shape_error_records_nothing(void **state)
{
	struct gn_session *s = local();
	float buf[20] = {0};
	int64_t as[] = {2, 3}, bs[] = {4, 5};
	struct gn_tensor *a =
		gn_tensor_from_host(s, GN_DTYPE_F32, 2, as, buf, 0);
	struct gn_tensor *b =
		gn_tensor_from_host(s, GN_DTYPE_F32, 2, bs, buf, 0);
	uint64_t before = s->nnodes;

	(void)state;
	assert_null(gn_matmul(a, b));
	assert_int_equal(gn_last_error_code(), -EINVAL);
	assert_non_null(strstr(gn_last_error(), "matmul"));
	assert_non_null(strstr(gn_last_error(), "f32[2,3]"));
	assert_non_null(strstr(gn_last_error(), "f32[4,5]"));
	assert_int_equal(s->nnodes, before);
	/* A NULL operand fails the next call with a clear message. */
	assert_null(gn_relu(gn_matmul(a, b)));
	assert_non_null(strstr(gn_last_error(), "NULL"));
	assert_int_equal(s->nnodes, before);
	gn_session_destroy(&s);
}

static void test_inplace_and_split(void **state)
{
	struct gn_session *s = local();
	float x[6] = {-1, 2, -3, 4, -5, 6}, out[6], p0[2], p1[4];
	int64_t xs[] = {6}, sizes[] = {2, 4};
	struct gn_tensor *t = gn_tensor_from_host(s, GN_DTYPE_F32, 1, xs, x, 0);
	struct gn_tensor *orig = t, *parts[2];

	(void)state;
	assert_int_equal(gn_relu_(&t), 0);
	assert_ptr_not_equal(t, orig);
	assert_int_equal(gn_add_(&t, orig), 0);
	assert_int_equal(gn_tensor_to_host(t, out, sizeof(out)), 0);
	for (int i = 0; i < 6; i++)
		assert_true(out[i] == (x[i] > 0 ? 2 * x[i] : x[i]));
	/* A failing in-place op leaves the pointer alone. */
	int64_t ys[] = {5};
	struct gn_tensor *y = gn_tensor_from_host(s, GN_DTYPE_F32, 1, ys, x, 0);
	struct gn_tensor *keep = t;
	assert_int_equal(gn_mul_(&t, y), -EINVAL);
	assert_ptr_equal(t, keep);
	assert_int_equal(gn_split(orig, 0, 2, sizes, parts), 0);
	assert_int_equal(gn_tensor_to_host(parts[0], p0, sizeof(p0)), 0);
	assert_int_equal(gn_tensor_to_host(parts[1], p1, sizeof(p1)), 0);
	assert_true(p0[1] == 2 && p1[0] == -3 && p1[3] == 6);
	sizes[1] = 3;
	assert_int_equal(gn_split(orig, 0, 2, sizes, parts), -EINVAL);
	gn_session_destroy(&s);
}

static void test_sources_and_random(void **state)
{
	struct gn_session *s = local();
	int64_t shape[] = {1000};
	static float u1[1000], u2[1000], u3[1000], nrm[1000];
	double mean = 0, var = 0;

	(void)state;
	assert_int_equal(gn_tensor_to_host(gn_rand_uniform(s, GN_DTYPE_F32, 1,
							   shape, 7, -1, 3),
					   u1, sizeof(u1)),
			 0);
	assert_int_equal(gn_tensor_to_host(gn_rand_uniform(s, GN_DTYPE_F32, 1,
							   shape, 7, -1, 3),
					   u2, sizeof(u2)),
			 0);
	assert_int_equal(gn_tensor_to_host(gn_rand_uniform(s, GN_DTYPE_F32, 1,
							   shape, 8, -1, 3),
					   u3, sizeof(u3)),
			 0);
	assert_memory_equal(u1, u2, sizeof(u1));
	assert_memory_not_equal(u1, u3, sizeof(u1));
	for (int i = 0; i < 1000; i++) {
		assert_true(u1[i] >= -1 && u1[i] < 3);
		mean += u1[i];
	}
	assert_true(fabs(mean / 1000 - 1.0) < 0.15);
	assert_int_equal(gn_tensor_to_host(gn_rand_normal(s, GN_DTYPE_F32, 1,
							  shape, 3, 0, 1),
					   nrm, sizeof(nrm)),
			 0);
	mean = 0;
	for (int i = 0; i < 1000; i++)
		mean += nrm[i];
	mean /= 1000;
	for (int i = 0; i < 1000; i++)
		var += (nrm[i] - mean) * (nrm[i] - mean);
	assert_true(fabs(mean) < 0.15);
	assert_true(fabs(sqrt(var / 1000) - 1.0) < 0.15);
	/* arange in i64 and a bool comparison. */
	int64_t ar[5];
	assert_int_equal(gn_tensor_to_host(gn_arange(s, GN_DTYPE_I64, 2, 3, 5),
					   ar, sizeof(ar)),
			 0);
	assert_true(ar[0] == 2 && ar[4] == 14);
	gn_session_destroy(&s);
}

static void test_copy_versus_borrow(void **state)
{
	struct gn_session *s = local();
	float a[2] = {1, 2}, b[2] = {1, 2}, out[2];
	int64_t sh[] = {2};
	struct gn_tensor *ta =
		gn_tensor_from_host(s, GN_DTYPE_F32, 1, sh, a, GN_TENSOR_COPY);
	struct gn_tensor *tb = gn_tensor_from_host(s, GN_DTYPE_F32, 1, sh, b,
						   GN_TENSOR_BORROW);

	(void)state;
	a[0] = 100; /* the copy does not see this */
	b[0] = 100; /* the borrow does */
	assert_int_equal(gn_tensor_to_host(gn_add(ta, tb), out, sizeof(out)),
			 0);
	assert_true(out[0] == 101 && out[1] == 4);
	assert_int_equal(gn_tensor_to_host(ta, out, 4), -EINVAL);
	gn_session_destroy(&s);
	gn_session_destroy(&s);
	assert_null(s);
}

static void test_bad_sessions(void **state)
{
	struct gn_session_opts o;

	(void)state;
	gn_session_opts_init(&o, sizeof(o));
	o.target = "bogus";
	assert_null(gn_session_create(&o));
	assert_non_null(strstr(gn_last_error(), "bogus"));
	o.target = "tcp://127.0.0.1:1";
	o.timeout_ms = 2000;
	assert_null(gn_session_create(&o));
	assert_int_equal(gn_last_error_code(), -ECONNREFUSED);
	o.target = "local";
	o.opts_size = 0;
	assert_null(gn_session_create(&o));
	assert_non_null(strstr(gn_last_error(), "opts_size"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_shape_error_records_nothing),
		cmocka_unit_test(test_inplace_and_split),
		cmocka_unit_test(test_sources_and_random),
		cmocka_unit_test(test_copy_versus_borrow),
		cmocka_unit_test(test_bad_sessions),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
