/*
 * The ONNX loader's refusals and bookkeeping, on small models built with
 * protobuf-c (tests/fuzz/onnx_seed.c) and mutated here. Numerics against
 * PyTorch are the model zoo's job (tests/models).
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <genie/genie.h>

#include "fuzz.h"
#include "onnx.pb-c.h"

static uint8_t g_seed[2][FUZZ_SEED_MAX];
static size_t g_len[2];

static int setup(void **state)
{
	struct gn_session *s = gn_session_create(NULL);

	for (int v = 0; v < 2; v++)
		g_len[v] = fuzz_seed(g_seed[v], sizeof(g_seed[v]), v);
	*state = s;
	return s ? 0 : -1;
}

static int teardown(void **state)
{
	struct gn_session *s = *state;

	gn_session_destroy(&s);
	return 0;
}

static void expect_words(const char *what, const char *const *words)
{
	for (int i = 0; words[i] != NULL; i++)
		if (strstr(gn_last_error(), words[i]) == NULL)
			fail_msg("%s: error does not mention '%s': %s", what,
				 words[i], gn_last_error());
}

/* Unpack seed v, let `edit` change it, pack it into buf. */
static size_t mutate(int v, void (*edit)(Onnx__ModelProto *), uint8_t *buf,
		     size_t cap)
{
	Onnx__ModelProto *m =
		onnx__model_proto__unpack(NULL, g_len[v], g_seed[v]);
	size_t n;

	assert_non_null(m);
	edit(m);
	n = onnx__model_proto__get_packed_size(m);
	assert_true(n <= cap);
	onnx__model_proto__pack(m, buf);
	onnx__model_proto__free_unpacked(m, NULL);
	return n;
}

static void test_seed_loads_and_runs(void **state)
{
	struct gn_session *s = *state;
	int64_t xs[4] = {1, 2, 4, 4}, ys[2];
	float y[48], sum = 0;
	struct gn_tensor *x, *out[1];
	struct gn_model *m = gn_model_load_buffer(s, g_seed[0], g_len[0], NULL);

	if (m == NULL)
		fail_msg("load: %s", gn_last_error());
	assert_int_equal(gn_model_num_inputs(m), 1);
	assert_int_equal(gn_model_num_outputs(m), 1);
	assert_string_equal(gn_model_input(m, 0)->name, "x");
	assert_int_equal(gn_model_input(m, 0)->ndim, 4);
	assert_int_equal(gn_model_input_index(m, "x"), 0);
	assert_int_equal(gn_model_input_index(m, "W"), -1); /* a weight */
	assert_int_equal(gn_model_output_index(m, "y"), 0);
	assert_null(gn_model_input(m, 1));
	x = gn_ones(s, GN_DTYPE_F32, 4, xs);
	for (int round = 0; round < 2; round++) {
		assert_int_equal(gn_model_run(m, &x, out), 0);
		assert_int_equal(gn_tensor_shape(out[0], ys), 2);
		assert_true(ys[0] == 1 && ys[1] == 48);
		assert_int_equal(gn_tensor_to_host(out[0], y, sizeof(y)), 0);
		sum = 0;
		for (int i = 0; i < 48; i++)
			sum += y[i];
		assert_true(fabsf(sum - 1.0f) < 1e-5f); /* a softmax */
	}
	gn_model_free(&m);
	assert_null(m);
	gn_model_free(&m); /* NULL is fine */
}

/*
 * Replace a string of an unpacked message so that free_unpacked() frees the
 * new one: the old one is freed unless it is protobuf-c's static default.
 */
static void repl(char **field, const char *v, int owned)
{
	if (owned)
		free(*field);
	*field = strdup(v);
}

static void edit_unsupported(Onnx__ModelProto *m)
{
	repl(&m->graph->node[1]->op_type, "NonMaxSuppression", 1);
	repl(&m->graph->node[1]->name, "nms_7", 1);
}

static void test_unsupported_op_names_type_node_opset(void **state)
{
	static const char *const words[] = {"NonMaxSuppression", "nms_7",
					    "opset 13", NULL};
	uint8_t buf[FUZZ_SEED_MAX];
	size_t n = mutate(0, edit_unsupported, buf, sizeof(buf));

	assert_null(gn_model_load_buffer(*state, buf, n, NULL));
	assert_int_equal(gn_last_error_code(), -EOPNOTSUPP);
	expect_words("unsupported op", words);
}

static void edit_opset9(Onnx__ModelProto *m)
{
	m->opset_import[0]->version = 9;
}

static void edit_opset18(Onnx__ModelProto *m)
{
	m->opset_import[0]->version = 18;
}

static void edit_domain(Onnx__ModelProto *m)
{
	repl(&m->graph->node[2]->domain, "com.microsoft", 0);
}

static void edit_undefined(Onnx__ModelProto *m)
{
	repl(&m->graph->node[2]->input[0], "nope", 1);
}

static void edit_external(Onnx__ModelProto *m)
{
	Onnx__TensorProto *t = m->graph->initializer[0];

	t->has_data_location = 1;
	t->data_location = ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
}

static void edit_double(Onnx__ModelProto *m)
{
	m->graph->initializer[1]->data_type =
		ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE;
}

