/*
 * One end of a port test as its own process: starts its own EAL (no
 * hugepages, no PCI, its own file prefix), opens a memif or af_packet
 * port and runs the frame exchange, or holds the link open until killed.
 *
 *   dpdk_port_peer --prefix P --kind memif --role client --socket S
 *                  [--id N] [--mtu M] [--frames N] [--seed S --peer-seed S]
 *                  [--max-size B] [--rate FPS] [--fin send|wait]
 *                  [--copy] [--mode exchange|hold] [--lcores L]
 *                  [--ring N] [--peer-max-size B]
 *   dpdk_port_peer --prefix P --kind af_packet --ifname IF ...
 *
 * Prints a "RESULT ..." line and exits 0 when every check passed, 1 when
 * one failed, 2 on bad arguments and 3 when the port would not open.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dpdk_env.h"
#include "dpdk_port_common.h"
#include "gn_error.h"
#include "port.h"

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{"prefix", 1, NULL, 'p'},   {"kind", 1, NULL, 'k'},
		{"role", 1, NULL, 'r'},	    {"socket", 1, NULL, 's'},
		{"id", 1, NULL, 'i'},	    {"ifname", 1, NULL, 'I'},
		{"mtu", 1, NULL, 'm'},	    {"frames", 1, NULL, 'n'},
		{"seed", 1, NULL, 'S'},	    {"peer-seed", 1, NULL, 'P'},
		{"max-size", 1, NULL, 'M'}, {"rate", 1, NULL, 'R'},
		{"fin", 1, NULL, 'f'},	    {"copy", 0, NULL, 'c'},
		{"mode", 1, NULL, 'o'},	    {"timeout-ms", 1, NULL, 't'},
		{"idle-ms", 1, NULL, 'd'},  {"lcores", 1, NULL, 'l'},
		{"ring", 1, NULL, 'g'},	    {"linger", 0, NULL, 'L'},	    {"peer-max-size", 1, NULL, 'X'},
		{NULL, 0, NULL, 0},
	};
	struct gn_dpdk_env_opts eo;
	struct gn_dpdk_port_opts po;
	struct gn_dpdk_port *port = NULL;
	struct xchg_opts xo;
	struct xchg_result xr;
	const char *mode = "exchange", *who = "peer";
	bool linger = false;
	int c, rc;

	gn_dpdk_env_opts_init(&eo, sizeof(eo));
	gn_dpdk_port_opts_init(&po, sizeof(po));
	xchg_opts_init(&xo);
	xo.seed = 2;
	xo.peer_seed = 1;
	po.tx_done = xchg_tx_done;
	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'p':
			eo.file_prefix = optarg;
			who = optarg;
			break;
		case 'k':
			po.kind = strcmp(optarg, "memif") == 0
					  ? GN_DPDK_PORT_MEMIF
				  : strcmp(optarg, "af_packet") == 0
					  ? GN_DPDK_PORT_AF_PACKET
					  : GN_DPDK_PORT_NONE;
			break;
		case 'r':
			po.memif_role = strcmp(optarg, "client") == 0
						? GN_DPDK_MEMIF_CLIENT
						: GN_DPDK_MEMIF_SERVER;
			break;
		case 's': po.memif_socket = optarg; break;
		case 'i': po.memif_id = (uint32_t)atoi(optarg); break;
		case 'I': po.ifname = optarg; break;
		case 'm': po.mtu = (uint32_t)atoi(optarg); break;
		case 'n': xo.frames = (uint32_t)atoi(optarg); break;
		case 'S': xo.seed = (uint32_t)atoi(optarg); break;
		case 'P': xo.peer_seed = (uint32_t)atoi(optarg); break;
		case 'M': xo.max_size = (uint32_t)atoi(optarg); break;
		case 'R': xo.rate = (uint32_t)atoi(optarg); break;
		case 'f':
			xo.send_fin = strcmp(optarg, "send") == 0;
			xo.wait_fin = strcmp(optarg, "wait") == 0;
			break;
		case 'c': po.tx_copy_only = true; break;
		case 'L': linger = true; break;
		case 'o': mode = optarg; break;
		case 't': xo.timeout_ms = (uint32_t)atoi(optarg); break;
		case 'd': xo.idle_ms = (uint32_t)atoi(optarg); break;
		case 'l': eo.lcores = optarg; break;
		case 'X': xo.peer_max_size = (uint32_t)atoi(optarg); break;
		case 'g':
			po.rx_ring_size = (uint16_t)atoi(optarg);
			po.tx_ring_size = po.rx_ring_size;
			break;
		default: return 2;
		}
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (linger) {
		sigset_t set;

		sigemptyset(&set);
		sigaddset(&set, SIGTERM);
		sigprocmask(SIG_BLOCK, &set, NULL);
	}
	rc = gn_dpdk_env_init(&eo);
	if (rc != 0) {
		fprintf(stderr, "%s: EAL: %s\n", who, gn_last_error());
		return 3;
	}
	rc = gn_dpdk_port_open(&po, &port);
	if (rc != 0) {
		printf("OPEN_FAILED who=%s rc=%d %s\n", who, rc,
		       gn_last_error());
		gn_dpdk_env_fini();
		return 3;
	}
	printf("UP who=%s port=%s\n", who, gn_dpdk_port_name(port));
	if (strcmp(mode, "hold") == 0) {
		/* Keep the link up until killed (or an hour passes). */
		for (int i = 0; i < 3600; i++)
			sleep(1);
		rc = 0;
	} else {
		rc = xchg_run(port, &xo, &xr);
		xchg_print(who, port, &xr);
		/*
		 * --linger: keep the link up until SIGTERM, so the other end
		 * reads its device counters before memif resets them.
		 */
		if (linger) {
			sigset_t set;
			int sig;

			sigemptyset(&set);
			sigaddset(&set, SIGTERM);
			sigwait(&set, &sig);
		}
		if (rc == 0 && (xr.bad || xr.out_of_order || xr.done_missing ||
				xr.done_twice))
			rc = -EPROTO;
		if (rc != 0)
			fprintf(stderr, "%s: exchange failed: %d %s\n", who, rc,
				rc == -EPROTO ? "checks" : gn_last_error());
	}
	gn_dpdk_port_close(&port);
	gn_dpdk_env_fini();
	return rc == 0 ? 0 : 1;
}
