/*
 * Resident tensors (genie/resident.h) on the "local" target: the session's
 * own registry over its in-process backend. Plans read resident tensors
 * in place and give the numbers plain loops give; fetch returns the
 * registry's copy; pin, release and their errors; a lazy tensor is
 * materialized before it becomes resident; a session destroyed with
 * resident tensors frees them (the ASan build checks). Shared
 * (content-addressed) residency on the local target: equal tensors share
 * one copy and the second sends nothing, other content or another shape
 * gets its own, release/pin/fetch/plans work on shared handles, and a
 * released copy stays for the next attach. Linked against the shared
 * libgenie, so it also checks the new functions are exported.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <genie/genie.h>

static struct gn_session *local(void)
{
	struct gn_session *s = gn_session_create(NULL);

	assert_non_null(s);
	return s;
}

/* y = x @ W + b for x [2,3], W [3,4], b [4] against loops. */
static void check_linear(struct gn_session *s, struct gn_tensor *w,
			 struct gn_tensor *b, const float *wv, const float *bv)
{
	float x[2 * 3] = {1, -2, 3, 0.5f, 4, -1}, y[2 * 4];
	int64_t xs[] = {2, 3};
	struct gn_tensor *t;

	t = gn_add(
		gn_matmul(gn_tensor_from_host(s, GN_DTYPE_F32, 2, xs, x, 0), w),
		b);
	assert_non_null(t);
	assert_int_equal(gn_tensor_to_host(t, y, sizeof(y)), 0);
	for (int i = 0; i < 2; i++)
		for (int j = 0; j < 4; j++) {
			float acc = bv[j];

			for (int k = 0; k < 3; k++)
				acc += x[i * 3 + k] * wv[k * 4 + j];
			assert_float_equal(y[i * 4 + j], acc, 1e-5);
		}
}

static void test_plans_read_resident_tensors(void **state)
{
	struct gn_session *s = local();
	float wv[3 * 4], bv[4] = {0.5f, -0.5f, 1, -1}, back[3 * 4];
	int64_t ws[] = {3, 4}, bs[] = {4};
	struct gn_session_stats st;
	struct gn_tensor *w, *b;

	(void)state;
	for (int i = 0; i < 12; i++)
		wv[i] = (float)i * 0.25f - 1;
	w = gn_tensor_from_host(s, GN_DTYPE_F32, 2, ws, wv, GN_TENSOR_COPY);
	b = gn_tensor_from_host(s, GN_DTYPE_F32, 1, bs, bv, GN_TENSOR_COPY);
	assert_int_equal(gn_tensor_make_resident(w, 1), 0);
	assert_int_equal(gn_tensor_make_resident(b, 0), 0);
	assert_int_equal(gn_tensor_is_resident(w), 1);
	assert_int_equal(gn_tensor_is_pinned(w), 1);
	assert_int_equal(gn_tensor_is_pinned(b), 0);
	check_linear(s, w, b, wv, bv);
	check_linear(s, w, b, wv, bv); /* again: the same plan structure */
	assert_int_equal(gn_tensor_fetch(w, back, sizeof(back)), 0);
	assert_memory_equal(back, wv, sizeof(wv));
	assert_int_equal(gn_session_get_stats(s, &st), 0);
	assert_int_equal(st.resident_tensors, 2);
	assert_int_equal(st.resident_bytes, sizeof(wv) + sizeof(bv));
	assert_int_equal(st.resident_bytes_uploaded, sizeof(wv) + sizeof(bv));
	assert_int_equal(st.resident_reuploads, 0);

	/* Pin state, and making resident again only changes it. */
	assert_int_equal(gn_tensor_set_pinned(w, 0), 0);
	assert_int_equal(gn_tensor_is_pinned(w), 0);
	assert_int_equal(gn_tensor_make_resident(w, 1), 0);
	assert_int_equal(gn_tensor_is_pinned(w), 1);
	assert_int_equal(gn_session_get_stats(s, &st), 0);
	assert_int_equal(st.resident_bytes_uploaded, sizeof(wv) + sizeof(bv));

	/* Released: plans send (here: borrow) its bytes again. */
	assert_int_equal(gn_tensor_release(w), 0);
	assert_int_equal(gn_tensor_is_resident(w), 0);
	check_linear(s, w, b, wv, bv);
	assert_int_equal(gn_session_get_stats(s, &st), 0);
	assert_int_equal(st.resident_tensors, 1);
	assert_int_equal(st.resident_bytes, sizeof(bv));
	/* Destroyed with b still resident: freed with the session. */
	gn_session_destroy(&s);
	assert_null(s);
}

