/* cuda/forward_wgmma.cu — the FlashMask forward on Hopper's warpgroup MMA (wgmma, sm_90a),
 * D = 128. Layer: cuda <- masks (rules.h, through tile.cuh).
 * State: the two-stage, wait-for-everything version (commit 8077681) passed tests/cuda on an H200;
 * the pipelined main loop below (branch wip/wgmma-fwd) is UNVALIDATED: written without a device.
 *
 * One block of 2 consumer warpgroups (256 threads) per (128 query rows, head, batch); warpgroup
 * w owns rows [64 w, 64 w + 64), each of its warps 16 of them. Q, K and V sit in shared memory in
 * the 128-byte-swizzle layout wgmma reads (cuda/experimental/wgmma_probe.cu checks the
 * descriptors). Per live key block j (the same live list as forward.cu):
 *   S_j[64 x 64] = Q K_j^T      wgmma.m64n64k16, both operands from shared memory
 *   partial tile: -inf from the column bits (tile.cuh), per warp
 *   online softmax, P_j rounded to T (row sum of the rounded P, as forward.cu)
 *   O = O corr_j + P_j V_j      wgmma.m64n128k16, P from registers, V transposed in smem
 *
 * Pipeline (FlashAttention-3's ideas, this library's code):
 *  - Loads: every thread cp.asyncs its share of K, V and the column bounds of a block into one
 *    of NS = 4 stages, then cp.async.mbarrier.arrive.noinc on that stage's mbarrier full[s]
 *    (count 256): the barrier's phase completes when all the copies have landed, and nobody
 *    blocks on its own copies. Block j + 1 is issued while tile j is processed.
 *  - Intra-warpgroup overlap: at tile j a warpgroup issues S_j = Q K_j^T, then (after scaling O
 *    by corr_{j-1}) O += P_{j-1} V_{j-1}, and waits (wait_group 1) for S_j only: its softmax of
 *    tile j runs while the tensor core does P_{j-1} V_{j-1}. wait_group 0 at the end of the
 *    tile. Tile 0 issues S_0 alone; after the last tile one more turn issues the last P V.
 *  - Ping-pong: the two warpgroups take turns at issuing their wgmma (named barriers
 *    BAR_TURN0/1, bar.sync by the one whose turn it is, bar.arrive by the other), so one
 *    warpgroup's GEMMs run during the other's softmax. No __syncthreads in the loop except
 *    inside the list refill (rare; both warpgroups reach it at the same tile).
 *  - Both warpgroups run every tile of the CTA's list, and no wgmma or wait_group sits under a
 *    branch (ptxas serialises wgmma it cannot prove warpgroup-uniform): a warpgroup whose 64
 *    rows a tile fully masks runs it with P = 0, as a fully masked warp does.
 * Sync points, and what they protect, are commented where they are: wait_tile (RAW: copies
 * -> wgmma, with the proxy fence), turn_wait/turn_pass (ping-pong; also the WAR argument for
 * the stage the next block is loaded into, see advance), wg_wait<1>/<0> (S_j, then
 * P_{j-1} V_{j-1}: O, P and the stage of V_{j-1} are free again), fence_regs (keeps the
 * compiler from moving or reusing wgmma operand registers across issue and wait).
 * The accumulator layouts per warp are mma.sync's (tc.cuh), so the softmax and masking code
 * is forward.cu's.
 *
 * Compiled only where FM_CUDA_WGMMA is defined and the target is sm_90a; the launcher returns
 * cudaErrorNotSupported otherwise, and forward.cu uses it only when FM_CUDA_WGMMA=1 is set in
 * the environment (an experiment switch until tests/cuda has passed with it).
 */
#include <math.h>

#include "kernels.h"
#include "tc.cuh"
#include "tile.cuh"

#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define FM_WGMMA_DEVICE 1
#endif

