/*
 * tests/bench/transport: Genie's transports side by side in one run.
 *
 *   transport [--quick] [--json] [--only tcp|dpdk] [--sizes LIST]
 *             [--total BYTES]
 *
 * For each transport (TCP on loopback; DPDK memif between two processes,
 * without hugepages) a child process echoes: it answers every request of
 * the client with a 64-byte reply. The client measures round trips of
 * 64-byte requests (p50/p99 over many) and bulk bandwidth: messages of
 * 4 KiB to 256 MiB sent one after another, each answered with 64 bytes,
 * bytes / time (256 MiB of each size, or --total BYTES, at least two
 * messages). Single-core memcpy bandwidth on the same sizes is the
 * yardstick. With --json the last line holds bulk_gbytes_per_s_dpdk,
 * bulk_gbytes_per_s_tcp, memcpy_gbytes_per_s (64 MiB messages),
 * rtt_p50_us_dpdk, rtt_p99_us_dpdk, rtt_p50_us_tcp, rtt_p99_us_tcp.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "gn_error.h"
#include "transport.h"

#define MAX_SIZES 16

static uint64_t now_ns(void)
{
	return gn_clock_ns();
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* The echo side: answer each message with 64 bytes until the peer goes. */
static int serve(const char *url, const char *port_file)
{
	struct gn_transport_opts o;
	struct gn_listener *l = NULL;
	struct gn_conn *c = NULL;
	uint8_t env[64] = {0};
	int rc;

	gn_transport_opts_init(&o, sizeof(o));
	rc = gn_listen(url, &o, &l);
	if (rc != 0) {
		fprintf(stderr, "transport: listen %s: %s\n", url,
			gn_last_error());
		return 1;
	}
	if (port_file != NULL) {
		FILE *f = fopen(port_file, "w");

		if (f == NULL)
			return 1;
		fprintf(f, "%s\n", l->addr);
		fclose(f);
	}
	rc = l->ops->accept(l, -1, &c);
	while (rc == 0) {
		struct gn_msg m;

		rc = gn_conn_recv(c, &m, -1);
		if (rc != 0)
			break;
		gn_msg_release(&m);
		rc = gn_conn_send(c, env, sizeof(env), NULL, 0, -1);
	}
	gn_conn_close(&c);
	gn_listener_close(&l);
	return 0;
}

struct result {
	int ran;
	double rtt_p50_us, rtt_p99_us;
	double gbps[MAX_SIZES];
};

static int round_trip(struct gn_conn *c, const uint8_t *env, size_t env_len,
		      const struct iovec *iov, int n)
{
	struct gn_msg m;
	int rc = gn_conn_send(c, env, env_len, iov, n, -1);

	if (rc == 0)
		rc = gn_conn_recv(c, &m, 60000);
	if (rc == 0)
		gn_msg_release(&m);
	return rc;
}

static int measure(const char *url, int quick, size_t total,
		   const size_t *sizes, int nsizes, struct result *r)
{
	struct gn_transport_opts o;
	struct gn_conn *c = NULL;
	uint8_t env[64] = {1};
	int iters = quick ? 2000 : 20000, rc;
	uint64_t *lat = calloc((size_t)iters, sizeof(*lat));
	uint8_t *big = NULL;
	size_t maxsz = 0;

	for (int i = 0; i < nsizes; i++)
		maxsz = sizes[i] > maxsz ? sizes[i] : maxsz;
	big = malloc(maxsz);
	if (lat == NULL || big == NULL)
		return -ENOMEM;
	memset(big, 0x5a, maxsz);
	gn_transport_opts_init(&o, sizeof(o));
	rc = gn_connect(url, &o, 20000, &c);
	if (rc != 0) {
		fprintf(stderr, "transport: connect %s: %s\n", url,
			gn_last_error());
		goto out;
	}
	/* Round trips of 64-byte requests (after a warm-up). */
	for (int i = 0; i < iters / 10 && rc == 0; i++)
		rc = round_trip(c, env, sizeof(env), NULL, 0);
	for (int i = 0; i < iters && rc == 0; i++) {
		uint64_t t0 = now_ns();

		rc = round_trip(c, env, sizeof(env), NULL, 0);
		lat[i] = now_ns() - t0;
	}
	if (rc != 0)
		goto out;
	qsort(lat, (size_t)iters, sizeof(*lat), cmp_u64);
	r->rtt_p50_us = (double)lat[iters / 2] / 1e3;
	r->rtt_p99_us = (double)lat[iters * 99 / 100] / 1e3;
	/* Bulk: messages of each size, each answered, over >= 64 MiB. */
	for (int k = 0; k < nsizes && rc == 0; k++) {
		int n = (int)(total / sizes[k]);
		struct iovec iov = {big, sizes[k]};
		uint64_t t0;

		if (n < 2)
			n = 2;
		rc = round_trip(c, env, sizeof(env), &iov, 1); /* warm */
		t0 = now_ns();
		for (int i = 0; i < n && rc == 0; i++)
			rc = round_trip(c, env, sizeof(env), &iov, 1);
		r->gbps[k] = (double)sizes[k] * n / (double)(now_ns() - t0);
	}
	if (rc == 0)
		r->ran = 1;
out:
	gn_conn_close(&c);
	free(lat);
	free(big);
	return rc;
}

