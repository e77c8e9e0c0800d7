/*
 * The send side of the verbs protocol engine (see verbs_proto.h): eager
 * SENDs, and rendezvous (RTS, wait for the CTS, RDMA WRITEs from the
 * caller's registered memory or through the pinned-host staging ring).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "gn_error.h"
#include "verbs_proto_internal.h"

/* ---- sending ------------------------------------------------------------ */

static bool can_normal(const struct gn_vp_conn *c)
{
	return gn_vp_tx_can(c, 2);
}

static bool got_grant(const struct gn_vp_conn *c)
{
	return c->out.gn > 0;
}

static bool writes_done(const struct gn_vp_conn *c)
{
	return c->writes_out == 0;
}

static bool sq_room(const struct gn_vp_conn *c)
{
	return c->sq_out < c->p.sq_depth;
}

static bool sq_room_credit(const struct gn_vp_conn *c)
{
	return c->sq_out < c->p.sq_depth && c->credits >= 2;
}

static bool stage_room(const struct gn_vp_conn *c)
{
	return c->stage_free > 0 && c->sq_out < c->p.sq_depth;
}

static bool stage_room_credit(const struct gn_vp_conn *c)
{
	return stage_room(c) && c->credits >= 2;
}

static int no_credit(struct gn_vp_conn *c, int timeout_ms)
{
	return gn_error_set(-ETIMEDOUT,
			    "verbs: %s: no send credit within %d ms (the peer "
			    "has not reposted its receives)",
			    c->peer, timeout_ms);
}

/* Copy bytes of a payload piece (maybe GPU memory) into host memory. */
static int piece_copy(struct gn_vp_conn *c, void *dst, const void *src,
		      size_t len)
{
	if (c->ops->copy_in == NULL) {
		memcpy(dst, src, len);
		return 0;
	}
	return c->ops->copy_in(c->ctx, dst, src, len);
}

static int send_eager(struct gn_vp_conn *c, const uint8_t *env, size_t env_len,
		      const struct iovec *payload, int iovcnt,
		      uint64_t payload_len, uint64_t deadline, int timeout_ms)
{
	uint32_t slot;
	uint8_t *b;
	int rc = gn_vp_wait_for(c, can_normal, deadline, false);

	if (rc == -ETIMEDOUT)
		return no_credit(c, timeout_ms);
	if (rc != 0)
		return rc;
	slot = gn_vp_tx_take(c);
	b = gn_vp_tx_buf(c, slot) + GN_VP_HDR_SIZE;
	gn_frame_hdr_encode(b, (uint32_t)env_len, payload_len);
	b += GN_FRAME_HDR_SIZE;
	memcpy(b, env, env_len);
	b += env_len;
	for (int i = 0; i < iovcnt; i++) {
		if (payload[i].iov_len == 0)
			continue;
		rc = piece_copy(c, b, payload[i].iov_base, payload[i].iov_len);
		if (rc != 0) {
			/* Nothing went out: the slot and the id stay free. */
			c->tx_busy[slot] = 0;
			c->tx_free++;
			return rc;
		}
		b += payload[i].iov_len;
	}
	return gn_vp_tx_post(
		c, slot, GN_VP_EAGER, c->next_send_id++,
		(uint32_t)(GN_FRAME_HDR_SIZE + env_len + payload_len));
}

static int write_fail(struct gn_vp_conn *c, int rc)
{
	return gn_vp_fail(c, rc, "verbs: %s: posting an RDMA WRITE failed: %s",
			  c->peer, strerror(-rc));
}

/* The piece and offset in it where byte `off` of the pieces lies. */
static void seg_seek(const struct seg *s, int ns, uint64_t off, int *si,
		     size_t *soff)
{
	int i = 0;

	while (i + 1 < ns && off >= s[i].len)
		off -= s[i++].len;
	*si = i;
	*soff = (size_t)off;
}

/* Where a run of WRITEs goes: bytes [off, off + len) of the pieces. */
struct span {
	uint64_t off, len, raddr;
	uint32_t rkey;
};

/*
 * Zero-copy: WRITE the span from the registered pieces in chunks of
 * max_write, the last one carrying the immediate.
 */
static int write_zc(struct gn_vp_conn *c, const struct seg *s, int ns,
		    const struct span *sp, uint64_t deadline)
{
	uint64_t done = 0;
	size_t soff;
	int si;

	seg_seek(s, ns, sp->off, &si, &soff);
	while (done < sp->len) {
		uint64_t n = s[si].len - soff;
		bool last;
		int rc;

		if (n > sp->len - done)
			n = sp->len - done;
		if (n > c->p.max_write)
			n = c->p.max_write;
		last = done + n == sp->len;
		rc = gn_vp_wait_for(c, last ? sq_room_credit : sq_room,
				    deadline, false);
		if (rc != 0)
			return rc;
		rc = c->ops->post_write(c->ctx, WR(WR_WRITE, 0), s[si].p + soff,
					(uint32_t)n, s[si].mr, sp->raddr + done,
					sp->rkey, last, c->out.id);
		if (rc != 0)
			return write_fail(c, rc);
		c->sq_out++;
		c->writes_out++;
		if (last)
			c->credits--;
		done += n;
		soff += (size_t)n;
		if (soff == s[si].len && si + 1 < ns) {
			si++;
			soff = 0;
		}
	}
	return 0;
}

