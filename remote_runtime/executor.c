/*
 * Plan execution (see executor.h). Each computed node gets a buffer from
 * the pool that goes back after the node's last reader; inputs are read in
 * place when the backend can (host memory, or a registry tensor); lent
 * outputs go back when the caller frees the result.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "executor.h"
#include "gpu_mem.h"
#include "gn_error.h"
#include "log.h"

GN_LOG_REGISTER(exec)

static const struct gn_exec_input *find_input(const struct gn_exec_input *in,
					      size_t nin, const uint8_t *handle)
{
	for (size_t i = 0; i < nin; i++)
		if (memcmp(in[i].handle, handle, GN_HANDLE_SIZE) == 0)
			return &in[i];
	return NULL;
}

static void handle_hex(const uint8_t *h, char *buf)
{
	for (int i = 0; i < GN_HANDLE_SIZE; i++)
		sprintf(buf + 2 * i, "%02x", h[i]);
}

/* Re-prefix the current error detail with the node it happened at. */
static int node_error(int rc, uint32_t i, const struct gn_plan_node *n)
{
	char detail[400];

	snprintf(detail, sizeof(detail), "%s", gn_last_error());
	return gn_error_set(rc, "plan node %u (%s): %s", i, gn_op_name(n->op),
			    detail);
}

static void *buf_alloc(struct gn_backend *b, struct gn_pool *pool,
		       uint64_t bytes)
{
	/* One spare byte keeps empty tensors distinct and non-NULL. */
	if (pool != NULL)
		return gn_pool_alloc(pool, bytes ? bytes : 1);
	return b->ops->alloc(b->ctx, bytes ? bytes : 1);
}

static void buf_free(struct gn_backend *b, struct gn_pool *pool, void *p)
{
	if (pool != NULL)
		gn_pool_free(pool, p);
	else
		b->ops->free(b->ctx, p);
}

/*
 * Bind input node i: bytes already on the device (a registry tensor), or
 * host bytes the backend can read in place, are used as they are (*owned
 * = 0); anything else is uploaded into a fresh buffer (*owned = 1).
 */
static int bind_input(struct gn_backend *b, struct gn_pool *pool, uint32_t i,
		      const struct gn_plan_node *n, void **dev, int *owned,
		      int *stable, const struct gn_exec_input *in, size_t nin)
{
	const struct gn_exec_input *src = find_input(in, nin, n->handle);
	char hex[2 * GN_HANDLE_SIZE + 1], ms[96];
	uint64_t need = gn_meta_nbytes(&n->meta);

	if (src == NULL) {
		handle_hex(n->handle, hex);
		return gn_error_set(-ENOENT,
				    "plan node %u (input): no bytes for handle "
				    "%s",
				    i, hex);
	}
	if (src->len != need)
		return gn_error_set(
			-EINVAL,
			"plan node %u (input): %llu bytes supplied, "
			"%s needs %llu",
			i, (unsigned long long)src->len,
			gn_meta_format(&n->meta, ms, sizeof(ms)),
			(unsigned long long)need);
	if (src->dev != NULL ||
	    (b->ops->host_memory && src->data != NULL && need > 0 &&
	     (uintptr_t)src->data % gn_dtype_size(n->meta.dtype) == 0)) {
		*dev = (void *)(src->dev != NULL ? src->dev : src->data);
		*owned = 0;
		*stable = src->dev != NULL || src->stable;
		return 0;
	}
	*dev = buf_alloc(b, pool, need);
	if (*dev == NULL)
		return gn_error_set(-ENOMEM,
				    "plan node %u (input): cannot allocate "
				    "%llu bytes for %s on %s",
				    i, (unsigned long long)need,
				    gn_meta_format(&n->meta, ms, sizeof(ms)),
				    b->ops->name);
	*owned = 1;
	if (need == 0)
		return 0;
	return b->ops->upload(b->ctx, *dev, src->data, need);
}

/*
 * Per-run bookkeeping, one entry per plan node; the liveness arrays are
 * the plan's own (made at decode, kept with a cached plan).
 */
