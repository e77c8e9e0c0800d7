/*
 * Sessions and lazy tensors through the public API (client/session.c,
 * client/tensor.c) on the "local" target: a small model against plain
 * loops, errors at record time, NULL propagation, copy and borrow, and
 * the session's own errors. Linked against the shared libgenie, so it
 * also checks that what it calls is exported.
 *
 * One internal field is read (client_internal.h): the session's node
 * count, to prove that an op that fails records nothing.
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <genie/genie.h>

#include "client_internal.h"

static void expect_detail(const char *needle)
{
	if (strstr(gn_last_error(), needle) == NULL)
		fail_msg("detail '%s' does not contain '%s'", gn_last_error(),
			 needle);
}

/*
 * Put a known, unrelated error in this thread's slot (gn_error_clear() is
 * internal to libgenie), so a check of the code or detail that follows
 * cannot pass on a stale one: -EPROTONOSUPPORT naming scheme "stale".
 */
static void reset_error(void)
{
	struct gn_session_opts o;

	gn_session_opts_init(&o, sizeof(o));
	o.target = "stale://x:1";
	assert_null(gn_session_create(&o));
	assert_int_equal(gn_last_error_code(), -EPROTONOSUPPORT);
}

static int setup_local(void **state)
{
	struct gn_session_opts o;

	gn_session_opts_init(&o, sizeof(o));
	o.target = "local";
	*state = gn_session_create(&o);
	if (*state == NULL)
		fail_msg("local session: %s", gn_last_error());
	return 0;
}

static int teardown_session(void **state)
{
	struct gn_session *s = *state;

	gn_session_destroy(&s);
	assert_null(s);
	return 0;
}

static struct gn_tensor *tensor2(struct gn_session *s, int64_t r, int64_t c,
				 const float *data)
{
	const int64_t shape[2] = {r, c};
	struct gn_tensor *t = gn_tensor_from_host(s, GN_DTYPE_F32, 2, shape,
						  data, GN_TENSOR_COPY);

	if (t == NULL)
		fail_msg("from_host: %s", gn_last_error());
	return t;
}

static struct gn_tensor *tensor1(struct gn_session *s, int64_t n,
				 const float *data)
{
	struct gn_tensor *t = gn_tensor_from_host(s, GN_DTYPE_F32, 1, &n, data,
						  GN_TENSOR_COPY);

	if (t == NULL)
		fail_msg("from_host: %s", gn_last_error());
	return t;
}

/* relu(x @ W + b) recorded lazily equals the same thing in loops. */
static void test_mlp_layer_matches_loops(void **state)
{
	enum { M = 3, K = 4, N = 5 };
	struct gn_session *s = *state;
	float x[M * K], w[K * N], b[N], want[M * N], got[M * N];
	struct gn_tensor *tx, *tw, *tb, *y;
	int64_t shape[GN_MAX_DIMS];
	int negatives = 0;

	for (int i = 0; i < M * K; i++)
		x[i] = (float)((i * 7) % 11) - 5.0f;
	for (int i = 0; i < K * N; i++)
		w[i] = (float)((i * 5) % 9) * 0.25f - 1.0f;
	for (int i = 0; i < N; i++)
		b[i] = (float)i - 2.0f;
	for (int m = 0; m < M; m++)
		for (int n = 0; n < N; n++) {
			float acc = b[n];

			for (int k = 0; k < K; k++)
				acc += x[m * K + k] * w[k * N + n];
			negatives += acc < 0;
			want[m * N + n] = acc > 0 ? acc : 0;
		}
	/* The data exercise relu: some pre-activations are negative. */
	assert_true(negatives > 0 && negatives < M * N);

	tx = tensor2(s, M, K, x);
	tw = tensor2(s, K, N, w);
	tb = tensor1(s, N, b);
	y = gn_relu(gn_add(gn_matmul(tx, tw), tb));
	if (y == NULL)
		fail_msg("record: %s", gn_last_error());

	/* Shape and dtype are known before anything runs. */
	assert_int_equal(gn_tensor_shape(y, shape), 2);
	assert_int_equal(shape[0], M);
	assert_int_equal(shape[1], N);
	assert_int_equal(gn_tensor_dtype(y), GN_DTYPE_F32);
	assert_int_equal(gn_tensor_nbytes(y), sizeof(got));

	memset(got, 0xff, sizeof(got));
	if (gn_tensor_to_host(y, got, sizeof(got)) != 0)
		fail_msg("to_host: %s", gn_last_error());
	for (int i = 0; i < M * N; i++)
		if (fabsf(got[i] - want[i]) > 1e-4f)
			fail_msg("element %d: got %g, want %g", i, got[i],
				 want[i]);
	/* A second read gives the same value without running again. */
	memset(got, 0, sizeof(got));
	assert_int_equal(gn_tensor_materialize(y), 0);
	assert_int_equal(gn_tensor_to_host(y, got, sizeof(got)), 0);
	for (int i = 0; i < M * N; i++)
		assert_true(fabsf(got[i] - want[i]) <= 1e-4f);
	assert_string_equal(gn_session_backend(s), "cpu");
}

