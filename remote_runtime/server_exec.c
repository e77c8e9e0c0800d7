/*
 * ExecRequest on the runtime: bind the request's inputs (payload bytes or
 * the session's registry tensors), pick the plan (decoded now or found in
 * the connection's cache), run it on the worker thread, send the outputs.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "executor.h"
#include "frame.h"
#include "genie/control.pb-c.h"
#include "gn_error.h"
#include "plan.h"
#include "server_internal.h"

/* What the worker needs to run one plan and what it gives back. */
struct exec_job {
	struct gn_job job;
	struct gn_server *srv;
	uint64_t session;
	const struct gn_plan *plan;
	struct gn_exec_input *in;
	size_t nin;
	/* Per input: the registry handle to bind, or NULL (payload bytes). */
	const uint8_t **reg;
	size_t nexplicit; /* inputs below this came as references */
	int lend;	  /* GN_EXEC_LEND_*: what the connection can send */
	struct gn_exec_result res;
};

/* The first OP_INPUT node of `plan` named `handle`, or NULL. */
static const struct gn_plan_node *input_node(const struct gn_plan *plan,
					     const uint8_t *handle)
{
	for (uint32_t i = 0; i < plan->nnodes; i++)
		if (plan->nodes[i].op == GN_OP_INPUT &&
		    memcmp(plan->nodes[i].handle, handle, GN_HANDLE_SIZE) == 0)
			return &plan->nodes[i];
	return NULL;
}

/* The pool's block size for `bytes`: a power of two, at least 256. */
static uint64_t block_size(uint64_t bytes)
{
	uint64_t b = 256;

	while (b < bytes)
		b <<= 1;
	return b;
}

/*
 * The most pool memory `plan` holds at once when the executor frees each
 * buffer after its last reader: computed nodes, plus inputs it must upload
 * when the backend cannot read host bytes in place. UINT64_MAX when out of
 * memory for the estimate.
 */
static uint64_t plan_peak(const struct gn_plan *plan,
			  const struct gn_backend *b)
{
	uint32_t *last = malloc(sizeof(*last) * (plan->nnodes + 1));
	uint64_t live = 0, peak = 0;

	if (last == NULL)
		return UINT64_MAX;
	for (uint32_t i = 0; i < plan->nnodes; i++) {
		last[i] = i;
		for (uint32_t k = 0; k < plan->nodes[i].nin; k++)
			last[plan->nodes[i].in[k]] = i;
	}
	for (uint32_t k = 0; k < plan->noutputs; k++)
		last[plan->outputs[k]] = UINT32_MAX;
	for (uint32_t i = 0; i < plan->nnodes; i++) {
		const struct gn_plan_node *n = &plan->nodes[i];

		if (n->op != GN_OP_INPUT || !b->ops->host_memory)
			live += block_size(gn_meta_nbytes(&n->meta));
		if (live > peak)
			peak = live;
		for (uint32_t k = 0; k <= n->nin; k++) {
			uint32_t p = k < n->nin ? n->in[k] : i;
			const struct gn_plan_node *pn = &plan->nodes[p];

			if (last[p] != i)
				continue;
			last[p] = UINT32_MAX - 1; /* counted once */
			if (pn->op != GN_OP_INPUT || !b->ops->host_memory)
				live -= block_size(gn_meta_nbytes(&pn->meta));
		}
	}
	free(last);
	return peak;
}

/*
 * A plan was refused memory: evict least recently used unpinned registry
 * tensors (never one this plan reads) until the plan's peak would fit.
 * Returns how many were evicted.
 */
