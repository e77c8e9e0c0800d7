/*
 * The tensor registry over TCP with real genie-runtime processes: resident
 * tensors round-trip; a plan reading a resident weight sends no weight
 * bytes and computes the right numbers; a handle is a capability of the
 * session (connection) that uploaded it; a runtime under --memory-limit
 * evicts unpinned tensors, spares pinned ones, refuses what cannot fit
 * with a clear -ENOMEM and keeps serving; 10,000 sessions that upload
 * leave nothing behind; concurrent clients share the executor thread; and
 * SIGTERM drains in-flight work and exits cleanly (no leaks under ASan).
 * Shared (content-addressed) residency: a second session, and one after
 * every other has left, attaches to a weight without sending it; a forged
 * content key is refused; cached shared blocks are evicted first and
 * pinned ones never; 2,000 sessions leave no reference behind.
 *
 *   registry_tcp_test PATH/TO/genie-runtime
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <genie/genie.h>

#include "client_internal.h"
#include "content_key.h"
#include "frame.h"
#include "genie/control.pb-c.h"
#include "genie/envelope.pb-c.h"
#include "genie/telemetry.pb-c.h"
#include "runtime_proc.h"
#include "transport.h"

#define NO_TENSOR "no tensor with that handle in this session"

static uint64_t g_rng = 0x2545f4914f6cdd1dull;

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

static struct gn_session *open_session(const char *url)
{
	struct gn_session_opts o;
	struct gn_session *s;

	gn_session_opts_init(&o, sizeof(o));
	o.target = url;
	o.timeout_ms = 20000;
	s = gn_session_create(&o);
	if (s == NULL)
		fail_msg("session on %s: %s", url, gn_last_error());
	return s;
}

static struct gn_tensor *vec(struct gn_session *s, const float *v, int64_t n)
{
	struct gn_tensor *t =
		gn_tensor_from_host(s, GN_DTYPE_F32, 1, &n, v, GN_TENSOR_COPY);

	assert_non_null(t);
	return t;
}

/* --- raw protocol, for what no libgenie session would send ------------ */

static struct gn_conn *raw_connect(const char *url)
{
	struct gn_transport_opts o;
	struct gn_conn *c = NULL;
	Genie__Hello h = GENIE__HELLO__INIT;
	Genie__Envelope *env;
	struct gn_msg msg;
	uint8_t *buf;
	size_t len;

	gn_transport_opts_init(&o, sizeof(o));
	assert_int_equal(gn_connect(url, &o, 5000, &c), 0);
	h.min_version = h.max_version = GN_SCHEMA_VERSION;
	h.peer_name = "raw-registry-test";
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

/* Send one request and return the reply envelope; `msg` holds its bytes. */
static Genie__Envelope *raw_call(struct gn_conn *c, int type, uint64_t id,
				 const ProtobufCMessage *body,
				 const struct iovec *iov, int niov,
				 struct gn_msg *msg)
{
	Genie__Envelope *env;
	uint8_t *buf;
	size_t len;

	assert_int_equal(gn_envelope_pack(type, id, body, &buf, &len), 0);
	assert_int_equal(gn_conn_send(c, buf, len, iov, niov, 5000), 0);
	free(buf);
	assert_int_equal(gn_conn_recv(c, msg, 10000), 0);
	env = (Genie__Envelope *)gn_pb_unpack(&genie__envelope__descriptor,
					      msg->env, msg->env_len, 1 << 20);
	assert_non_null(env);
	assert_int_equal(env->request_id, id);
	return env;
}

/*
 * Expect an ErrorReply with `code` whose message contains `needle`; the
 * message is copied to `out` (may be NULL).
 */
static void expect_error(Genie__Envelope *env, struct gn_msg *msg, int code,
			 const char *needle, char *out, size_t out_len)
{
	Genie__ErrorReply *er;

	if (env->type != GENIE__MSG_TYPE__MSG_TYPE_ERROR)
		fail_msg("expected an ErrorReply (%d), got type %d", code,
			 (int)env->type);
	er = (Genie__ErrorReply *)gn_pb_unpack(&genie__error_reply__descriptor,
					       env->body.data, env->body.len,
					       1 << 20);
	assert_non_null(er);
	if (er->code != code)
		fail_msg("error code %d, expected %d: %s", er->code, code,
			 er->message);
	if (strstr(er->message, needle) == NULL)
		fail_msg("error '%s' does not mention '%s'", er->message,
			 needle);
	if (out != NULL)
		snprintf(out, out_len, "%s", er->message);
	protobuf_c_message_free_unpacked(&er->base, NULL);
	protobuf_c_message_free_unpacked(&env->base, NULL);
	gn_msg_release(msg);
}

/* DOWNLOAD `handle` on `c`; expect -ENOENT and return the message. */
static void raw_download_refused(struct gn_conn *c, const uint8_t *handle,
				 char *out, size_t out_len)
{
	Genie__DownloadRequest req = GENIE__DOWNLOAD_REQUEST__INIT;
	struct gn_msg msg;
	Genie__Envelope *env;

	req.handle.data = (uint8_t *)handle;
	req.handle.len = 16;
	env = raw_call(c, GENIE__MSG_TYPE__MSG_TYPE_DOWNLOAD, 40, &req.base,
		       NULL, 0, &msg);
	expect_error(env, &msg, -ENOENT, NO_TENSOR, out, out_len);
}

/* UPLOAD f32[n] from a raw connection; returns its handle in `h`. */
static void raw_upload(struct gn_conn *c, const float *v, int64_t n,
		       uint8_t h[16])
{
	Genie__UploadRequest req = GENIE__UPLOAD_REQUEST__INIT;
	Genie__TensorMeta m = GENIE__TENSOR_META__INIT;
	struct iovec iov = {(void *)v, sizeof(float) * (size_t)n};
	Genie__UploadResult *res;
	Genie__Envelope *env;
	struct gn_msg msg;

	m.dtype = GENIE__DTYPE__DTYPE_F32;
	m.n_shape = 1;
	m.shape = &n;
	req.meta = &m;
	env = raw_call(c, GENIE__MSG_TYPE__MSG_TYPE_UPLOAD, 41, &req.base, &iov,
		       1, &msg);
	assert_int_equal(env->type, GENIE__MSG_TYPE__MSG_TYPE_UPLOAD_RESULT);
	res = (Genie__UploadResult *)gn_pb_unpack(
		&genie__upload_result__descriptor, env->body.data,
		env->body.len, 1 << 20);
	assert_non_null(res);
	assert_int_equal(res->handle.len, 16);
	assert_int_equal(res->bytes, sizeof(float) * (size_t)n);
	memcpy(h, res->handle.data, 16);
	protobuf_c_message_free_unpacked(&res->base, NULL);
	protobuf_c_message_free_unpacked(&env->base, NULL);
	gn_msg_release(&msg);
}

/*
 * ExecRequest relu(x) for x = f32[n] named by `handle`: with `resident`
 * the reference says so; with `unnamed` no reference is sent at all.
 * With `by_fp` only the fingerprint travels (the plan must be cached).
 */
static Genie__Envelope *raw_relu(struct gn_conn *c, uint64_t id,
				 const uint8_t *handle, int64_t n, int unnamed,
				 int by_fp, struct gn_msg *msg)
{
	Genie__TensorMeta m = GENIE__TENSOR_META__INIT;
	Genie__Node n0 = GENIE__NODE__INIT, n1 = GENIE__NODE__INIT;
	Genie__Node *nodes[] = {&n0, &n1};
	uint32_t outputs[] = {1}, operands[] = {0};
	Genie__Plan plan = GENIE__PLAN__INIT;
	Genie__PayloadRef ref = GENIE__PAYLOAD_REF__INIT, *refs[] = {&ref};
	Genie__ExecRequest req = GENIE__EXEC_REQUEST__INIT;

	m.dtype = GENIE__DTYPE__DTYPE_F32;
	m.n_shape = 1;
	m.shape = &n;
	n0.op = GENIE__OP_TYPE__OP_INPUT;
	n0.out = &m;
	n0.handle.data = (uint8_t *)handle;
	n0.handle.len = 16;
	n1.op = GENIE__OP_TYPE__OP_RELU;
	n1.n_inputs = 1;
	n1.inputs = operands;
	n1.out = &m;
	plan.schema_version = GN_SCHEMA_VERSION;
	plan.n_nodes = 2;
	plan.nodes = nodes;
	plan.n_outputs = 1;
	plan.outputs = outputs;
	plan.fingerprint = 0x5eed0000u + (uint64_t)n;
	ref.handle.data = (uint8_t *)handle;
	ref.handle.len = 16;
	ref.resident = 1;
	if (by_fp)
		req.plan_fingerprint = plan.fingerprint;
	else
		req.plan = &plan;
	req.n_inputs = unnamed ? 0 : 1;
	req.inputs = refs;
	return raw_call(c, GENIE__MSG_TYPE__MSG_TYPE_EXEC_REQUEST, id,
			&req.base, NULL, 0, msg);
}

/* Check an ExecResult holds relu(v). */
static void expect_relu(Genie__Envelope *env, struct gn_msg *msg,
			const float *v, int64_t n)
{
	Genie__ExecResult *res;
	float *y;

	if (env->type != GENIE__MSG_TYPE__MSG_TYPE_EXEC_RESULT)
		fail_msg("expected an ExecResult, got type %d", (int)env->type);
	res = (Genie__ExecResult *)gn_pb_unpack(&genie__exec_result__descriptor,
						env->body.data, env->body.len,
						1 << 20);
	assert_non_null(res);
	assert_int_equal(res->n_payload, 1);
	assert_int_equal(res->payload[0]->length, sizeof(float) * (size_t)n);
	/* The payload follows the envelope: copy out, it may be unaligned. */
	y = malloc(sizeof(float) * (size_t)n);
	assert_non_null(y);
	memcpy(y, msg->payload + res->payload[0]->offset,
	       sizeof(float) * (size_t)n);
	for (int64_t i = 0; i < n; i++)
		assert_true(y[i] == (v[i] > 0 ? v[i] : 0));
	free(y);
	protobuf_c_message_free_unpacked(&res->base, NULL);
	protobuf_c_message_free_unpacked(&env->base, NULL);
	gn_msg_release(msg);
}

static Genie__RuntimeTelemetry *telemetry(const char *url)
{
	struct gn_conn *c = raw_connect(url);
	Genie__RuntimeTelemetry *t;
	Genie__Envelope *env;
	struct gn_msg msg;

	env = raw_call(c, GENIE__MSG_TYPE__MSG_TYPE_TELEMETRY, 77, NULL, NULL,
		       0, &msg);
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

static void nap_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};

