/*
 * genie-demo: the walking skeleton from a client's point of view.
 *
 * Records y = relu(x @ W + b) lazily, materializes it on the target
 * (a genie-runtime over TCP, or in-process), checks the result against the
 * same computation done here with plain loops, and prints what moved and
 * how long it took. Exits non-zero if anything disagrees.
 */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <genie/genie.h>

static float frand(uint64_t *state)
{
	/* xorshift64*: reproducible inputs without libc's rand(). */
	*state ^= *state >> 12;
	*state ^= *state << 25;
	*state ^= *state >> 27;
	return (float)((*state * 2685821657736338717ull) >> 40) /
		       (float)(1 << 24) * 2.0f -
	       1.0f;
}

static void reference(const float *x, const float *w, const float *b, float *y,
		      int m, int k, int n)
{
	for (int i = 0; i < m; i++)
		for (int j = 0; j < n; j++) {
			double acc = b[j];

			for (int p = 0; p < k; p++)
				acc += (double)x[i * k + p] * w[p * n + j];
			y[i * n + j] = acc > 0 ? (float)acc : 0.0f;
		}
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: genie-demo [--target local|tcp://HOST:PORT] "
		   "[--m M] [--k K] [--n N] [--repeat R] [--seed S]\n");
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{"target", required_argument, NULL, 't'},
		{"m", required_argument, NULL, 'm'},
		{"k", required_argument, NULL, 'k'},
		{"n", required_argument, NULL, 'n'},
		{"repeat", required_argument, NULL, 'r'},
		{"seed", required_argument, NULL, 's'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	const char *target = "local";
	int m = 64, k = 256, n = 128, repeat = 20, c;
	uint64_t seed = 42;

	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case 't': target = optarg; break;
		case 'm': m = atoi(optarg); break;
		case 'k': k = atoi(optarg); break;
		case 'n': n = atoi(optarg); break;
		case 'r': repeat = atoi(optarg); break;
		case 's': seed = strtoull(optarg, NULL, 0); break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (m <= 0 || k <= 0 || n <= 0 || repeat <= 0 || seed == 0) {
		fprintf(stderr, "genie-demo: --m/--k/--n/--repeat must be > 0 "
				"and --seed non-zero\n");
		return 2;
	}

	float *x = malloc(sizeof(float) * (size_t)m * k);
	float *w = malloc(sizeof(float) * (size_t)k * n);
	float *b = malloc(sizeof(float) * (size_t)n);
	float *y = malloc(sizeof(float) * (size_t)m * n);
	float *ref = malloc(sizeof(float) * (size_t)m * n);
	uint64_t *lat = calloc((size_t)repeat, sizeof(uint64_t));
	if (!x || !w || !b || !y || !ref || !lat) {
		fprintf(stderr, "genie-demo: out of memory\n");
		return 1;
	}
	for (int i = 0; i < m * k; i++)
		x[i] = frand(&seed);
	for (int i = 0; i < k * n; i++)
		w[i] = frand(&seed) * 0.1f;
	for (int i = 0; i < n; i++)
		b[i] = frand(&seed);
	reference(x, w, b, ref, m, k, n);

	struct gn_session_opts opts;
	gn_session_opts_init(&opts, sizeof(opts));
	opts.target = target;
	opts.name = "genie-demo";
	struct gn_session *s = gn_session_create(&opts);
	if (s == NULL) {
		fprintf(stderr, "genie-demo: cannot open session on %s: %s\n",
			target, gn_last_error());
		return 1;
	}
	printf("genie-demo: session on %s, backend %s\n", target,
	       gn_session_backend(s));
	printf("genie-demo: recording y = relu(x @ W + b), x [%d,%d], "
	       "W [%d,%d], b [%d]\n",
	       m, k, k, n, n);

	double max_err = 0;
	struct gn_session_stats st = {0};
	int rc = 0;
	for (int r = 0; r < repeat && rc == 0; r++) {
		int64_t xs[] = {m, k}, ws[] = {k, n}, bs[] = {n};
		/* Borrowed: the demo's buffers outlive the session. */
		struct gn_tensor *tx = gn_tensor_from_host(
			s, GN_DTYPE_F32, 2, xs, x, GN_TENSOR_BORROW);
		struct gn_tensor *tw = gn_tensor_from_host(
			s, GN_DTYPE_F32, 2, ws, w, GN_TENSOR_BORROW);
		struct gn_tensor *tb = gn_tensor_from_host(
			s, GN_DTYPE_F32, 1, bs, b, GN_TENSOR_BORROW);
		struct gn_tensor *ty = gn_relu(gn_add(gn_matmul(tx, tw), tb));

		if (ty == NULL) {
			fprintf(stderr, "genie-demo: recording failed: %s\n",
				gn_last_error());
			rc = 1;
			break;
		}
		rc = gn_tensor_to_host(ty, y, sizeof(float) * (size_t)m * n);
		if (rc != 0) {
			fprintf(stderr,
				"genie-demo: materialize failed: %s "
				"(%s)\n",
				gn_last_error(), gn_strerror(rc));
			rc = 1;
			break;
		}
		gn_session_get_stats(s, &st);
		lat[r] = st.last_latency_ns;
		for (int i = 0; i < m * n; i++) {
			double e = fabs((double)y[i] - ref[i]) /
				   (1.0 + fabs((double)ref[i]));
			if (e > max_err)
				max_err = e;
		}
	}
	if (rc == 0) {
		gn_session_get_stats(s, &st);
		qsort(lat, (size_t)repeat, sizeof(*lat), cmp_u64);
		printf("genie-demo: %d runs, bytes sent %llu, bytes received "
		       "%llu\n",
		       repeat, (unsigned long long)st.bytes_sent,
		       (unsigned long long)st.bytes_received);
		printf("genie-demo: latency min %.1f us, p50 %.1f "
		       "us, max %.1f us (last backend exec %.1f us)\n",
		       lat[0] / 1e3, lat[repeat / 2] / 1e3,
		       lat[repeat - 1] / 1e3, st.last_exec_ns / 1e3);
		printf("genie-demo: max relative error vs local reference "
		       "%.3g (tolerance 1e-5)\n",
		       max_err);
		if (max_err > 1e-5) {
			fprintf(stderr, "genie-demo: MISMATCH\n");
			rc = 1;
		} else {
			printf("genie-demo: result matches local "
			       "computation\n");
		}
	}
	gn_session_destroy(&s);
	free(x);
	free(w);
	free(b);
	free(y);
	free(ref);
	free(lat);
	return rc;
}
