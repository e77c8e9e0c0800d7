/*
 * Resident tensor transfers with and without payload placement.
 *
 * An upload (gn_tensor_make_resident) used to land in a message buffer on
 * the runtime and be copied into the block that keeps the tensor, and a
 * fetch (gn_tensor_fetch) to land in a message buffer on the client and
 * be copied into the caller's buffer; with placement (common/transport.h)
 * the transport writes each into its final memory. This program measures
 * what a client sees, the time from the call to its return, for uploads
 * and fetches of each size, over TCP on loopback and over DPDK memif (no
 * hugepages), to a genie-runtime with the cpu backend: placed (both ends
 * place), or copied (the runtime started with --no-placement and the
 * client with GENIE_NO_PLACEMENT=1); single-core memcpy of the same sizes
 * beside them.
 *
 * Each round starts one runtime of each kind in turn (listening on both
 * transports), and a client process for each transport (one DPDK port
 * per process) uploads `total` bytes per size, releasing each tensor
 * after its upload, then fetches one resident tensor until `total` bytes
 * came back, then runs relu on a resident tensor and copies each result
 * to the host (gn_tensor_to_host) until as many came back: a plan whose
 * result the runtime sends from the block it computed it in (the
 * executor lends its outputs) and the client places. Each result's value
 * stays with its session, as the API keeps every tensor, so every plan's
 * result lands in fresh client memory. The tables show each figure's median
 * over the rounds; the ratios are the medians of the rounds' own ratios.
 *
 *   resident [--quick] [--json] [--sizes B,B...] [--total BYTES]
 *            [--rounds N] [--runtime PATH]
 *
 * With --json the last line is one JSON object (64 MiB figures and the
 * placed/copied ratios).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <genie/genie.h>

#include "backend_proc.h"

#define MAX_SIZES 8
#define MAX_ROUNDS 32
#define NT 2 /* transports */
#define NM 2 /* placed, copied */
#define ND 3 /* upload, fetch, exec */

static const char *const t_name[NT] = {"tcp", "dpdk"};
static const char *const m_name[NM] = {"placed", "copied"};
static const char *const d_name[ND] = {"upload", "fetch", "exec"};
static const char *const d_plural[ND] = {
	"uploads", "fetches",
	"plans (relu of a resident tensor, result to host)"};

/* Upload `reps` tensors of n floats from v (one warm first): GB/s or -1. */
static double uploads(struct gn_session *s, const float *v, int64_t n, int reps)
{
	double t0 = 0;
	int rc = 0;

	for (int i = -1; i < reps && rc == 0; i++) {
		struct gn_tensor *x = gn_tensor_from_host(
			s, GN_DTYPE_F32, 1, &n, v, GN_TENSOR_BORROW);

		if (i == 0)
			t0 = bench_now();
		rc = x ? gn_tensor_make_resident(x, 0) : -ENOMEM;
		if (rc == 0)
			rc = gn_tensor_release(x);
	}
	return rc ? -1 : (double)n * 4 * reps / (bench_now() - t0) / 1e9;
}

/* Fetch one resident tensor of n floats `reps` times into out: GB/s. */
static double fetches(struct gn_session *s, const float *v, float *out,
		      int64_t n, int reps)
{
	struct gn_tensor *x = gn_tensor_from_host(s, GN_DTYPE_F32, 1, &n, v,
						  GN_TENSOR_BORROW);
	size_t bytes = (size_t)n * 4;
	double t0 = 0;
	int rc = x ? gn_tensor_make_resident(x, 0) : -ENOMEM;

	for (int i = -1; i < reps && rc == 0; i++) {
		if (i == 0)
			t0 = bench_now();
		rc = gn_tensor_fetch(x, out, bytes);
	}
	t0 = bench_now() - t0;
	if (rc == 0 && memcmp(out, v, bytes) != 0) {
		fprintf(stderr, "resident: a fetch came back different\n");
		rc = -EIO;
	}
	if (rc == 0)
		rc = gn_tensor_release(x);
	return rc ? -1 : (double)bytes * reps / t0 / 1e9;
}

/*
 * relu of one resident tensor of n floats (all >= 0, so the result equals
 * them) `reps` times, each result copied to out: GB/s of results. In a
 * session of its own, since every result's value stays with its session
 * until the session goes.
 */