static double memcpy_gbps(size_t size, int quick)
{
	uint8_t *a = malloc(size), *b = malloc(size);
	size_t total = quick ? (256u << 20) : (2048ull << 20);
	int n = (int)(total / size);
	uint64_t t0;

	if (a == NULL || b == NULL) {
		free(a);
		free(b);
		return 0;
	}
	memset(a, 1, size);
	memset(b, 2, size);
	memcpy(b, a, size);
	t0 = now_ns();
	for (int i = 0; i < (n ? n : 1); i++) {
		a[i % size] = (uint8_t)i; /* keep each copy honest */
		memcpy(b, a, size);
	}
	t0 = now_ns() - t0;
	free(a);
	free(b);
	return (double)size * (n ? n : 1) / (double)t0;
}

int main(int argc, char **argv)
{
	static const size_t def_sizes[] = {4u << 10,  64u << 10, 1u << 20,
					   16u << 20, 64u << 20, 256u << 20};
	const char *only = NULL;
	int quick = 0, json = 0, nsizes = 6, ok = 1, sized = 0;
	size_t total = 0;
	size_t sizes[MAX_SIZES];
	struct result tcp = {0}, dpdk = {0};
	double mc[MAX_SIZES];
	char dir[] = "/tmp/genie-bench-tr-XXXXXX", url[256], pf[300];
	int i64; /* index of 64 MiB, -1 when not measured */

	memcpy(sizes, def_sizes, sizeof(def_sizes));
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--quick") == 0) {
			quick = 1;
		} else if (strcmp(argv[i], "--json") == 0) {
			json = 1;
		} else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc) {
			only = argv[++i];
		} else if (strcmp(argv[i], "--sizes") == 0 && i + 1 < argc) {
			char *list = argv[++i], *end;

			for (nsizes = 0; *list && nsizes < MAX_SIZES;
			     nsizes++) {
				sizes[nsizes] = strtoull(list, &end, 10);
				if (end == list || sizes[nsizes] == 0 ||
				    (*end != ',' && *end != '\0')) {
					fprintf(stderr,
						"transport: --sizes wants "
						"byte counts separated by "
						"commas, saw '%s'\n",
						list);
					return 2;
				}
				list = *end ? end + 1 : end;
			}
			sized = 1;
		} else if (strcmp(argv[i], "--total") == 0 && i + 1 < argc) {
			char *end;

			total = strtoull(argv[++i], &end, 10);
			if (end == argv[i] || *end != '\0' || total == 0 ||
			    total > (64ull << 30)) {
				fprintf(stderr,
					"transport: --total wants a byte count "
					"of 1 to 68719476736, saw '%s'\n",
					argv[i]);
				return 2;
			}
		} else if (strcmp(argv[i], "--serve") == 0 && i + 2 < argc) {
			/* internal: the echo child */
			return serve(argv[i + 1], argv[i + 2]);
		} else {
			fprintf(stderr,
				"usage: transport [--quick] [--json] [--only "
				"tcp|dpdk] [--sizes BYTES,BYTES...] "
				"[--total BYTES]\n");
			return 2;
		}
	}
	if (quick && !sized) /* 256 MiB messages only in full runs */
		nsizes = 5;
	if (total == 0)
		total = quick ? (16u << 20) : (256u << 20);
	i64 = -1;
	for (int k = 0; k < nsizes; k++)
		if (sizes[k] == (64u << 20))
			i64 = k;
	if (mkdtemp(dir) == NULL)
		return 1;
	for (int t = 0; t < 2; t++) {
		const char *name = t == 0 ? "tcp" : "dpdk";
		struct result *r = t == 0 ? &tcp : &dpdk;
		pid_t pid;
		int st;

		if (only != NULL && strcmp(only, name) != 0)
			continue;
		snprintf(pf, sizeof(pf), "%s/%s.addr", dir, name);
		if (t == 0)
			snprintf(url, sizeof(url), "tcp://127.0.0.1:0");
		else
			snprintf(url, sizeof(url), "dpdk://memif:%s/sock", dir);
		pid = fork();
		if (pid == 0) {
			execl("/proc/self/exe", argv[0], "--serve", url, pf,
			      (char *)NULL);
			_exit(127);
		}
		if (t == 0) {
			/* TCP: the child picks the port; read it back. */
			FILE *f = NULL;

			for (int k = 0; k < 500 && f == NULL; k++) {
				f = fopen(pf, "r");
				if (f == NULL) {
					struct timespec d = {0, 10000000};

					nanosleep(&d, NULL);
				}
			}
			if (f == NULL || fscanf(f, "%200s", url + 6) != 1) {
				fprintf(stderr, "transport: no port from the "
						"tcp echo child\n");
				ok = 0;
			}
			if (f)
				fclose(f);
		}
		fprintf(stderr, "transport: measuring %s\n", url);
		if (ok && measure(url, quick, total, sizes, nsizes, r) != 0)
			ok = 0;
		kill(pid, SIGTERM);
		waitpid(pid, &st, 0);
		unlink(pf);
	}
	for (int k = 0; k < nsizes; k++)
		mc[k] = memcpy_gbps(sizes[k], quick);
	rmdir(dir);

	printf("transport: 64 B round trips and bulk bandwidth, TCP on "
	       "loopback vs DPDK memif (no hugepages), one client\n");
	printf("%-10s %12s %12s\n", "rtt", "p50 us", "p99 us");
	if (tcp.ran)
		printf("%-10s %12.2f %12.2f\n", "tcp", tcp.rtt_p50_us,
		       tcp.rtt_p99_us);
	if (dpdk.ran)
		printf("%-10s %12.2f %12.2f\n", "dpdk", dpdk.rtt_p50_us,
		       dpdk.rtt_p99_us);
	printf("%-10s %12s %12s %12s %10s %10s\n", "size", "tcp GB/s",
	       "dpdk GB/s", "memcpy GB/s", "dpdk/tcp", "dpdk/mcpy");
	for (int k = 0; k < nsizes; k++)
		printf("%-10zu %12.3f %12.3f %12.3f %10.2f %10.2f\n", sizes[k],
		       tcp.gbps[k], dpdk.gbps[k], mc[k],
		       tcp.gbps[k] > 0 ? dpdk.gbps[k] / tcp.gbps[k] : 0,
		       mc[k] > 0 ? dpdk.gbps[k] / mc[k] : 0);
	if (json)
		printf("{\"quick\": %s, \"bulk_gbytes_per_s_dpdk\": %.3f, "
		       "\"bulk_gbytes_per_s_tcp\": %.3f, "
		       "\"memcpy_gbytes_per_s\": %.3f, \"rtt_p50_us_dpdk\": "
		       "%.2f, \"rtt_p99_us_dpdk\": %.2f, \"rtt_p50_us_tcp\": "
		       "%.2f, \"rtt_p99_us_tcp\": %.2f, \"ok\": %s}\n",
		       quick ? "true" : "false", i64 < 0 ? 0 : dpdk.gbps[i64],
		       i64 < 0 ? 0 : tcp.gbps[i64], i64 < 0 ? 0 : mc[i64],
		       dpdk.rtt_p50_us, dpdk.rtt_p99_us, tcp.rtt_p50_us,
		       tcp.rtt_p99_us, ok ? "true" : "false");
	return ok ? 0 : 1;
}
