/*
 * The DPDK transport: Genie's framed messages over reliable messaging
 * (rel.c) over a DPDK port (port.c), behind the same interface as TCP
 * (common/transport.h), so clients and runtimes pick it with a target
 * string:
 *
 *   dpdk://memif:/path/to/socket     memif; the listener is the memif
 *                                    server, a connector the client
 *
 * (and af_packet and PCI targets; target.h has them all). A memif
 * listener serves up to GN_DPDK_MEMIF_CLIENTS client processes at once,
 * one memif interface id and one port each: a connector claims the
 * lowest id no other process holds, the listener opens id 0 at once and
 * a port for every id claimed since (memif_grow(), every 50 ms), and the
 * frames for a client go out on its id's port (port_for()).
 *
 * This file holds the transport ops; the engine is in
 * transport_dpdk_engine.c, what they share in transport_dpdk_internal.h.
 * One engine per process (DPDK's EAL is per process): it starts the EAL
 * on first use (no hugepages, no PCI scan, a file prefix of its own),
 * opens the port, and runs one thread that takes received frames into the
 * protocol and drives its timers when no application thread does: a
 * thread in recv, or waiting for a large send's ack, drives the port
 * itself and spins while packets arrive (and SPIN_NS after), the engine
 * staying out of its way meanwhile (`drivers`). Otherwise the engine polls
 * (napping 20 us when a poll found nothing) while traffic flows, that is
 * while packets are in flight, a message is half received or an ack is
 * owed (gn_rel_busy()), and sleeps in steps up to 1 ms when nothing does.
 * Each thread that drives the port has an lcore id of its own
 * (gn_dpdk_thread_register()), so the mbuf pools' caches serve it. The
 * EAL leaves this process's
 * threads unpinned (dpdk_env.h, pin_main_lcore): two Genie processes on
 * one host would otherwise share CPU 0. Application threads send under
 * the engine's lock. Each connection has a socketpair: the engine writes
 * a byte when a message arrives for a recv asleep in poll(), or the end
 * arrives, and the runtime's shutdown(conn_fd) wakes recv as for TCP (a
 * spinning recv looks at the socket every millisecond).
 *
 * A message is sent as one rel message holding a lead-in of 1 to 16 bytes
 * (dpdk_msg.h: it lines the payload's packets up with the port's frame
 * buffers) and the usual frame: the 24-byte header, the envelope and the
 * payload. Payloads under SEND_ZC_MIN are gathered behind the header with
 * one copy and the send returns at once; larger ones go from the caller's
 * buffers (gn_rel_sendv()) and the send drives the port until they are
 * acked.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "gn_error.h"
#include "transport_dpdk_internal.h"

/* ---- transport ops ----------------------------------------------------------
 */

static int dpdk_listen(const char *addr, const struct gn_transport_opts *opts,
		       struct gn_listener **out)
{
	struct dpdk_listener *l = calloc(1, sizeof(*l));
	struct engine *e;
	int rc;

	if (l == NULL)
		return gn_error_set(-ENOMEM, "dpdk: out of memory");
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
		       l->fds) != 0) {
		free(l);
		return gn_error_set(-errno, "dpdk: socketpair: %s",
				    strerror(errno));
	}
	l->e = NULL;
	rc = gn_dpdk_engine_get(addr, true, opts, l, &e);
	if (rc != 0) {
		close(l->fds[0]);
		close(l->fds[1]);
		free(l);
		return rc;
	}
	l->e = e;
	l->base.ops = &gn_dpdk_transport_ops;
	l->base.opts = *opts;
	snprintf(l->base.addr, sizeof(l->base.addr), "%s", addr);
	*out = &l->base;
	return 0;
}

static int dpdk_accept(struct gn_listener *gl, int timeout_ms,
		       struct gn_conn **out)
{
	struct dpdk_listener *l = (struct dpdk_listener *)gl;
	struct pollfd p = {.fd = l->fds[0], .events = POLLIN};
	char b[64];

