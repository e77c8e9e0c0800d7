/*
 * Framing (common/frame.c): header round trips, whole frames, truncation,
 * hostile length prefixes and garbage. Every failure must be a negative
 * errno with a detail that names what was expected and what was seen, and
 * no input may crash the parser or the capped protobuf unpack.
 *
 * The test is linked with -Wl,--wrap=malloc so it can count the
 * allocations the framing code makes: a hostile length prefix must be
 * refused before anything is allocated.
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

#include "frame.h"
#include "genie/control.pb-c.h"
#include "genie/envelope.pb-c.h"
#include "gn_error.h"

/* ---- Allocation counting (-Wl,--wrap=malloc) ------------------------- */

void *__real_malloc(size_t size);
void *__wrap_malloc(size_t size);

static size_t g_mallocs;

void *__wrap_malloc(size_t size)
{
	g_mallocs++;
	return __real_malloc(size);
}

/* ---- Helpers ---------------------------------------------------------- */

static const struct gn_frame_limits g_lim = {1024, 1 << 20};

/* A packed envelope of type HELLO, request 42, with a Hello body. */
static uint8_t *make_envelope(size_t *len)
{
	Genie__Hello h = GENIE__HELLO__INIT;
	uint8_t *env;

	h.min_version = 1;
	h.max_version = 3;
	h.peer_name = "frame-test";
	assert_int_equal(gn_envelope_pack(GENIE__MSG_TYPE__MSG_TYPE_HELLO, 42,
					  &h.base, &env, len),
			 0);
	assert_non_null(env);
	assert_true(*len > 0);
	return env;
}

/* A whole frame: header + packed envelope + `payload_len` bytes. */
static uint8_t *make_frame(size_t payload_len, size_t *env_len, size_t *len)
{
	uint8_t *env = make_envelope(env_len), *buf;

	*len = GN_FRAME_HDR_SIZE + *env_len + payload_len;
	buf = malloc(*len);
	assert_non_null(buf);
	gn_frame_hdr_encode(buf, (uint32_t)*env_len, payload_len);
	memcpy(buf + GN_FRAME_HDR_SIZE, env, *env_len);
	for (size_t i = 0; i < payload_len; i++)
		buf[GN_FRAME_HDR_SIZE + *env_len + i] = (uint8_t)(i * 7 + 1);
	free(env);
	return buf;
}

/* Assert gn_last_error() contains `needle`, printing both when not. */
static void expect_detail(const char *needle)
{
	const char *msg = gn_last_error();

	if (strstr(msg, needle) == NULL)
		fail_msg("detail '%s' does not contain '%s'", msg, needle);
}

/* ---- Header ----------------------------------------------------------- */

static void test_header_round_trip(void **state)
{
	static const struct {
		uint32_t env_len;
		uint64_t payload_len;
	} cases[] = {
		{1, 0},
		{1024, 1 << 20},
		{0x01020304u, 0x0102030405060708ull},
		{0xffffffffu, UINT64_MAX},
	};
	const struct gn_frame_limits wide = {UINT32_MAX, UINT64_MAX};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint8_t hdr[GN_FRAME_HDR_SIZE];
		struct gn_frame_hdr h = {0, 0};

		memset(hdr, 0xee, sizeof(hdr));
		gn_frame_hdr_encode(hdr, cases[i].env_len,
				    cases[i].payload_len);
		assert_int_equal(
			gn_frame_hdr_decode(hdr, sizeof(hdr), &wide, &h), 0);
		assert_int_equal(h.env_len, cases[i].env_len);
		assert_true(h.payload_len == cases[i].payload_len);
	}
}

/* The layout on the wire is the one frame.h draws: little-endian fields. */
static void test_header_wire_layout(void **state)
{
	static const uint8_t want[GN_FRAME_HDR_SIZE] = {
		'G',  'N',  'F',  '1',		    /* magic */
		1,    0,			    /* version */
		0,    0,			    /* flags */
		0x04, 0x03, 0x02, 0x01,		    /* env_len */
		0,    0,    0,	  0,		    /* reserved */
		0x08, 0x07, 0x06, 0x05, 4, 3, 2, 1, /* payload_len */
	};
	uint8_t hdr[GN_FRAME_HDR_SIZE];

	(void)state;
	gn_frame_hdr_encode(hdr, 0x01020304u, 0x0102030405060708ull);
	assert_memory_equal(hdr, want, sizeof(want));
}

