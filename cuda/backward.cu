/* cuda/backward.cu — the FlashMask backward pass on tensor cores:
 *
 *   1. delta:  Delta_i = dO_i . O_i (float32), one warp per row.
 *   2. dK, dV: one thread block per (key block of 64 keys, kv head, batch); each warp owns 16
 *      keys and keeps their dK and dV (float32) in registers while it walks every query head
 *      that reads this kv head (GQA/MQA sum without atomics) and every query block whose tile
 *      is not fully masked:
 *          S^T = K Q^T,  P^T = exp(S^T s - LSE) (0 where masked),  dV += P^T dO,
 *          dP^T = V dO^T,  dS^T = P^T (dP^T - Delta),  dK += dS^T Q     (dK scaled by s last)
 *      Default mode: the block also stages dS^T in shared memory and adds dQ += dS K for its
 *      keys into a float32 accumulator with atomics (5 matrix products per tile); a last
 *      kernel scales it by s and rounds it to the element type.
 *   3. dQ (FM_FLAG_DETERMINISTIC): one thread block per (query block, query head, batch),
 *      shaped like the forward kernel: S = Q K^T, P, dP = dO V^T, dS, dQ += dS K over the live
 *      key blocks in a fixed order, float32 in registers (7 products per tile in all).
 *
 * On Hopper at D = 64 and 128 (built with 90a), step 2 runs on wgmma instead: backward_wgmma.cu,
 * the same function with one or two warpgroups (64 keys each) per key block, chosen per mask; it
 * adds dQ by bulk reductions into the accumulator's blocked layout (kernels.h), which the last
 * kernel then reads (fm_dq_convert_blocked_kernel); step 3 too (its fm_dq_wgmma_kernel). The
 * kernel options can ask for backward_pipelined.cu's dK/dV kernel instead (bwd=pipelined: the
 * same function with a TMA producer warp and mbarrier stages).
 *
 * Fully masked rows (LSE = -inf) give P = 0 and so no gradient; fully masked tiles are skipped
 * in every kernel before any load. Layer: cuda <- masks (rules.h).
 */
#include <math.h>

#include <type_traits>

#include "kernels.h"
#include "tc.cuh"
#include "tile.cuh"
#include "warp_gemm.cuh"

static constexpr float LOG2E = 1.4426950408889634f;

/* ---------------------------------------------------------------- 1. Delta = rowsum(dO * O) */

template <typename T>
__global__ void fm_delta_kernel(const T *__restrict__ out, const T *__restrict__ dout,
                                float *__restrict__ delta, size_t rows, int D)
{
    const size_t row = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    const int lane = threadIdx.x & 31;
    if (row >= rows) return;
    float acc = 0.f;
    for (int d = lane; d < D; d += 32)
        acc += fm_tc_type<T>::to_float(out[row * D + d]) *
               fm_tc_type<T>::to_float(dout[row * D + d]);
    for (int off = 16; off > 0; off >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, off);
    if (lane == 0) delta[row] = acc;
}

/* LSE in log2 units as the kernels use it: exp(s x - LSE) = exp2(x s log2e - LSE log2e).
 * A fully masked row (LSE = -inf), or a padding row, becomes +inf so that P = exp2(-inf) = 0. */
__device__ __forceinline__ float fm_lse_log2(const fm_attn_params &p, size_t row_base, int i)
{
    if (i >= p.seqlen_q) return INFINITY;
    const float l = p.lse_in[row_base + i];
    return l == -INFINITY ? INFINITY : l * LOG2E;
}

/* ---------------------------------------------------------------- 2. dK and dV */

/* dQ rows [q0, q0 + 16) of the tile += dS K, with dS^T [BC keys][LDS] and K [BC][LD] in shared
 * memory, added to the float32 accumulator p.dq_accum with atomics (64 columns at a time, to
 * keep registers for dK and dV). */
