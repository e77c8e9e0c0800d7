/*
 * The .npy reader and writer of genie-run (client/tools/npy.c): round trips
 * of every dtype Genie maps, including 0-d and zero-size arrays; files
 * numpy itself wrote (format versions 1.0, 2.0 and 3.0) and files we wrote
 * read back by numpy.load; the header variations numpy accepts; every
 * malformed or unsupported input refused with its errno and a message that
 * names the file and the problem; and 20,000 mutated buffers through the
 * reader with no crash (fixed seed; the sanitizer build checks bounds).
 *
 * The numpy cases run /usr/bin/python3 (the interpreter that has numpy on
 * Genie's build machines); where it or numpy is missing they skip with a
 * message saying so, and the rest still runs.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "gn_error.h"
#include "npy.h"

#define PYTHON "/usr/bin/python3"

static char g_dir[64];
static int g_have_numpy;

static void expect_detail(const char *needle)
{
	if (strstr(gn_last_error(), needle) == NULL)
		fail_msg("detail '%s' does not contain '%s'", gn_last_error(),
			 needle);
}

static char *path_in_dir(const char *name)
{
	static char buf[256];

	snprintf(buf, sizeof(buf), "%s/%s", g_dir, name);
	return buf;
}

static uint8_t *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf;
	long n;

	assert_non_null(f);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	assert_true(n >= 0);
	rewind(f);
	buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	*len = (size_t)n;
	return buf;
}

static void write_file(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "wb");

	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

/* Run a Python script with numpy; returns its exit status or -1. */
static int run_python(const char *script, const char *arg)
{
	char cmd[512];
	int st;

	write_file(path_in_dir("script.py"), script, strlen(script));
	snprintf(cmd, sizeof(cmd), PYTHON " %s %s", path_in_dir("script.py"),
		 arg);
	st = system(cmd);
	if (st == -1 || !WIFEXITED(st))
		return -1;
	return WEXITSTATUS(st);
}

/* A recognisable byte pattern for n bytes of dtype (bool: 0 or 1). */
static void fill(void *data, size_t nbytes, enum gn_dtype dtype, int seed)
{
	uint8_t *p = data;

	for (size_t i = 0; i < nbytes; i++)
		p[i] = dtype == GN_DTYPE_BOOL ? (uint8_t)((i + seed) % 3 == 0)
					      : (uint8_t)(i * 37 + seed);
	/* f16/f32 patterns are arbitrary bits: NaNs compare as bytes here. */
}

static const enum gn_dtype all_dtypes[] = {
	GN_DTYPE_F32, GN_DTYPE_F16, GN_DTYPE_I64,  GN_DTYPE_I32,
	GN_DTYPE_I8,  GN_DTYPE_U8,  GN_DTYPE_BOOL,
};
#define N_DTYPES (sizeof(all_dtypes) / sizeof(all_dtypes[0]))

static const struct shape_case {
	int ndim;
	int64_t shape[GN_MAX_DIMS];
	const char *tag; /* file name part, parsed by the numpy check */
} shapes[] = {
	{0, {0}, "s"},
	{1, {5}, "5"},
	{2, {2, 3}, "2x3"},
	{2, {0, 3}, "0x3"},
	{1, {0}, "0"},
	{3, {3, 0, 2}, "3x0x2"},
	{8, {2, 1, 2, 1, 2, 1, 2, 3}, "2x1x2x1x2x1x2x3"},
};
#define N_SHAPES (sizeof(shapes) / sizeof(shapes[0]))

static size_t nbytes_of(enum gn_dtype dtype, int ndim, const int64_t *shape)
{
	size_t n = gn_dtype_size(dtype);

	for (int i = 0; i < ndim; i++)
		n *= (size_t)shape[i];
	return n;
}