/* ---- Whole frames ----------------------------------------------------- */

static void test_parse_round_trip(void **state)
{
	struct gn_frame_view v;
	Genie__Envelope *env;
	Genie__Hello *h;
	size_t env_len, len;
	uint8_t *buf = make_frame(100, &env_len, &len);

	(void)state;
	assert_int_equal(gn_frame_parse(buf, len, &g_lim, &v), 0);
	assert_int_equal(v.frame_len, len);
	assert_ptr_equal(v.env, buf + GN_FRAME_HDR_SIZE);
	assert_int_equal(v.env_len, env_len);
	assert_ptr_equal(v.payload, buf + GN_FRAME_HDR_SIZE + env_len);
	assert_int_equal(v.payload_len, 100);
	for (size_t i = 0; i < 100; i++)
		assert_int_equal(v.payload[i], (uint8_t)(i * 7 + 1));

	env = (Genie__Envelope *)gn_pb_unpack(&genie__envelope__descriptor,
					      v.env, v.env_len, 1024);
	assert_non_null(env);
	assert_int_equal(env->type, GENIE__MSG_TYPE__MSG_TYPE_HELLO);
	assert_int_equal(env->version, GN_SCHEMA_VERSION);
	assert_int_equal(env->request_id, 42);
	h = (Genie__Hello *)gn_pb_unpack(&genie__hello__descriptor,
					 env->body.data, env->body.len, 1024);
	assert_non_null(h);
	assert_int_equal(h->min_version, 1);
	assert_int_equal(h->max_version, 3);
	assert_string_equal(h->peer_name, "frame-test");
	protobuf_c_message_free_unpacked(&h->base, NULL);
	protobuf_c_message_free_unpacked(&env->base, NULL);
	free(buf);
}

/* Bytes after the frame belong to the next one: frame_len stops before. */
static void test_parse_with_trailing_bytes(void **state)
{
	struct gn_frame_view v;
	size_t env_len, len;
	uint8_t *one = make_frame(5, &env_len, &len);
	uint8_t *two = malloc(2 * len);

	(void)state;
	assert_non_null(two);
	memcpy(two, one, len);
	memcpy(two + len, one, len);
	assert_int_equal(gn_frame_parse(two, 2 * len, &g_lim, &v), 0);
	assert_int_equal(v.frame_len, len);
	assert_int_equal(gn_frame_parse(two + v.frame_len, len, &g_lim, &v), 0);
	assert_int_equal(v.payload_len, 5);
	free(two);
	free(one);
}

/* An envelope with no body (GOODBYE) packs and unpacks too. */
static void test_envelope_without_body(void **state)
{
	Genie__Envelope *env;
	uint8_t *buf;
	size_t len;

	(void)state;
	assert_int_equal(gn_envelope_pack(GENIE__MSG_TYPE__MSG_TYPE_GOODBYE, 7,
					  NULL, &buf, &len),
			 0);
	env = (Genie__Envelope *)gn_pb_unpack(&genie__envelope__descriptor, buf,
					      len, 1024);
	assert_non_null(env);
	assert_int_equal(env->type, GENIE__MSG_TYPE__MSG_TYPE_GOODBYE);
	assert_int_equal(env->request_id, 7);
	assert_int_equal(env->body.len, 0);
	protobuf_c_message_free_unpacked(&env->base, NULL);
	free(buf);
}

