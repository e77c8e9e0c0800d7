/*
 * Transport registry and the dispatching wrappers every caller uses.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "gn_error.h"
#include "gpu_mem.h"
#include "log.h"
#include "transport.h"

GN_LOG_REGISTER(transport)

#define MAX_TRANSPORTS 8

static const struct gn_transport_ops *g_transports[MAX_TRANSPORTS];
static int g_ntransports;

void gn_transport_register(const struct gn_transport_ops *ops)
{
	/* Runs from constructors, before main and before any thread. */
	if (g_ntransports < MAX_TRANSPORTS)
		g_transports[g_ntransports++] = ops;
}

const struct gn_transport_ops *gn_transport_find(const char *name)
{
	for (int i = 0; i < g_ntransports; i++)
		if (strcmp(g_transports[i]->name, name) == 0)
			return g_transports[i];
	return NULL;
}

void gn_transport_opts_init(struct gn_transport_opts *opts, size_t opts_size)
{
	struct gn_transport_opts d = {
		.opts_size = opts_size,
		.limits = {GN_DEFAULT_MAX_ENVELOPE, GN_DEFAULT_MAX_PAYLOAD},
	};

	memcpy(opts, &d, opts_size < sizeof(d) ? opts_size : sizeof(d));
}

int gn_transport_resolve(const char *url, const struct gn_transport_ops **ops,
			 const char **rest)
{
	const char *sep = strstr(url, "://");
	char scheme[16], known[128] = "";
	size_t n;

	if (sep == NULL || sep == url)
		return gn_error_set(-EINVAL,
				    "address '%s': expected SCHEME://HOST:PORT",
				    url);
	n = (size_t)(sep - url);
	if (n >= sizeof(scheme))
		return gn_error_set(-EPROTONOSUPPORT,
				    "address '%s': scheme too long", url);
	memcpy(scheme, url, n);
	scheme[n] = '\0';
	*ops = gn_transport_find(scheme);
	if (*ops == NULL) {
		for (int i = 0; i < g_ntransports; i++) {
			size_t k = strlen(known);

			snprintf(known + k, sizeof(known) - k, "%s%s",
				 i ? ", " : "", g_transports[i]->name);
		}
		return gn_error_set(-EPROTONOSUPPORT,
				    "address '%s': unknown transport '%s', "
				    "this build has: %s",
				    url, scheme, known);
	}
	*rest = sep + 3;
	return 0;
}

int gn_addr_split(const char *addr, char *host, size_t host_len, uint16_t *port)
{
	const char *colon = strrchr(addr, ':');
	char *end;
	unsigned long p;
	size_t n;

	if (colon == NULL || colon == addr || colon[1] == '\0')
		return gn_error_set(-EINVAL, "address '%s': expected HOST:PORT",
				    addr);
	n = (size_t)(colon - addr);
	if (n >= host_len)
		return gn_error_set(-EINVAL, "address '%s': host too long",
				    addr);
	errno = 0;
	p = strtoul(colon + 1, &end, 10);
	/* strtoul would also take " 80", "+80" and "-1": only digits do. */
	if (colon[1] < '0' || colon[1] > '9' || *end != '\0' || errno != 0 ||
	    p > 65535)
		return gn_error_set(-EINVAL,
				    "address '%s': port '%s' is not a number "
				    "in 0..65535",
				    addr, colon + 1);
	memcpy(host, addr, n);
	host[n] = '\0';
	*port = (uint16_t)p;
	return 0;
}

/* Buffers carry their capacity in a header before the bytes handed out. */
#define BUF_HDR 64
#define BUF_CACHE_MIN (1u << 20)
#define BUF_CACHE_SLOTS 2

static pthread_mutex_t g_buf_lock = PTHREAD_MUTEX_INITIALIZER;
static uint8_t *g_buf_cache[BUF_CACHE_SLOTS]; /* bases, header first */

static size_t buf_cap(const uint8_t *base)
{
	size_t cap;

	memcpy(&cap, base, sizeof(cap));
	return cap;
}

void *gn_msg_buf_alloc(size_t len)
{
	uint8_t *base = NULL;

	if (len > SIZE_MAX - BUF_HDR)
		return NULL;
	if (len >= BUF_CACHE_MIN) {
		pthread_mutex_lock(&g_buf_lock);
		for (int i = 0; i < BUF_CACHE_SLOTS && base == NULL; i++)
			if (g_buf_cache[i] != NULL &&
			    buf_cap(g_buf_cache[i]) >= len &&
			    buf_cap(g_buf_cache[i]) / 2 <= len) {
				base = g_buf_cache[i];
				g_buf_cache[i] = NULL;
			}
		pthread_mutex_unlock(&g_buf_lock);
	}
	if (base == NULL) {
		base = malloc(BUF_HDR + len);
		if (base == NULL)
			return NULL;
		memcpy(base, &len, sizeof(len));
		if (len >= BUF_CACHE_MIN) {
			uintptr_t a =
				((uintptr_t)base + 4095) & ~(uintptr_t)4095;
			uintptr_t end = ((uintptr_t)base + BUF_HDR + len) &
					~(uintptr_t)4095;

			if (end > a)
				(void)madvise((void *)a, end - a,
					      MADV_POPULATE_WRITE);
		}
	}
	return base + BUF_HDR;
}

