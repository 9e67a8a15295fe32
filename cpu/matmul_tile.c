/* cpu/matmul_tile.c — the tile matrix products of the CPU layer, through OpenBLAS sgemm.
 * Layer: cpu <- OpenBLAS.
 *
 * Why OpenBLAS and not a hand-written micro-kernel: on the tile shapes the layer uses, single-
 * threaded sgemm runs near its large-matrix rate and well ahead of the loop kernels we tried
 * (bench/gemm_kernel.c, the meson benchmark cpu_gemm_kernel_choice; the figures:
 * docs/measurement-notes.md). So every tile product is one sgemm call.
 *
 * Threads: the callers (forward.c, backward.c) run these inside OpenMP regions, one tile per
 * thread, with OpenBLAS set to one thread for the duration of the call (fm_blas_threads_*),
 * so that OpenBLAS never starts its own threads on top of OpenMP's.
 */
#include <cblas.h>

#include "cpu_internal.h"

void fm_tile_gemm_nt(int64_t m, int64_t n, int64_t k, float alpha, const float *a, int64_t lda,
                     const float *b, int64_t ldb, float beta, float *c, int64_t ldc)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (blasint)m, (blasint)n, (blasint)k,
                alpha, a, (blasint)lda, b, (blasint)ldb, beta, c, (blasint)ldc);
}

void fm_tile_gemm_nn(int64_t m, int64_t n, int64_t k, float alpha, const float *a, int64_t lda,
                     const float *b, int64_t ldb, float beta, float *c, int64_t ldc)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (blasint)m, (blasint)n, (blasint)k,
                alpha, a, (blasint)lda, b, (blasint)ldb, beta, c, (blasint)ldc);
}

void fm_tile_gemm_tn(int64_t m, int64_t n, int64_t k, float alpha, const float *a, int64_t lda,
                     const float *b, int64_t ldb, float beta, float *c, int64_t ldc)
{
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (blasint)m, (blasint)n, (blasint)k,
                alpha, a, (blasint)lda, b, (blasint)ldb, beta, c, (blasint)ldc);
}

/* Callers of the CPU layer may run on several threads of their own at once; the OpenBLAS thread
 * count is process-wide, so the first caller in saves and lowers it, the last one out restores
 * it (an OpenMP critical section serialises the bookkeeping, for OpenMP and plain threads). */
static int blas_active_calls = 0;
static int blas_saved_threads = 1;

int fm_blas_threads_begin_single(void)
{
#pragma omp critical(fm_blas_threads)
    {
        if (blas_active_calls++ == 0) {
            blas_saved_threads = openblas_get_num_threads();
            if (blas_saved_threads != 1) openblas_set_num_threads(1);
        }
    }
    return blas_saved_threads;
}

void fm_blas_threads_end_single(int previous)
{
    (void)previous; /* the count saved by the first caller in is the one restored */
#pragma omp critical(fm_blas_threads)
    {
        if (--blas_active_calls == 0 && blas_saved_threads != 1)
            openblas_set_num_threads(blas_saved_threads);
    }
}
