/*
 * Backend benchmark: Genie's CPU backend against PyTorch on the same CPU.
 *
 * For ResNet-18 (batch 1 and 8) and one transformer encoder block it makes
 * deterministic weights, runs Genie the way a user's code would (weights
 * are borrowed tensors made once; every forward pass records a new lazy
 * graph and materializes its output) and runs the same model, weights and
 * input in PyTorch through backend_torch.py with the same thread count
 * (twice, under GNU OpenMP's default and passive wait policies, keeping the
 * faster: on a small machine the wrong one starves OpenBLAS). It prints
 * both latencies, their ratio, and how far the outputs differ; an
 * output that differs by more than 1e-3 of its largest magnitude fails the
 * run, so the benchmark cannot time wrong work. Last it measures an idle
 * genie-runtime's resident memory and CPU use.
 *
 *   backend [--target local|tcp://HOST:PORT] [--threads N] [--quick]
 *           [--json] [--iters N] [--only WORKLOAD] [--runtime PATH]
 *           [--torch-script PATH]
 *
 * GENIE_BENCH_PYTHON names the Python with torch (default /usr/bin/python3).
 * Exit 0; 1 on a failure or an output mismatch; 2 on bad arguments; 77
 * (skip) when that Python has no torch.
 */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <genie/genie.h>

#include "backend_models.h"
#include "backend_proc.h"

#ifndef GENIE_BENCH_SOURCE_DIR
#define GENIE_BENCH_SOURCE_DIR "tests/bench"
#endif

/* Largest error allowed, relative to the largest reference magnitude. */
#define MAX_REL_ERR 1e-3

struct workload {
	const char *name;
	enum bench_model_kind kind;
	int batch;
	/* Genie warm-up and timed runs, then PyTorch's: default and quick. */
	int g_warm[2], g_iters[2], t_warm[2], t_iters[2];

	/* Results. */
	int ran, ok, giters, titers;
	double g_med, g_min, g_exec_med, t_med, t_min;
	const char *t_omp_wait; /* PyTorch's faster OpenMP wait policy */
	double max_abs, max_rel, ref_max;
};

static struct workload g_workloads[] = {
	{"resnet18_b1", BENCH_RESNET18, 1, {3, 2}, {20, 5}, {3, 2}, {20, 5}},
	{"resnet18_b8", BENCH_RESNET18, 8, {2, 1}, {5, 1}, {2, 1}, {5, 2}},
	{"transformer_block",
	 BENCH_TRANSFORMER,
	 1,
	 {5, 2},
	 {50, 10},
	 {5, 2},
	 {50, 10}},
};
#define NWORKLOADS (int)(sizeof(g_workloads) / sizeof(g_workloads[0]))

/*
 * ResNet-18 batch 1 through a genie-runtime on loopback (weights resident,
 * the same CPU backend and threads) next to the local run, in the same
 * benchmark run: the "remote vs local" row of the performance contract.
 */
static struct {
	int ran, ok;
	double med, min, exec_med, local_med, max_diff;
	int exit_status;
} g_remote;
static float *g_b1_out; /* the local resnet18_b1 output, for the remote row */
static size_t g_b1_n;

struct options {
	const char *target;
	int threads, quick, json, iters, resident;
	const char *only, *runtime, *script, *python;
	char runtime_buf[PATH_MAX];
	char tmpdir[64];
	char torch_version[64], blas[32];
	double load_start, load_end;
};

/* The 1-minute load average: other work on the machine skews the figures. */
static double loadavg_1m(void)
{
	FILE *f = fopen("/proc/loadavg", "r");
	double l = -1.0;

	if (f != NULL) {
		if (fscanf(f, "%lf", &l) != 1)
			l = -1.0;
		fclose(f);
	}
	return l;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_d);
	return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static size_t numel(const int64_t *shape, int ndim)
{
	size_t n = 1;

	for (int i = 0; i < ndim; i++)
		n *= (size_t)shape[i];
	return n;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: backend [--target local|tcp://HOST:PORT] "
		   "[--threads N] [--quick] [--json] [--resident]\n"
		   "               [--iters N] [--only WORKLOAD] "
		   "[--runtime PATH] [--torch-script PATH]\n"
		   "workloads: resnet18_b1 resnet18_b8 transformer_block\n"
		   "--resident: weights made resident (pinned) on the target "
		   "once,\n"
		   "            so plans carry only the input's bytes\n"
		   "env: GENIE_BENCH_PYTHON (default /usr/bin/python3)\n");
}

