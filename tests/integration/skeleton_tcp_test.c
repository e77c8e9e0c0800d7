/*
 * The walking skeleton over TCP with a real genie-runtime process:
 * libgenie records relu(x @ W + b), ships the plan and inputs, and the
 * numbers that come back must equal plain loops computed here. Then the
 * runtime is fed bad plans and bad bytes: each bad request gets a clear
 * error, each bad connection is closed, and everyone else keeps being
 * served; a client that leaves while its large result is on its way costs
 * the runtime no memory. Finally SIGTERM must stop it cleanly.
 *
 *   skeleton_tcp_test PATH/TO/genie-runtime
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include <genie/genie.h>

#include "frame.h"
#include "genie/control.pb-c.h"
#include "genie/envelope.pb-c.h"
#include "genie/telemetry.pb-c.h"
#include "runtime_proc.h"
#include "transport.h"

static uint64_t g_rng = 0x9e3779b97f4a7c15ull;

static float frand(void)
{
	g_rng ^= g_rng >> 12;
	g_rng ^= g_rng << 25;
	g_rng ^= g_rng >> 27;
	return (float)((g_rng * 2685821657736338717ull) >> 40) /
		       (float)(1 << 24) * 2.0f -
	       1.0f;
}

static void fill(float *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = frand();
}

static struct gn_session *open_remote(void)
{
	struct gn_session_opts o;
	struct gn_session *s;

	gn_session_opts_init(&o, sizeof(o));
	o.target = g_rt.url;
	o.timeout_ms = 10000;
	s = gn_session_create(&o);
	if (s == NULL)
		fail_msg("session on %s: %s", g_rt.url, gn_last_error());
	return s;
}

/* relu(x @ W + b) over TCP against plain loops, for one set of sizes. */
static void check_linear_relu(int m, int k, int n)
{
	float *x = malloc(sizeof(float) * (size_t)(m * k + 1));
	float *w = malloc(sizeof(float) * (size_t)(k * n + 1));
	float *b = malloc(sizeof(float) * (size_t)(n + 1));
	float *y = malloc(sizeof(float) * (size_t)(m * n + 1));
	int64_t xs[] = {m, k}, ws[] = {k, n}, bs[] = {n};
	struct gn_session *s = open_remote();
	struct gn_session_stats st;
	struct gn_tensor *t;
	size_t in_bytes = sizeof(float) * (size_t)(m * k + k * n + n);

	fill(x, (size_t)(m * k));
	fill(w, (size_t)(k * n));
	fill(b, (size_t)n);
	t = gn_relu(gn_add(
		gn_matmul(gn_tensor_from_host(s, GN_DTYPE_F32, 2, xs, x, 0),
			  gn_tensor_from_host(s, GN_DTYPE_F32, 2, ws, w, 0)),
		gn_tensor_from_host(s, GN_DTYPE_F32, 1, bs, b, 0)));
	assert_non_null(t);
	assert_int_equal(
		gn_tensor_to_host(t, y, sizeof(float) * (size_t)(m * n)), 0);
	for (int i = 0; i < m; i++)
		for (int j = 0; j < n; j++) {
			double acc = b[j];

			for (int p = 0; p < k; p++)
				acc += (double)x[i * k + p] * w[p * n + j];
			acc = acc > 0 ? acc : 0;
			if (fabs(acc - y[i * n + j]) > 1e-5 * (1 + fabs(acc)))
				fail_msg(
					"[%d,%d,%d] y[%d,%d] = %g, expected %g",
					m, k, n, i, j, y[i * n + j], acc);
		}
	assert_int_equal(gn_session_get_stats(s, &st), 0);
	/* Inputs and output really crossed the wire, plus framing. */
	assert_true(st.bytes_sent > in_bytes);
	assert_true(st.bytes_received > sizeof(float) * (size_t)(m * n));
	assert_string_equal(gn_session_backend(s), "cpu");
	gn_session_destroy(&s);
	assert_null(s);
	free(x);
	free(w);
	free(b);
	free(y);
}

