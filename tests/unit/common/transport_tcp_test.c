/*
 * The TCP transport (common/transport_tcp.c) and the transport registry
 * (common/transport.c), over loopback only: round trips, a large payload,
 * timeouts, peers that close early or send garbage, payload placement,
 * and address errors.
 *
 * Hostile peers are plain sockets writing raw bytes, so the receiver sees
 * exactly the partial or malformed frames a broken client would send.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "clock.h"
#include "gn_error.h"
#include "gpu_mem.h"
#include "transport.h"

#define WAIT_MS 5000 /* generous: only a broken transport waits this long */

struct fixture {
	struct gn_listener *l;
	char url[96]; /* "tcp://127.0.0.1:PORT" of the listener */
	uint16_t port;
};

static void expect_detail(const char *needle)
{
	if (strstr(gn_last_error(), needle) == NULL)
		fail_msg("detail '%s' does not contain '%s'", gn_last_error(),
			 needle);
}

/* Listen on an ephemeral loopback port with the given receive caps. */
static int listen_with(struct fixture *f, uint32_t max_env,
		       uint64_t max_payload)
{
	struct gn_transport_opts o;
	char host[64];

	gn_transport_opts_init(&o, sizeof(o));
	if (max_env)
		o.limits.max_envelope = max_env;
	if (max_payload)
		o.limits.max_payload = max_payload;
	assert_int_equal(gn_listen("tcp://127.0.0.1:0", &o, &f->l), 0);
	assert_non_null(f->l);
	assert_int_equal(
		gn_addr_split(f->l->addr, host, sizeof(host), &f->port), 0);
	assert_string_equal(host, "127.0.0.1");
	assert_true(f->port != 0);
	snprintf(f->url, sizeof(f->url), "tcp://%s", f->l->addr);
	return 0;
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	listen_with(f, 0, 0);
	*state = f;
	return 0;
}

/* Small caps, for the hostile length prefix tests. */
static int setup_small_caps(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	listen_with(f, 1024, 4096);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	gn_listener_close(&f->l);
	assert_null(f->l);
	free(f);
	return 0;
}

/* Connect a Genie client and accept it: *c the client end, *s the server. */
static void pair(struct fixture *f, struct gn_conn **c, struct gn_conn **s)
{
	struct gn_transport_opts o;

	gn_transport_opts_init(&o, sizeof(o));
	assert_int_equal(gn_connect(f->url, &o, WAIT_MS, c), 0);
	assert_non_null(*c);
	assert_int_equal(f->l->ops->accept(f->l, WAIT_MS, s), 0);
	assert_non_null(*s);
}

/* A plain socket connected to the listener, and the accepted Genie end. */
static int raw_pair(struct fixture *f, struct gn_conn **s)
{
	struct sockaddr_in sa = {.sin_family = AF_INET,
				 .sin_port = htons(f->port)};
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(f->l->ops->accept(f->l, WAIT_MS, s), 0);
	return fd;
}

static void write_all(int fd, const void *buf, size_t len)
{
	assert_int_equal(write(fd, buf, len), (ssize_t)len);
}

/* ---- Round trips ------------------------------------------------------ */

