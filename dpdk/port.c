/*
 * Opening and closing a port (see port.h): options checked, the virtual
 * device created at run time (memif, af_packet) or the PCI port found,
 * pools made, one RX and one TX queue configured, the link awaited, and
 * whether payloads can be attached decided per driver. The data path is
 * in port_io.c, registered memory in mem.c.
 */
#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <linux/if_ether.h>

#include <rte_bus_vdev.h>
#include <rte_common.h>
#include <rte_dev.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>

#include "gn_error.h"
#include "port_internal.h"

GN_LOG_REGISTER(dpdk_port)

#define DEFAULT_RING 1024
#define DEFAULT_MTU 1500
#define MIN_MTU 68
#define MAX_MTU 9000
/*
 * memif has no wire: a frame only has to fit one ring buffer, and 16 KiB
 * buffers are what 9000-byte frames took anyway (bsize is a power of two).
 */
#define MEMIF_MAX_MTU (16384 - 14)
#define DEFAULT_POOL 4096
#define DEFAULT_LINK_MS 5000
#define DEFAULT_ZC_MIN 512
/* sun_path of a struct sockaddr_un holds 108 bytes with its NUL. */
#define SOCK_PATH_MAX 107

static unsigned g_vdev_seq;
static unsigned g_pool_seq;

void gn_dpdk_port_opts_init(struct gn_dpdk_port_opts *opts, size_t opts_size)
{
	struct gn_dpdk_port_opts d = {
		.opts_size = opts_size,
		.kind = GN_DPDK_PORT_NONE,
		.memif_role = GN_DPDK_MEMIF_SERVER,
		.rx_ring_size = DEFAULT_RING,
		.tx_ring_size = DEFAULT_RING,
		.mtu = DEFAULT_MTU,
		.pool_size = DEFAULT_POOL,
		.link_timeout_ms = DEFAULT_LINK_MS,
		.zc_min_payload = DEFAULT_ZC_MIN,
	};

	if (opts == NULL)
		return;
	memset(opts, 0, opts_size);
	memcpy(opts, &d, opts_size < sizeof(d) ? opts_size : sizeof(d));
}

static int opts_resolve(const struct gn_dpdk_port_opts *in,
			struct gn_dpdk_port_opts *out)
{
	gn_dpdk_port_opts_init(out, sizeof(*out));
	if (in == NULL)
		return gn_error_set(-EINVAL, "dpdk port: options are NULL");
	if (in->opts_size < sizeof(in->opts_size))
		return gn_error_set(-EINVAL,
				    "dpdk port: opts_size is %zu, expected at "
				    "least %zu; fill the options with "
				    "gn_dpdk_port_opts_init()",
				    in->opts_size, sizeof(in->opts_size));
#define FIELD_OK(f) \
	(offsetof(struct gn_dpdk_port_opts, f) + sizeof(in->f) <= in->opts_size)
#define TAKE(f)                         \
	do {                            \
		if (FIELD_OK(f))        \
			out->f = in->f; \
	} while (0)
	TAKE(kind);
	TAKE(memif_socket);
	TAKE(memif_role);
	TAKE(memif_id);
	TAKE(ifname);
	TAKE(pci_addr);
	TAKE(rx_ring_size);
	TAKE(tx_ring_size);
	TAKE(mtu);
	TAKE(pool_size);
	TAKE(link_timeout_ms);
	TAKE(tx_done);
	TAKE(zc_min_payload);
	TAKE(tx_copy_only);
	TAKE(cancel);
	TAKE(no_link_wait);
#undef TAKE
#undef FIELD_OK
	if (out->rx_ring_size == 0)
		out->rx_ring_size = DEFAULT_RING;
	if (out->tx_ring_size == 0)
		out->tx_ring_size = DEFAULT_RING;
	if (out->mtu == 0)
		out->mtu = DEFAULT_MTU;
	if (out->pool_size == 0)
		out->pool_size = DEFAULT_POOL;
	return 0;
}