/* A shape mistake fails at the line that makes it and records nothing. */
static void test_shape_error_at_record_time(void **state)
{
	struct gn_session *s = *state;
	static const float z[20];
	struct gn_tensor *a = tensor2(s, 2, 3, z), *b = tensor2(s, 4, 5, z);
	struct gn_tensor *v4 = tensor1(s, 4, z), *r;
	uint64_t before = s->nnodes;

	reset_error();
	r = gn_matmul(a, b);
	assert_null(r);
	assert_int_equal(gn_last_error_code(), -EINVAL);
	expect_detail("matmul");
	expect_detail("f32[2,3]");
	expect_detail("f32[4,5]");
	assert_int_equal(s->nnodes, before);

	reset_error();
	assert_null(gn_add(a, v4));
	assert_int_equal(gn_last_error_code(), -EINVAL);
	expect_detail("add");
	expect_detail("f32[2,3]");
	expect_detail("f32[4]");
	assert_int_equal(s->nnodes, before);

	/* The session is unharmed: a correct op still records. */
	r = gn_matmul(b, gn_relu(tensor2(s, 5, 1, z)));
	assert_non_null(r);
	assert_true(s->nnodes > before);
}

/* An op over a failed op fails too, saying why, and records nothing. */
static void test_null_operand_propagates(void **state)
{
	struct gn_session *s = *state;
	static const float z[6];
	struct gn_tensor *a = tensor2(s, 2, 3, z), *bad;
	uint64_t before;
	int64_t shape[GN_MAX_DIMS];

	bad = gn_matmul(a, a); /* [2,3] @ [2,3]: inner 3 vs 2 */
	assert_null(bad);
	before = s->nnodes;

	reset_error();
	assert_null(gn_relu(bad));
	assert_int_equal(gn_last_error_code(), -EINVAL);
	expect_detail("relu");
	expect_detail("NULL");

	reset_error();
	assert_null(gn_add(a, bad));
	assert_int_equal(gn_last_error_code(), -EINVAL);
	expect_detail("add");
	expect_detail("operand 1");
	expect_detail("NULL");

	reset_error();
	assert_null(gn_matmul(bad, a));
	expect_detail("operand 0");

	/* A whole expression over it collapses to NULL without crashing. */
	assert_null(gn_relu(gn_add(gn_matmul(bad, a), a)));
	assert_int_equal(gn_last_error_code(), -EINVAL);
	assert_int_equal(s->nnodes, before);

	/* The accessors and readers refuse NULL cleanly. */
	assert_int_equal(gn_tensor_materialize(NULL), -EINVAL);
	assert_int_equal(gn_tensor_to_host(NULL, shape, 8), -EINVAL);
	assert_int_equal(gn_tensor_shape(NULL, shape), -EINVAL);
	assert_int_equal(gn_tensor_nbytes(NULL), 0);
	assert_int_equal(gn_tensor_dtype(NULL), GN_DTYPE_INVALID);
}

