/* cuda/ladder/bwd2_tiled.cu — ladder step 2 (backward): step 1's two kernels on shared-memory
 * tiles, with FlashMask tile skipping, on CUDA cores. Over step 1 it adds what the forward's
 * step 2 adds (fwd2_tiled.cu): groups of G threads per row or key holding D / G columns each
 * in registers, operands read from shared memory by a whole block, and the key-block summary
 * deciding per tile whether to skip it, run it without element tests, or test its elements:
 *
 *   dQ kernel, a block of query rows walks the key blocks (masked ones skipped before their
 *     K/V are loaded):    dQ_i += P_ij (dP_ij - Delta_i) k_j, Delta_i computed first;
 *   dK/dV kernel, a block of (up to) 64 keys walks, for every query head that reads its
 *     key/value head, the blocks of 64 query rows whose tile with it is live; it jumps over a
 *     run of masked query blocks in a few steps (fm_cuda_key_block::next_live, rules.h's
 *     fm_next_live_qblock) instead of classifying each:
 *                          dV_j += P_ij dO_i,  dK_j += P_ij (dP_ij - Delta_i) q_i.
 *
 * No atomics, every sum in a fixed order. At D = 256 the dK/dV block holds 32 keys (eight
 * threads a key, each holding 32 columns of k, v, dK and dV: 255 registers, no spills); the
 * key block's summary still classifies its tiles (a class of 64 keys holds for any subset).
 * Step 4 (cuda/backward.cu) does the same five products on tensor cores, with dQ summed by
 * atomics inside the dK/dV kernel by default. Layer: cuda <- masks (rules.h).
 */
#include "ladder.h"
#include "common.cuh"
#include "../tile.cuh"

/* LSE in log2 units as P = exp2(s log2e - LSE log2e) needs it; -inf (a fully masked row) and
 * padding rows become +inf, so that P = 0. */
__device__ __forceinline__ float fm_ladder_lse2(const fm_attn_params &p, size_t row_base, int i)
{
    if (i >= p.seqlen_q) return INFINITY;
    const float l = p.lse_in[row_base + i];
    return l == -INFINITY ? INFINITY : l * FM_LADDER_LOG2E;
}

template <typename T, int D> struct bwd2 {
    static constexpr int BC = FM_CUDA_BLOCK_K, BQ = 64;
    static constexpr int G = fm_ladder_group<D>::G, W = fm_ladder_group<D>::W;
    static constexpr int NT_Q = 256, ROWS = NT_Q / G;           /* dQ kernel */
    static constexpr int KEYS = G <= 4 ? BC : BC / 2, NT_K = KEYS * G; /* dK/dV kernel */
    static constexpr size_t SMEM_Q = 2 * BC * D * sizeof(T) + BC * FM_BOUNDS * sizeof(int32_t);
    static constexpr size_t SMEM_K = 2 * BQ * D * sizeof(T) + 2 * BQ * sizeof(float);
};