struct exec_state {
	void **bufs;
	uint8_t *owned;		 /* bufs[i] came from the pool */
	uint8_t *stable;	 /* input bytes fixed until forget() */
	uint8_t *done;		 /* computed inside an earlier fused chain */
	const uint32_t *last;	 /* last reader; UINT32_MAX for outputs */
	const uint32_t *readers; /* operand slots that name the node */
	const uint32_t *reader;	 /* the last node naming it */
};

static int state_init(struct exec_state *st, const struct gn_plan *plan)
{
	uint32_t n = plan->nnodes;

	st->bufs = calloc(n, sizeof(*st->bufs));
	st->owned = calloc(n, 3);
	if (st->bufs == NULL || st->owned == NULL)
		return -ENOMEM;
	st->stable = st->owned + n;
	st->done = st->owned + 2 * n;
	st->last = plan->last_use;
	st->readers = plan->nreaders;
	st->reader = plan->reader;
	return 0;
}

static void state_fini(struct exec_state *st, struct gn_backend *b,
		       struct gn_pool *pool, uint32_t n)
{
	if (st->bufs != NULL && st->owned != NULL)
		for (uint32_t i = 0; i < n; i++)
			if (st->bufs[i] != NULL && st->owned[i])
				buf_free(b, pool, st->bufs[i]);
	free(st->bufs);
	free(st->owned);
}

/*
 * Grow a fused chain from compute node `head`: while the chain's value is
 * read by exactly one operand slot of one node, is not a plan output, and
 * that node's other operands are already computed, offer it to the
 * backend. Returns the plan index of the chain's last node (head when
 * nothing fused) and fills c's head fields and steps.
 */
static uint32_t grow_chain(struct gn_backend *b, const struct gn_plan *plan,
			   const struct exec_state *st, uint32_t head,
			   struct gn_fused_call *c, const void **ib,
			   const struct gn_tensor_meta **im)
{
	const struct gn_plan_node *n = &plan->nodes[head];
	uint32_t cur = head;

	c->op = n->op;
	c->attrs = &n->attrs;
	c->head_meta = &n->meta;
	c->nin = (int)n->nin;
	c->stable_mask = 0;
	c->nsteps = 0;
	for (uint32_t k = 0; k < n->nin; k++) {
		im[k] = &plan->nodes[n->in[k]].meta;
		ib[k] = st->bufs[n->in[k]];
		if (k < 32 && st->stable[n->in[k]])
			c->stable_mask |= 1u << k;
	}
	c->in_meta = im;
	c->in = ib;
	if (b->ops->fusable == NULL || b->ops->run_fused == NULL)
		return head;
	while (c->nsteps < GN_FUSE_MAX_STEPS && st->readers[cur] == 1 &&
	       st->last[cur] != UINT32_MAX) {
		uint32_t r = st->reader[cur];
		const struct gn_plan_node *rn = &plan->nodes[r];
		struct gn_fused_step *s = &c->steps[c->nsteps];
		int ok = 1;

		if (rn->nin > GN_FUSE_MAX_EXTRA + 1)
			break;
		s->op = rn->op;
		s->attrs = &rn->attrs;
		s->out_meta = &rn->meta;
		s->nextra = 0;
		s->extra_stable_mask = 0;
		s->chain_pos = -1;
		for (uint32_t k = 0; k < rn->nin; k++) {
			uint32_t p = rn->in[k];

			if (p == cur) {
				s->chain_pos = (int)k;
				continue;
			}
			/* The operand must exist before the head runs. */
			if ((p >= head && plan->nodes[p].op != GN_OP_INPUT) ||
			    st->bufs[p] == NULL) {
				ok = 0;
				break;
			}
			if (st->stable[p])
				s->extra_stable_mask |= 1u << s->nextra;
			s->extra_meta[s->nextra] = &plan->nodes[p].meta;
			s->extra[s->nextra++] = st->bufs[p];
		}
		if (!ok || !b->ops->fusable(b->ctx, c, s))
			break;
		c->nsteps++;
		cur = r;
	}
	return cur;
}

/*
 * Run node `n` on b's host (cpu) backend: operands downloaded, the result
 * uploaded into `out`. For ops the device backend has no kernel for.
 */