template <typename T, int D, int BC, int LD, int LDS>
__device__ __forceinline__ void accumulate_dq(const fm_attn_params &p, const T *sdS, const T *sK,
                                              int q0, int r0, size_t row_base, int lane)
{
    constexpr int CH = D % 64 == 0 ? 64 : 32; /* a column chunk that divides D */
    const int g = lane >> 2, t = lane & 3;
#pragma unroll
    for (int d0 = 0; d0 < D; d0 += CH) {
        float acc[CH / 8][4];
#pragma unroll
        for (int n = 0; n < CH / 8; n++)
            for (int e = 0; e < 4; e++) acc[n][e] = 0.f;
#pragma unroll
        for (int kk = 0; kk < BC / 16; kk++) {
            /* A = dS (rows = queries) from the transposed tile: ldmatrix.trans. */
            uint32_t a[4];
            fm_ldsm_x4_trans(a, sdS + (kk * 16 + (lane & 7) + ((lane >> 4) << 3)) * LDS + q0 +
                                    ((lane >> 3) & 1) * 8);
#pragma unroll
            for (int n2 = 0; n2 < CH / 16; n2++) {
                uint32_t bf[4];
                fm_ldsm_x4_trans(bf, fm_b_addr<LD>(sK, kk * 16, d0 + n2 * 16, lane));
                fm_mma(acc[2 * n2], a, bf[0], bf[1], T());
                fm_mma(acc[2 * n2 + 1], a, bf[2], bf[3], T());
            }
        }
#pragma unroll
        for (int hr = 0; hr < 2; hr++) {
            const int i = r0 + q0 + g + hr * 8;
            if (i >= p.seqlen_q) continue;
            float *dst = p.dq_accum + (row_base + i) * D + d0 + 2 * t;
#pragma unroll
            for (int n = 0; n < CH / 8; n++) {
#if __CUDA_ARCH__ >= 900
                atomicAdd(reinterpret_cast<float2 *>(dst + n * 8),
                          make_float2(acc[n][2 * hr], acc[n][2 * hr + 1]));
#else
                atomicAdd(dst + n * 8, acc[n][2 * hr]);
                atomicAdd(dst + n * 8 + 1, acc[n][2 * hr + 1]);
#endif
            }
        }
    }
}

/* dq = s * dq_accum, rounded to T once. */
template <typename T>
__global__ void fm_dq_convert_kernel(const float *__restrict__ acc, T *__restrict__ dq, size_t n,
                                     float scale)
{
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        dq[i] = fm_tc_type<T>::from_float(acc[i] * scale);
}

/* The same from the blocked layout (kernels.h, D = 64 or 128; `chunks` = B Hq ceil(Sq / 64)),
 * for backward_wgmma.cu's dK/dV kernel. Each thread writes 8 adjacent elements of one row; a
 * warp takes 16 rows by two adjacent 8-column blocks, so that each pair of lanes writes one
 * whole 32-byte segment and the warp's four float2 reads per lane cover two 512-byte runs of the
 * chunk. Rows past Sq are skipped. */
template <typename T, int D>
__global__ void fm_dq_convert_blocked_kernel(const float *__restrict__ acc, T *__restrict__ dq,
                                             size_t chunks, int seqlen_q, float scale)
{
    static_assert(D == 64 || D == 128, "the blocked layout's head dimensions");
    constexpr int PIECES = 64 * D / 8; /* 8-element pieces per chunk */
    const int n_qblocks = (seqlen_q + 63) / 64;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < chunks * PIECES;
         i += (size_t)gridDim.x * blockDim.x) {
        const size_t chunk = i / PIECES;
        const int j = (int)(i % PIECES), lane = j & 31, u = j >> 5;
        const int r = (u & 3) * 16 + (lane >> 2) + ((lane >> 1) & 1) * 8;
        const int c = ((u >> 2) * 2 + (lane & 1)) * 8;
        const int row = (int)(chunk % n_qblocks) * 64 + r;
        if (row >= seqlen_q) continue;
        const float *src = acc + chunk * (64 * D);
        uint32_t packed[4];
#pragma unroll
        for (int k = 0; k < 4; k++) {
            const float2 x =
                *reinterpret_cast<const float2 *>(src + fm_dq_chunk_offset(r, c + 2 * k));
            packed[k] = fm_tc_type<T>::pack(x.x * scale, x.y * scale);
        }
        *reinterpret_cast<uint4 *>(dq + ((chunk / n_qblocks) * seqlen_q + row) * D + c) =
            make_uint4(packed[0], packed[1], packed[2], packed[3]);
    }
}