	nanosleep(&ts, NULL);
}

/*
 * Sessions end asynchronously on the runtime (after the client's close):
 * wait up to 10 s for its registry to hold `tensors` tensors.
 */
static Genie__RuntimeTelemetry *wait_registry(const char *url, uint64_t tensors)
{
	for (int i = 0;; i++) {
		Genie__RuntimeTelemetry *t = telemetry(url);

		if (t->registry_tensors == tensors || i == 200)
			return t;
		protobuf_c_message_free_unpacked(&t->base, NULL);
		nap_ms(50);
	}
}

/* --- tests ------------------------------------------------------------ */

/* Upload, fetch back, pin, release, and the wire's own checks. */
static void test_round_trip(void **state)
{
	struct gn_session *s = open_session(g_rt.url);
	float a[3 * 5], back[3 * 5];
	int32_t iv[7] = {1, -2, 3, -4, 5, -6, 7}, iback[7];
	int64_t as[] = {3, 5}, is[] = {7}, zs[] = {0, 4};
	struct gn_session_stats st;
	struct gn_tensor *ta, *ti, *tz;

	(void)state;
	fill(a, 15);
	ta = gn_tensor_from_host(s, GN_DTYPE_F32, 2, as, a, 0);
	ti = gn_tensor_from_host(s, GN_DTYPE_I32, 1, is, iv, 0);
	tz = gn_tensor_from_host(s, GN_DTYPE_F32, 2, zs, a, 0);
	assert_non_null(ta);
	assert_non_null(ti);
	assert_non_null(tz);
	assert_int_equal(gn_tensor_is_resident(ta), 0);
	assert_int_equal(gn_tensor_make_resident(ta, 0), 0);
	assert_int_equal(gn_tensor_make_resident(ti, 1), 0);
	assert_int_equal(gn_tensor_make_resident(tz, 0), 0);
	assert_int_equal(gn_tensor_is_resident(ta), 1);
	assert_int_equal(gn_tensor_is_pinned(ta), 0);
	assert_int_equal(gn_tensor_is_pinned(ti), 1);
	/* What comes back is the runtime's copy, byte for byte. */
	memset(back, 0, sizeof(back));
	assert_int_equal(gn_tensor_fetch(ta, back, sizeof(back)), 0);
	assert_memory_equal(back, a, sizeof(a));
	assert_int_equal(gn_tensor_fetch(ti, iback, sizeof(iback)), 0);
	assert_memory_equal(iback, iv, sizeof(iv));
	assert_int_equal(gn_tensor_fetch(tz, NULL, 0), 0);
	assert_int_equal(gn_tensor_fetch(ta, back, 8), -EINVAL);
	assert_int_equal(gn_session_get_stats(s, &st), 0);
	assert_int_equal(st.resident_tensors, 3);
	assert_int_equal(st.resident_bytes, sizeof(a) + sizeof(iv));
	assert_int_equal(st.resident_bytes_uploaded, sizeof(a) + sizeof(iv));
	/* Pin state changes, and making resident again only pins. */
	assert_int_equal(gn_tensor_set_pinned(ta, 1), 0);
	assert_int_equal(gn_tensor_is_pinned(ta), 1);
	assert_int_equal(gn_tensor_make_resident(ta, 0), 0);
	assert_int_equal(gn_tensor_is_pinned(ta), 0);
	assert_int_equal(gn_session_get_stats(s, &st), 0);
	assert_int_equal(st.resident_bytes_uploaded, sizeof(a) + sizeof(iv));
	/* Released: gone on the runtime, still a value on the client. */
	assert_int_equal(gn_tensor_release(ta), 0);
	assert_int_equal(gn_tensor_is_resident(ta), 0);
	assert_int_equal(gn_tensor_fetch(ta, back, sizeof(back)), -EINVAL);
	assert_int_equal(gn_tensor_release(ta), -EINVAL);
	assert_int_equal(gn_tensor_set_pinned(ta, 1), -EINVAL);
	assert_int_equal(gn_tensor_to_host(ta, back, sizeof(back)), 0);
	assert_memory_equal(back, a, sizeof(a));
	assert_int_equal(gn_tensor_make_resident(NULL, 0), -EINVAL);
	assert_int_equal(gn_session_get_stats(s, &st), 0);
	assert_int_equal(st.resident_tensors, 2);
	gn_session_destroy(&s);

	/* Malformed registry requests get worded errors, and the
	 * connection goes on. */
	{
		struct gn_conn *c = raw_connect(g_rt.url);
		Genie__UploadRequest up = GENIE__UPLOAD_REQUEST__INIT;
		Genie__TensorMeta m = GENIE__TENSOR_META__INIT;
		Genie__DownloadRequest dn = GENIE__DOWNLOAD_REQUEST__INIT;
		Genie__PinRequest pin = GENIE__PIN_REQUEST__INIT;
		float v[3] = {1, 2, 3};
		struct iovec iov = {v, sizeof(v)};
		int64_t four = 4;
		uint8_t h[16], three[3] = {1, 2, 3};
		struct gn_msg msg;
		Genie__Envelope *env;

		m.dtype = GENIE__DTYPE__DTYPE_F32;
		m.n_shape = 1;
		m.shape = &four;
		up.meta = &m;
		env = raw_call(c, GENIE__MSG_TYPE__MSG_TYPE_UPLOAD, 2, &up.base,
			       &iov, 1, &msg);
		expect_error(env, &msg, -EINVAL,
			     "needs 16 bytes, payload has 12", NULL, 0);
		up.meta = NULL;
		env = raw_call(c, GENIE__MSG_TYPE__MSG_TYPE_UPLOAD, 3, &up.base,
			       &iov, 1, &msg);
		expect_error(env, &msg, -EINVAL, "without a tensor meta", NULL,
			     0);
		dn.handle.data = three;
		dn.handle.len = 3;
		env = raw_call(c, GENIE__MSG_TYPE__MSG_TYPE_DOWNLOAD, 4,
			       &dn.base, NULL, 0, &msg);
		expect_error(env, &msg, -EINVAL,
			     "handle of 3 bytes, expected 16", NULL, 0);
		pin.handle.data = three;
		pin.handle.len = 3;
		env = raw_call(c, GENIE__MSG_TYPE__MSG_TYPE_PIN, 5, &pin.base,
			       NULL, 0, &msg);
		expect_error(env, &msg, -EINVAL, "pin: handle of 3 bytes", NULL,
			     0);
		/* Still serving: a good upload and its use by a plan. */
		raw_upload(c, v, 3, h);
		env = raw_relu(c, 6, h, 3, 0, 0, &msg);
		expect_relu(env, &msg, v, 3);
		gn_conn_close(&c);
	}
}