void gn_msg_buf_free(void *buf)
{
	uint8_t *base;

	if (buf == NULL)
		return;
	base = (uint8_t *)buf - BUF_HDR;
	if (buf_cap(base) >= BUF_CACHE_MIN) {
		int slot = -1;

		/* An empty slot, else the smallest buffer if smaller. */
		pthread_mutex_lock(&g_buf_lock);
		for (int i = 0; i < BUF_CACHE_SLOTS; i++)
			if (g_buf_cache[i] == NULL ||
			    (slot >= 0 && g_buf_cache[slot] != NULL &&
			     buf_cap(g_buf_cache[i]) <
				     buf_cap(g_buf_cache[slot])) ||
			    (slot < 0 &&
			     buf_cap(g_buf_cache[i]) < buf_cap(base)))
				slot = i;
		if (slot >= 0) {
			uint8_t *old = g_buf_cache[slot];

			g_buf_cache[slot] = base;
			base = old;
		}
		pthread_mutex_unlock(&g_buf_lock);
	}
	free(base);
}

void gn_msg_release(struct gn_msg *msg)
{
	if (msg->placed != NULL)
		msg->placer->unplace(msg->placer->arg, msg->placed);
	gn_msg_buf_free(msg->buf);
	memset(msg, 0, sizeof(*msg));
}

void *gn_msg_take_placed(struct gn_msg *msg)
{
	void *p = msg->placed;

	msg->placed = NULL;
	return p;
}

void gn_conn_set_placement(struct gn_conn *c, const struct gn_placement *p)
{
	/* Read from transport threads (dpdk's engine): published whole. */
	__atomic_store_n(&c->placement, p, __ATOMIC_RELEASE);
}

void *gn_conn_place(const struct gn_conn *c, const uint8_t *env, size_t env_len,
		    size_t payload_len, const struct gn_placement **placer)
{
	const struct gn_placement *p =
		__atomic_load_n(&c->placement, __ATOMIC_ACQUIRE);
	void *buf;

	*placer = NULL;
	if (p == NULL || payload_len == 0)
		return NULL;
	buf = p->place(p->arg, c, env, env_len, payload_len);
	if (buf != NULL && gn_gpu_mem_enabled() &&
	    !gn_conn_takes_gpu_memory(c) &&
	    gn_mem_kind_of(buf) != GN_MEM_HOST) {
		/* A placement that ignored the rule: give it back, not crash.
		 */
		GN_LOG(WARNING, transport,
		       "%s: placement gave GPU memory for a %zu-byte payload; "
		       "the %s transport writes host memory only, so it goes "
		       "into a message buffer",
		       c->peer, payload_len, c->ops->name);
		p->unplace(p->arg, buf);
		buf = NULL;
	}
	if (buf != NULL)
		*placer = p;
	return buf;
}

/*
 * The caller's options completed with defaults for whatever its struct
 * lacks (a NULL `opts`, or an older, shorter struct).
 */
static void full_opts(const struct gn_transport_opts *opts,
		      struct gn_transport_opts *out)
{
	gn_transport_opts_init(out, sizeof(*out));
	if (opts != NULL)
		memcpy(out, opts,
		       opts->opts_size < sizeof(*out) ? opts->opts_size
						      : sizeof(*out));
	out->opts_size = sizeof(*out);
}

int gn_listen(const char *url, const struct gn_transport_opts *opts,
	      struct gn_listener **out)
{
	const struct gn_transport_ops *ops;
	struct gn_transport_opts o;
	const char *rest;
	int rc = gn_transport_resolve(url, &ops, &rest);

	full_opts(opts, &o);
	return rc ? rc : ops->listen(rest, &o, out);
}

int gn_connect(const char *url, const struct gn_transport_opts *opts,
	       int timeout_ms, struct gn_conn **out)
{
	const struct gn_transport_ops *ops;
	struct gn_transport_opts o;
	const char *rest;
	int rc = gn_transport_resolve(url, &ops, &rest);

	full_opts(opts, &o);
	return rc ? rc : ops->connect(rest, &o, timeout_ms, out);
}

int gn_conn_takes_gpu_memory(const struct gn_conn *c)
{
	return (c->ops->caps & GN_TRANSPORT_CAP_GPU_MEMORY) != 0;
}

int gn_conn_send(struct gn_conn *c, const uint8_t *env, size_t env_len,
		 const struct iovec *payload, int iovcnt, int timeout_ms)
{
	if (gn_gpu_mem_enabled() && !gn_conn_takes_gpu_memory(c))
		for (int i = 0; i < iovcnt && payload != NULL; i++)
			if (payload[i].iov_len > 0 &&
			    gn_mem_kind_of(payload[i].iov_base) != GN_MEM_HOST)
				return gn_error_set(
					-EINVAL,
					"%s: payload piece %d (%zu bytes) is "
					"GPU memory; the %s transport sends "
					"host memory only (verbs takes GPU "
					"memory)",
					c->peer, i, payload[i].iov_len,
					c->ops->name);
	return c->ops->send(c, env, env_len, payload, iovcnt, timeout_ms);
}

int gn_conn_recv(struct gn_conn *c, struct gn_msg *msg, int timeout_ms)
{
	return c->ops->recv(c, msg, timeout_ms);
}

void gn_conn_close(struct gn_conn **c)
{
	if (c == NULL || *c == NULL)
		return;
	(*c)->ops->close(*c);
	*c = NULL;
}

void gn_listener_close(struct gn_listener **l)
{
	if (l == NULL || *l == NULL)
		return;
	(*l)->ops->listener_close(*l);
	*l = NULL;
}