/* Row stride of the dK/dV kernel's tiles: unpadded (swizzled, tc.cuh) where D allows, so that
 * two stages of Q and dO fit beside K and V with two blocks per multiprocessor at D = 128. */
template <int D> __host__ __device__ constexpr int dkdv_ld() { return D % 64 == 0 ? D : D + 8; }

template <typename T, int D, int NW, bool DO_DV, bool DO_DK, bool DO_DQ, bool JUMP>
__global__ void __launch_bounds__(NW * 32) fm_dkdv_kernel(const fm_attn_params p)
{
    constexpr int BC = 16 * NW, BR = 64, NT = NW * 32, LD = dkdv_ld<D>(), LDS = BR + 8;
    static_assert(!DO_DQ || (DO_DK && BR == 16 * NW), "dQ needs dS and one warp per 16 rows");
    static_assert(BC == FM_CUDA_BLOCK_K, "key blocks must match the summary's width");
    extern __shared__ __align__(16) unsigned char smem[];
    T *sK = reinterpret_cast<T *>(smem);
    T *sV = sK + BC * LD;
    /* Two stages of the query-side tiles: the next live query block loads into one while the
     * other is used. [2][BR][LD] each; LSE (log2 units) and Delta [2][BR]. */
    T *sQ2 = sV + BC * LD;
    T *sdO2 = sQ2 + 2 * BR * LD;
    float *sLse2 = reinterpret_cast<float *>(sdO2 + 2 * BR * LD);
    float *sDelta2 = sLse2 + 2 * BR;
    int32_t *sCols = reinterpret_cast<int32_t *>(sDelta2 + 2 * BR);
    T *sdS = reinterpret_cast<T *>(sCols + BC * FM_BOUNDS); /* [BC][LDS] when DO_DQ */

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int g = lane >> 2, t = lane & 3;
    const int kb = blockIdx.x, hk = blockIdx.y, b = blockIdx.z;
    const int c0 = kb * BC, c1 = min(c0 + BC, p.seqlen_k);
    const int group = p.q_heads / p.kv_heads;
    const size_t kv_off = (((size_t)b * p.kv_heads + hk) * p.seqlen_k + c0) * D;
    const float scale_log2 = p.scale * LOG2E;
    const int krow = warp * 16; /* this warp's first key inside the block */

    fm_load_tile<D, LD, NT>(sK, static_cast<const T *>(p.k) + kv_off, BC, c1 - c0, tid);
    fm_load_tile<D, LD, NT>(sV, static_cast<const T *>(p.v) + kv_off, BC, c1 - c0, tid);
    fm_cp_async_commit();

    float acc_dv[DO_DV ? D / 8 : 1][4], acc_dk[DO_DK ? D / 8 : 1][4];
    for (int n = 0; n < (DO_DV ? D / 8 : 1); n++)
        for (int e = 0; e < 4; e++) acc_dv[n][e] = 0.f;
    for (int n = 0; n < (DO_DK ? D / 8 : 1); n++)
        for (int e = 0; e < 4; e++) acc_dk[n][e] = 0.f;

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
        const fm_cuda_key_block blk(p, summary, kb); /* classifying is then arithmetic */
        /* The next query block at or after qb whose tile is not fully masked, and its class.
         * JUMP (sparse masks): jump over masked runs (fm_next_live_qblock). Otherwise block by
         * block: the jumping walk slows dense masks and speeds sparse ones up, so the plan
         * picks it by the mask's live fraction (docs/measurement-notes.md). */
        auto next_live = [&](int qb, fm_tile_class *cls) {
            if constexpr (JUMP) return blk.next_live(p, qb, BR, cls);
            for (; qb < n_qblocks; qb++) {
                *cls = blk.classify(p, qb * BR, min(qb * BR + BR, p.seqlen_q));
                if (*cls != FM_TILE_MASKED) break;
            }
            return qb;
        };
        /* Q, dO, LSE and Delta of query block qb into stage st, asynchronously (rows past Sq:
         * zeros). */
        auto load_q_block = [&](int qb, int st) {
            const int q0 = qb * BR, rows = min(BR, p.seqlen_q - q0);
            fm_load_tile<D, LD, NT>(sQ2 + st * BR * LD,
                                    static_cast<const T *>(p.q) + (row_base + q0) * D, BR, rows,
                                    tid);
            fm_load_tile<D, LD, NT>(sdO2 + st * BR * LD,
                                    static_cast<const T *>(p.dout) + (row_base + q0) * D, BR,
                                    rows, tid);
            for (int r = tid; r < BR; r += NT) {
                const bool ok = r < rows;
                fm_cp_async4(sLse2 + st * BR + r, p.lse_in + row_base + (ok ? q0 + r : 0), ok);
                fm_cp_async4(sDelta2 + st * BR + r, p.delta + row_base + (ok ? q0 + r : 0), ok);
            }
        };
        /* Two query blocks in flight: this one (stage st) and the next (stage st ^ 1). */
        fm_tile_class cls, cls_next = FM_TILE_MASKED;
        int qb = next_live(0, &cls);
        if (qb < n_qblocks) load_q_block(qb, 0);
        fm_cp_async_commit();
        int qb_next = qb < n_qblocks ? next_live(qb + 1, &cls_next) : n_qblocks;
        if (qb_next < n_qblocks) load_q_block(qb_next, 1);
        fm_cp_async_commit();

        for (int st = 0; qb < n_qblocks; st ^= 1) {
            const int r0 = qb * BR;
            const T *sQ = sQ2 + st * BR * LD, *sdO = sdO2 + st * BR * LD;
            float *sLse = sLse2 + st * BR, *sDelta = sDelta2 + st * BR;
            /* Keys past Sk (zero K rows) must get P = 0 too: through dS they reach dQ. */
            const bool partial = cls == FM_TILE_PARTIAL || c1 - c0 < BC;
            fm_cp_async_wait<1>(); /* this stage's copies (the next stage's may still run) */
            /* LSE to log2 units; a fully masked row (-inf) or a row past Sq gets +inf, so that
             * P = exp2(S s log2e - LSE) = 0 there. Each thread converts what it copied. */
            for (int r = tid; r < BR; r += NT) {
                const float l = sLse[r];
                sLse[r] = r0 + r >= p.seqlen_q || l == -INFINITY ? INFINITY : l * LOG2E;
            }
            __syncthreads(); /* Q, dO, LSE, Delta of this block are in */

            /* S^T = K Q^T: this warp's 16 keys x BR queries. */
            float s[BR / 8][4];
            fm_warp_mma_abt<T, LD, D, BR>(s, sK, krow, sQ, lane);
            /* P^T; element (key j = row, query i = column). This thread's two keys mask which
             * of the tile's 64 queries: two 32-row words per key (fm_column_masked_bits32),
             * pre-shifted so that query n * 8 + 2t + c is bit (n % 4) * 8 + c. */
            uint32_t qbits[2][2] = {{0u, 0u}, {0u, 0u}}; /* [key hr][query half] */
            if (partial) {
#pragma unroll
                for (int hr = 0; hr < 2; hr++) {
                    const int kr = krow + g + hr * 8;
                    const fm_cuda_column cm(p, sCols + kr * FM_BOUNDS, c0 + kr);
                    qbits[hr][0] = cm.bits32(r0) >> (2 * t);
                    qbits[hr][1] = cm.bits32(r0 + 32) >> (2 * t);
                }
            }
#pragma unroll
            for (int n = 0; n < BR / 8; n++)
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    const int qc = n * 8 + 2 * t + (e & 1);
                    float pv = fm_exp2(fmaf(s[n][e], scale_log2, -sLse[qc]));
                    if ((qbits[e >> 1][n / 4] >> ((n % 4) * 8 + (e & 1))) & 1u) pv = 0.f;
                    s[n][e] = pv;
                }

            if constexpr (DO_DV) /* dV += P^T dO */
                fm_warp_mma_pb<T, LD, BR, D>(acc_dv, s, sdO, lane);
            if constexpr (DO_DK) {
                /* dP^T = V dO^T */
                float dp[BR / 8][4];
                fm_warp_mma_abt<T, LD, D, BR>(dp, sV, krow, sdO, lane);
                /* dS^T = P^T (dP^T - Delta), into s. */
#pragma unroll
                for (int n = 0; n < BR / 8; n++)
#pragma unroll
                    for (int e = 0; e < 4; e++)
                        s[n][e] *= dp[n][e] - sDelta[n * 8 + 2 * t + (e & 1)];
                fm_warp_mma_pb<T, LD, BR, D>(acc_dk, s, sQ, lane); /* dK += dS^T Q */
                if (DO_DQ) { /* dS^T of this warp's keys to shared memory, for dQ below */
#pragma unroll
                    for (int n = 0; n < BR / 8; n++)
#pragma unroll
                        for (int hr = 0; hr < 2; hr++)
                            *reinterpret_cast<uint32_t *>(
                                sdS + (krow + g + hr * 8) * LDS + n * 8 + 2 * t) =
                                fm_tc_type<T>::pack(s[n][2 * hr], s[n][2 * hr + 1]);
                }
            }
            /* Every warp is done with this stage (and dS^T is in): refill it with the query
             * block after the next, while dQ of this one is computed. */
            __syncthreads();
            fm_tile_class cls_after = FM_TILE_MASKED;
            const int qb_after =
                qb_next < n_qblocks ? next_live(qb_next + 1, &cls_after) : n_qblocks;
            if (qb_after < n_qblocks) load_q_block(qb_after, st);
            fm_cp_async_commit();
            if (DO_DQ) /* dQ += dS K, summed over the block's keys through atomics */
                accumulate_dq<T, D, BC, LD, LDS>(p, sdS, sK, warp * 16, r0, row_base, lane);
            qb = qb_next, cls = cls_next;
            qb_next = qb_after, cls_next = cls_after;
        }
    }
    fm_cp_async_wait<0>();

    /* Write this warp's 16 keys (those inside the sequence). */
