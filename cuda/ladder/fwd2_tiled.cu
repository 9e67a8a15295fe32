/* cuda/ladder/fwd2_tiled.cu — ladder step 2 (forward): FlashAttention-2's structure on CUDA
 * cores, with FlashMask's tile skipping. Over step 1 it adds:
 *
 *   - tiling: a thread block of 256 threads owns a block of query rows and walks the keys in
 *     blocks of 64 (FM_CUDA_BLOCK_K); each key block's K and V are copied once into shared
 *     memory and read there by every row of the block, so global traffic for K/V falls by the
 *     number of rows per block (32 to 128) and the reads come from on-chip memory;
 *   - a group of G threads per query row (fm_ladder_group: G = 2, 4, 8 as D grows), each
 *     holding D / G columns of q and o in registers; a dot product is G partial sums and a
 *     shuffle reduction;
 *   - the online softmax per chunk of 16 keys rather than per key: 16 scores first, then one
 *     max, one rescale of o and 16 updates o += p v;
 *   - FlashMask tile skipping: the key block's summary (min/max of its columns' bounds, made
 *     at upload by summary.cu) classifies the tile (fm_classify_tile via fm_cuda_classify):
 *     a fully masked tile is skipped before anything is loaded, an unmasked one runs no element
 *     test, and only a partial one applies fm_element_masked to its elements (the bounds of its
 *     64 columns staged in shared memory).
 *
 * Still slow next to step 3: every multiply-add is a CUDA-core FMA, about a sixteenth of the
 * rate of the tensor cores on the same chip. Any D the API allows; shared memory 2 * 64 * D
 * elements (64 KiB at D = 256). Layer: cuda <- masks (rules.h).
 */
#include "ladder.h"
#include "common.cuh"
#include "../tile.cuh"

template <typename T, int D> struct fwd2 {
    static constexpr int NT = 256, BC = FM_CUDA_BLOCK_K, CH = 16; /* keys per softmax update */
    static constexpr int G = fm_ladder_group<D>::G, W = fm_ladder_group<D>::W;
    static constexpr int ROWS = NT / G; /* query rows per thread block */
    static constexpr size_t SMEM = 2 * BC * D * sizeof(T) + BC * FM_BOUNDS * sizeof(int32_t);
};

template <typename T, int D>
__global__ void __launch_bounds__(256) fm_fwd2_kernel(const fm_attn_params p)
{
    using C = fwd2<T, D>;
    constexpr int BC = C::BC, CH = C::CH, G = C::G, W = C::W, ROWS = C::ROWS;
    extern __shared__ __align__(16) unsigned char smem[];
    T *sK = reinterpret_cast<T *>(smem), *sV = sK + BC * D;
    int32_t *sCols = reinterpret_cast<int32_t *>(sV + BC * D);

    const int tid = threadIdx.x, t = tid % G, h = blockIdx.y, b = blockIdx.z;
    const int r0 = blockIdx.x * ROWS, r1 = min(r0 + ROWS, p.seqlen_q);
    const int i = r0 + tid / G; /* this thread's row (past Sq: computes, never writes) */
    const fm_ladder_head hd(p, b, h);
    const T *K = static_cast<const T *>(p.k) + hd.kv_base * D;
    const T *V = static_cast<const T *>(p.v) + hd.kv_base * D;

    /* q pre-scaled to log2 units: s = q . k is then the exponent of 2 (exp2 is one instruction). */
    float2 q[W], o[W];
    fm_ladder_group_load<G, W>(q, static_cast<const T *>(p.q) + (hd.row_base + i) * D,
                               i < p.seqlen_q, t, p.scale * FM_LADDER_LOG2E);
    fm_ladder_group_load<G, W>(o, static_cast<const T *>(p.q), false, t, 0.f);
    float m = -INFINITY, l = 0.f;

    for (int kb = 0; kb < p.n_kblocks; kb++) {
        const fm_tile_class cls = fm_cuda_classify(p, hd.summary, kb, r0, r1);
        if (cls == FM_TILE_MASKED) continue; /* the whole block agrees: no load, no arithmetic */
        const int c0 = kb * BC, valid = min(BC, p.seqlen_k - c0);
        /* The last block may run past Sk: its missing keys are masked like a partial tile's. */
        const bool partial = cls == FM_TILE_PARTIAL || valid < BC;
        __syncthreads(); /* every thread is done with the previous tile */
        fm_ladder_load_tile<D, D, C::NT>(sK, K + (size_t)c0 * D, BC, valid, tid);
        fm_ladder_load_tile<D, D, C::NT>(sV, V + (size_t)c0 * D, BC, valid, tid);
        if (partial)
            for (int c = tid; c < BC * FM_BOUNDS; c += C::NT)
                sCols[c] = c < valid * FM_BOUNDS ? hd.bounds[(size_t)c0 * FM_BOUNDS + c] : 0;
        __syncthreads();

        /* The online softmax over chunks of CH keys: CH scores, one max, one rescale of o,
         * CH updates o += p v. (A whole tile at once would need 64 scores in registers and
         * unrolls into code eight times the size, for a rescale saved every 16 keys.) */
#pragma unroll 1
        for (int j0 = 0; j0 < BC; j0 += CH) {
            float s[CH];
            float mt = -INFINITY;
#pragma unroll
            for (int jj = 0; jj < CH; jj++) {
                const int j = j0 + jj;
                s[jj] = fm_ladder_group_dot<G, W>(q, sK + j * D, t);
                if (partial && (j >= valid || fm_element_masked(sCols + j * FM_BOUNDS,
                                                                (fm_causal)p.causal, p.offset, i,
                                                                c0 + j)))
                    s[jj] = -INFINITY;
                mt = fmaxf(mt, s[jj]);
            }
            const float m_new = fmaxf(m, mt);
            if (m_new == -INFINITY) continue; /* nothing allowed for this row yet */
            const float corr = exp2f(m - m_new);
            l *= corr;
#pragma unroll
            for (int w = 0; w < W; w++) o[w].x *= corr, o[w].y *= corr;
#pragma unroll
            for (int jj = 0; jj < CH; jj++) {
                const float pj = exp2f(s[jj] - m_new);
                l += pj;
                fm_ladder_group_axpy<G, W>(o, pj, sV + (j0 + jj) * D, t);
            }
            m = m_new;
        }
    }
    if (i >= p.seqlen_q) return;
    /* l is the same in the G threads of the row (each summed the same 64 p per tile). */
    fm_ladder_group_store<G, W>(static_cast<T *>(p.out) + (hd.row_base + i) * D, o, t,
                                l > 0.f ? 1.f / l : 0.f);
    if (t == 0) p.lse[hd.row_base + i] = l > 0.f ? (m + log2f(l)) * FM_LADDER_LN2 : -INFINITY;
}

template <typename T, int D> struct fwd2_launch {
    static cudaError_t run(const fm_attn_params &p, cudaStream_t stream)
    {
        using C = fwd2<T, D>;
        cudaError_t err = fm_ladder_smem(fm_fwd2_kernel<T, D>, C::SMEM);
        if (err != cudaSuccess) return err;
        dim3 grid((p.seqlen_q + C::ROWS - 1) / C::ROWS, p.q_heads, p.batch);
        fm_fwd2_kernel<T, D><<<grid, C::NT, C::SMEM, stream>>>(p);
        return cudaGetLastError();
    }
};

cudaError_t fm_ladder_fwd2(const fm_attn_params &p, fm_dtype dtype, cudaStream_t stream)
{
    return fm_ladder_dispatch<fwd2_launch>(p, dtype, stream);
}
