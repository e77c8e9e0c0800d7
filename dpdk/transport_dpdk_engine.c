/*
 * The dpdk:// transport's engine (see transport_dpdk.c for the whole
 * picture): one per process, it starts the EAL, opens the ports, runs
 * reliable messaging over them through the rel callbacks below (those
 * for what arrives are in transport_dpdk_rx.c), and runs the thread that
 * drives the ports when no application thread does. Also the telemetry
 * accessors of transport_dpdk.h.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "dpdk_env.h"
#include "gn_error.h"
#include "log.h"
#include "transport_dpdk.h"
#include "transport_dpdk_internal.h"

GN_LOG_REGISTER(dpdk_transport)

static struct engine *g_engine;
static pthread_mutex_t g_engine_lock = PTHREAD_MUTEX_INITIALIZER;

void gn_dpdk_poke(int fd)
{
	char b = 1;

	if (write(fd, &b, 1) < 0 && errno != EAGAIN)
		GN_LOG(WARNING, dpdk_transport, "wake-up write failed: %s",
		       strerror(errno));
}

/* ---- rel callbacks (engine lock held) --------------------------------------
 */

/*
 * The port a frame goes out on: a memif listener's client's own (by the
 * Ethernet address the frame is for), else the only one. NULL: no port
 * for that address (yet).
 */
static struct gn_dpdk_port *port_for(struct engine *e, const uint8_t *frame)
{
	int id;

	if (e->nports <= 1 || !e->server)
		return e->nports > 0 ? e->ports[0] : NULL;
	id = gn_dpdk_memif_id_of(frame);
	return id >= 0 && id < e->nports ? e->ports[id] : NULL;
}

/* Send frames the lossy link has due, as copies (no completion). */
static void fault_deliver_one(void *ctx, const uint8_t *frame, size_t len)
{
	struct engine *e = ctx;
	struct gn_dpdk_frame f = {
		.hdr = frame,
		.hdr_len = len < GN_DPDK_FRAME_HDR_MAX ? (uint32_t)len
						       : GN_DPDK_FRAME_HDR_MAX,
		.payload = frame + GN_DPDK_FRAME_HDR_MAX,
		.payload_len = len > GN_DPDK_FRAME_HDR_MAX
				       ? (uint32_t)(len - GN_DPDK_FRAME_HDR_MAX)
				       : 0};
	struct gn_dpdk_port *port = port_for(e, frame);

	if (f.payload_len == 0)
		f.payload = NULL;
	/* A full ring drops it: to the protocol, one more loss. */
	if (port != NULL)
		(void)gn_dpdk_port_tx(port, &f, 1);
}

static int rel_tx(void *ctx, const struct gn_rel_pkt *p)
{
	struct engine *e = ctx;

	if (e->fault != NULL && e->frames_sent++ >= e->fault_after) {
		size_t len = (size_t)p->hdr_len + p->payload_len;

		if (len > sizeof(e->fault_buf))
			return -EMSGSIZE;
		memcpy(e->fault_buf, p->hdr, p->hdr_len);
		if (p->payload_len)
			memcpy(e->fault_buf + p->hdr_len, p->payload,
			       p->payload_len);
		gn_fault_offer(e->fault, e->fault_buf, len, gn_clock_ns());
		if (p->tx_ref != NULL)
			gn_rel_tx_done(e->ep, p->tx_ref); /* copied */
		return 0;
	}
	struct gn_dpdk_frame f = {.hdr = p->hdr,
				  .hdr_len = p->hdr_len,
				  .payload = p->payload,
				  .payload_len = p->payload_len,
				  .cookie = p->tx_ref};
	struct gn_dpdk_port *port = port_for(e, p->hdr);
	int n;

	if (port == NULL)
		return -EHOSTUNREACH;
	n = gn_dpdk_port_tx(port, &f, 1);

	if (n == 1) {
		/* Frames without a tx_ref need no completion. */
		return 0;
	}
	return n == 0 ? -EAGAIN : n;
}

