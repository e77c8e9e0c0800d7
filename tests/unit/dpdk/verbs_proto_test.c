/*
 * The verbs protocol engine (dpdk/verbs_proto.c) over the fake queue pair
 * of verbs_fake.c: normal traffic, credits and backpressure, and hostile
 * peers (bytes injected straight into an endpoint's receive buffers).
 * Engines run in one thread each where both must progress.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cmocka.h>

#include "clock.h"
#include "gn_error.h"
#include "verbs_fake.h"

/* ---- tests -------------------------------------------------------------- */

static void test_eager(void **state)
{
	struct pair *pr = pair_new(8, 4096);
	struct msg m[3];
	struct gn_msg got;

	(void)state;
	pair_start(pr);
	msg_make(&m[0], 10, 0, 0, 1);
	msg_make(&m[1], 100, 1000, 3, 2);
	/* Exactly one buffer: header + frame header + envelope + payload. */
	msg_make(&m[2], 48, 4096 - GN_VP_HDR_SIZE - GN_FRAME_HDR_SIZE - 48, 1,
		 3);
	for (int i = 0; i < 3; i++)
		assert_int_equal(msg_send(pr->c[0], &m[i], WAIT_MS), 0);
	/* And the other way, in the same single thread. */
	assert_int_equal(msg_send(pr->c[1], &m[1], WAIT_MS), 0);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(gn_vp_recv(pr->c[1], &got, WAIT_MS), 0);
		msg_check(&m[i], &got);
		gn_msg_release(&got);
	}
	assert_int_equal(gn_vp_recv(pr->c[0], &got, WAIT_MS), 0);
	msg_check(&m[1], &got);
	gn_msg_release(&got);
	/* Nothing more: a timeout leaves the connection usable. */
	assert_int_equal(gn_vp_recv(pr->c[1], &got, 20), -ETIMEDOUT);
	expect_detail("no message within 20 ms");
	assert_int_equal(gn_vp_conn_error(pr->c[1], NULL), 0);
	/* Every one went as a single SEND, none by RDMA WRITE. */
	assert_int_equal(pr->net->ep[0].writes, 0);
	assert_int_equal(pr->net->ep[0].last_id, 3);
	for (int i = 0; i < 3; i++)
		msg_free(&m[i]);
	pair_free(pr);
}

/*
 * Rendezvous: several MiB in several iovecs, bit-exact, chunked WRITEs.
 * `staged`: the sender cannot register pieces over 1 MiB and copies them
 * through its 1 MiB ring. `rstaged`: the receiver cannot register message
 * buffers over 1 MiB and takes them in parts through its own ring.
 */
static void rendezvous(bool staged, bool rstaged)
{
	struct pair *pr = pair_new(16, 16384);
	struct msg m[3];
	struct job rx = {0};
	uint64_t half = (1u << 20) / 2, parts = 0;

	pair_start(pr);
	if (staged)
		pr->net->ep[0].fail_reg_over = 1u << 20;
	if (rstaged)
		pr->net->ep[1].fail_remote_reg_over = 1u << 20;
	/* 100 KiB envelope: more than fits inline, so it is written too. */
	msg_make(&m[0], 100u << 10, (5u << 20) + 12345, 3, 10);
	msg_make(&m[1], 300, (3u << 20) + 1, 5, 11);
	msg_make(&m[2], 300, 200u << 10, 2, 12); /* under one part */
	rx = (struct job){.c = pr->c[1], .want = m, .nrecv = 3};
	job_start(&rx);
	for (int i = 0; i < 3; i++)
		assert_int_equal(msg_send(pr->c[0], &m[i], WAIT_MS), 0);
	assert_int_equal(job_join(&rx), 0);
	for (int i = 0; i < 3; i++) {
		size_t inl =
			m[i].env_len < 16384 - 48 ? m[i].env_len : 16384 - 48;
		uint64_t rest = m[i].env_len - inl + m[i].payload_len;

		parts += rstaged && rest > (1u << 20) ? (rest + half - 1) / half
						      : 1;
	}
	/* One immediate per part: a message, or each granted part. */
	assert_int_equal(pr->net->ep[0].imm_writes, (int)parts);
	assert_true(pr->net->ep[0].writes > 10); /* chunked */
	assert_true(pr->net->ep[0].max_write_len <= (1u << 20));
	assert_int_equal(pr->net->ep[0].reg_failures > 0, staged);
	/* m[2] is small enough to register: it goes by one CTS */
	assert_int_equal(pr->net->ep[1].reg_failures, rstaged ? 2 : 0);
	assert_int_equal(pr->net->ep[0].rnr + pr->net->ep[1].rnr, 0);
	assert_int_equal(pr->net->ep[0].violations, 0);
	assert_int_equal(pr->net->ep[1].violations, 0);
	/* Only the rings (and the staging rings) stay registered. */
	assert_int_equal(pr->net->ep[0].nmr, staged ? 3 : 2);
	assert_int_equal(pr->net->ep[1].nmr, rstaged ? 3 : 2);
	for (int i = 0; i < 3; i++)
		msg_free(&m[i]);
	pair_free(pr);
}