static int stage_setup(struct gn_vp_conn *c)
{
	uint32_t rkey;
	int rc;

	if (c->stage != NULL)
		return 0;
	c->stage = aligned_alloc(4096, c->p.staging_size);
	c->stage_busy = calloc(c->p.staging_slots, 1);
	if (c->stage == NULL || c->stage_busy == NULL)
		return gn_vp_fail(c, -ENOMEM,
				  "verbs: %s: no memory for staging", c->peer);
	rc = c->ops->reg_mr(c->ctx, c->stage, c->p.staging_size, 0,
			    &c->stage_mr, &rkey);
	if (rc != 0) {
		free(c->stage);
		c->stage = NULL;
		return gn_vp_fail(c, rc,
				  "verbs: %s: cannot register the %zu-byte "
				  "staging ring either: %s%s",
				  c->peer, c->p.staging_size, strerror(-rc),
				  gn_vp_reg_hint(rc));
	}
	c->stage_free = c->p.staging_slots;
	return 0;
}

/* Pinned-host staging: copy the span through the ring, WRITE from it. */
static int write_staged(struct gn_vp_conn *c, const struct seg *s, int ns,
			const struct span *sp, uint64_t deadline)
{
	uint64_t done = 0;
	size_t soff;
	int si, rc = stage_setup(c);

	seg_seek(s, ns, sp->off, &si, &soff);
	while (rc == 0 && done < sp->len) {
		uint64_t n = sp->len - done;
		uint32_t slot = 0;
		uint8_t *b;
		bool last;

		if (n > c->slot_size)
			n = c->slot_size;
		last = done + n == sp->len;
		rc = gn_vp_wait_for(c, last ? stage_room_credit : stage_room,
				    deadline, false);
		if (rc != 0)
			return rc;
		while (c->stage_busy[slot])
			slot++;
		b = c->stage + (size_t)slot * c->slot_size;
		for (uint64_t got = 0; got < n;) {
			size_t k = s[si].len - soff;

			if (k > n - got)
				k = (size_t)(n - got);
			rc = piece_copy(c, b + got, s[si].p + soff, k);
			if (rc != 0)
				return gn_vp_fail(c, rc,
						  "verbs: %s: message %u: "
						  "staging a payload piece: %s",
						  c->peer, c->out.id,
						  gn_last_error());
			got += k;
			soff += k;
			if (soff == s[si].len && si + 1 < ns) {
				si++;
				soff = 0;
			}
		}
		rc = c->ops->post_write(
			c->ctx, WR(WR_STAGE, slot), b, (uint32_t)n, c->stage_mr,
			sp->raddr + done, sp->rkey, last, c->out.id);
		if (rc != 0)
			return write_fail(c, rc);
		c->stage_busy[slot] = 1;
		c->stage_free--;
		c->sq_out++;
		c->writes_out++;
		if (last)
			c->credits--;
		done += n;
	}
	return rc;
}

/*
 * WRITE the whole rest of the message where the grants say: one for all
 * of it (a CTS), or one per part (CTS_PART; the next may still be on its
 * way: it comes once the receiver has copied out an earlier part).
 */
static int write_all(struct gn_vp_conn *c, const struct seg *s, int ns,
		     bool staged, uint64_t rest, uint64_t deadline)
{
	uint64_t done = 0;
	int rc = 0;

	while (rc == 0 && done < rest) {
		struct grant *g;
		struct span sp;

		rc = gn_vp_wait_for(c, got_grant, deadline, false);
		if (rc == -ETIMEDOUT)
			return gn_vp_fail(c, -ETIMEDOUT,
					  "verbs: %s: message %u: the receiver "
					  "granted %llu of %llu bytes and no "
					  "more in time; the connection is out "
					  "of step",
					  c->peer, c->out.id,
					  (unsigned long long)done,
					  (unsigned long long)rest);
		if (rc != 0)
			break;
		g = &c->out.g[c->out.gh];
		sp = (struct span){g->off, g->len, g->raddr, g->rkey};
		c->out.gh = (c->out.gh + 1) % MAX_GRANTS;
		c->out.gn--;
		rc = staged ? write_staged(c, s, ns, &sp, deadline)
			    : write_zc(c, s, ns, &sp, deadline);
		done += sp.len;
	}
	return rc;
}