static uint32_t make_room(struct exec_job *ej)
{
	struct gn_server *s = ej->srv;
	uint64_t need = plan_peak(ej->plan, &s->backend), freed = 0;
	struct gn_pool_stats ps;
	const void **keep;
	uint32_t n = 0;
	size_t nkeep = 0;

	gn_pool_get_stats(s->pool, &ps);
	if (need == UINT64_MAX || (ps.limit_bytes && need > ps.limit_bytes))
		return 0; /* nothing evicted could make it fit */
	keep = calloc(ej->nin + 1, sizeof(*keep));
	if (keep == NULL)
		return 0;
	for (size_t i = 0; i < ej->nin; i++)
		if (ej->in[i].dev != NULL)
			keep[nkeep++] = ej->in[i].dev;
	for (;;) {
		uint64_t before;

		gn_pool_get_stats(s->pool, &ps);
		if (ps.limit_bytes ? ps.in_use_bytes + need <= ps.limit_bytes
				   : freed >= need)
			break;
		before = ps.in_use_bytes;
		if (gn_registry_evict_one(s->registry, keep, nkeep) != 0)
			break;
		gn_pool_get_stats(s->pool, &ps);
		freed += before - ps.in_use_bytes;
		n++;
	}
	free(keep);
	if (n > 0)
		GN_LOG(INFO, runtime,
		       "exec: evicted %u registry tensors to make room for a "
		       "plan",
		       n);
	return n;
}

/* On the worker: bind registry tensors in place, then run. */
static int run_exec(struct gn_job *job)
{
	struct exec_job *ej = (struct exec_job *)job;
	struct gn_server *s = ej->srv;
	int rc;

	for (size_t i = 0; i < ej->nin; i++) {
		const struct gn_plan_node *n;
		struct gn_reg_tensor *t;
		char m1[96], m2[96];

		if (ej->reg[i] == NULL)
			continue;
		t = gn_registry_get(s->registry, ej->session, ej->reg[i]);
		if (t == NULL && i < ej->nexplicit)
			return gn_error_set(-ENOENT,
					    "exec: resident input %zu: %s", i,
					    GN_SERVER_NO_TENSOR);
		if (t == NULL)
			return gn_error_set(-ENOENT,
					    "exec: an input node has no bytes "
					    "for handle in the payload, and %s",
					    GN_SERVER_NO_TENSOR);
		n = input_node(ej->plan, ej->in[i].handle);
		if (n != NULL && !gn_meta_equal(&n->meta, &t->meta))
			return gn_error_set(
				-EINVAL,
				"exec: resident input %zu is %s, the plan's "
				"input node expects %s",
				i, gn_meta_format(&t->meta, m1, sizeof(m1)),
				gn_meta_format(&n->meta, m2, sizeof(m2)));
		ej->in[i].dev = t->dev;
		ej->in[i].data = NULL;
		ej->in[i].len = t->bytes;
	}
	rc = gn_exec_run_lend(&s->backend, s->pool, ej->plan, ej->in, ej->nin,
			      ej->lend, &ej->res);
	/* Registry tensors yield to running plans: evict, then try once more.
	 */
	if (rc == -ENOMEM && make_room(ej) > 0)
		rc = gn_exec_run_lend(&s->backend, s->pool, ej->plan, ej->in,
				      ej->nin, ej->lend, &ej->res);
	return rc;
}

/* Give a result's lent device blocks back (on the worker). */
static int run_release(struct gn_job *job)
{
	gn_exec_result_fini(&((struct exec_job *)job)->res);
	return 0;
}

/*
 * Turn the request's payload references into executor inputs; a
 * reference marked resident names a registry tensor instead of bytes.
 */
static int resolve_inputs(const Genie__ExecRequest *req, const uint8_t *payload,
			  size_t payload_len, struct exec_job *ej)
{
	for (size_t i = 0; i < req->n_inputs; i++) {
		const Genie__PayloadRef *r = req->inputs[i];

		if (r == NULL || r->handle.len != GN_HANDLE_SIZE)
			return gn_error_set(-EINVAL,
					    "exec: input %zu: handle of %zu "
					    "bytes, expected %d",
					    i, r ? r->handle.len : 0,
					    GN_HANDLE_SIZE);
		ej->in[i].handle = r->handle.data;
		if (r->resident) {
			ej->reg[i] = r->handle.data;
			continue;
		}
		if (r->offset > payload_len ||
		    r->length > payload_len - r->offset)
			return gn_error_set(
				-EINVAL,
				"exec: input %zu: bytes %llu..%llu "
				"outside the %zu-byte payload",
				i, (unsigned long long)r->offset,
				(unsigned long long)(r->offset + r->length),
				payload_len);
		ej->in[i].data = payload + r->offset;
		ej->in[i].len = r->length;
	}
	ej->nin = ej->nexplicit = req->n_inputs;
	return 0;
}