static void test_skeleton_numbers(void **state)
{
	(void)state;
	check_linear_relu(1, 1, 1);
	check_linear_relu(3, 5, 2);
	check_linear_relu(17, 33, 9);
	check_linear_relu(64, 256, 128);
}

/* A materialized tensor feeds a later plan as an input leaf. */
static void test_chained_materialize(void **state)
{
	float x[2 * 3] = {1, -2, 3, -4, 5, -6};
	float w1[3 * 2] = {1, 0, 0, 1, 1, 1};
	float w2[2 * 1] = {2, -1};
	int64_t xs[] = {2, 3}, w1s[] = {3, 2}, w2s[] = {2, 1};
	float h[4], y[2];
	struct gn_session *s = open_remote();
	struct gn_tensor *th, *ty;

	(void)state;
	th = gn_relu(
		gn_matmul(gn_tensor_from_host(s, GN_DTYPE_F32, 2, xs, x, 0),
			  gn_tensor_from_host(s, GN_DTYPE_F32, 2, w1s, w1, 0)));
	assert_int_equal(gn_tensor_to_host(th, h, sizeof(h)), 0);
	/* h = relu([[4, 1], [-10, -1]]) */
	assert_true(h[0] == 4 && h[1] == 1 && h[2] == 0 && h[3] == 0);
	ty = gn_matmul(th, gn_tensor_from_host(s, GN_DTYPE_F32, 2, w2s, w2, 0));
	assert_int_equal(gn_tensor_to_host(ty, y, sizeof(y)), 0);
	assert_true(y[0] == 7 && y[1] == 0);
	gn_session_destroy(&s);
}

/*
 * Several outputs in one request: h = relu(x W1), a = h + 1, b = h W2
 * share h, which runs once; one request answers all (and a tensor named
 * twice, or already computed, is fine). Also on the local target.
 */
static void many_outputs(struct gn_session *s)
{
	float x[2 * 3] = {1, -2, 3, -4, 5, -6};
	float w1[3 * 2] = {1, 0, 0, 1, 1, 1};
	float w2[2 * 1] = {2, -1}, one[1] = {1};
	int64_t xs[] = {2, 3}, w1s[] = {3, 2}, w2s[] = {2, 1}, os[] = {1};
	float h[4], a[4], b[2];
	struct gn_session_stats before, after;
	struct gn_tensor *th, *ta, *tb, *all[4];

	th = gn_relu(
		gn_matmul(gn_tensor_from_host(s, GN_DTYPE_F32, 2, xs, x, 0),
			  gn_tensor_from_host(s, GN_DTYPE_F32, 2, w1s, w1, 0)));
	ta = gn_add(th, gn_tensor_from_host(s, GN_DTYPE_F32, 1, os, one, 0));
	tb = gn_matmul(th, gn_tensor_from_host(s, GN_DTYPE_F32, 2, w2s, w2, 0));
	all[0] = ta;
	all[1] = tb;
	all[2] = th;
	all[3] = ta;
	assert_int_equal(gn_session_get_stats(s, &before), 0);
	assert_int_equal(gn_tensor_materialize_all(all, 4), 0);
	assert_int_equal(gn_session_get_stats(s, &after), 0);
	assert_int_equal(after.requests - before.requests, 1);
	assert_int_equal(gn_tensor_to_host(th, h, sizeof(h)), 0);
	assert_int_equal(gn_tensor_to_host(ta, a, sizeof(a)), 0);
	assert_int_equal(gn_tensor_to_host(tb, b, sizeof(b)), 0);
	assert_true(h[0] == 4 && h[1] == 1 && h[2] == 0 && h[3] == 0);
	assert_true(a[0] == 5 && a[1] == 2 && a[2] == 1 && a[3] == 1);
	assert_true(b[0] == 7 && b[1] == 0);
	/* All computed: nothing to do, no request. */
	assert_int_equal(gn_tensor_materialize_all(all, 4), 0);
	assert_int_equal(gn_session_get_stats(s, &before), 0);
	assert_int_equal(before.requests, after.requests);
	assert_int_equal(gn_tensor_materialize_all(all, 0), 0);
	assert_int_equal(gn_tensor_materialize_all(NULL, 1), -EINVAL);
	all[1] = NULL;
	assert_int_equal(gn_tensor_materialize_all(all, 2), -EINVAL);
}

