/*
 * Reliable messaging (dpdk/rel.c) between two endpoints over a pair of
 * lossy links (dpdk/fault.c) with a simulated clock (headers and frames
 * alone: rel_wire_test.c): handshake, large messages arriving bit-exact under
 * loss, bursts, reordering and duplication, failure within the retry limit at
 * 100% loss, strays, refusals, and the rule that a buffer is never handed back
 * while the layer below may still read it.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fault.h"
#include "gn_error.h"
#include "rel.h"

#define MAXMSG 64

struct side;

struct net {
	struct side *a, *b;
	uint64_t now;
	int defer_tx_done; /* hold tx_done a while, like a NIC ring */
};

struct pending_tx {
	void *ref;
	const uint8_t *payload;
	uint64_t at;
};

struct side {
	struct net *net;
	struct gn_rel_ep *ep;
	struct gn_rel_addr addr;
	struct gn_fault *link; /* what this side sends goes through it */
	struct side *peer;
	struct gn_rel_session *s; /* the one session (client or accepted) */
	/* received messages */
	uint8_t *rx_buf[MAXMSG];
	uint64_t rx_len[MAXMSG];
	int rx_done[MAXMSG];
	int refuse;
	/* sent messages, and their buffers */
	const uint8_t *src[MAXMSG];
	uint64_t src_len[MAXMSG];
	uint8_t *pieces[MAXMSG * 16]; /* sendv's buffers, freed at the end */
	int npieces;
	int sent_status[MAXMSG];
	int sent_done[MAXMSG];
	int closed, closed_status;
	/* held transmissions */
	struct pending_tx *held;
	size_t nheld, capheld;
	uint64_t tx_done_count;
};

static uint8_t g_frame[16384];

static void tx_done_later(struct side *sd, void *ref, const void *payload)
{
	if (sd->nheld == sd->capheld) {
		sd->capheld = sd->capheld ? 2 * sd->capheld : 1024;
		sd->held = realloc(sd->held, sd->capheld * sizeof(*sd->held));
		assert_non_null(sd->held);
	}
	sd->held[sd->nheld++] =
		(struct pending_tx){ref, payload, sd->net->now + 50000};
}

static int tx(void *ctx, const struct gn_rel_pkt *p)
{
	struct side *sd = ctx;

	assert_true(p->hdr_len + p->payload_len <= sizeof(g_frame));
	memcpy(g_frame, p->hdr, p->hdr_len);
	if (p->payload_len)
		memcpy(g_frame + p->hdr_len, p->payload, p->payload_len);
	assert_int_equal(gn_fault_offer(sd->link, g_frame,
					p->hdr_len + p->payload_len,
					sd->net->now),
			 0);
	if (p->tx_ref != NULL) {
		if (sd->net->defer_tx_done)
			tx_done_later(sd, p->tx_ref, p->payload);
		else
			gn_rel_tx_done(sd->ep, p->tx_ref);
	}
	return 0;
}

static void on_accept(void *ctx, struct gn_rel_session *s)
{
	struct side *sd = ctx;

	sd->s = s;
}

/*
 * Messages longer than g_split bytes (when set) are reassembled split:
 * their bytes from g_split on go to a buffer of their own, appended to
 * rx_buf when the message completes, so a piece put on the wrong side or
 * at the wrong offset shows as a mismatch.
 */
static uint64_t g_split;

static int rx_buffer(void *ctx, struct gn_rel_session *s, uint64_t id,
		     uint64_t len, const uint8_t *first, uint32_t first_len,
		     struct gn_rel_rx *rx)
{
	struct side *sd = ctx;

	(void)s;
	if (first != NULL)
		assert_true(first_len <= len);
	if (sd->refuse || id >= MAXMSG)
		return -1;
	if (sd->rx_buf[id] == NULL)
		sd->rx_buf[id] = malloc(len ? len : 1);
	sd->rx_len[id] = len;
	rx->buf = sd->rx_buf[id];
	if (g_split && len > g_split) {
		rx->split = g_split;
		rx->tail = malloc(len - g_split);
		assert_non_null(rx->tail);
	}
	return 0;
}