/* y = relu(x @ W + b) with W and b resident, against plain loops. */
static void check_mlp(struct gn_session *s, struct gn_tensor *w,
		      struct gn_tensor *b, const float *wv, const float *bv,
		      int m, int k, int n, uint64_t *sent)
{
	float *x = malloc(sizeof(float) * (size_t)(m * k));
	float *y = malloc(sizeof(float) * (size_t)(m * n));
	int64_t xs[] = {m, k};
	struct gn_session_stats st0, st1;
	struct gn_tensor *t;

	fill(x, (size_t)(m * k));
	t = gn_relu(gn_add(
		gn_matmul(gn_tensor_from_host(s, GN_DTYPE_F32, 2, xs, x, 0), w),
		b));
	assert_non_null(t);
	assert_int_equal(gn_session_get_stats(s, &st0), 0);
	assert_int_equal(
		gn_tensor_to_host(t, y, sizeof(float) * (size_t)(m * n)), 0);
	assert_int_equal(gn_session_get_stats(s, &st1), 0);
	*sent = st1.bytes_sent - st0.bytes_sent;
	for (int i = 0; i < m; i++)
		for (int j = 0; j < n; j++) {
			double acc = bv[j];

			for (int p = 0; p < k; p++)
				acc += (double)x[i * k + p] * wv[p * n + j];
			acc = acc > 0 ? acc : 0;
			if (fabs(acc - y[i * n + j]) > 1e-4 * (1 + fabs(acc)))
				fail_msg("y[%d,%d] = %g, expected %g", i, j,
					 y[i * n + j], acc);
		}
	free(x);
	free(y);
}

static void test_resident_weight_sends_no_bytes(void **state)
{
	enum { M = 4, K = 256, N = 256 };
	struct gn_session *s = open_session(g_rt.url);
	float *wv = malloc(sizeof(float) * K * N), bv[N];
	int64_t ws[] = {K, N}, bs[] = {N};
	const uint64_t wbytes = sizeof(float) * K * N;
	struct gn_tensor *w, *b;
	uint64_t sent;

	(void)state;
	fill(wv, K * N);
	fill(bv, N);
	w = gn_tensor_from_host(s, GN_DTYPE_F32, 2, ws, wv, 0);
	b = gn_tensor_from_host(s, GN_DTYPE_F32, 1, bs, bv, 0);
	assert_int_equal(gn_tensor_make_resident(w, 1), 0);
	assert_int_equal(gn_tensor_make_resident(b, 0), 0);
	/* First time the whole plan, then by fingerprint: no weights either
	 * way, only x (4 KiB) and the framing. */
	for (int r = 0; r < 3; r++) {
		check_mlp(s, w, b, wv, bv, M, K, N, &sent);
		if (sent >= wbytes / 4 || sent < sizeof(float) * M * K)
			fail_msg("round %d sent %llu bytes; x is %zu, W is "
				 "%llu",
				 r, (unsigned long long)sent,
				 sizeof(float) * M * K,
				 (unsigned long long)wbytes);
	}
	/* Released, the weight travels again with each plan. */
	assert_int_equal(gn_tensor_release(w), 0);
	check_mlp(s, w, b, wv, bv, M, K, N, &sent);
	assert_true(sent > wbytes);
	/* And resident once more: the same numbers, no weight bytes. */
	assert_int_equal(gn_tensor_make_resident(w, 0), 0);
	check_mlp(s, w, b, wv, bv, M, K, N, &sent);
	assert_true(sent < wbytes / 4);
	gn_session_destroy(&s);
	free(wv);
}

/*
 * Session B presents session A's real handle (read from A's tensor) on
 * its own connection: every request is refused exactly as for a handle
 * never issued, and A's tensor is untouched.
 */
static void test_handles_are_session_scoped(void **state)
{
	struct gn_session *a = open_session(g_rt.url);
	struct gn_conn *b = raw_connect(g_rt.url);
	float v[6] = {-1, 2, -3, 4, -5, 6}, back[6];
	uint8_t stolen[16], never[16], mine[16];
	char m_stolen[512], m_never[512];
	Genie__FreeRequest fr = GENIE__FREE_REQUEST__INIT;
	Genie__PinRequest pr = GENIE__PIN_REQUEST__INIT;
	struct gn_tensor *t;
	struct gn_msg msg;
	Genie__Envelope *env;

	(void)state;
	t = vec(a, v, 6);
	assert_int_equal(gn_tensor_make_resident(t, 0), 0);
	memcpy(stolen, t->handle, 16);
	memcpy(never, stolen, 16);
	never[0] ^= 0x5a;
	never[15] ^= 0xa5;

	raw_download_refused(b, stolen, m_stolen, sizeof(m_stolen));
	raw_download_refused(b, never, m_never, sizeof(m_never));
	assert_string_equal(m_stolen, m_never);

	fr.handle.data = stolen;
	fr.handle.len = 16;
	env = raw_call(b, GENIE__MSG_TYPE__MSG_TYPE_FREE, 50, &fr.base, NULL, 0,
		       &msg);
	expect_error(env, &msg, -ENOENT, NO_TENSOR, NULL, 0);
	pr.handle.data = stolen;
	pr.handle.len = 16;
	pr.pinned = 1;
	env = raw_call(b, GENIE__MSG_TYPE__MSG_TYPE_PIN, 51, &pr.base, NULL, 0,
		       &msg);
	expect_error(env, &msg, -ENOENT, NO_TENSOR, NULL, 0);
	/* A plan naming it, by reference or as a bare input node. */
	env = raw_relu(b, 52, stolen, 6, 0, 0, &msg);
	expect_error(env, &msg, -ENOENT, NO_TENSOR, m_stolen, sizeof(m_stolen));
	env = raw_relu(b, 53, never, 6, 0, 0, &msg);
	expect_error(env, &msg, -ENOENT, NO_TENSOR, m_never, sizeof(m_never));
	assert_string_equal(m_stolen, m_never);
	env = raw_relu(b, 54, stolen, 6, 1, 0, &msg);
	expect_error(env, &msg, -ENOENT, NO_TENSOR, NULL, 0);

	/* B's own tensor works, by whole plan and by fingerprint. */
	raw_upload(b, v, 6, mine);
	env = raw_relu(b, 55, mine, 6, 0, 0, &msg);
	expect_relu(env, &msg, v, 6);
	env = raw_relu(b, 56, mine, 6, 0, 1, &msg);
	expect_relu(env, &msg, v, 6);
	env = raw_relu(b, 57, mine, 6, 1, 0, &msg);
	expect_relu(env, &msg, v, 6);
	/* ... and is just as invisible to A. */
	memcpy(t->handle, mine, 16);
	assert_int_equal(gn_tensor_fetch(t, back, sizeof(back)), -ENOENT);
	if (strstr(gn_last_error(), NO_TENSOR) == NULL)
		fail_msg("A's error does not say '%s': %s", NO_TENSOR,
			 gn_last_error());
	gn_conn_close(&b);

	/* A's tensor survived B's attempts. */
	t = vec(a, v, 6);
	assert_int_equal(gn_tensor_make_resident(t, 0), 0);
	assert_int_equal(gn_tensor_fetch(t, back, sizeof(back)), 0);
	assert_memory_equal(back, v, sizeof(v));
	gn_session_destroy(&a);
}

