/* cuda/forward_wide.cu — the Hopper forward (sm_90a, D = 64, 128) on 128-key stages: the
 * ping-pong schedule of forward_pingpong.cu, with each stage holding two live 64-key blocks
 * instead of one, so that every product and every softmax step covers 128 keys. Chosen by the
 * kernel options (fwd=wide; cuda/heuristics.cu).
 * Layer: cuda <- masks (rules.h, through tile.cuh).
 *
 * Why wider. At 64 keys a tile's S = Q K^T is a m64n64 product, and each tile pays the same
 * fixed costs (a wait on the stage, the turn barriers, the row maxima and their shuffles, the
 * rescale of O) for half the arithmetic of a 128-key tile. FlashAttention-3 runs 128 x 128 tiles
 * at this head dimension; so does this kernel, without giving up the mask's 64-key granularity:
 * a stage is not a 128-key block of the sequence but the next two live 64-key blocks of the walk
 * (live_pairs), wherever they are. A fully masked block is still never loaded, and a sparse
 * mask's live blocks still fill whole stages.
 *
 * A stage's two blocks are slots 0 and 1 of one 128-row K tile and one V tile ([D / 64][128][64],
 * SW128, so one descriptor spans both). For one warpgroup a slot may be masked (the block is
 * live only for the other warpgroup's rows) or absent (the walk's last, odd block): its columns
 * get S = -inf from the column bits (all rows set) and so P = 0; its rows of V, which may be stale
 * or anything at all, are never multiplied: the k steps of P V that cover it read the other
 * slot's rows instead, where 0 times a finite value adds an exact 0.
 *
 * The schedule is forward_pingpong.cu's (intra-warpgroup overlap of a tile's softmax with the
 * previous tile's P V, warpgroups taking turns at issuing on named barriers). With 128-key
 * stages only two fit beside Q at D = 128 (four at D = 64), so K and V have pipelines of their
 * own, as in FlashAttention-3: a stage's K is released as soon as its S has landed and its V
 * when its P V is done, and the producer loads the next stage's K before this stage's V (which
 * is needed a step later), so that the copies run ahead of the products instead of waiting for
 * a whole stage to drain.
 *
 * Row sums from the tensor cores. O = sum round(P) v / sum round(P) must divide by the sum of the
 * same rounded P that P V multiplies (softmax.cuh says why), and the LSE takes the sum of the
 * float32 P. Formed by the softmax, the first sum cost a pack, an unpack and an add per element
 * beside the second, about a fifth of a stage's instructions. Here each stage's V is followed in
 * shared memory by 64 columns of ones (written once, never copied over), and P V is
 * m64n(D + 8)k16: its last eight columns read them, so O's accumulator ends with one more
 * 8-column block that holds sum round(P) for the row in every column, accumulated and rescaled
 * exactly as O is. The softmax keeps only the float32 sum. The results differ from the 64-key
 * kernels' only by the order of the float32 sums.
 */
#include "forward_sm90.cuh"
#include "softmax.cuh"