static void port_tx_done(void *cookie)
{
	if (cookie != NULL && g_engine != NULL)
		gn_rel_tx_done(g_engine->ep, cookie);
}

struct dpdk_conn *gn_dpdk_conn_new(struct engine *e, struct gn_rel_session *s)
{
	struct dpdk_conn *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return NULL;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0,
		       c->fds) != 0) {
		free(c);
		return NULL;
	}
	c->base.ops = &gn_dpdk_transport_ops;
	c->base.limits = e->limits;
	snprintf(c->base.peer, sizeof(c->base.peer), "dpdk:%016llx",
		 (unsigned long long)gn_rel_session_id(s));
	c->e = e;
	c->s = s;
	gn_rel_session_set_user(s, c);
	return c;
}

static void on_accept(void *ctx, struct gn_rel_session *s)
{
	struct engine *e = ctx;
	struct dpdk_listener *l = e->listener;
	struct dpdk_conn *c;

	if (l == NULL || l->nacc == ACCEPT_MAX ||
	    (c = gn_dpdk_conn_new(e, s)) == NULL) {
		gn_rel_close(s, gn_clock_ns());
		return;
	}
	c->up = true;
	l->acc[l->nacc++] = c;
	gn_dpdk_poke(l->fds[1]);
}

static void on_sent(void *ctx, struct gn_rel_session *s, void *cookie,
		    int status)
{
	struct send_ctx *sc = cookie;

	(void)ctx;
	(void)s;
	if (!sc->wait) {
		/* A failure closes the session: recv reports it. */
		gn_msg_buf_free(sc);
		return;
	}
	sc->status = status;
	sc->done = true;
}

static void on_closed(void *ctx, struct gn_rel_session *s, int status)
{
	struct engine *e = ctx;
	struct dpdk_conn *c = gn_rel_session_user(s);

	if (c != NULL) {
		c->closed = status ? status : -ECONNRESET;
		c->s = NULL;
		gn_dpdk_poke(c->fds[1]);
	}
	pthread_cond_broadcast(&e->cond);
}

/* ---- the engine -------------------------------------------------------------
 */

/*
 * Open the engine's next port, waiting up to timeout_ms for its link (0:
 * until the engine stops); a memif listener's ports do not wait: their
 * clients come and go. The first port also makes the protocol endpoint.
 * Called by one thread at a time (the one starting the engine, then the
 * engine thread), so nports only grows under our feet.
 */