static int parse_args(int argc, char **argv, struct options *o)
{
	memset(o, 0, sizeof(*o));
	o->target = "local";
	o->script = GENIE_BENCH_SOURCE_DIR "/backend_torch.py";
	o->python = getenv("GENIE_BENCH_PYTHON");
	if (o->python == NULL || o->python[0] == '\0')
		o->python = "/usr/bin/python3";
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(a, "--quick") == 0) {
			o->quick = 1;
			continue;
		}
		if (strcmp(a, "--resident") == 0) {
			o->resident = 1;
			continue;
		}
		if (strcmp(a, "--json") == 0) {
			o->json = 1;
			continue;
		}
		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			usage(stdout);
			exit(0);
		}
		if (strcmp(a, "--target") != 0 && strcmp(a, "--threads") != 0 &&
		    strcmp(a, "--iters") != 0 && strcmp(a, "--only") != 0 &&
		    strcmp(a, "--runtime") != 0 &&
		    strcmp(a, "--torch-script") != 0) {
			fprintf(stderr, "backend: unknown option %s\n", a);
			return -EINVAL;
		}
		if (v == NULL) {
			fprintf(stderr, "backend: %s needs a value\n", a);
			return -EINVAL;
		}
		i++;
		if (strcmp(a, "--target") == 0)
			o->target = v;
		else if (strcmp(a, "--threads") == 0)
			o->threads = atoi(v);
		else if (strcmp(a, "--iters") == 0)
			o->iters = atoi(v);
		else if (strcmp(a, "--only") == 0)
			o->only = v;
		else if (strcmp(a, "--runtime") == 0)
			o->runtime = v;
		else
			o->script = v;
		if ((strcmp(a, "--threads") == 0 && o->threads <= 0) ||
		    (strcmp(a, "--iters") == 0 && o->iters <= 0)) {
			fprintf(stderr,
				"backend: %s wants a positive number, "
				"got '%s'\n",
				a, v);
			return -EINVAL;
		}
	}
	if (o->threads == 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);

		o->threads = n > 0 ? (int)n : 1;
	}
	if (o->runtime == NULL)
		o->runtime = bench_default_runtime(o->runtime_buf,
						   sizeof(o->runtime_buf));
	return 0;
}

/*
 * Genie: `warm` + `iters` forward passes, each recorded afresh and copied
 * out into `out`. Fills lat[] and exec[] (ms) for the timed ones.
 */
static int genie_run(struct gn_session *s, const struct bench_model *m,
		     const struct workload *w, const float *in, float *out,
		     size_t out_bytes, int warm, int iters, double *lat,
		     double *exec)
{
	int64_t shape[4];
	int ndim = bench_model_input_shape(m, w->batch, shape);

	for (int i = 0; i < warm + iters; i++) {
		struct gn_session_stats st;
		struct gn_tensor *x, *y;
		double t0 = bench_now(), t1;
		int rc;

		x = gn_tensor_from_host(s, GN_DTYPE_F32, ndim, shape, in,
					GN_TENSOR_BORROW);
		y = bench_model_forward(m, x);
		if (y == NULL) {
			fprintf(stderr, "backend: %s: recording failed: %s\n",
				w->name, gn_last_error());
			return -EINVAL;
		}
		rc = gn_tensor_to_host(y, out, out_bytes);
		t1 = bench_now();
		if (rc != 0) {
			fprintf(stderr,
				"backend: %s: materialize failed: %s (%s)\n",
				w->name, gn_last_error(), gn_strerror(rc));
			return rc;
		}
		gn_session_get_stats(s, &st);
		if (i >= warm) {
			lat[i - warm] = (t1 - t0) * 1e3;
			exec[i - warm] = (double)st.last_exec_ns * 1e-6;
		}
		fprintf(stderr, "  genie %s %s %d/%d: %.1f ms\n", w->name,
			i < warm ? "warm-up" : "run",
			i < warm ? i + 1 : i - warm + 1,
			i < warm ? warm : iters, (t1 - t0) * 1e3);
	}
	return 0;
}

/*
 * PyTorch: runs the script once with GNU OpenMP's wait policy `omp_wait`
 * ("default" or "passive"); fills *med and *min (ms) and writes the output
 * to `ofile`.
 */
