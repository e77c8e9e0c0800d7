/*
 * The executor worker (remote_runtime/worker.c): jobs from many threads
 * run one at a time, in order, on one thread that is none of theirs; a
 * job's error reaches its submitter with its words; draining lets the
 * running job finish, refuses queued and new jobs with -ESHUTDOWN and
 * still runs must_run jobs; destroy joins.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "gn_error.h"
#include "worker.h"

struct count_job {
	struct gn_job job;
	int *counter;
	pthread_t *ran_on;
};

static int run_count(struct gn_job *job)
{
	struct count_job *cj = (struct count_job *)job;

	/* Not atomic on purpose: only one thread may ever run jobs. */
	(*cj->counter)++;
	*cj->ran_on = pthread_self();
	return 0;
}

struct submitter {
	struct gn_worker *w;
	int *counter;
	pthread_t ran_on;
	int failures;
};

static void *submit_many(void *p)
{
	struct submitter *sb = p;

	for (int i = 0; i < 500; i++) {
		struct count_job cj = {.job.run = run_count,
				       .counter = sb->counter,
				       .ran_on = &sb->ran_on};

		if (gn_worker_call(sb->w, &cj.job) != 0)
			sb->failures++;
	}
	return NULL;
}

static void test_one_thread_runs_everything(void **state)
{
	struct gn_worker *w = gn_worker_create(NULL, NULL);
	struct submitter sb[4];
	pthread_t th[4];
	int counter = 0;

	(void)state;
	assert_non_null(w);
	for (int i = 0; i < 4; i++) {
		sb[i] = (struct submitter){.w = w, .counter = &counter};
		assert_int_equal(
			pthread_create(&th[i], NULL, submit_many, &sb[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(sb[i].failures, 0);
		assert_true(pthread_equal(sb[i].ran_on, sb[0].ran_on));
		assert_false(pthread_equal(sb[i].ran_on, th[i]));
	}
	assert_false(pthread_equal(sb[0].ran_on, pthread_self()));
	assert_int_equal(counter, 2000);
	assert_int_equal(gn_worker_depth(w), 0);
	gn_worker_destroy(&w);
	assert_null(w);
	gn_worker_destroy(&w); /* NULL: no-op */
}

static int run_fail(struct gn_job *job)
{
	(void)job;
	return gn_error_set(-EINVAL, "job: expected 3 operands, saw 7");
}

static void test_errors_reach_the_submitter(void **state)
{
	struct gn_worker *w = gn_worker_create(NULL, NULL);
	struct gn_job job = {.run = run_fail};

	(void)state;
	gn_error_clear();
	assert_int_equal(gn_worker_call(w, &job), -EINVAL);
	assert_string_equal(gn_last_error(), "job: expected 3 operands, saw 7");
	gn_worker_destroy(&w);
}

/* A job that blocks until released, to hold the worker busy. */
struct gate_job {
	struct gn_job job;
	pthread_mutex_t *lock;
	pthread_cond_t *cv;
	int *open, *started;
};

static int run_gate(struct gn_job *job)
{
	struct gate_job *gj = (struct gate_job *)job;

	pthread_mutex_lock(gj->lock);
	*gj->started = 1;
	pthread_cond_broadcast(gj->cv);
	while (!*gj->open)
		pthread_cond_wait(gj->cv, gj->lock);
	pthread_mutex_unlock(gj->lock);
	return 0;
}

struct call_arg {
	struct gn_worker *w;
	struct gn_job *job;
	int rc;
};

static void *call_thread(void *p)
{
	struct call_arg *ca = p;

	ca->rc = gn_worker_call(ca->w, ca->job);
	return NULL;
}

static void wait_depth(struct gn_worker *w, uint32_t depth)
{
	struct timespec ts = {0, 1000000};

	for (int i = 0; i < 5000 && gn_worker_depth(w) != depth; i++)
		nanosleep(&ts, NULL);
	assert_int_equal(gn_worker_depth(w), depth);
}

static void test_drain(void **state)
{
	pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
	struct gn_worker *w = gn_worker_create(NULL, NULL);
	int open = 0, started = 0, counter = 0;
	pthread_t ran_on;
	struct gate_job gate = {.job.run = run_gate,
				.lock = &lock,
				.cv = &cv,
				.open = &open,
				.started = &started};
	struct count_job queued = {
		.job.run = run_count, .counter = &counter, .ran_on = &ran_on};
	struct count_job must = {.job.run = run_count,
				 .job.must_run = 1,
				 .counter = &counter,
				 .ran_on = &ran_on};
	struct count_job late = {
		.job.run = run_count, .counter = &counter, .ran_on = &ran_on};
	struct call_arg a1 = {w, &gate.job, 1}, a2 = {w, &queued.job, 1},
			a3 = {w, &must.job, 1};
	pthread_t t1, t2, t3;

	(void)state;
	assert_int_equal(pthread_create(&t1, NULL, call_thread, &a1), 0);
	pthread_mutex_lock(&lock);
	while (!started)
		pthread_cond_wait(&cv, &lock);
	pthread_mutex_unlock(&lock);
	assert_int_equal(pthread_create(&t2, NULL, call_thread, &a2), 0);
	wait_depth(w, 1);
	assert_int_equal(pthread_create(&t3, NULL, call_thread, &a3), 0);
	wait_depth(w, 2);

	gn_worker_drain(w);
	/* The queued job is refused at once, while the gate still holds. */
	pthread_join(t2, NULL);
	assert_int_equal(a2.rc, -ESHUTDOWN);
	assert_int_equal(gn_worker_depth(w), 1); /* the must_run one */
	assert_int_equal(gn_worker_call(w, &late.job), -ESHUTDOWN);
	if (strstr(gn_last_error(), "shutting down") == NULL)
		fail_msg("detail: %s", gn_last_error());
	gn_worker_drain(w); /* idempotent */

	pthread_mutex_lock(&lock);
	open = 1;
	pthread_cond_broadcast(&cv);
	pthread_mutex_unlock(&lock);
	pthread_join(t1, NULL);
	assert_int_equal(a1.rc, 0); /* the running job finished */
	pthread_join(t3, NULL);
	assert_int_equal(a3.rc, 0); /* must_run still ran */
	assert_int_equal(counter, 1);
	/* After drain a must_run job still runs until destroy. */
	must.job.must_run = 1;
	assert_int_equal(gn_worker_call(w, &must.job), 0);
	assert_int_equal(counter, 2);
	gn_worker_destroy(&w);
}

static int g_after;

static void after(void *arg)
{
	(void)arg;
	g_after++;
}

static void test_after_job_hook(void **state)
{
	struct gn_worker *w = gn_worker_create(after, NULL);
	struct gn_job job = {.run = run_fail};

	(void)state;
	g_after = 0;
	gn_worker_call(w, &job);
	gn_worker_call(w, &job);
	gn_worker_destroy(&w);
	assert_int_equal(g_after, 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_one_thread_runs_everything),
		cmocka_unit_test(test_errors_reach_the_submitter),
		cmocka_unit_test(test_drain),
		cmocka_unit_test(test_after_job_hook),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