/* Write, check the header is as numpy writes it, read back, compare. */
static void test_round_trip_every_dtype(void **state)
{
	(void)state;
	for (size_t d = 0; d < N_DTYPES; d++)
		for (size_t s = 0; s < N_SHAPES; s++) {
			enum gn_dtype dt = all_dtypes[d];
			const struct shape_case *sc = &shapes[s];
			size_t nb = nbytes_of(dt, sc->ndim, sc->shape), len;
			uint8_t *data = malloc(nb ? nb : 1), *file;
			struct gn_npy a;
			char name[64];
			size_t hlen;

			assert_non_null(data);
			fill(data, nb, dt, (int)(d * 7 + s));
			snprintf(name, sizeof(name), "ours_%s_%s.npy",
				 gn_dtype_name(dt), sc->tag);
			assert_int_equal(gn_npy_write(path_in_dir(name), dt,
						      sc->ndim, sc->shape,
						      data),
					 0);
			file = read_file(path_in_dir(name), &len);
			assert_memory_equal(file, "\x93NUMPY\x01\x00", 8);
			hlen = file[8] | (size_t)file[9] << 8;
			assert_int_equal((10 + hlen) % 64, 0);
			assert_int_equal(file[10 + hlen - 1], '\n');
			assert_int_equal(len, 10 + hlen + nb);
			assert_non_null(
				strstr((char *)file + 10, gn_npy_descr(dt)));
			free(file);

			assert_int_equal(gn_npy_read(path_in_dir(name), &a), 0);
			assert_int_equal(a.dtype, dt);
			assert_int_equal(a.ndim, sc->ndim);
			for (int i = 0; i < sc->ndim; i++)
				assert_int_equal(a.shape[i], sc->shape[i]);
			assert_int_equal(a.nbytes, nb);
			assert_non_null(a.data);
			assert_memory_equal(a.data, data, nb ? nb : 0);
			gn_npy_free(&a);
			assert_null(a.data);
			free(data);
		}
}

/*
 * Files numpy wrote: for each dtype and shape, versions 1.0, 2.0 and 3.0,
 * with the raw bytes beside them to compare against.
 */
static const char gen_script[] =
	"import sys, numpy as np\n"
	"d = sys.argv[1]\n"
	"codes = {'f32': '<f4', 'f16': '<f2', 'i64': '<i8', 'i32': '<i4',\n"
	"         'i8': '|i1', 'u8': '|u1', 'bool': '|b1'}\n"
	"shapes = {'s': (), '5': (5,), '2x3': (2, 3), '0x3': (0, 3),\n"
	"          '3x0x2': (3, 0, 2), '2x1x2x1x2x1x2x3': (2,1,2,1,2,1,2,3)}\n"
	"for name, code in codes.items():\n"
	"    for tag, shape in shapes.items():\n"
	"        n = int(np.prod(shape))\n"
	"        a = (np.arange(n) * 7 % 11 - 5).astype(code).reshape(shape)\n"
	"        if code == '|b1':\n"
	"            a = (np.arange(n) % 3 == 0).reshape(shape)\n"
	"        a.tofile(f'{d}/np_{name}_{tag}.bin')\n"
	"        for v in (1, 2, 3):\n"
	"            with open(f'{d}/np{v}_{name}_{tag}.npy', 'wb') as f:\n"
	"                np.lib.format.write_array(f, a, version=(v, 0))\n"
	"np.save(f'{d}/np_fortran.npy',\n"
	"        np.asfortranarray(np.arange(6, dtype='<f4').reshape(2, 3)))\n"
	"np.save(f'{d}/np_fortran_1d.npy',\n"
	"        np.asfortranarray(np.arange(6, dtype='<f4').reshape(1, 6)))\n"
	"np.save(f'{d}/np_big.npy', np.arange(6, dtype='>f4'))\n"
	"np.save(f'{d}/np_f8.npy', np.arange(6, dtype='<f8'))\n"
	"np.save(f'{d}/np_u2.npy', np.arange(6, dtype='<u2'))\n"
	"np.save(f'{d}/np_rec.npy', np.zeros(2, dtype=[('a', '<f4')]))\n"
	"np.save(f'{d}/np_9d.npy', np.zeros((1,) * 9, dtype='<f4'))\n";

static void check_numpy_file(const char *file, const char *bin,
			     enum gn_dtype dt, const struct shape_case *sc)
{
	struct gn_npy a;
	uint8_t *raw;
	size_t len;

	if (gn_npy_read(path_in_dir(file), &a) != 0)
		fail_msg("%s: %s", file, gn_last_error());
	assert_int_equal(a.dtype, dt);
	assert_int_equal(a.ndim, sc->ndim);
	for (int i = 0; i < sc->ndim; i++)
		assert_int_equal(a.shape[i], sc->shape[i]);
	raw = read_file(path_in_dir(bin), &len);
	assert_int_equal(a.nbytes, len);
	assert_memory_equal(a.data, raw, len);
	free(raw);
	gn_npy_free(&a);
}

