/* cuda/reference_f64_backward.cu — the GPU float64 oracle's backward pass: dQ, dK, dV of
 * docs/spec.md §1 in float64 on FP64 tensor cores, from the forward's LSE (P = exp(s q.k - LSE),
 * as FlashAttention-2 recomputes it) and Delta_i = dO_i . O_i computed here in float64.
 * Layer: cuda <- masks (rules.h). Called through reference_f64_api.cu.
 *
 * Three kernels, none with a floating-point atomic, so every run gives the same bits:
 *   delta: one warp per row, lanes stride the head dimension, a fixed shuffle tree;
 *   dQ:    one block per BM query rows (query-block parallel), looping over the live key tiles:
 *          S = Q K^T, dP = dO V^T, dS = P o (dP - Delta), dQ += dS K;
 *   dK/dV: one block per KV_BN keys of one kv head (key-block parallel), looping over the query
 *          heads that read it (GQA) and, per head, over the live query blocks with
 *          fm_next_live_qblock (rules.h: a masked run costs one step): S^T = K Q^T,
 *          dP^T = V dO^T, dV += P^T dO, dK += dS^T Q.
 * Tiles are classified from the GPU summary; the element rule runs on partial tiles only.
 */
#include <math.h>

#include "dmma.cuh"
#include "reference_f64.cuh"

