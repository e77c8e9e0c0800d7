/*
 * The verbs protocol engine (dpdk/verbs_proto.c) over a fake queue pair.
 *
 * The fake connects two endpoints in memory, as an RC queue pair would:
 * a SEND lands in the peer's oldest posted receive (none posted: an RNR
 * error, which the credit scheme must never cause), an RDMA WRITE is
 * copied to the peer's address after its rkey and range are checked
 * against the peer's registered regions (with immediate: it consumes a
 * receive), local buffers must lie in the region their handle names, and
 * every request completes at once into the poster's CQ. Moving a QP to
 * the error state flushes its receives. The fake also reads the headers
 * on the wire to check that message ids count up by one.
 *
 * Engines run in one thread each where both must progress; hostile peers
 * are bytes injected straight into an endpoint's receive buffers.
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
#include <unistd.h>

#include <cmocka.h>

#include "clock.h"
#include "gn_error.h"
#include "verbs_proto.h"

#define CQ_CAP 8192
#define RQ_CAP 4096
#define WAIT_MS 10000

struct fake_mr {
	uint8_t *addr;
	size_t len;
	uint32_t key;
	unsigned access;
	bool remote;
	struct fake_mr *next;
};

struct fake_ep {
	struct fake_net *net;
	struct fake_ep *peer;
	struct {
		uint64_t wr_id;
		uint8_t *buf;
		uint32_t len;
	} rq[RQ_CAP];
	size_t rq_head, rq_n;
	struct gn_vp_wc cq[CQ_CAP];
	size_t cq_head, cq_n;
	struct fake_mr *mrs;
	int nmr;
	/* Posted requests whose completion was not polled yet. */
	struct {
		uint64_t wr_id;
		const void *mr;
	} inflight[CQ_CAP];
	size_t ninflight;
	int violations; /* rules of the verbs API the engine broke */
	bool dead, errstate;
	/* knobs */
	size_t fail_reg_over; /* local registrations above this fail */
	size_t shrink_remote; /* remote registrations come out shorter */
	bool error_next_send;
	bool hold_writes; /* a stuck NIC: WRITEs never complete until the
			     QP goes to the error state (then they flush) */
	uint64_t held[CQ_CAP];
	size_t nheld;
	/* what the fake saw */
	uint32_t last_id;
	int id_errors, rnr, reg_failures, writes, imm_writes, sends;
	uint64_t max_write_len;
};

struct fake_net {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct fake_ep ep[2];
	uint32_t next_key;
};

static void cq_push(struct fake_ep *e, struct gn_vp_wc wc)
{
	assert_true(e->cq_n < CQ_CAP);
	e->cq[(e->cq_head + e->cq_n++) % CQ_CAP] = wc;
	pthread_cond_broadcast(&e->net->cv);
}

static void cq_err(struct fake_ep *e, uint64_t wr_id, enum gn_vp_wc_op op,
		   int status, const char *str)
{
	cq_push(e, (struct gn_vp_wc){.wr_id = wr_id,
				     .op = op,
				     .status = status,
				     .status_str = str});
}

static void inflight_add(struct fake_ep *e, uint64_t wr_id, const void *mr)
{
	assert_true(e->ninflight < CQ_CAP);
	e->inflight[e->ninflight].wr_id = wr_id;
	e->inflight[e->ninflight++].mr = mr;
}

/* The oldest request with this wr_id completed (queues are in order). */
static void inflight_done(struct fake_ep *e, uint64_t wr_id)
{
	for (size_t i = 0; i < e->ninflight; i++)
		if (e->inflight[i].wr_id == wr_id) {
			memmove(&e->inflight[i], &e->inflight[i + 1],
				(e->ninflight - i - 1) *
					sizeof(e->inflight[0]));
			e->ninflight--;
			return;
		}
	fprintf(stderr, "fake: completion for wr_id %#llx, not in flight\n",
		(unsigned long long)wr_id);
	e->violations++;
}

static bool local_ok(const void *mr, const void *buf, size_t len)
{
	const struct fake_mr *m = mr;
	const uint8_t *b = buf;

	return m != NULL && b >= m->addr && b + len <= m->addr + m->len;
}

/* Take the peer's oldest receive; NULL when none is posted. */
static bool take_recv(struct fake_ep *p, uint64_t *wr_id, uint8_t **buf,
		      uint32_t *len)
{
	if (p->rq_n == 0 || p->errstate || p->dead)
		return false;
	*wr_id = p->rq[p->rq_head].wr_id;
	*buf = p->rq[p->rq_head].buf;
	*len = p->rq[p->rq_head].len;
	p->rq_head = (p->rq_head + 1) % RQ_CAP;
	p->rq_n--;
	return true;
}

