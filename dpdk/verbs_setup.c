/*
 * The verbs transport's device choice and connection setup (see
 * transport_verbs.c for targets, the setup record and why): which device,
 * port and GID; protection domain, completion channel, CQ and RC queue
 * pair; the record traded over the TCP socket; INIT -> RTR -> RTS.
 *
 * Unverified on hardware, like the rest of the verbs glue: only the
 * no-device path has run.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "clock.h"
#include "gn_error.h"
#include "verbs_transport_internal.h"

/* ---- targets and devices ------------------------------------------------ */

int gn_verbs_parse_target(const char *rest, struct gn_verbs_target *t)
{
	const char *q = strchr(rest, '?');
	size_t alen = q ? (size_t)(q - rest) : strlen(rest);
	char opts[256], *save = NULL, *kv;

	memset(t, 0, sizeof(*t));
	t->gid = -1;
	if (alen == 0 || alen >= sizeof(t->addr))
		return gn_error_set(-EINVAL,
				    "verbs: '%s': expected "
				    "verbs://HOST:PORT[?dev=NAME&port=N&gid=N]",
				    rest);
	memcpy(t->addr, rest, alen);
	if (q == NULL)
		return 0;
	snprintf(opts, sizeof(opts), "%s", q + 1);
	for (kv = strtok_r(opts, "&", &save); kv != NULL;
	     kv = strtok_r(NULL, "&", &save)) {
		char *eq = strchr(kv, '='), *end = NULL;
		long v = 0;

		if (eq != NULL) {
			*eq++ = '\0';
			v = strtol(eq, &end, 10);
		}
		if (eq != NULL && strcmp(kv, "dev") == 0 && *eq &&
		    strlen(eq) < sizeof(t->dev))
			snprintf(t->dev, sizeof(t->dev), "%s", eq);
		else if (eq != NULL && strcmp(kv, "port") == 0 && *eq &&
			 *end == '\0' && v >= 1 && v <= 255)
			t->port = (int)v;
		else if (eq != NULL && strcmp(kv, "gid") == 0 && *eq &&
			 *end == '\0' && v >= 0 && v <= 65535)
			t->gid = (int)v;
		else
			return gn_error_set(-EINVAL,
					    "verbs: bad option '%s%s%s' in "
					    "'%s': expected dev=NAME, "
					    "port=1..255 or gid=INDEX",
					    kv, eq ? "=" : "", eq ? eq : "",
					    rest);
	}
	return 0;
}

static int no_device(int err)
{
	if (err != 0)
		return gn_error_set(-ENODEV,
				    "verbs: no RDMA device on this host "
				    "(ibv_get_device_list found none: %s); use "
				    "tcp:// or dpdk://",
				    strerror(err));
	return gn_error_set(-ENODEV,
			    "verbs: no RDMA device on this host "
			    "(ibv_get_device_list found none); use tcp:// or "
			    "dpdk://");
}

/* The port of ctx to use: the asked one or the first ACTIVE one; 0: none */
static uint8_t pick_port(struct ibv_context *ctx,
			 const struct gn_verbs_target *t,
			 struct ibv_port_attr *pa)
{
	struct ibv_device_attr da;

	if (ibv_query_device(ctx, &da) != 0)
		return 0;
	for (int p = 1; p <= da.phys_port_cnt; p++)
		if ((t->port == 0 || t->port == p) &&
		    ibv_query_port(ctx, (uint8_t)p, pa) == 0 &&
		    pa->state == IBV_PORT_ACTIVE)
			return (uint8_t)p;
	return 0;
}

/* Open the device and port the target asks for (see the top). */
int gn_verbs_open_device(struct gn_verbs_conn *c)
{
	const struct gn_verbs_target *t = &c->t;
	char seen[256] = "";
	struct ibv_device **list;
	int n = 0, rc = 0;

	errno = 0;
	list = ibv_get_device_list(&n);
	if (list == NULL || n == 0) {
		int err = list == NULL ? errno : 0;

		if (list != NULL)
			ibv_free_device_list(list);
		return no_device(err);
	}
	for (int i = 0; i < n && c->ctx == NULL; i++) {
		const char *name = ibv_get_device_name(list[i]);
		struct ibv_context *ctx;

		snprintf(seen + strlen(seen), sizeof(seen) - strlen(seen),
			 "%s%s", seen[0] ? ", " : "", name);
		if (t->dev[0] && strcmp(t->dev, name) != 0)
			continue;
		ctx = ibv_open_device(list[i]);
		if (ctx == NULL)
			continue;
		c->port = pick_port(ctx, t, &c->pa);
		if (c->port != 0)
			c->ctx = ctx;
		else
			ibv_close_device(ctx);
	}
	ibv_free_device_list(list);
	if (c->ctx != NULL)
		return 0;
	if (t->dev[0] && strstr(seen, t->dev) == NULL)
		rc = gn_error_set(-ENODEV,
				  "verbs: no RDMA device named '%s' (found: "
				  "%s)",
				  t->dev, seen);
	else
		rc = gn_error_set(-ENETDOWN,
				  "verbs: no ACTIVE port%s on RDMA device %s "
				  "(found: %s); see ibv_devinfo",
				  t->port ? " of the one asked for" : "",
				  t->dev[0] ? t->dev : "(any)", seen);
	return rc;
}