#define CHUNK (64 * 1024) /* floats: 256 KiB, exactly one size class */

static struct gn_tensor *chunk(struct gn_session *s, float *v, float base)
{
	int64_t n = CHUNK;

	for (int i = 0; i < CHUNK; i++)
		v[i] = base + (float)(i % 7) - 3.0f;
	return gn_tensor_from_host(s, GN_DTYPE_F32, 1, &n, v, GN_TENSOR_COPY);
}

static void expect_fetch(struct gn_tensor *t, const float *v)
{
	static float back[CHUNK];

	if (gn_tensor_fetch(t, back, sizeof(back)) != 0)
		fail_msg("fetch: %s", gn_last_error());
	assert_memory_equal(back, v, sizeof(back));
}

static void expect_relu_of(struct gn_tensor *t, const float *v)
{
	static float y[CHUNK];
	struct gn_tensor *r = gn_relu(t);

	assert_non_null(r);
	if (gn_tensor_to_host(r, y, sizeof(y)) != 0)
		fail_msg("relu: %s", gn_last_error());
	for (int i = 0; i < CHUNK; i++)
		assert_true(y[i] == (v[i] > 0 ? v[i] : 0));
}

/*
 * A 1 MiB runtime holds four 256 KiB tensors. Beyond that, unpinned ones
 * go least recently used first, for uploads and for plans alike; the
 * pinned one always survives; what can never fit is refused with -ENOMEM
 * naming the limit, and the runtime goes on serving.
 */
/*
 * Fetches are written straight into the caller's buffer and a plan's
 * results into the session's arena (the session's payload placement,
 * seen through a counting wrapper): one placement per reply, bit-exact,
 * none for a refused fetch (whose connection stays); with
 * GENIE_NO_PLACEMENT set a session places nothing.
 */
struct fetch_count {
	const struct gn_placement *inner;
	int given;
	void *last;
};

static void *count_place(void *arg, const struct gn_conn *c, const uint8_t *env,
			 size_t env_len, size_t len)
{
	struct fetch_count *fc = arg;
	void *p = fc->inner->place(fc->inner->arg, c, env, env_len, len);

	if (p != NULL) {
		fc->given++;
		fc->last = p;
	}
	return p;
}

static void count_unplace(void *arg, void *buf)
{
	struct fetch_count *fc = arg;

	fc->inner->unplace(fc->inner->arg, buf);
}

static void test_fetch_in_place(void **state)
{
	static float v[CHUNK], back[CHUNK];
	struct gn_session *s = open_session(g_rt.url);
	struct fetch_count fc = {&s->placement, 0, NULL};
	const struct gn_placement wrap = {count_place, count_unplace, &fc};
	struct gn_tensor *t = chunk(s, v, 21), *u = chunk(s, v, 22), *r;

	(void)state;
	assert_non_null(s->placement.place);
	gn_conn_set_placement(s->conn, &wrap);
	assert_int_equal(gn_tensor_make_resident(t, 0), 0);
	assert_int_equal(gn_tensor_make_resident(u, 0), 0);
	assert_int_equal(gn_tensor_fetch(t, back, sizeof(back)), 0);
	assert_int_equal(fc.given, 1);
	assert_ptr_equal(fc.last, back);
	chunk(s, v, 21); /* t's values again (u's overwrote v) */
	assert_memory_equal(back, v, sizeof(back));
	/* Refused (a handle the runtime never issued): no placement, and
	 * the session goes on. */
	u->handle[0] ^= 1;
	assert_int_equal(gn_tensor_fetch(u, back, sizeof(back)), -ENOENT);
	assert_int_equal(fc.given, 1);
	assert_non_null(s->conn);
	assert_int_equal(gn_tensor_fetch(t, back, sizeof(back)), 0);
	assert_int_equal(fc.given, 2);
	assert_memory_equal(back, v, sizeof(back));
	/* A plan's result lands in the session's arena and stays there: the
	 * tensor's value is the placed block itself. */
	r = gn_relu(t);
	assert_int_equal(gn_tensor_to_host(r, back, sizeof(back)), 0);
	assert_int_equal(fc.given, 3);
	assert_ptr_equal(r->data, fc.last);
	for (int i = 0; i < CHUNK; i++)
		assert_true(back[i] == (v[i] > 0 ? v[i] : 0));
	gn_session_destroy(&s);

	setenv("GENIE_NO_PLACEMENT", "1", 1);
	s = open_session(g_rt.url);
	unsetenv("GENIE_NO_PLACEMENT");
	assert_null(s->placement.place);
	assert_null(s->conn->placement);
	t = chunk(s, v, 23);
	assert_int_equal(gn_tensor_make_resident(t, 0), 0);
	assert_int_equal(gn_tensor_fetch(t, back, sizeof(back)), 0);
	assert_memory_equal(back, v, sizeof(back));
	gn_session_destroy(&s);
}

static void test_eviction_under_memory_limit(void **state)
{
	static const char *const args[] = {"--memory-limit", "1048576", NULL};
	static float va[CHUNK], vb[CHUNK], vc[CHUNK], vd[CHUNK], ve[CHUNK];
	struct runtime_proc rp;
	struct gn_session *s;
	struct gn_tensor *a, *b, *c, *d, *e, *big;
	struct gn_session_stats st;
	Genie__RuntimeTelemetry *t;
	float *vbig;
	int64_t nbig = 2 * 256 * 1024;

	(void)state;
	assert_int_equal(runtime_start(&rp, g_runtime_bin, args), 0);
	s = open_session(rp.url);
	a = chunk(s, va, 1);
	b = chunk(s, vb, 2);
	c = chunk(s, vc, 3);
	d = chunk(s, vd, 4);
	e = chunk(s, ve, 5);
	assert_int_equal(gn_tensor_make_resident(a, 0), 0);
	assert_int_equal(gn_tensor_make_resident(b, 1), 0); /* pinned */
	assert_int_equal(gn_tensor_make_resident(c, 0), 0);
	assert_int_equal(gn_tensor_make_resident(d, 0), 0);
	/* Full. The fifth evicts the least recently used unpinned: a. */
	assert_int_equal(gn_tensor_make_resident(e, 0), 0);
	assert_int_equal(gn_tensor_fetch(a, va, sizeof(va)), -ENOENT);
	assert_int_equal(gn_tensor_is_resident(a), 0);
	expect_fetch(b, vb);
	t = telemetry(rp.url);
	assert_int_equal(t->registry_evictions_total, 1);
	assert_int_equal(t->registry_tensors, 4);
	/* a-d landed in their blocks; e found the pool full and was copied
	 * into the block evicting a made. */
	assert_int_equal(t->registry_uploads_total, 5);
	assert_int_equal(t->registry_uploads_in_place_total, 4);
	assert_int_equal(t->pool_in_use_bytes, 1048576);
	assert_int_equal(t->pool_limit_bytes, 1048576);
	assert_true(t->pool_peak_in_use_bytes >= 1048576);
	protobuf_c_message_free_unpacked(&t->base, NULL);

	/* A plan reading c needs 256 KiB for its result: d (the least
	 * recently used unpinned one it does not read) makes way. */
	expect_relu_of(c, vc);
	t = telemetry(rp.url);
	assert_int_equal(t->registry_evictions_total, 2);
	protobuf_c_message_free_unpacked(&t->base, NULL);

	/* A plan reading evicted d: libgenie uploads it again and the plan
	 * runs (evicting another unpinned tensor for its result). */
	expect_relu_of(d, vd);
	assert_int_equal(gn_session_get_stats(s, &st), 0);
	assert_int_equal(st.resident_reuploads, 1);
	expect_fetch(d, vd);

	/* 2 MiB can never fit in 1 MiB: refused, nothing evicted for it. */
	vbig = calloc((size_t)nbig, sizeof(float));
	big = gn_tensor_from_host(s, GN_DTYPE_F32, 1, &nbig, vbig,
				  GN_TENSOR_BORROW);
	t = telemetry(rp.url);
	{
		uint64_t ev = t->registry_evictions_total;

		protobuf_c_message_free_unpacked(&t->base, NULL);
		assert_int_equal(gn_tensor_make_resident(big, 0), -ENOMEM);
		if (strstr(gn_last_error(), "limit") == NULL ||
		    strstr(gn_last_error(), "f32[524288]") == NULL)
			fail_msg("-ENOMEM does not name the tensor and the "
				 "limit: %s",
				 gn_last_error());
		t = telemetry(rp.url);
		assert_int_equal(t->registry_evictions_total, ev);
		protobuf_c_message_free_unpacked(&t->base, NULL);
	}
	/* ... and the same session is served right after. */
	expect_fetch(b, vb);
	expect_relu_of(b, vb);
	/* Pin the rest: then nothing can make room for a fifth. */
	if (gn_tensor_is_resident(c))
		assert_int_equal(gn_tensor_set_pinned(c, 1), 0);
	else
		assert_int_equal(gn_tensor_make_resident(c, 1), 0);
	assert_int_equal(gn_tensor_set_pinned(d, 1), 0);
	if (gn_tensor_is_resident(e))
		gn_tensor_set_pinned(e, 1); /* -ENOENT if evicted meanwhile */
	if (!gn_tensor_is_resident(e))
		assert_int_equal(gn_tensor_make_resident(e, 1), 0);
	assert_int_equal(gn_tensor_make_resident(a, 0), -ENOMEM);
	assert_int_equal(gn_tensor_is_resident(a), 0);
	/* Every pinned tensor survived all of it. */
	expect_fetch(b, vb);
	expect_fetch(c, vc);
	expect_fetch(d, vd);
	expect_fetch(e, ve);
	/* Freeing one lets work in again. */
	assert_int_equal(gn_tensor_release(c), 0);
	expect_relu_of(b, vb);
	free(vbig);
	gn_session_destroy(&s);
	t = wait_registry(rp.url, 0);
	assert_int_equal(t->registry_tensors, 0);
	assert_int_equal(t->registry_bytes, 0);
	assert_true(t->pool_failures_total >= 2);
	protobuf_c_message_free_unpacked(&t->base, NULL);
	assert_int_equal(runtime_stop(&rp), 0);
}