static void test_rendezvous(void **state)
{
	(void)state;
	rendezvous(false, false);
}

static void test_rendezvous_staged(void **state)
{
	(void)state;
	rendezvous(true, false);
}

static void test_rendezvous_receiver_staged(void **state)
{
	(void)state;
	rendezvous(false, true);
}

static void test_rendezvous_both_staged(void **state)
{
	(void)state;
	rendezvous(true, true);
}

/*
 * Payloads in GPU memory: fake GPU memory that faults on any CPU read, so
 * an engine that memcpy()s from it crashes the test. `direct`: the fake
 * NIC registers it (GPUDirect RDMA) and large pieces are WRITTEN straight
 * from it; else registration is refused and they go through the staging
 * ring by copy_in. Small (eager) messages are always copied by copy_in.
 */
static void gpu_send(bool direct)
{
	struct pair *pr = pair_new(16, 16384);
	struct fake_gpu g;
	struct msg m[3];
	struct job rx;

	pair_start(pr);
	fake_gpu_init(&g, 8u << 20);
	g.direct = direct;
	pr->net->ep[0].gpu = &g;
	msg_make(&m[0], 300, (3u << 20) + 77, 3, 40);	    /* rendezvous */
	msg_make(&m[1], 200, 5000, 2, 41);		    /* eager */
	msg_make(&m[2], 100u << 10, (2u << 20) + 5, 1, 42); /* env written */
	rx = (struct job){.c = pr->c[1], .want = m, .nrecv = 3};
	job_start(&rx);
	for (int i = 0; i < 3; i++) {
		fake_gpu_load(&g, &m[i]); /* each after the last was sent */
		assert_int_equal(msg_send(pr->c[0], &m[i], WAIT_MS), 0);
	}
	assert_int_equal(job_join(&rx), 0);
	if (direct) {
		/* m[0]'s 3 and m[2]'s 1 piece registered, m[1] copied. */
		assert_int_equal(g.regs, 4);
		assert_int_equal(g.refused, 0);
		assert_int_equal(g.copies, 2);
	} else {
		assert_int_equal(g.regs, 0);
		assert_true(g.refused >= 2);
		/* 1 MiB ring in 4 slots: a copy at least per 256 KiB. */
		assert_true(g.copies >= 2 + (5 << 20) / (256 << 10));
	}
	assert_int_equal(pr->net->ep[0].violations, 0);
	for (int i = 0; i < 3; i++)
		msg_free(&m[i]);
	pair_free(pr);
	fake_gpu_fini(&g);
}

static void test_gpu_direct(void **state)
{
	(void)state;
	gpu_send(true);
}

static void test_gpu_staged(void **state)
{
	(void)state;
	gpu_send(false);
}

/*
 * A copy off the GPU fails: for an eager message nothing went out, so the
 * send fails alone and the connection carries on; inside a staged
 * rendezvous the message is half written, so the connection fails.
 */
static void test_gpu_copy_fails(void **state)
{
	struct pair *pr = pair_new(16, 16384);
	struct fake_gpu g;
	struct msg small, big;
	struct job rx;

	(void)state;
	pair_start(pr);
	fake_gpu_init(&g, 4u << 20);
	pr->net->ep[0].gpu = &g;
	msg_make(&small, 100, 3000, 1, 50);
	msg_make(&big, 100, 3u << 20, 1, 51);
	fake_gpu_load(&g, &small);
	g.fail_copy_after = 0;
	assert_int_equal(msg_send(pr->c[0], &small, WAIT_MS), -EIO);
	expect_detail("device copy failed");
	g.fail_copy_after = -1;
	rx = (struct job){.c = pr->c[1], .want = &small, .nrecv = 1};
	job_start(&rx);
	assert_int_equal(msg_send(pr->c[0], &small, WAIT_MS), 0);
	assert_int_equal(job_join(&rx), 0);

	/* The receiver answers the RTS, then waits for the rest. */
	rx = (struct job){.c = pr->c[1], .want = &big, .nrecv = 1};
	job_start(&rx);
	fake_gpu_load(&g, &big);
	g.fail_copy_after = g.copies + 2;
	assert_int_equal(msg_send(pr->c[0], &big, WAIT_MS), -EIO);
	expect_detail("staging a payload piece: fake: device copy failed");
	assert_int_equal(msg_send(pr->c[0], &small, WAIT_MS), -EIO);
	gn_vp_conn_destroy(&pr->c[0]);
	pr->net->ep[0].dead = true;
	assert_int_equal(job_join(&rx), -ECONNRESET);
	msg_free(&small);
	msg_free(&big);
	pair_free(pr);
	fake_gpu_fini(&g);
}

