/*
 * The coordinator's registry: nodes, their health and load, sessions and
 * placement, and the durable copy of all of it (state.c). Every change is
 * made in memory and written to SQLite in one transaction under c->lock;
 * a change SQLite refuses is undone in memory and answered with -EIO, so
 * nothing acknowledged is lost.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "coord_internal.h"
#include "frame.h"
#include "gn_error.h"

static int64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const char *coord_state_name(enum gn_place_state s, bool drained)
{
	if (drained && s == GN_PLACE_UP)
		return "drained";
	switch (s) {
	case GN_PLACE_UP: return "up";
	case GN_PLACE_SUSPECT: return "suspect";
	default: return "down";
	}
}

int coord_registry_init(struct gn_coordinator *c)
{
	c->nodes = calloc(GN_COORD_MAX_NODES, sizeof(*c->nodes));
	c->place_nodes = calloc(GN_COORD_MAX_NODES, sizeof(*c->place_nodes));
	c->place_keys = calloc(GN_COORD_MAX_NODES, sizeof(*c->place_keys));
	if (c->nodes == NULL || c->place_nodes == NULL || c->place_keys == NULL)
		return gn_error_set(-ENOMEM,
				    "coordinator: no memory for nodes");
	gn_sketch_init(&c->lat_all);
	c->next_session = 1;
	return 0;
}

static void node_clear_keys(struct coord_node *n)
{
	for (uint32_t i = 0; i < n->nkeys; i++)
		free(n->keys[i]);
	n->nkeys = 0;
}

void coord_registry_fini(struct gn_coordinator *c)
{
	for (int i = 0; i < c->nnodes; i++) {
		struct coord_node *n = &c->nodes[i];

		node_clear_keys(n);
		if (n->reg != NULL)
			protobuf_c_message_free_unpacked(&n->reg->base, NULL);
		free(n->reg_blob);
	}
	free(c->nodes);
	c->nodes = NULL;
	free(c->place_nodes);
	c->place_nodes = NULL;
	free(c->place_keys);
	c->place_keys = NULL;
	free(c->sessions);
	c->sessions = NULL;
	free(c->tenants);
	c->tenants = NULL;
	free(c->op_lat);
	c->op_lat = NULL;
	c->n_op_lat = 0;
}

/* An op name as runtimes send it: [a-z0-9_], 1..31 characters. */
static int op_name_ok(const char *s)
{
	size_t n = 0;

	for (; s[n] != '\0'; n++)
		if (n >= 31 || !((s[n] >= 'a' && s[n] <= 'z') ||
				 (s[n] >= '0' && s[n] <= '9') || s[n] == '_'))
			return 0;
	return n > 0;
}

/* `op`'s sketch, made on first sight; NULL when full or a bad name. */
static struct gn_sketch *op_sketch(struct gn_coordinator *c, const char *op)
{
	struct coord_op_latency *e;

	if (!op_name_ok(op))
		return NULL;
	for (size_t i = 0; i < c->n_op_lat; i++)
		if (strcmp(c->op_lat[i].op, op) == 0)
			return &c->op_lat[i].lat;
	if (c->op_lat == NULL)
		c->op_lat = calloc(GN_COORD_MAX_OPS, sizeof(*c->op_lat));
	if (c->op_lat == NULL || c->n_op_lat == GN_COORD_MAX_OPS)
		return NULL;
	e = &c->op_lat[c->n_op_lat++];
	snprintf(e->op, sizeof(e->op), "%s", op);
	gn_sketch_init(&e->lat);
	return &e->lat;
}

static int find_node(struct gn_coordinator *c, const char *id)
{
	for (int i = 0; i < c->nnodes; i++)
		if (strcmp(c->nodes[i].id, id) == 0)
			return i;
	return -1;
}

/* Take a registration (blob, unpacked) into node `n`; owns both after. */
static void node_set_reg(struct coord_node *n, Genie__RegisterNode *reg,
			 uint8_t *blob, size_t len)
{
	if (n->reg != NULL)
		protobuf_c_message_free_unpacked(&n->reg->base, NULL);
	free(n->reg_blob);
	n->reg = reg;
	n->reg_blob = blob;
	n->reg_len = len;
	n->device_kinds = n->transports = 0;
	n->mem_total = 0;
	for (size_t i = 0; i < reg->n_devices; i++) {
		n->device_kinds |= gn_place_device_bit(reg->devices[i]->kind);
		n->mem_total += reg->devices[i]->memory_bytes;
	}
	for (size_t i = 0; i < reg->n_data_planes; i++)
		n->transports |=
			gn_place_transport_bit(reg->data_planes[i]->kind);
}