#pragma unroll
    for (int hr = 0; hr < 2; hr++) {
        const int j = c0 + krow + g + hr * 8;
        if (j >= p.seqlen_k) continue;
        const size_t off = (((size_t)b * p.kv_heads + hk) * p.seqlen_k + j) * D + 2 * t;
        if (DO_DV) {
            T *dv = static_cast<T *>(p.dv) + off;
#pragma unroll
            for (int n = 0; n < D / 8; n++)
                *reinterpret_cast<uint32_t *>(dv + n * 8) = fm_tc_type<T>::pack(
                    acc_dv[DO_DV ? n : 0][2 * hr], acc_dv[DO_DV ? n : 0][2 * hr + 1]);
        }
        if (DO_DK) {
            T *dk = static_cast<T *>(p.dk) + off;
#pragma unroll
            for (int n = 0; n < D / 8; n++)
                *reinterpret_cast<uint32_t *>(dk + n * 8) =
                    fm_tc_type<T>::pack(acc_dk[DO_DK ? n : 0][2 * hr] * p.scale,
                                        acc_dk[DO_DK ? n : 0][2 * hr + 1] * p.scale);
        }
    }
}

/* ---------------------------------------------------------------- 3. dQ */

template <typename T, int D, int NW>
__global__ void __launch_bounds__(NW * 32) fm_dq_kernel(const fm_attn_params p)
{
    constexpr int BC = FM_CUDA_BLOCK_K, BR = 16 * NW, NT = NW * 32, LD = D + 8;
    extern __shared__ __align__(16) unsigned char smem[];
    T *sQ = reinterpret_cast<T *>(smem);
    T *sdO = sQ + BR * LD;
    T *sK = sdO + BR * LD;
    T *sV = sK + BC * LD;
    int32_t *sCols = reinterpret_cast<int32_t *>(sV + BC * LD);

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int g = lane >> 2, t = lane & 3;
    const int h = blockIdx.y, b = blockIdx.z;
    /* Last query block first: under a causal mask the last blocks have the most live tiles,
     * and starting them early leaves less of a tail when the grid drains. */
    const int r0 = (gridDim.x - 1 - blockIdx.x) * BR, r1 = min(r0 + BR, p.seqlen_q);
    const int hk = h / (p.q_heads / p.kv_heads), hm = h / (p.q_heads / p.mask_heads);
    const size_t row_base = ((size_t)b * p.q_heads + h) * p.seqlen_q;
    const T *K = static_cast<const T *>(p.k) + ((size_t)b * p.kv_heads + hk) * p.seqlen_k * D;
    const T *V = static_cast<const T *>(p.v) + ((size_t)b * p.kv_heads + hk) * p.seqlen_k * D;
    const int32_t *bounds = p.bounds + ((size_t)b * p.mask_heads + hm) * p.seqlen_k * FM_BOUNDS;
    const int32_t *summary =
        p.summary + ((size_t)b * p.mask_heads + hm) * p.n_kblocks * FM_SUMMARY_WIDTH;
    const float scale_log2 = p.scale * LOG2E;
    const int wrow = warp * 16;

    fm_load_tile<D, LD, NT>(sQ, static_cast<const T *>(p.q) + (row_base + r0) * D, BR, r1 - r0,
                            tid);
    fm_load_tile<D, LD, NT>(sdO, static_cast<const T *>(p.dout) + (row_base + r0) * D, BR,
                            r1 - r0, tid);
    fm_cp_async_commit();
    float lse[2], delta[2]; /* rows g and g + 8 of this warp */
    for (int hr = 0; hr < 2; hr++) {
        const int i = r0 + wrow + g + hr * 8;
        lse[hr] = fm_lse_log2(p, row_base, i);
        delta[hr] = i < p.seqlen_q ? p.delta[row_base + i] : 0.f;
    }

    float acc_dq[D / 8][4];
#pragma unroll
    for (int n = 0; n < D / 8; n++)
        for (int e = 0; e < 4; e++) acc_dq[n][e] = 0.f;

    for (int kb = fm_cuda_next_block(p, summary, 0, r0, r1); kb < p.n_kblocks;
         kb = fm_cuda_next_block(p, summary, kb + 1, r0, r1)) {
        const int c0 = kb * BC;
        __syncthreads(); /* every warp is done with the previous K, V and bounds */
        fm_load_tile<D, LD, NT>(sK, K + (size_t)c0 * D, BC, p.seqlen_k - c0, tid);
        fm_load_tile<D, LD, NT>(sV, V + (size_t)c0 * D, BC, p.seqlen_k - c0, tid);
        fm_cuda_load_cols(sCols, bounds, kb, p.seqlen_k, tid, NT);
        fm_cp_async_commit();
        /* This warp's own rows may see the live tile as fully masked or unmasked. */
        const int w0 = r0 + wrow, w1 = min(w0 + 16, r1);
        const fm_tile_class wcls =
            w0 < w1 ? fm_cuda_classify(p, summary, kb, w0, w1) : FM_TILE_MASKED;
        const bool partial = wcls == FM_TILE_PARTIAL || c0 + BC > p.seqlen_k;
        fm_cp_async_wait<0>();
        __syncthreads();
        if (wcls == FM_TILE_MASKED) continue;

        /* S = Q K^T and dP = dO V^T, both 16 rows x BC keys per warp. */
        float s[BC / 8][4], dp[BC / 8][4];
        fm_warp_mma_abt<T, LD, D, BC>(s, sQ, wrow, sK, lane);
        fm_warp_mma_abt<T, LD, D, BC>(dp, sdO, wrow, sV, lane);
        /* dS = P (dP - Delta), with P = 0 where masked (the columns' row bits, lane l holding
         * keys l and l + 32). */
        uint32_t col_bits[2] = {0u, 0u};
        if (partial) fm_cuda_column_bits(p, sCols, c0, w0, lane, col_bits);
#pragma unroll
        for (int n = 0; n < BC / 8; n++)
#pragma unroll
            for (int c = 0; c < 2; c++) {
                const uint32_t rows =
                    __shfl_sync(0xffffffffu, col_bits[n / 4], (n % 4) * 8 + 2 * t + c) >> g;
#pragma unroll
                for (int hr = 0; hr < 2; hr++) {
                    const int e = 2 * hr + c;
                    float pv = fm_exp2(fmaf(s[n][e], scale_log2, -lse[hr]));
                    if ((rows >> (hr * 8)) & 1u) pv = 0.f;
                    s[n][e] = pv * (dp[n][e] - delta[hr]);
                }
            }
        fm_warp_mma_pb<T, LD, BC, D>(acc_dq, s, sK, lane); /* dQ += dS K */
    }
    fm_cp_async_wait<0>();

#pragma unroll
    for (int hr = 0; hr < 2; hr++) {
        const int i = r0 + wrow + g + hr * 8;
        if (i >= p.seqlen_q) continue;
        T *dq = static_cast<T *>(p.dq) + (row_base + i) * D + 2 * t;
#pragma unroll
        for (int n = 0; n < D / 8; n++)
            *reinterpret_cast<uint32_t *>(dq + n * 8) =
                fm_tc_type<T>::pack(acc_dq[n][2 * hr] * p.scale, acc_dq[n][2 * hr + 1] * p.scale);
    }
}

