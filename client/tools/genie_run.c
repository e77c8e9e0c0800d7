/*
 * genie-run: run an ONNX model on .npy inputs and write its outputs.
 *
 * Loads MODEL.onnx into a session on the chosen target, feeds each graph
 * input from a .npy file, runs the forward pass --warmup + --repeat times
 * (each run records the graph, materializes every output and is timed end
 * to end), prints latency percentiles over the timed runs and the bytes
 * the session moved, and writes each output of the last run to
 * DIR/<output name>.npy.
 *
 * Exit status: 0 when everything ran; 2 when the command line is wrong
 * (bad option, input names that do not match the model's inputs); 1 when
 * something failed at run time (a file, the model, the target).
 *
 * Linked against the static libgenie: the .npy reader reports its errors
 * through Genie's per-thread error slot, which must be the same one
 * gn_last_error() reads, and --log sets the library's own log levels.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <genie/genie.h>
#include <genie/onnx.h>

#include "clock.h"
#include "gn_error.h"
#include "log.h"
#include "npy.h"

enum { EXIT_RUNTIME = 1, EXIT_USAGE = 2 };

/*
 * A session frees tensors only when it ends, so every run keeps its
 * outputs and graph nodes until then (about 27 KiB a run for the zoo's
 * gpt2_decoder): cap the runs well below what would exhaust memory.
 */
#define MAX_REPEAT 100000

struct input_arg {
	const char *name; /* NULL: "--input FILE" for a one-input model */
	const char *path;
};

struct run_opts {
	const char *model;
	const char *out_dir;
	const char *target;
	const char *log;
	const char *secret;
	const char *tls_ca, *tls_cert, *tls_key;
	const char *transport;
	long repeat;
	long warmup;
	bool resident;
	int n_inputs;
	struct input_arg *inputs;
};

static const char usage_line[] =
	"usage: genie-run MODEL.onnx --input NAME=FILE.npy [--input ...] "
	"--output-dir DIR\n"
	"                 [--target "
	"local|tcp://HOST:PORT|coordinator://HOST:PORT]\n"
	"                 [--secret FILE] [--repeat N] [--warmup K]\n"
	"                 [--no-resident] [--log SPEC] [-h]\n";

static void print_help(FILE *f)
{
	fputs(usage_line, f);
	fputs("\n"
	      "Run an ONNX model with Genie on inputs from .npy files and "
	      "write its\noutputs as .npy files.\n"
	      "\n"
	      "  -i, --input NAME=FILE.npy  feed graph input NAME from "
	      "FILE.npy; give every\n"
	      "                             input once (a one-input model "
	      "also takes FILE.npy)\n"
	      "  -o, --output-dir DIR       write each output to "
	      "DIR/<name>.npy ('/' in a\n"
	      "                             name becomes '_'); DIR is "
	      "created if missing\n"
	      "  -t, --target TARGET        'local' (in-process CPU backend, "
	      "the default),\n"
	      "                             tcp://HOST:PORT of a "
	      "genie-runtime, or\n"
	      "                             coordinator://HOST:PORT: the "
	      "runtime a\n"
	      "                             genie-coordinator places the "
	      "session on\n"
	      "      --secret FILE          shared secret for a coordinator:// "
	      "target\n"
	      "                             (default: $GENIE_SECRET_FILE)\n"
	      "      --tls-ca FILE          coordinator:// over TLS: the CA "
	      "that signed the\n"
	      "                             coordinator's certificate "
	      "(default: $GENIE_TLS_CA)\n"
	      "      --tls-cert FILE        our client certificate "
	      "(default: $GENIE_TLS_CERT)\n"
	      "      --tls-key FILE         its key (default: "
	      "$GENIE_TLS_KEY)\n"
	      "      --transport NAME       coordinator:// only: the data "
	      "plane, tcp or\n"
	      "                             dpdk (default: the runtime's "
	      "first)\n"
	      "  -n, --repeat N             timed runs (default 1)\n"
	      "  -w, --warmup K             untimed runs before them "
	      "(default 0)\n"
	      "      --no-resident          send the weights with every "
	      "plan instead of making\n"
	      "                             them resident on the target "
	      "once\n"
	      "      --log SPEC             log levels: 'debug', or "
	      "'transport=debug,*=warning'\n"
	      "                             (default: $GENIE_LOG, else "
	      "'warning')\n"
	      "  -h, --help                 show this help\n"
	      "\n"
	      "Each run records the forward pass, materializes every output "
	      "and is timed end\nto end; latency p50/p99/min/max are "
	      "nearest-rank over the timed runs. Outputs\nof the last run "
	      "are written; bf16 outputs are written as float32.\n"
	      "\n"
	      ".npy files: versions 1.0-3.0, C order, little-endian f4 f2 "
	      "i8 i4 i1 u1 b1.\n"
	      "\n"
	      "Exit status: 0 ok, 1 runtime error, 2 usage error.\n",
	      f);
}

