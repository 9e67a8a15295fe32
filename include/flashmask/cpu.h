/* flashmask/cpu.h — the CPU layer: tiled FlashAttention-2 forward/backward in float32 with
 * OpenMP, skipping fully masked tiles as masks/ classifies them, O((Sq+Sk)*D) extra memory.
 * Layer: cpu <- masks <- core. The native calls below do not check finiteness;
 * fm_forward/fm_backward (core.h) do. `stats` may be NULL; when given it receives the tiles
 * visited and skipped (the counter that shows fully masked tiles do no work).
 */
#ifndef FLASHMASK_CPU_H
#define FLASHMASK_CPU_H

#include "flashmask/masks.h"
#include "flashmask/bbm.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Tile sizes of the CPU layer, forward and backward: query rows x key columns. `stats` counts
 * tiles over every (batch, query head), so it equals fm_mask_tile_stats(mask, FM_CPU_BLOCK_Q,
 * FM_CPU_BLOCK_K) multiplied by Hq / Hm (the query heads that share a mask head). */
#ifndef FM_CPU_TILE_Q
#define FM_CPU_TILE_Q 128 /* build-time override (-DFM_CPU_TILE_Q=...) for tile-size studies */
#endif
#ifndef FM_CPU_TILE_K
#define FM_CPU_TILE_K 128
#endif
enum { FM_CPU_BLOCK_Q = FM_CPU_TILE_Q, FM_CPU_BLOCK_K = FM_CPU_TILE_K };

/* The row kernels (online softmax, backward P and dS) exist for AVX-512, AVX2 + FMA and a
 * portable baseline; the widest the processor supports runs unless this names one: "auto"
 * (or NULL, the default), "portable", "avx2" or "avx512". For measurements and tests; the
 * flashmask tool reads it from FM_CPU_ISA. FM_ERR_UNAVAILABLE if the processor lacks it. */
fm_status fm_cpu_set_isa(const char *name);

fm_status fm_cpu_forward(const fm_problem *p, const fm_mask *mask, const float *q,
                         const float *k, const float *v, float *out, float *lse,
                         fm_tile_stats *stats);

fm_status fm_cpu_backward(const fm_problem *p, const fm_mask *mask, const float *q,
                          const float *k, const float *v, const float *out, const float *lse,
                          const float *dout, float *dq, float *dk, float *dv,
                          fm_tile_stats *stats);

/* ---------------------------------------------------------------- BBM and dense masks */

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

#ifdef __cplusplus
}
#endif
#endif
