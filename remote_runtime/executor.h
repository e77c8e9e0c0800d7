/*
 * The executor: runs a validated plan on an opened backend.
 *
 * It uploads the bytes behind each input handle, runs the nodes in plan
 * order, and lays the requested outputs out output after output, ready to
 * go back as a data-plane payload: downloaded into one host buffer, or
 * (gn_exec_run_lend) large ones left in the blocks they were computed in,
 * so they go out without a copy. The same
 * function serves the runtime daemon and libgenie's in-process "local"
 * target, so local and remote runs take one code path.
 */
#ifndef GN_RUNTIME_EXECUTOR_H
#define GN_RUNTIME_EXECUTOR_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "backend.h"
#include "plan.h"
#include "pool.h"

/*
 * The bytes that feed one OP_INPUT handle. Borrowed for the call: `data`
 * is host memory (uploaded, or read in place by a host-memory backend);
 * `dev`, when not NULL, is a device buffer already holding the value (a
 * registry tensor), used in place. Kernels never write their inputs.
 * `stable` says `data` keeps its bytes at its address until the backend's
 * forget() (a local session's tensors), so the backend may cache forms
 * derived from it; `dev` inputs are always stable.
 */
struct gn_exec_input {
	const uint8_t *handle; /* GN_HANDLE_SIZE bytes */
	const void *data;
	const void *dev;
	uint64_t len;
	int stable;
};

/* What a run produced. Owned by the caller; free with gn_exec_result_fini. */
struct gn_exec_kernel_time {
	uint32_t op; /* enum gn_op */
	uint64_t ns;
};

struct gn_exec_result {
	uint32_t noutputs;
	struct gn_tensor_meta *metas; /* noutputs entries */
	uint64_t *offsets;	      /* where output i starts in the payload */
	/*
	 * The payload: payload_len bytes, output after output, sent as the
	 * iovcnt pieces of iov in order. From gn_exec_run, one piece, all
	 * of it copied into `payload`. From gn_exec_run_lend, each output of
	 * GN_EXEC_LEND_MIN bytes or more that the run computed in memory the
	 * caller said it can send (host, or device) is a piece of its own,
	 * the buffer it was computed in (lent: `lent` holds them, and
	 * gn_exec_result_fini gives them back), and the outputs between are
	 * copied into `payload`.
	 */
	uint8_t *payload;
	uint64_t payload_len;
	struct iovec *iov;
	int iovcnt;
	void **lent;
	uint32_t nlent;
	struct gn_backend *lent_backend;
	struct gn_pool *lent_pool;
	uint64_t exec_ns; /* upload + kernels + download */
	/*
	 * Memory of computed (non-input) values: the most alive at once,
	 * with buffers freed after their last reader, and the sum of all.
	 */
	uint64_t peak_intermediate_bytes;
	uint64_t sum_intermediate_bytes;
	/* Nodes that ran inside another node's fused kernel. */
	uint32_t fused_nodes;
	/* Nodes the device lacked a kernel for, run on the host backend. */
	uint32_t host_nodes;
	/*
	 * Every kernel run, in order: its op (a fused chain's first) and
	 * the host time it took (on an asynchronous device, the time to
	 * issue it). n_kernels entries.
	 */
	struct gn_exec_kernel_time *kernels;
	uint32_t n_kernels;
};

/*
 * Run `plan` on backend `b` with `nin` inputs, taking buffers from `pool`
 * (NULL: straight from the backend) and returning each to it after the
 * last node that reads it. Returns 0 and fills `res`,
 * or a negative errno with gn_last_error() set: -ENOENT when an input
 * handle has no bytes, -EINVAL when its byte count does not match its
 * meta, -ENOMEM naming the node whose buffer could not be had, or the
 * backend's error naming the node that failed. On error `res` holds
 * nothing to free.
 */
int gn_exec_run(struct gn_backend *b, struct gn_pool *pool,
		const struct gn_plan *plan, const struct gn_exec_input *in,
		size_t nin, struct gn_exec_result *res);

/*
 * Outputs lent by gn_exec_run_lend are at least this large (a smaller one
 * is cheaper to copy than to send as a piece of its own), and a result has
 * at most GN_EXEC_MAX_PIECES pieces (transports take up to 62).
 */
#define GN_EXEC_LEND_MIN (64u * 1024u)
#define GN_EXEC_MAX_PIECES 32

/*
 * gn_exec_run, but large outputs are lent rather than copied (see struct
 * gn_exec_result): for a caller that sends the payload and then frees the
 * result, as the runtime does. `lend` says which: GN_EXEC_LEND_HOST, a
 * host-memory backend's outputs; GN_EXEC_LEND_DEVICE, outputs in CUDA
 * device memory (gn_mem_kind_of), for a transport that takes GPU memory
 * (verbs: GPUDirect RDMA from them). Lent device memory must go back on
 * the thread that runs the backend: free such a result there.
 */
#define GN_EXEC_LEND_HOST 1
#define GN_EXEC_LEND_DEVICE 2
int gn_exec_run_lend(struct gn_backend *b, struct gn_pool *pool,
		     const struct gn_plan *plan, const struct gn_exec_input *in,
		     size_t nin, int lend, struct gn_exec_result *res);

/* Free what a successful gn_exec_run() put in `res`, lent buffers too. */
void gn_exec_result_fini(struct gn_exec_result *res);

#endif /* GN_RUNTIME_EXECUTOR_H */
