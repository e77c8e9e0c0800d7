#ifndef EMU_CUBLAS_V2_H
#define EMU_CUBLAS_V2_H
#include "cuda_runtime_api.h"
#ifdef __cplusplus
extern "C" {
#endif
typedef struct emu_blas *cublasHandle_t;
typedef enum {
	CUBLAS_STATUS_SUCCESS = 0,
	CUBLAS_STATUS_INVALID_VALUE = 7,
	CUBLAS_STATUS_ALLOC_FAILED = 3
} cublasStatus_t;
typedef enum { CUBLAS_OP_N = 0, CUBLAS_OP_T = 1 } cublasOperation_t;
typedef enum { CUBLAS_DEFAULT_MATH = 0 } cublasMath_t;
cublasStatus_t cublasCreate(cublasHandle_t *h);
cublasStatus_t cublasDestroy(cublasHandle_t h);
cublasStatus_t cublasSetStream(cublasHandle_t h, cudaStream_t s);
cublasStatus_t cublasSetMathMode(cublasHandle_t h, cublasMath_t m);
const char *cublasGetStatusName(cublasStatus_t s);
const char *cublasGetStatusString(cublasStatus_t s);
cublasStatus_t cublasSgemm_64(cublasHandle_t h, cublasOperation_t ta,
			      cublasOperation_t tb, int64_t m, int64_t n,
			      int64_t k, const float *alpha, const float *a,
			      int64_t lda, const float *b, int64_t ldb,
			      const float *beta, float *c, int64_t ldc);
cublasStatus_t cublasSgemmStridedBatched_64(
	cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int64_t m,
	int64_t n, int64_t k, const float *alpha, const float *a, int64_t lda,
	long long sa, const float *b, int64_t ldb, long long sb,
	const float *beta, float *c, int64_t ldc, long long sc, int64_t count);
#ifdef __cplusplus
}
#endif
#endif