static int f_post_send(void *ctx, uint64_t wr_id, const void *buf, uint32_t len,
		       void *mr)
{
	struct fake_ep *e = ctx, *p = e->peer;
	uint64_t rid = 0;
	uint8_t *rbuf = NULL;
	uint32_t rlen = 0;

	pthread_mutex_lock(&e->net->mu);
	inflight_add(e, wr_id, mr);
	if (e->errstate) {
		cq_err(e, wr_id, GN_VP_WC_SEND, 5, "WR flushed");
	} else if (!local_ok(mr, buf, len)) {
		cq_err(e, wr_id, GN_VP_WC_SEND, 4, "local protection error");
		e->errstate = true;
	} else if (e->error_next_send) {
		e->error_next_send = false;
		cq_err(e, wr_id, GN_VP_WC_SEND, 12,
		       "transport retry counter exceeded");
		e->errstate = true;
	} else if (!take_recv(p, &rid, &rbuf, &rlen)) {
		e->rnr++;
		cq_err(e, wr_id, GN_VP_WC_SEND, 13,
		       "RNR retry counter exceeded");
		e->errstate = true;
	} else {
		const uint8_t *b = buf;

		assert_true(len <= rlen);
		memcpy(rbuf, buf, len);
		if (len >= GN_VP_HDR_SIZE &&
		    (b[5] == GN_VP_EAGER || b[5] == GN_VP_RTS)) {
			uint32_t id;

			memcpy(&id, b + 12, 4);
			if (id != e->last_id + 1)
				e->id_errors++;
			e->last_id = id;
		}
		e->sends++;
		cq_push(p, (struct gn_vp_wc){.wr_id = rid,
					     .op = GN_VP_WC_RECV,
					     .byte_len = len});
		cq_push(e,
			(struct gn_vp_wc){.wr_id = wr_id, .op = GN_VP_WC_SEND});
	}
	pthread_mutex_unlock(&e->net->mu);
	return 0;
}

static int f_post_write(void *ctx, uint64_t wr_id, const void *buf,
			uint32_t len, void *mr, uint64_t raddr, uint32_t rkey,
			bool with_imm, uint32_t imm)
{
	struct fake_ep *e = ctx, *p = e->peer;
	struct fake_mr *m;
	uint8_t *dst = (uint8_t *)(uintptr_t)raddr;

	pthread_mutex_lock(&e->net->mu);
	for (m = p->mrs; m != NULL; m = m->next)
		if (m->key == rkey && m->remote && dst >= m->addr &&
		    dst + len <= m->addr + m->len)
			break;
	inflight_add(e, wr_id, mr);
	e->writes++;
	if (len > e->max_write_len)
		e->max_write_len = len;
	if (e->hold_writes && !e->errstate) {
		e->held[e->nheld++] = wr_id;
	} else if (e->errstate) {
		cq_err(e, wr_id, GN_VP_WC_WRITE, 5, "WR flushed");
	} else if (!local_ok(mr, buf, len)) {
		cq_err(e, wr_id, GN_VP_WC_WRITE, 4, "local protection error");
		e->errstate = true;
	} else if (m == NULL || p->dead) {
		cq_err(e, wr_id, GN_VP_WC_WRITE, 10, "remote access error");
		e->errstate = true;
	} else {
		uint64_t rid = 0;
		uint8_t *rbuf = NULL;
		uint32_t rlen = 0;

		memcpy(dst, buf, len);
		if (with_imm) {
			e->imm_writes++;
			if (!take_recv(p, &rid, &rbuf, &rlen)) {
				e->rnr++;
				cq_err(e, wr_id, GN_VP_WC_WRITE, 13,
				       "RNR retry counter exceeded");
				e->errstate = true;
				pthread_mutex_unlock(&e->net->mu);
				return 0;
			}
			cq_push(p, (struct gn_vp_wc){.wr_id = rid,
						     .op = GN_VP_WC_RECV_IMM,
						     .byte_len = len,
						     .imm = imm});
		}
		cq_push(e, (struct gn_vp_wc){.wr_id = wr_id,
					     .op = GN_VP_WC_WRITE});
	}
	pthread_mutex_unlock(&e->net->mu);
	return 0;
}

