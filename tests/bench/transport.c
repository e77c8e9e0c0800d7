/*
 * tests/bench/transport: Genie's transports side by side in one run.
 *
 *   transport [--quick] [--json] [--only tcp|dpdk] [--sizes LIST]
 *             [--total BYTES] [--rounds N]
 *
 * For each transport (TCP on loopback; DPDK memif between two processes,
 * without hugepages) a child process echoes: it answers every request of
 * the client with a 64-byte reply. The client measures round trips of
 * 64-byte requests (p50/p99 over many) and bulk bandwidth: messages of
 * 4 KiB to 256 MiB sent one after another, each answered with 64 bytes,
 * bytes / time (256 MiB of each size, or --total BYTES, at least two
 * messages). Single-core memcpy bandwidth on the same sizes is the
 * yardstick, and beside it the copy ring (copy_ring_gbps()): two threads
 * making a memif transfer's three copies with plain memcpy and nothing
 * else, a yardstick of what that structure moves on this host. Both children
 * stay up for the whole run, which measures in rounds (5, or 1 with --quick, or
 * --rounds N): each round takes every transport's round trips, then for each
 * size memcpy, the ring, TCP and DPDK one right after the other. The table
 * shows per-size medians over the rounds, each ratio the median of the
 * rounds' own ratios, and round-trip quantiles over all rounds' samples;
 * each round's 64 MiB figures go to stderr. With --json the last line
 * holds bulk_gbytes_per_s_dpdk, bulk_gbytes_per_s_tcp,
 * memcpy_gbytes_per_s (64 MiB messages), bulk_dpdk_over_tcp,
 * bulk_dpdk_over_memcpy, ring_gbytes_per_s, bulk_dpdk_over_ring,
 * rtt_p50_us_dpdk, rtt_p99_us_dpdk, rtt_p50_us_tcp, rtt_p99_us_tcp.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "backend_proc.h"
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

#define MAX_ROUNDS 32

/* One transport's echo child and connection, kept for the whole run. */
struct side {
	const char *name;
	char url[256];
	pid_t pid;
	struct gn_conn *c;
	int ran;
	uint64_t *lat; /* every round's round trips, pooled */
	size_t nlat;
	double rtt_p50_us, rtt_p99_us;
	double gbps[MAX_ROUNDS][MAX_SIZES];
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

/* Round trips of 64-byte requests (after a warm-up), appended to s->lat. */
static int measure_rtt(struct side *s, int iters)
{
	uint8_t env[64] = {1};
	int rc = 0;

	for (int i = 0; i < iters / 10 && rc == 0; i++)
		rc = round_trip(s->c, env, sizeof(env), NULL, 0);
	for (int i = 0; i < iters && rc == 0; i++) {
		uint64_t t0 = now_ns();

		rc = round_trip(s->c, env, sizeof(env), NULL, 0);
		s->lat[s->nlat++] = now_ns() - t0;
	}
	return rc;
}

/* Messages of one size, each answered, `total` bytes (two at least). */
static int measure_bulk(struct side *s, const uint8_t *big, size_t size,
			size_t total, double *gbps)
{
	uint8_t env[64] = {1};
	int n = (int)(total / size), rc;
	struct iovec iov = {(void *)big, size};
	uint64_t t0;

	if (n < 2)
		n = 2;
	rc = round_trip(s->c, env, sizeof(env), &iov, 1); /* warm */
	t0 = now_ns();
	for (int i = 0; i < n && rc == 0; i++)
		rc = round_trip(s->c, env, sizeof(env), &iov, 1);
	*gbps = (double)size * n / (double)(now_ns() - t0);
	return rc;
}

/*
 * The copies of a memif transfer without the transport, as a yardstick
 * of what this host lets that structure move (not a bound: the driver's
 * copies are not memcpy's, and the host's state swings): a sending thread
 * copies each packet (a 106-byte header and up to 16,272 bytes of the
 * message) into the next 16 KiB buffer of a 1,024-buffer ring, as
 * net_memif's send does; a receiving thread copies the buffer into one of
 * 32 packet buffers (net_memif's receive into an mbuf) and the payload
 * from there into its place in the destination (rel's reassembly). The
 * sender waits for the whole message before the next, as the transports
 * wait for their 64-byte reply. Plain memcpy for all three copies; no
 * protocol.
 */
#define RING_FRAME 16384u
#define RING_HDR 106u
#define RING_PAYLOAD ((RING_FRAME - RING_HDR) & ~15u) /* as the engine */
#define RING_SLOTS 1024u
#define RING_PKTBUFS 32u

struct copy_ring {
	const uint8_t *src;
	uint8_t *dst, *slots, *pkt;
	size_t size;
	size_t n;	     /* messages */
	uint64_t head, tail; /* packets written / read (atomics) */
};

static void spin_pause(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

static void *copy_ring_receiver(void *arg)
{
	struct copy_ring *r = arg;
	uint64_t t = 0;

	for (size_t m = 0; m < r->n; m++)
		for (size_t off = 0; off < r->size; off += RING_PAYLOAD, t++) {
			size_t len = r->size - off < RING_PAYLOAD
					     ? r->size - off
					     : RING_PAYLOAD;
			uint8_t *slot = r->slots +
					(t % RING_SLOTS) * (size_t)RING_FRAME;
			uint8_t *pkt = r->pkt +
				       (t % RING_PKTBUFS) * (size_t)RING_FRAME;

			while (__atomic_load_n(&r->head, __ATOMIC_ACQUIRE) == t)
				spin_pause();
			memcpy(pkt, slot, RING_HDR + len);
			memcpy(r->dst + off, pkt + RING_HDR, len);
			__atomic_store_n(&r->tail, t + 1, __ATOMIC_RELEASE);
		}
	return NULL;
}

static void copy_ring_send(struct copy_ring *r, uint64_t *h)
{
	for (size_t off = 0; off < r->size; off += RING_PAYLOAD, (*h)++) {
		size_t len = r->size - off < RING_PAYLOAD ? r->size - off
							  : RING_PAYLOAD;
		uint8_t *slot =
			r->slots + (*h % RING_SLOTS) * (size_t)RING_FRAME;

		while (*h - __atomic_load_n(&r->tail, __ATOMIC_ACQUIRE) >=
		       RING_SLOTS)
			spin_pause();
		memset(slot, (int)(*h & 0xff), RING_HDR);
		memcpy(slot + RING_HDR, r->src + off, len);
		__atomic_store_n(&r->head, *h + 1, __ATOMIC_RELEASE);
	}
	while (__atomic_load_n(&r->tail, __ATOMIC_ACQUIRE) != *h)
		spin_pause();
}

/* GB/s of `size`-byte messages through the copy ring (`total` bytes). */
static double copy_ring_gbps(const uint8_t *src, size_t size, size_t total)
{
	struct copy_ring r = {.src = src, .size = size};
	pthread_t th;
	uint64_t h = 0;
	uint64_t t0;
	double gbps = 0;

	r.n = total / size < 2 ? 3 : total / size + 1; /* one to warm */
	r.dst = malloc(size);
	r.slots = malloc((size_t)RING_SLOTS * RING_FRAME);
	r.pkt = malloc((size_t)RING_PKTBUFS * RING_FRAME);
	if (r.dst == NULL || r.slots == NULL || r.pkt == NULL)
		goto out;
	memset(r.dst, 0, size);
	memset(r.slots, 0, (size_t)RING_SLOTS * RING_FRAME);
	memset(r.pkt, 0, (size_t)RING_PKTBUFS * RING_FRAME);
	if (pthread_create(&th, NULL, copy_ring_receiver, &r) != 0)
		goto out;
	copy_ring_send(&r, &h);
	t0 = now_ns();
	for (size_t m = 1; m < r.n; m++)
		copy_ring_send(&r, &h);
	gbps = (double)size * (double)(r.n - 1) / (double)(now_ns() - t0);
	pthread_join(th, NULL);
	if (memcmp(r.dst, src, size) != 0) {
		fprintf(stderr, "transport: copy ring: destination differs "
				"from the source\n");
		gbps = 0;
	}
out:
	free(r.dst);
	free(r.slots);
	free(r.pkt);
	return gbps;
}

/* Start the echo child for s->url and connect to it. */
static int side_start(struct side *s, const char *argv0, const char *dir,
		      int iters_total)
{
	struct gn_transport_opts o;
	char pf[300];
	int rc;

	snprintf(pf, sizeof(pf), "%s/%s.addr", dir, s->name);
	s->lat = calloc((size_t)iters_total, sizeof(*s->lat));
	if (s->lat == NULL)
		return -ENOMEM;
	s->pid = fork();
	if (s->pid == 0) {
		execl("/proc/self/exe", argv0, "--serve", s->url, pf,
		      (char *)NULL);
		_exit(127);
	}
	if (s->pid < 0)
		return -errno;
	if (strncmp(s->url, "tcp://", 6) == 0) {
		/* TCP: the child picks the port; read it back. */
		FILE *f = NULL;

		for (int k = 0; k < 500 && f == NULL; k++) {
			f = fopen(pf, "r");
			if (f == NULL) {
				struct timespec d = {0, 10000000};

				nanosleep(&d, NULL);
			}
		}
		rc = f != NULL && fscanf(f, "%200s", s->url + 6) == 1;
		if (f)
			fclose(f);
		unlink(pf);
		if (!rc) {
			fprintf(stderr, "transport: no port from the tcp "
					"echo child\n");
			return -EIO;
		}
	}
	fprintf(stderr, "transport: measuring %s\n", s->url);
	gn_transport_opts_init(&o, sizeof(o));
	rc = gn_connect(s->url, &o, 20000, &s->c);
	if (rc != 0)
		fprintf(stderr, "transport: connect %s: %s\n", s->url,
			gn_last_error());
	return rc;
}

static void side_stop(struct side *s, const char *dir)
{
	char pf[300];
	int st;

	gn_conn_close(&s->c);
	if (s->pid > 0) {
		kill(s->pid, SIGTERM);
		waitpid(s->pid, &st, 0);
	}
	snprintf(pf, sizeof(pf), "%s/%s.addr", dir, s->name);
	unlink(pf);
	free(s->lat);
	s->lat = NULL;
}

int main(int argc, char **argv)
{
	static const size_t def_sizes[] = {4u << 10,  64u << 10, 1u << 20,
					   16u << 20, 64u << 20, 256u << 20};
	const char *only = NULL;
	int quick = 0, json = 0, nsizes = 6, ok = 1, sized = 0, rounds = 0;
	int iters;
	size_t total = 0, maxsz = 0;
	size_t sizes[MAX_SIZES];
	struct side sides[2] = {{.name = "tcp"}, {.name = "dpdk"}};
	struct side *tcp = &sides[0], *dpdk = &sides[1];
	static double mc[MAX_ROUNDS][MAX_SIZES], rg[MAX_ROUNDS][MAX_SIZES];
	double med_mc[MAX_SIZES], med_t[MAX_SIZES], med_d[MAX_SIZES];
	double med_rg[MAX_SIZES], r_t[MAX_SIZES], r_m[MAX_SIZES];
	double r_g[MAX_SIZES];
	char dir[] = "/tmp/genie-bench-tr-XXXXXX";
	uint8_t *big = NULL;
	int i64; /* index of 64 MiB, -1 when not measured */

	memcpy(sizes, def_sizes, sizeof(def_sizes));
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--quick") == 0) {
			quick = 1;
		} else if (strcmp(argv[i], "--json") == 0) {
			json = 1;
		} else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc) {
			only = argv[++i];
			if (strcmp(only, "tcp") != 0 &&
			    strcmp(only, "dpdk") != 0) {
				fprintf(stderr,
					"transport: --only wants tcp or dpdk, "
					"saw '%s'\n",
					only);
				return 2;
			}
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
		} else if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc) {
			char *end;
			long v = strtol(argv[++i], &end, 10);

			if (end == argv[i] || *end != '\0' || v < 1 ||
			    v > MAX_ROUNDS) {
				fprintf(stderr,
					"transport: --rounds wants 1 to %d, "
					"saw '%s'\n",
					MAX_ROUNDS, argv[i]);
				return 2;
			}
			rounds = (int)v;
		} else if (strcmp(argv[i], "--serve") == 0 && i + 2 < argc) {
			/* internal: the echo child */
			return serve(argv[i + 1], argv[i + 2]);
		} else {
			fprintf(stderr,
				"usage: transport [--quick] [--json] [--only "
				"tcp|dpdk] [--sizes BYTES,BYTES...] "
				"[--total BYTES] [--rounds N]\n");
			return 2;
		}
	}
	if (quick && !sized) /* 256 MiB messages only in full runs */
		nsizes = 5;
	if (total == 0)
		total = quick ? (16u << 20) : (256u << 20);
	if (rounds == 0)
		rounds = quick ? 1 : 5;
	iters = quick ? 2000 : 20000;
	i64 = -1;
	for (int k = 0; k < nsizes; k++) {
		if (sizes[k] == (64u << 20))
			i64 = k;
		maxsz = sizes[k] > maxsz ? sizes[k] : maxsz;
	}
	big = malloc(maxsz);
	if (big == NULL || mkdtemp(dir) == NULL)
		return 1;
	memset(big, 0x5a, maxsz);
	snprintf(tcp->url, sizeof(tcp->url), "tcp://127.0.0.1:0");
	snprintf(dpdk->url, sizeof(dpdk->url), "dpdk://memif:%s/sock", dir);
	/* Both echo children stay up; an idle one sleeps in its recv. */
	for (int t = 0; t < 2 && ok; t++) {
		if (only != NULL && strcmp(only, sides[t].name) != 0)
			continue;
		if (side_start(&sides[t], argv[0], dir, iters * rounds) != 0)
			ok = 0;
		sides[t].ran = ok;
	}
	/*
	 * Rounds: in each, the round trips of each transport, then for each
	 * size memcpy, the copy ring, TCP and DPDK one after the other, so
	 * that the figures a ratio compares come from the same minute of the
	 * host.
	 */
	for (int r = 0; r < rounds && ok; r++) {
		for (int t = 0; t < 2 && ok; t++)
			if (sides[t].ran && measure_rtt(&sides[t], iters) != 0)
				ok = 0;
		for (int k = 0; k < nsizes && ok; k++) {
			mc[r][k] = bench_memcpy_gbps(sizes[k],
						     quick ? (256u << 20)
							   : (2048ull << 20));
			rg[r][k] = copy_ring_gbps(big, sizes[k], total);
			for (int t = 0; t < 2 && ok; t++)
				if (sides[t].ran &&
				    measure_bulk(&sides[t], big, sizes[k],
						 total,
						 &sides[t].gbps[r][k]) != 0)
					ok = 0;
		}
		if (rounds > 1)
			fprintf(stderr,
				"transport: round %d of %d: 64 MiB tcp %.3f "
				"dpdk %.3f memcpy %.3f ring %.3f GB/s\n",
				r + 1, rounds, i64 < 0 ? 0 : tcp->gbps[r][i64],
				i64 < 0 ? 0 : dpdk->gbps[r][i64],
				i64 < 0 ? 0 : mc[r][i64],
				i64 < 0 ? 0 : rg[r][i64]);
	}
	for (int t = 0; t < 2; t++) {
		struct side *s = &sides[t];

		if (!ok && s->c != NULL)
			fprintf(stderr, "transport: %s: %s\n", s->name,
				gn_last_error());
		if (s->nlat > 0) {
			qsort(s->lat, s->nlat, sizeof(*s->lat), cmp_u64);
			s->rtt_p50_us = (double)s->lat[s->nlat / 2] / 1e3;
			s->rtt_p99_us =
				(double)s->lat[s->nlat * 99 / 100] / 1e3;
		}
		side_stop(s, dir);
	}
	rmdir(dir);
	free(big);
	if (!ok)
		return 1;

	/* Medians over the rounds; ratios are medians of each round's. */
	for (int k = 0; k < nsizes; k++) {
		double v[4][MAX_ROUNDS], rt[MAX_ROUNDS], rm[MAX_ROUNDS];
		double rr[MAX_ROUNDS];

		for (int r = 0; r < rounds; r++) {
			v[0][r] = mc[r][k];
			v[1][r] = tcp->gbps[r][k];
			v[2][r] = dpdk->gbps[r][k];
			rt[r] = v[1][r] > 0 ? v[2][r] / v[1][r] : 0;
			rm[r] = v[0][r] > 0 ? v[2][r] / v[0][r] : 0;
			v[3][r] = rg[r][k];
			rr[r] = v[3][r] > 0 ? v[2][r] / v[3][r] : 0;
		}
		med_mc[k] = bench_median(v[0], rounds);
		med_t[k] = bench_median(v[1], rounds);
		med_d[k] = bench_median(v[2], rounds);
		r_t[k] = bench_median(rt, rounds);
		r_m[k] = bench_median(rm, rounds);
		med_rg[k] = bench_median(v[3], rounds);
		r_g[k] = bench_median(rr, rounds);
	}
	printf("transport: 64 B round trips and bulk bandwidth, TCP on "
	       "loopback vs DPDK memif (no hugepages), one client; median "
	       "of %d round%s\n",
	       rounds, rounds > 1 ? "s" : "");
	printf("%-10s %12s %12s\n", "rtt", "p50 us", "p99 us");
	for (int t = 0; t < 2; t++)
		if (sides[t].ran)
			printf("%-10s %12.2f %12.2f\n", sides[t].name,
			       sides[t].rtt_p50_us, sides[t].rtt_p99_us);
	printf("%-10s %12s %12s %12s %12s %10s %10s %10s\n", "size", "tcp GB/s",
	       "dpdk GB/s", "memcpy GB/s", "ring GB/s", "dpdk/tcp", "dpdk/mcpy",
	       "dpdk/ring");
	for (int k = 0; k < nsizes; k++)
		printf("%-10zu %12.3f %12.3f %12.3f %12.3f %10.2f %10.2f "
		       "%10.2f\n",
		       sizes[k], med_t[k], med_d[k], med_mc[k], med_rg[k],
		       r_t[k], r_m[k], r_g[k]);
	if (json)
		printf("{\"quick\": %s, \"rounds\": %d, "
		       "\"bulk_gbytes_per_s_dpdk\": %.3f, "
		       "\"bulk_gbytes_per_s_tcp\": %.3f, "
		       "\"memcpy_gbytes_per_s\": %.3f, "
		       "\"bulk_dpdk_over_tcp\": %.2f, "
		       "\"bulk_dpdk_over_memcpy\": %.2f, "
		       "\"ring_gbytes_per_s\": %.3f, "
		       "\"bulk_dpdk_over_ring\": %.2f, \"rtt_p50_us_dpdk\": "
		       "%.2f, \"rtt_p99_us_dpdk\": %.2f, \"rtt_p50_us_tcp\": "
		       "%.2f, \"rtt_p99_us_tcp\": %.2f, \"ok\": true}\n",
		       quick ? "true" : "false", rounds,
		       i64 < 0 ? 0 : med_d[i64], i64 < 0 ? 0 : med_t[i64],
		       i64 < 0 ? 0 : med_mc[i64], i64 < 0 ? 0 : r_t[i64],
		       i64 < 0 ? 0 : r_m[i64], i64 < 0 ? 0 : med_rg[i64],
		       i64 < 0 ? 0 : r_g[i64], dpdk->rtt_p50_us,
		       dpdk->rtt_p99_us, tcp->rtt_p50_us, tcp->rtt_p99_us);
	return 0;
}