static int check_reg(const Genie__RegisterNode *reg)
{
	size_t len = strlen(reg->node_id);

	if (len == 0 || len >= GN_COORD_ID_MAX)
		return gn_error_set(-EINVAL,
				    "register: node_id must be 1..%d bytes, "
				    "got %zu",
				    GN_COORD_ID_MAX - 1, len);
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)reg->node_id[i] < 0x20 ||
		    reg->node_id[i] == '"' || reg->node_id[i] == '\\')
			return gn_error_set(-EINVAL,
					    "register: node_id '%s' holds a "
					    "control character, quote or "
					    "backslash",
					    reg->node_id);
	return 0;
}

/* A DOWN node came back: count it, open the breaker if it flaps. */
static void note_up(struct gn_coordinator *c, struct coord_node *n,
		    uint64_t now)
{
	uint64_t window = (uint64_t)GN_COORD_FLAP_WINDOW_MS * 1000000ull;
	uint32_t recent = 0;

	memmove(&n->ups_ns[1], &n->ups_ns[0],
		sizeof(n->ups_ns) - sizeof(n->ups_ns[0]));
	n->ups_ns[0] = now;
	if (n->nups < GN_COORD_FLAPS + 1)
		n->nups++;
	for (uint32_t i = 0; i < n->nups; i++)
		recent += now - n->ups_ns[i] <= window;
	if (recent > GN_COORD_FLAPS && !n->breaker_open) {
		n->breaker_open = true;
		n->breaker_until_ns =
			now + (uint64_t)GN_COORD_BREAKER_MS * 1000000ull;
		GN_LOG(WARNING, coord,
		       "node '%s' came back %u times within %d s: breaker "
		       "open for %d s, placement avoids it",
		       n->id, recent, GN_COORD_FLAP_WINDOW_MS / 1000,
		       GN_COORD_BREAKER_MS / 1000);
	}
	(void)c;
}

int coord_register(struct gn_coordinator *c, const uint8_t *body, size_t len)
{
	Genie__RegisterNode *reg;
	struct coord_node *n;
	uint8_t *blob;
	uint64_t now = gn_clock_ns();
	int idx, rc, added = 0;

	reg = (Genie__RegisterNode *)gn_pb_unpack(
		&genie__register_node__descriptor, body, len,
		c->opts.max_envelope);
	if (reg == NULL)
		return gn_last_error_code();
	rc = check_reg(reg);
	if (rc != 0)
		goto fail;
	blob = malloc(len ? len : 1);
	if (blob == NULL) {
		rc = gn_error_set(-ENOMEM, "register: no memory");
		goto fail;
	}
	memcpy(blob, body, len);
	pthread_mutex_lock(&c->lock);
	idx = find_node(c, reg->node_id);
	if (idx < 0) {
		if (c->nnodes == GN_COORD_MAX_NODES) {
			pthread_mutex_unlock(&c->lock);
			free(blob);
			rc = gn_error_set(-ENOSPC,
					  "register: %d nodes known, no room "
					  "for '%s'",
					  GN_COORD_MAX_NODES, reg->node_id);
			goto fail;
		}
		idx = c->nnodes;
		n = &c->nodes[idx];
		memset(n, 0, sizeof(*n));
		snprintf(n->id, sizeof(n->id), "%s", reg->node_id);
		gn_sketch_init(&n->lat);
		n->state = GN_PLACE_DOWN;
		added = 1;
	}
	n = &c->nodes[idx];
	rc = gn_coord_state_begin(c->state);
	if (rc == 0)
		rc = gn_coord_state_put_node(c->state, reg->node_id, blob, len,
					     n->drained);
	if (rc == 0)
		rc = gn_coord_state_commit(c->state);
	if (rc != 0) {
		gn_coord_state_rollback(c->state);
		pthread_mutex_unlock(&c->lock);
		free(blob);
		goto fail;
	}
	if (added)
		c->nnodes++;
	else if (n->state == GN_PLACE_DOWN)
		note_up(c, n, now);
	node_set_reg(n, reg, blob, len);
	n->state = GN_PLACE_UP;
	n->restored = false;
	n->last_hb_ns = now;
	/* Logged under the lock: a re-registration may replace `reg`. */
	GN_LOG(INFO, coord,
	       "node '%s' registered (%zu devices, %zu data planes)%s",
	       reg->node_id, reg->n_devices, reg->n_data_planes,
	       added ? "" : ", known before");
	pthread_mutex_unlock(&c->lock);
	return idx;
fail:
	protobuf_c_message_free_unpacked(&reg->base, NULL);
	return rc;
}

