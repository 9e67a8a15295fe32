/* flashmask/bbm.h — Binary Block Masking (Sharma & Geiping, arXiv 2409.15097): the second mask
 * representation of libflashmask, for any dense boolean mask, including masks that the
 * column-wise FlashMask form cannot hold (a column with more than two masked runs).
 *
 * The dense mask [B, Hm, Sq, Sk] (1 = allowed, as flashmask/masks.h) is cut into tiles of
 * block_q query rows x block_k key columns. Each tile gets a code with the vocabulary of
 * flashmask/rules.h: FM_TILE_MASKED ("empty": nothing allowed, skipped), FM_TILE_UNMASKED
 * ("full": everything allowed, no element test) or FM_TILE_PARTIAL, whose allowed bits are
 * kept packed. Per query tile the longest contiguous run of full key tiles is recorded (the
 * paper's optimisation for contiguous masks: a kernel runs through it without looking at codes
 * or bits). Memory: one byte per tile plus block_q*block_k bits per partial tile.
 *
 * Also here: the front door fm_mask_from_dense_auto, which returns the column-wise form when the
 * dense mask fits it and the BBM form otherwise, and Reverse Cuthill-McKee reordering of very
 * sparse masks (masks/rcm.c).
 * Layer: masks (bbm.c, bbm_auto.c, rcm.c) <- core; reference/, cpu/ and sparse/ run it.
 */
#ifndef FLASHMASK_BBM_H
#define FLASHMASK_BBM_H

#include "flashmask/masks.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fm_bbm {
    int64_t batch, heads;        /* B, Hm: query head h uses mask head h / (Hq/Hm) */
    int64_t seqlen_q, seqlen_k;  /* Sq, Sk */
    int64_t block_q, block_k;    /* tile height and width */
    int64_t n_q_blocks, n_k_blocks;
    uint8_t *codes;              /* [B, Hm, n_q_blocks, n_k_blocks] fm_tile_class values */
    int64_t *bits_offset;        /* same shape: first word of a partial tile's bits, else -1 */
    uint64_t *bits;              /* n_partial tiles x words_per_tile; bit r*block_k + c of a
                                    tile (r, c relative to its corner) set = (r, c) allowed */
    int64_t words_per_tile;      /* ceil(block_q * block_k / 64) */
    int64_t n_partial;
    int32_t *run_start, *run_end; /* [B, Hm, n_q_blocks]: key tiles [start, end) are the
                                     longest contiguous run of full tiles (start == end: none) */
} fm_bbm;

/* Builds the BBM form of a dense mask. Every value must be 0 or 1 (anything else is refused,
 * naming b, head, row, column). block_q/block_k larger than Sq/Sk are clamped to them. Tiles
 * at the right/bottom edge are smaller than block_q x block_k; their code describes the
 * elements that exist. */
fm_status fm_bbm_from_dense(fm_bbm *out, const uint8_t *allowed, int64_t batch, int64_t heads,
                            int64_t seqlen_q, int64_t seqlen_k, int64_t block_q,
                            int64_t block_k);
void fm_bbm_free(fm_bbm *m); /* safe on a zeroed or already freed BBM */

/* The code of tile (qb, kb) of (b, h). */
static inline fm_tile_class fm_bbm_tile(const fm_bbm *m, int64_t b, int64_t h, int64_t qb,
                                        int64_t kb)
{
    return (fm_tile_class)m->codes[((b * m->heads + h) * m->n_q_blocks + qb) * m->n_k_blocks + kb];
}

/* Is (i, j) allowed for batch b and mask head h? 0 outside [0, Sq) x [0, Sk) and for a b or h
 * out of range. */
int fm_bbm_is_allowed(const fm_bbm *m, int64_t b, int64_t h, int64_t i, int64_t j);

/* The allowed bit of row r, column c inside a partial tile whose bits start at `tile_bits`:
 * the inline form kernels use (block_k is the BBM's). */
static inline int fm_bbm_tile_bit(const uint64_t *tile_bits, int64_t block_k, int64_t r,
                                  int64_t c)
{
    int64_t bit = r * block_k + c;
    return (int)((tile_bits[bit >> 6] >> (bit & 63)) & 1u);
}

