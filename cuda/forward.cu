/* cuda/forward.cu — the FlashMask forward kernel (FlashAttention-2 structure) on tensor cores.
 * Layer: cuda <- masks (rules.h). One thread block per (query block of 16*NW rows, query head,
 * batch); each warp owns 16 query rows and keeps its Q fragments, running max, running sum and
 * O accumulator (float32) in registers while it walks the key blocks:
 *
 *   for each key block kb that is not fully masked (fm_classify_tile on the summary):
 *       S = Q K^T                       (mma.sync m16n8k16, float32 accumulation)
 *       partial tile: S = -inf where fm_element_masked (bounds staged in shared memory)
 *       online softmax: m' = max(m, rowmax S), O *= exp(m - m'), l = l exp(m - m') + rowsum P
 *       O += P V                        (P packed to float16/bfloat16 straight from registers)
 *
 * Fully masked tiles are skipped before their K/V are loaded; unmasked tiles run no element
 * test. K of the next live block is fetched (cp.async) while P V of this one runs, and V while
 * S is computed. A row with no allowed key ends with l = 0: O = 0 and LSE = -inf (BRIEF 1).
 */
#include <math.h>

#include "kernels.h"
#include "tc.cuh"
#include "tile.cuh"

template <typename T, int D, int NW>
__global__ void __launch_bounds__(NW * 32) fm_forward_kernel(const fm_attn_params p)
{
    constexpr int BC = FM_CUDA_BLOCK_K, BR = 16 * NW, NT = NW * 32;
    constexpr int LD = D + 8;           /* padded row: ldmatrix rows hit distinct banks */
    constexpr bool Q_IN_REGS = D <= 128; /* at D = 256 the fragments would not fit */
    extern __shared__ __align__(16) unsigned char smem[];
    T *sQ = reinterpret_cast<T *>(smem);
    T *sK = sQ + BR * LD;
    T *sV = sK + BC * LD;
    int32_t *sCols = reinterpret_cast<int32_t *>(sV + BC * LD);

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int g = lane >> 2, t = lane & 3;
    const int h = blockIdx.y, b = blockIdx.z;
    const int r0 = blockIdx.x * BR, r1 = min(r0 + BR, p.seqlen_q);
    const int hk = h / (p.q_heads / p.kv_heads), hm = h / (p.q_heads / p.mask_heads);
    const T *Q = static_cast<const T *>(p.q) + ((size_t)b * p.q_heads + h) * p.seqlen_q * D;
    const T *K = static_cast<const T *>(p.k) + ((size_t)b * p.kv_heads + hk) * p.seqlen_k * D;
    const T *V = static_cast<const T *>(p.v) + ((size_t)b * p.kv_heads + hk) * p.seqlen_k * D;
    const int32_t *bounds = p.bounds + ((size_t)b * p.mask_heads + hm) * p.seqlen_k * FM_BOUNDS;
    const int32_t *summary =
        p.summary + ((size_t)b * p.mask_heads + hm) * p.n_kblocks * FM_SUMMARY_WIDTH;
    const float scale_log2 = p.scale * 1.4426950408889634f; /* exp(x) = exp2(x log2 e) */

    fm_load_tile<D, LD, NT>(sQ, Q + (size_t)r0 * D, BR, r1 - r0, tid);
    int kb = fm_cuda_next_block(p, summary, 0, r0, r1);
    if (kb < p.n_kblocks) {
        fm_load_tile<D, LD, NT>(sK, K + (size_t)kb * BC * D, BC, p.seqlen_k - kb * BC, tid);
        fm_cuda_load_cols(sCols, bounds, kb, p.seqlen_k, tid, NT);
    }
    fm_cp_async_commit();

    float acc_o[D / 8][4];
    for (int n = 0; n < D / 8; n++)
        for (int e = 0; e < 4; e++) acc_o[n][e] = 0.f;
    float row_max[2] = {-INFINITY, -INFINITY}, row_sum[2] = {0.f, 0.f};
    uint32_t q_frag[Q_IN_REGS ? D / 16 : 1][4];
    bool q_loaded = false;
    const int wrow = warp * 16; /* this warp's first row inside the tile */

    while (kb < p.n_kblocks) {
        fm_cp_async_wait<0>();
        __syncthreads(); /* K(kb) and its bounds are in; every warp is done with V(kb-1) */
        if (Q_IN_REGS && !q_loaded) {
            for (int kk = 0; kk < D / 16; kk++)
                fm_ldsm_x4(q_frag[Q_IN_REGS ? kk : 0], fm_a_addr<LD>(sQ, wrow, kk * 16, lane));
            q_loaded = true;
        }
        fm_load_tile<D, LD, NT>(sV, V + (size_t)kb * BC * D, BC, p.seqlen_k - kb * BC, tid);
        fm_cp_async_commit();

        const int c0 = kb * BC;
        const bool partial = fm_cuda_classify(p, summary, kb, r0, r1) == FM_TILE_PARTIAL ||
                             c0 + BC > p.seqlen_k;

        /* S = Q K^T for this warp's 16 rows x BC keys. */
        float s[BC / 8][4];
        for (int n = 0; n < BC / 8; n++)
            for (int e = 0; e < 4; e++) s[n][e] = 0.f;
#pragma unroll
        for (int kk = 0; kk < D / 16; kk++) {
            uint32_t a[4];
            if (Q_IN_REGS) {
                for (int e = 0; e < 4; e++) a[e] = q_frag[Q_IN_REGS ? kk : 0][e];
            } else {
                fm_ldsm_x4(a, fm_a_addr<LD>(sQ, wrow, kk * 16, lane));
            }
#pragma unroll
            for (int n2 = 0; n2 < BC / 16; n2++) {
                uint32_t bf[4];
                fm_ldsm_x4(bf, fm_bt_addr<LD>(sK, n2 * 16, kk * 16, lane));
                fm_mma(s[2 * n2], a, bf[0], bf[1], T());
                fm_mma(s[2 * n2 + 1], a, bf[2], bf[3], T());
            }
        }

        /* Partial tile: the element rule, from the bounds staged in shared memory. */
        if (partial) {
#pragma unroll
            for (int n = 0; n < BC / 8; n++)
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    const int col = n * 8 + 2 * t + (e & 1);
                    const int i = r0 + wrow + g + (e >> 1) * 8;
                    if (fm_cuda_masked(p, sCols + col * FM_BOUNDS, i, c0 + col)) s[n][e] = -INFINITY;
                }
        }

        /* Online softmax; rows g (e = 0, 1) and g + 8 (e = 2, 3) of the warp's 16. */
#pragma unroll
        for (int hr = 0; hr < 2; hr++) {
            float mx = -INFINITY;
            for (int n = 0; n < BC / 8; n++) mx = fmaxf(mx, fmaxf(s[n][2 * hr], s[n][2 * hr + 1]));
            const float m_new = fmaxf(row_max[hr], fm_quad_max(mx));
            /* Nothing allowed yet in this row: subtract 0 so that exp(-inf - 0) = 0, no NaN. */
            const float m_use = m_new == -INFINITY ? 0.f : m_new;
            const float corr = exp2f((row_max[hr] - m_use) * scale_log2);
            row_max[hr] = m_new;
            const float bias = m_use * scale_log2;
            float sum = 0.f;
            for (int n = 0; n < BC / 8; n++)
                for (int e = 2 * hr; e < 2 * hr + 2; e++) {
                    s[n][e] = exp2f(fmaf(s[n][e], scale_log2, -bias));
                    sum += s[n][e];
                }
            row_sum[hr] = row_sum[hr] * corr + sum;
            for (int n = 0; n < D / 8; n++) acc_o[n][2 * hr] *= corr, acc_o[n][2 * hr + 1] *= corr;
        }

        fm_cp_async_wait<0>();
        __syncthreads(); /* V(kb) is in; every warp is done with K(kb) and the bounds */
        const int next = fm_cuda_next_block(p, summary, kb + 1, r0, r1);
        if (next < p.n_kblocks) {
            fm_load_tile<D, LD, NT>(sK, K + (size_t)next * BC * D, BC, p.seqlen_k - next * BC,
                                    tid);
            fm_cuda_load_cols(sCols, bounds, next, p.seqlen_k, tid, NT);
        }
        fm_cp_async_commit();

        /* O += P V: two adjacent 16x8 blocks of P form one A fragment. */
#pragma unroll
        for (int kk = 0; kk < BC / 16; kk++) {
            uint32_t a[4];
            a[0] = fm_tc_type<T>::pack(s[2 * kk][0], s[2 * kk][1]);
            a[1] = fm_tc_type<T>::pack(s[2 * kk][2], s[2 * kk][3]);
            a[2] = fm_tc_type<T>::pack(s[2 * kk + 1][0], s[2 * kk + 1][1]);
            a[3] = fm_tc_type<T>::pack(s[2 * kk + 1][2], s[2 * kk + 1][3]);
#pragma unroll
            for (int n2 = 0; n2 < D / 16; n2++) {
                uint32_t bf[4];
                fm_ldsm_x4_trans(bf, fm_b_addr<LD>(sV, kk * 16, n2 * 16, lane));
                fm_mma(acc_o[2 * n2], a, bf[0], bf[1], T());
                fm_mma(acc_o[2 * n2 + 1], a, bf[2], bf[3], T());
            }
        }
        kb = next;
    }
    fm_cp_async_wait<0>();

    /* Epilogue: O / l and LSE = m * scale + log l; a row with l = 0 has nothing allowed. */
