/*
 * EAL bring-up from Genie options, and mbuf pools (see dpdk_env.h).
 *
 * DPDK is configured by an argv, so the options struct is turned into one
 * by a pure function the unit tests check without starting anything; the
 * EAL itself starts once per process and its state here is one word.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <rte_common.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

#include "dpdk_env.h"
#include "gn_error.h"
#include "log.h"

GN_LOG_REGISTER(dpdk)

/*
 * Room for the EAL's argv: a dozen fixed options plus --vdev pairs. Kept
 * static so the argv outlives the call whatever DPDK holds on to from it;
 * the EAL runs once per process, so one copy is all there ever is.
 */
#define EAL_MAX_ARGS 64
#define EAL_STORE_LEN 8192

/*
 * A file prefix names /var/run/dpdk/<prefix>/, and the EAL's IPC socket
 * inside it must fit a 108-byte sun_path, so prefixes stay short.
 */
#define FILE_PREFIX_MAX 64

/* RTE_LOG_DEBUG is DPDK's most verbose level. */
#define EAL_LOG_LEVEL_MAX 8

enum env_state {
	ENV_DOWN,     /* never started, or the last start failed */
	ENV_STARTING, /* gn_dpdk_env_init() is running */
	ENV_UP,
	ENV_STOPPED, /* DPDK cannot restart after rte_eal_cleanup() */
};

static int g_state = ENV_DOWN;
static char *g_argv[EAL_MAX_ARGS];
static char g_store[EAL_STORE_LEN];
static char g_runtime_dir[PATH_MAX];

struct gn_dpdk_pool {
	struct rte_mempool *mp;
	unsigned n_mbufs;
};

void gn_dpdk_env_opts_init(struct gn_dpdk_env_opts *opts, size_t opts_size)
{
	struct gn_dpdk_env_opts d = {
		.opts_size = opts_size,
		.file_prefix = NULL,
		.no_huge = true,
		.no_pci = true,
		.lcores = "0",
		.mem_mb = 256,
		.vdevs = NULL,
		.nb_vdevs = 0,
		.log_level = 4,
		.no_shconf = true,
	};

	if (opts == NULL)
		return;
	memset(opts, 0, opts_size);
	memcpy(opts, &d, opts_size < sizeof(d) ? opts_size : sizeof(d));
}

/*
 * The caller's options as this library sees them: fields that fit in the
 * caller's opts_size are copied, the rest keep their defaults (SPDK's way
 * of letting the struct grow at its end).
 */
static int opts_resolve(const struct gn_dpdk_env_opts *in,
			struct gn_dpdk_env_opts *out)
{
	gn_dpdk_env_opts_init(out, sizeof(*out));
	if (in == NULL)
		return 0;
	if (in->opts_size < sizeof(in->opts_size))
		return gn_error_set(-EINVAL,
				    "dpdk: opts_size is %zu, expected at least "
				    "%zu; fill the options with "
				    "gn_dpdk_env_opts_init()",
				    in->opts_size, sizeof(in->opts_size));
#define FIELD_OK(f) \
	(offsetof(struct gn_dpdk_env_opts, f) + sizeof(in->f) <= in->opts_size)
#define TAKE(f)                         \
	do {                            \
		if (FIELD_OK(f))        \
			out->f = in->f; \
	} while (0)
	TAKE(file_prefix);
	TAKE(no_huge);
	TAKE(no_pci);
	TAKE(lcores);
	TAKE(mem_mb);
	TAKE(vdevs);
	TAKE(nb_vdevs);
	TAKE(log_level);
	TAKE(no_shconf);
	TAKE(pin_main_lcore);
#undef TAKE
#undef FIELD_OK
	return 0;
}