/* Every cut short of the whole frame asks for more and says how much. */
static void test_truncated_at_every_length(void **state)
{
	struct gn_frame_view v;
	size_t env_len, len;
	uint8_t *buf = make_frame(64, &env_len, &len);

	(void)state;
	for (size_t cut = 0; cut < len; cut++) {
		/* An exact-size copy, so ASan catches any read past `cut`. */
		uint8_t *copy = malloc(cut ? cut : 1);
		char have[32], need[32];

		assert_non_null(copy);
		memcpy(copy, buf, cut);
		gn_error_clear();
		assert_int_equal(gn_frame_parse(copy, cut, &g_lim, &v),
				 -EAGAIN);
		assert_int_equal(gn_last_error_code(), -EAGAIN);
		snprintf(have, sizeof(have), "have %zu", cut);
		snprintf(need, sizeof(need), "%zu",
			 cut < GN_FRAME_HDR_SIZE ? (size_t)GN_FRAME_HDR_SIZE
						 : len);
		expect_detail(have);
		expect_detail(need);
		free(copy);
	}
	assert_int_equal(gn_frame_parse(buf, len, &g_lim, &v), 0);
	free(buf);
}

/*
 * A length prefix over a cap is refused from the header alone: -EMSGSIZE
 * (not -EAGAIN waiting for bytes that would never be accepted), with the
 * size and the cap in the detail, and without allocating.
 */
static void test_oversized_length_prefix(void **state)
{
	static const struct {
		uint32_t env_len;
		uint64_t payload_len;
		const char *seen, *cap;
	} cases[] = {
		{1025, 0, "1025", "1024"},
		{0xffffffffu, 0, "4294967295", "1024"},
		{10, (1u << 20) + 1, "1048577", "1048576"},
		{10, 0xffffffffull, "4294967295", "1048576"},
		{10, UINT64_MAX, "18446744073709551615", "1048576"},
		{0xffffffffu, UINT64_MAX, "4294967295", "1024"},
	};
	uint8_t hdr[GN_FRAME_HDR_SIZE];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct gn_frame_view v;
		struct gn_frame_hdr h;
		size_t before;

		gn_frame_hdr_encode(hdr, cases[i].env_len,
				    cases[i].payload_len);
		before = g_mallocs;
		gn_error_clear();
		assert_int_equal(gn_frame_parse(hdr, sizeof(hdr), &g_lim, &v),
				 -EMSGSIZE);
		assert_int_equal(g_mallocs, before);
		expect_detail(cases[i].seen);
		expect_detail(cases[i].cap);
		assert_int_equal(
			gn_frame_hdr_decode(hdr, sizeof(hdr), &g_lim, &h),
			-EMSGSIZE);
		assert_int_equal(gn_last_error_code(), -EMSGSIZE);
	}
	/* Exactly at the caps is fine (the header is whole; more to come). */
	gn_frame_hdr_encode(hdr, 1024, 1 << 20);
	{
		struct gn_frame_hdr h;

		assert_int_equal(
			gn_frame_hdr_decode(hdr, sizeof(hdr), &g_lim, &h), 0);
		assert_int_equal(h.env_len, 1024);
		assert_int_equal(h.payload_len, 1 << 20);
	}
}

static void expect_badmsg(const uint8_t *hdr, const char *word)
{
	struct gn_frame_view v;
	struct gn_frame_hdr h;

	gn_error_clear();
	assert_int_equal(
		gn_frame_hdr_decode(hdr, GN_FRAME_HDR_SIZE, &g_lim, &h),
		-EBADMSG);
	expect_detail(word);
	gn_error_clear();
	assert_int_equal(gn_frame_parse(hdr, GN_FRAME_HDR_SIZE, &g_lim, &v),
			 -EBADMSG);
	assert_int_equal(gn_last_error_code(), -EBADMSG);
	expect_detail(word);
}

