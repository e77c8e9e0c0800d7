/*
 * The verbs transport: Genie messages over an RDMA reliable connected
 * queue pair (rdma-core libibverbs), behind the same interface as TCP
 * (common/transport.h). Target strings:
 *
 *   verbs://HOST:PORT                     the first device with an
 *                                         ACTIVE port
 *   verbs://HOST:PORT?dev=mlx5_0          that device
 *   verbs://HOST:PORT?dev=mlx5_0&port=2&gid=3
 *                                         and that port / GID index
 *
 * HOST:PORT is a TCP address: the listener binds it (port 0 picks one and
 * the listener's addr names the real one) and a connector connects to it.
 * Over that socket both ends exchange a 64-byte setup record, little
 * endian:
 *
 *   magic u32 "GNVS" | version u16 | path MTU u8 (enum ibv_mtu) |
 *   link layer u8 | LID u16 | 0 u16 | QPN u32 | PSN u32 |
 *   receive buffers u32 | receive buffer size u32 | 0 u32 | GID 16 bytes |
 *   16 bytes of 0
 *
 * each checks the other's, moves its RC QP INIT -> RTR -> RTS, and they
 * trade a "ready" record so neither SENDs before the other's QP is up.
 * After that the socket carries nothing: it stays open only so that each
 * end notices the other's death (EOF), and so that shutdown(conn_fd)
 * wakes a blocked recv as for TCP. On RoCE the GID is the first RoCE v2
 * entry of the port's table (index 0 when there is none, or as `gid=`
 * says); on InfiniBand the LID addresses the peer.
 *
 * The listener does the setup lazily, at the connection's first send or
 * recv (as the TLS transport does its handshake), so a slow client never
 * holds up accept(); a connector does it inside connect().
 *
 * Everything above the queue pair (credits, eager SENDs, rendezvous over
 * RDMA WRITE, pinned-host staging, the checks on what the peer sends)
 * lives in verbs_proto*.c and is unit-tested against a fake queue pair;
 * device choice and connection setup live in verbs_setup.c; this file
 * holds the transport ops and maps the engine's operations onto
 * ibv_post_send/recv, ibv_poll_cq, ibv_reg_mr and a completion channel. A
 * waiting thread arms the CQ, re-polls it (the engine does), then sleeps in
 * epoll on the channel's fd and the socket.
 *
 * conn_fd is the TCP socket, not an epoll fd over the channel and the
 * socket: every caller in the tree uses conn_fd to shutdown() a blocked
 * recv (the runtime's drain, the coordinator), which fails with ENOTSOCK
 * on an epoll fd. It therefore polls readable when the peer dies or the
 * connection is shut down, not when a message arrives.
 *
 * With no RDMA device, listen and connect fail with -ENODEV and a message
 * saying so; the process keeps running.
 *
 * Unverified: no RDMA device was available where this was written (no
 * soft-RoCE either), so this file has only been compiled and run down the
 * no-device path. The QP state transitions, GID choice, completion
 * channel handling and ibv_wc mapping follow rdma-core's documentation
 * and examples (rc_pingpong) but have not run against a NIC.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "gn_error.h"
#include "gpu_mem.h"
#include "verbs_transport_internal.h"

struct verbs_listener {
	struct gn_listener base;
	struct gn_listener *tcp;
	struct gn_verbs_target t;
};

static const struct gn_transport_ops verbs_ops;

/* ---- the engine's queue pair operations --------------------------------- */

static int v_post_send(void *ctx, uint64_t wr_id, const void *buf, uint32_t len,
		       void *mr)
{
	struct gn_verbs_conn *c = ctx;
	struct ibv_sge sge = {(uintptr_t)buf, len, ((struct ibv_mr *)mr)->lkey};
	struct ibv_send_wr wr = {.wr_id = wr_id,
				 .sg_list = &sge,
				 .num_sge = 1,
				 .opcode = IBV_WR_SEND,
				 .send_flags = IBV_SEND_SIGNALED},
			   *bad;

	return -ibv_post_send(c->qp, &wr, &bad);
}