static int torch_run(const struct options *o, const struct workload *w,
		     const char *omp_wait, const char *wfile, const char *ofile,
		     int warm, int iters, double *med, double *min)
{
	char threads[16], its[16], wm[16], ow[32], buf[8192], *line;
	char *argv[] = {(char *)o->python,
			(char *)o->script,
			ow,
			(char *)wfile,
			(char *)w->name,
			threads,
			its,
			wm,
			(char *)ofile,
			NULL};
	int rc;

	snprintf(ow, sizeof(ow), "--omp-wait=%s", omp_wait);
	snprintf(threads, sizeof(threads), "%d", o->threads);
	snprintf(its, sizeof(its), "%d", iters);
	snprintf(wm, sizeof(wm), "%d", warm);
	rc = bench_run_capture(argv, buf, sizeof(buf));
	if (rc != 0) {
		fprintf(stderr, "backend: %s: %s %s exited with %d\n", w->name,
			o->python, o->script, rc);
		return -ECHILD;
	}
	line = strstr(buf, "RESULT ");
	if (line == NULL ||
	    sscanf(line, "RESULT median_ms=%lf min_ms=%lf", med, min) != 2) {
		fprintf(stderr,
			"backend: %s: no RESULT line from %s; it "
			"printed:\n%s\n",
			w->name, o->script, buf);
		return -EPROTO;
	}
	fprintf(stderr, "  torch %s: %s", w->name, line);
	return 0;
}

/*
 * PyTorch under both OpenMP wait policies (see backend_torch.py): keeps
 * the one with the lower median in w->t_* and its output in `ofile`.
 */
static int torch_best(const struct options *o, struct workload *w,
		      const char *wfile, const char *ofile, int warm, int iters)
{
	static const char *const policies[] = {"default", "passive"};
	char tmp[160];
	int rc;

	for (int i = 0; i < 2; i++) {
		double med, min;

		snprintf(tmp, sizeof(tmp), "%s.%s", ofile, policies[i]);
		rc = torch_run(o, w, policies[i], wfile, tmp, warm, iters, &med,
			       &min);
		if (rc != 0)
			return rc;
		if (i == 0 || med < w->t_med) {
			w->t_med = med;
			w->t_min = min;
			w->t_omp_wait = policies[i];
			if (rename(tmp, ofile) != 0)
				return -errno;
		} else {
			unlink(tmp);
		}
	}
	return 0;
}

/* Compare Genie's output with the one PyTorch wrote to `ofile`. */
static int compare(struct workload *w, const float *g, size_t n,
		   const char *ofile)
{
	float *t = malloc(n * sizeof(float));
	FILE *f = fopen(ofile, "rb");
	size_t got = 0;

	if (t == NULL || f == NULL) {
		fprintf(stderr, "backend: %s: cannot read %s\n", w->name,
			ofile);
		free(t);
		if (f)
			fclose(f);
		return -EIO;
	}
	got = fread(t, sizeof(float), n, f);
	fclose(f);
	if (got != n) {
		fprintf(stderr,
			"backend: %s: PyTorch wrote %zu floats, Genie "
			"has %zu\n",
			w->name, got, n);
		free(t);
		return -EIO;
	}
	w->max_abs = 0.0;
	w->ref_max = 0.0;
	w->ok = 1;
	for (size_t i = 0; i < n; i++) {
		double d = fabs((double)g[i] - (double)t[i]);

		if (!isfinite(g[i]) || !isfinite(t[i]))
			w->ok = 0;
		if (d > w->max_abs)
			w->max_abs = d;
		if (fabs((double)t[i]) > w->ref_max)
			w->ref_max = fabs((double)t[i]);
	}
	w->max_rel = w->ref_max > 0 ? w->max_abs / w->ref_max : w->max_abs;
	if (!(w->max_rel <= MAX_REL_ERR))
		w->ok = 0;
	free(t);
	return 0;
}

