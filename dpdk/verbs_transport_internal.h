/*
 * Private to the verbs transport (transport_verbs.c, the transport ops and
 * the queue pair operations the protocol engine drives; verbs_setup.c,
 * device choice and connection setup): the connection's state and the
 * calls between the two. See transport_verbs.c for the whole picture.
 */
#ifndef GN_DPDK_VERBS_TRANSPORT_INTERNAL_H
#define GN_DPDK_VERBS_TRANSPORT_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include <infiniband/verbs.h>

#include "log.h"
#include "transport.h"
#include "verbs_proto.h"

GN_LOG_EXTERN(verbs);

#define SETUP_MAGIC 0x53564e47u /* "GNVS" */
#define SETUP_VERSION 1
#define SETUP_SIZE 64
#define READY_MAGIC 0x59444e47u /* "GNDY" */
#define SETUP_MS 10000		/* lazy setup on the listener's side */
#define SQ_DEPTH 128
#define CQ_ACK_BATCH 64

struct gn_verbs_target {
	char addr[128]; /* HOST:PORT */
	char dev[64];	/* empty: the first with an active port */
	int port;	/* 0: the first active one */
	int gid;	/* -1: RoCE v2 if present, else 0 */
};

struct gn_verbs_conn {
	struct gn_conn base; /* first: the generic code casts */
	struct gn_conn *tcp;
	int fd; /* tcp's socket */
	int epfd;
	bool server;
	struct gn_verbs_target t;
	int err; /* a failed setup: every later call returns it */
	char why[320];

	struct ibv_context *ctx;
	struct ibv_pd *pd;
	struct ibv_comp_channel *ch;
	struct ibv_cq *cq;
	struct ibv_qp *qp;
	unsigned unacked;
	uint8_t port;
	int gid_index;
	struct ibv_port_attr pa;
	union ibv_gid gid;
	struct gn_vp_conn *vp;
	bool said_gpu_direct, said_gpu_staged; /* logged once each */
};

/* The protocol engine's operations on a connection's queue pair. */
extern const struct gn_vp_ops gn_verbs_qp_ops;

/*
 * Parse "HOST:PORT[?dev=NAME&port=N&gid=N]". 0 or -EINVAL naming the
 * string and what was expected.
 */
int gn_verbs_parse_target(const char *rest, struct gn_verbs_target *t);

/*
 * Open the device and port c->t asks for into c->ctx, c->port, c->pa.
 * 0; -ENODEV (no device at all, or none of that name), -ENETDOWN (no
 * ACTIVE port); the text says which and what was found.
 */
int gn_verbs_open_device(struct gn_verbs_conn *c);

/*
 * Set up a connection whose socket is connected: open the device unless
 * open, make PD, channel, CQ and QP, trade setup records, start the
 * engine (c->vp), bring the QP to RTS, trade "ready". 0 or -errno with
 * the text set; on failure the caller frees what was made.
 */
int gn_verbs_setup(struct gn_verbs_conn *c, uint64_t deadline);

#endif /* GN_DPDK_VERBS_TRANSPORT_INTERNAL_H */