/* ---- payload placement -------------------------------------------------- */

/*
 * A placement for the receiving engine: every payload it is asked for
 * gets memory (the fake GPU memory when `gpu` is set, else the heap); it
 * counts what it was asked, gave and got back.
 */
struct placer {
	struct fake_gpu *gpu;
	int asked, placed, unplaced;
	void *last;
};

static void *test_place(void *arg, const struct gn_conn *c, const uint8_t *env,
			size_t env_len, size_t payload_len)
{
	struct placer *p = arg;

	(void)c;
	(void)env;
	(void)env_len;
	p->asked++;
	p->placed++;
	p->last = p->gpu ? (void *)p->gpu->dev : malloc(payload_len);
	return p->last;
}

static void test_unplace(void *arg, void *buf)
{
	struct placer *p = arg;

	p->unplaced++;
	if (p->gpu == NULL || buf != p->gpu->dev)
		free(buf);
}

static const struct gn_transport_ops owner_ops = {
	.name = "fake", .caps = GN_TRANSPORT_CAP_GPU_MEMORY};

/*
 * A rendezvous payload whose envelope came whole in the RTS lands in the
 * placed memory: the peer's WRITEs go there (the CTS names it), and the
 * message hands it out as placed. A payload behind an envelope too large
 * for the RTS, and an eager message, are not placed (not even asked).
 */
static void test_placement(void **state)
{
	struct pair *pr = pair_new(16, 16384);
	struct placer pl = {0};
	const struct gn_placement gp = {test_place, test_unplace, &pl};
	struct gn_conn owner = {.ops = &owner_ops};
	struct msg m[3];
	struct gn_msg got;
	void *took;

	(void)state;
	pair_start(pr);
	gn_conn_set_placement(&owner, &gp);
	gn_vp_conn_set_owner(pr->c[1], &owner);
	msg_make(&m[0], 300, (3u << 20) + 77, 3, 60);
	msg_make(&m[1], 100u << 10, (1u << 20) + 5, 2, 61); /* env written */
	msg_make(&m[2], 200, 5000, 1, 62);		    /* eager */
	for (int i = 0; i < 3; i++) {
		struct job rx = {.c = pr->c[0], .send = &m[i], .nsend = 1};

		job_start(&rx);
		assert_int_equal(gn_vp_recv(pr->c[1], &got, WAIT_MS), 0);
		assert_int_equal(job_join(&rx), 0);
		msg_check(&m[i], &got);
		if (i == 0) {
			assert_int_equal(pl.placed, 1);
			assert_non_null(got.placed);
			assert_ptr_equal(got.payload, pl.last);
			took = gn_msg_take_placed(&got);
			assert_ptr_equal(took, pl.last);
			free(took);
		} else {
			assert_null(got.placed);
		}
		gn_msg_release(&got);
	}
	assert_int_equal(pl.asked, 1);
	assert_int_equal(pl.unplaced, 0);
	/* Its registration went with the message: only the rings stay. */
	assert_int_equal(pr->net->ep[1].nmr, 2);
	assert_int_equal(pr->net->ep[0].violations, 0);
	for (int i = 0; i < 3; i++)
		msg_free(&m[i]);
	pair_free(pr);
}

/*
 * GPUDirect RDMA receive: the placement gives fake GPU memory (faulting on
 * any CPU access), the fake NIC registers it and the peer's WRITEs land in
 * it. With registration refused the memory is given back untouched and
 * the message arrives in a message buffer. A connection torn down while
 * a placed payload is arriving gives it back too.
 */