static int run_on_host(struct gn_backend *b, const struct gn_plan_node *n,
		       const struct gn_tensor_meta *const *im,
		       const void *const *ib, void *out)
{
	struct gn_backend *h = b->host;
	void *hin[GN_OP_MAX_INPUTS] = {0}, *hout;
	uint64_t on = gn_meta_nbytes(&n->meta);
	int rc;

	rc = b->ops->sync(b->ctx);
	hout = malloc(on ? on : 1);
	if (rc == 0 && hout == NULL)
		rc = gn_error_set(-ENOMEM, "no host memory for %s's result",
				  gn_op_name(n->op));
	for (uint32_t k = 0; rc == 0 && k < n->nin; k++) {
		uint64_t len = gn_meta_nbytes(im[k]);

		hin[k] = malloc(len ? len : 1);
		if (hin[k] == NULL)
			rc = gn_error_set(-ENOMEM,
					  "no host memory for %s's operand %u",
					  gn_op_name(n->op), k);
		else if (len)
			rc = b->ops->download(b->ctx, hin[k], ib[k], len);
	}
	if (rc == 0)
		rc = h->ops->run(h->ctx, n->op, &n->attrs, im,
				 (const void *const *)hin, (int)n->nin,
				 &n->meta, hout);
	if (rc == 0 && on)
		rc = b->ops->upload(b->ctx, out, hout, on);
	for (uint32_t k = 0; k < n->nin; k++)
		free(hin[k]);
	free(hout);
	return rc;
}

/* Return to the pool every operand of node j read for the last time. */
static void release_operands(struct gn_backend *b, struct gn_pool *pool,
			     const struct gn_plan *plan, struct exec_state *st,
			     uint32_t j, uint64_t *live)
{
	const struct gn_plan_node *n = &plan->nodes[j];

	for (uint32_t k = 0; k <= n->nin; k++) {
		uint32_t p = k < n->nin ? n->in[k] : j;

		if (st->last[p] != j || st->bufs[p] == NULL)
			continue;
		if (plan->nodes[p].op != GN_OP_INPUT)
			*live -= gn_meta_nbytes(&plan->nodes[p].meta);
		if (st->owned[p])
			buf_free(b, pool, st->bufs[p]);
		st->bufs[p] = NULL;
	}
}

/*
 * Whether output buffer p may be lent: host memory always, CUDA device
 * memory when the caller's transport takes it (GN_EXEC_LEND_DEVICE).
 */
static bool lendable(const struct gn_backend *b, const void *p, int lend)
{
	if (b->ops->host_memory)
		return (lend & GN_EXEC_LEND_HOST) != 0;
	return (lend & GN_EXEC_LEND_DEVICE) != 0 &&
	       gn_mem_kind_of(p) == GN_MEM_CUDA;
}

/*
 * Lay the outputs out as res's payload (struct gn_exec_result): outputs
 * of GN_EXEC_LEND_MIN bytes or more that the run computed in memory
 * lendable() allows stay where they are, as pieces of their own, taken
 * from st so that state_fini leaves them; the rest are downloaded into
 * `payload`, consecutive ones as one piece. An output named twice is lent
 * once and copied the second time.
 */
static int collect_outputs(struct gn_backend *b, struct gn_pool *pool,
			   const struct gn_plan *plan, struct exec_state *st,
			   struct gn_exec_result *res, int lend)
{
	uint32_t no = plan->noutputs;
	uint64_t copied = 0, at = 0;
	uint8_t *lent_k = calloc(no ? no : 1, 1);
	bool in_run = false;
	int pieces = 0, rc = 0;

