/* cuda/backward_pipelined.cu — the dK/dV (+ dQ) kernel of the FlashMask backward on Hopper
 * (sm_90a, D = 64 and 128) built as FlashAttention-3 builds its backward: a producer warp that
 * loads through the copy engine (TMA) and two consumer warpgroups that only compute, passing
 * stages through mbarriers. The same function as backward_wgmma.cu's two-warpgroup kernel (same
 * products, same mask walk, same dQ accumulator); chosen by the kernel options (bwd=pipelined;
 * cuda/heuristics.cu). Layer: cuda <- masks (rules.h, through tile.cuh).
 *
 * One block per (128 keys = two 64-key blocks, kv head, batch), 384 threads:
 *   warpgroups 0 and 1 (consumers, 64 keys each): K and V of the block stay in shared memory,
 *     dK and dV (64 keys x D, float32) in registers, over every query head of the GQA group
 *     and every query block of 64 rows live for either warpgroup;
 *   warpgroup 2: its first warp is the producer, the others leave at once. setmaxnreg moves
 *     registers from it to the consumers.
 * The producer walks the query blocks (32 at a time, one per lane, against both key blocks) and
 * for each live one waits for a free stage, then has one lane issue the TMA copies of the Q and
 * dO tiles (rows past Sq of the head read as zeros: the maps are [batch x head][Sq][D]) and of
 * the 64 rows of LSE and Delta (flat maps, boxes from the 16-byte boundary at or before the
 * block's first row: a head's rows start at any alignment), all on the stage's "full" barrier. The consumer warps run the
 * same walk (qblock_walk), so nothing but the copies passes between them.
 * A consumer warpgroup, per stage: if its own tile is live,
 *   S^T = K Q^T, dP^T = V dO^T (wgmma, both operands K-major in shared memory),
 *   P^T = exp2(S^T s log2e - LSE log2e) (LSE converted as it is read: +inf for a fully masked
 *   row or a row past Sq, so P = 0), 0 where the per-key row bits mask it,
 *   dS^T = P^T (dP^T - Delta), dV += P^T dO, dK += dS^T Q   (A from registers);
 * then, in the default mode, dS^T (or zeros) to shared memory, one named barrier over both
 * warpgroups, and dQ += dS K for its half of the columns over all 128 keys, added by one bulk
 * reduction into the blocked float32 accumulator (kernels.h), as backward_wgmma.cu does. The
 * stage is released (its "empty" barrier, one arrival per consumer warp) as soon as the
 * products that read it are done. No __syncthreads after the start.
 *
 * Shared memory (D = 128 / D = 64, bytes): K and V [128 keys][D] SW128 (32768 / 16384 each),
 * Q and dO [NST stages][64][D] (NST = 2 / 3; 16384 / 8192 per tile), dS^T [2 buffers][128][64]
 * (16384 each, so that one named barrier per query block suffices), dQ staging [2 warpgroups]
 * [64][D / 2] float32 (16384 / 8192 each), LSE and Delta [NST][ROWS_BOX = 68] float32 (384
 * bytes a stage), the bounds of the 128 keys [128][4] int32, and the mbarriers: 201256 / 136504
 * bytes with the 1024 of alignment slack (197 / 134 KB), one block per multiprocessor.
 */
#include <math.h>

#include <type_traits>

#include "backward_sm90.cuh"
#include "backward_tile_sm90.cuh"
#include "kernels.h"
#include "tc.cuh"
#include "tile.cuh"
#include "tma.cuh"
#include "wgmma.cuh"