/* ---------------------------------------------------------------- launchers */

template <typename K> static cudaError_t allow_smem(K kernel, size_t smem)
{
    return cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
}

template <typename T, int D, bool DO_DV, bool DO_DK, bool DO_DQ, bool JUMP>
static cudaError_t launch_dkdv_walk(const fm_attn_params &p, cudaStream_t stream)
{
    constexpr int NW = 4, BC = 16 * NW, BR = 64, LD = dkdv_ld<D>();
    const size_t smem = (size_t)(2 * BC + 4 * BR) * LD * sizeof(T) + 4 * BR * sizeof(float) +
                        BC * FM_BOUNDS * sizeof(int32_t) +
                        (DO_DQ ? (size_t)BC * (BR + 8) * sizeof(T) : 0);
    cudaError_t err = allow_smem(fm_dkdv_kernel<T, D, NW, DO_DV, DO_DK, DO_DQ, JUMP>, smem);
    if (err != cudaSuccess) return err;
    dim3 grid(p.n_kblocks, p.kv_heads, p.batch);
    fm_dkdv_kernel<T, D, NW, DO_DV, DO_DK, DO_DQ, JUMP><<<grid, NW * 32, smem, stream>>>(p);
    return cudaGetLastError();
}

/* The jumping walk for sparse masks (the plan's bwd_jump) at the fast head dimensions (64, 128;
 * the others keep one kernel each, to bound the build's time). */