/* 10,000 sessions that upload and leave: the registry ends empty. */
static void test_many_sessions_leave_nothing(void **state)
{
	enum { CYCLES = 10000 };
	struct runtime_proc rp;
	Genie__RuntimeTelemetry *t;
	float v[16];
	int64_t n = 16;

	(void)state;
	fill(v, 16);
	assert_int_equal(runtime_start(&rp, g_runtime_bin, NULL), 0);
	for (int i = 0; i < CYCLES; i++) {
		struct gn_session *s = open_session(rp.url);
		struct gn_tensor *x = gn_tensor_from_host(
			s, GN_DTYPE_F32, 1, &n, v, GN_TENSOR_BORROW);

		if (gn_tensor_make_resident(x, i & 1) != 0)
			fail_msg("cycle %d: %s", i, gn_last_error());
		gn_session_destroy(&s);
	}
	t = wait_registry(rp.url, 0);
	assert_int_equal(t->registry_tensors, 0);
	assert_int_equal(t->registry_bytes, 0);
	assert_int_equal(t->registry_uploads_total, CYCLES);
	assert_int_equal(t->pool_in_use_bytes, 0);
	assert_true(t->connections_total >= CYCLES);
	protobuf_c_message_free_unpacked(&t->base, NULL);
	assert_int_equal(runtime_stop(&rp), 0);
}

/* --- shared (content-addressed) resident tensors ---------------------- */

/* The bytes a session has sent so far. */
static uint64_t sent_by(struct gn_session *s)
{
	struct gn_session_stats st;

	assert_int_equal(gn_session_get_stats(s, &st), 0);
	return st.bytes_sent;
}

/* make_resident_shared(t, pin), returning the bytes it sent. */
static uint64_t share_sent(struct gn_tensor *t, int pin)
{
	uint64_t before = sent_by(t->session);

	if (gn_tensor_make_resident_shared(t, pin) != 0)
		fail_msg("make_resident_shared: %s", gn_last_error());
	return sent_by(t->session) - before;
}

static void content_key_f32(const float *v, int64_t n,
			    uint8_t key[GN_CONTENT_KEY_SIZE])
{
	struct gn_tensor_meta m = {.dtype = GN_DTYPE_F32, .ndim = 1};

	m.shape[0] = n;
	assert_int_equal(gn_content_key(&m, v, key), 0);
}

/* UPLOAD f32[n] marked shared with `key` (key_len bytes) on a raw
 * connection; returns the reply envelope. */
static Genie__Envelope *raw_upload_shared(struct gn_conn *c, uint64_t id,
					  const float *v, int64_t n,
					  const uint8_t *key, size_t key_len,
					  int shared, struct gn_msg *msg)
{
	Genie__UploadRequest req = GENIE__UPLOAD_REQUEST__INIT;
	Genie__TensorMeta m = GENIE__TENSOR_META__INIT;
	struct iovec iov = {(void *)v, sizeof(float) * (size_t)n};

	m.dtype = GENIE__DTYPE__DTYPE_F32;
	m.n_shape = 1;
	m.shape = &n;
	req.meta = &m;
	req.content_key.data = (uint8_t *)key;
	req.content_key.len = key_len;
	req.shared = shared;
	return raw_call(c, GENIE__MSG_TYPE__MSG_TYPE_UPLOAD, id, &req.base,
			&iov, 1, msg);
}

/* ATTACH to f32[n] (`meta` 0: no meta) under `key` on a raw connection. */
static Genie__Envelope *raw_attach(struct gn_conn *c, uint64_t id,
				   const uint8_t *key, size_t key_len,
				   int64_t n, int meta, struct gn_msg *msg)
{
	Genie__AttachRequest req = GENIE__ATTACH_REQUEST__INIT;
	Genie__TensorMeta m = GENIE__TENSOR_META__INIT;

	m.dtype = GENIE__DTYPE__DTYPE_F32;
	m.n_shape = 1;
	m.shape = &n;
	req.meta = meta ? &m : NULL;
	req.content_key.data = (uint8_t *)key;
	req.content_key.len = key_len;
	return raw_call(c, GENIE__MSG_TYPE__MSG_TYPE_ATTACH, id, &req.base,
			NULL, 0, msg);
}

/* Expect an UploadResult or AttachResult for `bytes`; its handle to h. */
static void expect_handle(Genie__Envelope *env, struct gn_msg *msg, int type,
			  uint64_t bytes, uint8_t h[16])
{
	Genie__AttachResult *res;

	if ((int)env->type != type)
		fail_msg("expected reply type %d, got %d", type,
			 (int)env->type);
	/* UploadResult and AttachResult are the same on the wire. */
	res = (Genie__AttachResult *)gn_pb_unpack(
		&genie__attach_result__descriptor, env->body.data,
		env->body.len, 1 << 20);
	assert_non_null(res);
	assert_int_equal(res->handle.len, 16);
	assert_int_equal(res->bytes, bytes);
	memcpy(h, res->handle.data, 16);
	protobuf_c_message_free_unpacked(&res->base, NULL);
	protobuf_c_message_free_unpacked(&env->base, NULL);
	gn_msg_release(msg);
}

/*
 * The ONNX weight cache: session A makes a 256 KiB weight shared-resident
 * (sending it); session B with the same content attaches, sending almost
 * nothing, and computes with it; B with other content of the same shape
 * uploads. A and B share a block but not a handle: neither B nor a third
 * connection can use A's handle. After everyone leaves, the block stays
 * and a new session C attaches without sending the weight.
 */
