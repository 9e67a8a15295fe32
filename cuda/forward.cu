/* cuda/forward.cu — the FlashMask forward kernel (FlashAttention-2 structure) on tensor cores.
 * Layer: cuda <- masks (rules.h). One thread block per (query block of 16*MI*NW rows, query
 * head, batch): NW warps of MI 16-row slices each (launch_dim picks: 4 warps x 32 rows = 128-row
 * blocks at D = 64 and 128, 8 x 16 at 32 and 96, 4 x 16 at 256; the kernel option shape= (fm_kernel_options) overrides at
 * 64 and 128). Each warp keeps the Q fragments, running max, running sum and O accumulator
 * (float32) of its rows in registers while it walks the key blocks:
 *
 *   for each key block kb that is not fully masked (fm_classify_tile on the summary; the live
 *   blocks are listed ahead in shared memory, NW*32 blocks per scan, fm_cuda_list_live):
 *       S = Q K^T                       (mma.sync m16n8k16, float32 accumulation)
 *       partial tile: S = -inf where masked (fm_column_masked_bits32, bounds in shared memory)
 *       online softmax: m' = max(m, rowmax S), O *= exp(m - m'), l = l exp(m - m') + rowsum P
 *       O += P V                        (P packed to float16/bfloat16 straight from registers)
 *
 * Fully masked tiles are skipped before their K/V are loaded; unmasked tiles run no element
 * test. Each warp also classifies its own rows of a live tile (the same rule on fewer rows):
 * a warp whose rows the tile fully masks skips the arithmetic, one it leaves unmasked skips
 * the element tests. K of the next live block is fetched (cp.async) while P V of this one
 * runs, and V while S is computed. (A two-stage K/V buffer with one barrier per tile was slower
 * here, from register spills: docs/measurement-notes.md.) A row with no allowed key ends with
 * l = 0: O = 0 and LSE = -inf (docs/spec.md §1). On Hopper at D = 128, forward_wgmma.cu
 * replaces this kernel when built (cuda/heuristics.cu decides); docs/cuda.md walks through both.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "tc.cuh"
#include "softmax.cuh"
#include "tile.cuh"

/* The default block shape of the fast head dimensions (FM_FWD_SHAPE_AUTO, see launch_fast). */
#define FM_FWD_NW 4
#define FM_FWD_MI 2

