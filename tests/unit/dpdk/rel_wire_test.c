/*
 * The data plane's wire format (dpdk/rel_wire.c): a Genie header and the
 * Ethernet/IPv4/UDP frame around it round-trip, and hostile headers and
 * frames are refused with errors that say why, none read past its end.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "gn_error.h"
#include "rel.h"

static void test_header_and_frames(void **state)
{
	struct gn_rel_hdr h = {.magic = GN_REL_MAGIC,
			       .version = GN_REL_VERSION,
			       .type = GN_REL_DATA,
			       .session = 0x1122334455667788ull,
			       .msg_id = 9,
			       .seq = 0xfffffff0u,
			       .ack = 3,
			       .sack = 0x80000001u,
			       .credits = 1000,
			       .payload_len = 10,
			       .pkt_idx = 4,
			       .pkt_count = 5,
			       .msg_len = 12345,
			       .csum = 0xdeadbeef},
			  d;
	struct gn_rel_addr a = {{1, 2, 3, 4, 5, 6}, 0x0a000001u, 7000},
			   b = {{6, 5, 4, 3, 2, 1}, 0x0a000002u, 7001}, s, t;
	uint8_t buf[GN_REL_FRAME_HDR + 10];

	(void)state;
	gn_rel_hdr_encode(&h, buf);
	assert_int_equal(gn_rel_hdr_decode(buf, GN_REL_HDR_SIZE + 10, &d), 0);
	assert_true(d.magic == h.magic && d.version == h.version &&
		    d.type == h.type && d.flags == h.flags &&
		    d.session == h.session && d.msg_id == h.msg_id &&
		    d.seq == h.seq && d.ack == h.ack && d.sack == h.sack &&
		    d.credits == h.credits && d.payload_len == h.payload_len &&
		    d.pkt_idx == h.pkt_idx && d.pkt_count == h.pkt_count &&
		    d.msg_len == h.msg_len && d.csum == h.csum);
	/* Hostile headers: short, magic, version, type, lengths. */
	assert_int_equal(gn_rel_hdr_decode(buf, 63, &d), -EBADMSG);
	assert_int_equal(gn_rel_hdr_decode(buf, GN_REL_HDR_SIZE + 9, &d),
			 -EBADMSG);
	assert_non_null(strstr(gn_last_error(), "payload of 10 bytes"));
	buf[0] ^= 1;
	assert_int_equal(gn_rel_hdr_decode(buf, sizeof(buf), &d), -EBADMSG);
	assert_non_null(strstr(gn_last_error(), "magic"));
	buf[0] ^= 1;
	buf[4] = GN_REL_VERSION + 1;
	assert_int_equal(gn_rel_hdr_decode(buf, sizeof(buf), &d), -EPROTO);
	buf[4] = GN_REL_VERSION - 1; /* 1: before the dpdk lead-in */
	assert_int_equal(gn_rel_hdr_decode(buf, sizeof(buf), &d), -EPROTO);
	buf[4] = GN_REL_VERSION;
	buf[5] = 9;
	assert_int_equal(gn_rel_hdr_decode(buf, sizeof(buf), &d), -EBADMSG);
	buf[5] = GN_REL_ACK; /* a control packet with payload */
	assert_int_equal(gn_rel_hdr_decode(buf, sizeof(buf), &d), -EBADMSG);

	gn_rel_udp_encode(&a, &b, GN_REL_HDR_SIZE + 10, buf);
	assert_int_equal(gn_rel_udp_parse(buf, sizeof(buf), &s, &t), 42);
	assert_memory_equal(s.mac, a.mac, 6);
	assert_true(s.ip == a.ip && s.port == a.port && t.ip == b.ip &&
		    t.port == b.port);
	/* Hostile frames: every one refused with words, none read past. */
	for (size_t n = 0; n < 42; n++)
		assert_int_equal(gn_rel_udp_parse(buf, n, &s, &t), -EBADMSG);
	assert_int_equal(gn_rel_udp_parse(buf, 60, &s, &t), -EBADMSG);
	buf[12] = 0x86; /* IPv6 ethertype */
	assert_int_equal(gn_rel_udp_parse(buf, sizeof(buf), &s, &t), -EBADMSG);
	buf[12] = 0x08;
	buf[14] = 0x4f; /* IHL 60 bytes */
	assert_int_equal(gn_rel_udp_parse(buf, sizeof(buf), &s, &t), -EBADMSG);
	buf[14] = 0x45;
	buf[23] = 6; /* TCP */
	assert_int_equal(gn_rel_udp_parse(buf, sizeof(buf), &s, &t), -EBADMSG);
	buf[23] = 17;
	buf[24] ^= 0xff; /* checksum */
	assert_int_equal(gn_rel_udp_parse(buf, sizeof(buf), &s, &t), -EBADMSG);
	assert_non_null(strstr(gn_last_error(), "checksum"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_header_and_frames),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