static int usage_error(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("genie-run: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\n", stderr);
	fputs(usage_line, stderr);
	fputs("Try 'genie-run --help' for more.\n", stderr);
	return EXIT_USAGE;
}

static int runtime_error(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));

/*
 * A runtime failure: what failed, then Genie's detail, which names the
 * object and what was expected and seen (gn_strerror's words only when
 * there is no detail: they speak of frames and handles, not files).
 */
static int runtime_error(const char *fmt, ...)
{
	const char *detail = gn_last_error();
	va_list ap;

	fputs("genie-run: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	if (detail[0] != '\0')
		fprintf(stderr, ": %s", detail);
	else if (gn_last_error_code() != 0)
		fprintf(stderr, ": %s", gn_strerror(gn_last_error_code()));
	fputs("\n", stderr);
	return EXIT_RUNTIME;
}

static int parse_count(const char *opt, const char *s, long min, long max,
		       long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end != '\0' || v < min || v > max)
		return usage_error("%s: expected an integer from %ld to %ld, "
				   "saw '%s'",
				   opt, min, max, s);
	*out = v;
	return 0;
}

enum {
	OPT_NO_RESIDENT = 256,
	OPT_LOG,
	OPT_SECRET,
	OPT_TLS_CA,
	OPT_TLS_CERT,
	OPT_TLS_KEY,
	OPT_TRANSPORT,
};

static int parse_args(int argc, char **argv, struct run_opts *o)
{
	static const struct option lo[] = {
		{"input", required_argument, NULL, 'i'},
		{"output-dir", required_argument, NULL, 'o'},
		{"target", required_argument, NULL, 't'},
		{"repeat", required_argument, NULL, 'n'},
		{"warmup", required_argument, NULL, 'w'},
		{"no-resident", no_argument, NULL, OPT_NO_RESIDENT},
		{"log", required_argument, NULL, OPT_LOG},
		{"secret", required_argument, NULL, OPT_SECRET},
		{"tls-ca", required_argument, NULL, OPT_TLS_CA},
		{"tls-cert", required_argument, NULL, OPT_TLS_CERT},
		{"tls-key", required_argument, NULL, OPT_TLS_KEY},
		{"transport", required_argument, NULL, OPT_TRANSPORT},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	int c, rc;

	o->target = "local";
	o->repeat = 1;
	o->warmup = 0;
	o->resident = true;
	o->inputs = calloc((size_t)argc, sizeof(*o->inputs));
	if (o->inputs == NULL)
		return usage_error("out of memory");
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":i:o:t:n:w:h", lo, NULL)) != -1) {
		switch (c) {
		case 'i': {
			struct input_arg *in = &o->inputs[o->n_inputs];
			char *eq = strchr(optarg, '=');

			if (eq != NULL) {
				*eq = '\0';
				in->name = optarg;
				in->path = eq + 1;
				if (in->name[0] == '\0' || in->path[0] == '\0')
					return usage_error(
						"--input: expected NAME=FILE."
						"npy, saw '%s=%s'",
						in->name, in->path);
			} else {
				in->path = optarg;
			}
			for (int i = 0; i < o->n_inputs; i++)
				if (o->inputs[i].name && in->name &&
				    strcmp(o->inputs[i].name, in->name) == 0)
					return usage_error("--input %s is "
							   "given twice",
							   in->name);
			o->n_inputs++;
			break;
		}
		case 'o': o->out_dir = optarg; break;
		case 't': o->target = optarg; break;
		case 'n':
			rc = parse_count("--repeat", optarg, 1, MAX_REPEAT,
					 &o->repeat);
			if (rc)
				return rc;
			break;
		case 'w':
			rc = parse_count("--warmup", optarg, 0, MAX_REPEAT,
					 &o->warmup);
			if (rc)
				return rc;
			break;
		case OPT_NO_RESIDENT: o->resident = false; break;
		case OPT_LOG: o->log = optarg; break;
		case OPT_SECRET: o->secret = optarg; break;
		case OPT_TLS_CA: o->tls_ca = optarg; break;
		case OPT_TLS_CERT: o->tls_cert = optarg; break;
		case OPT_TLS_KEY: o->tls_key = optarg; break;
		case OPT_TRANSPORT: o->transport = optarg; break;
		case 'h': print_help(stdout); exit(0);
		case ':':
			return usage_error("option '%s' needs an argument",
					   argv[optind - 1]);
		default:
			return usage_error("unknown option '%s'",
					   argv[optind - 1]);
		}
	}
	if (optind == argc)
		return usage_error("no model given");
	if (argc - optind > 1)
		return usage_error("one model expected, saw '%s' and '%s'",
				   argv[optind], argv[optind + 1]);
	o->model = argv[optind];
	if (o->out_dir == NULL)
		return usage_error("no --output-dir given");
	if (o->n_inputs > 1)
		for (int i = 0; i < o->n_inputs; i++)
			if (o->inputs[i].name == NULL)
				return usage_error(
					"--input %s: with several inputs each "
					"needs a name, as NAME=FILE.npy",
					o->inputs[i].path);
	return 0;
}