static void gpu_receive(bool direct)
{
	struct pair *pr = pair_new(16, 16384);
	struct fake_gpu g;
	struct placer pl = {.gpu = &g};
	const struct gn_placement gp = {test_place, test_unplace, &pl};
	struct gn_conn owner = {.ops = &owner_ops};
	struct msg m;
	struct job tx;
	struct gn_msg got;

	pair_start(pr);
	fake_gpu_init(&g, 4u << 20);
	g.direct = direct;
	pr->net->ep[1].gpu = &g;
	gn_conn_set_placement(&owner, &gp);
	gn_vp_conn_set_owner(pr->c[1], &owner);
	msg_make(&m, 300, (3u << 20) + 77, 3, 70);
	tx = (struct job){.c = pr->c[0], .send = &m, .nsend = 1};
	job_start(&tx);
	assert_int_equal(gn_vp_recv(pr->c[1], &got, WAIT_MS), 0);
	assert_int_equal(job_join(&tx), 0);
	assert_int_equal(pl.placed, 1);
	if (direct) {
		assert_int_equal(g.regs, 1);
		assert_ptr_equal(got.placed, g.dev);
		assert_ptr_equal(got.payload, g.dev);
		assert_int_equal(got.payload_len, m.payload_len);
		assert_memory_equal(got.env, m.env, m.env_len);
		assert_memory_equal(g.alias, m.payload, m.payload_len);
		assert_int_equal(pl.unplaced, 0);
	} else {
		assert_int_equal(g.refused, 1);
		assert_int_equal(pl.unplaced, 1);
		assert_null(got.placed);
		msg_check(&m, &got);
		for (size_t i = 0; i < m.payload_len; i += 4096)
			assert_int_equal(g.alias[i], 0);
	}
	gn_msg_release(&got);
	assert_int_equal(pl.unplaced, 1);

	if (direct) {
		/*
		 * Torn down after the RTS, before the payload: given back.
		 * One thread: the sender gives up waiting for the CTS, the
		 * receiver then takes the RTS (and the sender's ERROR).
		 */
		assert_int_equal(msg_send(pr->c[0], &m, 200), -ETIMEDOUT);
		assert_int_not_equal(gn_vp_recv(pr->c[1], &got, 300), 0);
		assert_int_equal(pl.placed, 2);
		assert_int_equal(pl.unplaced, 1);
		gn_vp_conn_destroy(&pr->c[1]);
		pr->net->ep[1].dead = true;
		assert_int_equal(pl.unplaced, 2);
	}
	assert_int_equal(pr->net->ep[1].violations, 0);
	msg_free(&m);
	pair_free(pr);
	fake_gpu_fini(&g);
}

static void test_gpu_receive_direct(void **state)
{
	(void)state;
	gpu_receive(true);
}

static void test_gpu_receive_refused(void **state)
{
	(void)state;
	gpu_receive(false);
}

/* Both sides send large messages at the same moment: no deadlock. */
static void test_simultaneous(void **state)
{
	struct pair *pr = pair_new(8, 8192);
	struct msg a[3], b[3];
	struct job ja, jb;

	(void)state;
	pair_start(pr);
	for (int i = 0; i < 3; i++) {
		msg_make(&a[i], 64, (6u << 20) + (size_t)i * 1000, 2, 20 + i);
		msg_make(&b[i], 64, (4u << 20) + (size_t)i * 777, 4, 30 + i);
	}
	ja = (struct job){
		.c = pr->c[0], .send = a, .nsend = 3, .want = b, .nrecv = 3};
	jb = (struct job){
		.c = pr->c[1], .send = b, .nsend = 3, .want = a, .nrecv = 3};
	job_start(&ja);
	job_start(&jb);
	assert_int_equal(job_join(&ja), 0);
	assert_int_equal(job_join(&jb), 0);
	assert_int_equal(pr->net->ep[0].rnr + pr->net->ep[1].rnr, 0);
	for (int i = 0; i < 3; i++) {
		msg_free(&a[i]);
		msg_free(&b[i]);
	}
	pair_free(pr);
}

/* More messages than receive buffers, the receiver slow: credits. */
static void test_credits(void **state)
{
	enum { N = 60 };
	struct pair *pr = pair_new(4, 1024);
	struct msg m[N];
	struct job rx;
	struct gn_msg got;
	uint64_t t0;

	(void)state;
	pair_start(pr);
	for (int i = 0; i < N; i++) /* every 10th by rendezvous */
		msg_make(&m[i], 32, i % 10 == 9 ? 5000 : (size_t)i * 10, 1,
			 40 + i);
	/* Nobody receives: three go (one credit is kept), then a timeout. */
	for (int i = 0; i < 3; i++)
		assert_int_equal(msg_send(pr->c[0], &m[i], 50), 0);
	assert_int_equal(msg_send(pr->c[0], &m[3], 50), -ETIMEDOUT);
	expect_detail("no send credit within 50 ms");
	assert_int_equal(gn_vp_conn_error(pr->c[0], NULL), 0);
	/* The receiver wakes after 200 ms; the sender waits for it. */
	rx = (struct job){
		.c = pr->c[1], .want = m, .nrecv = N, .delay_ms = 200};
	t0 = gn_clock_ns();
	job_start(&rx);
	for (int i = 3; i < N; i++)
		assert_int_equal(msg_send(pr->c[0], &m[i], WAIT_MS), 0);
	assert_true(gn_clock_ns() - t0 >= 150000000ull);
	assert_int_equal(job_join(&rx), 0);
	/* The receiver's credits came back although it sent no message. */
	assert_int_equal(pr->net->ep[0].rnr, 0);
	assert_int_equal(pr->net->ep[0].last_id, N);
	assert_int_equal(gn_vp_recv(pr->c[0], &got, 10), -ETIMEDOUT);
	for (int i = 0; i < N; i++)
		msg_free(&m[i]);
	pair_free(pr);
}

/*
 * Both ends send and neither receives: without a cap each would queue
 * everything the other sends (the sender's engine returns credits as it
 * serves arrivals). With queue_max 5, an end past 5 queued messages keeps
 * the credits, so the other's sends stop within queue_max + nrecv and
 * time out; once it receives, credits flow again.
 */
