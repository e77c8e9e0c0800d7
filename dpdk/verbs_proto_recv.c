/*
 * The verbs protocol engine, receiving side (see verbs_proto.h): what the
 * peer sends (EAGER, RTS, CTS, ERROR, CREDIT, immediates), the checks on
 * it, the queue of whole messages, and gn_vp_recv().
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gn_error.h"
#include "verbs_proto_internal.h"

/* ---- what arrives ------------------------------------------------------- */

static bool queue_full(const struct gn_vp_conn *c)
{
	return c->qn >= c->p.queue_max || c->qbytes >= c->p.queue_bytes;
}

/* Queue a complete message; a placed payload (`placed`) comes with it. */
static int enqueue(struct gn_vp_conn *c, uint8_t *buf, size_t env_len,
		   size_t payload_len, void *placed,
		   const struct gn_placement *placer)
{
	if (c->qn == c->qcap) {
		size_t cap = c->qcap ? 2 * c->qcap : 16;
		struct gn_msg *q = calloc(cap, sizeof(*q));

		if (q == NULL) {
			gn_msg_buf_free(buf);
			if (placed != NULL)
				placer->unplace(placer->arg, placed);
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
		.payload = placed ? placed : buf + env_len,
		.payload_len = payload_len,
		.placed = placed,
		.placer = placer,
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
	return enqueue(c, buf, fh.env_len, (size_t)fh.payload_len, NULL, NULL);
}

/* The receiver's own staging ring, registered at its first use. */
static int rstage_setup(struct gn_vp_conn *c)
{
	if (c->rstage != NULL)
		return 0;
	c->rstage = aligned_alloc(4096, c->p.staging_size);
	if (c->rstage == NULL)
		return -ENOMEM;
	if (c->ops->reg_mr(c->ctx, c->rstage, c->p.staging_size,
			   GN_VP_ACCESS_LOCAL_WRITE | GN_VP_ACCESS_REMOTE_WRITE,
			   &c->rstage_mr, &c->rstage_rkey) != 0) {
		free(c->rstage);
		c->rstage = NULL;
		c->rstage_mr = NULL;
		return -ENOMEM;
	}
	return 0;
}

/*
 * Ask the owner's placement for the payload of the arriving message, whose
 * whole envelope `env` came inline, and register what it gives for the
 * peer's WRITEs. 0 when placed (c->in.placed, .placer, .mr, .rkey set);
 * else the message goes into a message buffer as usual.
 */
static int place(struct gn_vp_conn *c, uint32_t id, const uint8_t *env,
		 size_t inl, const struct gn_frame_hdr *fh)
{
	const struct gn_placement *placer;
	void *placed;
	int rc;

	c->in.placed = NULL;
	if (c->owner == NULL || inl != fh->env_len || fh->payload_len == 0)
		return -1;
	placed = gn_conn_place(c->owner, env, inl, (size_t)fh->payload_len,
			       &placer);
	if (placed == NULL)
		return -1;
	rc = c->ops->reg_mr(c->ctx, placed, (size_t)fh->payload_len,
			    GN_VP_ACCESS_LOCAL_WRITE |
				    GN_VP_ACCESS_REMOTE_WRITE,
			    &c->in.mr, &c->in.rkey);
	if (rc != 0) {
		if (!c->said_unplaced)
			GN_LOG(INFO, verbs,
			       "%s: message %u: cannot register the %llu bytes "
			       "placed for its payload (%s); such payloads "
			       "arrive in message buffers%s",
			       c->peer, id, (unsigned long long)fh->payload_len,
			       strerror(-rc), gn_vp_reg_hint(rc));
		c->said_unplaced = true;
		c->in.mr = NULL;
		placer->unplace(placer->arg, placed);
		return -1;
	}
	c->in.placed = placed;
	c->in.placer = placer;
	return 0;
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
	if (place(c, id, body + GN_FRAME_HDR_SIZE, inl, &fh) == 0)
		total = inl; /* the message buffer holds the envelope only */
	c->in.buf = gn_msg_buf_alloc(total);
	if (c->in.buf == NULL)
		return fail_tell(c, -ENOMEM,
				 "verbs: %s: cannot allocate %zu bytes for "
				 "message %u",
				 c->peer, total, id);
	memcpy(c->in.buf, body + GN_FRAME_HDR_SIZE, inl);
	rc = c->in.placed ? 0
			  : c->ops->reg_mr(c->ctx, c->in.buf + inl, total - inl,
					   GN_VP_ACCESS_LOCAL_WRITE |
						   GN_VP_ACCESS_REMOTE_WRITE,
					   &c->in.mr, &c->in.rkey);
	c->in.staged = rc != 0;
	c->in.granted = c->in.landed = 0;
	if (rc != 0)
		c->in.mr = NULL;
	if (rc != 0 && rstage_setup(c) != 0) {
		gn_msg_buf_free(c->in.buf);
		c->in.buf = NULL;
		return fail_tell(c, rc,
				 "verbs: %s: cannot register %zu bytes for "
				 "message %u, nor a %zu-byte staging ring: "
				 "%s%s",
				 c->peer, total - inl, id, c->p.staging_size,
				 strerror(-rc), gn_vp_reg_hint(rc));
	}
	if (rc != 0 && !c->said_rstaged) {
		GN_LOG(INFO, verbs,
		       "%s: message %u: cannot register its %zu bytes (%s); it "
		       "and later ones like it arrive through a %zu-byte "
		       "staging ring%s",
		       c->peer, id, total - inl, strerror(-rc),
		       c->p.staging_size, gn_vp_reg_hint(rc));
		c->said_rstaged = true;
	}
	c->in.active = c->in.cts_pending = true;
	c->in.id = id;
	c->in.env_len = fh.env_len;
	c->in.payload_len = (size_t)fh.payload_len;
	c->in.inl = inl;
	c->next_recv_id++;
	return 0;
}

/* Queue where the receiver lets us WRITE [off, off + n): addr, rkey. */
static void push_grant(struct gn_vp_conn *c, const uint8_t *body, uint64_t off,
		       uint64_t n)
{
	c->out.g[(c->out.gh + c->out.gn++) % MAX_GRANTS] =
		(struct grant){.raddr = gn_vp_get64(body),
			       .rkey = gn_vp_get32(body + 8),
			       .off = off,
			       .len = n};
	c->out.offered += n;
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
	/* The whole message, one grant: written as the parts are. */
	push_grant(c, body, 0, want);
	c->out.state = OUT_GOT_CTS;
	return 0;
}

/*
 * A grant for the next part of our outgoing message: parts come in order,
 * each within the message, at most MAX_GRANTS waiting.
 */
static int on_cts_part(struct gn_vp_conn *c, uint32_t id, const uint8_t *body,
		       uint32_t len)
{
	uint64_t off, n;

	if ((c->out.state != OUT_WAIT_CTS && c->out.state != OUT_PARTS) ||
	    id != c->out.id)
		return fail_tell(c, -EPROTO,
				 "verbs: %s: CTS_PART for message %u, but no "
				 "such message waits for one",
				 c->peer, id);
	if (len != CTS_PART_BODY)
		return fail_tell(c, -EPROTO,
				 "verbs: %s: CTS_PART of %u bytes, expected %d",
				 c->peer, len, CTS_PART_BODY);
	n = gn_vp_get64(body + 12);
	off = gn_vp_get64(body + 20);
	if (off != c->out.offered || n == 0 || n > c->out.want - off ||
	    c->out.gn == MAX_GRANTS)
		return fail_tell(c, -EPROTO,
				 "verbs: %s: CTS_PART for message %u grants "
				 "%llu bytes at %llu; expected the next part "
				 "from %llu of %llu, at most %d waiting",
				 c->peer, id, (unsigned long long)n,
				 (unsigned long long)off,
				 (unsigned long long)c->out.offered,
				 (unsigned long long)c->out.want, MAX_GRANTS);
	push_grant(c, body, off, n);
	c->out.state = OUT_PARTS;
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
	case GN_VP_CTS_PART: return on_cts_part(c, id, b, len);
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
	void *placed;

	/* Staged, a part is in flight once granted and until landed. */
	bool waiting =
		c->in.active && (c->in.staged ? c->in.granted > c->in.landed
					      : !c->in.cts_pending);

	if (!waiting || imm != c->in.id) {
		if (!waiting)
			return fail_tell(c, -EPROTO,
					 "verbs: %s: RDMA write with immediate "
					 "%u, but no message is arriving",
					 c->peer, imm);
		return fail_tell(c, -EPROTO,
				 "verbs: %s: RDMA write with immediate %u, "
				 "expected %u",
				 c->peer, imm, c->in.id);
	}
	if (c->in.staged) {
		uint64_t rest = c->in.env_len + c->in.payload_len - c->in.inl;
		uint64_t half = c->p.staging_size / 2;
		uint64_t n =
			rest - c->in.landed < half ? rest - c->in.landed : half;

		memcpy(c->in.buf + c->in.inl + c->in.landed,
		       c->rstage + (c->in.landed / half % 2) * half, n);
		c->in.landed += n;
		if (c->in.landed < rest) {
			c->in.cts_pending = c->in.granted < rest;
			return 0;
		}
	}
	if (c->in.mr != NULL)
		c->ops->dereg_mr(c->ctx, c->in.mr);
	c->in.mr = NULL;
	c->in.active = false;
	buf = c->in.buf;
	c->in.buf = NULL;
	placed = c->in.placed;
	c->in.placed = NULL;
	return enqueue(c, buf, c->in.env_len, c->in.payload_len, placed,
		       c->in.placer);
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

void gn_vp_handle_wc(struct gn_vp_conn *c, const struct gn_vp_wc *wc)
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
	if (rc == 0 && gn_vp_repost(c, idx) == 0) {
		/* A full queue keeps the credit: the peer waits for recv. */
		if (queue_full(c))
			c->held++;
		else
			c->owed++;
	}
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