static void test_send_recv_multi_piece(void **state)
{
	struct fixture *f = *state;
	static const uint8_t env[] = "an envelope, not parsed by transports";
	uint8_t p0[100], p2[3000];
	struct iovec iov[3] = {{p0, sizeof(p0)}, {NULL, 0}, {p2, sizeof(p2)}};
	struct gn_conn *c = NULL, *s = NULL;
	struct gn_msg m;

	for (size_t i = 0; i < sizeof(p0); i++)
		p0[i] = (uint8_t)i;
	for (size_t i = 0; i < sizeof(p2); i++)
		p2[i] = (uint8_t)(255 - i % 251);
	pair(f, &c, &s);
	assert_true(strlen(s->peer) > 0);
	assert_non_null(strstr(s->peer, "127.0.0.1:"));

	assert_int_equal(gn_conn_send(c, env, sizeof(env), iov, 3, WAIT_MS), 0);
	assert_int_equal(gn_conn_recv(s, &m, WAIT_MS), 0);
	assert_int_equal(m.env_len, sizeof(env));
	assert_memory_equal(m.env, env, sizeof(env));
	assert_int_equal(m.payload_len, sizeof(p0) + sizeof(p2));
	assert_memory_equal(m.payload, p0, sizeof(p0));
	assert_memory_equal(m.payload + sizeof(p0), p2, sizeof(p2));
	gn_msg_release(&m);
	assert_null(m.buf);

	/* The other way, without payload; and messages keep their order. */
	assert_int_equal(gn_conn_send(s, env, 5, NULL, 0, WAIT_MS), 0);
	assert_int_equal(gn_conn_send(s, env + 5, 7, iov, 1, WAIT_MS), 0);
	assert_int_equal(gn_conn_recv(c, &m, WAIT_MS), 0);
	assert_int_equal(m.env_len, 5);
	assert_memory_equal(m.env, env, 5);
	assert_int_equal(m.payload_len, 0);
	gn_msg_release(&m);
	assert_int_equal(gn_conn_recv(c, &m, WAIT_MS), 0);
	assert_int_equal(m.env_len, 7);
	assert_memory_equal(m.env, env + 5, 7);
	assert_int_equal(m.payload_len, sizeof(p0));
	assert_memory_equal(m.payload, p0, sizeof(p0));
	gn_msg_release(&m);

	/* The counters saw every byte, header included. */
	assert_int_equal(c->stats.msgs_sent, 1);
	assert_int_equal(c->stats.bytes_sent, GN_FRAME_HDR_SIZE + sizeof(env) +
						      sizeof(p0) + sizeof(p2));
	assert_int_equal(s->stats.msgs_received, 1);
	assert_int_equal(s->stats.bytes_received, c->stats.bytes_sent);
	assert_int_equal(c->stats.msgs_received, 2);
	assert_int_equal(s->stats.msgs_sent, 2);
	assert_int_equal(c->stats.bytes_received, s->stats.bytes_sent);

	gn_conn_close(&c);
	gn_conn_close(&s);
	assert_null(c);
	assert_null(s);
	gn_conn_close(&c); /* NULL: no-op */
	gn_conn_close(NULL);
}

struct big_rx {
	struct gn_conn *s;
	struct gn_msg m;
	int rc;
};

static void *big_receiver(void *arg)
{
	struct big_rx *rx = arg;

	rx->rc = gn_conn_recv(rx->s, &rx->m, 20000);
	return NULL;
}

/* 32 MiB in four pieces: far more than socket buffers hold at once. */
static void test_32mib_round_trip(void **state)
{
	struct fixture *f = *state;
	const size_t total = 32u << 20, piece = total / 4;
	uint8_t *buf = malloc(total);
	struct iovec iov[4];
	struct gn_conn *c = NULL;
	struct big_rx rx;
	uint64_t x = 0x243f6a8885a308d3ull;
	pthread_t t;

	assert_non_null(buf);
	for (size_t i = 0; i < total; i += 8) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		memcpy(buf + i, &x, 8);
	}
	for (int i = 0; i < 4; i++)
		iov[i] = (struct iovec){buf + i * piece, piece};
	memset(&rx, 0, sizeof(rx));
	pair(f, &c, &rx.s);
	assert_int_equal(pthread_create(&t, NULL, big_receiver, &rx), 0);
	assert_int_equal(
		gn_conn_send(c, (const uint8_t *)"big", 3, iov, 4, 20000), 0);
	assert_int_equal(pthread_join(t, NULL), 0);
	if (rx.rc != 0)
		fail_msg("recv: %d %s", rx.rc, gn_strerror(rx.rc));
	assert_int_equal(rx.m.env_len, 3);
	assert_memory_equal(rx.m.env, "big", 3);
	assert_int_equal(rx.m.payload_len, total);
	assert_int_equal(memcmp(rx.m.payload, buf, total), 0);
	assert_int_equal(rx.s->stats.bytes_received,
			 GN_FRAME_HDR_SIZE + 3 + total);
	gn_msg_release(&rx.m);
	gn_conn_close(&c);
	gn_conn_close(&rx.s);
	free(buf);
}

/* ---- Waiting and closing ---------------------------------------------- */

