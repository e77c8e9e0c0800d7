/*
 * The frame exchange both ends of a port test run: each end sends a
 * numbered stream of frames whose sizes and bytes follow from a seed and
 * the frame number, and checks the peer's stream for size, bytes and
 * order. Used by the memif test (in the test process) and by
 * dpdk_port_peer (the other process, or both ends of the af_packet test).
 */
#ifndef GN_TESTS_DPDK_PORT_COMMON_H
#define GN_TESTS_DPDK_PORT_COMMON_H

#include <stdbool.h>
#include <stdint.h>

#include "port.h"

struct xchg_opts {
	uint32_t frames;	/* data frames to send (and expect) */
	uint32_t seed;		/* ours, 1..255 */
	uint32_t peer_seed;	/* the peer's */
	uint32_t max_size;	/* largest frame we send, >= 60 */
	uint32_t peer_max_size; /* largest the peer sends; 0: max_size */
	uint32_t rate;	  /* frames per second we send; 0: as fast as we can */
	bool send_fin;	  /* send FIN once we have everything */
	bool wait_fin;	  /* finish only after the peer's FIN */
	uint32_t idle_ms; /* give up receiving after this long idle */
	uint32_t timeout_ms; /* the whole exchange */
};

struct xchg_result {
	uint32_t sent, recvd;
	uint32_t bad;	       /* wrong size or bytes */
	uint32_t out_of_order; /* a frame number going backwards */
	uint32_t lost;	       /* gaps in the frame numbers */
	uint32_t own, foreign; /* our own frames seen, frames not ours */
	uint32_t done_missing, done_twice, done_ctl;
	bool got_fin;
	int rc; /* 0, or the error that stopped the exchange */
	double elapsed_s;
	uint64_t bytes_sent, bytes_recvd;
};

/* Fill opts with the defaults: 10,000 frames of 60..1514 bytes. */
void xchg_opts_init(struct xchg_opts *o);

/*
 * Run the exchange on an open port. The port must have been opened with
 * tx_done = xchg_tx_done. Returns 0 when every check passed.
 */
int xchg_run(struct gn_dpdk_port *port, const struct xchg_opts *o,
	     struct xchg_result *r);

void xchg_tx_done(void *cookie);

/* One line "RESULT key=value ..." for logs and for the parent to parse. */
void xchg_print(const char *who, struct gn_dpdk_port *port,
		const struct xchg_result *r);

#endif
