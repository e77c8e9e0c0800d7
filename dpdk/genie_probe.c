/*
 * genie-probe: what this host offers for moving tensors, and the path
 * Genie takes (RDMA + GPUDirect, RDMA + staging, or staging over the DPDK
 * or TCP data plane). `--json` prints one JSON object.
 */
#include <stdio.h>
#include <string.h>

#include "rdma_probe.h"

int main(int argc, char **argv)
{
	struct gn_rdma_probe p;
	int json = argc > 1 && strcmp(argv[1], "--json") == 0;

	if (argc > 1 && !json) {
		fprintf(stderr, "usage: genie-probe [--json]\n");
		return 2;
	}
	if (gn_rdma_probe(&p) != 0)
		return 1;
	if (json) {
		printf("{\"rdma_devices\": [");
		for (int i = 0; i < p.ndevices; i++)
			printf("%s{\"name\": \"%s\", \"transport\": \"%s\", "
			       "\"ports\": %d, \"ports_active\": %d}",
			       i ? ", " : "", p.dev[i].name, p.dev[i].transport,
			       p.dev[i].ports, p.dev[i].ports_active);
		printf("], \"gpu\": %s, \"dmabuf_mr\": %s, \"peermem\": %s, "
		       "\"path\": \"%s\"}\n",
		       p.gpu ? "true" : "false", p.dmabuf_mr ? "true" : "false",
		       p.peermem ? "true" : "false", gn_xfer_path_name(p.path));
		return 0;
	}
	if (p.ndevices == 0)
		printf("no RDMA device\n");
	for (int i = 0; i < p.ndevices; i++)
		printf("RDMA device %s (%s): %d port(s), %d active\n",
		       p.dev[i].name, p.dev[i].transport, p.dev[i].ports,
		       p.dev[i].ports_active);
	printf("GPU: %s; dma-buf memory registration: %s; nvidia_peermem: "
	       "%s\n",
	       p.gpu ? "visible" : "none", p.dmabuf_mr ? "yes" : "no",
	       p.peermem ? "loaded" : "not loaded");
	printf("path: %s (%s)\n", gn_xfer_path_name(p.path), p.reason);
	return 0;
}
