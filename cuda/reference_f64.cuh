/* cuda/reference_f64.cuh — what the GPU float64 oracle's kernels take (one parameter block),
 * the tile sizes they are instantiated with, how they skip fully masked tiles, and the
 * launchers reference_f64_api.cu calls.
 * Layer: cuda (private; C++ only). The public entry points are fm_cuda_reference_* in
 * include/flashmask/cuda.h; the kernels are reference_f64_forward.cu and
 * reference_f64_backward.cu; docs/reference.md explains the algorithm.
 */
#ifndef FM_CUDA_REFERENCE_F64_CUH
#define FM_CUDA_REFERENCE_F64_CUH

#include <cuda_runtime.h>
#include <stdint.h>

#include "flashmask/rules.h"

/* The GPU summary's key-block width (summary.cu, kernels.h FM_CUDA_BLOCK_K). Every key tile of
 * the oracle lies inside one summary block (its width divides 64). */
enum { FM_REF64_SUMMARY_K = 64 };

/* Tensors are contiguous float64: q, out, dout, dq [B,Hq,Sq,D]; k, v, dk, dv [B,Hk,Sk,D];
 * lse, delta [B,Hq,Sq]; bounds [B,Hm,Sk,4]; summary [B,Hm,n_kblocks,FM_SUMMARY_WIDTH]. */
struct fm_ref64_params {
    const double *q, *k, *v, *out_in, *dout, *lse_in;
    double *out, *lse;      /* forward writes them */
    double *dq, *dk, *dv;   /* backward writes them */
    double *delta;          /* backward workspace: Delta_i = dO_i . O_i */
    unsigned long long *bad_row; /* backward, optional: min (b Hq + h) Sq + i over rows whose
                                    LSE is not finite but that have an allowed key */
    const int32_t *bounds, *summary;
    int batch, q_heads, kv_heads, mask_heads, seqlen_q, seqlen_k, head_dim, n_kblocks;
    int causal;          /* fm_causal */
    long long offset;    /* fm_causal_offset(causal, Sq, Sk) */
    double scale;
};

/* Tile sizes per maximum head dimension DMAX (32, 64, 128, 256; a head dimension D <= DMAX is
 * zero-padded in shared memory) and per tier: BIG fills the 227 KB of shared memory a Hopper
 * block may have (one block of 8 warps per SM at DMAX = 128), SMALL fits the 99 KB of any
 * compute capability >= 8.0. Forward and dQ: BM query rows (8 per warp) x BN keys per step;
 * dK/dV: KV_BN keys (8 per warp) x KV_BM query rows per step, KV_DOUT output columns per pass
 * (DMAX = 256 runs two passes: 2 x 128 columns of dK and dV do not fit the registers). */
template <int DMAX, bool BIG> struct fm_ref64_tiles {
    static constexpr int FWD_BM = BIG ? (DMAX <= 128 ? 64 : 32) : (DMAX <= 64 ? 32 : 16);
    static constexpr int FWD_BN = BIG ? FWD_BM : (DMAX == 128 ? 32 : FWD_BM);
    static constexpr int DQ_BM = BIG ? (DMAX <= 128 ? 64 : 32) : (DMAX <= 64 ? 32 : 16);
    static constexpr int DQ_BN =
        BIG ? (DMAX <= 128 ? 32 : 16) : (DMAX <= 64 ? 32 : DMAX == 128 ? 16 : 8);
    static constexpr int KV_BN = BIG ? (DMAX <= 128 ? 64 : 32) : (DMAX <= 64 ? 32 : 16);
    static constexpr int KV_BM =
        BIG ? (DMAX <= 128 ? 32 : 16) : (DMAX <= 64 ? 32 : DMAX == 128 ? 16 : 8);
    static constexpr int KV_DOUT = DMAX <= 128 ? DMAX : 128;
    static constexpr int LD = DMAX + 4;
    /* dynamic shared memory of each kernel, bytes */
    static constexpr size_t FWD_SMEM = (size_t)(FWD_BM + 2 * FWD_BN) * LD * 8 + 2 * FWD_BN * 16;
    static constexpr size_t DQ_SMEM = (size_t)(2 * DQ_BM + 2 * DQ_BN) * LD * 8 + 2 * DQ_BN * 16;
    static constexpr size_t KV_SMEM = (size_t)(2 * KV_BN + 2 * KV_BM) * LD * 8 + 2 * KV_BM * 8;
};

/* Class of rows [r0, r1) against key tile `tile` (BN keys, inside summary block
 * tile * BN / 64) from that block's summary: fm_classify_tile (rules.h) with the tile's own
 * columns. A summary of a superset of the columns is sound for the subset: MASKED and UNMASKED
 * then hold for every column of the larger block. `summary`: the (b, mask head)'s first block. */
template <int BN>
__device__ __forceinline__ fm_tile_class fm_ref64_classify(const fm_ref64_params &p,
                                                           const int32_t *summary, int tile,
                                                           int r0, int r1)
{
    const int c0 = tile * BN, c1 = min(c0 + BN, p.seqlen_k);
    const int4 *s = reinterpret_cast<const int4 *>(summary) +
                    (int64_t)(c0 / FM_REF64_SUMMARY_K) * (FM_SUMMARY_WIDTH / 4);
    const int4 a = __ldg(s), b = __ldg(s + 1);
    const int32_t mm[FM_SUMMARY_WIDTH] = {a.x, a.y, a.z, a.w, b.x, b.y, b.z, b.w};
    return fm_classify_tile(mm, (fm_causal)p.causal, p.offset, r0, r1, c0, c1);
}

/* The first key tile at or after `tile` not fully masked for rows [r0, r1), and its class
 * (n_tiles if none). The 32 lanes of each warp classify 32 tiles at once and a ballot picks the
 * first live one: every warp computes the same answer. Call from warp-uniform control flow. */
template <int BN>
__device__ __forceinline__ int fm_ref64_next_tile(const fm_ref64_params &p,
                                                  const int32_t *summary, int tile, int n_tiles,
                                                  int r0, int r1, fm_tile_class *cls)
{
    const int lane = threadIdx.x & 31;
    for (; tile < n_tiles; tile += 32) {
        const int mine = tile + lane;
        const fm_tile_class c =
            mine < n_tiles ? fm_ref64_classify<BN>(p, summary, mine, r0, r1) : FM_TILE_MASKED;
        const unsigned live = __ballot_sync(0xffffffffu, c != FM_TILE_MASKED);
        if (live) {
            const int first = __ffs(live) - 1;
            *cls = (fm_tile_class)__shfl_sync(0xffffffffu, (int)c, first);
            return tile + first;
        }
    }
    *cls = FM_TILE_MASKED;
    return n_tiles;
}

/* Launchers: pick the instance for head_dim and the device's shared memory (BIG when it fits),
 * set its shared-memory limit, launch. cudaErrorNotSupported if no instance fits the device. */
cudaError_t fm_ref64_launch_forward(const fm_ref64_params &p, cudaStream_t stream);
/* Delta, then dQ (query-block parallel), then dK/dV (key-block parallel): no atomics on
 * floating-point values, so the result is the same bits on every run. */
cudaError_t fm_ref64_launch_backward(const fm_ref64_params &p, cudaStream_t stream);

/* The tier for a kernel needing big_bytes / small_bytes of shared memory on the current
 * device: 1 big, 0 small, -1 neither fits (reference_f64_forward.cu).
 * fm_cuda_reference_force_small_tiles(1) forces the small tier (tests run both on one device). */
int fm_ref64_tier(size_t big_bytes, size_t small_bytes);

#endif