/*
 * The plan a request names: decoded from the request and kept in the
 * connection's cache, or found there by fingerprint, in which case the
 * inputs bind to OP_INPUT nodes by position (their handles are rewritten
 * to the plan's; a resident one keeps its registry handle in `reg`). The
 * cache owns the plan either way.
 */
static int select_plan(struct conn_slot *cs, const Genie__ExecRequest *req,
		       struct exec_job *ej, struct gn_plan **out)
{
	struct gn_server *s = cs->srv;
	struct gn_plan *plan;
	uint32_t k = 0;
	int rc;

	if (req->plan != NULL) {
		rc = gn_plan_decode(req->plan, &plan);
		if (rc != 0)
			return rc;
		gn_plan_cache_insert(cs->plans, req->plan->fingerprint, plan);
		*out = plan;
		return 0;
	}
	if (req->plan_fingerprint == 0)
		return gn_error_set(-EINVAL, "exec: request carries neither a "
					     "plan nor a plan fingerprint");
	plan = gn_plan_cache_lookup(cs->plans, req->plan_fingerprint);
	if (plan == NULL) {
		atomic_fetch_add(&s->cache_misses, 1);
		return gn_error_set(-ESTALE,
				    "exec: plan %016llx is not cached on this "
				    "connection; send it whole",
				    (unsigned long long)req->plan_fingerprint);
	}
	atomic_fetch_add(&s->cache_hits, 1);
	for (uint32_t i = 0; i < plan->nnodes; i++) {
		if (plan->nodes[i].op != GN_OP_INPUT)
			continue;
		if (k == req->n_inputs)
			break;
		ej->in[k++].handle = plan->nodes[i].handle;
	}
	if (k != req->n_inputs || k != gn_plan_count_inputs(plan))
		return gn_error_set(
			-EINVAL,
			"exec: cached plan %016llx takes %u inputs, "
			"request brings %zu",
			(unsigned long long)req->plan_fingerprint,
			gn_plan_count_inputs(plan), req->n_inputs);
	*out = plan;
	return 0;
}

/*
 * With a whole plan, an OP_INPUT node no reference names is a registry
 * tensor of the session under the node's own handle.
 */
static void bind_unnamed(const struct gn_plan *plan, struct exec_job *ej)
{
	size_t named = ej->nin;

	for (uint32_t i = 0; i < plan->nnodes; i++) {
		const struct gn_plan_node *n = &plan->nodes[i];
		size_t k;

		if (n->op != GN_OP_INPUT)
			continue;
		for (k = 0; k < named; k++)
			if (memcmp(ej->in[k].handle, n->handle,
				   GN_HANDLE_SIZE) == 0)
				break;
		if (k < named)
			continue;
		ej->in[ej->nin].handle = n->handle;
		ej->reg[ej->nin] = n->handle;
		ej->nin++;
	}
}