static int open_port(struct engine *e, uint32_t timeout_ms)
{
	struct gn_dpdk_port_opts po;
	struct gn_rel_config rc;
	struct gn_rel_ops ops = {
		.ctx = e,
		.tx = rel_tx,
		.on_accept = on_accept,
		.rx_buffer = gn_dpdk_rx_buffer,
		.rx_abort = gn_dpdk_rx_abort,
		.on_message = gn_dpdk_on_message,
		.on_sent = on_sent,
		.on_closed = on_closed,
	};
	struct gn_dpdk_port *port = NULL;
	int r;

	gn_dpdk_port_opts_init(&po, sizeof(po));
	if (e->t.pci) {
		po.kind = GN_DPDK_PORT_PCI;
		po.pci_addr = e->t.ifname;
	} else if (e->t.af_packet) {
		po.kind = GN_DPDK_PORT_AF_PACKET;
		po.ifname = e->t.ifname;
		/* A veth with a kernel stack behind it drops bursts. */
		po.rx_ring_size = po.tx_ring_size = 4096;
	} else {
		po.kind = GN_DPDK_PORT_MEMIF;
		po.memif_socket = e->t.sock;
		po.memif_role =
			e->server ? GN_DPDK_MEMIF_SERVER : GN_DPDK_MEMIF_CLIENT;
		po.memif_id = e->server ? (uint32_t)e->nports : e->memif_id;
		/*
		 * Shared memory has no wire MTU: frames fill the 16 KiB ring
		 * buffers (11x fewer than at 1500; 64 MiB moved about 1.4x
		 * faster than with 9000-byte frames, docs/PERFORMANCE.md).
		 */
		po.mtu = GN_REL_MTU_MAX + GN_REL_FRAME_HDR - 14;
		if (e->server) {
			po.no_link_wait = true;
			/*
			 * net_memif copies each frame out of its pool at once:
			 * half the default pool per client keeps 16 clients
			 * within the listener's EAL memory.
			 */
			po.pool_size = 2048;
		}
	}
	po.tx_done = port_tx_done;
	po.link_timeout_ms = timeout_ms; /* 0: until e->stop */
	po.cancel = &e->stop;
	r = gn_dpdk_port_open(&po, &port);
	if (r == 0 && e->t.pci)
		r = gn_dpdk_port_mac(port, e->t.self.mac);
	if (r != 0) {
		gn_dpdk_port_close(&port);
		return r;
	}
	gn_rel_config_init(&rc, sizeof(rc));
	rc.accept = e->server;
	/*
	 * The peer's engine may be asleep for up to a millisecond when a
	 * burst starts: a shorter RTO only resends what is on its way.
	 */
	rc.rto_min_ns = 2000000;
	rc.rto_init_ns = 5000000;
	/* A multiple of GN_DPDK_MSG_ALIGN, which the lead-in relies on. */
	rc.mtu_payload =
		(uint16_t)((gn_dpdk_port_max_frame(port) - GN_REL_FRAME_HDR) &
			   ~(uint32_t)(GN_DPDK_MSG_ALIGN - 1));
	pthread_mutex_lock(&e->lock);
	if (e->ep == NULL)
		e->ep = gn_rel_ep_create(&rc, &e->t.self, &ops);
	if (e->ep == NULL) {
		r = gn_last_error_code();
		pthread_mutex_unlock(&e->lock);
		gn_dpdk_port_close(&port);
		return r;
	}
	e->ports[e->nports++] = port;
	pthread_mutex_unlock(&e->lock);
	if (po.kind == GN_DPDK_PORT_MEMIF && e->server)
		GN_LOG(NOTICE, dpdk_transport,
		       "dpdk://%s: memif client id %u ready on %s, %u payload "
		       "bytes a packet",
		       e->spec, po.memif_id, gn_dpdk_port_name(port),
		       rc.mtu_payload);
	else
		GN_LOG(NOTICE, dpdk_transport,
		       "dpdk://%s up on %s, %u payload bytes a packet", e->spec,
		       gn_dpdk_port_name(port), rc.mtu_payload);
	return 0;
}

/*
 * A memif listener opens a port for every client id claimed (memif is
 * point to point: one id, one client). A connecting process claims its id
 * before it connects and keeps trying for seconds, so looking every
 * CLAIM_CHECK_NS is soon enough. A failure is logged and tried again
 * after a second.
 */
#define CLAIM_CHECK_NS 50000000ull

static void memif_grow(struct engine *e)
{
	uint64_t now = gn_clock_ns();
	int want;

	if (e->t.af_packet || e->t.pci || !e->server || e->nports == 0 ||
	    e->nports >= GN_DPDK_MEMIF_CLIENTS || now < e->next_slot_check)
		return;
	e->next_slot_check = now + CLAIM_CHECK_NS;
	want = gn_dpdk_memif_claims(e->memif_key, (uint32_t)e->nports,
				    &e->claim_probe);
	if (want < 0) {
		GN_LOG(ERR, dpdk_transport,
		       "dpdk://%s: cannot read memif client claims (trying "
		       "again in 1 s): %s",
		       e->spec, gn_last_error());
		e->next_slot_check = now + 1000000000ull;
		return;
	}
	while (e->nports < want) {
		if (open_port(e, 0) != 0) {
			GN_LOG(ERR, dpdk_transport,
			       "dpdk://%s: cannot open memif client id %d "
			       "(trying again in 1 s): %s",
			       e->spec, e->nports, gn_last_error());
			e->next_slot_check = now + 1000000000ull;
			return;
		}
	}
}