static void on_message(void *ctx, struct gn_rel_session *s, uint64_t id,
		       const struct gn_rel_rx *rx, uint64_t len)
{
	struct side *sd = ctx;

	(void)s;
	assert_true(id < MAXMSG);
	assert_ptr_equal(rx->buf, sd->rx_buf[id]);
	assert_int_equal(len, sd->rx_len[id]);
	if (rx->split < len) {
		memcpy(rx->buf + rx->split, rx->tail, len - rx->split);
		free(rx->tail);
	}
	sd->rx_done[id]++;
}

static void on_sent(void *ctx, struct gn_rel_session *s, void *cookie,
		    int status)
{
	struct side *sd = ctx;
	uintptr_t id = (uintptr_t)cookie;

	(void)s;
	/* Never while the layer below may still read the buffer. */
	for (size_t i = 0; sd->src[id] != NULL && i < sd->nheld; i++)
		if (sd->held[i].payload >= sd->src[id] &&
		    sd->held[i].payload < sd->src[id] + sd->src_len[id])
			fail_msg("message %lu handed back with a packet still "
				 "in the TX ring",
				 (unsigned long)id);
	sd->sent_status[id] = status;
	sd->sent_done[id]++;
}

static void on_closed(void *ctx, struct gn_rel_session *s, int status)
{
	struct side *sd = ctx;

	if (s == sd->s)
		sd->s = NULL;
	sd->closed++;
	sd->closed_status = status;
}

static void deliver(void *ctx, const uint8_t *frame, size_t len)
{
	struct side *to = ctx;

	gn_rel_input(to->ep, frame, len, to->net->now);
}

static void side_init(struct side *sd, struct net *net, int server,
		      const struct gn_fault_opts *fo,
		      const struct gn_rel_config *cfg_in)
{
	struct gn_rel_config cfg;
	struct gn_rel_ops ops = {
		.ctx = sd,
		.tx = tx,
		.on_accept = on_accept,
		.rx_buffer = rx_buffer,
		.on_message = on_message,
		.on_sent = on_sent,
		.on_closed = on_closed,
	};

	memset(sd, 0, sizeof(*sd));
	sd->net = net;
	sd->addr = (struct gn_rel_addr){{2, 0, 0, 0, 0, (uint8_t)server},
					0x0a000001u + (uint32_t)server,
					(uint16_t)(7000 + server)};
	if (cfg_in)
		cfg = *cfg_in;
	else
		gn_rel_config_init(&cfg, sizeof(cfg));
	cfg.accept = server;
	sd->ep = gn_rel_ep_create(&cfg, &sd->addr, &ops);
	assert_non_null(sd->ep);
	sd->link = gn_fault_create(fo);
	assert_non_null(sd->link);
}

static void side_fini(struct side *sd)
{
	gn_rel_ep_destroy(&sd->ep);
	gn_fault_destroy(&sd->link);
	for (int i = 0; i < MAXMSG; i++)
		free(sd->rx_buf[i]);
	for (int i = 0; i < sd->npieces; i++)
		free(sd->pieces[i]);
	free(sd->held);
}

/* Release held transmissions that are due (out of the list first). */
static void release_held(struct side *sd)
{
	void **due = malloc((sd->nheld + 1) * sizeof(*due));
	size_t k = 0, nd = 0;

	assert_non_null(due);
	for (size_t i = 0; i < sd->nheld; i++) {
		if (sd->held[i].at <= sd->net->now)
			due[nd++] = sd->held[i].ref;
		else
			sd->held[k++] = sd->held[i];
	}
	sd->nheld = k;
	for (size_t i = 0; i < nd; i++) {
		sd->tx_done_count++;
		gn_rel_tx_done(sd->ep, due[i]);
	}
	free(due);
}