static const char *kind_name(enum gn_dpdk_port_kind k)
{
	switch (k) {
	case GN_DPDK_PORT_MEMIF: return "memif";
	case GN_DPDK_PORT_AF_PACKET: return "af_packet";
	case GN_DPDK_PORT_PCI: return "pci";
	default: return "unknown";
	}
}

static int opts_check(const struct gn_dpdk_port_opts *o)
{
	switch (o->kind) {
	case GN_DPDK_PORT_MEMIF:
		if (o->memif_socket == NULL || o->memif_socket[0] == '\0')
			return gn_error_set(-EINVAL,
					    "dpdk port: memif needs a socket "
					    "path, memif_socket is %s",
					    o->memif_socket ? "empty" : "NULL");
		if (strlen(o->memif_socket) > SOCK_PATH_MAX)
			return gn_error_set(-EINVAL,
					    "dpdk port: memif socket '%s' has "
					    "%zu bytes, a UNIX socket path "
					    "holds at most %d",
					    o->memif_socket,
					    strlen(o->memif_socket),
					    SOCK_PATH_MAX);
		if (strchr(o->memif_socket, ',') != NULL)
			return gn_error_set(
				-EINVAL,
				"dpdk port: memif socket '%s' holds "
				"',', which DPDK device arguments "
				"cannot carry",
				o->memif_socket);
		if (o->memif_role != GN_DPDK_MEMIF_SERVER &&
		    o->memif_role != GN_DPDK_MEMIF_CLIENT)
			return gn_error_set(
				-EINVAL,
				"dpdk port: memif role %d, expected "
				"server (%d) or client (%d)",
				(int)o->memif_role, GN_DPDK_MEMIF_SERVER,
				GN_DPDK_MEMIF_CLIENT);
		break;
	case GN_DPDK_PORT_AF_PACKET:
		if (o->ifname == NULL || o->ifname[0] == '\0')
			return gn_error_set(-EINVAL,
					    "dpdk port: af_packet needs an "
					    "interface name, ifname is %s",
					    o->ifname ? "empty" : "NULL");
		if (strlen(o->ifname) >= IF_NAMESIZE ||
		    strchr(o->ifname, ',') != NULL)
			return gn_error_set(-EINVAL,
					    "dpdk port: af_packet interface "
					    "name '%s' is not a valid kernel "
					    "interface name",
					    o->ifname);
		break;
	case GN_DPDK_PORT_PCI:
		if (o->pci_addr == NULL || o->pci_addr[0] == '\0')
			return gn_error_set(-EINVAL,
					    "dpdk port: pci needs an address "
					    "such as 0000:3b:00.0, pci_addr "
					    "is %s",
					    o->pci_addr ? "empty" : "NULL");
		break;
	default:
		return gn_error_set(-EINVAL,
				    "dpdk port: kind %d, expected memif (%d), "
				    "af_packet (%d) or pci (%d)",
				    (int)o->kind, GN_DPDK_PORT_MEMIF,
				    GN_DPDK_PORT_AF_PACKET, GN_DPDK_PORT_PCI);
	}
	if (!rte_is_power_of_2(o->rx_ring_size) ||
	    !rte_is_power_of_2(o->tx_ring_size))
		return gn_error_set(-EINVAL,
				    "dpdk port: ring sizes rx %u tx %u, "
				    "expected powers of two",
				    o->rx_ring_size, o->tx_ring_size);
	if (o->mtu < MIN_MTU ||
	    o->mtu > (o->kind == GN_DPDK_PORT_MEMIF ? MEMIF_MAX_MTU : MAX_MTU))
		return gn_error_set(-EINVAL,
				    "dpdk port: mtu %u, expected %d..%d (memif "
				    "%d..%d)",
				    o->mtu, MIN_MTU, MAX_MTU, MIN_MTU,
				    MEMIF_MAX_MTU);
	if (o->pool_size < 2u * GN_PORT_TX_BURST)
		return gn_error_set(-EINVAL,
				    "dpdk port: pool_size %u, expected at "
				    "least %d",
				    o->pool_size, 2 * GN_PORT_TX_BURST);
	return 0;
}