/*
 * A memif listener's client whose process ends takes its link down, and
 * what it had still to send (its last acks, its FIN) may go with the link.
 * Its sessions fail at once instead of resending into the void until a
 * send times out (tens of seconds, a runtime's reply blocked meanwhile).
 * Links are looked at every LINK_CHECK_NS: a new client process on the
 * same id takes far longer to connect.
 */
#define LINK_CHECK_NS 10000000ull
#define GONE_MAX 64

struct gone {
	int id, n;
	struct gn_rel_session *s[GONE_MAX];
};

static void gone_collect(void *ctx, struct gn_rel_session *s)
{
	struct gone *g = ctx;

	if (g->n < GONE_MAX && gn_rel_session_up(s) &&
	    gn_dpdk_memif_id_of(gn_rel_session_peer(s)->mac) == g->id)
		g->s[g->n++] = s;
}

static void memif_reap(struct engine *e)
{
	uint64_t now = gn_clock_ns();

	if (e->t.af_packet || e->t.pci || !e->server ||
	    now < e->next_link_check)
		return;
	e->next_link_check = now + LINK_CHECK_NS;
	for (int k = 0; k < e->nports; k++) {
		bool up = gn_dpdk_port_link_up(e->ports[k]);
		struct gone g = {.id = k};
		int closed = 0;

		if (up || !e->link_up[k]) {
			e->link_up[k] = up;
			continue;
		}
		e->link_up[k] = false;
		pthread_mutex_lock(&e->lock);
		do {
			g.n = 0;
			gn_rel_ep_foreach(e->ep, gone_collect, &g);
			for (int i = 0; i < g.n; i++)
				gn_rel_abort(g.s[i], -ECONNRESET);
			closed += g.n;
		} while (g.n == GONE_MAX);
		pthread_cond_broadcast(&e->cond);
		pthread_mutex_unlock(&e->lock);
		GN_LOG(NOTICE, dpdk_transport,
		       "dpdk://%s: memif client id %d went away (link down): "
		       "%d session%s closed",
		       e->spec, k, closed, closed == 1 ? "" : "s");
	}
}

/*
 * A peer built with another rel version cannot connect, and its frames
 * only count as bad: say why, at most every 10 s.
 */
static void tell_bad_version(struct engine *e, uint64_t now)
{
	unsigned v;
	uint64_t n = gn_rel_ep_bad_version(e->ep, &v);

	if (n == e->bad_version_told ||
	    (e->bad_version_told_ns != 0 &&
	     now - e->bad_version_told_ns < 10000000000ull))
		return;
	GN_LOG(WARNING, dpdk_transport,
	       "dpdk://%s: %llu frames dropped so far from a peer speaking rel "
	       "version %u, this build speaks %d: run the same Genie release "
	       "on both ends",
	       e->spec, (unsigned long long)n, v, GN_REL_VERSION);
	e->bad_version_told = n;
	e->bad_version_told_ns = now;
}

/*
 * Take what the port received into the protocol and run its timers.
 * Engine lock held. Returns the frames taken; *next gets the protocol's
 * next deadline and *now the time the timers ran at, for the caller's own
 * checks: the clock is read once, and again only after frames were taken
 * (a clock read cost a few percent of a busy receiver's time).
 */
