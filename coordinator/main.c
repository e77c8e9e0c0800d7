/*
 * genie-coordinator: parses options (a config file first, then the command
 * line over it), starts the coordinator and stops it cleanly on SIGTERM or
 * SIGINT.
 *
 * The config file holds "key = value" lines; '#' starts a comment. Keys:
 * listen, http, state, secret, heartbeat_ms, policy, max_sessions_per_node,
 * name, log, tls_cert, tls_key, tls_ca.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coordinator.h"
#include "gn_error.h"
#include "log.h"

static struct gn_coordinator *g_coord;

static void on_signal(int sig)
{
	(void)sig;
	if (g_coord != NULL)
		gn_coordinator_stop(g_coord);
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: genie-coordinator --listen HOST:PORT --state FILE "
		"--secret FILE [options]\n"
		"  --listen HOST:PORT    control-plane address (port 0 picks "
		"one)\n"
		"  --http HOST:PORT      /metrics, /healthz, /readyz (port 0 "
		"picks one)\n"
		"  --state FILE          SQLite state (created if missing)\n"
		"  --secret FILE         shared secret, 16..4096 bytes\n"
		"  --tls-cert FILE       serve the control plane over TLS "
		"with this\n"
		"                        certificate (PEM, chain allowed)\n"
		"  --tls-key FILE        its private key (PEM)\n"
		"  --tls-ca FILE         require client certificates that "
		"chain to this CA\n"
		"  --config FILE         key = value defaults (the command "
		"line wins)\n"
		"  --heartbeat-ms N      heartbeat interval runtimes keep "
		"(default 1000);\n"
		"                        suspect after 1 missed, down after "
		"3\n"
		"  --policy NAME         least-loaded (default), bin-packing, "
		"model-affinity\n"
		"  --max-sessions N      sessions per runtime (default 64, 0: "
		"no limit)\n"
		"  --name NAME           reported to peers\n"
		"  --port-file FILE      write the control port once "
		"listening\n"
		"  --http-port-file FILE write the HTTP port once serving\n"
		"  --log SPEC            log levels, e.g. info or "
		"coord=debug,*=notice\n"
		"  -h, --help            this text\n");
}

struct settings {
	struct gn_coordinator_opts o;
	char listen[300];
	char *strs[16]; /* strdup'd config values, freed at exit */
	int nstrs;
};

static int parse_u32(const char *opt, const char *s, uint32_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno != 0 || *end != '\0' || *s == '-' || *s == '\0' ||
	    v > UINT32_MAX) {
		fprintf(stderr,
			"genie-coordinator: %s expects a number 0..%u, got "
			"'%s'\n",
			opt, UINT32_MAX, s);
		return -EINVAL;
	}
	*out = (uint32_t)v;
	return 0;
}

static int set(struct settings *st, const char *key, const char *val,
	       int from_file)
{
	const char *v = val;

	if (from_file) {
		if (st->nstrs == 16)
			return -ENOSPC;
		v = st->strs[st->nstrs++] = strdup(val);
		if (v == NULL)
			return -ENOMEM;
	}
	if (strcmp(key, "listen") == 0) {
		st->o.listen = v;
	} else if (strcmp(key, "http") == 0) {
		st->o.http = v;
	} else if (strcmp(key, "state") == 0) {
		st->o.state_path = v;
	} else if (strcmp(key, "secret") == 0) {
		st->o.secret_path = v;
	} else if (strcmp(key, "name") == 0) {
		st->o.name = v;
	} else if (strcmp(key, "tls_cert") == 0) {
		st->o.tls_cert = v;
	} else if (strcmp(key, "tls_key") == 0) {
		st->o.tls_key = v;
	} else if (strcmp(key, "tls_ca") == 0) {
		st->o.tls_ca = v;
	} else if (strcmp(key, "heartbeat_ms") == 0 ||
		   strcmp(key, "heartbeat-ms") == 0) {
		if (parse_u32("heartbeat_ms", v, &st->o.heartbeat_ms) != 0 ||
		    st->o.heartbeat_ms == 0) {
			fprintf(stderr, "genie-coordinator: heartbeat_ms "
					"must be at least 1\n");
			return -EINVAL;
		}
	} else if (strcmp(key, "max_sessions_per_node") == 0 ||
		   strcmp(key, "max-sessions") == 0) {
		return parse_u32("max_sessions_per_node", v,
				 &st->o.max_sessions_per_node);
	} else if (strcmp(key, "policy") == 0) {
		if (gn_place_policy_parse(v, &st->o.policy) != 0) {
			fprintf(stderr,
				"genie-coordinator: policy '%s': expected "
				"least-loaded, bin-packing or "
				"model-affinity\n",
				v);
			return -EINVAL;
		}
	} else if (strcmp(key, "log") == 0) {
		if (gn_log_set_levels(v) != 0) {
			fprintf(stderr, "genie-coordinator: log: %s\n",
				gn_last_error());
			return -EINVAL;
		}
	} else {
		fprintf(stderr, "genie-coordinator: unknown setting '%s'\n",
			key);
		return -EINVAL;
	}
	return 0;
}

static char *trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' ||
			 e[-1] == '\r'))
		*--e = '\0';
	return s;
}