struct flood {
	struct gn_vp_conn *c;
	struct msg *m;
	int n, sent, rc;
	pthread_t t;
};

static void *flood_run(void *arg)
{
	struct flood *f = arg;

	for (f->sent = 0; f->sent < f->n; f->sent++) {
		f->rc = msg_send(f->c, &f->m[f->sent], 300);
		if (f->rc != 0)
			break;
	}
	return NULL;
}

static void test_backpressure(void **state)
{
	enum { N = 200, QMAX = 5, NRECV = 8 };
	struct pair *pr = pair_new(NRECV, 1024);
	static struct msg m[2][N];
	struct flood f[2];
	struct gn_msg got;

	(void)state;
	for (int i = 0; i < 2; i++)
		pr->p[i].queue_max = QMAX;
	pair_start(pr);
	for (int s = 0; s < 2; s++)
		for (int i = 0; i < N; i++)
			msg_make(&m[s][i], 16, 100, 1,
				 (uint32_t)(1000 * s + i));
	for (int s = 0; s < 2; s++) {
		f[s] = (struct flood){.c = pr->c[s], .m = m[s], .n = N};
		assert_int_equal(
			pthread_create(&f[s].t, NULL, flood_run, &f[s]), 0);
	}
	for (int s = 0; s < 2; s++)
		pthread_join(f[s].t, NULL);
	for (int s = 0; s < 2; s++) {
		/* Stopped by the peer's full queue, not by running out. */
		assert_int_equal(f[s].rc, -ETIMEDOUT);
		assert_true(f[s].sent >= QMAX);
		assert_true(f[s].sent <= QMAX + NRECV);
		assert_int_equal(gn_vp_conn_error(pr->c[s], NULL), 0);
	}
	/* Everything sent is queued at the other end, in order, intact. */
	for (int s = 0; s < 2; s++) {
		for (int i = 0; i < f[1 - s].sent; i++) {
			assert_int_equal(gn_vp_recv(pr->c[s], &got, WAIT_MS),
					 0);
			msg_check(&m[1 - s][i], &got);
			gn_msg_release(&got);
		}
		assert_int_equal(gn_vp_recv(pr->c[s], &got, 10), -ETIMEDOUT);
	}
	/* Drained, the held credits go back: the rest arrives too. */
	{
		struct job rx = {.c = pr->c[1],
				 .want = &m[0][f[0].sent],
				 .nrecv = N - f[0].sent};

		job_start(&rx);
		for (int i = f[0].sent; i < N; i++)
			assert_int_equal(msg_send(pr->c[0], &m[0][i], WAIT_MS),
					 0);
		assert_int_equal(job_join(&rx), 0);
	}
	for (int s = 0; s < 2; s++)
		for (int i = 0; i < N; i++)
			msg_free(&m[s][i]);
	pair_free(pr);
}

/* ---- hostile peers ------------------------------------------------------ */

/* Deliver raw bytes into e's oldest receive, as a peer's SEND would. */
static void inject(struct fake_ep *e, const void *bytes, uint32_t len)
{
	uint64_t rid = 0;
	uint8_t *rbuf = NULL;
	uint32_t rlen = 0;

	pthread_mutex_lock(&e->net->mu);
	assert_true(take_recv(e, &rid, &rbuf, &rlen));
	assert_true(len <= rlen);
	memcpy(rbuf, bytes, len);
	cq_push(e, (struct gn_vp_wc){
			   .wr_id = rid, .op = GN_VP_WC_RECV, .byte_len = len});
	pthread_mutex_unlock(&e->net->mu);
}

static void inject_imm(struct fake_ep *e, uint32_t imm)
{
	uint64_t rid = 0;
	uint8_t *rbuf = NULL;
	uint32_t rlen = 0;

	pthread_mutex_lock(&e->net->mu);
	assert_true(take_recv(e, &rid, &rbuf, &rlen));
	cq_push(e, (struct gn_vp_wc){
			   .wr_id = rid, .op = GN_VP_WC_RECV_IMM, .imm = imm});
	pthread_mutex_unlock(&e->net->mu);
}

/* A header; body bytes follow at h + GN_VP_HDR_SIZE. */
static uint32_t hdr(uint8_t *h, uint8_t type, uint32_t id, uint32_t len)
{
	uint32_t v[6] = {GN_VP_MAGIC, 0, 0, id, len, 0};

	memcpy(h, v, sizeof(v));
	h[4] = GN_VP_VERSION;
	h[5] = type;
	return GN_VP_HDR_SIZE + len;
}