static void test_materialize_many_outputs(void **state)
{
	struct gn_session *s = open_remote(), *l = gn_session_create(NULL);
	struct gn_tensor *mix[2];
	int64_t one = 1;
	float v = 1;

	(void)state;
	many_outputs(s);
	many_outputs(l);
	mix[0] = gn_relu(gn_tensor_from_host(s, GN_DTYPE_F32, 1, &one, &v, 0));
	mix[1] = gn_relu(gn_tensor_from_host(l, GN_DTYPE_F32, 1, &one, &v, 0));
	assert_int_equal(gn_tensor_materialize_all(mix, 2), -EINVAL);
	assert_non_null(strstr(gn_last_error(), "another session"));
	gn_session_destroy(&s);
	gn_session_destroy(&l);
}

/*
 * Large outputs go back from the blocks the runtime computed them in (its
 * executor lends them): more of them than one reply has pieces, a small
 * one among them and one named twice, every value must come back right.
 */
static void test_materialize_large_outputs(void **state)
{
	enum { N = 64 * 1024, NB = 40 };
	struct gn_session *s = open_remote();
	struct gn_session_stats before, after;
	struct gn_tensor *tx, *prev, *all[NB + 3];
	float *x = malloc(N * sizeof(float)), *got = malloc(N * sizeof(float));
	float sm[4] = {-1, 2, -3, 4}, smo[4];
	int64_t xs[] = {N}, ss[] = {4};

	(void)state;
	assert_non_null(x);
	assert_non_null(got);
	for (int i = 0; i < N; i++)
		x[i] = (float)(i % 7 - 3);
	tx = gn_tensor_from_host(s, GN_DTYPE_F32, 1, xs, x, 0);
	all[0] = gn_relu(tx);
	all[1] = gn_relu(gn_tensor_from_host(s, GN_DTYPE_F32, 1, ss, sm, 0));
	prev = tx;
	for (int k = 0; k < NB; k++) {
		prev = gn_add(prev, tx); /* (k + 2) x */
		all[2 + k] = prev;
	}
	all[NB + 2] = all[0];
	assert_int_equal(gn_session_get_stats(s, &before), 0);
	assert_int_equal(gn_tensor_materialize_all(all, NB + 3), 0);
	assert_int_equal(gn_session_get_stats(s, &after), 0);
	assert_int_equal(after.requests - before.requests, 1);
	assert_int_equal(gn_tensor_to_host(all[0], got, N * sizeof(float)), 0);
	for (int i = 0; i < N; i++)
		if (got[i] != (x[i] > 0 ? x[i] : 0))
			fail_msg("relu: element %d is %g, expected %g", i,
				 got[i], x[i] > 0 ? x[i] : 0);
	assert_int_equal(gn_tensor_to_host(all[1], smo, sizeof(smo)), 0);
	assert_true(smo[0] == 0 && smo[1] == 2 && smo[2] == 0 && smo[3] == 4);
	for (int k = 0; k < NB; k++) {
		assert_int_equal(
			gn_tensor_to_host(all[2 + k], got, N * sizeof(float)),
			0);
		for (int i = 0; i < N; i++)
			if (got[i] != (float)(k + 2) * x[i])
				fail_msg("output %d: element %d is %g, "
					 "expected %g",
					 2 + k, i, got[i], (k + 2) * x[i]);
	}
	gn_session_destroy(&s);
	free(x);
	free(got);
}