namespace {

constexpr int WG_ROWS = 64, WGS = 2, BR = WG_ROWS * WGS, BC = FM_CUDA_BLOCK_K, D = 128;
constexpr int NW = WGS * 4, NT = NW * 32;
constexpr int TILE_Q = BR * D * 2, TILE_KV = BC * D * 2; /* bytes */
constexpr int NS = 4;                      /* K/V/bounds stages (why 4: the main loop's WAR note) */

/* Byte offset of (r, c) in a [rows][128] bf16/f16 tile, 128-byte swizzle, 64-column blocks. */
__device__ __forceinline__ uint32_t sw128(int r, int c, int rows)
{
    return (uint32_t)((c >> 6) * rows * 128 + r * 128 + ((((c & 63) >> 3) ^ (r & 7)) << 4) +
                      (c & 7) * 2);
}

template <typename T>
__device__ __forceinline__ void load_sw128(unsigned char *tile, const T *g, int rows, int valid,
                                           int tid)
{
    for (int i = tid; i < rows * (D / 8); i += NT) {
        const int r = i / (D / 8), c = (i % (D / 8)) * 8;
        const bool ok = r < valid;
        fm_cp_async16(tile + sw128(r, c, rows), g + (ok ? (size_t)r * D + c : 0), ok);
    }
}

/* K, V and the bounds of key block kb into stage st (cp.async, every thread a share) */
template <typename T>
__device__ __forceinline__ void load_stage(unsigned char *sK, unsigned char *sV, int32_t *sCols,
                                           int st, const T *K, const T *V,
                                           const int32_t *bounds, int kb, int seqlen_k, int tid)
{
    load_sw128<T>(sK + st * TILE_KV, K + (size_t)kb * BC * D, BC, seqlen_k - kb * BC, tid);
    load_sw128<T>(sV + st * TILE_KV, V + (size_t)kb * BC * D, BC, seqlen_k - kb * BC, tid);
    fm_cuda_load_cols(sCols + st * BC * FM_BOUNDS, bounds, kb, seqlen_k, tid, NT);
}

__device__ __forceinline__ uint64_t desc(uint32_t addr, uint32_t lbo, uint32_t sbo)
{
    return (uint64_t)((addr >> 4) & 0x3FFF) | (uint64_t)((lbo >> 4) & 0x3FFF) << 16 |
           (uint64_t)((sbo >> 4) & 0x3FFF) << 32 | (uint64_t)1 << 62;
}

#ifdef FM_WGMMA_DEVICE
constexpr int BAR_TURN0 = 1, BAR_TURN1 = 2; /* named barriers of the ping-pong (0: __syncthreads) */

__device__ __forceinline__ void wg_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wg_commit()
{
    asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
}
/* until at most N of this warpgroup's committed wgmma groups are in flight */
template <int N> __device__ __forceinline__ void wg_wait()
{
    asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}
/* Pins registers in place around wgmma issue/wait points, so that the compiler neither moves
 * accesses of an accumulator across them nor copies it while a wgmma writes it. */
template <int N> __device__ __forceinline__ void fence_regs(float (&r)[N][4])
{
#pragma unroll
    for (int i = 0; i < N; i++)
#pragma unroll
        for (int e = 0; e < 4; e++) asm volatile("" : "+f"(r[i][e])::"memory");
}
/* The same for a P fragment: after the wait, it keeps P alive up to there, so that the compiler
 * cannot give the next tile's P (computed while the wgmma still reads this one) its registers. */
__device__ __forceinline__ void fence_regs(uint32_t (&r)[8][2])
{
#pragma unroll
    for (int i = 0; i < 8; i++)
#pragma unroll
        for (int e = 0; e < 2; e++) asm volatile("" : "+r"(r[i][e])::"memory");
}

/* mbarrier in shared memory (addr: shared-window address) */
__device__ __forceinline__ void mbar_init(uint32_t addr, int count)
{
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(addr), "r"(count) : "memory");
}
__device__ __forceinline__ void mbar_wait(uint32_t addr, uint32_t parity)
{
    asm volatile("{\n.reg .pred done;\nFM_MBAR_WAIT:\n"
                 "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
                 "@!done bra FM_MBAR_WAIT;\n}\n" ::"r"(addr),
                 "r"(parity)
                 : "memory");
}
/* One arrival on the mbarrier, made when all of this thread's earlier cp.async have landed
 * (noinc: the arrival is one of the count given at init). */