/* An EAGER message with a 1-byte envelope. */
static uint32_t eager(uint8_t *h, uint32_t id)
{
	gn_frame_hdr_encode(h + GN_VP_HDR_SIZE, 1, 0);
	h[GN_VP_HDR_SIZE + GN_FRAME_HDR_SIZE] = 0x42;
	return hdr(h, GN_VP_EAGER, id, GN_FRAME_HDR_SIZE + 1);
}

/* Inject into side 0 and expect its recv to fail with rc and `needle`. */
static void hostile(const uint8_t *bytes, uint32_t len, bool imm,
		    uint32_t imm_val, int rc, const char *needle)
{
	struct pair *pr = pair_new(8, 4096);
	struct gn_msg got;
	const char *why;

	pair_start(pr);
	if (imm)
		inject_imm(&pr->net->ep[0], imm_val);
	else
		inject(&pr->net->ep[0], bytes, len);
	assert_int_equal(gn_vp_recv(pr->c[0], &got, WAIT_MS), rc);
	expect_detail(needle);
	assert_null(got.buf);
	/* Sticky: every later call says the same. */
	assert_int_equal(gn_vp_conn_error(pr->c[0], &why), rc);
	assert_non_null(strstr(why, needle));
	assert_int_equal(gn_vp_recv(pr->c[0], &got, 0), rc);
	assert_int_equal(
		gn_vp_send(pr->c[0], (const uint8_t *)"x", 1, NULL, 0, 0), rc);
	expect_detail(needle);
	/* The peer heard why (an ERROR message). */
	assert_int_equal(gn_vp_recv(pr->c[1], &got, WAIT_MS), rc);
	expect_detail("fake-peer reported an error");
	expect_detail(needle);
	pair_free(pr);
}

static void test_wrong_magic(void **state)
{
	uint8_t b[256];
	uint32_t n = eager(b, 1);

	(void)state;
	b[0] ^= 0xff;
	hostile(b, n, false, 0, -EPROTO, "wrong magic");
}

static void test_malformed(void **state)
{
	uint8_t b[256];
	uint32_t n = eager(b, 1);

	(void)state;
	hostile(b, 10, false, 0, -EPROTO, "shorter than the 24-byte header");
	b[16] = 200; /* len beyond what arrived */
	hostile(b, n, false, 0, -EPROTO, "header announces 200 bytes");
	n = eager(b, 1);
	b[4] = 9;
	hostile(b, n, false, 0, -EPROTO, "protocol version 9, expected 1");
	n = eager(b, 1);
	b[5] = 77;
	hostile(b, n, false, 0, -EPROTO, "unknown message type 77");
	n = eager(b, 1);
	b[8] = 9; /* 9 credits back; none was out */
	hostile(b, n, false, 0, -EPROTO, "9 credits returned, at most 0");
	/* A frame header that lies about its lengths. */
	n = eager(b, 1);
	gn_frame_hdr_encode(b + GN_VP_HDR_SIZE, 1, 5);
	hostile(b, n, false, 0, -EPROTO, "announces 1 + 5 bytes, carries 1");
}

static void test_id_reuse(void **state)
{
	uint8_t b[256];
	uint32_t n = eager(b, 2);

	(void)state;
	hostile(b, n, false, 0, -EPROTO, "message id 2, expected 1");
}

static void test_id_reused_after_one(void **state)
{
	struct pair *pr = pair_new(8, 4096);
	uint8_t b[256];
	uint32_t n = eager(b, 1);
	struct gn_msg got;

	(void)state;
	pair_start(pr);
	inject(&pr->net->ep[0], b, n);
	inject(&pr->net->ep[0], b, n); /* id 1 again */
	assert_int_equal(gn_vp_recv(pr->c[0], &got, WAIT_MS), 0);
	assert_int_equal(got.env_len, 1);
	assert_int_equal(got.env[0], 0x42);
	gn_msg_release(&got);
	assert_int_equal(gn_vp_recv(pr->c[0], &got, WAIT_MS), -EPROTO);
	expect_detail("EAGER with message id 1, expected 2");
	pair_free(pr);
}

static void test_cts_unknown(void **state)
{
	uint8_t b[256] = {0};
	uint32_t n = hdr(b, GN_VP_CTS, 5, 20);

	(void)state;
	hostile(b, n, false, 0, -EPROTO, "CTS for message 5, but no message");
}

static void test_cts_part_unknown(void **state)
{
	uint8_t b[256] = {0};
	uint32_t n = hdr(b, GN_VP_CTS_PART, 5, 28);

	(void)state;
	hostile(b, n, false, 0, -EPROTO,
		"CTS_PART for message 5, but no such message waits");
}

static void test_imm_for_nothing(void **state)
{
	(void)state;
	hostile(NULL, 0, true, 3, -EPROTO,
		"RDMA write with immediate 3, but no message is arriving");
}

