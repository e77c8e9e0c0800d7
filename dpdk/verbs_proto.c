/*
 * The verbs protocol engine (see verbs_proto.h): credits, eager SENDs,
 * rendezvous over RDMA WRITE, and the checks on everything the peer sends.
 * Pure C: the queue pair is reached only through struct gn_vp_ops.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

/* The same, and tell the peer why in an ERROR message. */
#define fail_tell(c, ...)                     \
	({                                    \
		if ((c)->err == 0)            \
			(c)->tell = true;     \
		gn_vp_fail((c), __VA_ARGS__); \
	})

int gn_vp_conn_error(const struct gn_vp_conn *c, const char **why)
{
	if (why != NULL)
		*why = c->err ? c->why : "";
	return c->err;
}

/* ---- posting ------------------------------------------------------------ */

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

static int post_cts(struct gn_vp_conn *c)
{
	uint32_t slot = gn_vp_tx_take(c);
	uint8_t *b = gn_vp_tx_buf(c, slot) + GN_VP_HDR_SIZE;
	size_t rest = c->in.env_len + c->in.payload_len - c->in.inl;

	gn_vp_put64(b, (uint64_t)(uintptr_t)(c->in.buf + c->in.inl));
	gn_vp_put32(b + 8, c->in.rkey);
	gn_vp_put64(b + 12, rest);
	c->in.cts_pending = false;
	return gn_vp_tx_post(c, slot, GN_VP_CTS, c->in.id, CTS_BODY);
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
	if (c->in.cts_pending && gn_vp_tx_can(c, 2) && post_cts(c) != 0)
		return c->err;
	if (c->owed >= c->p.nrecv / 2 && gn_vp_tx_can(c, 1))
		return gn_vp_tx_post(c, gn_vp_tx_take(c), GN_VP_CREDIT, 0, 0);
	return 0;
}

static int repost(struct gn_vp_conn *c, uint32_t slot)
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

/* ---- what arrives ------------------------------------------------------- */

static bool queue_full(const struct gn_vp_conn *c)
{
	return c->qn >= c->p.queue_max || c->qbytes >= c->p.queue_bytes;
}

static int enqueue(struct gn_vp_conn *c, uint8_t *buf, size_t env_len,
		   size_t payload_len)
{
	if (c->qn == c->qcap) {
		size_t cap = c->qcap ? 2 * c->qcap : 16;
		struct gn_msg *q = calloc(cap, sizeof(*q));

		if (q == NULL) {
			gn_msg_buf_free(buf);
			return gn_vp_fail(
				c, -ENOMEM,
				"verbs: %s: no memory to queue a message",
				c->peer);
		}
		for (size_t i = 0; i < c->qn; i++)
			q[i] = c->q[(c->qhead + i) % c->qcap];
		free(c->q);
		c->q = q;
		c->qcap = cap;
		c->qhead = 0;
	}
	c->qbytes += env_len + payload_len;
	c->q[(c->qhead + c->qn++) % c->qcap] = (struct gn_msg){
		.buf = buf,
		.env = buf,
		.env_len = env_len,
		.payload = buf + env_len,
		.payload_len = payload_len,
	};
	return 0;
}

/* Check a frame header against our caps; tell the peer when refused. */
static int frame_check(struct gn_vp_conn *c, const uint8_t *b, uint32_t id,
		       struct gn_frame_hdr *fh)
{
	int rc = gn_frame_hdr_decode(b, GN_FRAME_HDR_SIZE, &c->p.limits, fh);
	char detail[256];

	if (rc == 0)
		return 0;
	snprintf(detail, sizeof(detail), "%s", gn_last_error());
	return fail_tell(c, rc, "verbs: %s: message %u refused: %s", c->peer,
			 id, detail);
}

static int next_id_check(struct gn_vp_conn *c, const char *what, uint32_t id)
{
	if (id == c->next_recv_id)
		return 0;
	return fail_tell(c, -EPROTO,
			 "verbs: %s: %s with message id %u, expected %u (ids "
			 "count up by one and are never reused)",
			 c->peer, what, id, c->next_recv_id);
}

/*
 * What an EAGER or RTS (`what`) starts with: the next message id and a
 * Genie frame header within the caps. 0, or the connection's error.
 */