static void test_bad_magic_version_reserved(void **state)
{
	uint8_t hdr[GN_FRAME_HDR_SIZE];

	(void)state;
	for (int byte = 0; byte < 4; byte++) {
		gn_frame_hdr_encode(hdr, 10, 0);
		hdr[byte] ^= 0x20;
		expect_badmsg(hdr, "magic");
	}
	gn_frame_hdr_encode(hdr, 10, 0);
	hdr[4] = 2;
	expect_badmsg(hdr, "version 2");
	gn_frame_hdr_encode(hdr, 10, 0);
	hdr[4] = 0;
	expect_badmsg(hdr, "version 0");
	gn_frame_hdr_encode(hdr, 10, 0);
	hdr[5] = 1; /* version 257 */
	expect_badmsg(hdr, "version 257");
	gn_frame_hdr_encode(hdr, 10, 0);
	hdr[7] = 0x80; /* flags */
	expect_badmsg(hdr, "flags");
	for (int byte = 12; byte < 16; byte++) {
		gn_frame_hdr_encode(hdr, 10, 0);
		hdr[byte] = 1;
		expect_badmsg(hdr, "reserved");
	}
	/* A zero-length envelope is malformed: every message has one. */
	gn_frame_hdr_encode(hdr, 0, 0);
	expect_badmsg(hdr, "envelope length 0");
}

/* ---- Garbage ---------------------------------------------------------- */

static uint64_t g_rng = 88172645463325252ull;

static uint32_t rnd(void)
{
	g_rng ^= g_rng << 13;
	g_rng ^= g_rng >> 7;
	g_rng ^= g_rng << 17;
	return (uint32_t)(g_rng >> 16);
}

/* The failure contract: a negative errno and a detail that says so. */
static void expect_clean_failure(int rc)
{
	assert_true(rc < 0 && rc > -4096);
	assert_int_equal(gn_last_error_code(), rc);
	assert_true(strlen(gn_last_error()) > 0);
}

static void unpack_both(const uint8_t *buf, size_t len)
{
	static const ProtobufCMessageDescriptor *const descs[] = {
		&genie__envelope__descriptor,
		&genie__exec_request__descriptor,
	};

	for (size_t d = 0; d < 2; d++) {
		ProtobufCMessage *m;

		gn_error_clear();
		m = gn_pb_unpack(descs[d], buf, len, 4096);
		if (m != NULL) {
			assert_ptr_equal(m->descriptor, descs[d]);
			protobuf_c_message_free_unpacked(m, NULL);
			continue;
		}
		expect_clean_failure(gn_last_error_code());
		assert_non_null(strstr(gn_last_error(), descs[d]->name));
	}
}

/*
 * Random buffers and random mutations of a valid frame (and of a valid
 * envelope and ExecRequest) through the parser and the capped unpack.
 * A fixed seed keeps a failure reproducible.
 */