__global__ void fm_ref64_delta_kernel(const fm_ref64_params p, long long rows)
{
    const long long r = ((long long)blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    const int lane = threadIdx.x & 31, D = p.head_dim;
    if (r >= rows) return; /* whole warps leave together */
    const double *o = p.out_in + r * D, *d = p.dout + r * D;
    double acc = 0.0;
    for (int c = lane; c < D; c += 32) acc = fma(o[c], d[c], acc);
    for (int off = 16; off > 0; off >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, off);
    if (lane == 0) p.delta[r] = acc;
}

template <int DMAX, int BM, int BN>
__global__ void __launch_bounds__(BM * 4, 1) fm_ref64_dq_kernel(const fm_ref64_params p)
{
    constexpr int NT = BM * 4, LD = DMAX + 4, NJ = BN / 8, NO = DMAX / 8;
    extern __shared__ __align__(16) double smem[];
    double *sQ = smem, *sdO = sQ + BM * LD, *sK = sdO + BM * LD, *sV = sK + BN * LD;
    int32_t *sCols = reinterpret_cast<int32_t *>(sV + BN * LD); /* [2][BN][4] */

    const int tid = threadIdx.x, lane = tid & 31, w = tid >> 5, g = lane >> 2, t = lane & 3;
    const int bh = blockIdx.y, b = bh / p.q_heads, h = bh % p.q_heads;
    const int hk = h / (p.q_heads / p.kv_heads), hm = h / (p.q_heads / p.mask_heads);
    const int Sq = p.seqlen_q, Sk = p.seqlen_k, D = p.head_dim;
    const int64_t qoff = (int64_t)bh * Sq * D, kvoff = ((int64_t)b * p.kv_heads + hk) * Sk * D;
    const int64_t mrow = (int64_t)b * p.mask_heads + hm;
    const int32_t *bounds = p.bounds + mrow * Sk * FM_BOUNDS;
    const int32_t *summary = p.summary + mrow * p.n_kblocks * FM_SUMMARY_WIDTH;
    const int r0 = blockIdx.x * BM, r1 = min(r0 + BM, Sq);
    const int row = r0 + 8 * w + g;
    const int n_tiles = (Sk + BN - 1) / BN;
    const double lse = row < Sq ? p.lse_in[(int64_t)bh * Sq + row] : 0.0;
    const double delta = row < Sq ? p.delta[(int64_t)bh * Sq + row] : 0.0;
    const bool lse_ok = isfinite(lse);

    auto load_cols = [&](int kt, int buf) {
        int32_t *dst = sCols + buf * BN * FM_BOUNDS;
        for (int c = tid; c < BN * FM_BOUNDS / 2; c += NT) {
            const bool ok = kt * BN + (2 * c) / FM_BOUNDS < Sk;
            fm_cp_async8(dst + 2 * c, ok ? bounds + (int64_t)kt * BN * FM_BOUNDS + 2 * c : bounds,
                         ok);
        }
    };

    fm_tile_class cls;
    int tile = fm_ref64_next_tile<BN>(p, summary, 0, n_tiles, r0, r1, &cls);
    fm_load_rows_f64<BM, DMAX, LD, NT>(sQ, p.q + qoff, r0, Sq, D, tid);
    fm_load_rows_f64<BM, DMAX, LD, NT>(sdO, p.dout + qoff, r0, Sq, D, tid);
    if (tile < n_tiles) {
        fm_load_rows_f64<BN, DMAX, LD, NT>(sV, p.v + kvoff, tile * BN, Sk, D, tid);
        load_cols(tile, 0);
    }
    fm_cp_async_commit(); /* group: Q, dO, V, columns */
    if (tile < n_tiles)
        fm_load_rows_f64<BN, DMAX, LD, NT>(sK, p.k + kvoff, tile * BN, Sk, D, tid);
    fm_cp_async_commit(); /* group: K */

    double dq[NO][2];
#pragma unroll
    for (int n = 0; n < NO; n++) dq[n][0] = dq[n][1] = 0.0;
    const double scale = p.scale;
    const fm_causal causal = (fm_causal)p.causal;
    bool bad = false;

    /* Loads run under the products: V (and the columns) arrive first, so dP = dO V^T goes
     * while K is in flight; the next V is brought while S, dS and dQ are computed, the next K
     * while the next dP is. */
    for (int it = 0; tile < n_tiles; it++) {
        fm_tile_class next_cls;
        const int next = fm_ref64_next_tile<BN>(p, summary, tile + 1, n_tiles, r0, r1, &next_cls);
        fm_cp_async_wait<1>(); /* V and the columns have landed (K may not have) */
        __syncthreads();
        double s[NJ][2], dp[NJ][2];
#pragma unroll
        for (int j = 0; j < NJ; j++) s[j][0] = s[j][1] = dp[j][0] = dp[j][1] = 0.0;
        fm_dmma_abt<NJ, DMAX, LD>(dp, sdO + 8 * w * LD, sV, g, t);
        fm_cp_async_wait<0>(); /* K has landed */
        __syncthreads();       /* ... and every warp is done with sV: bring the next V */
        if (next < n_tiles) {
            fm_load_rows_f64<BN, DMAX, LD, NT>(sV, p.v + kvoff, next * BN, Sk, D, tid);
            load_cols(next, (it + 1) & 1);
        }
        fm_cp_async_commit();
        fm_dmma_abt<NJ, DMAX, LD>(s, sQ + 8 * w * LD, sK, g, t);

        /* dS = P o (dP - Delta) in place of s; masked elements (and keys past Sk) give 0. */
        const int32_t *cols = sCols + (it & 1) * BN * FM_BOUNDS;
        const int c0 = tile * BN;
#pragma unroll
        for (int j = 0; j < NJ; j++)
#pragma unroll
            for (int e = 0; e < 2; e++) {
                const int jj = 8 * j + 2 * t + e, col = c0 + jj;
                const bool allowed =
                    col < Sk && row < Sq &&
                    !(cls == FM_TILE_PARTIAL &&
                      fm_element_masked(cols + jj * FM_BOUNDS, causal, p.offset, row, col));
                bad |= allowed && !lse_ok;
                const double pr = allowed ? exp(s[j][e] * scale - lse) : 0.0;
                s[j][e] = pr * (dp[j][e] - delta);
            }
        fm_dmma_pb<NJ, NO, LD>(dq, s, sK, g, t);
        __syncthreads(); /* every warp is done with sK: bring the next K */
        if (next < n_tiles)
            fm_load_rows_f64<BN, DMAX, LD, NT>(sK, p.k + kvoff, next * BN, Sk, D, tid);
        fm_cp_async_commit();
        tile = next;
        cls = next_cls;
    }
    fm_cp_async_wait<0>();
    if (bad && p.bad_row) atomicMin(p.bad_row, (unsigned long long)((int64_t)bh * Sq + row));
    if (row >= Sq) return;
    double *dqr = p.dq + qoff + (int64_t)(row)*D;
#pragma unroll
    for (int n = 0; n < NO; n++)
#pragma unroll
        for (int e = 0; e < 2; e++) {
            const int d = 8 * n + 2 * t + e;
            if (d < D) dqr[d] = dq[n][e] * scale;
        }
}

/* Where a dK/dV block is in its walk: query head gi of the kv head's group, query block qb,
 * and that tile's class; with the head's key-block summary and this thread's key's bounds. */
struct fm_ref64_cursor {
    int gi, qb;
    fm_tile_class cls;
    int32_t mm[FM_SUMMARY_WIDTH];
    int32_t col[FM_BOUNDS];
};

template <int BM>
__device__ __forceinline__ void fm_ref64_cursor_head(const fm_ref64_params &p,
                                                     fm_ref64_cursor &c, int b, int hk,
                                                     int key)
{
    const int G = p.q_heads / p.kv_heads, h = hk * G + c.gi;
    const int hm = h / (p.q_heads / p.mask_heads);
    const int64_t mrow = (int64_t)b * p.mask_heads + hm;
    const int4 *s = reinterpret_cast<const int4 *>(
        p.summary + (mrow * p.n_kblocks + key / FM_REF64_SUMMARY_K) * FM_SUMMARY_WIDTH);
    const int4 x = __ldg(s), y = __ldg(s + 1);
    c.mm[0] = x.x, c.mm[1] = x.y, c.mm[2] = x.z, c.mm[3] = x.w;
    c.mm[4] = y.x, c.mm[5] = y.y, c.mm[6] = y.z, c.mm[7] = y.w;
    c.col[0] = c.col[1] = c.col[2] = c.col[3] = 0;
    if (key < p.seqlen_k) {
        const int4 v = __ldg(reinterpret_cast<const int4 *>(p.bounds + (mrow * p.seqlen_k + key) *
                                                                           FM_BOUNDS));
        c.col[0] = v.x, c.col[1] = v.y, c.col[2] = v.z, c.col[3] = v.w;
    }
}

/* Advance c to the first live (head, query block) at or after (c.gi, from_qb); c.gi = G when
 * none is left. Keys [c0, c1) are the block's; `key` is this thread's own key. */
template <int BM>
__device__ __forceinline__ void fm_ref64_cursor_next(const fm_ref64_params &p,
                                                     fm_ref64_cursor &c, int from_qb, int b,
                                                     int hk, int c0, int c1, int key)
{
    const int G = p.q_heads / p.kv_heads, nqb = (p.seqlen_q + BM - 1) / BM;
    while (c.gi < G) {
        c.qb = (int)fm_next_live_qblock(c.mm, (fm_causal)p.causal, p.offset, from_qb, BM,
                                        p.seqlen_q, c0, c1, &c.cls);
        if (c.qb < nqb) return;
        if (++c.gi < G) fm_ref64_cursor_head<BM>(p, c, b, hk, key);
        from_qb = 0;
    }
}

template <int DMAX, int BN, int BM, int DOUT>
__global__ void __launch_bounds__(BN * 4, 1) fm_ref64_dkdv_kernel(const fm_ref64_params p)
{
    constexpr int NT = BN * 4, LD = DMAX + 4, NJ = BM / 8, NO = DOUT / 8;
    extern __shared__ __align__(16) double smem[];
    double *sK = smem, *sV = sK + BN * LD, *sQ = sV + BN * LD, *sdO = sQ + BM * LD;
    double *sL = sdO + BM * LD, *sDelta = sL + BM;

    const int tid = threadIdx.x, lane = tid & 31, w = tid >> 5, g = lane >> 2, t = lane & 3;
    const int bhk = blockIdx.y, b = bhk / p.kv_heads, hk = bhk % p.kv_heads;
    const int G = p.q_heads / p.kv_heads;
    const int Sq = p.seqlen_q, Sk = p.seqlen_k, D = p.head_dim;
    const int c0 = blockIdx.x * BN, c1 = min(c0 + BN, Sk);
    const int dcol0 = blockIdx.z * DOUT; /* this pass's output columns */
    const int key = c0 + 8 * w + g;      /* this thread's key (may be >= Sk: not stored) */
    const int64_t kvoff = (int64_t)bhk * Sk * D;

    /* Q, dO rows and their LSE, Delta for (head gi, query block qb) as one cp.async group. */
    auto load_q = [&](int gi, int qb) {
        const int64_t bhq = (int64_t)b * p.q_heads + hk * G + gi;
        fm_load_rows_f64<BM, DMAX, LD, NT>(sQ, p.q + bhq * Sq * D, qb * BM, Sq, D, tid);
    };
    auto load_do = [&](int gi, int qb) {
        const int64_t bhq = (int64_t)b * p.q_heads + hk * G + gi;
        fm_load_rows_f64<BM, DMAX, LD, NT>(sdO, p.dout + bhq * Sq * D, qb * BM, Sq, D, tid);
        for (int i = tid; i < BM; i += NT) {
            const int r = qb * BM + i;
            const bool ok = r < Sq;
            fm_cp_async8(sL + i, ok ? p.lse_in + bhq * Sq + r : p.lse_in, ok);
            fm_cp_async8(sDelta + i, ok ? p.delta + bhq * Sq + r : p.delta, ok);
        }
    };

    fm_ref64_cursor cur;
    cur.gi = 0;
    fm_ref64_cursor_head<BM>(p, cur, b, hk, key);
    fm_ref64_cursor_next<BM>(p, cur, 0, b, hk, c0, c1, key);
    fm_load_rows_f64<BN, DMAX, LD, NT>(sK, p.k + kvoff, c0, Sk, D, tid);
    fm_load_rows_f64<BN, DMAX, LD, NT>(sV, p.v + kvoff, c0, Sk, D, tid);
    if (cur.gi < G) load_do(cur.gi, cur.qb);
    fm_cp_async_commit(); /* group: K, V, dO, LSE, Delta */
    if (cur.gi < G) load_q(cur.gi, cur.qb);
    fm_cp_async_commit(); /* group: Q */

    double dk[NO][2], dv[NO][2];
#pragma unroll
    for (int n = 0; n < NO; n++) dk[n][0] = dk[n][1] = dv[n][0] = dv[n][1] = 0.0;
    const double scale = p.scale;
    const fm_causal causal = (fm_causal)p.causal;

    /* dO arrives before Q (the next dO is brought while dK is computed, the next Q while
     * the next dP^T is), so dP^T = V dO^T goes first, while Q is in flight. */
    while (cur.gi < G) {
        fm_cp_async_wait<1>(); /* dO, LSE, Delta have landed (Q may not have) */
        __syncthreads();
        double s[NJ][2], dp[NJ][2];
#pragma unroll
        for (int j = 0; j < NJ; j++) s[j][0] = s[j][1] = dp[j][0] = dp[j][1] = 0.0;
        fm_dmma_abt<NJ, DMAX, LD>(dp, sV + 8 * w * LD, sdO, g, t); /* dP^T = V dO^T */
        fm_cp_async_wait<0>();
        __syncthreads();
        fm_dmma_abt<NJ, DMAX, LD>(s, sK + 8 * w * LD, sQ, g, t);  /* S^T = K Q^T */

        /* P^T (in s) and dS^T (in dp); masked elements, rows past Sq and keys past Sk give 0. */
        const int r0 = cur.qb * BM;
#pragma unroll
        for (int j = 0; j < NJ; j++)
#pragma unroll
            for (int e = 0; e < 2; e++) {
                const int ii = 8 * j + 2 * t + e, r = r0 + ii;
                const bool allowed =
                    r < Sq && key < Sk &&
                    !(cur.cls == FM_TILE_PARTIAL &&
                      fm_element_masked(cur.col, causal, p.offset, r, key));
                const double pr = allowed ? exp(s[j][e] * scale - sL[ii]) : 0.0;
                s[j][e] = pr;
                dp[j][e] = pr * (dp[j][e] - sDelta[ii]);
            }

        fm_ref64_cursor nxt = cur;
        fm_ref64_cursor_next<BM>(p, nxt, cur.qb + 1, b, hk, c0, c1, key);
        fm_dmma_pb<NJ, NO, LD>(dv, s, sdO + dcol0, g, t); /* dV += P^T dO */
        __syncthreads(); /* every warp is done with sdO, sL, sDelta */
        if (nxt.gi < G) load_do(nxt.gi, nxt.qb);
        fm_cp_async_commit();
        fm_dmma_pb<NJ, NO, LD>(dk, dp, sQ + dcol0, g, t); /* dK += dS^T Q */
        __syncthreads(); /* every warp is done with sQ */
        if (nxt.gi < G) load_q(nxt.gi, nxt.qb);
        fm_cp_async_commit();
        cur = nxt;
    }
    fm_cp_async_wait<0>();
    if (key >= Sk) return;
    double *dkr = p.dk + kvoff + (int64_t)key * D, *dvr = p.dv + kvoff + (int64_t)key * D;
#pragma unroll
    for (int n = 0; n < NO; n++)
#pragma unroll
        for (int e = 0; e < 2; e++) {
            const int d = dcol0 + 8 * n + 2 * t + e;
            if (d < D) dkr[d] = dk[n][e] * scale, dvr[d] = dv[n][e];
        }
}

template <int DMAX, bool BIG>
static cudaError_t launch_dq(const fm_ref64_params &p, cudaStream_t stream)
{
    using T = fm_ref64_tiles<DMAX, BIG>;
    auto kernel = fm_ref64_dq_kernel<DMAX, T::DQ_BM, T::DQ_BN>;
    cudaError_t err =
        cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)T::DQ_SMEM);
    if (err != cudaSuccess) return err;
    const dim3 grid((unsigned)((p.seqlen_q + T::DQ_BM - 1) / T::DQ_BM),
                    (unsigned)(p.batch * p.q_heads));
    kernel<<<grid, T::DQ_BM * 4, T::DQ_SMEM, stream>>>(p);
    return cudaGetLastError();
}