static void test_read_numpy_files(void **state)
{
	(void)state;
	if (!g_have_numpy) {
		print_message("skipped: " PYTHON " with numpy not found\n");
		skip();
	}
	assert_int_equal(run_python(gen_script, g_dir), 0);
	for (size_t d = 0; d < N_DTYPES; d++)
		for (size_t s = 0; s < N_SHAPES; s++) {
			const struct shape_case *sc = &shapes[s];
			const char *dn = gn_dtype_name(all_dtypes[d]);
			char file[96], bin[96];

			if (strcmp(sc->tag, "0") == 0)
				continue; /* not generated */
			snprintf(bin, sizeof(bin), "np_%s_%s.bin", dn, sc->tag);
			for (int v = 1; v <= 3; v++) {
				snprintf(file, sizeof(file), "np%d_%s_%s.npy",
					 v, dn, sc->tag);
				check_numpy_file(file, bin, all_dtypes[d], sc);
			}
		}
}

static void expect_file_error(const char *file, int code, const char *a,
			      const char *b)
{
	struct gn_npy out;

	assert_int_equal(gn_npy_read(path_in_dir(file), &out), code);
	assert_null(out.data);
	expect_detail(file);
	expect_detail(a);
	if (b)
		expect_detail(b);
}

/* What numpy can write and Genie refuses; runs after the generator. */
static void test_numpy_files_refused(void **state)
{
	struct gn_npy a;

	(void)state;
	if (!g_have_numpy) {
		print_message("skipped: " PYTHON " with numpy not found\n");
		skip();
	}
	expect_file_error("np_fortran.npy", -EOPNOTSUPP, "Fortran", "[2,3]");
	expect_file_error("np_big.npy", -EOPNOTSUPP, "big-endian", "'>f4'");
	expect_file_error("np_f8.npy", -EOPNOTSUPP, "'<f8'", "float64");
	expect_file_error("np_u2.npy", -EOPNOTSUPP, "'<u2'", "'<f4'");
	expect_file_error("np_rec.npy", -EOPNOTSUPP, "structured", NULL);
	expect_file_error("np_9d.npy", -EOPNOTSUPP, "more than 8 dims", NULL);
	/* A Fortran-order [1,6] is laid out as C order: taken. */
	assert_int_equal(gn_npy_read(path_in_dir("np_fortran_1d.npy"), &a), 0);
	assert_int_equal(a.ndim, 2);
	assert_int_equal(((float *)a.data)[5], 5.0f);
	gn_npy_free(&a);
}

/* numpy.load reads back what gn_npy_write wrote, bytes and all. */
static const char check_script[] =
	"import sys, glob, os, numpy as np\n"
	"d = sys.argv[1]\n"
	"codes = {'f32': '<f4', 'f16': '<f2', 'i64': '<i8', 'i32': '<i4',\n"
	"         'i8': '|i1', 'u8': '|u1', 'bool': '|b1'}\n"
	"n = 0\n"
	"for p in sorted(glob.glob(d + '/ours_*.npy')):\n"
	"    _, name, tag = os.path.basename(p)[:-4].split('_')\n"
	"    shape = () if tag == 's' else tuple(int(x) for x in "
	"tag.split('x'))\n"
	"    a = np.load(p)\n"
	"    assert a.dtype == np.dtype(codes[name]), (p, a.dtype)\n"
	"    assert a.shape == shape, (p, a.shape)\n"
	"    assert a.tobytes() == open(p[:-4] + '.raw', 'rb').read(), p\n"
	"    n += 1\n"
	"assert n == 49, n\n";

static void test_numpy_reads_ours(void **state)
{
	(void)state;
	if (!g_have_numpy) {
		print_message("skipped: " PYTHON " with numpy not found\n");
		skip();
	}
	for (size_t d = 0; d < N_DTYPES; d++)
		for (size_t s = 0; s < N_SHAPES; s++) {
			enum gn_dtype dt = all_dtypes[d];
			const struct shape_case *sc = &shapes[s];
			size_t nb = nbytes_of(dt, sc->ndim, sc->shape);
			uint8_t *data = malloc(nb ? nb : 1);
			char name[64];

			assert_non_null(data);
			fill(data, nb, dt, (int)(d * 3 + s));
			/* f16 NaN payloads survive; keep f32 finite anyway. */
			snprintf(name, sizeof(name), "ours_%s_%s.npy",
				 gn_dtype_name(dt), sc->tag);
			assert_int_equal(gn_npy_write(path_in_dir(name), dt,
						      sc->ndim, sc->shape,
						      data),
					 0);
			snprintf(name, sizeof(name), "ours_%s_%s.raw",
				 gn_dtype_name(dt), sc->tag);
			write_file(path_in_dir(name), data, nb);
			free(data);
		}
	assert_int_equal(run_python(check_script, g_dir), 0);
}