static void test_garbage_never_crashes(void **state)
{
	Genie__ExecRequest req = GENIE__EXEC_REQUEST__INIT;
	Genie__PayloadRef ref = GENIE__PAYLOAD_REF__INIT, *refs[1] = {&ref};
	size_t env_len, len, req_len;
	uint8_t *good = make_frame(16, &env_len, &len), *req_buf;
	int accepted = 0, refused = 0;

	(void)state;
	req.n_inputs = 1;
	req.inputs = refs;
	req_len = protobuf_c_message_get_packed_size(&req.base);
	req_buf = malloc(req_len);
	assert_non_null(req_buf);
	protobuf_c_message_pack(&req.base, req_buf);

	for (int iter = 0; iter < 10000; iter++) {
		struct gn_frame_view v;
		uint8_t *buf;
		size_t n;
		int rc;

		switch (iter % 4) {
		case 0: /* pure garbage */
		case 1: /* garbage behind a valid header */
			n = rnd() % 600;
			buf = malloc(n ? n : 1);
			assert_non_null(buf);
			for (size_t i = 0; i < n; i++)
				buf[i] = (uint8_t)rnd();
			if (iter % 4 == 1 && n >= GN_FRAME_HDR_SIZE)
				gn_frame_hdr_encode(buf, rnd() % 600,
						    rnd() % 64);
			break;
		case 2: /* a valid frame with a few bytes changed */
			n = len;
			buf = malloc(n);
			assert_non_null(buf);
			memcpy(buf, good, len);
			for (int m = 0; m < 1 + (int)(rnd() % 4); m++)
				buf[rnd() % n] = (uint8_t)rnd();
			break;
		default: /* a valid frame cut or grown at random */
			n = rnd() % (len + 8);
			buf = malloc(n ? n : 1);
			assert_non_null(buf);
			for (size_t i = 0; i < n; i++)
				buf[i] = i < len ? good[i] : (uint8_t)rnd();
			if (n > GN_FRAME_HDR_SIZE)
				buf[GN_FRAME_HDR_SIZE +
				    rnd() % (n - GN_FRAME_HDR_SIZE)] ^=
					(uint8_t)(1u << (rnd() % 8));
			break;
		}

		gn_error_clear();
		rc = gn_frame_parse(buf, n, &g_lim, &v);
		if (rc != 0) {
			expect_clean_failure(rc);
			assert_true(rc == -EAGAIN || rc == -EBADMSG ||
				    rc == -EMSGSIZE);
			refused++;
		} else {
			/* The view lies inside the buffer. */
			assert_true(v.frame_len <= n);
			assert_ptr_equal(v.env, buf + GN_FRAME_HDR_SIZE);
			assert_true(v.env_len >= 1 && v.env_len <= 1024);
			assert_true(v.frame_len == GN_FRAME_HDR_SIZE +
							   v.env_len +
							   v.payload_len);
			unpack_both(v.env, v.env_len);
			accepted++;
		}
		/* The raw bytes, as if they were a message body. */
		unpack_both(buf, n);
		free(buf);

		/* Mutated envelope and ExecRequest bodies. */
		buf = malloc(req_len > env_len ? req_len : env_len);
		assert_non_null(buf);
		n = (iter & 1) ? env_len : req_len;
		memcpy(buf, (iter & 1) ? good + GN_FRAME_HDR_SIZE : req_buf, n);
		if (n > 0) {
			for (int m = 0; m < 1 + (int)(rnd() % 3); m++)
				buf[rnd() % n] = (uint8_t)rnd();
			n -= rnd() % 2 ? rnd() % n : 0;
		}
		unpack_both(buf, n);
		free(buf);
	}
	/* The generator reached both outcomes, so both paths were checked. */
	assert_true(accepted > 100);
	assert_true(refused > 1000);
	free(req_buf);
	free(good);
}

static void test_unpack_cap(void **state)
{
	size_t len;
	uint8_t *env = make_envelope(&len);
	uint8_t buf[64];
	ProtobufCMessage *m;

	(void)state;
	/* One byte over the cap: refused before unpacking, naming the type. */
	assert_null(
		gn_pb_unpack(&genie__envelope__descriptor, env, len, len - 1));
	assert_int_equal(gn_last_error_code(), -EMSGSIZE);
	expect_detail("genie.Envelope");
	{
		char want[64];

		snprintf(want, sizeof(want), "%zu bytes exceed cap of %zu", len,
			 len - 1);
		expect_detail(want);
	}
	assert_null(
		gn_pb_unpack(&genie__exec_request__descriptor, env, len, 0));
	assert_int_equal(gn_last_error_code(), -EMSGSIZE);
	expect_detail("genie.ExecRequest");
	/* At the cap it unpacks. */
	m = gn_pb_unpack(&genie__envelope__descriptor, env, len, len);
	assert_non_null(m);
	protobuf_c_message_free_unpacked(m, NULL);
	/* 0xff bytes are not a protobuf message. */
	memset(buf, 0xff, sizeof(buf));
	assert_null(gn_pb_unpack(&genie__envelope__descriptor, buf, sizeof(buf),
				 sizeof(buf)));
	assert_int_equal(gn_last_error_code(), -EBADMSG);
	expect_detail("genie.Envelope");
	expect_detail("malformed");
	free(env);
}

/*
 * gn_envelope_peek agrees with protobuf-c on every envelope it packs, on
 * every truncation of one (where both accept it) and on random bytes
 * (where both accept them), never reads past the end (the ASan build
 * checks), and refuses what no protobuf message can be.
 */