static int f_post_recv(void *ctx, uint64_t wr_id, void *buf, uint32_t len,
		       void *mr)
{
	struct fake_ep *e = ctx;

	pthread_mutex_lock(&e->net->mu);
	assert_true(local_ok(mr, buf, len));
	assert_true(((const struct fake_mr *)mr)->access &
		    GN_VP_ACCESS_LOCAL_WRITE);
	inflight_add(e, wr_id, mr);
	if (e->errstate) {
		cq_err(e, wr_id, GN_VP_WC_RECV, 5, "WR flushed");
	} else {
		assert_true(e->rq_n < RQ_CAP);
		e->rq[(e->rq_head + e->rq_n++) % RQ_CAP].wr_id = wr_id;
		e->rq[(e->rq_head + e->rq_n - 1) % RQ_CAP].buf = buf;
		e->rq[(e->rq_head + e->rq_n - 1) % RQ_CAP].len = len;
	}
	pthread_mutex_unlock(&e->net->mu);
	return 0;
}

static int f_poll(void *ctx, struct gn_vp_wc *wc, int max)
{
	struct fake_ep *e = ctx;
	int n = 0;

	pthread_mutex_lock(&e->net->mu);
	while (n < max && e->cq_n > 0) {
		inflight_done(e, e->cq[e->cq_head].wr_id);
		wc[n++] = e->cq[e->cq_head];
		e->cq_head = (e->cq_head + 1) % CQ_CAP;
		e->cq_n--;
	}
	pthread_mutex_unlock(&e->net->mu);
	return n;
}

static int f_reg_mr(void *ctx, void *addr, size_t len, unsigned access,
		    void **mr, uint32_t *rkey)
{
	struct fake_ep *e = ctx;
	bool remote = access & GN_VP_ACCESS_REMOTE_WRITE;
	struct fake_mr *m;

	pthread_mutex_lock(&e->net->mu);
	if (!remote && e->fail_reg_over && len > e->fail_reg_over) {
		e->reg_failures++;
		pthread_mutex_unlock(&e->net->mu);
		return -ENOMEM;
	}
	m = calloc(1, sizeof(*m));
	assert_non_null(m);
	m->addr = addr;
	m->len = len;
	if (remote && e->shrink_remote) {
		m->len -= e->shrink_remote;
		e->shrink_remote = 0;
	}
	m->key = ++e->net->next_key;
	m->remote = remote;
	m->access = access;
	m->next = e->mrs;
	e->mrs = m;
	e->nmr++;
	*mr = m;
	*rkey = m->key;
	pthread_mutex_unlock(&e->net->mu);
	return 0;
}

static void f_dereg_mr(void *ctx, void *mr)
{
	struct fake_ep *e = ctx;
	struct fake_mr **pp;

	pthread_mutex_lock(&e->net->mu);
	/* Nothing is deregistered while a request still uses it. */
	for (size_t i = 0; i < e->ninflight; i++)
		if (e->inflight[i].mr == mr) {
			fprintf(stderr,
				"fake: deregistering a region that request "
				"%#llx still uses\n",
				(unsigned long long)e->inflight[i].wr_id);
			e->violations++;
		}
	for (pp = &e->mrs; *pp != NULL && *pp != mr; pp = &(*pp)->next)
		;
	assert_non_null(*pp);
	*pp = ((struct fake_mr *)mr)->next;
	e->nmr--;
	free(mr);
	pthread_mutex_unlock(&e->net->mu);
}

static int f_arm(void *ctx)
{
	(void)ctx;
	return 0;
}

static int f_wait(void *ctx, uint64_t deadline)
{
	struct fake_ep *e = ctx;
	int rc = 0;

	pthread_mutex_lock(&e->net->mu);
	while (e->cq_n == 0 && !e->peer->dead) {
		struct timespec ts;

		if (gn_clock_ns() >= deadline) {
			rc = -ETIMEDOUT;
			break;
		}
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 5000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&e->net->cv, &e->net->mu, &ts);
	}
	if (rc == 0 && e->cq_n == 0 && e->peer->dead)
		rc = gn_error_set(-ECONNRESET, "fake: the peer closed");
	pthread_mutex_unlock(&e->net->mu);
	return rc;
}

static void f_qp_error(void *ctx)
{
	struct fake_ep *e = ctx;

	pthread_mutex_lock(&e->net->mu);
	e->errstate = true;
	for (size_t i = 0; i < e->nheld; i++)
		cq_err(e, e->held[i], GN_VP_WC_WRITE, 5, "WR flushed");
	e->nheld = 0;
	while (e->rq_n > 0) {
		cq_err(e, e->rq[e->rq_head].wr_id, GN_VP_WC_RECV, 5,
		       "WR flushed");
		e->rq_head = (e->rq_head + 1) % RQ_CAP;
		e->rq_n--;
	}
	pthread_mutex_unlock(&e->net->mu);
}