	for (;;) {
		pthread_mutex_lock(&l->e->lock);
		if (l->nacc > 0) {
			*out = &l->acc[0]->base;
			memmove(l->acc, l->acc + 1,
				sizeof(l->acc[0]) * (size_t)--l->nacc);
			pthread_mutex_unlock(&l->e->lock);
			return 0;
		}
		pthread_mutex_unlock(&l->e->lock);
		if (poll(&p, 1, timeout_ms) == 0)
			return gn_error_set(-ETIMEDOUT,
					    "dpdk: no connection within %d ms",
					    timeout_ms);
		while (read(l->fds[0], b, sizeof(b)) > 0)
			;
	}
}

static int dpdk_listener_fd(const struct gn_listener *gl)
{
	return ((const struct dpdk_listener *)gl)->fds[0];
}

static void dpdk_listener_close(struct gn_listener *gl)
{
	struct dpdk_listener *l = (struct dpdk_listener *)gl;

	pthread_mutex_lock(&l->e->lock);
	l->e->listener = NULL;
	pthread_mutex_unlock(&l->e->lock);
	/* Accepted but never taken: closed (each takes the lock itself). */
	for (int i = 0; i < l->nacc; i++)
		gn_conn_close((struct gn_conn **)&l->acc[i]);
	close(l->fds[0]);
	close(l->fds[1]);
	free(l);
}

static int dpdk_connect(const char *addr, const struct gn_transport_opts *opts,
			int timeout_ms, struct gn_conn **out)
{
	struct gn_rel_session *s;
	struct dpdk_conn *c;
	struct engine *e;
	uint64_t deadline;
	int rc = gn_dpdk_engine_get(addr, false, opts, NULL, &e);

	if (rc != 0)
		return rc;
	pthread_mutex_lock(&e->lock);
	rc = gn_rel_connect(e->ep, &e->t.peer, gn_clock_ns(), &s);
	c = rc == 0 ? gn_dpdk_conn_new(e, s) : NULL;
	if (rc == 0 && c == NULL) {
		gn_rel_close(s, gn_clock_ns());
		rc = gn_error_set(-ENOMEM, "dpdk: out of memory");
	}
	deadline = gn_clock_ns() +
		   (uint64_t)(timeout_ms < 0 ? 30000 : timeout_ms) * 1000000ull;
	while (rc == 0 && !gn_rel_session_up(s) && !c->closed) {
		struct timespec ts;

		if (gn_clock_ns() >= deadline) {
			rc = gn_error_set(-ETIMEDOUT,
					  "dpdk: no answer from the runtime on "
					  "'dpdk://%s' within %d ms",
					  addr, timeout_ms);
			break;
		}
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 1000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&e->cond, &e->lock, &ts);
	}
	if (rc == 0 && c->closed)
		rc = gn_error_set(c->closed,
				  "dpdk: 'dpdk://%s' refused or dropped the "
				  "session: %s",
				  addr, gn_strerror(c->closed));
	pthread_mutex_unlock(&e->lock);
	if (rc != 0) {
		if (c != NULL)
			gn_conn_close((struct gn_conn **)&c);
		return rc;
	}
	c->up = true;
	*out = &c->base;
	return 0;
}

/* Count the calling thread among those driving the port, or not. */
static void set_driving(struct engine *e, bool *driving, bool on)
{
	if (*driving != on)
		atomic_fetch_add(&e->drivers, on ? 1 : -1);
	*driving = on;
}

/*
 * Drive the port until done(c, arg), checked under the engine lock, or
 * until timeout_ms passed (-1: no limit): spinning while packets arrive
 * (and SPIN_NS after), napping and leaving the port to the engine when
 * they stop. True when done.
 */
