/*
 * Framing: round trips, truncation, hostile length prefixes and garbage
 * must give clear errors and never crash.
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

static const struct gn_frame_limits g_lim = {1024, 1 << 20};

/* A whole frame: header + packed envelope + `payload_len` bytes. */
static uint8_t *make_frame(size_t payload_len, size_t *len)
{
	Genie__Hello h = GENIE__HELLO__INIT;
	uint8_t *env, *buf;
	size_t env_len;

	h.min_version = 1;
	h.max_version = 1;
	h.peer_name = "frame-test";
	assert_int_equal(gn_envelope_pack(GENIE__MSG_TYPE__MSG_TYPE_HELLO, 42,
					  &h.base, &env, &env_len),
			 0);
	*len = GN_FRAME_HDR_SIZE + env_len + payload_len;
	buf = malloc(*len);
	assert_non_null(buf);
	gn_frame_hdr_encode(buf, (uint32_t)env_len, payload_len);
	memcpy(buf + GN_FRAME_HDR_SIZE, env, env_len);
	for (size_t i = 0; i < payload_len; i++)
		buf[GN_FRAME_HDR_SIZE + env_len + i] = (uint8_t)(i * 7);
	free(env);
	return buf;
}

static void test_round_trip(void **state)
{
	struct gn_frame_view v;
	Genie__Envelope *env;
	Genie__Hello *h;
	size_t len;
	uint8_t *buf = make_frame(100, &len);

	(void)state;
	assert_int_equal(gn_frame_parse(buf, len, &g_lim, &v), 0);
	assert_int_equal(v.frame_len, len);
	assert_int_equal(v.payload_len, 100);
	assert_int_equal(v.payload[99], (uint8_t)(99 * 7));
	env = (Genie__Envelope *)gn_pb_unpack(&genie__envelope__descriptor,
					      v.env, v.env_len, 1024);
	assert_non_null(env);
	assert_int_equal(env->type, GENIE__MSG_TYPE__MSG_TYPE_HELLO);
	assert_int_equal(env->version, GN_SCHEMA_VERSION);
	assert_int_equal(env->request_id, 42);
	h = (Genie__Hello *)gn_pb_unpack(&genie__hello__descriptor,
					 env->body.data, env->body.len, 1024);
	assert_non_null(h);
	assert_string_equal(h->peer_name, "frame-test");
	protobuf_c_message_free_unpacked(&h->base, NULL);
	protobuf_c_message_free_unpacked(&env->base, NULL);
	free(buf);
}

static void test_truncated_frame(void **state)
{
	struct gn_frame_view v;
	size_t len;
	uint8_t *buf = make_frame(64, &len);

	(void)state;
	/* Every cut short of the whole frame asks for more, never crashes. */
	for (size_t cut = 0; cut < len; cut++) {
		uint8_t *copy = malloc(cut + 1);

		memcpy(copy, buf, cut);
		assert_int_equal(gn_frame_parse(copy, cut, &g_lim, &v),
				 -EAGAIN);
		assert_true(strlen(gn_last_error()) > 0);
		free(copy);
	}
	/* The detail names both counts. */
	gn_frame_parse(buf, len - 1, &g_lim, &v);
	assert_non_null(strstr(gn_last_error(), "truncated"));
	free(buf);
}

static void test_oversized_length_prefix(void **state)
{
	uint8_t hdr[GN_FRAME_HDR_SIZE];
	struct gn_frame_hdr h;
	char want[64];

	(void)state;
	gn_frame_hdr_encode(hdr, 0xffffffffu, 0);
	assert_int_equal(gn_frame_hdr_decode(hdr, sizeof(hdr), &g_lim, &h),
			 -EMSGSIZE);
	snprintf(want, sizeof(want), "cap of %u", g_lim.max_envelope);
	assert_non_null(strstr(gn_last_error(), want));
	gn_frame_hdr_encode(hdr, 10, (1ull << 20) + 1);
	assert_int_equal(gn_frame_hdr_decode(hdr, sizeof(hdr), &g_lim, &h),
			 -EMSGSIZE);
	gn_frame_hdr_encode(hdr, 10, UINT64_MAX);
	assert_int_equal(gn_frame_hdr_decode(hdr, sizeof(hdr), &g_lim, &h),
			 -EMSGSIZE);
	/* Exactly at the caps is fine. */
	gn_frame_hdr_encode(hdr, 1024, 1 << 20);
	assert_int_equal(gn_frame_hdr_decode(hdr, sizeof(hdr), &g_lim, &h), 0);
	/* A zero-length envelope is malformed. */
	gn_frame_hdr_encode(hdr, 0, 0);
	assert_int_equal(gn_frame_hdr_decode(hdr, sizeof(hdr), &g_lim, &h),
			 -EBADMSG);
}

