/*
 * The TCP transport: the fallback data path and the baseline the DPDK one
 * is measured against. Frames as in frame.h over a non-blocking stream
 * socket; every wait is a poll() with the caller's deadline, so nothing
 * spins and nothing blocks forever unless asked to.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "gn_error.h"
#include "log.h"
#include "transport.h"

GN_LOG_REGISTER(tcp)

struct tcp_conn {
	struct gn_conn base; /* first: the generic code casts */
	int fd;
};

struct tcp_listener {
	struct gn_listener base;
	int fd;
};

static const struct gn_transport_ops tcp_ops;

static int set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	return 0;
}

static void sockaddr_str(const struct sockaddr_storage *ss, char *buf,
			 size_t len)
{
	char host[NI_MAXHOST], serv[NI_MAXSERV];

	if (getnameinfo((const struct sockaddr *)ss, sizeof(*ss), host,
			sizeof(host), serv, sizeof(serv),
			NI_NUMERICHOST | NI_NUMERICSERV) != 0)
		snprintf(buf, len, "?");
	else
		snprintf(buf, len, "%.46s:%.7s", host, serv);
}

static int resolve(const char *addr, int passive, struct addrinfo **res)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC,
				 .ai_socktype = SOCK_STREAM,
				 .ai_flags = passive ? AI_PASSIVE : 0};
	char host[256], port_s[8];
	uint16_t port;
	int rc = gn_addr_split(addr, host, sizeof(host), &port);

	if (rc != 0)
		return rc;
	snprintf(port_s, sizeof(port_s), "%u", port);
	rc = getaddrinfo(host[0] ? host : NULL, port_s, &hints, res);
	if (rc != 0)
		return gn_error_set(-EINVAL, "tcp: cannot resolve '%s': %s",
				    addr, gai_strerror(rc));
	return 0;
}

static struct tcp_conn *conn_new(int fd, const struct gn_frame_limits *lim)
{
	struct tcp_conn *c = calloc(1, sizeof(*c));
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	int one = 1;

