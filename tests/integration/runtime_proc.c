/* Start and stop a genie-runtime process for integration tests. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "runtime_proc.h"

static void nap_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};

	nanosleep(&ts, NULL);
}

int runtime_start(struct runtime_proc *rp, const char *binary,
		  const char *const *extra_args)
{
	char port_file[128];
	const char *argv[32];
	int n = 0;

	memset(rp, 0, sizeof(*rp));
	snprintf(rp->dir, sizeof(rp->dir), "/tmp/genie-test-XXXXXX");
	if (mkdtemp(rp->dir) == NULL) {
		perror("mkdtemp");
		return -1;
	}
	snprintf(port_file, sizeof(port_file), "%s/port", rp->dir);
	argv[n++] = binary;
	argv[n++] = "--listen";
	argv[n++] = "tcp://127.0.0.1:0";
	argv[n++] = "--port-file";
	argv[n++] = port_file;
	/* The CPU backend on every machine, so results and names match. */
	argv[n++] = "--backend";
	argv[n++] = "cpu";
	for (int i = 0; extra_args && extra_args[i] && n < 30; i++)
		argv[n++] = extra_args[i];
	argv[n] = NULL;

	rp->pid = fork();
	if (rp->pid < 0) {
		perror("fork");
		return -1;
	}
	if (rp->pid == 0) {
		/* A test that dies must not leave its runtime behind, holding
		 * the test harness's output pipes open. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		execv(binary, (char *const *)argv);
		fprintf(stderr, "exec %s: %s\n", binary, strerror(errno));
		_exit(127);
	}
	for (int i = 0; i < 200; i++) {
		FILE *f = fopen(port_file, "r");
		int st;

		if (f != NULL) {
			int ok = fscanf(f, "%d", &rp->port) == 1;

			fclose(f);
			if (ok) {
				snprintf(rp->url, sizeof(rp->url),
					 "tcp://127.0.0.1:%d", rp->port);
				return 0;
			}
		}
		if (waitpid(rp->pid, &st, WNOHANG) == rp->pid) {
			fprintf(stderr,
				"genie-runtime exited early (status "
				"0x%x)\n",
				st);
			rp->pid = 0;
			return -1;
		}
		nap_ms(50);
	}
	fprintf(stderr, "genie-runtime did not write %s within 10 s\n",
		port_file);
	kill(rp->pid, SIGKILL);
	waitpid(rp->pid, NULL, 0);
	rp->pid = 0;
	return -1;
}

int runtime_stop(struct runtime_proc *rp)
{
	char path[128];
	int st;

	if (rp->pid <= 0)
		return -1;
	kill(rp->pid, SIGTERM);
	for (int i = 0; i < 200; i++) {
		if (waitpid(rp->pid, &st, WNOHANG) == rp->pid) {
			rp->pid = 0;
			snprintf(path, sizeof(path), "%s/port", rp->dir);
			unlink(path);
			rmdir(rp->dir);
			if (WIFEXITED(st))
				return WEXITSTATUS(st);
			fprintf(stderr, "genie-runtime died by signal %d\n",
				WTERMSIG(st));
			return -1;
		}
		nap_ms(50);
	}
	fprintf(stderr, "genie-runtime ignored SIGTERM for 10 s; killing\n");
	kill(rp->pid, SIGKILL);
	waitpid(rp->pid, NULL, 0);
	rp->pid = 0;
	return -1;
}

pid_t proc_spawn(const char *const *argv, const char *log_path)
{
	pid_t pid = fork();

	if (pid < 0) {
		perror("fork");
		return -1;
	}
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (log_path != NULL) {
			int fd = open(log_path,
				      O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
				      0644);

			if (fd >= 0) {
				dup2(fd, STDOUT_FILENO);
				dup2(fd, STDERR_FILENO);
			}
		}
		execv(argv[0], (char *const *)argv);
		fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	return pid;
}

int proc_stop(pid_t *pid, int sig, int timeout_ms)
{
	int st;

	if (*pid <= 0)
		return -1;
	kill(*pid, sig);
	for (int waited = 0; waited <= timeout_ms; waited += 10) {
		if (waitpid(*pid, &st, WNOHANG) == *pid) {
			*pid = 0;
			if (WIFEXITED(st))
				return WEXITSTATUS(st);
			return 128 + WTERMSIG(st);
		}
		nap_ms(10);
	}
	kill(*pid, SIGKILL);
	waitpid(*pid, NULL, 0);
	*pid = 0;
	return -1;
}

int proc_wait_port(const char *path, pid_t pid, int timeout_ms)
{
	for (int waited = 0; waited <= timeout_ms; waited += 20) {
		FILE *f = fopen(path, "r");
		int port, st;

		if (f != NULL) {
			int ok = fscanf(f, "%d", &port) == 1;

			fclose(f);
			if (ok)
				return port;
		}
		if (waitpid(pid, &st, WNOHANG) == pid) {
			fprintf(stderr, "pid %d exited early (status 0x%x)\n",
				(int)pid, st);
			return -1;
		}
		nap_ms(20);
	}
	fprintf(stderr, "%s not written within %d ms\n", path, timeout_ms);
	return -1;
}

const char *g_runtime_bin;
struct runtime_proc g_rt;

static int start_shared(void **state)
{
	(void)state;
	return runtime_start(&g_rt, g_runtime_bin, NULL) == 0 ? 0 : -1;
}

static int stop_shared(void **state)
{
	int rc = runtime_stop(&g_rt);

	(void)state;
	if (rc != 0)
		fprintf(stderr, "genie-runtime did not stop cleanly: %d\n", rc);
	return rc == 0 ? 0 : -1;
}

int runtime_group_main(int argc, char **argv, const struct CMUnitTest *tests,
		       size_t ntests)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s PATH/TO/genie-runtime\n", argv[0]);
		return 2;
	}
	g_runtime_bin = argv[1];
	signal(SIGPIPE, SIG_IGN);
	return _cmocka_run_group_tests(argv[0], tests, ntests, start_shared,
				       stop_shared);
}
