/*
 * Backend registry and selection (see backend.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "gn_error.h"
#include "log.h"

GN_LOG_REGISTER(backend)

#define MAX_BACKENDS 8

static const struct gn_backend_ops *g_backends[MAX_BACKENDS];
static int g_nbackends;

void gn_backend_register(const struct gn_backend_ops *ops)
{
	if (g_nbackends < MAX_BACKENDS)
		g_backends[g_nbackends++] = ops;
}

const struct gn_backend_ops *gn_backend_find(const char *name)
{
	for (int i = 0; i < g_nbackends; i++)
		if (strcmp(g_backends[i]->name, name) == 0)
			return g_backends[i];
	return NULL;
}

static int open_one(const struct gn_backend_ops *ops, struct gn_backend *out)
{
	void *ctx = NULL;
	int rc = ops->init(&ctx);

	if (rc != 0)
		return rc;
	out->ops = ops;
	out->ctx = ctx;
	out->host = NULL;
	GN_LOG(NOTICE, backend, "using backend %s: %s", ops->name,
	       ops->describe(ctx));
	if (ops->host_memory)
		return 0;
	/* Device memory: the cpu backend runs what the device lacks. */
	ops = gn_backend_find("cpu");
	out->host = calloc(1, sizeof(*out->host));
	if (ops == NULL || out->host == NULL || open_one(ops, out->host) != 0) {
		GN_LOG(WARNING, backend,
		       "backend %s: no cpu fallback for ops it lacks: %s",
		       out->ops->name,
		       ops ? gn_last_error() : "cpu not in this build");
		free(out->host);
		out->host = NULL;
	}
	return 0;
}

int gn_backend_open(const char *name, struct gn_backend *out)
{
	static const char *const prefer[] = {"cuda", "cpu"};
	const struct gn_backend_ops *ops;
	int rc;

	memset(out, 0, sizeof(*out));
	if (strcmp(name, "auto") != 0) {
		ops = gn_backend_find(name);
		if (ops == NULL)
			return gn_error_set(
				-ENOENT,
				"backend '%s' is not in this build "
				"(expected cpu%s or auto)",
				name, gn_backend_find("cuda") ? ", cuda" : "");
		return open_one(ops, out);
	}
	for (size_t i = 0; i < sizeof(prefer) / sizeof(prefer[0]); i++) {
		ops = gn_backend_find(prefer[i]);
		if (ops == NULL) {
			GN_LOG(INFO, backend, "backend %s: not in this build",
			       prefer[i]);
			continue;
		}
		rc = open_one(ops, out);
		if (rc == 0)
			return 0;
		GN_LOG(NOTICE, backend, "backend %s unavailable: %s", prefer[i],
		       gn_last_error());
	}
	return gn_error_set(-ENODEV, "no backend could be opened");
}

void gn_backend_close(struct gn_backend *b)
{
	if (b->host != NULL) {
		gn_backend_close(b->host);
		free(b->host);
	}
	if (b->ops != NULL)
		b->ops->fini(b->ctx);
	memset(b, 0, sizeof(*b));
}