/* A .npy image: preamble of version `major`, header text, `data` bytes. */
static uint8_t *make_npy(int major, const char *hdr, size_t data_len,
			 size_t *len)
{
	size_t pre = major == 1 ? 10 : 12, hl = strlen(hdr);
	uint8_t *b = calloc(1, pre + hl + data_len + 1);

	assert_non_null(b);
	memcpy(b, "\x93NUMPY", 6);
	b[6] = (uint8_t)major;
	b[7] = 0;
	b[8] = (uint8_t)hl;
	b[9] = (uint8_t)(hl >> 8);
	if (major != 1) {
		b[10] = (uint8_t)(hl >> 16);
		b[11] = (uint8_t)(hl >> 24);
	}
	memcpy(b + pre, hdr, hl);
	for (size_t i = 0; i < data_len; i++)
		b[pre + hl + i] = (uint8_t)i;
	*len = pre + hl + data_len;
	return b;
}

static void expect_ok(int major, const char *hdr, size_t data_len,
		      enum gn_dtype dt, int ndim, const int64_t *shape)
{
	struct gn_npy a;
	size_t len;
	uint8_t *b = make_npy(major, hdr, data_len, &len);

	if (gn_npy_read_buffer(b, len, "ok.npy", &a) != 0)
		fail_msg("header %s: %s", hdr, gn_last_error());
	assert_int_equal(a.dtype, dt);
	assert_int_equal(a.ndim, ndim);
	for (int i = 0; i < ndim; i++)
		assert_int_equal(a.shape[i], shape[i]);
	assert_int_equal(a.nbytes, data_len);
	gn_npy_free(&a);
	free(b);
}

/* Header spellings numpy (ast.literal_eval) accepts are taken. */
static void test_header_variations(void **state)
{
	static const int64_t s23[] = {2, 3}, s5[] = {5};

	(void)state;
	expect_ok(1,
		  "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), "
		  "}    \n",
		  24, GN_DTYPE_F32, 2, s23);
	expect_ok(1, "{'shape':(2,3),'fortran_order':False,'descr':'<f4'}", 24,
		  GN_DTYPE_F32, 2, s23);
	expect_ok(1,
		  "{ \"descr\" : \"<i4\" ,\t\"shape\" : ( 2 , 3 , ) , "
		  "\"fortran_order\" : False }\r\n",
		  24, GN_DTYPE_I32, 2, s23);
	expect_ok(2,
		  "{'descr': '|b1', 'fortran_order': False, "
		  "'shape': (5,), }\n",
		  5, GN_DTYPE_BOOL, 1, s5);
	expect_ok(3,
		  "{'descr': '<f2', 'fortran_order': False, "
		  "'shape': (5L,), }\n",
		  10, GN_DTYPE_F16, 1, s5);
	expect_ok(1, "{'descr': '<u1', 'fortran_order': False, 'shape': (), }",
		  1, GN_DTYPE_U8, 0, NULL);
	expect_ok(1, "{'descr': '|i1', 'fortran_order': True, 'shape': (5,)}",
		  5, GN_DTYPE_I8, 1, s5);
	expect_ok(1,
		  "{'descr': '<i8', 'fortran_order': False, 'shape': (0, "
		  "3)}",
		  0, GN_DTYPE_I64, 2, (const int64_t[]){0, 3});
}

struct bad_case {
	int major;
	const char *hdr;
	size_t data_len;
	int code;
	const char *needle1, *needle2;
};

