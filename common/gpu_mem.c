/*
 * GPU memory for the transports (gpu_mem.h): the CUDA driver's answers,
 * reached through dlopen("libcuda.so.1") so that nothing links against
 * CUDA and a process without it never loads it.
 */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "gn_error.h"
#include "gpu_mem.h"

/* The few driver API types and values used here (cuda.h, CUDA 11.7+). */
typedef int cu_result;
typedef unsigned long long cu_ptr;
typedef void *cu_ctx;
typedef int cu_dev;

#define CU_PTR_CONTEXT 1
#define CU_PTR_MEMORY_TYPE 2
#define CU_PTR_IS_MANAGED 8
#define CU_PTR_DEVICE_ORDINAL 9
#define CU_MEMORYTYPE_DEVICE 2
#define CU_DEV_DMA_BUF_SUPPORTED 124
#define CU_RANGE_DMA_BUF_FD 1

static struct {
	cu_result (*init)(unsigned);
	cu_result (*ptr_attr)(void *, int, cu_ptr);
	cu_result (*addr_range)(cu_ptr *, size_t *, cu_ptr);
	cu_result (*handle)(void *, cu_ptr, size_t, int, unsigned long long);
	cu_result (*dtoh)(void *, cu_ptr, size_t);
	cu_result (*push)(cu_ctx);
	cu_result (*pop)(cu_ctx *);
	cu_result (*dev_get)(cu_dev *, int);
	cu_result (*dev_attr)(int *, int, cu_dev);
	cu_result (*err_str)(cu_result, const char **);
} cu;

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_bool g_enabled;
static const struct gn_gpu_driver *g_fake;

static const char *cu_err(cu_result r)
{
	const char *s = NULL;

	if (cu.err_str == NULL || cu.err_str(r, &s) != 0 || s == NULL)
		return "unknown CUDA error";
	return s;
}

int gn_gpu_mem_enable(void)
{
	static const struct {
		const char *name;
		void **fn;
	} syms[] = {
		{"cuInit", (void **)&cu.init},
		{"cuPointerGetAttribute", (void **)&cu.ptr_attr},
		{"cuMemGetAddressRange_v2", (void **)&cu.addr_range},
		{"cuMemGetHandleForAddressRange", (void **)&cu.handle},
		{"cuMemcpyDtoH_v2", (void **)&cu.dtoh},
		{"cuCtxPushCurrent_v2", (void **)&cu.push},
		{"cuCtxPopCurrent_v2", (void **)&cu.pop},
		{"cuDeviceGet", (void **)&cu.dev_get},
		{"cuDeviceGetAttribute", (void **)&cu.dev_attr},
		{"cuGetErrorString", (void **)&cu.err_str},
	};
	void *h;
	int rc = 0;

	if (atomic_load(&g_enabled))
		return 0;
	pthread_mutex_lock(&g_lock);
	if (atomic_load(&g_enabled))
		goto out;
	h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
	if (h == NULL) {
		rc = gn_error_set(
			-ENOENT,
			"gpu memory: cannot open the CUDA driver "
			"(libcuda.so.1): %s; payloads are host memory",
			dlerror());
		goto out;
	}
	for (size_t i = 0; i < sizeof(syms) / sizeof(syms[0]); i++) {
		*syms[i].fn = dlsym(h, syms[i].name);
		if (*syms[i].fn == NULL) {
			/* cuMemGetHandleForAddressRange came with CUDA 11.7. */
			rc = gn_error_set(-ENOENT,
					  "gpu memory: the CUDA driver has no "
					  "%s (too old; 11.7 or later "
					  "expected)",
					  syms[i].name);
			memset(&cu, 0, sizeof(cu));
			dlclose(h);
			goto out;
		}
	}
	if (cu.init(0) != 0) {
		rc = gn_error_set(-ENOENT, "gpu memory: cuInit failed");
		memset(&cu, 0, sizeof(cu));
		dlclose(h);
		goto out;
	}
	atomic_store(&g_enabled, true);
out:
	pthread_mutex_unlock(&g_lock);
	return rc;
}

bool gn_gpu_mem_enabled(void)
{
	return g_fake != NULL || atomic_load(&g_enabled);
}

void gn_gpu_mem_set_driver(const struct gn_gpu_driver *d)
{
	g_fake = d;
}