static void test_recv_timeout(void **state)
{
	struct fixture *f = *state;
	struct gn_conn *c = NULL, *s = NULL;
	struct gn_msg m;
	uint64_t t0, ms;

	pair(f, &c, &s);
	t0 = gn_clock_ns();
	gn_error_clear();
	assert_int_equal(gn_conn_recv(s, &m, 50), -ETIMEDOUT);
	ms = (gn_clock_ns() - t0) / 1000000;
	assert_true(ms >= 49);
	assert_true(ms < 2000);
	assert_int_equal(gn_last_error_code(), -ETIMEDOUT);
	assert_true(strlen(gn_last_error()) > 0);
	assert_null(m.buf);
	/* A timeout of 0 polls once. */
	assert_int_equal(gn_conn_recv(s, &m, 0), -ETIMEDOUT);
	/* The connection still works after a timeout. */
	assert_int_equal(
		gn_conn_send(c, (const uint8_t *)"x", 1, NULL, 0, WAIT_MS), 0);
	assert_int_equal(gn_conn_recv(s, &m, WAIT_MS), 0);
	assert_int_equal(m.env_len, 1);
	gn_msg_release(&m);
	gn_conn_close(&c);
	gn_conn_close(&s);
}

static void test_accept_timeout(void **state)
{
	struct fixture *f = *state;
	struct gn_conn *s = NULL;

	assert_int_equal(f->l->ops->accept(f->l, 20, &s), -ETIMEDOUT);
	assert_null(s);
}

static void test_peer_closes_between_messages(void **state)
{
	struct fixture *f = *state;
	struct gn_conn *c = NULL, *s = NULL;
	struct gn_msg m;

	pair(f, &c, &s);
	/* One whole message, then the peer goes away. */
	assert_int_equal(
		gn_conn_send(c, (const uint8_t *)"bye", 3, NULL, 0, WAIT_MS),
		0);
	gn_conn_close(&c);
	assert_int_equal(gn_conn_recv(s, &m, WAIT_MS), 0);
	gn_msg_release(&m);
	gn_error_clear();
	assert_int_equal(gn_conn_recv(s, &m, WAIT_MS), -ECONNRESET);
	assert_int_equal(gn_last_error_code(), -ECONNRESET);
	expect_detail("closed");
	assert_null(m.buf);
	gn_conn_close(&s);
}

/* Sending to a peer that is gone fails instead of raising SIGPIPE. */
static void test_send_to_closed_peer(void **state)
{
	struct fixture *f = *state;
	struct gn_conn *c = NULL, *s = NULL;
	static uint8_t chunk[1 << 16];
	struct iovec iov = {chunk, sizeof(chunk)};
	int rc = 0;

	pair(f, &c, &s);
	gn_conn_close(&s);
	/* The first sends may still land in the kernel's buffers. */
	for (int i = 0; i < 200 && rc == 0; i++)
		rc = gn_conn_send(c, (const uint8_t *)"e", 1, &iov, 1, WAIT_MS);
	assert_int_equal(rc, -ECONNRESET);
	assert_true(strlen(gn_last_error()) > 0);
	gn_conn_close(&c);
}

/* The peer closes inside the header: -EPROTO with both byte counts. */
static void test_peer_closes_inside_header(void **state)
{
	struct fixture *f = *state;
	struct gn_conn *s = NULL;
	uint8_t hdr[GN_FRAME_HDR_SIZE];
	struct gn_msg m;
	int fd = raw_pair(f, &s);

	gn_frame_hdr_encode(hdr, 10, 0);
	write_all(fd, hdr, 10);
	close(fd);
	gn_error_clear();
	assert_int_equal(gn_conn_recv(s, &m, WAIT_MS), -EPROTO);
	assert_int_equal(gn_last_error_code(), -EPROTO);
	expect_detail("10 of 24");
	assert_null(m.buf);
	gn_conn_close(&s);
}

/* The peer closes inside the body: -EPROTO with announced and received. */
static void test_peer_closes_inside_body(void **state)
{
	struct fixture *f = *state;
	struct gn_conn *s = NULL;
	uint8_t frame[GN_FRAME_HDR_SIZE + 37];
	struct gn_msg m;
	int fd = raw_pair(f, &s);

	memset(frame, 0x42, sizeof(frame));
	gn_frame_hdr_encode(frame, 100, 23); /* announces 123 body bytes */
	write_all(fd, frame, sizeof(frame)); /* sends 37 of them */
	close(fd);
	gn_error_clear();
	assert_int_equal(gn_conn_recv(s, &m, WAIT_MS), -EPROTO);
	expect_detail("123");
	expect_detail("37");
	assert_null(m.buf);
	gn_conn_close(&s);
}

