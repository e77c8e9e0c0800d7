/*
 * dpdk:// target strings and memif client ids (dpdk/target.c), and the
 * fault-injection spec (dpdk/fault.c): what each form parses to, what is
 * refused and with which words, how memif clients share one socket's ids,
 * and how an id comes free when its holder lets go.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "fault.h"
#include "gn_error.h"
#include "target.h"

static void test_memif(void **state)
{
	struct gn_dpdk_target s, c;

	(void)state;
	assert_int_equal(gn_dpdk_target_parse("memif:/tmp/x/sock", true, &s),
			 0);
	assert_int_equal(gn_dpdk_target_parse("memif:/tmp/x/sock", false, &c),
			 0);
	assert_false(s.af_packet || s.pci || c.af_packet || c.pci);
	assert_string_equal(s.sock, "/tmp/x/sock");
	/* The client of id 0 talks to the server's address and back. */
	assert_memory_equal(&c.peer, &s.self, sizeof(s.self));
	assert_int_equal(gn_dpdk_memif_id_of(c.self.mac), 0);
	assert_int_equal(gn_dpdk_memif_id_of(s.self.mac), -1);

	/* Each id has addresses of its own, and they map back to it. */
	for (uint32_t id = 0; id < GN_DPDK_MEMIF_CLIENTS; id++) {
		struct gn_dpdk_target t = c;

		gn_dpdk_target_memif_id(&t, id);
		assert_int_equal(gn_dpdk_memif_id_of(t.self.mac), (int)id);
		assert_int_equal(t.self.ip, c.self.ip + id);
		assert_int_equal(t.self.port, c.self.port);
	}
	{
		uint8_t mac[6] = {0x02, 0x47, 0x4e, 0, 0, 2 + 16};

		assert_int_equal(gn_dpdk_memif_id_of(mac), -1);
		mac[5] = 2;
		mac[0] = 0xff;
		assert_int_equal(gn_dpdk_memif_id_of(mac), -1);
	}
}

static void test_af_packet_and_pci(void **state)
{
	struct gn_dpdk_target t;

	(void)state;
	assert_int_equal(gn_dpdk_target_parse("af_packet:lo,ip=10.1.2.3,"
					      "peer=10.1.2.4,port=9000",
					      false, &t),
			 0);
	assert_true(t.af_packet);
	assert_string_equal(t.ifname, "lo");
	assert_int_equal(t.self.ip, 0x0a010203u);
	assert_int_equal(t.self.port, 9001);
	assert_int_equal(t.peer.ip, 0x0a010204u);
	assert_int_equal(t.peer.port, 9000);

	assert_int_equal(
		gn_dpdk_target_parse("pci:0000:3b:00.0,ip=10.0.0.1", true, &t),
		0);
	assert_true(t.pci);
	assert_string_equal(t.ifname, "0000:3b:00.0");
	assert_int_equal(t.self.port, 7070);

	assert_int_equal(gn_dpdk_target_parse("af_packet:no-such-if0,"
					      "ip=10.0.0.1",
					      true, &t),
			 -ENODEV);
	assert_non_null(strstr(gn_last_error(), "no-such-if0"));
}

static void test_bad_targets(void **state)
{
	static const char *const bad[] = {
		"memif:",
		"nonsense:/x",
		"af_packet:lo",		    /* no ip */
		"af_packet:lo,ip=10.0.0.1", /* a client without peer */
		"af_packet:lo,ip=10.0.0.300,peer=10.0.0.2",
		"af_packet:lo,ip=10.0.0.1,peer=10.0.0.2,port=0",
		"af_packet:lo,ip=10.0.0.1,peer=10.0.0.2,port=70000",
		"af_packet:lo,ip=10.0.0.1,peer=10.0.0.2,colour=blue",
		"pci:,ip=10.0.0.1,peer=10.0.0.2",
	};
	struct gn_dpdk_target t;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(gn_dpdk_target_parse(bad[i], false, &t),
				 -EINVAL);
		assert_non_null(strstr(gn_last_error(), bad[i]));
		assert_non_null(strstr(gn_last_error(), "expected"));
	}
}

