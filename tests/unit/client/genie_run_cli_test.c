/*
 * genie-run (client/tools/genie_run.c) as a user meets it: started as a
 * process with bad command lines (exit 2, a message naming the problem and
 * the usage), with inputs that do not fit the model or files that are not
 * there (exit 1, Genie's detail), and once on a small model whose output
 * name holds a '/', whose result is checked against relu by hand.
 *
 * argv[1] is the genie-run binary (meson passes it). The cases that need
 * a model build one with /usr/bin/python3 and the onnx package; where
 * those are missing they skip with a message, and the command-line cases
 * still run.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "npy.h"

#define PYTHON "/usr/bin/python3"

static const char *g_tool;
static char g_dir[64];
static int g_have_onnx;
static char g_out[16384], g_err[16384];
static char g_out_path[128], g_err_path[128];

static char *in_dir(const char *name)
{
	static char buf[4][256];
	static int k;

	k = (k + 1) % 4;
	snprintf(buf[k], sizeof(buf[k]), "%s/%s", g_dir, name);
	return buf[k];
}

static void slurp(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "r");
	size_t n = 0;

	if (f != NULL) {
		n = fread(buf, 1, len - 1, f);
		fclose(f);
	}
	buf[n] = '\0';
}

/* Run genie-run with a NULL-terminated argument list; its exit status. */
static int run_tool(const char *arg, ...)
{
	const char *argv[32];
	int argc = 0, st;
	va_list ap;
	pid_t pid;

	argv[argc++] = g_tool;
	va_start(ap, arg);
	for (const char *a = arg; a != NULL && argc < 31;
	     a = va_arg(ap, const char *))
		argv[argc++] = a;
	va_end(ap);
	argv[argc] = NULL;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		/* Not in_dir(): its buffers may hold the arguments. */
		int o = open(g_out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		int e = open(g_err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

		if (o < 0 || e < 0 || dup2(o, 1) < 0 || dup2(e, 2) < 0)
			_exit(127);
		execv(g_tool, (char *const *)argv);
		_exit(127);
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	slurp(g_out_path, g_out, sizeof(g_out));
	slurp(g_err_path, g_err, sizeof(g_err));
	assert_true(WIFEXITED(st));
	return WEXITSTATUS(st);
}

static void expect_in(const char *text, const char *needle)
{
	if (strstr(text, needle) == NULL)
		fail_msg("'%s' not in output:\n%s", needle, text);
}

static void expect_usage_error(const char *needle)
{
	expect_in(g_err, needle);
	expect_in(g_err, "usage: genie-run MODEL.onnx");
}

static void test_help(void **state)
{
	(void)state;
	assert_int_equal(run_tool("--help", NULL), 0);
	expect_in(g_out, "usage: genie-run MODEL.onnx");
	expect_in(g_out, "--no-resident");
	assert_string_equal(g_err, "");
}

static void test_usage_errors(void **state)
{
	(void)state;
	assert_int_equal(run_tool(NULL), 2);
	expect_usage_error("genie-run: no model given");
	assert_int_equal(run_tool("m.onnx", "-i", "x=a.npy", NULL), 2);
	expect_usage_error("no --output-dir given");
	assert_int_equal(run_tool("m.onnx", "-o", "d", "--repeat", "0", NULL),
			 2);
	expect_usage_error("--repeat: expected an integer from 1 to 100000, "
			   "saw '0'");
	assert_int_equal(run_tool("m.onnx", "-o", "d", "--warmup", "2x", NULL),
			 2);
	expect_usage_error("--warmup: expected an integer from 0");
	assert_int_equal(run_tool("m.onnx", "-o", "d", "--bogus", NULL), 2);
	expect_usage_error("unknown option '--bogus'");
	assert_int_equal(run_tool("m.onnx", "-o", NULL), 2);
	expect_usage_error("option '-o' needs an argument");
	assert_int_equal(run_tool("m.onnx", "-o", "d", "-i", "x=a.npy", "-i",
				  "x=b.npy", NULL),
			 2);
	expect_usage_error("--input x is given twice");
	assert_int_equal(run_tool("m.onnx", "-o", "d", "-i", "=a.npy", NULL),
			 2);
	expect_usage_error("expected NAME=FILE.npy");
	assert_int_equal(run_tool("a.onnx", "b.onnx", "-o", "d", NULL), 2);
	expect_usage_error("one model expected, saw 'a.onnx' and 'b.onnx'");
	assert_int_equal(run_tool("m.onnx", "-o", "d", "-i", "a.npy", "-i",
				  "x=b.npy", NULL),
			 2);
	expect_usage_error("--input a.npy: with several inputs each needs a "
			   "name");
	assert_int_equal(run_tool("m.onnx", "-o", "d", "--log", "loud", NULL),
			 2);
	expect_usage_error("--log loud: ");
	expect_in(g_err, "'loud'");
}

static void test_runtime_errors_without_model(void **state)
{
	(void)state;
	assert_int_equal(run_tool(in_dir("none.onnx"), "-o", in_dir("o"), "-i",
				  "x=a.npy", NULL),
			 1);
	expect_in(g_err, "genie-run: cannot load the model: ");
	expect_in(g_err, "none.onnx");
	assert_int_equal(run_tool(in_dir("none.onnx"), "-o", in_dir("o"), "-i",
				  "x=a.npy", "--target", "tcp://127.0.0.1:1",
				  NULL),
			 1);
	expect_in(g_err, "cannot open a session on 'tcp://127.0.0.1:1'");
}

/* y/out = Relu(x), x f32[2,3]; x.npy fits, i.npy is i64, s.npy is [3,2]. */
static const char model_script[] =
	"import sys, numpy as np, onnx\n"
	"from onnx import helper, TensorProto as T\n"
	"d = sys.argv[1]\n"
	"g = helper.make_graph([helper.make_node('Relu', ['x'], ['y/out'])],\n"
	"    'g', [helper.make_tensor_value_info('x', T.FLOAT, [2, 3])],\n"
	"    [helper.make_tensor_value_info('y/out', T.FLOAT, [2, 3])])\n"
	"m = helper.make_model(g, opset_imports=[helper.make_opsetid('', "
	"13)])\n"
	"onnx.save(m, d + '/relu.onnx')\n"
	"np.save(d + '/x.npy', np.array([[-1, 2, -3], [4, -5, 6]], 'f4'))\n"
	"np.save(d + '/i.npy', np.zeros((2, 3), 'i8'))\n"
	"np.save(d + '/s.npy', np.zeros((3, 2), 'f4'))\n";

static void need_model(void)
{
	if (!g_have_onnx) {
		print_message("skipped: " PYTHON " with numpy and onnx not "
			      "found\n");
		skip();
	}
}

static void test_runs_model(void **state)
{
	static const float want[6] = {0, 2, 0, 4, 0, 6};
	struct gn_npy y;

	(void)state;
	need_model();
	if (run_tool(in_dir("relu.onnx"), "-i", in_dir("x.npy"), "-o",
		     in_dir("out/sub"), "--repeat", "3", "--warmup", "1",
		     NULL) != 0)
		fail_msg("genie-run failed:\n%s", g_err);
	expect_in(g_out, "input  x");
	expect_in(g_out, "f32[2,3]");
	expect_in(g_out, "runs: 3 timed, latency p50 ");
	expect_in(g_out, "bytes: sent ");
	expect_in(g_out, "wrote y/out f32[2,3] -> ");
	expect_in(g_out, "out/sub/y_out.npy");
	assert_int_equal(gn_npy_read(in_dir("out/sub/y_out.npy"), &y), 0);
	assert_int_equal(y.dtype, GN_DTYPE_F32);
	assert_int_equal(y.ndim, 2);
	assert_int_equal(y.shape[0], 2);
	assert_int_equal(y.shape[1], 3);
	assert_memory_equal(y.data, want, sizeof(want));
	gn_npy_free(&y);
}

static void test_inputs_that_do_not_fit(void **state)
{
	char arg[300];

	(void)state;
	need_model();
	assert_int_equal(run_tool(in_dir("relu.onnx"), "-i", "nope=a.npy", "-o",
				  in_dir("o"), NULL),
			 2);
	expect_usage_error("the model has no input called 'nope'; its inputs "
			   "are: x f32[2,3]");
	assert_int_equal(run_tool(in_dir("relu.onnx"), "-o", in_dir("o"), NULL),
			 2);
	expect_usage_error("model input 'x' is not given");

	snprintf(arg, sizeof(arg), "x=%s", in_dir("i.npy"));
	assert_int_equal(run_tool(in_dir("relu.onnx"), "-i", arg, "-o",
				  in_dir("o"), NULL),
			 1);
	expect_in(g_err, "genie-run: input 'x': the model wants f32[2,3], ");
	expect_in(g_err, "i.npy holds i64[2,3] (dtypes differ)");

	snprintf(arg, sizeof(arg), "x=%s", in_dir("s.npy"));
	assert_int_equal(run_tool(in_dir("relu.onnx"), "-i", arg, "-o",
				  in_dir("o"), NULL),
			 1);
	expect_in(g_err, "s.npy holds f32[3,2] (dims differ)");

	snprintf(arg, sizeof(arg), "x=%s", in_dir("relu.onnx"));
	assert_int_equal(run_tool(in_dir("relu.onnx"), "-i", arg, "-o",
				  in_dir("o"), NULL),
			 1);
	expect_in(g_err, "relu.onnx: not a .npy file");

	snprintf(arg, sizeof(arg), "x=%s", in_dir("x.npy"));
	assert_int_equal(run_tool(in_dir("relu.onnx"), "-i", arg, "-o",
				  in_dir("x.npy"), NULL),
			 1);
	expect_in(g_err, "genie-run: --output-dir: ");
	expect_in(g_err, "x.npy: exists and is not a directory");
}

static int setup(void **state)
{
	char cmd[256];

	(void)state;
	snprintf(g_dir, sizeof(g_dir), "/tmp/genie_run_cli.XXXXXX");
	if (mkdtemp(g_dir) == NULL)
		return -1;
	snprintf(g_out_path, sizeof(g_out_path), "%s/stdout", g_dir);
	snprintf(g_err_path, sizeof(g_err_path), "%s/stderr", g_dir);
	if (access(PYTHON, X_OK) == 0) {
		FILE *f = fopen(in_dir("model.py"), "w");

		if (f == NULL)
			return -1;
		fputs(model_script, f);
		fclose(f);
		snprintf(cmd, sizeof(cmd), PYTHON " %s %s 2>/dev/null",
			 in_dir("model.py"), g_dir);
		g_have_onnx = system(cmd) == 0;
	}
	if (!g_have_onnx)
		print_message("model cases skip: " PYTHON " with numpy and "
			      "onnx not found\n");
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	if (strncmp(g_dir, "/tmp/genie_run_cli.", 19) == 0) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_dir);
		if (system(cmd) != 0)
			return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_help),
		cmocka_unit_test(test_usage_errors),
		cmocka_unit_test(test_runtime_errors_without_model),
		cmocka_unit_test(test_runs_model),
		cmocka_unit_test(test_inputs_that_do_not_fit),
	};

	if (argc != 2) {
		fprintf(stderr, "usage: %s PATH/TO/genie-run\n", argv[0]);
		return 2;
	}
	g_tool = argv[1];
	return cmocka_run_group_tests(tests, setup, teardown);
}