static void test_bad_models_get_clear_errors(void **state)
{
	static const struct {
		void (*edit)(Onnx__ModelProto *);
		int code;
		const char *words[3];
	} cases[] = {
		{edit_opset9, -EOPNOTSUPP, {"opset 9", "11 to 17"}},
		{edit_opset18, -EOPNOTSUPP, {"opset 18"}},
		{edit_domain, -EOPNOTSUPP, {"com.microsoft", "Reshape"}},
		{edit_undefined, -EINVAL, {"'nope'", "Reshape"}},
		{edit_external, -EOPNOTSUPP, {"external", "'W'"}},
		{edit_double, -EOPNOTSUPP, {"'B'", "data type 11"}},
	};
	uint8_t buf[FUZZ_SEED_MAX];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t n = mutate(0, cases[i].edit, buf, sizeof(buf));
		const char *w[4] = {cases[i].words[0], cases[i].words[1],
				    cases[i].words[2], NULL};

		assert_null(gn_model_load_buffer(*state, buf, n, NULL));
		if (gn_last_error_code() != cases[i].code)
			fail_msg("case %zu: code %d, expected %d: %s", i,
				 gn_last_error_code(), cases[i].code,
				 gn_last_error());
		expect_words("bad model", w);
	}
}

static void test_truncated_and_garbage_fail_cleanly(void **state)
{
	uint8_t junk[512];
	uint32_t r = 7;
	int refused = 0;

	/* Every strict prefix: refused with words, or (rarely) a smaller
	 * model that still parses; never a crash. */
	for (size_t n = 0; n < g_len[1]; n++) {
		struct gn_model *m =
			gn_model_load_buffer(*state, g_seed[1], n, NULL);

		if (m != NULL) {
			gn_model_free(&m);
			continue;
		}
		refused++;
		assert_true(gn_last_error_code() < 0);
		assert_true(gn_last_error()[0] != '\0');
	}
	assert_true(refused > (int)g_len[1] / 2);
	for (int k = 0; k < 200; k++) {
		for (size_t i = 0; i < sizeof(junk); i++) {
			r = r * 1664525u + 1013904223u;
			junk[i] = (uint8_t)(r >> 24);
		}
		assert_null(gn_model_load_buffer(*state, junk,
						 1 + (size_t)k * 2, NULL));
		assert_true(gn_last_error_code() < 0);
	}
	assert_null(gn_model_load_buffer(*state, "", 0, NULL));
	assert_int_equal(gn_last_error_code(), -EBADMSG);
}

static void test_files(void **state)
{
	char path[] = "/tmp/genie-onnx-test-XXXXXX";
	int fd = mkstemp(path);
	struct gn_model *m;

	assert_true(fd >= 0);
	assert_null(gn_model_load(*state, "/nonexistent/model.onnx", NULL));
	assert_int_equal(gn_last_error_code(), -ENOENT);
	assert_null(gn_model_load(*state, "/tmp", NULL));
	assert_true(gn_last_error_code() < 0);
	/* Garbage in a file names the file. */
	assert_int_equal(write(fd, "not an onnx file", 16), 16);
	assert_null(gn_model_load(*state, path, NULL));
	assert_int_equal(gn_last_error_code(), -EBADMSG);
	assert_non_null(strstr(gn_last_error(), path));
	assert_int_equal(ftruncate(fd, 0), 0);
	assert_int_equal(pwrite(fd, g_seed[0], g_len[0], 0), (ssize_t)g_len[0]);
	m = gn_model_load(*state, path, NULL);
	if (m == NULL)
		fail_msg("load from file: %s", gn_last_error());
	gn_model_free(&m);
	close(fd);
	unlink(path);
}

static void test_run_checks_inputs(void **state)
{
	struct gn_session *s = *state, *other = gn_session_create(NULL);
	int64_t good[4] = {1, 2, 4, 4}, wrong[4] = {1, 2, 4, 5};
	struct gn_tensor *x, *out[1];
	struct gn_model *m = gn_model_load_buffer(s, g_seed[0], g_len[0], NULL);

	assert_non_null(m);
	x = gn_zeros(s, GN_DTYPE_I64, 4, good);
	assert_int_equal(gn_model_run(m, &x, out), -EINVAL);
	assert_non_null(strstr(gn_last_error(), "'x'"));
	assert_non_null(strstr(gn_last_error(), "f32"));
	x = gn_zeros(s, GN_DTYPE_F32, 4, wrong);
	assert_int_equal(gn_model_run(m, &x, out), -EINVAL);
	assert_non_null(strstr(gn_last_error(), "dim 3 is 5"));
	x = gn_zeros(other, GN_DTYPE_F32, 4, good);
	assert_int_equal(gn_model_run(m, &x, out), -EINVAL);
	assert_non_null(strstr(gn_last_error(), "another session"));
	x = NULL;
	assert_int_equal(gn_model_run(m, &x, out), -EINVAL);
	/* And a good run afterwards. */
	x = gn_zeros(s, GN_DTYPE_F32, 4, good);
	assert_int_equal(gn_model_run(m, &x, out), 0);
	assert_int_equal(gn_tensor_materialize(out[0]), 0);
	gn_model_free(&m);
	gn_session_destroy(&other);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_seed_loads_and_runs),
		cmocka_unit_test(test_unsupported_op_names_type_node_opset),
		cmocka_unit_test(test_bad_models_get_clear_errors),
		cmocka_unit_test(test_truncated_and_garbage_fail_cleanly),
		cmocka_unit_test(test_files),
		cmocka_unit_test(test_run_checks_inputs),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
