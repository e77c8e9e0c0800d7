/*
 * A DPDK Ethernet port, seen from the rest of Genie.
 *
 * The reliable transport (rel.h) frames its messages as Ethernet/IPv4/UDP
 * and needs somewhere to send them: this is that somewhere. A port is one
 * DPDK ethdev with one RX and one TX queue, opened from a Genie options
 * struct, in one of three kinds:
 *
 *   memif      shared-memory packet rings between two processes on one
 *              host, over a UNIX socket (the test and single-host path);
 *   af_packet  a kernel interface (a veth, a NIC without a DPDK driver)
 *              through a PACKET_MMAP socket;
 *   pci        a NIC driven by DPDK itself (production, with hugepages).
 *
 * memif and af_packet ports are virtual devices the port creates at run
 * time (rte_vdev_init), so gn_dpdk_env_init() needs no --vdev for them.
 *
 * Frames go out as up to two pieces: a small header the port copies, and a
 * payload it either copies into a packet buffer or attaches as an
 * external buffer, so that Genie itself copies nothing. memif and
 * af_packet copy every frame into their rings by address, so any payload
 * of zc_min_payload bytes or more is attached; a PCI NIC reads the
 * payload by DMA, so only payloads in memory registered with
 * gn_dpdk_mem_register() are. Whether the frame reaches the wire without
 * any CPU copy thus depends on the driver: gn_dpdk_port_zero_copy() says.
 *
 * The payload rule: a payload must stay unchanged until the port calls
 * the tx_done callback for its frame, exactly once per frame the port
 * accepted, once the port no longer needs the bytes.
 *
 * Received frames are lent out as (pointer, length, handle) and go back
 * with gn_dpdk_port_rx_release(); no byte is copied on the way in.
 *
 * Threading: one thread may send and one (possibly another) thread may
 * receive on a port at a time; open and close belong to one thread with
 * neither running. This header includes no DPDK header.
 */
#ifndef GN_DPDK_PORT_H
#define GN_DPDK_PORT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum gn_dpdk_port_kind {
	GN_DPDK_PORT_NONE = 0, /* unset: refused by gn_dpdk_port_open() */
	GN_DPDK_PORT_MEMIF,
	GN_DPDK_PORT_AF_PACKET,
	GN_DPDK_PORT_PCI,
};

enum gn_dpdk_memif_role {
	GN_DPDK_MEMIF_SERVER = 0, /* creates the socket and waits */
	GN_DPDK_MEMIF_CLIENT,	  /* connects to a server's socket */
};

/* Ethernet header bytes a frame carries on top of the MTU. */
#define GN_DPDK_ETH_HDR_LEN 14
/* The most bytes a frame's header piece may have. */
#define GN_DPDK_FRAME_HDR_MAX 256

/*
 * How to open a port. Fill it with gn_dpdk_port_opts_init(), then set the
 * kind and what it needs; fields added later go at the end and keep their
 * defaults for callers compiled before them.
 */
struct gn_dpdk_port_opts {
	/* sizeof(struct gn_dpdk_port_opts) as the caller was compiled. */
	size_t opts_size;
	enum gn_dpdk_port_kind kind;
	/* memif: the socket's file system path (at most 107 bytes). */
	const char *memif_socket;
	enum gn_dpdk_memif_role memif_role;
	/* memif: interface id, matching the peer's (several per socket). */
	uint32_t memif_id;
	/* af_packet: the kernel interface, e.g. "veth0". */
	const char *ifname;
	/* pci: the port's PCI address, e.g. "0000:3b:00.0". */
	const char *pci_addr;
	/* Descriptors per queue (powers of two; 0: 1024). */
	uint16_t rx_ring_size;
	uint16_t tx_ring_size;
	/*
	 * IP MTU: the largest frame is mtu + 14 bytes of Ethernet header.
	 * Default 1500; memif takes up to 16370 (a 16 KiB frame), af_packet
	 * and PCI up to 9000 or what the interface allows.
	 */
	uint32_t mtu;
	/* Packet buffers in each of the port's pools (default 4096). */
	uint32_t pool_size;
	/* How long open waits for the link (and a memif peer); default 5000. */
	uint32_t link_timeout_ms;
	/*
	 * Called once per accepted frame when its payload is no longer
	 * needed, with that frame's cookie. It may run inside
	 * gn_dpdk_port_tx() (before it returns), inside a later tx or
	 * gn_dpdk_port_close(), on the sending thread; it must not call back
	 * into the port. NULL: nobody is told.
	 */
	void (*tx_done)(void *cookie);
	/*
	 * Payloads shorter than this are copied even where they could be
	 * attached: attaching costs a second buffer and a callback, more
	 * than copying a few hundred bytes. Default 512.
	 */
	uint32_t zc_min_payload;
	/* Copy every payload, never attach (for comparisons). */
	bool tx_copy_only;
	/*
	 * NULL, or a flag another thread sets to make open stop waiting for
	 * the link (and a memif peer): open then fails with -ECANCELED. With
	 * it, link_timeout_ms 0 means no time limit: a memif server waits
	 * for its first client with its socket open throughout.
	 */
	const atomic_bool *cancel;
	/*
	 * Return once the device has started, without waiting for the link:
	 * for memif servers whose clients come and go (the port sends and
	 * receives nothing until one is connected; gn_dpdk_port_link_up()
	 * tells). link_timeout_ms and cancel are then unused.
	 */
	bool no_link_wait;
};

