/* flashmask/sparse.h — attention beyond column-wise masks: running dense and Binary Block
 * Masking masks (flashmask/bbm.h) in the reference and the CPU layer, one dispatch over either
 * mask form, Reverse Cuthill-McKee reordering of very sparse masks, and Sparse Flash
 * Attention's QK-sparse and Hash-sparse (Pagliardini et al., arXiv 2306.01160) as
 * gather -> FlashMask -> scatter pipelines.
 * Layer: reference/dense_mask.c, cpu/bbm_*.c, masks/rcm.c and sparse/ <- masks <- core.
 * Tensors and conventions are those of flashmask/core.h (BRIEF 1): a fully masked row has
 * out = 0, lse = -inf and passes no gradient.
 */
#ifndef FLASHMASK_SPARSE_H
#define FLASHMASK_SPARSE_H

#include "flashmask/bbm.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- dense and BBM masks */

/* The float64 oracle with a dense mask `allowed` [B, mask_heads, Sq, Sk] (1 = allowed; values
 * other than 0/1 refused). Query head h uses mask head h / (Hq/mask_heads). */
fm_status fm_ref_forward_dense(const fm_problem *p, const uint8_t *allowed, int64_t mask_heads,
                               const double *q, const double *k, const double *v, double *out,
                               double *lse);
fm_status fm_ref_backward_dense(const fm_problem *p, const uint8_t *allowed, int64_t mask_heads,
                                const double *q, const double *k, const double *v,
                                const double *out, const double *lse, const double *dout,
                                double *dq, double *dk, double *dv);

/* The oracle on a BBM mask (through its dense form). */
fm_status fm_ref_forward_bbm(const fm_problem *p, const fm_bbm *mask, const double *q,
                             const double *k, const double *v, double *out, double *lse);
fm_status fm_ref_backward_bbm(const fm_problem *p, const fm_bbm *mask, const double *q,
                              const double *k, const double *v, const double *out,
                              const double *lse, const double *dout, double *dq, double *dk,
                              double *dv);

/* The CPU layer on a BBM mask, in float32, tiles of the BBM's block_q x block_k: empty tiles are
 * skipped (no loads, no arithmetic), full tiles run without element tests (the contiguous run
 * of full tiles without even reading codes), partial tiles test their packed bits. `stats`
 * (may be NULL) receives the tiles visited and skipped, as fm_cpu_forward does. */
fm_status fm_cpu_forward_bbm(const fm_problem *p, const fm_bbm *mask, const float *q,
                             const float *k, const float *v, float *out, float *lse,
                             fm_tile_stats *stats);
fm_status fm_cpu_backward_bbm(const fm_problem *p, const fm_bbm *mask, const float *q,
                              const float *k, const float *v, const float *out,
                              const float *lse, const float *dout, float *dq, float *dk,
                              float *dv, fm_tile_stats *stats);

/* The plain dense-mask CPU path, the baseline BBM is measured against: tiles of
 * FM_CPU_BLOCK_Q x FM_CPU_BLOCK_K, none skipped, every element tested in the dense mask
 * [B, mask_heads, Sq, Sk] (what a dense boolean attn_mask costs a mask-unaware kernel). */
fm_status fm_cpu_forward_dense(const fm_problem *p, const uint8_t *allowed, int64_t mask_heads,
                               const float *q, const float *k, const float *v, float *out,
                               float *lse, fm_tile_stats *stats);
fm_status fm_cpu_backward_dense(const fm_problem *p, const uint8_t *allowed, int64_t mask_heads,
                                const float *q, const float *k, const float *v,
                                const float *out, const float *lse, const float *dout,
                                float *dq, float *dk, float *dv, fm_tile_stats *stats);

/* fm_forward / fm_backward (core.h) over either mask form: the column form goes to fm_forward,
 * the BBM form to fm_ref_*_bbm (reference) or fm_cpu_*_bbm (cpu; float64 <-> float32 around
 * it). Inputs are checked for finiteness as fm_forward does. cuda takes the column form only. */
fm_status fm_forward_any(fm_impl impl, const fm_problem *p, const fm_any_mask *mask,
                         fm_tensors *t);
fm_status fm_backward_any(fm_impl impl, const fm_problem *p, const fm_any_mask *mask,
                          fm_tensors *t);

#ifdef __cplusplus
}
#endif
#endif