static bool drive_until(struct dpdk_conn *c,
			bool (*done)(const struct dpdk_conn *c, void *arg),
			void *arg, int timeout_ms)
{
	uint64_t start = gn_clock_ns(), spin_until = start + SPIN_NS;
	bool driving = false, ok;

	for (;;) {
		uint64_t next, now;
		int n = 0;

		set_driving(c->e, &driving, true);
		pthread_mutex_lock(&c->e->lock);
		if (c->e->nports > 0)
			n = gn_dpdk_engine_drive(c->e, &next, &now);
		else
			now = gn_clock_ns();
		ok = done(c, arg);
		pthread_mutex_unlock(&c->e->lock);
		if (ok || (timeout_ms >= 0 &&
			   now - start >= (uint64_t)timeout_ms * 1000000ull))
			break;
		if (n > 0)
			spin_until = now + SPIN_NS;
		if (now >= spin_until) {
			/* Packets stopped coming: let the engine drive. */
			set_driving(c->e, &driving, false);
			gn_dpdk_nap_us(BUSY_NAP_US);
		}
	}
	set_driving(c->e, &driving, false);
	return ok;
}

static bool sent(const struct dpdk_conn *c, void *arg)
{
	(void)c;
	return ((const struct send_ctx *)arg)->done;
}

/*
 * Drive the port until the message behind `sc` is acked or failed; past
 * the deadline the session is closed (the stream is out of step, as a TCP
 * send that timed out halfway) and the wait goes on until the protocol
 * lets go of the caller's buffers, which for memif and af_packet is at
 * once. Returns the message's status.
 */
static int wait_sent(struct dpdk_conn *c, struct send_ctx *sc, int timeout_ms)
{
	if (!drive_until(c, sent, sc, timeout_ms)) {
		pthread_mutex_lock(&c->e->lock);
		if (c->s != NULL)
			gn_rel_close(c->s, gn_clock_ns());
		pthread_mutex_unlock(&c->e->lock);
		drive_until(c, sent, sc, -1);
		if (sc->status != 0)
			return gn_error_set(-ETIMEDOUT,
					    "dpdk: %s: message not acked "
					    "within %d ms; the session is "
					    "closed",
					    c->base.peer, timeout_ms);
	}
	if (sc->status != 0)
		return gn_error_set(sc->status, "dpdk: %s: send failed: %s",
				    c->base.peer, gn_strerror(sc->status));
	return 0;
}

/* Room to queue another message: the peer takes what we sent. */
static bool backlog_ok(const struct dpdk_conn *c, void *arg)
{
	uint64_t msgs, bytes;

	(void)arg;
	if (c->closed || c->s == NULL)
		return true; /* the send reports it */
	gn_rel_session_backlog(c->s, &msgs, &bytes);
	return msgs < SEND_BACKLOG_MSGS && bytes < SEND_BACKLOG_BYTES;
}

