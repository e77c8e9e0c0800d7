/*
 * The frame exchange of the port tests (see dpdk_port_common.h).
 *
 * A frame is an Ethernet header (broadcast, source 02:00:00:00:00:<seed>,
 * type 0x88b5, the local experimental one the kernel ignores), then magic,
 * kind and number, then payload bytes that follow from seed, number and
 * offset. The header goes as the port's copied piece, the payload from a
 * registered buffer of slots, so attached (zero-copy) sends are exercised.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dpdk_port_common.h"
#include "gn_error.h"

#define ETHERTYPE 0x88b5
#define MAGIC 0x474e5054u /* "GNPT" */
#define HDR_LEN 26
#define MIN_SIZE 60
#define SLOTS 256
#define BURST 32

enum { K_DATA = 1, K_HELLO = 2, K_HELLO_READY = 3, K_FIN = 4 };

static uint8_t *g_done; /* tx_done calls per data frame */
static uint32_t g_frames;
static uint32_t g_done_ctl;

void xchg_opts_init(struct xchg_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->frames = 10000;
	o->seed = 1;
	o->peer_seed = 2;
	o->max_size = 1514;
	o->idle_ms = 2000;
	o->timeout_ms = 20000;
}

void xchg_tx_done(void *cookie)
{
	uintptr_t c = (uintptr_t)cookie;

	if (c == 0) {
		g_done_ctl++;
		return;
	}
	if (g_done != NULL && c - 1 < g_frames && g_done[c - 1] < 255)
		g_done[c - 1]++;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static uint32_t mix(uint32_t x)
{
	x ^= x >> 16;
	x *= 0x7feb352dU;
	x ^= x >> 15;
	x *= 0x846ca68bU;
	x ^= x >> 16;
	return x;
}

static uint32_t frame_size(uint32_t seed, uint32_t seq, uint32_t max)
{
	return MIN_SIZE + mix(seed * 2654435761u + seq) % (max - MIN_SIZE + 1);
}

static uint8_t pattern(uint32_t seed, uint32_t seq, uint32_t j)
{
	return (uint8_t)((seed * 131u + seq * 7u + j) ^ (j >> 8));
}

static void put32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, 4);
}

static uint32_t get32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return v;
}

static void make_hdr(uint8_t *h, uint32_t seed, uint32_t kind, uint32_t seq)
{
	memset(h, 0xff, 6);
	memcpy(h + 6, "\x02\x00\x00\x00\x00", 5);
	h[11] = (uint8_t)seed;
	h[12] = ETHERTYPE >> 8;
	h[13] = ETHERTYPE & 0xff;
	put32(h + 14, MAGIC);
	put32(h + 18, kind);
	put32(h + 22, seq);
}

/* Send one control frame (copied whole), retrying while the ring is full. */
static int send_ctl(struct gn_dpdk_port *port, uint32_t seed, uint32_t kind)
{
	uint8_t f[MIN_SIZE];
	struct gn_dpdk_frame fr = {.hdr = f, .hdr_len = MIN_SIZE};
	int rc;

	memset(f, 0, sizeof(f));
	make_hdr(f, seed, kind, 0);
	for (int i = 0; i < 1000; i++) {
		rc = gn_dpdk_port_tx(port, &fr, 1);
		if (rc != 0)
			return rc < 0 ? rc : 0;
		struct timespec ts = {0, 100000};
		nanosleep(&ts, NULL);
	}
	return -EAGAIN;
}

struct rx_state {
	bool seen_peer, started;
	uint32_t next;
	double last_rx;
};

static void rx_one(const struct xchg_opts *o, struct xchg_result *r,
		   struct rx_state *s, const uint8_t *d, uint32_t len)
{
	uint32_t kind, seq;

