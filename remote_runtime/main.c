/*
 * genie-runtime: the daemon on each accelerator host. Parses options,
 * starts the server, and stops it cleanly on SIGTERM or SIGINT.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coord_client.h"
#include "coord_conn.h"
#include "gn_error.h"
#include "log.h"
#include "server.h"

static struct gn_server *g_server;

static void on_signal(int sig)
{
	(void)sig;
	if (g_server != NULL)
		gn_server_stop(g_server);
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: genie-runtime [options]\n"
		"  --listen URL      where to listen (default "
		"tcp://127.0.0.1:7070;\n"
		"                    port 0 picks a free one); repeat it to "
		"serve\n"
		"                    several at once, e.g. tcp:// and "
		"dpdk://memif:SOCK\n"
		"  --backend NAME    auto (default: cuda if a GPU is visible, "
		"else cpu),\n"
		"                    cpu or cuda\n"
		"  --name NAME       name reported to clients (default "
		"genie-runtime)\n"
		"  --max-frame BYTES largest message accepted (default 1 GiB)\n"
		"  --memory-limit BYTES  device memory the runtime may hold\n"
		"                    (default: no limit); a plan that needs "
		"more\n"
		"                    is refused with a clear error\n"
		"  --threads N       kernel threads of the cpu backend "
		"(default: one\n"
		"                    per online CPU; network and worker "
		"threads\n"
		"                    come on top)\n"
		"  --port-file FILE  write the bound port to FILE once "
		"listening\n"
		"  --log SPEC        log levels, e.g. info or "
		"runtime=debug,*=notice\n"
		"  --coordinator URL register with genie-coordinator at "
		"HOST:PORT and\n"
		"                    send it heartbeats (default: none)\n"
		"  --secret FILE     shared secret for the coordinator "
		"(default:\n"
		"                    $GENIE_SECRET_FILE)\n"
		"  --node-id ID      this node's stable id at the coordinator\n"
		"                    (default: HOSTNAME-PORT)\n"
		"  --advertise TARGET  data-plane target clients should use\n"
		"                    instead of the listener of its scheme\n"
		"                    (default: the listen addresses)\n"
		"  --tls-ca FILE     talk TLS to the coordinator, verifying it "
		"against\n"
		"                    this CA (default: $GENIE_TLS_CA)\n"
		"  --tls-cert FILE   our client certificate (default: "
		"$GENIE_TLS_CERT)\n"
		"  --tls-key FILE    its key (default: $GENIE_TLS_KEY)\n"
		"  --label KEY=VALUE a label for the coordinator (repeatable, "
		"at most 32)\n"
		"  --no-placement    uploads land in message buffers and are "
		"copied\n"
		"                    into tensor memory (default: large ones "
		"are\n"
		"                    written in place; for comparison)\n"
		"  -h, --help        this text\n");
}

static int parse_u64(const char *opt, const char *s, uint64_t *out,
		     const char *what)
{
	char *end;

	errno = 0;
	*out = strtoull(s, &end, 0);
	if (errno != 0 || *end != '\0' || *s == '-') {
		fprintf(stderr, "genie-runtime: %s expects %s, got '%s'\n", opt,
			what, s);
		return -EINVAL;
	}
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"listen", required_argument, NULL, 'l'},
		{"backend", required_argument, NULL, 'b'},
		{"name", required_argument, NULL, 'n'},
		{"max-frame", required_argument, NULL, 'm'},
		{"port-file", required_argument, NULL, 'p'},
		{"memory-limit", required_argument, NULL, 'M'},
		{"threads", required_argument, NULL, 't'},
		{"log", required_argument, NULL, 'L'},
		{"coordinator", required_argument, NULL, 'C'},
		{"secret", required_argument, NULL, 'S'},
		{"node-id", required_argument, NULL, 'N'},
		{"advertise", required_argument, NULL, 'A'},
		{"tls-ca", required_argument, NULL, 256},
		{"tls-cert", required_argument, NULL, 257},
		{"tls-key", required_argument, NULL, 258},
		{"label", required_argument, NULL, 259},
		{"no-placement", no_argument, NULL, 260},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct gn_server_opts opts;
	struct gn_coord_client_opts co;
	struct gn_coord_client *coord = NULL;
	const char *labels[32];
	int n_labels = 0;
	const char *port_file = NULL;
	const char *listens[GN_SERVER_MAX_LISTENERS];
	char urls[GN_SERVER_MAX_LISTENERS][256];
	int n_listens = 0;
	char threads[24];
	struct sigaction sa;
	uint64_t v;
	int c, rc;

	gn_server_opts_init(&opts, sizeof(opts));
	gn_coord_client_opts_init(&co, sizeof(co));
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'l':
			if (n_listens == GN_SERVER_MAX_LISTENERS) {
				fprintf(stderr,
					"genie-runtime: --listen given more "
					"than %d times\n",
					GN_SERVER_MAX_LISTENERS);
				return 2;
			}
			listens[n_listens++] = optarg;
			break;
		case 'b': opts.backend = optarg; break;
		case 'n': opts.name = optarg; break;
		case 'm':
			if (parse_u64("--max-frame", optarg, &v,
				      "a byte count") != 0)
				return 2;
			opts.max_payload = v;
			break;
		case 'p': port_file = optarg; break;
		case 'M':
			if (parse_u64("--memory-limit", optarg, &v,
				      "a byte count") != 0)
				return 2;
			opts.memory_limit = v;
			break;
		case 't':
			if (parse_u64("--threads", optarg, &v,
				      "a thread count") != 0)
				return 2;
			if (v < 1 || v > 4096) {
				fprintf(stderr,
					"genie-runtime: --threads expects "
					"1..4096, got '%s'\n",
					optarg);
				return 2;
			}
			/* The cpu backend reads it when it opens. */
			snprintf(threads, sizeof(threads), "%llu",
				 (unsigned long long)v);
			setenv("GENIE_CPU_THREADS", threads, 1);
			break;
		case 'L':
			if (gn_log_set_levels(optarg) != 0) {
				fprintf(stderr, "genie-runtime: --log: %s\n",
					gn_last_error());
				return 2;
			}
			break;
		case 'C': co.coordinator = optarg; break;
		case 'S': co.secret_file = optarg; break;
		case 'N': co.node_id = optarg; break;
		case 'A': co.advertise = optarg; break;
		case 256: co.tls_ca = optarg; break;
		case 257: co.tls_cert = optarg; break;
		case 258: co.tls_key = optarg; break;
		case 260: opts.no_placement = 1; break;
		case 259:
			if (n_labels == 32 || strchr(optarg, '=') == NULL ||
			    optarg[0] == '=') {
				fprintf(stderr,
					"genie-runtime: --label '%s': expected "
					"KEY=VALUE, at most 32 labels\n",
					optarg);
				return 2;
			}
			labels[n_labels++] = optarg;
			co.labels = labels;
			co.n_labels = n_labels;
			break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "genie-runtime: unexpected argument '%s'\n",
			argv[optind]);
		usage(stderr);
		return 2;
	}
	if (co.coordinator == NULL &&
	    (co.secret_file || co.node_id || co.advertise || co.tls_ca ||
	     co.tls_cert || co.tls_key || co.n_labels)) {
		fprintf(stderr, "genie-runtime: --secret, --node-id, "
				"--advertise, --tls-* and --label need "
				"--coordinator\n");
		return 2;
	}
	if (co.coordinator != NULL) {
		/* Refuse a bad address or secret before listening at all. */
		struct gn_auth_secret secret;
		char addr[160];

		if (gn_coord_addr(co.coordinator, addr, sizeof(addr)) != 0 ||
		    gn_coord_load_secret(co.secret_file, &secret) < 0) {
			fprintf(stderr, "genie-runtime: %s\n", gn_last_error());
			return 2;
		}
		explicit_bzero(&secret, sizeof(secret));
	}
	/* A bare HOST:PORT means TCP, the transport every build has. */
	if (n_listens == 0)
		listens[n_listens++] = opts.listen;
	for (int i = 0; i < n_listens; i++) {
		if (strstr(listens[i], "://") != NULL)
			continue;
		snprintf(urls[i], sizeof(urls[i]), "tcp://%s", listens[i]);
		listens[i] = urls[i];
	}
	opts.listen = listens[0];
	opts.also_listen = listens + 1;
	opts.n_also_listen = n_listens - 1;

	g_server = gn_server_create(&opts);
	if (g_server == NULL) {
		fprintf(stderr, "genie-runtime: cannot start: %s (%s)\n",
			gn_last_error(), gn_strerror(gn_last_error_code()));
		return 1;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	printf("genie-runtime: listening on");
	for (int i = 0; i < gn_server_nlisteners(g_server); i++) {
		char u[300];

		printf("%s %s", i ? "," : "",
		       gn_server_listener_url(g_server, i, u, sizeof(u), NULL));
	}
	printf(", backend %s\n", gn_server_backend(g_server));
	fflush(stdout);
	if (port_file != NULL) {
		const char *tcp_addr = NULL, *colon, *scheme;
		char u[300], tmp[512];
		FILE *f;

		/* The first tcp:// listener's port. */
		for (int i = 0; i < gn_server_nlisteners(g_server) &&
				tcp_addr == NULL;
		     i++)
			if (gn_server_listener_url(g_server, i, u, sizeof(u),
						   &scheme) &&
			    strcmp(scheme, "tcp") == 0)
				tcp_addr = u + strlen("tcp://");
		if (tcp_addr == NULL) {
			fprintf(stderr, "genie-runtime: --port-file needs a "
					"tcp:// listener\n");
			gn_server_destroy(&g_server);
			return 2;
		}
		colon = strrchr(tcp_addr, ':');
		/* Write then rename, so a reader never sees half a number. */
		snprintf(tmp, sizeof(tmp), "%s.tmp", port_file);
		f = fopen(tmp, "w");
		if (f == NULL || fprintf(f, "%s\n", colon + 1) < 0 ||
		    fclose(f) != 0 || rename(tmp, port_file) != 0) {
			fprintf(stderr, "genie-runtime: cannot write %s: %s\n",
				port_file, strerror(errno));
			gn_server_destroy(&g_server);
			return 1;
		}
	}
	if (co.coordinator != NULL) {
		/* After the port file: the advertised port is the real one. */
		coord = gn_coord_client_start(g_server, &co);
		if (coord == NULL) {
			fprintf(stderr, "genie-runtime: --coordinator: %s\n",
				gn_last_error());
			gn_server_destroy(&g_server);
			return 1;
		}
	}
	rc = gn_server_run(g_server);
	/* Before the server goes: the heartbeat thread reads its counters. */
	gn_coord_client_stop(&coord);
	gn_server_destroy(&g_server);
	if (rc != 0) {
		fprintf(stderr, "genie-runtime: %s\n", gn_last_error());
		return 1;
	}
	printf("genie-runtime: stopped cleanly\n");
	return 0;
}
