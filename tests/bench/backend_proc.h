/*
 * Child processes for the benchmarks: the PyTorch script, genie-runtime
 * children (an idle one measured from /proc), and the figures every
 * benchmark takes alike (medians, memcpy bandwidth).
 */
#ifndef GENIE_BENCH_BACKEND_PROC_H
#define GENIE_BENCH_BACKEND_PROC_H

#include <stddef.h>

/*
 * Run argv[0] (searched in PATH when it has no '/') with `argv`, stdin from
 * /dev/null, stderr inherited, and stdout captured into `out` (NUL-ended,
 * cut at `out_size` - 1 bytes). Returns the exit status (0..255), 128 +
 * signal when killed, or -errno when it could not be started.
 */
int bench_run_capture(char *const argv[], char *out, size_t out_size);

struct bench_idle {
	double rss_mib;	    /* VmRSS after the measured interval */
	double cpu_percent; /* utime + stime over the interval, % of a core */
	double interval_s;  /* how long was measured */
	int exit_status;    /* after SIGTERM: 0 when it shut down cleanly */
};

/* A genie-runtime child on a loopback port. */
struct bench_runtime {
	int pid;
	int port;
	char dir[64], port_file[96], log[96];
};

/*
 * Start `runtime` on tcp://127.0.0.1:0 with the CPU backend (its kernel
 * threads from GENIE_CPU_THREADS) and wait up to 10 s for its port.
 * Returns 0 or -errno (-ETIMEDOUT, -ECHILD when it exited early).
 */
int bench_runtime_start(const char *runtime, struct bench_runtime *rt);
/* The same with more arguments (`extra`, NULL-terminated; may be NULL). */
int bench_runtime_start_with(const char *runtime, const char *const *extra,
			     struct bench_runtime *rt);

/* genie-runtime of the build tree this program is in (into buf). */
const char *bench_default_runtime(char *buf, size_t size);

/* SIGTERM it and reap it: its exit status (0 after a clean stop). */
int bench_runtime_stop(struct bench_runtime *rt);

/*
 * Start `runtime` on tcp://127.0.0.1:0 with the CPU backend, wait for its
 * port file, let it settle `settle_s` seconds, then measure it for
 * `measure_s` seconds; SIGTERM and reap it. Returns 0 or -errno (-ETIMEDOUT
 * when no port file appeared within 10 s, -ECHILD when it exited early).
 */
int bench_runtime_idle(const char *runtime, double settle_s, double measure_s,
		       struct bench_idle *r);

/* Seconds on the monotonic clock. */
double bench_now(void);

/* The median of n values, n <= 64 (the mean of the middle two for even n). */
double bench_median(const double *v, int n);

/*
 * Single-core memcpy bandwidth, GB/s, for `size`-byte copies, `total`
 * bytes copied in all (one warm copy first).
 */
double bench_memcpy_gbps(size_t size, size_t total);

#endif /* GENIE_BENCH_BACKEND_PROC_H */
