/* cuda/tc.cuh — the tensor-core and copy primitives every kernel of the CUDA layer is built from:
 * mma.sync m16n8k16 (float16 or bfloat16 in, float32 accumulate), ldmatrix (plain and
 * transposed), cp.async copies with zero fill, and packing two floats into a register (and
 * back).
 * Layer: cuda (private header, device code only). Everything here is a thin wrapper over one PTX
 * instruction; the fragment layouts they imply are spelled out once, below, because every
 * kernel depends on them.
 *
 * m16n8k16 fragments (g = lane / 4, t = lane % 4):
 *   A 16x16 row-major, 4 regs: a0 (row g, cols 2t..2t+1), a1 (row g+8, same cols),
 *                              a2 (row g, cols 2t+8..), a3 (row g+8, cols 2t+8..)
 *   B 16x8 (k x n), 2 regs:    b0 (k 2t..2t+1, col g), b1 (k 2t+8.., col g)
 *   C 16x8 float32, 4 values:  c0,c1 (row g, cols 2t, 2t+1), c2,c3 (row g+8, same cols)
 * Two C blocks side by side (16x16) are exactly one A fragment once packed: that is how P and
 * dS go from one matrix product into the next without touching shared memory.
 */
#ifndef FM_CUDA_TC_CUH
#define FM_CUDA_TC_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>

/* Per element type: its name in PTX and how to pack two floats into one 32-bit register. */
template <typename T> struct fm_tc_type;

template <> struct fm_tc_type<__half> {
    static __device__ __forceinline__ uint32_t pack(float lo, float hi)
    {
        __half2 h = __floats2half2_rn(lo, hi);
        return *reinterpret_cast<uint32_t *>(&h);
    }
    static __device__ __forceinline__ float2 unpack(uint32_t x)
    {
        return __half22float2(*reinterpret_cast<const __half2 *>(&x));
    }
    static __device__ __forceinline__ float to_float(__half x) { return __half2float(x); }
    static __device__ __forceinline__ __half from_float(float x) { return __float2half_rn(x); }
};

template <> struct fm_tc_type<__nv_bfloat16> {
    static __device__ __forceinline__ uint32_t pack(float lo, float hi)
    {
        __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
        return *reinterpret_cast<uint32_t *>(&h);
    }
    static __device__ __forceinline__ float2 unpack(uint32_t x)
    {
        return __bfloat1622float2(*reinterpret_cast<const __nv_bfloat162 *>(&x));
    }
    static __device__ __forceinline__ float to_float(__nv_bfloat16 x)
    {
        return __bfloat162float(x);
    }
    static __device__ __forceinline__ __nv_bfloat16 from_float(float x)
    {
        return __float2bfloat16_rn(x);
    }
};

/* D += A * B on one 16x8x16 block. */
__device__ __forceinline__ void fm_mma(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1,
                                       __half)
{
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
                 "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ void fm_mma(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1,
                                       __nv_bfloat16)
{
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
                 "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

__device__ __forceinline__ uint32_t fm_smem_addr(const void *p)
{
    return (uint32_t)__cvta_generic_to_shared(p);
}

/* Four 8x8 matrices; lanes 8i..8i+7 give the row addresses of matrix i. */
__device__ __forceinline__ void fm_ldsm_x4(uint32_t r[4], const void *p)
{
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(fm_smem_addr(p)));
}

__device__ __forceinline__ void fm_ldsm_x4_trans(uint32_t r[4], const void *p)
{
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(fm_smem_addr(p)));
}

/* 16-byte asynchronous copy global -> shared; copies zeros when `valid` is false (the source
 * address is then not read, but must still be a valid pointer expression). */
__device__ __forceinline__ void fm_cp_async16(void *smem, const void *gmem, bool valid)
{
    int n = valid ? 16 : 0;
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(fm_smem_addr(smem)),
                 "l"(gmem), "r"(n));
}

/* The same for one 4-byte word (cp.async.ca: 4-byte copies go through L1). */
__device__ __forceinline__ void fm_cp_async4(void *smem, const void *gmem, bool valid)
{
    int n = valid ? 4 : 0;
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(fm_smem_addr(smem)),
                 "l"(gmem), "r"(n));
}