int gn_dpdk_engine_drive(struct engine *e, uint64_t *next, uint64_t *now_out)
{
	struct gn_dpdk_rx rx[RX_BURST];
	uint64_t now = gn_clock_ns();
	int n = 0;

	(void)gn_dpdk_thread_register(); /* mbuf caches for this thread */
	for (int p = 0; p < e->nports; p++) {
		int got = gn_dpdk_port_rx(e->ports[p], rx, RX_BURST);

		for (int i = 0; i < got; i++)
			gn_rel_input(e->ep, rx[i].data, rx[i].len, now);
		if (got > 0) {
			gn_dpdk_port_rx_release(e->ports[p], rx, got);
			n += got;
		}
	}
	if (n > 0) {
		now = gn_clock_ns();
		tell_bad_version(e, now);
	}
	*now_out = now;
	*next = gn_rel_poll(e->ep, now);
	if (e->fault != NULL) {
		uint64_t due;

		gn_fault_deliver(e->fault, now, fault_deliver_one, e);
		due = gn_fault_next_due(e->fault);
		if (due < *next)
			*next = due;
		if (due != UINT64_MAX)
			n++; /* frames still held: keep the engine awake */
	}
	pthread_cond_broadcast(&e->cond);
	return n > 0 ? n : 0;
}

void gn_dpdk_nap_us(uint32_t us)
{
	struct timespec d = {0, (long)us * 1000};

	nanosleep(&d, NULL);
}

/*
 * The engine: drives the port when no application thread does. A thread
 * waiting in recv drives it itself (run to completion, no hand-off), so
 * the engine only sleeps, in steps that double up to 1 ms, and takes over
 * when nobody else is there: no core is spent while all is quiet.
 */
static void *engine_main(void *arg)
{
	struct engine *e = arg;
	uint32_t idle_us = 0;

	/*
	 * An af_packet or PCI listener's port comes up here, with no time
	 * limit; stopping cancels the wait. A memif listener's first port is
	 * open already, its socket open throughout (closing and remaking it
	 * every so often left clients on a loaded host connecting to a
	 * socket about to go).
	 */
	if (e->nports == 0 && open_port(e, 0) != 0 &&
	    gn_last_error_code() != -ECANCELED) {
		GN_LOG(ERR, dpdk_transport, "dpdk://%s: %s", e->spec,
		       gn_last_error());
		return NULL;
	}
	while (!atomic_load(&e->stop)) {
		uint64_t next = UINT64_MAX, now;
		int n = 0;

		memif_grow(e);
		memif_reap(e);
		if (atomic_load_explicit(&e->drivers, memory_order_relaxed) >
		    0) {
			/* A thread drives the port: stay out of its way. */
			idle_us = 0;
			gn_dpdk_nap_us(DRIVEN_NAP_US);
			continue;
		}
		if (pthread_mutex_trylock(&e->lock) == 0) {
			n = gn_dpdk_engine_drive(e, &next, &now);
			if (n == 0 && gn_rel_busy(e->ep))
				n = -1; /* traffic in flight: keep polling */
			pthread_mutex_unlock(&e->lock);
		}
		if (n > 0) {
			idle_us = 0;
			continue;
		}
		if (n < 0) {
			/*
			 * Traffic in flight but nothing arrived: nap briefly
			 * rather than spin, so the peer (on this core too,
			 * perhaps) gets the CPU to answer; a window of
			 * packets in flight outlasts the nap.
			 */
			idle_us = 0;
			gn_dpdk_nap_us(BUSY_NAP_US);
			continue;
		}
		idle_us = idle_us ? idle_us * 2 : 1;
		if (idle_us > 1000)
			idle_us = 1000;
		now = gn_clock_ns();
		if (next != UINT64_MAX && next > now &&
		    (next - now) / 1000 < idle_us)
			idle_us = (uint32_t)((next - now) / 1000) + 1;
		if (next > now)
			gn_dpdk_nap_us(idle_us);
	}
	return NULL;
}

/*
 * GENIE_DPDK_FAULT="drop=0.05,dup=0.01,reorder=0.02,delay_us=20,
 * burst_ms=100,every_ms=1000,seed=7,after=0": the frames this process
 * sends (all but the first `after` ones) go
 * through a seeded lossy link (dpdk/fault.c) before the port, for tests
 * of the data plane under loss; unset, nothing changes.
 */
