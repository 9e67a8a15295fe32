/* cuda/ladder/fwd1_naive.cu — ladder step 1 (forward): the CPU loop ported as it stands. One
 * thread per query row i walks every key j, asks the element rule (fm_element_masked, rules.h)
 * about (i, j), and for an allowed key updates an online softmax in float32:
 *
 *   s = scale q_i . k_j,   m' = max(m, s),
 *   l = l e^(m - m') + e^(s - m'),   o = o e^(m - m') + e^(s - m') v_j,   m = m'
 *
 * and ends with O_i = o / l, LSE_i = m + log l (a row with no allowed key: O = 0, LSE = -inf).
 * What it costs: every thread reads all of K and V from global memory (the 32 threads of a warp
 * read the same key together, so the loads are broadcasts, but nothing is reused across
 * warps except through the caches), every (i, j) pair pays the element test, fully masked
 * regions included (a masked pair skips the dot product, but a warp waits for its slowest
 * lane: one allowed row in 32 keeps all 32 busy), and the accumulators o[D] and q[D] live in local
 * memory at D >= 128 (ptxas reports the stack frame and spills: expected here). Any D the API
 * allows.
 * Layer: cuda <- masks (rules.h). Step 2 (fwd2_tiled.cu) stages K/V tiles in shared memory and
 * skips masked tiles.
 */
#include "ladder.h"
#include "common.cuh"

template <typename T, int D>
__global__ void __launch_bounds__(128) fm_fwd1_kernel(const fm_attn_params p)
{
    const int i = blockIdx.x * blockDim.x + threadIdx.x, h = blockIdx.y, b = blockIdx.z;
    if (i >= p.seqlen_q) return;
    const fm_ladder_head hd(p, b, h);
    const T *Q = static_cast<const T *>(p.q) + (hd.row_base + i) * D;
    const T *K = static_cast<const T *>(p.k) + hd.kv_base * D;
    const T *V = static_cast<const T *>(p.v) + hd.kv_base * D;

    float q[D], o[D];
    for (int d = 0; d < D; d++) q[d] = fm_ladder_f(Q, d) * p.scale, o[d] = 0.f;
    float m = -INFINITY, l = 0.f;
    for (int j = 0; j < p.seqlen_k; j++) {
        if (fm_element_masked(hd.bounds + (size_t)j * FM_BOUNDS, (fm_causal)p.causal, p.offset, i,
                              j))
            continue;
        const T *k = K + (size_t)j * D, *v = V + (size_t)j * D;
        float s = 0.f;
        for (int d = 0; d < D; d++) s = fmaf(q[d], fm_ladder_f(k, d), s);
        const float m_new = fmaxf(m, s);
        const float corr = expf(m - m_new), pj = expf(s - m_new); /* e^-inf = 0 the first time */
        l = l * corr + pj;
        for (int d = 0; d < D; d++) o[d] = fmaf(pj, fm_ladder_f(v, d), o[d] * corr);
        m = m_new;
    }
    T *O = static_cast<T *>(p.out) + (hd.row_base + i) * D;
    const float inv = l > 0.f ? 1.f / l : 0.f;
    for (int d = 0; d < D; d++) O[d] = fm_tc_type<T>::from_float(o[d] * inv);
    p.lse[hd.row_base + i] = l > 0.f ? m + logf(l) : -INFINITY;
}

template <typename T, int D> struct fwd1_launch {
    static cudaError_t run(const fm_attn_params &p, cudaStream_t stream)
    {
        dim3 grid((p.seqlen_q + 127) / 128, p.q_heads, p.batch);
        fm_fwd1_kernel<T, D><<<grid, 128, 0, stream>>>(p);
        return cudaGetLastError();
    }
};

cudaError_t fm_ladder_fwd1(const fm_attn_params &p, fm_dtype dtype, cudaStream_t stream)
{
    return fm_ladder_dispatch<fwd1_launch>(p, dtype, stream);
}
