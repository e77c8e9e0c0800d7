/*
 * The verbs protocol engine (see verbs_proto.h): failure, posting,
 * credits and what is owed to the peer, waiting, and a connection's life.
 * What arrives is in verbs_proto_recv.c, sending in verbs_proto_send.c.
 * Pure C: the queue pair is reached only through struct gn_vp_ops.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "clock.h"
#include "gn_error.h"
#include "verbs_proto_internal.h"

GN_LOG_REGISTER(verbs)

void gn_vp_params_init(struct gn_vp_params *p)
{
	memset(p, 0, sizeof(*p));
	p->nrecv = p->peer_nrecv = 32;
	p->buf_size = p->peer_buf_size = 64u << 10;
	p->sq_depth = 128;
	p->max_write = GN_VP_MAX_WRITE;
	p->staging_size = 4u << 20;
	p->staging_slots = 4;
	p->limits.max_envelope = GN_DEFAULT_MAX_ENVELOPE;
	p->limits.max_payload = GN_DEFAULT_MAX_PAYLOAD;
	p->peer = "?";
	p->queue_max = 64;
	p->queue_bytes = (size_t)256 << 20;
}

/* ---- failure ------------------------------------------------------------ */

int gn_vp_sticky(const struct gn_vp_conn *c)
{
	return gn_error_set(c->err, "%s", c->why);
}

/* Fail the connection (the first failure wins) and return its code. */
int gn_vp_fail(struct gn_vp_conn *c, int rc, const char *fmt, ...)
{
	va_list ap;

	if (c->err == 0) {
		va_start(ap, fmt);
		vsnprintf(c->why, sizeof(c->why), fmt, ap);
		va_end(ap);
		c->err = rc;
		/* The component names itself: drop the text's own prefix. */
		GN_LOG(WARNING, verbs, "%s",
		       c->why + (strncmp(c->why, "verbs: ", 7) ? 0 : 7));
	}
	return gn_vp_sticky(c);
}

int gn_vp_conn_error(const struct gn_vp_conn *c, const char **why)
{
	if (why != NULL)
		*why = c->err ? c->why : "";
	return c->err;
}

/* ---- posting ------------------------------------------------------------ */