static int frame_head(struct gn_vp_conn *c, const char *what, uint32_t id,
		      const uint8_t *body, uint32_t len,
		      struct gn_frame_hdr *fh)
{
	if (next_id_check(c, what, id) != 0)
		return c->err;
	if (len < GN_FRAME_HDR_SIZE)
		return fail_tell(c, -EPROTO,
				 "verbs: %s: %s of %u bytes, shorter than a "
				 "%d-byte frame header",
				 c->peer, what, len, GN_FRAME_HDR_SIZE);
	return frame_check(c, body, id, fh) != 0 ? c->err : 0;
}

static int on_eager(struct gn_vp_conn *c, uint32_t id, const uint8_t *body,
		    uint32_t len)
{
	struct gn_frame_hdr fh;
	uint8_t *buf;

	if (frame_head(c, "EAGER", id, body, len, &fh) != 0)
		return c->err;
	if (GN_FRAME_HDR_SIZE + fh.env_len + fh.payload_len != len)
		return fail_tell(c, -EPROTO,
				 "verbs: %s: EAGER %u announces %u + %llu "
				 "bytes, carries %u",
				 c->peer, id, fh.env_len,
				 (unsigned long long)fh.payload_len,
				 len - GN_FRAME_HDR_SIZE);
	buf = gn_msg_buf_alloc(len - GN_FRAME_HDR_SIZE);
	if (buf == NULL)
		return fail_tell(c, -ENOMEM,
				 "verbs: %s: cannot allocate %u bytes for a "
				 "message",
				 c->peer, len);
	memcpy(buf, body + GN_FRAME_HDR_SIZE, len - GN_FRAME_HDR_SIZE);
	c->next_recv_id++;
	return enqueue(c, buf, fh.env_len, (size_t)fh.payload_len);
}

static int on_rts(struct gn_vp_conn *c, uint32_t id, const uint8_t *body,
		  uint32_t len)
{
	struct gn_frame_hdr fh;
	size_t total, inl;
	int rc;

	if (c->in.active)
		return fail_tell(c, -EPROTO,
				 "verbs: %s: RTS for message %u while message "
				 "%u is still arriving",
				 c->peer, id, c->in.id);
	if (frame_head(c, "RTS", id, body, len, &fh) != 0)
		return c->err;
	inl = len - GN_FRAME_HDR_SIZE;
	total = fh.env_len + (size_t)fh.payload_len;
	if (inl > fh.env_len || inl == total)
		return fail_tell(c, -EPROTO,
				 "verbs: %s: RTS %u carries %zu envelope bytes "
				 "inline, expected fewer than %u + %llu",
				 c->peer, id, inl, fh.env_len,
				 (unsigned long long)fh.payload_len);
	c->in.buf = gn_msg_buf_alloc(total);
	if (c->in.buf == NULL)
		return fail_tell(c, -ENOMEM,
				 "verbs: %s: cannot allocate %zu bytes for "
				 "message %u",
				 c->peer, total, id);
	memcpy(c->in.buf, body + GN_FRAME_HDR_SIZE, inl);
	rc = c->ops->reg_mr(c->ctx, c->in.buf + inl, total - inl,
			    GN_VP_ACCESS_LOCAL_WRITE |
				    GN_VP_ACCESS_REMOTE_WRITE,
			    &c->in.mr, &c->in.rkey);
	if (rc != 0) {
		gn_msg_buf_free(c->in.buf);
		c->in.buf = NULL;
		return fail_tell(c, rc,
				 "verbs: %s: cannot register %zu bytes for "
				 "message %u: %s",
				 c->peer, total - inl, id, strerror(-rc));
	}
	c->in.active = c->in.cts_pending = true;
	c->in.id = id;
	c->in.env_len = fh.env_len;
	c->in.payload_len = (size_t)fh.payload_len;
	c->in.inl = inl;
	c->next_recv_id++;
	return 0;
}

static int on_cts(struct gn_vp_conn *c, uint32_t id, const uint8_t *body,
		  uint32_t len)
{
	uint64_t want;

	if (c->out.state != OUT_WAIT_CTS || id != c->out.id)
		return fail_tell(c, -EPROTO,
				 "verbs: %s: CTS for message %u, but %s%u "
				 "waits for one",
				 c->peer, id,
				 c->out.state == OUT_WAIT_CTS ? "message "
							      : "no message; ",
				 c->out.state == OUT_WAIT_CTS ? c->out.id : 0);
	if (len != CTS_BODY)
		return fail_tell(c, -EPROTO,
				 "verbs: %s: CTS of %u bytes, expected %d",
				 c->peer, len, CTS_BODY);
	want = gn_vp_get64(body + 12);
	if (want != c->out.want)
		return fail_tell(c, -EPROTO,
				 "verbs: %s: CTS for message %u offers %llu "
				 "bytes, expected %llu",
				 c->peer, id, (unsigned long long)want,
				 (unsigned long long)c->out.want);
	c->out.raddr = gn_vp_get64(body);
	c->out.rkey = gn_vp_get32(body + 8);
	c->out.state = OUT_GOT_CTS;
	return 0;
}