static int v_post_write(void *ctx, uint64_t wr_id, const void *buf,
			uint32_t len, void *mr, uint64_t raddr, uint32_t rkey,
			bool with_imm, uint32_t imm)
{
	struct gn_verbs_conn *c = ctx;
	struct ibv_sge sge = {(uintptr_t)buf, len, ((struct ibv_mr *)mr)->lkey};
	struct ibv_send_wr wr = {.wr_id = wr_id,
				 .sg_list = &sge,
				 .num_sge = 1,
				 .opcode = with_imm ? IBV_WR_RDMA_WRITE_WITH_IMM
						    : IBV_WR_RDMA_WRITE,
				 .send_flags = IBV_SEND_SIGNALED},
			   *bad;

	wr.imm_data = htonl(imm);
	wr.wr.rdma.remote_addr = raddr;
	wr.wr.rdma.rkey = rkey;
	return -ibv_post_send(c->qp, &wr, &bad);
}

static int v_post_recv(void *ctx, uint64_t wr_id, void *buf, uint32_t len,
		       void *mr)
{
	struct gn_verbs_conn *c = ctx;
	struct ibv_sge sge = {(uintptr_t)buf, len, ((struct ibv_mr *)mr)->lkey};
	struct ibv_recv_wr wr = {.wr_id = wr_id, .sg_list = &sge, .num_sge = 1},
			   *bad;

	return -ibv_post_recv(c->qp, &wr, &bad);
}

static int v_poll(void *ctx, struct gn_vp_wc *out, int max)
{
	struct gn_verbs_conn *c = ctx;
	struct ibv_wc wc[16];
	int n = ibv_poll_cq(c->cq, max < 16 ? max : 16, wc);

	if (n < 0)
		return -EIO;
	for (int i = 0; i < n; i++) {
		out[i] = (struct gn_vp_wc){
			.wr_id = wc[i].wr_id,
			.status = wc[i].status,
			.status_str = ibv_wc_status_str(wc[i].status),
			.byte_len = wc[i].byte_len,
		};
		switch (wc[i].opcode) {
		case IBV_WC_SEND: out[i].op = GN_VP_WC_SEND; break;
		case IBV_WC_RDMA_WRITE: out[i].op = GN_VP_WC_WRITE; break;
		case IBV_WC_RECV_RDMA_WITH_IMM:
			out[i].op = GN_VP_WC_RECV_IMM;
			out[i].imm = ntohl(wc[i].imm_data);
			break;
		default: out[i].op = GN_VP_WC_RECV; break;
		}
	}
	return n;
}

/*
 * GPU memory: a dma-buf memory region (GPUDirect RDMA through the CUDA
 * driver's dma-buf export, rdma-core 34+ and a kernel with dma-buf MRs),
 * else plain ibv_reg_mr, which reaches GPU memory only where
 * nvidia_peermem is loaded. Failing both, the engine stages the piece
 * through its pinned-host ring (v_copy_in copies it off the GPU).
 */
static struct ibv_mr *reg_gpu(struct gn_verbs_conn *c, void *addr, size_t len,
			      int flags)
{
	struct ibv_mr *m = NULL;
	const char *how = "dma-buf";
	char why[160] = "rdma-core without dma-buf memory regions";
	int err = EOPNOTSUPP;
#ifdef GN_HAVE_DMABUF_MR
	uint64_t off;
	int fd;

	if (gn_gpu_dmabuf(addr, len, &fd, &off) == 0) {
		m = ibv_reg_dmabuf_mr(c->pd, off, len,
				      (uint64_t)(uintptr_t)addr, fd, flags);
		err = errno;
		close(fd); /* the region holds its own reference */
		snprintf(why, sizeof(why), "ibv_reg_dmabuf_mr: %s",
			 strerror(err));
	} else {
		snprintf(why, sizeof(why), "%s", gn_last_error());
	}
#endif
	if (m == NULL && access("/sys/module/nvidia_peermem", F_OK) == 0) {
		how = "nvidia_peermem";
		m = ibv_reg_mr(c->pd, addr, len, flags);
		err = errno;
		snprintf(why + strlen(why), sizeof(why) - strlen(why),
			 "; with nvidia_peermem: %s", strerror(err));
	}
	if (m == NULL) {
		if (!c->said_gpu_staged)
			GN_LOG(INFO, verbs,
			       "%s: GPU memory cannot be registered with %s "
			       "(%s): GPU payloads go through the pinned-host "
			       "staging ring",
			       c->base.peer,
			       ibv_get_device_name(c->ctx->device), why);
		c->said_gpu_staged = true;
		errno = err;
	} else if (!c->said_gpu_direct) {
		GN_LOG(INFO, verbs,
		       "%s: GPU memory registered through %s: GPUDirect RDMA",
		       c->base.peer, how);
		c->said_gpu_direct = true;
	}
	return m;
}