namespace {

using namespace fm_sm90_bwd;

constexpr int KEYS = 2 * BC;                   /* keys per block: one key block per warpgroup */
constexpr int NT = 3 * 128, CONSUMERS = 256;   /* two consumer warpgroups + the producer's */
constexpr int REGS_CONSUMER = 240, REGS_PRODUCER = 24; /* 2 * 240 + 24 = 504: 168 per thread */
constexpr int BAR_DS = 1;                      /* both warpgroups' dS^T is in (256 threads) */
constexpr int BAR_WG = 2;                      /* BAR_WG + w: warpgroup w alone (128 threads) */

/* LSE and Delta of a query block come as a box of ROWS_BOX floats starting at the block's first
 * row rounded down to a multiple of 4: the copy engine needs the innermost coordinate of a box
 * 16-byte aligned, and a head's rows start anywhere (at Sq h). The block's rows then sit
 * (Sq h) % 4 floats into the box. Each stage's box takes ROWS_BYTES of shared memory (a
 * multiple of 128, as the copy engine wants its destinations). */
constexpr int ROWS_BOX = BR + 4, ROWS_BYTES = 384;
static_assert(ROWS_BOX * 4 <= ROWS_BYTES && ROWS_BYTES % 128 == 0, "LSE / Delta box");

/* The dQ part of a warpgroup: columns [w N, w N + N) of the query block's dQ (dq_split). */
template <int D> using dq_part = dq_split<D, 2>;

/* Shared memory, in bytes from a 1024-aligned base (the file's header lists it). */
template <int D> struct pipe_smem {
    static_assert(D == 64 || D == 128, "the Hopper backward serves D = 64 and 128");
    static constexpr int NST = D == 128 ? 2 : 3;  /* stages of Q, dO, LSE, Delta */
    static constexpr int TILE = tile_bytes<D>();  /* 64 rows of Q, dO, K or V */
    static constexpr int KV = 2 * TILE;           /* the block's 128 keys of K or V */
    static constexpr int DS = KEYS * BR * 2;      /* dS^T of one query block */
    static constexpr int PART = dq_part<D>::BYTES;
    static constexpr int OFF_K = 0, OFF_V = KV, OFF_Q = 2 * KV, OFF_DO = OFF_Q + NST * TILE;
    static constexpr int OFF_DS = OFF_DO + NST * TILE, OFF_DQ = OFF_DS + 2 * DS;
    static constexpr int OFF_LSE = OFF_DQ + 2 * PART, OFF_DELTA = OFF_LSE + NST * ROWS_BYTES;
    static constexpr int OFF_COLS = OFF_DELTA + NST * ROWS_BYTES;
    static constexpr int OFF_BAR = OFF_COLS + KEYS * FM_BOUNDS * 4;
    static constexpr int STAGE_BYTES = 2 * TILE + 2 * ROWS_BOX * 4; /* one stage's copies */
    static constexpr int BYTES = 1024 + OFF_BAR + (2 * NST + 1) * 8;

    uint32_t base;
    __device__ __forceinline__ uint32_t k() const { return base + OFF_K; }
    __device__ __forceinline__ uint32_t v() const { return base + OFF_V; }
    __device__ __forceinline__ uint32_t q(int s) const { return base + OFF_Q + s * TILE; }
    __device__ __forceinline__ uint32_t dout(int s) const { return base + OFF_DO + s * TILE; }
    __device__ __forceinline__ uint32_t ds(int i) const { return base + OFF_DS + i * DS; }
    __device__ __forceinline__ uint32_t staging(int w) const { return base + OFF_DQ + w * PART; }
    __device__ __forceinline__ uint32_t lse(int s) const
    {
        return base + OFF_LSE + s * ROWS_BYTES;
    }
    __device__ __forceinline__ uint32_t delta(int s) const
    {
        return base + OFF_DELTA + s * ROWS_BYTES;
    }
    /* Where key block j's rows of 64-column block c start in the K or V tile. */
    static __device__ __forceinline__ uint32_t key_rows(int c, int j)
    {
        return c * KEYS * 128 + j * BC * 128;
    }
    __device__ __forceinline__ uint32_t full(int s) const { return base + OFF_BAR + 8 * s; }
    __device__ __forceinline__ uint32_t empty(int s) const
    {
        return base + OFF_BAR + 8 * (NST + s);
    }
    __device__ __forceinline__ uint32_t kv_full() const { return base + OFF_BAR + 16 * NST; }
};
static_assert(pipe_smem<128>::BYTES <= 227 * 1024 && pipe_smem<64>::BYTES <= 227 * 1024,
              "pipelined dK/dV block too large");
static_assert(pipe_smem<128>::OFF_DS % 1024 == 0 && pipe_smem<64>::OFF_DS % 1024 == 0,
              "dS^T tiles must be 1024-aligned (SW128)");

/* The copy engine's descriptions of the block's inputs: q and dout ([batch x q head][Sq][D])
 * and k and v ([batch x kv head][Sk][D]) in SW128 boxes of 64 rows x 64 columns; lse and
 * delta as flat arrays in boxes of 64 rows. */
struct bwd_maps {
    CUtensorMap q, dout, k, v, lse, delta;
};

/* Which of the query blocks first .. first + 31 are live for this block's two key blocks
 * (kb0, kb0 + 1): lane l classifies block first + l and keeps its live bits in *live (bit w:
 * warpgroup w's tile is not fully masked; bit 2 + w: it needs the element rule); bit l of the
 * result says it is live for one of them. The producer and every consumer warp call it on the
 * same blocks and so walk the same list. Every lane must call it. */
__device__ __forceinline__ unsigned live_qblocks32(const fm_attn_params &p,
                                                   const int32_t *summary, int kb0, int first,
                                                   int n_qblocks, uint32_t *live)
{
    const int qb = first + (threadIdx.x & 31);
    *live = 0;
    if (qb < n_qblocks) {
        const int r0 = qb * BR, r1 = min(r0 + BR, p.seqlen_q);
#pragma unroll
        for (int w = 0; w < 2; w++) {
            const int kb = kb0 + w;
            /* fm_classify_tile reads the eight summary values from global memory as it needs
             * them (not fm_cuda_classify's eight registers at once): the producer has 24. */
            const fm_tile_class c =
                kb < p.n_kblocks
                    ? fm_classify_tile(summary + kb * FM_SUMMARY_WIDTH, (fm_causal)p.causal,
                                       p.offset, r0, r1, kb * BC, min(kb * BC + BC, p.seqlen_k))
                    : FM_TILE_MASKED;
            if (c != FM_TILE_MASKED) *live |= 1u << w;
            if (c == FM_TILE_PARTIAL || kb * BC + BC > p.seqlen_k) *live |= 1u << (2 + w);
        }
    }
    return __ballot_sync(0xffffffffu, (*live & 3u) != 0);
}

/* The walk of the block: every query head of the GQA group in turn, and of each, the query
 * blocks live for either key block, 32 classified at a time (live_qblocks32). next() gives the
 * next one (its index, its live bits; hq is its head's index in the group), false at the end.
 * Every consumer warp runs it; the producer runs the same walk as plain nested loops (produce:
 * so written it stays within 24 registers). Both take the heads in order, each head's windows
 * in order and each window's live blocks in the order of their bits, so they agree on every
 * stage without passing anything through shared memory (which compute-sanitizer's racecheck,
 * blind to mbarrier ordering, would report). Warp-collective: every lane calls next(). */
struct qblock_walk {
    int hq = -1, first = 1 << 30; /* the head, and the 32-block window todo refers to */
    unsigned todo = 0;            /* its live blocks not yet taken */
    uint32_t live_all = 0;        /* this lane's block's live bits */
    const int32_t *summary = nullptr; /* the head's mask head's key-block summaries */

