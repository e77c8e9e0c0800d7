/*
 * dpdk:// target strings and memif client ids (target.h).
 */
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "gn_error.h"
#include "hash.h"
#include "target.h"

/*
 * memif: the listener's address is fixed; client id N is
 * 02:47:4e:00:00:(2+N), 10.77.0.(2+N), UDP port 7071.
 */
static const struct gn_rel_addr k_server = {
	{0x02, 0x47, 0x4e, 0, 0, 1}, 0x0a4d0001u, 7070};
static const struct gn_rel_addr k_client = {
	{0x02, 0x47, 0x4e, 0, 0, 2}, 0x0a4d0002u, 7071};

void gn_dpdk_target_memif_id(struct gn_dpdk_target *t, uint32_t id)
{
	t->self = k_client;
	t->self.mac[5] = (uint8_t)(k_client.mac[5] + id);
	t->self.ip = k_client.ip + id;
}

int gn_dpdk_memif_id_of(const uint8_t dst_mac[6])
{
	int id = dst_mac[5] - k_client.mac[5];

	if (memcmp(dst_mac, k_client.mac, 5) != 0 || id < 0 ||
	    id >= GN_DPDK_MEMIF_CLIENTS)
		return -1;
	return id;
}

static int parse_ip(const char *s, uint32_t *ip)
{
	unsigned a, b, c, d;
	char end;

	if (sscanf(s, "%u.%u.%u.%u%c", &a, &b, &c, &d, &end) != 4 || a > 255 ||
	    b > 255 || c > 255 || d > 255)
		return -1;
	*ip = a << 24 | b << 16 | c << 8 | d;
	return 0;
}

/* The interface's Ethernet address, from sysfs. */
static int if_mac(const char *ifname, uint8_t mac[6])
{
	char path[128], line[64];
	unsigned m[6];
	FILE *f;
	int ok;

	snprintf(path, sizeof(path), "/sys/class/net/%s/address", ifname);
	f = fopen(path, "r");
	if (f == NULL)
		return -1;
	ok = fgets(line, sizeof(line), f) != NULL &&
	     sscanf(line, "%x:%x:%x:%x:%x:%x", &m[0], &m[1], &m[2], &m[3],
		    &m[4], &m[5]) == 6;
	fclose(f);
	for (int i = 0; ok && i < 6; i++)
		mac[i] = (uint8_t)m[i];
	return ok ? 0 : -1;
}

int gn_dpdk_target_parse(const char *spec, bool server,
			 struct gn_dpdk_target *t)
{
	bool pci = strncmp(spec, "pci:", 4) == 0;

	memset(t, 0, sizeof(*t));
	if (strncmp(spec, "memif:", 6) == 0 && spec[6] != '\0' &&
	    strlen(spec + 6) < sizeof(t->sock)) {
		snprintf(t->sock, sizeof(t->sock), "%s", spec + 6);
		if (server) {
			t->self = k_server;
			t->peer = k_client; /* each client's own, in fact */
		} else {
			gn_dpdk_target_memif_id(t, 0);
			t->peer = k_server;
		}
		return 0;
	}
	if (pci || strncmp(spec, "af_packet:", 10) == 0) {
		char buf[256], *save = NULL, *tok;
		uint32_t ip = 0, peer = 0;
		unsigned port = 7070;

		snprintf(buf, sizeof(buf), "%s", spec + (pci ? 4 : 10));
		tok = strtok_r(buf, ",", &save);
		if (tok == NULL || strlen(tok) >= sizeof(t->ifname))
			goto bad;
		snprintf(t->ifname, sizeof(t->ifname), "%s", tok);
		while ((tok = strtok_r(NULL, ",", &save)) != NULL) {
			if (strncmp(tok, "ip=", 3) == 0) {
				if (parse_ip(tok + 3, &ip) != 0)
					goto bad;
			} else if (strncmp(tok, "peer=", 5) == 0) {
				if (parse_ip(tok + 5, &peer) != 0)
					goto bad;
			} else if (strncmp(tok, "port=", 5) == 0) {
				char *end;

				port = (unsigned)strtoul(tok + 5, &end, 10);
				if (*end != '\0' || port == 0 || port > 65535)
					goto bad;
			} else {
				goto bad;
			}
		}
		if (ip == 0 || (!server && peer == 0))
			goto bad;
		/* A PCI port's address is read once it is open. */
		if (!pci && if_mac(t->ifname, t->self.mac) != 0)
			return gn_error_set(-ENODEV,
					    "dpdk: target 'dpdk://%s': no "
					    "interface '%s' here",
					    spec, t->ifname);
		t->af_packet = !pci;
		t->pci = pci;
		t->self.ip = ip;
		t->self.port = (uint16_t)(server ? port : port + 1);
		memset(t->peer.mac, 0xff, 6); /* learnt from the answer */
		t->peer.ip = peer;
		t->peer.port = (uint16_t)port;
		return 0;
	}
bad:
	return gn_error_set(-EINVAL,
			    "dpdk: target 'dpdk://%s': expected "
			    "dpdk://memif:/path/to/socket or "
			    "dpdk://af_packet:IFACE,ip=A.B.C.D[,peer=E.F.G.H]"
			    "[,port=N] or dpdk://pci:DDDD:BB:DD.F,ip=A.B.C.D"
			    "[,peer=E.F.G.H][,port=N]",
			    spec);
}