int coord_heartbeat(struct gn_coordinator *c, int idx,
		    const Genie__Heartbeat *hb, bool *drained)
{
	struct coord_node *n;
	uint64_t now = gn_clock_ns();

	pthread_mutex_lock(&c->lock);
	n = &c->nodes[idx];
	if (strcmp(hb->node_id, n->id) != 0) {
		pthread_mutex_unlock(&c->lock);
		return gn_error_set(-EINVAL,
				    "heartbeat for node '%s' on the connection "
				    "that registered '%s'",
				    hb->node_id, n->id);
	}
	if (n->state == GN_PLACE_DOWN) {
		note_up(c, n, now);
		GN_LOG(NOTICE, coord, "node '%s' is up again", n->id);
	} else if (n->state == GN_PLACE_SUSPECT) {
		GN_LOG(INFO, coord, "node '%s' heartbeats again", n->id);
	}
	n->state = GN_PLACE_UP;
	n->restored = false;
	n->last_hb_ns = now;
	n->heartbeats++;
	if (hb->load != NULL) {
		n->active_sessions = hb->load->active_sessions;
		n->queue_depth = hb->load->queue_depth;
		n->mem_used = hb->load->memory_used_bytes;
		if (hb->load->memory_total_bytes)
			n->mem_total = hb->load->memory_total_bytes;
		n->utilization = hb->load->device_utilization;
	}
	if (hb->telemetry != NULL) {
		n->bytes_sent = hb->telemetry->bytes_sent_total;
		n->bytes_received = hb->telemetry->bytes_received_total;
		n->plans_executed = hb->telemetry->plans_executed_total;
		if (hb->load == NULL && hb->telemetry->pool_limit_bytes) {
			n->mem_used = hb->telemetry->pool_in_use_bytes;
			n->mem_total = hb->telemetry->pool_limit_bytes;
		}
	}
	node_clear_keys(n);
	for (size_t i = 0;
	     i < hb->n_resident_keys && n->nkeys < GN_COORD_MAX_KEYS; i++) {
		n->keys[n->nkeys] = strdup(hb->resident_keys[i]);
		if (n->keys[n->nkeys] != NULL)
			n->nkeys++;
	}
	for (size_t i = 0; i < hb->n_plan_latency_ns; i++) {
		gn_sketch_add(&n->lat, hb->plan_latency_ns[i]);
		gn_sketch_add(&c->lat_all, hb->plan_latency_ns[i]);
	}
	for (size_t i = 0; i < hb->n_op_latency; i++) {
		const Genie__OpLatency *ol = hb->op_latency[i];
		struct gn_sketch *sk = op_sketch(c, ol->op);

		if (sk == NULL) {
			GN_LOG(DEBUG, coord,
			       "node '%s': kernel times for op '%.40s' not "
			       "kept (not an op name, or %d ops known)",
			       n->id, ol->op, GN_COORD_MAX_OPS);
			continue;
		}
		for (size_t j = 0; j < ol->n_ns; j++)
			gn_sketch_add(sk, ol->ns[j]);
	}
	*drained = n->drained;
	pthread_mutex_unlock(&c->lock);
	atomic_fetch_add(&c->heartbeats_total, 1);
	return 0;
}

/* The entry of `name`, or NULL. Under the lock. */
static struct coord_tenant *tenant_find(struct gn_coordinator *c,
					const char *name)
{
	for (size_t i = 0; i < c->ntenants; i++)
		if (strcmp(c->tenants[i].name, name) == 0)
			return &c->tenants[i];
	return NULL;
}

/* `tenant`'s sessions. Under the lock. */
static uint32_t tenant_sessions(struct gn_coordinator *c, const char *tenant)
{
	struct coord_tenant *t = tenant_find(c, tenant);

	return t ? t->sessions : 0;
}