static void test_shared_weight_across_sessions(void **state)
{
	static float va[CHUNK], vb[CHUNK], vc[CHUNK], vx[CHUNK], vd[CHUNK];
	const uint64_t size = sizeof(va);
	struct runtime_proc rp;
	struct gn_session *a, *b, *c;
	struct gn_tensor *ta, *tb, *tc, *tx, *td;
	struct gn_session_stats st;
	Genie__RuntimeTelemetry *t;
	uint8_t key[GN_CONTENT_KEY_SIZE], hr[16], never[16];
	char m_a[512], m_never[512];
	Genie__FreeRequest fr = GENIE__FREE_REQUEST__INIT;
	struct gn_conn *raw;
	Genie__Envelope *env;
	struct gn_msg msg;
	uint64_t sent;

	(void)state;
	assert_int_equal(runtime_start(&rp, g_runtime_bin, NULL), 0);
	a = open_session(rp.url);
	b = open_session(rp.url);
	ta = chunk(a, va, 11);
	tb = chunk(b, vb, 11); /* the same content */
	tc = chunk(b, vc, 12); /* other content, same shape */
	sent = share_sent(ta, 0);
	if (sent < size)
		fail_msg("A sent %llu bytes for a %llu-byte tensor",
			 (unsigned long long)sent, (unsigned long long)size);
	sent = share_sent(tb, 0);
	if (sent >= size / 4)
		fail_msg("B sent %llu bytes attaching to a %llu-byte tensor",
			 (unsigned long long)sent, (unsigned long long)size);
	assert_int_equal(gn_session_get_stats(b, &st), 0);
	assert_int_equal(st.resident_attach_hits, 1);
	assert_int_equal(st.resident_bytes_attached, size);
	assert_int_equal(st.resident_bytes_uploaded, 0);
	assert_int_equal(st.resident_tensors, 1);
	assert_memory_not_equal(ta->handle, tb->handle, 16);
	/* A plan in B reads the shared block: right numbers, no weight. */
	sent = sent_by(b);
	expect_relu_of(tb, vb);
	expect_fetch(tb, vb);
	if (sent_by(b) - sent >= size / 4)
		fail_msg("B's plan sent %llu bytes",
			 (unsigned long long)(sent_by(b) - sent));
	/* Other content of the same shape is not found: uploaded. */
	sent = share_sent(tc, 0);
	assert_true(sent >= size);
	assert_int_equal(gn_session_get_stats(b, &st), 0);
	assert_int_equal(st.resident_attach_hits, 1);
	assert_int_equal(st.resident_bytes_uploaded, size);
	expect_relu_of(tc, vc);

	/* Session scoping: a third connection attaches and gets its own
	 * handle; A's handle on the same block is refused to it exactly as
	 * a handle never issued. */
	raw = raw_connect(rp.url);
	content_key_f32(va, CHUNK, key);
	env = raw_attach(raw, 60, key, sizeof(key), CHUNK, 1, &msg);
	expect_handle(env, &msg, GENIE__MSG_TYPE__MSG_TYPE_ATTACH_RESULT, size,
		      hr);
	assert_memory_not_equal(hr, ta->handle, 16);
	memcpy(never, ta->handle, 16);
	never[3] ^= 0x77;
	raw_download_refused(raw, ta->handle, m_a, sizeof(m_a));
	raw_download_refused(raw, never, m_never, sizeof(m_never));
	assert_string_equal(m_a, m_never);
	fr.handle.data = ta->handle;
	fr.handle.len = 16;
	env = raw_call(raw, GENIE__MSG_TYPE__MSG_TYPE_FREE, 61, &fr.base, NULL,
		       0, &msg);
	expect_error(env, &msg, -ENOENT, NO_TENSOR, NULL, 0);
	env = raw_relu(raw, 62, ta->handle, CHUNK, 0, 0, &msg);
	expect_error(env, &msg, -ENOENT, NO_TENSOR, NULL, 0);
	env = raw_relu(raw, 63, hr, CHUNK, 0, 0, &msg);
	expect_relu(env, &msg, va, CHUNK);
	/* ... and B, whose handle names the very same block, cannot use
	 * A's either. */
	tx = chunk(b, vx, 11);
	assert_int_equal(share_sent(tx, 0) < size / 4, 1);
	memcpy(tx->handle, ta->handle, 16);
	assert_int_equal(gn_tensor_fetch(tx, vx, sizeof(vx)), -ENOENT);
	if (strstr(gn_last_error(), NO_TENSOR) == NULL)
		fail_msg("B's error does not say '%s': %s", NO_TENSOR,
			 gn_last_error());
	/* A's tensor is untouched by all of it. */
	expect_fetch(ta, va);
	expect_relu_of(ta, va);
	t = telemetry(rp.url);
	assert_int_equal(t->registry_shared_blocks, 2);
	assert_int_equal(t->registry_shared_bytes, 2 * size);
	assert_int_equal(t->registry_bytes, 2 * size);
	/* A, B (tb, tc, tx's lost handle) and the raw connection. */
	assert_int_equal(t->registry_shared_references, 5);
	assert_int_equal(t->registry_attach_hits_total, 3);
	assert_int_equal(t->registry_attach_misses_total, 2);
	assert_int_equal(t->registry_uploads_total, 2);
	assert_int_equal(t->registry_uploads_in_place_total, 2);
	protobuf_c_message_free_unpacked(&t->base, NULL);

	/* Everyone leaves: no handle remains, the blocks stay cached. */
	gn_conn_close(&raw);
	gn_session_destroy(&a);
	gn_session_destroy(&b);
	t = wait_registry(rp.url, 0);
	assert_int_equal(t->registry_tensors, 0);
	assert_int_equal(t->registry_shared_references, 0);
	assert_int_equal(t->registry_shared_blocks, 2);
	assert_int_equal(t->registry_shared_cached_blocks, 2);
	assert_int_equal(t->registry_bytes, 2 * size);
	protobuf_c_message_free_unpacked(&t->base, NULL);
	/* A new session loads the same weight: no weight bytes sent. */
	c = open_session(rp.url);
	td = chunk(c, vd, 11);
	sent = share_sent(td, 1);
	if (sent >= size / 4)
		fail_msg("C sent %llu bytes after A and B left",
			 (unsigned long long)sent);
	expect_relu_of(td, vd);
	assert_int_equal(gn_session_get_stats(c, &st), 0);
	assert_int_equal(st.resident_attach_hits, 1);
	assert_int_equal(st.resident_bytes_uploaded, 0);
	gn_session_destroy(&c);
	t = wait_registry(rp.url, 0);
	assert_int_equal(t->registry_shared_references, 0);
	assert_int_equal(t->registry_shared_cached_blocks, 2);
	protobuf_c_message_free_unpacked(&t->base, NULL);
	assert_int_equal(runtime_stop(&rp), 0);
}

/*
 * A client cannot poison a key: an upload whose key is not the SHA-256 of
 * its bytes is refused -EINVAL, stores nothing under the key, and is
 * counted; malformed ATTACH and shared UPLOAD requests get worded
 * errors; the connection keeps serving throughout.
 */