static int run_workload(const struct options *o, struct gn_session *s,
			const struct bench_model *m, struct workload *w)
{
	int q = o->quick ? 1 : 0;
	int gw = w->g_warm[q], gi = o->iters ? o->iters : w->g_iters[q];
	int tw = w->t_warm[q], ti = o->iters ? o->iters : w->t_iters[q];
	int64_t ishape[4], oshape[4];
	size_t nin =
		numel(ishape, bench_model_input_shape(m, w->batch, ishape));
	size_t nout =
		numel(oshape, bench_model_output_shape(m, w->batch, oshape));
	char wfile[128], ofile[128];
	float *in = malloc(nin * sizeof(float));
	float *out = malloc(nout * sizeof(float));
	double *lat = calloc((size_t)gi, sizeof(double));
	double *exec = calloc((size_t)gi, sizeof(double));
	int rc = -ENOMEM;

	if (in == NULL || out == NULL || lat == NULL || exec == NULL)
		goto out;
	snprintf(wfile, sizeof(wfile), "%s/%s.weights", o->tmpdir, w->name);
	snprintf(ofile, sizeof(ofile), "%s/%s.torch_out", o->tmpdir, w->name);
	bench_fill_input(in, nin, 0x5EED0000ULL + (uint64_t)w->batch);
	rc = bench_model_write(m, in, nin, wfile);
	if (rc != 0) {
		fprintf(stderr, "backend: cannot write %s: %s\n", wfile,
			strerror(-rc));
		goto out;
	}
	fprintf(stderr, "backend: %s: genie %d+%d runs, torch %d+%d runs\n",
		w->name, gw, gi, tw, ti);
	rc = genie_run(s, m, w, in, out, nout * sizeof(float), gw, gi, lat,
		       exec);
	if (rc != 0)
		goto out_file;
	w->giters = gi;
	w->titers = ti;
	w->g_min = lat[0];
	for (int i = 1; i < gi; i++)
		if (lat[i] < w->g_min)
			w->g_min = lat[i];
	w->g_med = median(lat, gi);
	w->g_exec_med = median(exec, gi);
	rc = torch_best(o, w, wfile, ofile, tw, ti);
	if (rc == 0)
		rc = compare(w, out, nout, ofile);
	if (rc == 0 && w == &g_workloads[0]) {
		g_b1_out = out;
		g_b1_n = nout;
		out = NULL;
	}
	if (rc == 0) {
		w->ran = 1;
		if (!w->ok)
			fprintf(stderr,
				"backend: %s: Genie's output differs from "
				"PyTorch's: max abs error %.3g, largest "
				"reference magnitude %.3g, relative %.3g > "
				"%.0e\n",
				w->name, w->max_abs, w->ref_max, w->max_rel,
				MAX_REL_ERR);
	}
	unlink(ofile);
out_file:
	unlink(wfile);
out:
	free(in);
	free(out);
	free(lat);
	free(exec);
	return rc;
}

static int selected(const struct options *o, enum bench_model_kind kind)
{
	for (int i = 0; i < NWORKLOADS; i++)
		if (g_workloads[i].kind == kind &&
		    (o->only == NULL ||
		     strcmp(o->only, g_workloads[i].name) == 0))
			return 1;
	return 0;
}

/*
 * The remote row: start a runtime, run resnet18_b1 there with the weights
 * resident, compare with the local output `ref` (n floats).
 */
