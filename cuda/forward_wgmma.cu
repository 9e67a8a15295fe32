/* cuda/forward_wgmma.cu — UNVALIDATED (branch wip/wgmma-probe, written 2026-11-22 with no device
 * time left): the FlashMask forward on Hopper's warpgroup MMA (wgmma, sm_90a), D = 128.
 * Layer: cuda <- masks (rules.h, through tile.cuh).
 *
 * One block of 2 warpgroups (256 threads) per (128 query rows, head, batch); warpgroup w owns
 * rows [64 w, 64 w + 64), each of its warps 16 of them. Q, K and V sit in shared memory in the
 * 128-byte-swizzle layout wgmma reads (see cuda/experimental/wgmma_probe.cu, which checks the
 * descriptors; run it first). Per live key block (the same live list as forward.cu):
 *   S[64 x 64] = Q K^T        wgmma.m64n64k16, both operands from shared memory
 *   partial tile: -inf from the column bits (tile.cuh), per warp
 *   online softmax, P rounded to T (row sum of the rounded P, as forward.cu)
 *   O[64 x 128] += P V        wgmma.m64n128k16, P from registers, V transposed from shared memory
 * K, V and the bounds of the next live block load (cp.async) into the second stage meanwhile.
 * A warpgroup whose 64 rows the tile fully masks skips it; a warp of a live warpgroup whose 16
 * rows are fully masked contributes P = 0. The accumulator layouts per warp are mma.sync's
 * (tc.cuh), so the softmax and masking code is forward.cu's.
 *
 * Compiled only where FM_CUDA_WGMMA is defined and the target is sm_90a; the launcher returns
 * cudaErrorNotSupported otherwise, and forward.cu uses it only when FM_CUDA_WGMMA=1 is set in
 * the environment (an experiment switch until tests/cuda has passed with it).
 */
#include <math.h>

#include "kernels.h"
#include "tc.cuh"
#include "tile.cuh"

#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define FM_WGMMA_DEVICE 1
#endif

namespace {

constexpr int WG_ROWS = 64, WGS = 2, BR = WG_ROWS * WGS, BC = FM_CUDA_BLOCK_K, D = 128;
constexpr int NW = WGS * 4, NT = NW * 32;
constexpr int TILE_Q = BR * D * 2, TILE_KV = BC * D * 2; /* bytes */

/* Byte offset of (r, c) in a [rows][128] bf16/f16 tile, 128-byte swizzle, 64-column blocks. */
__device__ __forceinline__ uint32_t sw128(int r, int c, int rows)
{
    return (uint32_t)((c >> 6) * rows * 128 + r * 128 + ((((c & 63) >> 3) ^ (r & 7)) << 4) +
                      (c & 7) * 2);
}

template <typename T>
__device__ __forceinline__ void load_sw128(unsigned char *tile, const T *g, int rows, int valid,
                                           int tid)
{
    for (int i = tid; i < rows * (D / 8); i += NT) {
        const int r = i / (D / 8), c = (i % (D / 8)) * 8;
        const bool ok = r < valid;
        fm_cp_async16(tile + sw128(r, c, rows), g + (ok ? (size_t)r * D + c : 0), ok);
    }
}

__device__ __forceinline__ uint64_t desc(uint32_t addr, uint32_t lbo, uint32_t sbo)
{
    return (uint64_t)((addr >> 4) & 0x3FFF) | (uint64_t)((lbo >> 4) & 0x3FFF) << 16 |
           (uint64_t)((sbo >> 4) & 0x3FFF) << 32 | (uint64_t)1 << 62;
}

#ifdef FM_WGMMA_DEVICE
__device__ __forceinline__ void wg_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wg_commit()
{
    asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
}
__device__ __forceinline__ void wg_wait0()
{
    asm volatile("wgmma.wait_group.sync.aligned 0;\n" ::: "memory");
}

/* S[32 floats] (+)= A(desc) B(desc)^T, m64n64k16 */
template <typename T>
__device__ __forceinline__ void mma_ss(float (&d)[8][4], uint64_t da, uint64_t db, int acc);

#define FM_WG_SS(TY, NAME)                                                                         \
    template <>                                                                                    \
    __device__ __forceinline__ void mma_ss<TY>(float (&d)[8][4], uint64_t da, uint64_t db, int acc) \
    {                                                                                              \
        asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"                                  \
                     "wgmma.mma_async.sync.aligned.m64n64k16.f32." NAME "." NAME " "               \
                     "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,"                     \
                     "%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31}, "          \
                     "%32, %33, p, 1, 1, 0, 0;\n}\n"                                               \
                     : "+f"(d[0][0]), "+f"(d[0][1]), "+f"(d[0][2]), "+f"(d[0][3]),                 \
                       "+f"(d[1][0]), "+f"(d[1][1]), "+f"(d[1][2]), "+f"(d[1][3]),                 \
                       "+f"(d[2][0]), "+f"(d[2][1]), "+f"(d[2][2]), "+f"(d[2][3]),                 \
                       "+f"(d[3][0]), "+f"(d[3][1]), "+f"(d[3][2]), "+f"(d[3][3]),                 \
                       "+f"(d[4][0]), "+f"(d[4][1]), "+f"(d[4][2]), "+f"(d[4][3]),                 \
                       "+f"(d[5][0]), "+f"(d[5][1]), "+f"(d[5][2]), "+f"(d[5][3]),                 \
                       "+f"(d[6][0]), "+f"(d[6][1]), "+f"(d[6][2]), "+f"(d[6][3]),                 \
                       "+f"(d[7][0]), "+f"(d[7][1]), "+f"(d[7][2]), "+f"(d[7][3])                  \
                     : "l"(da), "l"(db), "r"(acc));                                                \
    }