/* Advance the simulated clock until `done` or `limit` ns have passed. */
static void run(struct net *n, int (*done)(struct net *), uint64_t limit)
{
	uint64_t end = n->now + limit;

	while (!done(n) && n->now < end) {
		uint64_t next = UINT64_MAX, t;

		gn_fault_deliver(n->a->link, n->now, deliver, n->b);
		gn_fault_deliver(n->b->link, n->now, deliver, n->a);
		release_held(n->a);
		release_held(n->b);
		t = gn_rel_poll(n->a->ep, n->now);
		next = t < next ? t : next;
		t = gn_rel_poll(n->b->ep, n->now);
		next = t < next ? t : next;
		t = gn_fault_next_due(n->a->link);
		next = t < next ? t : next;
		t = gn_fault_next_due(n->b->link);
		next = t < next ? t : next;
		if (n->a->nheld || n->b->nheld)
			next = next < n->now + 10000 ? next : n->now + 10000;
		/* Jump to the next event, at least 1 us on. */
		n->now =
			next > n->now + 1000
				? (next == UINT64_MAX ? n->now + 1000000 : next)
				: n->now + 1000;
	}
}

static struct net *g_n;
static int g_want;

static int accepted(struct net *n)
{
	return n->b->s != NULL;
}

static int all_sent(struct net *n)
{
	for (int i = 0; i < g_want; i++)
		if (!n->a->sent_done[i])
			return 0;
	return 1;
}

/* ---- tests ------------------------------------------------------------------
 */

/*
 * A runs `nmsg` messages of `size` bytes (pattern by id) to B through
 * links with `fo`; returns when all are acked or after `limit` ns.
 */
/*
 * Send message i as `pieces` separate buffers (gn_rel_sendv): cut at
 * uneven points, one piece of a single byte and an empty one among them.
 * 0: one buffer through gn_rel_send(). Frees what it made.
 */
static void send_msg(struct side *a, int i, const uint8_t *src, size_t len,
		     int pieces)
{
	struct iovec iov[16];
	uint8_t *copy[16] = {0};
	size_t cut[17];
	int n = 0;

	if (pieces == 0) {
		assert_int_equal(gn_rel_send(a->s, (uint64_t)i, src, len,
					     (void *)(uintptr_t)i, 0),
				 0);
		return;
	}
	assert_true(pieces >= 3 && pieces <= 15);
	cut[0] = 0;
	for (int k = 1; k < pieces; k++) {
		size_t c = len / (size_t)pieces * (size_t)k + (size_t)(k * 37);

		if (c > len)
			c = len;
		if (c < cut[k - 1])
			c = cut[k - 1];
		cut[k] = c;
	}
	cut[pieces] = len;
	if (len > 2) /* piece 1 holds one byte, piece 2 none */
		cut[1] = 1, cut[2] = cut[2] > 1 ? 1 : cut[2];
	for (int k = 0; k < pieces; k++) {
		size_t plen = cut[k + 1] > cut[k] ? cut[k + 1] - cut[k] : 0;

		if (cut[k + 1] < cut[k])
			cut[k + 1] = cut[k];
		copy[n] = malloc(plen ? plen : 1);
		memcpy(copy[n], src + cut[k], plen);
		iov[n].iov_base = copy[n];
		iov[n].iov_len = plen;
		n++;
	}
	a->src[i] = NULL; /* the pieces are not one range */
	assert_int_equal(gn_rel_sendv(a->s, (uint64_t)i, iov, n,
				      (void *)(uintptr_t)i, 0),
			 0);
	/* Kept by the caller until on_sent: leak them to the test's end. */
	for (int k = 0; k < n; k++)
		a->pieces[a->npieces++] = copy[k];
}

