/* cuda/backward_wgmma.cu — the dK/dV (+ dQ) kernel of the FlashMask backward on Hopper's
 * warpgroup MMA (wgmma, sm_90a), D = 128; the same function as backward.cu's fm_dkdv_kernel,
 * which it replaces there when built (see fm_cuda_launch_dkdv_wgmma).
 * Layer: cuda <- masks (rules.h, through tile.cuh).
 *
 * One warpgroup (128 threads) per (64-key block, kv head, batch); two blocks share a
 * multiprocessor. K and V stay in shared memory; dK and dV (64 keys x 128, float32) stay in the
 * warpgroup's registers while it walks every query head of the GQA group and every query block
 * of 64 rows whose tile is not fully masked. Per query block (Q, dO, LSE, Delta two stages deep,
 * loaded by cp.async while the previous block is computed):
 *   S^T  = K Q^T,  dP^T = V dO^T          wgmma.m64n64k16, both operands K-major from smem
 *   P^T  = exp(S^T s - LSE), 0 where masked (per-key row bits, tile.cuh),
 *   dS^T = P^T (dP^T - Delta)             in registers (the accumulator layout is mma.sync's)
 *   dV  += P^T dO,  dK += dS^T Q           wgmma.m64n128k16, A = P^T / dS^T from registers,
 *                                           B = dO / Q read transposed (MN-major) from the same
 *                                           tiles that were K-major B above
 *   dQ  += dS K  (default mode)            dS^T to shared memory, then wgmma.m64n64k16 with
 *                                           both operands transposed, two halves of D, added to
 *                                           the float32 accumulator with atomics
 * Per tile this reads each operand from shared memory once per warpgroup, where the mma.sync
 * kernel's four warps each read all of Q and dO twice: that traffic bound it (ncu: L1/shared
 * 86%, tensor 35%).
 */
#include <math.h>

#include "kernels.h"
#include "tc.cuh"
#include "tile.cuh"
#include "wgmma.cuh"