static int run_remote_b1(const struct options *o, struct bench_model *m,
			 const float *ref, size_t n)
{
	struct workload *w = &g_workloads[0];
	int q = o->quick ? 1 : 0;
	int gw = w->g_warm[q], gi = o->iters ? o->iters : w->g_iters[q];
	struct gn_session_opts so;
	struct bench_runtime rt;
	struct gn_session *s = NULL;
	char url[64];
	int64_t ishape[4];
	size_t nin =
		numel(ishape, bench_model_input_shape(m, w->batch, ishape));
	float *in = malloc(nin * sizeof(float)), *out = malloc(n * 4);
	double *lat = calloc((size_t)gi, sizeof(double));
	double *exec = calloc((size_t)gi, sizeof(double));
	int rc = -ENOMEM;

	if (!in || !out || !lat || !exec)
		goto out;
	bench_fill_input(in, nin, 0x5EED0000ULL + (uint64_t)w->batch);
	rc = bench_runtime_start(o->runtime, &rt);
	if (rc != 0)
		goto out;
	snprintf(url, sizeof(url), "tcp://127.0.0.1:%d", rt.port);
	gn_session_opts_init(&so, sizeof(so));
	so.target = url;
	so.name = "bench-backend-remote";
	so.timeout_ms = -1;
	s = gn_session_create(&so);
	rc = s ? bench_model_bind(m, s, 1) : -ECONNREFUSED;
	if (rc != 0)
		fprintf(stderr, "backend: remote resnet18_b1 on %s: %s\n", url,
			gn_last_error());
	if (rc == 0) {
		fprintf(stderr,
			"backend: resnet18_b1 on %s (weights "
			"resident)\n",
			url);
		rc = genie_run(s, m, w, in, out, n * 4, gw, gi, lat, exec);
	}
	if (rc == 0) {
		g_remote.ran = 1;
		g_remote.med = median(lat, gi);
		g_remote.exec_med = median(exec, gi);
		g_remote.min = lat[0];
		for (int i = 1; i < gi; i++)
			if (lat[i] < g_remote.min)
				g_remote.min = lat[i];
		g_remote.local_med = w->g_med;
		for (size_t i = 0; i < n; i++) {
			double d = fabs((double)out[i] - ref[i]);

			if (d > g_remote.max_diff)
				g_remote.max_diff = d;
		}
		/* Same kernels, same threads: the same numbers. */
		g_remote.ok = g_remote.max_diff <= 1e-5 * (w->ref_max + 1);
	}
	gn_session_destroy(&s);
	g_remote.exit_status = bench_runtime_stop(&rt);
	if (g_remote.exit_status != 0)
		fprintf(stderr, "backend: genie-runtime exited with %d\n",
			g_remote.exit_status);
out:
	free(in);
	free(out);
	free(lat);
	free(exec);
	return rc;
}

/* Run every selected workload of one model in a fresh session. */
static int run_model(const struct options *o, enum bench_model_kind kind,
		     char *backend, size_t backend_size)
{
	struct gn_session_opts so;
	struct gn_session *s;
	struct bench_model *m;
	int rc;

	if (!selected(o, kind))
		return 0;
	m = malloc(sizeof(*m));
	if (m == NULL)
		return -ENOMEM;
	rc = bench_model_init(m, kind,
			      kind == BENCH_RESNET18 ? 0x9E3779B97F4A7C15ULL
						     : 0xD1B54A32D192ED03ULL);
	if (rc != 0) {
		free(m);
		return rc;
	}
	gn_session_opts_init(&so, sizeof(so));
	so.target = o->target;
	so.name = "bench-backend";
	so.timeout_ms = -1; /* a slow backend is what we measure */
	s = gn_session_create(&so);
	if (s == NULL) {
		fprintf(stderr, "backend: cannot open a session on %s: %s\n",
			o->target, gn_last_error());
		rc = gn_last_error_code() ? gn_last_error_code() : -EIO;
		goto out_model;
	}
	snprintf(backend, backend_size, "%s", gn_session_backend(s));
	rc = bench_model_bind(m, s, o->resident);
	if (rc != 0) {
		fprintf(stderr, "backend: cannot make weight tensors: %s\n",
			gn_last_error());
		goto out_session;
	}
	for (int i = 0; i < NWORKLOADS && rc == 0; i++) {
		struct workload *w = &g_workloads[i];

		if (w->kind != kind ||
		    (o->only != NULL && strcmp(o->only, w->name) != 0))
			continue;
		rc = run_workload(o, s, m, w);
	}
	if (rc == 0 && g_b1_out != NULL && strcmp(o->target, "local") == 0)
		rc = run_remote_b1(o, m, g_b1_out, g_b1_n);
out_session:
	gn_session_destroy(&s);
out_model:
	bench_model_free(m);
	free(m);
	return rc;
}