static int dpdk_send(struct gn_conn *gc, const uint8_t *env, size_t env_len,
		     const struct iovec *payload, int iovcnt, int timeout_ms)
{
	struct dpdk_conn *c = (struct dpdk_conn *)gc;
	struct iovec iov[1 + GN_STREAM_MAX_PIECES];
	size_t plen = 0, off, head;
	const void *first = NULL;
	struct send_ctx *sc;
	uint32_t lead;
	uint8_t *buf;
	bool zc;
	int rc, n = 1;

	if (iovcnt < 0 || iovcnt > GN_STREAM_MAX_PIECES)
		return gn_error_set(-EINVAL,
				    "dpdk: %d payload pieces, at most %d",
				    iovcnt, GN_STREAM_MAX_PIECES);
	for (int i = 0; i < iovcnt; i++) {
		if (first == NULL && payload[i].iov_len > 0)
			first = payload[i].iov_base;
		plen += payload[i].iov_len;
	}
	/*
	 * Large payloads go from the caller's buffers (no gather copy), and
	 * the call returns once they are acked; smaller ones are gathered
	 * with the header so the call returns at once.
	 */
	zc = plen >= SEND_ZC_MIN;
	/* Gathered payloads go from buf: no lead-in lines them up. */
	lead = zc ? gn_dpdk_msg_lead(first, (uint32_t)env_len) : 1;
	head = sizeof(*sc) + lead + GN_FRAME_HDR_SIZE + env_len;
	buf = gn_msg_buf_alloc(head + (zc ? 0 : plen));
	if (buf == NULL)
		return gn_error_set(-ENOMEM,
				    "dpdk: no memory for a %zu-byte "
				    "message",
				    env_len + plen);
	sc = (struct send_ctx *)buf;
	*sc = (struct send_ctx){.wait = zc};
	gn_dpdk_msg_lead_put(buf + sizeof(*sc), lead);
	gn_frame_hdr_encode(buf + sizeof(*sc) + lead, (uint32_t)env_len, plen);
	memcpy(buf + sizeof(*sc) + lead + GN_FRAME_HDR_SIZE, env, env_len);
	off = head;
	for (int i = 0; i < iovcnt; i++) {
		if (zc)
			iov[n++] = payload[i];
		else if (payload[i].iov_len)
			memcpy(buf + off, payload[i].iov_base,
			       payload[i].iov_len);
		off += payload[i].iov_len;
	}
	iov[0] = (struct iovec){buf + sizeof(*sc),
				zc ? head - sizeof(*sc) : off - sizeof(*sc)};
	pthread_mutex_lock(&c->e->lock);
	if (!backlog_ok(c, NULL)) {
		/*
		 * A peer that does not take what we send (its application
		 * is behind and it holds the session) stops us here, as a
		 * full TCP socket buffer would; our queue does not grow.
		 */
		pthread_mutex_unlock(&c->e->lock);
		if (!drive_until(c, backlog_ok, NULL, timeout_ms)) {
			gn_msg_buf_free(buf);
			return gn_error_set(
				-ETIMEDOUT,
				"dpdk: %s: the peer has not taken what we "
				"sent for %d ms (at most %d messages or %llu "
				"MiB wait for it); this message was not sent",
				c->base.peer, timeout_ms, SEND_BACKLOG_MSGS,
				(unsigned long long)(SEND_BACKLOG_BYTES >> 20));
		}
		pthread_mutex_lock(&c->e->lock);
	}
	if (c->closed || c->s == NULL)
		rc = gn_error_set(-ECONNRESET, "dpdk: %s: session closed",
				  c->base.peer);
	else
		rc = gn_rel_sendv(c->s, c->next_id++, iov, n, sc,
				  gn_clock_ns());
	pthread_mutex_unlock(&c->e->lock);
	if (rc != 0) {
		gn_msg_buf_free(buf);
		return rc;
	}
	if (zc) {
		rc = wait_sent(c, sc, timeout_ms);
		gn_msg_buf_free(buf);
		if (rc != 0)
			return rc;
	}
	c->base.stats.bytes_sent += off - sizeof(*sc) - lead;
	c->base.stats.msgs_sent++;
	return 0;
}

/* recv's answer once shutdown(conn_fd) asked it to stop. */
static int shut_down(const struct dpdk_conn *c)
{
	return gn_error_set(-ECONNRESET, "dpdk: %s: connection shut down",
			    c->base.peer);
}

