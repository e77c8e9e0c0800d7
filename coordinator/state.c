/* SQLite state store (see state.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "gn_error.h"
#include "state.h"

enum {
	ST_BEGIN,
	ST_COMMIT,
	ST_ROLLBACK,
	ST_PUT_NODE,
	ST_PUT_SESSION,
	ST_DEL_SESSION,
	ST_ADD_PLACEMENT,
	ST_PUT_TENANT,
	ST_LOAD_NODES,
	ST_LOAD_SESSIONS,
	ST_COUNT_PLACEMENTS,
	ST_LAST_SESSION,
	ST_N,
};

static const char *const k_sql[ST_N] = {
	[ST_BEGIN] = "BEGIN IMMEDIATE",
	[ST_COMMIT] = "COMMIT",
	[ST_ROLLBACK] = "ROLLBACK",
	[ST_PUT_NODE] = "INSERT INTO nodes(node_id, registration, drained) "
			"VALUES(?1, ?2, ?3) ON CONFLICT(node_id) DO UPDATE "
			"SET registration = ?2, drained = ?3",
	[ST_PUT_SESSION] = "INSERT OR REPLACE INTO sessions(session_id, "
			   "node_id, tenant, priority, created_ms) "
			   "VALUES(?1, ?2, ?3, ?4, ?5)",
	[ST_DEL_SESSION] = "DELETE FROM sessions WHERE session_id = ?1",
	[ST_ADD_PLACEMENT] = "INSERT INTO placements(session_id, node_id, "
			     "tenant, policy, reason, at_ms) "
			     "VALUES(?1, ?2, ?3, ?4, ?5, ?6)",
	[ST_PUT_TENANT] = "INSERT INTO tenants(tenant, sessions, "
			  "placements_total) VALUES(?1, ?2, ?3) "
			  "ON CONFLICT(tenant) DO UPDATE SET sessions = ?2, "
			  "placements_total = placements_total + ?3",
	[ST_LOAD_NODES] = "SELECT node_id, registration, drained FROM nodes "
			  "ORDER BY node_id",
	[ST_LOAD_SESSIONS] = "SELECT session_id, node_id, tenant, priority, "
			     "created_ms FROM sessions ORDER BY session_id",
	[ST_COUNT_PLACEMENTS] = "SELECT count(*) FROM placements",
	[ST_LAST_SESSION] = "SELECT max(coalesce((SELECT max(session_id) "
			    "FROM placements), 0), coalesce((SELECT "
			    "max(session_id) FROM sessions), 0))",
};

static const char k_schema[] =
	"PRAGMA journal_mode = WAL;"
	"PRAGMA synchronous = NORMAL;"
	"CREATE TABLE IF NOT EXISTS nodes("
	"  node_id TEXT PRIMARY KEY, registration BLOB NOT NULL,"
	"  drained INTEGER NOT NULL DEFAULT 0);"
	"CREATE TABLE IF NOT EXISTS sessions("
	"  session_id INTEGER PRIMARY KEY, node_id TEXT NOT NULL,"
	"  tenant TEXT NOT NULL, priority INTEGER NOT NULL,"
	"  created_ms INTEGER NOT NULL);"
	"CREATE TABLE IF NOT EXISTS placements("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT, session_id INTEGER NOT NULL,"
	"  node_id TEXT NOT NULL, tenant TEXT NOT NULL, policy TEXT NOT NULL,"
	"  reason TEXT NOT NULL, at_ms INTEGER NOT NULL);"
	"CREATE TABLE IF NOT EXISTS tenants("
	"  tenant TEXT PRIMARY KEY, sessions INTEGER NOT NULL,"
	"  placements_total INTEGER NOT NULL);";

struct gn_coord_state {
	sqlite3 *db;
	sqlite3_stmt *st[ST_N];
};

static int db_error(struct gn_coord_state *s, const char *what)
{
	return gn_error_set(-EIO, "state: %s: %s", what, sqlite3_errmsg(s->db));
}

int gn_coord_state_open(const char *path, struct gn_coord_state **out)
{
	struct gn_coord_state *s = calloc(1, sizeof(*s));
	char *err = NULL;
	int rc;

	*out = NULL;
	if (s == NULL)
		return gn_error_set(-ENOMEM, "state: no memory");
	if (sqlite3_open_v2(path, &s->db,
			    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
				    SQLITE_OPEN_FULLMUTEX,
			    NULL) != SQLITE_OK) {
		rc = gn_error_set(-EIO, "state: cannot open '%s': %s", path,
				  s->db ? sqlite3_errmsg(s->db) : "no memory");
		goto fail;
	}
	sqlite3_busy_timeout(s->db, 5000);
	if (sqlite3_exec(s->db, k_schema, NULL, NULL, &err) != SQLITE_OK) {
		rc = gn_error_set(-EIO, "state: '%s' schema: %s", path,
				  err ? err : "?");
		sqlite3_free(err);
		goto fail;
	}
	for (int i = 0; i < ST_N; i++) {
		if (sqlite3_prepare_v2(s->db, k_sql[i], -1, &s->st[i], NULL) !=
		    SQLITE_OK) {
			rc = db_error(s, k_sql[i]);
			goto fail;
		}
	}
	*out = s;
	return 0;
fail:
	gn_coord_state_close(&s);
	return rc;
}

void gn_coord_state_close(struct gn_coord_state **sp)
{
	struct gn_coord_state *s;

	if (sp == NULL || *sp == NULL)
		return;
	s = *sp;
	for (int i = 0; i < ST_N; i++)
		sqlite3_finalize(s->st[i]);
	sqlite3_close(s->db);
	free(s);
	*sp = NULL;
}

/* Run a statement whose parameters are bound; expects no rows. */
static int step_done(struct gn_coord_state *s, int which)
{
	sqlite3_stmt *st = s->st[which];
	int rc = sqlite3_step(st);

	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	if (rc != SQLITE_DONE)
		return db_error(s, k_sql[which]);
	return 0;
}

