/*
 * The fake queue pair of the verbs protocol engine's unit test (see
 * verbs_fake.h).
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
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "clock.h"
#include "gn_error.h"
#include "verbs_fake.h"

void cq_push(struct fake_ep *e, struct gn_vp_wc wc)
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

/* The fake GPU memory holding [p, p + len), or NULL for host memory. */
static struct fake_gpu *gpu_of(const struct fake_ep *e, const void *p,
			       size_t len)
{
	const uint8_t *b = p;

	if (e->gpu == NULL || b < e->gpu->dev || b >= e->gpu->dev + e->gpu->len)
		return NULL;
	assert_true(b + len <= e->gpu->dev + e->gpu->len);
	return e->gpu;
}

/* Where the fake's "driver" reads fake GPU memory (host memory: p). */
static const uint8_t *readable(const struct fake_ep *e, const void *p,
			       size_t len)
{
	struct fake_gpu *g = gpu_of(e, p, len);

	return g ? g->alias + ((const uint8_t *)p - g->dev) : p;
}

/* Where the fake "NIC" writes into memory (fake GPU memory: its alias). */
static uint8_t *writable(const struct fake_ep *e, uint8_t *p, size_t len)
{
	struct fake_gpu *g = gpu_of(e, p, len);

	return g ? g->alias + (p - g->dev) : p;
}

/* Take the peer's oldest receive; NULL when none is posted. */
bool take_recv(struct fake_ep *p, uint64_t *wr_id, uint8_t **buf, uint32_t *len)
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

		memcpy(writable(p, dst, len), readable(e, buf, len), len);
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
	if ((!remote && e->fail_reg_over && len > e->fail_reg_over) ||
	    (remote && e->fail_remote_reg_over &&
	     len > e->fail_remote_reg_over)) {
		e->reg_failures++;
		pthread_mutex_unlock(&e->net->mu);
		return -ENOMEM;
	}
	if (gpu_of(e, addr, len) != NULL && !e->gpu->direct) {
		e->gpu->refused++;
		pthread_mutex_unlock(&e->net->mu);
		return -EOPNOTSUPP;
	}
	m = calloc(1, sizeof(*m));
	assert_non_null(m);
	if (gpu_of(e, addr, len) != NULL)
		e->gpu->regs++;
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

static int f_copy_in(void *ctx, void *dst, const void *src, size_t len)
{
	struct fake_ep *e = ctx;
	struct fake_gpu *g = gpu_of(e, src, len);

	if (g != NULL) {
		if (g->fail_copy_after >= 0 && g->copies >= g->fail_copy_after)
			return gn_error_set(-EIO, "fake: device copy failed");
		g->copies++;
	}
	memcpy(dst, readable(e, src, len), len);
	return 0;
}

const struct gn_vp_ops fake_ops = {
	.post_send = f_post_send,
	.post_write = f_post_write,
	.post_recv = f_post_recv,
	.poll = f_poll,
	.reg_mr = f_reg_mr,
	.dereg_mr = f_dereg_mr,
	.arm = f_arm,
	.wait = f_wait,
	.qp_error = f_qp_error,
	.copy_in = f_copy_in,
};

/* ---- fixture ------------------------------------------------------------ */

void params(struct gn_vp_params *p, uint32_t nrecv, uint32_t buf)
{
	gn_vp_params_init(p);
	p->nrecv = p->peer_nrecv = nrecv;
	p->buf_size = p->peer_buf_size = buf;
	p->max_write = 1u << 20; /* several WRITEs per message */
	p->staging_size = 1u << 20;
	p->staging_slots = 4;
	p->peer = "fake-peer";
}

struct pair *pair_new(uint32_t nrecv, uint32_t buf)
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

void pair_start(struct pair *pr)
{
	for (int i = 0; i < 2; i++) {
		pr->c[i] = gn_vp_conn_create(&fake_ops, &pr->net->ep[i],
					     &pr->p[i]);
		assert_non_null(pr->c[i]);
	}
}

void pair_free(struct pair *pr)
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

void expect_detail(const char *needle)
{
	if (strstr(gn_last_error(), needle) == NULL)
		fail_msg("detail '%s' does not contain '%s'", gn_last_error(),
			 needle);
}

/* A deterministic byte pattern, different per seed. */
void fill(uint8_t *b, size_t n, uint32_t seed)
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

void msg_make(struct msg *m, size_t env_len, size_t payload_len, int pieces,
	      uint32_t seed)
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

void msg_free(struct msg *m)
{
	for (int i = 0; i < m->iovcnt && !m->on_gpu; i++)
		free(m->iov[i].iov_base);
	free(m->env);
	free(m->payload);
}

void msg_check(const struct msg *m, const struct gn_msg *got)
{
	assert_int_equal(got->env_len, m->env_len);
	assert_int_equal(got->payload_len, m->payload_len);
	assert_memory_equal(got->env, m->env, m->env_len);
	if (m->payload_len)
		assert_memory_equal(got->payload, m->payload, m->payload_len);
}

int msg_send(struct gn_vp_conn *c, const struct msg *m, int timeout)
{
	return gn_vp_send(c, m->env, m->env_len, m->iov, m->iovcnt, timeout);
}

/* ---- a peer thread ------------------------------------------------------ */

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

void job_start(struct job *j)
{
	assert_int_equal(pthread_create(&j->t, NULL, job_run, j), 0);
}

int job_join(struct job *j)
{
	pthread_join(j->t, NULL);
	return j->rc;
}

/* ---- fake GPU memory ---------------------------------------------------- */

void fake_gpu_init(struct fake_gpu *g, size_t len)
{
	int fd = memfd_create("fake-gpu", 0);

	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)len), 0);
	memset(g, 0, sizeof(*g));
	g->len = len;
	g->fail_copy_after = -1;
	g->dev = mmap(NULL, len, PROT_NONE, MAP_SHARED, fd, 0);
	g->alias = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	assert_true(g->dev != MAP_FAILED && g->alias != MAP_FAILED);
	close(fd);
}

void fake_gpu_fini(struct fake_gpu *g)
{
	munmap(g->dev, g->len);
	munmap(g->alias, g->len);
}

void fake_gpu_load(struct fake_gpu *g, struct msg *m)
{
	size_t off = 0;

	for (int i = 0; i < m->iovcnt; i++) {
		assert_true(off + m->iov[i].iov_len <= g->len);
		memcpy(g->alias + off, m->iov[i].iov_base, m->iov[i].iov_len);
		free(m->iov[i].iov_base);
		m->iov[i].iov_base = g->dev + off;
		off += m->iov[i].iov_len;
	}
	m->on_gpu = true;
}
