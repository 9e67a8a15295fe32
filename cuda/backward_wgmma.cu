/* cuda/backward_wgmma.cu — the dK/dV (+ dQ) kernel of the FlashMask backward on Hopper's
 * warpgroup MMA (wgmma, sm_90a), D = 64 and 128; the same function as backward.cu's
 * fm_dkdv_kernel, which it replaces there when built (see fm_cuda_launch_dkdv_wgmma).
 * Layer: cuda <- masks (rules.h, through tile.cuh).
 *
 * One or two warpgroups (128 threads each, 64 keys each) per (key block, kv head, batch): see
 * dkdv_warpgroups for which. K and V stay in shared memory; dK and dV (64 keys x D, float32)
 * stay in each warpgroup's registers while the block walks every query head of the GQA group and
 * every query block of 64 rows whose tile is not fully masked for one of its warpgroups. Per
 * query block (Q, dO, LSE, Delta two stages deep, loaded by cp.async while the previous block is
 * computed, shared by the warpgroups), each warpgroup whose own tile is live computes
 *   S^T  = K Q^T,  dP^T = V dO^T          wgmma.m64n64k16 (D / 16 k steps), both operands
 *                                           K-major from smem
 *   P^T  = exp(S^T s - LSE), 0 where masked (per-key row bits, tile.cuh),
 *   dS^T = P^T (dP^T - Delta)             in registers (the accumulator layout is mma.sync's)
 *   dV  += P^T dO,  dK += dS^T Q           wgmma.m64n{D}k16, A = P^T / dS^T from registers,
 *                                           B = dO / Q read transposed (MN-major) from the same
 *                                           tiles that were K-major B above
 * and then, in the default mode, dQ += dS K over all the block's keys: dS^T to shared memory,
 * wgmma with both operands transposed, split into column parts (dq_split: at D = 128 one
 * 64-column half per warpgroup, or both in turn with one; at D = 64 one 32-column half per
 * warpgroup, or all 64 columns with one), each staged in shared memory and added to the float32
 * accumulator (its blocked layout, kernels.h) by one bulk reduction (cp.reduce.async.bulk,
 * tma.cuh), as FlashAttention-3 adds its dQ: no per-thread atomics.
 * Per tile this reads each operand from shared memory once per warpgroup, where the mma.sync
 * kernel's four warps each read all of Q and dO twice: that traffic bound it (the profile:
 * docs/measurement-notes.md).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "backward_sm90.cuh"
#include "backward_tile_sm90.cuh"
#include "kernels.h"
#include "tc.cuh"
#include "tile.cuh"
#include "tma.cuh"
#include "wgmma.cuh"

namespace {

using namespace fm_sm90_bwd;

/* The dK/dV kernel's shared memory for WGS warpgroups (WGS * 64 keys) at head dimension D, in
 * bytes from a 1024-aligned base: K and V [WGS * 64][D], Q and dO [2 stages][64][D] (all SW128),
 * dS^T [WGS * 64 keys][64 queries], LSE (log2 units) and Delta [2][64], the bounds [WGS * 64][4],
 * and, where OWN_STAGING, the dQ staging, [warpgroup][2 buffers][one part]. One warpgroup at
 * D = 128 stages its two halves in the Q and dO tiles of the current stage instead (free once
 * its products are done), which keeps the block within half a multiprocessor's shared memory
 * (two blocks each); at D = 64 the tiles are half as large and its own staging fits. */
template <int D, int WGS> struct dkdv_smem {
    static constexpr int TILE = tile_bytes<D>();
    static constexpr bool OWN_STAGING = WGS == 2 || D == 64;
    static constexpr int KEYS = WGS * BC, OFF_K = 0, OFF_V = WGS * TILE, OFF_Q = 2 * WGS * TILE;
    static constexpr int OFF_DO = OFF_Q + 2 * TILE, OFF_DS = OFF_DO + 2 * TILE;
    static constexpr int OFF_LSE = OFF_DS + KEYS * BR * 2, OFF_DELTA = OFF_LSE + 2 * BR * 4;
    static constexpr int OFF_COLS = OFF_DELTA + 2 * BR * 4;
    static constexpr int OFF_DQ = (OFF_COLS + KEYS * FM_BOUNDS * 4 + 1023) & ~1023;
    static constexpr int BYTES =
        1024 + OFF_DQ + (OWN_STAGING ? WGS * 2 * dq_split<D, WGS>::BYTES : 0);
    /* Own staging: one part per warpgroup. In the tiles: part 0 in dO, part 1 in Q. */
    static_assert(OWN_STAGING ? dq_split<D, WGS>::PARTS == WGS
                              : dq_split<D, WGS>::PARTS == 2 && dq_split<D, WGS>::BYTES == TILE,
                  "the dQ staging does not match the split");
};
/* Two blocks per multiprocessor (228 KB, 1 KB of it reserved per block) with one warpgroup;
 * one block (227 KB at most) with two. */