namespace {

using namespace fm_sm90_fwd;

constexpr int SLOTS = 2, KEYS = SLOTS * BC;   /* 64-key blocks per stage, keys per stage */
constexpr int TURN = 1, TURN_THREADS = 256;   /* as in forward_pingpong.cu */
constexpr uint32_t ABSENT = (uint32_t)FM_TILE_MASKED << 2 | FM_TILE_MASKED; /* both warpgroups */

/* Shared memory, in bytes from a 1024-aligned base: Q [2 warpgroups][64][D], K [NST][D / 64]
 * [128][64] (SW128), V the same with a 64-column block of ones after each stage's (where P V's
 * descriptor finds column block D / 64), bounds [NST][2 slots][64][4], and the mbarriers: per stage
 * k_full (K and the bounds are in), k_empty (all eight consumer warps are done with K), v_full,
 * v_empty; q_full[2]. */
template <int D> struct wide_smem {
    static_assert(D == 64 || D == 128, "the Hopper forwards serve D = 64 and 128");
    static constexpr int NST = D == 128 ? 2 : 4;   /* what fits in 227 KB */
    static constexpr int QTILE = WG_ROWS * D * 2;  /* one warpgroup's Q */
    static constexpr int SLOT_BYTES = BC * D * 2;  /* K or V of one 64-key block */
    static constexpr int STILE = KEYS * D * 2;     /* K or V of a stage */
    static constexpr int ONES = KEYS * 128;        /* the 64 columns of ones after a stage's V */
    static constexpr int VSTAGE = STILE + ONES;
    static constexpr int OFF_Q = 0, OFF_K = 2 * QTILE, OFF_V = OFF_K + NST * STILE;
    static constexpr int OFF_COLS = OFF_V + NST * VSTAGE;
    static constexpr int OFF_BAR = OFF_COLS + NST * SLOTS * COLS;
    static constexpr int BYTES = 1024 + OFF_BAR + (4 * NST + 2) * 8;

    uint32_t base;
    __device__ __forceinline__ uint32_t q(int w) const { return base + OFF_Q + w * QTILE; }
    __device__ __forceinline__ uint32_t k(int s) const { return base + OFF_K + s * STILE; }
    __device__ __forceinline__ uint32_t v(int s) const { return base + OFF_V + s * VSTAGE; }
    /* Where slot j's 64 rows of column block c (64 columns of D) start in a K or V tile. */
    static __device__ __forceinline__ uint32_t slot(int c, int j)
    {
        return c * KEYS * 128 + j * BC * 128;
    }
    __device__ __forceinline__ uint32_t cols(int s, int j) const
    {
        return base + OFF_COLS + (s * SLOTS + j) * COLS;
    }
    __device__ __forceinline__ uint32_t k_full(int s) const { return bar(s); }
    __device__ __forceinline__ uint32_t k_empty(int s) const { return bar(NST + s); }
    __device__ __forceinline__ uint32_t v_full(int s) const { return bar(2 * NST + s); }
    __device__ __forceinline__ uint32_t v_empty(int s) const { return bar(3 * NST + s); }
    __device__ __forceinline__ uint32_t q_full(int w) const { return bar(4 * NST + w); }
    __device__ __forceinline__ uint32_t bar(int i) const { return base + OFF_BAR + 8 * i; }
};

static_assert(wide_smem<128>::BYTES <= 227 * 1024 && wide_smem<64>::BYTES <= 227 * 1024,
              "wide forward block too large");

/* The walk over live key blocks two at a time: next() gives the next two (kb1 = -1, cls1 =
 * ABSENT when one is left) and false at the end. cls: both warpgroups' classes of the block
 * (bits 2w, 2w + 1), as live_blocks32 gives them. The producer and every consumer warp run the
 * same walk and so agree on every stage. Warp-collective: every lane calls next(). */
struct live_pairs {
    int first = -32;   /* the 32-block window todo refers to */
    unsigned todo = 0; /* its live blocks not yet taken */
    uint32_t cls_all = 0;