static int on_error(struct gn_vp_conn *c, const uint8_t *body, uint32_t len)
{
	char text[256];
	uint32_t code = len >= 4 ? gn_vp_get32(body) : EPROTO;
	size_t n = len >= 4 ? len - 4 : 0;

	if (n >= sizeof(text))
		n = sizeof(text) - 1;
	for (size_t i = 0; i < n; i++) {
		uint8_t ch = body[4 + i];

		text[i] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
	}
	text[n] = '\0';
	if (code == 0 || code > 4095)
		code = EPROTO;
	return gn_vp_fail(c, -(int)code, "verbs: %s reported an error: %s",
			  c->peer, text);
}

/* One SEND of the peer's, `n` bytes in receive buffer b. */
static int on_msg(struct gn_vp_conn *c, const uint8_t *b, uint32_t n)
{
	uint32_t magic, credits, id, len;
	uint8_t type;

	if (n < GN_VP_HDR_SIZE)
		return fail_tell(c, -EPROTO,
				 "verbs: %s: %u-byte message, shorter than "
				 "the %d-byte header",
				 c->peer, n, GN_VP_HDR_SIZE);
	magic = gn_vp_get32(b);
	if (magic != GN_VP_MAGIC)
		return fail_tell(c, -EPROTO,
				 "verbs: %s: wrong magic 0x%08x, expected "
				 "0x%08x",
				 c->peer, magic, GN_VP_MAGIC);
	if (b[4] != GN_VP_VERSION)
		return fail_tell(c, -EPROTO,
				 "verbs: %s: protocol version %u, expected %u",
				 c->peer, b[4], GN_VP_VERSION);
	credits = gn_vp_get32(b + 8);
	id = gn_vp_get32(b + 12);
	len = gn_vp_get32(b + 16);
	if (len != n - GN_VP_HDR_SIZE)
		return fail_tell(c, -EPROTO,
				 "verbs: %s: header announces %u bytes after "
				 "it, the message holds %u",
				 c->peer, len, n - GN_VP_HDR_SIZE);
	if (credits > c->p.peer_nrecv - c->credits)
		return fail_tell(c, -EPROTO,
				 "verbs: %s: %u credits returned, at most %u "
				 "were out",
				 c->peer, credits,
				 c->p.peer_nrecv - c->credits);
	c->credits += credits;
	type = b[5];
	b += GN_VP_HDR_SIZE;
	switch (type) {
	case GN_VP_EAGER: return on_eager(c, id, b, len);
	case GN_VP_RTS: return on_rts(c, id, b, len);
	case GN_VP_CTS: return on_cts(c, id, b, len);
	case GN_VP_CREDIT: return 0;
	case GN_VP_ERROR: return on_error(c, b, len);
	default:
		return fail_tell(c, -EPROTO,
				 "verbs: %s: unknown message type %u", c->peer,
				 type);
	}
}

/* The peer's last RDMA WRITE of a rendezvous message landed. */
static int on_imm(struct gn_vp_conn *c, uint32_t imm)
{
	uint8_t *buf;

	if (!c->in.active || c->in.cts_pending || imm != c->in.id) {
		if (!c->in.active || c->in.cts_pending)
			return fail_tell(c, -EPROTO,
					 "verbs: %s: RDMA write with immediate "
					 "%u, but no message is arriving",
					 c->peer, imm);
		return fail_tell(c, -EPROTO,
				 "verbs: %s: RDMA write with immediate %u, "
				 "expected %u",
				 c->peer, imm, c->in.id);
	}
	c->ops->dereg_mr(c->ctx, c->in.mr);
	c->in.mr = NULL;
	c->in.active = false;
	buf = c->in.buf;
	c->in.buf = NULL;
	return enqueue(c, buf, c->in.env_len, c->in.payload_len);
}

static const char *wc_what(uint32_t kind, const struct gn_vp_wc *wc)
{
	switch (kind) {
	case WR_SEND: return "SEND";
	case WR_RECV:
		return wc->status == 0 && wc->op == GN_VP_WC_RECV_IMM
			       ? "receive (write with immediate)"
			       : "receive";
	default: return "RDMA WRITE";
	}
}

