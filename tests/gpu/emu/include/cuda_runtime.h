/* Kernel-side shim: compile CUDA kernels as host C++ (emulation only). */
#ifndef EMU_CUDA_RUNTIME_H
#define EMU_CUDA_RUNTIME_H
#include "cuda_runtime_api.h"
#include <functional>
#include <math.h>
#include <stdint.h>
#include <string.h>
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static
struct dim3 {
	unsigned int x, y, z;
};
extern dim3 emu_block_idx, emu_block_dim, emu_grid_dim;
extern thread_local unsigned int emu_thread_x;
#define threadIdx (dim3{emu_thread_x, 0, 0})
#define blockIdx emu_block_idx
#define blockDim emu_block_dim
#define gridDim emu_grid_dim
void __syncthreads(void);
double emu_shfl_xor(double v, int o);
#define __shfl_xor_sync(m, v, o) emu_shfl_xor(v, o)
int atomicCAS(int *p, int cmp, int val);
inline float __uint_as_float(uint32_t u)
{
	float f;
	memcpy(&f, &u, 4);
	return f;
}
inline uint32_t __float_as_uint(float f)
{
	uint32_t u;
	memcpy(&u, &f, 4);
	return u;
}
void emu_run(unsigned grid, unsigned block, bool sync,
	     const std::function<void()> &body);
template <typename... P, typename... A>
void emu_launch(unsigned grid, unsigned block, size_t smem, cudaStream_t s,
		bool sync, void (*k)(P...), A... a)
{
	(void)smem;
	(void)s;
	emu_run(grid, block, sync, [=]() { k(((P)a)...); });
}
#endif