static int opts_check(const struct gn_dpdk_env_opts *o)
{
	if (o->file_prefix != NULL &&
	    (o->file_prefix[0] == '\0' || strchr(o->file_prefix, '/') ||
	     strlen(o->file_prefix) > FILE_PREFIX_MAX))
		return gn_error_set(-EINVAL,
				    "dpdk: file_prefix '%s' must be 1..%d "
				    "bytes without '/'",
				    o->file_prefix, FILE_PREFIX_MAX);
	if (o->lcores != NULL && o->lcores[0] == '\0')
		return gn_error_set(-EINVAL,
				    "dpdk: lcores is empty; give a list such "
				    "as \"0\" or NULL for every core");
	if (o->log_level > EAL_LOG_LEVEL_MAX)
		return gn_error_set(-EINVAL,
				    "dpdk: log_level %u, expected 0 (DPDK's "
				    "default) or 1..%d",
				    o->log_level, EAL_LOG_LEVEL_MAX);
	if (o->nb_vdevs < 0 || (o->nb_vdevs > 0 && o->vdevs == NULL))
		return gn_error_set(-EINVAL,
				    "dpdk: nb_vdevs is %d with vdevs %s; "
				    "expected a count >= 0 and an array for it",
				    o->nb_vdevs, o->vdevs ? "set" : "NULL");
	for (int i = 0; i < o->nb_vdevs; i++)
		if (o->vdevs[i] == NULL || o->vdevs[i][0] == '\0')
			return gn_error_set(-EINVAL,
					    "dpdk: vdevs[%d] is %s, expected "
					    "a device string such as "
					    "\"net_memif0,role=server\"",
					    i, o->vdevs[i] ? "empty" : "NULL");
	return 0;
}

/* Where gn_dpdk_env_build_args() is in filling argv and the store. */
struct arg_builder {
	char **argv;
	int max;
	int argc;
	char *store;
	size_t len;
	size_t used;
};

/* Append one printf-formatted argument; -ENOSPC rather than truncate. */
static int arg_push(struct arg_builder *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int arg_push(struct arg_builder *b, const char *fmt, ...)
{
	size_t room = b->len - b->used;
	va_list ap;
	int n;

	if (b->argc + 2 > b->max)
		return gn_error_set(-ENOSPC,
				    "dpdk: EAL argv has room for %d entries "
				    "with its NULL, more are needed",
				    b->max);
	va_start(ap, fmt);
	n = vsnprintf(b->store + b->used, room, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= room)
		return gn_error_set(-ENOSPC,
				    "dpdk: EAL argument store of %zu bytes is "
				    "too small: argument %d needs %d bytes, "
				    "%zu are left",
				    b->len, b->argc, n + 1, room);
	b->argv[b->argc++] = b->store + b->used;
	b->argv[b->argc] = NULL;
	b->used += (size_t)n + 1;
	return 0;
}

int gn_dpdk_env_build_args(const struct gn_dpdk_env_opts *opts, char **argv,
			   int max, char *store, size_t store_len)
{
	struct arg_builder b = {argv, max, 0, store, store_len, 0};
	struct gn_dpdk_env_opts o;
	int rc;

	if (argv == NULL || store == NULL)
		return gn_error_set(
			-EINVAL, "dpdk: argv %s, store %s; both are needed",
			argv ? "set" : "NULL", store ? "set" : "NULL");
	if (max < 1 || store_len < 1)
		return gn_error_set(-ENOSPC,
				    "dpdk: argv of %d entries and store of "
				    "%zu bytes hold nothing",
				    max, store_len);
	argv[0] = NULL;
	store[0] = '\0';
	rc = opts_resolve(opts, &o);
	if (rc == 0)
		rc = opts_check(&o);
	if (rc != 0)
		return rc;

#define PUSH(...)                                     \
	do {                                          \
		if ((rc = arg_push(&b, __VA_ARGS__))) \
			return rc;                    \
	} while (0)
	PUSH("genie");
	PUSH("--file-prefix");
	if (o.file_prefix != NULL)
		PUSH("%s", o.file_prefix);
	else
		PUSH("genie-%ld", (long)getpid());
	if (o.no_huge) {
		PUSH("--no-huge");
		if (o.mem_mb > 0) {
			PUSH("-m");
			PUSH("%zu", o.mem_mb);
		}
	}
	if (o.no_pci)
		PUSH("--no-pci");
	/*
	 * --no-shconf rather than --in-memory: the EAL refuses --in-memory
	 * with --no-huge (which implies legacy memory), and --no-shconf
	 * keeps the same files out of /var/run.
	 */
	if (o.no_shconf)
		PUSH("--no-shconf");
	if (o.lcores != NULL) {
		PUSH("--lcores");
		PUSH("%s", o.lcores);
	}
	if (o.log_level > 0)
		PUSH("--log-level=%u", o.log_level);
	for (int i = 0; i < o.nb_vdevs; i++) {
		PUSH("--vdev");
		PUSH("%s", o.vdevs[i]);
	}
#undef PUSH
	return b.argc;
}

/* The argv as one line for logs and error details. */
static void args_line(char *const *argv, int argc, char *line, size_t len)
{
	size_t k = 0;

	line[0] = '\0';
	for (int i = 0; i < argc && k < len; i++) {
		int n = snprintf(line + k, len - k, "%s%s", i ? " " : "",
				 argv[i]);

		if (n < 0)
			break;
		k += (size_t)n;
	}
}

/*
 * Remove the files the EAL left in its runtime directory (config, fbarray
 * files, the telemetry socket) and the directory. rte_eal_cleanup() leaves
 * them, and with a unique prefix per process nobody would ever reuse them.
 * Genie runs no secondary processes, so nothing else still needs them.
 */
static void remove_runtime_dir(const char *path)
{
	struct dirent *e;
	DIR *d;

	if (path[0] == '\0')
		return;
	d = opendir(path);
	if (d == NULL) {
		GN_LOG(DEBUG, dpdk, "runtime dir %s: %s", path,
		       strerror(errno));
		return;
	}
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (unlinkat(dirfd(d), e->d_name, 0) != 0)
			GN_LOG(DEBUG, dpdk,
			       "runtime dir %s: cannot remove %s: %s", path,
			       e->d_name, strerror(errno));
	}
	closedir(d);
	if (rmdir(path) != 0)
		GN_LOG(DEBUG, dpdk, "runtime dir %s: cannot remove it: %s",
		       path, strerror(errno));
}

