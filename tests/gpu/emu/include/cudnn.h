#ifndef EMU_CUDNN_H
#define EMU_CUDNN_H
#include "cuda_runtime_api.h"
#ifdef __cplusplus
extern "C" {
#endif
#define CUDNN_MAJOR 9
typedef struct emu_dnn *cudnnHandle_t;
typedef struct emu_tensor *cudnnTensorDescriptor_t;
typedef struct emu_filter *cudnnFilterDescriptor_t;
typedef struct emu_conv *cudnnConvolutionDescriptor_t;
typedef enum {
	CUDNN_STATUS_SUCCESS = 0,
	CUDNN_STATUS_BAD_PARAM = 2000,
	CUDNN_STATUS_NOT_SUPPORTED = 3000,
	CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED = 4003,
	CUDNN_STATUS_INTERNAL_ERROR_DEVICE_ALLOCATION_FAILED = 4004,
} cudnnStatus_t;
#define CUDNN_STATUS_CATEGORY(c) ((c) / 1000 * 1000)
typedef enum { CUDNN_TENSOR_NCHW = 0 } cudnnTensorFormat_t;
typedef enum { CUDNN_DATA_FLOAT = 0 } cudnnDataType_t;
typedef enum {
	CUDNN_CONVOLUTION = 0,
	CUDNN_CROSS_CORRELATION = 1
} cudnnConvolutionMode_t;
typedef enum {
	CUDNN_DEFAULT_MATH = 0,
	CUDNN_TENSOR_OP_MATH = 1,
	CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION = 2,
	CUDNN_FMA_MATH = 3
} cudnnMathType_t;
typedef enum {
	CUDNN_NON_DETERMINISTIC = 0,
	CUDNN_DETERMINISTIC = 1
} cudnnDeterminism_t;
typedef enum {
	CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM = 0,
	CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM = 1,
	CUDNN_CONVOLUTION_FWD_ALGO_GEMM = 2,
	CUDNN_CONVOLUTION_FWD_ALGO_DIRECT = 3,
	CUDNN_CONVOLUTION_FWD_ALGO_FFT = 4,
	CUDNN_CONVOLUTION_FWD_ALGO_FFT_TILING = 5,
	CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD = 6,
	CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD_NONFUSED = 7,
	CUDNN_CONVOLUTION_FWD_ALGO_COUNT = 8
} cudnnConvolutionFwdAlgo_t;
typedef struct {
	cudnnConvolutionFwdAlgo_t algo;
	cudnnStatus_t status;
	float time;
	size_t memory;
	cudnnDeterminism_t determinism;
	cudnnMathType_t mathType;
	int reserved[3];
} cudnnConvolutionFwdAlgoPerf_t;
const char *cudnnGetErrorString(cudnnStatus_t s);
cudnnStatus_t cudnnCreate(cudnnHandle_t *h);
cudnnStatus_t cudnnDestroy(cudnnHandle_t h);
cudnnStatus_t cudnnSetStream(cudnnHandle_t h, cudaStream_t s);
cudnnStatus_t cudnnCreateTensorDescriptor(cudnnTensorDescriptor_t *d);
cudnnStatus_t cudnnDestroyTensorDescriptor(cudnnTensorDescriptor_t d);
cudnnStatus_t cudnnCreateFilterDescriptor(cudnnFilterDescriptor_t *d);
cudnnStatus_t cudnnDestroyFilterDescriptor(cudnnFilterDescriptor_t d);
cudnnStatus_t cudnnCreateConvolutionDescriptor(cudnnConvolutionDescriptor_t *d);
cudnnStatus_t cudnnDestroyConvolutionDescriptor(cudnnConvolutionDescriptor_t d);
cudnnStatus_t cudnnSetTensor4dDescriptor(cudnnTensorDescriptor_t d,
					 cudnnTensorFormat_t f,
					 cudnnDataType_t t, int n, int c, int h,
					 int w);
cudnnStatus_t cudnnSetFilter4dDescriptor(cudnnFilterDescriptor_t d,
					 cudnnDataType_t t,
					 cudnnTensorFormat_t f, int k, int c,
					 int h, int w);
cudnnStatus_t cudnnSetConvolution2dDescriptor(cudnnConvolutionDescriptor_t d,
					      int ph, int pw, int u, int v,
					      int dh, int dw,
					      cudnnConvolutionMode_t m,
					      cudnnDataType_t t);
cudnnStatus_t cudnnSetConvolutionGroupCount(cudnnConvolutionDescriptor_t d,
					    int g);
cudnnStatus_t cudnnSetConvolutionMathType(cudnnConvolutionDescriptor_t d,
					  cudnnMathType_t m);
cudnnStatus_t cudnnGetConvolutionNdForwardOutputDim(
	cudnnConvolutionDescriptor_t d, cudnnTensorDescriptor_t x,
	cudnnFilterDescriptor_t w, int nb, int *dims);
cudnnStatus_t cudnnGetConvolutionForwardAlgorithm_v7(
	cudnnHandle_t h, cudnnTensorDescriptor_t x, cudnnFilterDescriptor_t w,
	cudnnConvolutionDescriptor_t c, cudnnTensorDescriptor_t y, int req,
	int *got, cudnnConvolutionFwdAlgoPerf_t *perf);
cudnnStatus_t cudnnGetConvolutionForwardWorkspaceSize(
	cudnnHandle_t h, cudnnTensorDescriptor_t x, cudnnFilterDescriptor_t w,
	cudnnConvolutionDescriptor_t c, cudnnTensorDescriptor_t y,
	cudnnConvolutionFwdAlgo_t a, size_t *size);
cudnnStatus_t cudnnConvolutionForward(cudnnHandle_t h, const void *alpha,
				      cudnnTensorDescriptor_t xd, const void *x,
				      cudnnFilterDescriptor_t wd, const void *w,
				      cudnnConvolutionDescriptor_t cd,
				      cudnnConvolutionFwdAlgo_t a, void *ws,
				      size_t wss, const void *beta,
				      cudnnTensorDescriptor_t yd, void *y);
cudnnStatus_t cudnnAddTensor(cudnnHandle_t h, const void *alpha,
			     cudnnTensorDescriptor_t ad, const void *a,
			     const void *beta, cudnnTensorDescriptor_t cd,
			     void *c);
#ifdef __cplusplus
}
#endif
#endif
