/*
 * A port's data path (see port.h): frames built and sent in bursts, the
 * tx_done rule kept for copied and attached payloads alike, received
 * buffers lent out, and a wait that backs off to sleeping when idle.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include <rte_common.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_pause.h>

#include "gn_error.h"
#include "port_internal.h"

/* wait_rx polls this long before it starts sleeping. */
#define WAIT_SPIN_NS 20000L
#define WAIT_SLEEP_MAX_NS 1000000L

static void ext_free(void *addr, void *opaque)
{
	struct gn_port_ext_ctx *c = opaque;
	struct gn_dpdk_port *p = c->port;

	(void)addr;
	if (c->quiet)
		return;
	p->tx_done_n++;
	if (p->tx_done != NULL)
		p->tx_done(c->cookie);
}

bool gn_dpdk_port_dev_link_up(uint16_t port_id)
{
	struct rte_eth_link l;

	memset(&l, 0, sizeof(l));
	if (rte_eth_link_get_nowait(port_id, &l) != 0)
		return false;
	return l.link_status == RTE_ETH_LINK_UP;
}

static int frame_check(const struct gn_dpdk_port *p,
		       const struct gn_dpdk_frame *f, int i)
{
	uint64_t total = (uint64_t)f->hdr_len + f->payload_len;

	if (unlikely(total == 0 || f->hdr_len > GN_DPDK_FRAME_HDR_MAX ||
		     total > p->max_frame || (f->hdr_len && f->hdr == NULL) ||
		     (f->payload_len && f->payload == NULL)))
		return gn_error_set(-EMSGSIZE,
				    "dpdk port %s: frame %d has a %u-byte "
				    "header (%s) and a %u-byte payload (%s); "
				    "expected 1..%u bytes in all, a header of "
				    "at most %d",
				    p->desc, i, f->hdr_len,
				    f->hdr ? "set" : "NULL", f->payload_len,
				    f->payload ? "set" : "NULL", p->max_frame,
				    GN_DPDK_FRAME_HDR_MAX);
	return 0;
}

/*
 * Build one frame: the header copied into a buffer, the payload either
 * copied behind it or attached in a second buffer. Returns the mbuf or
 * NULL when a pool is empty.
 */
static struct rte_mbuf *frame_build(struct gn_dpdk_port *p,
				    const struct gn_dpdk_frame *f,
				    bool *attached)
{
	struct rte_mbuf *m = NULL, *e = NULL;
	rte_iova_t iova = RTE_BAD_IOVA;
	char *dst;

	*attached = p->attach_ok && f->payload_len >= p->zc_min &&
		    f->payload_len > 0 &&
		    (p->attach_any ||
		     gn_dpdk_mem_lookup(f->payload, f->payload_len, &iova));
	if (f->hdr_len > 0 || !*attached) {
		m = rte_pktmbuf_alloc(p->tx_pool);
		if (unlikely(m == NULL))
			return NULL;
		dst = rte_pktmbuf_append(
			m, (uint16_t)(f->hdr_len +
				      (*attached ? 0 : f->payload_len)));
		if (f->hdr_len)
			memcpy(dst, f->hdr, f->hdr_len);
		if (!*attached && f->payload_len)
			memcpy(dst + f->hdr_len, f->payload, f->payload_len);
	}
	if (*attached) {
		struct gn_port_ext_ctx *c;

		e = rte_pktmbuf_alloc(p->ext_pool);
		if (unlikely(e == NULL)) {
			rte_pktmbuf_free(m);
			return NULL;
		}
		c = rte_mbuf_to_priv(e);
		c->port = p;
		c->cookie = f->cookie;
		c->quiet = false;
		c->shinfo.free_cb = ext_free;
		c->shinfo.fcb_opaque = c;
		rte_mbuf_ext_refcnt_set(&c->shinfo, 1);
		rte_pktmbuf_attach_extbuf(e, (void *)(uintptr_t)f->payload,
					  iova, (uint16_t)f->payload_len,
					  &c->shinfo);
		e->data_len = (uint16_t)f->payload_len;
		e->pkt_len = f->payload_len;
		if (m == NULL)
			return e;
		if (rte_pktmbuf_chain(m, e) != 0) {
			c->quiet = true;
			rte_pktmbuf_free(e);
			rte_pktmbuf_free(m);
			return NULL;
		}
	}
	return m;
}