static void test_bad_magic_version_reserved(void **state)
{
	uint8_t hdr[GN_FRAME_HDR_SIZE];
	struct gn_frame_hdr h;

	(void)state;
	gn_frame_hdr_encode(hdr, 10, 0);
	hdr[0] ^= 0xff;
	assert_int_equal(gn_frame_hdr_decode(hdr, sizeof(hdr), &g_lim, &h),
			 -EBADMSG);
	assert_non_null(strstr(gn_last_error(), "magic"));
	gn_frame_hdr_encode(hdr, 10, 0);
	hdr[4] = 9;
	assert_int_equal(gn_frame_hdr_decode(hdr, sizeof(hdr), &g_lim, &h),
			 -EBADMSG);
	assert_non_null(strstr(gn_last_error(), "version"));
	gn_frame_hdr_encode(hdr, 10, 0);
	hdr[13] = 1;
	assert_int_equal(gn_frame_hdr_decode(hdr, sizeof(hdr), &g_lim, &h),
			 -EBADMSG);
}

static uint64_t g_rng = 88172645463325252ull;

static uint32_t rnd(void)
{
	g_rng ^= g_rng << 13;
	g_rng ^= g_rng >> 7;
	g_rng ^= g_rng << 17;
	return (uint32_t)g_rng;
}

/* Garbage and mutated frames: every outcome is 0 or a clear error. */
static void test_garbage_never_crashes(void **state)
{
	size_t len;
	uint8_t *good = make_frame(16, &len);
	uint8_t buf[512];

	(void)state;
	for (int iter = 0; iter < 20000; iter++) {
		struct gn_frame_view v;
		size_t n;
		int rc;

		if (iter & 1) {
			n = rnd() % sizeof(buf);
			for (size_t i = 0; i < n; i++)
				buf[i] = (uint8_t)rnd();
		} else {
			n = len;
			memcpy(buf, good, len);
			for (int m = 0; m < 1 + (int)(rnd() % 4); m++)
				buf[rnd() % n] = (uint8_t)rnd();
		}
		gn_error_clear();
		rc = gn_frame_parse(buf, n, &g_lim, &v);
		if (rc != 0) {
			assert_true(rc == -EAGAIN || rc == -EBADMSG ||
				    rc == -EMSGSIZE);
			assert_true(strlen(gn_last_error()) > 0);
			continue;
		}
		/* The header held: the body must unpack or fail cleanly. */
		for (int d = 0; d < 2; d++) {
			const ProtobufCMessageDescriptor *desc =
				d ? &genie__exec_request__descriptor
				  : &genie__envelope__descriptor;
			ProtobufCMessage *m =
				gn_pb_unpack(desc, v.env, v.env_len, 1024);

			if (m != NULL)
				protobuf_c_message_free_unpacked(m, NULL);
			else
				assert_int_equal(gn_last_error_code(),
						 -EBADMSG);
		}
	}
	free(good);
}

static void test_unpack_cap(void **state)
{
	uint8_t buf[64] = {0};

	(void)state;
	assert_null(gn_pb_unpack(&genie__envelope__descriptor, buf, 64, 63));
	assert_int_equal(gn_last_error_code(), -EMSGSIZE);
	assert_non_null(strstr(gn_last_error(), "genie.Envelope"));
	/* 0xff bytes are not a protobuf message. */
	memset(buf, 0xff, sizeof(buf));
	assert_null(gn_pb_unpack(&genie__envelope__descriptor, buf, 64, 64));
	assert_int_equal(gn_last_error_code(), -EBADMSG);
	assert_non_null(strstr(gn_last_error(), "malformed"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_truncated_frame),
		cmocka_unit_test(test_oversized_length_prefix),
		cmocka_unit_test(test_bad_magic_version_reserved),
		cmocka_unit_test(test_garbage_never_crashes),
		cmocka_unit_test(test_unpack_cap),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