static void test_garbage_header(void **state)
{
	struct fixture *f = *state;
	struct gn_conn *s = NULL;
	static const char junk[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
	struct gn_msg m;
	int fd = raw_pair(f, &s);

	write_all(fd, junk, sizeof(junk) - 1);
	gn_error_clear();
	assert_int_equal(gn_conn_recv(s, &m, WAIT_MS), -EBADMSG);
	expect_detail("magic");
	/* The detail says who sent it. */
	expect_detail("127.0.0.1:");
	assert_null(m.buf);
	close(fd);
	gn_conn_close(&s);
}

/*
 * A length prefix over this end's caps is refused from the header alone:
 * the receiver neither allocates the announced size nor waits for bytes
 * that will never come (that would read as -ETIMEDOUT).
 */
static void test_length_prefix_over_cap(void **state)
{
	static const struct {
		uint32_t env_len;
		uint64_t payload_len;
		const char *seen;
	} cases[] = {
		{1025, 0, "1025"},
		{0xffffffffu, 0, "4294967295"},
		{16, 4097, "4097"},
		{16, UINT64_MAX, "18446744073709551615"},
	};
	struct fixture *f = *state;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct gn_conn *s = NULL;
		uint8_t hdr[GN_FRAME_HDR_SIZE];
		struct gn_msg m;
		int fd = raw_pair(f, &s);

		gn_frame_hdr_encode(hdr, cases[i].env_len,
				    cases[i].payload_len);
		write_all(fd, hdr, sizeof(hdr));
		gn_error_clear();
		assert_int_equal(gn_conn_recv(s, &m, WAIT_MS), -EMSGSIZE);
		expect_detail(cases[i].seen);
		expect_detail(i < 2 ? "1024" : "4096");
		assert_null(m.buf);
		close(fd);
		gn_conn_close(&s);
	}
}

/* The sender refuses an envelope over its own cap before writing. */
static void test_send_envelope_over_cap(void **state)
{
	struct fixture *f = *state;
	struct gn_conn *c = NULL, *s = NULL;
	static uint8_t env[2048];
	struct gn_msg m;

	pair(f, &c, &s);
	c->limits.max_envelope = 1024;
	assert_int_equal(gn_conn_send(c, env, sizeof(env), NULL, 0, WAIT_MS),
			 -EMSGSIZE);
	expect_detail("2048");
	assert_int_equal(gn_conn_send(c, env, 0, NULL, 0, WAIT_MS), -EMSGSIZE);
	/* Nothing went out: the receiver sees only what follows. */
	assert_int_equal(gn_conn_send(c, env, 8, NULL, 0, WAIT_MS), 0);
	assert_int_equal(gn_conn_recv(s, &m, WAIT_MS), 0);
	assert_int_equal(m.env_len, 8);
	gn_msg_release(&m);
	gn_conn_close(&c);
	gn_conn_close(&s);
}

/*
 * GPU memory on a transport that sends host memory only: refused before
 * anything goes out, naming the piece and the transport; host pieces of
 * the same process still go. A fake driver says which pointer is GPU.
 */
static uint8_t fake_dev[4096];

static enum gn_mem_kind fake_kind(const void *p)
{
	const uint8_t *b = p;

	return b >= fake_dev && b < fake_dev + sizeof(fake_dev) ? GN_MEM_CUDA
								: GN_MEM_HOST;
}

static int fake_copy(void *dst, const void *src, size_t len)
{
	(void)dst;
	(void)src;
	(void)len;
	return -EIO;
}

static int fake_dmabuf(const void *p, size_t len, int *fd, uint64_t *off)
{
	(void)p;
	(void)len;
	(void)fd;
	(void)off;
	return -EOPNOTSUPP;
}

static void test_gpu_payload_refused(void **state)
{
	static const struct gn_gpu_driver drv = {fake_kind, fake_copy,
						 fake_dmabuf};
	struct fixture *f = *state;
	struct gn_conn *c = NULL, *s = NULL;
	uint8_t env[8] = {1}, host[64] = {2};
	struct iovec iov[2] = {{host, sizeof(host)}, {fake_dev + 100, 1000}};
	struct gn_msg m;

	pair(f, &c, &s);
	assert_false(gn_conn_takes_gpu_memory(c));
	gn_gpu_mem_set_driver(&drv);
	assert_true(gn_gpu_mem_enabled());
	assert_int_equal(gn_conn_send(c, env, sizeof(env), iov, 2, WAIT_MS),
			 -EINVAL);
	expect_detail("payload piece 1 (1000 bytes) is GPU memory; the tcp "
		      "transport sends host memory only");
	assert_int_equal(gn_conn_send(c, env, sizeof(env), iov, 1, WAIT_MS), 0);
	gn_gpu_mem_set_driver(NULL);
	assert_int_equal(gn_conn_recv(s, &m, WAIT_MS), 0);
	assert_int_equal(m.payload_len, sizeof(host));
	gn_msg_release(&m);
	gn_conn_close(&c);
	gn_conn_close(&s);
}