template <int DMAX, bool BIG>
static cudaError_t launch_dkdv(const fm_ref64_params &p, cudaStream_t stream)
{
    using T = fm_ref64_tiles<DMAX, BIG>;
    auto kernel = fm_ref64_dkdv_kernel<DMAX, T::KV_BN, T::KV_BM, T::KV_DOUT>;
    cudaError_t err =
        cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)T::KV_SMEM);
    if (err != cudaSuccess) return err;
    const dim3 grid((unsigned)((p.seqlen_k + T::KV_BN - 1) / T::KV_BN),
                    (unsigned)(p.batch * p.kv_heads), (unsigned)(DMAX / T::KV_DOUT));
    kernel<<<grid, T::KV_BN * 4, T::KV_SMEM, stream>>>(p);
    return cudaGetLastError();
}

template <int DMAX> static cudaError_t launch_dim(const fm_ref64_params &p, cudaStream_t stream)
{
    using B = fm_ref64_tiles<DMAX, true>;
    using S = fm_ref64_tiles<DMAX, false>;
    const int tq = fm_ref64_tier(B::DQ_SMEM, S::DQ_SMEM);
    const int tkv = fm_ref64_tier(B::KV_SMEM, S::KV_SMEM);
    if (tq < 0 || tkv < 0) return cudaErrorNotSupported;
    cudaError_t err = tq ? launch_dq<DMAX, true>(p, stream) : launch_dq<DMAX, false>(p, stream);
    if (err != cudaSuccess) return err;
    return tkv ? launch_dkdv<DMAX, true>(p, stream) : launch_dkdv<DMAX, false>(p, stream);
}

cudaError_t fm_ref64_launch_backward(const fm_ref64_params &p, cudaStream_t stream)
{
    const long long rows = (long long)p.batch * p.q_heads * p.seqlen_q;
    const int threads = 256;
    fm_ref64_delta_kernel<<<(unsigned)((rows * 32 + threads - 1) / threads), threads, 0,
                            stream>>>(p, rows);
    cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess) return err;
    const int d = p.head_dim;
    if (d <= 32) return launch_dim<32>(p, stream);
    if (d <= 64) return launch_dim<64>(p, stream);
    if (d <= 128) return launch_dim<128>(p, stream);
    return launch_dim<256>(p, stream);
}
