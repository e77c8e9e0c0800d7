/*
 * The executor worker: one thread that owns the backend.
 *
 * The backend, its memory pool and the tensor registry are not
 * thread-safe, and a GPU runs one stream of work best anyway, so every
 * piece of backend work in the runtime runs on this one thread. Connection
 * threads decode a request, wrap the backend part in a job, hand it over
 * with gn_worker_call() and sleep until it is done; then they build and
 * send the reply themselves. Jobs run one at a time in the order they
 * arrived (a FIFO under a mutex and a condition variable: the queue is
 * short, one job per connection at most, so a lock-free ring buys nothing
 * here).
 *
 * Shutdown drains: gn_worker_drain() lets the running job finish, fails
 * every queued job with -ESHUTDOWN and refuses new ones the same way,
 * except jobs marked `must_run` (a session's teardown, which frees its
 * memory), which still run until gn_worker_destroy() joins the thread.
 */
#ifndef GN_RUNTIME_WORKER_H
#define GN_RUNTIME_WORKER_H

#include <pthread.h>
#include <stdint.h>

#define GN_JOB_ERR_MAX 512

/*
 * One unit of backend work. The submitter owns it (usually on its stack)
 * and embeds it in a larger struct holding the job's inputs and outputs.
 */
struct gn_job {
	/* Runs on the worker thread; returns 0 or a negative errno with
	 * gn_last_error() set (the worker copies it into `err`). */
	int (*run)(struct gn_job *job);
	int must_run; /* run even while draining (session teardown) */
	/* Set by the worker when the job is done or refused. */
	int rc;
	char err[GN_JOB_ERR_MAX];
	/* Private to the worker. */
	int done;
	pthread_cond_t *cv;
	struct gn_job *next;
};

struct gn_worker;

/*
 * Start the worker thread. `after_job`, when not NULL, runs on the worker
 * thread after every job with `arg` (the server refreshes its telemetry
 * snapshot there). NULL with -ENOMEM or -EAGAIN set.
 */
struct gn_worker *gn_worker_create(void (*after_job)(void *arg), void *arg);

/*
 * Queue `job`, wait until the worker has run it, and return its result:
 * 0, or its negative errno with this thread's error detail set to the
 * job's. -ESHUTDOWN (not run) while draining, unless job->must_run.
 */
int gn_worker_call(struct gn_worker *w, struct gn_job *job);

/* Jobs queued and not yet started. */
uint32_t gn_worker_depth(struct gn_worker *w);

/*
 * Start refusing work: the running job finishes, queued jobs and new ones
 * get -ESHUTDOWN, must_run jobs still run. Idempotent.
 */
void gn_worker_drain(struct gn_worker *w);

/*
 * Drain, run what must run, stop and join the thread, free the worker;
 * sets *w to NULL. Callers must not submit concurrently with this (join
 * the submitting threads first). NULL is a no-op.
 */
void gn_worker_destroy(struct gn_worker **w);

#endif /* GN_RUNTIME_WORKER_H */