/* Add `delta` to `name`'s sessions, creating its entry. Under the lock. */
static int tenant_add(struct gn_coordinator *c, const char *name, int delta)
{
	struct coord_tenant *t = tenant_find(c, name);

	if (t == NULL) {
		if (c->ntenants == c->cap_tenants) {
			size_t cap = c->cap_tenants ? 2 * c->cap_tenants : 16;
			struct coord_tenant *p =
				realloc(c->tenants, cap * sizeof(*p));

			if (p == NULL)
				return gn_error_set(-ENOMEM,
						    "no memory for tenant '%s'",
						    name);
			c->tenants = p;
			c->cap_tenants = cap;
		}
		t = &c->tenants[c->ntenants++];
		memset(t, 0, sizeof(*t));
		snprintf(t->name, sizeof(t->name), "%s", name);
	}
	if (delta < 0 && t->sessions < (uint32_t)-delta)
		t->sessions = 0;
	else
		t->sessions += (uint32_t)delta;
	return 0;
}

/* Tenants holding sessions. Under the lock. */
static uint32_t active_tenants(struct gn_coordinator *c)
{
	uint32_t n = 0;

	for (size_t i = 0; i < c->ntenants; i++)
		n += c->tenants[i].sessions > 0;
	return n;
}

/* End every session on node `idx` (it went down). Under the lock. */
static void end_node_sessions(struct gn_coordinator *c, int idx)
{
	char tenants[16][GN_COORD_TENANT_MAX];
	size_t w = 0, ended = 0, nt = 0;
	int rc = gn_coord_state_begin(c->state);

	for (size_t i = 0; i < c->nsessions; i++) {
		struct coord_session *s = &c->sessions[i];
		size_t t;

		if (s->node != idx) {
			c->sessions[w++] = *s;
			continue;
		}
		if (rc == 0)
			rc = gn_coord_state_del_session(c->state, s->id);
		tenant_add(c, s->tenant, -1);
		for (t = 0; t < nt; t++)
			if (strcmp(tenants[t], s->tenant) == 0)
				break;
		if (t == nt && nt < 16)
			memcpy(tenants[nt++], s->tenant, sizeof(tenants[0]));
		ended++;
	}
	c->nsessions = w;
	c->nodes[idx].sessions = 0;
	/* The tenants' counts (beyond 16 tenants, their next change fixes
	 * them). */
	for (size_t t = 0; t < nt && rc == 0; t++)
		rc = gn_coord_state_put_tenant(c->state, tenants[t],
					       tenant_sessions(c, tenants[t]),
					       0);
	if (rc == 0)
		rc = gn_coord_state_commit(c->state);
	if (rc != 0) {
		gn_coord_state_rollback(c->state);
		GN_LOG(ERR, coord, "ending sessions of '%s': %s",
		       c->nodes[idx].id, gn_last_error());
	}
	if (ended) {
		atomic_fetch_add(&c->sessions_ended, ended);
		GN_LOG(WARNING, coord, "node '%s' is down: %zu sessions ended",
		       c->nodes[idx].id, ended);
	}
}

void coord_check(struct gn_coordinator *c)
{
	uint64_t now = gn_clock_ns();
	uint64_t iv = (uint64_t)c->opts.heartbeat_ms * 1000000ull;

	pthread_mutex_lock(&c->lock);
	for (int i = 0; i < c->nnodes; i++) {
		struct coord_node *n = &c->nodes[i];
		uint64_t age = now > n->last_hb_ns ? now - n->last_hb_ns : 0;

		if (n->breaker_open && now >= n->breaker_until_ns) {
			n->breaker_open = false;
			GN_LOG(NOTICE, coord, "node '%s': breaker closed",
			       n->id);
		}
		if (n->state == GN_PLACE_DOWN)
			continue;
		if (age > 3 * iv) {
			n->state = GN_PLACE_DOWN;
			GN_LOG(WARNING, coord,
			       "node '%s' is down: no heartbeat for %llu ms "
			       "(interval %u ms)",
			       n->id, (unsigned long long)(age / 1000000),
			       c->opts.heartbeat_ms);
			end_node_sessions(c, i);
		} else if (age > iv && n->state == GN_PLACE_UP) {
			n->state = GN_PLACE_SUSPECT;
			GN_LOG(NOTICE, coord,
			       "node '%s' is suspect: no heartbeat for %llu ms",
			       n->id, (unsigned long long)(age / 1000000));
		}
	}
	pthread_mutex_unlock(&c->lock);
}