/*
 * Where the EAL keeps runtime directories, as DPDK decides it: /var/run
 * for root, else $XDG_RUNTIME_DIR or /tmp; then "dpdk".
 */
static void runtime_base(char *buf, size_t len)
{
	const char *xdg = getenv("XDG_RUNTIME_DIR");

	if (getuid() == 0)
		snprintf(buf, len, "/var/run/dpdk");
	else
		snprintf(buf, len, "%s/dpdk", xdg && *xdg ? xdg : "/tmp");
}

/*
 * A Genie process killed with SIGKILL never ran gn_dpdk_env_fini(): its
 * runtime directory (genie-<pid>, the default prefix) stays behind. Remove
 * those whose process is gone; a live process, whoever it is now, keeps
 * its directory. Other prefixes are never touched.
 */
static void reap_stale_dirs(void)
{
	char base[256], path[600];
	struct dirent *e;
	int n = 0;
	DIR *d;

	runtime_base(base, sizeof(base));
	d = opendir(base);
	if (d == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		char *end;
		long pid;

		if (strncmp(e->d_name, "genie-", 6) != 0)
			continue;
		pid = strtol(e->d_name + 6, &end, 10);
		if (*end != '\0' || pid <= 0 || pid == (long)getpid() ||
		    kill((pid_t)pid, 0) == 0 || errno != ESRCH)
			continue;
		snprintf(path, sizeof(path), "%s/%s", base, e->d_name);
		remove_runtime_dir(path);
		n++;
	}
	closedir(d);
	if (n > 0)
		GN_LOG(NOTICE, dpdk,
		       "removed %d runtime dir%s of Genie processes that are "
		       "gone, under %s",
		       n, n == 1 ? "" : "s", base);
}

