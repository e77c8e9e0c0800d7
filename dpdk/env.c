/*
 * EAL bring-up and mbuf pools (see dpdk_env.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

#include "dpdk_env.h"
#include "gn_error.h"
#include "log.h"

GN_LOG_REGISTER(dpdk)

#define MAX_EAL_ARGS 32

static int g_eal_up;

struct gn_dpdk_pool {
	struct rte_mempool *mp;
	unsigned data_room;
};

void gn_dpdk_env_opts_init(struct gn_dpdk_env_opts *opts, size_t opts_size)
{
	struct gn_dpdk_env_opts d = {
		.opts_size = opts_size,
		.no_huge = true,
		.no_pci = true,
		.in_memory = false,
		.lcores = "0",
		.mem_mb = 256,
		.log_level = 4,
	};

	memcpy(opts, &d, opts_size < sizeof(d) ? opts_size : sizeof(d));
}

/* Append one argument, copying it into the store. */
static int push(char **argv, int *argc, int max, char *store, size_t len,
		size_t *used, const char *s)
{
	size_t n = strlen(s) + 1;

	if (*argc + 1 >= max || *used + n > len)
		return -ENOSPC;
	argv[*argc] = memcpy(store + *used, s, n);
	*used += n;
	(*argc)++;
	argv[*argc] = NULL;
	return 0;
}

int gn_dpdk_env_build_args(const struct gn_dpdk_env_opts *o, char **argv,
			   int max, char *store, size_t store_len)
{
	char buf[256];
	size_t used = 0;
	int argc = 0, rc = 0;

#define PUSH(s)                                                              \
	do {                                                                 \
		if (rc == 0)                                                 \
			rc = push(argv, &argc, max, store, store_len, &used, \
				  s);                                        \
	} while (0)

	if (max < 1)
		return -ENOSPC;
	argv[0] = NULL;
	PUSH("genie");
	if (o->file_prefix != NULL)
		snprintf(buf, sizeof(buf), "--file-prefix=%s", o->file_prefix);
	else
		snprintf(buf, sizeof(buf), "--file-prefix=genie-%ld",
			 (long)getpid());
	PUSH(buf);
	if (o->no_huge) {
		PUSH("--no-huge");
		snprintf(buf, sizeof(buf), "%u", o->mem_mb ? o->mem_mb : 256);
		PUSH("-m");
		PUSH(buf);
	}
	if (o->no_pci)
		PUSH("--no-pci");
	/* --no-huge implies legacy memory, which --in-memory refuses. */
	if (o->in_memory && !o->no_huge)
		PUSH("--in-memory");
	if (o->lcores != NULL) {
		snprintf(buf, sizeof(buf), "--lcores=%s", o->lcores);
		PUSH(buf);
	}
	snprintf(buf, sizeof(buf), "--log-level=%u", o->log_level);
	PUSH(buf);
	for (int i = 0; i < o->nb_vdevs; i++) {
		PUSH("--vdev");
		PUSH(o->vdevs[i]);
	}
#undef PUSH
	return rc ? rc : argc;
}

int gn_dpdk_env_init(const struct gn_dpdk_env_opts *opts)
{
	char *argv[MAX_EAL_ARGS], store[2048], line[1024] = "";
	int argc, rc;

	if (g_eal_up)
		return gn_error_set(-EALREADY, "dpdk: EAL already running");
	argc = gn_dpdk_env_build_args(opts, argv, MAX_EAL_ARGS, store,
				      sizeof(store));
	if (argc < 0)
		return gn_error_set(argc, "dpdk: too many EAL arguments");
	for (int i = 0; i < argc; i++) {
		size_t k = strlen(line);

		snprintf(line + k, sizeof(line) - k, "%s%s", i ? " " : "",
			 argv[i]);
	}
	rc = rte_eal_init(argc, argv);
	if (rc < 0)
		return gn_error_set(-(rte_errno ? rte_errno : EIO),
				    "dpdk: EAL init failed: %s (args: %s)",
				    rte_strerror(rte_errno), line);
	g_eal_up = 1;
	GN_LOG(INFO, dpdk, "EAL up on lcore %u: %s", rte_lcore_id(), line);
	return 0;
}

void gn_dpdk_env_fini(void)
{
	if (!g_eal_up)
		return;
	rte_eal_cleanup();
	g_eal_up = 0;
}

struct gn_dpdk_pool *gn_dpdk_pool_create(const char *name, unsigned n_mbufs,
					 unsigned data_room)
{
	struct gn_dpdk_pool *p;

	if (!g_eal_up) {
		gn_error_set(-EINVAL, "dpdk: pool '%s' before EAL init", name);
		return NULL;
	}
	if (data_room > UINT16_MAX - RTE_PKTMBUF_HEADROOM) {
		gn_error_set(-EINVAL,
			     "dpdk: pool '%s': data room %u, at most %u", name,
			     data_room, UINT16_MAX - RTE_PKTMBUF_HEADROOM);
		return NULL;
	}
	p = calloc(1, sizeof(*p));
	if (p == NULL) {
		gn_error_set(-ENOMEM, "dpdk: out of memory");
		return NULL;
	}
	p->data_room = data_room;
	p->mp = rte_pktmbuf_pool_create(
		name, n_mbufs, 0, 0,
		(uint16_t)(data_room + RTE_PKTMBUF_HEADROOM),
		(int)rte_socket_id());
	if (p->mp == NULL) {
		gn_error_set(-(rte_errno ? rte_errno : ENOMEM),
			     "dpdk: pool '%s' of %u x %u bytes: %s", name,
			     n_mbufs, data_room, rte_strerror(rte_errno));
		free(p);
		return NULL;
	}
	return p;
}

void gn_dpdk_pool_destroy(struct gn_dpdk_pool **p)
{
	if (p == NULL || *p == NULL)
		return;
	rte_mempool_free((*p)->mp);
	free(*p);
	*p = NULL;
}

unsigned gn_dpdk_pool_avail(const struct gn_dpdk_pool *p)
{
	return rte_mempool_avail_count(p->mp);
}

int gn_dpdk_pool_check(struct gn_dpdk_pool *p)
{
	struct rte_mbuf *m = rte_pktmbuf_alloc(p->mp);
	char *d;

	if (m == NULL)
		return gn_error_set(-ENOMEM, "dpdk: pool exhausted");
	if (rte_pktmbuf_tailroom(m) < p->data_room) {
		rte_pktmbuf_free(m);
		return gn_error_set(-EIO,
				    "dpdk: mbuf has %u bytes of room, "
				    "expected %u",
				    rte_pktmbuf_tailroom(m), p->data_room);
	}
	d = rte_pktmbuf_append(m, (uint16_t)p->data_room);
	memset(d, 0x5a, p->data_room);
	rte_pktmbuf_free(m);
	return 0;
}
