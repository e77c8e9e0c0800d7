/*
 * A fake RC queue pair for the verbs protocol engine's unit test
 * (verbs_proto_test.c): two endpoints connected in memory, the engine's
 * operations on them (fake_ops), a fixture making a connected pair of
 * engines, test messages and a peer thread. verbs_fake.c says what the
 * fake checks.
 */
#ifndef GN_TESTS_VERBS_FAKE_H
#define GN_TESTS_VERBS_FAKE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "verbs_proto.h"

#define CQ_CAP 8192
#define RQ_CAP 4096
#define WAIT_MS 10000

struct fake_mr {
	uint8_t *addr;
	size_t len;
	uint32_t key;
	unsigned access;
	bool remote;
	struct fake_mr *next;
};

/*
 * Fake GPU memory: one memfd mapped twice. The engine is handed `dev`,
 * mapped with no access at all, so a CPU read of it faults as reading
 * device memory would; the fake's "driver" (copy_in, and WRITEs from a
 * registered region) reads through `alias`.
 */
struct fake_gpu {
	uint8_t *dev, *alias;
	size_t len;
	bool direct;	     /* the "NIC" registers it (GPUDirect) */
	int fail_copy_after; /* copy_in fails after this many (-1: never) */
	int copies, regs, refused; /* what the fake saw */
};

struct fake_ep {
	struct fake_net *net;
	struct fake_ep *peer;
	struct {
		uint64_t wr_id;
		uint8_t *buf;
		uint32_t len;
	} rq[RQ_CAP];
	size_t rq_head, rq_n;
	struct gn_vp_wc cq[CQ_CAP];
	size_t cq_head, cq_n;
	struct fake_mr *mrs;
	int nmr;
	/* Posted requests whose completion was not polled yet. */
	struct {
		uint64_t wr_id;
		const void *mr;
	} inflight[CQ_CAP];
	size_t ninflight;
	int violations; /* rules of the verbs API the engine broke */
	bool dead, errstate;
	/* knobs */
	size_t fail_reg_over;	     /* local registrations above this fail */
	size_t fail_remote_reg_over; /* remote-writable ones above this */
	size_t shrink_remote;	     /* remote registrations come out shorter */
	bool error_next_send;
	bool hold_writes; /* a stuck NIC: WRITEs never complete until the
			     QP goes to the error state (then they flush) */
	uint64_t held[CQ_CAP];
	size_t nheld;
	/* fake GPU memory this end sends from or receives into */
	struct fake_gpu *gpu;
	/* what the fake saw */
	uint32_t last_id;
	int id_errors, rnr, reg_failures, writes, imm_writes, sends;
	uint64_t max_write_len;
};

struct fake_net {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct fake_ep ep[2];
	uint32_t next_key;
};

struct pair {
	struct fake_net *net;
	struct gn_vp_conn *c[2];
	struct gn_vp_params p[2];
};

struct msg {
	uint8_t *env, *payload;
	size_t env_len, payload_len;
	struct iovec iov[8];
	int iovcnt;
	bool on_gpu; /* the pieces point into fake GPU memory */
};

struct job {
	struct gn_vp_conn *c;
	struct msg *send; /* sent first, when set */
	int nsend;
	struct msg *want; /* then these are received and checked */
	int nrecv;
	unsigned delay_ms; /* before receiving */
	int rc;
	pthread_t t;
};

extern const struct gn_vp_ops fake_ops;

void cq_push(struct fake_ep *e, struct gn_vp_wc wc);
bool take_recv(struct fake_ep *p, uint64_t *wr_id, uint8_t **buf,
	       uint32_t *len);
void params(struct gn_vp_params *p, uint32_t nrecv, uint32_t buf);
struct pair *pair_new(uint32_t nrecv, uint32_t buf);
void pair_start(struct pair *pr);
void pair_free(struct pair *pr);
void expect_detail(const char *needle);
void fill(uint8_t *b, size_t n, uint32_t seed);
void msg_make(struct msg *m, size_t env_len, size_t payload_len, int pieces,
	      uint32_t seed);
void msg_free(struct msg *m);
void msg_check(const struct msg *m, const struct gn_msg *got);
int msg_send(struct gn_vp_conn *c, const struct msg *m, int timeout);
void job_start(struct job *j);
void fake_gpu_init(struct fake_gpu *g, size_t len);
void fake_gpu_fini(struct fake_gpu *g);
/* Copy a host message's pieces into fake GPU memory (one after another). */
void fake_gpu_load(struct fake_gpu *g, struct msg *m);
int job_join(struct job *j);

#endif /* GN_TESTS_VERBS_FAKE_H */