template <typename T, int D, int NW, int MI>
__global__ void __launch_bounds__(NW * 32) fm_forward_kernel(const fm_attn_params p)
{
    constexpr int BC = FM_CUDA_BLOCK_K, WR = 16 * MI, BR = WR * NW, NT = NW * 32;
    constexpr int LD = D + 8; /* padded row: ldmatrix rows hit distinct banks */
    extern __shared__ __align__(16) unsigned char smem[];
    T *sQ = reinterpret_cast<T *>(smem);
    T *sK = sQ + BR * LD;
    T *sV = sK + BC * LD;
    int32_t *sCols = reinterpret_cast<int32_t *>(sV + BC * LD);
    int *sList = reinterpret_cast<int *>(sCols + BC * FM_BOUNDS); /* [NT] live key blocks */
    uint32_t *sListCls = reinterpret_cast<uint32_t *>(sList + NT); /* [NT] their warp classes */
    int *sScratch = reinterpret_cast<int *>(sListCls + NT);       /* [NW] */

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int g = lane >> 2, t = lane & 3;
    const int h = blockIdx.y, b = blockIdx.z;
    /* Last query block first: under a causal mask the last blocks have the most live tiles,
     * and starting them early leaves less of a tail when the grid drains. */
    const int r0 = (gridDim.x - 1 - blockIdx.x) * BR, r1 = min(r0 + BR, p.seqlen_q);
    const int hk = h / (p.q_heads / p.kv_heads), hm = h / (p.q_heads / p.mask_heads);
    const T *Q = static_cast<const T *>(p.q) + ((size_t)b * p.q_heads + h) * p.seqlen_q * D;
    const T *K = static_cast<const T *>(p.k) + ((size_t)b * p.kv_heads + hk) * p.seqlen_k * D;
    const T *V = static_cast<const T *>(p.v) + ((size_t)b * p.kv_heads + hk) * p.seqlen_k * D;
    const int32_t *bounds = p.bounds + ((size_t)b * p.mask_heads + hm) * p.seqlen_k * FM_BOUNDS;
    const int32_t *summary =
        p.summary + ((size_t)b * p.mask_heads + hm) * p.n_kblocks * FM_SUMMARY_WIDTH;
    const float scale_log2 = p.scale * 1.4426950408889634f; /* exp(x) = exp2(x log2 e) */
    /* This warp's rows: [w0, w1) of the sequence (empty for a warp past the end). */
    const int wrow = warp * WR, w0 = r0 + wrow, w1 = min(w0 + WR, r1);

    fm_load_tile<D, LD, NT>(sQ, Q + (size_t)r0 * D, BR, r1 - r0, tid);
    int scanned = 0; /* key blocks [0, scanned) have been listed */
    int listed = fm_cuda_list_live<NW, WR>(p, summary, &scanned, r0, r1, sList, sListCls,
                                           sScratch);
    int at = 0; /* position of kb in the list */
    int kb = listed ? sList[0] : p.n_kblocks;
    uint32_t kb_cls = listed ? sListCls[0] : 0;
    if (kb < p.n_kblocks) {
        fm_load_tile<D, LD, NT>(sK, K + (size_t)kb * BC * D, BC, p.seqlen_k - kb * BC, tid);
        fm_cuda_load_cols(sCols, bounds, kb, p.seqlen_k, tid, NT);
    }
    fm_cp_async_commit();

    float acc_o[MI][D / 8][4];
#pragma unroll
    for (int m = 0; m < MI; m++)
#pragma unroll
        for (int n = 0; n < D / 8; n++)
            for (int e = 0; e < 4; e++) acc_o[m][n][e] = 0.f;
    /* Per row: running max, and two running sums of P: of P rounded to T (O's divisor) and of
     * the float32 P (the LSE's), see the softmax below. */
    float row_max[MI][2], row_sum[MI][2], row_sum_lse[MI][2];
#pragma unroll
    for (int m = 0; m < MI; m++)
        for (int hr = 0; hr < 2; hr++)
            row_max[m][hr] = -INFINITY, row_sum[m][hr] = row_sum_lse[m][hr] = 0.f;

    while (kb < p.n_kblocks) {
        fm_cp_async_wait<0>();
        __syncthreads(); /* K(kb) and its bounds are in; every warp is done with V(kb-1) */
        fm_load_tile<D, LD, NT>(sV, V + (size_t)kb * BC * D, BC, p.seqlen_k - kb * BC, tid);
        fm_cp_async_commit();

        /* This is the list's last block: list the next live ones now, while no S or P is held
         * in registers (doing it later, at the K prefetch, made the compiler spill). */
        if (at + 1 == listed) {
            listed = fm_cuda_list_live<NW, WR>(p, summary, &scanned, r0, r1, sList, sListCls,
                                               sScratch);
            at = -1;
        }

        const int c0 = kb * BC;
        /* The tile is live for the block; for this warp's rows it may still be fully masked
         * (skip the arithmetic) or unmasked (skip the element tests): the same sound rule on
         * a smaller row range. */
        const fm_tile_class wcls = (fm_tile_class)((kb_cls >> (2 * warp)) & 3u);
        const bool live = wcls != FM_TILE_MASKED;
        const bool partial = wcls == FM_TILE_PARTIAL || c0 + BC > p.seqlen_k;

        /* A partial tile's element rule for this warp's rows, as bits per column (lane l holds
         * keys l and l + 32), made before S is held. */
        uint32_t col_bits[2] = {0u, 0u};
        if (live && partial) fm_cuda_column_bits(p, sCols, c0, w0, lane, col_bits);

        float s[MI][BC / 8][4];
        uint32_t p_tc[MI][BC / 8][2]; /* P in T, packed for P V: [rows g | g + 8] */
        if (live) {
            /* S = Q K^T for this warp's WR rows x BC keys. */
#pragma unroll
            for (int m = 0; m < MI; m++)
#pragma unroll
                for (int n = 0; n < BC / 8; n++)
                    for (int e = 0; e < 4; e++) s[m][n][e] = 0.f;
#pragma unroll
            for (int kk = 0; kk < D / 16; kk++) {
                uint32_t a[MI][4];
#pragma unroll
                for (int m = 0; m < MI; m++)
                    fm_ldsm_x4(a[m], fm_a_addr<LD>(sQ, wrow + m * 16, kk * 16, lane));
#pragma unroll
                for (int n2 = 0; n2 < BC / 16; n2++) {
                    uint32_t bf[4];
                    fm_ldsm_x4(bf, fm_bt_addr<LD>(sK, n2 * 16, kk * 16, lane));
#pragma unroll
                    for (int m = 0; m < MI; m++) {
                        fm_mma(s[m][2 * n2], a[m], bf[0], bf[1], T());
                        fm_mma(s[m][2 * n2 + 1], a[m], bf[2], bf[3], T());
                    }
                }
            }

            /* Partial tile: S = -inf where the column's bit for the row is set. */
            if (partial) fm_mask_tile<MI, BC / 8>(s, col_bits, g, t);

            /* Online softmax; O *= exp(m - m') is skipped when no row of the warp has a new
             * maximum (corr is then exactly 1), which is most tiles once a row has seen a few
             * key blocks. */
            float corr[MI][2];
            const bool rescale = fm_online_softmax<T, MI, BC / 8>(s, p_tc, row_max, row_sum,
                                                                  row_sum_lse, corr, scale_log2);
            if (__any_sync(0xffffffffu, rescale)) fm_rescale_o<MI, D / 8>(acc_o, corr);
        }

        fm_cp_async_wait<0>();
        __syncthreads(); /* V(kb) is in; every warp is done with K(kb) and the bounds */
        ++at;
        const int next = at < listed ? sList[at] : p.n_kblocks;
        kb_cls = at < listed ? sListCls[at] : 0;
        if (next < p.n_kblocks) {
            fm_load_tile<D, LD, NT>(sK, K + (size_t)next * BC * D, BC, p.seqlen_k - next * BC,
                                    tid);
            fm_cuda_load_cols(sCols, bounds, next, p.seqlen_k, tid, NT);
        }
        fm_cp_async_commit();

        if (live) {
            /* O += P V: two adjacent 16x8 blocks of P form one A fragment. */
#pragma unroll
            for (int kk = 0; kk < BC / 16; kk++) {
                uint32_t a[MI][4];
#pragma unroll
                for (int m = 0; m < MI; m++) {
                    a[m][0] = p_tc[m][2 * kk][0];
                    a[m][1] = p_tc[m][2 * kk][1];
                    a[m][2] = p_tc[m][2 * kk + 1][0];
                    a[m][3] = p_tc[m][2 * kk + 1][1];
                }
#pragma unroll
                for (int n2 = 0; n2 < D / 16; n2++) {
                    uint32_t bf[4];
                    fm_ldsm_x4_trans(bf, fm_b_addr<LD>(sV, kk * 16, n2 * 16, lane));
#pragma unroll
                    for (int m = 0; m < MI; m++) {
                        fm_mma(acc_o[m][2 * n2], a[m], bf[0], bf[1], T());
                        fm_mma(acc_o[m][2 * n2 + 1], a[m], bf[2], bf[3], T());
                    }
                }
            }
        }
        kb = next;
    }
    fm_cp_async_wait<0>();

    fm_store_o_lse<T, MI, D>(p, acc_o, row_max, row_sum, row_sum_lse, b, h, w0, g, t);
}