static int v_reg_mr(void *ctx, void *addr, size_t len, unsigned access,
		    void **mr, uint32_t *rkey)
{
	struct gn_verbs_conn *c = ctx;
	int flags = 0;
	struct ibv_mr *m;

	if (access & GN_VP_ACCESS_LOCAL_WRITE)
		flags |= IBV_ACCESS_LOCAL_WRITE;
	if (access & GN_VP_ACCESS_REMOTE_WRITE)
		flags |= IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE;
	errno = 0;
	if (gn_mem_kind_of(addr) == GN_MEM_CUDA)
		m = reg_gpu(c, addr, len, flags);
	else
		m = ibv_reg_mr(c->pd, addr, len, flags);
	if (m == NULL)
		return errno ? -errno : -ENOMEM;
	*mr = m;
	*rkey = m->rkey;
	return 0;
}

static int v_copy_in(void *ctx, void *dst, const void *src, size_t len)
{
	(void)ctx;
	if (gn_mem_kind_of(src) == GN_MEM_CUDA)
		return gn_gpu_copy_to_host(dst, src, len);
	memcpy(dst, src, len);
	return 0;
}

static void v_dereg_mr(void *ctx, void *mr)
{
	(void)ctx;
	ibv_dereg_mr(mr);
}

static int v_arm(void *ctx)
{
	struct gn_verbs_conn *c = ctx;

	return -ibv_req_notify_cq(c->cq, 0);
}

static int v_wait(void *ctx, uint64_t deadline)
{
	struct gn_verbs_conn *c = ctx;
	struct epoll_event ev[2];
	int ms = deadline == UINT64_MAX ? -1 : gn_clock_ms_until(deadline);
	int n = epoll_wait(c->epfd, ev, 2, ms);

	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	if (n == 0)
		return -ETIMEDOUT;
	for (int i = 0; i < n; i++) {
		if (ev[i].data.fd == c->ch->fd) {
			struct ibv_cq *cq;
			void *cq_ctx;

			while (ibv_get_cq_event(c->ch, &cq, &cq_ctx) == 0)
				c->unacked++;
			if (c->unacked >= CQ_ACK_BATCH) {
				ibv_ack_cq_events(c->cq, c->unacked);
				c->unacked = 0;
			}
		} else {
			char b;
			ssize_t r = recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);

			if (r == 0 || (r < 0 && errno != EAGAIN &&
				       errno != EWOULDBLOCK && errno != EINTR))
				return gn_error_set(
					-ECONNRESET,
					"verbs: %s: the peer closed the "
					"connection (or it was shut down)",
					c->base.peer);
			if (r > 0)
				return gn_error_set(
					-EPROTO,
					"verbs: %s: unexpected bytes "
					"on the control socket "
					"after setup",
					c->base.peer);
		}
	}
	return 0;
}

static void v_qp_error(void *ctx)
{
	struct gn_verbs_conn *c = ctx;
	struct ibv_qp_attr a = {.qp_state = IBV_QPS_ERR};

	if (ibv_modify_qp(c->qp, &a, IBV_QP_STATE) != 0)
		GN_LOG(WARNING, verbs, "%s: cannot move the QP to ERR: %s",
		       c->base.peer, strerror(errno));
}

const struct gn_vp_ops gn_verbs_qp_ops = {
	.post_send = v_post_send,
	.post_write = v_post_write,
	.post_recv = v_post_recv,
	.poll = v_poll,
	.reg_mr = v_reg_mr,
	.dereg_mr = v_dereg_mr,
	.arm = v_arm,
	.wait = v_wait,
	.qp_error = v_qp_error,
	.copy_in = v_copy_in,
};