static const struct bad_case bad_cases[] = {
	{1, "{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }", 8,
	 -EOPNOTSUPP, "big-endian", "'<f4'"},
	{1, "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }", 16,
	 -EOPNOTSUPP, "float64", "astype"},
	{1, "{'descr': '<c8', 'fortran_order': False, 'shape': (2,), }", 16,
	 -EOPNOTSUPP, "'<c8' is not supported", "'<f4'"},
	{1, "{'descr': 'f4', 'fortran_order': False, 'shape': (2,), }", 8,
	 -EOPNOTSUPP, "'f4'", "expected '<f4'"},
	{1,
	 "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': "
	 "(2,), }",
	 8, -EOPNOTSUPP, "structured", NULL},
	{1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }", 24,
	 -EOPNOTSUPP, "Fortran-order", "f32[2,3]"},
	{1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 20,
	 -EBADMSG, "truncated .npy data", "needs 24 bytes, the file has 20"},
	{1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 28,
	 -EBADMSG, "does not match its shape", "f32[2,3] is 24 bytes"},
	{1, "{'descr': '<f4', 'fortran_order': False, 'shape': (5), }", 20,
	 -EBADMSG, "not a tuple", "(5,)"},
	{1, "{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }", 0,
	 -EBADMSG, "non-negative integer", "\"-1,), }\""},
	{1, "{'descr': '<f4', 'fortran_order': False, 'shape': [2], }", 8,
	 -EBADMSG, "a tuple", "\"[2], }\""},
	{1, "{'descr': '<f4', 'fortran_order': 0, 'shape': (2,), }", 8,
	 -EBADMSG, "True or False", NULL},
	{1, "{'descr': '<f4', 'shape': (2,), }", 8, -EBADMSG,
	 "no 'fortran_order' key", NULL},
	{1,
	 "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), "
	 "'shape': (2,)}",
	 8, -EBADMSG, "'shape' appears twice", NULL},
	{1,
	 "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), "
	 "'extra': 1}",
	 8, -EBADMSG, "unexpected key 'extra'", NULL},
	{1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,) } x", 8,
	 -EBADMSG, "only padding after the header dict", "\"x\""},
	{1, "{'descr': '<f4' 'fortran_order': False, 'shape': (2,) }", 8,
	 -EBADMSG, "',' or '}' after a value", NULL},
	{1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,)", 8,
	 -EBADMSG, "the end of the header", NULL},
	{1, "", 0, -EBADMSG, "'{' opening the header dict", NULL},
	{1, "[1, 2]", 0, -EBADMSG, "'{'", "\"[1, 2]\""},
	{1,
	 "{'descr': '<f4', 'fortran_order': False, 'shape': "
	 "(1,1,1,1,1,1,1,1,1), }",
	 4, -EOPNOTSUPP, "more than 8 dims", NULL},
	{1,
	 "{'descr': '<f4', 'fortran_order': False, 'shape': "
	 "(99999999999999999999,), }",
	 0, -EBADMSG, "exceeds 2^63-1", NULL},
	{1,
	 "{'descr': '<f4', 'fortran_order': False, 'shape': "
	 "(4294967296, 4294967296, 4294967296), }",
	 0, -EBADMSG, "more elements than memory can hold", NULL},
	{1,
	 "{'descr': '<f4', 'fortran_order': False, 'shape': "
	 "(4611686018427387904,), }",
	 0, -EBADMSG, "more bytes than memory can hold", NULL},
	{1, "{'descr': '<f4\\x00', 'fortran_order': False, 'shape': (), }", 4,
	 -EBADMSG, "a dtype string", NULL},
};

static void test_malformed_headers(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		const struct bad_case *c = &bad_cases[i];
		struct gn_npy a;
		size_t len;
		uint8_t *b = make_npy(c->major, c->hdr, c->data_len, &len);
		int rc = gn_npy_read_buffer(b, len, "bad.npy", &a);

		if (rc != c->code)
			fail_msg("case %zu (%s): rc %d, expected %d: %s", i,
				 c->hdr, rc, c->code, gn_last_error());
		assert_null(a.data);
		assert_int_equal(a.ndim, 0);
		assert_int_equal(gn_last_error_code(), c->code);
		expect_detail("bad.npy: ");
		expect_detail(c->needle1);
		if (c->needle2)
			expect_detail(c->needle2);
		free(b);
	}
}

