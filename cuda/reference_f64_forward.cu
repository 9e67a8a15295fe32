/* cuda/reference_f64_forward.cu — the GPU float64 oracle's forward pass: O and LSE of
 * docs/spec.md §1 in float64 on FP64 tensor cores (dmma.cuh), one block per BM query rows of one (b, head),
 * an online softmax over the key tiles the mask leaves live (fully masked tiles are never
 * loaded; the element rule runs on partial tiles only). Also the shared-memory tier choice.
 * Layer: cuda <- masks (rules.h). Called through reference_f64_api.cu.
 *
 * Per block: Q tile in shared memory; for each live key tile, K (and its columns' bounds) and V
 * arrive by cp.async, V while S = Q K^T is computed and the next K while P V is. Warp w owns
 * query rows 8w .. 8w + 7; a row's scores sit in the 4 lanes of a quad (C fragments), so the
 * row max and sum are quad shuffles, and P goes into P V straight from the registers
 * (fm_dmma_pb). Per row: m = running max, l = running sum of exp(s - m) (each lane its own
 * share, summed at the end), O accumulated unnormalised and divided by l once.
 */
#include <math.h>
#include <stdlib.h>

#include "dmma.cuh"
#include "reference_f64.cuh"

/* Set by fm_cuda_reference_force_small_tiles (flashmask/cuda.h), for tests. */
static volatile int fm_ref64_force_small = 0;

extern "C" void fm_cuda_reference_force_small_tiles(int on)
{
    fm_ref64_force_small = on != 0;
}

int fm_ref64_tier(size_t big_bytes, size_t small_bytes)
{
    int dev = 0, optin = 0;
    if (cudaGetDevice(&dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev) !=
            cudaSuccess)
        return -1;
    /* fm_cuda_reference_force_small_tiles(1) takes the small tiles where the big ones would
     * fit: how a Hopper host tests the instances other devices run. */
    const bool force_small = fm_ref64_force_small != 0;
    if ((size_t)optin >= big_bytes && !force_small) return 1;
    return (size_t)optin >= small_bytes ? 0 : -1;
}