static void test_forged_shared_upload_refused(void **state)
{
	float v[8] = {0.5f, -7, 3, 9, -2, 4.25f, 1, -1};
	float w[8] = {0.5f, -7, 3, 9, -2, 4.25f, 1, 1};
	uint8_t kv[GN_CONTENT_KEY_SIZE], kw[GN_CONTENT_KEY_SIZE];
	uint8_t h[16], h2[16], bad_dtype_key[GN_CONTENT_KEY_SIZE] = {0};
	struct gn_conn *c = raw_connect(g_rt.url), *d;
	Genie__RuntimeTelemetry *t;
	Genie__Envelope *env;
	struct gn_msg msg;
	uint64_t mism0, err0;

	(void)state;
	t = telemetry(g_rt.url);
	mism0 = t->registry_hash_mismatches_total;
	err0 = t->tensor_errors_total;
	protobuf_c_message_free_unpacked(&t->base, NULL);
	content_key_f32(v, 8, kv);
	content_key_f32(w, 8, kw);
	/* v's bytes under w's key: refused, and w's key holds nothing. */
	env = raw_upload_shared(c, 70, v, 8, kw, sizeof(kw), 1, &msg);
	expect_error(env, &msg, -EINVAL, "is not the SHA-256", NULL, 0);
	env = raw_attach(c, 71, kw, sizeof(kw), 8, 1, &msg);
	expect_error(env, &msg, -ENOENT, "not cached", NULL, 0);
	env = raw_attach(c, 72, kv, sizeof(kv), 8, 1, &msg);
	expect_error(env, &msg, -ENOENT, "not cached", NULL, 0);
	/* Malformed: key lengths, a key without `shared`, no meta. */
	env = raw_upload_shared(c, 73, v, 8, kv, 31, 1, &msg);
	expect_error(env, &msg, -EINVAL,
		     "upload: content key of 31 bytes, expected 32", NULL, 0);
	env = raw_upload_shared(c, 74, v, 8, NULL, 0, 1, &msg);
	expect_error(env, &msg, -EINVAL,
		     "upload: content key of 0 bytes, expected 32", NULL, 0);
	env = raw_upload_shared(c, 75, v, 8, kv, sizeof(kv), 0, &msg);
	expect_error(env, &msg, -EINVAL, "without `shared`", NULL, 0);
	env = raw_attach(c, 76, kv, 5, 8, 1, &msg);
	expect_error(env, &msg, -EINVAL,
		     "attach: content key of 5 bytes, expected 32", NULL, 0);
	env = raw_attach(c, 77, kv, sizeof(kv), 8, 0, &msg);
	expect_error(env, &msg, -EINVAL,
		     "attach: request without a tensor meta", NULL, 0);
	env = raw_attach(c, 78, bad_dtype_key, sizeof(bad_dtype_key), -3, 1,
			 &msg);
	expect_error(env, &msg, -EINVAL, "attach", NULL, 0);
	/* Still serving: the honest upload is stored, and used. */
	env = raw_upload_shared(c, 79, v, 8, kv, sizeof(kv), 1, &msg);
	expect_handle(env, &msg, GENIE__MSG_TYPE__MSG_TYPE_UPLOAD_RESULT,
		      sizeof(v), h);
	env = raw_relu(c, 80, h, 8, 0, 0, &msg);
	expect_relu(env, &msg, v, 8);
	/* Another connection attaches by the true key; the same key with
	 * another shape is a miss. */
	d = raw_connect(g_rt.url);
	env = raw_attach(d, 81, kv, sizeof(kv), 8, 1, &msg);
	expect_handle(env, &msg, GENIE__MSG_TYPE__MSG_TYPE_ATTACH_RESULT,
		      sizeof(v), h2);
	assert_memory_not_equal(h, h2, 16);
	env = raw_relu(d, 82, h2, 8, 0, 0, &msg);
	expect_relu(env, &msg, v, 8);
	env = raw_attach(d, 83, kv, sizeof(kv), 4, 1, &msg);
	expect_error(env, &msg, -ENOENT, "not cached", NULL, 0);
	gn_conn_close(&d);
	gn_conn_close(&c);
	t = telemetry(g_rt.url);
	assert_int_equal(t->registry_hash_mismatches_total, mism0 + 1);
	/* Refusals count as errors; "not cached" answers do not. */
	assert_int_equal(t->tensor_errors_total, err0 + 7);
	protobuf_c_message_free_unpacked(&t->base, NULL);
}

/*
 * A 1 MiB runtime (four 256 KiB blocks) under pressure: a cached shared
 * block goes first, even before a less recently used private one; a
 * referenced shared block evicted takes both sessions' handles with it,
 * and a plan reading it in either session still runs (B uploads it again
 * shared, A then attaches to that); the pinned shared block survives.
 */
static void test_shared_eviction_under_memory_limit(void **state)
{
	static const char *const args[] = {"--memory-limit", "1048576", NULL};
	static float vp[CHUNK], vr[CHUNK], vq[CHUNK], vx[CHUNK], vn[CHUNK];
	static float vy[CHUNK], vrb[CHUNK];
	struct runtime_proc rp;
	struct gn_session *a, *b;
	struct gn_tensor *p, *r, *q, *x, *n, *y, *rb;
	struct gn_session_stats st;
	Genie__RuntimeTelemetry *t;
	uint64_t sent;

	(void)state;
	assert_int_equal(runtime_start(&rp, g_runtime_bin, args), 0);
	a = open_session(rp.url);
	b = open_session(rp.url);
	p = chunk(a, vp, 21);
	r = chunk(a, vr, 22);
	q = chunk(a, vq, 23);
	x = chunk(a, vx, 24);
	n = chunk(a, vn, 25);
	y = chunk(a, vy, 26);
	rb = chunk(b, vrb, 22); /* r's content */
	/* P private and least recently used; R shared; Q shared and
	 * pinned; X shared with its handle released: cached. Full. */
	assert_int_equal(gn_tensor_make_resident(p, 0), 0);
	share_sent(r, 0);
	share_sent(q, 1);
	share_sent(x, 0);
	assert_int_equal(gn_tensor_release(x), 0);
	t = telemetry(rp.url);
	assert_int_equal(t->registry_shared_cached_blocks, 1);
	assert_int_equal(t->pool_in_use_bytes, 1048576);
	protobuf_c_message_free_unpacked(&t->base, NULL);
	/* One more: the cached block goes, not the older private one. */
	assert_int_equal(gn_tensor_make_resident(n, 0), 0);
	t = telemetry(rp.url);
	assert_int_equal(t->registry_evictions_total, 1);
	assert_int_equal(t->registry_shared_cached_blocks, 0);
	assert_int_equal(t->registry_shared_blocks, 2);
	assert_int_equal(t->registry_tensors, 4);
	protobuf_c_message_free_unpacked(&t->base, NULL);
	expect_fetch(p, vp);
	expect_fetch(r, vr);
	/* B attaches to R; then R becomes the least recently used
	 * unpinned block and the next upload evicts it under both. */
	assert_true(share_sent(rb, 0) < sizeof(vr) / 4);
	expect_fetch(p, vp);
	expect_fetch(n, vn);
	assert_int_equal(gn_tensor_make_resident(y, 0), 0);
	t = telemetry(rp.url);
	assert_int_equal(t->registry_evictions_total, 2);
	assert_int_equal(t->registry_shared_blocks, 1);
	assert_int_equal(t->registry_shared_references, 1);
	protobuf_c_message_free_unpacked(&t->base, NULL);
	/* B's plan finds its handle gone: libgenie attaches (a miss),
	 * uploads R shared again, and the plan runs. */
	expect_relu_of(rb, vrb);
	assert_int_equal(gn_session_get_stats(b, &st), 0);
	assert_int_equal(st.resident_reuploads, 1);
	assert_int_equal(st.resident_attach_hits, 1);
	/* A's plan finds its handle gone too, and attaches to B's upload:
	 * no weight bytes. */
	sent = sent_by(a);
	expect_relu_of(r, vr);
	if (sent_by(a) - sent >= sizeof(vr) / 4)
		fail_msg("A's restore sent %llu bytes",
			 (unsigned long long)(sent_by(a) - sent));
	assert_int_equal(gn_session_get_stats(a, &st), 0);
	assert_int_equal(st.resident_reuploads, 0);
	assert_int_equal(st.resident_attach_hits, 1);
	expect_fetch(r, vr);
	/* The pinned shared block survived everything. */
	expect_fetch(q, vq);
	t = telemetry(rp.url);
	assert_int_equal(t->registry_shared_blocks, 2);
	assert_int_equal(t->registry_shared_references, 3);
	assert_true(t->registry_evictions_total >= 4);
	protobuf_c_message_free_unpacked(&t->base, NULL);
	gn_session_destroy(&a);
	gn_session_destroy(&b);
	t = wait_registry(rp.url, 0);
	assert_int_equal(t->registry_shared_references, 0);
	assert_int_equal(t->registry_shared_cached_blocks, 2);
	protobuf_c_message_free_unpacked(&t->base, NULL);
	assert_int_equal(runtime_stop(&rp), 0);
}

/* 2,000 sessions attach to one shared weight and leave: no reference is
 * left behind, and only the first sent the bytes. */