static const struct gn_vp_ops fake_ops = {
	.post_send = f_post_send,
	.post_write = f_post_write,
	.post_recv = f_post_recv,
	.poll = f_poll,
	.reg_mr = f_reg_mr,
	.dereg_mr = f_dereg_mr,
	.arm = f_arm,
	.wait = f_wait,
	.qp_error = f_qp_error,
};

/* ---- fixture ------------------------------------------------------------ */

struct pair {
	struct fake_net *net;
	struct gn_vp_conn *c[2];
	struct gn_vp_params p[2];
};

static void params(struct gn_vp_params *p, uint32_t nrecv, uint32_t buf)
{
	gn_vp_params_init(p);
	p->nrecv = p->peer_nrecv = nrecv;
	p->buf_size = p->peer_buf_size = buf;
	p->max_write = 1u << 20; /* several WRITEs per message */
	p->staging_size = 1u << 20;
	p->staging_slots = 4;
	p->peer = "fake-peer";
}

static struct pair *pair_new(uint32_t nrecv, uint32_t buf)
{
	struct pair *pr = calloc(1, sizeof(*pr));

	assert_non_null(pr);
	pr->net = calloc(1, sizeof(*pr->net));
	assert_non_null(pr->net);
	pthread_mutex_init(&pr->net->mu, NULL);
	pthread_cond_init(&pr->net->cv, NULL);
	for (int i = 0; i < 2; i++) {
		pr->net->ep[i].net = pr->net;
		pr->net->ep[i].peer = &pr->net->ep[1 - i];
		params(&pr->p[i], nrecv, buf);
	}
	return pr;
}

static void pair_start(struct pair *pr)
{
	for (int i = 0; i < 2; i++) {
		pr->c[i] = gn_vp_conn_create(&fake_ops, &pr->net->ep[i],
					     &pr->p[i]);
		assert_non_null(pr->c[i]);
	}
}

static void pair_free(struct pair *pr)
{
	for (int i = 0; i < 2; i++) {
		gn_vp_conn_destroy(&pr->c[i]);
		assert_null(pr->c[i]);
		pr->net->ep[i].dead = true;
	}
	for (int i = 0; i < 2; i++) {
		struct fake_ep *e = &pr->net->ep[i];

		/* Nothing registered outlives its connection. */
		assert_int_equal(e->nmr, 0);
		assert_int_equal(e->ninflight, 0);
		assert_int_equal(e->violations, 0);
		assert_int_equal(e->id_errors, 0);
	}
	pthread_mutex_destroy(&pr->net->mu);
	pthread_cond_destroy(&pr->net->cv);
	free(pr->net);
	free(pr);
}

static void expect_detail(const char *needle)
{
	if (strstr(gn_last_error(), needle) == NULL)
		fail_msg("detail '%s' does not contain '%s'", gn_last_error(),
			 needle);
}

/* A deterministic byte pattern, different per seed. */
static void fill(uint8_t *b, size_t n, uint32_t seed)
{
	uint32_t x = seed * 2654435761u + 1;

	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		b[i] = (uint8_t)x;
	}
}

/* A message: envelope of env_len, payload in `pieces` iovecs. */
struct msg {
	uint8_t *env, *payload;
	size_t env_len, payload_len;
	struct iovec iov[8];
	int iovcnt;
};

static void msg_make(struct msg *m, size_t env_len, size_t payload_len,
		     int pieces, uint32_t seed)
{
	size_t off = 0;

	memset(m, 0, sizeof(*m));
	m->env_len = env_len;
	m->payload_len = payload_len;
	m->env = malloc(env_len);
	m->payload = malloc(payload_len ? payload_len : 1);
	assert_non_null(m->env);
	assert_non_null(m->payload);
	fill(m->env, env_len, seed);
	fill(m->payload, payload_len, seed + 7);
	for (int i = 0; i < pieces; i++) {
		size_t n = i == pieces - 1 ? payload_len - off
					   : payload_len / (size_t)pieces;

		/* Separate allocations, so pieces are not contiguous. */
		m->iov[i].iov_base = malloc(n ? n : 1);
		assert_non_null(m->iov[i].iov_base);
		memcpy(m->iov[i].iov_base, m->payload + off, n);
		m->iov[i].iov_len = n;
		off += n;
	}
	m->iovcnt = pieces;
}

static void msg_free(struct msg *m)
{
	for (int i = 0; i < m->iovcnt; i++)
		free(m->iov[i].iov_base);
	free(m->env);
	free(m->payload);
}