static void test_to_host_wrong_size(void **state)
{
	struct gn_session *s = *state;
	static const float v[6] = {1, 2, 3, 4, 5, 6};
	struct gn_tensor *t = tensor2(s, 2, 3, v);
	const size_t sizes[] = {0, 23, 25, 48};
	float out[12];

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		char want[32];

		memset(out, 0x7f, sizeof(out));
		reset_error();
		assert_int_equal(gn_tensor_to_host(t, out, sizes[i]), -EINVAL);
		assert_int_equal(gn_last_error_code(), -EINVAL);
		snprintf(want, sizeof(want), "%zu", sizes[i]);
		expect_detail(want);
		expect_detail("24");
		/* Nothing was written. */
		for (int k = 0; k < 12; k++) {
			uint32_t bits;

			memcpy(&bits, &out[k], 4);
			assert_int_equal(bits, 0x7f7f7f7f);
		}
	}
	assert_int_equal(gn_tensor_to_host(t, NULL, 24), -EINVAL);
	assert_int_equal(gn_tensor_to_host(t, out, 24), 0);
	assert_memory_equal(out, v, sizeof(v));
}

/* COPY takes the bytes now; BORROW reads the caller's buffer in place. */
static void test_copy_vs_borrow(void **state)
{
	struct gn_session *s = *state;
	float buf[4] = {1, -2, 3, -4}, out[4];
	const int64_t n = 4;
	struct gn_tensor *c, *b, *rc, *rb;

	c = gn_tensor_from_host(s, GN_DTYPE_F32, 1, &n, buf, GN_TENSOR_COPY);
	assert_non_null(c);
	assert_ptr_not_equal(c->data, buf);
	rc = gn_relu(c);
	assert_non_null(rc);
	/* The caller reuses its buffer at once. */
	buf[0] = -9;
	buf[1] = 9;
	buf[2] = -9;
	buf[3] = 9;
	assert_int_equal(gn_tensor_to_host(rc, out, sizeof(out)), 0);
	assert_true(out[0] == 1 && out[1] == 0 && out[2] == 3 && out[3] == 0);
	assert_int_equal(gn_tensor_to_host(c, out, sizeof(out)), 0);
	assert_true(out[0] == 1 && out[1] == -2 && out[2] == 3 && out[3] == -4);

	b = gn_tensor_from_host(s, GN_DTYPE_F32, 1, &n, buf, GN_TENSOR_BORROW);
	assert_non_null(b);
	assert_ptr_equal(b->data, buf); /* no copy was made */
	rb = gn_relu(b);
	assert_non_null(rb);
	assert_int_equal(gn_tensor_to_host(rb, out, sizeof(out)), 0);
	assert_true(out[0] == 0 && out[1] == 9 && out[2] == 0 && out[3] == 9);
}