	if (len < HDR_LEN || d[12] != (ETHERTYPE >> 8) ||
	    d[13] != (ETHERTYPE & 0xff) || get32(d + 14) != MAGIC) {
		r->foreign++;
		return;
	}
	if (d[11] == o->seed) {
		r->own++;
		return;
	}
	if (d[11] != o->peer_seed) {
		r->foreign++;
		return;
	}
	kind = get32(d + 18);
	seq = get32(d + 22);
	switch (kind) {
	case K_HELLO: s->seen_peer = true; return;
	case K_HELLO_READY:
		s->seen_peer = true;
		s->started = true;
		return;
	case K_FIN: r->got_fin = true; return;
	case K_DATA: break;
	default: r->foreign++; return;
	}
	s->started = true;
	if (seq < s->next || seq >= o->frames) {
		r->out_of_order++;
		return;
	}
	r->lost += seq - s->next;
	s->next = seq + 1;
	r->recvd++;
	r->bytes_recvd += len;
	if (len !=
	    frame_size(o->peer_seed, seq,
		       o->peer_max_size ? o->peer_max_size : o->max_size)) {
		r->bad++;
		return;
	}
	for (uint32_t j = HDR_LEN; j < len; j++)
		if (d[j] != pattern(o->peer_seed, seq, j)) {
			r->bad++;
			return;
		}
}

static int rx_all(struct gn_dpdk_port *port, const struct xchg_opts *o,
		  struct xchg_result *r, struct rx_state *s)
{
	struct gn_dpdk_rx rx[64];
	int n = gn_dpdk_port_rx(port, rx, 64);

	if (n < 0)
		return n;
	for (int i = 0; i < n; i++)
		rx_one(o, r, s, rx[i].data, rx[i].len);
	gn_dpdk_port_rx_release(port, rx, n);
	if (n > 0)
		s->last_rx = now_s();
	return n;
}

/* Wait until both ends know the other is there (see the header). */
static int handshake(struct gn_dpdk_port *port, const struct xchg_opts *o,
		     struct xchg_result *r, struct rx_state *s, double deadline)
{
	double next_hello = 0;
	int rc;

	while (!s->started) {
		if (now_s() > deadline)
			return -ETIMEDOUT;
		if (now_s() >= next_hello) {
			rc = send_ctl(port, o->seed,
				      s->seen_peer ? K_HELLO_READY : K_HELLO);
			if (rc < 0)
				return rc;
			next_hello = now_s() + 0.01;
		}
		rc = gn_dpdk_port_wait_rx(port, 2000);
		if (rc < 0)
			return rc;
		rc = rx_all(port, o, r, s);
		if (rc < 0)
			return rc;
	}
	/* Make sure the peer also starts if it missed our ready. */
	return send_ctl(port, o->seed, K_HELLO_READY);
}

int xchg_run(struct gn_dpdk_port *port, const struct xchg_opts *o,
	     struct xchg_result *r)
{
	struct gn_dpdk_frame fr[BURST];
	struct rx_state s = {0};
	size_t region_len;
	uint8_t *region;
	uint8_t hdrs[BURST][HDR_LEN];
	bool fin_sent = false, registered;
	double t0, deadline;
	int rc = 0;

	memset(r, 0, sizeof(*r));
	region_len = ((size_t)SLOTS * o->max_size + 4095) & ~(size_t)4095;
	region = aligned_alloc(4096, region_len);
	g_done = calloc(o->frames, 1);
	g_frames = o->frames;
	g_done_ctl = 0;
	if (region == NULL || g_done == NULL) {
		free(region);
		free(g_done);
		g_done = NULL;
		return -ENOMEM;
	}
	registered = gn_dpdk_mem_register(region, region_len) == 0;
	if (!registered)
		fprintf(stderr, "xchg: payloads will be copied: %s\n",
			gn_last_error());