static_assert(dkdv_smem<128, 1>::BYTES <= 228 * 1024 / 2 - 1024 &&
                  dkdv_smem<64, 1>::BYTES <= 228 * 1024 / 2 - 1024,
              "one-warpgroup block too large");
static_assert(dkdv_smem<128, 2>::BYTES <= 227 * 1024 && dkdv_smem<64, 2>::BYTES <= 227 * 1024,
              "two-warpgroup block too large");

/* WGS = 1: one warpgroup per 64 keys, two blocks per multiprocessor. WGS = 2: two warpgroups
 * share each Q and dO tile and, above all, sum their dQ contributions (dS of 128 keys times K)
 * before adding them to the accumulator, which halves the float32 reduction traffic that bounded
 * the one-warpgroup kernel on dense masks (docs/measurement-notes.md); one block per
 * multiprocessor. Which one runs: the plan's bwd_warpgroups (cuda/heuristics.cu). */
template <typename T, int D, bool DO_DQ, int WGS>
__global__ void __launch_bounds__(128 * WGS, WGS == 1 ? 2 : 1)
    fm_dkdv_wgmma_kernel(const fm_attn_params p)
{
#ifdef FM_WGMMA_DEVICE
    using L = dkdv_smem<D, WGS>;
    using DQ = dq_split<D, WGS>;
    constexpr int NT = 128 * WGS, KEYS = L::KEYS, TILE = L::TILE;
    extern __shared__ unsigned char smem_raw[];
    unsigned char *smem = fm_smem_align1024(smem_raw);
    float *sLse2 = reinterpret_cast<float *>(smem + L::OFF_LSE);
    float *sDelta2 = reinterpret_cast<float *>(smem + L::OFF_DELTA);
    int32_t *sCols = reinterpret_cast<int32_t *>(smem + L::OFF_COLS);
    const uint32_t base = (uint32_t)__cvta_generic_to_shared(smem);

    const int tid = threadIdx.x, lane = tid & 31, warp = (tid >> 5) & 3, wg = tid >> 7;
    const int g = lane >> 2, t = lane & 3;
    const int kb0 = blockIdx.x * WGS, hk = blockIdx.y, b = blockIdx.z;
    const int c0 = kb0 * BC, c1 = min(c0 + KEYS, p.seqlen_k);
    const int wk0 = wg * BC; /* this warpgroup's first key inside the block */
    const int group = p.q_heads / p.kv_heads;
    const size_t kv_off = (((size_t)b * p.kv_heads + hk) * p.seqlen_k + c0) * D;
    const float scale_log2 = p.scale * LOG2E;

    fm_load_sw128<NT, D>(smem + L::OFF_K, static_cast<const T *>(p.k) + kv_off, KEYS, c1 - c0,
                         tid);
    fm_load_sw128<NT, D>(smem + L::OFF_V, static_cast<const T *>(p.v) + kv_off, KEYS, c1 - c0,
                         tid);
    fm_cp_async_commit();

    float acc_dv[D / 8][4], acc_dk[D / 8][4];
#pragma unroll
    for (int n = 0; n < D / 8; n++)
#pragma unroll
        for (int e = 0; e < 4; e++) acc_dv[n][e] = acc_dk[n][e] = 0.f;

    const int n_qblocks = (p.seqlen_q + BR - 1) / BR;
    bool ds_zero = false; /* this warpgroup's rows of dS^T hold zeros */
    int dq_buf = 0;       /* the dQ staging buffer this warpgroup writes next (OWN_STAGING) */
    const bool dq_issuer = (tid & 127) == 0; /* issues and waits for its warpgroup's reductions */
    for (int hq = 0; hq < group; hq++) {
        const int h = hk * group + hq, hm = h / (p.q_heads / p.mask_heads);
        const size_t row_base = ((size_t)b * p.q_heads + h) * p.seqlen_q;
        float *dq_chunks = /* this head's blocked dQ accumulator (kernels.h) */
            DO_DQ ? p.dq_accum + ((size_t)b * p.q_heads + h) * n_qblocks * (BR * D) : nullptr;
        const int32_t *summary =
            p.summary + ((size_t)b * p.mask_heads + hm) * p.n_kblocks * FM_SUMMARY_WIDTH;
        const int32_t *bounds = p.bounds + ((size_t)b * p.mask_heads + hm) * p.seqlen_k * FM_BOUNDS;
        fm_cp_async_wait<0>(); /* the previous head's last copies */
        __syncthreads();       /* every warp is done with the previous head's tiles */
        fm_cuda_load_cols(sCols + wk0 * FM_BOUNDS, bounds, kb0 + wg, p.seqlen_k, tid & 127, 128);
        fm_cuda_key_block blk[WGS];
#pragma unroll
        for (int w = 0; w < WGS; w++) blk[w] = fm_cuda_key_block(p, summary, kb0 + w);
        /* The next query block at or after qb whose tile is live for some warpgroup; bit w of
         * *live: warpgroup w's tile is not fully masked, bit WGS + w: it is partial. One
         * warpgroup (the shape for sparse masks) jumps over masked runs (fm_next_live_qblock):
         * a key block of a 32K document mask then costs a few steps, not 512 classifications.
         * Two warpgroups (the shape for dense masks, where nearly every block is live)
         * classify block by block, where the jumping walk of both blocks was slower (both
         * measurements: docs/measurement-notes.md). */
        auto next_live = [&](int qb, uint32_t *live) {
            if constexpr (WGS == 1) {
                fm_tile_class c;
                qb = blk[0].next_live(p, qb, BR, &c);
                *live = qb >= n_qblocks ? 0u
                        : c == FM_TILE_PARTIAL || blk[0].c1 - blk[0].c0 < BC ? 3u
                                                                              : 1u;
            } else {
                for (; qb < n_qblocks; qb++) {
                    *live = 0;
#pragma unroll
                    for (int w = 0; w < WGS; w++) {
                        const fm_tile_class c =
                            blk[w].classify(p, qb * BR, min(qb * BR + BR, p.seqlen_q));
                        if (c != FM_TILE_MASKED) *live |= 1u << w;
                        if (c == FM_TILE_PARTIAL || blk[w].c1 - blk[w].c0 < BC)
                            *live |= 1u << (WGS + w);
                    }
                    if (*live & ((1u << WGS) - 1)) break;
                }
            }
            return qb;
        };
        auto load_q_block = [&](int qb, int st) {
            const int q0 = qb * BR, rows = min(BR, p.seqlen_q - q0);
            fm_load_sw128<NT, D>(smem + L::OFF_Q + st * TILE,
                                 static_cast<const T *>(p.q) + (row_base + q0) * D, BR, rows,
                                 tid);
            fm_load_sw128<NT, D>(smem + L::OFF_DO + st * TILE,
                                 static_cast<const T *>(p.dout) + (row_base + q0) * D, BR, rows,
                                 tid);
            for (int r = tid; r < BR; r += NT) {
                const bool ok = r < rows;
                fm_cp_async4(sLse2 + st * BR + r, p.lse_in + row_base + (ok ? q0 + r : 0), ok);
                fm_cp_async4(sDelta2 + st * BR + r, p.delta + row_base + (ok ? q0 + r : 0), ok);
            }
        };
        uint32_t live, live_next = 0;
        int qb = next_live(0, &live);
        if (qb < n_qblocks) load_q_block(qb, 0);
        fm_cp_async_commit();
        int qb_next = qb < n_qblocks ? next_live(qb + 1, &live_next) : n_qblocks;
        if (qb_next < n_qblocks) load_q_block(qb_next, 1);
        fm_cp_async_commit();

        for (int st = 0; qb < n_qblocks; st ^= 1) {
            const int r0 = qb * BR;
            float *sLse = sLse2 + st * BR, *sDelta = sDelta2 + st * BR;
            const bool mine = (live >> wg) & 1u, partial = (live >> (WGS + wg)) & 1u;
            fm_cp_async_wait<1>(); /* this stage's copies (the next stage's may still run) */
            /* LSE to log2 units; a fully masked row or a row past Sq gets +inf (P = 0). Each
             * thread converts the values it copied itself. */
            for (int r = tid; r < BR; r += NT) {
                const float l = sLse[r];
                sLse[r] = r0 + r >= p.seqlen_q || l == -INFINITY ? INFINITY : l * LOG2E;
            }
            fm_fence_async_smem(); /* this thread's cp.async data -> wgmma reads */
            __syncthreads();       /* everyone's copies are in */

            const uint32_t aK = base + L::OFF_K, aV = base + L::OFF_V;
            const uint32_t aKw = aK + wk0 * 128, aVw = aV + wk0 * 128; /* this warpgroup's keys */
            const uint32_t aQ = base + L::OFF_Q + st * TILE, adO = base + L::OFF_DO + st * TILE;
            if (mine) { /* this warpgroup's 64 keys see some of these queries */
                /* S^T = K Q^T and dP^T = V dO^T (backward_tile_sm90.cuh) */
                float s[8][4], dp[8][4];
                issue_s_dp<T, D, KEYS>(s, dp, aKw, aVw, aQ, adO);

                /* Meanwhile: this thread's keys (rows g, g + 8 of its warp's 16) as query bits,
                 * pre-shifted so that query n * 8 + 2t + c is bit (n % 4) * 8 + c of word n / 4. */
                uint32_t qbits[2][2] = {{0u, 0u}, {0u, 0u}};
                if (partial) {
#pragma unroll
                    for (int hr = 0; hr < 2; hr++) {
                        const int kr = wk0 + warp * 16 + g + hr * 8;
                        const fm_cuda_column cm(p, sCols + kr * FM_BOUNDS, c0 + kr);
                        qbits[hr][0] = cm.bits32(r0) >> (2 * t);
                        qbits[hr][1] = cm.bits32(r0 + 32) >> (2 * t);
                    }
                }
                fm_wg_wait<1>(); /* S^T is in (dP^T may still run) */

                /* P^T (into s), packed to T as A fragments: C block n (queries 8n ..) is half
                 * n % 2 of k step n / 2, rows g / g + 8 its registers hr. */
                uint32_t pa[4][4], dsa[4][4];
#pragma unroll
                for (int n = 0; n < 8; n++)
#pragma unroll
                    for (int hr = 0; hr < 2; hr++) {
#pragma unroll
                        for (int c = 0; c < 2; c++) {
                            const int e = 2 * hr + c;
                            const float x =
                                fm_exp2(fmaf(s[n][e], scale_log2, -sLse[n * 8 + 2 * t + c]));
                            s[n][e] = (qbits[hr][n / 4] >> ((n % 4) * 8 + c)) & 1u ? 0.f : x;
                        }
                        pa[n / 2][(n % 2) * 2 + hr] =
                            fm_tc_type<T>::pack(s[n][2 * hr], s[n][2 * hr + 1]);
                    }
                dv_product<T, D>(acc_dv, pa, adO);
                fm_wg_wait<1>(); /* dP^T is in (dV may still run) */
                ds_dk<T, D>(acc_dk, dsa, s, dp, sDelta, t, aQ);

                if constexpr (DO_DQ) {
                    /* dS^T to shared memory ([key][query], SW128) for dQ = dS K. The previous
                     * block's dQ products, the only readers, completed (wait below) before the
                     * barrier that ended that iteration. */
                    store_ds<KEYS>(smem + L::OFF_DS, dsa, wk0 + warp * 16 + g, t);
                    fm_fence_async_smem();
                }
            }
            if constexpr (DO_DQ) {
                if (!mine && !ds_zero) { /* a masked warpgroup's keys add nothing to dQ */
                    uint4 *z = reinterpret_cast<uint4 *>(smem + L::OFF_DS + wk0 * 128);
                    for (int i = tid & 127; i < BC * 128 / 16; i += 128) z[i] = make_uint4(0, 0, 0, 0);
                    fm_fence_async_smem();
                }
                ds_zero = !mine;
                /* The staging buffer written below was last read by the reduction issued two
                 * blocks ago; the one of the previous block may still be reading its own. */
                if (L::OWN_STAGING && dq_issuer) fm_bulk_wait_read<1>();
                __syncthreads(); /* all of dS^T is in (and the staging buffers are free) */
                /* dQ[64 queries x D] = dS K over the block's keys (zeros for a masked
                 * warpgroup's: a branch between the products would make ptxas serialise them),
                 * by the parts of dq_split: A = dS^T read transposed (queries contiguous), B =
                 * the part's columns of K read transposed (d contiguous). */
                const uint32_t adS = base + L::OFF_DS;
                /* A masked warpgroup's K rows may hold anything, NaN included (a key block
                 * masked for every row is never meant to be read): its zero rows of dS^T are
                 * multiplied by the other warpgroup's K rows instead (k-steps kk ^ 4), which are
                 * live here and so finite, making its share an exact 0 with no branch. */
                const int masked_half = WGS == 2 && (live & 3u) != 3u ? (live & 1u ? 1 : 0) : -1;
#pragma unroll
                for (int part = WGS == 2 ? wg : 0; part < DQ::PARTS; part += WGS) {
                    /* The part's columns: 64-column block col / 64 of K, from byte
                     * (col % 64) * 2 of its swizzled rows (wgmma.cuh). */
                    const int col = part * DQ::N;
                    const uint32_t aKpart = aK + (col % 64) * 2;
                    float dq[DQ::N / 8][4];
                    fm_wg_fence();
#pragma unroll
                    for (int kk = 0; kk < KEYS / 16; kk++) {
                        const int kk_k = kk / 4 == masked_half ? kk ^ 4 : kk;
                        fm_wg_ss<T, DQ::N, 1, 1>(dq, fm_wg_mnmajor(adS, KEYS, kk),
                                                 fm_wg_mnmajor(aKpart, KEYS, kk_k, col / 64), kk);
                    }
                    fm_wg_commit();
                    fm_wg_wait<0>(); /* (with one warpgroup: its dK and dV products too) */
                    /* Into the staging in the blocked order (kernels.h: this thread's block-n
                     * float4 at n * 128 + its index in the warpgroup), then one thread adds the
                     * part to this query block's chunk. Staging in the tiles (one warpgroup,
                     * D = 128): part 0 in this stage's dO tile, once every warp's dV and dK
                     * products are done (each warp waited for its own share only), part 1 in
                     * its Q tile. */
                    if (!L::OWN_STAGING && part == 0) fm_bar_sync_id<1>(128);
                    const int st_off = L::OWN_STAGING
                                           ? L::OFF_DQ + (wg * 2 + dq_buf) * DQ::BYTES
                                           : (part == 0 ? L::OFF_DO : L::OFF_Q) + st * TILE;
                    float4 *stage = reinterpret_cast<float4 *>(smem + st_off) + (tid & 127);
#pragma unroll
                    for (int n = 0; n < DQ::N / 8; n++)
                        stage[n * 128] = make_float4(dq[n][0], dq[n][1], dq[n][2], dq[n][3]);
                    fm_fence_async_smem(); /* these stores -> the bulk copy's reads */
                    if (WGS == 1 || wg == 0) /* the warpgroup's stores are in */
                        fm_bar_sync_id<1>(128);
                    else
                        fm_bar_sync_id<2>(128);
                    if (dq_issuer) {
                        fm_bulk_reduce_add_f32(dq_chunks + (size_t)qb * (BR * D) +
                                                   part * (BR * DQ::N),
                                               base + st_off, DQ::BYTES);
                        fm_bulk_commit();
                    }
                }
                dq_buf ^= 1;
            }
            fm_wg_wait<0>(); /* dV, dK products done: pa, dsa and this stage are free */
            /* Staged in the tiles: this stage's Q and dO tiles are free once its reductions
             * read them. */
            if (DO_DQ && !L::OWN_STAGING && dq_issuer) fm_bulk_wait_read<0>();

            /* Everyone is done with this stage (and with dS^T): refill the stage with the query
             * block after the next. */
            __syncthreads();
            uint32_t live_after = 0;
            const int qb_after =
                qb_next < n_qblocks ? next_live(qb_next + 1, &live_after) : n_qblocks;
            if (qb_after < n_qblocks) load_q_block(qb_after, st);
            fm_cp_async_commit();
            qb = qb_next, live = live_next;
            qb_next = qb_after, live_next = live_after;
        }
    }
    fm_cp_async_wait<0>();
    if (DO_DQ && dq_issuer) fm_bulk_wait<0>(); /* the reductions are complete (and their reads) */

    /* This thread's keys: rows g and g + 8 of its warp's 16 (those inside the sequence). */
#pragma unroll
    for (int hr = 0; hr < 2; hr++) {
        const int j = c0 + wk0 + warp * 16 + g + hr * 8;
        if (j >= p.seqlen_k) continue;
        const size_t off = (((size_t)b * p.kv_heads + hk) * p.seqlen_k + j) * D + 2 * t;
        T *dv = static_cast<T *>(p.dv) + off, *dk = static_cast<T *>(p.dk) + off;
#pragma unroll
        for (int n = 0; n < D / 8; n++) {
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

/* ---------------------------------------------------------------- dQ, without atomics */

/* dQ by query blocks, the mirror of the forward: 2 warpgroups x 64 rows per (128-row query
 * block, head, batch), each thread's rows' LSE and Delta in registers, K and V of the live key
 * blocks (fm_cuda_list_live, per-warp classes) two stages deep. Per live key block and
 * warpgroup: S = Q K^T and dP = dO V^T (m64n64k16, K-major), dS = P (dP - Delta) in registers,
 * dQ += dS K (m64n{D}k16, dS from registers, K read transposed). Every sum is in a fixed order:
 * this is the deterministic dQ, and with it the dK/dV kernel needs no atomics. */
constexpr int DQ_WGS = 2, DQ_BR = 64 * DQ_WGS, DQ_NW = 4 * DQ_WGS, DQ_NT = 32 * DQ_NW;

/* Its shared memory at head dimension D, in bytes from a 1024-aligned base: Q and dO
 * [128][D], K and V [2 stages][64][D] (SW128), the bounds [2][64][4], the live-block list. */
template <int D> struct dq_smem {
    static constexpr int TILE = tile_bytes<D>();
    static constexpr int OFF_Q = 0, OFF_DO = DQ_BR * D * 2, OFF_K = 2 * DQ_BR * D * 2;
    static constexpr int OFF_V = OFF_K + 2 * TILE, OFF_COLS = OFF_V + 2 * TILE;
    static constexpr int OFF_LIST = OFF_COLS + 2 * BC * FM_BOUNDS * 4;
    static constexpr int BYTES = 1024 + OFF_LIST + (2 * DQ_NT + DQ_NW) * 4;
};
static_assert(dq_smem<128>::BYTES <= 227 * 1024, "dQ block too large");

template <typename T, int D>
__global__ void __launch_bounds__(DQ_NT, 1) fm_dq_wgmma_kernel(const fm_attn_params p)
{
#ifdef FM_WGMMA_DEVICE
    using L = dq_smem<D>;
    constexpr int TILE = L::TILE;
    extern __shared__ unsigned char smem_raw[];
    unsigned char *smem = fm_smem_align1024(smem_raw);
    int32_t *sCols2 = reinterpret_cast<int32_t *>(smem + L::OFF_COLS); /* [2][BC][4] */
    int *sList = reinterpret_cast<int *>(smem + L::OFF_LIST);
    uint32_t *sListCls = reinterpret_cast<uint32_t *>(sList + DQ_NT);
    int *sScratch = reinterpret_cast<int *>(sListCls + DQ_NT);
    const uint32_t base = (uint32_t)__cvta_generic_to_shared(smem);

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, wg = warp >> 2;
    const int g = lane >> 2, t = lane & 3;
    const int h = blockIdx.y, b = blockIdx.z;
    const int r0 = (gridDim.x - 1 - blockIdx.x) * DQ_BR, r1 = min(r0 + DQ_BR, p.seqlen_q);
    const int hk = h / (p.q_heads / p.kv_heads), hm = h / (p.q_heads / p.mask_heads);
    const size_t row_base = ((size_t)b * p.q_heads + h) * p.seqlen_q;
    const T *K = static_cast<const T *>(p.k) + ((size_t)b * p.kv_heads + hk) * p.seqlen_k * D;
    const T *V = static_cast<const T *>(p.v) + ((size_t)b * p.kv_heads + hk) * p.seqlen_k * D;
    const int32_t *bounds = p.bounds + ((size_t)b * p.mask_heads + hm) * p.seqlen_k * FM_BOUNDS;
    const int32_t *summary =
        p.summary + ((size_t)b * p.mask_heads + hm) * p.n_kblocks * FM_SUMMARY_WIDTH;
    const float scale_log2 = p.scale * LOG2E;
    const int w0 = r0 + warp * 16; /* this warp's 16 rows */

    fm_load_sw128<DQ_NT, D>(smem + L::OFF_Q, static_cast<const T *>(p.q) + (row_base + r0) * D,
                            DQ_BR, r1 - r0, tid);
    fm_load_sw128<DQ_NT, D>(smem + L::OFF_DO, static_cast<const T *>(p.dout) + (row_base + r0) * D,
                            DQ_BR, r1 - r0, tid);
    /* LSE (log2 units; +inf for a fully masked row or a row past Sq: P = 0) and Delta of this
     * thread's rows g and g + 8. */
    float lse[2], delta[2];
#pragma unroll
    for (int hr = 0; hr < 2; hr++) {
        const int i = w0 + g + hr * 8;
        const float l = i < p.seqlen_q ? p.lse_in[row_base + i] : -INFINITY;
        lse[hr] = l == -INFINITY ? INFINITY : l * LOG2E;
        delta[hr] = i < p.seqlen_q ? p.delta[row_base + i] : 0.f;
    }
    int scanned = 0;
    int listed = fm_cuda_list_live<DQ_NW, 16>(p, summary, &scanned, r0, r1, sList, sListCls,
                                              sScratch);
    int at = 0, st = 0;
    int kb = listed ? sList[0] : p.n_kblocks;
    uint32_t kb_cls = listed ? sListCls[0] : 0;
    if (kb < p.n_kblocks) {
        fm_load_sw128<DQ_NT, D>(smem + L::OFF_K, K + (size_t)kb * BC * D, BC, p.seqlen_k - kb * BC,
                                tid);
        fm_load_sw128<DQ_NT, D>(smem + L::OFF_V, V + (size_t)kb * BC * D, BC, p.seqlen_k - kb * BC,
                                tid);
        fm_cuda_load_cols(sCols2, bounds, kb, p.seqlen_k, tid, DQ_NT);
    }
    fm_cp_async_commit();

    float acc_dq[D / 8][4];
#pragma unroll
    for (int n = 0; n < D / 8; n++)
#pragma unroll
        for (int e = 0; e < 4; e++) acc_dq[n][e] = 0.f;
    const uint32_t aQ = base + L::OFF_Q + wg * 64 * 128, adO = base + L::OFF_DO + wg * 64 * 128;

    while (kb < p.n_kblocks) {
        fm_cp_async_wait<0>();
        fm_fence_async_smem(); /* this thread's cp.async data -> wgmma reads */
        __syncthreads();       /* stage st is in; every warpgroup is done with stage st ^ 1 */
        if (at + 1 == listed) { /* the list's last block: list the next live ones */
            listed = fm_cuda_list_live<DQ_NW, 16>(p, summary, &scanned, r0, r1, sList,
                                                  sListCls, sScratch);
            at = -1;
        }
        const int next = at + 1 < listed ? sList[at + 1] : p.n_kblocks;
        const uint32_t next_cls = at + 1 < listed ? sListCls[at + 1] : 0;
        if (next < p.n_kblocks) {
            fm_load_sw128<DQ_NT, D>(smem + L::OFF_K + (st ^ 1) * TILE, K + (size_t)next * BC * D,
                                    BC, p.seqlen_k - next * BC, tid);
            fm_load_sw128<DQ_NT, D>(smem + L::OFF_V + (st ^ 1) * TILE, V + (size_t)next * BC * D,
                                    BC, p.seqlen_k - next * BC, tid);
            fm_cuda_load_cols(sCols2 + (st ^ 1) * BC * FM_BOUNDS, bounds, next, p.seqlen_k, tid,
                              DQ_NT);
        }
        fm_cp_async_commit();

        const int c0 = kb * BC;
        const fm_tile_class wcls = (fm_tile_class)((kb_cls >> (2 * warp)) & 3u);
        bool wg_live = false; /* some warp of this warpgroup has a live tile */
#pragma unroll
        for (int w = 0; w < 4; w++)
            wg_live |= ((kb_cls >> (2 * (4 * wg + w))) & 3u) != FM_TILE_MASKED;
        if (wg_live) { /* uniform across the warpgroup: all of its warps run the wgmma */
            const uint32_t aK = base + L::OFF_K + st * TILE, aV = base + L::OFF_V + st * TILE;
            float s[8][4], dp[8][4];
            fm_wg_fence();
#pragma unroll
            for (int kk = 0; kk < D / 16; kk++)
                fm_wg_ss<T, 64, 0, 0>(s, fm_wg_kmajor(aQ, DQ_BR, kk), fm_wg_kmajor(aK, BC, kk), kk);
#pragma unroll
            for (int kk = 0; kk < D / 16; kk++)
                fm_wg_ss<T, 64, 0, 0>(dp, fm_wg_kmajor(adO, DQ_BR, kk), fm_wg_kmajor(aV, BC, kk),
                                    kk);
            fm_wg_commit();
            /* Meanwhile: a partial tile's rule for this warp's rows, as bits per column. */
            const bool partial = wcls == FM_TILE_PARTIAL || c0 + BC > p.seqlen_k;
            uint32_t col_bits[2] = {0u, 0u};
            if (partial) fm_cuda_column_bits(p, sCols2 + st * BC * FM_BOUNDS, c0, w0, lane, col_bits);
            fm_wg_wait<0>();

            /* dS = P (dP - Delta), P = 0 where masked (a warp whose rows the tile fully
             * masks contributes zeros), packed to T as A fragments of 16 keys. */
            uint32_t dsa[4][4];
#pragma unroll
            for (int n = 0; n < 8; n++)
#pragma unroll
                for (int c = 0; c < 2; c++) {
                    const uint32_t rows =
                        partial ? __shfl_sync(0xffffffffu, col_bits[n / 4],
                                              (n % 4) * 8 + 2 * t + c) >> g
                                : 0u;
#pragma unroll
                    for (int hr = 0; hr < 2; hr++) {
                        const int e = 2 * hr + c;
                        float x = fm_exp2(fmaf(s[n][e], scale_log2, -lse[hr]));
                        if (wcls == FM_TILE_MASKED || ((rows >> (hr * 8)) & 1u)) x = 0.f;
                        s[n][e] = x * (dp[n][e] - delta[hr]);
                    }
                }
#pragma unroll
            for (int n = 0; n < 8; n++)
#pragma unroll
                for (int hr = 0; hr < 2; hr++)
                    dsa[n / 2][(n % 2) * 2 + hr] =
                        fm_tc_type<T>::pack(s[n][2 * hr], s[n][2 * hr + 1]);
            /* dQ += dS K: k = the 64 keys, K read transposed. */
            fm_wg_fence();
#pragma unroll
            for (int kk = 0; kk < BC / 16; kk++)
                fm_wg_rs<T, D>(acc_dq, dsa[kk], fm_wg_mnmajor(aK, BC, kk));
            fm_wg_commit();
            fm_wg_wait<0>();
        }
        ++at;
        kb = next, kb_cls = next_cls, st ^= 1;
    }
    fm_cp_async_wait<0>();

#pragma unroll
    for (int hr = 0; hr < 2; hr++) {
        const int i = w0 + g + hr * 8;
        if (i >= p.seqlen_q) continue;
        T *dq = static_cast<T *>(p.dq) + (row_base + i) * D + 2 * t;
#pragma unroll
        for (int n = 0; n < D / 8; n++)
            *reinterpret_cast<uint32_t *>(dq + n * 8) =
                fm_tc_type<T>::pack(acc_dq[n][2 * hr] * p.scale, acc_dq[n][2 * hr + 1] * p.scale);
    }
#else
    __trap();
#endif
}

template <typename T, int D, bool DO_DQ, int WGS>
cudaError_t launch(const fm_attn_params &p, cudaStream_t stream)
{
    constexpr int SMEM = dkdv_smem<D, WGS>::BYTES;
    cudaError_t err = cudaFuncSetAttribute(fm_dkdv_wgmma_kernel<T, D, DO_DQ, WGS>,
                                           cudaFuncAttributeMaxDynamicSharedMemorySize, SMEM);
    if (err != cudaSuccess) return err;
    dim3 grid((p.n_kblocks + WGS - 1) / WGS, p.kv_heads, p.batch);
    fm_dkdv_wgmma_kernel<T, D, DO_DQ, WGS><<<grid, 128 * WGS, SMEM, stream>>>(p);
    return cudaGetLastError();
}

/* The dK/dV block shape (one or two warpgroups) is the plan's (cuda/heuristics.cu). */
template <typename T, int D, bool DO_DQ>
cudaError_t launch(const fm_attn_params &p, int warpgroups, cudaStream_t stream)
{
    return warpgroups == 2 ? launch<T, D, DO_DQ, 2>(p, stream) : launch<T, D, DO_DQ, 1>(p, stream);
}

template <typename T, bool DO_DQ>
cudaError_t launch(const fm_attn_params &p, int warpgroups, cudaStream_t stream)
{
    return p.head_dim == 64 ? launch<T, 64, DO_DQ>(p, warpgroups, stream)
                            : launch<T, 128, DO_DQ>(p, warpgroups, stream);
}

template <typename T, int D> cudaError_t launch_dq(const fm_attn_params &p, cudaStream_t stream)
{
    constexpr int SMEM = dq_smem<D>::BYTES;
    cudaError_t err = cudaFuncSetAttribute(fm_dq_wgmma_kernel<T, D>,
                                           cudaFuncAttributeMaxDynamicSharedMemorySize, SMEM);
    if (err != cudaSuccess) return err;
    dim3 grid((p.seqlen_q + DQ_BR - 1) / DQ_BR, p.q_heads, p.batch);
    fm_dq_wgmma_kernel<T, D><<<grid, DQ_NT, SMEM, stream>>>(p);
    return cudaGetLastError();
}

template <typename T> cudaError_t launch_dq(const fm_attn_params &p, cudaStream_t stream)
{
    return p.head_dim == 64 ? launch_dq<T, 64>(p, stream) : launch_dq<T, 128>(p, stream);
}

/* The head dimensions the kernels are built for. */
bool served(int head_dim) { return head_dim == 64 || head_dim == 128; }

} /* namespace */

cudaError_t fm_cuda_launch_dkdv_wgmma(const fm_attn_params &p, fm_dtype dtype, bool do_dq,
                                      int warpgroups, cudaStream_t stream)
{
    if (!served(p.head_dim)) return cudaErrorNotSupported;
    if (dtype == FM_BFLOAT16)
        return do_dq ? launch<__nv_bfloat16, true>(p, warpgroups, stream)
                     : launch<__nv_bfloat16, false>(p, warpgroups, stream);
    return do_dq ? launch<__half, true>(p, warpgroups, stream)
                 : launch<__half, false>(p, warpgroups, stream);
}

cudaError_t fm_cuda_launch_dq_wgmma(const fm_attn_params &p, fm_dtype dtype, cudaStream_t stream)
{
    if (!served(p.head_dim)) return cudaErrorNotSupported;
    return dtype == FM_BFLOAT16 ? launch_dq<__nv_bfloat16>(p, stream) : launch_dq<__half>(p, stream);
}