template <typename T, int D, bool DO_DV, bool DO_DK, bool DO_DQ>
static cudaError_t launch_dkdv(const fm_attn_params &p, bool jump, cudaStream_t stream)
{
    if constexpr (D == 64 || D == 128)
        if (jump)
            return launch_dkdv_walk<T, D, DO_DV, DO_DK, DO_DQ, true>(p, stream);
    return launch_dkdv_walk<T, D, DO_DV, DO_DK, DO_DQ, false>(p, stream);
}

template <typename T, int D, int NW>
static cudaError_t launch_dq(const fm_attn_params &p, cudaStream_t stream)
{
    constexpr int BR = 16 * NW, LD = D + 8;
    const size_t smem = (size_t)(2 * BR + 2 * FM_CUDA_BLOCK_K) * LD * sizeof(T) +
                        FM_CUDA_BLOCK_K * FM_BOUNDS * sizeof(int32_t);
    cudaError_t err = allow_smem(fm_dq_kernel<T, D, NW>, smem);
    if (err != cudaSuccess) return err;
    dim3 grid((p.seqlen_q + BR - 1) / BR, p.q_heads, p.batch);
    fm_dq_kernel<T, D, NW><<<grid, NW * 32, smem, stream>>>(p);
    return cudaGetLastError();
}