FM_WG_SS(__half, "f16")
FM_WG_SS(__nv_bfloat16, "bf16")

/* O[64 floats] += A(regs) B(desc, MN-major: transposed), m64n128k16 */
template <typename T>
__device__ __forceinline__ void mma_rs(float (&d)[16][4], const uint32_t (&a)[4], uint64_t db);

#define FM_O16(i) "+f"(d[i][0]), "+f"(d[i][1]), "+f"(d[i][2]), "+f"(d[i][3])
#define FM_WG_RS(TY, NAME)                                                                         \
    template <>                                                                                    \
    __device__ __forceinline__ void mma_rs<TY>(float (&d)[16][4], const uint32_t (&a)[4],         \
                                               uint64_t db)                                        \
    {                                                                                              \
        asm volatile("wgmma.mma_async.sync.aligned.m64n128k16.f32." NAME "." NAME " "              \
                     "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,"                     \
                     "%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31,"            \
                     "%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,%46,%47,"            \
                     "%48,%49,%50,%51,%52,%53,%54,%55,%56,%57,%58,%59,%60,%61,%62,%63}, "          \
                     "{%64,%65,%66,%67}, %68, 1, 1, 1, 1;\n" /* scale-d 1: D += A B */           \
                     : FM_O16(0), FM_O16(1), FM_O16(2), FM_O16(3), FM_O16(4), FM_O16(5),           \
                       FM_O16(6), FM_O16(7), FM_O16(8), FM_O16(9), FM_O16(10), FM_O16(11),         \
                       FM_O16(12), FM_O16(13), FM_O16(14), FM_O16(15)                              \
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db));                       \
    }
FM_WG_RS(__half, "f16")
FM_WG_RS(__nv_bfloat16, "bf16")
#endif