namespace {

constexpr int D = 128, BC = FM_CUDA_BLOCK_K, BR = 64, NT = 128;
constexpr int TILE = 64 * D * 2;             /* bytes of a 64-row tile of K, V, Q or dO */
constexpr int TILE_DS = BC * BR * 2;         /* dS^T [keys][queries] */
constexpr float LOG2E = 1.4426950408889634f;

/* Shared memory, in bytes from a 1024-aligned base. */
constexpr int OFF_K = 0, OFF_V = TILE, OFF_Q = 2 * TILE, OFF_DO = 4 * TILE, OFF_DS = 6 * TILE;
constexpr int OFF_LSE = OFF_DS + TILE_DS;          /* float [2][BR] (log2 units) */
constexpr int OFF_DELTA = OFF_LSE + 2 * BR * 4;    /* float [2][BR] */
constexpr int OFF_COLS = OFF_DELTA + 2 * BR * 4;   /* int32 [BC][4] */
constexpr int SMEM = 1024 + OFF_COLS + BC * FM_BOUNDS * 4;

template <typename T, bool DO_DQ>
__global__ void __launch_bounds__(NT, 2) fm_dkdv_wgmma_kernel(const fm_attn_params p)
{
#ifdef FM_WGMMA_DEVICE
    extern __shared__ unsigned char smem_raw[];
    unsigned char *smem = reinterpret_cast<unsigned char *>(
        (reinterpret_cast<uintptr_t>(smem_raw) + 1023) & ~static_cast<uintptr_t>(1023));
    float *sLse2 = reinterpret_cast<float *>(smem + OFF_LSE);
    float *sDelta2 = reinterpret_cast<float *>(smem + OFF_DELTA);
    int32_t *sCols = reinterpret_cast<int32_t *>(smem + OFF_COLS);
    const uint32_t base = (uint32_t)__cvta_generic_to_shared(smem);

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int g = lane >> 2, t = lane & 3;
    const int kb = blockIdx.x, hk = blockIdx.y, b = blockIdx.z;
    const int c0 = kb * BC, c1 = min(c0 + BC, p.seqlen_k);
    const int group = p.q_heads / p.kv_heads;
    const size_t kv_off = (((size_t)b * p.kv_heads + hk) * p.seqlen_k + c0) * D;
    const float scale_log2 = p.scale * LOG2E;

    fm_load_sw128<NT>(smem + OFF_K, static_cast<const T *>(p.k) + kv_off, BC, c1 - c0, tid);
    fm_load_sw128<NT>(smem + OFF_V, static_cast<const T *>(p.v) + kv_off, BC, c1 - c0, tid);
    fm_cp_async_commit();

    float acc_dv[16][4], acc_dk[16][4];
#pragma unroll
    for (int n = 0; n < 16; n++)
#pragma unroll
        for (int e = 0; e < 4; e++) acc_dv[n][e] = acc_dk[n][e] = 0.f;

    const int n_qblocks = (p.seqlen_q + BR - 1) / BR;
    for (int hq = 0; hq < group; hq++) {
        const int h = hk * group + hq, hm = h / (p.q_heads / p.mask_heads);
        const size_t row_base = ((size_t)b * p.q_heads + h) * p.seqlen_q;
        const int32_t *summary =
            p.summary + ((size_t)b * p.mask_heads + hm) * p.n_kblocks * FM_SUMMARY_WIDTH;
        const int32_t *bounds = p.bounds + ((size_t)b * p.mask_heads + hm) * p.seqlen_k * FM_BOUNDS;
        fm_cp_async_wait<0>(); /* the previous head's last copies */
        __syncthreads();       /* every warp is done with the previous head's tiles */
        fm_cuda_load_cols(sCols, bounds, kb, p.seqlen_k, tid, NT);
        int32_t mm[FM_SUMMARY_WIDTH]; /* this key block's summary, once */
        {
            const int4 *v = reinterpret_cast<const int4 *>(summary + kb * FM_SUMMARY_WIDTH);
            const int4 a = __ldg(v), c = __ldg(v + 1);
            mm[0] = a.x, mm[1] = a.y, mm[2] = a.z, mm[3] = a.w;
            mm[4] = c.x, mm[5] = c.y, mm[6] = c.z, mm[7] = c.w;
        }
        auto next_live = [&](int qb, fm_tile_class *cls) {
            for (; qb < n_qblocks; qb++) {
                *cls = fm_classify_tile(mm, (fm_causal)p.causal, p.offset, qb * BR,
                                        min(qb * BR + BR, p.seqlen_q), c0, c1);
                if (*cls != FM_TILE_MASKED) break;
            }
            return qb;
        };
        auto load_q_block = [&](int qb, int st) {
            const int q0 = qb * BR, rows = min(BR, p.seqlen_q - q0);
            fm_load_sw128<NT>(smem + OFF_Q + st * TILE,
                              static_cast<const T *>(p.q) + (row_base + q0) * D, BR, rows, tid);
            fm_load_sw128<NT>(smem + OFF_DO + st * TILE,
                              static_cast<const T *>(p.dout) + (row_base + q0) * D, BR, rows,
                              tid);
            for (int r = tid; r < BR; r += NT) {
                const bool ok = r < rows;
                fm_cp_async4(sLse2 + st * BR + r, p.lse_in + row_base + (ok ? q0 + r : 0), ok);
                fm_cp_async4(sDelta2 + st * BR + r, p.delta + row_base + (ok ? q0 + r : 0), ok);
            }
        };
        fm_tile_class cls, cls_next = FM_TILE_MASKED;
        int qb = next_live(0, &cls);
        if (qb < n_qblocks) load_q_block(qb, 0);
        fm_cp_async_commit();
        int qb_next = qb < n_qblocks ? next_live(qb + 1, &cls_next) : n_qblocks;
        if (qb_next < n_qblocks) load_q_block(qb_next, 1);
        fm_cp_async_commit();

        for (int st = 0; qb < n_qblocks; st ^= 1) {
            const int r0 = qb * BR;
            float *sLse = sLse2 + st * BR, *sDelta = sDelta2 + st * BR;
            const bool partial = cls == FM_TILE_PARTIAL || c1 - c0 < BC;
            fm_cp_async_wait<1>(); /* this stage's copies (the next stage's may still run) */
            /* LSE to log2 units; a fully masked row or a row past Sq gets +inf (P = 0). Each
             * thread converts the values it copied itself. */
            for (int r = tid; r < BR; r += NT) {
                const float l = sLse[r];
                sLse[r] = r0 + r >= p.seqlen_q || l == -INFINITY ? INFINITY : l * LOG2E;
            }
            fm_fence_async_smem(); /* this thread's cp.async data -> wgmma reads */
            __syncthreads();       /* everyone's copies are in */

            const uint32_t aK = base + OFF_K, aV = base + OFF_V;
            const uint32_t aQ = base + OFF_Q + st * TILE, adO = base + OFF_DO + st * TILE;
            /* S^T = K Q^T and dP^T = V dO^T: 64 keys x 64 queries each, k = D. */
            float s[8][4], dp[8][4];
            fm_wg_fence();
#pragma unroll
            for (int kk = 0; kk < D / 16; kk++)
                fm_wg_ss64<T, 0, 0>(s, fm_wg_kmajor(aK, BC, kk), fm_wg_kmajor(aQ, BR, kk), kk);
#pragma unroll
            for (int kk = 0; kk < D / 16; kk++)
                fm_wg_ss64<T, 0, 0>(dp, fm_wg_kmajor(aV, BC, kk), fm_wg_kmajor(adO, BR, kk), kk);
            fm_wg_commit();

            /* Meanwhile: this thread's keys (rows g, g + 8 of its warp's 16) as query bits,
             * pre-shifted so that query n * 8 + 2t + c is bit (n % 4) * 8 + c of word n / 4. */
            uint32_t qbits[2][2] = {{0u, 0u}, {0u, 0u}};
            if (partial) {
#pragma unroll
                for (int hr = 0; hr < 2; hr++) {
                    const int kr = warp * 16 + g + hr * 8;
                    const fm_cuda_column cm(p, sCols + kr * FM_BOUNDS, c0 + kr);
                    qbits[hr][0] = cm.bits32(r0) >> (2 * t);
                    qbits[hr][1] = cm.bits32(r0 + 32) >> (2 * t);
                }
            }
            fm_wg_wait<0>();

            /* P^T and dS^T, packed to T as A fragments: 16 keys x 16 queries per k step. */
            uint32_t pa[4][4], dsa[4][4];
#pragma unroll
            for (int n = 0; n < 8; n++)
#pragma unroll
                for (int hr = 0; hr < 2; hr++) {
                    float pv[2], dsv[2];
#pragma unroll
                    for (int c = 0; c < 2; c++) {
                        const int e = 2 * hr + c, qc = n * 8 + 2 * t + c;
                        float x = fm_exp2(fmaf(s[n][e], scale_log2, -sLse[qc]));
                        if ((qbits[hr][n / 4] >> ((n % 4) * 8 + c)) & 1u) x = 0.f;
                        pv[c] = x;
                        dsv[c] = x * (dp[n][e] - sDelta[qc]);
                    }
                    /* C block n (queries 8n..) is half (n % 2) of A k-step n / 2 */
                    pa[n / 2][(n % 2) * 2 + hr] = fm_tc_type<T>::pack(pv[0], pv[1]);
                    dsa[n / 2][(n % 2) * 2 + hr] = fm_tc_type<T>::pack(dsv[0], dsv[1]);
                }

            /* dV += P^T dO and dK += dS^T Q: k = the 64 queries, N = D, B transposed. */
            fm_wg_fence();
#pragma unroll
            for (int kk = 0; kk < BR / 16; kk++)
                fm_wg_rs128<T>(acc_dv, pa[kk], fm_wg_mnmajor(adO, BR, kk));
#pragma unroll
            for (int kk = 0; kk < BR / 16; kk++)
                fm_wg_rs128<T>(acc_dk, dsa[kk], fm_wg_mnmajor(aQ, BR, kk));
            fm_wg_commit();

            if constexpr (DO_DQ) {
                /* dS^T to shared memory ([key][query], SW128) for dQ = dS K. The previous
                 * block's dQ products, the only readers, completed (wait below) before the
                 * barrier that ended that iteration. */
                unsigned char *sdS = smem + OFF_DS;
#pragma unroll
                for (int kk = 0; kk < 4; kk++)
#pragma unroll
                    for (int j = 0; j < 4; j++) {
                        const int kr = warp * 16 + g + (j & 1) * 8, qc = kk * 16 + (j >> 1) * 8 + 2 * t;
                        *reinterpret_cast<uint32_t *>(sdS + fm_sw128(kr, qc, BC)) = dsa[kk][j];
                    }
                fm_fence_async_smem();
                __syncthreads(); /* all of dS^T is in */
                /* dQ[64 queries x 128] = dS K in two halves of 64 columns: A = dS^T read
                 * transposed (queries contiguous), B = K read transposed (d contiguous). */
                const uint32_t adS = base + OFF_DS;
#pragma unroll
                for (int half = 0; half < 2; half++) {
                    float dq[8][4];
                    fm_wg_fence();
#pragma unroll
                    for (int kk = 0; kk < BC / 16; kk++)
                        fm_wg_ss64<T, 1, 1>(dq, fm_wg_mnmajor(adS, BC, kk),
                                            fm_wg_mnmajor(aK, BC, kk, half), kk);
                    fm_wg_commit();
                    fm_wg_wait<0>();
#pragma unroll
                    for (int hr = 0; hr < 2; hr++) {
                        const int i = r0 + warp * 16 + g + hr * 8;
                        if (i >= p.seqlen_q) continue;
                        float *dst = p.dq_accum + (row_base + i) * D + half * 64 + 2 * t;
#pragma unroll
                        for (int n = 0; n < 8; n++)
                            atomicAdd(reinterpret_cast<float2 *>(dst + n * 8),
                                      make_float2(dq[n][2 * hr], dq[n][2 * hr + 1]));
                    }
                }
            }
            fm_wg_wait<0>(); /* dV, dK products done: pa, dsa and this stage are free */

            /* Everyone is done with this stage (and with dS^T): refill the stage with the query
             * block after the next. */
            __syncthreads();
            fm_tile_class cls_after = FM_TILE_MASKED;
            const int qb_after =
                qb_next < n_qblocks ? next_live(qb_next + 1, &cls_after) : n_qblocks;
            if (qb_after < n_qblocks) load_q_block(qb_after, st);
            fm_cp_async_commit();
            qb = qb_next, cls = cls_next;
            qb_next = qb_after, cls_next = cls_after;
        }
    }
    fm_cp_async_wait<0>();

    /* This thread's keys: rows g and g + 8 of its warp's 16 (those inside the sequence). */
#pragma unroll
    for (int hr = 0; hr < 2; hr++) {
        const int j = c0 + warp * 16 + g + hr * 8;
        if (j >= p.seqlen_k) continue;
        const size_t off = (((size_t)b * p.kv_heads + hk) * p.seqlen_k + j) * D + 2 * t;
        T *dv = static_cast<T *>(p.dv) + off, *dk = static_cast<T *>(p.dk) + off;
#pragma unroll
        for (int n = 0; n < 16; n++) {
            *reinterpret_cast<uint32_t *>(dv + n * 8) =
                fm_tc_type<T>::pack(acc_dv[n][2 * hr], acc_dv[n][2 * hr + 1]);
            *reinterpret_cast<uint32_t *>(dk + n * 8) = fm_tc_type<T>::pack(
                acc_dk[n][2 * hr] * p.scale, acc_dk[n][2 * hr + 1] * p.scale);
        }
    }
#else
    __trap(); /* not built for sm_90a: fail loudly rather than leave dK, dV unwritten */
#endif
}

template <typename T, bool DO_DQ> cudaError_t launch(const fm_attn_params &p, cudaStream_t stream)
{
    cudaError_t err = cudaFuncSetAttribute(fm_dkdv_wgmma_kernel<T, DO_DQ>,
                                           cudaFuncAttributeMaxDynamicSharedMemorySize, SMEM);
    if (err != cudaSuccess) return err;
    dim3 grid(p.n_kblocks, p.kv_heads, p.batch);
    fm_dkdv_wgmma_kernel<T, DO_DQ><<<grid, NT, SMEM, stream>>>(p);
    return cudaGetLastError();
}

} /* namespace */

cudaError_t fm_cuda_launch_dkdv_wgmma(const fm_attn_params &p, fm_dtype dtype, bool do_dq,
                                      cudaStream_t stream)
{
    if (p.head_dim != D) return cudaErrorNotSupported;
    if (dtype == FM_BFLOAT16)
        return do_dq ? launch<__nv_bfloat16, true>(p, stream)
                     : launch<__nv_bfloat16, false>(p, stream);
    return do_dq ? launch<__half, true>(p, stream) : launch<__half, false>(p, stream);
}