/* A raw, handshaken control connection for hand-made requests. */
static struct gn_conn *raw_connect(void)
{
	struct gn_transport_opts o;
	struct gn_conn *c = NULL;
	Genie__Hello h = GENIE__HELLO__INIT;
	struct gn_msg msg;
	uint8_t *buf;
	size_t len;
	Genie__Envelope *env;

	gn_transport_opts_init(&o, sizeof(o));
	assert_int_equal(gn_connect(g_rt.url, &o, 5000, &c), 0);
	h.min_version = h.max_version = GN_SCHEMA_VERSION;
	h.peer_name = "raw-test";
	assert_int_equal(gn_envelope_pack(GENIE__MSG_TYPE__MSG_TYPE_HELLO, 1,
					  &h.base, &buf, &len),
			 0);
	assert_int_equal(gn_conn_send(c, buf, len, NULL, 0, 5000), 0);
	free(buf);
	assert_int_equal(gn_conn_recv(c, &msg, 5000), 0);
	env = (Genie__Envelope *)gn_pb_unpack(&genie__envelope__descriptor,
					      msg.env, msg.env_len, 1 << 20);
	assert_non_null(env);
	assert_int_equal(env->type, GENIE__MSG_TYPE__MSG_TYPE_HELLO_ACK);
	protobuf_c_message_free_unpacked(&env->base, NULL);
	gn_msg_release(&msg);
	return c;
}

/*
 * Send one ExecRequest: relu over a [rows,2] input (rows 0: [2,2] of
 * {-1, 2, -3, 4}; else the 2 * rows floats at `in`), with knobs to break
 * it.
 */
struct bad_knobs {
	int64_t recorded_dim; /* the relu node's recorded dim 0 */
	int drop_payload;     /* send no input bytes */
	uint32_t operand;     /* the relu node's operand index */
	int64_t rows;
	const float *in;
};

static void exec_send(struct gn_conn *c, uint64_t req_id,
		      const struct bad_knobs *k)
{
	static const float small[4] = {-1, 2, -3, 4};
	uint8_t handle[16] = {1, 2,  3,	 4,  5,	 6,  7,	 8,
			      9, 10, 11, 12, 13, 14, 15, 16};
	int64_t rows = k->rows ? k->rows : 2;
	int64_t s_in[] = {rows, 2}, s_out[] = {k->recorded_dim, 2};
	Genie__TensorMeta m_in = GENIE__TENSOR_META__INIT, m_out = m_in;
	Genie__Node n0 = GENIE__NODE__INIT, n1 = GENIE__NODE__INIT;
	Genie__Node *nodes[] = {&n0, &n1};
	uint32_t outputs[] = {1}, operands[] = {k->operand};
	Genie__Plan plan = GENIE__PLAN__INIT;
	Genie__PayloadRef ref = GENIE__PAYLOAD_REF__INIT, *refs[] = {&ref};
	Genie__ExecRequest req = GENIE__EXEC_REQUEST__INIT;
	struct iovec iov = {(void *)(k->rows ? k->in : small),
			    (size_t)rows * 2 * sizeof(float)};
	uint8_t *buf;
	size_t len;

	m_in.dtype = m_out.dtype = GENIE__DTYPE__DTYPE_F32;
	m_in.n_shape = m_out.n_shape = 2;
	m_in.shape = s_in;
	m_out.shape = s_out;
	n0.op = GENIE__OP_TYPE__OP_INPUT;
	n0.out = &m_in;
	n0.handle.data = handle;
	n0.handle.len = sizeof(handle);
	n1.op = GENIE__OP_TYPE__OP_RELU;
	n1.n_inputs = 1;
	n1.inputs = operands;
	n1.out = &m_out;
	plan.schema_version = GN_SCHEMA_VERSION;
	plan.n_nodes = 2;
	plan.nodes = nodes;
	plan.n_outputs = 1;
	plan.outputs = outputs;
	ref.handle.data = handle;
	ref.handle.len = sizeof(handle);
	ref.length = iov.iov_len;
	req.plan = &plan;
	req.n_inputs = k->drop_payload ? 0 : 1;
	req.inputs = refs;
	assert_int_equal(
		gn_envelope_pack(GENIE__MSG_TYPE__MSG_TYPE_EXEC_REQUEST, req_id,
				 &req.base, &buf, &len),
		0);
	assert_int_equal(
		gn_conn_send(c, buf, len, &iov, k->drop_payload ? 0 : 1, 5000),
		0);
	free(buf);
}

