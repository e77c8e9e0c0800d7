/*
 * Materialize: turn the graph behind a tensor into a plan, run it on the
 * session's target, and keep the value.
 *
 * The walk collects, in topological order, every lazy node the tensor
 * depends on into a graph (client/graph/); tensors that already hold bytes
 * become OP_INPUT leaves whose bytes travel as payload (remote) or are
 * borrowed in place (local). The passes then rewrite the graph before it
 * becomes a plan.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client_internal.h"
#include "clock.h"
#include "executor.h"
#include "frame.h"
#include "genie/control.pb-c.h"
#include "genie/envelope.pb-c.h"
#include "gn_error.h"
#include "graph.h"

struct walk {
	struct gn_tensor **order; /* topological: operands first */
	uint32_t n;
};

/*
 * Iterative post-order DFS from each lazy root, so deep graphs cannot
 * overflow the C stack; nodes shared by several roots are walked once.
 */
static int walk_graph(struct gn_arena *scratch, struct gn_tensor *const *roots,
		      int nroots, size_t cap, struct walk *w)
{
	struct gn_session *s = roots[0]->session;
	struct frame {
		struct gn_tensor *t;
		uint32_t next;
	} * stack;
	size_t sp = 0;

	w->order = gn_arena_alloc(scratch, cap * sizeof(*w->order),
				  _Alignof(struct gn_tensor *));
	stack = gn_arena_alloc(scratch, cap * sizeof(*stack),
			       _Alignof(struct frame));
	if (w->order == NULL || stack == NULL)
		return gn_last_error_code();
	w->n = 0;
	s->visit++;
	for (int r = 0; r < nroots; r++) {
		if (roots[r]->visit == s->visit)
			continue;
		roots[r]->visit = s->visit;
		stack[sp++] = (struct frame){roots[r], 0};
		while (sp > 0) {
			struct frame *f = &stack[sp - 1];
			struct gn_tensor *t = f->t;

			if (t->data == NULL && f->next < t->nin) {
				struct gn_tensor *c =
					gn_tensor_in(t, f->next++);

				if (c->visit != s->visit) {
					c->visit = s->visit;
					stack[sp++] = (struct frame){c, 0};
				}
				continue;
			}
			t->index = w->n;
			w->order[w->n++] = t;
			sp--;
		}
	}
	return 0;
}

/* Copy the walked nodes into a graph the passes can rewrite. */
static int build_graph(const struct walk *w, struct gn_tensor *const *roots,
		       int nroots, struct gn_graph *g)
{
	uint32_t in[GN_OP_MAX_INPUTS];

	for (uint32_t i = 0; i < w->n; i++) {
		struct gn_tensor *t = w->order[i];
		struct gn_op_attrs attrs = {t->iattrs, t->fattrs, t->ni, t->nf};
		struct gn_tensor_meta m;
		uint32_t idx, nin = t->data ? 0 : t->nin;

		gn_tensor_meta_of(t, &m);
		for (uint32_t k = 0; k < nin; k++)
			in[k] = gn_tensor_in(t, k)->index;
		if (t->data != NULL) {
			attrs = (struct gn_op_attrs){0};
			if (!t->has_handle && gn_client_new_handle(t) != 0)
				return gn_last_error_code();
		}
		idx = gn_graph_add(g, t->data ? GN_OP_INPUT : (enum gn_op)t->op,
				   in, nin, &attrs, &m);
		if (idx == GN_GRAPH_NONE)
			return gn_last_error_code();
		g->nodes[idx].user = t;
		if (t->data != NULL) {
			g->nodes[idx].data = t->data;
			g->nodes[idx].handle = t->handle;
		}
	}
	/* One output per root, in the roots' order. */
	for (int r = 0; r < nroots; r++) {
		int rc = gn_graph_add_output(g, roots[r]->index);

		if (rc != 0)
			return rc;
	}
	return 0;
}

/* Keep the result bytes in `t`, checking they are what was recorded. */
/*
 * Give `t` the value `bytes`: a copy in the session's arena, or `bytes`
 * itself when it already lies there (`in_arena`: a placed result) at a
 * 64-byte boundary, as arena blocks do.
 */