template <typename T, int D>
__global__ void __launch_bounds__(256) fm_bwd2_dq_kernel(const fm_attn_params p)
{
    using C = bwd2<T, D>;
    constexpr int BC = C::BC, G = C::G, W = C::W;
    extern __shared__ __align__(16) unsigned char smem[];
    T *sK = reinterpret_cast<T *>(smem), *sV = sK + BC * D;
    int32_t *sCols = reinterpret_cast<int32_t *>(sV + BC * D);

    const int tid = threadIdx.x, t = tid % G, h = blockIdx.y, b = blockIdx.z;
    const int r0 = blockIdx.x * C::ROWS, r1 = min(r0 + C::ROWS, p.seqlen_q), i = r0 + tid / G;
    const bool row_ok = i < p.seqlen_q;
    const fm_ladder_head hd(p, b, h);
    const size_t row = hd.row_base + i;
    const T *K = static_cast<const T *>(p.k) + hd.kv_base * D;
    const T *V = static_cast<const T *>(p.v) + hd.kv_base * D;

    float2 q[W], dout[W], dq[W];
    fm_ladder_group_load<G, W>(q, static_cast<const T *>(p.q) + row * D, row_ok, t,
                               p.scale * FM_LADDER_LOG2E);
    fm_ladder_group_load<G, W>(dout, static_cast<const T *>(p.dout) + row * D, row_ok, t, 1.f);
    fm_ladder_group_load<G, W>(dq, static_cast<const T *>(p.q), false, t, 0.f);
    /* Delta_i = dO_i . O_i, for this kernel and (through p.delta) the dK/dV kernel. */
    float delta = 0.f;
    {
        float2 o[W];
        fm_ladder_group_load<G, W>(o, static_cast<const T *>(p.out_in) + row * D, row_ok, t, 1.f);
#pragma unroll
        for (int w = 0; w < W; w++) delta = fmaf(o[w].x, dout[w].x, fmaf(o[w].y, dout[w].y, delta));
        delta = fm_ladder_group_sum<G>(delta);
    }
    if (row_ok && t == 0) p.delta[row] = delta;
    const float lse2 = fm_ladder_lse2(p, hd.row_base, i);

    for (int kb = 0; kb < p.n_kblocks; kb++) {
        const fm_tile_class cls = fm_cuda_classify(p, hd.summary, kb, r0, r1);
        if (cls == FM_TILE_MASKED) continue;
        const int c0 = kb * BC, valid = min(BC, p.seqlen_k - c0);
        const bool partial = cls == FM_TILE_PARTIAL || valid < BC;
        __syncthreads();
        fm_ladder_load_tile<D, D, C::NT_Q>(sK, K + (size_t)c0 * D, BC, valid, tid);
        fm_ladder_load_tile<D, D, C::NT_Q>(sV, V + (size_t)c0 * D, BC, valid, tid);
        if (partial)
            for (int c = tid; c < BC * FM_BOUNDS; c += C::NT_Q)
                sCols[c] = c < valid * FM_BOUNDS ? hd.bounds[(size_t)c0 * FM_BOUNDS + c] : 0;
        __syncthreads();
#pragma unroll 4
        for (int j = 0; j < BC; j++) {
            const float s = fm_ladder_group_dot<G, W>(q, sK + j * D, t);
            const float dp = fm_ladder_group_dot<G, W>(dout, sV + j * D, t);
            const bool masked = partial && (j >= valid || fm_element_masked(sCols + j * FM_BOUNDS,
                                                                            (fm_causal)p.causal,
                                                                            p.offset, i, c0 + j));
            const float pij = masked ? 0.f : exp2f(s - lse2);
            fm_ladder_group_axpy<G, W>(dq, pij * (dp - delta), sK + j * D, t);
        }
    }
    if (row_ok)
        fm_ladder_group_store<G, W>(static_cast<T *>(p.dq) + row * D, dq, t, p.scale);
}