template <typename T, int D>
static cudaError_t launch_all(const fm_attn_params &p, const fm_kernel_plan &plan,
                              cudaStream_t s)
{
    const size_t rows = (size_t)p.batch * p.q_heads * p.seqlen_q;
    fm_delta_kernel<T><<<(unsigned)((rows * 32 + 255) / 256), 256, 0, s>>>(
        static_cast<const T *>(p.out_in), static_cast<const T *>(p.dout), p.delta, rows, D);
    cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess) return err;
    const fm_dtype dtype = std::is_same<T, __nv_bfloat16>::value ? FM_BFLOAT16 : FM_FLOAT16;
    if (plan.bwd_wgmma) { /* Hopper: backward_wgmma.cu, the same two paths */
        /* The dK/dV kernel: backward_pipelined.cu's when the plan says so and it can serve
         * the call, else backward_wgmma.cu's (the same function, the same dQ layout). */
        auto dkdv = [&](bool do_dq) {
            if (plan.bwd_pipelined) {
                const cudaError_t e = fm_cuda_launch_dkdv_pipelined(p, dtype, do_dq, s);
                if (e != cudaErrorNotSupported) return e;
            }
            return fm_cuda_launch_dkdv_wgmma(p, dtype, do_dq, plan.bwd_warpgroups, s);
        };
        if (p.dq_accum) {
            err = dkdv(true);
            if (err != cudaSuccess) return err;
            /* dQ is in the blocked layout (kernels.h); the kernel declined any other D */
            if constexpr (D == 64 || D == 128) {
                const size_t chunks = (size_t)p.batch * p.q_heads * ((p.seqlen_q + 63) / 64);
                fm_dq_convert_blocked_kernel<T, D><<<1024, 256, 0, s>>>(
                    p.dq_accum, static_cast<T *>(p.dq), chunks, p.seqlen_q, p.scale);
            }
            return cudaGetLastError();
        }
        err = dkdv(false);
        if (err != cudaSuccess) return err;
        return fm_cuda_launch_dq_wgmma(p, dtype, s);
    }
    if (p.dq_accum) { /* fast path: dQ through float32 atomics inside the dK/dV kernel */
        if constexpr (D <= 128) {
            err = launch_dkdv<T, D, true, true, true>(p, plan.bwd_jump, s);
        } else { /* D = 256: dV and dK accumulators would not both fit in registers */
            err = launch_dkdv<T, D, true, false, false>(p, plan.bwd_jump, s);
            if (err == cudaSuccess)
                err = launch_dkdv<T, D, false, true, true>(p, plan.bwd_jump, s);
        }
        if (err != cudaSuccess) return err;
        fm_dq_convert_kernel<T><<<1024, 256, 0, s>>>(p.dq_accum, static_cast<T *>(p.dq),
                                                     rows * D, p.scale);
        return cudaGetLastError();
    }
    /* deterministic path: every sum in a fixed order, dQ by its own kernel */
    if constexpr (D <= 128) {
        err = launch_dkdv<T, D, true, true, false>(p, plan.bwd_jump, s);
    } else {
        err = launch_dkdv<T, D, true, false, false>(p, plan.bwd_jump, s);
        if (err == cudaSuccess)
            err = launch_dkdv<T, D, false, true, false>(p, plan.bwd_jump, s);
    }
    if (err != cudaSuccess) return err;
    return launch_dq<T, D, 4>(p, s);
}

template <typename T>
static cudaError_t launch_dim(const fm_attn_params &p, const fm_kernel_plan &plan,
                              cudaStream_t stream)
{
    switch (p.head_dim) {
    case 32: return launch_all<T, 32>(p, plan, stream);
    case 64: return launch_all<T, 64>(p, plan, stream);
    case 96: return launch_all<T, 96>(p, plan, stream);
    case 128: return launch_all<T, 128>(p, plan, stream);
    case 256: return launch_all<T, 256>(p, plan, stream);
    default: return cudaErrorInvalidValue;
    }
}

cudaError_t fm_cuda_launch_backward(const fm_attn_params &p, fm_dtype dtype,
                                    const fm_kernel_plan &plan, cudaStream_t stream)
{
    return dtype == FM_BFLOAT16 ? launch_dim<__nv_bfloat16>(p, plan, stream)
                                : launch_dim<__half>(p, plan, stream);
}
