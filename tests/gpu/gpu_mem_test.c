/*
 * GPU memory for the transports (common/gpu_mem.c) on a real GPU, through
 * the CUDA driver it opens with dlopen: which pointers are device memory,
 * a copy off the device from a thread that has no CUDA context, a dma-buf
 * export of device memory (what a GPUDirect RDMA registration takes), and
 * a TCP send refusing a device piece.
 *
 * Without the CUDA driver or a visible GPU it prints why and exits 77
 * (SKIP). A dma-buf export the driver refuses (proprietary kernel modules
 * do; the open ones export) is reported, not failed: the verbs transport
 * then stages GPU payloads, which the copy check covers.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cuda_runtime_api.h>

#include "gn_error.h"
#include "gpu_mem.h"
#include "transport.h"

#define SKIP_CODE 77
#define LEN ((size_t)3 << 20)

static int g_failures;

static void check(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "FAIL: %s (%s)\n", what, gn_last_error());
		g_failures++;
	}
}

struct copy_job {
	uint8_t *dev, *host;
	int rc;
};

static void *copy_thread(void *arg)
{
	struct copy_job *j = arg;

	j->rc = gn_gpu_copy_to_host(j->host, j->dev + 777, (2u << 20) + 3);
	return NULL;
}

static void tcp_refuses(uint8_t *dev)
{
	struct gn_listener *l = NULL;
	struct gn_conn *c = NULL;
	char url[96];
	uint8_t env[8] = {1};
	struct iovec iov = {dev, 4096};

	if (gn_listen("tcp://127.0.0.1:0", NULL, &l) != 0) {
		check(0, "listen on loopback");
		return;
	}
	snprintf(url, sizeof(url), "tcp://%s", l->addr);
	check(gn_connect(url, NULL, 5000, &c) == 0, "connect on loopback");
	if (c != NULL)
		check(gn_conn_send(c, env, sizeof(env), &iov, 1, 5000) ==
				      -EINVAL &&
			      strstr(gn_last_error(), "is GPU memory") != NULL,
		      "tcp refuses a device payload with -EINVAL");
	gn_conn_close(&c);
	gn_listener_close(&l);
}

int main(void)
{
	uint8_t *dev = NULL, *src = malloc(LEN), *got = malloc(LEN);
	void *managed = NULL;
	struct copy_job j;
	pthread_t t;
	uint64_t off = 0;
	int fd = -1, rc, ndev = 0;

	if (src == NULL || got == NULL)
		return 1;
	rc = gn_gpu_mem_enable();
	if (rc != 0) {
		printf("SKIP: %s\n", gn_last_error());
		return SKIP_CODE;
	}
	if (cudaGetDeviceCount(&ndev) != cudaSuccess || ndev == 0 ||
	    cudaMalloc((void **)&dev, LEN) != cudaSuccess) {
		printf("SKIP: no CUDA device visible\n");
		return SKIP_CODE;
	}
	for (size_t i = 0; i < LEN; i++)
		src[i] = (uint8_t)(i * 131 + 7);
	check(cudaMemcpy(dev, src, LEN, cudaMemcpyHostToDevice) == cudaSuccess,
	      "cudaMemcpy to the device");

	check(gn_mem_kind_of(dev) == GN_MEM_CUDA, "device memory is CUDA");
	check(gn_mem_kind_of(dev + LEN - 1) == GN_MEM_CUDA,
	      "its last byte is CUDA");
	check(gn_mem_kind_of(src) == GN_MEM_HOST, "malloc memory is host");
	check(gn_mem_kind_of(&rc) == GN_MEM_HOST, "stack memory is host");
	if (cudaMallocManaged(&managed, 4096, cudaMemAttachGlobal) ==
	    cudaSuccess) {
		check(gn_mem_kind_of(managed) == GN_MEM_HOST,
		      "managed memory counts as host (the CPU reads it)");
		cudaFree(managed);
	}

	/* A thread that never touched CUDA: the pointer's context is used. */
	j = (struct copy_job){.dev = dev, .host = got};
	pthread_create(&t, NULL, copy_thread, &j);
	pthread_join(t, NULL);
	check(j.rc == 0, "copy off the device from a fresh thread");
	check(j.rc == 0 && memcmp(got, src + 777, (2u << 20) + 3) == 0,
	      "the copy is bit-exact");

	rc = gn_gpu_dmabuf(dev + 5000, 1u << 20, &fd, &off);
	if (rc == 0) {
		struct stat st;

		check(fd >= 0 && fstat(fd, &st) == 0, "a dma-buf fd");
		check(off == 5000 % (uint64_t)sysconf(_SC_PAGESIZE),
		      "the offset of the span in the dma-buf");
		printf("dma-buf export: fd %d, offset %llu: GPUDirect RDMA "
		       "through dma-buf MRs is possible here\n",
		       fd, (unsigned long long)off);
		close(fd);
	} else {
		printf("dma-buf export refused (%s): the verbs transport would "
		       "stage GPU payloads here\n",
		       gn_last_error());
		check(rc == -EOPNOTSUPP || rc == -EINVAL,
		      "a refused export says -EOPNOTSUPP or -EINVAL");
	}
	check(gn_gpu_dmabuf(src, 4096, &fd, &off) != 0,
	      "no dma-buf for host memory");

	tcp_refuses(dev);
	cudaFree(dev);
	free(src);
	free(got);
	if (g_failures) {
		fprintf(stderr, "gpu_mem: %d checks failed\n", g_failures);
		return 1;
	}
	printf("gpu_mem: all checks passed\n");
	return 0;
}
