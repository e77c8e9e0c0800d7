/*
 * The coordinator's durable state in SQLite.
 *
 * Four tables: nodes (each runtime's last RegisterNode, packed, and its
 * drain flag), sessions (placed and not yet released or ended), placements
 * (an append-only log of decisions) and tenants (sessions held and
 * placements made per tenant). The database runs in WAL mode; every
 * statement is prepared once at open. Callers group the writes of one
 * change between gn_coord_state_begin() and gn_coord_state_commit() so a
 * crash leaves either all or none of them. On start the coordinator reads
 * everything back with gn_coord_state_load().
 *
 * Not thread-safe: the coordinator calls it under its registry lock.
 */
#ifndef GN_COORD_STATE_H
#define GN_COORD_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct gn_coord_state;

struct gn_state_session {
	uint64_t session_id;
	const char *node_id;
	const char *tenant;
	uint32_t priority;
	int64_t created_ms; /* wall clock, ms since the epoch */
};

/*
 * Open (creating if needed) the database at `path`. Returns 0 with *out
 * set, or -EIO naming the file and SQLite's message. Free with
 * gn_coord_state_close().
 */
int gn_coord_state_open(const char *path, struct gn_coord_state **out);

/* Close and free; NULLs *st. NULL is a no-op. */
void gn_coord_state_close(struct gn_coord_state **st);

/* Transactions around one change. 0 or -EIO. */
int gn_coord_state_begin(struct gn_coord_state *st);
int gn_coord_state_commit(struct gn_coord_state *st);
void gn_coord_state_rollback(struct gn_coord_state *st);

/* Insert or replace a node: its packed RegisterNode and drain flag. */
int gn_coord_state_put_node(struct gn_coord_state *st, const char *node_id,
			    const uint8_t *reg, size_t reg_len, bool drained);
int gn_coord_state_put_session(struct gn_coord_state *st,
			       const struct gn_state_session *s);
int gn_coord_state_del_session(struct gn_coord_state *st, uint64_t id);
int gn_coord_state_add_placement(struct gn_coord_state *st, uint64_t session_id,
				 const char *node_id, const char *tenant,
				 const char *policy, const char *reason,
				 int64_t at_ms);
/* Set a tenant's session count and add `placed` to its placements. */
int gn_coord_state_put_tenant(struct gn_coord_state *st, const char *tenant,
			      uint32_t sessions, uint32_t placed);

struct gn_state_loader {
	void *arg;
	/* Each returns 0, or a negative errno that stops the load. */
	int (*node)(void *arg, const char *node_id, const uint8_t *reg,
		    size_t reg_len, bool drained);
	int (*session)(void *arg, const struct gn_state_session *s);
};

/* Call the loader for every node, then every session. 0 or -EIO. */
int gn_coord_state_load(struct gn_coord_state *st,
			const struct gn_state_loader *ld);

/* Placements logged so far (for tests and genie-ctl). -EIO on error. */
int64_t gn_coord_state_placements(struct gn_coord_state *st);

/* The largest session id ever placed (0 when none); -EIO on error. */
int64_t gn_coord_state_last_session(struct gn_coord_state *st);

#endif /* GN_COORD_STATE_H */