int gn_dpdk_env_init(const struct gn_dpdk_env_opts *opts)
{
	int expected = ENV_DOWN, argc, err;
	struct gn_dpdk_env_opts o;
	cpu_set_t cpus;
	bool have_cpus;
	char line[512];

	if (!__atomic_compare_exchange_n(&g_state, &expected, ENV_STARTING,
					 false, __ATOMIC_ACQ_REL,
					 __ATOMIC_ACQUIRE))
		return gn_error_set(-EALREADY,
				    "dpdk: the EAL is %s in this process; it "
				    "starts once per process",
				    expected == ENV_STOPPED
					    ? "already stopped"
					    : "already running");
	argc = gn_dpdk_env_build_args(opts, g_argv, EAL_MAX_ARGS, g_store,
				      sizeof(g_store));
	if (argc < 0) {
		__atomic_store_n(&g_state, ENV_DOWN, __ATOMIC_RELEASE);
		return argc;
	}
	/* Before rte_eal_init(), whose getopt reorders argv. */
	args_line(g_argv, argc, line, sizeof(line));
	reap_stale_dirs();
	(void)opts_resolve(opts, &o); /* checked by build_args above */
	have_cpus = pthread_getaffinity_np(pthread_self(), sizeof(cpus),
					   &cpus) == 0;
	if (rte_eal_init(argc, g_argv) < 0) {
		err = rte_errno > 0 ? rte_errno : EIO;
		/*
		 * DPDK lets a start that failed on its arguments be retried
		 * and answers EALREADY itself when it cannot, so the state
		 * goes back to DOWN.
		 */
		__atomic_store_n(&g_state, ENV_DOWN, __ATOMIC_RELEASE);
		/*
		 * A start that failed after creating its runtime directory
		 * leaves it empty. rmdir() removes only an empty one, so a
		 * directory that another process under the same prefix
		 * still uses is never touched.
		 */
		if (rte_eal_get_runtime_dir()[0] != '\0')
			(void)rmdir(rte_eal_get_runtime_dir());
		return gn_error_set(
			-err, "dpdk: EAL start failed: %s%s; args: %s",
			rte_strerror(err),
			o.no_huge ? ""
				  : " (it runs on hugepages here: are any "
				    "reserved, /proc/sys/vm/nr_hugepages, and "
				    "hugetlbfs mounted?)",
			line);
	}
	/*
	 * Two Genie processes on one host both get lcore 0: pinned, their
	 * threads would share one CPU and wait for each other's time slices
	 * (milliseconds a round trip, measured).
	 */
	if (!o.pin_main_lcore && have_cpus &&
	    pthread_setaffinity_np(pthread_self(), sizeof(cpus), &cpus) != 0)
		GN_LOG(WARNING, dpdk,
		       "cannot give the main thread its CPU affinity back; "
		       "its threads stay on the main lcore's CPUs");
	snprintf(g_runtime_dir, sizeof(g_runtime_dir), "%s",
		 rte_eal_get_runtime_dir());
	__atomic_store_n(&g_state, ENV_UP, __ATOMIC_RELEASE);
	GN_LOG(INFO, dpdk, "EAL up, main lcore %u, runtime dir %s; args: %s",
	       rte_get_main_lcore(), g_runtime_dir, line);
	return 0;
}

static pthread_key_t g_thread_key;
static pthread_once_t g_thread_once = PTHREAD_ONCE_INIT;

static void flush_cache(struct rte_mempool *mp, void *arg)
{
	struct rte_mempool_cache *c =
		rte_mempool_default_cache(mp, *(unsigned *)arg);

	if (c != NULL)
		rte_mempool_cache_flush(c, mp);
}

static void thread_exit(void *arg)
{
	unsigned lcore = rte_lcore_id();

	(void)arg;
	if (__atomic_load_n(&g_state, __ATOMIC_ACQUIRE) != ENV_UP ||
	    lcore == LCORE_ID_ANY)
		return;
	rte_mempool_walk(flush_cache, &lcore);
	rte_thread_unregister();
}

static void thread_key_make(void)
{
	if (pthread_key_create(&g_thread_key, thread_exit) != 0)
		GN_LOG(WARNING, dpdk,
		       "no thread key: registered threads "
		       "keep their lcore ids at exit");
}

int gn_dpdk_thread_register(void)
{
	static __thread bool tried;

	if (rte_lcore_id() != LCORE_ID_ANY)
		return 0;
	if (tried)
		return -ENOSPC;
	if (__atomic_load_n(&g_state, __ATOMIC_ACQUIRE) != ENV_UP)
		return gn_error_set(-ENODEV, "dpdk: the EAL is not running");
	tried = true;
	pthread_once(&g_thread_once, thread_key_make);
	if (rte_thread_register() != 0) {
		GN_LOG(INFO, dpdk,
		       "thread not registered with the EAL (%s): its packet "
		       "buffers come from the pools' shared rings",
		       rte_strerror(rte_errno));
		return gn_error_set(-ENOSPC, "dpdk: rte_thread_register: %s",
				    rte_strerror(rte_errno));
	}
	/* Any non-NULL value: the destructor runs at thread exit. */
	pthread_setspecific(g_thread_key, &g_thread_key);
	return 0;
}