/* A lazy tensor is computed first, then kept; folding leaves it alone. */
static void test_lazy_and_sources(void **state)
{
	struct gn_session *s = local();
	int64_t sh[] = {4};
	float v[4] = {1, -2, 3, -4}, back[4], y[4];
	struct gn_tensor *r, *t;

	(void)state;
	r = gn_relu(gn_tensor_from_host(s, GN_DTYPE_F32, 1, sh, v, 0));
	assert_int_equal(gn_tensor_make_resident(r, 0), 0);
	assert_int_equal(gn_tensor_fetch(r, back, sizeof(back)), 0);
	assert_true(back[0] == 1 && back[1] == 0 && back[2] == 3 &&
		    back[3] == 0);
	/* resident + a constant source: the source may fold, r may not. */
	t = gn_add(r, gn_full(s, GN_DTYPE_F32, 1, sh, 2.0));
	assert_int_equal(gn_tensor_to_host(t, y, sizeof(y)), 0);
	assert_true(y[0] == 3 && y[1] == 2 && y[2] == 5 && y[3] == 2);
	/* A resident tensor as both operands of one op. */
	t = gn_mul(r, r);
	assert_int_equal(gn_tensor_to_host(t, y, sizeof(y)), 0);
	assert_true(y[0] == 1 && y[1] == 0 && y[2] == 9 && y[3] == 0);
	gn_session_destroy(&s);
}

static void test_errors(void **state)
{
	struct gn_session *s = local();
	int64_t sh[] = {2};
	float v[2] = {1, 2}, back[2];
	struct gn_tensor *t;

	(void)state;
	t = gn_tensor_from_host(s, GN_DTYPE_F32, 1, sh, v, 0);
	assert_int_equal(gn_tensor_make_resident(NULL, 0), -EINVAL);
	assert_int_equal(gn_tensor_set_pinned(NULL, 1), -EINVAL);
	assert_int_equal(gn_tensor_release(NULL), -EINVAL);
	assert_int_equal(gn_tensor_fetch(NULL, back, sizeof(back)), -EINVAL);
	assert_int_equal(gn_tensor_is_resident(NULL), 0);
	assert_int_equal(gn_tensor_is_pinned(NULL), 0);
	/* Not resident yet. */
	assert_int_equal(gn_tensor_set_pinned(t, 1), -EINVAL);
	if (strstr(gn_last_error(), "not resident") == NULL)
		fail_msg("detail: %s", gn_last_error());
	assert_int_equal(gn_tensor_release(t), -EINVAL);
	assert_int_equal(gn_tensor_fetch(t, back, sizeof(back)), -EINVAL);
	/* Resident, but the wrong destination size. */
	assert_int_equal(gn_tensor_make_resident(t, 0), 0);
	assert_int_equal(gn_tensor_fetch(t, back, 4), -EINVAL);
	if (strstr(gn_last_error(), "holds 4 bytes, tensor has 8") == NULL)
		fail_msg("detail: %s", gn_last_error());
	assert_int_equal(gn_tensor_fetch(t, NULL, sizeof(back)), -EINVAL);
	assert_int_equal(gn_tensor_release(t), 0);
	assert_int_equal(gn_tensor_release(t), -EINVAL);
	gn_session_destroy(&s);
}