/* RoCE needs a GID index: the first RoCE v2 entry, else 0. */
static int pick_gid(struct gn_verbs_conn *c)
{
	int idx = c->t.gid;

	if (idx < 0) {
		idx = 0;
		for (int i = 0; c->pa.link_layer == IBV_LINK_LAYER_ETHERNET &&
				i < c->pa.gid_tbl_len;
		     i++) {
			struct ibv_gid_entry e;

			if (ibv_query_gid_ex(c->ctx, c->port, (uint32_t)i, &e,
					     0) == 0 &&
			    e.gid_type == IBV_GID_TYPE_ROCE_V2) {
				idx = i;
				break;
			}
		}
	}
	if (ibv_query_gid(c->ctx, c->port, idx, &c->gid) != 0)
		return gn_error_set(-EINVAL,
				    "verbs: %s port %u has no GID at index %d "
				    "(its table holds %d)",
				    ibv_get_device_name(c->ctx->device),
				    c->port, idx, c->pa.gid_tbl_len);
	c->gid_index = idx;
	return 0;
}

/* ---- setup -------------------------------------------------------------- */

struct setup_rec {
	uint32_t magic;
	uint16_t version;
	uint8_t mtu, link_layer;
	uint16_t lid;
	uint32_t qpn, psn, nrecv, buf_size;
	uint8_t gid[16];
};