static void transfer(const struct gn_fault_opts *fo, int nmsg, size_t size,
		     uint64_t limit, int defer, int expect_ok, int pieces)
{
	struct net n = {.defer_tx_done = defer};
	struct side a, b;
	uint8_t *src[MAXMSG];
	struct gn_rel_stats st;
	struct gn_fault_stats fs;

	side_init(&a, &n, 0, fo, NULL);
	side_init(&b, &n, 1, fo, NULL);
	a.peer = &b;
	b.peer = &a;
	n.a = &a;
	n.b = &b;
	g_n = &n;
	assert_int_equal(gn_rel_connect(a.ep, &b.addr, 0, &a.s), 0);
	for (int i = 0; i < nmsg; i++) {
		size_t len = size + (size_t)i * 977;

		src[i] = malloc(len ? len : 1);
		for (size_t k = 0; k < len; k++)
			src[i][k] =
				(uint8_t)(k * 31 + (size_t)i * 7 + (k >> 13));
		a.src[i] = src[i];
		a.src_len[i] = len;
		send_msg(&a, i, src[i], len, pieces);
	}
	/* Traffic to move: whoever drives A must keep polling. */
	if (nmsg > 0)
		assert_true(gn_rel_busy(a.ep));
	g_want = nmsg;
	run(&n, all_sent, limit);
	gn_fault_get_stats(a.link, &fs);
	/* Everything acked, nothing owed: A may sleep to its deadlines. */
	if (expect_ok)
		assert_false(gn_rel_busy(a.ep));
	for (int i = 0; i < nmsg; i++) {
		size_t len = size + (size_t)i * 977;

		assert_int_equal(a.sent_done[i], 1);
		if (!expect_ok) {
			assert_int_equal(a.sent_status[i], -ETIMEDOUT);
			continue;
		}
		if (a.sent_status[i] != 0)
			fail_msg("message %d failed: %d (%s)", i,
				 a.sent_status[i], gn_last_error());
		assert_int_equal(b.rx_done[i], 1); /* once, not twice */
		assert_int_equal(b.rx_len[i], len);
		if (len && memcmp(src[i], b.rx_buf[i], len) != 0)
			fail_msg("message %d of %zu bytes differs", i, len);
	}
	if (expect_ok && a.s != NULL && fo->delay_ns > 0) {
		struct gn_rel_stats ss;

		/* Round trips: at least the link's delay there and back. */
		gn_rel_session_stats(a.s, &ss);
		print_message("  rtt p50 %llu p90 %llu p99 %llu ns over %llu "
			      "samples (link delay %llu ns each way)\n",
			      (unsigned long long)ss.rtt_p50_ns,
			      (unsigned long long)ss.rtt_p90_ns,
			      (unsigned long long)ss.rtt_p99_ns,
			      (unsigned long long)ss.rtt_samples,
			      (unsigned long long)fo->delay_ns);
		assert_true(ss.rtt_samples > 0);
		assert_true(ss.rtt_p50_ns <= ss.rtt_p90_ns);
		assert_true(ss.rtt_p90_ns <= ss.rtt_p99_ns);
		assert_true(ss.rtt_p50_ns * 10 >= 2 * fo->delay_ns * 9);
	}
	if (expect_ok) {
		gn_rel_ep_stats(a.ep, &st);
		print_message(
			"  %d msgs x ~%zu B, drop %.2f dup %.2f reorder "
			"%.2f burst %llu/%llu ms: %llu pkts, %llu "
			"retransmits (%llu on holes), %llu of %llu frames lost "
			"on the "
			"way, %.1f ms simulated\n",
			nmsg, size, fo->drop, fo->dup, fo->reorder,
			(unsigned long long)(fo->burst_len_ns / 1000000),
			(unsigned long long)(fo->burst_every_ns / 1000000),
			(unsigned long long)st.pkts_sent,
			(unsigned long long)st.retransmits,
			(unsigned long long)st.hole_retransmits,
			(unsigned long long)(fs.dropped + fs.burst_dropped),
			(unsigned long long)fs.offered, n.now / 1e6);
	}
	for (int i = 0; i < nmsg; i++)
		free(src[i]);
	/* Let held transmissions drain before the endpoints go. */
	n.defer_tx_done = 0;
	for (int k = 0; k < 100 && (a.nheld || b.nheld); k++) {
		n.now += 100000;
		release_held(&a);
		release_held(&b);
	}
	side_fini(&a);
	side_fini(&b);
}