/* ---- Payload placement ------------------------------------------------ */

/*
 * A placement that takes envelopes starting "place" (from the heap, or
 * from fake_dev when `gpu` is set) and counts what it gave and got back.
 */
struct placer {
	int asked, placed, unplaced, gpu;
	size_t last_len;
};

static void *test_place(void *arg, const struct gn_conn *c, const uint8_t *env,
			size_t env_len, size_t payload_len)
{
	struct placer *p = arg;

	(void)c;
	p->asked++;
	p->last_len = payload_len;
	if (env_len < 5 || memcmp(env, "place", 5) != 0)
		return NULL;
	p->placed++;
	return p->gpu ? fake_dev : malloc(payload_len);
}

static void test_unplace(void *arg, void *buf)
{
	struct placer *p = arg;

	p->unplaced++;
	if (buf != fake_dev)
		free(buf);
}

static void fill(uint8_t *b, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)(i * 31u + seed + (i >> 12));
}

/*
 * The payload lands in placed memory, in one piece whatever pieces it
 * was sent in; a taken payload is the caller's; a declined one and an
 * empty one go into the message buffer, the empty one without asking.
 */
static void test_placement(void **state)
{
	struct fixture *f = *state;
	struct gn_conn *c = NULL, *s = NULL;
	struct placer pl = {0};
	const struct gn_placement gp = {test_place, test_unplace, &pl};
	size_t n = 300001;
	uint8_t *big = malloc(n);
	struct iovec iov[3];
	struct gn_msg m;
	void *took;

	assert_non_null(big);
	fill(big, n, 7);
	iov[0] = (struct iovec){big, 1000};
	iov[1] = (struct iovec){big + 1000, 99000};
	iov[2] = (struct iovec){big + 100000, n - 100000};
	pair(f, &c, &s);
	gn_conn_set_placement(s, &gp);

	assert_int_equal(
		gn_conn_send(c, (const uint8_t *)"place-1", 7, iov, 3, WAIT_MS),
		0);
	assert_int_equal(gn_conn_recv(s, &m, WAIT_MS), 0);
	assert_int_equal(pl.placed, 1);
	assert_int_equal(pl.last_len, n);
	assert_non_null(m.placed);
	assert_ptr_equal(m.payload, m.placed);
	assert_int_equal(m.payload_len, n);
	assert_memory_equal(m.env, "place-1", 7);
	assert_memory_equal(m.payload, big, n);
	gn_msg_release(&m);
	assert_int_equal(pl.unplaced, 1);

	assert_int_equal(
		gn_conn_send(c, (const uint8_t *)"place-2", 7, iov, 3, WAIT_MS),
		0);
	assert_int_equal(gn_conn_recv(s, &m, WAIT_MS), 0);
	took = gn_msg_take_placed(&m);
	assert_ptr_equal(took, m.payload);
	assert_memory_equal(took, big, n);
	gn_msg_release(&m);
	assert_int_equal(pl.unplaced, 1); /* taken: not handed back */
	free(took);

	assert_int_equal(
		gn_conn_send(c, (const uint8_t *)"keep", 4, iov, 3, WAIT_MS),
		0);
	assert_int_equal(gn_conn_recv(s, &m, WAIT_MS), 0);
	assert_int_equal(pl.asked, 3);
	assert_null(m.placed);
	assert_ptr_equal(m.payload, m.buf + 4);
	assert_memory_equal(m.env, "keep", 4);
	assert_memory_equal(m.payload, big, n);
	gn_msg_release(&m);

	assert_int_equal(gn_conn_send(c, (const uint8_t *)"place-3", 7, NULL, 0,
				      WAIT_MS),
			 0);
	assert_int_equal(gn_conn_recv(s, &m, WAIT_MS), 0);
	assert_int_equal(pl.asked, 3);
	assert_null(m.placed);
	assert_int_equal(m.payload_len, 0);
	gn_msg_release(&m);

	/* No placement any more: not asked. */
	gn_conn_set_placement(s, NULL);
	assert_int_equal(
		gn_conn_send(c, (const uint8_t *)"place-4", 7, iov, 1, WAIT_MS),
		0);
	assert_int_equal(gn_conn_recv(s, &m, WAIT_MS), 0);
	assert_int_equal(pl.asked, 3);
	assert_null(m.placed);
	assert_memory_equal(m.payload, big, 1000);
	gn_msg_release(&m);
	assert_int_equal(pl.unplaced, 1);
	free(big);
	gn_conn_close(&c);
	gn_conn_close(&s);
}

