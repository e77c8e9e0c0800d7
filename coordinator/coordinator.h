/*
 * genie-coordinator: the control plane that knows every runtime.
 *
 * Runtimes connect, authenticate with the shared secret, REGISTER and then
 * HEARTBEAT with their load and telemetry; clients authenticate and ask
 * for a runtime with PLACE; genie-ctl lists, describes and drains. A
 * checker thread marks a runtime SUSPECT after one missed heartbeat
 * interval and DOWN after three (ending its sessions), and opens a circuit
 * breaker on a runtime that flaps. Everything that must survive a restart
 * is written to SQLite on every change (state.h); /metrics, /healthz and
 * /readyz are served over HTTP by libmicrohttpd (http.c).
 *
 * Threads: the accept loop (gn_coordinator_run), one thread per connection, the
 * health checker, and libmicrohttpd's pool. Shared state sits behind one
 * lock (coord_internal.h).
 */
#ifndef GN_COORD_COORDINATOR_H
#define GN_COORD_COORDINATOR_H

#include <stddef.h>
#include <stdint.h>

#include "placement.h"

struct gn_coordinator_opts {
	size_t opts_size;
	const char *listen;	 /* "tcp://HOST:PORT" */
	const char *http;	 /* "HOST:PORT"; NULL: no HTTP endpoint */
	const char *state_path;	 /* SQLite file */
	const char *secret_path; /* shared secret file */
	const char *name;	 /* reported in CoordHelloAck */
	uint32_t heartbeat_ms;	 /* interval runtimes are told to keep */
	enum gn_place_policy policy;
	uint32_t max_sessions_per_node; /* 0: no limit */
	uint32_t max_envelope;		/* largest control message accepted */
	/*
	 * TLS (PEM files; NULL: none). With tls_cert and tls_key the control
	 * listener speaks TLS ("tls" transport, whatever scheme `listen`
	 * names); with tls_ca as well every peer must present a client
	 * certificate that chains to it, and one that does not is refused
	 * before the secret handshake. The secret handshake still runs
	 * inside TLS.
	 */
	const char *tls_cert;
	const char *tls_key;
	const char *tls_ca;
};

void gn_coordinator_opts_init(struct gn_coordinator_opts *opts,
			      size_t opts_size);

/*
 * Load the secret and the state, start listening (control and HTTP) and the
 * health checker. Returns the coordinator, or NULL with the error set
 * (naming the file or address that failed). Free with gn_coordinator_destroy().
 */
struct gn_coordinator *
gn_coordinator_create(const struct gn_coordinator_opts *opts);

/* The bound control address "HOST:PORT"; the bound HTTP port or 0. */
const char *gn_coordinator_addr(const struct gn_coordinator *c);
int gn_coordinator_http_port(const struct gn_coordinator *c);

/* Serve until gn_coordinator_stop(); joins every connection before returning.
 * 0, or a negative errno when the listener failed. */
int gn_coordinator_run(struct gn_coordinator *c);

/* Ask gn_coordinator_run() to return; async-signal-safe. */
void gn_coordinator_stop(struct gn_coordinator *c);

/* Stop everything and free; NULLs *c. NULL is a no-op. */
void gn_coordinator_destroy(struct gn_coordinator **c);

#endif /* GN_COORD_COORDINATOR_H */