/* exec_send, then the reply's envelope (its message in *msg). */
static Genie__Envelope *exec_raw(struct gn_conn *c, uint64_t req_id,
				 const struct bad_knobs *k, struct gn_msg *msg)
{
	Genie__Envelope *env;

	exec_send(c, req_id, k);
	assert_int_equal(gn_conn_recv(c, msg, 5000), 0);
	env = (Genie__Envelope *)gn_pb_unpack(&genie__envelope__descriptor,
					      msg->env, msg->env_len, 1 << 20);
	assert_non_null(env);
	assert_int_equal(env->request_id, req_id);
	return env;
}

/* Expect an ErrorReply with `code` whose message contains `needle`. */
static void expect_error(Genie__Envelope *env, int code, const char *needle)
{
	Genie__ErrorReply *er;

	assert_int_equal(env->type, GENIE__MSG_TYPE__MSG_TYPE_ERROR);
	er = (Genie__ErrorReply *)gn_pb_unpack(&genie__error_reply__descriptor,
					       env->body.data, env->body.len,
					       1 << 20);
	assert_non_null(er);
	assert_int_equal(er->code, code);
	if (strstr(er->message, needle) == NULL)
		fail_msg("error '%s' does not mention '%s'", er->message,
			 needle);
	protobuf_c_message_free_unpacked(&er->base, NULL);
}

static void test_bad_plans_get_errors(void **state)
{
	struct gn_conn *c = raw_connect();
	struct bad_knobs good = {2, 0, 0}, shape = {3, 0, 0}, nopay = {2, 1, 0},
			 fwd = {2, 0, 1};
	struct gn_msg msg;
	Genie__Envelope *env;
	Genie__ExecResult *res;

	(void)state;
	/* Recorded shape disagrees with what the op gives. */
	env = exec_raw(c, 10, &shape, &msg);
	expect_error(env, -EINVAL, "f32[3,2]");
	protobuf_c_message_free_unpacked(&env->base, NULL);
	gn_msg_release(&msg);
	/* Input handle with no bytes behind it. */
	env = exec_raw(c, 11, &nopay, &msg);
	expect_error(env, -ENOENT, "no bytes for handle");
	protobuf_c_message_free_unpacked(&env->base, NULL);
	gn_msg_release(&msg);
	/* Operand pointing forward (a cycle or dangling input). */
	env = exec_raw(c, 12, &fwd, &msg);
	expect_error(env, -EINVAL, "expected an earlier node");
	protobuf_c_message_free_unpacked(&env->base, NULL);
	gn_msg_release(&msg);
	/* The same connection still serves a good request. */
	env = exec_raw(c, 13, &good, &msg);
	assert_int_equal(env->type, GENIE__MSG_TYPE__MSG_TYPE_EXEC_RESULT);
	res = (Genie__ExecResult *)gn_pb_unpack(&genie__exec_result__descriptor,
						env->body.data, env->body.len,
						1 << 20);
	assert_non_null(res);
	assert_int_equal(res->n_payload, 1);
	assert_int_equal(res->payload[0]->length, 16);
	{
		float y[4];

		memcpy(y, msg.payload + res->payload[0]->offset, sizeof(y));
		assert_true(y[0] == 0 && y[1] == 2 && y[2] == 0 && y[3] == 4);
	}
	protobuf_c_message_free_unpacked(&res->base, NULL);
	protobuf_c_message_free_unpacked(&env->base, NULL);
	gn_msg_release(&msg);
	gn_conn_close(&c);
}

