/*
 * Per-component logging. Components register at load time; their level is
 * resolved from GENIE_LOG on first use, so a spec set in the environment
 * applies to components registered before and after it is read.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "gn_error.h"
#include "log.h"

#define DEFAULT_LEVEL GN_LOG_LEVEL_NOTICE

static pthread_mutex_t g_log_lock = PTHREAD_MUTEX_INITIALIZER;
static struct gn_log_component *g_components;
static char g_spec[256];
static int g_spec_read;

static const char *const level_names[] = {
	[GN_LOG_LEVEL_ERR] = "err",	  [GN_LOG_LEVEL_WARNING] = "warning",
	[GN_LOG_LEVEL_NOTICE] = "notice", [GN_LOG_LEVEL_INFO] = "info",
	[GN_LOG_LEVEL_DEBUG] = "debug",
};

int gn_log_level_parse(const char *name)
{
	for (int i = GN_LOG_LEVEL_ERR; i <= GN_LOG_LEVEL_DEBUG; i++)
		if (strcasecmp(name, level_names[i]) == 0)
			return i;
	if (strcasecmp(name, "error") == 0)
		return GN_LOG_LEVEL_ERR;
	if (strcasecmp(name, "warn") == 0)
		return GN_LOG_LEVEL_WARNING;
	return gn_error_set(-EINVAL,
			    "log: unknown level '%s', expected err, warning, "
			    "notice, info or debug",
			    name);
}

/*
 * The level `spec` gives component `name`: its own "name=level" entry if
 * any (the last one), else the last "*=level" or bare "level", else the
 * default. Returns the level, or -EINVAL for a malformed spec.
 */
static int spec_level(const char *spec, const char *name)
{
	char buf[256], *save = NULL, *tok;
	int any = DEFAULT_LEVEL, own = -1;

	snprintf(buf, sizeof(buf), "%s", spec);
	for (tok = strtok_r(buf, ",", &save); tok != NULL;
	     tok = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(tok, '=');
		const char *who = "*", *lvl = tok;
		int l;

		if (eq != NULL) {
			*eq = '\0';
			who = tok;
			lvl = eq + 1;
		}
		l = gn_log_level_parse(lvl);
		if (l < 0)
			return l;
		if (strcmp(who, "*") == 0)
			any = l;
		else if (strcmp(who, name) == 0)
			own = l;
	}
	return own >= 0 ? own : any;
}

static void resolve(struct gn_log_component *c)
{
	int l;

	if (!g_spec_read) {
		const char *env = getenv("GENIE_LOG");

		snprintf(g_spec, sizeof(g_spec), "%s", env ? env : "");
		g_spec_read = 1;
	}
	l = spec_level(g_spec, c->name);
	c->level = l < 0 ? DEFAULT_LEVEL : l;
}

void gn_log_component_register(struct gn_log_component *c)
{
	pthread_mutex_lock(&g_log_lock);
	c->next = g_components;
	g_components = c;
	pthread_mutex_unlock(&g_log_lock);
}

bool gn_log_enabled(struct gn_log_component *c, int level)
{
	int l = __atomic_load_n(&c->level, __ATOMIC_RELAXED);

	if (l < 0) {
		pthread_mutex_lock(&g_log_lock);
		if (c->level < 0)
			resolve(c);
		l = c->level;
		pthread_mutex_unlock(&g_log_lock);
	}
	return level <= l;
}

int gn_log_set_levels(const char *spec)
{
	struct gn_log_component *c;
	int rc = spec_level(spec, "");

	if (rc < 0)
		return rc;
	pthread_mutex_lock(&g_log_lock);
	snprintf(g_spec, sizeof(g_spec), "%s", spec);
	g_spec_read = 1;
	for (c = g_components; c != NULL; c = c->next)
		resolve(c);
	pthread_mutex_unlock(&g_log_lock);
	return 0;
}

void gn_log_write(const struct gn_log_component *c, int level, const char *fmt,
		  ...)
{
	char line[1024];
	struct timespec ts;
	struct tm tm;
	int n;
	va_list ap;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = snprintf(line, sizeof(line),
		     "%02d:%02d:%02d.%06ld %-7s %s: ", tm.tm_hour, tm.tm_min,
		     tm.tm_sec, ts.tv_nsec / 1000, level_names[level], c->name);
	va_start(ap, fmt);
	if (n > 0 && (size_t)n < sizeof(line))
		vsnprintf(line + n, sizeof(line) - n, fmt, ap);
	va_end(ap);
	/* One write per line keeps lines from different threads whole. */
	fprintf(stderr, "%s\n", line);
}