static void wr32(uint8_t *b, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		b[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t rd32(const uint8_t *b)
{
	return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
	       (uint32_t)b[3] << 24;
}

/* The record's layout is at the top of this file. */
static void setup_encode(const struct setup_rec *s, uint8_t b[SETUP_SIZE])
{
	memset(b, 0, SETUP_SIZE);
	wr32(b, s->magic);
	wr32(b + 4, s->version | (uint32_t)s->mtu << 16 |
			    (uint32_t)s->link_layer << 24);
	wr32(b + 8, s->lid);
	wr32(b + 12, s->qpn);
	wr32(b + 16, s->psn);
	wr32(b + 20, s->nrecv);
	wr32(b + 24, s->buf_size);
	memcpy(b + 32, s->gid, 16);
}

static void setup_decode(const uint8_t b[SETUP_SIZE], struct setup_rec *s)
{
	s->magic = rd32(b);
	s->version = (uint16_t)rd32(b + 4);
	s->mtu = b[6];
	s->link_layer = b[7];
	s->lid = (uint16_t)rd32(b + 8);
	s->qpn = rd32(b + 12);
	s->psn = rd32(b + 16);
	s->nrecv = rd32(b + 20);
	s->buf_size = rd32(b + 24);
	memcpy(s->gid, b + 32, 16);
}

static int remaining_ms(uint64_t deadline)
{
	return deadline == UINT64_MAX ? -1 : gn_clock_ms_until(deadline);
}

/* Trade `len` bytes with the peer over the socket: connector first. */
static int trade(struct gn_verbs_conn *c, const uint8_t *mine, uint8_t *theirs,
		 size_t len, uint64_t deadline)
{
	struct gn_msg m;
	int rc = 0;

	if (!c->server)
		rc = gn_conn_send(c->tcp, mine, len, NULL, 0,
				  remaining_ms(deadline));
	if (rc == 0)
		rc = gn_conn_recv(c->tcp, &m, remaining_ms(deadline));
	if (rc != 0)
		return gn_error_set(rc, "verbs: setup with %s: %s",
				    c->base.peer, gn_last_error());
	if (m.env_len != len || m.payload_len != 0) {
		gn_msg_release(&m);
		return gn_error_set(-EPROTO,
				    "verbs: setup with %s: a %zu + %zu byte "
				    "record, expected %zu + 0 (is the peer "
				    "speaking verbs://?)",
				    c->base.peer, m.env_len, m.payload_len,
				    len);
	}
	memcpy(theirs, m.env, len);
	gn_msg_release(&m);
	if (c->server)
		rc = gn_conn_send(c->tcp, mine, len, NULL, 0,
				  remaining_ms(deadline));
	if (rc != 0)
		return gn_error_set(rc, "verbs: setup with %s: %s",
				    c->base.peer, gn_last_error());
	return 0;
}

static int check_peer(const struct gn_verbs_conn *c, const struct setup_rec *p)
{
	if (p->magic != SETUP_MAGIC || p->version != SETUP_VERSION)
		return gn_error_set(
			-EPROTO,
			"verbs: setup from %s: magic 0x%08x version "
			"%u, expected 0x%08x version %u",
			c->base.peer, p->magic, p->version, SETUP_MAGIC,
			SETUP_VERSION);
	if (p->link_layer != c->pa.link_layer)
		return gn_error_set(-EPROTO,
				    "verbs: setup from %s: its port's link "
				    "layer is %u, ours %u (InfiniBand and RoCE "
				    "do not mix)",
				    c->base.peer, p->link_layer,
				    c->pa.link_layer);
	if (p->qpn == 0 || p->qpn > 0xffffff || p->psn > 0xffffff ||
	    p->mtu < IBV_MTU_256 || p->mtu > IBV_MTU_4096)
		return gn_error_set(-EPROTO,
				    "verbs: setup from %s: QPN %u, PSN %u, MTU "
				    "code %u; expected 24-bit QPN and PSN and "
				    "an MTU code of %d..%d",
				    c->base.peer, p->qpn, p->psn, p->mtu,
				    IBV_MTU_256, IBV_MTU_4096);
	return 0; /* receive counts and sizes: gn_vp_conn_create checks */
}

static int qp_up(struct gn_verbs_conn *c, const struct setup_rec *p,
		 uint32_t psn)
{
	struct ibv_qp_attr a = {0};
	int rc;

	a.qp_state = IBV_QPS_RTR;
	a.path_mtu = p->mtu < c->pa.active_mtu ? (enum ibv_mtu)p->mtu
					       : c->pa.active_mtu;
	a.dest_qp_num = p->qpn;
	a.rq_psn = p->psn;
	a.max_dest_rd_atomic = 1;
	a.min_rnr_timer = 12;
	a.ah_attr.dlid = p->lid;
	a.ah_attr.port_num = c->port;
	if (c->pa.link_layer == IBV_LINK_LAYER_ETHERNET) {
		a.ah_attr.is_global = 1;
		memcpy(a.ah_attr.grh.dgid.raw, p->gid, 16);
		a.ah_attr.grh.sgid_index = (uint8_t)c->gid_index;
		a.ah_attr.grh.hop_limit = 64;
	}
	rc = ibv_modify_qp(c->qp, &a,
			   IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU |
				   IBV_QP_DEST_QPN | IBV_QP_RQ_PSN |
				   IBV_QP_MAX_DEST_RD_ATOMIC |
				   IBV_QP_MIN_RNR_TIMER);
	if (rc != 0)
		return gn_error_set(-rc,
				    "verbs: QP to RTR (peer %s, QPN %u, GID "
				    "index %d) failed: %s",
				    c->base.peer, p->qpn, c->gid_index,
				    strerror(rc));
	memset(&a, 0, sizeof(a));
	a.qp_state = IBV_QPS_RTS;
	/*
	 * Never retry forever: 7 transport retries of ~67 ms (4.096 us x
	 * 2^14) each, and 6 RNR retries (7 would mean without end). Credits
	 * keep a well-behaved peer from ever answering RNR; one that stops
	 * posting receives fails the connection instead of stalling it.
	 */
	a.timeout = 14;
	a.retry_cnt = 7;
	a.rnr_retry = 6;
	a.sq_psn = psn;
	a.max_rd_atomic = 1;
	rc = ibv_modify_qp(c->qp, &a,
			   IBV_QP_STATE | IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT |
				   IBV_QP_RNR_RETRY | IBV_QP_SQ_PSN |
				   IBV_QP_MAX_QP_RD_ATOMIC);
	if (rc != 0)
		return gn_error_set(-rc, "verbs: QP to RTS failed: %s",
				    strerror(rc));
	return 0;
}

/* Make the PD, channel, CQ and a QP in INIT, and the epoll set. */
static int qp_create(struct gn_verbs_conn *c)
{
	struct ibv_qp_init_attr ia = {0};
	struct ibv_qp_attr a = {0};
	struct gn_vp_params p;
	struct epoll_event ev = {.events = EPOLLIN};
	const char *what;

	gn_vp_params_init(&p);
	what = "a protection domain";
	if ((c->pd = ibv_alloc_pd(c->ctx)) == NULL)
		goto fail;
	what = "a completion channel";
	if ((c->ch = ibv_create_comp_channel(c->ctx)) == NULL ||
	    fcntl(c->ch->fd, F_SETFL, fcntl(c->ch->fd, F_GETFL) | O_NONBLOCK) <
		    0)
		goto fail;
	what = "a completion queue";
	c->cq = ibv_create_cq(c->ctx, (int)(SQ_DEPTH + p.nrecv + 16), c, c->ch,
			      0);
	if (c->cq == NULL)
		goto fail;
	ia.send_cq = ia.recv_cq = c->cq;
	ia.qp_type = IBV_QPT_RC;
	ia.sq_sig_all = 1;
	ia.cap.max_send_wr = SQ_DEPTH;
	ia.cap.max_recv_wr = p.nrecv;
	ia.cap.max_send_sge = ia.cap.max_recv_sge = 1;
	what = "an RC queue pair";
	if ((c->qp = ibv_create_qp(c->pd, &ia)) == NULL)
		goto fail;
	a.qp_state = IBV_QPS_INIT;
	a.port_num = c->port;
	a.qp_access_flags = IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE;
	what = "the queue pair in INIT";
	errno = ibv_modify_qp(c->qp, &a,
			      IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT |
				      IBV_QP_ACCESS_FLAGS);
	if (errno != 0)
		goto fail;
	what = "an epoll set";
	c->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (c->epfd < 0)
		goto fail;
	ev.data.fd = c->ch->fd;
	if (epoll_ctl(c->epfd, EPOLL_CTL_ADD, c->ch->fd, &ev) != 0)
		goto fail;
	ev.data.fd = c->fd;
	if (epoll_ctl(c->epfd, EPOLL_CTL_ADD, c->fd, &ev) != 0)
		goto fail;
	return 0;

fail:
	return gn_error_set(errno ? -errno : -ENOMEM,
			    "verbs: cannot make %s on %s: %s", what,
			    ibv_get_device_name(c->ctx->device),
			    strerror(errno ? errno : ENOMEM));
}

int gn_verbs_setup(struct gn_verbs_conn *c, uint64_t deadline)
{
	struct setup_rec me = {0}, peer;
	uint8_t mine[SETUP_SIZE], theirs[SETUP_SIZE];
	struct gn_vp_params p;
	int rc = c->ctx ? 0 : gn_verbs_open_device(c);

	if (rc == 0)
		rc = pick_gid(c);
	if (rc == 0)
		rc = qp_create(c);
	if (rc != 0)
		return rc;
	gn_vp_params_init(&p);
	me = (struct setup_rec){.magic = SETUP_MAGIC,
				.version = SETUP_VERSION,
				.mtu = (uint8_t)c->pa.active_mtu,
				.link_layer = c->pa.link_layer,
				.lid = c->pa.lid,
				.qpn = c->qp->qp_num,
				.psn = (uint32_t)(gn_clock_ns() * 2654435761u) &
				       0xffffff,
				.nrecv = p.nrecv,
				.buf_size = p.buf_size};
	memcpy(me.gid, c->gid.raw, 16);
	setup_encode(&me, mine);
	rc = trade(c, mine, theirs, SETUP_SIZE, deadline);
	if (rc != 0)
		return rc;
	setup_decode(theirs, &peer);
	rc = check_peer(c, &peer);
	if (rc != 0)
		return rc;
	p.peer_nrecv = peer.nrecv;
	p.peer_buf_size = peer.buf_size;
	p.limits = c->base.limits;
	p.peer = c->base.peer;
	/* Receives are posted in INIT, before the peer may SEND. */
	c->vp = gn_vp_conn_create(&gn_verbs_qp_ops, c, &p);
	if (c->vp == NULL)
		return gn_last_error_code();
	gn_vp_conn_set_owner(c->vp, &c->base);
	rc = qp_up(c, &peer, me.psn);
	if (rc != 0)
		return rc;
	memset(mine, 0, sizeof(mine));
	wr32(mine, READY_MAGIC);
	rc = trade(c, mine, theirs, 4, deadline);
	if (rc == 0 && rd32(theirs) != READY_MAGIC)
		rc = gn_error_set(-EPROTO,
				  "verbs: setup with %s: ready record 0x%08x, "
				  "expected 0x%08x",
				  c->base.peer, rd32(theirs), READY_MAGIC);
	if (rc != 0)
		return rc;
	GN_LOG(INFO, verbs,
	       "%s: connected over %s port %u (%s, GID index %d, MTU %d, QPN "
	       "%u -> %u)",
	       c->base.peer, ibv_get_device_name(c->ctx->device), c->port,
	       c->pa.link_layer == IBV_LINK_LAYER_ETHERNET ? "RoCE"
							   : "InfiniBand",
	       c->gid_index, 128 << c->pa.active_mtu, c->qp->qp_num, peer.qpn);
	return 0;
}