template <typename T>
__global__ void __launch_bounds__(NT, 1) fm_forward_wgmma_kernel(const fm_attn_params p)
{
#ifdef FM_WGMMA_DEVICE
    extern __shared__ unsigned char smem_raw[];
    /* SW128 tiles need 1024-byte alignment */
    unsigned char *smem = reinterpret_cast<unsigned char *>(
        (reinterpret_cast<uintptr_t>(smem_raw) + 1023) & ~static_cast<uintptr_t>(1023));
    /* stage s of K, V and the bounds: sK + s TILE_KV, sV + s TILE_KV, sCols + s BC 4 */
    unsigned char *sQ = smem, *sK = sQ + TILE_Q, *sV = sK + 2 * TILE_KV;
    int32_t *sCols = reinterpret_cast<int32_t *>(sV + 2 * TILE_KV);
    int *sList = reinterpret_cast<int *>(sCols + 2 * BC * FM_BOUNDS);
    uint32_t *sListCls = reinterpret_cast<uint32_t *>(sList + NT);
    int *sScratch = reinterpret_cast<int *>(sListCls + NT);

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, wg = warp >> 2;
    const int g = lane >> 2, t = lane & 3;
    const int h = blockIdx.y, b = blockIdx.z;
    const int r0 = (gridDim.x - 1 - blockIdx.x) * BR, r1 = min(r0 + BR, p.seqlen_q);
    const int hk = h / (p.q_heads / p.kv_heads), hm = h / (p.q_heads / p.mask_heads);
    const T *Q = static_cast<const T *>(p.q) + ((size_t)b * p.q_heads + h) * p.seqlen_q * D;
    const T *K = static_cast<const T *>(p.k) + ((size_t)b * p.kv_heads + hk) * p.seqlen_k * D;
    const T *V = static_cast<const T *>(p.v) + ((size_t)b * p.kv_heads + hk) * p.seqlen_k * D;
    const int32_t *bounds = p.bounds + ((size_t)b * p.mask_heads + hm) * p.seqlen_k * FM_BOUNDS;
    const int32_t *summary =
        p.summary + ((size_t)b * p.mask_heads + hm) * p.n_kblocks * FM_SUMMARY_WIDTH;
    const float scale_log2 = p.scale * 1.4426950408889634f;
    const int w0 = r0 + warp * 16; /* this warp's 16 rows */

    load_sw128<T>(sQ, Q + (size_t)r0 * D, BR, r1 - r0, tid);
    int scanned = 0;
    int listed = fm_cuda_list_live<NW, 16>(p, summary, &scanned, r0, r1, sList, sListCls,
                                           sScratch);
    int at = 0, st = 0;
    int kb = listed ? sList[0] : p.n_kblocks;
    uint32_t kb_cls = listed ? sListCls[0] : 0;
    if (kb < p.n_kblocks) {
        load_sw128<T>(sK, K + (size_t)kb * BC * D, BC, p.seqlen_k - kb * BC, tid);
        load_sw128<T>(sV, V + (size_t)kb * BC * D, BC, p.seqlen_k - kb * BC, tid);
        fm_cuda_load_cols(sCols, bounds, kb, p.seqlen_k, tid, NT);
    }
    fm_cp_async_commit();

    float acc_o[16][4];
#pragma unroll
    for (int n = 0; n < 16; n++)
        for (int e = 0; e < 4; e++) acc_o[n][e] = 0.f;
    float row_max[2] = {-INFINITY, -INFINITY}, row_sum[2] = {0.f, 0.f};
    const uint32_t q_addr = (uint32_t)__cvta_generic_to_shared(sQ) + wg * WG_ROWS * 128;

    while (kb < p.n_kblocks) {
        fm_cp_async_wait<0>();
        asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); /* cp.async -> wgmma */
        __syncthreads(); /* stage st is in; every warpgroup is done with stage st ^ 1 */
        if (at + 1 == listed) {
            listed = fm_cuda_list_live<NW, 16>(p, summary, &scanned, r0, r1, sList, sListCls,
                                               sScratch);
            at = -1;
        }
        const int next = at + 1 < listed ? sList[at + 1] : p.n_kblocks;
        const uint32_t next_cls = at + 1 < listed ? sListCls[at + 1] : 0;
        if (next < p.n_kblocks) {
            load_sw128<T>(sK + (st ^ 1) * TILE_KV, K + (size_t)next * BC * D, BC, p.seqlen_k - next * BC, tid);
            load_sw128<T>(sV + (st ^ 1) * TILE_KV, V + (size_t)next * BC * D, BC, p.seqlen_k - next * BC, tid);
            fm_cuda_load_cols(sCols + (st ^ 1) * BC * FM_BOUNDS, bounds, next, p.seqlen_k, tid, NT);
        }
        fm_cp_async_commit();

        const int c0 = kb * BC;
        const uint32_t wg_bits = (kb_cls >> (8 * wg)) & 0xFFu; /* this warpgroup's 4 warps */
        const fm_tile_class wcls = (fm_tile_class)((kb_cls >> (2 * warp)) & 3u);
        bool wg_live = false;
#pragma unroll
        for (int w = 0; w < 4; w++) wg_live |= ((wg_bits >> (2 * w)) & 3u) != FM_TILE_MASKED;
        if (wg_live) { /* uniform across the warpgroup: every warp of it runs the wgmma */
            const bool partial = wcls == FM_TILE_PARTIAL || c0 + BC > p.seqlen_k;
            uint32_t col_bits[2] = {0u, 0u};
            if (partial) fm_cuda_column_bits(p, sCols + st * BC * FM_BOUNDS, c0, w0, lane, col_bits);

            /* S = Q K^T: 8 k-steps of 16 over D = 128 (32 bytes inside a 64-column block) */
            float s[8][4];
            const uint32_t k_addr = (uint32_t)__cvta_generic_to_shared(sK + st * TILE_KV);
            wg_fence();
#pragma unroll
            for (int kk = 0; kk < D / 16; kk++) {
                const uint32_t qo = (kk >> 2) * BR * 128 + (kk & 3) * 32;
                const uint32_t ko = (kk >> 2) * BC * 128 + (kk & 3) * 32;
                mma_ss<T>(s, desc(q_addr + qo, 16, 1024), desc(k_addr + ko, 16, 1024), kk > 0);
            }
            wg_commit();
            wg_wait0();

            uint32_t p_tc[8][2];
            if (wcls == FM_TILE_MASKED) {
#pragma unroll
                for (int n = 0; n < 8; n++) p_tc[n][0] = p_tc[n][1] = 0u;
            } else {
                if (partial) {
#pragma unroll
                    for (int n = 0; n < 8; n++)
#pragma unroll
                        for (int c = 0; c < 2; c++) {
                            const uint32_t rows = __shfl_sync(0xffffffffu, col_bits[n / 4],
                                                              (n % 4) * 8 + 2 * t + c) >> g;
#pragma unroll
                            for (int hr = 0; hr < 2; hr++)
                                if ((rows >> (hr * 8)) & 1u) s[n][2 * hr + c] = -INFINITY;
                        }
                }
                float corr[2];
                bool rescale = false;
#pragma unroll
                for (int hr = 0; hr < 2; hr++) {
                    float mx = -INFINITY;
#pragma unroll
                    for (int n = 0; n < 8; n++)
                        mx = fmaxf(mx, fmaxf(s[n][2 * hr], s[n][2 * hr + 1]));
                    const float m_new = fmaxf(row_max[hr], fm_quad_max(mx));
                    const float m_use = m_new == -INFINITY ? 0.f : m_new;
                    corr[hr] = fm_exp2((row_max[hr] - m_use) * scale_log2);
                    rescale |= corr[hr] != 1.f;
                    row_max[hr] = m_new;
                    const float bias = m_use * scale_log2;
                    float sum = 0.f;
#pragma unroll
                    for (int n = 0; n < 8; n++) {
                        p_tc[n][hr] = fm_tc_type<T>::pack(
                            fm_exp2(fmaf(s[n][2 * hr], scale_log2, -bias)),
                            fm_exp2(fmaf(s[n][2 * hr + 1], scale_log2, -bias)));
                        const float2 pr = fm_tc_type<T>::unpack(p_tc[n][hr]);
                        sum += pr.x + pr.y;
                    }
                    row_sum[hr] = row_sum[hr] * corr[hr] + sum;
                }
                if (__any_sync(0xffffffffu, rescale)) {
#pragma unroll
                    for (int n = 0; n < 16; n++)
#pragma unroll
                        for (int hr = 0; hr < 2; hr++)
                            acc_o[n][2 * hr] *= corr[hr], acc_o[n][2 * hr + 1] *= corr[hr];
                }
            }

            /* O += P V: 4 k-steps of 16 keys; V transposed, LBO = one 64-column block */
            const uint32_t v_addr = (uint32_t)__cvta_generic_to_shared(sV + st * TILE_KV);
            wg_fence();
#pragma unroll
            for (int kk = 0; kk < BC / 16; kk++) {
                const uint32_t a[4] = {p_tc[2 * kk][0], p_tc[2 * kk][1], p_tc[2 * kk + 1][0],
                                       p_tc[2 * kk + 1][1]};
                mma_rs<T>(acc_o, a, desc(v_addr + kk * 16 * 128, BC * 128, 1024));
            }
            wg_commit();
            wg_wait0();
        }
        ++at;
        kb = next, kb_cls = next_cls, st ^= 1;
    }
    fm_cp_async_wait<0>();

