/*
 * What a dpdk:// target string names (transport_dpdk.c): the kind of port
 * and the two ends' addresses. Pure C, no rte_*.h.
 *
 *   memif:/path/to/socket
 *       processes on one host over a memif socket. The listener is the
 *       memif server and takes up to GN_DPDK_MEMIF_CLIENTS clients, each
 *       on a memif interface id of its own: a connecting process claims
 *       the lowest free id (gn_dpdk_memif_claim()), the listener opens a
 *       port for every id claimed (gn_dpdk_memif_claims()), and a
 *       client's addresses follow from its id (nothing to set).
 *   af_packet:IFACE,ip=A.B.C.D[,peer=E.F.G.H][,port=N]
 *       a kernel interface (a veth, a NIC without a DPDK driver): `ip` is
 *       this end's address; a connector names the listener's `peer` and
 *       `port` (default 7070); the peer's Ethernet address is learnt.
 *   pci:DDDD:BB:DD.F,ip=A.B.C.D[,peer=E.F.G.H][,port=N]
 *       a NIC bound to vfio-pci, hot-plugged into the EAL, which then
 *       runs on hugepages (DMA needs them); addresses as for af_packet.
 */
#ifndef GN_DPDK_TARGET_H
#define GN_DPDK_TARGET_H

#include <stdbool.h>
#include <stdint.h>

#include "rel.h"

/* memif clients one listener serves at once (interface ids 0..N-1). */
#define GN_DPDK_MEMIF_CLIENTS 16

struct gn_dpdk_target {
	bool af_packet;	 /* af_packet on a kernel interface */
	bool pci;	 /* a NIC with a DPDK driver; else memif */
	char sock[200];	 /* memif socket */
	char ifname[32]; /* af_packet interface, or the PCI address */
	struct gn_rel_addr self, peer;
};

/*
 * Parse `spec` (what follows "dpdk://") for a listener (`server`) or a
 * connector into *t. A memif connector gets the addresses of id 0; see
 * gn_dpdk_target_memif_id(). Returns 0, -EINVAL naming the expected forms,
 * or -ENODEV when an af_packet interface does not exist.
 */
int gn_dpdk_target_parse(const char *spec, bool server,
			 struct gn_dpdk_target *t);

/* Give a memif connector the addresses of interface id `id`. */
void gn_dpdk_target_memif_id(struct gn_dpdk_target *t, uint32_t id);

/*
 * The memif interface id a listener's frame to `dst_mac` goes out on, or
 * -1 when the address is no memif client's.
 */
int gn_dpdk_memif_id_of(const uint8_t dst_mac[6]);

/*
 * Claim the lowest memif interface id of socket `sock` that no other
 * process on this host holds, for as long as the returned descriptor is
 * open (closed, or the process gone, the id is free again). The claim is
 * an abstract Unix socket named after a hash of the socket's absolute
 * path (gn_dpdk_memif_key()), so it needs no file and no permission, and
 * vanishes with its process; claims are per network namespace. Returns
 * the descriptor (>= 0) with *id set, or -EBUSY when all
 * GN_DPDK_MEMIF_CLIENTS ids are held, or -errno.
 */
int gn_dpdk_memif_claim(const char *sock, uint32_t *id);

/* The key of socket `sock`'s claims: every spelling of one path agrees. */
uint64_t gn_dpdk_memif_key(const char *sock);

/*
 * How many ids a listener needs for the claims held now on socket `key`,
 * looking at ids `from` and up only (those below are open already): one
 * more than the highest claimed, or `from` when none is. *probe is a
 * descriptor this keeps between calls (-1 the first time; the caller
 * closes it). Returns that count or -errno.
 */
int gn_dpdk_memif_claims(uint64_t key, uint32_t from, int *probe);

#endif /* GN_DPDK_TARGET_H */