/* An RTS beyond the receiver's caps: both callers hear -EMSGSIZE. */
static void test_rts_over_caps(void **state)
{
	struct pair *pr = pair_new(8, 4096);
	struct msg m;
	struct job rx;
	struct gn_msg got;

	(void)state;
	pr->p[1].limits.max_payload = 1u << 20;
	pair_start(pr);
	msg_make(&m, 40, 2u << 20, 2, 50);
	rx = (struct job){.c = pr->c[1], .want = &m, .nrecv = 1};
	job_start(&rx);
	assert_int_equal(msg_send(pr->c[0], &m, WAIT_MS), -EMSGSIZE);
	expect_detail("fake-peer reported an error");
	expect_detail("exceeds cap of 1048576");
	assert_int_equal(job_join(&rx), -EMSGSIZE);
	assert_int_equal(gn_vp_recv(pr->c[1], &got, 0), -EMSGSIZE);
	expect_detail("message 1 refused");
	/* The peer never registered anything for it. */
	assert_int_equal(pr->net->ep[1].nmr, 2);
	assert_int_equal(pr->net->ep[0].writes, 0);
	msg_free(&m);
	pair_free(pr);
}

/*
 * The receiver can register neither a large message's buffer nor its
 * staging ring (the locked-memory limit, typically): both ends fail, with
 * the limit and how to raise it.
 */
static void test_receiver_cannot_register(void **state)
{
	struct pair *pr = pair_new(8, 4096);
	struct rlimit old, low;
	struct msg m;
	struct job rx;
	struct gn_msg got;

	(void)state;
	assert_int_equal(getrlimit(RLIMIT_MEMLOCK, &old), 0);
	low = old;
	low.rlim_cur = 64u << 10;
	if (old.rlim_max != RLIM_INFINITY && old.rlim_max < low.rlim_cur)
		low.rlim_cur = old.rlim_max;
	assert_int_equal(setrlimit(RLIMIT_MEMLOCK, &low), 0);
	pr->net->ep[1].fail_remote_reg_over = 512u << 10;
	pair_start(pr);
	msg_make(&m, 40, 2u << 20, 2, 51);
	rx = (struct job){.c = pr->c[1], .want = &m, .nrecv = 1};
	job_start(&rx);
	assert_int_equal(msg_send(pr->c[0], &m, WAIT_MS), -ENOMEM);
	expect_detail("fake-peer reported an error");
	expect_detail("cannot register 2097");
	expect_detail("nor a 1048576-byte staging ring");
	assert_int_equal(job_join(&rx), -ENOMEM);
	assert_int_equal(gn_vp_recv(pr->c[1], &got, 0), -ENOMEM);
	expect_detail("RLIMIT_MEMLOCK): raise it with ulimit -l unlimited");
	assert_int_equal(pr->net->ep[1].reg_failures, 2);
	assert_int_equal(pr->net->ep[0].writes, 0);
	assert_int_equal(setrlimit(RLIMIT_MEMLOCK, &old), 0);
	msg_free(&m);
	pair_free(pr);
}

/* The receiver registered less than it offered: the WRITE is refused. */
static void test_rkey_out_of_range(void **state)
{
	struct pair *pr = pair_new(8, 4096);
	struct msg m;
	struct job rx;

	(void)state;
	pr->net->ep[1].shrink_remote = 1;
	pair_start(pr);
	msg_make(&m, 40, 3u << 20, 3, 60);
	rx = (struct job){.c = pr->c[1], .want = &m, .nrecv = 1};
	job_start(&rx);
	assert_int_equal(msg_send(pr->c[0], &m, WAIT_MS), -EIO);
	expect_detail("RDMA WRITE completion failed: remote access error");
	/* The caller's memory was deregistered only after the flush. */
	assert_int_equal(pr->net->ep[0].nmr, 2);
	pr->net->ep[0].dead = true; /* as the glue notices a dead peer */
	assert_int_equal(job_join(&rx), -ECONNRESET);
	msg_free(&m);
	pair_free(pr);
}

static void test_error_completion(void **state)
{
	struct pair *pr = pair_new(8, 4096);
	struct msg m;
	struct gn_msg got;

	(void)state;
	pair_start(pr);
	msg_make(&m, 40, 100, 1, 70);
	pr->net->ep[0].error_next_send = true;
	/* An eager send returns once posted; the error shows next. */
	assert_int_equal(msg_send(pr->c[0], &m, WAIT_MS), 0);
	assert_int_equal(gn_vp_recv(pr->c[0], &got, WAIT_MS), -EIO);
	expect_detail("SEND completion failed: transport retry counter "
		      "exceeded (status 12)");
	assert_int_equal(msg_send(pr->c[0], &m, WAIT_MS), -EIO);
	msg_free(&m);
	pair_free(pr);
}

