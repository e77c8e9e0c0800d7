/*
 * Memory registered for attached payloads (gn_dpdk_mem_register in
 * port.h): a short table of page-rounded regions, each registered with
 * DPDK as external memory and mapped for DMA by every PCI port that
 * attaches payloads. The data path looks payloads up here to decide
 * between attaching and copying.
 */
/* rte_dev_dma_map() is still experimental in DPDK 22.11. */
#define ALLOW_EXPERIMENTAL_API 1

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <unistd.h>

#include <rte_common.h>
#include <rte_dev.h>
#include <rte_errno.h>
#include <rte_memory.h>

#include "gn_error.h"
#include "port_internal.h"

#define MAX_MEM_REGIONS 64
#define MAX_PORTS 32

struct mem_region {
	uintptr_t base; /* page-aligned */
	size_t len;	/* whole pages */
	uintptr_t user; /* the address the caller registered */
	rte_iova_t iova;
};

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static struct mem_region g_regions[MAX_MEM_REGIONS];
static int g_nb_regions;
static struct gn_dpdk_port *g_ports[MAX_PORTS];

static bool maps_dma(const struct gn_dpdk_port *p)
{
	return p != NULL && p->kind == GN_DPDK_PORT_PCI && p->attach_ok;
}

void gn_dpdk_mem_port_add(struct gn_dpdk_port *p)
{
	pthread_mutex_lock(&g_lock);
	for (int i = 0; i < MAX_PORTS; i++)
		if (g_ports[i] == NULL) {
			g_ports[i] = p;
			break;
		}
	for (int i = 0; maps_dma(p) && i < g_nb_regions; i++) {
		struct mem_region *r = &g_regions[i];

		if (rte_dev_dma_map(p->dev, (void *)r->base, r->iova, r->len) !=
		    0)
			GN_LOG(WARNING, dpdk_port,
			       "%s: DMA map of %zu bytes at %p: %s", p->desc,
			       r->len, (void *)r->base,
			       rte_strerror(rte_errno));
	}
	pthread_mutex_unlock(&g_lock);
}

void gn_dpdk_mem_port_remove(struct gn_dpdk_port *p)
{
	pthread_mutex_lock(&g_lock);
	for (int i = 0; i < MAX_PORTS; i++)
		if (g_ports[i] == p)
			g_ports[i] = NULL;
	pthread_mutex_unlock(&g_lock);
}

int gn_dpdk_mem_register(void *addr, size_t len)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);
	uintptr_t base, end;
	rte_iova_t iova;
	int rc;

	if (addr == NULL || len == 0)
		return gn_error_set(-EINVAL,
				    "dpdk mem: register %p of %zu bytes; "
				    "expected memory and a length",
				    addr, len);
	if (!gn_port_eal_running())
		return gn_error_set(-ENODEV,
				    "dpdk mem: the EAL is not running; call "
				    "gn_dpdk_env_init() first");
	base = RTE_ALIGN_FLOOR((uintptr_t)addr, pg);
	end = RTE_ALIGN_CEIL((uintptr_t)addr + len, pg);
	pthread_mutex_lock(&g_lock);
	if (g_nb_regions == MAX_MEM_REGIONS) {
		pthread_mutex_unlock(&g_lock);
		return gn_error_set(-ENOSPC,
				    "dpdk mem: %d regions registered already, "
				    "the most there can be",
				    MAX_MEM_REGIONS);
	}
	for (int i = 0; i < g_nb_regions; i++) {
		struct mem_region *r = &g_regions[i];

		if (base < r->base + r->len && r->base < end) {
			pthread_mutex_unlock(&g_lock);
			return gn_error_set(
				-EEXIST,
				"dpdk mem: %p+%zu (pages %#lx..%#lx) "
				"overlaps the region registered at "
				"%p",
				addr, len, (unsigned long)base,
				(unsigned long)end, (void *)r->user);
		}
	}
	rc = rte_extmem_register((void *)base, end - base, NULL, 0, pg);
	if (rc != 0) {
		rc = rte_errno > 0 ? -rte_errno : -EIO;
		pthread_mutex_unlock(&g_lock);
		return gn_error_set(rc,
				    "dpdk mem: registering %zu bytes at %p "
				    "with DPDK: %s",
				    end - base, (void *)base,
				    rte_strerror(-rc));
	}
	iova = rte_eal_iova_mode() == RTE_IOVA_VA ? (rte_iova_t)base
						  : RTE_BAD_IOVA;
	g_regions[g_nb_regions++] = (struct mem_region){.base = base,
							.len = end - base,
							.user = (uintptr_t)addr,
							.iova = iova};
	for (int i = 0; i < MAX_PORTS; i++) {
		struct gn_dpdk_port *p = g_ports[i];

		if (maps_dma(p) && rte_dev_dma_map(p->dev, (void *)base, iova,
						   end - base) != 0)
			GN_LOG(WARNING, dpdk_port,
			       "%s: DMA map of %zu bytes at %p: %s", p->desc,
			       end - base, (void *)base,
			       rte_strerror(rte_errno));
	}
	pthread_mutex_unlock(&g_lock);
	return 0;
}

int gn_dpdk_mem_unregister(void *addr)
{
	pthread_mutex_lock(&g_lock);
	for (int i = 0; i < g_nb_regions; i++) {
		struct mem_region r = g_regions[i];

		if (r.user != (uintptr_t)addr)
			continue;
		for (int k = 0; k < MAX_PORTS; k++) {
			struct gn_dpdk_port *p = g_ports[k];

			if (maps_dma(p))
				(void)rte_dev_dma_unmap(p->dev, (void *)r.base,
							r.iova, r.len);
		}
		if (rte_extmem_unregister((void *)r.base, r.len) != 0)
			GN_LOG(WARNING, dpdk_port,
			       "unregistering %zu bytes at %p: %s", r.len,
			       (void *)r.base, rte_strerror(rte_errno));
		g_regions[i] = g_regions[--g_nb_regions];
		pthread_mutex_unlock(&g_lock);
		return 0;
	}
	pthread_mutex_unlock(&g_lock);
	return gn_error_set(-ENOENT, "dpdk mem: no region registered at %p",
			    addr);
}

/* The IOVA of [addr, addr + len) if it lies in one registered region. */
bool gn_dpdk_mem_lookup(const void *addr, uint32_t len, rte_iova_t *iova)
{
	uintptr_t a = (uintptr_t)addr;
	bool found = false;

	pthread_mutex_lock(&g_lock);
	for (int i = 0; i < g_nb_regions; i++) {
		struct mem_region *r = &g_regions[i];

		if (a >= r->base && a + len <= r->base + r->len) {
			*iova = r->iova == RTE_BAD_IOVA
					? RTE_BAD_IOVA
					: r->iova + (a - r->base);
			found = true;
			break;
		}
	}
	pthread_mutex_unlock(&g_lock);
	return found;
}
