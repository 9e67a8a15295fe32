/* cuda/dmma.cuh — the float64 building blocks of the GPU oracle (reference_f64_*.cu): the FP64
 * tensor-core product mma.sync m8n8k4 (DMMA, sm_80 and later), 8-byte cp.async copies with zero
 * fill, and the two warp-level products every kernel of the oracle is made of.
 * Layer: cuda (private header, device code only). No float32 anywhere: every value is a double.
 *
 * m8n8k4 .f64 fragments (g = lane / 4, t = lane % 4):
 *   A 8x4 row-major, 1 double:  a0 = A[g][t]
 *   B 4x8 (k x n),   1 double:  b0 = B[t][g]
 *   C 8x8,           2 doubles: c0, c1 = C[g][2t], C[g][2t + 1]
 *
 * Shared-memory tiles are row-major with a leading dimension LD = DMAX + 4 doubles. A 64-bit
 * access is served half a warp at a time (16 lanes x 8 bytes = the 32 banks), so a half-warp is
 * conflict-free when its 16 addresses are distinct modulo 16 doubles; with LD = 4 (mod 16) both
 * patterns below are: A and B fragments read element (4 g' + t)-style addresses g' LD + t, and
 * the P-times-B product reads rows 2t + e(t) (distinct mod 4, see fm_dmma_pb) at column g.
 */
#ifndef FM_CUDA_DMMA_CUH
#define FM_CUDA_DMMA_CUH

#include <cuda_runtime.h>
#include <stdint.h>

/* d += a * b for one 8x8x4 float64 tile (the fragments above). */
__device__ __forceinline__ void fm_dmma(double (&d)[2], double a, double b)
{
    asm("mma.sync.aligned.m8n8k4.row.col.f64.f64.f64.f64 {%0, %1}, {%2}, {%3}, {%0, %1};\n"
        : "+d"(d[0]), "+d"(d[1])
        : "d"(a), "d"(b));
}

/* 8 bytes global -> shared, asynchronously; ok = false writes zeros and reads nothing. */
__device__ __forceinline__ void fm_cp_async8(void *smem, const void *gmem, bool ok)
{
    const unsigned s = (unsigned)__cvta_generic_to_shared(smem);
    asm volatile("cp.async.ca.shared.global [%0], [%1], 8, %2;\n" ::"r"(s), "l"(gmem),
                 "r"(ok ? 8 : 0)
                 : "memory");
}

__device__ __forceinline__ void fm_cp_async_commit()
{
    asm volatile("cp.async.commit_group;\n" ::: "memory");
}

/* Wait until at most N of this thread's committed groups are still in flight. */
template <int N> __device__ __forceinline__ void fm_cp_async_wait()
{
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

/* Rows [r0, r0 + R) of a row-major [S, D] float64 matrix `src` into `dst` [R][LD], columns
 * [0, DMAX): zeros past row S or column D (so padded rows and columns add nothing to a dot
 * product). Row offsets are 64-bit: S * D may exceed 2^31. NT threads share the copy. */
template <int R, int DMAX, int LD, int NT>
__device__ __forceinline__ void fm_load_rows_f64(double *dst, const double *src, int r0, int S,
                                                 int D, int tid)
{
#pragma unroll 4
    for (int i = tid; i < R * DMAX; i += NT) {
        const int r = i / DMAX, c = i % DMAX;
        const bool ok = r0 + r < S && c < D;
        fm_cp_async8(dst + r * LD + c, ok ? src + (int64_t)(r0 + r) * D + c : src, ok);
    }
}

/* acc[j] (8 x 8 C tiles, j < NJ) += A B^T over DMAX: A is 8 rows at `a`, B is 8 NJ rows at `b`
 * (both [rows][LD] in shared memory). acc[j][e] = sum_k A[g][k] B[8 j + 2 t + e][k]. Used for
 * Q K^T, dO V^T (rows of queries x keys) and K Q^T, V dO^T (keys x queries). */
template <int NJ, int DMAX, int LD>
__device__ __forceinline__ void fm_dmma_abt(double (&acc)[NJ][2], const double *a,
                                            const double *b, int g, int t)
{
#pragma unroll
    for (int kk = 0; kk < DMAX / 4; kk++) {
        const double av = a[g * LD + 4 * kk + t];
#pragma unroll
        for (int j = 0; j < NJ; j++) fm_dmma(acc[j], av, b[(8 * j + g) * LD + 4 * kk + t]);
    }
}

/* acc[n] (8 x 8 C tiles, n < NO: output columns 8 n .. 8 n + 7) += P B, where P (8 x 8 NJ) is
 * held in C-fragment form in p[NJ][2] (p[j][e] = P[g][8 j + 2 t + e]) and B is 8 NJ rows at `b`
 * ([rows][LD] in shared memory, `b` already offset to the first output column).
 * No shuffle: the k index of a product is only a summation index, so each 8-wide block j is
 * split into two k-steps whose k-slot t carries P column 2 t + e(t), with e(t) = step ^ (t / 2)
 * — a value thread t already holds — and B row 8 j + 2 t + e(t) to match. The rows 2t + e(t) of
 * one step are {0, 2, 5, 7} or {1, 3, 4, 6}: distinct mod 4, hence conflict-free with LD = 4
 * (mod 16). Used for O += P V, dQ += dS K, dV += P^T dO and dK += dS^T Q. */
template <int NJ, int NO, int LD>
__device__ __forceinline__ void fm_dmma_pb(double (&acc)[NO][2], const double (&p)[NJ][2],
                                           const double *b, int g, int t)
{
    const int hi = t >> 1;
#pragma unroll
    for (int j = 0; j < NJ; j++) {
#pragma unroll
        for (int step = 0; step < 2; step++) {
            const int e = step ^ hi;
            const double av = e ? p[j][1] : p[j][0];
            const double *brow = b + (8 * j + 2 * t + e) * LD + g;
#pragma unroll
            for (int n = 0; n < NO; n++) fm_dmma(acc[n], av, brow[8 * n]);
        }
    }
}

/* Sum of x over the four lanes of a quad (one row of a C fragment), in a fixed order. */
__device__ __forceinline__ double fm_quad_sum(double x)
{
    x += __shfl_xor_sync(0xffffffffu, x, 1);
    return x + __shfl_xor_sync(0xffffffffu, x, 2);
}

__device__ __forceinline__ double fm_quad_max(double x)
{
    x = fmax(x, __shfl_xor_sync(0xffffffffu, x, 1));
    return fmax(x, __shfl_xor_sync(0xffffffffu, x, 2));
}

#endif