/* Checks a problem against the BBM as fm_problem_validate does for a column mask: the problem's
 * own sizes, equal batch and sequence lengths, mask heads dividing Hq. */
fm_status fm_bbm_check_problem(const fm_problem *p, const fm_bbm *m);

/* The same for a dense mask [B, mask_heads, Sq, Sk] (allowed non-NULL, every value 0 or 1). */
fm_status fm_dense_check_problem(const fm_problem *p, const uint8_t *allowed, int64_t mask_heads);

/* Every value of the dense mask [batch, heads, seqlen_q, seqlen_k] 0 or 1; the message (prefixed
 * by `who`, e.g. "bbm: ") names the first other value in memory order and its position. */
fm_status fm_dense_check_values(const char *who, const uint8_t *allowed, int64_t batch,
                                int64_t heads, int64_t seqlen_q, int64_t seqlen_k);

/* Tile counts over every (b, h): masked = empty, partial, unmasked = full. */
fm_status fm_bbm_tile_stats(const fm_bbm *m, fm_tile_stats *out);

/* Exact number of allowed pairs over every (b, h) (full tiles by area, partial by popcount). */
int64_t fm_bbm_total_allowed_pairs(const fm_bbm *m);

/* Writes the dense mask [B, Hm, Sq, Sk] back (1 = allowed): the exact inverse of
 * fm_bbm_from_dense. */
fm_status fm_bbm_to_dense(const fm_bbm *m, uint8_t *allowed);

/* ---------------------------------------------------------------- the front door */

typedef enum fm_mask_form {
    FM_FORM_COLUMNS = 0, /* the FlashMask column-wise form (fm_mask) */
    FM_FORM_BBM = 1      /* Binary Block Masking (fm_bbm) */
} fm_mask_form;

const char *fm_mask_form_name(fm_mask_form form); /* "columns", "bbm" */

/* A mask in whichever form fits: exactly one of `columns` and `bbm` is filled. */
typedef struct fm_any_mask {
    fm_mask_form form;
    fm_mask columns;
    fm_bbm bbm;
} fm_any_mask;

/* The column-wise form when fm_mask_from_dense(…, causal) succeeds, the BBM form (tiles of
 * block_q x block_k) when it fails with FM_ERR_NOT_REPRESENTABLE; any other failure is returned.
 * With causal != none the dense mask must already mask the causal part. */
fm_status fm_mask_from_dense_auto(fm_any_mask *out, const uint8_t *allowed, int64_t batch,
                                  int64_t heads, int64_t seqlen_q, int64_t seqlen_k,
                                  fm_causal causal, int64_t block_q, int64_t block_k);
void fm_any_mask_free(fm_any_mask *m);

/* ---------------------------------------------------------------- Reverse Cuthill-McKee */

/* Row and column permutations of a dense mask, one pair per batch (shared by its mask heads):
 * reordered row r is original row row_perm[b*Sq + r], reordered column c is original column
 * col_perm[b*Sk + c]. Sq == Sk gives the classic symmetric RCM (same permutation for rows and
 * columns), Sq != Sk the bipartite form; see masks/rcm.c. */
typedef struct fm_rcm {
    int64_t batch, seqlen_q, seqlen_k;
    int32_t *row_perm; /* [B, Sq] */
    int32_t *col_perm; /* [B, Sk] */
} fm_rcm;

fm_status fm_rcm_build(fm_rcm *out, const uint8_t *allowed, int64_t batch, int64_t heads,
                       int64_t seqlen_q, int64_t seqlen_k);
void fm_rcm_free(fm_rcm *r);

/* permuted[b, h, i, j] = allowed[b, h, row_perm[i], col_perm[j]] for [B, heads, Sq, Sk]. */
fm_status fm_rcm_apply_mask(const fm_rcm *r, const uint8_t *allowed, int64_t heads,
                            uint8_t *permuted);

#ifdef __cplusplus
}
#endif
#endif