/*
 * Backpressure: a receiver that holds its session gives no credit, so the
 * sender stops after what was already allowed, probes instead of failing
 * (however long the hold), and on release (its window update lost, on
 * purpose) learns the credit from a probe and finishes bit-exact.
 */
static void test_hold(void **state)
{
	enum { NMSG = 3 };
	const size_t len = 2u << 20;
	struct net n = {0};
	struct side a, b;
	struct gn_fault_opts fo, lossy;
	struct gn_fault *keep, *black;
	struct gn_rel_stats sa, sb;
	uint8_t *src[NMSG];
	uint64_t probes, rx_before;

	(void)state;
	gn_fault_opts_init(&fo, sizeof(fo));
	fo.seed = 5;
	fo.delay_ns = 20000;
	side_init(&a, &n, 0, &fo, NULL);
	side_init(&b, &n, 1, &fo, NULL);
	a.peer = &b;
	b.peer = &a;
	n.a = &a;
	n.b = &b;
	assert_int_equal(gn_rel_connect(a.ep, &b.addr, 0, &a.s), 0);
	run(&n, accepted, 100000000ull);
	assert_non_null(b.s);
	gn_rel_session_hold(b.s, true);
	/* The hold reaches A with B's next packet: an ack. */
	for (int i = 0; i < NMSG; i++) {
		src[i] = malloc(len);
		assert_non_null(src[i]);
		for (size_t k = 0; k < len; k++)
			src[i][k] = (uint8_t)(k * 13 + (size_t)i * 101);
		a.src[i] = src[i];
		a.src_len[i] = len;
		send_msg(&a, i, src[i], len, 0);
	}
	g_want = NMSG;
	/* Held for 3 s: nothing fails, little moves, A probes. */
	run(&n, all_sent, 3000000000ull);
	gn_rel_session_stats(a.s, &sa);
	gn_rel_session_stats(b.s, &sb);
	print_message("  held 3 s: %llu packets received of ~%zu, %llu "
		      "probes, %llu retransmits\n",
		      (unsigned long long)sb.pkts_received,
		      (size_t)(NMSG * len / 1450),
		      (unsigned long long)sa.probes_sent,
		      (unsigned long long)sa.retransmits);
	assert_int_equal(a.closed, 0);
	assert_int_equal(b.closed, 0);
	assert_int_equal(a.sent_done[NMSG - 1], 0);
	assert_true(sb.pkts_received <= 1024 + 16);
	/* An RTO, then doubling to rto_max (500 ms): about 17 in 3 s. */
	assert_true(sa.probes_sent >= 8 && sa.probes_sent <= 40);
	assert_true(gn_rel_poll(a.ep, n.now) > n.now); /* no busy loop */
	assert_false(gn_rel_busy(a.ep));
	assert_int_equal(sb.rx_holds, 1);
	/* Release, with the window update lost on the way. */
	gn_fault_opts_init(&lossy, sizeof(lossy));
	lossy.drop = 1.0;
	black = gn_fault_create(&lossy);
	assert_non_null(black);
	keep = b.link;
	b.link = black;
	rx_before = sb.pkts_received;
	probes = sa.probes_sent;
	gn_rel_session_hold(b.s, false);
	b.link = keep;
	gn_fault_destroy(&black);
	run(&n, all_sent, 20000000000ull);
	gn_rel_session_stats(a.s, &sa);
	gn_rel_session_stats(b.s, &sb);
	assert_true(sa.probes_sent > probes); /* a probe found the credit */
	assert_true(sb.pkts_received > rx_before);
	for (int i = 0; i < NMSG; i++) {
		assert_int_equal(a.sent_done[i], 1);
		assert_int_equal(a.sent_status[i], 0);
		assert_int_equal(b.rx_done[i], 1);
		assert_int_equal(b.rx_len[i], len);
		assert_memory_equal(b.rx_buf[i], src[i], len);
		free(src[i]);
	}
	side_fini(&a);
	side_fini(&b);
}

