/* cuda/backward_sm90.cuh — what the two Hopper dK/dV kernels share (backward_wgmma.cu and
 * backward_pipelined.cu): the query-block height, the bytes of a 64-row SW128 tile, and how a
 * query block's dQ = dS K is split into column parts, each staged in shared memory in the
 * blocked order of the float32 accumulator (kernels.h) and added to it by one bulk reduction.
 * Layer: cuda (private header, compile-time constants and checks only).
 */
#ifndef FM_CUDA_BACKWARD_SM90_CUH
#define FM_CUDA_BACKWARD_SM90_CUH

#include "kernels.h"

namespace fm_sm90_bwd {

constexpr int BC = FM_CUDA_BLOCK_K, BR = 64; /* keys per key block, queries per query block */
constexpr float LOG2E = 1.4426950408889634f;

/* Bytes of a 64-row tile of K, V, Q or dO (SW128, wgmma.cuh) at head dimension D. */
template <int D> constexpr int tile_bytes() { return 64 * D * 2; }

/* How a dK/dV kernel splits a query block's dQ = dS K (64 x D) among its WGS warpgroups: into
 * PARTS products of N columns (wgmma.m64n{N}k16 over all the block's keys), part j covering
 * columns [j N, j N + N), warpgroup w taking parts w, w + WGS, ... Two warpgroups take one part
 * each (64 columns at D = 128, 32 at D = 64), one warpgroup takes every part (two halves at
 * D = 128, all 64 columns at D = 64). Each part is staged in shared memory and added by one bulk
 * reduction of BYTES: a contiguous run of the blocked accumulator (kernels.h). */
template <int D, int WGS> struct dq_split {
    static_assert(D == 64 || D == 128, "the wgmma backward's head dimensions");
    static constexpr int N = D == 64 && WGS == 2 ? 32 : 64, PARTS = D / N, BYTES = BR * N * 4;
};

/* True when thread u's register e of 8-column block n of part j (the wgmma accumulator: row
 * (u / 32) * 16 + (u % 32) / 4 + 8 (e / 2), column N j + 8 n + 2 (u % 4) + e % 2) is where the
 * staging puts it (j * 64 N + n * 512 + u * 4 + e floats) in the blocked layout. */
template <int D, int N> constexpr bool dq_staging_matches_layout()
{
    for (int part = 0; part < D / N; part++)
        for (int n = 0; n < N / 8; n++)
            for (int u = 0; u < 128; u++)
                for (int e = 0; e < 4; e++) {
                    const int r = (u / 32) * 16 + (u % 32) / 4 + 8 * (e / 2);
                    const int c = N * part + 8 * n + 2 * (u % 4) + e % 2;
                    if (fm_dq_chunk_offset(r, c) != part * BR * N + n * 512 + u * 4 + e)
                        return false;
                }
    return true;
}
static_assert(dq_staging_matches_layout<128, dq_split<128, 1>::N>() &&
                  dq_staging_matches_layout<128, dq_split<128, 2>::N>() &&
                  dq_staging_matches_layout<64, dq_split<64, 1>::N>() &&
                  dq_staging_matches_layout<64, dq_split<64, 2>::N>(),
              "dQ staging and kernels.h's blocked layout disagree");

} /* namespace fm_sm90_bwd */

#endif
