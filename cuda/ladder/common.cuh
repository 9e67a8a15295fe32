/* cuda/ladder/common.cuh — what every ladder kernel needs before its first line of arithmetic:
 * where one (batch, head)'s tensors start (fm_ladder_head, computed once instead of at the top
 * of every kernel), a plain synchronous tile copy into shared memory, and, for the CUDA-core
 * steps 1 and 2, reading two elements as floats and reducing a dot product over the G threads
 * that share one row.
 * Layer: cuda (private header, device code). Offsets are 64-bit (size_t) throughout.
 */
#ifndef FM_CUDA_LADDER_COMMON_CUH
#define FM_CUDA_LADDER_COMMON_CUH

#include <math.h>

#include "../kernels.h"
#include "../tc.cuh"

static constexpr float FM_LADDER_LOG2E = 1.4426950408889634f;
static constexpr float FM_LADDER_LN2 = 0.6931471805599453f;

/* One query head h of batch b: its rows of Q, O, dO, dQ, LSE and Delta (row_base: the index of
 * its row 0 in [B, Hq, Sq]), its key/value head's K, V, dK, dV (kv_base: row 0 in [B, Hk, Sk]),
 * and its mask head's bounds and key-block summary. */
struct fm_ladder_head {
    size_t row_base, kv_base;
    const int32_t *bounds, *summary;
    __device__ __forceinline__ fm_ladder_head(const fm_attn_params &p, int b, int h)
    {
        const int hk = h / (p.q_heads / p.kv_heads), hm = h / (p.q_heads / p.mask_heads);
        row_base = ((size_t)b * p.q_heads + h) * (size_t)p.seqlen_q;
        kv_base = ((size_t)b * p.kv_heads + hk) * (size_t)p.seqlen_k;
        bounds = p.bounds + ((size_t)b * p.mask_heads + hm) * (size_t)p.seqlen_k * FM_BOUNDS;
        summary = p.summary + ((size_t)b * p.mask_heads + hm) * (size_t)p.n_kblocks *
                                  FM_SUMMARY_WIDTH;
    }
};

/* Element x of a float16/bfloat16 tensor, as float. */
template <typename T> __device__ __forceinline__ float fm_ladder_f(const T *x, size_t i)
{
    return fm_tc_type<T>::to_float(x[i]);
}

/* Elements 2w and 2w + 1 of a row (one 32-bit word) as two floats. */
template <typename T> __device__ __forceinline__ float2 fm_ladder_pair(const T *row, int w)
{
    return fm_tc_type<T>::unpack(reinterpret_cast<const uint32_t *>(row)[w]);
}

/* Copy rows [0, rows) of a [*, D] tensor starting at g into a shared tile of LD elements per row,
 * 16 bytes per thread per step, zeros for rows at or past valid_rows. Synchronous: the caller's
 * __syncthreads() makes it visible. (Step 4 overlaps this copy with arithmetic, cp.async.) */
template <int D, int LD, int NT, typename T>
__device__ __forceinline__ void fm_ladder_load_tile(T *tile, const T *g, int rows, int valid_rows,
                                                    int tid)
{
    constexpr int CHUNKS = D / 8; /* 8 two-byte elements per 16 bytes */
    for (int c = tid; c < rows * CHUNKS; c += NT) {
        const int r = c / CHUNKS, k = (c % CHUNKS) * 8;
        uint4 v = make_uint4(0u, 0u, 0u, 0u);
        if (r < valid_rows) v = *reinterpret_cast<const uint4 *>(g + (size_t)r * D + k);
        *reinterpret_cast<uint4 *>(tile + (size_t)r * LD + k) = v;
    }
}

/* Sum over the G consecutive lanes that share one row (G a power of two, <= 32). */
template <int G> __device__ __forceinline__ float fm_ladder_group_sum(float x)
{
#pragma unroll
    for (int off = G / 2; off > 0; off >>= 1) x += __shfl_xor_sync(0xffffffffu, x, off);
    return x;
}