	res->lent_backend = b; /* what gn_exec_result_fini gives them to */
	res->lent_pool = pool;
	res->iov = calloc(no ? no : 1, sizeof(*res->iov));
	res->lent = calloc(no ? no : 1, sizeof(*res->lent));
	if (lent_k == NULL || res->iov == NULL || res->lent == NULL) {
		free(lent_k);
		return gn_error_set(-ENOMEM,
				    "executor: no memory to lay out %u "
				    "results",
				    no);
	}
	/* Decide: each lent piece leaves room for one copied run after it. */
	for (uint32_t k = 0; k < no; k++) {
		uint32_t node = plan->outputs[k];
		uint64_t len = gn_meta_nbytes(&res->metas[k]);
		bool taken = false;

		for (uint32_t j = 0; j < k && !taken; j++)
			taken = lent_k[j] && plan->outputs[j] == node;
		if (lend && !taken && st->owned[node] &&
		    len >= GN_EXEC_LEND_MIN &&
		    pieces + 2 <= GN_EXEC_MAX_PIECES &&
		    lendable(b, st->bufs[node], lend)) {
			lent_k[k] = 1;
			pieces++;
			in_run = false;
		} else if (len > 0) {
			copied += len;
			pieces += in_run ? 0 : 1;
			in_run = true;
		}
	}
	res->payload = malloc(copied ? copied : 1);
	if (res->payload == NULL) {
		free(lent_k);
		return gn_error_set(-ENOMEM,
				    "executor: cannot allocate %llu bytes of "
				    "results",
				    (unsigned long long)copied);
	}
	in_run = false;
	for (uint32_t k = 0; rc == 0 && k < no; k++) {
		uint32_t node = plan->outputs[k];
		uint64_t len = gn_meta_nbytes(&res->metas[k]);
		struct iovec *v = &res->iov[res->iovcnt];

		if (lent_k[k]) {
			*v = (struct iovec){st->bufs[node], len};
			res->lent[res->nlent++] = st->bufs[node];
			st->owned[node] = 0;
			res->iovcnt++;
			in_run = false;
			continue;
		}
		if (len == 0)
			continue;
		rc = b->ops->download(b->ctx, res->payload + at, st->bufs[node],
				      len);
		if (in_run) {
			v[-1].iov_len += len;
		} else {
			*v = (struct iovec){res->payload + at, len};
			res->iovcnt++;
			in_run = true;
		}
		at += len;
	}
	free(lent_k);
	return rc;
}