static int fault_from_env(struct engine *e)
{
	const char *spec = getenv("GENIE_DPDK_FAULT");
	struct gn_fault_opts o;
	int rc;

	if (spec == NULL || *spec == '\0')
		return 0;
	rc = gn_fault_opts_parse(spec, &o, &e->fault_after);
	if (rc != 0) {
		char detail[400];

		snprintf(detail, sizeof(detail), "%s", gn_last_error());
		return gn_error_set(rc, "dpdk: GENIE_DPDK_FAULT: %s", detail);
	}
	e->fault = gn_fault_create(&o);
	if (e->fault == NULL)
		return gn_last_error_code();
	GN_LOG(WARNING, dpdk_transport,
	       "fault injection on: GENIE_DPDK_FAULT=%s", spec);
	return 0;
}

/* Close every port, and give back a memif connector's id. */
static void close_ports(struct engine *e)
{
	for (int i = 0; i < e->nports; i++)
		gn_dpdk_port_close(&e->ports[i]);
	e->nports = 0;
	if (e->memif_claim >= 0)
		close(e->memif_claim);
	e->memif_claim = -1;
	if (e->claim_probe >= 0)
		close(e->claim_probe);
	e->claim_probe = -1;
}

static void engine_stop(void)
{
	struct engine *e = g_engine;

	if (e == NULL)
		return;
	atomic_store(&e->stop, true);
	pthread_join(e->thread, NULL);
	pthread_mutex_lock(&e->lock);
	if (e->ep != NULL) {
		struct gn_rel_stats st;

		gn_rel_ep_stats(e->ep, &st);
		GN_LOG(NOTICE, dpdk_transport,
		       "dpdk://%s: %llu packets sent, %llu received, %llu "
		       "retransmitted (%llu on holes), %llu duplicates, %llu "
		       "bad, %llu stray",
		       e->spec, (unsigned long long)st.pkts_sent,
		       (unsigned long long)st.pkts_received,
		       (unsigned long long)st.retransmits,
		       (unsigned long long)st.hole_retransmits,
		       (unsigned long long)st.dup_received,
		       (unsigned long long)st.bad_frames,
		       (unsigned long long)st.stray_frames);
	}
	gn_rel_ep_destroy(&e->ep);
	close_ports(e);
	gn_fault_destroy(&e->fault);
	pthread_mutex_unlock(&e->lock);
	g_engine = NULL;
	pthread_cond_destroy(&e->cond);
	pthread_mutex_destroy(&e->lock);
	free(e);
	gn_dpdk_env_fini();
}

int gn_dpdk_engine_get(const char *spec, bool server,
		       const struct gn_transport_opts *opts,
		       struct dpdk_listener *l, struct engine **out)
{
	struct gn_dpdk_target t;
	struct engine *e;
	int rc = gn_dpdk_target_parse(spec, server, &t);