/* Free a frame the driver refused, without telling tx_done. */
static void frame_drop(struct rte_mbuf *m)
{
	for (struct rte_mbuf *s = m; s != NULL; s = s->next)
		if (RTE_MBUF_HAS_EXTBUF(s) && s->shinfo->free_cb == ext_free)
			((struct gn_port_ext_ctx *)s->shinfo->fcb_opaque)
				->quiet = true;
	rte_pktmbuf_free(m);
}

int gn_dpdk_port_tx(struct gn_dpdk_port *p, const struct gn_dpdk_frame *frames,
		    int n)
{
	struct rte_mbuf *burst[GN_PORT_TX_BURST];
	bool attached[GN_PORT_TX_BURST];
	int done = 0, err = 0;

	if (unlikely(p == NULL || (frames == NULL && n != 0) || n < 0))
		return gn_error_set(-EINVAL,
				    "dpdk port: tx of %d frames at %p on port "
				    "%p",
				    n, (const void *)frames, (void *)p);
	while (done < n && err == 0) {
		int want = RTE_MIN(n - done, GN_PORT_TX_BURST), built = 0, sent;

		for (; built < want; built++) {
			const struct gn_dpdk_frame *f = &frames[done + built];

			err = frame_check(p, f, done + built);
			if (unlikely(err != 0))
				break;
			burst[built] = frame_build(p, f, &attached[built]);
			if (unlikely(burst[built] == NULL)) {
				p->tx_no_mbuf++;
				err = -ENOBUFS;
				break;
			}
		}
		if (built == 0)
			break;
		sent = rte_eth_tx_burst(p->port_id, 0, burst, (uint16_t)built);
		for (int i = 0; i < sent; i++) {
			const struct gn_dpdk_frame *f = &frames[done + i];

			p->tx_bytes += (uint64_t)f->hdr_len + f->payload_len;
			if (attached[i]) {
				p->tx_zero_copy++;
				continue;
			}
			/* Copied: the payload was free once built. */
			p->tx_copied++;
			p->tx_done_n++;
			if (p->tx_done != NULL)
				p->tx_done(f->cookie);
		}
		p->tx_packets += (uint64_t)sent;
		done += sent;
		if (sent < built) {
			p->tx_ring_full++;
			for (int i = sent; i < built; i++)
				frame_drop(burst[i]);
			break;
		}
	}
	if (done == 0 && err == -EMSGSIZE)
		return err;
	if (done == 0 && n > 0 && !gn_dpdk_port_dev_link_up(p->port_id))
		return gn_error_set(-ENETDOWN,
				    "dpdk port %s: link is down (peer gone?); "
				    "nothing sent",
				    p->desc);
	return done;
}

/* Make a received frame one buffer; false (and it is freed) if it can't. */
static bool rx_fix(struct gn_dpdk_port *p, struct rte_mbuf *m)
{
	if (likely(m->nb_segs == 1))
		return true;
	if (rte_pktmbuf_linearize(m) == 0) {
		p->rx_linearized++;
		return true;
	}
	p->rx_multiseg_dropped++;
	rte_pktmbuf_free(m);
	return false;
}