static int load_config(struct settings *st, const char *path)
{
	char line[1024];
	int lineno = 0, rc = 0;
	FILE *f = fopen(path, "r");

	if (f == NULL) {
		fprintf(stderr, "genie-coordinator: --config %s: %s\n", path,
			strerror(errno));
		return -errno;
	}
	while (rc == 0 && fgets(line, sizeof(line), f) != NULL) {
		char *hash = strchr(line, '#'), *eq, *k;

		lineno++;
		if (hash != NULL)
			*hash = '\0';
		k = trim(line);
		if (*k == '\0')
			continue;
		eq = strchr(k, '=');
		if (eq == NULL) {
			fprintf(stderr,
				"genie-coordinator: %s:%d: expected 'key = "
				"value', got '%s'\n",
				path, lineno, k);
			rc = -EINVAL;
			break;
		}
		*eq = '\0';
		rc = set(st, trim(k), trim(eq + 1), 1);
		if (rc != 0)
			fprintf(stderr, "genie-coordinator: in %s:%d\n", path,
				lineno);
	}
	fclose(f);
	return rc;
}

static int write_port(const char *path, int port)
{
	char tmp[512];
	FILE *f;

	/* Write then rename, so a reader never sees half a number. */
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "w");
	if (f == NULL || fprintf(f, "%d\n", port) < 0 || fclose(f) != 0 ||
	    rename(tmp, path) != 0) {
		fprintf(stderr, "genie-coordinator: cannot write %s: %s\n",
			path, strerror(errno));
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"listen", required_argument, NULL, 'l'},
		{"http", required_argument, NULL, 'H'},
		{"state", required_argument, NULL, 's'},
		{"secret", required_argument, NULL, 'k'},
		{"config", required_argument, NULL, 'c'},
		{"heartbeat-ms", required_argument, NULL, 'b'},
		{"policy", required_argument, NULL, 'P'},
		{"max-sessions", required_argument, NULL, 'm'},
		{"name", required_argument, NULL, 'n'},
		{"port-file", required_argument, NULL, 'p'},
		{"http-port-file", required_argument, NULL, 'q'},
		{"log", required_argument, NULL, 'L'},
		{"tls-cert", required_argument, NULL, 'C'},
		{"tls-key", required_argument, NULL, 'K'},
		{"tls-ca", required_argument, NULL, 'A'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	static struct settings st;
	const char *port_file = NULL, *http_port_file = NULL;
	struct sigaction sa;
	int c, rc = 0;

	gn_coordinator_opts_init(&st.o, sizeof(st.o));
	/* The config file first, so the command line wins over it. */
	for (int i = 1; i + 1 < argc; i++)
		if (strcmp(argv[i], "--config") == 0 &&
		    load_config(&st, argv[i + 1]) != 0)
			return 2;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		const char *key = NULL;

		switch (c) {
		case 'l': key = "listen"; break;
		case 'H': key = "http"; break;
		case 's': key = "state"; break;
		case 'k': key = "secret"; break;
		case 'b': key = "heartbeat_ms"; break;
		case 'P': key = "policy"; break;
		case 'm': key = "max_sessions_per_node"; break;
		case 'n': key = "name"; break;
		case 'L': key = "log"; break;
		case 'C': key = "tls_cert"; break;
		case 'K': key = "tls_key"; break;
		case 'A': key = "tls_ca"; break;
		case 'c': break; /* read above */
		case 'p': port_file = optarg; break;
		case 'q': http_port_file = optarg; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
		if (key != NULL && set(&st, key, optarg, 0) != 0)
			return 2;
	}
	if (optind < argc) {
		fprintf(stderr, "genie-coordinator: unexpected argument '%s'\n",
			argv[optind]);
		usage(stderr);
		return 2;
	}
	if (st.o.secret_path == NULL) {
		fprintf(stderr,
			"genie-coordinator: --secret FILE is required\n");
		usage(stderr);
		return 2;
	}
	/* A bare HOST:PORT means TCP. */
	if (strstr(st.o.listen, "://") == NULL) {
		snprintf(st.listen, sizeof(st.listen), "tcp://%s", st.o.listen);
		st.o.listen = st.listen;
	}
	g_coord = gn_coordinator_create(&st.o);
	if (g_coord == NULL) {
		fprintf(stderr, "genie-coordinator: cannot start: %s (%s)\n",
			gn_last_error(), gn_strerror(gn_last_error_code()));
		rc = 1;
		goto out;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	printf("genie-coordinator: listening on %s%s, http port %d, policy "
	       "%s, heartbeat %u ms\n",
	       gn_coordinator_addr(g_coord),
	       st.o.tls_cert == NULL ? ""
	       : st.o.tls_ca != NULL ? " (TLS, client certificates required)"
				     : " (TLS)",
	       gn_coordinator_http_port(g_coord),
	       gn_place_policy_name(st.o.policy), st.o.heartbeat_ms);
	fflush(stdout);
	if (port_file != NULL &&
	    write_port(port_file,
		       atoi(strrchr(gn_coordinator_addr(g_coord), ':') + 1)) !=
		    0) {
		rc = 1;
		goto out;
	}
	if (http_port_file != NULL &&
	    write_port(http_port_file, gn_coordinator_http_port(g_coord)) !=
		    0) {
		rc = 1;
		goto out;
	}
	if (gn_coordinator_run(g_coord) != 0) {
		fprintf(stderr, "genie-coordinator: %s\n", gn_last_error());
		rc = 1;
	} else {
		printf("genie-coordinator: stopped cleanly\n");
	}
out:
	gn_coordinator_destroy(&g_coord);
	for (int i = 0; i < st.nstrs; i++)
		free(st.strs[i]);
	return rc;
}