const char *gn_vp_reg_hint(int rc)
{
	static __thread char hint[200];
	struct rlimit rl;

	if ((rc != -ENOMEM && rc != -EPERM) ||
	    getrlimit(RLIMIT_MEMLOCK, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
		return "";
	snprintf(hint, sizeof(hint),
		 "; this process may lock only %llu KiB (RLIMIT_MEMLOCK): "
		 "raise it with ulimit -l unlimited, or LimitMEMLOCK=infinity "
		 "in a systemd unit",
		 (unsigned long long)(rl.rlim_cur >> 10));
	return hint;
}

bool gn_vp_tx_can(const struct gn_vp_conn *c, uint32_t min_credits)
{
	return c->tx_free > 0 && c->credits >= min_credits &&
	       c->sq_out < c->p.sq_depth;
}

uint32_t gn_vp_tx_take(struct gn_vp_conn *c)
{
	uint32_t i = 0;

	while (c->tx_busy[i])
		i++;
	c->tx_busy[i] = 1;
	c->tx_free--;
	return i;
}

uint8_t *gn_vp_tx_buf(const struct gn_vp_conn *c, uint32_t slot)
{
	return c->tx + (size_t)slot * c->p.peer_buf_size;
}

/* Post slot's message: header here, `len` body bytes already in place. */
int gn_vp_tx_post(struct gn_vp_conn *c, uint32_t slot, int type, uint32_t id,
		  uint32_t len)
{
	uint8_t *b = gn_vp_tx_buf(c, slot);
	int rc;

	gn_vp_put32(b, GN_VP_MAGIC);
	b[4] = GN_VP_VERSION;
	b[5] = (uint8_t)type;
	b[6] = b[7] = 0;
	gn_vp_put32(b + 8, c->owed);
	gn_vp_put32(b + 12, id);
	gn_vp_put32(b + 16, len);
	gn_vp_put32(b + 20, 0);
	rc = c->ops->post_send(c->ctx, WR(WR_SEND, slot), b,
			       GN_VP_HDR_SIZE + len, c->tx_mr);
	if (rc != 0) {
		c->tx_busy[slot] = 0;
		c->tx_free++;
		return gn_vp_fail(c, rc, "verbs: %s: posting a SEND failed: %s",
				  c->peer, strerror(-rc));
	}
	c->owed = 0;
	c->credits--;
	c->sq_out++;
	return 0;
}

/*
 * The CTS for the arriving message, or when it is staged the next
 * CTS_PART: the next part of at most half the staging ring, into the half
 * its part number picks (at most two parts are granted and not landed).
 */
static int post_cts(struct gn_vp_conn *c)
{
	uint32_t slot = gn_vp_tx_take(c);
	uint8_t *b = gn_vp_tx_buf(c, slot) + GN_VP_HDR_SIZE;
	uint64_t rest = c->in.env_len + c->in.payload_len - c->in.inl;
	uint64_t half = c->p.staging_size / 2, part, n;

	if (!c->in.staged) {
		/* The peer WRITEs into the placed payload, else past inl. */
		const void *dst =
			c->in.placed ? c->in.placed : c->in.buf + c->in.inl;

		gn_vp_put64(b, (uint64_t)(uintptr_t)dst);
		gn_vp_put32(b + 8, c->in.rkey);
		gn_vp_put64(b + 12, rest);
		c->in.cts_pending = false;
		return gn_vp_tx_post(c, slot, GN_VP_CTS, c->in.id, CTS_BODY);
	}
	part = c->in.granted / half;
	n = rest - c->in.granted < half ? rest - c->in.granted : half;
	gn_vp_put64(b, (uint64_t)(uintptr_t)(c->rstage + (part % 2) * half));
	gn_vp_put32(b + 8, c->rstage_rkey);
	gn_vp_put64(b + 12, n);
	gn_vp_put64(b + 20, c->in.granted);
	c->in.granted += n;
	c->in.cts_pending =
		c->in.granted < rest && c->in.granted - c->in.landed < 2 * half;
	return gn_vp_tx_post(c, slot, GN_VP_CTS_PART, c->in.id, CTS_PART_BODY);
}

static void post_error(struct gn_vp_conn *c)
{
	uint32_t slot = gn_vp_tx_take(c);
	uint8_t *b = gn_vp_tx_buf(c, slot) + GN_VP_HDR_SIZE;
	size_t n = strlen(c->why);

	if (n > c->p.peer_buf_size - GN_VP_HDR_SIZE - 4)
		n = c->p.peer_buf_size - GN_VP_HDR_SIZE - 4;
	gn_vp_put32(b, (uint32_t)-c->err);
	memcpy(b + 4, c->why, n);
	c->tell = false;
	/* Best effort: the connection has failed already. */
	gn_vp_tx_post(c, slot, GN_VP_ERROR, 0, (uint32_t)(4 + n));
}

/*
 * What is owed to the peer and can go now: a CTS, an ERROR, or credits
 * when half our receives are owed back.
 */
static int flush_pending(struct gn_vp_conn *c)
{
	if (c->tell && gn_vp_tx_can(c, 1))
		post_error(c);
	if (c->err)
		return c->err;
	while (c->in.cts_pending && gn_vp_tx_can(c, 2))
		if (post_cts(c) != 0)
			return c->err;
	if (c->owed >= c->p.nrecv / 2 && gn_vp_tx_can(c, 1))
		return gn_vp_tx_post(c, gn_vp_tx_take(c), GN_VP_CREDIT, 0, 0);
	return 0;
}

int gn_vp_repost(struct gn_vp_conn *c, uint32_t slot)
{
	int rc = c->ops->post_recv(c->ctx, WR(WR_RECV, slot),
				   c->rx + (size_t)slot * c->p.buf_size,
				   c->p.buf_size, c->rx_mr);

	if (rc != 0)
		return gn_vp_fail(c, rc,
				  "verbs: %s: posting a receive failed: %s",
				  c->peer, strerror(-rc));
	c->rq_out++;
	return 0;
}

/* Take what completed; returns how many completions, or <0 on failure. */
static int progress(struct gn_vp_conn *c)
{
	struct gn_vp_wc wc[POLL_BURST];
	int n = c->ops->poll(c->ctx, wc, POLL_BURST);

	if (n < 0)
		return gn_vp_fail(c, n, "verbs: %s: polling the CQ failed: %s",
				  c->peer, strerror(-n));
	for (int i = 0; i < n; i++)
		gn_vp_handle_wc(c, &wc[i]);
	flush_pending(c);
	return n;
}

/*
 * Progress until ok(c), the deadline, or (unless draining) a failure.
 * Arms the CQ and re-polls before sleeping, so a completion that lands
 * between the last poll and the sleep is not missed.
 */
int gn_vp_wait_for(struct gn_vp_conn *c, gn_vp_cond_fn ok, uint64_t deadline,
		   bool drain)
{
	for (;;) {
		int n = progress(c);

		if (!drain && c->err)
			return gn_vp_sticky(c);
		if (ok(c))
			return 0;
		if (n > 0)
			continue;
		if (gn_clock_ns() >= deadline)
			return -ETIMEDOUT;
		if (c->ops->arm(c->ctx) != 0 && !drain)
			return gn_vp_fail(c, -EIO,
					  "verbs: %s: cannot arm the CQ",
					  c->peer);
		n = progress(c);
		if (!drain && c->err)
			return gn_vp_sticky(c);
		if (ok(c))
			return 0;
		if (n > 0)
			continue;
		n = c->ops->wait(c->ctx, deadline);
		if (n == 0 || n == -ETIMEDOUT)
			continue;
		if (drain) {
			usleep(1000);
			continue;
		}
		progress(c); /* what arrived before the peer went */
		return gn_vp_fail(c, n, "%s", gn_last_error());
	}
}

uint64_t gn_vp_deadline(int timeout_ms)
{
	return timeout_ms < 0 ? UINT64_MAX
			      : gn_clock_ns() + (uint64_t)timeout_ms * 1000000;
}

/* ---- life --------------------------------------------------------------- */

static int params_check(const struct gn_vp_params *p)
{
	const uint32_t min_buf = GN_VP_HDR_SIZE + GN_FRAME_HDR_SIZE + 64;

	if (p->nrecv < 4 || p->nrecv > 4096 || p->peer_nrecv < 4 ||
	    p->peer_nrecv > 4096)
		return gn_error_set(-EINVAL,
				    "verbs: %u receive buffers here, %u at the "
				    "peer; expected 4..4096 each",
				    p->nrecv, p->peer_nrecv);
	if (p->buf_size < min_buf || p->buf_size > (16u << 20) ||
	    p->peer_buf_size < min_buf || p->peer_buf_size > (16u << 20))
		return gn_error_set(-EINVAL,
				    "verbs: receive buffers of %u bytes here, "
				    "%u at the peer; expected %u..%u",
				    p->buf_size, p->peer_buf_size, min_buf,
				    16u << 20);
	if (p->queue_max == 0 || p->queue_bytes == 0)
		return gn_error_set(-EINVAL,
				    "verbs: a receive queue of %u messages / "
				    "%zu bytes; expected at least 1 of each",
				    p->queue_max, p->queue_bytes);
	if (p->sq_depth < 4 || p->max_write == 0 ||
	    p->max_write > GN_VP_MAX_WRITE || p->staging_slots == 0 ||
	    p->staging_size / p->staging_slots < 4096)
		return gn_error_set(-EINVAL,
				    "verbs: send queue depth %u (at least 4), "
				    "write size %u (1..%u), staging %zu bytes "
				    "in %u slots (4 KiB each at least)",
				    p->sq_depth, p->max_write, GN_VP_MAX_WRITE,
				    p->staging_size, p->staging_slots);
	return 0;
}

struct gn_vp_conn *gn_vp_conn_create(const struct gn_vp_ops *ops, void *ctx,
				     const struct gn_vp_params *p)
{
	struct gn_vp_conn *c;
	uint32_t rkey;
	int rc = params_check(p);

	if (rc != 0)
		return NULL;
	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		gn_error_set(-ENOMEM, "verbs: no memory for a connection");
		return NULL;
	}
	c->ops = ops;
	c->ctx = ctx;
	c->p = *p;
	snprintf(c->peer, sizeof(c->peer), "%s", p->peer ? p->peer : "?");
	c->p.peer = c->peer;
	c->credits = p->peer_nrecv;
	c->next_send_id = c->next_recv_id = 1;
	c->ntx = c->tx_free = p->peer_nrecv < 64 ? p->peer_nrecv : 64;
	c->slot_size = p->staging_size / p->staging_slots;
	c->rx = aligned_alloc(4096, (size_t)p->nrecv * p->buf_size);
	c->tx = aligned_alloc(4096, (size_t)c->ntx * p->peer_buf_size);
	c->tx_busy = calloc(c->ntx, 1);
	if (c->rx == NULL || c->tx == NULL || c->tx_busy == NULL) {
		gn_error_set(-ENOMEM, "verbs: no memory for %u + %u buffers",
			     p->nrecv, c->ntx);
		goto fail;
	}
	rc = ops->reg_mr(ctx, c->rx, (size_t)p->nrecv * p->buf_size,
			 GN_VP_ACCESS_LOCAL_WRITE, &c->rx_mr, &rkey);
	if (rc == 0)
		rc = ops->reg_mr(ctx, c->tx, (size_t)c->ntx * p->peer_buf_size,
				 0, &c->tx_mr, &rkey);
	if (rc != 0) {
		gn_error_set(rc,
			     "verbs: cannot register the message rings: %s%s",
			     strerror(-rc), gn_vp_reg_hint(rc));
		goto fail;
	}
	for (uint32_t i = 0; i < p->nrecv; i++)
		if (gn_vp_repost(c, i) != 0)
			goto fail;
	return c;

fail:
	rc = gn_last_error_code();
	gn_vp_conn_destroy(&c);
	gn_error_set(rc, "%s", gn_last_error());
	return NULL;
}

static bool sends_done(const struct gn_vp_conn *c)
{
	return c->sq_out == 0;
}

static bool all_done(const struct gn_vp_conn *c)
{
	return c->sq_out == 0 && c->rq_out == 0;
}

void gn_vp_conn_set_owner(struct gn_vp_conn *c, const struct gn_conn *owner)
{
	c->owner = owner;
}

void gn_vp_conn_destroy(struct gn_vp_conn **cp)
{
	struct gn_vp_conn *c = cp ? *cp : NULL;

	if (c == NULL)
		return;
	*cp = NULL;
	/* A last eager message, a CTS or an ERROR still going out. */
	if (c->sq_out > 0 && c->err == 0)
		gn_vp_wait_for(c, sends_done, gn_vp_deadline(LINGER_MS), true);
	c->tell = false;
	c->err = c->err ? c->err : -ECONNRESET; /* post nothing more */
	if (c->sq_out > 0 || c->rq_out > 0) {
		c->ops->qp_error(c->ctx);
		gn_vp_wait_for(c, all_done, gn_vp_deadline(DRAIN_MS), true);
		if (!all_done(c))
			GN_LOG(WARNING, verbs,
			       "%s: %u sends and %u receives not flushed "
			       "after %d ms",
			       c->peer, c->sq_out, c->rq_out, DRAIN_MS);
	}
	if (c->in.mr != NULL)
		c->ops->dereg_mr(c->ctx, c->in.mr);
	gn_msg_buf_free(c->in.buf);
	if (c->in.placed != NULL)
		c->in.placer->unplace(c->in.placer->arg, c->in.placed);
	if (c->stage_mr != NULL)
		c->ops->dereg_mr(c->ctx, c->stage_mr);
	if (c->rstage_mr != NULL)
		c->ops->dereg_mr(c->ctx, c->rstage_mr);
	if (c->tx_mr != NULL)
		c->ops->dereg_mr(c->ctx, c->tx_mr);
	if (c->rx_mr != NULL)
		c->ops->dereg_mr(c->ctx, c->rx_mr);
	for (size_t i = 0; i < c->qn; i++)
		gn_msg_release(&c->q[(c->qhead + i) % c->qcap]);
	free(c->q);
	free(c->stage);
	free(c->rstage);
	free(c->stage_busy);
	free(c->tx_busy);
	free(c->tx);
	free(c->rx);
	free(c);
}