static void msg_check(const struct msg *m, const struct gn_msg *got)
{
	assert_int_equal(got->env_len, m->env_len);
	assert_int_equal(got->payload_len, m->payload_len);
	assert_memory_equal(got->env, m->env, m->env_len);
	if (m->payload_len)
		assert_memory_equal(got->payload, m->payload, m->payload_len);
}

static int msg_send(struct gn_vp_conn *c, const struct msg *m, int timeout)
{
	return gn_vp_send(c, m->env, m->env_len, m->iov, m->iovcnt, timeout);
}

/* ---- a peer thread ------------------------------------------------------ */

struct job {
	struct gn_vp_conn *c;
	struct msg *send; /* sent first, when set */
	int nsend;
	struct msg *want; /* then these are received and checked */
	int nrecv;
	unsigned delay_ms; /* before receiving */
	int rc;
	pthread_t t;
};

static void *job_run(void *arg)
{
	struct job *j = arg;

	for (int i = 0; i < j->nsend && j->rc == 0; i++)
		j->rc = msg_send(j->c, &j->send[i], WAIT_MS);
	if (j->delay_ms)
		usleep(j->delay_ms * 1000);
	for (int i = 0; i < j->nrecv && j->rc == 0; i++) {
		struct gn_msg got;

		j->rc = gn_vp_recv(j->c, &got, WAIT_MS);
		if (j->rc == 0) {
			if (got.env_len != j->want[i].env_len ||
			    got.payload_len != j->want[i].payload_len ||
			    memcmp(got.env, j->want[i].env, got.env_len) ||
			    memcmp(got.payload, j->want[i].payload,
				   got.payload_len))
				j->rc = -EBADMSG;
			gn_msg_release(&got);
		}
	}
	return NULL;
}

static void job_start(struct job *j)
{
	assert_int_equal(pthread_create(&j->t, NULL, job_run, j), 0);
}

static int job_join(struct job *j)
{
	pthread_join(j->t, NULL);
	return j->rc;
}

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

/* Rendezvous: several MiB in several iovecs, bit-exact, chunked WRITEs. */
static void rendezvous(bool staged)
{
	struct pair *pr = pair_new(16, 16384);
	struct msg m[2];
	struct job rx = {0};

	pair_start(pr);
	/* Pieces over 1 MiB cannot be registered; the 1 MiB ring can. */
	if (staged)
		pr->net->ep[0].fail_reg_over = 1u << 20;
	/* 100 KiB envelope: more than fits inline, so it is written too. */
	msg_make(&m[0], 100u << 10, (5u << 20) + 12345, 3, 10);
	msg_make(&m[1], 300, (3u << 20) + 1, 5, 11);
	rx = (struct job){.c = pr->c[1], .want = m, .nrecv = 2};
	job_start(&rx);
	for (int i = 0; i < 2; i++)
		assert_int_equal(msg_send(pr->c[0], &m[i], WAIT_MS), 0);
	assert_int_equal(job_join(&rx), 0);
	assert_int_equal(pr->net->ep[0].imm_writes, 2);
	assert_true(pr->net->ep[0].writes > 10); /* chunked */
	assert_true(pr->net->ep[0].max_write_len <= (1u << 20));
	assert_int_equal(pr->net->ep[0].reg_failures > 0, staged);
	assert_int_equal(pr->net->ep[0].rnr, 0);
	/* Only the rings (and the staging ring) stay registered. */
	assert_int_equal(pr->net->ep[0].nmr, staged ? 3 : 2);
	assert_int_equal(pr->net->ep[1].nmr, 2);
	for (int i = 0; i < 2; i++)
		msg_free(&m[i]);
	pair_free(pr);
}

static void test_rendezvous(void **state)
{
	(void)state;
	rendezvous(false);
}

static void test_rendezvous_staged(void **state)
{
	(void)state;
	rendezvous(true);
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
		cmocka_unit_test(test_simultaneous),
		cmocka_unit_test(test_credits),
		cmocka_unit_test(test_backpressure),
		cmocka_unit_test(test_wrong_magic),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_id_reuse),
		cmocka_unit_test(test_id_reused_after_one),
		cmocka_unit_test(test_cts_unknown),
		cmocka_unit_test(test_imm_for_nothing),
		cmocka_unit_test(test_rts_over_caps),
		cmocka_unit_test(test_rkey_out_of_range),
		cmocka_unit_test(test_error_completion),
		cmocka_unit_test(test_peer_close),
		cmocka_unit_test(test_cts_timeout),
		cmocka_unit_test(test_write_timeout),
		cmocka_unit_test(test_bad_args),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
