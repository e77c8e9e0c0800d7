/*
 * The runtime's request server.
 *
 * It listens on one transport address, takes a Hello from each client,
 * then answers ExecRequests on that connection until the client says
 * goodbye or goes away. Each connection has its own thread so a slow or
 * hostile peer stalls nobody else; execution itself is serialised on the
 * one opened backend. A connection that sends a bad frame is closed with
 * the reason logged; a request that fails (bad plan, missing input) gets an
 * ErrorReply and the connection stays open.
 */
#ifndef GN_RUNTIME_SERVER_H
#define GN_RUNTIME_SERVER_H

#include <stddef.h>
#include <stdint.h>

struct gn_server;

struct gn_server_opts {
	size_t opts_size;
	const char *listen;  /* "tcp://HOST:PORT"; port 0 picks one */
	const char *backend; /* "auto" (default), "cpu", "cuda" */
	const char *name;    /* reported in HelloAck and telemetry */
	uint32_t max_envelope;
	uint64_t max_payload;
	uint64_t memory_limit; /* device bytes the runtime may hold; 0: none */
};

void gn_server_opts_init(struct gn_server_opts *opts, size_t opts_size);

/*
 * Open the backend and start listening. Returns NULL with the error set
 * (address in use, unknown backend). Free with gn_server_destroy().
 */
struct gn_server *gn_server_create(const struct gn_server_opts *opts);

/* The bound address "HOST:PORT" (with the real port when 0 was asked). */
const char *gn_server_addr(const struct gn_server *s);

/* The backend chosen ("cpu", "cuda"). */
const char *gn_server_backend(const struct gn_server *s);

/*
 * Serve until gn_server_stop(). Returns 0 after a clean stop, once every
 * connection thread has finished, or a negative errno if the listener fails.
 */
int gn_server_run(struct gn_server *s);

/* Ask a running server to stop. Async-signal-safe. */
void gn_server_stop(struct gn_server *s);

/* Close the listener and the backend; sets *s to NULL. NULL is a no-op. */
void gn_server_destroy(struct gn_server **s);

#endif /* GN_RUNTIME_SERVER_H */
