/*
 * The DPDK environment, seen from the rest of Genie.
 *
 * dpdk/ is the only folder whose code includes rte_*.h (SPDK's env_dpdk
 * habit): everything else starts, uses and stops DPDK through Genie types
 * declared here, so unit tests and the TCP path never need hugepages or a
 * NIC. This first piece brings up the EAL from Genie options — hugepages in
 * production; `--no-huge --no-pci`, a unique `--file-prefix` and in-memory
 * mode for tests and unprivileged runs — and makes packet-buffer pools.
 * The reliable memif/af_packet transport builds on it.
 */
#ifndef GN_DPDK_ENV_H
#define GN_DPDK_ENV_H

#include <stdbool.h>
#include <stddef.h>

struct gn_dpdk_env_opts {
	size_t opts_size;
	const char *file_prefix;  /* NULL: "genie-<pid>" */
	bool no_huge;		  /* run on anonymous memory */
	bool no_pci;		  /* do not probe PCI devices */
	bool in_memory;		  /* no runtime files in /var/run */
	const char *lcores;	  /* EAL --lcores, e.g. "0" */
	unsigned mem_mb;	  /* with no_huge: memory to reserve */
	const char *const *vdevs; /* --vdev arguments, e.g. "net_memif0,..." */
	int nb_vdevs;
	unsigned log_level; /* EAL log level, 1 (emergency) .. 8 (debug) */
};

/*
 * Defaults for tests and unprivileged use: no_huge, no_pci,
 * lcores "0", 256 MiB, log level 4 (errors and worse).
 */
void gn_dpdk_env_opts_init(struct gn_dpdk_env_opts *opts, size_t opts_size);

/*
 * Build the EAL argument vector for `opts` into argv (at most `max`
 * entries, NULL-terminated) with the strings in `store`. Returns argc, or
 * -ENOSPC when argv or store is too small. Pure: touches no EAL state.
 */
int gn_dpdk_env_build_args(const struct gn_dpdk_env_opts *opts, char **argv,
			   int max, char *store, size_t store_len);

/*
 * Start the EAL once per process. Returns 0; -EALREADY when it already
 * runs; or a negative errno with gn_last_error() naming DPDK's reason and
 * the arguments used.
 */
int gn_dpdk_env_init(const struct gn_dpdk_env_opts *opts);

/* Stop the EAL (rte_eal_cleanup). No-op when not started. */
void gn_dpdk_env_fini(void);

struct gn_dpdk_pool;

/*
 * A pool of `n_mbufs` packet buffers with `data_room` bytes each, on the
 * caller's NUMA socket. NULL with the error set (EAL not started, out of
 * memory). Free with gn_dpdk_pool_destroy().
 */
struct gn_dpdk_pool *gn_dpdk_pool_create(const char *name, unsigned n_mbufs,
					 unsigned data_room);

/* Free the pool; sets *p to NULL. NULL is a no-op. */
void gn_dpdk_pool_destroy(struct gn_dpdk_pool **p);

/* Buffers free in the pool now. */
unsigned gn_dpdk_pool_avail(const struct gn_dpdk_pool *p);

/*
 * Take one buffer and give it back, checking the pool hands out writable
 * memory of at least `data_room` bytes. 0 or -ENOMEM / -EIO.
 */
int gn_dpdk_pool_check(struct gn_dpdk_pool *p);

#endif /* GN_DPDK_ENV_H */