static void test_clean_link(void **state)
{
	struct gn_fault_opts fo;

	(void)state;
	gn_fault_opts_init(&fo, sizeof(fo));
	fo.delay_ns = 5000;
	/* Empty, one byte, one packet, a few, and a large message. */
	transfer(&fo, 4, 0, 1000000000ull, 0, 1, 0);
	transfer(&fo, 3, 1, 1000000000ull, 0, 1, 0);
	transfer(&fo, 2, 32u << 20, 10000000000ull, 0, 1, 0);
	/* The same from scattered pieces (gn_rel_sendv). */
	transfer(&fo, 3, 100000, 1000000000ull, 0, 1, 7);
	transfer(&fo, 2, 4u << 20, 10000000000ull, 1, 1, 15);
}

/* A link with 5% loss, 5% reordering and 2% duplicates. */
static void lossy(struct gn_fault_opts *fo, uint64_t seed)
{
	gn_fault_opts_init(fo, sizeof(*fo));
	fo->seed = seed;
	fo->delay_ns = 20000;
	fo->drop = 0.05;
	fo->reorder = 0.05;
	fo->dup = 0.02;
}

/* Scattered pieces under loss, reordering, duplication, late tx_done. */
static void test_pieces_under_loss(void **state)
{
	struct gn_fault_opts fo;

	(void)state;
	lossy(&fo, 21);
	transfer(&fo, 6, 1u << 20, 120000000000ull, 1, 1, 9);
}

/* Messages reassembled split (the payload placed apart), under loss. */
static void test_split_under_loss(void **state)
{
	struct gn_fault_opts fo;

	(void)state;
	lossy(&fo, 33);
	g_split = 1000; /* inside the first packet */
	transfer(&fo, 4, 1u << 20, 120000000000ull, 0, 1, 0);
	g_split = 3u * (1514 - GN_REL_FRAME_HDR); /* on a packet boundary */
	transfer(&fo, 4, (1u << 20) + 7, 120000000000ull, 1, 1, 5);
	g_split = 0;
}

static void test_loss_reorder_duplication(void **state)
{
	static const struct {
		double drop, dup, reorder;
		uint64_t burst_every, burst_len;
	} mixes[] = {
		{0.01, 0, 0, 0, 0},
		{0.05, 0, 0, 0, 0},
		{0.20, 0, 0, 0, 0},
		{0, 0.05, 0, 0, 0},
		{0, 0, 0.10, 0, 0},
		{0.05, 0.05, 0.05, 0, 0},
		/* 100 ms of total loss every second */
		{0.01, 0, 0, 1000000000ull, 100000000ull},
	};
	struct gn_fault_opts fo;

	(void)state;
	for (size_t i = 0; i < sizeof(mixes) / sizeof(mixes[0]); i++) {
		gn_fault_opts_init(&fo, sizeof(fo));
		fo.seed = 100 + i;
		fo.delay_ns = 20000;
		fo.jitter_ns = 5000;
		fo.drop = mixes[i].drop;
		fo.dup = mixes[i].dup;
		fo.reorder = mixes[i].reorder;
		fo.burst_every_ns = mixes[i].burst_every;
		fo.burst_len_ns = mixes[i].burst_len;
		transfer(&fo, 8, 2u << 20, 120000000000ull, 0, 1, 0);
	}
}

static void test_256mib_under_loss(void **state)
{
	struct gn_fault_opts fo;

	(void)state;
	gn_fault_opts_init(&fo, sizeof(fo));
	fo.seed = 7;
	fo.delay_ns = 10000;
	fo.drop = 0.05;
	fo.reorder = 0.02;
	fo.dup = 0.01;
	transfer(&fo, 1, 256u << 20, 600000000000ull, 1, 1, 0);
}