/*
 * Fill `opts` (`opts_size` bytes, normally sizeof(*opts)) with defaults:
 * kind NONE, memif server id 0, rings 1024, mtu 1500, pool_size 4096,
 * link_timeout_ms 5000, zc_min_payload 512. NULL is a no-op.
 */
void gn_dpdk_port_opts_init(struct gn_dpdk_port_opts *opts, size_t opts_size);

/* An open port; opaque outside dpdk/. */
struct gn_dpdk_port;

/*
 * Open a port: create its virtual device (memif, af_packet) or find the
 * probed PCI device, give it one RX and one TX queue, start it and wait up
 * to link_timeout_ms for the link. A memif client first waits, within the
 * same time, for the server's socket to appear, and reconnects after
 * 300 ms, then after twice as long each time up to 5 s, until the server
 * answers (a server that made its socket but was not started yet never
 * answers a connection, and net_memif does not retry by itself; on a
 * loaded host the handshake itself may take longer than 300 ms). Call after
 * gn_dpdk_env_init(), from the thread that started the EAL.
 *
 * On success *out is the port, which the caller closes with
 * gn_dpdk_port_close(). Returns 0, or
 *   -ENODEV     the EAL is not running, the af_packet interface or PCI
 *               port does not exist;
 *   -EINVAL     bad options (unknown kind, missing socket, interface or
 *               address, a ring size that is not a power of two, an MTU
 *               out of range);
 *   -ENOENT     the memif socket's directory does not exist;
 *   -EPERM      no right to open a packet socket (af_packet needs
 *               CAP_NET_RAW);
 *   -ETIMEDOUT  the link did not come up in time (for memif: no peer
 *               connected);
 *   -ECANCELED  *cancel turned true while waiting for the link;
 *   -EMSGSIZE   the device refuses the MTU;
 *   another negative errno from DPDK.
 * gn_last_error() names the port, what was expected and what DPDK said.
 */
int gn_dpdk_port_open(const struct gn_dpdk_port_opts *opts,
		      struct gn_dpdk_port **out);

/*
 * Stop and free the port and set *p to NULL. Frames still held by the
 * driver are dropped and get their tx_done. Received frames not released
 * yet must not be used afterwards. NULL or *p NULL is a no-op.
 */
void gn_dpdk_port_close(struct gn_dpdk_port **p);

/* The port's name for logs, e.g. "net_memif0". */
const char *gn_dpdk_port_name(const struct gn_dpdk_port *port);

/* The port's Ethernet address into mac[6]. Returns 0 or -ENODEV. */
int gn_dpdk_port_mac(const struct gn_dpdk_port *port, uint8_t mac[6]);

/* Whether the link is up now (a memif peer connected). */
bool gn_dpdk_port_link_up(const struct gn_dpdk_port *port);

/* The largest frame the port sends or receives: mtu + 14. */
uint32_t gn_dpdk_port_max_frame(const struct gn_dpdk_port *port);

/*
 * Whether frames sent from registered memory reach the wire with no CPU
 * copy at all. *reason (if not NULL) gets a sentence saying why, for logs;
 * it lives as long as the port.
 */
bool gn_dpdk_port_zero_copy(const struct gn_dpdk_port *port,
			    const char **reason);

/*
 * Make [addr, addr + len) usable for attached payloads: registered with
 * DPDK as external memory (rounded out to whole pages) and mapped for DMA
 * by every PCI port, open now or later. Regions must not overlap. Without
 * it a PCI port copies payloads, which is always correct; memif and
 * af_packet ports attach payloads whether registered or not.
 *
 * Returns 0, or -EINVAL (NULL, 0 length), -EEXIST (overlaps a registered
 * region), -ENOSPC (too many regions), -ENODEV (EAL not running), or
 * DPDK's error. The caller keeps owning the memory and unregisters it
 * before freeing it.
 */