/* A DPDK return code as a negative errno: some drivers return -1. */
static int dpdk_rc(int rc)
{
	if (rc >= 0)
		return rc;
	if (rc == -1)
		return rte_errno > 0 ? -rte_errno : -EIO;
	return rc;
}

static unsigned log2u(unsigned v)
{
	unsigned l = 0;

	while ((1u << (l + 1)) <= v)
		l++;
	return l;
}

/*
 * af_packet needs CAP_NET_RAW and an existing interface; DPDK's probe fails
 * on either with only a log line, so both are checked first to say which.
 */
static int af_packet_precheck(const char *ifname)
{
	int fd;

	if (if_nametoindex(ifname) == 0)
		return gn_error_set(-ENODEV,
				    "dpdk port: af_packet interface '%s' does "
				    "not exist (if_nametoindex: %s); expected "
				    "a kernel interface in this network "
				    "namespace",
				    ifname, strerror(errno));
	fd = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));
	if (fd < 0) {
		int err = errno;

		if (err == EPERM || err == EACCES)
			return gn_error_set(
				-EPERM,
				"dpdk port: af_packet on '%s': no "
				"permission to open a packet socket "
				"(%s); it needs CAP_NET_RAW",
				ifname, strerror(err));
		return gn_error_set(-err,
				    "dpdk port: af_packet on '%s': packet "
				    "socket: %s",
				    ifname, strerror(err));
	}
	close(fd);
	return 0;
}

/*
 * net_memif refuses a socket whose directory is missing with only a log
 * line and EINVAL; say which directory.
 */
