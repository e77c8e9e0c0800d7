/*
 * The runtime's side of the control plane: registering with a
 * genie-coordinator and sending it heartbeats.
 *
 * With `genie-runtime --coordinator URL`, one thread (and only it) talks
 * to the coordinator: it connects as PEER_ROLE_RUNTIME, authenticates with
 * the shared secret, sends RegisterNode (the node id, the backend's device
 * and memory, the data-plane address clients should use), then a Heartbeat
 * every heartbeat_interval_ms the coordinator asked for, carrying the
 * node's load, the server's telemetry, each plan's execution time since
 * the last heartbeat (gn_server_take_latencies()) and the content keys of
 * the shared resident blocks (gn_server_resident_keys(), for
 * model-affinity placement). Over TLS when given a CA or a client
 * certificate (gn_coord_connect_tls()). When the coordinator goes away
 * the thread reconnects with backoff (1 s doubling to 10 s) and registers
 * again, so a restarted coordinator learns its nodes back by itself.
 *
 * The thread reads only counters and the worker's snapshot
 * (gn_server_telemetry() and the two above), never the registry, so it
 * never waits behind a plan and never
 * blocks the data path; a coordinator that is slow or gone costs the
 * runtime nothing but this thread's time.
 */
#ifndef GN_RUNTIME_COORD_CLIENT_H
#define GN_RUNTIME_COORD_CLIENT_H

#include <stddef.h>
#include <stdint.h>

struct gn_server;
struct gn_coord_client;

struct gn_coord_client_opts {
	size_t opts_size;
	const char *coordinator; /* "HOST:PORT" or "tcp://HOST:PORT" */
	const char *secret_file; /* NULL: $GENIE_SECRET_FILE, else none */
	const char *node_id;	 /* NULL: "<hostname>-<port>" */
	/* Target clients should connect to; NULL: the listen address. */
	const char *advertise;
	uint64_t memory_bytes; /* device memory to report; 0: host RAM */
	/*
	 * TLS to the coordinator (PEM files; NULL: $GENIE_TLS_CA,
	 * $GENIE_TLS_CERT, $GENIE_TLS_KEY, else plain TCP): the CA that
	 * signed the coordinator's certificate, and our client certificate.
	 */
	const char *tls_ca;
	const char *tls_cert;
	const char *tls_key;
	/* "KEY=VALUE" labels sent in RegisterNode (copied; at most 32). */
	const char *const *labels;
	int n_labels;
};

void gn_coord_client_opts_init(struct gn_coord_client_opts *opts,
			       size_t opts_size);

/*
 * Start the registration thread for `srv`, which must outlive it. Returns
 * NULL with the error set when the options are wrong (bad address, the
 * secret file cannot be read): the caller should refuse to start. A
 * coordinator that cannot be reached is not an error: the thread keeps
 * trying and logs why.
 */
struct gn_coord_client *
gn_coord_client_start(struct gn_server *srv,
		      const struct gn_coord_client_opts *opts);

/*
 * Stop the thread (a heartbeat in flight is cut short), join it and free
 * everything; sets *c to NULL. NULL is a no-op. Not async-signal-safe:
 * call it after gn_server_run() returned.
 */
void gn_coord_client_stop(struct gn_coord_client **c);

#endif /* GN_RUNTIME_COORD_CLIENT_H */