/* Threads per row in the CUDA-core tiled kernels (step 2): each thread owns D / G columns of a
 * row, as W = D / (2G) pairs of elements, the pairs t, t + G, t + 2G, ... (t = its lane in the
 * group), so that the G threads read G consecutive 32-bit words of a shared row: one bank each.
 * G grows with D to keep a thread's slice (and its registers) at 16 to 32 columns. */
template <int D> struct fm_ladder_group {
    static constexpr int G = D <= 64 ? 2 : D <= 128 ? 4 : 8;
    static constexpr int W = D / (2 * G);
    static_assert(D % (2 * G) == 0, "head dimension must split into pairs per thread");
};

/* Dot product of a thread's W pairs x with pairs t + G w of a row of T, summed over the group. */
template <int G, int W, typename T>
__device__ __forceinline__ float fm_ladder_group_dot(const float2 (&x)[W], const T *row, int t)
{
    float acc = 0.f;
#pragma unroll
    for (int w = 0; w < W; w++) {
        const float2 y = fm_ladder_pair(row, t + G * w);
        acc = fmaf(x[w].x, y.x, fmaf(x[w].y, y.y, acc));
    }
    return fm_ladder_group_sum<G>(acc);
}

/* acc += a * (pairs t + G w of a row of T). */
template <int G, int W, typename T>
__device__ __forceinline__ void fm_ladder_group_axpy(float2 (&acc)[W], float a, const T *row,
                                                     int t)
{
#pragma unroll
    for (int w = 0; w < W; w++) {
        const float2 y = fm_ladder_pair(row, t + G * w);
        acc[w].x = fmaf(a, y.x, acc[w].x);
        acc[w].y = fmaf(a, y.y, acc[w].y);
    }
}

/* A thread's W pairs of global row `row` (zeros when !valid), as floats times `scale`. */
template <int G, int W, typename T>
__device__ __forceinline__ void fm_ladder_group_load(float2 (&x)[W], const T *row, bool valid,
                                                     int t, float scale)
{
#pragma unroll
    for (int w = 0; w < W; w++) {
        const float2 y = valid ? fm_ladder_pair(row, t + G * w) : make_float2(0.f, 0.f);
        x[w] = make_float2(y.x * scale, y.y * scale);
    }
}

/* Write a thread's W pairs, times `scale`, to global row `row` as T. */
template <int G, int W, typename T>
__device__ __forceinline__ void fm_ladder_group_store(T *row, const float2 (&x)[W], int t,
                                                      float scale)
{
#pragma unroll
    for (int w = 0; w < W; w++)
        reinterpret_cast<uint32_t *>(row)[t + G * w] =
            fm_tc_type<T>::pack(x[w].x * scale, x[w].y * scale);
}

/* Dispatch on the head dimension, then on the element type: LAUNCH<T, D>::run(p, stream). */
template <template <typename, int> class LAUNCH, typename T>
static cudaError_t fm_ladder_dispatch_dim(const fm_attn_params &p, cudaStream_t stream)
{
    switch (p.head_dim) {
    case 32: return LAUNCH<T, 32>::run(p, stream);
    case 64: return LAUNCH<T, 64>::run(p, stream);
    case 96: return LAUNCH<T, 96>::run(p, stream);
    case 128: return LAUNCH<T, 128>::run(p, stream);
    case 256: return LAUNCH<T, 256>::run(p, stream);
    default: return cudaErrorInvalidValue;
    }
}

template <template <typename, int> class LAUNCH>
static cudaError_t fm_ladder_dispatch(const fm_attn_params &p, fm_dtype dtype,
                                      cudaStream_t stream)
{
    return dtype == FM_BFLOAT16 ? fm_ladder_dispatch_dim<LAUNCH, __nv_bfloat16>(p, stream)
                                : fm_ladder_dispatch_dim<LAUNCH, __half>(p, stream);
}

/* Opt a kernel into more than 48 KiB of dynamic shared memory when it needs it. */
template <typename K> static cudaError_t fm_ladder_smem(K kernel, size_t bytes)
{
    if (bytes <= 48 * 1024) return cudaSuccess;
    return cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes);
}

#endif