/* The peer closes: what it sent first arrives, then -ECONNRESET. */
static void test_peer_close(void **state)
{
	struct pair *pr = pair_new(8, 4096);
	struct msg m;
	struct gn_msg got;

	(void)state;
	pair_start(pr);
	msg_make(&m, 40, 100, 1, 80);
	assert_int_equal(msg_send(pr->c[1], &m, WAIT_MS), 0);
	gn_vp_conn_destroy(&pr->c[1]);
	pr->net->ep[1].dead = true;
	assert_int_equal(gn_vp_recv(pr->c[0], &got, WAIT_MS), 0);
	msg_check(&m, &got);
	gn_msg_release(&got);
	assert_int_equal(gn_vp_recv(pr->c[0], &got, WAIT_MS), -ECONNRESET);
	expect_detail("the peer closed");
	assert_int_equal(msg_send(pr->c[0], &m, 0), -ECONNRESET);
	msg_free(&m);
	pair_free(pr);
}

/* No CTS in time: -ETIMEDOUT, and the connection is out of step. */
static void test_cts_timeout(void **state)
{
	struct pair *pr = pair_new(8, 4096);
	struct msg m;

	(void)state;
	pair_start(pr);
	msg_make(&m, 40, 1u << 20, 1, 90);
	assert_int_equal(msg_send(pr->c[0], &m, 50), -ETIMEDOUT);
	expect_detail("no CTS for message 1 within 50 ms");
	assert_int_equal(msg_send(pr->c[0], &m, 50), -ETIMEDOUT);
	expect_detail("out of step");
	msg_free(&m);
	pair_free(pr);
}

/*
 * The NIC never completes the WRITEs: the send times out, flushes them and
 * deregisters the caller's memory only after the flush completions.
 */
static void test_write_timeout(void **state)
{
	struct pair *pr = pair_new(8, 4096);
	struct msg m;
	struct job rx;

	(void)state;
	pair_start(pr);
	pr->net->ep[0].hold_writes = true;
	msg_make(&m, 40, 3u << 20, 3, 95);
	rx = (struct job){.c = pr->c[1], .want = &m, .nrecv = 1};
	job_start(&rx);
	assert_int_equal(msg_send(pr->c[0], &m, 200), -ETIMEDOUT);
	expect_detail("RDMA WRITEs of message 1 did not complete within "
		      "200 ms");
	assert_int_equal(pr->net->ep[0].nheld, 0);
	assert_int_equal(pr->net->ep[0].violations, 0);
	assert_int_equal(pr->net->ep[0].nmr, 2);
	pr->net->ep[0].dead = true;
	assert_int_equal(job_join(&rx), -ECONNRESET);
	msg_free(&m);
	pair_free(pr);
}

static void test_bad_args(void **state)
{
	struct pair *pr = pair_new(8, 4096);
	struct gn_vp_params p;

	(void)state;
	pr->p[0].limits.max_envelope = 100;
	pair_start(pr);
	assert_int_equal(
		gn_vp_send(pr->c[0], (const uint8_t *)"x", 0, NULL, 0, 0),
		-EMSGSIZE);
	{
		uint8_t big[101] = {0};

		assert_int_equal(
			gn_vp_send(pr->c[0], big, sizeof(big), NULL, 0, 0),
			-EMSGSIZE);
		expect_detail("envelope of 101 bytes, cap is 100");
	}
	assert_int_equal(gn_vp_conn_error(pr->c[0], NULL), 0);
	params(&p, 2, 4096);
	assert_null(gn_vp_conn_create(&fake_ops, &pr->net->ep[0], &p));
	expect_detail("2 receive buffers here");
	pair_free(pr);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_eager),
		cmocka_unit_test(test_rendezvous),
		cmocka_unit_test(test_rendezvous_staged),
		cmocka_unit_test(test_rendezvous_receiver_staged),
		cmocka_unit_test(test_rendezvous_both_staged),
		cmocka_unit_test(test_gpu_direct),
		cmocka_unit_test(test_gpu_staged),
		cmocka_unit_test(test_gpu_copy_fails),
		cmocka_unit_test(test_placement),
		cmocka_unit_test(test_gpu_receive_direct),
		cmocka_unit_test(test_gpu_receive_refused),
		cmocka_unit_test(test_simultaneous),
		cmocka_unit_test(test_credits),
		cmocka_unit_test(test_backpressure),
		cmocka_unit_test(test_wrong_magic),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_id_reuse),
		cmocka_unit_test(test_id_reused_after_one),
		cmocka_unit_test(test_cts_unknown),
		cmocka_unit_test(test_cts_part_unknown),
		cmocka_unit_test(test_imm_for_nothing),
		cmocka_unit_test(test_rts_over_caps),
		cmocka_unit_test(test_receiver_cannot_register),
		cmocka_unit_test(test_rkey_out_of_range),
		cmocka_unit_test(test_error_completion),
		cmocka_unit_test(test_peer_close),
		cmocka_unit_test(test_cts_timeout),
		cmocka_unit_test(test_write_timeout),
		cmocka_unit_test(test_bad_args),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