static int dpdk_recv(struct gn_conn *gc, struct gn_msg *msg, int timeout_ms)
{
	struct dpdk_conn *c = (struct dpdk_conn *)gc;
	struct pollfd p = {.fd = c->fds[0], .events = POLLIN};
	uint64_t start = gn_clock_ns(), spin_until = start + SPIN_NS;
	uint64_t fd_checked = start;
	bool driving = false;
	char b[64];
	int rc;

	for (;;) {
		uint64_t next, now;
		ssize_t r;

		/* Drive the port ourselves: the reply is taken here. */
		set_driving(c->e, &driving, true);
		pthread_mutex_lock(&c->e->lock);
		c->sleeping = false;
		if (c->e->nports == 0)
			now = gn_clock_ns();
		else if (gn_dpdk_engine_drive(c->e, &next, &now) > 0)
			spin_until = now + SPIN_NS; /* traffic */
		if (c->nq > 0) {
			*msg = c->q[0];
			memmove(c->q, c->q + 1, sizeof(*c->q) * --c->nq);
			c->qbytes -= msg->env_len + msg->payload_len;
			if (c->held && !conn_queue_full(c)) {
				c->held = false;
				if (c->s != NULL)
					gn_rel_session_hold(c->s, false);
			}
			pthread_mutex_unlock(&c->e->lock);
			c->base.stats.bytes_received += GN_FRAME_HDR_SIZE +
							msg->env_len +
							msg->payload_len;
			c->base.stats.msgs_received++;
			rc = 0;
			break;
		}
		if (c->closed) {
			int st = c->closed;

			pthread_mutex_unlock(&c->e->lock);
			rc = gn_error_set(-ECONNRESET,
					  "dpdk: %s: the session ended (%s)",
					  c->base.peer, gn_strerror(st));
			break;
		}
		if (timeout_ms >= 0 &&
		    now - start >= (uint64_t)timeout_ms * 1000000ull) {
			pthread_mutex_unlock(&c->e->lock);
			rc = gn_error_set(-ETIMEDOUT,
					  "dpdk: %s: no message within %d ms",
					  c->base.peer, timeout_ms);
			break;
		}
		if (now < spin_until) {
			pthread_mutex_unlock(&c->e->lock);
			/*
			 * A reply is likely within microseconds. Traffic of
			 * other sessions keeps us spinning too: look for a
			 * shutdown(conn_fd) every millisecond meanwhile.
			 */
			if (now - fd_checked >= 1000000ull) {
				fd_checked = now;
				if (poll(&p, 1, 0) > 0 &&
				    read(c->fds[0], b, sizeof(b)) == 0) {
					rc = shut_down(c);
					break;
				}
			}
			continue;
		}
		/*
		 * Quiet: sleep until the engine pokes (it does while
		 * `sleeping` is set, under the lock: no lost wake-up), 1 ms
		 * at most.
		 */
		c->sleeping = true;
		pthread_mutex_unlock(&c->e->lock);
		set_driving(c->e, &driving, false);
		if (poll(&p, 1, 1) > 0) {
			r = read(c->fds[0], b, sizeof(b));
			if (r == 0) { /* shutdown(conn_fd): asked to stop */
				rc = shut_down(c);
				break;
			}
			spin_until = gn_clock_ns() + SPIN_NS;
		}
	}
	set_driving(c->e, &driving, false);
	return rc;
}

static int dpdk_conn_fd(const struct gn_conn *gc)
{
	return ((const struct dpdk_conn *)gc)->fds[0];
}

static void dpdk_close(struct gn_conn *gc)
{
	struct dpdk_conn *c = (struct dpdk_conn *)gc;

	pthread_mutex_lock(&c->e->lock);
	if (c->s != NULL) {
		gn_rel_session_set_user(c->s, NULL);
		/* Placed memory is the application's: none outlives the close.
		 */
		gn_rel_session_drop_partial(c->s);
		gn_rel_close(c->s, gn_clock_ns());
		c->s = NULL;
	}
	for (size_t i = 0; i < c->nq; i++)
		gn_msg_release(&c->q[i]);
	pthread_mutex_unlock(&c->e->lock);
	free(c->q);
	close(c->fds[0]);
	close(c->fds[1]);
	free(c);
}

const struct gn_transport_ops gn_dpdk_transport_ops = {
	.name = "dpdk",
	.listen = dpdk_listen,
	.accept = dpdk_accept,
	.listener_fd = dpdk_listener_fd,
	.listener_close = dpdk_listener_close,
	.connect = dpdk_connect,
	.send = dpdk_send,
	.recv = dpdk_recv,
	.conn_fd = dpdk_conn_fd,
	.close = dpdk_close,
};

GN_TRANSPORT_REGISTER(gn_dpdk_transport_ops)