template <typename T, int D, int NW, int MI>
static cudaError_t launch(const fm_attn_params &p, cudaStream_t stream)
{
    constexpr int BR = 16 * MI * NW, LD = D + 8;
    const size_t smem = (size_t)(BR + 2 * FM_CUDA_BLOCK_K) * LD * sizeof(T) +
                        FM_CUDA_BLOCK_K * FM_BOUNDS * sizeof(int32_t) +
                        (2 * NW * 32 + NW) * sizeof(int); /* the live list */
    cudaError_t err = cudaFuncSetAttribute(fm_forward_kernel<T, D, NW, MI>,
                                           cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
    if (err != cudaSuccess) return err;
    dim3 grid((p.seqlen_q + BR - 1) / BR, p.q_heads, p.batch);
    fm_forward_kernel<T, D, NW, MI><<<grid, NW * 32, smem, stream>>>(p);
    return cudaGetLastError();
}

/* Block shapes at the fast head dimensions: NW warps of MI x 16 rows, as the plan says
 * (cuda/heuristics.cu; fm_fwd_shape). Two 16-row halves of a warp share each K/V fragment read
 * from shared memory, halving that traffic. */
template <typename T, int D>
static cudaError_t launch_fast(const fm_attn_params &p, int shape, cudaStream_t stream)
{
    switch (shape) {
    case FM_FWD_SHAPE_8X1: return launch<T, D, 8, 1>(p, stream);
    case FM_FWD_SHAPE_4X2: return launch<T, D, 4, 2>(p, stream);
    case FM_FWD_SHAPE_8X2: return launch<T, D, 8, 2>(p, stream);
    default: return launch<T, D, FM_FWD_NW, FM_FWD_MI>(p, stream);
    }
}

template <typename T>
static cudaError_t launch_dim(const fm_attn_params &p, int shape, cudaStream_t stream)
{
    switch (p.head_dim) {
    case 32: return launch<T, 32, 8, 1>(p, stream);
    case 64: return launch_fast<T, 64>(p, shape, stream);
    case 96: return launch<T, 96, 8, 1>(p, stream);
    case 128: return launch_fast<T, 128>(p, shape, stream);
    case 256: return launch<T, 256, 4, 1>(p, stream);
    default: return cudaErrorInvalidValue;
    }
}

cudaError_t fm_cuda_launch_forward(const fm_attn_params &p, fm_dtype dtype,
                                   const fm_kernel_plan &plan, cudaStream_t stream)
{
    if (plan.fwd_wgmma) { /* Hopper, D = 64 or 128: forward_wide.cu, _pingpong.cu or _wgmma.cu */
        const cudaError_t err = plan.fwd_wide ? fm_cuda_launch_forward_wide(p, dtype, stream)
                                : plan.fwd_pingpong
                                    ? fm_cuda_launch_forward_pingpong(p, dtype, stream)
                                    : fm_cuda_launch_forward_wgmma(p, dtype, stream);
        if (err != cudaErrorNotSupported) return err;
    }
    return dtype == FM_BFLOAT16 ? launch_dim<__nv_bfloat16>(p, plan.fwd_shape, stream)
                                : launch_dim<__half>(p, plan.fwd_shape, stream);
}