static int exec_run(struct gn_backend *b, struct gn_pool *pool,
		    const struct gn_plan *plan, const struct gn_exec_input *in,
		    size_t nin, struct gn_exec_result *res, int lend)
{
	uint64_t t0 = gn_clock_ns(), live = 0;
	struct exec_state st = {0};
	int rc = 0;

	memset(res, 0, sizeof(*res));
	res->metas = calloc(plan->noutputs, sizeof(*res->metas));
	res->offsets = calloc(plan->noutputs, sizeof(*res->offsets));
	res->kernels =
		calloc(plan->nnodes ? plan->nnodes : 1, sizeof(*res->kernels));
	if (state_init(&st, plan) != 0 || res->metas == NULL ||
	    res->offsets == NULL || res->kernels == NULL) {
		rc = gn_error_set(-ENOMEM,
				  "executor: no memory for a plan of "
				  "%u nodes",
				  plan->nnodes);
		goto out;
	}

	/*
	 * Inputs first, so that a fused chain may take any input as an
	 * operand wherever the plan lists it.
	 */
	for (uint32_t i = 0; i < plan->nnodes; i++) {
		const struct gn_plan_node *n = &plan->nodes[i];
		int own = 0, stable = 0;

		if (n->op != GN_OP_INPUT)
			continue;
		rc = bind_input(b, pool, i, n, &st.bufs[i], &own, &stable, in,
				nin);
		st.owned[i] = (uint8_t)own;
		st.stable[i] = (uint8_t)stable;
		if (rc != 0)
			goto out;
	}
	for (uint32_t i = 0; i < plan->nnodes; i++) {
		const struct gn_plan_node *n = &plan->nodes[i];
		const struct gn_tensor_meta *im[GN_OP_MAX_INPUTS];
		const void *ib[GN_OP_MAX_INPUTS];
		struct gn_fused_call c;
		uint64_t t_node;
		uint32_t end;
		uint64_t bytes;
		char ms[96];

		if (st.done[i] || n->op == GN_OP_INPUT)
			continue;
		end = grow_chain(b, plan, &st, i, &c, ib, im);
		bytes = gn_meta_nbytes(&plan->nodes[end].meta);
		st.bufs[end] = buf_alloc(b, pool, bytes);
		if (st.bufs[end] == NULL) {
			char why[400];

			snprintf(why, sizeof(why), "%s", gn_last_error());
			rc = gn_error_set(-ENOMEM,
					  "plan node %u (%s): cannot allocate "
					  "%llu bytes for %s on %s: %s",
					  end, gn_op_name(plan->nodes[end].op),
					  (unsigned long long)bytes,
					  gn_meta_format(&plan->nodes[end].meta,
							 ms, sizeof(ms)),
					  b->ops->name, why);
			goto out;
		}
		st.owned[end] = 1;
		/* Intermediates: what liveness-based reuse keeps small. */
		live += bytes;
		res->sum_intermediate_bytes += bytes;
		if (live > res->peak_intermediate_bytes)
			res->peak_intermediate_bytes = live;
		t_node = gn_clock_ns();
		if (c.nsteps > 0) {
			c.out_meta = &plan->nodes[end].meta;
			c.out = st.bufs[end];
			rc = b->ops->run_fused(b->ctx, &c);
		} else {
			rc = b->ops->run(b->ctx, n->op, &n->attrs, im, ib,
					 (int)n->nin, &n->meta, st.bufs[i]);
			if (rc == -EOPNOTSUPP && b->host != NULL) {
				rc = run_on_host(b, n, im, ib, st.bufs[i]);
				res->host_nodes++;
			}
		}
		if (rc != 0) {
			rc = node_error(rc, i, n);
			goto out;
		}
		res->fused_nodes += (uint32_t)c.nsteps;
		t_node = gn_clock_ns() - t_node;
		res->kernels[res->n_kernels++] = (struct gn_exec_kernel_time){
			.op = (uint32_t)n->op, .ns = t_node};
		/* GENIE_LOG=exec=debug: what each kernel cost. */
		GN_LOG(DEBUG, exec, "node %u %s%s %s: %.1f us", i,
		       gn_op_name(n->op), c.nsteps ? " (fused)" : "",
		       gn_meta_format(&plan->nodes[end].meta, ms, sizeof(ms)),
		       (double)t_node / 1e3);
		/* Operands read for the last time go back for reuse. */
		for (uint32_t j = i;; j = st.reader[j]) {
			st.done[j] = 1;
			release_operands(b, pool, plan, &st, j, &live);
			if (j == end)
				break;
		}
	}

	for (uint32_t k = 0; k < plan->noutputs; k++) {
		res->metas[k] = plan->nodes[plan->outputs[k]].meta;
		res->offsets[k] = res->payload_len;
		res->payload_len += gn_meta_nbytes(&res->metas[k]);
	}
	res->noutputs = plan->noutputs;
	rc = b->ops->sync(b->ctx);
	if (rc == 0)
		rc = collect_outputs(b, pool, plan, &st, res, lend);
	res->exec_ns = gn_clock_ns() - t0;

out:
	state_fini(&st, b, pool, plan->nnodes);
	if (rc != 0)
		gn_exec_result_fini(res);
	return rc;
}

int gn_exec_run(struct gn_backend *b, struct gn_pool *pool,
		const struct gn_plan *plan, const struct gn_exec_input *in,
		size_t nin, struct gn_exec_result *res)
{
	return exec_run(b, pool, plan, in, nin, res, 0);
}

int gn_exec_run_lend(struct gn_backend *b, struct gn_pool *pool,
		     const struct gn_plan *plan, const struct gn_exec_input *in,
		     size_t nin, int lend, struct gn_exec_result *res)
{
	return exec_run(b, pool, plan, in, nin, res, lend);
}

void gn_exec_result_fini(struct gn_exec_result *res)
{
	for (uint32_t i = 0; i < res->nlent; i++)
		buf_free(res->lent_backend, res->lent_pool, res->lent[i]);
	free(res->lent);
	free(res->iov);
	free(res->metas);
	free(res->offsets);
	free(res->payload);
	free(res->kernels);
	memset(res, 0, sizeof(*res));
}