/* "f32[1,3,?,?]" for a model input or output. */
static const char *fmt_io(char *buf, size_t len, enum gn_dtype dtype, int ndim,
			  const int64_t *shape)
{
	size_t off = (size_t)snprintf(buf, len, "%s[", gn_dtype_name(dtype));

	for (int i = 0; i < ndim && off < len; i++) {
		if (shape[i] < 0)
			off += (size_t)snprintf(buf + off, len - off, "%s?",
						i ? "," : "");
		else
			off += (size_t)snprintf(buf + off, len - off, "%s%lld",
						i ? "," : "",
						(long long)shape[i]);
	}
	if (off < len)
		snprintf(buf + off, len - off, "]");
	return buf;
}

static const char *fmt_bytes(char *buf, size_t len, double b)
{
	static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	int u = 0;

	while (b >= 1024 && u < 4) {
		b /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%.0f B", b);
	else
		snprintf(buf, len, "%.2f %s", b, units[u]);
	return buf;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/*
 * Nearest-rank percentile of `n` sorted samples: the ceil(pct/100*n)-th,
 * in integers so that 99% of 300 runs is the 297th, not the 298th.
 */
static uint64_t percentile(const uint64_t *sorted, size_t n, unsigned pct)
{
	size_t rank = (pct * n + 99) / 100;

	if (rank < 1)
		rank = 1;
	if (rank > n)
		rank = n;
	return sorted[rank - 1];
}

/* mkdir -p: every missing component of `dir`, then check it is one. */
static int make_dirs(const char *dir)
{
	char *p, *buf = strdup(dir);
	struct stat st;

	if (buf == NULL)
		return gn_error_set(-ENOMEM, "out of memory");
	for (p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0755) != 0 && errno != EEXIST) {
			int err = errno;

			gn_error_set(-err, "%s: cannot create directory: %s",
				     buf, strerror(err));
			free(buf);
			return -err;
		}
		*p = '/';
	}
	free(buf);
	if (mkdir(dir, 0755) != 0 && errno != EEXIST)
		return gn_error_set(-errno, "%s: cannot create directory: %s",
				    dir, strerror(errno));
	if (stat(dir, &st) != 0)
		return gn_error_set(-errno, "%s: %s", dir, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return gn_error_set(-ENOTDIR,
				    "%s: exists and is not a "
				    "directory",
				    dir);
	return 0;
}

/*
 * The file name for output `i` called `name`: '/' becomes '_' so a name
 * cannot leave DIR, names that are empty or all dots get a made-up one,
 * and a name that collides with an earlier output's gets "_<i>" added.
 */
static char *output_file_name(const char *name, int i, char **earlier)
{
	size_t n = strlen(name);
	bool dots = strspn(name, ".") == n;
	char *f = malloc(n + 32);

	if (f == NULL)
		return NULL;
	if (n == 0 || dots) {
		sprintf(f, "output%d", i);
	} else {
		for (size_t k = 0; k <= n; k++)
			f[k] = name[k] == '/' ? '_' : name[k];
	}
	for (int k = 0; k < i; k++)
		if (earlier[k] && strcmp(earlier[k], f) == 0) {
			sprintf(f + strlen(f), "_%d", i);
			break;
		}
	return f;
}

/* Match the --input arguments to the model's inputs; 0 or EXIT_USAGE. */
static int map_inputs(const struct run_opts *o, const struct gn_model *m,
		      int *arg_of_input)
{
	int n = gn_model_num_inputs(m);
	char list[2048], sh[160];
	size_t off = 0;
	bool missing = false;

	list[0] = '\0';
	for (int i = 0; i < n && off < sizeof(list); i++) {
		const struct gn_model_io *io = gn_model_input(m, i);

		off += (size_t)snprintf(
			list + off, sizeof(list) - off, "%s%s %s",
			i ? ", " : "", io->name,
			fmt_io(sh, sizeof(sh), io->dtype, io->ndim, io->shape));
	}
	for (int i = 0; i < n; i++)
		arg_of_input[i] = -1;
	if (n == 1 && o->n_inputs == 1 && o->inputs[0].name == NULL) {
		arg_of_input[0] = 0;
		return 0;
	}
	for (int a = 0; a < o->n_inputs; a++) {
		int idx;

		if (o->inputs[a].name == NULL)
			return usage_error("--input %s: the model has %d "
					   "inputs (%s); name it as "
					   "NAME=FILE.npy",
					   o->inputs[a].path, n, list);
		idx = gn_model_input_index(m, o->inputs[a].name);
		if (idx < 0)
			return usage_error("--input %s: the model has no input "
					   "called '%s'; its inputs are: %s",
					   o->inputs[a].name, o->inputs[a].name,
					   n ? list : "(none)");
		arg_of_input[idx] = a;
	}
	for (int i = 0; i < n; i++)
		if (arg_of_input[i] < 0) {
			fprintf(stderr,
				"genie-run: model input '%s' is not given; "
				"add --input %s=FILE.npy\n",
				gn_model_input(m, i)->name,
				gn_model_input(m, i)->name);
			missing = true;
		}
	if (missing)
		return usage_error("every model input needs an --input; the "
				   "model's inputs are: %s",
				   list);
	return 0;
}

/* Check that the array read for `io` has its dtype and fits its shape. */
static int check_input(const struct gn_model_io *io, const char *path,
		       const struct gn_npy *a)
{
	char want[160], seen[160];
	bool fits = a->dtype == io->dtype && a->ndim == io->ndim;

	for (int d = 0; fits && d < io->ndim; d++)
		if (io->shape[d] >= 0 && io->shape[d] != a->shape[d])
			fits = false;
	if (fits)
		return 0;
	return gn_error_set(
		-EINVAL, "the model wants %s, %s holds %s%s",
		fmt_io(want, sizeof(want), io->dtype, io->ndim, io->shape),
		path, fmt_io(seen, sizeof(seen), a->dtype, a->ndim, a->shape),
		a->dtype != io->dtype ? " (dtypes differ)"
		: a->ndim != io->ndim ? " (ranks differ)"
				      : " (dims differ)");
}

/* Copy output `t` to host and write it; bf16 becomes f32 for numpy. */
static int write_output(struct gn_tensor *t, const char *path)
{
	int64_t shape[GN_MAX_DIMS];
	int ndim = gn_tensor_shape(t, shape);
	enum gn_dtype dtype = gn_tensor_dtype(t);
	size_t nbytes = gn_tensor_nbytes(t);
	void *buf = malloc(nbytes ? nbytes : 1);
	int rc;

	if (buf == NULL)
		return gn_error_set(-ENOMEM, "%s: cannot allocate %zu bytes",
				    path, nbytes);
	rc = gn_tensor_to_host(t, buf, nbytes);
	if (rc == 0 && dtype == GN_DTYPE_BF16) {
		size_t n = nbytes / 2;
		uint32_t *f = malloc(n ? n * 4 : 1);

		if (f == NULL) {
			free(buf);
			return gn_error_set(-ENOMEM, "%s: out of memory", path);
		}
		for (size_t k = 0; k < n; k++)
			f[k] = (uint32_t)((const uint16_t *)buf)[k] << 16;
		free(buf);
		buf = f;
		dtype = GN_DTYPE_F32;
	}
	if (rc == 0)
		rc = gn_npy_write(path, dtype, ndim, shape, buf);
	free(buf);
	return rc;
}

/* "sent 1.2 MiB, received 4 KiB" between two snapshots, over `runs`. */
static const char *fmt_moved(char *buf, size_t len,
			     const struct gn_session_stats *a,
			     const struct gn_session_stats *b, long runs)
{
	char s[32], r[32];

	snprintf(buf, len, "sent %s, received %s",
		 fmt_bytes(s, sizeof(s),
			   (double)(b->bytes_sent - a->bytes_sent) /
				   (double)runs),
		 fmt_bytes(r, sizeof(r),
			   (double)(b->bytes_received - a->bytes_received) /
				   (double)runs));
	return buf;
}

static void print_model(const struct run_opts *o, const struct gn_model *m,
			const int *arg_of_input)
{
	int n_in = gn_model_num_inputs(m), n_out = gn_model_num_outputs(m);
	char sh[160];

	printf("model: %s (%d input%s, %d output%s)\n", o->model, n_in,
	       n_in == 1 ? "" : "s", n_out, n_out == 1 ? "" : "s");
	for (int i = 0; i < n_in; i++) {
		const struct gn_model_io *io = gn_model_input(m, i);

		printf("  input  %-24s %-20s <- %s\n", io->name,
		       fmt_io(sh, sizeof(sh), io->dtype, io->ndim, io->shape),
		       o->inputs[arg_of_input[i]].path);
	}
	for (int i = 0; i < n_out; i++) {
		const struct gn_model_io *io = gn_model_output(m, i);

		printf("  output %-24s %s\n", io->name,
		       fmt_io(sh, sizeof(sh), io->dtype, io->ndim, io->shape));
	}
}

/* Latency, bytes per phase and residency, once the runs are done. */
static void print_runs(const struct run_opts *o, uint64_t *lat,
		       uint64_t warm_ns, const struct gn_session_stats *st_load,
		       const struct gn_session_stats *st_warm,
		       const struct gn_session_stats *st_runs)
{
	size_t n = (size_t)o->repeat;
	char buf[96], b1[32], b2[32];
	uint64_t res_in_runs = st_runs->resident_bytes_uploaded -
			       st_warm->resident_bytes_uploaded;

	if (o->warmup)
		printf("warmup: %ld run%s, %.3f ms, %s\n", o->warmup,
		       o->warmup == 1 ? "" : "s", (double)warm_ns / 1e6,
		       fmt_moved(buf, sizeof(buf), st_load, st_warm, 1));
	qsort(lat, n, sizeof(*lat), cmp_u64);
	printf("runs: %ld timed, latency p50 %.3f ms  p99 %.3f ms  "
	       "min %.3f ms  max %.3f ms\n",
	       o->repeat, (double)percentile(lat, n, 50) / 1e6,
	       (double)percentile(lat, n, 99) / 1e6, (double)lat[0] / 1e6,
	       (double)lat[n - 1] / 1e6);
	printf("bytes: %s in all timed runs; ",
	       fmt_moved(buf, sizeof(buf), st_warm, st_runs, 1));
	printf("%s per run, %.1f requests per run\n",
	       fmt_moved(buf, sizeof(buf), st_warm, st_runs, o->repeat),
	       (double)(st_runs->requests - st_warm->requests) /
		       (double)o->repeat);
	if (st_runs->resident_tensors)
		printf("resident: %llu tensors, %s on the target (%s "
		       "uploaded, %llu re-uploads)\n",
		       (unsigned long long)st_runs->resident_tensors,
		       fmt_bytes(b1, sizeof(b1),
				 (double)st_runs->resident_bytes),
		       fmt_bytes(b2, sizeof(b2),
				 (double)st_runs->resident_bytes_uploaded),
		       (unsigned long long)st_runs->resident_reuploads);
	if (res_in_runs)
		printf("note: the timed runs include %s of weights made "
		       "resident on first use; --warmup 1 leaves that "
		       "out\n",
		       fmt_bytes(b1, sizeof(b1), (double)res_in_runs));
}

/* Content keys a coordinator:// session is placed by (model affinity). */
#define MAX_MODEL_KEYS 64

/*
 * The content keys of the model's weights, the last `max` that
 * gn_model_load() makes shared resident, learnt by loading the model into
 * an in-process session (it hashes the weights and sends nothing). Returns how
 * many; 0 when that fails (placement then goes without affinity, and the real
 * load reports the problem).
 */
static int model_keys(const char *path, char (*keys)[65], int max)
{
	struct gn_session_opts so;
	struct gn_model_opts mo;
	struct gn_session *s;
	struct gn_model *m;
	int n = 0;

	gn_session_opts_init(&so, sizeof(so));
	so.target = "local";
	s = gn_session_create(&so);
	if (s == NULL)
		return 0;
	gn_model_opts_init(&mo, sizeof(mo));
	mo.resident_weights = 1;
	m = gn_model_load(s, path, &mo);
	if (m != NULL)
		n = gn_session_shared_keys(s, keys, max);
	gn_model_free(&m);
	gn_session_destroy(&s);
	return n < 0 ? 0 : n;
}

static int run(const struct run_opts *o)
{
	struct gn_session_stats st0, st_load, st_warm, st_runs, st_end;
	struct gn_session_opts so;
	struct gn_model_opts mo;
	struct gn_session *s = NULL;
	struct gn_model *m = NULL;
	struct gn_npy *arrays = NULL;
	struct gn_tensor **in_t = NULL, **out_t = NULL;
	uint64_t *lat = NULL, t0, load_ns, warm_ns = 0;
	char **files = NULL, sh[160], buf[96], b1[32], b2[32];
	int *arg_of_input = NULL;
	int n_in = 0, n_out = 0, rc = EXIT_RUNTIME, n_keys = 0;
	static char keys[MAX_MODEL_KEYS][65];
	const char *key_ptrs[MAX_MODEL_KEYS];
	long total;

	gn_session_opts_init(&so, sizeof(so));
	so.target = o->target;
	so.name = "genie-run";
	so.secret_file = o->secret;
	so.tls_ca = o->tls_ca;
	so.tls_cert = o->tls_cert;
	so.tls_key = o->tls_key;
	so.transport = o->transport;
	if (o->resident && strncmp(o->target, "coordinator://",
				   strlen("coordinator://")) == 0) {
		n_keys = model_keys(o->model, keys, MAX_MODEL_KEYS);
		for (int i = 0; i < n_keys; i++)
			key_ptrs[i] = keys[i];
		so.model_keys = key_ptrs;
		so.n_model_keys = n_keys;
	}
	s = gn_session_create(&so);
	if (s == NULL)
		return runtime_error("cannot open a session on '%s'",
				     o->target);
	gn_session_get_stats(s, &st0);

	gn_model_opts_init(&mo, sizeof(mo));
	mo.resident_weights = o->resident;
	t0 = gn_clock_ns();
	m = gn_model_load(s, o->model, &mo);
	load_ns = gn_clock_ns() - t0;
	if (m == NULL) {
		runtime_error("cannot load the model");
		goto out;
	}
	n_in = gn_model_num_inputs(m);
	n_out = gn_model_num_outputs(m);
	arg_of_input = calloc((size_t)n_in + 1, sizeof(*arg_of_input));
	arrays = calloc((size_t)n_in + 1, sizeof(*arrays));
	in_t = calloc((size_t)n_in + 1, sizeof(*in_t));
	out_t = calloc((size_t)n_out + 1, sizeof(*out_t));
	files = calloc((size_t)n_out + 1, sizeof(*files));
	lat = calloc((size_t)o->repeat, sizeof(*lat));
	if (!arg_of_input || !arrays || !in_t || !out_t || !files || !lat) {
		fprintf(stderr, "genie-run: out of memory\n");
		goto out;
	}
	if (map_inputs(o, m, arg_of_input) != 0) {
		rc = EXIT_USAGE;
		goto out;
	}
	/* Before the runs, so a bad DIR does not wait for them. */
	if (make_dirs(o->out_dir) != 0) {
		runtime_error("--output-dir");
		goto out;
	}

	for (int i = 0; i < n_in; i++) {
		const struct gn_model_io *io = gn_model_input(m, i);
		const char *path = o->inputs[arg_of_input[i]].path;

		if (gn_npy_read(path, &arrays[i]) != 0 ||
		    check_input(io, path, &arrays[i]) != 0) {
			runtime_error("input '%s'", io->name);
			goto out;
		}
		/* Borrowed: the arrays outlive the session (freed after). */
		in_t[i] = gn_tensor_from_host(s, arrays[i].dtype,
					      arrays[i].ndim, arrays[i].shape,
					      arrays[i].data, GN_TENSOR_BORROW);
		if (in_t[i] == NULL) {
			runtime_error("input '%s'", io->name);
			goto out;
		}
	}
	gn_session_get_stats(s, &st_load);

	print_model(o, m, arg_of_input);
	printf("target: %s%s%s (backend %s), weights %s\n", o->target,
	       gn_session_node(s)[0] ? ", node " : "", gn_session_node(s),
	       gn_session_backend(s),
	       o->resident ? "resident" : "sent with each plan");
	printf("load: %.3f ms, %s\n", (double)load_ns / 1e6,
	       fmt_moved(buf, sizeof(buf), &st0, &st_load, 1));
	fflush(stdout);

	total = o->warmup + o->repeat;
	st_warm = st_load;
	t0 = gn_clock_ns();
	for (long r = 0; r < total; r++) {
		uint64_t start;

		if (r == o->warmup) {
			warm_ns = gn_clock_ns() - t0;
			gn_session_get_stats(s, &st_warm);
		}
		start = gn_clock_ns();
		if (gn_model_run(m, in_t, out_t) != 0) {
			runtime_error("run %ld of %ld", r + 1, total);
			goto out;
		}
		/* Every output in one plan: one request, shared work once. */
		if (gn_tensor_materialize_all(out_t, n_out) != 0) {
			runtime_error("run %ld of %ld", r + 1, total);
			goto out;
		}
		if (r >= o->warmup)
			lat[r - o->warmup] = gn_clock_ns() - start;
	}
	gn_session_get_stats(s, &st_runs);
	print_runs(o, lat, warm_ns, &st_load, &st_warm, &st_runs);

	for (int k = 0; k < n_out; k++) {
		const char *name = gn_model_output(m, k)->name;
		char *f = output_file_name(name, k, files);
		char *path;

		if (f == NULL) {
			fprintf(stderr, "genie-run: out of memory\n");
			goto out;
		}
		files[k] = f;
		path = malloc(strlen(o->out_dir) + strlen(f) + 8);
		if (path == NULL) {
			fprintf(stderr, "genie-run: out of memory\n");
			goto out;
		}
		sprintf(path, "%s/%s.npy", o->out_dir, f);
		if (write_output(out_t[k], path) != 0) {
			free(path);
			runtime_error("output '%s'", name);
			goto out;
		}
		{
			int64_t shape[GN_MAX_DIMS];
			int nd = gn_tensor_shape(out_t[k], shape);

			printf("wrote %s %s -> %s%s\n", name,
			       fmt_io(sh, sizeof(sh), gn_tensor_dtype(out_t[k]),
				      nd, shape),
			       path,
			       gn_tensor_dtype(out_t[k]) == GN_DTYPE_BF16
				       ? " (as f32)"
				       : "");
		}
		free(path);
	}
	gn_session_get_stats(s, &st_end);
	printf("session total: sent %s, received %s, %llu requests\n",
	       fmt_bytes(b1, sizeof(b1), (double)st_end.bytes_sent),
	       fmt_bytes(b2, sizeof(b2), (double)st_end.bytes_received),
	       (unsigned long long)st_end.requests);
	rc = 0;
out:
	gn_model_free(&m);
	gn_session_destroy(&s);
	for (int i = 0; i < n_in && arrays; i++)
		gn_npy_free(&arrays[i]);
	for (int k = 0; k < n_out && files; k++)
		free(files[k]);
	free(files);
	free(lat);
	free(out_t);
	free(in_t);
	free(arrays);
	free(arg_of_input);
	return rc;
}

int main(int argc, char **argv)
{
	struct run_opts o = {0};
	int rc;

	rc = parse_args(argc, argv, &o);
	/*
	 * The report goes to stdout; keep stderr to warnings and errors
	 * unless asked for more (the library's own default is notice).
	 */
	if (rc == 0 && o.log == NULL && getenv("GENIE_LOG") == NULL)
		gn_log_set_levels("warning");
	if (rc == 0 && o.log != NULL && gn_log_set_levels(o.log) != 0)
		rc = usage_error("--log %s: %s", o.log, gn_last_error());
	if (rc == 0)
		rc = run(&o);
	free(o.inputs);
	return rc;
}