/* The node's data plane for `transport` ("" any): its address. */
static const char *node_address(const struct coord_node *n,
				const char *transport)
{
	for (size_t i = 0; i < n->reg->n_data_planes; i++)
		if (transport == NULL || transport[0] == '\0' ||
		    strcmp(n->reg->data_planes[i]->kind, transport) == 0)
			return n->reg->data_planes[i]->address;
	return "";
}

static int grow_sessions(struct gn_coordinator *c)
{
	struct coord_session *p;
	size_t cap;

	if (c->nsessions < c->cap_sessions)
		return 0;
	cap = c->cap_sessions ? 2 * c->cap_sessions : 64;
	p = realloc(c->sessions, cap * sizeof(*p));
	if (p == NULL)
		return gn_error_set(-ENOMEM, "place: no memory for a session");
	c->sessions = p;
	c->cap_sessions = cap;
	return 0;
}

int coord_place(struct gn_coordinator *c, const Genie__PlaceRequest *rq,
		uint64_t req_id, uint8_t **env, size_t *env_len)
{
	struct gn_place_node *pn = c->place_nodes;
	const char *(*keys)[GN_COORD_MAX_KEYS] = c->place_keys;
	Genie__PlaceReply rep = GENIE__PLACE_REPLY__INIT;
	struct gn_place_request req = {0};
	struct gn_place_result res;
	struct coord_session *s;
	const char *tenant = rq->tenant ? rq->tenant : "";
	const char *pol_name;
	int64_t now_ms = wall_ms();
	int rc;

	if (strlen(tenant) >= GN_COORD_TENANT_MAX)
		return gn_error_set(-EINVAL,
				    "place: tenant name of %zu bytes, at most "
				    "%d",
				    strlen(tenant), GN_COORD_TENANT_MAX - 1);
	if (rq->priority > 100)
		return gn_error_set(-EINVAL,
				    "place: priority %u, expected 0..100",
				    rq->priority);
	req.tenant = tenant;
	req.priority = rq->priority;
	req.device_kind = gn_place_device_bit(rq->device_kind);
	req.transport = gn_place_transport_bit(rq->transport);
	req.min_free_memory = rq->min_free_memory_bytes;
	req.model_keys = (const char *const *)rq->model_keys;
	req.n_model_keys = (uint32_t)rq->n_model_keys;
	req.policy = (enum gn_place_policy)rq->policy;
	if (rq->policy == GENIE__PLACEMENT_POLICY__PLACEMENT_POLICY_DEFAULT)
		req.policy = c->opts.policy;
	pol_name = gn_place_policy_name(req.policy);
	if (pol_name == NULL)
		return gn_error_set(-EINVAL, "place: unknown policy %d",
				    (int)rq->policy);

	/* The scratch arrays are only touched under the lock. */
	pthread_mutex_lock(&c->lock);
	for (int i = 0; i < c->nnodes; i++) {
		struct coord_node *n = &c->nodes[i];

		for (uint32_t k = 0; k < n->nkeys; k++)
			keys[i][k] = n->keys[k];
		pn[i] = (struct gn_place_node){
			.node_id = n->id,
			.state = n->state,
			.drained = n->drained,
			.breaker_open = n->breaker_open,
			.device_kinds = n->device_kinds,
			.transports = n->transports,
			.sessions = n->sessions,
			.max_sessions = c->opts.max_sessions_per_node,
			.queue_depth = n->queue_depth,
			.memory_total = n->mem_total,
			.memory_used = n->mem_used,
			.resident_keys = keys[i],
			.n_resident_keys = n->nkeys,
		};
	}
	req.tenant_sessions = tenant_sessions(c, tenant);
	/* Tenants holding sessions, the requester counted. */
	req.active_tenants = active_tenants(c) + (req.tenant_sessions ? 0 : 1);
	rc = gn_place(pn, (size_t)c->nnodes, &req, &res);
	if (rc != 0) {
		pthread_mutex_unlock(&c->lock);
		atomic_fetch_add(
			&c->failures[rc == -ENODEV ? COORD_FAIL_NO_NODE
						   : COORD_FAIL_NO_ROOM],
			1);
		return gn_error_set(rc, "place (tenant '%s', %s): %s", tenant,
				    pol_name, res.reason);
	}
	rc = grow_sessions(c);
	if (rc == 0)
		rc = tenant_add(c, tenant, 0);
	if (rc != 0)
		goto unlock;
	s = &c->sessions[c->nsessions];
	memset(s, 0, sizeof(*s));
	s->id = c->next_session;
	s->node = res.node;
	snprintf(s->tenant, sizeof(s->tenant), "%s", tenant);
	s->priority = rq->priority;
	s->created_ms = now_ms;
	{
		struct gn_state_session ss = {
			.session_id = s->id,
			.node_id = c->nodes[res.node].id,
			.tenant = s->tenant,
			.priority = s->priority,
			.created_ms = s->created_ms,
		};

		rc = gn_coord_state_begin(c->state);
		if (rc == 0)
			rc = gn_coord_state_put_session(c->state, &ss);
		if (rc == 0)
			rc = gn_coord_state_add_placement(
				c->state, s->id, ss.node_id, s->tenant,
				pol_name, res.reason, now_ms);
		if (rc == 0)
			rc = gn_coord_state_put_tenant(c->state, s->tenant,
						       req.tenant_sessions + 1,
						       1);
		if (rc == 0)
			rc = gn_coord_state_commit(c->state);
		if (rc != 0) {
			gn_coord_state_rollback(c->state);
			goto unlock;
		}
	}
	c->nsessions++;
	c->next_session++;
	c->nodes[res.node].sessions++;
	tenant_add(c, tenant, 1); /* the entry exists: cannot fail */
	rep.node_id = c->nodes[res.node].id;
	rep.address = (char *)node_address(&c->nodes[res.node], rq->transport);
	rep.session_id = s->id;
	rep.reason = res.reason;
	rc = gn_envelope_pack(GENIE__MSG_TYPE__MSG_TYPE_PLACE_REPLY, req_id,
			      &rep.base, env, env_len);
	if (rc == 0) {
		atomic_fetch_add(&c->placements[req.policy], 1);
		GN_LOG(INFO, coord, "session %llu (tenant '%s') on '%s': %s",
		       (unsigned long long)s->id, tenant, c->nodes[res.node].id,
		       res.reason);
	}
unlock:
	pthread_mutex_unlock(&c->lock);
	if (rc != 0)
		atomic_fetch_add(&c->failures[COORD_FAIL_OTHER], 1);
	return rc;
}