	deadline = now_s() + o->timeout_ms / 1000.0;
	rc = handshake(port, o, r, &s, deadline);
	t0 = now_s();
	s.last_rx = t0;
	while (rc == 0) {
		bool busy = false, rx_done, idle;
		double now = now_s();
		int n = 0, sent;

		if (now > deadline) {
			rc = -ETIMEDOUT;
			break;
		}
		if (r->sent < o->frames) {
			uint32_t want = o->frames - r->sent;

			if (o->rate > 0) {
				double allowed = (now - t0) * o->rate + 1;

				want = allowed > r->sent
					       ? (uint32_t)(allowed - r->sent)
					       : 0;
				if (want > o->frames - r->sent)
					want = o->frames - r->sent;
			}
			if (want > BURST)
				want = BURST;
			for (; n < (int)want; n++) {
				uint32_t seq = r->sent + (uint32_t)n;
				uint32_t size =
					frame_size(o->seed, seq, o->max_size);
				uint8_t *slot = region + (size_t)(seq % SLOTS) *
								 o->max_size;

				/* The slot's last payload must be done. */
				if (seq >= SLOTS && g_done[seq - SLOTS] == 0)
					break;
				make_hdr(hdrs[n], o->seed, K_DATA, seq);
				for (uint32_t j = HDR_LEN; j < size; j++)
					slot[j - HDR_LEN] =
						pattern(o->seed, seq, j);
				fr[n] = (struct gn_dpdk_frame){
					.hdr = hdrs[n],
					.hdr_len = HDR_LEN,
					.payload = slot,
					.payload_len = size - HDR_LEN,
					.cookie = (void *)(uintptr_t)(seq + 1),
				};
			}
			if (n > 0) {
				sent = gn_dpdk_port_tx(port, fr, n);
				if (sent < 0) {
					rc = sent;
					break;
				}
				for (int i = 0; i < sent; i++)
					r->bytes_sent += fr[i].hdr_len +
							 fr[i].payload_len;
				r->sent += (uint32_t)sent;
				busy |= sent > 0;
			}
		}
		n = rx_all(port, o, r, &s);
		if (n < 0) {
			rc = n;
			break;
		}
		busy |= n > 0;
		rx_done = s.next >= o->frames;
		idle = now_s() - s.last_rx > o->idle_ms / 1000.0;
		if (r->sent == o->frames && (rx_done || idle)) {
			if (o->send_fin && !fin_sent) {
				rc = send_ctl(port, o->seed, K_FIN);
				fin_sent = true;
				if (rc < 0)
					break;
			}
			if (!o->wait_fin || r->got_fin)
				break;
			if (idle && o->wait_fin) {
				rc = -ETIMEDOUT;
				break;
			}
		}
		if (!busy && (r->sent == o->frames || o->rate > 0)) {
			int w = gn_dpdk_port_wait_rx(port,
						     o->rate ? 100 : 1000);

			if (w < 0) {
				rc = w;
				break;
			}
		}
	}
	r->elapsed_s = now_s() - t0;
	r->lost += o->frames > s.next ? o->frames - s.next : 0;
	for (uint32_t i = 0; i < r->sent; i++) {
		if (g_done[i] == 0)
			r->done_missing++;
		else if (g_done[i] > 1)
			r->done_twice++;
	}
	for (uint32_t i = r->sent; i < o->frames; i++)
		if (g_done[i] != 0)
			r->done_twice++;
	r->done_ctl = g_done_ctl;
	r->rc = rc;
	if (registered)
		gn_dpdk_mem_unregister(region);
	free(region);
	free(g_done);
	g_done = NULL;
	return rc;
}

void xchg_print(const char *who, struct gn_dpdk_port *port,
		const struct xchg_result *r)
{
	struct gn_dpdk_port_stats st;
	const char *why;
	bool zc = gn_dpdk_port_zero_copy(port, &why);
	double mbit = r->elapsed_s > 0 ? (r->bytes_sent + r->bytes_recvd) *
						 8e-6 / r->elapsed_s
				       : 0;

	gn_dpdk_port_stats(port, &st);
	printf("RESULT who=%s rc=%d sent=%u recvd=%u bad=%u out_of_order=%u "
	       "lost=%u own=%u foreign=%u done_missing=%u done_twice=%u "
	       "done_ctl=%u fin=%d elapsed_ms=%.1f mbit_s=%.0f "
	       "tx_packets=%" PRIu64 " tx_done=%" PRIu64 " tx_zc=%" PRIu64
	       " tx_copied=%" PRIu64 " tx_ring_full=%" PRIu64
	       " rx_packets=%" PRIu64 " dev_tx=%" PRIu64 " dev_rx=%" PRIu64
	       " rx_dropped=%" PRIu64 " rx_linearized=%" PRIu64
	       " zero_copy=%d\n",
	       who, r->rc, r->sent, r->recvd, r->bad, r->out_of_order, r->lost,
	       r->own, r->foreign, r->done_missing, r->done_twice, r->done_ctl,
	       r->got_fin, r->elapsed_s * 1e3, mbit, st.tx_packets, st.tx_done,
	       st.tx_zero_copy, st.tx_copied, st.tx_ring_full, st.rx_packets,
	       st.dev_tx_packets, st.dev_rx_packets, st.rx_dropped,
	       st.rx_linearized, zc);
	printf("ZC who=%s %s\n", who, why);
	fflush(stdout);
}