static void test_memif_claims(void **state)
{
	char dir[] = "/tmp/genie-claim-XXXXXX", sock[64], other[64], rel[96],
	     cwd[512];
	int fds[GN_DPDK_MEMIF_CLIENTS], fd, fd2, probe = -1;
	uint64_t key;
	uint32_t id;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(sock, sizeof(sock), "%s/sock", dir);
	snprintf(other, sizeof(other), "%s/other", dir);

	/* A listener sees no claim yet. */
	key = gn_dpdk_memif_key(sock);
	assert_int_equal(gn_dpdk_memif_claims(key, 0, &probe), 0);

	/* Claims take the lowest free id, each held by its descriptor. */
	for (int i = 0; i < GN_DPDK_MEMIF_CLIENTS; i++) {
		fds[i] = gn_dpdk_memif_claim(sock, &id);
		assert_true(fds[i] >= 0);
		assert_int_equal(id, (uint32_t)i);
		assert_int_equal(gn_dpdk_memif_claims(key, 0, &probe), i + 1);
	}
	assert_int_equal(gn_dpdk_memif_claim(sock, &id), -EBUSY);
	assert_non_null(strstr(gn_last_error(), "at most 16 memif clients"));

	/* Another socket has ids of its own. */
	fd = gn_dpdk_memif_claim(other, &id);
	assert_true(fd >= 0);
	assert_int_equal(id, 0);
	close(fd);

	/* The listener needs ids up to the highest claimed, holes and all. */
	for (int i = 0; i < GN_DPDK_MEMIF_CLIENTS - 1; i++)
		if (i != 5)
			close(fds[i]);
	assert_int_equal(gn_dpdk_memif_claims(key, 0, &probe),
			 GN_DPDK_MEMIF_CLIENTS);
	close(fds[GN_DPDK_MEMIF_CLIENTS - 1]);
	assert_int_equal(gn_dpdk_memif_claims(key, 0, &probe), 6);
	/* Ids below `from` are not looked at. */
	assert_int_equal(gn_dpdk_memif_claims(key, 3, &probe), 6);
	assert_int_equal(gn_dpdk_memif_claims(key, 9, &probe), 9);
	for (int i = 0; i < GN_DPDK_MEMIF_CLIENTS; i++)
		if (i != 5) {
			fds[i] = gn_dpdk_memif_claim(sock, &id);
			assert_true(fds[i] >= 0);
		}

	/* Letting go frees that id for the next claim. */
	close(fds[5]);
	fds[5] = gn_dpdk_memif_claim(sock, &id);
	assert_true(fds[5] >= 0);
	assert_int_equal(id, 5);

	/* Another spelling of the same socket claims from the same ids. */
	close(fds[3]);
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_int_equal(chdir(dir), 0);
	snprintf(rel, sizeof(rel), "./sock");
	fd2 = gn_dpdk_memif_claim(rel, &id);
	assert_int_equal(chdir(cwd), 0);
	assert_true(fd2 >= 0);
	assert_int_equal(id, 3);
	close(fd2);

	for (int i = 0; i < GN_DPDK_MEMIF_CLIENTS; i++)
		close(fds[i]);
	/* All given back: id 0 again. */
	assert_int_equal(gn_dpdk_memif_claims(key, 0, &probe), 0);
	fd = gn_dpdk_memif_claim(sock, &id);
	assert_true(fd >= 0);
	assert_int_equal(id, 0);
	close(fd);
	close(probe);
	rmdir(dir);
}

static void test_fault_spec(void **state)
{
	struct gn_fault_opts o;
	uint64_t after = 0;

	(void)state;
	assert_int_equal(gn_fault_opts_parse("drop=0.05,dup=0.01,reorder=0.02,"
					     "delay_us=20,burst_ms=100,"
					     "every_ms=1000,seed=7,after=30",
					     &o, &after),
			 0);
	assert_true(o.drop == 0.05 && o.dup == 0.01 && o.reorder == 0.02);
	assert_int_equal(o.delay_ns, 20000);
	assert_int_equal(o.burst_len_ns, 100000000);
	assert_int_equal(o.burst_every_ns, 1000000000);
	assert_int_equal(o.seed, 7);
	assert_int_equal(after, 30);

	static const char *const bad[] = {
		"drop",	   "drop=",    "drop=x",
		"drop=-1", "colour=1", "drop=0.1,,seed"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(gn_fault_opts_parse(bad[i], &o, NULL),
				 -EINVAL);
		assert_non_null(strstr(gn_last_error(), "KEY=NUMBER"));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_memif),
		cmocka_unit_test(test_af_packet_and_pci),
		cmocka_unit_test(test_bad_targets),
		cmocka_unit_test(test_memif_claims),
		cmocka_unit_test(test_fault_spec),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