static int send_rdv(struct gn_vp_conn *c, const uint8_t *env, size_t env_len,
		    const struct iovec *payload, int iovcnt,
		    uint64_t payload_len, uint64_t deadline, int timeout_ms)
{
	struct seg s[GN_VP_MAX_PIECES + 1];
	size_t room = c->p.peer_buf_size - GN_VP_HDR_SIZE - GN_FRAME_HDR_SIZE;
	size_t inl = env_len < room ? env_len : room;
	uint64_t rest = env_len - inl + payload_len;
	bool staged = false;
	uint32_t slot, id, rkey;
	int ns = 0, nreg = 0, rc;
	uint8_t *b;

	rc = gn_vp_wait_for(c, can_normal, deadline, false);
	if (rc == -ETIMEDOUT)
		return no_credit(c, timeout_ms);
	if (rc != 0)
		return rc;
	slot = gn_vp_tx_take(c);
	b = gn_vp_tx_buf(c, slot) + GN_VP_HDR_SIZE;
	gn_frame_hdr_encode(b, (uint32_t)env_len, payload_len);
	memcpy(b + GN_FRAME_HDR_SIZE, env, inl);
	id = c->next_send_id++;
	c->out =
		(typeof(c->out)){.state = OUT_WAIT_CTS, .id = id, .want = rest};
	rc = gn_vp_tx_post(c, slot, GN_VP_RTS, id,
			   (uint32_t)(GN_FRAME_HDR_SIZE + inl));
	if (rc == 0)
		rc = gn_vp_wait_for(c, got_grant, deadline, false);
	if (rc == -ETIMEDOUT)
		rc = gn_vp_fail(
			c, -ETIMEDOUT,
			"verbs: %s: no CTS for message %u within %d ms; "
			"the connection is out of step",
			c->peer, id, timeout_ms);
	if (rc != 0)
		goto out;

	if (inl < env_len)
		s[ns++] = (struct seg){env + inl, env_len - inl, NULL};
	for (int i = 0; i < iovcnt; i++)
		if (payload[i].iov_len)
			s[ns++] = (struct seg){payload[i].iov_base,
					       payload[i].iov_len, NULL};
	for (; nreg < ns; nreg++) {
		rc = c->ops->reg_mr(c->ctx, (void *)s[nreg].p, s[nreg].len, 0,
				    &s[nreg].mr, &rkey);
		if (rc != 0) {
			staged = true;
			break;
		}
	}
	if (staged)
		while (nreg > 0)
			c->ops->dereg_mr(c->ctx, s[--nreg].mr);
	if (!(staged ? c->said_staged : c->said_zc))
		GN_LOG(INFO, verbs,
		       "%s: message %u: %llu bytes by RDMA WRITE from %s",
		       c->peer, id, (unsigned long long)rest,
		       staged ? "the pinned-host staging ring (registering "
				"the caller's memory failed)"
			      : "the caller's registered memory (zero-copy)");
	else
		GN_LOG(DEBUG, verbs, "%s: message %u: %llu bytes, %s", c->peer,
		       id, (unsigned long long)rest,
		       staged ? "staged" : "zero-copy");
	*(staged ? &c->said_staged : &c->said_zc) = true;
	rc = write_all(c, s, ns, staged, rest, deadline);
	if (rc == 0)
		rc = gn_vp_wait_for(c, writes_done, deadline, false);
	if (rc == -ETIMEDOUT)
		rc = gn_vp_fail(
			c, -ETIMEDOUT,
			"verbs: %s: the RDMA WRITEs of message %u did not "
			"complete within %d ms",
			c->peer, id, timeout_ms);
out:
	if (c->writes_out > 0) {
		/* Flush what still reads the caller's memory, then let go. */
		c->ops->qp_error(c->ctx);
		gn_vp_wait_for(c, writes_done, gn_vp_deadline(DRAIN_MS), true);
		if (c->writes_out > 0)
			GN_LOG(WARNING, verbs,
			       "%s: %u RDMA WRITEs not flushed after %d ms",
			       c->peer, c->writes_out, DRAIN_MS);
	}
	while (nreg > 0)
		c->ops->dereg_mr(c->ctx, s[--nreg].mr);
	c->out.state = OUT_NONE;
	return rc == 0 ? 0 : gn_vp_sticky(c);
}

int gn_vp_send(struct gn_vp_conn *c, const uint8_t *env, size_t env_len,
	       const struct iovec *payload, int iovcnt, int timeout_ms)
{
	uint64_t deadline = gn_vp_deadline(timeout_ms), payload_len = 0;

	if (c->err)
		return gn_vp_sticky(c);
	if (iovcnt < 0 || iovcnt > GN_VP_MAX_PIECES ||
	    (iovcnt > 0 && payload == NULL))
		return gn_error_set(-EINVAL,
				    "verbs: %d payload pieces, at most %d",
				    iovcnt, GN_VP_MAX_PIECES);
	if (env == NULL || env_len == 0 || env_len > c->p.limits.max_envelope)
		return gn_error_set(-EMSGSIZE,
				    "verbs: envelope of %zu bytes, cap is %u",
				    env_len, c->p.limits.max_envelope);
	for (int i = 0; i < iovcnt; i++)
		payload_len += payload[i].iov_len;
	if ((uint64_t)GN_VP_HDR_SIZE + GN_FRAME_HDR_SIZE + env_len +
		    payload_len <=
	    c->p.peer_buf_size)
		return send_eager(c, env, env_len, payload, iovcnt, payload_len,
				  deadline, timeout_ms);
	return send_rdv(c, env, env_len, payload, iovcnt, payload_len, deadline,
			timeout_ms);
}