__device__ __forceinline__ void fm_cp_async_commit() { asm volatile("cp.async.commit_group;\n"); }

template <int N> __device__ __forceinline__ void fm_cp_async_wait()
{
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

/* ---- addressing inside a row-major shared tile of LD elements per row ----
 * Two layouts, chosen by LD. Padded (LD = D + 8, the default): element (r, c) at r LD + c; the
 * 16 extra bytes per row put the 8 rows an ldmatrix reads in distinct banks. Swizzled (LD = D,
 * a multiple of 64): no padding; the 16-byte chunk c / 8 of row r is stored at chunk
 * (c / 8) ^ (r % 8), which spreads the same 8 rows over 8 distinct chunks, i.e. all 32 banks.
 * It saves the padding's shared memory (6% at D = 128) where a kernel needs the room. Every
 * access below names a whole 16-byte chunk (c a multiple of 8), as ldmatrix and cp.async do. */
template <int LD> __device__ __forceinline__ int fm_tile_offset(int r, int c)
{
    if constexpr (LD % 64 == 0)
        return r * LD + ((((c >> 3) ^ (r & 7)) << 3) | (c & 7));
    else
        return r * LD + c;
}

/* A operand (16 rows x 16 cols at (r0, c0)) from a [row][col] tile: */
template <int LD, typename T>
__device__ __forceinline__ const T *fm_a_addr(const T *tile, int r0, int c0, int lane)
{
    return tile + fm_tile_offset<LD>(r0 + (lane & 15), c0 + (lane >> 4) * 8);
}

/* B operand for two 8-wide n blocks (n0, n0+8) and k = k0..k0+15, where the tile is stored
 * [n][k] (e.g. K[key][d] for S = Q K^T): plain ldmatrix gives b0,b1 (n0) and b0,b1 (n0+8). */
template <int LD, typename T>
__device__ __forceinline__ const T *fm_bt_addr(const T *tile, int n0, int k0, int lane)
{
    return tile +
           fm_tile_offset<LD>(n0 + (lane & 7) + ((lane >> 4) << 3), k0 + ((lane >> 3) & 1) * 8);
}

/* B operand for two n blocks when the tile is stored [k][n] (e.g. V[key][d] for O = P V):
 * transposed ldmatrix gives b0,b1 (n0) and b0,b1 (n0+8). */
template <int LD, typename T>
__device__ __forceinline__ const T *fm_b_addr(const T *tile, int k0, int n0, int lane)
{
    return tile +
           fm_tile_offset<LD>(k0 + (lane & 7) + (((lane >> 3) & 1) << 3), n0 + (lane >> 4) * 8);
}

/* Copy `rows` x D elements (row stride D in global) into a tile of LD stride, 16 bytes per
 * thread per step; rows at or past `valid_rows` are zero-filled. NT threads cooperate. */
template <int D, int LD, int NT, typename T>
__device__ __forceinline__ void fm_load_tile(T *tile, const T *g, int rows, int valid_rows,
                                             int tid)
{
    constexpr int CHUNKS = D / 8; /* 8 elements of 2 bytes per 16-byte chunk */
    for (int c = tid; c < rows * CHUNKS; c += NT) {
        int r = c / CHUNKS, k = (c % CHUNKS) * 8;
        bool ok = r < valid_rows;
        fm_cp_async16(tile + fm_tile_offset<LD>(r, k), g + (ok ? (size_t)r * D + k : 0), ok);
    }
}

/* 2^x by the special-function unit (flushes subnormal results to 0; exp2(-inf) = 0). */
__device__ __forceinline__ float fm_exp2(float x)
{
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(y) : "f"(x));
    return y;
}

/* Warp-quad reductions: the four lanes holding one accumulator row. */
__device__ __forceinline__ float fm_quad_max(float x)
{
    x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 1));
    return fmaxf(x, __shfl_xor_sync(0xffffffffu, x, 2));
}

__device__ __forceinline__ float fm_quad_sum(float x)
{
    x += __shfl_xor_sync(0xffffffffu, x, 1);
    return x + __shfl_xor_sync(0xffffffffu, x, 2);
}

#endif
