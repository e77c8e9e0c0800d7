/*
 * The executor worker (see worker.h): a FIFO of jobs under one mutex, one
 * thread taking them in order, and a condition variable per waiting
 * submitter so a finished job wakes exactly its owner.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gn_error.h"
#include "log.h"
#include "worker.h"

GN_LOG_REGISTER(worker)

struct gn_worker {
	pthread_mutex_t lock;
	pthread_cond_t wake; /* the worker: a job arrived, or stop */
	struct gn_job *head, *tail;
	uint32_t depth;
	int draining; /* refuse all but must_run jobs */
	int stop;     /* exit once the queue is empty */
	pthread_t thread;
	void (*after_job)(void *arg);
	void *arg;
};

/* Mark `job` finished with `rc` and wake its owner. Lock held. */
static void finish(struct gn_job *job, int rc, const char *err)
{
	job->rc = rc;
	if (rc != 0)
		snprintf(job->err, sizeof(job->err), "%s", err);
	job->done = 1;
	pthread_cond_signal(job->cv);
}

static void refuse(struct gn_job *job)
{
	finish(job, -ESHUTDOWN,
	       "the runtime is shutting down; the request was not run");
}

static void *worker_main(void *arg)
{
	struct gn_worker *w = arg;

	pthread_mutex_lock(&w->lock);
	for (;;) {
		struct gn_job *job;
		int rc;

		while (w->head == NULL && !w->stop)
			pthread_cond_wait(&w->wake, &w->lock);
		job = w->head;
		if (job == NULL)
			break; /* stop, and nothing left to run */
		w->head = job->next;
		if (w->head == NULL)
			w->tail = NULL;
		w->depth--;
		if (w->draining && !job->must_run) {
			refuse(job);
			continue;
		}
		pthread_mutex_unlock(&w->lock);
		gn_error_clear();
		rc = job->run(job);
		if (w->after_job != NULL)
			w->after_job(w->arg);
		pthread_mutex_lock(&w->lock);
		finish(job, rc, gn_last_error());
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

struct gn_worker *gn_worker_create(void (*after_job)(void *arg), void *arg)
{
	struct gn_worker *w = calloc(1, sizeof(*w));
	int rc;

	if (w == NULL) {
		gn_error_set(-ENOMEM, "worker: out of memory");
		return NULL;
	}
	w->after_job = after_job;
	w->arg = arg;
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->wake, NULL);
	rc = pthread_create(&w->thread, NULL, worker_main, w);
	if (rc != 0) {
		gn_error_set(-rc,
			     "worker: cannot start the executor thread: %s",
			     strerror(rc));
		pthread_cond_destroy(&w->wake);
		pthread_mutex_destroy(&w->lock);
		free(w);
		return NULL;
	}
	return w;
}

int gn_worker_call(struct gn_worker *w, struct gn_job *job)
{
	pthread_cond_t cv;

	pthread_cond_init(&cv, NULL);
	job->cv = &cv;
	job->done = 0;
	job->rc = 0;
	job->err[0] = '\0';
	job->next = NULL;
	pthread_mutex_lock(&w->lock);
	if ((w->draining && !job->must_run) || w->stop) {
		refuse(job);
	} else {
		if (w->tail != NULL)
			w->tail->next = job;
		else
			w->head = job;
		w->tail = job;
		w->depth++;
		pthread_cond_signal(&w->wake);
	}
	while (!job->done)
		pthread_cond_wait(&cv, &w->lock);
	pthread_mutex_unlock(&w->lock);
	pthread_cond_destroy(&cv);
	job->cv = NULL;
	if (job->rc != 0)
		return gn_error_set(job->rc, "%s", job->err);
	return 0;
}

uint32_t gn_worker_depth(struct gn_worker *w)
{
	uint32_t d;

	pthread_mutex_lock(&w->lock);
	d = w->depth;
	pthread_mutex_unlock(&w->lock);
	return d;
}

void gn_worker_drain(struct gn_worker *w)
{
	struct gn_job **pp;

	pthread_mutex_lock(&w->lock);
	if (!w->draining) {
		uint32_t refused = 0;

		w->draining = 1;
		/* Queued jobs are refused now, not when their turn comes. */
		for (pp = &w->head; *pp != NULL;) {
			struct gn_job *job = *pp;

			if (job->must_run) {
				pp = &job->next;
				continue;
			}
			*pp = job->next;
			w->depth--;
			refused++;
			refuse(job);
		}
		w->tail = NULL;
		for (struct gn_job *j = w->head; j != NULL; j = j->next)
			w->tail = j;
		if (refused)
			GN_LOG(NOTICE, worker,
			       "draining: %u queued requests refused", refused);
	}
	pthread_mutex_unlock(&w->lock);
}

void gn_worker_destroy(struct gn_worker **wp)
{
	struct gn_worker *w;

	if (wp == NULL || *wp == NULL)
		return;
	w = *wp;
	gn_worker_drain(w);
	pthread_mutex_lock(&w->lock);
	w->stop = 1;
	pthread_cond_signal(&w->wake);
	pthread_mutex_unlock(&w->lock);
	pthread_join(w->thread, NULL);
	pthread_cond_destroy(&w->wake);
	pthread_mutex_destroy(&w->lock);
	free(w);
	*wp = NULL;
}