#pragma unroll
    for (int hr = 0; hr < 2; hr++) {
        const int i = r0 + wrow + g + hr * 8;
        const float l = fm_quad_sum(row_sum[hr]);
        if (i >= p.seqlen_q) continue;
        const float inv = l > 0.f ? 1.f / l : 0.f;
        T *o = static_cast<T *>(p.out) + (((size_t)b * p.q_heads + h) * p.seqlen_q + i) * D;
        for (int n = 0; n < D / 8; n++)
            *reinterpret_cast<uint32_t *>(o + n * 8 + 2 * t) =
                fm_tc_type<T>::pack(acc_o[n][2 * hr] * inv, acc_o[n][2 * hr + 1] * inv);
        if (t == 0)
            p.lse[((size_t)b * p.q_heads + h) * p.seqlen_q + i] =
                l > 0.f ? row_max[hr] * p.scale + logf(l) : -INFINITY;
    }
}

template <typename T, int D, int NW>
static cudaError_t launch(const fm_attn_params &p, cudaStream_t stream)
{
    constexpr int BR = 16 * NW, LD = D + 8;
    const size_t smem = (size_t)(BR + 2 * FM_CUDA_BLOCK_K) * LD * sizeof(T) +
                        FM_CUDA_BLOCK_K * FM_BOUNDS * sizeof(int32_t);
    cudaError_t err = cudaFuncSetAttribute(fm_forward_kernel<T, D, NW>,
                                           cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
    if (err != cudaSuccess) return err;
    dim3 grid((p.seqlen_q + BR - 1) / BR, p.q_heads, p.batch);
    fm_forward_kernel<T, D, NW><<<grid, NW * 32, smem, stream>>>(p);
    return cudaGetLastError();
}

template <typename T> static cudaError_t launch_dim(const fm_attn_params &p, cudaStream_t stream)
{
    switch (p.head_dim) {
    case 32: return launch<T, 32, 8>(p, stream);
    case 64: return launch<T, 64, 8>(p, stream);
    case 96: return launch<T, 96, 8>(p, stream);
    case 128: return launch<T, 128, 8>(p, stream);
    case 256: return launch<T, 256, 4>(p, stream);
    default: return cudaErrorInvalidValue;
    }
}

cudaError_t fm_cuda_launch_forward(const fm_attn_params &p, fm_dtype dtype, cudaStream_t stream)
{
    return dtype == FM_BFLOAT16 ? launch_dim<__nv_bfloat16>(p, stream)
                                : launch_dim<__half>(p, stream);
}