static void test_from_host_errors(void **state)
{
	struct gn_session *s = *state;
	static const float v[4];
	int64_t shape[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
	const int64_t neg[2] = {2, -1};
	uint64_t before = s->nnodes;

	reset_error();
	assert_null(gn_tensor_from_host(NULL, GN_DTYPE_F32, 1, shape, v,
					GN_TENSOR_COPY));
	assert_int_equal(gn_last_error_code(), -EINVAL);
	expect_detail("session");
	assert_null(gn_tensor_from_host(s, GN_DTYPE_F32, 1, shape, NULL,
					GN_TENSOR_COPY));
	expect_detail("data");
	assert_null(gn_tensor_from_host(s, GN_DTYPE_F32, 9, shape, v,
					GN_TENSOR_COPY));
	assert_int_equal(gn_last_error_code(), -EINVAL);
	expect_detail("9 dims");
	assert_null(gn_tensor_from_host(s, GN_DTYPE_F32, 2, neg, v,
					GN_TENSOR_COPY));
	expect_detail("-1");
	assert_null(gn_tensor_from_host(s, GN_DTYPE_INVALID, 1, shape, v,
					GN_TENSOR_COPY));
	expect_detail("dtype");
	assert_null(gn_tensor_from_host(s, GN_DTYPE_F32, 1, shape, v,
					(enum gn_tensor_flags)7));
	expect_detail("flags");
	assert_int_equal(s->nnodes, before);
}

/* ---- Session creation ------------------------------------------------- */

static void test_bad_target(void **state)
{
	struct gn_session_opts o;
	struct gn_session *s;

	(void)state;
	gn_session_opts_init(&o, sizeof(o));
	o.target = "bogus";
	reset_error();
	s = gn_session_create(&o);
	assert_null(s);
	assert_int_equal(gn_last_error_code(), -EINVAL);
	expect_detail("'bogus'");
	expect_detail("local");
	expect_detail("tcp://");

	o.target = "foo://x:1";
	reset_error();
	assert_null(gn_session_create(&o));
	assert_int_equal(gn_last_error_code(), -EPROTONOSUPPORT);
	expect_detail("foo");
}

static void test_connect_refused(void **state)
{
	struct gn_session_opts o;

	(void)state;
	gn_session_opts_init(&o, sizeof(o));
	o.target = "tcp://127.0.0.1:1";
	o.timeout_ms = 5000;
	reset_error();
	assert_null(gn_session_create(&o));
	assert_int_equal(gn_last_error_code(), -ECONNREFUSED);
	expect_detail("127.0.0.1:1");
}

static void test_opts(void **state)
{
	struct gn_session_opts o;
	struct gn_session *s;

	(void)state;
	/* opts_size 0: the caller never called gn_session_opts_init(). */
	memset(&o, 0, sizeof(o));
	o.target = "local";
	reset_error();
	assert_null(gn_session_create(&o));
	assert_int_equal(gn_last_error_code(), -EINVAL);
	expect_detail("opts_size 0");
	/* Larger than this library knows. */
	gn_session_opts_init(&o, sizeof(o));
	o.opts_size = sizeof(o) + 8;
	assert_null(gn_session_create(&o));
	assert_int_equal(gn_last_error_code(), -EINVAL);

	/* NULL opts: the defaults, a local CPU session. */
	s = gn_session_create(NULL);
	assert_non_null(s);
	assert_string_equal(gn_session_backend(s), "cpu");
	gn_session_destroy(&s);

	/*
	 * An older caller's struct ends before `target`: the field past its
	 * opts_size is not read, so the default target applies.
	 */
	gn_session_opts_init(&o, sizeof(o));
	o.target = "bogus";
	o.opts_size = offsetof(struct gn_session_opts, target);
	s = gn_session_create(&o);
	if (s == NULL)
		fail_msg("opts_size %zu: %s", o.opts_size, gn_last_error());
	gn_session_destroy(&s);
	/* One that includes it is honoured. */
	o.opts_size =
		offsetof(struct gn_session_opts, target) + sizeof(o.target);
	assert_null(gn_session_create(&o));
	expect_detail("bogus");

	/* opts_init writes no more than the caller's size. */
	memset(&o, 0xab, sizeof(o));
	gn_session_opts_init(&o, offsetof(struct gn_session_opts, timeout_ms));
	assert_string_equal(o.target, "local");
	{
		int marker;

		memset(&marker, 0xab, sizeof(marker));
		assert_memory_equal(&o.timeout_ms, &marker, sizeof(marker));
	}
	gn_session_opts_init(NULL, sizeof(o)); /* no crash */
}

static void test_destroy_null(void **state)
{
	struct gn_session *s = NULL;
	struct gn_session_stats st;

	(void)state;
	gn_session_destroy(NULL);
	gn_session_destroy(&s);
	assert_null(s);
	assert_int_equal(gn_session_get_stats(NULL, &st), -EINVAL);
	assert_string_equal(gn_session_backend(NULL), "");

	s = gn_session_create(NULL);
	assert_non_null(s);
	assert_int_equal(gn_session_get_stats(s, &st), 0);
	assert_int_equal(gn_session_get_stats(s, NULL), -EINVAL);
	gn_session_destroy(&s);
	assert_null(s);
	gn_session_destroy(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_mlp_layer_matches_loops,
						setup_local, teardown_session),
		cmocka_unit_test_setup_teardown(test_shape_error_at_record_time,
						setup_local, teardown_session),
		cmocka_unit_test_setup_teardown(test_null_operand_propagates,
						setup_local, teardown_session),
		cmocka_unit_test_setup_teardown(test_to_host_wrong_size,
						setup_local, teardown_session),
		cmocka_unit_test_setup_teardown(test_copy_vs_borrow,
						setup_local, teardown_session),
		cmocka_unit_test_setup_teardown(test_from_host_errors,
						setup_local, teardown_session),
		cmocka_unit_test(test_bad_target),
		cmocka_unit_test(test_connect_refused),
		cmocka_unit_test(test_opts),
		cmocka_unit_test(test_destroy_null),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