/* A peer closing inside a placed payload: -EPROTO, the memory given back. */
static void test_placement_truncated(void **state)
{
	struct fixture *f = *state;
	struct gn_conn *s = NULL;
	struct placer pl = {0};
	const struct gn_placement gp = {test_place, test_unplace, &pl};
	uint8_t frame[GN_FRAME_HDR_SIZE + 5 + 300];
	struct gn_msg m;
	int fd = raw_pair(f, &s);

	gn_conn_set_placement(s, &gp);
	memset(frame, 0x42, sizeof(frame));
	gn_frame_hdr_encode(frame, 5, 1000);
	memcpy(frame + GN_FRAME_HDR_SIZE, "place", 5);
	write_all(fd, frame, sizeof(frame)); /* 300 of the 1000 */
	close(fd);
	assert_int_equal(gn_conn_recv(s, &m, WAIT_MS), -EPROTO);
	expect_detail("1005");
	expect_detail("305");
	assert_int_equal(pl.placed, 1);
	assert_int_equal(pl.unplaced, 1);
	assert_null(m.buf);
	gn_conn_close(&s);
}

/*
 * A placement that gives GPU memory to a transport that writes host
 * memory only is given back, and the payload goes into the message
 * buffer: nothing is written into the device.
 */
static void test_placement_gpu_refused(void **state)
{
	static const struct gn_gpu_driver drv = {fake_kind, fake_copy,
						 fake_dmabuf};
	struct fixture *f = *state;
	struct gn_conn *c = NULL, *s = NULL;
	struct placer pl = {.gpu = 1};
	const struct gn_placement gp = {test_place, test_unplace, &pl};
	uint8_t host[2000];
	struct iovec iov = {host, sizeof(host)};
	struct gn_msg m;

	fill(host, sizeof(host), 3);
	memset(fake_dev, 0, sizeof(fake_dev));
	pair(f, &c, &s);
	gn_conn_set_placement(s, &gp);
	gn_gpu_mem_set_driver(&drv);
	assert_int_equal(
		gn_conn_send(c, (const uint8_t *)"place", 5, &iov, 1, WAIT_MS),
		0);
	assert_int_equal(gn_conn_recv(s, &m, WAIT_MS), 0);
	gn_gpu_mem_set_driver(NULL);
	assert_int_equal(pl.placed, 1);
	assert_int_equal(pl.unplaced, 1);
	assert_null(m.placed);
	assert_memory_equal(m.payload, host, sizeof(host));
	for (size_t i = 0; i < sizeof(fake_dev); i++)
		assert_int_equal(fake_dev[i], 0);
	gn_msg_release(&m);
	gn_conn_close(&c);
	gn_conn_close(&s);
}

/* ---- Addresses -------------------------------------------------------- */

/* A loopback port nobody listens on: bind one, learn it, let it go. */
static uint16_t closed_port(void)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t sl = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	uint16_t port;

	assert_true(fd >= 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
	port = ntohs(sa.sin_port);
	close(fd);
	return port;
}

static void test_connect_refused(void **state)
{
	struct gn_transport_opts o;
	struct gn_conn *c = NULL;
	char url[64];

	(void)state;
	gn_transport_opts_init(&o, sizeof(o));
	snprintf(url, sizeof(url), "tcp://127.0.0.1:%u", closed_port());
	gn_error_clear();
	assert_int_equal(gn_connect(url, &o, WAIT_MS, &c), -ECONNREFUSED);
	assert_null(c);
	assert_int_equal(gn_last_error_code(), -ECONNREFUSED);
	expect_detail(url + strlen("tcp://"));
}

