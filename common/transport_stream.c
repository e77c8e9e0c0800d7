/*
 * What the byte-stream transports (tcp, tls) share: deadlines, waiting on
 * a socket, and the framing of a message over a stream (header checks on
 * send; header, body and truncation handling on receive). Each transport
 * supplies only how bytes move.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "gn_error.h"
#include "transport.h"

uint64_t gn_stream_deadline(int timeout_ms)
{
	return timeout_ms < 0 ? UINT64_MAX
			      : gn_clock_ns() + (uint64_t)timeout_ms * 1000000;
}

int gn_stream_wait_fd(int fd, short events, uint64_t deadline)
{
	struct pollfd p = {.fd = fd, .events = events};
	int rc;

	for (;;) {
		int ms = deadline == UINT64_MAX ? -1
						: gn_clock_ms_until(deadline);

		rc = poll(&p, 1, ms);
		if (rc > 0)
			return 0;
		if (rc == 0)
			return -ETIMEDOUT;
		if (errno != EINTR)
			return -errno;
	}
}

int gn_stream_frame_hdr(struct gn_conn *c, size_t env_len,
			const struct iovec *payload, int iovcnt,
			uint8_t hdr[GN_FRAME_HDR_SIZE], uint64_t *payload_len)
{
	const char *name = c->ops->name;

	if (iovcnt < 0 || iovcnt > GN_STREAM_MAX_PIECES)
		return gn_error_set(-EINVAL,
				    "%s: %d payload pieces, at most %d", name,
				    iovcnt, GN_STREAM_MAX_PIECES);
	if (env_len == 0 || env_len > c->limits.max_envelope)
		return gn_error_set(-EMSGSIZE,
				    "%s: envelope of %zu bytes, cap is %u",
				    name, env_len, c->limits.max_envelope);
	*payload_len = 0;
	for (int i = 0; i < iovcnt; i++)
		*payload_len += payload[i].iov_len;
	gn_frame_hdr_encode(hdr, (uint32_t)env_len, *payload_len);
	return 0;
}

int gn_stream_recv(struct gn_conn *c, gn_stream_read_fn read_full,
		   uint64_t deadline, struct gn_msg *msg)
{
	const char *name = c->ops->name;
	uint8_t hdr_buf[GN_FRAME_HDR_SIZE];
	const struct gn_placement *placer = NULL;
	struct gn_frame_hdr hdr;
	size_t got, body, have;
	uint8_t *buf, *placed = NULL;
	int rc;

	memset(msg, 0, sizeof(*msg));
	rc = read_full(c, hdr_buf, sizeof(hdr_buf), deadline, &got);
	if (rc == -ECONNRESET && got == 0)
		return gn_error_set(-ECONNRESET, "%s: %s closed the connection",
				    name, c->peer);
	if (rc == -ECONNRESET)
		return gn_error_set(-EPROTO,
				    "%s: %s closed inside a frame header "
				    "(%zu of %d bytes)",
				    name, c->peer, got, GN_FRAME_HDR_SIZE);
	if (rc != 0)
		return rc;
	rc = gn_frame_hdr_decode(hdr_buf, sizeof(hdr_buf), &c->limits, &hdr);
	if (rc != 0) {
		/* Keep the frame module's words and add who sent it. */
		char detail[400];

		snprintf(detail, sizeof(detail), "%s", gn_last_error());
		return gn_error_set(rc, "%s: from %s: %s", name, c->peer,
				    detail);
	}
	body = hdr.env_len + (size_t)hdr.payload_len;
	/*
	 * With a placement set and a payload coming, the envelope is read
	 * alone first, to be shown to it.
	 */
	have = __atomic_load_n(&c->placement, __ATOMIC_ACQUIRE) != NULL &&
			       hdr.payload_len > 0
		       ? hdr.env_len
		       : body;
	buf = gn_msg_buf_alloc(have);
	if (buf == NULL)
		return gn_error_set(-ENOMEM,
				    "%s: cannot allocate %zu bytes for a "
				    "message from %s",
				    name, have, c->peer);
	rc = read_full(c, buf, have, deadline, &got);
	if (rc == 0 && have < body) {
		placed = gn_conn_place(c, buf, hdr.env_len,
				       (size_t)hdr.payload_len, &placer);
		if (placed == NULL) {
			uint8_t *all = gn_msg_buf_alloc(body);

			if (all == NULL) {
				gn_msg_buf_free(buf);
				return gn_error_set(-ENOMEM,
						    "%s: cannot allocate %zu "
						    "bytes for a message from "
						    "%s",
						    name, body, c->peer);
			}
			memcpy(all, buf, have);
			gn_msg_buf_free(buf);
			buf = all;
		}
		rc = read_full(c, placed ? placed : buf + have,
			       (size_t)hdr.payload_len, deadline, &got);
		got += have;
	}
	if (rc != 0) {
		gn_msg_buf_free(buf);
		if (placed != NULL)
			placer->unplace(placer->arg, placed);
		if (rc == -ECONNRESET)
			return gn_error_set(-EPROTO,
					    "%s: truncated frame from %s: "
					    "header announced %zu bytes, "
					    "connection closed after %zu",
					    name, c->peer, body, got);
		return rc;
	}
	msg->buf = buf;
	msg->env = buf;
	msg->env_len = hdr.env_len;
	msg->payload = placed ? placed : buf + hdr.env_len;
	msg->payload_len = (size_t)hdr.payload_len;
	msg->placed = placed;
	msg->placer = placer;
	c->stats.bytes_received += GN_FRAME_HDR_SIZE + body;
	c->stats.msgs_received++;
	return 0;
}