static void test_total_loss_fails_within_retry_limit(void **state)
{
	struct gn_fault_opts fo;
	struct gn_rel_config cfg;
	struct net n = {0};
	struct side a, b;
	uint8_t msg[5000] = {1};

	(void)state;
	gn_fault_opts_init(&fo, sizeof(fo));
	fo.drop = 1.0;
	transfer(&fo, 2, 3000, 600000000000ull, 0, 0, 0);

	/* Established first, then the link dies: messages fail too. */
	gn_fault_opts_init(&fo, sizeof(fo));
	fo.delay_ns = 1000;
	gn_rel_config_init(&cfg, sizeof(cfg));
	side_init(&a, &n, 0, &fo, &cfg);
	side_init(&b, &n, 1, &fo, &cfg);
	n.a = &a;
	n.b = &b;
	assert_int_equal(gn_rel_connect(a.ep, &b.addr, 0, &a.s), 0);
	g_want = 1;
	assert_int_equal(gn_rel_send(a.s, 0, msg, sizeof(msg), (void *)0, 0),
			 0);
	run(&n, all_sent, 1000000000ull);
	assert_int_equal(a.sent_status[0], 0);
	gn_fault_destroy(&a.link);
	fo.drop = 1.0;
	a.link = gn_fault_create(&fo);
	assert_int_equal(
		gn_rel_send(a.s, 1, msg, sizeof(msg), (void *)1, n.now), 0);
	g_want = 2;
	run(&n, all_sent, 600000000000ull);
	assert_int_equal(a.sent_done[1], 1);
	assert_int_equal(a.sent_status[1], -ETIMEDOUT);
	assert_int_equal(a.closed, 1);
	assert_int_equal(a.closed_status, -ETIMEDOUT);
	/* The retry limit bounds it: 16 doublings from 200 us, capped. */
	assert_true(n.now < 20000000000ull);
	side_fini(&a);
	side_fini(&b);
}

static void test_strays_and_refusals(void **state)
{
	struct gn_fault_opts fo;
	struct net n = {0};
	struct side a, b;
	struct gn_rel_stats st;
	uint8_t junk[200], msg[3000] = {0};
	struct gn_rel_hdr h = {.magic = GN_REL_MAGIC,
			       .version = GN_REL_VERSION,
			       .type = GN_REL_DATA,
			       .session = 42};

	(void)state;
	gn_fault_opts_init(&fo, sizeof(fo));
	fo.delay_ns = 1000;
	side_init(&a, &n, 0, &fo, NULL);
	side_init(&b, &n, 1, &fo, NULL);
	n.a = &a;
	n.b = &b;
	/* Garbage and a DATA packet for a session nobody opened. */
	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (uint8_t)(i * 37);
	gn_rel_input(b.ep, junk, sizeof(junk), 0);
	gn_rel_udp_encode(&a.addr, &b.addr, GN_REL_HDR_SIZE, junk);
	gn_rel_hdr_encode(&h, junk + 42);
	gn_rel_input(b.ep, junk, GN_REL_FRAME_HDR, 0);
	/* Addressed to another port. */
	gn_rel_udp_encode(&a.addr, &a.addr, GN_REL_HDR_SIZE, junk);
	gn_rel_input(b.ep, junk, GN_REL_FRAME_HDR, 0);
	gn_rel_ep_stats(b.ep, &st);
	assert_int_equal(st.bad_frames, 1);
	assert_int_equal(st.bad_version, 0);
	assert_int_equal(st.stray_frames, 2);
	/* A peer of another rel version: bad, and counted as such. */
	h.version = GN_REL_VERSION - 1;
	gn_rel_udp_encode(&a.addr, &b.addr, GN_REL_HDR_SIZE, junk);
	gn_rel_hdr_encode(&h, junk + 42);
	gn_rel_input(b.ep, junk, GN_REL_FRAME_HDR, 0);
	h.version = GN_REL_VERSION;
	gn_rel_ep_stats(b.ep, &st);
	assert_int_equal(st.bad_frames, 2);
	assert_int_equal(st.bad_version, 1);
	{
		unsigned v = 0;

		assert_int_equal(gn_rel_ep_bad_version(b.ep, &v), 1);
		assert_int_equal(v, GN_REL_VERSION - 1);
	}
	/* A receiver that refuses memory: the sender gives up, bounded. */
	b.refuse = 1;
	assert_int_equal(gn_rel_connect(a.ep, &b.addr, 0, &a.s), 0);
	assert_int_equal(gn_rel_send(a.s, 0, msg, sizeof(msg), (void *)0, 0),
			 0);
	g_want = 1;
	run(&n, all_sent, 600000000000ull);
	assert_int_equal(a.sent_status[0], -ETIMEDOUT);
	gn_rel_ep_stats(b.ep, &st);
	assert_true(st.refused_msgs > 0);
	side_fini(&a);
	side_fini(&b);
}

