/*
 * The DPDK environment, seen from the rest of Genie.
 *
 * Genie's primary data plane is DPDK: memif between processes on one host,
 * af_packet/af_xdp on kernel NICs and veth, PCI NICs with hugepages in
 * production. DPDK is a large dependency with process-wide state (the EAL,
 * its memory, its drivers) and its own conventions (rte_errno, argv-style
 * configuration), so Genie keeps it behind one layer, as SPDK does with
 * env_dpdk: dpdk/ is the only folder whose code includes rte_*.h. Everything
 * else starts, uses and stops DPDK through the Genie types declared here,
 * which is why this header includes no DPDK header and why the TCP path and
 * most unit tests never need hugepages, a NIC or root.
 *
 * This piece is the environment: the EAL brought up from a Genie options
 * struct, and pools of packet buffers (mbufs). The EAL starts at most once
 * per process. Tests and unprivileged runs use the defaults of
 * gn_dpdk_env_opts_init() — no hugepages, no PCI scan, one lcore and a file
 * prefix unique to the process — so many Genie processes can share a
 * 2-core machine. The reliable memif/af_packet transport builds on it.
 *
 * Threading: gn_dpdk_env_init() and gn_dpdk_env_fini() belong to the thread
 * that owns the process's start-up and shutdown (it becomes DPDK's main
 * lcore). Pools may be used from any thread once created.
 */
#ifndef GN_DPDK_ENV_H
#define GN_DPDK_ENV_H

#include <stdbool.h>
#include <stddef.h>

/*
 * How to start the EAL. Fill it with gn_dpdk_env_opts_init() and then
 * change what differs, so fields added later (always at the end) get their
 * defaults. Functions that take it read only the fields that fit in
 * opts_size and use the defaults for the rest.
 */
struct gn_dpdk_env_opts {
	/* sizeof(struct gn_dpdk_env_opts) as the caller was compiled. */
	size_t opts_size;
	/*
	 * --file-prefix: names the EAL's runtime directory. NULL gives
	 * "genie-<pid>"; any other value must be unique among running
	 * processes, contain no '/', and is at most 64 bytes.
	 */
	const char *file_prefix;
	/* --no-huge: run on anonymous memory instead of hugepages. */
	bool no_huge;
	/* --no-pci: do not scan or probe PCI devices. */
	bool no_pci;
	/* --lcores, e.g. "0" or "0-1"; NULL lets the EAL take every core. */
	const char *lcores;
	/* -m with no_huge: MiB the EAL reserves up front; 0: DPDK's 64. */
	size_t mem_mb;
	/*
	 * --vdev arguments, e.g. "net_memif0,role=server,socket=/tmp/x/s";
	 * nb_vdevs entries, none NULL or empty. The strings are copied.
	 */
	const char *const *vdevs;
	int nb_vdevs;
	/*
	 * --log-level for DPDK's own log: 1 (emergency) .. 8 (debug), or 0
	 * for DPDK's defaults (which print several lines per start).
	 */
	unsigned log_level;
	/*
	 * --no-shconf: keep the EAL's shared configuration in anonymous
	 * memory instead of ~1 MiB of files under /var/run/dpdk/<prefix>.
	 * Secondary processes (dpdk-pdump, dpdk-proc-info) cannot attach
	 * then; memif and af_packet ports do not need them.
	 */
	bool no_shconf;
	/*
	 * rte_eal_init() pins the calling thread to the main lcore's CPUs,
	 * and every thread it starts later inherits that. Genie drives its
	 * ports from its own threads (the transport's engine, the threads
	 * waiting for replies), which must float over the cores the
	 * process may use: false (the default) gives the calling thread its
	 * affinity back once the EAL is up. true keeps DPDK's pinning, for
	 * dedicated lcores on a production NIC.
	 */
	bool pin_main_lcore;
};

/*
 * Fill `opts` (`opts_size` bytes, normally sizeof(*opts)) with defaults
 * for tests and unprivileged use: file_prefix NULL ("genie-<pid>"),
 * no_huge, no_pci, no_shconf, lcores "0", mem_mb 256, no vdevs, log_level
 * 4 (errors only). Bytes past the struct this library knows are zeroed.
 * NULL is a no-op. Cannot fail.
 */
void gn_dpdk_env_opts_init(struct gn_dpdk_env_opts *opts, size_t opts_size);