static int adopt_result(struct gn_tensor *t, const struct gn_tensor_meta *m,
			const uint8_t *bytes, uint64_t len, bool in_arena)
{
	struct gn_tensor_meta tm;
	char s1[96], s2[96];
	uint64_t need;
	void *dst;

	gn_tensor_meta_of(t, &tm);
	need = gn_meta_nbytes(&tm);
	if (!gn_meta_equal(m, &tm) || len != need)
		return gn_error_set(-EPROTO,
				    "result is %s (%llu bytes), expected %s "
				    "(%llu bytes)",
				    gn_meta_format(m, s1, sizeof(s1)),
				    (unsigned long long)len,
				    gn_meta_format(&tm, s2, sizeof(s2)),
				    (unsigned long long)need);
	if (in_arena && (uintptr_t)bytes % 64 == 0) {
		t->data = (void *)bytes;
		return 0;
	}
	dst = gn_arena_alloc(t->session->arena, need, 64);
	if (dst == NULL)
		return gn_last_error_code();
	if (need)
		memcpy(dst, bytes, need);
	t->data = dst;
	return 0;
}

/*
 * The lazy tensor behind input node `l` when the target holds it as a
 * resident tensor (genie/resident.h), else NULL. Folding gives a node a
 * handle of its own, so only a node still naming the tensor's handle
 * counts.
 */
static struct gn_tensor *resident_of(const struct gn_graph_node *l)
{
	struct gn_tensor *u = l->user;

	if (u == NULL || !(u->resident & GN_RESIDENT_YES) ||
	    l->handle != u->handle)
		return NULL;
	return u;
}

static int run_local(struct gn_tensor *const *ts, int nt,
		     const struct gn_graph *g, const Genie__Plan *pbplan)
{
	struct gn_session *s = ts[0]->session;
	struct gn_exec_input *in;
	struct gn_exec_result res;
	struct gn_plan *plan = NULL;
	uint32_t k = 0;
	int rc;

	in = calloc(g->n + 1, sizeof(*in));
	if (in == NULL)
		return gn_error_set(-ENOMEM, "materialize: out of memory");
	for (uint32_t i = 0; i < g->n; i++) {
		const struct gn_graph_node *l = &g->nodes[i];

		if (l->op != GN_OP_INPUT)
			continue;
		in[k].handle = l->handle;
		if (resident_of(l) != NULL) {
			rc = gn_client_resident_bind_local(resident_of(l),
							   &in[k++]);
			if (rc != 0)
				goto out;
			continue;
		}
		in[k].data = l->data;
		in[k].stable = 1;
		in[k++].len = gn_meta_nbytes(&l->meta);
	}
	/* The same validation a runtime applies, then the same executor. */
	rc = gn_plan_decode(pbplan, &plan);
	if (rc == 0)
		rc = gn_exec_run(&s->backend, NULL, plan, in, k, &res);
	if (rc == 0) {
		for (int r = 0; rc == 0 && r < nt; r++) {
			uint64_t end = r + 1 < nt ? res.offsets[r + 1]
						  : res.payload_len;

			if (ts[r]->data == NULL)
				rc = adopt_result(ts[r], &res.metas[r],
						  res.payload + res.offsets[r],
						  end - res.offsets[r], false);
		}
		s->stats.last_exec_ns = res.exec_ns;
		gn_exec_result_fini(&res);
	}
out:
	gn_plan_free(&plan);
	free(in);
	return rc;
}

/* Take the outputs of an ExecResult whose payload is in `msg`. */
static int take_result(struct gn_tensor *const *ts, int nt,
		       const Genie__ExecResult *er, const struct gn_msg *msg)
{
	if (er->n_outputs != (size_t)nt || er->n_payload != (size_t)nt)
		return gn_error_set(-EPROTO,
				    "result has %zu outputs and %zu payload "
				    "references, expected %d of each",
				    er->n_outputs, er->n_payload, nt);
	ts[0]->session->stats.last_exec_ns = er->exec_ns;
	for (int r = 0; r < nt; r++) {
		const Genie__PayloadRef *ref = er->payload[r];
		struct gn_tensor_meta m;
		int rc = gn_meta_from_pb(er->outputs[r], &m, "result");

		if (rc != 0)
			return rc;
		if (ref->offset > msg->payload_len ||
		    ref->length > msg->payload_len - ref->offset)
			return gn_error_set(-EPROTO,
					    "result %d: bytes lie outside the "
					    "%zu-byte payload",
					    r, msg->payload_len);
		if (ts[r]->data != NULL)
			continue; /* the same tensor named twice */
		rc = adopt_result(ts[r], &m, msg->payload + ref->offset,
				  ref->length, msg->placed != NULL);
		if (rc != 0)
			return rc;
	}
	return 0;
}

/* Whether this connection sent the plan with `fp` recently. */
static int plan_known(const struct gn_session *s, uint64_t fp)
{
	for (uint32_t i = 0; fp != 0 && i < GN_SESSION_PLANS; i++)
		if (s->sent_plans[i] == fp)
			return 1;
	return 0;
}

