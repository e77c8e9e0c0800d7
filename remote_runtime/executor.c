/*
 * Plan execution (see executor.h). Each computed node gets a buffer from
 * the pool that goes back after the node's last reader; inputs are read in
 * place when the backend can (host memory, or a registry tensor).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "executor.h"
#include "gn_error.h"

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
		      const struct gn_exec_input *in, size_t nin)
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
 * Index of the last node that reads each node; UINT32_MAX for outputs,
 * which must outlive the run. A node nobody reads dies where it is made.
 */
static uint32_t *last_uses(const struct gn_plan *plan)
{
	uint32_t *last = malloc(sizeof(*last) * plan->nnodes);

	if (last == NULL)
		return NULL;
	for (uint32_t i = 0; i < plan->nnodes; i++) {
		last[i] = i;
		for (uint32_t k = 0; k < plan->nodes[i].nin; k++)
			last[plan->nodes[i].in[k]] = i;
	}
	for (uint32_t k = 0; k < plan->noutputs; k++)
		last[plan->outputs[k]] = UINT32_MAX;
	return last;
}

int gn_exec_run(struct gn_backend *b, struct gn_pool *pool,
		const struct gn_plan *plan, const struct gn_exec_input *in,
		size_t nin, struct gn_exec_result *res)
{
	uint64_t t0 = gn_clock_ns(), live = 0;
	uint32_t *last = NULL;
	uint8_t *owned;
	void **bufs;
	int rc = 0;

	memset(res, 0, sizeof(*res));
	bufs = calloc(plan->nnodes, sizeof(*bufs));
	owned = calloc(plan->nnodes, 1);
	last = last_uses(plan);
	res->metas = calloc(plan->noutputs, sizeof(*res->metas));
	res->offsets = calloc(plan->noutputs, sizeof(*res->offsets));
	if (bufs == NULL || owned == NULL || last == NULL ||
	    res->metas == NULL || res->offsets == NULL) {
		rc = gn_error_set(-ENOMEM,
				  "executor: no memory for a plan of "
				  "%u nodes",
				  plan->nnodes);
		goto out;
	}

	for (uint32_t i = 0; i < plan->nnodes; i++) {
		const struct gn_plan_node *n = &plan->nodes[i];
		const struct gn_tensor_meta *im[GN_OP_MAX_INPUTS];
		const void *ib[GN_OP_MAX_INPUTS];
		uint64_t bytes = gn_meta_nbytes(&n->meta);
		char ms[96];

		if (n->op == GN_OP_INPUT) {
			int own = 0;

			rc = bind_input(b, pool, i, n, &bufs[i], &own, in, nin);
			owned[i] = (uint8_t)own;
			if (rc != 0)
				goto out;
			continue;
		}
		bufs[i] = buf_alloc(b, pool, bytes);
		if (bufs[i] == NULL) {
			char why[400];

			snprintf(why, sizeof(why), "%s", gn_last_error());
			rc = gn_error_set(
				-ENOMEM,
				"plan node %u (%s): cannot allocate "
				"%llu bytes for %s on %s: %s",
				i, gn_op_name(n->op), (unsigned long long)bytes,
				gn_meta_format(&n->meta, ms, sizeof(ms)),
				b->ops->name, why);
			goto out;
		}
		owned[i] = 1;
		/* Intermediates: what liveness-based reuse keeps small. */
		live += bytes;
		res->sum_intermediate_bytes += bytes;
		if (live > res->peak_intermediate_bytes)
			res->peak_intermediate_bytes = live;
		for (uint32_t k = 0; k < n->nin; k++) {
			im[k] = &plan->nodes[n->in[k]].meta;
			ib[k] = bufs[n->in[k]];
		}
		rc = b->ops->run(b->ctx, n->op, &n->attrs, im, ib, (int)n->nin,
				 &n->meta, bufs[i]);
		if (rc != 0) {
			rc = node_error(rc, i, n);
			goto out;
		}
		/* Operands read for the last time go back for reuse. */
		for (uint32_t k = 0; k <= n->nin; k++) {
			uint32_t p = k < n->nin ? n->in[k] : i;

			if (last[p] != i || bufs[p] == NULL)
				continue;
			if (plan->nodes[p].op != GN_OP_INPUT)
				live -= gn_meta_nbytes(&plan->nodes[p].meta);
			if (owned[p])
				buf_free(b, pool, bufs[p]);
			bufs[p] = NULL;
		}
	}

	for (uint32_t k = 0; k < plan->noutputs; k++) {
		res->metas[k] = plan->nodes[plan->outputs[k]].meta;
		res->offsets[k] = res->payload_len;
		res->payload_len += gn_meta_nbytes(&res->metas[k]);
	}
	res->payload = malloc(res->payload_len ? res->payload_len : 1);
	if (res->payload == NULL) {
		rc = gn_error_set(-ENOMEM,
				  "executor: cannot allocate %llu bytes of "
				  "results",
				  (unsigned long long)res->payload_len);
		goto out;
	}
	rc = b->ops->sync(b->ctx);
	for (uint32_t k = 0; rc == 0 && k < plan->noutputs; k++) {
		uint64_t len = gn_meta_nbytes(&res->metas[k]);

		if (len)
			rc = b->ops->download(b->ctx,
					      res->payload + res->offsets[k],
					      bufs[plan->outputs[k]], len);
	}
	res->noutputs = plan->noutputs;
	res->exec_ns = gn_clock_ns() - t0;

out:
	if (bufs != NULL)
		for (uint32_t i = 0; i < plan->nnodes; i++)
			if (bufs[i] != NULL && owned[i])
				buf_free(b, pool, bufs[i]);
	free(bufs);
	free(owned);
	free(last);
	if (rc != 0)
		gn_exec_result_fini(res);
	return rc;
}

void gn_exec_result_fini(struct gn_exec_result *res)
{
	free(res->metas);
	free(res->offsets);
	free(res->payload);
	memset(res, 0, sizeof(*res));
}