/* Damage to the preamble, and reading files that are not there. */
static void test_malformed_preamble(void **state)
{
	const char *h = "{'descr': '<f4', 'fortran_order': False, "
			"'shape': (1,), }\n";
	struct gn_npy a;
	size_t len;
	uint8_t *b;

	(void)state;
	b = make_npy(1, h, 4, &len);

	assert_int_equal(gn_npy_read_buffer(b, 0, "e.npy", &a), -EBADMSG);
	expect_detail("e.npy: not a .npy file");
	expect_detail("an empty file");

	b[1] = 'X';
	assert_int_equal(gn_npy_read_buffer(b, len, "m.npy", &a), -EBADMSG);
	expect_detail("m.npy: not a .npy file: expected magic");
	expect_detail("\"\\x93XUMPY\\x01\\x00\"");
	b[1] = 'N';

	assert_int_equal(gn_npy_read_buffer(b, 7, "p.npy", &a), -EBADMSG);
	expect_detail("p.npy: truncated .npy preamble: 7 bytes");
	assert_int_equal(gn_npy_read_buffer(b, 9, "p.npy", &a), -EBADMSG);
	expect_detail("version 1.0 needs 10");

	b[6] = 4;
	assert_int_equal(gn_npy_read_buffer(b, len, "v.npy", &a), -EOPNOTSUPP);
	expect_detail("v.npy: .npy format version 4.0 is not supported");
	expect_detail("expected 1.0, 2.0 or 3.0");
	b[6] = 1;
	b[7] = 1;
	assert_int_equal(gn_npy_read_buffer(b, len, "v.npy", &a), -EOPNOTSUPP);
	expect_detail("version 1.1");
	b[7] = 0;

	/* The header runs past the end of the file. */
	assert_int_equal(gn_npy_read_buffer(b, 30, "t.npy", &a), -EBADMSG);
	expect_detail("t.npy: truncated .npy header");
	expect_detail("says 58 bytes, the file has 20");
	free(b);

	/* A 2.0 header length of 2 GiB is refused before anything is read. */
	b = make_npy(2, h, 4, &len);
	b[11] = 0x7f;
	assert_int_equal(gn_npy_read_buffer(b, len, "big.npy", &a), -EBADMSG);
	expect_detail("big.npy: .npy header length");
	expect_detail("is absurd");
	free(b);

	/* A NUL inside the header. */
	b = make_npy(1, h, 4, &len);
	b[20] = '\0';
	assert_int_equal(gn_npy_read_buffer(b, len, "z.npy", &a), -EBADMSG);
	expect_detail("NUL");
	free(b);

	assert_int_equal(gn_npy_read(path_in_dir("missing.npy"), &a), -ENOENT);
	expect_detail("missing.npy: cannot open");
	assert_int_equal(gn_npy_read(g_dir, &a), -EISDIR);
	expect_detail("is a directory");
	write_file(path_in_dir("empty.npy"), "", 0);
	assert_int_equal(gn_npy_read(path_in_dir("empty.npy"), &a), -EBADMSG);
	expect_detail("empty.npy: not a .npy file");
	assert_int_equal(gn_npy_read(NULL, &a), -EINVAL);
	assert_int_equal(gn_npy_read_buffer(NULL, 3, "n", &a), -EINVAL);
}

static void test_write_errors(void **state)
{
	const int64_t s2[] = {2}, neg[] = {-1};
	const float d[2] = {1, 2};

	(void)state;
	assert_int_equal(
		gn_npy_write(path_in_dir("w.npy"), GN_DTYPE_BF16, 1, s2, d),
		-EOPNOTSUPP);
	expect_detail("bf16");
	assert_int_equal(
		gn_npy_write(path_in_dir("w.npy"), GN_DTYPE_INVALID, 1, s2, d),
		-EINVAL);
	expect_detail("unknown dtype");
	assert_int_equal(
		gn_npy_write(path_in_dir("w.npy"), GN_DTYPE_F32, 1, neg, d),
		-EINVAL);
	expect_detail("dim 0 is -1");
	assert_int_equal(
		gn_npy_write(path_in_dir("w.npy"), GN_DTYPE_F32, 9, s2, d),
		-EINVAL);
	assert_int_equal(
		gn_npy_write(path_in_dir("w.npy"), GN_DTYPE_F32, 1, s2, NULL),
		-EINVAL);
	assert_int_equal(gn_npy_write(path_in_dir("no/such/dir/w.npy"),
				      GN_DTYPE_F32, 1, s2, d),
			 -ENOENT);
	expect_detail("no/such/dir/w.npy");
	/* Nothing was left behind by the failures. */
	assert_int_equal(access(path_in_dir("w.npy"), F_OK), -1);
	/* Zero-size with NULL data is fine. */
	assert_int_equal(gn_npy_write(path_in_dir("w.npy"), GN_DTYPE_F32, 1,
				      (const int64_t[]){0}, NULL),
			 0);
}

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ull;
}