static void expect_peek_agrees(const uint8_t *buf, size_t len)
{
	struct gn_envelope_peek p;
	Genie__Envelope *e;
	int rc = gn_envelope_peek(buf, len, &p);

	assert_true(rc == 0 || rc == -EBADMSG);
	e = genie__envelope__unpack(NULL, len, buf);
	if (e == NULL)
		return;
	assert_int_equal(rc, 0);
	assert_int_equal(p.type, (int)e->type);
	assert_int_equal(p.request_id, e->request_id);
	assert_int_equal(p.body_len, e->body.len);
	if (p.body_len)
		assert_memory_equal(p.body, e->body.data, p.body_len);
	genie__envelope__free_unpacked(e, NULL);
}

static void test_envelope_peek(void **state)
{
	static const size_t bodies[] = {0, 1, 127, 128, 300000};
	static const uint64_t ids[] = {0, 1, 127, 128, 1ull << 40, UINT64_MAX};
	static const struct {
		uint8_t b[3];
		size_t n;
	} bad[] = {
		{{0x00}, 1},		 /* field number 0 */
		{{0x0b, 0x00}, 2},	 /* a group (wire type 3) */
		{{0x0e, 0x00}, 2},	 /* wire type 6 */
		{{0x22, 0x05, 0x00}, 3}, /* body of 5 bytes, 1 there */
		{{0x08, 0x80}, 2},	 /* varint cut short */
		{{0x09, 0x00, 0x00}, 3}, /* 64-bit field cut short */
	};
	struct gn_envelope_peek p;
	uint8_t *body = malloc(300000), rnd_buf[64];

	(void)state;
	assert_non_null(body);
	for (size_t i = 0; i < 300000; i++)
		body[i] = (uint8_t)(i * 7);
	for (size_t b = 0; b < sizeof(bodies) / sizeof(bodies[0]); b++)
		for (size_t k = 0; k < sizeof(ids) / sizeof(ids[0]); k++) {
			Genie__UploadResult r = GENIE__UPLOAD_RESULT__INIT;
			uint8_t *buf;
			size_t len;

			r.handle.data = body;
			r.handle.len = bodies[b];
			assert_int_equal(
				gn_envelope_pack(
					GENIE__MSG_TYPE__MSG_TYPE_UPLOAD,
					ids[k], bodies[b] ? &r.base : NULL,
					&buf, &len),
				0);
			assert_int_equal(gn_envelope_peek(buf, len, &p), 0);
			assert_int_equal(p.type,
					 GENIE__MSG_TYPE__MSG_TYPE_UPLOAD);
			assert_int_equal(p.request_id, ids[k]);
			expect_peek_agrees(buf, len);
			if (bodies[b] < 1000)
				for (size_t cut = 0; cut < len; cut++)
					expect_peek_agrees(buf, cut);
			free(buf);
		}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(gn_envelope_peek(bad[i].b, bad[i].n, &p),
				 -EBADMSG);
	assert_int_equal(gn_envelope_peek(NULL, 0, &p), 0); /* empty: all 0 */
	assert_int_equal(p.type, 0);
	for (int iter = 0; iter < 20000; iter++) {
		size_t n = rnd() % sizeof(rnd_buf);

		for (size_t i = 0; i < n; i++)
			rnd_buf[i] = (uint8_t)rnd();
		if (iter % 2)
			rnd_buf[0] = 0x08; /* starts like an envelope */
		expect_peek_agrees(rnd_buf, n);
	}
	free(body);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_header_round_trip),
		cmocka_unit_test(test_header_wire_layout),
		cmocka_unit_test(test_parse_round_trip),
		cmocka_unit_test(test_parse_with_trailing_bytes),
		cmocka_unit_test(test_envelope_without_body),
		cmocka_unit_test(test_truncated_at_every_length),
		cmocka_unit_test(test_oversized_length_prefix),
		cmocka_unit_test(test_bad_magic_version_reserved),
		cmocka_unit_test(test_garbage_never_crashes),
		cmocka_unit_test(test_unpack_cap),
		cmocka_unit_test(test_envelope_peek),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