/* Remember a plan sent whole; the oldest is forgotten first. */
static void plan_remember(struct gn_session *s, uint64_t fp)
{
	if (fp == 0 || plan_known(s, fp))
		return;
	s->sent_plans[s->sent_next] = fp;
	s->sent_next = (s->sent_next + 1) % GN_SESSION_PLANS;
}

/* Upload again every resident input of `g` that the runtime lost. */
static int restore_resident(const struct gn_graph *g)
{
	for (uint32_t i = 0; i < g->n; i++) {
		struct gn_tensor *u;
		int rc;

		if (g->nodes[i].op != GN_OP_INPUT)
			continue;
		u = resident_of(&g->nodes[i]);
		if (u == NULL)
			continue;
		rc = gn_client_resident_restore(u);
		if (rc != 0)
			return rc;
	}
	return 0;
}

/*
 * The payload an ExecResult for ts will carry (the runtime lays results
 * end to end), when each result then starts at a 64-byte boundary of a
 * placed block and can stay there; 0 otherwise (not placed: a result
 * copied out of a placed block would leave the block to waste in the
 * arena).
 */
static uint64_t placed_len(struct gn_tensor *const *ts, int nt)
{
	uint64_t len = 0;

	for (int r = 0; r < nt; r++) {
		if (len % 64 != 0)
			return 0;
		len += gn_tensor_nbytes(ts[r]);
	}
	return len;
}

static int run_remote(struct gn_tensor *const *ts, int nt, struct gn_arena *a,
		      const struct gn_graph *g, Genie__Plan *pbplan)
{
	struct gn_session *s = ts[0]->session;
	Genie__ExecRequest req = GENIE__EXEC_REQUEST__INIT;
	Genie__PayloadRef *refs, **refp;
	struct iovec *iov;
	Genie__ExecResult *er;
	struct gn_msg msg;
	uint64_t off = 0;
	uint32_t k = 0, niov = 0, nresident = 0;
	int restored = 0, whole, rc;
	uint64_t out_len;

	refs = gn_arena_alloc(a, (g->n + 1) * sizeof(*refs), 8);
	refp = gn_arena_alloc(a, (g->n + 1) * sizeof(*refp), 8);
	iov = gn_arena_alloc(a, (g->n + 1) * sizeof(*iov), 8);
	if (!refs || !refp || !iov)
		return gn_last_error_code();
	for (uint32_t i = 0; i < g->n; i++) {
		const struct gn_graph_node *l = &g->nodes[i];
		uint64_t len;

		if (l->op != GN_OP_INPUT)
			continue;
		len = gn_meta_nbytes(&l->meta);
		genie__payload_ref__init(&refs[k]);
		refs[k].handle.data = (uint8_t *)l->handle;
		refs[k].handle.len = GN_HANDLE_SIZE;
		refp[k] = &refs[k];
		k++;
		if (resident_of(l) != NULL) {
			/* The runtime holds it: the handle alone travels. */
			refs[k - 1].resident = 1;
			nresident++;
			continue;
		}
		refs[k - 1].offset = off;
		refs[k - 1].length = len;
		iov[niov++] = (struct iovec){(void *)l->data, len};
		off += len;
	}
	req.n_inputs = k;
	req.inputs = refp;
	out_len = placed_len(ts, nt);
	/*
	 * A structure this connection has sent before travels as its
	 * fingerprint alone; if the runtime has let it go (ESTALE), send it
	 * whole once more. A resident input the runtime has evicted (ENOENT)
	 * is uploaded again from the client's copy (a few rounds at most);
	 * a shared one attaches to the runtime's copy by content key when
	 * another session brought it back, else is uploaded shared again.
	 * Its new handle is written in place, where the plan and the
	 * references point.
	 */
	for (whole = !plan_known(s, pbplan->fingerprint);;) {
		req.plan = whole ? pbplan : NULL;
		req.plan_fingerprint = whole ? 0 : pbplan->fingerprint;
		/* The results land in the session's arena, where they stay. */
		if (out_len > 0)
			gn_client_place_arm(
				s, GENIE__MSG_TYPE__MSG_TYPE_EXEC_RESULT, NULL,
				out_len);
		rc = gn_client_call(s, GENIE__MSG_TYPE__MSG_TYPE_EXEC_REQUEST,
				    &req.base, iov, (int)niov,
				    GENIE__MSG_TYPE__MSG_TYPE_EXEC_RESULT,
				    &genie__exec_result__descriptor,
				    (ProtobufCMessage **)&er, &msg);
		gn_client_place_disarm(s);
		if (rc == -ESTALE && !whole) {
			s->stats.plans_resent++;
			whole = 1;
			continue;
		}
		if (rc == -ENOENT && nresident > 0 && restored < 3) {
			/* Restoring one may evict another under pressure. */
			restored++;
			rc = restore_resident(g);
			if (rc != 0)
				return rc;
			continue;
		}
		break;
	}
	if (rc != 0)
		return rc;
	if (req.plan != NULL)
		plan_remember(s, pbplan->fingerprint);
	else
		s->stats.plans_by_fingerprint++;
	rc = take_result(ts, nt, er, &msg);
	protobuf_c_message_free_unpacked(&er->base, NULL);
	gn_msg_release(&msg);
	return rc;
}