/* Raw socket to the runtime, for bytes no Genie client would send. */
static int raw_socket(void)
{
	struct sockaddr_in sa = {.sin_family = AF_INET,
				 .sin_port = htons((uint16_t)g_rt.port)};
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_true(fd >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

/* The runtime must close the connection within 5 s. */
static void expect_closed(int fd)
{
	struct timeval tv = {5, 0};
	char buf[256];
	ssize_t r;

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	do
		r = read(fd, buf, sizeof(buf));
	while (r > 0);
	/* EOF, or a reset when the runtime closed with our bytes unread. */
	if (r < 0 && errno != ECONNRESET)
		fail_msg("expected the runtime to close the connection, read "
			 "failed: %s",
			 strerror(errno));
	close(fd);
}

static void test_bad_frames_close_only_that_connection(void **state)
{
	uint8_t hdr[GN_FRAME_HDR_SIZE];
	const char garbage[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
	struct gn_session *bystander = open_remote();
	int fd;

	(void)state;
	/* Garbage instead of a frame header. */
	fd = raw_socket();
	assert_int_equal(write(fd, garbage, sizeof(garbage)), sizeof(garbage));
	expect_closed(fd);
	/* A length prefix far over the cap: refused before allocating. */
	fd = raw_socket();
	gn_frame_hdr_encode(hdr, 0xffffffffu, 0);
	assert_int_equal(write(fd, hdr, sizeof(hdr)), sizeof(hdr));
	expect_closed(fd);
	/* A valid header whose envelope bytes are not protobuf. */
	fd = raw_socket();
	gn_frame_hdr_encode(hdr, 8, 0);
	assert_int_equal(write(fd, hdr, sizeof(hdr)), sizeof(hdr));
	assert_int_equal(write(fd, "\xff\xff\xff\xff\xff\xff\xff\xff", 8), 8);
	expect_closed(fd);
	/* A truncated frame: the peer goes away mid-message. */
	fd = raw_socket();
	gn_frame_hdr_encode(hdr, 100, 0);
	assert_int_equal(write(fd, hdr, sizeof(hdr)), sizeof(hdr));
	assert_int_equal(write(fd, "abc", 3), 3);
	shutdown(fd, SHUT_WR);
	expect_closed(fd);

	/* The session opened before all that is still served. */
	{
		float x[2] = {-1, 1}, y[2];
		int64_t xs[] = {2};
		struct gn_tensor *t = gn_relu(gn_tensor_from_host(
			bystander, GN_DTYPE_F32, 1, xs, x, 0));

		assert_int_equal(gn_tensor_to_host(t, y, sizeof(y)), 0);
		assert_true(y[0] == 0 && y[1] == 1);
	}
	gn_session_destroy(&bystander);
	/* And a new client can still connect. */
	check_linear_relu(2, 2, 2);
}

/* The runtime's telemetry, over a connection of its own. */
static Genie__RuntimeTelemetry *read_telemetry(void)
{
	Genie__Envelope *env;
	Genie__RuntimeTelemetry *t;
	struct gn_conn *c = raw_connect();
	struct gn_msg msg;
	uint8_t *buf;
	size_t len;

	assert_int_equal(gn_envelope_pack(GENIE__MSG_TYPE__MSG_TYPE_TELEMETRY,
					  77, NULL, &buf, &len),
			 0);
	assert_int_equal(gn_conn_send(c, buf, len, NULL, 0, 5000), 0);
	free(buf);
	assert_int_equal(gn_conn_recv(c, &msg, 5000), 0);
	env = (Genie__Envelope *)gn_pb_unpack(&genie__envelope__descriptor,
					      msg.env, msg.env_len, 1 << 20);
	assert_non_null(env);
	assert_int_equal(env->type, GENIE__MSG_TYPE__MSG_TYPE_TELEMETRY);
	t = (Genie__RuntimeTelemetry *)gn_pb_unpack(
		&genie__runtime_telemetry__descriptor, env->body.data,
		env->body.len, 1 << 20);
	assert_non_null(t);
	protobuf_c_message_free_unpacked(&env->base, NULL);
	gn_msg_release(&msg);
	gn_conn_close(&c);
	return t;
}

static void test_telemetry_counts(void **state)
{
	Genie__RuntimeTelemetry *t = read_telemetry();

	(void)state;
	/* The tests before this one ran 8+ plans and 3 refused ones. */
	assert_true(t->plans_executed_total >= 8);
	assert_true(t->plan_errors_total >= 3);
	assert_true(t->bytes_received_total > 0);
	assert_true(t->plan_cache_hits_total >= 2);
	assert_true(t->plan_cache_misses_total >= 1);
	assert_string_equal(t->backend, "cpu");
	protobuf_c_message_free_unpacked(&t->base, NULL);
}

/*
 * The runtime's telemetry once it has run more than `plans` plans and
 * holds at most `pool_bytes` of its pool (10 s at most).
 */
static Genie__RuntimeTelemetry *settled(uint64_t plans, uint64_t pool_bytes)
{
	for (int i = 0;; i++) {
		Genie__RuntimeTelemetry *t = read_telemetry();

		if ((t->plans_executed_total > plans &&
		     t->pool_in_use_bytes <= pool_bytes) ||
		    i == 200)
			return t;
		protobuf_c_message_free_unpacked(&t->base, NULL);
		usleep(50000);
	}
}

/*
 * A client that goes away while its plan's 32 MiB result is on its way:
 * the output lent to that reply goes back to the pool, and the runtime
 * goes on serving.
 */
static void test_client_gone_mid_result(void **state)
{
	enum { ROWS = 4 << 20 }; /* [ROWS, 2] floats: 32 MiB */
	struct bad_knobs big = {ROWS, 0, 0, ROWS, NULL};
	Genie__RuntimeTelemetry *t;
	struct gn_conn *c;
	uint64_t plans, pool;
	float *in = malloc((size_t)ROWS * 2 * sizeof(float));

	(void)state;
	assert_non_null(in);
	for (size_t i = 0; i < (size_t)ROWS * 2; i++)
		in[i] = (float)((int)(i % 5) - 2);
	big.in = in;
	t = read_telemetry();
	plans = t->plans_executed_total;
	pool = t->pool_in_use_bytes;
	protobuf_c_message_free_unpacked(&t->base, NULL);
	c = raw_connect();
	exec_send(c, 21, &big);
	gn_conn_close(&c); /* the result is never read */
	t = settled(plans, pool);
	assert_true(t->plans_executed_total > plans);
	if (t->pool_in_use_bytes > pool)
		fail_msg("pool: %llu bytes in use, %llu before the plan",
			 (unsigned long long)t->pool_in_use_bytes,
			 (unsigned long long)pool);
	protobuf_c_message_free_unpacked(&t->base, NULL);
	free(in);
	/* Still serving. */
	check_linear_relu(3, 5, 2);
}

/*
 * The same structure with other values travels as a fingerprint after the
 * first time, and the results stay right; an unknown fingerprint gets
 * ESTALE.
 */
static void test_plan_cache(void **state)
{
	struct gn_session *s = open_remote();
	struct gn_session_stats st;
	int64_t sh[] = {3};

	(void)state;
	for (int r = 0; r < 3; r++) {
		float a[3] = {(float)r, -1, 2}, b[3] = {1, (float)r, -5}, y[3];
		struct gn_tensor *t = gn_relu(gn_add(
			gn_tensor_from_host(s, GN_DTYPE_F32, 1, sh, a, 0),
			gn_tensor_from_host(s, GN_DTYPE_F32, 1, sh, b, 0)));

		assert_int_equal(gn_tensor_to_host(t, y, sizeof(y)), 0);
		for (int i = 0; i < 3; i++)
			assert_true(y[i] ==
				    (a[i] + b[i] > 0 ? a[i] + b[i] : 0));
	}
	assert_int_equal(gn_session_get_stats(s, &st), 0);
	assert_int_equal(st.plans_by_fingerprint, 2);
	assert_int_equal(st.plans_resent, 0);
	gn_session_destroy(&s);

	/* A fingerprint this connection never sent. */
	{
		struct gn_conn *c = raw_connect();
		Genie__ExecRequest req = GENIE__EXEC_REQUEST__INIT;
		struct gn_msg msg;
		Genie__Envelope *env;
		uint8_t *buf;
		size_t len;

		req.plan_fingerprint = 0x1234567887654321ull;
		assert_int_equal(
			gn_envelope_pack(GENIE__MSG_TYPE__MSG_TYPE_EXEC_REQUEST,
					 5, &req.base, &buf, &len),
			0);
		assert_int_equal(gn_conn_send(c, buf, len, NULL, 0, 5000), 0);
		free(buf);
		assert_int_equal(gn_conn_recv(c, &msg, 5000), 0);
		env = (Genie__Envelope *)gn_pb_unpack(
			&genie__envelope__descriptor, msg.env, msg.env_len,
			1 << 20);
		assert_non_null(env);
		expect_error(env, -ESTALE, "not cached");
		protobuf_c_message_free_unpacked(&env->base, NULL);
		gn_msg_release(&msg);
		gn_conn_close(&c);
	}
}

/*
 * A runtime with a 256 KiB memory limit refuses a plan that needs 1 MiB
 * with a clear error and keeps serving small plans on the same session.
 */
static void test_memory_limit(void **state)
{
	static const char *const args[] = {"--memory-limit", "262144", NULL};
	static float big[256 * 1024];
	float small[4] = {-1, 2, -3, 4}, out[4];
	int64_t bs[] = {256 * 1024}, ss[] = {4};
	struct runtime_proc rp;
	struct gn_session_opts o;
	struct gn_session *s;

	(void)state;
	assert_int_equal(runtime_start(&rp, g_runtime_bin, args), 0);
	gn_session_opts_init(&o, sizeof(o));
	o.target = rp.url;
	s = gn_session_create(&o);
	assert_non_null(s);
	assert_int_equal(gn_tensor_to_host(gn_relu(gn_tensor_from_host(
						   s, GN_DTYPE_F32, 1, bs, big,
						   GN_TENSOR_BORROW)),
					   big, sizeof(big)),
			 -ENOMEM);
	if (strstr(gn_last_error(), "limit") == NULL)
		fail_msg("error does not name the limit: %s", gn_last_error());
	assert_int_equal(
		gn_tensor_to_host(gn_relu(gn_tensor_from_host(s, GN_DTYPE_F32,
							      1, ss, small, 0)),
				  out, sizeof(out)),
		0);
	assert_true(out[0] == 0 && out[3] == 4);
	gn_session_destroy(&s);
	assert_int_equal(runtime_stop(&rp), 0);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_skeleton_numbers),
		cmocka_unit_test(test_chained_materialize),
		cmocka_unit_test(test_materialize_many_outputs),
		cmocka_unit_test(test_materialize_large_outputs),
		cmocka_unit_test(test_bad_plans_get_errors),
		cmocka_unit_test(test_bad_frames_close_only_that_connection),
		cmocka_unit_test(test_plan_cache),
		cmocka_unit_test(test_telemetry_counts),
		cmocka_unit_test(test_client_gone_mid_result),
		cmocka_unit_test(test_memory_limit),
	};

	return runtime_group_main(argc, argv, tests,
				  sizeof(tests) / sizeof(tests[0]));
}