int gn_dpdk_port_rx(struct gn_dpdk_port *p, struct gn_dpdk_rx *out, int max)
{
	struct rte_mbuf *bufs[GN_PORT_TX_BURST];
	int got = 0;

	if (unlikely(p == NULL || (out == NULL && max != 0) || max < 0))
		return gn_error_set(-EINVAL,
				    "dpdk port: rx of %d frames into %p on "
				    "port %p",
				    max, (void *)out, (void *)p);
	while (got < max) {
		struct rte_mbuf *m;
		int nb = 0;

		if (p->stash_n > 0) {
			/* What wait_rx already took from the driver. */
			while (nb < GN_PORT_TX_BURST && got + nb < max &&
			       p->stash_n > 0) {
				bufs[nb++] = p->stash[p->stash_head++];
				p->stash_n--;
			}
		} else {
			nb = rte_eth_rx_burst(
				p->port_id, 0, bufs,
				(uint16_t)RTE_MIN(max - got, GN_PORT_TX_BURST));
			if (nb == 0)
				break;
		}
		for (int i = 0; i < nb; i++) {
			m = bufs[i];
			if (!rx_fix(p, m))
				continue;
			out[got].data = rte_pktmbuf_mtod(m, const void *);
			out[got].len = m->pkt_len;
			out[got].handle = m;
			p->rx_packets++;
			p->rx_bytes += m->pkt_len;
			got++;
		}
	}
	return got;
}

void gn_dpdk_port_rx_release(struct gn_dpdk_port *p,
			     const struct gn_dpdk_rx *frames, int n)
{
	(void)p;
	if (frames == NULL)
		return;
	for (int i = 0; i < n; i++)
		rte_pktmbuf_free(frames[i].handle);
}

/* Poll the driver once into the stash; true when something waits. */
static bool rx_poll(struct gn_dpdk_port *p)
{
	if (p->stash_n > 0)
		return true;
	p->stash_head = 0;
	p->stash_n =
		rte_eth_rx_burst(p->port_id, 0, p->stash, GN_PORT_RX_STASH);
	return p->stash_n > 0;
}

int gn_dpdk_port_wait_rx(struct gn_dpdk_port *p, uint32_t timeout_us)
{
	int64_t start, deadline, now;
	long sleep = 1000;

	if (p == NULL)
		return gn_error_set(-EINVAL, "dpdk port: wait_rx on NULL");
	if (rx_poll(p))
		return 1;
	start = gn_port_now_ns();
	deadline = start + (int64_t)timeout_us * 1000;
	for (;;) {
		now = gn_port_now_ns();
		if (now >= deadline)
			break;
		if (now - start < WAIT_SPIN_NS) {
			rte_pause();
		} else {
			long left = (long)(deadline - now);

			gn_port_sleep_ns(RTE_MIN(sleep, left));
			if (sleep < WAIT_SLEEP_MAX_NS)
				sleep *= 2;
			else if (!gn_dpdk_port_dev_link_up(p->port_id))
				break;
		}
		if (rx_poll(p))
			return 1;
	}
	if (!gn_dpdk_port_dev_link_up(p->port_id))
		return gn_error_set(-ENETDOWN,
				    "dpdk port %s: link is down (peer gone?) "
				    "with nothing received",
				    p->desc);
	return 0;
}

int gn_dpdk_port_stats(const struct gn_dpdk_port *p,
		       struct gn_dpdk_port_stats *st)
{
	struct rte_eth_stats es;

	if (p == NULL || st == NULL)
		return gn_error_set(-EINVAL, "dpdk port: stats of %p into %p",
				    (const void *)p, (void *)st);
	memset(st, 0, sizeof(*st));
	memset(&es, 0, sizeof(es));
	(void)rte_eth_stats_get(p->port_id, &es);
	st->rx_packets = p->rx_packets;
	st->rx_bytes = p->rx_bytes;
	st->tx_packets = p->tx_packets;
	st->tx_bytes = p->tx_bytes;
	st->tx_ring_full = p->tx_ring_full;
	st->tx_no_mbuf = p->tx_no_mbuf;
	st->tx_zero_copy = p->tx_zero_copy;
	st->tx_copied = p->tx_copied;
	st->tx_done = p->tx_done_n;
	st->rx_linearized = p->rx_linearized;
	st->rx_multiseg_dropped = p->rx_multiseg_dropped;
	st->dev_rx_packets = es.ipackets;
	st->dev_tx_packets = es.opackets;
	st->dev_rx_bytes = es.ibytes;
	st->dev_tx_bytes = es.obytes;
	st->rx_dropped = es.imissed + es.ierrors + es.rx_nombuf;
	st->tx_errors = es.oerrors;
	return 0;
}