static void test_shared_local(void **state)
{
	struct gn_session *s = local();
	float wv[3 * 4], bv[4] = {0.5f, -0.5f, 1, -1}, back[3 * 4];
	float other[3 * 4];
	int64_t ws[] = {3, 4}, ws2[] = {4, 3}, bs[] = {4};
	struct gn_session_stats st;
	struct gn_tensor *w1, *w2, *w3, *w4, *b;

	(void)state;
	for (int i = 0; i < 12; i++) {
		wv[i] = (float)i * 0.5f - 2;
		other[i] = wv[i] + (i == 11);
	}
	w1 = gn_tensor_from_host(s, GN_DTYPE_F32, 2, ws, wv, GN_TENSOR_COPY);
	w2 = gn_tensor_from_host(s, GN_DTYPE_F32, 2, ws, wv, GN_TENSOR_COPY);
	w3 = gn_tensor_from_host(s, GN_DTYPE_F32, 2, ws, other, 0);
	w4 = gn_tensor_from_host(s, GN_DTYPE_F32, 2, ws2, wv, 0);
	b = gn_tensor_from_host(s, GN_DTYPE_F32, 1, bs, bv, 0);
	assert_int_equal(gn_tensor_make_resident_shared(NULL, 0), -EINVAL);
	/* The first uploads; the second, equal in value, attaches. */
	assert_int_equal(gn_tensor_make_resident_shared(w1, 1), 0);
	assert_int_equal(gn_tensor_make_resident_shared(w2, 0), 0);
	assert_int_equal(gn_tensor_is_resident(w2), 1);
	assert_int_equal(gn_tensor_is_pinned(w1), 1);
	assert_int_equal(gn_tensor_is_pinned(w2), 0);
	assert_int_equal(gn_session_get_stats(s, &st), 0);
	assert_int_equal(st.resident_tensors, 2);
	assert_int_equal(st.resident_attach_hits, 1);
	assert_int_equal(st.resident_bytes_attached, sizeof(wv));
	assert_int_equal(st.resident_bytes_uploaded, sizeof(wv));
	/* Other bytes, or the same bytes in another shape: their own. */
	assert_int_equal(gn_tensor_make_resident_shared(w3, 0), 0);
	assert_int_equal(gn_tensor_make_resident_shared(w4, 0), 0);
	assert_int_equal(gn_session_get_stats(s, &st), 0);
	assert_int_equal(st.resident_attach_hits, 1);
	assert_int_equal(st.resident_bytes_uploaded, 3 * sizeof(wv));
	assert_int_equal(gn_tensor_fetch(w3, back, sizeof(back)), 0);
	assert_memory_equal(back, other, sizeof(other));
	/* Plans read shared handles in place, mixed with a plain one. */
	assert_int_equal(gn_tensor_make_resident(b, 0), 0);
	check_linear(s, w1, b, wv, bv);
	check_linear(s, w2, b, wv, bv);
	check_linear(s, w3, b, other, bv);
	/* Releasing one handle leaves the other working. */
	assert_int_equal(gn_tensor_release(w1), 0);
	assert_int_equal(gn_tensor_is_resident(w1), 0);
	assert_int_equal(gn_tensor_fetch(w2, back, sizeof(back)), 0);
	assert_memory_equal(back, wv, sizeof(wv));
	check_linear(s, w2, b, wv, bv);
	/* With no handle left the copy stays: making it resident again
	 * attaches, and pin and make-resident-again act as for any. */
	assert_int_equal(gn_tensor_release(w2), 0);
	assert_int_equal(gn_tensor_make_resident_shared(w1, 0), 0);
	assert_int_equal(gn_session_get_stats(s, &st), 0);
	assert_int_equal(st.resident_attach_hits, 2);
	assert_int_equal(st.resident_bytes_uploaded,
			 3 * sizeof(wv) + sizeof(bv));
	assert_int_equal(gn_tensor_set_pinned(w1, 1), 0);
	assert_int_equal(gn_tensor_make_resident_shared(w1, 0), 0);
	assert_int_equal(gn_tensor_is_pinned(w1), 0);
	/* Already resident the plain way: only the pin changes. */
	assert_int_equal(gn_tensor_make_resident_shared(b, 1), 0);
	assert_int_equal(gn_tensor_is_pinned(b), 1);
	assert_int_equal(gn_session_get_stats(s, &st), 0);
	assert_int_equal(st.resident_attach_hits, 2);
	check_linear(s, w1, b, wv, bv);
	gn_session_destroy(&s);
}

/* A lazy tensor is computed, then shared by the value it computed. */
static void test_shared_lazy_local(void **state)
{
	struct gn_session *s = local();
	int64_t sh[] = {4};
	float v[4] = {1, -2, 3, -4}, r[4] = {1, 0, 3, 0}, back[4];
	struct gn_tensor *lazy, *eq;
	struct gn_session_stats st;

	(void)state;
	lazy = gn_relu(gn_tensor_from_host(s, GN_DTYPE_F32, 1, sh, v, 0));
	assert_int_equal(gn_tensor_make_resident_shared(lazy, 0), 0);
	assert_int_equal(gn_tensor_fetch(lazy, back, sizeof(back)), 0);
	assert_memory_equal(back, r, sizeof(r));
	eq = gn_tensor_from_host(s, GN_DTYPE_F32, 1, sh, r, 0);
	assert_int_equal(gn_tensor_make_resident_shared(eq, 0), 0);
	assert_int_equal(gn_session_get_stats(s, &st), 0);
	assert_int_equal(st.resident_attach_hits, 1);
	gn_session_destroy(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plans_read_resident_tensors),
		cmocka_unit_test(test_lazy_and_sources),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_shared_local),
		cmocka_unit_test(test_shared_lazy_local),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