/* Build and send the ExecResult for a finished run. */
static int send_result(struct conn_slot *cs, uint64_t req_id,
		       const struct gn_exec_result *res)
{
	Genie__ExecResult er = GENIE__EXEC_RESULT__INIT;
	Genie__TensorMeta *metas, **metap;
	Genie__PayloadRef *refs, **refp;
	int64_t(*dims)[GN_MAX_DIMS];
	int rc;

	metas = calloc(res->noutputs + 1, sizeof(*metas));
	metap = calloc(res->noutputs + 1, sizeof(*metap));
	refs = calloc(res->noutputs + 1, sizeof(*refs));
	refp = calloc(res->noutputs + 1, sizeof(*refp));
	dims = calloc(res->noutputs + 1, sizeof(*dims));
	if (!metas || !metap || !refs || !refp || !dims) {
		rc = gn_error_set(-ENOMEM, "exec: no memory for %u results",
				  res->noutputs);
		rc = gn_server_send_error(cs, req_id, rc, gn_last_error());
		goto out;
	}
	for (uint32_t k = 0; k < res->noutputs; k++) {
		gn_meta_to_pb(&res->metas[k], &metas[k], dims[k]);
		metap[k] = &metas[k];
		genie__payload_ref__init(&refs[k]);
		refs[k].offset = res->offsets[k];
		refs[k].length = gn_meta_nbytes(&res->metas[k]);
		refp[k] = &refs[k];
	}
	er.n_outputs = er.n_payload = res->noutputs;
	er.outputs = metap;
	er.payload = refp;
	er.exec_ns = res->exec_ns;
	er.backend = (char *)cs->srv->backend.ops->name;
	/* Lent outputs go from the blocks they were computed in. */
	rc = gn_server_send(cs, GENIE__MSG_TYPE__MSG_TYPE_EXEC_RESULT, req_id,
			    &er.base, res->iov, res->iovcnt);
out:
	free(dims);
	free(refp);
	free(refs);
	free(metap);
	free(metas);
	return rc;
}

int gn_server_handle_exec(struct conn_slot *cs, const Genie__Envelope *env,
			  const struct gn_msg *msg)
{
	struct gn_server *s = cs->srv;
	struct exec_job ej = {.job.run = run_exec, .srv = s};
	Genie__ExecRequest *req;
	struct gn_plan *plan = NULL;
	size_t cap;
	int rc;

	req = (Genie__ExecRequest *)gn_pb_unpack(
		&genie__exec_request__descriptor, env->body.data, env->body.len,
		cs->conn->limits.max_envelope);
	if (req == NULL)
		return gn_server_send_error(cs, env->request_id,
					    gn_last_error_code(),
					    gn_last_error());
	/* Room for every reference plus, with a whole plan, every node. */
	cap = req->n_inputs + (req->plan ? req->plan->n_nodes : 0) + 1;
	ej.in = calloc(cap, sizeof(*ej.in));
	ej.reg = calloc(cap, sizeof(*ej.reg));
	if (ej.in == NULL || ej.reg == NULL) {
		rc = gn_error_set(-ENOMEM, "exec: no memory for %zu inputs",
				  req->n_inputs);
		goto reply_error;
	}
	rc = resolve_inputs(req, msg->payload, msg->payload_len, &ej);
	if (rc != 0)
		goto reply_error;
	rc = select_plan(cs, req, &ej, &plan);
	if (rc != 0)
		goto reply_error;
	if (req->plan != NULL)
		bind_unnamed(plan, &ej);
	ej.plan = plan;
	ej.session = cs->session;
	ej.lend =
		GN_EXEC_LEND_HOST |
		(gn_conn_takes_gpu_memory(cs->conn) ? GN_EXEC_LEND_DEVICE : 0);
	rc = gn_worker_call(s->worker, &ej.job);
	if (rc != 0)
		goto reply_error;
	rc = send_result(cs, env->request_id, &ej.res);
	atomic_fetch_add(&s->plans, 1);
	atomic_fetch_add(&s->exec_ns, ej.res.exec_ns);
	gn_server_note_latency(s, &ej.res);
	if (ej.res.nlent > 0 && !s->backend.ops->host_memory) {
		/*
		 * The send returned: the transport is done with the device
		 * blocks, which go back on the worker, the backend's thread.
		 */
		ej.job.run = run_release;
		ej.job.must_run = 1;
		(void)gn_worker_call(s->worker, &ej.job);
	}
	goto out;

reply_error:
	atomic_fetch_add(&s->plan_errors, 1);
	GN_LOG(NOTICE, runtime, "%s: request %llu refused: %s", cs->conn->peer,
	       (unsigned long long)env->request_id, gn_last_error());
	rc = gn_server_send_error(cs, env->request_id, rc, gn_last_error());
out:
	gn_exec_result_fini(&ej.res);
	free(ej.reg);
	free(ej.in);
	protobuf_c_message_free_unpacked(&req->base, NULL);
	return rc;
}
