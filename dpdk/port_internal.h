/*
 * What the port's files share (port.c: open and close; port_io.c: the
 * data path; mem.c: registered memory). Private to dpdk/.
 */
#ifndef GN_DPDK_PORT_INTERNAL_H
#define GN_DPDK_PORT_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include <rte_eal.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>

#include "log.h"
#include "port.h"

GN_LOG_EXTERN(dpdk_port);

/* Frames built and offered to the driver per burst. */
#define GN_PORT_TX_BURST 32
/* Frames wait_rx may take from the driver before rx asks for them. */
#define GN_PORT_RX_STASH 64

/*
 * Per-buffer context of an attached payload, in the private area of the
 * mbuf that carries it: DPDK calls gn_dpdk_port_ext_free() with it when
 * the last reference to the payload goes, which is when tx_done may run.
 */
struct gn_port_ext_ctx {
	struct rte_mbuf_ext_shared_info shinfo;
	struct gn_dpdk_port *port;
	void *cookie;
	/* Set on frames the driver refused: the caller still owns those. */
	bool quiet;
};

struct gn_dpdk_port {
	char name[RTE_ETH_NAME_MAX_LEN];
	char desc[192]; /* "net_memif0 (memif server, socket /x, id 0)" */
	uint16_t port_id;
	bool is_vdev;
	enum gn_dpdk_port_kind kind;
	uint32_t mtu;
	uint32_t max_frame;
	uint32_t zc_min;
	bool attach_ok; /* payloads may be attached (multi-seg TX) */
	/* the driver copies by virtual address: no registration needed */
	bool attach_any;
	bool zero_copy;
	const char *zc_reason;
	void (*tx_done)(void *cookie);
	struct rte_mempool *tx_pool;
	struct rte_mempool *ext_pool;
	struct rte_mempool *rx_pool;
	struct rte_device *dev;

	/* Frames wait_rx took, stash[stash_head..stash_head + stash_n). */
	struct rte_mbuf *stash[GN_PORT_RX_STASH];
	unsigned stash_head, stash_n;

	/* Written by the TX thread only. */
	uint64_t tx_packets, tx_bytes, tx_ring_full, tx_no_mbuf;
	uint64_t tx_zero_copy, tx_copied, tx_done_n;
	/* Written by the RX thread only. */
	uint64_t rx_packets, rx_bytes, rx_linearized, rx_multiseg_dropped;
};

static inline int64_t gn_port_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline void gn_port_sleep_ns(long ns)
{
	struct timespec ts = {ns / 1000000000L, ns % 1000000000L};

	nanosleep(&ts, NULL);
}

/* The EAL's lcore table is empty until rte_eal_init() has run. */
static inline bool gn_port_eal_running(void)
{
	return rte_lcore_count() > 0 && rte_eal_get_runtime_dir()[0] != '\0';
}

/* Whether the ethdev's link is up now (port_io.c). */
bool gn_dpdk_port_dev_link_up(uint16_t port_id);

/*
 * mem.c: the IOVA of [addr, addr + len) when it lies in one registered
 * region (RTE_BAD_IOVA where the EAL has no IOVA for it); false when it
 * does not.
 */
bool gn_dpdk_mem_lookup(const void *addr, uint32_t len, rte_iova_t *iova);

/*
 * mem.c: track an open port, mapping every registered region for its DMA
 * when it is a PCI port that attaches payloads; and forget it on close.
 */
void gn_dpdk_mem_port_add(struct gn_dpdk_port *p);
void gn_dpdk_mem_port_remove(struct gn_dpdk_port *p);

#endif /* GN_DPDK_PORT_INTERNAL_H */