/* GENIE_DOT=FILE: write each materialized graph, after the passes. */
static int dump_dot(const struct gn_graph *g, const char *path)
{
	FILE *f = fopen(path, "w");
	int rc;

	if (f == NULL)
		return gn_error_set(-errno, "materialize: cannot write %s: %s",
				    path, strerror(errno));
	rc = gn_graph_write_dot(g, f);
	if (fclose(f) != 0 && rc == 0)
		rc = gn_error_set(-EIO, "materialize: writing %s failed", path);
	return rc;
}

int gn_tensor_materialize_all(struct gn_tensor *const *ts, int n)
{
	struct gn_tensor *lazy[GN_MATERIALIZE_MAX];
	struct gn_session *s;
	struct gn_arena *scratch;
	struct gn_graph *g = NULL;
	Genie__Plan plan;
	struct walk w = {0};
	uint64_t t0;
	int nl = 0, rc;

	if (ts == NULL || n < 0 || n > GN_MATERIALIZE_MAX)
		return gn_error_set(-EINVAL,
				    "materialize: %d tensors, expected 0..%d "
				    "and a non-NULL array",
				    n, GN_MATERIALIZE_MAX);
	for (int i = 0; i < n; i++) {
		if (ts[i] == NULL)
			return gn_error_set(
				-EINVAL, "materialize: tensor %d is NULL", i);
		if (ts[i]->session != ts[0]->session)
			return gn_error_set(-EINVAL,
					    "materialize: tensor %d belongs to "
					    "another session than tensor 0",
					    i);
		if (ts[i]->data == NULL)
			lazy[nl++] = ts[i];
	}
	if (nl == 0)
		return 0;
	s = lazy[0]->session;
	if (s->kind == GN_TARGET_REMOTE && s->conn == NULL)
		return gn_error_set(-ECONNRESET,
				    "materialize: the session lost its runtime "
				    "connection earlier; create a new session");
	scratch = gn_arena_create(0);
	if (scratch == NULL)
		return gn_last_error_code();
	t0 = gn_clock_ns();
	/* No walk can hold more nodes than the session ever recorded. */
	rc = walk_graph(scratch, lazy, nl, s->nnodes, &w);
	if (rc == 0) {
		g = gn_graph_create();
		rc = g ? build_graph(&w, lazy, nl, g) : gn_last_error_code();
	}
	if (rc == 0)
		rc = gn_graph_optimize(g, s->passes, s->fold_bytes);
	if (rc == 0 && s->dot_path != NULL)
		rc = dump_dot(g, s->dot_path);
	if (rc == 0)
		rc = gn_plan_from_graph(g, scratch, &plan);
	if (rc == 0)
		rc = s->kind == GN_TARGET_LOCAL
			     ? run_local(lazy, nl, g, &plan)
			     : run_remote(lazy, nl, scratch, g, &plan);
	if (rc == 0) {
		s->stats.last_latency_ns = gn_clock_ns() - t0;
		s->stats.requests++;
	} else if (s->kind == GN_TARGET_REMOTE && s->conn != NULL &&
		   (rc == -ECONNRESET || rc == -ETIMEDOUT || rc == -EPROTO ||
		    rc == -EBADMSG || rc == -EMSGSIZE)) {
		/* The stream is out of step or gone: stop using it. */
		s->stats.bytes_sent = s->conn->stats.bytes_sent;
		s->stats.bytes_received = s->conn->stats.bytes_received;
		gn_conn_close(&s->conn);
	}
	gn_graph_destroy(&g);
	gn_arena_destroy(&scratch);
	return rc;
}

int gn_tensor_materialize(struct gn_tensor *t)
{
	if (t == NULL)
		return gn_error_set(-EINVAL, "materialize: NULL tensor");
	return gn_tensor_materialize_all(&t, 1);
}
