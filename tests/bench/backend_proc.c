/*
 * Child processes and shared figures for the benchmarks. See
 * backend_proc.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "backend_proc.h"

double bench_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_dbl(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

double bench_median(const double *v, int n)
{
	double t[64];

	if (n <= 0 || n > 64)
		return 0;
	memcpy(t, v, (size_t)n * sizeof(*t));
	qsort(t, (size_t)n, sizeof(*t), cmp_dbl);
	return n % 2 ? t[n / 2] : (t[n / 2 - 1] + t[n / 2]) / 2;
}

double bench_memcpy_gbps(size_t size, size_t total)
{
	uint8_t *a = malloc(size), *b = malloc(size);
	size_t n = total / size ? total / size : 1;
	double t0;

	if (a == NULL || b == NULL) {
		free(a);
		free(b);
		return 0;
	}
	memset(a, 1, size);
	memset(b, 2, size);
	memcpy(b, a, size);
	t0 = bench_now();
	for (size_t i = 0; i < n; i++) {
		a[i % size] = (uint8_t)i; /* keep each copy honest */
		memcpy(b, a, size);
	}
	t0 = bench_now() - t0;
	free(a);
	free(b);
	return (double)size * (double)n / t0 / 1e9;
}

/* The build tree puts us at tests/bench/ and the runtime at remote_runtime/. */
const char *bench_default_runtime(char *buf, size_t size)
{
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

	if (n <= 0)
		return "genie-runtime";
	exe[n] = '\0';
	snprintf(buf, size, "%s/../../remote_runtime/genie-runtime",
		 dirname(exe));
	return buf;
}