enum gn_mem_kind gn_mem_kind_of(const void *p)
{
	unsigned int type = 0;
	int managed = 0;

	if (g_fake != NULL)
		return g_fake->kind_of(p);
	if (!atomic_load_explicit(&g_enabled, memory_order_relaxed) ||
	    p == NULL)
		return GN_MEM_HOST;
	/* Memory CUDA never saw answers CUDA_ERROR_INVALID_VALUE: host. */
	if (cu.ptr_attr(&type, CU_PTR_MEMORY_TYPE, (cu_ptr)(uintptr_t)p) != 0 ||
	    type != CU_MEMORYTYPE_DEVICE)
		return GN_MEM_HOST;
	/* Managed memory is readable by the CPU: treat it as host. */
	if (cu.ptr_attr(&managed, CU_PTR_IS_MANAGED, (cu_ptr)(uintptr_t)p) ==
		    0 &&
	    managed)
		return GN_MEM_HOST;
	return GN_MEM_CUDA;
}

int gn_gpu_copy_to_host(void *dst, const void *src, size_t len)
{
	cu_ctx ctx = NULL, old;
	cu_result r;

	if (g_fake != NULL)
		return g_fake->copy_to_host(dst, src, len);
	if (!atomic_load(&g_enabled))
		return gn_error_set(-EINVAL, "gpu memory: not enabled");
	r = cu.ptr_attr(&ctx, CU_PTR_CONTEXT, (cu_ptr)(uintptr_t)src);
	if (r != 0)
		return gn_error_set(-EINVAL,
				    "gpu memory: %p is not device memory: %s",
				    src, cu_err(r));
	r = cu.push(ctx);
	if (r != 0)
		return gn_error_set(-EIO, "gpu memory: cuCtxPushCurrent: %s",
				    cu_err(r));
	r = cu.dtoh(dst, (cu_ptr)(uintptr_t)src, len);
	(void)cu.pop(&old);
	if (r != 0)
		return gn_error_set(-EIO,
				    "gpu memory: copying %zu bytes from the "
				    "device: %s",
				    len, cu_err(r));
	return 0;
}

int gn_gpu_dmabuf(const void *p, size_t len, int *fd, uint64_t *offset)
{
	uintptr_t pg = (uintptr_t)sysconf(_SC_PAGESIZE);
	uintptr_t a = (uintptr_t)p, start = a & ~(pg - 1);
	uintptr_t end = (a + len + pg - 1) & ~(pg - 1);
	cu_ptr base = 0;
	size_t size = 0;
	int ord = -1, ok = 0, h = -1;
	cu_dev dev;
	cu_result r;

	if (g_fake != NULL)
		return g_fake->dmabuf(p, len, fd, offset);
	if (!atomic_load(&g_enabled) || len == 0)
		return gn_error_set(-EINVAL, "gpu memory: not enabled");
	r = cu.ptr_attr(&ord, CU_PTR_DEVICE_ORDINAL, (cu_ptr)a);
	if (r == 0)
		r = cu.dev_get(&dev, ord);
	if (r == 0)
		r = cu.dev_attr(&ok, CU_DEV_DMA_BUF_SUPPORTED, dev);
	if (r != 0 || !ok)
		return gn_error_set(-EOPNOTSUPP,
				    "gpu memory: device %d cannot export "
				    "dma-bufs%s%s",
				    ord, r ? ": " : "", r ? cu_err(r) : "");
	r = cu.addr_range(&base, &size, (cu_ptr)a);
	if (r != 0)
		return gn_error_set(-EINVAL,
				    "gpu memory: %p is not device memory: %s",
				    p, cu_err(r));
	if (start < base || end > base + size)
		return gn_error_set(-EINVAL,
				    "gpu memory: %zu bytes at %p widened to "
				    "pages leave their allocation (%zu bytes "
				    "at 0x%llx)",
				    len, p, size, base);
	r = cu.handle(&h, (cu_ptr)start, end - start, CU_RANGE_DMA_BUF_FD, 0);
	if (r != 0)
		return gn_error_set(-EOPNOTSUPP,
				    "gpu memory: no dma-buf for %zu bytes at "
				    "%p: %s",
				    len, p, cu_err(r));
	*fd = h;
	*offset = a - start;
	return 0;
}