/* grid: (ceil(Sk / KEYS), kv heads, batch) */
template <typename T, int D>
__global__ void __launch_bounds__(256) fm_bwd2_dkdv_kernel(const fm_attn_params p)
{
    using C = bwd2<T, D>;
    constexpr int BQ = C::BQ, G = C::G, W = C::W;
    extern __shared__ __align__(16) unsigned char smem[];
    T *sQ = reinterpret_cast<T *>(smem), *sdO = sQ + BQ * D;
    float *sLse2 = reinterpret_cast<float *>(sdO + BQ * D), *sDelta = sLse2 + BQ;

    const int tid = threadIdx.x, t = tid % G, hk = blockIdx.y, b = blockIdx.z;
    const int j = blockIdx.x * C::KEYS + tid / G, kb = blockIdx.x * C::KEYS / C::BC;
    const bool key_ok = j < p.seqlen_k;
    const size_t kv = ((size_t)b * p.kv_heads + hk) * (size_t)p.seqlen_k + (key_ok ? j : 0);
    float2 k[W], v[W], dk[W], dv[W];
    fm_ladder_group_load<G, W>(k, static_cast<const T *>(p.k) + kv * D, key_ok, t,
                               p.scale * FM_LADDER_LOG2E);
    fm_ladder_group_load<G, W>(v, static_cast<const T *>(p.v) + kv * D, key_ok, t, 1.f);
    fm_ladder_group_load<G, W>(dk, static_cast<const T *>(p.k), false, t, 0.f);
    fm_ladder_group_load<G, W>(dv, static_cast<const T *>(p.k), false, t, 0.f);

    const int group = p.q_heads / p.kv_heads, n_qb = (p.seqlen_q + BQ - 1) / BQ;
    for (int h = hk * group; h < (hk + 1) * group; h++) {
        const fm_ladder_head hd(p, b, h);
        const fm_cuda_key_block key_block(p, hd.summary, kb);
        int32_t col[FM_BOUNDS] = {0, 0, 0, 0}; /* this thread's key's bounds */
        if (key_ok)
            for (int c = 0; c < FM_BOUNDS; c++) col[c] = hd.bounds[(size_t)j * FM_BOUNDS + c];
        const T *Q = static_cast<const T *>(p.q) + hd.row_base * D;
        const T *dO = static_cast<const T *>(p.dout) + hd.row_base * D;
        fm_tile_class cls;
        for (int qb = key_block.next_live(p, 0, BQ, &cls); qb < n_qb;
             qb = key_block.next_live(p, qb + 1, BQ, &cls)) {
            const int r0 = qb * BQ, valid = min(BQ, p.seqlen_q - r0);
            __syncthreads(); /* every thread is done with the previous tile */
            fm_ladder_load_tile<D, D, C::NT_K>(sQ, Q + (size_t)r0 * D, BQ, valid, tid);
            fm_ladder_load_tile<D, D, C::NT_K>(sdO, dO + (size_t)r0 * D, BQ, valid, tid);
            for (int r = tid; r < BQ; r += C::NT_K) {
                sLse2[r] = fm_ladder_lse2(p, hd.row_base, r0 + r);
                sDelta[r] = r < valid ? p.delta[hd.row_base + r0 + r] : 0.f;
            }
            __syncthreads();
#pragma unroll 4
            for (int r = 0; r < BQ; r++) {
                const float s = fm_ladder_group_dot<G, W>(k, sQ + r * D, t);
                const float dp = fm_ladder_group_dot<G, W>(v, sdO + r * D, t);
                const bool masked = !key_ok || (cls == FM_TILE_PARTIAL &&
                                                fm_element_masked(col, (fm_causal)p.causal,
                                                                  p.offset, r0 + r, j));
                const float pij = masked ? 0.f : exp2f(s - sLse2[r]);
                fm_ladder_group_axpy<G, W>(dv, pij, sdO + r * D, t);
                fm_ladder_group_axpy<G, W>(dk, pij * (dp - sDelta[r]), sQ + r * D, t);
            }
        }
    }
    if (!key_ok) return;
    fm_ladder_group_store<G, W>(static_cast<T *>(p.dk) + kv * D, dk, t, p.scale);
    fm_ladder_group_store<G, W>(static_cast<T *>(p.dv) + kv * D, dv, t, 1.f);
}

template <typename T, int D> struct bwd2_launch {
    static cudaError_t run(const fm_attn_params &p, cudaStream_t stream)
    {
        using C = bwd2<T, D>;
        cudaError_t err = fm_ladder_smem(fm_bwd2_dq_kernel<T, D>, C::SMEM_Q);
        if (err == cudaSuccess) err = fm_ladder_smem(fm_bwd2_dkdv_kernel<T, D>, C::SMEM_K);
        if (err != cudaSuccess) return err;
        dim3 gq((p.seqlen_q + C::ROWS - 1) / C::ROWS, p.q_heads, p.batch);
        fm_bwd2_dq_kernel<T, D><<<gq, C::NT_Q, C::SMEM_Q, stream>>>(p);
        if ((err = cudaGetLastError()) != cudaSuccess) return err;
        dim3 gk((p.seqlen_k + C::KEYS - 1) / C::KEYS, p.kv_heads, p.batch);
        fm_bwd2_dkdv_kernel<T, D><<<gk, C::NT_K, C::SMEM_K, stream>>>(p); /* reads Delta */
        return cudaGetLastError();
    }
};

cudaError_t fm_ladder_bwd2(const fm_attn_params &p, fm_dtype dtype, cudaStream_t stream)
{
    return fm_ladder_dispatch<bwd2_launch>(p, dtype, stream);
}