/* ---- connections -------------------------------------------------------- */

static void conn_free(struct gn_verbs_conn *c)
{
	gn_vp_conn_destroy(&c->vp); /* drains before anything goes */
	if (c->qp != NULL)
		ibv_destroy_qp(c->qp);
	if (c->cq != NULL) {
		ibv_ack_cq_events(c->cq, c->unacked);
		ibv_destroy_cq(c->cq);
	}
	if (c->ch != NULL)
		ibv_destroy_comp_channel(c->ch);
	if (c->pd != NULL)
		ibv_dealloc_pd(c->pd);
	if (c->ctx != NULL)
		ibv_close_device(c->ctx);
	if (c->epfd > 0)
		close(c->epfd);
	gn_conn_close(&c->tcp);
	free(c);
}

/* Wrap a connected socket; takes `tcp` (closed on failure). */
static struct gn_verbs_conn *
conn_new(struct gn_conn *tcp, const struct gn_verbs_target *t, bool server)
{
	struct gn_verbs_conn *c = calloc(1, sizeof(*c));

	if (c == NULL) {
		gn_conn_close(&tcp);
		gn_error_set(-ENOMEM, "verbs: no memory for a connection");
		return NULL;
	}
	c->base.ops = &verbs_ops;
	c->base.limits = tcp->limits;
	snprintf(c->base.peer, sizeof(c->base.peer), "%s", tcp->peer);
	c->tcp = tcp;
	c->fd = tcp->ops->conn_fd(tcp);
	c->epfd = -1;
	c->server = server;
	c->t = *t;
	return c;
}

/* The listener's side sets up at the first send or recv. */
static int ready(struct gn_verbs_conn *c, int timeout_ms)
{
	uint64_t now = gn_clock_ns(), deadline;
	int rc;

	if (c->vp != NULL && c->err == 0)
		return 0;
	if (c->err != 0)
		return gn_error_set(c->err, "%s", c->why);
	deadline = now + (uint64_t)SETUP_MS * 1000000;
	if (timeout_ms >= 0 && timeout_ms < SETUP_MS)
		deadline = now + (uint64_t)timeout_ms * 1000000;
	rc = gn_verbs_setup(c, deadline);
	if (rc != 0) {
		c->err = rc;
		snprintf(c->why, sizeof(c->why), "%s", gn_last_error());
		GN_LOG(WARNING, verbs, "%s", c->why);
		gn_vp_conn_destroy(&c->vp);
	}
	return rc;
}

static int verbs_listen(const char *rest, const struct gn_transport_opts *opts,
			struct gn_listener **out)
{
	struct verbs_listener *l;
	struct gn_verbs_conn probe = {0};
	char url[160];
	int rc;

	l = calloc(1, sizeof(*l));
	if (l == NULL)
		return gn_error_set(-ENOMEM, "verbs: no memory");
	rc = gn_verbs_parse_target(rest, &l->t);
	if (rc == 0) {
		/* Refuse at once on a host that cannot serve verbs://. */
		probe.t = l->t;
		rc = gn_verbs_open_device(&probe);
		if (probe.ctx != NULL)
			ibv_close_device(probe.ctx);
	}
	if (rc == 0) {
		snprintf(url, sizeof(url), "tcp://%s", l->t.addr);
		rc = gn_listen(url, opts, &l->tcp);
	}
	if (rc != 0) {
		free(l);
		return rc;
	}
	l->base.ops = &verbs_ops;
	l->base.opts = *opts;
	snprintf(l->base.addr, sizeof(l->base.addr), "%s", l->tcp->addr);
	GN_LOG(INFO, verbs, "listening on %s%s%s", l->base.addr,
	       l->t.dev[0] ? ", device " : "", l->t.dev);
	*out = &l->base;
	return 0;
}

static int verbs_accept(struct gn_listener *gl, int timeout_ms,
			struct gn_conn **out)
{
	struct verbs_listener *l = (struct verbs_listener *)gl;
	struct gn_conn *tcp = NULL;
	struct gn_verbs_conn *c;
	int rc = l->tcp->ops->accept(l->tcp, timeout_ms, &tcp);

