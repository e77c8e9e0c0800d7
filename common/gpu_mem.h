/*
 * GPU memory that transports may be handed: CUDA device memory in the
 * payload of gn_conn_send().
 *
 * A process that has GPU tensors calls gn_gpu_mem_enable() once. From then
 * on the transports ask the CUDA driver (libcuda.so.1, opened with dlopen,
 * so nothing here links against CUDA) what each payload piece is. Before
 * that call, or where the driver cannot be opened, every pointer is host
 * memory and no driver call is made: a process without GPUs pays nothing.
 *
 * Only transports whose ops carry GN_TRANSPORT_CAP_GPU_MEMORY take GPU
 * memory (verbs: RDMA WRITEs straight from it through a dma-buf memory
 * registration, GPUDirect RDMA, or through its pinned-host staging ring
 * when the NIC cannot register it); gn_conn_send() refuses GPU pieces on
 * the others with an error naming the transport.
 */
#ifndef GN_COMMON_GPU_MEM_H
#define GN_COMMON_GPU_MEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum gn_mem_kind {
	GN_MEM_HOST = 0,
	GN_MEM_CUDA = 1, /* CUDA device memory (cudaMalloc, cuMemAlloc) */
};

/*
 * Open the CUDA driver's entry points. 0, or -ENOENT with the error text
 * set when libcuda.so.1 or one of its functions is missing (every pointer
 * then stays host memory). Idempotent and thread safe.
 */
int gn_gpu_mem_enable(void);
bool gn_gpu_mem_enabled(void);

/* GN_MEM_CUDA when enabled and the driver says p is device memory. */
enum gn_mem_kind gn_mem_kind_of(const void *p);

/*
 * Copy len bytes of device memory at src into host memory at dst, on the
 * calling thread (the pointer's own CUDA context is made current for the
 * copy). 0 or a negative code with the error text set.
 */
int gn_gpu_copy_to_host(void *dst, const void *src, size_t len);

/*
 * A dma-buf file descriptor for the device memory holding [p, p + len)
 * (the span widened to whole host pages, which must lie inside one
 * allocation), and p's offset in it: what ibv_reg_dmabuf_mr() takes. The
 * caller closes *fd. 0, or -EOPNOTSUPP / -EINVAL with the error text set
 * (the device or driver cannot export dma-bufs, the span is not device
 * memory, or it crosses its allocation).
 */
int gn_gpu_dmabuf(const void *p, size_t len, int *fd, uint64_t *offset);

/*
 * Tests only: answer the three questions above with these functions
 * instead of the driver's (NULL restores the driver; not thread safe).
 */
struct gn_gpu_driver {
	enum gn_mem_kind (*kind_of)(const void *p);
	int (*copy_to_host)(void *dst, const void *src, size_t len);
	int (*dmabuf)(const void *p, size_t len, int *fd, uint64_t *offset);
};
void gn_gpu_mem_set_driver(const struct gn_gpu_driver *d);

#endif