int coord_release(struct gn_coordinator *c, uint64_t id)
{
	size_t i;
	int rc;

	pthread_mutex_lock(&c->lock);
	for (i = 0; i < c->nsessions; i++)
		if (c->sessions[i].id == id)
			break;
	if (i == c->nsessions) {
		pthread_mutex_unlock(&c->lock);
		return gn_error_set(-ENOENT, "no session %llu",
				    (unsigned long long)id);
	}
	rc = gn_coord_state_begin(c->state);
	if (rc == 0)
		rc = gn_coord_state_del_session(c->state, id);
	if (rc == 0)
		rc = gn_coord_state_put_tenant(
			c->state, c->sessions[i].tenant,
			tenant_sessions(c, c->sessions[i].tenant) - 1, 0);
	if (rc == 0)
		rc = gn_coord_state_commit(c->state);
	if (rc != 0) {
		gn_coord_state_rollback(c->state);
		pthread_mutex_unlock(&c->lock);
		return rc;
	}
	if (c->nodes[c->sessions[i].node].sessions > 0)
		c->nodes[c->sessions[i].node].sessions--;
	tenant_add(c, c->sessions[i].tenant, -1);
	c->sessions[i] = c->sessions[--c->nsessions];
	pthread_mutex_unlock(&c->lock);
	atomic_fetch_add(&c->releases, 1);
	return 0;
}

static Genie__NodeState pb_state(const struct coord_node *n)
{
	if (n->drained && n->state == GN_PLACE_UP)
		return GENIE__NODE_STATE__NODE_STATE_DRAINED;
	switch (n->state) {
	case GN_PLACE_UP: return GENIE__NODE_STATE__NODE_STATE_UP;
	case GN_PLACE_SUSPECT: return GENIE__NODE_STATE__NODE_STATE_SUSPECT;
	default: return GENIE__NODE_STATE__NODE_STATE_DOWN;
	}
}