__device__ __forceinline__ void cp_async_arrive(uint32_t addr)
{
    asm volatile("cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];\n" ::"r"(addr) : "memory");
}
/* named barriers over both warpgroups (256 threads): sync waits, arrive only signals */
template <int ID> __device__ __forceinline__ void named_sync()
{
    asm volatile("bar.sync %0, %1;\n" ::"n"(ID), "n"(NT) : "memory");
}
template <int ID> __device__ __forceinline__ void named_arrive()
{
    asm volatile("bar.arrive %0, %1;\n" ::"n"(ID), "n"(NT) : "memory");
}

/* S[32 floats] (+)= A(desc) B(desc)^T, m64n64k16. ACC false: S = A B^T, s write-only (so that
 * what the softmax did to s before is no input of the wgmma: ptxas would serialise otherwise). */
template <typename T, bool ACC>
__device__ __forceinline__ void mma_ss(float (&d)[8][4], uint64_t da, uint64_t db);

#define FM_S32(C)                                                                                  \
    C(d[0][0]), C(d[0][1]), C(d[0][2]), C(d[0][3]), C(d[1][0]), C(d[1][1]), C(d[1][2]),            \
        C(d[1][3]), C(d[2][0]), C(d[2][1]), C(d[2][2]), C(d[2][3]), C(d[3][0]), C(d[3][1]),        \
        C(d[3][2]), C(d[3][3]), C(d[4][0]), C(d[4][1]), C(d[4][2]), C(d[4][3]), C(d[5][0]),        \
        C(d[5][1]), C(d[5][2]), C(d[5][3]), C(d[6][0]), C(d[6][1]), C(d[6][2]), C(d[6][3]),        \
        C(d[7][0]), C(d[7][1]), C(d[7][2]), C(d[7][3])
#define FM_RW(x) "+f"(x)
#define FM_WO(x) "=f"(x)
#define FM_WG_SS(TY, NAME, ACC, CONS, SCALE_D)                                                     \
    template <>                                                                                    \
    __device__ __forceinline__ void mma_ss<TY, ACC>(float (&d)[8][4], uint64_t da, uint64_t db)    \
    {                                                                                              \
        asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, " SCALE_D ", 0;\n"                         \
                     "wgmma.mma_async.sync.aligned.m64n64k16.f32." NAME "." NAME " "               \
                     "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,"                     \
                     "%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31}, "          \
                     "%32, %33, p, 1, 1, 0, 0;\n}\n"                                               \
                     : FM_S32(CONS)                                                                \
                     : "l"(da), "l"(db));                                                          \
    }
FM_WG_SS(__half, "f16", true, FM_RW, "1")
FM_WG_SS(__nv_bfloat16, "bf16", true, FM_RW, "1")
FM_WG_SS(__half, "f16", false, FM_WO, "0")
FM_WG_SS(__nv_bfloat16, "bf16", false, FM_WO, "0")

/* O[64 floats] += A(regs) B(desc, MN-major: transposed), m64n128k16 */
template <typename T>
__device__ __forceinline__ void mma_rs(float (&d)[16][4], const uint32_t (&a)[4], uint64_t db);

#define FM_O16(i) "+f"(d[i][0]), "+f"(d[i][1]), "+f"(d[i][2]), "+f"(d[i][3])
#define FM_WG_RS(TY, NAME)                                                                         \
    template <>                                                                                    \
    __device__ __forceinline__ void mma_rs<TY>(float (&d)[16][4], const uint32_t (&a)[4],         \
                                               uint64_t db)                                        \
    {                                                                                              \
        asm volatile("wgmma.mma_async.sync.aligned.m64n128k16.f32." NAME "." NAME " "              \
                     "{%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,"                     \
                     "%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31,"            \
                     "%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,%46,%47,"            \
                     "%48,%49,%50,%51,%52,%53,%54,%55,%56,%57,%58,%59,%60,%61,%62,%63}, "          \
                     "{%64,%65,%66,%67}, %68, 1, 1, 1, 1;\n" /* scale-d 1: D += A B */           \
                     : FM_O16(0), FM_O16(1), FM_O16(2), FM_O16(3), FM_O16(4), FM_O16(5),           \
                       FM_O16(6), FM_O16(7), FM_O16(8), FM_O16(9), FM_O16(10), FM_O16(11),         \
                       FM_O16(12), FM_O16(13), FM_O16(14), FM_O16(15)                              \
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db));                       \
    }
FM_WG_RS(__half, "f16")
FM_WG_RS(__nv_bfloat16, "bf16")
#endif