/*
 * Build the EAL argument vector for `opts` (NULL: the defaults): argv[0] is
 * "genie", then the options, then a NULL entry, so `max` must leave room
 * for argc + 1 pointers. The strings are written into `store`, which the
 * caller owns and must keep alive as long as it uses argv. Pure: touches
 * no EAL state and may be called before or without gn_dpdk_env_init().
 *
 * Returns argc (>= 1), or
 *   -EINVAL  argv or store NULL, opts_size too small to hold opts_size,
 *            nb_vdevs negative, a vdev NULL or empty, a file_prefix that
 *            is empty, too long or holds '/', an empty lcores string, or
 *            log_level above 8;
 *   -ENOSPC  argv (max entries) or store (store_len bytes) too small.
 * Either way gn_last_error() names the problem.
 */
int gn_dpdk_env_build_args(const struct gn_dpdk_env_opts *opts, char **argv,
			   int max, char *store, size_t store_len);

/*
 * Start the EAL from `opts` (NULL: the defaults). Call once per process,
 * from the thread that will be DPDK's main lcore, before any other
 * function here except the pure ones above.
 *
 * Returns 0, or
 *   -EALREADY  the EAL already started in this process (DPDK starts once:
 *              a call after gn_dpdk_env_fini() fails this way too);
 *   -EINVAL, -ENOSPC  from gn_dpdk_env_build_args(), before DPDK runs;
 *   another negative errno from DPDK's rte_errno (-EACCES without the
 *              rights hugepages or PCI need, -EINVAL for options DPDK
 *              refuses, -ENOMEM, ...).
 * On failure gn_last_error() holds DPDK's reason (rte_strerror) and the
 * argument vector used; DPDK also logs its own reason at log_level >= 4.
 */
int gn_dpdk_env_init(const struct gn_dpdk_env_opts *opts);

/*
 * Stop the EAL (rte_eal_cleanup) and remove its runtime directory, so a
 * test suite that starts hundreds of processes with unique prefixes leaves
 * nothing behind in /var/run/dpdk. Destroy every pool first: their memory
 * belongs to the EAL. Call from the thread that called gn_dpdk_env_init().
 * A no-op when the EAL is not running. Cannot fail; problems are logged.
 */
void gn_dpdk_env_fini(void);

/*
 * Give the calling thread a DPDK lcore id of its own (rte_thread_register)
 * unless it has one, so that the mbuf pools' per-lcore caches serve it:
 * without one every buffer taken or given back goes through the pool's
 * shared ring, in first-in first-out order, and each received frame lands
 * in a buffer long out of the CPU's caches. At thread exit the thread
 * gives its cached buffers back to their pools and its lcore id back to
 * the EAL. Call from every thread that drives a port; cheap when already
 * done. Returns 0, or a negative errno when the EAL is down or out of
 * lcore ids (the thread then works uncached, as before).
 */
int gn_dpdk_thread_register(void);

/* A pool of packet buffers (DPDK mbufs); opaque outside dpdk/. */
struct gn_dpdk_pool;

/*
 * Create a pool named `name` (unique in the process, at most 25 bytes) of
 * `n_mbufs` packet buffers, each with `data_room` bytes for data after
 * DPDK's headroom (0 is allowed: buffers that carry external memory).
 * Memory comes from the EAL on the calling thread's NUMA socket. The
 * caller owns the pool and frees it with gn_dpdk_pool_destroy().
 *
 * Returns the pool, or NULL with gn_last_error_code() set to
 *   -ENODEV        the EAL is not running (gn_dpdk_env_init() first);
 *   -EINVAL        name NULL or empty, n_mbufs 0, or data_room too large
 *                  for a 16-bit mbuf buffer length;
 *   -ENAMETOOLONG  name longer than DPDK allows;
 *   -EEXIST        a pool with that name exists;
 *   -ENOMEM        the EAL's memory (mem_mb) or the heap is exhausted;
 *   another negative errno from DPDK's rte_errno.
 */
struct gn_dpdk_pool *gn_dpdk_pool_create(const char *name, unsigned n_mbufs,
					 unsigned data_room);

/*
 * Free the pool and set *p to NULL. Every buffer should be back in the
 * pool; buffers still out are logged as a warning and must not be used
 * afterwards. After gn_dpdk_env_fini() only the Genie wrapper is freed,
 * since the EAL took the pool's memory with it. NULL or *p NULL is a
 * no-op.
 */
void gn_dpdk_pool_destroy(struct gn_dpdk_pool **p);

/*
 * Buffers free in the pool now, counting those cached per lcore; equals
 * n_mbufs when every buffer is back. 0 for NULL. The count is a snapshot
 * when other threads allocate or free concurrently.
 */
unsigned gn_dpdk_pool_avail(const struct gn_dpdk_pool *p);

#endif /* GN_DPDK_ENV_H */