static void print_table(const struct options *o, const char *backend,
			const struct bench_idle *idle, int idle_rc)
{
	const char *dnnl = getenv("GENIE_CPU_DNNL");

	printf("backend: Genie %s backend (target %s%s%s%s) vs PyTorch %s CPU "
	       "(BLAS %s), %d threads\n",
	       backend[0] ? backend : "?", o->target,
	       o->resident ? ", weights resident" : "",
	       dnnl ? ", GENIE_CPU_DNNL=" : "", dnnl ? dnnl : "",
	       o->torch_version, o->blas[0] ? o->blas : "?", o->threads);
	printf("%-18s %7s %10s %10s %10s %10s %10s %8s %9s %9s %s\n",
	       "workload", "runs", "genie med", "genie min", "genie exec",
	       "torch med", "torch min", "ratio", "max abs", "max rel",
	       "check torch omp");
	printf("%-18s %7s %10s %10s %10s %10s %10s %8s %9s %9s\n", "", "g/t",
	       "ms", "ms", "med ms", "ms", "ms", "g/t", "err", "err");
	for (int i = 0; i < NWORKLOADS; i++) {
		const struct workload *w = &g_workloads[i];
		char runs[16];

		if (!w->ran)
			continue;
		snprintf(runs, sizeof(runs), "%d/%d", w->giters, w->titers);
		printf("%-18s %7s %10.2f %10.2f %10.2f %10.2f %10.2f %8.2f "
		       "%9.2e %9.2e %-5s %s\n",
		       w->name, runs, w->g_med, w->g_min, w->g_exec_med,
		       w->t_med, w->t_min, w->g_med / w->t_med, w->max_abs,
		       w->max_rel, w->ok ? "ok" : "FAIL", w->t_omp_wait);
	}
	printf("genie: whole forward (record + materialize + copy out); exec: "
	       "the session's last_exec_ns. ratio: genie med / torch med.\n"
	       "max rel err: max abs err / largest |torch output| (limit "
	       "%.0e).\n"
	       "torch omp: the OMP_WAIT_POLICY of PyTorch's faster run "
	       "(default or passive; both are run).\n",
	       MAX_REL_ERR);
	printf("load average (1 min): %.2f at start, %.2f at end\n",
	       o->load_start, o->load_end);
	if (idle_rc == 0)
		printf("genie-runtime idle (--backend cpu): RSS %.1f MiB, CPU "
		       "%.2f %% of one core over %.1f s\n",
		       idle->rss_mib, idle->cpu_percent, idle->interval_s);
	else if (idle_rc != 1)
		printf("genie-runtime idle: not measured (%s)\n",
		       strerror(-idle_rc));
	if (g_remote.ran)
		printf("remote resnet18_b1 (genie-runtime on tcp loopback, "
		       "weights resident): med %.2f ms, min %.2f ms, exec med "
		       "%.2f ms; local med %.2f ms; remote/local %.3f (target "
		       "<= 1.10); outputs %s (max diff %.2g)\n",
		       g_remote.med, g_remote.min, g_remote.exec_med,
		       g_remote.local_med, g_remote.med / g_remote.local_med,
		       g_remote.ok ? "equal" : "DIFFER", g_remote.max_diff);
}

static void json_workload(const struct workload *w, const char *key)
{
	if (!w->ran) {
		printf("\"%s_ratio_vs_torch\": null, ", key);
		return;
	}
	printf("\"%s_ratio_vs_torch\": %.3f, \"%s_genie_median_ms\": %.3f, "
	       "\"%s_genie_min_ms\": %.3f, \"%s_genie_exec_median_ms\": %.3f, "
	       "\"%s_torch_median_ms\": %.3f, \"%s_torch_min_ms\": %.3f, "
	       "\"%s_max_abs_err\": %.3e, \"%s_max_rel_err\": %.3e, "
	       "\"%s_torch_omp_wait\": \"%s\", \"%s_ok\": %s, ",
	       key, w->g_med / w->t_med, key, w->g_med, key, w->g_min, key,
	       w->g_exec_med, key, w->t_med, key, w->t_min, key, w->max_abs,
	       key, w->max_rel, key, w->t_omp_wait, key,
	       w->ok ? "true" : "false");
}