int coord_list_nodes(struct gn_coordinator *c, const char *only,
		     uint64_t req_id, uint8_t **env, size_t *env_len)
{
	Genie__NodeList list = GENIE__NODE_LIST__INIT;
	Genie__NodeInfo *infos = NULL, **ptrs = NULL;
	Genie__NodeLoad *loads = NULL;
	uint64_t now = gn_clock_ns();
	size_t k = 0;
	int rc = 0;

	pthread_mutex_lock(&c->lock);
	if (c->nnodes > 0) {
		infos = calloc((size_t)c->nnodes, sizeof(*infos));
		ptrs = calloc((size_t)c->nnodes, sizeof(*ptrs));
		loads = calloc((size_t)c->nnodes, sizeof(*loads));
		if (infos == NULL || ptrs == NULL || loads == NULL) {
			rc = gn_error_set(-ENOMEM, "list nodes: no memory");
			goto out;
		}
	}
	for (int i = 0; i < c->nnodes; i++) {
		struct coord_node *n = &c->nodes[i];
		Genie__NodeInfo *ni = &infos[k];
		Genie__NodeLoad *ld = &loads[k];

		if (only != NULL && strcmp(only, n->id) != 0)
			continue;
		genie__node_info__init(ni);
		genie__node_load__init(ld);
		ni->node_id = n->id;
		ni->state = pb_state(n);
		if (n->reg != NULL) {
			ni->n_devices = n->reg->n_devices;
			ni->devices = n->reg->devices;
			ni->n_data_planes = n->reg->n_data_planes;
			ni->data_planes = n->reg->data_planes;
			ni->n_labels = n->reg->n_labels;
			ni->labels =
				(Genie__NodeInfo__LabelsEntry **)n->reg->labels;
		}
		ld->active_sessions = n->active_sessions;
		ld->queue_depth = n->queue_depth;
		ld->memory_used_bytes = n->mem_used;
		ld->memory_total_bytes = n->mem_total;
		ld->device_utilization = n->utilization;
		ni->load = ld;
		ni->last_heartbeat_age_ms =
			now > n->last_hb_ns ? (now - n->last_hb_ns) / 1000000
					    : 0;
		ni->sessions = n->sessions;
		ni->breaker_open = n->breaker_open;
		ptrs[k++] = ni;
	}
	if (only != NULL && k == 0) {
		rc = gn_error_set(-ENOENT, "no node '%s'", only);
		goto out;
	}
	list.n_nodes = k;
	list.nodes = ptrs;
	rc = gn_envelope_pack(GENIE__MSG_TYPE__MSG_TYPE_NODE_LIST, req_id,
			      &list.base, env, env_len);
out:
	pthread_mutex_unlock(&c->lock);
	free(infos);
	free(ptrs);
	free(loads);
	return rc;
}

int coord_list_sessions(struct gn_coordinator *c, uint64_t req_id,
			uint8_t **env, size_t *env_len)
{
	Genie__SessionList list = GENIE__SESSION_LIST__INIT;
	Genie__SessionInfo *infos = NULL, **ptrs = NULL;
	int64_t now = wall_ms();
	int rc = 0;

	pthread_mutex_lock(&c->lock);
	if (c->nsessions > 0) {
		infos = calloc(c->nsessions, sizeof(*infos));
		ptrs = calloc(c->nsessions, sizeof(*ptrs));
		if (infos == NULL || ptrs == NULL) {
			rc = gn_error_set(-ENOMEM, "list sessions: no memory");
			goto out;
		}
	}
	for (size_t i = 0; i < c->nsessions; i++) {
		struct coord_session *s = &c->sessions[i];

		genie__session_info__init(&infos[i]);
		infos[i].session_id = s->id;
		infos[i].node_id = c->nodes[s->node].id;
		infos[i].tenant = s->tenant;
		infos[i].priority = s->priority;
		infos[i].age_ms = now > s->created_ms
					  ? (uint64_t)(now - s->created_ms)
					  : 0;
		ptrs[i] = &infos[i];
	}
	list.n_sessions = c->nsessions;
	list.sessions = ptrs;
	rc = gn_envelope_pack(GENIE__MSG_TYPE__MSG_TYPE_SESSION_LIST, req_id,
			      &list.base, env, env_len);
out:
	pthread_mutex_unlock(&c->lock);
	free(infos);
	free(ptrs);
	return rc;
}