static void sleep_s(double s)
{
	struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static int wait_status(pid_t pid)
{
	int st;

	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -errno;
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	return 128 + WTERMSIG(st);
}

int bench_run_capture(char *const argv[], char *out, size_t out_size)
{
	int fds[2];
	size_t len = 0;
	pid_t pid;

	if (pipe(fds) != 0)
		return -errno;
	pid = fork();
	if (pid < 0) {
		int rc = -errno;

		close(fds[0]);
		close(fds[1]);
		return rc;
	}
	if (pid == 0) {
		int devnull = open("/dev/null", O_RDONLY);

		if (devnull >= 0)
			dup2(devnull, STDIN_FILENO);
		dup2(fds[1], STDOUT_FILENO);
		close(fds[0]);
		close(fds[1]);
		execvp(argv[0], argv);
		fprintf(stderr, "backend: cannot run %s: %s\n", argv[0],
			strerror(errno));
		_exit(127);
	}
	close(fds[1]);
	for (;;) {
		char buf[4096];
		ssize_t n = read(fds[0], buf, sizeof(buf));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		/* Keep what fits; drain the rest so the child never blocks. */
		for (ssize_t i = 0; i < n && len + 1 < out_size; i++)
			out[len++] = buf[i];
	}
	if (out_size > 0)
		out[len] = '\0';
	close(fds[0]);
	return wait_status(pid);
}

/* utime + stime in clock ticks from /proc/PID/stat, or -1. */
static long long proc_cpu_ticks(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long long ut, st;
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (f == NULL)
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* The command name may hold spaces and ')': fields follow the last. */
	p = strrchr(buf, ')');
	if (p == NULL)
		return -1;
	/* Fields 3..13 (state .. cmajflt), then 14 utime and 15 stime. */
	if (sscanf(p + 1,
		   " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
		   &ut, &st) != 2)
		return -1;
	return (long long)(ut + st);
}

/* VmRSS from /proc/PID/status in KiB, or -1. */
static long long proc_rss_kib(pid_t pid)
{
	char path[64], line[256];
	long long kib = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "VmRSS: %lld kB", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

/* Has the child exited? Reaps it when so. */
static int child_gone(pid_t pid)
{
	int st;

	return waitpid(pid, &st, WNOHANG) == pid;
}

static int stop_child(pid_t pid)
{
	double deadline = bench_now() + 5.0;
	int st;

	kill(pid, SIGTERM);
	while (bench_now() < deadline) {
		pid_t r = waitpid(pid, &st, WNOHANG);

		if (r == pid)
			return WIFEXITED(st) ? WEXITSTATUS(st)
					     : 128 + WTERMSIG(st);
		if (r < 0)
			return -errno;
		sleep_s(0.02);
	}
	fprintf(stderr, "backend: genie-runtime did not stop within 5 s of "
			"SIGTERM; sending SIGKILL\n");
	kill(pid, SIGKILL);
	return wait_status(pid);
}

int bench_runtime_start(const char *runtime, struct bench_runtime *rt)
{
	return bench_runtime_start_with(runtime, NULL, rt);
}

int bench_runtime_start_with(const char *runtime, const char *const *extra,
			     struct bench_runtime *rt)
{
	char *dir = rt->dir;
	double deadline;
	pid_t pid;
	FILE *f;
	int rc = 0;

	memset(rt, 0, sizeof(*rt));
	snprintf(rt->dir, sizeof(rt->dir), "/tmp/genie-bench-rt-XXXXXX");
	if (mkdtemp(dir) == NULL)
		return -errno;
	snprintf(rt->port_file, sizeof(rt->port_file), "%s/port", dir);
	snprintf(rt->log, sizeof(rt->log), "%s/log", dir);
	pid = fork();
	if (pid < 0) {
		rc = -errno;
		goto out_dir;
	}
	if (pid == 0) {
		int fd = open(rt->log, O_WRONLY | O_CREAT | O_TRUNC, 0600);

		if (fd >= 0) {
			dup2(fd, STDOUT_FILENO);
			dup2(fd, STDERR_FILENO);
		}
		const char *argv[32] = {
			runtime,      "--listen", "tcp://127.0.0.1:0",
			"--backend",  "cpu",	  "--port-file",
			rt->port_file};
		int n = 7;

		for (; extra != NULL && *extra != NULL && n < 31; extra++)
			argv[n++] = *extra;
		argv[n] = NULL;
		execv(runtime, (char *const *)argv);
		fprintf(stderr, "cannot run %s: %s\n", runtime,
			strerror(errno));
		_exit(127);
	}

	/* The runtime writes the port once it is listening. */
	deadline = bench_now() + 10.0;
	for (;;) {
		struct stat sb;

		if (stat(rt->port_file, &sb) == 0 && sb.st_size > 0)
			break;
		if (child_gone(pid)) {
			fprintf(stderr,
				"backend: genie-runtime exited before "
				"listening; its log is %s\n",
				rt->log);
			rc = -ECHILD;
			goto out_dir;
		}
		if (bench_now() > deadline) {
			fprintf(stderr,
				"backend: no port file from genie-runtime "
				"within 10 s; its log is %s\n",
				rt->log);
			stop_child(pid);
			rc = -ETIMEDOUT;
			goto out_dir;
		}
		sleep_s(0.02);
	}
	f = fopen(rt->port_file, "r");
	if (f == NULL || fscanf(f, "%d", &rt->port) != 1) {
		if (f)
			fclose(f);
		stop_child(pid);
		rc = -EPROTO;
		goto out_dir;
	}
	fclose(f);
	rt->pid = pid;
	return 0;
out_dir:
	unlink(rt->port_file);
	rmdir(dir);
	return rc;
}

int bench_runtime_stop(struct bench_runtime *rt)
{
	int st = stop_child(rt->pid);

	if (st == 0)
		unlink(rt->log);
	unlink(rt->port_file);
	rmdir(rt->dir);
	return st;
}

int bench_runtime_idle(const char *runtime, double settle_s, double measure_s,
		       struct bench_idle *r)
{
	struct bench_runtime rt;
	long long t0, t1, rss;
	double w0, w1;
	pid_t pid;
	int rc = bench_runtime_start(runtime, &rt);

	if (rc != 0)
		return rc;
	pid = rt.pid;
	sleep_s(settle_s);
	t0 = proc_cpu_ticks(pid);
	w0 = bench_now();
	sleep_s(measure_s);
	t1 = proc_cpu_ticks(pid);
	w1 = bench_now();
	rss = proc_rss_kib(pid);
	if (t0 < 0 || t1 < 0 || rss < 0) {
		fprintf(stderr,
			"backend: cannot read /proc/%d of "
			"genie-runtime\n",
			(int)pid);
		bench_runtime_stop(&rt);
		return -ECHILD;
	}
	r->interval_s = w1 - w0;
	r->cpu_percent = 100.0 * (double)(t1 - t0) /
			 (double)sysconf(_SC_CLK_TCK) / r->interval_s;
	r->rss_mib = (double)rss / 1024.0;
	r->exit_status = bench_runtime_stop(&rt);
	return rc;
}
