/*
 * What this host offers for moving tensors between machines, and which
 * path Genie takes: RDMA with GPUDirect (an RDMA device whose port is up,
 * a GPU, and dma-buf memory registration, so a NIC reads GPU memory),
 * RDMA with pinned-host staging (an RDMA device, no GPU path), or the
 * DPDK/TCP data plane with pinned-host staging. Read-only; no device is
 * opened beyond querying it.
 */
#ifndef GN_DPDK_RDMA_PROBE_H
#define GN_DPDK_RDMA_PROBE_H

#include <stdbool.h>

#define GN_RDMA_MAX_DEVICES 16

struct gn_rdma_device {
	char name[64];
	char transport[16]; /* "InfiniBand", "Ethernet" (RoCE), "iWARP" */
	int ports, ports_active;
};

enum gn_xfer_path {
	GN_XFER_STAGING = 0,   /* DPDK/TCP, pinned-host staging */
	GN_XFER_RDMA_STAGING,  /* RDMA writes from pinned host memory */
	GN_XFER_RDMA_GPUDIRECT /* RDMA writes straight from GPU memory */
};

struct gn_rdma_probe {
	int ndevices;
	struct gn_rdma_device dev[GN_RDMA_MAX_DEVICES];
	bool gpu;	/* an NVIDIA GPU is visible (/dev/nvidia0) */
	bool dmabuf_mr; /* rdma-core can register dma-buf memory */
	bool peermem;	/* nvidia_peermem is loaded (legacy GPUDirect) */
	enum gn_xfer_path path;
	char reason[256]; /* why this path, in a sentence */
};

/* Probe. Returns 0 (also when nothing is found) or -ENOMEM. */
int gn_rdma_probe(struct gn_rdma_probe *p);

/* "gpudirect-rdma", "rdma-staging", "staging". */
const char *gn_xfer_path_name(enum gn_xfer_path path);

#endif /* GN_DPDK_RDMA_PROBE_H */
