/* flashmask/rules.h — the mask rules themselves, as inline functions that compile for the host
 * (C11) and for CUDA devices: the element rule of docs/spec.md §2 and the tile classification of
 * docs/spec.md §3. This header is the one home of these rules; masks/ (summaries, tile statistics),
 * reference/, cpu/ and cuda/ all call it and never restate them.
 */
#ifndef FLASHMASK_RULES_H
#define FLASHMASK_RULES_H

#include <stdint.h>

#ifdef __CUDACC__
#define FM_HD __host__ __device__ __forceinline__
#else
#define FM_HD static inline
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Causal alignment (docs/spec.md §2). With offset off = Sk - Sq (bottom_right) or 0 (top_left),
 * element (i, j) is causally masked iff j > i + off. */
typedef enum fm_causal {
    FM_CAUSAL_NONE = 0,
    FM_CAUSAL_BOTTOM_RIGHT = 1,
    FM_CAUSAL_TOP_LEFT = 2
} fm_causal;

/* Index of each bound inside a column's four int32 values. */
enum { FM_LTS = 0, FM_LTE = 1, FM_UTS = 2, FM_UTE = 3, FM_BOUNDS = 4 };

/* Index of each value inside a key block's summary (flashmask/masks.h, fm_block_summary). */
enum {
    FM_MIN_LTS = 0, FM_MAX_LTS = 1, FM_MIN_LTE = 2, FM_MAX_LTE = 3,
    FM_MIN_UTS = 4, FM_MAX_UTS = 5, FM_MIN_UTE = 6, FM_MAX_UTE = 7,
    FM_SUMMARY_WIDTH = 8
};

typedef enum fm_tile_class {
    FM_TILE_UNMASKED = 0, /* no element masked: run without element tests */
    FM_TILE_PARTIAL = 1,  /* apply fm_element_masked to each element */
    FM_TILE_MASKED = 2    /* no element allowed: skip (no loads, no arithmetic) */
} fm_tile_class;

/* The causal offset: element (i, j) is causally masked iff j > i + offset. */
FM_HD int64_t fm_causal_offset(fm_causal causal, int64_t seqlen_q, int64_t seqlen_k)
{
    return causal == FM_CAUSAL_BOTTOM_RIGHT ? seqlen_k - seqlen_q : 0;
}

/* The causal part of docs/spec.md §2 alone, for masks that pair it with another rule than column
 * bounds (sparse/qk_sparse.c, sparse/hash_sparse.c). (fm_element_masked below states it
 * inline, as the CUDA kernels compile it.) */
FM_HD int fm_causal_masked(fm_causal causal, int64_t offset, int64_t i, int64_t j)
{
    return causal != FM_CAUSAL_NONE && j > i + offset;
}

/* docs/spec.md §2: row i is masked from key j iff LTS <= i < LTE, or UTS <= i < UTE, or causal(i, j).
 * `col` points at the column's four bounds; `offset` is fm_causal_offset(...). */
FM_HD int fm_element_masked(const int32_t *col, fm_causal causal, int64_t offset, int64_t i,
                            int64_t j)
{
    if (col[FM_LTS] <= i && i < col[FM_LTE]) return 1;
    if (col[FM_UTS] <= i && i < col[FM_UTE]) return 1;
    return causal != FM_CAUSAL_NONE && j > i + offset;
}

/* The same rule read down one key column: the rows of [r0, r1) that key j masks, as at most
 * three half-open runs [lo[k], hi[k]) (they may overlap; empty runs are dropped): the LT
 * interval, the UT interval and the causal rows i < j - offset, each clipped to [r0, r1).
 * Row i in [r0, r1) is in a run iff fm_element_masked(col, causal, offset, i, j). Kernels use it
 * to mask a partial tile column by column in time proportional to the masked elements.        */
FM_HD int fm_column_masked_runs(const int32_t *col, fm_causal causal, int64_t offset, int64_t j,
                                int64_t r0, int64_t r1, int64_t *lo, int64_t *hi)
{
    int64_t run_lo[3] = {col[FM_LTS], col[FM_UTS], r0};
    int64_t run_hi[3] = {col[FM_LTE], col[FM_UTE], causal != FM_CAUSAL_NONE ? j - offset : r0};
    int n = 0;
    for (int k = 0; k < 3; k++) {
        int64_t a = run_lo[k] > r0 ? run_lo[k] : r0;
        int64_t b = run_hi[k] < r1 ? run_hi[k] : r1;
        if (a < b) { lo[n] = a; hi[n] = b; n++; }
    }
    return n;
}

/* Rows [r0, reach) are masked in every column of the key block that starts at column c0, from
 * its summary `mm` (FM_SUMMARY_WIDTH values, empty intervals canonicalised as
 * fm_block_summary documents): reach >= r0 is where a walk up from r0 through three row ranges
 * masked for *every* column of the block stops —
 *   the causal prefix [0, c0 - offset)        (column j masks rows i < j - offset),
 *   [max LTS, min LTE)                         (the intersection of the columns' LT intervals),
 *   [max UTS, min UTE)                         (the intersection of the columns' UT intervals).
 * Each range can move the walk once, so three passes reach the end of any chain of them. */
