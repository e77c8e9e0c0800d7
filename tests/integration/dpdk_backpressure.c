/*
 * Backpressure over dpdk://memif between two processes (no hugepages): a
 * client sends N messages of 4 KiB to an echo child without reading the
 * echoes. Unbounded, every echo would queue at the client and every
 * request at the child. Bounded, the client holds its session once 64
 * echoes wait, the child's echo sends stop, the child stops reading and
 * holds its own, and the client's sends stop: a send with a 200 ms
 * timeout fails with the error that says the peer is not receiving, well
 * before N. Then the client reads while it sends the rest: every echo
 * arrives, in order and intact, and the session is still up. Last, 16
 * echoes of payloads large enough to go from the caller's buffer, each
 * starting one byte further into it, so that the sender's lead-in
 * (dpdk_msg.h) takes each of its 16 lengths: all arrive intact.
 *
 *   dpdk_backpressure            (forks "dpdk_backpressure --serve URL")
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gn_error.h"
#include "transport.h"

#define N 5000
#define PAYLOAD 4096

static int serve(const char *url)
{
	struct gn_listener *l = NULL;
	struct gn_conn *c = NULL;
	int rc = gn_listen(url, NULL, &l);

	if (rc == 0)
		rc = l->ops->accept(l, 30000, &c);
	while (rc == 0) {
		struct gn_msg m;
		struct iovec iov;

		rc = gn_conn_recv(c, &m, -1);
		if (rc != 0)
			break;
		iov = (struct iovec){m.payload, m.payload_len};
		rc = gn_conn_send(c, m.env, m.env_len, &iov, 1, 60000);
		gn_msg_release(&m);
		if (rc != 0)
			fprintf(stderr, "echo: send: %s\n", gn_last_error());
	}
	gn_conn_close(&c);
	gn_listener_close(&l);
	return 0;
}

static void fill(uint8_t *p, uint32_t id)
{
	for (size_t k = 0; k < PAYLOAD; k++)
		p[k] = (uint8_t)(k * 7 + id * 13);
}

static int send_one(struct gn_conn *c, uint32_t id, int timeout_ms)
{
	uint8_t env[8], payload[PAYLOAD];
	struct iovec iov = {payload, sizeof(payload)};

	memcpy(env, &id, sizeof(id));
	memcpy(env + 4, "ECHO", 4);
	fill(payload, id);
	return gn_conn_send(c, env, sizeof(env), &iov, 1, timeout_ms);
}

static int check(const struct gn_msg *m, uint32_t want)
{
	uint8_t payload[PAYLOAD];
	uint32_t id;

	if (m->env_len != 8 || m->payload_len != PAYLOAD)
		return -1;
	memcpy(&id, m->env, sizeof(id));
	fill(payload, want);
	return id == want && memcmp(m->payload, payload, PAYLOAD) == 0 ? 0 : -1;
}

/* Payloads sent from the caller's buffer, at each of 16 alignments. */
#define LEAD_PAYLOAD ((300u << 10) + 5)

static int every_lead(struct gn_conn *c)
{
	uint8_t *big = malloc(LEAD_PAYLOAD + 16);
	int rc = big != NULL ? 0 : -ENOMEM;

	for (uint32_t o = 0; o < 16 && rc == 0; o++) {
		uint8_t env[8];
		struct iovec iov = {big + o, LEAD_PAYLOAD};
		struct gn_msg m;

		memcpy(env, &o, sizeof(o));
		memcpy(env + 4, "LEAD", 4);
		for (size_t k = 0; k < LEAD_PAYLOAD; k++)
			big[o + k] = (uint8_t)(k * 31 + o);
		rc = gn_conn_send(c, env, sizeof(env), &iov, 1, 10000);
		if (rc == 0)
			rc = gn_conn_recv(c, &m, 10000);
		if (rc != 0) {
			printf("FAIL payload at offset %u: %s\n", o,
			       gn_last_error());
			break;
		}
		if (m.env_len != sizeof(env) ||
		    memcmp(m.env, env, sizeof(env)) != 0 ||
		    m.payload_len != LEAD_PAYLOAD ||
		    memcmp(m.payload, big + o, LEAD_PAYLOAD) != 0) {
			printf("FAIL the echo of the payload at offset %u "
			       "differs (%u + %llu bytes came back)\n",
			       o, (unsigned)m.env_len,
			       (unsigned long long)m.payload_len);
			rc = -1;
		}
		gn_msg_release(&m);
	}
	free(big);
	if (rc == 0)
		printf("ok   16 echoes of %u bytes, sent from 16 alignments, "
		       "arrived intact\n",
		       LEAD_PAYLOAD);
	return rc;
}

int main(int argc, char **argv)
{
	char dir[] = "/tmp/genie-bp-XXXXXX", url[128];
	struct gn_conn *c = NULL;
	uint32_t sent = 0, got = 0, stalled = 0;
	int rc, st;
	pid_t pid;

	if (argc == 3 && strcmp(argv[1], "--serve") == 0)
		return serve(argv[2]);
	if (mkdtemp(dir) == NULL)
		return 1;
	snprintf(url, sizeof(url), "dpdk://memif:%s/sock", dir);
	pid = fork();
	if (pid == 0) {
		execl("/proc/self/exe", argv[0], "--serve", url, (char *)NULL);
		_exit(127);
	}
	rc = gn_connect(url, NULL, 20000, &c);
	if (rc != 0) {
		printf("FAIL connect %s: %s\n", url, gn_last_error());
		goto out;
	}
	/* Send without reading until a send times out. */
	for (; sent < N; sent++) {
		rc = send_one(c, sent, 200);
		if (rc == -ETIMEDOUT) {
			stalled = sent;
			break;
		}
		if (rc != 0) {
			printf("FAIL send %u: %s\n", sent, gn_last_error());
			goto out;
		}
	}
	if (stalled == 0) {
		printf("FAIL all %d messages went out with no echo read: "
		       "nothing held them back\n",
		       N);
		rc = -1;
		goto out;
	}
	if (strstr(gn_last_error(), "not receiving") == NULL &&
	    strstr(gn_last_error(), "has not taken") == NULL) {
		printf("FAIL the stalled send said: %s\n", gn_last_error());
		rc = -1;
		goto out;
	}
	printf("ok   sends stopped after %u of %d unread echoes: %s\n", stalled,
	       N, gn_last_error());
	/* Read while sending the rest: everything arrives, in order. */
	while (got < N) {
		struct gn_msg m;

		if (sent < N) {
			rc = send_one(c, sent, 20);
			if (rc == 0)
				sent++;
			else if (rc != -ETIMEDOUT) {
				printf("FAIL send %u: %s\n", sent,
				       gn_last_error());
				goto out;
			}
		}
		rc = gn_conn_recv(c, &m, sent < N ? 0 : 10000);
		if (rc == -ETIMEDOUT && sent < N)
			continue;
		if (rc != 0) {
			printf("FAIL echo %u: %s\n", got, gn_last_error());
			goto out;
		}
		rc = check(&m, got);
		gn_msg_release(&m);
		if (rc != 0) {
			printf("FAIL echo %u is not message %u, intact\n", got,
			       got);
			goto out;
		}
		got++;
	}
	printf("ok   all %d echoes arrived in order, intact\n", N);
	rc = every_lead(c);
out:
	gn_conn_close(&c);
	kill(pid, SIGTERM);
	waitpid(pid, &st, 0);
	rmdir(dir);
	return rc == 0 ? 0 : 1;
}