	if (rc != 0)
		return rc;
	c = conn_new(tcp, &l->t, true);
	if (c == NULL)
		return gn_last_error_code();
	*out = &c->base;
	return 0;
}

static int verbs_listener_fd(const struct gn_listener *gl)
{
	const struct verbs_listener *l = (const struct verbs_listener *)gl;

	return l->tcp->ops->listener_fd(l->tcp);
}

static void verbs_listener_close(struct gn_listener *gl)
{
	struct verbs_listener *l = (struct verbs_listener *)gl;

	gn_listener_close(&l->tcp);
	free(l);
}

static int verbs_connect(const char *rest, const struct gn_transport_opts *opts,
			 int timeout_ms, struct gn_conn **out)
{
	uint64_t deadline = gn_stream_deadline(timeout_ms);
	struct gn_verbs_conn probe = {0};
	struct gn_conn *tcp = NULL;
	struct gn_verbs_conn *c;
	char url[160];
	int rc;

	rc = gn_verbs_parse_target(rest, &probe.t);
	if (rc == 0)
		rc = gn_verbs_open_device(
			&probe); /* no device: fail before dialling */
	if (rc != 0)
		return rc;
	snprintf(url, sizeof(url), "tcp://%s", probe.t.addr);
	rc = gn_connect(url, opts, timeout_ms, &tcp);
	if (rc != 0) {
		ibv_close_device(probe.ctx);
		return rc;
	}
	c = conn_new(tcp, &probe.t, false);
	if (c == NULL) {
		ibv_close_device(probe.ctx);
		return gn_last_error_code();
	}
	c->ctx = probe.ctx;
	c->port = probe.port;
	c->pa = probe.pa;
	rc = gn_verbs_setup(c, deadline);
	if (rc != 0) {
		char why[320];

		snprintf(why, sizeof(why), "%s", gn_last_error());
		conn_free(c);
		return gn_error_set(rc, "%s", why);
	}
	*out = &c->base;
	return 0;
}

static int verbs_send(struct gn_conn *gc, const uint8_t *env, size_t env_len,
		      const struct iovec *payload, int iovcnt, int timeout_ms)
{
	struct gn_verbs_conn *c = (struct gn_verbs_conn *)gc;
	int rc = ready(c, timeout_ms);

	if (rc == 0)
		rc = gn_vp_send(c->vp, env, env_len, payload, iovcnt,
				timeout_ms);
	if (rc == 0) {
		gc->stats.bytes_sent += GN_FRAME_HDR_SIZE + env_len;
		for (int i = 0; i < iovcnt; i++)
			gc->stats.bytes_sent += payload[i].iov_len;
		gc->stats.msgs_sent++;
	}
	return rc;
}

static int verbs_recv(struct gn_conn *gc, struct gn_msg *msg, int timeout_ms)
{
	struct gn_verbs_conn *c = (struct gn_verbs_conn *)gc;
	int rc = ready(c, timeout_ms);

	memset(msg, 0, sizeof(*msg));
	if (rc == 0)
		rc = gn_vp_recv(c->vp, msg, timeout_ms);
	if (rc == 0) {
		gc->stats.bytes_received +=
			GN_FRAME_HDR_SIZE + msg->env_len + msg->payload_len;
		gc->stats.msgs_received++;
	}
	return rc;
}

static int verbs_conn_fd(const struct gn_conn *gc)
{
	return ((const struct gn_verbs_conn *)gc)->fd;
}

static void verbs_close(struct gn_conn *gc)
{
	conn_free((struct gn_verbs_conn *)gc);
}

static const struct gn_transport_ops verbs_ops = {
	.name = "verbs",
	.caps = GN_TRANSPORT_CAP_GPU_MEMORY,
	.listen = verbs_listen,
	.accept = verbs_accept,
	.listener_fd = verbs_listener_fd,
	.listener_close = verbs_listener_close,
	.connect = verbs_connect,
	.send = verbs_send,
	.recv = verbs_recv,
	.conn_fd = verbs_conn_fd,
	.close = verbs_close,
};

GN_TRANSPORT_REGISTER(verbs_ops)