FM_HD int64_t fm_masked_reach(const int32_t *mm, fm_causal causal, int64_t offset, int64_t r0,
                              int64_t c0)
{
    /* Named values rather than an array filled at run time: on a GPU such an array lives in
     * local memory, and this runs once per tile in every kernel. Without a causal rule its
     * range is empty ([0, 0)). */
    const int64_t causal_hi = causal != FM_CAUSAL_NONE ? c0 - offset : 0; /* [0, causal_hi) */
    const int64_t lt_lo = mm[FM_MAX_LTS], lt_hi = mm[FM_MIN_LTE];
    const int64_t ut_lo = mm[FM_MAX_UTS], ut_hi = mm[FM_MIN_UTE];
    int64_t reach = r0;
    for (int pass = 0; pass < 3; pass++) {
        if (0 <= reach && causal_hi > reach) reach = causal_hi;
        if (lt_lo <= reach && lt_hi > reach) reach = lt_hi;
        if (ut_lo <= reach && ut_hi > reach) reach = ut_hi;
    }
    return reach;
}

/* Classify the tile rows [r0, r1) x key columns [c0, c1) from the key block's summary `mm`.
 * Fully masked (sound and a little tighter than the paper's three separate tests): every row
 * of the tile lies in the union of the three ranges of fm_masked_reach. Unmasked: the tile's
 * rows miss every column's LT and UT interval, and the causal rule masks no element
 * (c1 - 1 <= r0 + offset). */
FM_HD fm_tile_class fm_classify_tile(const int32_t *mm, fm_causal causal, int64_t offset,
                                     int64_t r0, int64_t r1, int64_t c0, int64_t c1)
{
    if (fm_masked_reach(mm, causal, offset, r0, c0) >= r1) return FM_TILE_MASKED;
    int lt_clear = r1 <= mm[FM_MIN_LTS] || r0 >= mm[FM_MAX_LTE];
    int ut_clear = r1 <= mm[FM_MIN_UTS] || r0 >= mm[FM_MAX_UTE];
    int causal_clear = causal == FM_CAUSAL_NONE || c1 - 1 <= r0 + offset;
    if (lt_clear && ut_clear && causal_clear) return FM_TILE_UNMASKED;
    return FM_TILE_PARTIAL;
}

/* The first query block at or after qb (blocks of block_q rows over seqlen_q rows) whose tile
 * with the key block [c0, c1) is not fully masked, and its class in *cls; the number of query
 * blocks when there is none. A walk down one key block's column of tiles, as a dK/dV kernel
 * makes it: instead of classifying every block of a masked run it jumps to the block holding
 * the run's end (fm_masked_reach), so a key block costs a few steps whatever the length. It
 * finds exactly the blocks, and classes, that fm_classify_tile on each block in turn would:
 * every block it jumps over ends at or before the reach, and a walk from a row inside the
 * masked run reaches at least as far. */
FM_HD int64_t fm_next_live_qblock(const int32_t *mm, fm_causal causal, int64_t offset,
                                  int64_t qb, int64_t block_q, int64_t seqlen_q, int64_t c0,
                                  int64_t c1, fm_tile_class *cls)
{
    /* Written so that a block_q near INT64_MAX cannot overflow (r0 stays below seqlen_q). */
    const int64_t n = (seqlen_q - 1) / block_q + 1;
    while (qb < n) {
        const int64_t r0 = qb * block_q, r1 = block_q < seqlen_q - r0 ? r0 + block_q : seqlen_q;
        /* Classify first: a live block (every block of a dense mask) then costs one reach, as
         * classifying it alone would; only a masked one pays a second for the jump. */
        *cls = fm_classify_tile(mm, causal, offset, r0, r1, c0, c1);
        if (*cls != FM_TILE_MASKED) return qb;
        const int64_t reach = fm_masked_reach(mm, causal, offset, r0, c0);
        qb = reach / block_q > qb ? reach / block_q : qb + 1;
    }
    return n;
}

/* The causal part of the element rule as one row bound per column, for the kernels' 32-bit
 * arithmetic: column j causally masks rows i < fm_causal_row_end_i32(causal, offset, j), the
 * value clipped to [0, INT32_MAX] (rows are never negative). */
FM_HD int32_t fm_causal_row_end_i32(fm_causal causal, int64_t offset, int64_t j)
{
    /* j > i + offset  <=>  i < j - offset */
    const int64_t e = causal != FM_CAUSAL_NONE ? j - offset : 0;
    return (int32_t)(e < 0 ? 0 : e > INT32_MAX ? INT32_MAX : e);
}

/* Bits [a, b) of a 32-bit word, a and b clipped to [0, 32] (empty when b <= a). */
FM_HD uint32_t fm_bit_range32(int64_t a, int64_t b)
{
    a = a < 0 ? 0 : a > 32 ? 32 : a;
    b = b < 0 ? 0 : b > 32 ? 32 : b;
    return b > a ? (uint32_t)(((1ull << b) - 1ull) & ~((1ull << a) - 1ull)) : 0u;
}

/* The element rule for 32 rows of one column at once, as a kernel masks a warp's rows of a
 * partial tile: bit r is set iff row w0 + r lies in [LTS, LTE), in [UTS, UTE) or below
 * causal_end = fm_causal_row_end_i32(...), i.e. iff fm_element_masked(col, ..., w0 + r, j).
 * Three interval-to-bits conversions per column instead of 32 element tests (tests/cpu checks
 * it bit for bit against fm_element_masked). */
FM_HD uint32_t fm_column_masked_bits32(int32_t lts, int32_t lte, int32_t uts, int32_t ute,
                                       int32_t causal_end, int32_t w0)
{
    return fm_bit_range32((int64_t)lts - w0, (int64_t)lte - w0) |
           fm_bit_range32((int64_t)uts - w0, (int64_t)ute - w0) |
           fm_bit_range32(-1, (int64_t)causal_end - w0);
}

#ifdef __cplusplus
}
#endif
#endif