static void handle_wc(struct gn_vp_conn *c, const struct gn_vp_wc *wc)
{
	uint32_t kind = (uint32_t)(wc->wr_id >> WR_SHIFT);
	uint32_t idx = (uint32_t)(wc->wr_id & ((1ull << WR_SHIFT) - 1));
	int rc = 0;

	switch (kind) {
	case WR_SEND:
		if (idx < c->ntx && c->tx_busy[idx]) {
			c->tx_busy[idx] = 0;
			c->tx_free++;
		}
		c->sq_out--;
		break;
	case WR_STAGE:
		if (c->stage_busy != NULL && idx < c->p.staging_slots &&
		    c->stage_busy[idx]) {
			c->stage_busy[idx] = 0;
			c->stage_free++;
		}
		/* fall through */
	case WR_WRITE:
		c->sq_out--;
		c->writes_out--;
		break;
	case WR_RECV: c->rq_out--; break;
	default:
		gn_vp_fail(c, -EIO,
			   "verbs: %s: completion with unknown wr_id %#llx",
			   c->peer, (unsigned long long)wc->wr_id);
		return;
	}
	if (wc->status != 0) {
		gn_vp_fail(c, -EIO,
			   "verbs: %s: %s completion failed: %s (status %d)",
			   c->peer, wc_what(kind, wc),
			   wc->status_str ? wc->status_str : "?", wc->status);
		return;
	}
	if (c->err || kind != WR_RECV)
		return; /* a failed connection only counts completions */
	if (idx >= c->p.nrecv) {
		gn_vp_fail(c, -EIO,
			   "verbs: %s: receive completion for slot %u of %u",
			   c->peer, idx, c->p.nrecv);
		return;
	}
	if (wc->op == GN_VP_WC_RECV_IMM)
		rc = on_imm(c, wc->imm);
	else if (wc->byte_len > c->p.buf_size)
		rc = gn_vp_fail(c, -EIO,
				"verbs: %s: receive of %u bytes into a %u-byte "
				"buffer",
				c->peer, wc->byte_len, c->p.buf_size);
	else
		rc = on_msg(c, c->rx + (size_t)idx * c->p.buf_size,
			    wc->byte_len);
	if (rc == 0 && repost(c, idx) == 0) {
		/* A full queue keeps the credit: the peer waits for recv. */
		if (queue_full(c))
			c->held++;
		else
			c->owed++;
	}
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
		handle_wc(c, &wc[i]);
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

/* ---- receiving ---------------------------------------------------------- */

static bool has_msg(const struct gn_vp_conn *c)
{
	return c->qn > 0;
}

int gn_vp_recv(struct gn_vp_conn *c, struct gn_msg *msg, int timeout_ms)
{
	int rc = 0;

	memset(msg, 0, sizeof(*msg));
	if (c->qn == 0 && c->err == 0)
		rc = gn_vp_wait_for(c, has_msg, gn_vp_deadline(timeout_ms),
				    false);
	if (c->qn > 0) {
		*msg = c->q[c->qhead];
		c->qhead = (c->qhead + 1) % c->qcap;
		c->qn--;
		c->qbytes -= msg->env_len + msg->payload_len;
		if (c->held > 0 && !queue_full(c)) {
			c->owed += c->held; /* sent by the next engine call */
			c->held = 0;
		}
		return 0;
	}
	if (c->err)
		return gn_vp_sticky(c);
	if (rc == -ETIMEDOUT)
		return gn_error_set(-ETIMEDOUT,
				    "verbs: %s: no message within %d ms",
				    c->peer, timeout_ms);
	return rc;
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
		gn_error_set(rc, "verbs: cannot register the message rings: %s",
			     strerror(-rc));
		goto fail;
	}
	for (uint32_t i = 0; i < p->nrecv; i++)
		if (repost(c, i) != 0)
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
	if (c->stage_mr != NULL)
		c->ops->dereg_mr(c->ctx, c->stage_mr);
	if (c->tx_mr != NULL)
		c->ops->dereg_mr(c->ctx, c->tx_mr);
	if (c->rx_mr != NULL)
		c->ops->dereg_mr(c->ctx, c->rx_mr);
	for (size_t i = 0; i < c->qn; i++)
		gn_msg_release(&c->q[(c->qhead + i) % c->qcap]);
	free(c->q);
	free(c->stage);
	free(c->stage_busy);
	free(c->tx_busy);
	free(c->tx);
	free(c->rx);
	free(c);
}