void gn_dpdk_env_fini(void)
{
	int expected = ENV_UP;

	if (!__atomic_compare_exchange_n(&g_state, &expected, ENV_STOPPED,
					 false, __ATOMIC_ACQ_REL,
					 __ATOMIC_ACQUIRE))
		return;
	if (rte_eal_cleanup() != 0)
		GN_LOG(WARNING, dpdk, "EAL cleanup failed: %s",
		       rte_strerror(rte_errno));
	remove_runtime_dir(g_runtime_dir);
	GN_LOG(INFO, dpdk, "EAL stopped");
}

struct gn_dpdk_pool *gn_dpdk_pool_create(const char *name, unsigned n_mbufs,
					 unsigned data_room)
{
	struct gn_dpdk_pool *p;
	unsigned cache;
	int err;

	if (__atomic_load_n(&g_state, __ATOMIC_ACQUIRE) != ENV_UP) {
		gn_error_set(-ENODEV,
			     "dpdk: pool '%s': the EAL is not running; call "
			     "gn_dpdk_env_init() first",
			     name ? name : "(null)");
		return NULL;
	}
	if (name == NULL || name[0] == '\0') {
		gn_error_set(-EINVAL, "dpdk: pool name is %s, expected one",
			     name ? "empty" : "NULL");
		return NULL;
	}
	if (strlen(name) >= RTE_MEMPOOL_NAMESIZE) {
		gn_error_set(-ENAMETOOLONG,
			     "dpdk: pool name '%s' has %zu bytes, at most %d",
			     name, strlen(name), (int)RTE_MEMPOOL_NAMESIZE - 1);
		return NULL;
	}
	if (n_mbufs == 0) {
		gn_error_set(-EINVAL, "dpdk: pool '%s' of 0 buffers", name);
		return NULL;
	}
	if (data_room > UINT16_MAX - RTE_PKTMBUF_HEADROOM) {
		gn_error_set(-EINVAL,
			     "dpdk: pool '%s': data room %u bytes, at most %u "
			     "(mbuf lengths are 16-bit, headroom is %u)",
			     name, data_room, UINT16_MAX - RTE_PKTMBUF_HEADROOM,
			     RTE_PKTMBUF_HEADROOM);
		return NULL;
	}
	p = calloc(1, sizeof(*p));
	if (p == NULL) {
		gn_error_set(-ENOMEM, "dpdk: pool '%s': out of host memory",
			     name);
		return NULL;
	}
	/*
	 * A per-lcore cache keeps the data path's get/put off the shared
	 * ring; an eighth of the pool (DPDK wants at most two thirds) leaves
	 * most buffers to the other lcores.
	 */
	cache = RTE_MIN(n_mbufs / 8, 256u);
	p->n_mbufs = n_mbufs;
	p->mp = rte_pktmbuf_pool_create(
		name, n_mbufs, cache, 0,
		(uint16_t)(data_room + RTE_PKTMBUF_HEADROOM),
		(int)rte_socket_id());
	if (p->mp == NULL) {
		err = rte_errno > 0 ? rte_errno : ENOMEM;
		gn_error_set(-err,
			     "dpdk: pool '%s' of %u buffers x %u bytes: %s",
			     name, n_mbufs, data_room, rte_strerror(err));
		free(p);
		return NULL;
	}
	return p;
}

void gn_dpdk_pool_destroy(struct gn_dpdk_pool **pp)
{
	struct gn_dpdk_pool *p;
	unsigned avail;

	if (pp == NULL || *pp == NULL)
		return;
	p = *pp;
	*pp = NULL;
	if (__atomic_load_n(&g_state, __ATOMIC_ACQUIRE) != ENV_UP) {
		GN_LOG(WARNING, dpdk,
		       "pool destroyed after the EAL stopped; its memory went "
		       "with the EAL");
		free(p);
		return;
	}
	avail = rte_mempool_avail_count(p->mp);
	if (avail != p->n_mbufs)
		GN_LOG(WARNING, dpdk,
		       "pool '%s' destroyed with %u of %u buffers still out",
		       p->mp->name, p->n_mbufs - avail, p->n_mbufs);
	rte_mempool_free(p->mp);
	free(p);
}

unsigned gn_dpdk_pool_avail(const struct gn_dpdk_pool *p)
{
	if (p == NULL)
		return 0;
	return rte_mempool_avail_count(p->mp);
}