int gn_dpdk_mem_register(void *addr, size_t len);

/*
 * Undo gn_dpdk_mem_register() for the region starting at `addr`. No frame
 * from it may be in flight. Returns 0 or -ENOENT.
 */
int gn_dpdk_mem_unregister(void *addr);

/* One frame to send. */
struct gn_dpdk_frame {
	/* Copied before gn_dpdk_port_tx() returns; NULL when hdr_len 0. */
	const void *hdr;
	uint32_t hdr_len; /* at most GN_DPDK_FRAME_HDR_MAX */
	/* Kept by the caller until tx_done(cookie); NULL when 0 bytes. */
	const void *payload;
	uint32_t payload_len;
	/* Handed to tx_done. */
	void *cookie;
};

/*
 * Queue frames[0..n) for sending, in order. Returns how many were
 * accepted from the front (0..n): those get tx_done once each, the rest
 * stay the caller's (no tx_done) to offer again. A full ring or pool
 * gives a short count, not an error. Hard errors:
 *   -EINVAL    port or frames NULL, n negative;
 *   -EMSGSIZE  frames[0] is empty, its header is over
 *              GN_DPDK_FRAME_HDR_MAX, or it is longer than
 *              gn_dpdk_port_max_frame() (frames before a bad one are sent
 *              and counted, so the bad one is first on the next call);
 *   -ENETDOWN  nothing could be sent and the link is down (memif peer
 *              gone).
 * Not reentrant from tx_done.
 */
int gn_dpdk_port_tx(struct gn_dpdk_port *port,
		    const struct gn_dpdk_frame *frames, int n);

/* One received frame, lent by the port. */
struct gn_dpdk_rx {
	const void *data;
	uint32_t len;
	void *handle; /* the port's; give it back with rx_release */
};

/*
 * Take up to `max` received frames into out[]. Each stays valid until
 * gn_dpdk_port_rx_release(). A frame the driver split into several
 * buffers is made contiguous, or dropped and counted when it cannot be.
 * Returns the count (0 when nothing waits) or -EINVAL.
 */
int gn_dpdk_port_rx(struct gn_dpdk_port *port, struct gn_dpdk_rx *out, int max);

/* Give frames from gn_dpdk_port_rx() back; their data is gone after. */
void gn_dpdk_port_rx_release(struct gn_dpdk_port *port,
			     const struct gn_dpdk_rx *frames, int n);

/*
 * Wait up to `timeout_us` for a frame to receive, without burning a core:
 * poll for a few microseconds, then sleep between polls for times that
 * double up to 1 ms. Frames found wait for gn_dpdk_port_rx(). Returns 1
 * when a frame waits, 0 on timeout, -ENETDOWN when the link went down
 * with nothing to receive, -EINVAL for a NULL port.
 */
int gn_dpdk_port_wait_rx(struct gn_dpdk_port *port, uint32_t timeout_us);

struct gn_dpdk_port_stats {
	/* What Genie handed to / took from the driver. */
	uint64_t rx_packets;
	uint64_t rx_bytes;
	uint64_t tx_packets;
	uint64_t tx_bytes;
	/* tx calls that could not queue every frame offered. */
	uint64_t tx_ring_full;
	/* Frames not built because the packet buffer pool ran dry. */
	uint64_t tx_no_mbuf;
	/* Frames whose payload was attached vs copied. */
	uint64_t tx_zero_copy;
	uint64_t tx_copied;
	/* tx_done callbacks made. */
	uint64_t tx_done;
	/* Multi-buffer frames made contiguous, and those dropped. */
	uint64_t rx_linearized;
	uint64_t rx_multiseg_dropped;
	/* The driver's counters (rte_eth_stats). */
	uint64_t dev_rx_packets;
	uint64_t dev_tx_packets;
	uint64_t dev_rx_bytes;
	uint64_t dev_tx_bytes;
	/* Missed + errors + no buffer on receive. */
	uint64_t rx_dropped;
	uint64_t tx_errors;
};

/* Fill *st. Returns 0 or -EINVAL. */
int gn_dpdk_port_stats(const struct gn_dpdk_port *port,
		       struct gn_dpdk_port_stats *st);

#endif /* GN_DPDK_PORT_H */
