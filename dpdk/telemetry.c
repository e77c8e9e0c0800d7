/*
 * DPDK telemetry commands for the dpdk:// transport, on the EAL's own
 * telemetry socket (/var/run/dpdk/<file prefix>/dpdk_telemetry.v2), so
 * DPDK's dpdk-telemetry.py reads them like any DPDK counter:
 *
 *   /genie/transport/stats     endpoint totals (packets, bytes,
 *                              retransmits, duplicates, bad and stray
 *                              frames, smoothed RTT of the last session)
 *   /genie/transport/sessions  one entry per session: state, packets,
 *                              bytes, retransmits, srtt_ns, rto_ns,
 *                              rtt_samples, rtt_p50_ns/p90/p99
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <rte_telemetry.h>

#include "transport_dpdk.h"

static void put_stats(struct rte_tel_data *d, const struct gn_rel_stats *st)
{
	rte_tel_data_add_dict_u64(d, "pkts_sent", st->pkts_sent);
	rte_tel_data_add_dict_u64(d, "pkts_received", st->pkts_received);
	rte_tel_data_add_dict_u64(d, "bytes_sent", st->bytes_sent);
	rte_tel_data_add_dict_u64(d, "bytes_received", st->bytes_received);
	rte_tel_data_add_dict_u64(d, "msgs_sent", st->msgs_sent);
	rte_tel_data_add_dict_u64(d, "msgs_received", st->msgs_received);
	rte_tel_data_add_dict_u64(d, "retransmits", st->retransmits);
	rte_tel_data_add_dict_u64(d, "hole_retransmits", st->hole_retransmits);
	rte_tel_data_add_dict_u64(d, "timeouts", st->timeouts);
	rte_tel_data_add_dict_u64(d, "dup_received", st->dup_received);
	rte_tel_data_add_dict_u64(d, "acks_sent", st->acks_sent);
	rte_tel_data_add_dict_u64(d, "bad_frames", st->bad_frames);
	rte_tel_data_add_dict_u64(d, "bad_version_frames", st->bad_version);
	rte_tel_data_add_dict_u64(d, "stray_frames", st->stray_frames);
	rte_tel_data_add_dict_u64(d, "csum_errors", st->csum_errors);
	rte_tel_data_add_dict_u64(d, "probes_sent", st->probes_sent);
	rte_tel_data_add_dict_u64(d, "rx_holds", st->rx_holds);
	rte_tel_data_add_dict_u64(d, "refused_msgs", st->refused_msgs);
}

static int cmd_stats(const char *cmd, const char *params,
		     struct rte_tel_data *d)
{
	struct gn_rel_stats st;
	char spec[256];

	(void)cmd;
	(void)params;
	rte_tel_data_start_dict(d);
	if (gn_dpdk_transport_stats(spec, sizeof(spec), &st) != 0) {
		rte_tel_data_add_dict_string(d, "target", "");
		return 0;
	}
	rte_tel_data_add_dict_string(d, "target", spec);
	put_stats(d, &st);
	return 0;
}

struct sess_ctx {
	struct rte_tel_data *d;
	int n;
};

static void one_session(void *ctx, uint64_t id, int up,
			const struct gn_rel_stats *st)
{
	struct sess_ctx *c = ctx;
	struct rte_tel_data *s = rte_tel_data_alloc();
	char key[32];

	if (s == NULL)
		return;
	rte_tel_data_start_dict(s);
	rte_tel_data_add_dict_string(s, "state", up ? "up" : "opening");
	put_stats(s, st);
	rte_tel_data_add_dict_u64(s, "srtt_ns", st->srtt_ns);
	rte_tel_data_add_dict_u64(s, "rto_ns", st->rto_ns);
	rte_tel_data_add_dict_u64(s, "rtt_samples", st->rtt_samples);
	rte_tel_data_add_dict_u64(s, "rtt_p50_ns", st->rtt_p50_ns);
	rte_tel_data_add_dict_u64(s, "rtt_p90_ns", st->rtt_p90_ns);
	rte_tel_data_add_dict_u64(s, "rtt_p99_ns", st->rtt_p99_ns);
	snprintf(key, sizeof(key), "%016" PRIx64, id);
	if (rte_tel_data_add_dict_container(c->d, key, s, 0) != 0)
		rte_tel_data_free(s);
	c->n++;
}

static int cmd_sessions(const char *cmd, const char *params,
			struct rte_tel_data *d)
{
	struct sess_ctx c = {d, 0};

	(void)cmd;
	(void)params;
	rte_tel_data_start_dict(d);
	gn_dpdk_transport_sessions(one_session, &c);
	return 0;
}

void gn_dpdk_telemetry_register(void)
{
	static int done;

	if (done)
		return;
	done = 1;
	rte_telemetry_register_cmd("/genie/transport/stats", cmd_stats,
				   "Genie dpdk:// transport totals");
	rte_telemetry_register_cmd("/genie/transport/sessions", cmd_sessions,
				   "Genie dpdk:// sessions, by id");
}