static double execs(const struct gn_session_opts *o, const float *v, float *out,
		    int64_t n, int reps)
{
	struct gn_session *s = gn_session_create(o);
	struct gn_tensor *x = s ? gn_tensor_from_host(s, GN_DTYPE_F32, 1, &n, v,
						      GN_TENSOR_BORROW)
				: NULL;
	size_t bytes = (size_t)n * 4;
	double t0 = 0;
	int rc = x ? gn_tensor_make_resident(x, 0) : -ENOMEM;

	for (int i = -1; i < reps && rc == 0; i++) {
		struct gn_tensor *y;

		if (i == 0)
			t0 = bench_now();
		y = gn_relu(x);
		rc = y ? gn_tensor_to_host(y, out, bytes) : -ENOMEM;
	}
	t0 = bench_now() - t0;
	if (rc == 0 && memcmp(out, v, bytes) != 0) {
		fprintf(stderr, "resident: a plan's result came back wrong\n");
		rc = -EIO;
	}
	if (rc != 0 && s != NULL)
		fprintf(stderr, "resident: plans: %s\n", gn_last_error());
	gn_session_destroy(&s);
	return rc ? -1 : (double)bytes * reps / t0 / 1e9;
}

/*
 * The client child: upload each size until `total` bytes went, then
 * fetch until as many came back, then run plans until as many came back;
 * print "SIZE UP FETCH EXEC" (GB/s) per size.
 * Exit 0, or 1 with the error on stderr.
 */
static int client(const char *url, const size_t *sizes, int nsizes,
		  size_t total)
{
	struct gn_session_opts o;
	struct gn_session *s;
	size_t max = 0;
	float *v, *out;
	int rc = 0;

	for (int k = 0; k < nsizes; k++)
		if (sizes[k] > max)
			max = sizes[k];
	v = malloc(max);
	out = malloc(max);
	if (v == NULL || out == NULL)
		return 1;
	for (size_t i = 0; i < max / sizeof(float); i++)
		v[i] = (float)(i % 1000);
	/*
	 * The fetch buffer is touched first, as a buffer an application
	 * reuses would be: on this VM memory first touched by the kernel's
	 * copy inside recv() stayed about half as fast to write afterwards
	 * as memory first touched by the CPU (docs/PERFORMANCE.md).
	 */
	memset(out, 0, max);
	gn_session_opts_init(&o, sizeof(o));
	o.target = url;
	o.timeout_ms = 60000;
	s = gn_session_create(&o);
	if (s == NULL) {
		fprintf(stderr, "resident: %s: %s\n", url, gn_last_error());
		free(v);
		free(out);
		return 1;
	}
	for (int k = 0; k < nsizes && rc == 0; k++) {
		int64_t n = (int64_t)(sizes[k] / sizeof(float));
		int reps = total / sizes[k] >= 2 ? (int)(total / sizes[k]) : 2;
		double up = uploads(s, v, n, reps);
		double fe = up < 0 ? -1 : fetches(s, v, out, n, reps);
		double ex = fe < 0 ? -1 : execs(&o, v, out, n, reps);

		if (up < 0 || fe < 0 || ex < 0)
			rc = -1;
		else
			printf("%zu %.4f %.4f %.4f\n", sizes[k], up, fe, ex);
	}
	if (rc != 0)
		fprintf(stderr, "resident: %s: %s\n", url, gn_last_error());
	gn_session_destroy(&s);
	free(v);
	free(out);
	return rc != 0;
}

/*
 * Run the client child for `url` (with GENIE_NO_PLACEMENT set when
 * `copied`); its GB/s per direction and size into d.
 */
static int run_client(const char *self, const char *url, int copied,
		      const char *sizes, const char *total, const size_t *sz,
		      int nsizes, double (*d)[MAX_SIZES])
{
	char *argv[] = {(char *)self,  "--client",    (char *)url,
			(char *)sizes, (char *)total, NULL};
	static char out[4096];
	char *p = out;
	int st;

	if (copied)
		setenv("GENIE_NO_PLACEMENT", "1", 1);
	st = bench_run_capture(argv, out, sizeof(out));
	unsetenv("GENIE_NO_PLACEMENT");
	if (st != 0) {
		fprintf(stderr, "resident: the %s client exited with %d\n", url,
			st);
		return -1;
	}
	for (int k = 0; k < nsizes; k++) {
		size_t size;
		int used;

		if (sscanf(p, "%zu %lf %lf %lf\n%n", &size, &d[0][k], &d[1][k],
			   &d[2][k], &used) != 4 ||
		    size != sz[k]) {
			fprintf(stderr,
				"resident: %s: unexpected output '%s'\n", url,
				out);
			return -1;
		}
		p += used;
	}
	return 0;
}

