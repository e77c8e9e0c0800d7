/*
 * The dpdk:// message lead-in (dpdk/dpdk_msg.h): the length the sender
 * picks lines every later packet's payload up with where a port copies it
 * (GN_REL_FRAME_HDR into a 16-byte-aligned frame buffer), and the
 * receiver's check refuses hostile lead-ins with errors that say what was
 * expected and what came.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "dpdk_msg.h"
#include "frame.h"
#include "gn_error.h"
#include "rel.h"

static void test_lead_lines_packets_up(void **state)
{
	static _Alignas(64) uint8_t buf[64];
	/* memif's and af_packet's payload sizes after the engine's rounding. */
	const uint32_t mtus[] = {16272, 1408, 8896};
	int seen[GN_DPDK_LEAD_MAX + 1] = {0};

	(void)state;
	for (uint32_t o = 0; o < 64; o++)
		for (uint32_t env = 0; env < 100; env++) {
			uint32_t lead = gn_dpdk_msg_lead(buf + o, env);
			uintptr_t start;

			assert_true(lead >= 1 && lead <= GN_DPDK_LEAD_MAX);
			seen[lead] = 1;
			/* The message starts lead + 24 + env before the
			 * payload. */
			start = (uintptr_t)(buf + o) - lead -
				GN_FRAME_HDR_SIZE - env;
			for (size_t m = 0; m < sizeof(mtus) / sizeof(*mtus);
			     m++)
				for (uint64_t k = 1; k < 5; k++)
					assert_int_equal(
						(start + k * mtus[m] -
						 GN_REL_FRAME_HDR) %
							GN_DPDK_MSG_ALIGN,
						0);
		}
	for (int n = 1; n <= GN_DPDK_LEAD_MAX; n++)
		assert_true(seen[n]);
}

static void test_lead_round_trips(void **state)
{
	uint8_t msg[GN_DPDK_LEAD_MAX + GN_FRAME_HDR_SIZE];
	uint32_t lead;

	(void)state;
	for (uint32_t n = 1; n <= GN_DPDK_LEAD_MAX; n++) {
		memset(msg, 0xee, sizeof(msg));
		gn_dpdk_msg_lead_put(msg, n);
		assert_int_equal(msg[0], n);
		for (uint32_t i = 1; i < n; i++)
			assert_int_equal(msg[i], 0);
		assert_int_equal(gn_dpdk_msg_lead_get(msg, n, n + 24, &lead),
				 0);
		assert_int_equal(lead, n);
	}
}

static void expect_bad(const uint8_t *msg, uint64_t avail, uint64_t len,
		       const char *says)
{
	uint32_t lead = 99;

	assert_int_equal(gn_dpdk_msg_lead_get(msg, avail, len, &lead),
			 -EBADMSG);
	assert_int_equal(lead, 99);
	assert_non_null(strstr(gn_last_error(), says));
}

static void test_lead_refuses_hostile(void **state)
{
	uint8_t msg[64] = {0};

	(void)state;
	expect_bad(msg, 0, 0, "empty message");
	msg[0] = 0;
	expect_bad(msg, sizeof(msg), sizeof(msg),
		   "lead-in of 0 bytes, "
		   "expected 1 to 16");
	msg[0] = 17;
	expect_bad(msg, sizeof(msg), sizeof(msg), "lead-in of 17 bytes");
	msg[0] = 0x47; /* a version-1 peer's frame magic */
	expect_bad(msg, sizeof(msg), sizeof(msg), "lead-in of 71 bytes");
	msg[0] = 16;
	expect_bad(msg, sizeof(msg), 39, "need 40");
	expect_bad(msg, 8, sizeof(msg), "(8 at hand)");
	msg[0] = 4;
	msg[3] = 1;
	expect_bad(msg, sizeof(msg), sizeof(msg),
		   "lead-in byte 3 is 0x01, expected 0");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lead_lines_packets_up),
		cmocka_unit_test(test_lead_round_trips),
		cmocka_unit_test(test_lead_refuses_hostile),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