	if (c == NULL)
		return NULL;
	c->base.ops = &tcp_ops;
	c->base.limits = *lim;
	c->fd = fd;
	/* Small control messages must not wait for Nagle. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0)
		sockaddr_str(&ss, c->base.peer, sizeof(c->base.peer));
	return c;
}

static int tcp_listen(const char *addr, const struct gn_transport_opts *opts,
		      struct gn_listener **out)
{
	struct addrinfo *res = NULL, *ai;
	struct tcp_listener *l;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	int fd = -1, one = 1, rc, err = 0;

	rc = resolve(addr, 1, &res);
	if (rc != 0)
		return rc;
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			err = errno;
			continue;
		}
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
		    listen(fd, 128) == 0)
			break;
		err = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0)
		return gn_error_set(-err, "tcp: cannot listen on '%s': %s",
				    addr, strerror(err));
	rc = set_nonblock(fd);
	if (rc != 0)
		goto fail;
	l = calloc(1, sizeof(*l));
	if (l == NULL) {
		rc = -ENOMEM;
		goto fail;
	}
	l->base.ops = &tcp_ops;
	l->base.opts = *opts;
	l->fd = fd;
	getsockname(fd, (struct sockaddr *)&ss, &sl);
	sockaddr_str(&ss, l->base.addr, sizeof(l->base.addr));
	*out = &l->base;
	return 0;

fail:
	close(fd);
	return gn_error_set(rc, "tcp: listener setup on '%s' failed: %s", addr,
			    strerror(-rc));
}

static int tcp_accept(struct gn_listener *gl, int timeout_ms,
		      struct gn_conn **out)
{
	struct tcp_listener *l = (struct tcp_listener *)gl;
	uint64_t deadline = gn_stream_deadline(timeout_ms);
	struct tcp_conn *c;
	int fd, rc;

	for (;;) {
		fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd >= 0)
			break;
		if (errno == EINTR || errno == ECONNABORTED)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return gn_error_set(-errno, "tcp: accept on %s: %s",
					    gl->addr, strerror(errno));
		rc = gn_stream_wait_fd(l->fd, POLLIN, deadline);
		if (rc != 0)
			return rc;
	}
	c = conn_new(fd, &gl->opts.limits);
	if (c == NULL) {
		close(fd);
		return gn_error_set(-ENOMEM, "tcp: no memory for a connection");
	}
	*out = &c->base;
	return 0;
}

static int tcp_listener_fd(const struct gn_listener *gl)
{
	return ((const struct tcp_listener *)gl)->fd;
}

static void tcp_listener_close(struct gn_listener *gl)
{
	struct tcp_listener *l = (struct tcp_listener *)gl;

	close(l->fd);
	free(l);
}

static int tcp_connect(const char *addr, const struct gn_transport_opts *opts,
		       int timeout_ms, struct gn_conn **out)
{
	uint64_t deadline = gn_stream_deadline(timeout_ms);
	struct addrinfo *res = NULL, *ai;
	struct tcp_conn *c;
	int fd = -1, rc, err = ECONNREFUSED;

	rc = resolve(addr, 0, &res);
	if (rc != 0)
		return rc;
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		socklen_t el = sizeof(err);

		fd = socket(ai->ai_family,
			    ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			err = errno;
			continue;
		}
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		err = errno;
		if (err == EINPROGRESS) {
			rc = gn_stream_wait_fd(fd, POLLOUT, deadline);
			if (rc == 0 &&
			    getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) ==
				    0 &&
			    err == 0)
				break;
			if (rc != 0)
				err = -rc;
		}
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd < 0)
		return gn_error_set(-err, "tcp: cannot connect to %s: %s", addr,
				    strerror(err));
	c = conn_new(fd, &opts->limits);
	if (c == NULL) {
		close(fd);
		return gn_error_set(-ENOMEM, "tcp: no memory for a connection");
	}
	*out = &c->base;
	return 0;
}

static int tcp_send(struct gn_conn *gc, const uint8_t *env, size_t env_len,
		    const struct iovec *payload, int iovcnt, int timeout_ms)
{
	struct tcp_conn *c = (struct tcp_conn *)gc;
	uint64_t deadline = gn_stream_deadline(timeout_ms);
	uint8_t hdr[GN_FRAME_HDR_SIZE];
	struct iovec iov[2 + GN_STREAM_MAX_PIECES];
	uint64_t payload_len, total;
	int n = 0, rc;

	rc = gn_stream_frame_hdr(gc, env_len, payload, iovcnt, hdr,
				 &payload_len);
	if (rc != 0)
		return rc;
	iov[n++] = (struct iovec){hdr, sizeof(hdr)};
	iov[n++] = (struct iovec){(void *)env, env_len};
	for (int i = 0; i < iovcnt; i++)
		if (payload[i].iov_len)
			iov[n++] = payload[i];
	total = sizeof(hdr) + env_len + payload_len;

	/* Write until every piece is gone, trimming what went out. */
	struct iovec *cur = iov;
	while (n > 0) {
		struct msghdr mh = {.msg_iov = cur, .msg_iovlen = (size_t)n};
		ssize_t w = sendmsg(c->fd, &mh, MSG_NOSIGNAL);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				return gn_error_set(errno == EPIPE ? -ECONNRESET
								   : -errno,
						    "tcp: send to %s: %s",
						    gc->peer, strerror(errno));
			rc = gn_stream_wait_fd(c->fd, POLLOUT, deadline);
			if (rc != 0)
				return gn_error_set(rc, "tcp: send to %s: %s",
						    gc->peer, strerror(-rc));
			continue;
		}
		while (n > 0 && (size_t)w >= cur->iov_len) {
			w -= (ssize_t)cur->iov_len;
			cur++;
			n--;
		}
		if (n > 0) {
			cur->iov_base = (uint8_t *)cur->iov_base + w;
			cur->iov_len -= (size_t)w;
		}
	}
	gc->stats.bytes_sent += total;
	gc->stats.msgs_sent++;
	return 0;
}

/* Read exactly `len` bytes (gn_stream_read_fn). */
static int read_full(struct gn_conn *gc, uint8_t *buf, size_t len,
		     uint64_t deadline, size_t *got)
{
	struct tcp_conn *c = (struct tcp_conn *)gc;
	int rc;

	*got = 0;
	while (*got < len) {
		ssize_t r = recv(c->fd, buf + *got, len - *got, 0);

		if (r > 0) {
			*got += (size_t)r;
			continue;
		}
		if (r == 0)
			return -ECONNRESET;
		if (errno == EINTR)
			continue;
		if (errno == ECONNRESET)
			return -ECONNRESET;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return gn_error_set(-errno, "tcp: receive from %s: %s",
					    gc->peer, strerror(errno));
		rc = gn_stream_wait_fd(c->fd, POLLIN, deadline);
		if (rc != 0)
			return gn_error_set(rc, "tcp: receive from %s: %s",
					    gc->peer, strerror(-rc));
	}
	return 0;
}

static int tcp_recv(struct gn_conn *gc, struct gn_msg *msg, int timeout_ms)
{
	return gn_stream_recv(gc, read_full, gn_stream_deadline(timeout_ms),
			      msg);
}

static int tcp_conn_fd(const struct gn_conn *gc)
{
	return ((const struct tcp_conn *)gc)->fd;
}

static void tcp_close(struct gn_conn *gc)
{
	struct tcp_conn *c = (struct tcp_conn *)gc;

	close(c->fd);
	free(c);
}

static const struct gn_transport_ops tcp_ops = {
	.name = "tcp",
	.listen = tcp_listen,
	.accept = tcp_accept,
	.listener_fd = tcp_listener_fd,
	.listener_close = tcp_listener_close,
	.connect = tcp_connect,
	.send = tcp_send,
	.recv = tcp_recv,
	.conn_fd = tcp_conn_fd,
	.close = tcp_close,
};

GN_TRANSPORT_REGISTER(tcp_ops)