static int parse_sizes(const char *s, size_t *sizes, int *n)
{
	char *end;

	*n = 0;
	while (*s) {
		unsigned long long v = strtoull(s, &end, 10);

		if (end == s || v < 1024 || v % sizeof(float) != 0 ||
		    *n == MAX_SIZES || (end[0] != ',' && end[0] != '\0'))
			return -1;
		sizes[(*n)++] = (size_t)v;
		s = *end == ',' ? end + 1 : end;
	}
	return *n > 0 ? 0 : -1;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: resident [--quick] [--json] [--sizes BYTES,BYTES...] "
		"[--total BYTES] [--rounds N] [--runtime PATH]\n"
		"  sizes: multiples of 4, at least 1024, at most %d\n",
		MAX_SIZES);
}

/* g[round][transport][mode][direction][size], GB/s */
static double g[MAX_ROUNDS][NT][NM][ND][MAX_SIZES], mc[MAX_ROUNDS][MAX_SIZES];

static int measure(const char *self, const char *runtime, int rounds,
		   const char *dpdk_url, const char *sizes_arg,
		   const char *total_arg, const size_t *sizes, int nsizes,
		   size_t total, int k64)
{
	for (int r = 0; r < rounds; r++) {
		for (int m = 0; m < NM; m++) {
			const char *extra[] = {"--listen", dpdk_url,
					       m ? "--no-placement" : NULL,
					       NULL};
			struct bench_runtime rt;
			char tcp_url[64];

			if (bench_runtime_start_with(runtime, extra, &rt) !=
			    0) {
				fprintf(stderr,
					"resident: cannot start %s (built?)\n",
					runtime);
				return -1;
			}
			snprintf(tcp_url, sizeof(tcp_url), "tcp://127.0.0.1:%d",
				 rt.port);
			for (int t = 0; t < NT; t++)
				if (run_client(self, t ? dpdk_url : tcp_url, m,
					       sizes_arg, total_arg, sizes,
					       nsizes, g[r][t][m]) != 0) {
					bench_runtime_stop(&rt);
					return -1;
				}
			if (bench_runtime_stop(&rt) != 0)
				fprintf(stderr,
					"resident: the runtime did not stop "
					"cleanly; its log is %s\n",
					rt.log);
		}
		for (int k = 0; k < nsizes; k++)
			mc[r][k] = bench_memcpy_gbps(sizes[k], total);
		if (k64 >= 0)
			fprintf(stderr,
				"round %d, 64 MiB, placed / copied GB/s: "
				"upload tcp %.3f / %.3f, dpdk %.3f / %.3f; "
				"fetch tcp %.3f / %.3f, dpdk %.3f / %.3f; "
				"exec tcp %.3f / %.3f, dpdk %.3f / %.3f; "
				"memcpy %.3f\n",
				r + 1, g[r][0][0][0][k64], g[r][0][1][0][k64],
				g[r][1][0][0][k64], g[r][1][1][0][k64],
				g[r][0][0][1][k64], g[r][0][1][1][k64],
				g[r][1][0][1][k64], g[r][1][1][1][k64],
				g[r][0][0][2][k64], g[r][0][1][2][k64],
				g[r][1][0][2][k64], g[r][1][1][2][k64],
				mc[r][k64]);
	}
	return 0;
}