template <typename T>
__global__ void __launch_bounds__(NT, 1) fm_forward_wgmma_kernel(const fm_attn_params p)
{
#ifdef FM_WGMMA_DEVICE
    extern __shared__ unsigned char smem_raw[];
    /* SW128 tiles need 1024-byte alignment */
    unsigned char *smem = reinterpret_cast<unsigned char *>(
        (reinterpret_cast<uintptr_t>(smem_raw) + 1023) & ~static_cast<uintptr_t>(1023));
    /* stage s of K, V and the bounds: sK + s TILE_KV, sV + s TILE_KV, sCols + s BC 4; full + s */
    unsigned char *sQ = smem, *sK = sQ + TILE_Q, *sV = sK + NS * TILE_KV;
    int32_t *sCols = reinterpret_cast<int32_t *>(sV + NS * TILE_KV);
    uint64_t *full = reinterpret_cast<uint64_t *>(sCols + NS * BC * FM_BOUNDS);
    int *sList = reinterpret_cast<int *>(full + NS);
    uint32_t *sListCls = reinterpret_cast<uint32_t *>(sList + NT);
    int *sScratch = reinterpret_cast<int *>(sListCls + NT);

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, wg = warp >> 2;
    const int g = lane >> 2, t = lane & 3;
    const int h = blockIdx.y, b = blockIdx.z;
    const int r0 = (gridDim.x - 1 - blockIdx.x) * BR, r1 = min(r0 + BR, p.seqlen_q);
    const int hk = h / (p.q_heads / p.kv_heads), hm = h / (p.q_heads / p.mask_heads);
    const T *Q = static_cast<const T *>(p.q) + ((size_t)b * p.q_heads + h) * p.seqlen_q * D;
    const T *K = static_cast<const T *>(p.k) + ((size_t)b * p.kv_heads + hk) * p.seqlen_k * D;
    const T *V = static_cast<const T *>(p.v) + ((size_t)b * p.kv_heads + hk) * p.seqlen_k * D;
    const int32_t *bounds = p.bounds + ((size_t)b * p.mask_heads + hm) * p.seqlen_k * FM_BOUNDS;
    const int32_t *summary =
        p.summary + ((size_t)b * p.mask_heads + hm) * p.n_kblocks * FM_SUMMARY_WIDTH;
    const float scale_log2 = p.scale * 1.4426950408889634f;
    const int w0 = r0 + warp * 16; /* this warp's 16 rows */
    const uint32_t full_addr = (uint32_t)__cvta_generic_to_shared(full);

    if (tid == 0)
        for (int s = 0; s < NS; s++) mbar_init(full_addr + 8 * s, NT);
    __syncthreads(); /* the barriers are initialised before anyone arrives on them */

    load_sw128<T>(sQ, Q + (size_t)r0 * D, BR, r1 - r0, tid);
    int scanned = 0;
    int listed = fm_cuda_list_live<NW, 16>(p, summary, &scanned, r0, r1, sList, sListCls,
                                           sScratch);
    int kb = listed ? sList[0] : p.n_kblocks;
    uint32_t kb_cls = listed ? sListCls[0] : 0;
    if (kb < p.n_kblocks) load_stage<T>(sK, sV, sCols, 0, K, V, bounds, kb, p.seqlen_k, tid);
    /* full[0] completes when this thread's copies so far (Q and tile 0) have landed */
    cp_async_arrive(full_addr);

    float acc_o[16][4];
#pragma unroll
    for (int n = 0; n < 16; n++)
        for (int e = 0; e < 4; e++) acc_o[n][e] = 0.f;
    float row_max[2] = {-INFINITY, -INFINITY}, row_sum[2] = {0.f, 0.f};
    const uint32_t q_addr = (uint32_t)__cvta_generic_to_shared(sQ) + wg * WG_ROWS * 128;
    const uint32_t k_base = (uint32_t)__cvta_generic_to_shared(sK);
    const uint32_t v_base = (uint32_t)__cvta_generic_to_shared(sV);

    /* RAW on stage st of tile j: every thread's cp.async of it (and of Q, for j = 0) has
     * landed; then the proxy fence makes those generic-proxy writes visible to this thread's
     * wgmma (async-proxy) reads. */
    auto wait_tile = [&](int j) {
        mbar_wait(full_addr + 8 * (j % NS), (uint32_t)(j / NS) & 1u);
        asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
    };
    /* S = Q K^T on stage st: 8 k-steps of 16 over D = 128 (32 bytes inside a 64-column block).
     * s is not read before the wait_group that covers this group. */
    auto issue_s = [&](float (&s)[8][4], int st) {
        const uint32_t k_addr = k_base + st * TILE_KV;
        wg_fence();
#pragma unroll
        for (int kk = 0; kk < D / 16; kk++) {
            const uint32_t qo = (kk >> 2) * BR * 128 + (kk & 3) * 32;
            const uint32_t ko = (kk >> 2) * BC * 128 + (kk & 3) * 32;
            if (kk == 0)
                mma_ss<T, false>(s, desc(q_addr + qo, 16, 1024), desc(k_addr + ko, 16, 1024));
            else
                mma_ss<T, true>(s, desc(q_addr + qo, 16, 1024), desc(k_addr + ko, 16, 1024));
        }
        wg_commit();
    };
    /* O = O corr + P V on stage st. No wgmma writes O here (each P V is waited for at the end
     * of its tile); the wgmma.fence orders the rescale's register writes, and those of P,
     * before the wgmma that reads them. O and P are not touched until wait_group 0. */
    auto issue_pv = [&](const uint32_t (&pp)[8][2], const float (&corr)[2], bool rescale,
                        int st) {
        if (rescale) { /* warp-uniform; no wgmma inside */
#pragma unroll
            for (int n = 0; n < 16; n++)
#pragma unroll
                for (int hr = 0; hr < 2; hr++)
                    acc_o[n][2 * hr] *= corr[hr], acc_o[n][2 * hr + 1] *= corr[hr];
        }
        fence_regs(acc_o);
        const uint32_t v_addr = v_base + st * TILE_KV;
        wg_fence();
#pragma unroll
        for (int kk = 0; kk < BC / 16; kk++) {
            const uint32_t a[4] = {pp[2 * kk][0], pp[2 * kk][1], pp[2 * kk + 1][0],
                                   pp[2 * kk + 1][1]};
            mma_rs<T>(acc_o, a, desc(v_addr + kk * 16 * 128, BC * 128, 1024));
        }
        wg_commit();
    };
    /* Ping-pong turns at the tensor core (named barriers over both warpgroups): a warpgroup
     * issues its wgmma between turn_wait and turn_pass, so that its GEMMs run while the other
     * warpgroup does its softmax. Warpgroup 0 takes the first turn. */
    auto turn_wait = [&] {
        if (wg == 0) named_sync<BAR_TURN0>(); else named_sync<BAR_TURN1>();
    };
    auto turn_pass = [&] {
        if (wg == 0) named_arrive<BAR_TURN1>(); else named_arrive<BAR_TURN0>();
    };
    /* After tile j's products are issued: the next live block. Refills the list (all threads;
     * both warpgroups get here at the same tile, and the list's __syncthreads come after every
     * read of the old list) and prefetches the block into stage (j + 1) % NS.
     * WAR on that stage: it last held tile j + 1 - NS = j - 3, whose K (S_{j-3}), V
     * (P_{j-3} V_{j-3}, issued at tile j - 2) and bounds (softmax of tile j - 3) every
     * warpgroup is done with: this one since its wait_group 0 at the end of tile j - 1; the
     * other one because our turn at tile j needed its turn_pass at tile j - 1, which comes
     * after its wait_group 0 at the end of tile j - 2. */
    int at = 0;
    auto advance = [&](int j) {
        if (at + 1 == listed) {
            listed = fm_cuda_list_live<NW, 16>(p, summary, &scanned, r0, r1, sList, sListCls,
                                               sScratch);
            at = -1;
        }
        const int next = at + 1 < listed ? sList[at + 1] : p.n_kblocks;
        const uint32_t next_cls = at + 1 < listed ? sListCls[at + 1] : 0;
        if (next < p.n_kblocks)
            load_stage<T>(sK, sV, sCols, (j + 1) % NS, K, V, bounds, next, p.seqlen_k, tid);
        /* always arrive (no copies: at once), so that every phase of full[] completes */
        cp_async_arrive(full_addr + 8 * ((j + 1) % NS));
        ++at;
        kb = next, kb_cls = next_cls;
    };
    /* Tile j's column bits (partial tiles; read from the bounds in stage st): before the wait
     * for S, so that they overlap it. */
    auto column_bits = [&](int st, uint32_t cls, int c0, uint32_t (&col_bits)[2]) {
        const fm_tile_class wcls = (fm_tile_class)((cls >> (2 * warp)) & 3u);
        col_bits[0] = col_bits[1] = 0u;
        if (wcls == FM_TILE_PARTIAL || c0 + BC > p.seqlen_k)
            fm_cuda_column_bits(p, sCols + st * BC * FM_BOUNDS, c0, w0, lane, col_bits);
    };
    /* Online softmax of S (forward.cu's): P rounded to T into pp, the row sums of the rounded
     * P, and the factor O must be scaled by before P V (corr; rescale: warp-uniform "some
     * factor is not 1"). A warp whose 16 rows the tile fully masks gives P = 0, corr = 1. */
    auto softmax = [&](float (&s)[8][4], uint32_t cls, int c0, const uint32_t (&col_bits)[2],
                       uint32_t (&pp)[8][2], float (&corr)[2], bool &rescale) {
        const fm_tile_class wcls = (fm_tile_class)((cls >> (2 * warp)) & 3u);
        corr[0] = corr[1] = 1.f;
        rescale = false;
        if (wcls == FM_TILE_MASKED) {
#pragma unroll
            for (int n = 0; n < 8; n++) pp[n][0] = pp[n][1] = 0u;
            return;
        }
        if (wcls == FM_TILE_PARTIAL || c0 + BC > p.seqlen_k) {
#pragma unroll
            for (int n = 0; n < 8; n++)
#pragma unroll
                for (int c = 0; c < 2; c++) {
                    const uint32_t rows = __shfl_sync(0xffffffffu, col_bits[n / 4],
                                                      (n % 4) * 8 + 2 * t + c) >> g;
#pragma unroll
                    for (int hr = 0; hr < 2; hr++)
                        if ((rows >> (hr * 8)) & 1u) s[n][2 * hr + c] = -INFINITY;
                }
        }
        bool any = false;
#pragma unroll
        for (int hr = 0; hr < 2; hr++) {
            float mx = -INFINITY;
#pragma unroll
            for (int n = 0; n < 8; n++) mx = fmaxf(mx, fmaxf(s[n][2 * hr], s[n][2 * hr + 1]));
            const float m_new = fmaxf(row_max[hr], fm_quad_max(mx));
            const float m_use = m_new == -INFINITY ? 0.f : m_new;
            corr[hr] = fm_exp2((row_max[hr] - m_use) * scale_log2);
            any |= corr[hr] != 1.f;
            row_max[hr] = m_new;
            const float bias = m_use * scale_log2;
            float sum = 0.f;
#pragma unroll
            for (int n = 0; n < 8; n++) {
                pp[n][hr] = fm_tc_type<T>::pack(fm_exp2(fmaf(s[n][2 * hr], scale_log2, -bias)),
                                                fm_exp2(fmaf(s[n][2 * hr + 1], scale_log2, -bias)));
                const float2 pr = fm_tc_type<T>::unpack(pp[n][hr]);
                sum += pr.x + pr.y;
            }
            row_sum[hr] = row_sum[hr] * corr[hr] + sum;
        }
        rescale = __any_sync(0xffffffffu, any);
    };

    /* Both warpgroups run the same tiles: the list is the CTA's, so the loop, its wgmma and
     * its barriers are uniform over each warpgroup (ptxas serialises wgmma under branches it
     * cannot prove uniform, so there are none around them). A warpgroup whose 64 rows a tile
     * fully masks runs it with P = 0. */
    if (kb < p.n_kblocks) {
        uint32_t p_prev[8][2]; /* P of tile j - 1, read by the P V in flight */
        float pend_corr[2];
        bool pend_rescale;
        float s[8][4];
        uint32_t col_bits[2];

        /* tile 0: S_0 only */
        if (wg == 1) named_arrive<BAR_TURN0>(); /* warpgroup 0's first turn */
        wait_tile(0);
        turn_wait();
        issue_s(s, 0);
        turn_pass();
        uint32_t cls = kb_cls;
        int c0 = kb * BC;
        advance(0);
        column_bits(0, cls, c0, col_bits);
        wg_wait<0>(); /* S_0 */
        fence_regs(s);
        softmax(s, cls, c0, col_bits, p_prev, pend_corr, pend_rescale);

        int j = 1; /* index of the tile in the CTA's list of live blocks */
        for (; kb < p.n_kblocks; j++) {
            const int st = j % NS;
            wait_tile(j);
            turn_wait();
            issue_s(s, st);                                                      /* group 1 */
            issue_pv(p_prev, pend_corr, pend_rescale, (j + NS - 1) % NS);        /* group 2 */
            turn_pass();
            cls = kb_cls, c0 = kb * BC;
            advance(j);
            column_bits(st, cls, c0, col_bits);
            wg_wait<1>(); /* S_j; P_{j-1} V_{j-1} may still run (overlaps the softmax) */
            fence_regs(s);
            uint32_t p_cur[8][2];
            softmax(s, cls, c0, col_bits, p_cur, pend_corr, pend_rescale);
            wg_wait<0>(); /* P_{j-1} V_{j-1}: O may be touched, p_prev rewritten, V_{j-1} reused */
            fence_regs(acc_o);
            fence_regs(p_prev);
#pragma unroll
            for (int n = 0; n < 8; n++) p_prev[n][0] = p_cur[n][0], p_prev[n][1] = p_cur[n][1];
        }

        /* The last P V (V of tile j - 1 = n - 1, which no load overwrote), in one more turn.
         * Warpgroup 0 passes the turn once more, warpgroup 1 not: each named barrier then has
         * as many arrivals as waits (n + 1 each). */
        turn_wait();
        issue_pv(p_prev, pend_corr, pend_rescale, (j + NS - 1) % NS);
        if (wg == 0) named_arrive<BAR_TURN1>();
        wg_wait<0>();
        fence_regs(acc_o);
    }
    asm volatile("cp.async.wait_all;\n" ::: "memory"); /* nothing in flight at exit */

#pragma unroll
    for (int hr = 0; hr < 2; hr++) {
        const int i = w0 + g + hr * 8;
        const float l = fm_quad_sum(row_sum[hr]);
        if (i >= p.seqlen_q) continue;
        const float inv = l > 0.f ? 1.f / l : 0.f;
        T *o = static_cast<T *>(p.out) + (((size_t)b * p.q_heads + h) * p.seqlen_q + i) * D;
#pragma unroll
        for (int n = 0; n < 16; n++)
            *reinterpret_cast<uint32_t *>(o + n * 8 + 2 * t) =
                fm_tc_type<T>::pack(acc_o[n][2 * hr] * inv, acc_o[n][2 * hr + 1] * inv);
        if (t == 0)
            p.lse[((size_t)b * p.q_heads + h) * p.seqlen_q + i] =
                l > 0.f ? row_max[hr] * p.scale + logf(l) : -INFINITY;
    }
#else
    __trap(); /* not built for sm_90a: fail loudly rather than leave O unwritten */
#endif
}

template <typename T> cudaError_t launch(const fm_attn_params &p, cudaStream_t stream)
{
    const size_t smem = 1024 + TILE_Q + 2 * NS * TILE_KV + NS * BC * FM_BOUNDS * sizeof(int32_t) +
                        NS * sizeof(uint64_t) + (2 * NT + NW) * sizeof(int);
    cudaError_t err = cudaFuncSetAttribute(fm_forward_wgmma_kernel<T>,
                                           cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
    if (err != cudaSuccess) return err;
    dim3 grid((p.seqlen_q + BR - 1) / BR, p.q_heads, p.batch);
    fm_forward_wgmma_kernel<T><<<grid, NT, smem, stream>>>(p);
    return cudaGetLastError();
}

} /* namespace */

cudaError_t fm_cuda_launch_forward_wgmma(const fm_attn_params &p, fm_dtype dtype,
                                         cudaStream_t stream)
{
    if (p.head_dim != D) return cudaErrorNotSupported;
    return dtype == FM_BFLOAT16 ? launch<__nv_bfloat16>(p, stream) : launch<__half>(p, stream);
}