/*
 * 20,000 damaged buffers: byte flips, dictionary-ish substitutions,
 * truncations and random header lengths over valid files of several
 * shapes and versions. Every result is either a clean refusal or an array
 * whose byte count matches its shape and the buffer.
 */
static void test_fuzz_mutations(void **state)
{
	static const char *const seeds[] = {
		"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }",
		"{'descr': '|b1', 'fortran_order': False, 'shape': (), }",
		"{'shape': (0, 4,), 'descr': '<i8', 'fortran_order': True}",
		"{\"descr\": \"<f2\", \"fortran_order\": False, \"shape\": "
		"(1,1,1,1,1,1,1,3)}",
	};
	static const size_t seed_data[] = {24, 1, 0, 6};
	static const char interesting[] = "{}()[],:'\" \n0123456789TrueFalse"
					  "<>|=fiub48L\\";
	uint64_t s = 0x5eed1234abcdull;
	int ok = 0;

	(void)state;
	for (int it = 0; it < 20000; it++) {
		int k = (int)(rnd(&s) % 4), major = 1 + (int)(rnd(&s) % 3);
		size_t len, n;
		uint8_t *b = make_npy(major, seeds[k], seed_data[k], &len);
		struct gn_npy a;
		int rc;

		n = 1 + rnd(&s) % 6;
		for (size_t m = 0; m < n; m++) {
			size_t at = (size_t)(rnd(&s) % len);

			switch (rnd(&s) % 5) {
			case 0: b[at] ^= (uint8_t)(1u << (rnd(&s) % 8)); break;
			case 1: b[at] = (uint8_t)rnd(&s); break;
			case 2:
				b[at] = (uint8_t)
					interesting[rnd(&s) %
						    (sizeof(interesting) - 1)];
				break;
			case 3: len = at; break;
			default:
				/* A header length that lies. */
				if (len > 9)
					b[8 + rnd(&s) % 2] = (uint8_t)rnd(&s);
				break;
			}
			if (len == 0)
				break;
		}
		rc = gn_npy_read_buffer(b, len, "fuzz", &a);
		if (rc == 0) {
			size_t want = gn_dtype_size(a.dtype);

			assert_non_null(a.data);
			assert_in_range(a.ndim, 0, GN_MAX_DIMS);
			for (int i = 0; i < a.ndim; i++)
				want *= (size_t)a.shape[i];
			assert_int_equal(a.nbytes, want);
			assert_true(a.nbytes < len);
			ok++;
		} else {
			assert_true(rc < 0);
			assert_null(a.data);
			assert_true(strncmp(gn_last_error(), "fuzz: ", 6) == 0);
		}
		gn_npy_free(&a);
		free(b);
	}
	print_message("fuzz: 20000 buffers, %d read as arrays\n", ok);
	/* Some mutations (padding, digits) keep a file valid. */
	assert_true(ok > 0);
}

static int setup(void **state)
{
	(void)state;
	snprintf(g_dir, sizeof(g_dir), "/tmp/npy_test.XXXXXX");
	if (mkdtemp(g_dir) == NULL)
		return -1;
	g_have_numpy = access(PYTHON, X_OK) == 0 &&
		       system(PYTHON " -c 'import numpy' 2>/dev/null") == 0;
	if (!g_have_numpy)
		print_message("numpy cases skip: " PYTHON " with numpy not "
			      "found\n");
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	if (g_dir[0] != '\0' && strncmp(g_dir, "/tmp/npy_test.", 14) == 0) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_dir);
		if (system(cmd) != 0)
			return -1;
	}
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip_every_dtype),
		cmocka_unit_test(test_read_numpy_files),
		cmocka_unit_test(test_numpy_files_refused),
		cmocka_unit_test(test_numpy_reads_ours),
		cmocka_unit_test(test_header_variations),
		cmocka_unit_test(test_malformed_headers),
		cmocka_unit_test(test_malformed_preamble),
		cmocka_unit_test(test_write_errors),
		cmocka_unit_test(test_fuzz_mutations),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
