/*
 * Integration-test helper: start a real genie-runtime process on a free
 * loopback port and stop it again, checking it shut down cleanly.
 */
#ifndef GN_TEST_RUNTIME_PROC_H
#define GN_TEST_RUNTIME_PROC_H

#include <stddef.h>
#include <sys/types.h>

struct runtime_proc {
	pid_t pid;
	int port;
	char url[64];
	char dir[64];
};

/*
 * Start `binary` with `--listen tcp://127.0.0.1:0` plus `extra_args`
 * (NULL-terminated, may be NULL) and wait up to 10 s for its port.
 * Returns 0 or -1 with a message on stderr.
 */
int runtime_start(struct runtime_proc *rp, const char *binary,
		  const char *const *extra_args);

/*
 * Send SIGTERM and wait up to 10 s. Returns the exit status (0 for a clean
 * stop), or -1 if it had to be killed or died by a signal.
 */
int runtime_stop(struct runtime_proc *rp);

/*
 * Generic processes (coordinator, runtimes with extra options, tools).
 * proc_spawn() starts argv[0] with `argv` (NULL-terminated), stdout and
 * stderr appended to `log_path` (NULL: inherited), killed with SIGKILL if
 * the test process dies. Returns the pid or -1.
 */
pid_t proc_spawn(const char *const *argv, const char *log_path);

/*
 * Send `sig` to *pid and wait up to `timeout_ms` for it to end, then
 * SIGKILL. Returns the exit status, 128 + the signal that ended it, or -1
 * if it had to be killed. Sets *pid to 0. *pid <= 0 returns -1.
 */
int proc_stop(pid_t *pid, int sig, int timeout_ms);

/*
 * Wait up to `timeout_ms` for `path` to hold a port number (a
 * --port-file), while `pid` lives. Returns the port or -1.
 */
int proc_wait_port(const char *path, pid_t pid, int timeout_ms);

/*
 * For a test program whose tests share one runtime: `g_runtime_bin` is
 * the genie-runtime under test (argv[1]) and `g_rt` the process started
 * before the first test and stopped, checked clean, after the last.
 */
extern const char *g_runtime_bin;
extern struct runtime_proc g_rt;

struct CMUnitTest;

/* main() of such a program: checks argv, ignores SIGPIPE, runs `tests`. */
int runtime_group_main(int argc, char **argv, const struct CMUnitTest *tests,
		       size_t ntests);

#endif