    __device__ __forceinline__ bool take(const fm_attn_params &p, const int32_t *summary, int r0,
                                         int r1, int *kb, uint32_t *cls)
    {
        while (!todo) {
            if (first + 32 >= p.n_kblocks) return false;
            first += 32;
            todo = live_blocks32(p, summary, first, r0, r1, &cls_all);
        }
        const int j = __ffs(todo) - 1;
        todo &= todo - 1;
        *kb = first + j;
        *cls = __shfl_sync(0xffffffffu, cls_all, j) & 15u;
        return true;
    }
    __device__ __forceinline__ bool next(const fm_attn_params &p, const int32_t *summary, int r0,
                                         int r1, int *kb0, uint32_t *cls0, int *kb1,
                                         uint32_t *cls1)
    {
        if (!take(p, summary, r0, r1, kb0, cls0)) return false;
        if (!take(p, summary, r0, r1, kb1, cls1)) *kb1 = -1, *cls1 = ABSENT;
        return true;
    }
};

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
/* The producer warp: Q of both warpgroups, then each stage's one or two key blocks (K and the
 * bounds, then V, each tile as D / 64 copies of 64 columns), K of a stage ahead of V of the
 * stage before it. */
template <int D>
__device__ __forceinline__ void produce(const fm_attn_params &p, const int32_t *summary,
                                        const wide_smem<D> &sm, const CUtensorMap *map_q,
                                        const CUtensorMap *map_k, const CUtensorMap *map_v,
                                        const CUtensorMap *map_bounds, int r0, int r1, int h,
                                        int hk, int hm, int b)
{
    using L = wide_smem<D>;
    const int lane = threadIdx.x & 31;
    const int head_q = b * p.q_heads + h, head_k = b * p.kv_heads + hk;
    const int head_m = b * p.mask_heads + hm;
    if (lane == 0)
        produce_q<D>(map_q, map_k, map_v, map_bounds, {sm.q(0), sm.q(1)},
                     {sm.q_full(0), sm.q_full(1)}, r0, head_q);
    /* V of the stage st (use parity ph) holding blocks kb0, kb1 (-1: none). */
    auto load_v = [&](int st, uint32_t ph, int kb0, int kb1) {
        if (lane == 0) {
            fm_mbar_wait(sm.v_empty(st), ph ^ 1u);
            fm_mbar_arrive_expect_tx(sm.v_full(st), (kb1 >= 0 ? 2 : 1) * L::SLOT_BYTES);
            for (int j = 0; j < (kb1 >= 0 ? 2 : 1); j++)
                for (int c = 0; c < D; c += 64)
                    fm_tma_load_3d(sm.v(st) + L::slot(c / 64, j), map_v, sm.v_full(st), c,
                                   (j ? kb1 : kb0) * BC, head_k);
        }
        __syncwarp();
    };
    live_pairs walk;
    int kb[2], stage = 0, prev_kb[2] = {-1, -1}, prev_stage = -1;
    uint32_t cls[2], phase = 0, prev_phase = 0;
    while (walk.next(p, summary, r0, r1, &kb[0], &cls[0], &kb[1], &cls[1])) {
        if (lane == 0) {
            const int slots = kb[1] >= 0 ? 2 : 1;
            fm_mbar_wait(sm.k_empty(stage), phase ^ 1u);
            fm_mbar_arrive_expect_tx(sm.k_full(stage), slots * (L::SLOT_BYTES + COLS));
            for (int j = 0; j < slots; j++) {
                const int c0 = kb[j] * BC;
                for (int c = 0; c < D; c += 64)
                    fm_tma_load_3d(sm.k(stage) + L::slot(c / 64, j), map_k, sm.k_full(stage), c,
                                   c0, head_k);
                fm_tma_load_3d(sm.cols(stage, j), map_bounds, sm.k_full(stage), 0, c0, head_m);
            }
        }
        __syncwarp();
        if (prev_stage >= 0) load_v(prev_stage, prev_phase, prev_kb[0], prev_kb[1]);
        prev_stage = stage, prev_phase = phase, prev_kb[0] = kb[0], prev_kb[1] = kb[1];
        if (++stage == L::NST) stage = 0, phase ^= 1u;
    }
    if (prev_stage >= 0) load_v(prev_stage, prev_phase, prev_kb[0], prev_kb[1]);
}
#endif

#ifdef FM_WGMMA_DEVICE
/* Issues S = Q K^T over a stage's 128 keys (one commit group). */
template <typename T, int D>
__device__ __forceinline__ void issue_qk(float (&s)[KEYS / 8][4], uint32_t aQ, uint32_t aK)
{
#pragma unroll
    for (int n = 0; n < KEYS / 8; n++)
#pragma unroll
        for (int e = 0; e < 4; e++) s[n][e] = 0.f;
    fm_wg_fence();
#pragma unroll
    for (int kk = 0; kk < D / 16; kk++)
        fm_wg_ss<T, 128, 0, 0>(s, fm_wg_kmajor(aQ, WG_ROWS, kk), fm_wg_kmajor(aK, KEYS, kk), 1);
    fm_wg_commit();
}

/* The descriptors of P V's k steps: 0-3 read V's rows at aV_lo, 4-7 at aV_hi (the stage's V,
 * or the other slot's rows for a slot P leaves at 0). Made before any product of the group is
 * issued: an instruction that defines a wgmma's input between the products of one group makes
 * ptxas serialise them (C7513). */
__device__ __forceinline__ void pv_descriptors(uint64_t (&desc)[KEYS / 16], uint32_t aV_lo,
                                               uint32_t aV_hi)
{
#pragma unroll
    for (int kk = 0; kk < KEYS / 16; kk++)
        desc[kk] = fm_wg_mnmajor(kk < KEYS / 32 ? aV_lo : aV_hi, KEYS, kk);
}

/* Issues O += P V over a stage's 128 keys (one commit group). */
template <typename T, int D, int ND>
__device__ __forceinline__ void issue_pv(float (&acc_o)[ND][4],
                                         const uint32_t (&p_tc)[KEYS / 8][2],
                                         const uint64_t (&desc)[KEYS / 16])
{
    fm_wg_fence();
#pragma unroll
    for (int kk = 0; kk < KEYS / 16; kk++) {
        const uint32_t a[4] = {p_tc[2 * kk][0], p_tc[2 * kk][1], p_tc[2 * kk + 1][0],
                               p_tc[2 * kk + 1][1]};
        if constexpr (ND > D / 8)
            fm_wg_rs_plus8<T, D>(acc_o, a, desc[kk]);
        else
            fm_wg_rs<T, D>(acc_o, a, desc[kk]);
    }
    fm_wg_commit();
}
#endif

/* 384 threads: the two consumer warpgroups and a third whose first warp is the producer, so
 * that registers can move from it to them (setmaxnreg works per warpgroup): 224 per consumer
 * thread, which the 128-column S and P of a stage need beside O, against 168 without (ptxas
 * spills at 168; 56 leave the producer its walk without spills). */
constexpr int NT_WIDE = 3 * 128, REGS_CONSUMER = 224, REGS_PRODUCER = 56;

template <typename T, int D>
__global__ void __launch_bounds__(NT_WIDE, 1)
    fm_forward_wide_kernel(const fm_attn_params p, const __grid_constant__ CUtensorMap map_q,
                           const __grid_constant__ CUtensorMap map_k,
                           const __grid_constant__ CUtensorMap map_v,
                           const __grid_constant__ CUtensorMap map_bounds)
{
#ifdef FM_WGMMA_DEVICE
    using L = wide_smem<D>;
    constexpr int NB = KEYS / 8; /* 8-column blocks of a stage's S */
    extern __shared__ unsigned char smem_raw[];
    unsigned char *smem_p = fm_smem_align1024(smem_raw);
    const L sm{(uint32_t)__cvta_generic_to_shared(smem_p)};

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int h = blockIdx.y, b = blockIdx.z;
    /* Last query block first (forward.cu: the causal tail). */
    const int r0 = (gridDim.x - 1 - blockIdx.x) * BR, r1 = min(r0 + BR, p.seqlen_q);
    const int hk = h / (p.q_heads / p.kv_heads), hm = h / (p.q_heads / p.mask_heads);

    if (tid == 0) {
        for (int s = 0; s < L::NST; s++) {
            fm_mbar_init(sm.k_full(s), 1), fm_mbar_init(sm.k_empty(s), 8);
            fm_mbar_init(sm.v_full(s), 1), fm_mbar_init(sm.v_empty(s), 8);
        }
        fm_mbar_init(sm.q_full(0), 1), fm_mbar_init(sm.q_full(1), 1);
        fm_mbar_init_fence();
    }
    { /* the columns of ones after each stage's V (written once; the copies never touch them) */
        const uint32_t one2 = fm_tc_type<T>::pack(1.f, 1.f);
        constexpr int PER_STAGE = L::ONES / 16;
        for (int i = tid; i < L::NST * PER_STAGE; i += NT_WIDE)
            *reinterpret_cast<uint4 *>(smem_p + L::OFF_V + (i / PER_STAGE) * L::VSTAGE +
                                       L::STILE + (i % PER_STAGE) * 16) =
                make_uint4(one2, one2, one2, one2);
        fm_fence_async_smem();
    }
    __syncthreads();

    const int32_t *summary =
        p.summary + ((size_t)b * p.mask_heads + hm) * p.n_kblocks * FM_SUMMARY_WIDTH;
    if (warp >= 8) { /* the third warpgroup: warp 8 produces, the others just leave */
        fm_wg_regs_dec<REGS_PRODUCER>();
        if (warp == 8)
            produce(p, summary, sm, &map_q, &map_k, &map_v, &map_bounds, r0, r1, h, hk, hm, b);
        return;
    }
    fm_wg_regs_inc<REGS_CONSUMER>();

    /* A consumer: warpgroup wg, warp ww of it, rows w0 .. w0 + 15 of this warp. */
    /* (wg read from lane 0, so that the compiler knows it is the same in every lane: the
     * shared addresses made from it then live in uniform registers) */
    const int wg = __shfl_sync(0xffffffffu, warp >> 2, 0), ww = warp & 3, g = lane >> 2,
              t = lane & 3;
    const int w0 = r0 + wg * WG_ROWS + ww * 16;
    const float scale_log2 = p.scale * 1.4426950408889634f;
    const uint32_t aQ = sm.q(wg);

    /* O's accumulator has one 8-column block more than D / 8: P V's columns of ones, which
     * leave in it the row sums of the rounded P, rescaled with O (see the header) */
    constexpr int ND = D / 8 + 1;
    float acc_o[1][ND][4], row_max[1][2], row_sum_lse[1][2];
#pragma unroll
    for (int n = 0; n < ND; n++)
#pragma unroll
        for (int e = 0; e < 4; e++) acc_o[0][n][e] = 0.f;
    row_max[0][0] = row_max[0][1] = -INFINITY, row_sum_lse[0][0] = row_sum_lse[0][1] = 0.f;

    /* The pending tile: its P and its stage (whose V its P V reads, at the two addresses of
     * issue_pv, once v_full of the stage's use parity held_phase completes); held < 0 when
     * there is none. O is already corrected for its row maxima. */
    uint32_t p_tc[1][NB][2];
    int held = -1;
    uint32_t held_lo = 0, held_hi = 0, held_phase = 0;
    auto release = [&](uint32_t empty_bar) { /* this warp is done with a stage's K or V */
        __syncwarp();
        if (lane == 0) fm_mbar_arrive(empty_bar);
    };
    /* Mask and softmax of a tile whose S has landed, P left in s (fm_pack_p packs it). */
    auto softmax = [&](float(&s)[1][NB][4], bool partial, const uint32_t(&col_bits)[4],
                       float(&corr)[1][2]) {
        if (partial) fm_mask_tile<1, NB>(s, col_bits, g, t);
        return fm_online_softmax_lse_in_place<1, NB>(s, row_max, row_sum_lse, corr, scale_log2);
    };

    if (wg == 1) fm_bar_arrive(TURN, TURN_THREADS); /* warpgroup 0 has the first turn */
    fm_mbar_wait(sm.q_full(wg), 0);
    live_pairs walk;
    int kb[2], stage = 0;
    uint32_t cls_both[2], phase = 0;
    while (walk.next(p, summary, r0, r1, &kb[0], &cls_both[0], &kb[1], &cls_both[1])) {
        /* Per slot: whether this warpgroup uses it (live for its rows), and whether its
         * columns need the element rule (partial, masked or absent for it, or past Sk). */
        bool use[2], rule[2];
#pragma unroll
        for (int j = 0; j < SLOTS; j++) {
            const fm_tile_class c = (fm_tile_class)((cls_both[j] >> (2 * wg)) & 3u);
            use[j] = c != FM_TILE_MASKED;
            rule[j] = !use[j] || c == FM_TILE_PARTIAL || kb[j] * BC + BC > p.seqlen_k;
        }
        const bool live = use[0] || use[1], partial = live && (rule[0] || rule[1]);
        fm_mbar_wait(sm.k_full(stage), phase);
        /* A partial tile's row bits: the column rule of a used slot, all rows of another. */
        uint32_t col_bits[4] = {0u, 0u, 0u, 0u};
        if (partial) {
#pragma unroll
            for (int j = 0; j < SLOTS; j++) {
                if (!use[j])
                    col_bits[2 * j] = col_bits[2 * j + 1] = ~0u;
                else if (rule[j])
                    fm_cuda_column_bits(p, reinterpret_cast<const int32_t *>(
                                               smem_p + (sm.cols(stage, j) - sm.base)),
                                        kb[j] * BC, w0, lane, col_bits + 2 * j);
            }
        }
        /* P V reads slot 0's V rows for k steps 0-3 and slot 1's for 4-7, or the other slot's
         * for a slot this warpgroup does not use (its P is 0). */
        const uint32_t v_lo = sm.v(stage) + (use[0] ? 0 : BC * 128);
        const uint32_t v_hi = sm.v(stage) - (use[1] ? 0 : BC * 128);
        /* Four straight paths, as in forward_pingpong.cu: each product is waited for on the
         * path that issued it. */
        float s[1][NB][4], corr[1][2];
        if (live && held >= 0) { /* S of this tile and P V of the pending one */
            fm_mbar_wait(sm.v_full(held), held_phase);
            uint64_t desc[KEYS / 16];
            pv_descriptors(desc, held_lo, held_hi);
            fm_bar_sync(TURN + wg, TURN_THREADS);
            issue_qk<T, D>(s[0], aQ, sm.k(stage));
            issue_pv<T, D, ND>(acc_o[0], p_tc[0], desc);
            fm_bar_arrive(TURN + (wg ^ 1), TURN_THREADS);
            fm_wg_wait<1>(); /* S has landed; P V may still run */
            fm_wg_hold(s[0]);
            release(sm.k_empty(stage));
            const bool rescale = softmax(s, partial, col_bits, corr);
            fm_wg_wait<0>();
            fm_wg_hold(acc_o[0]);
            fm_wg_hold(p_tc[0]);
            release(sm.v_empty(held));
            fm_pack_p<T, 1, NB>(s, p_tc); /* the P V that read the previous P is done */
            if (__any_sync(0xffffffffu, rescale)) fm_rescale_o<1, ND>(acc_o, corr);
            held = stage, held_lo = v_lo, held_hi = v_hi, held_phase = phase;
        } else if (live) { /* S of this tile; nothing pending */
            fm_bar_sync(TURN + wg, TURN_THREADS);
            issue_qk<T, D>(s[0], aQ, sm.k(stage));
            fm_bar_arrive(TURN + (wg ^ 1), TURN_THREADS);
            fm_wg_wait<0>();
            fm_wg_hold(s[0]);
            release(sm.k_empty(stage));
            const bool rescale = softmax(s, partial, col_bits, corr);
            fm_pack_p<T, 1, NB>(s, p_tc);
            if (__any_sync(0xffffffffu, rescale)) fm_rescale_o<1, ND>(acc_o, corr);
            held = stage, held_lo = v_lo, held_hi = v_hi, held_phase = phase;
        } else if (held >= 0) { /* masked for this warpgroup: finish the pending P V */
            fm_mbar_wait(sm.v_full(held), held_phase);
            uint64_t desc[KEYS / 16];
            pv_descriptors(desc, held_lo, held_hi);
            fm_bar_sync(TURN + wg, TURN_THREADS);
            issue_pv<T, D, ND>(acc_o[0], p_tc[0], desc);
            fm_bar_arrive(TURN + (wg ^ 1), TURN_THREADS);
            fm_wg_wait<0>();
            fm_wg_hold(acc_o[0]);
            release(sm.v_empty(held));
            held = -1;
        } else { /* masked for this warpgroup, nothing pending: pass the turn on */
            fm_bar_sync(TURN + wg, TURN_THREADS);
            fm_bar_arrive(TURN + (wg ^ 1), TURN_THREADS);
        }
        if (!live) { /* release the stage unused, once its copies are in (never early: an
                      * arrival before them could count toward the stage's previous use) */
            release(sm.k_empty(stage));
            fm_mbar_wait(sm.v_full(stage), phase);
            release(sm.v_empty(stage));
        }
        if (++stage == L::NST) stage = 0, phase ^= 1u;
    }
    if (held >= 0) { /* the last tile's P V, outside the turns */
        fm_mbar_wait(sm.v_full(held), held_phase);
        uint64_t desc[KEYS / 16];
        pv_descriptors(desc, held_lo, held_hi);
        issue_pv<T, D, ND>(acc_o[0], p_tc[0], desc);
        fm_wg_wait<0>();
        fm_wg_hold(acc_o[0]);
        release(sm.v_empty(held));
    }
    /* l: the row sum P V formed (every column of the last block holds it; no quad sum) */
    float l[1][2], l_lse[1][2];
#pragma unroll
    for (int hr = 0; hr < 2; hr++)
        l[0][hr] = acc_o[0][D / 8][2 * hr], l_lse[0][hr] = fm_quad_sum(row_sum_lse[0][hr]);
    fm_store_o_lse_rows<T, 1, D>(p, acc_o, row_max, l, l_lse, b, h, w0, g, t);
    end_turns(wg, TURN, TURN_THREADS);
#endif
}

/* This file's kernel for launch() (forward_sm90.cuh). */
struct wide_kernel {
    template <typename T, int D> static kernel_launch get()
    {
        return {fm_forward_wide_kernel<T, D>, NT_WIDE, wide_smem<D>::BYTES};
    }
};

} /* namespace */

cudaError_t fm_cuda_launch_forward_wide(const fm_attn_params &p, fm_dtype dtype,
                                        cudaStream_t stream)
{
    return launch<wide_kernel>(p, dtype, stream);
}