/* A and B on a link with 1 us of delay, A's session to B accepted. */
static void up_pair(struct net *n, struct side *a, struct side *b)
{
	struct gn_fault_opts fo;

	gn_fault_opts_init(&fo, sizeof(fo));
	fo.delay_ns = 1000;
	side_init(a, n, 0, &fo, NULL);
	side_init(b, n, 1, &fo, NULL);
	n->a = a;
	n->b = b;
	assert_int_equal(gn_rel_connect(a->ep, &b->addr, 0, &a->s), 0);
	run(n, accepted, 1000000);
	assert_non_null(b->s);
}

static void test_peer_close_fails_pending(void **state)
{
	struct net n = {0};
	struct side a, b;
	static uint8_t big[4u << 20];

	(void)state;
	up_pair(&n, &a, &b);
	assert_int_equal(
		gn_rel_send(a.s, 0, big, sizeof(big), (void *)0, n.now), 0);
	/* B closes while the transfer runs: A's message fails. */
	n.now += 1000;
	gn_rel_close(b.s, n.now);
	g_want = 1;
	run(&n, all_sent, 1000000000ull);
	assert_int_equal(a.sent_status[0], -ECONNRESET);
	assert_int_equal(a.closed_status, -ECONNRESET);
	assert_null(a.s); /* reported closed, freed at the next poll */
	side_fini(&a);
	side_fini(&b);
}

/*
 * A session whose peer is known gone (its link went down) is aborted: the
 * pending message fails with the status given, on_closed says so, and
 * nothing more goes to the peer (no FIN: B never hears of it).
 */
static void test_abort_fails_pending(void **state)
{
	struct net n = {0};
	struct side a, b;
	struct gn_rel_stats st;
	static uint8_t big[4u << 20];
	uint64_t sent;

	(void)state;
	up_pair(&n, &a, &b);
	assert_int_equal(
		gn_rel_send(a.s, 0, big, sizeof(big), (void *)0, n.now), 0);
	gn_rel_ep_stats(a.ep, &st);
	sent = st.pkts_sent;
	gn_rel_abort(a.s, -ENOTCONN);
	assert_int_equal(a.sent_done[0], 1);
	assert_int_equal(a.sent_status[0], -ENOTCONN);
	assert_int_equal(a.closed, 1);
	assert_int_equal(a.closed_status, -ENOTCONN);
	gn_rel_ep_stats(a.ep, &st);
	assert_int_equal(st.pkts_sent, sent);
	n.now += 1000000;
	(void)gn_rel_poll(a.ep, n.now);
	assert_null(a.s); /* freed at the next poll */
	assert_int_equal(b.closed, 0);
	side_fini(&a);
	side_fini(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_clean_link),
		cmocka_unit_test(test_loss_reorder_duplication),
		cmocka_unit_test(test_pieces_under_loss),
		cmocka_unit_test(test_split_under_loss),
		cmocka_unit_test(test_256mib_under_loss),
		cmocka_unit_test(test_total_loss_fails_within_retry_limit),
		cmocka_unit_test(test_strays_and_refusals),
		cmocka_unit_test(test_peer_close_fails_pending),
		cmocka_unit_test(test_abort_fails_pending),
		cmocka_unit_test(test_hold),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
