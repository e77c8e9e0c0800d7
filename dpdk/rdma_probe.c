/*
 * The transfer-path probe (see rdma_probe.h), over rdma-core's verbs.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <infiniband/verbs.h>

#include "gn_error.h"
#include "rdma_probe.h"

const char *gn_xfer_path_name(enum gn_xfer_path path)
{
	switch (path) {
	case GN_XFER_RDMA_GPUDIRECT: return "gpudirect-rdma";
	case GN_XFER_RDMA_STAGING: return "rdma-staging";
	default: return "staging";
	}
}

static const char *transport_name(struct ibv_context *ctx, uint8_t port)
{
	struct ibv_port_attr pa;

	if (ctx->device->transport_type == IBV_TRANSPORT_IWARP)
		return "iWARP";
	if (ibv_query_port(ctx, port, &pa) == 0 &&
	    pa.link_layer == IBV_LINK_LAYER_ETHERNET)
		return "Ethernet";
	return "InfiniBand";
}

static void probe_device(struct ibv_device *d, struct gn_rdma_device *out)
{
	struct ibv_device_attr da;
	struct ibv_context *ctx = ibv_open_device(d);

	snprintf(out->name, sizeof(out->name), "%s", ibv_get_device_name(d));
	snprintf(out->transport, sizeof(out->transport), "unknown");
	if (ctx == NULL)
		return;
	if (ibv_query_device(ctx, &da) == 0) {
		out->ports = da.phys_port_cnt;
		for (uint8_t p = 1; p <= da.phys_port_cnt; p++) {
			struct ibv_port_attr pa;

			if (ibv_query_port(ctx, p, &pa) == 0 &&
			    pa.state == IBV_PORT_ACTIVE)
				out->ports_active++;
		}
		snprintf(out->transport, sizeof(out->transport), "%s",
			 transport_name(ctx, 1));
	}
	ibv_close_device(ctx);
}

int gn_rdma_probe(struct gn_rdma_probe *p)
{
	struct ibv_device **list;
	int n = 0, active = 0;

	memset(p, 0, sizeof(*p));
	list = ibv_get_device_list(&n);
	for (int i = 0; list != NULL && i < n && i < GN_RDMA_MAX_DEVICES; i++) {
		probe_device(list[i], &p->dev[p->ndevices]);
		active += p->dev[p->ndevices].ports_active;
		p->ndevices++;
	}
	if (list != NULL)
		ibv_free_device_list(list);
	p->gpu = access("/dev/nvidia0", F_OK) == 0;
	p->peermem = access("/sys/module/nvidia_peermem", F_OK) == 0;
	/* rdma-core 34 and later register dma-buf memory (GPU memory). */
#ifdef GN_HAVE_DMABUF_MR
	p->dmabuf_mr = true;
#endif
	if (p->ndevices == 0) {
		p->path = GN_XFER_STAGING;
		snprintf(p->reason, sizeof(p->reason),
			 "no RDMA device: tensors move over the DPDK or TCP "
			 "data plane from pinned host memory");
	} else if (active == 0) {
		p->path = GN_XFER_STAGING;
		snprintf(p->reason, sizeof(p->reason),
			 "%d RDMA device(s), no port active: DPDK or TCP data "
			 "plane with pinned-host staging",
			 p->ndevices);
	} else if (p->gpu && (p->dmabuf_mr || p->peermem)) {
		p->path = GN_XFER_RDMA_GPUDIRECT;
		snprintf(p->reason, sizeof(p->reason),
			 "RDMA port active, GPU visible, %s: RDMA writes "
			 "straight from GPU memory",
			 p->dmabuf_mr ? "dma-buf registration available"
				      : "nvidia_peermem loaded");
	} else {
		p->path = GN_XFER_RDMA_STAGING;
		snprintf(p->reason, sizeof(p->reason),
			 "RDMA port active, %s: RDMA writes from pinned host "
			 "memory",
			 p->gpu ? "no way to register GPU memory"
				: "no GPU visible");
	}
	return 0;
}