static int memif_precheck(const char *path)
{
	char dir[SOCK_PATH_MAX + 1];
	struct stat st;
	char *slash;

	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (slash == NULL)
		return 0; /* relative to the working directory */
	if (slash == dir)
		slash[1] = '\0';
	else
		*slash = '\0';
	if (stat(dir, &st) != 0)
		return gn_error_set(-ENOENT,
				    "dpdk port: memif socket '%s': directory "
				    "'%s' does not exist (%s); expected an "
				    "existing directory",
				    path, dir, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return gn_error_set(-ENOENT,
				    "dpdk port: memif socket '%s': '%s' is not "
				    "a directory",
				    path, dir);
	return 0;
}

/* Smallest power of two >= v. */
static uint32_t pow2_up(uint32_t v)
{
	return rte_align32pow2(v);
}

/*
 * Build the device name and arguments of a virtual port. af_packet's
 * frames hold the kernel's tpacket header as well as the frame, and its
 * blocks are whole pages holding whole frames.
 */
static int vdev_args(struct gn_dpdk_port *p, const struct gn_dpdk_port_opts *o,
		     char *args, size_t len, uint32_t *af_framesz)
{
	unsigned seq = __atomic_fetch_add(&g_vdev_seq, 1, __ATOMIC_RELAXED);
	int n;

	/*
	 * memif: bsize makes each ring buffer hold a whole frame. With the
	 * default 2048 bytes, 9014-byte frames travel chained over several
	 * descriptors, and in our tests with DPDK 22.11's net_memif such
	 * frames arrived corrupt, out of order or not at all.
	 */
	if (o->kind == GN_DPDK_PORT_MEMIF) {
		snprintf(p->name, sizeof(p->name), "net_memif%u", seq);
		n = snprintf(args, len,
			     "role=%s,socket=%s,id=%u,socket-abstract=no,"
			     "rsize=%u,bsize=%u",
			     o->memif_role == GN_DPDK_MEMIF_CLIENT ? "client"
								   : "server",
			     o->memif_socket, o->memif_id,
			     log2u(RTE_MAX(o->rx_ring_size, o->tx_ring_size)),
			     RTE_MAX(pow2_up(p->max_frame), 2048u));
		snprintf(p->desc, sizeof(p->desc),
			 "%s (memif %s, socket %s, id %u)", p->name,
			 o->memif_role == GN_DPDK_MEMIF_CLIENT ? "client"
							       : "server",
			 o->memif_socket, o->memif_id);
	} else {
		uint32_t framesz = pow2_up(p->max_frame + 256);
		uint32_t blocksz = RTE_MAX(framesz, 4096u);
		uint32_t cnt = RTE_MAX(o->rx_ring_size, blocksz / framesz);

		*af_framesz = framesz;
		snprintf(p->name, sizeof(p->name), "net_af_packet%u", seq);
		n = snprintf(args, len,
			     "iface=%s,qpairs=1,blocksz=%u,framesz=%u,"
			     "framecnt=%u",
			     o->ifname, blocksz, framesz, cnt);
		snprintf(p->desc, sizeof(p->desc), "%s (af_packet on %s)",
			 p->name, o->ifname);
	}
	if (n < 0 || (size_t)n >= len)
		return gn_error_set(-ENAMETOOLONG,
				    "dpdk port %s: device arguments do not "
				    "fit in %zu bytes",
				    p->name, len);
	return 0;
}

static struct rte_mempool *pool_make(struct gn_dpdk_port *p, const char *what,
				     unsigned n, uint16_t priv, uint32_t room)
{
	unsigned seq = __atomic_fetch_add(&g_pool_seq, 1, __ATOMIC_RELAXED);
	char name[RTE_MEMPOOL_NAMESIZE];
	struct rte_mempool *mp;

	snprintf(name, sizeof(name), "gnport%u_%s", seq, what);
	mp = rte_pktmbuf_pool_create(name, n, RTE_MIN(n / 8, 256u),
				     RTE_ALIGN_CEIL(priv, RTE_MBUF_PRIV_ALIGN),
				     (uint16_t)(room + RTE_PKTMBUF_HEADROOM),
				     (int)rte_socket_id());
	if (mp == NULL) {
		int err = rte_errno > 0 ? rte_errno : ENOMEM;

		gn_error_set(-err,
			     "dpdk port %s: %s pool of %u buffers x %u bytes: "
			     "%s (the EAL's memory is -m / mem_mb)",
			     p->name, what, n, room, rte_strerror(err));
	}
	return mp;
}

static int wait_link(struct gn_dpdk_port *p, int64_t deadline,
		     const atomic_bool *cancel)
{
	while (!gn_dpdk_port_dev_link_up(p->port_id)) {
		if (cancel != NULL && atomic_load(cancel))
			return -ECANCELED;
		if (gn_port_now_ns() >= deadline)
			return -ETIMEDOUT;
		gn_port_sleep_ns(2000000);
	}
	return 0;
}

/* Wait for the memif server's socket file; the client cannot connect before. */
static int wait_socket(const char *path, int64_t deadline)
{
	struct stat st;

	while (stat(path, &st) != 0 || !S_ISSOCK(st.st_mode)) {
		if (gn_port_now_ns() >= deadline)
			return -ETIMEDOUT;
		gn_port_sleep_ns(2000000);
	}
	return 0;
}

static void zc_decide(struct gn_dpdk_port *p, const struct gn_dpdk_port_opts *o,
		      const struct rte_eth_dev_info *info)
{
	bool multiseg = info->tx_offload_capa & RTE_ETH_TX_OFFLOAD_MULTI_SEGS;

	p->attach_ok = multiseg && !o->tx_copy_only;
	p->attach_any = false;
	p->zero_copy = false;
	if (o->tx_copy_only) {
		p->zc_reason = "tx_copy_only is set: every payload is copied "
			       "into a packet buffer";
	} else if (!multiseg) {
		p->zc_reason = "the driver cannot send frames of several "
			       "buffers (no MULTI_SEGS offload), so payloads "
			       "are copied behind their header";
	} else if (o->kind == GN_DPDK_PORT_MEMIF) {
		p->attach_any = true;
		p->zc_reason =
			"net_memif copies every frame into the shared "
			"memory ring it shares with its peer; payloads are "
			"attached, so that copy is the only one (memif's "
			"own zero-copy mode needs the sender's whole pool "
			"in one region)";
	} else if (o->kind == GN_DPDK_PORT_AF_PACKET) {
		p->attach_any = true;
		p->zc_reason = "net_af_packet copies every frame into the "
			       "kernel's PACKET_MMAP ring; payloads are "
			       "attached, so that copy is the only one";
	} else if (rte_eal_iova_mode() != RTE_IOVA_VA) {
		p->attach_ok = false;
		p->zc_reason =
			"the EAL runs in IOVA-as-PA mode, where external "
			"memory has no DMA address, so payloads are "
			"copied";
	} else {
		p->zero_copy = true;
		p->zc_reason = "the NIC reads attached payloads by DMA from "
			       "registered memory";
	}
}

static void free_pools(struct gn_dpdk_port *p)
{
	rte_mempool_free(p->tx_pool);
	rte_mempool_free(p->ext_pool);
	rte_mempool_free(p->rx_pool);
}

static int port_find_pci(struct gn_dpdk_port *p, const char *addr)
{
	int rc;

	snprintf(p->name, sizeof(p->name), "%s", addr);
	snprintf(p->desc, sizeof(p->desc), "%s (pci)", addr);
	if (rte_eth_dev_get_port_by_name(addr, &p->port_id) == 0)
		return 0;
	/* Not probed at start (e.g. --no-pci): try hot-plugging it. */
	rc = rte_dev_probe(addr);
	if (rc == 0 && rte_eth_dev_get_port_by_name(addr, &p->port_id) == 0)
		return 0;
	return gn_error_set(-ENODEV,
			    "dpdk port %s: no such DPDK port; probing it "
			    "said: %s (the EAL starts with --no-pci unless "
			    "no_pci is false, and the device must be bound "
			    "to vfio-pci)",
			    p->desc, rc ? rte_strerror(-dpdk_rc(rc)) : "ok");
}

/*
 * The largest MTU the device takes, as rte_eth_dev_configure() checks it:
 * max_rx_pktlen less the Ethernet overhead, bounded by max_mtu.
 */
static uint32_t dev_max_mtu(const struct rte_eth_dev_info *info)
{
	uint32_t overhead = RTE_ETHER_HDR_LEN + RTE_ETHER_CRC_LEN;

	if (info->max_mtu != UINT16_MAX && info->max_rx_pktlen > info->max_mtu)
		overhead = info->max_rx_pktlen - info->max_mtu;
	if (info->max_rx_pktlen <= overhead)
		return info->max_mtu;
	return RTE_MIN((uint32_t)info->max_mtu, info->max_rx_pktlen - overhead);
}

static int port_configure(struct gn_dpdk_port *p,
			  const struct gn_dpdk_port_opts *o, uint32_t rx_room)
{
	struct rte_eth_dev_info info;
	struct rte_eth_conf conf;
	uint16_t nb_rx = o->rx_ring_size, nb_tx = o->tx_ring_size;
	uint32_t dev_mtu, cfg_mtu = p->mtu;
	int rc;

	rc = rte_eth_dev_info_get(p->port_id, &info);
	if (rc != 0)
		return gn_error_set(dpdk_rc(rc),
				    "dpdk port %s: device info: %s", p->desc,
				    rte_strerror(-dpdk_rc(rc)));
	p->dev = info.device;
	dev_mtu = dev_max_mtu(&info);
	if (p->mtu > dev_mtu && o->kind == GN_DPDK_PORT_MEMIF) {
		/*
		 * net_memif advertises 1518-byte frames but carries any
		 * length, split over ring descriptors, and checks none: the
		 * device is configured at its advertised MTU and Genie's
		 * own limit (max_frame) is what holds.
		 */
		GN_LOG(DEBUG, dpdk_port,
		       "%s: MTU %u above the %u net_memif advertises; "
		       "memif carries it anyway",
		       p->desc, p->mtu, dev_mtu);
		cfg_mtu = dev_mtu;
	} else if (p->mtu > dev_mtu || p->mtu < info.min_mtu) {
		return gn_error_set(-EMSGSIZE,
				    "dpdk port %s: MTU %u requested, the "
				    "device allows %u..%u",
				    p->desc, p->mtu, info.min_mtu, dev_mtu);
	}
	zc_decide(p, o, &info);

	/*
	 * Where any payload of zc_min bytes or more is attached, a send
	 * buffer holds a header and at most a short payload.
	 */
	p->tx_pool = pool_make(
		p, "tx", o->pool_size, 0,
		p->attach_any
			? (uint32_t)RTE_MIN((uint64_t)p->max_frame,
					    (uint64_t)GN_DPDK_FRAME_HDR_MAX +
						    p->zc_min)
			: p->max_frame);
	if (p->tx_pool == NULL)
		return gn_last_error_code();
	p->ext_pool = pool_make(p, "ext", o->pool_size,
				sizeof(struct gn_port_ext_ctx), 0);
	if (p->ext_pool == NULL)
		return gn_last_error_code();
	p->rx_pool = pool_make(p, "rx", o->pool_size, 0, rx_room);
	if (p->rx_pool == NULL)
		return gn_last_error_code();

	memset(&conf, 0, sizeof(conf));
	conf.rxmode.mtu = cfg_mtu;
	if (p->attach_ok)
		conf.txmode.offloads |= RTE_ETH_TX_OFFLOAD_MULTI_SEGS;
	rc = rte_eth_dev_configure(p->port_id, 1, 1, &conf);
	if (rc != 0)
		return gn_error_set(dpdk_rc(rc),
				    "dpdk port %s: configure with 1 rx + 1 tx "
				    "queue, MTU %u: %s",
				    p->desc, p->mtu,
				    rte_strerror(-dpdk_rc(rc)));
	rc = rte_eth_dev_adjust_nb_rx_tx_desc(p->port_id, &nb_rx, &nb_tx);
	if (rc != 0)
		return gn_error_set(
			dpdk_rc(rc), "dpdk port %s: ring sizes %u/%u: %s",
			p->desc, nb_rx, nb_tx, rte_strerror(-dpdk_rc(rc)));
	rc = rte_eth_rx_queue_setup(p->port_id, 0, nb_rx,
				    (unsigned)rte_eth_dev_socket_id(p->port_id),
				    NULL, p->rx_pool);
	if (rc != 0)
		return gn_error_set(dpdk_rc(rc),
				    "dpdk port %s: rx queue of %u: %s", p->desc,
				    nb_rx, rte_strerror(-dpdk_rc(rc)));
	rc = rte_eth_tx_queue_setup(p->port_id, 0, nb_tx,
				    (unsigned)rte_eth_dev_socket_id(p->port_id),
				    NULL);
	if (rc != 0)
		return gn_error_set(dpdk_rc(rc),
				    "dpdk port %s: tx queue of %u: %s", p->desc,
				    nb_tx, rte_strerror(-dpdk_rc(rc)));
	return 0;
}

/*
 * A memif client that connected while its server was still being set up
 * (the socket exists from device creation, the server answers only once
 * started) is never answered, and net_memif does not retry: the client
 * reconnects, stopping and starting, after this long without a link.
 */
#define MEMIF_RECONNECT_NS 300000000L
#define MEMIF_RECONNECT_MAX_NS 5000000000L

static int port_start(struct gn_dpdk_port *p, const struct gn_dpdk_port_opts *o,
		      int64_t deadline)
{
	bool client = o->kind == GN_DPDK_PORT_MEMIF &&
		      o->memif_role == GN_DPDK_MEMIF_CLIENT;
	const char *why = "link still down";
	int64_t slice, wait_ns = MEMIF_RECONNECT_NS;
	int rc, tries = 0;

	for (;;) {
		tries++;
		rc = rte_eth_dev_start(p->port_id);
		if (rc != 0) {
			/* A client's connect() refused: try again. */
			if (!client || gn_port_now_ns() >= deadline)
				return gn_error_set(
					dpdk_rc(rc),
					"dpdk port %s: start: %s%s", p->desc,
					rte_strerror(-dpdk_rc(rc)),
					client ? " (could not connect to the "
						 "memif server)"
					       : "");
			gn_port_sleep_ns(10000000);
			continue;
		}
		if (o->no_link_wait)
			return 0;
		slice = client ? RTE_MIN(deadline, gn_port_now_ns() + wait_ns)
			       : deadline;
		wait_ns = RTE_MIN(2 * wait_ns, MEMIF_RECONNECT_MAX_NS);
		rc = wait_link(p, slice, o->cancel);
		if (rc == -ECANCELED) {
			rte_eth_dev_stop(p->port_id);
			return gn_error_set(-ECANCELED,
					    "dpdk port %s: canceled while "
					    "waiting for the link",
					    p->desc);
		}
		if (rc == 0) {
			if (tries > 1)
				GN_LOG(INFO, dpdk_port,
				       "%s: link up after %d connects", p->desc,
				       tries);
			return 0;
		}
		rte_eth_dev_stop(p->port_id);
		if (gn_port_now_ns() >= deadline)
			break;
	}
	if (o->kind == GN_DPDK_PORT_MEMIF)
		why = client ? "the memif server never completed the "
			       "connection"
			     : "no memif peer connected";
	return gn_error_set(-ETIMEDOUT,
			    "dpdk port %s: %s within %u ms (%d connect "
			    "attempts); expected the link up",
			    p->desc, why, o->link_timeout_ms, tries);
}

int gn_dpdk_port_open(const struct gn_dpdk_port_opts *opts,
		      struct gn_dpdk_port **out)
{
	struct gn_dpdk_port_opts o;
	struct gn_dpdk_port *p;
	char args[512];
	uint32_t rx_room, af_framesz = 0;
	int64_t deadline;
	int rc;

	if (out == NULL)
		return gn_error_set(-EINVAL, "dpdk port: out is NULL");
	*out = NULL;
	rc = opts_resolve(opts, &o);
	if (rc == 0)
		rc = opts_check(&o);
	if (rc != 0)
		return rc;
	if (!gn_port_eal_running())
		return gn_error_set(-ENODEV,
				    "dpdk port: %s port: the EAL is not "
				    "running; call gn_dpdk_env_init() first",
				    kind_name(o.kind));
	if (o.kind == GN_DPDK_PORT_AF_PACKET) {
		rc = af_packet_precheck(o.ifname);
		if (rc != 0)
			return rc;
	}
	if (o.kind == GN_DPDK_PORT_MEMIF) {
		rc = memif_precheck(o.memif_socket);
		if (rc != 0)
			return rc;
	}
	p = calloc(1, sizeof(*p));
	if (p == NULL)
		return gn_error_set(-ENOMEM, "dpdk port: out of host memory");
	p->kind = o.kind;
	p->mtu = o.mtu;
	p->max_frame = o.mtu + GN_DPDK_ETH_HDR_LEN;
	p->zc_min = o.zc_min_payload;
	p->tx_done = o.tx_done;
	deadline = o.link_timeout_ms == 0 && o.cancel != NULL
			   ? INT64_MAX
			   : gn_port_now_ns() +
				     (int64_t)o.link_timeout_ms * 1000000;

	if (o.kind == GN_DPDK_PORT_PCI) {
		rc = port_find_pci(p, o.pci_addr);
		if (rc != 0)
			goto err_free;
	} else {
		rc = vdev_args(p, &o, args, sizeof(args), &af_framesz);
		if (rc != 0)
			goto err_free;
		rc = rte_vdev_init(p->name, args);
		if (rc != 0) {
			rc = dpdk_rc(rc);
			gn_error_set(rc,
				     "dpdk port %s: creating the device with "
				     "'%s' failed: %s (DPDK's log says why)",
				     p->desc, args, rte_strerror(-rc));
			goto err_free;
		}
		p->is_vdev = true;
		if (rte_eth_dev_get_port_by_name(p->name, &p->port_id) != 0) {
			rc = gn_error_set(-ENODEV,
					  "dpdk port %s: created but no "
					  "ethdev by that name",
					  p->desc);
			goto err_vdev;
		}
	}
	/*
	 * Received frames land whole in one buffer: memif fills buffers of
	 * any size, af_packet needs room for a whole ring frame.
	 */
	rx_room = RTE_ALIGN_CEIL(RTE_MAX(p->max_frame, 2048u), 128u);
	if (af_framesz > rx_room)
		rx_room = af_framesz;
	rc = port_configure(p, &o, rx_room);
	if (rc != 0)
		goto err_close;
	if (o.kind == GN_DPDK_PORT_MEMIF &&
	    o.memif_role == GN_DPDK_MEMIF_CLIENT &&
	    wait_socket(o.memif_socket, deadline) != 0) {
		rc = gn_error_set(-ETIMEDOUT,
				  "dpdk port %s: the memif server's socket "
				  "did not appear within %u ms; expected a "
				  "server on it",
				  p->desc, o.link_timeout_ms);
		goto err_close;
	}
	rc = port_start(p, &o, deadline);
	if (rc != 0)
		goto err_close;

	gn_dpdk_mem_port_add(p);
	GN_LOG(INFO, dpdk_port, "%s up, MTU %u; zero copy %s: %s", p->desc,
	       p->mtu, p->zero_copy ? "yes" : "no", p->zc_reason);
	*out = p;
	return 0;

err_close:
	rte_eth_dev_close(p->port_id);
	free_pools(p);
err_vdev:
	if (p->is_vdev)
		rte_vdev_uninit(p->name);
err_free:
	free(p);
	return rc;
}

void gn_dpdk_port_close(struct gn_dpdk_port **pp)
{
	struct gn_dpdk_port *p;
	int rc;

	if (pp == NULL || *pp == NULL)
		return;
	p = *pp;
	*pp = NULL;
	gn_dpdk_mem_port_remove(p);
	for (unsigned i = 0; i < p->stash_n; i++)
		rte_pktmbuf_free(p->stash[p->stash_head + i]);
	rc = rte_eth_dev_stop(p->port_id);
	if (rc != 0)
		GN_LOG(WARNING, dpdk_port, "%s: stop: %s", p->desc,
		       rte_strerror(-dpdk_rc(rc)));
	/* Close frees what the driver still holds: tx_done runs here. */
	rc = rte_eth_dev_close(p->port_id);
	if (rc != 0)
		GN_LOG(WARNING, dpdk_port, "%s: close: %s", p->desc,
		       rte_strerror(-dpdk_rc(rc)));
	if (p->is_vdev && rte_vdev_uninit(p->name) != 0)
		GN_LOG(DEBUG, dpdk_port, "%s: device already removed", p->desc);
	free_pools(p);
	GN_LOG(INFO, dpdk_port, "%s closed", p->desc);
	free(p);
}

const char *gn_dpdk_port_name(const struct gn_dpdk_port *port)
{
	return port ? port->name : "(null)";
}

int gn_dpdk_port_mac(const struct gn_dpdk_port *port, uint8_t mac[6])
{
	struct rte_ether_addr a;

	if (port == NULL || rte_eth_macaddr_get(port->port_id, &a) != 0)
		return gn_error_set(-ENODEV,
				    "dpdk port %s: no Ethernet "
				    "address",
				    port ? port->desc : "(null)");
	memcpy(mac, a.addr_bytes, 6);
	return 0;
}

bool gn_dpdk_port_link_up(const struct gn_dpdk_port *port)
{
	return port != NULL && gn_dpdk_port_dev_link_up(port->port_id);
}

uint32_t gn_dpdk_port_max_frame(const struct gn_dpdk_port *port)
{
	return port ? port->max_frame : 0;
}

bool gn_dpdk_port_zero_copy(const struct gn_dpdk_port *port,
			    const char **reason)
{
	if (reason != NULL)
		*reason = port ? port->zc_reason : "no port";
	return port != NULL && port->zero_copy;
}