/*
 * The socket's path made absolute through its directory (the socket
 * itself may not exist yet), so that every spelling of one socket claims
 * from the same ids.
 */
static void canonical_path(const char *sock, char *out, size_t len)
{
	char dir[PATH_MAX], real[PATH_MAX];
	const char *slash = strrchr(sock, '/');
	const char *base = slash ? slash + 1 : sock;

	if (slash == sock)
		snprintf(dir, sizeof(dir), "/");
	else if (slash != NULL)
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - sock), sock);
	else
		snprintf(dir, sizeof(dir), ".");
	if (realpath(dir, real) == NULL)
		snprintf(real, sizeof(real), "%s", dir);
	snprintf(out, len, "%s/%s", real, base);
}

uint64_t gn_dpdk_memif_key(const char *sock)
{
	char path[2 * PATH_MAX + 2];

	canonical_path(sock, path, sizeof(path));
	return gn_hash64(path, strlen(path), 0x67656e69656d6966ull);
}

/* The abstract socket address standing for id `id` of socket `key`. */
static socklen_t claim_addr(uint64_t key, uint32_t id, struct sockaddr_un *a)
{
	int n;

	memset(a, 0, sizeof(*a));
	a->sun_family = AF_UNIX;
	n = snprintf(a->sun_path + 1, sizeof(a->sun_path) - 1,
		     "genie-memif-%016llx-%u", (unsigned long long)key, id);
	return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 +
			   (size_t)n);
}

int gn_dpdk_memif_claim(const char *sock, uint32_t *id)
{
	uint64_t key = gn_dpdk_memif_key(sock);
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return gn_error_set(-errno, "dpdk: memif id claim: socket: %s",
				    strerror(errno));
	for (uint32_t i = 0; i < GN_DPDK_MEMIF_CLIENTS; i++) {
		struct sockaddr_un a;
		socklen_t alen = claim_addr(key, i, &a);

		if (bind(fd, (struct sockaddr *)&a, alen) == 0) {
			*id = i;
			return fd;
		}
		if (errno != EADDRINUSE) {
			int err = errno;

			close(fd);
			return gn_error_set(-err,
					    "dpdk: memif id claim for %s: "
					    "bind: %s",
					    sock, strerror(err));
		}
	}
	close(fd);
	return gn_error_set(-EBUSY,
			    "dpdk: memif socket %s: all %d client ids are "
			    "held by other processes on this host; one "
			    "listener serves at most %d memif clients at once",
			    sock, GN_DPDK_MEMIF_CLIENTS, GN_DPDK_MEMIF_CLIENTS);
}

int gn_dpdk_memif_claims(uint64_t key, uint32_t from, int *probe)
{
	int top = (int)from;

	if (*probe < 0) {
		*probe = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		if (*probe < 0)
			return gn_error_set(-errno,
					    "dpdk: memif claims: socket: %s",
					    strerror(errno));
	}
	/* connect() on a datagram socket only names its peer: no traffic. */
	for (uint32_t i = from; i < GN_DPDK_MEMIF_CLIENTS; i++) {
		struct sockaddr_un a;
		socklen_t alen = claim_addr(key, i, &a);

		if (connect(*probe, (struct sockaddr *)&a, alen) == 0)
			top = (int)i + 1;
	}
	return top;
}