int gn_coord_state_begin(struct gn_coord_state *s)
{
	return step_done(s, ST_BEGIN);
}

int gn_coord_state_commit(struct gn_coord_state *s)
{
	return step_done(s, ST_COMMIT);
}

void gn_coord_state_rollback(struct gn_coord_state *s)
{
	if (!sqlite3_get_autocommit(s->db))
		step_done(s, ST_ROLLBACK);
}

int gn_coord_state_put_node(struct gn_coord_state *s, const char *node_id,
			    const uint8_t *reg, size_t reg_len, bool drained)
{
	sqlite3_stmt *st = s->st[ST_PUT_NODE];

	sqlite3_bind_text(st, 1, node_id, -1, SQLITE_STATIC);
	sqlite3_bind_blob(st, 2, reg_len ? reg : (const void *)"", (int)reg_len,
			  SQLITE_STATIC);
	sqlite3_bind_int(st, 3, drained);
	return step_done(s, ST_PUT_NODE);
}

int gn_coord_state_put_session(struct gn_coord_state *s,
			       const struct gn_state_session *ss)
{
	sqlite3_stmt *st = s->st[ST_PUT_SESSION];

	sqlite3_bind_int64(st, 1, (sqlite3_int64)ss->session_id);
	sqlite3_bind_text(st, 2, ss->node_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, ss->tenant, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 4, (int)ss->priority);
	sqlite3_bind_int64(st, 5, ss->created_ms);
	return step_done(s, ST_PUT_SESSION);
}

int gn_coord_state_del_session(struct gn_coord_state *s, uint64_t id)
{
	sqlite3_bind_int64(s->st[ST_DEL_SESSION], 1, (sqlite3_int64)id);
	return step_done(s, ST_DEL_SESSION);
}

int gn_coord_state_add_placement(struct gn_coord_state *s, uint64_t session_id,
				 const char *node_id, const char *tenant,
				 const char *policy, const char *reason,
				 int64_t at_ms)
{
	sqlite3_stmt *st = s->st[ST_ADD_PLACEMENT];

	sqlite3_bind_int64(st, 1, (sqlite3_int64)session_id);
	sqlite3_bind_text(st, 2, node_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, tenant, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, policy, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, reason, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 6, at_ms);
	return step_done(s, ST_ADD_PLACEMENT);
}

int gn_coord_state_put_tenant(struct gn_coord_state *s, const char *tenant,
			      uint32_t sessions, uint32_t placed)
{
	sqlite3_stmt *st = s->st[ST_PUT_TENANT];

	sqlite3_bind_text(st, 1, tenant, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, sessions);
	sqlite3_bind_int64(st, 3, placed);
	return step_done(s, ST_PUT_TENANT);
}

int gn_coord_state_load(struct gn_coord_state *s,
			const struct gn_state_loader *ld)
{
	sqlite3_stmt *st = s->st[ST_LOAD_NODES];
	int rc = 0, r;

	while ((r = sqlite3_step(st)) == SQLITE_ROW && rc == 0) {
		const char *id = (const char *)sqlite3_column_text(st, 0);
		const uint8_t *reg = sqlite3_column_blob(st, 1);
		int len = sqlite3_column_bytes(st, 1);

		if (ld->node != NULL)
			rc = ld->node(ld->arg, id ? id : "", reg, (size_t)len,
				      sqlite3_column_int(st, 2) != 0);
	}
	if (rc == 0 && r != SQLITE_DONE && r != SQLITE_ROW)
		rc = db_error(s, "loading nodes");
	sqlite3_reset(st);
	if (rc != 0)
		return rc;
	st = s->st[ST_LOAD_SESSIONS];
	while ((r = sqlite3_step(st)) == SQLITE_ROW && rc == 0) {
		struct gn_state_session ss;
		const char *node = (const char *)sqlite3_column_text(st, 1);
		const char *tenant = (const char *)sqlite3_column_text(st, 2);

		ss.session_id = (uint64_t)sqlite3_column_int64(st, 0);
		ss.node_id = node ? node : "";
		ss.tenant = tenant ? tenant : "";
		ss.priority = (uint32_t)sqlite3_column_int(st, 3);
		ss.created_ms = sqlite3_column_int64(st, 4);
		if (ld->session != NULL)
			rc = ld->session(ld->arg, &ss);
	}
	if (rc == 0 && r != SQLITE_DONE && r != SQLITE_ROW)
		rc = db_error(s, "loading sessions");
	sqlite3_reset(st);
	return rc;
}

int64_t gn_coord_state_placements(struct gn_coord_state *s)
{
	sqlite3_stmt *st = s->st[ST_COUNT_PLACEMENTS];
	int64_t n = -EIO;

	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	return n;
}

int64_t gn_coord_state_last_session(struct gn_coord_state *s)
{
	sqlite3_stmt *st = s->st[ST_LAST_SESSION];
	int64_t n = -EIO;

	if (sqlite3_step(st) == SQLITE_ROW)
		n = sqlite3_column_int64(st, 0);
	else
		db_error(s, "last session id");
	sqlite3_reset(st);
	return n;
}