int main(int argc, char **argv)
{
	char torch_version[128] = "", backend[32] = "", *argv_check[4], *nl;
	struct bench_idle idle = {0};
	struct options o;
	int rc = 0, idle_rc = 1, ok = 1;

	if (parse_args(argc, argv, &o) != 0) {
		usage(stderr);
		return 2;
	}
	if (o.only != NULL) {
		int known = 0;

		for (int i = 0; i < NWORKLOADS; i++)
			known |= strcmp(o.only, g_workloads[i].name) == 0;
		if (!known) {
			fprintf(stderr, "backend: unknown workload '%s'\n",
				o.only);
			usage(stderr);
			return 2;
		}
	}

	/* Without torch there is nothing to compare with: skip early. */
	argv_check[0] = (char *)o.python;
	argv_check[1] = (char *)o.script;
	argv_check[2] = "--check";
	argv_check[3] = NULL;
	rc = bench_run_capture(argv_check, torch_version,
			       sizeof(torch_version));
	if (rc == 77 || rc == 127) {
		fprintf(stderr,
			"backend: skipped: %s cannot import torch (set "
			"GENIE_BENCH_PYTHON to a Python that has it)\n",
			o.python);
		return 77;
	}
	if (rc != 0) {
		fprintf(stderr, "backend: %s %s --check exited with %d\n",
			o.python, o.script, rc);
		return 1;
	}
	nl = strchr(torch_version, '\n');
	if (nl)
		*nl = '\0';
	if (sscanf(torch_version, "torch %63s blas=%31s", o.torch_version,
		   o.blas) < 1) {
		fprintf(stderr, "backend: %s --check printed '%s'\n", o.script,
			torch_version);
		return 1;
	}
	if (strcmp(o.blas, "netlib-reference") == 0)
		fprintf(stderr,
			"backend: warning: PyTorch's linear/matmul use the "
			"reference netlib BLAS here; install OpenBLAS "
			"(libopenblas0-pthread) for a fair baseline\n");

	/* Read by the CPU backend when the session (or runtime) starts it. */
	{
		char n[16];

		snprintf(n, sizeof(n), "%d", o.threads);
		setenv("GENIE_CPU_THREADS", n, 1);
	}
	snprintf(o.tmpdir, sizeof(o.tmpdir), "/tmp/genie-bench-XXXXXX");
	if (mkdtemp(o.tmpdir) == NULL) {
		fprintf(stderr, "backend: mkdtemp: %s\n", strerror(errno));
		return 1;
	}

	o.load_start = loadavg_1m();
	rc = run_model(&o, BENCH_RESNET18, backend, sizeof(backend));
	if (rc == 0)
		rc = run_model(&o, BENCH_TRANSFORMER, backend, sizeof(backend));
	rmdir(o.tmpdir);

	if (rc == 0 && o.only == NULL) {
		fprintf(stderr, "backend: measuring an idle %s\n", o.runtime);
		idle_rc = bench_runtime_idle(o.runtime, 2.0,
					     o.quick ? 2.0 : 3.0, &idle);
		if (idle_rc != 0)
			fprintf(stderr, "backend: idle runtime: %s\n",
				strerror(-idle_rc));
		else if (idle.exit_status != 0)
			fprintf(stderr,
				"backend: genie-runtime exited with %d after "
				"SIGTERM\n",
				idle.exit_status);
	}

	o.load_end = loadavg_1m();
	for (int i = 0; i < NWORKLOADS; i++)
		if (g_workloads[i].ran && !g_workloads[i].ok)
			ok = 0;
	if (g_remote.ran && (!g_remote.ok || g_remote.exit_status != 0))
		ok = 0;
	print_table(&o, backend, &idle, idle_rc);
	if (o.json) {
		printf("{\"threads\": %d, \"target\": \"%s\", \"backend\": "
		       "\"%s\", \"torch\": \"%s\", \"torch_blas\": \"%s\", "
		       "\"quick\": %s, \"resident\": %s, "
		       "\"loadavg_start\": %.2f, \"loadavg_end\": %.2f, ",
		       o.threads, o.target, backend, o.torch_version, o.blas,
		       o.quick ? "true" : "false",
		       o.resident ? "true" : "false", o.load_start, o.load_end);
		json_workload(&g_workloads[0], "resnet18_b1");
		json_workload(&g_workloads[1], "resnet18_b8");
		json_workload(&g_workloads[2], "transformer_block");
		if (g_remote.ran)
			printf("\"resnet18_b1_remote_median_ms\": %.3f, "
			       "\"resnet18_b1_remote_vs_local_ratio\": %.3f, "
			       "\"resnet18_b1_remote_ok\": %s, ",
			       g_remote.med, g_remote.med / g_remote.local_med,
			       g_remote.ok ? "true" : "false");
		if (idle_rc == 0)
			printf("\"runtime_idle_rss_mib\": %.2f, "
			       "\"runtime_idle_cpu_percent\": %.3f, ",
			       idle.rss_mib, idle.cpu_percent);
		else
			printf("\"runtime_idle_rss_mib\": null, "
			       "\"runtime_idle_cpu_percent\": null, ");
		printf("\"ok\": %s}\n",
		       ok && rc == 0 && idle_rc <= 1 ? "true" : "false");
	}
	free(g_b1_out);
	if (rc != 0 || !ok || (idle_rc != 0 && idle_rc != 1))
		return 1;
	return 0;
}