	if (rc != 0)
		return rc;
	pthread_mutex_lock(&g_engine_lock);
	if (g_engine != NULL) {
		e = g_engine;
		if (strcmp(e->spec, spec) != 0 || e->server != server) {
			pthread_mutex_unlock(&g_engine_lock);
			return gn_error_set(-EBUSY,
					    "dpdk: this process already uses "
					    "'dpdk://%s' as a %s; one DPDK "
					    "port per process",
					    e->spec,
					    e->server ? "listener" : "client");
		}
		e->users++;
		if (l != NULL) {
			pthread_mutex_lock(&e->lock);
			e->listener = l;
			pthread_mutex_unlock(&e->lock);
		}
		*out = e;
		pthread_mutex_unlock(&g_engine_lock);
		return 0;
	}
	e = calloc(1, sizeof(*e));
	if (e == NULL) {
		pthread_mutex_unlock(&g_engine_lock);
		return gn_error_set(-ENOMEM, "dpdk: out of memory");
	}
	snprintf(e->spec, sizeof(e->spec), "%s", spec);
	e->t = t;
	e->server = server;
	e->limits = opts->limits;
	e->listener = l;
	e->memif_claim = -1;
	e->claim_probe = -1;
	e->memif_key = gn_dpdk_memif_key(t.sock);
	pthread_mutex_init(&e->lock, NULL);
	pthread_cond_init(&e->cond, NULL);
	if (t.pci) {
		struct gn_dpdk_env_opts eo;

		/* A NIC reads and writes by DMA: hugepage memory. */
		gn_dpdk_env_opts_init(&eo, sizeof(eo));
		eo.no_huge = false;
		eo.mem_mb = 0;
		rc = gn_dpdk_env_init(&eo);
	} else if (server && !t.af_packet) {
		struct gn_dpdk_env_opts eo;

		/* Packet pools for every memif client id (open_port). */
		gn_dpdk_env_opts_init(&eo, sizeof(eo));
		eo.mem_mb = 1024;
		rc = gn_dpdk_env_init(&eo);
	} else {
		rc = gn_dpdk_env_init(NULL);
	}
	if (rc == -EALREADY)
		rc = 0;
	rc = rc ? rc : fault_from_env(e);
	if (rc == 0)
		gn_dpdk_telemetry_register();
	if (rc == 0 && !server && !t.af_packet && !t.pci) {
		rc = gn_dpdk_memif_claim(t.sock, &e->memif_id);
		e->memif_claim = rc >= 0 ? rc : -1;
		rc = rc >= 0 ? 0 : rc;
		gn_dpdk_target_memif_id(&e->t, e->memif_id);
	}
	/*
	 * A client needs its link now, and a memif listener its socket; an
	 * af_packet or PCI listener gets its link in the engine.
	 */
	if (rc == 0 && (!server || (!t.af_packet && !t.pci)))
		rc = open_port(e, 10000);
	g_engine = rc == 0 ? e : NULL;
	if (rc == 0 && pthread_create(&e->thread, NULL, engine_main, e) != 0) {
		g_engine = NULL;
		rc = gn_error_set(-EAGAIN, "dpdk: cannot start the engine "
					   "thread");
	}
	if (rc != 0) {
		gn_rel_ep_destroy(&e->ep);
		close_ports(e);
		gn_fault_destroy(&e->fault);
		pthread_mutex_unlock(&g_engine_lock);
		free(e);
		return rc;
	}
	e->users = 1;
	/* The port, the EAL and its socket go when the process ends. */
	atexit(engine_stop);
	*out = e;
	pthread_mutex_unlock(&g_engine_lock);
	return 0;
}

/* ---- telemetry (transport_dpdk.h) ------------------------------------------
 */

int gn_dpdk_transport_stats(char *spec, size_t spec_len,
			    struct gn_rel_stats *st)
{
	struct engine *e = g_engine;

	if (e == NULL)
		return -ENODEV;
	pthread_mutex_lock(&e->lock);
	snprintf(spec, spec_len, "dpdk://%s", e->spec);
	if (e->ep != NULL)
		gn_rel_ep_stats(e->ep, st);
	else
		memset(st, 0, sizeof(*st));
	pthread_mutex_unlock(&e->lock);
	return 0;
}

struct foreach_ctx {
	void (*fn)(void *ctx, uint64_t id, int up,
		   const struct gn_rel_stats *st);
	void *ctx;
};

static void foreach_one(void *ctx, struct gn_rel_session *s)
{
	struct foreach_ctx *f = ctx;
	struct gn_rel_stats st;

	gn_rel_session_stats(s, &st);
	f->fn(f->ctx, gn_rel_session_id(s), gn_rel_session_up(s), &st);
}

int gn_dpdk_transport_sessions(void (*fn)(void *ctx, uint64_t id, int up,
					  const struct gn_rel_stats *st),
			       void *ctx)
{
	struct engine *e = g_engine;
	struct foreach_ctx f = {fn, ctx};

	if (e == NULL)
		return -ENODEV;
	pthread_mutex_lock(&e->lock);
	if (e->ep != NULL)
		gn_rel_ep_foreach(e->ep, foreach_one, &f);
	pthread_mutex_unlock(&e->lock);
	return 0;
}