static void test_shared_many_sessions_leave_no_references(void **state)
{
	enum { CYCLES = 2000 };
	struct runtime_proc rp;
	Genie__RuntimeTelemetry *t;
	float v[64];
	int64_t n = 64;

	(void)state;
	for (int i = 0; i < 64; i++)
		v[i] = (float)(i % 9) - 4.0f;
	assert_int_equal(runtime_start(&rp, g_runtime_bin, NULL), 0);
	for (int i = 0; i < CYCLES; i++) {
		struct gn_session *s = open_session(rp.url);
		struct gn_tensor *x = gn_tensor_from_host(
			s, GN_DTYPE_F32, 1, &n, v, GN_TENSOR_BORROW);

		if (gn_tensor_make_resident_shared(x, i & 1) != 0)
			fail_msg("cycle %d: %s", i, gn_last_error());
		if (i % 250 == 0) {
			float y[64];

			assert_int_equal(
				gn_tensor_to_host(gn_relu(x), y, sizeof(y)), 0);
			for (int k = 0; k < 64; k++)
				assert_true(y[k] == (v[k] > 0 ? v[k] : 0));
		}
		if (i % 3 == 0)
			assert_int_equal(gn_tensor_release(x), 0);
		gn_session_destroy(&s);
	}
	t = wait_registry(rp.url, 0);
	assert_int_equal(t->registry_tensors, 0);
	assert_int_equal(t->registry_shared_references, 0);
	assert_int_equal(t->registry_shared_blocks, 1);
	assert_int_equal(t->registry_shared_cached_blocks, 1);
	assert_int_equal(t->registry_bytes, sizeof(v));
	assert_int_equal(t->registry_uploads_total, 1);
	assert_int_equal(t->registry_attach_hits_total, CYCLES - 1);
	assert_int_equal(t->registry_attach_misses_total, 1);
	assert_int_equal(t->pool_in_use_bytes, 256); /* the one block */
	protobuf_c_message_free_unpacked(&t->base, NULL);
	assert_int_equal(runtime_stop(&rp), 0);
}

/* One client thread: its own session, its own resident weight. */
struct client_arg {
	const char *url;
	int id, rounds;
	int failures;
	char why[512];
};

static void *client_main(void *p)
{
	enum { K = 32, N = 16 };
	struct client_arg *ca = p;
	struct gn_session_opts o;
	struct gn_session *s;
	float w[K * N], x[K], y[N];
	int64_t ws[] = {K, N}, xs[] = {1, K};
	struct gn_tensor *tw;

	for (int i = 0; i < K * N; i++)
		w[i] = (float)((i * 7 + ca->id * 13) % 11) - 5.0f;
	gn_session_opts_init(&o, sizeof(o));
	o.target = ca->url;
	o.timeout_ms = 20000;
	s = gn_session_create(&o);
	if (s == NULL) {
		snprintf(ca->why, sizeof(ca->why), "session: %s",
			 gn_last_error());
		ca->failures++;
		return NULL;
	}
	tw = gn_tensor_from_host(s, GN_DTYPE_F32, 2, ws, w, GN_TENSOR_COPY);
	if (gn_tensor_make_resident(tw, ca->id & 1) != 0) {
		snprintf(ca->why, sizeof(ca->why), "resident: %s",
			 gn_last_error());
		ca->failures++;
		gn_session_destroy(&s);
		return NULL;
	}
	for (int r = 0; r < ca->rounds; r++) {
		struct gn_tensor *t;

		for (int i = 0; i < K; i++)
			x[i] = (float)((i + r + ca->id) % 5) - 2.0f;
		t = gn_relu(gn_matmul(
			gn_tensor_from_host(s, GN_DTYPE_F32, 2, xs, x, 0), tw));
		if (gn_tensor_to_host(t, y, sizeof(y)) != 0) {
			snprintf(ca->why, sizeof(ca->why), "round %d: %s", r,
				 gn_last_error());
			ca->failures++;
			break;
		}
		for (int j = 0; j < N; j++) {
			float acc = 0;

			/* Small integers: exact in f32 in any order. */
			for (int i = 0; i < K; i++)
				acc += x[i] * w[i * N + j];
			acc = acc > 0 ? acc : 0;
			if (y[j] != acc) {
				snprintf(ca->why, sizeof(ca->why),
					 "round %d: y[%d] = %g, expected %g", r,
					 j, y[j], acc);
				ca->failures++;
				break;
			}
		}
	}
	gn_session_destroy(&s);
	return NULL;
}

/* Clients in several threads share the one executor thread. */
static void test_concurrent_clients(void **state)
{
	enum { NT = 4 };
	struct client_arg ca[NT];
	pthread_t th[NT];

	(void)state;
	for (int i = 0; i < NT; i++) {
		ca[i] = (struct client_arg){
			.url = g_rt.url, .id = i, .rounds = 300};
		assert_int_equal(
			pthread_create(&th[i], NULL, client_main, &ca[i]), 0);
	}
	for (int i = 0; i < NT; i++) {
		pthread_join(th[i], NULL);
		if (ca[i].failures)
			fail_msg("client %d: %s", i, ca[i].why);
	}
}

/* A client that keeps running plans until the runtime goes away. */
struct busy_arg {
	const char *url;
	int ok, refused, closed, wrong;
	int last_rc;
};

static void *busy_main(void *p)
{
	struct busy_arg *ba = p;
	struct gn_session_opts o;
	struct gn_session *s;
	static float w[256 * 256];
	float x[256], y[256];
	int64_t ws[] = {256, 256}, xs[] = {1, 256};
	struct gn_tensor *tw;

	gn_session_opts_init(&o, sizeof(o));
	o.target = ba->url;
	o.timeout_ms = 20000;
	s = gn_session_create(&o);
	if (s == NULL) {
		ba->last_rc = gn_last_error_code();
		return NULL;
	}
	for (int i = 0; i < 256 * 256; i++)
		w[i] = (float)(i % 3);
	for (int i = 0; i < 256; i++)
		x[i] = 1;
	tw = gn_tensor_from_host(s, GN_DTYPE_F32, 2, ws, w, GN_TENSOR_BORROW);
	if (gn_tensor_make_resident(tw, 0) != 0) {
		ba->last_rc = gn_last_error_code();
		gn_session_destroy(&s);
		return NULL;
	}
	for (int r = 0; r < 100000; r++) {
		struct gn_tensor *t = gn_matmul(
			gn_tensor_from_host(s, GN_DTYPE_F32, 2, xs, x, 0), tw);
		int rc = gn_tensor_to_host(t, y, sizeof(y));

		if (rc == 0) {
			ba->ok++;
			/* column j sums (i % 3) over rows i*256+j */
			if (y[0] != 255.0f)
				ba->wrong++;
			continue;
		}
		ba->last_rc = rc;
		if (rc == -ESHUTDOWN)
			ba->refused++;
		else
			ba->closed++;
		break;
	}
	gn_session_destroy(&s);
	return NULL;
}

/*
 * SIGTERM while clients are busy: each in-flight request is answered or
 * refused with -ESHUTDOWN, or its connection closes; nobody hangs, and
 * the runtime exits 0 (under ASan that includes the leak check).
 */
static void test_sigterm_drains(void **state)
{
	enum { NT = 3 };
	struct busy_arg ba[NT];
	struct runtime_proc rp;
	pthread_t th[NT];

	(void)state;
	assert_int_equal(runtime_start(&rp, g_runtime_bin, NULL), 0);
	for (int i = 0; i < NT; i++) {
		ba[i] = (struct busy_arg){.url = rp.url};
		assert_int_equal(
			pthread_create(&th[i], NULL, busy_main, &ba[i]), 0);
	}
	nap_ms(300);
	assert_int_equal(runtime_stop(&rp), 0);
	for (int i = 0; i < NT; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(ba[i].wrong, 0);
		assert_true(ba[i].ok > 0);
		assert_true(ba[i].refused + ba[i].closed == 1);
		if (ba[i].last_rc != -ESHUTDOWN &&
		    ba[i].last_rc != -ECONNRESET && ba[i].last_rc != -EPIPE &&
		    ba[i].last_rc != -EPROTO)
			fail_msg("client %d ended with %d (%s)", i,
				 ba[i].last_rc, gn_strerror(ba[i].last_rc));
	}
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_resident_weight_sends_no_bytes),
		cmocka_unit_test(test_handles_are_session_scoped),
		cmocka_unit_test(test_concurrent_clients),
		cmocka_unit_test(test_eviction_under_memory_limit),
		cmocka_unit_test(test_fetch_in_place),
		cmocka_unit_test(test_many_sessions_leave_nothing),
		cmocka_unit_test(test_shared_weight_across_sessions),
		cmocka_unit_test(test_forged_shared_upload_refused),
		cmocka_unit_test(test_shared_eviction_under_memory_limit),
		cmocka_unit_test(test_shared_many_sessions_leave_no_references),
		cmocka_unit_test(test_sigterm_drains),
	};

	return runtime_group_main(argc, argv, tests,
				  sizeof(tests) / sizeof(tests[0]));
}