int main(int argc, char **argv)
{
	static const size_t def_sizes[] = {1u << 20, 16u << 20, 64u << 20,
					   256u << 20};
	double med[NT][NM][ND][MAX_SIZES], ratio[NT][ND][MAX_SIZES];
	double mmc[MAX_SIZES];
	size_t sizes[MAX_SIZES], total = 0;
	int nsizes = 4, quick = 0, json = 0, rounds = 0, k64 = -1;
	char sizes_arg[256] = "", total_arg[32], rt_buf[4096],
	     dir[] = "/tmp/genie-bench-resident-XXXXXX", dpdk_url[128];
	const char *runtime = NULL;

	memcpy(sizes, def_sizes, sizeof(def_sizes));
	if (argc == 5 && strcmp(argv[1], "--client") == 0) {
		if (parse_sizes(argv[3], sizes, &nsizes) != 0)
			return 2;
		return client(argv[2], sizes, nsizes,
			      (size_t)strtoull(argv[4], NULL, 10));
	}
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--quick") == 0) {
			quick = 1;
		} else if (strcmp(argv[i], "--json") == 0) {
			json = 1;
		} else if (strcmp(argv[i], "--sizes") == 0 && i + 1 < argc) {
			if (parse_sizes(argv[++i], sizes, &nsizes) != 0) {
				usage();
				return 2;
			}
		} else if (strcmp(argv[i], "--total") == 0 && i + 1 < argc) {
			total = (size_t)strtoull(argv[++i], NULL, 10);
		} else if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc) {
			rounds = atoi(argv[++i]);
			if (rounds < 1 || rounds > MAX_ROUNDS) {
				usage();
				return 2;
			}
		} else if (strcmp(argv[i], "--runtime") == 0 && i + 1 < argc) {
			runtime = argv[++i];
		} else {
			usage();
			return 2;
		}
	}
	if (total == 0)
		total = quick ? (256u << 20) : (1024u << 20);
	if (rounds == 0)
		rounds = quick ? 1 : 3;
	if (runtime == NULL)
		runtime = bench_default_runtime(rt_buf, sizeof(rt_buf));
	for (int k = 0; k < nsizes; k++) {
		size_t n = strlen(sizes_arg);

		snprintf(sizes_arg + n, sizeof(sizes_arg) - n, "%s%zu",
			 k ? "," : "", sizes[k]);
		if (sizes[k] == (64u << 20))
			k64 = k;
	}
	snprintf(total_arg, sizeof(total_arg), "%zu", total);
	if (mkdtemp(dir) == NULL) {
		perror("resident: mkdtemp");
		return 1;
	}
	snprintf(dpdk_url, sizeof(dpdk_url), "dpdk://memif:%s/sock", dir);
	if (measure(argv[0], runtime, rounds, dpdk_url, sizes_arg, total_arg,
		    sizes, nsizes, total, k64) != 0) {
		rmdir(dir);
		return 1;
	}
	rmdir(dir);

	for (int k = 0; k < nsizes; k++) {
		double v[MAX_ROUNDS], q[MAX_ROUNDS];

		for (int t = 0; t < NT; t++)
			for (int d = 0; d < ND; d++) {
				for (int m = 0; m < NM; m++) {
					for (int r = 0; r < rounds; r++)
						v[r] = g[r][t][m][d][k];
					med[t][m][d][k] =
						bench_median(v, rounds);
				}
				for (int r = 0; r < rounds; r++)
					q[r] = g[r][t][1][d][k] > 0
						       ? g[r][t][0][d]
							  [k] / g[r][t][1][d][k]
						       : 0;
				ratio[t][d][k] = bench_median(q, rounds);
			}
		for (int r = 0; r < rounds; r++)
			v[r] = mc[r][k];
		mmc[k] = bench_median(v, rounds);
	}
	for (int d = 0; d < ND; d++) {
		printf("%s, genie-runtime --backend cpu, placed vs copied; "
		       "median of %d round%s, GB/s\n",
		       d_plural[d], rounds, rounds > 1 ? "s" : "");
		printf("%-10s %9s %9s %7s %9s %9s %7s %9s\n", "size", "tcp pl",
		       "tcp cp", "ratio", "dpdk pl", "dpdk cp", "ratio",
		       "memcpy");
		for (int k = 0; k < nsizes; k++)
			printf("%-10zu %9.3f %9.3f %7.2f %9.3f %9.3f %7.2f "
			       "%9.3f\n",
			       sizes[k], med[0][0][d][k], med[0][1][d][k],
			       ratio[0][d][k], med[1][0][d][k], med[1][1][d][k],
			       ratio[1][d][k], mmc[k]);
	}
	if (json) {
		int k = k64 >= 0 ? k64 : nsizes - 1;

		printf("{\"size\": %zu, \"rounds\": %d", sizes[k], rounds);
		for (int d = 0; d < ND; d++)
			for (int t = 0; t < NT; t++) {
				for (int m = 0; m < NM; m++)
					printf(", \"%s_gbytes_per_s_%s_%s\": "
					       "%.3f",
					       d_name[d], t_name[t], m_name[m],
					       med[t][m][d][k]);
				printf(", \"%s_placed_over_copied_%s\": %.3f",
				       d_name[d], t_name[t], ratio[t][d][k]);
			}
		printf(", \"memcpy_gbytes_per_s\": %.3f}\n", mmc[k]);
	}
	return 0;
}