#pragma unroll
    for (int hr = 0; hr < 2; hr++) {
        const int i = w0 + g + hr * 8;
        const float l = fm_quad_sum(row_sum[hr]);
        if (i >= p.seqlen_q) continue;
        const float inv = l > 0.f ? 1.f / l : 0.f;
        T *o = static_cast<T *>(p.out) + (((size_t)b * p.q_heads + h) * p.seqlen_q + i) * D;
#pragma unroll
        for (int n = 0; n < 16; n++)
            *reinterpret_cast<uint32_t *>(o + n * 8 + 2 * t) =
                fm_tc_type<T>::pack(acc_o[n][2 * hr] * inv, acc_o[n][2 * hr + 1] * inv);
        if (t == 0)
            p.lse[((size_t)b * p.q_heads + h) * p.seqlen_q + i] =
                l > 0.f ? row_max[hr] * p.scale + logf(l) : -INFINITY;
    }
#else
    __trap(); /* not built for sm_90a: fail loudly rather than leave O unwritten */
#endif
}

template <typename T> cudaError_t launch(const fm_attn_params &p, cudaStream_t stream)
{
    const size_t smem = 1024 + TILE_Q + 4 * TILE_KV + 2 * BC * FM_BOUNDS * sizeof(int32_t) +
                        (2 * NT + NW) * sizeof(int);
    cudaError_t err = cudaFuncSetAttribute(fm_forward_wgmma_kernel<T>,
                                           cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
    if (err != cudaSuccess) return err;
    dim3 grid((p.seqlen_q + BR - 1) / BR, p.q_heads, p.batch);
    fm_forward_wgmma_kernel<T><<<grid, NT, smem, stream>>>(p);
    return cudaGetLastError();
}

} /* namespace */

cudaError_t fm_cuda_launch_forward_wgmma(const fm_attn_params &p, fm_dtype dtype,
                                         cudaStream_t stream)
{
    if (p.head_dim != D) return cudaErrorNotSupported;
    return dtype == FM_BFLOAT16 ? launch<__nv_bfloat16>(p, stream) : launch<__half>(p, stream);
}