static void test_resolve_errors(void **state)
{
	const struct gn_transport_ops *ops = NULL;
	const char *rest = NULL;
	struct gn_transport_opts o;
	struct gn_conn *c = NULL;
	struct gn_listener *l = NULL;

	(void)state;
	assert_int_equal(gn_transport_resolve("tcp://127.0.0.1:9", &ops, &rest),
			 0);
	assert_non_null(ops);
	assert_string_equal(ops->name, "tcp");
	assert_string_equal(rest, "127.0.0.1:9");
	assert_ptr_equal(gn_transport_find("tcp"), ops);
	assert_null(gn_transport_find("nonsense"));

	gn_error_clear();
	assert_int_equal(gn_transport_resolve("nonsense", &ops, &rest),
			 -EINVAL);
	expect_detail("nonsense");
	expect_detail("SCHEME://");
	assert_int_equal(gn_transport_resolve("://x:1", &ops, &rest), -EINVAL);

	gn_error_clear();
	assert_int_equal(gn_transport_resolve("foo://x:1", &ops, &rest),
			 -EPROTONOSUPPORT);
	assert_int_equal(gn_last_error_code(), -EPROTONOSUPPORT);
	expect_detail("'foo'");
	expect_detail("tcp"); /* the schemes this build has */
	assert_int_equal(gn_transport_resolve("averyveryverylongscheme://x:1",
					      &ops, &rest),
			 -EPROTONOSUPPORT);

	/* The wrappers pass the same errors on. */
	gn_transport_opts_init(&o, sizeof(o));
	assert_int_equal(gn_connect("foo://x:1", &o, 100, &c),
			 -EPROTONOSUPPORT);
	assert_null(c);
	assert_int_equal(gn_listen("nonsense", &o, &l), -EINVAL);
	assert_int_equal(gn_listen("tcp://127.0.0.1:http", &o, &l), -EINVAL);
	assert_int_equal(gn_connect("tcp://127.0.0.1", &o, 100, &c), -EINVAL);
	assert_null(l);
	assert_null(c);
}

static void test_addr_split(void **state)
{
	static const char *const bad[] = {
		"127.0.0.1:99999",
		"127.0.0.1:65536",
		"127.0.0.1:abc",
		"127.0.0.1:12x",
		"127.0.0.1:",
		"127.0.0.1",
		":80",
		"",
		"host:-1",
		"host:99999999999999999999",
	};
	char host[16];
	uint16_t port = 0;

	(void)state;
	assert_int_equal(
		gn_addr_split("127.0.0.1:7070", host, sizeof(host), &port), 0);
	assert_string_equal(host, "127.0.0.1");
	assert_int_equal(port, 7070);
	assert_int_equal(gn_addr_split("h:0", host, sizeof(host), &port), 0);
	assert_int_equal(port, 0);
	assert_int_equal(gn_addr_split("h:65535", host, sizeof(host), &port),
			 0);
	assert_int_equal(port, 65535);
	/* The last colon splits, so bracketed IPv6 keeps its colons. */
	assert_int_equal(gn_addr_split("[::1]:80", host, sizeof(host), &port),
			 0);
	assert_string_equal(host, "[::1]");

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		gn_error_clear();
		port = 4242;
		if (gn_addr_split(bad[i], host, sizeof(host), &port) != -EINVAL)
			fail_msg("'%s' was accepted (port %u)", bad[i], port);
		assert_int_equal(gn_last_error_code(), -EINVAL);
		expect_detail(bad[i]);
		assert_int_equal(port, 4242);
	}
	/* A host longer than the caller's buffer. */
	assert_int_equal(gn_addr_split("a-very-long-host-name:1", host,
				       sizeof(host), &port),
			 -EINVAL);
	expect_detail("too long");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_send_recv_multi_piece,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_32mib_round_trip, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_recv_timeout, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_accept_timeout, setup,
						teardown),
		cmocka_unit_test_setup_teardown(
			test_peer_closes_between_messages, setup, teardown),
		cmocka_unit_test_setup_teardown(test_send_to_closed_peer, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_peer_closes_inside_header,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_peer_closes_inside_body,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_garbage_header, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_length_prefix_over_cap,
						setup_small_caps, teardown),
		cmocka_unit_test_setup_teardown(test_send_envelope_over_cap,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_placement, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_placement_truncated, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_placement_gpu_refused,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_gpu_payload_refused, setup,
						teardown),
		cmocka_unit_test(test_connect_refused),
		cmocka_unit_test(test_resolve_errors),
		cmocka_unit_test(test_addr_split),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