    __device__ __forceinline__ bool next(const fm_attn_params &p, int kb0, int hk, int b, int *qb,
                                         uint32_t *live)
    {
        const int n_qblocks = (p.seqlen_q + BR - 1) / BR;
        while (!todo) {
            first += 32;
            if (first >= n_qblocks) {
                const int group = p.q_heads / p.kv_heads;
                if (++hq >= group) return false;
                first = 0;
                const int hm = (hk * group + hq) / (p.q_heads / p.mask_heads);
                summary = p.summary +
                          ((size_t)b * p.mask_heads + hm) * p.n_kblocks * FM_SUMMARY_WIDTH;
            }
            todo = live_qblocks32(p, summary, kb0, first, n_qblocks, &live_all);
        }
        const int j = __ffs(todo) - 1;
        todo &= todo - 1;
        *qb = first + j;
        *live = __shfl_sync(0xffffffffu, live_all, j);
        return true;
    }
};

#ifdef FM_WGMMA_DEVICE
/* The producer warp: K and V of the block once, then Q, dO, LSE and Delta of every live query
 * block of every query head of the group, in the order the consumers walk them. Its lanes
 * classify; lane 0 copies. */
template <int D>
__device__ __forceinline__ void produce(const fm_attn_params &p, const pipe_smem<D> &sm,
                                        const bwd_maps &m, int kb0, int hk, int b)
{
    using L = pipe_smem<D>;
    const int lane = threadIdx.x & 31;
    if (lane == 0) {
        fm_tma_prefetch_map(&m.q), fm_tma_prefetch_map(&m.dout);
        fm_tma_prefetch_map(&m.lse), fm_tma_prefetch_map(&m.delta);
        const int blocks = kb0 + 1 < p.n_kblocks ? 2 : 1; /* a last, odd key block is alone */
        const int head_k = b * p.kv_heads + hk;
        fm_mbar_arrive_expect_tx(sm.kv_full(), blocks * 2 * L::TILE);
        for (int j = 0; j < blocks; j++)
            for (int c = 0; c < D; c += 64) {
                fm_tma_load_3d(sm.k() + L::key_rows(c / 64, j), &m.k, sm.kv_full(), c,
                               (kb0 + j) * BC, head_k);
                fm_tma_load_3d(sm.v() + L::key_rows(c / 64, j), &m.v, sm.kv_full(), c,
                               (kb0 + j) * BC, head_k);
            }
    }
    const int group = p.q_heads / p.kv_heads, n_qblocks = (p.seqlen_q + BR - 1) / BR;
    int stage = 0;
    uint32_t phase = 0;
    for (int hq = 0; hq < group; hq++) {
        const int h = hk * group + hq, hm = h / (p.q_heads / p.mask_heads);
        const int32_t *summary =
            p.summary + ((size_t)b * p.mask_heads + hm) * p.n_kblocks * FM_SUMMARY_WIDTH;
        const int head_q = b * p.q_heads + h;
        for (int first = 0; first < n_qblocks; first += 32) {
            uint32_t live_all; /* (the consumers' business) */
            for (unsigned todo = live_qblocks32(p, summary, kb0, first, n_qblocks, &live_all);
                 todo; todo &= todo - 1) {
                const int q0 = (first + __ffs(todo) - 1) * BR;
                if (lane == 0) {
                    fm_mbar_wait(sm.empty(stage), phase ^ 1u);
                    fm_mbar_arrive_expect_tx(sm.full(stage), L::STAGE_BYTES);
                    for (int c = 0; c < D; c += 64) {
                        fm_tma_load_3d(sm.q(stage) + c / 64 * (BR * 128), &m.q, sm.full(stage),
                                       c, q0, head_q);
                        fm_tma_load_3d(sm.dout(stage) + c / 64 * (BR * 128), &m.dout,
                                       sm.full(stage), c, q0, head_q);
                    }
                    /* The 64 rows from this head's row q0 on, in a box from the 16-byte
                     * boundary at or before them (ROWS_BOX): rows past Sq are the next head's
                     * (or zeros past the end), which the consumers ignore. */
                    const int row = head_q * p.seqlen_q + q0;
                    fm_tma_load_1d(sm.lse(stage), &m.lse, sm.full(stage), row & ~3);
                    fm_tma_load_1d(sm.delta(stage), &m.delta, sm.full(stage), row & ~3);
                }
                __syncwarp();
                if (++stage == L::NST) stage = 0, phase ^= 1u;
            }
        }
    }
}

/* Warpgroup w's own named barrier (its 128 threads). */
__device__ __forceinline__ void wg_sync(int wg)
{
    if (wg == 0) fm_bar_sync_id<BAR_WG>(128);
    else fm_bar_sync_id<BAR_WG + 1>(128);
}

/* A consumer warpgroup: every live query block of the walk, from the stages the producer
 * fills in the same order; then dK and dV out. */
template <typename T, int D, bool DO_DQ>
__device__ __forceinline__ void consume(const fm_attn_params &p, const pipe_smem<D> &sm,
                                        unsigned char *smem, int kb0, int hk, int b)
{
    using L = pipe_smem<D>;
    using DQP = dq_part<D>;
    const int tid = threadIdx.x, lane = tid & 31, warp = (tid >> 5) & 3;
    /* the warpgroup, read from lane 0 so that the compiler knows it is the same in every lane:
     * the shared addresses made from it, and the products' descriptors, then live in uniform
     * registers */
    const int wg = __shfl_sync(0xffffffffu, tid >> 7, 0);
    const int g = lane >> 2, t = lane & 3;
    const int c0 = kb0 * BC, wk0 = wg * BC; /* the block's first key; this warpgroup's, inside */
    const int group = p.q_heads / p.kv_heads, n_qblocks = (p.seqlen_q + BR - 1) / BR;
    const float scale_log2 = p.scale * LOG2E;
    const float *sLse = reinterpret_cast<const float *>(smem + L::OFF_LSE);
    const float *sDelta = reinterpret_cast<const float *>(smem + L::OFF_DELTA);
    int32_t *sCols = reinterpret_cast<int32_t *>(smem + L::OFF_COLS);
    const bool dq_issuer = (tid & 127) == 0; /* issues and waits for its warpgroup's reductions */
    const uint32_t aKw = sm.k() + wk0 * 128, aVw = sm.v() + wk0 * 128; /* this warpgroup's keys */

    float acc_dv[D / 8][4], acc_dk[D / 8][4];
#pragma unroll
    for (int n = 0; n < D / 8; n++)
#pragma unroll
        for (int e = 0; e < 4; e++) acc_dv[n][e] = acc_dk[n][e] = 0.f;

    fm_mbar_wait(sm.kv_full(), 0);
    int stage = 0, cur_hq = -1, cur_hm = -1, ds_buf = 0, qb;
    uint32_t phase = 0, ds_zero = 0, live; /* ds_zero bit i: our rows of dS^T buffer i are 0 */
    float *dq_chunks = nullptr; /* the current head's blocked dQ accumulator (kernels.h) */
    int rows_shift = 0;         /* where the current head's query blocks start in their boxes */
    qblock_walk walk;
    for (; walk.next(p, kb0, hk, b, &qb, &live); ds_buf ^= 1) {
        if (walk.hq != cur_hq) { /* a new query head: its accumulator, its mask head's bounds */
            cur_hq = walk.hq;
            const int h = hk * group + cur_hq, hm = h / (p.q_heads / p.mask_heads);
            rows_shift = ((b * p.q_heads + h) * p.seqlen_q) & 3; /* into each LSE/Delta box */
            if (DO_DQ)
                dq_chunks = p.dq_accum + ((size_t)b * p.q_heads + h) * n_qblocks * (BR * D);
            if (hm != cur_hm) {
                cur_hm = hm;
                wg_sync(wg); /* every warp of this warpgroup is done with the previous bounds */
                fm_cuda_load_cols(sCols + wk0 * FM_BOUNDS,
                                  p.bounds + ((size_t)b * p.mask_heads + hm) * p.seqlen_k *
                                                 FM_BOUNDS,
                                  kb0 + wg, p.seqlen_k, tid & 127, 128);
                fm_cp_async_commit();
                fm_cp_async_wait<0>();
                wg_sync(wg);
            }
        }
        const int r0 = qb * BR, valid_q = p.seqlen_q - r0;
        fm_mbar_wait(sm.full(stage), phase);
        const bool mine = (live >> wg) & 1u, partial = (live >> (2 + wg)) & 1u;
        const uint32_t aQ = sm.q(stage), adO = sm.dout(stage);
        const float *lse = sLse + stage * (ROWS_BYTES / 4) + rows_shift;
        const float *delta = sDelta + stage * (ROWS_BYTES / 4) + rows_shift;

        if (mine) { /* this warpgroup's 64 keys see some of these queries */
            /* S^T = K Q^T and dP^T = V dO^T (backward_tile_sm90.cuh) */
            float s[8][4], dp[8][4];
            issue_s_dp<T, D, KEYS>(s, dp, aKw, aVw, aQ, adO);

            /* Meanwhile: this thread's keys (rows g, g + 8 of its warp's 16) as query bits,
             * pre-shifted so that query n * 8 + 2t + c is bit (n % 4) * 8 + c of word n / 4. */
            uint32_t qbits[2][2] = {{0u, 0u}, {0u, 0u}};
            if (partial) {
#pragma unroll
                for (int hr = 0; hr < 2; hr++) {
                    const int kr = wk0 + warp * 16 + g + hr * 8;
                    const fm_cuda_column cm(p, sCols + kr * FM_BOUNDS, c0 + kr);
                    qbits[hr][0] = cm.bits32(r0) >> (2 * t);
                    qbits[hr][1] = cm.bits32(r0 + 32) >> (2 * t);
                }
            }
            fm_wg_wait<1>(); /* S^T is in (dP^T may still run) */

            /* P^T (into s), packed to T as A fragments: C block n (queries 8n ..) is half
             * n % 2 of k step n / 2, rows g / g + 8 its registers hr. LSE in log2 units as it
             * is read: +inf (P = 0) for a fully masked row and for a row past Sq. */
            uint32_t pa[4][4], dsa[4][4];
#pragma unroll
            for (int n = 0; n < 8; n++) {
#pragma unroll
                for (int c = 0; c < 2; c++) {
                    const int qc = n * 8 + 2 * t + c;
                    const float l = lse[qc];
                    const float l2 = qc >= valid_q || l == -INFINITY ? INFINITY : l * LOG2E;
#pragma unroll
                    for (int hr = 0; hr < 2; hr++) {
                        const int e = 2 * hr + c;
                        const float x = fm_exp2(fmaf(s[n][e], scale_log2, -l2));
                        s[n][e] = (qbits[hr][n / 4] >> ((n % 4) * 8 + c)) & 1u ? 0.f : x;
                    }
                }
#pragma unroll
                for (int hr = 0; hr < 2; hr++)
                    pa[n / 2][(n % 2) * 2 + hr] =
                        fm_tc_type<T>::pack(s[n][2 * hr], s[n][2 * hr + 1]);
            }
            dv_product<T, D>(acc_dv, pa, adO);
            fm_wg_wait<1>(); /* dP^T is in (dV may still run) */
            ds_dk<T, D>(acc_dk, dsa, s, dp, delta, t, aQ);

            if constexpr (DO_DQ) {
                /* dS^T to this query block's buffer ([key][query], SW128) for dQ = dS K. Its
                 * last readers, the dQ products of two query blocks ago, were waited for
                 * before the previous block's barrier. */
                store_ds<KEYS>(smem + (sm.ds(ds_buf) - sm.base), dsa, wk0 + warp * 16 + g, t);
                ds_zero &= ~(1u << ds_buf);
            }
        } else if (DO_DQ && !((ds_zero >> ds_buf) & 1u)) {
            /* A masked warpgroup's keys add nothing to dQ: its rows of dS^T are zeros. */
            uint4 *z = reinterpret_cast<uint4 *>(smem + (sm.ds(ds_buf) - sm.base) + wk0 * 128);
            for (int i = tid & 127; i < BC * 128 / 16; i += 128) z[i] = make_uint4(0, 0, 0, 0);
            ds_zero |= 1u << ds_buf;
        }

        if constexpr (DO_DQ) {
            fm_fence_async_smem(); /* this thread's dS^T stores -> the dQ products' reads */
            /* The staging written below was last read by this warpgroup's previous reduction,
             * issued a whole query block ago. */
            if (dq_issuer) fm_bulk_wait_read<0>();
            fm_bar_sync_id<BAR_DS>(CONSUMERS); /* all of dS^T is in; the staging is free */
            /* dQ[64 queries x N] = dS K over the block's 128 keys for this warpgroup's N
             * columns: A = dS^T read transposed (queries contiguous), B = K read transposed
             * (d contiguous), from byte (col % 64) * 2 of its swizzled rows (wgmma.cuh). A
             * masked warpgroup's K rows may hold anything, NaN included (a key block masked
             * for every row is never meant to be read): its zero rows of dS^T are multiplied
             * by the other warpgroup's K rows instead (k steps kk ^ 4), live here and so
             * finite, which makes its share an exact 0 with no branch between the products.
             * The descriptors are made before the first product is issued (an instruction
             * that defines a wgmma's input inside the group makes ptxas serialise it). */
            const int masked_half = (live & 3u) != 3u ? (live & 1u ? 1 : 0) : -1;
            const int col = wg * DQP::N;
            const uint32_t aKpart = sm.k() + (col % 64) * 2, adS = sm.ds(ds_buf);
            uint64_t da[KEYS / 16], db[KEYS / 16];
#pragma unroll
            for (int kk = 0; kk < KEYS / 16; kk++) {
                da[kk] = fm_wg_mnmajor(adS, KEYS, kk);
                db[kk] = fm_wg_mnmajor(aKpart, KEYS, kk / 4 == masked_half ? kk ^ 4 : kk,
                                       col / 64);
            }
            float dq[DQP::N / 8][4];
            fm_wg_fence();
#pragma unroll
            for (int kk = 0; kk < KEYS / 16; kk++)
                fm_wg_ss<T, DQP::N, 1, 1>(dq, da[kk], db[kk], kk);
            fm_wg_commit();
            fm_wg_wait<1>(); /* the dV and dK products are done: the stage is free */
            __syncwarp();
            if (lane == 0) fm_mbar_arrive(sm.empty(stage));
            fm_wg_wait<0>();
            /* Into this warpgroup's staging in the blocked order (kernels.h: this thread's
             * block-n float4 at n * 128 + its index in the warpgroup), then one thread adds it
             * to this query block's chunk. */
            float4 *st = reinterpret_cast<float4 *>(smem + (sm.staging(wg) - sm.base)) +
                         (tid & 127);
#pragma unroll
            for (int n = 0; n < DQP::N / 8; n++)
                st[n * 128] = make_float4(dq[n][0], dq[n][1], dq[n][2], dq[n][3]);
            fm_fence_async_smem(); /* these stores -> the bulk copy's reads */
            wg_sync(wg);           /* the warpgroup's stores are in */
            if (dq_issuer) {
                fm_bulk_reduce_add_f32(dq_chunks + (size_t)qb * (BR * D) + wg * (BR * DQP::N),
                                       sm.staging(wg), DQP::BYTES);
                fm_bulk_commit();
            }
        } else {
            fm_wg_wait<0>(); /* the dV and dK products are done: the stage is free */
            __syncwarp();
            if (lane == 0) fm_mbar_arrive(sm.empty(stage));
        }
        if (++stage == L::NST) stage = 0, phase ^= 1u;
    }
    if (DO_DQ && dq_issuer) fm_bulk_wait<0>(); /* the reductions are complete (and their reads) */

    /* This thread's keys: rows g and g + 8 of its warp's 16 (those inside the sequence). */
#pragma unroll
    for (int hr = 0; hr < 2; hr++) {
        const int j = c0 + wk0 + warp * 16 + g + hr * 8;
        if (j >= p.seqlen_k) continue;
        const size_t off = (((size_t)b * p.kv_heads + hk) * p.seqlen_k + j) * D + 2 * t;
        T *dv = static_cast<T *>(p.dv) + off, *dk = static_cast<T *>(p.dk) + off;
#pragma unroll
        for (int n = 0; n < D / 8; n++) {
            *reinterpret_cast<uint32_t *>(dv + n * 8) =
                fm_tc_type<T>::pack(acc_dv[n][2 * hr], acc_dv[n][2 * hr + 1]);
            *reinterpret_cast<uint32_t *>(dk + n * 8) = fm_tc_type<T>::pack(
                acc_dk[n][2 * hr] * p.scale, acc_dk[n][2 * hr + 1] * p.scale);
        }
    }
}
#endif

template <typename T, int D, bool DO_DQ>
__global__ void __launch_bounds__(NT, 1)
    fm_dkdv_pipelined_kernel(const fm_attn_params p, const __grid_constant__ bwd_maps maps)
{
#ifdef FM_WGMMA_DEVICE
    using L = pipe_smem<D>;
    extern __shared__ unsigned char smem_raw[];
    unsigned char *smem = fm_smem_align1024(smem_raw);
    const L sm{(uint32_t)__cvta_generic_to_shared(smem)};
    const int warp = threadIdx.x >> 5;
    const int kb0 = blockIdx.x * 2, hk = blockIdx.y, b = blockIdx.z;

    if (threadIdx.x == 0) {
        for (int s = 0; s < L::NST; s++) fm_mbar_init(sm.full(s), 1), fm_mbar_init(sm.empty(s), 8);
        fm_mbar_init(sm.kv_full(), 1);
        fm_mbar_init_fence();
    }
    __syncthreads();
    if (warp >= 8) { /* the third warpgroup: warp 8 produces, the others just leave */
        fm_wg_regs_dec<REGS_PRODUCER>();
        if (warp == 8) produce<D>(p, sm, maps, kb0, hk, b);
        return;
    }
    fm_wg_regs_inc<REGS_CONSUMER>();
    consume<T, D, DO_DQ>(p, sm, smem, kb0, hk, b);
#else
    __trap(); /* not built for sm_90a: fail loudly rather than leave dK, dV unwritten */
#endif
}

/* The maps (bwd_maps), or cudaErrorNotSupported where the copy engine cannot describe a tensor
 * (e.g. not 16-byte aligned) or a flat row index would not fit its 32-bit coordinates. */
template <typename T, int D> cudaError_t make_maps(const fm_attn_params &p, bwd_maps *m)
{
    const fm_tma_elem elem = std::is_same<T, __half>::value ? FM_TMA_F16 : FM_TMA_BF16;
    const uint64_t hq = (uint64_t)p.batch * p.q_heads, hk = (uint64_t)p.batch * p.kv_heads;
    const uint64_t rows = hq * p.seqlen_q;
    if (rows + BR > (uint64_t)INT32_MAX ||
        fm_tma_map_3d(&m->q, p.q, elem, D, p.seqlen_q, hq, 64, BR, true) != cudaSuccess ||
        fm_tma_map_3d(&m->dout, p.dout, elem, D, p.seqlen_q, hq, 64, BR, true) != cudaSuccess ||
        fm_tma_map_3d(&m->k, p.k, elem, D, p.seqlen_k, hk, 64, BC, true) != cudaSuccess ||
        fm_tma_map_3d(&m->v, p.v, elem, D, p.seqlen_k, hk, 64, BC, true) != cudaSuccess ||
        fm_tma_map_1d(&m->lse, p.lse_in, FM_TMA_I32, rows, ROWS_BOX) != cudaSuccess ||
        fm_tma_map_1d(&m->delta, p.delta, FM_TMA_I32, rows, ROWS_BOX) != cudaSuccess)
        return cudaErrorNotSupported;
    return cudaSuccess;
}

template <typename T, int D>
cudaError_t launch(const fm_attn_params &p, bool do_dq, cudaStream_t stream)
{
    bwd_maps maps;
    if (make_maps<T, D>(p, &maps) != cudaSuccess) return cudaErrorNotSupported;
    constexpr int SMEM = pipe_smem<D>::BYTES;
    auto kernel = do_dq ? fm_dkdv_pipelined_kernel<T, D, true> : fm_dkdv_pipelined_kernel<T, D, false>;
    cudaError_t err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, SMEM);
    if (err != cudaSuccess) return err;
    dim3 grid((p.n_kblocks + 1) / 2, p.kv_heads, p.batch);
    kernel<<<grid, NT, SMEM, stream>>>(p, maps);
    return cudaGetLastError();
}

template <typename T>
cudaError_t launch(const fm_attn_params &p, bool do_dq, cudaStream_t stream)
{
    switch (p.head_dim) {
    case 64: return launch<T, 64>(p, do_dq, stream);
    case 128: return launch<T, 128>(p, do_dq, stream);
    default: return cudaErrorNotSupported;
    }
}

} /* namespace */

cudaError_t fm_cuda_launch_dkdv_pipelined(const fm_attn_params &p, fm_dtype dtype, bool do_dq,
                                          cudaStream_t stream)
{
    return dtype == FM_BFLOAT16 ? launch<__nv_bfloat16>(p, do_dq, stream)
                                : launch<__half>(p, do_dq, stream);
}