template <int DMAX, int BM, int BN>
__global__ void __launch_bounds__(BM * 4, 1) fm_ref64_forward_kernel(const fm_ref64_params p)
{
    constexpr int NT = BM * 4, LD = DMAX + 4, NJ = BN / 8, NO = DMAX / 8;
    extern __shared__ __align__(16) double smem[];
    double *sQ = smem, *sK = sQ + BM * LD, *sV = sK + BN * LD;
    int32_t *sCols = reinterpret_cast<int32_t *>(sV + BN * LD); /* [2][BN][4] */

    const int tid = threadIdx.x, lane = tid & 31, w = tid >> 5, g = lane >> 2, t = lane & 3;
    const int bh = blockIdx.y, b = bh / p.q_heads, h = bh % p.q_heads;
    const int hk = h / (p.q_heads / p.kv_heads), hm = h / (p.q_heads / p.mask_heads);
    const int Sq = p.seqlen_q, Sk = p.seqlen_k, D = p.head_dim;
    const double *q = p.q + (int64_t)bh * Sq * D;
    const double *k = p.k + ((int64_t)b * p.kv_heads + hk) * Sk * D;
    const double *v = p.v + ((int64_t)b * p.kv_heads + hk) * Sk * D;
    const int64_t mrow = (int64_t)b * p.mask_heads + hm;
    const int32_t *bounds = p.bounds + mrow * Sk * FM_BOUNDS;
    const int32_t *summary = p.summary + mrow * p.n_kblocks * FM_SUMMARY_WIDTH;
    const int r0 = blockIdx.x * BM, r1 = min(r0 + BM, Sq);
    const int row = r0 + 8 * w + g; /* this thread's query row (may be >= Sq: not stored) */
    const int n_tiles = (Sk + BN - 1) / BN;

    fm_tile_class cls;
    int tile = fm_ref64_next_tile<BN>(p, summary, 0, n_tiles, r0, r1, &cls);
    fm_load_rows_f64<BM, DMAX, LD, NT>(sQ, q, r0, Sq, D, tid);
    /* A key tile's columns' bounds (loaded in one group with its K), two bounds per copy. */
    auto load_cols = [&](int kt, int buf) {
        int32_t *dst = sCols + buf * BN * FM_BOUNDS;
        for (int c = tid; c < BN * FM_BOUNDS / 2; c += NT) { /* 8 bytes = two bounds */
            const int j = kt * BN + (2 * c) / FM_BOUNDS;
            const bool ok = j < Sk;
            fm_cp_async8(dst + 2 * c, ok ? bounds + (int64_t)kt * BN * FM_BOUNDS + 2 * c : bounds,
                         ok);
        }
    };
    if (tile < n_tiles) {
        fm_load_rows_f64<BN, DMAX, LD, NT>(sK, k, tile * BN, Sk, D, tid);
        load_cols(tile, 0);
    }
    fm_cp_async_commit(); /* group: Q, K, columns */
    if (tile < n_tiles) fm_load_rows_f64<BN, DMAX, LD, NT>(sV, v, tile * BN, Sk, D, tid);
    fm_cp_async_commit(); /* group: V */

    double o[NO][2];
#pragma unroll
    for (int n = 0; n < NO; n++) o[n][0] = o[n][1] = 0.0;
    double m_run = -INFINITY, l_run = 0.0;
    const double scale = p.scale;
    const fm_causal causal = (fm_causal)p.causal;

    for (int it = 0; tile < n_tiles; it++) {
        fm_cp_async_wait<1>(); /* Q, this K and its columns have landed (V may not have) */
        __syncthreads();
        double s[NJ][2];
#pragma unroll
        for (int j = 0; j < NJ; j++) s[j][0] = s[j][1] = 0.0;
        fm_dmma_abt<NJ, DMAX, LD>(s, sQ + 8 * w * LD, sK, g, t);

        fm_tile_class next_cls;
        const int next = fm_ref64_next_tile<BN>(p, summary, tile + 1, n_tiles, r0, r1, &next_cls);
        __syncthreads(); /* every warp is done with sK: bring the next K */
        if (next < n_tiles) {
            fm_load_rows_f64<BN, DMAX, LD, NT>(sK, k, next * BN, Sk, D, tid);
            load_cols(next, (it + 1) & 1);
        }
        fm_cp_async_commit();

        /* Scale, mask (keys past Sk always; the element rule on partial tiles only), and the
         * online softmax of this row. */
        const int32_t *cols = sCols + (it & 1) * BN * FM_BOUNDS;
        const int c0 = tile * BN;
        double mx = -INFINITY;
#pragma unroll
        for (int j = 0; j < NJ; j++)
#pragma unroll
            for (int e = 0; e < 2; e++) {
                const int jj = 8 * j + 2 * t + e, col = c0 + jj;
                const bool masked =
                    col >= Sk ||
                    (cls == FM_TILE_PARTIAL &&
                     fm_element_masked(cols + jj * FM_BOUNDS, causal, p.offset, row, col));
                s[j][e] = masked ? -INFINITY : s[j][e] * scale;
                mx = fmax(mx, s[j][e]);
            }
        mx = fm_quad_max(mx);
        const double m_new = fmax(m_run, mx);
        if (m_new == -INFINITY) { /* nothing allowed in this row so far */
#pragma unroll
            for (int j = 0; j < NJ; j++) s[j][0] = s[j][1] = 0.0;
        } else {
            const double corr = exp(m_run - m_new); /* 0 when m_run = -inf */
            l_run *= corr;
#pragma unroll
            for (int n = 0; n < NO; n++) o[n][0] *= corr, o[n][1] *= corr;
#pragma unroll
            for (int j = 0; j < NJ; j++)
#pragma unroll
                for (int e = 0; e < 2; e++) {
                    s[j][e] = exp(s[j][e] - m_new); /* exp(-inf) = 0 for masked keys */
                    l_run += s[j][e];
                }
            m_run = m_new;
        }

        fm_cp_async_wait<1>(); /* V has landed (the next K may not have) */
        __syncthreads();
        fm_dmma_pb<NJ, NO, LD>(o, s, sV, g, t);
        __syncthreads(); /* every warp is done with sV: bring the next V */
        if (next < n_tiles) fm_load_rows_f64<BN, DMAX, LD, NT>(sV, v, next * BN, Sk, D, tid);
        fm_cp_async_commit();
        tile = next;
        cls = next_cls;
    }
    fm_cp_async_wait<0>();

    const double l = fm_quad_sum(l_run);
    if (row >= Sq) return;
    double *out = p.out + ((int64_t)bh * Sq + row) * D;
    const bool any = l > 0.0; /* a fully masked row: O = 0, LSE = -inf */
#pragma unroll
    for (int n = 0; n < NO; n++)
#pragma unroll
        for (int e = 0; e < 2; e++) {
            const int d = 8 * n + 2 * t + e;
            if (d < D) out[d] = any ? o[n][e] / l : 0.0;
        }
    if (t == 0) p.lse[(int64_t)bh * Sq + row] = any ? m_run + log(l) : -INFINITY;
}

template <int DMAX, bool BIG>
static cudaError_t launch(const fm_ref64_params &p, cudaStream_t stream)
{
    using T = fm_ref64_tiles<DMAX, BIG>;
    auto kernel = fm_ref64_forward_kernel<DMAX, T::FWD_BM, T::FWD_BN>;
    cudaError_t err =
        cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)T::FWD_SMEM);
    if (err != cudaSuccess) return err;
    const dim3 grid((unsigned)((p.seqlen_q + T::FWD_BM - 1) / T::FWD_BM),
                    (unsigned)(p.batch * p.q_heads));
    kernel<<<grid, T::FWD_BM * 4, T::FWD_SMEM, stream>>>(p);
    return cudaGetLastError();
}

template <int DMAX> static cudaError_t launch_dim(const fm_ref64_params &p, cudaStream_t stream)
{
    const int tier = fm_ref64_tier(fm_ref64_tiles<DMAX, true>::FWD_SMEM,
                                   fm_ref64_tiles<DMAX, false>::FWD_SMEM);
    if (tier < 0) return cudaErrorNotSupported;
    return tier ? launch<DMAX, true>(p, stream) : launch<DMAX, false>(p, stream);
}

cudaError_t fm_ref64_launch_forward(const fm_ref64_params &p, cudaStream_t stream)
{
    const int d = p.head_dim;
    if (d <= 32) return launch_dim<32>(p, stream);
    if (d <= 64) return launch_dim<64>(p, stream);
    if (d <= 128) return launch_dim<128>(p, stream);
    return launch_dim<256>(p, stream);
}