int coord_drain(struct gn_coordinator *c, const char *node_id, bool drain)
{
	struct coord_node *n;
	int idx, rc;

	pthread_mutex_lock(&c->lock);
	idx = find_node(c, node_id);
	if (idx < 0) {
		pthread_mutex_unlock(&c->lock);
		return gn_error_set(-ENOENT, "no node '%s'", node_id);
	}
	n = &c->nodes[idx];
	rc = gn_coord_state_begin(c->state);
	if (rc == 0)
		rc = gn_coord_state_put_node(c->state, n->id, n->reg_blob,
					     n->reg_len, drain);
	if (rc == 0)
		rc = gn_coord_state_commit(c->state);
	if (rc != 0)
		gn_coord_state_rollback(c->state);
	else
		n->drained = drain;
	pthread_mutex_unlock(&c->lock);
	if (rc == 0)
		GN_LOG(NOTICE, coord, "node '%s' %s", node_id,
		       drain ? "drained: no new sessions" : "undrained");
	return rc;
}

/* State loading: nodes come back SUSPECT with a grace period. */
static int load_node(void *arg, const char *id, const uint8_t *blob, size_t len,
		     bool drained)
{
	struct gn_coordinator *c = arg;
	Genie__RegisterNode *reg;
	struct coord_node *n;
	uint8_t *copy;

	if (c->nnodes == GN_COORD_MAX_NODES)
		return gn_error_set(-ENOSPC, "state: more than %d nodes",
				    GN_COORD_MAX_NODES);
	reg = (Genie__RegisterNode *)gn_pb_unpack(
		&genie__register_node__descriptor, blob, len,
		c->opts.max_envelope);
	if (reg == NULL || check_reg(reg) != 0 || strcmp(reg->node_id, id)) {
		GN_LOG(WARNING, coord, "state: skipping node '%s': %s", id,
		       reg ? "registration names another node"
			   : gn_last_error());
		if (reg != NULL)
			protobuf_c_message_free_unpacked(&reg->base, NULL);
		return 0;
	}
	copy = malloc(len ? len : 1);
	if (copy == NULL) {
		protobuf_c_message_free_unpacked(&reg->base, NULL);
		return gn_error_set(-ENOMEM, "state: no memory");
	}
	memcpy(copy, blob, len);
	n = &c->nodes[c->nnodes++];
	memset(n, 0, sizeof(*n));
	snprintf(n->id, sizeof(n->id), "%s", id);
	gn_sketch_init(&n->lat);
	node_set_reg(n, reg, copy, len);
	n->drained = drained;
	n->restored = true;
	n->state = GN_PLACE_SUSPECT;
	/* Until then the checker counts from the end of the grace period. */
	n->last_hb_ns = gn_clock_ns() +
			(uint64_t)GN_COORD_RESTORE_GRACE_MS * 1000000ull;
	return 0;
}

static int load_session(void *arg, const struct gn_state_session *ss)
{
	struct gn_coordinator *c = arg;
	struct coord_session *s;
	int idx = find_node(c, ss->node_id);
	int rc;

	if (idx < 0) {
		GN_LOG(WARNING, coord,
		       "state: session %llu names unknown node '%s'; dropped",
		       (unsigned long long)ss->session_id, ss->node_id);
		return 0;
	}
	rc = grow_sessions(c);
	if (rc == 0)
		rc = tenant_add(c, ss->tenant, 1);
	if (rc != 0)
		return rc;
	s = &c->sessions[c->nsessions++];
	memset(s, 0, sizeof(*s));
	s->id = ss->session_id;
	s->node = idx;
	snprintf(s->tenant, sizeof(s->tenant), "%s", ss->tenant);
	s->priority = ss->priority;
	s->created_ms = ss->created_ms;
	c->nodes[idx].sessions++;
	if (s->id >= c->next_session)
		c->next_session = s->id + 1;
	return 0;
}

int coord_load_state(struct gn_coordinator *c)
{
	struct gn_state_loader ld = {
		.arg = c,
		.node = load_node,
		.session = load_session,
	};
	int64_t last;
	int rc;

	pthread_mutex_lock(&c->lock);
	rc = gn_coord_state_load(c->state, &ld);
	/* Never reuse an id, even of a session released before the restart. */
	last = gn_coord_state_last_session(c->state);
	if (rc == 0 && last < 0)
		rc = (int)last;
	if (rc == 0 && (uint64_t)last >= c->next_session)
		c->next_session = (uint64_t)last + 1;
	pthread_mutex_unlock(&c->lock);
	if (rc == 0)
		GN_LOG(NOTICE, coord,
		       "state: %d nodes (suspect until they return), %zu "
		       "sessions restored",
		       c->nnodes, c->nsessions);
	return rc;
}
