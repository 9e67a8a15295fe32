/* cuda/ladder/bwd1_naive.cu — ladder step 1 (backward): the CPU loop ported as it stands, as two
 * kernels so that no sum needs atomics. With P_ij = exp(scale q_i . k_j - LSE_i) on allowed
 * pairs (0 elsewhere, fm_element_masked), dP_ij = dO_i . v_j and Delta_i = dO_i . O_i:
 *
 *   dQ kernel, one thread per query row i:     dQ_i = scale sum_j P_ij (dP_ij - Delta_i) k_j
 *                                              (and it writes Delta_i for the second kernel);
 *   dK/dV kernel, one thread per key j of a key/value head, over every query head that reads
 *   it (GQA, MQA: the sum over heads happens in the thread, in a fixed order):
 *                                              dV_j = sum_i P_ij dO_i
 *                                              dK_j = scale sum_i P_ij (dP_ij - Delta_i) q_i
 *
 * Every pair pays the element test, masked regions included (a masked pair skips the dot
 * products, but a warp waits for its slowest lane); P is computed twice (once per kernel),
 * and every operand comes from global memory. A fully
 * masked row has LSE = -inf and no allowed key: its dQ is 0 and it adds nothing to dK, dV.
 * Deterministic. Any D the API allows (accumulators in local memory).
 * Layer: cuda <- masks (rules.h). Step 2 (bwd2_tiled.cu) tiles both kernels.
 */
#include "ladder.h"
#include "common.cuh"

template <typename T, int D>
__global__ void __launch_bounds__(128) fm_bwd1_dq_kernel(const fm_attn_params p)
{
    const int i = blockIdx.x * blockDim.x + threadIdx.x, h = blockIdx.y, b = blockIdx.z;
    if (i >= p.seqlen_q) return;
    const fm_ladder_head hd(p, b, h);
    const size_t row = hd.row_base + i;
    const T *Q = static_cast<const T *>(p.q) + row * D;
    const T *O = static_cast<const T *>(p.out_in) + row * D;
    const T *dO = static_cast<const T *>(p.dout) + row * D;
    const T *K = static_cast<const T *>(p.k) + hd.kv_base * D;
    const T *V = static_cast<const T *>(p.v) + hd.kv_base * D;

    float q[D], dout[D], dq[D], delta = 0.f;
    for (int d = 0; d < D; d++) {
        q[d] = fm_ladder_f(Q, d), dout[d] = fm_ladder_f(dO, d), dq[d] = 0.f;
        delta = fmaf(dout[d], fm_ladder_f(O, d), delta);
    }
    p.delta[row] = delta;
    const float lse = p.lse_in[row];
    for (int j = 0; j < p.seqlen_k && lse != -INFINITY; j++) {
        if (fm_element_masked(hd.bounds + (size_t)j * FM_BOUNDS, (fm_causal)p.causal, p.offset, i,
                              j))
            continue;
        const T *k = K + (size_t)j * D, *v = V + (size_t)j * D;
        float s = 0.f, dp = 0.f;
        for (int d = 0; d < D; d++)
            s = fmaf(q[d], fm_ladder_f(k, d), s), dp = fmaf(dout[d], fm_ladder_f(v, d), dp);
        const float ds = expf(s * p.scale - lse) * (dp - delta);
        for (int d = 0; d < D; d++) dq[d] = fmaf(ds, fm_ladder_f(k, d), dq[d]);
    }
    T *dQ = static_cast<T *>(p.dq) + row * D;
    for (int d = 0; d < D; d++) dQ[d] = fm_tc_type<T>::from_float(dq[d] * p.scale);
}

/* grid: (key blocks of 128, kv heads, batch) */
template <typename T, int D>
__global__ void __launch_bounds__(128) fm_bwd1_dkdv_kernel(const fm_attn_params p)
{
    const int j = blockIdx.x * blockDim.x + threadIdx.x, hk = blockIdx.y, b = blockIdx.z;
    if (j >= p.seqlen_k) return;
    const size_t kv = ((size_t)b * p.kv_heads + hk) * (size_t)p.seqlen_k + j;
    const T *Kj = static_cast<const T *>(p.k) + kv * D, *Vj = static_cast<const T *>(p.v) + kv * D;
    float k[D], v[D], dk[D], dv[D];
    for (int d = 0; d < D; d++)
        k[d] = fm_ladder_f(Kj, d), v[d] = fm_ladder_f(Vj, d), dk[d] = dv[d] = 0.f;

    const int group = p.q_heads / p.kv_heads;
    for (int h = hk * group; h < (hk + 1) * group; h++) {
        const fm_ladder_head hd(p, b, h);
        const int32_t *col = hd.bounds + (size_t)j * FM_BOUNDS;
        for (int i = 0; i < p.seqlen_q; i++) {
            if (fm_element_masked(col, (fm_causal)p.causal, p.offset, i, j)) continue;
            const size_t row = hd.row_base + i;
            const float lse = p.lse_in[row];
            if (lse == -INFINITY) continue;
            const T *q = static_cast<const T *>(p.q) + row * D;
            const T *dO = static_cast<const T *>(p.dout) + row * D;
            float s = 0.f, dp = 0.f;
            for (int d = 0; d < D; d++)
                s = fmaf(fm_ladder_f(q, d), k[d], s), dp = fmaf(fm_ladder_f(dO, d), v[d], dp);
            const float pij = expf(s * p.scale - lse), ds = pij * (dp - p.delta[row]);
            for (int d = 0; d < D; d++) {
                dv[d] = fmaf(pij, fm_ladder_f(dO, d), dv[d]);
                dk[d] = fmaf(ds, fm_ladder_f(q, d), dk[d]);
            }
        }
    }
    T *dK = static_cast<T *>(p.dk) + kv * D, *dV = static_cast<T *>(p.dv) + kv * D;
    for (int d = 0; d < D; d++) {
        dK[d] = fm_tc_type<T>::from_float(dk[d] * p.scale);
        dV[d] = fm_tc_type<T>::from_float(dv[d]);
    }
}

template <typename T, int D> struct bwd1_launch {
    static cudaError_t run(const fm_attn_params &p, cudaStream_t stream)
    {
        dim3 gq((p.seqlen_q + 127) / 128, p.q_heads, p.batch);
        fm_bwd1_dq_kernel<T, D><<<gq, 128, 0, stream>>>(p);
        cudaError_t err = cudaGetLastError();
        if (err != cudaSuccess) return err;
        dim3 gk((p.seqlen_k + 127) / 128, p.kv_heads, p.batch);
        fm_bwd1_dkdv_kernel<T, D><<<gk, 128, 0, stream>>>(p); /* after Delta: same stream */
        return cudaGetLastError();
    }
};

cudaError_t fm_ladder_bwd1(const fm_attn_params &p, fm_dtype dtype, cudaStream_t stream)
{
    return fm_ladder_dispatch<bwd1_launch>(p, dtype, stream);
}
