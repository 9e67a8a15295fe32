/* flashmask/sparse.h — attention beyond column-wise masks: running dense and Binary Block
 * Masking masks (flashmask/bbm.h) in the reference and the CPU layer, one dispatch over either
 * mask form, Reverse Cuthill-McKee reordering of very sparse masks, and Sparse Flash
 * Attention's QK-sparse and Hash-sparse (Pagliardini et al., arXiv 2306.01160) as
 * gather -> FlashMask -> scatter pipelines.
 * Layer: reference/dense_mask.c, cpu/bbm_*.c, masks/rcm.c and sparse/ <- masks <- core.
 * Tensors and conventions are those of flashmask/core.h (docs/spec.md §1): a fully masked row has
 * out = 0, lse = -inf and passes no gradient.
 */
#ifndef FLASHMASK_SPARSE_H
#define FLASHMASK_SPARSE_H

#include "flashmask/bbm.h"
#include "flashmask/oracle.h"

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
 * it) or, on cuda (whose kernels take the column form only), row splitting of its dense form
 * (fm_rowsplit_*). Inputs are checked for finiteness as fm_forward does. */
fm_status fm_forward_any(fm_impl impl, const fm_problem *p, const fm_any_mask *mask,
                         fm_tensors *t);
fm_status fm_backward_any(fm_impl impl, const fm_problem *p, const fm_any_mask *mask,
                          fm_tensors *t);

/* ---------------------------------------------------------------- RCM reordering */

/* Tile counts (tiles of block_q x block_k over every (b, h)) of a dense mask before and after
 * Reverse Cuthill-McKee reordering (masks/rcm.c). */
typedef struct fm_rcm_report {
    fm_tile_stats before, after;
} fm_rcm_report;

fm_status fm_rcm_tile_report(const uint8_t *allowed, int64_t batch, int64_t heads,
                             int64_t seqlen_q, int64_t seqlen_k, int64_t block_q,
                             int64_t block_k, fm_rcm_report *report);

/* Attention under the dense mask `allowed` [B, mask_heads, Sq, Sk] through RCM: Q, K, V and the
 * mask permuted, `impl` run on the reordered problem (column form when the reordered mask fits
 * it, BBM with block_q x block_k tiles otherwise), the permutation undone on out, lse, dq, dk,
 * dv. The answer is the same attention as without reordering (up to summation order). */
fm_status fm_rcm_forward(fm_impl impl, const fm_problem *p, const uint8_t *allowed,
                         int64_t mask_heads, int64_t block_q, int64_t block_k, fm_tensors *t);
fm_status fm_rcm_backward(fm_impl impl, const fm_problem *p, const uint8_t *allowed,
                          int64_t mask_heads, int64_t block_q, int64_t block_k, fm_tensors *t);

/* ---------------------------------------------------------------- row splitting */

/* Any dense mask on any implementation (cuda included), exactly: the query rows are cut
 * greedily into blocks over which every key column has at most two masked runs, each block runs
 * as its own problem under the column form of its rows (sparse/rowsplit.c), dK and dV are
 * summed over blocks. n_blocks = 1 iff the whole mask is column-representable (causal none). */
fm_status fm_rowsplit_blocks(const fm_problem *p, const uint8_t *allowed, int64_t mask_heads,
                             int64_t *n_blocks);
fm_status fm_rowsplit_forward(fm_impl impl, const fm_problem *p, const uint8_t *allowed,
                              int64_t mask_heads, fm_tensors *t);
fm_status fm_rowsplit_backward(fm_impl impl, const fm_problem *p, const uint8_t *allowed,
                               int64_t mask_heads, fm_tensors *t);

/* ---------------------------------------------------------------- Sparse Flash Attention */

/* QK-sparse: q_keep [B, Hq, Sq] and k_keep [B, Hk, Sk] are 0/1 flags; the keep-list of a
 * (b, head) is the positions flagged 1, in increasing order. Kept queries attend kept keys of
 * their kv head iff (alignment != none) original i + offset >= original j, offset =
 * fm_causal_offset(alignment, Sq, Sk) (top_left: i >= j, the paper's rule); alignment none
 * drops tokens only. Runs `impl` on the compacted problem under a column-wise mask and
 * scatters back: dropped queries get out 0 and lse -inf, dropped queries and keys get 0
 * gradient. Inputs are checked for finiteness by fm_forward/fm_backward on the compact tensors. */
fm_status fm_qk_sparse_forward(fm_impl impl, const fm_problem *p, fm_causal alignment,
                               const uint8_t *q_keep, const uint8_t *k_keep, fm_tensors *t);
fm_status fm_qk_sparse_backward(fm_impl impl, const fm_problem *p, fm_causal alignment,
                                const uint8_t *q_keep, const uint8_t *k_keep, fm_tensors *t);
/* The equivalent dense mask [B, Hq, Sq, Sk] (1 = allowed), for checking and for the CLI. */
fm_status fm_qk_sparse_dense_mask(const fm_problem *p, fm_causal alignment,
                                  const uint8_t *q_keep, const uint8_t *k_keep,
                                  uint8_t *allowed);

/* Hash-sparse bucket ids: bucket = argmax([x R, -x R]) (first maximum on ties) with R [D,
 * n_buckets/2] standard normal from fm_rng seeded with `seed`, the same R for queries
 * [B, Hq, Sq] and keys [B, Hk, Sk]. n_buckets even, >= 2. */
fm_status fm_hash_buckets(const fm_problem *p, const double *q, const double *k,
                          int64_t n_buckets, uint64_t seed, int32_t *q_buckets,
                          int32_t *k_buckets);

/* Hash-sparse: queries and keys stable-sorted by bucket (ids in [0, n_buckets)); a query
 * attends a key of its kv head iff same bucket and (alignment != none) i + offset >= j.
 * Runs `impl` on the sorted problem under a column-wise mask (a causal document mask over
 * buckets) and scatters back to the original order. */
fm_status fm_hash_sparse_forward(fm_impl impl, const fm_problem *p, fm_causal alignment,
                                 const int32_t *q_buckets, const int32_t *k_buckets,
                                 int64_t n_buckets, fm_tensors *t);
fm_status fm_hash_sparse_backward(fm_impl impl, const fm_problem *p, fm_causal alignment,
                                  const int32_t *q_buckets, const int32_t *k_buckets,
                                  int64_t n_buckets, fm_tensors *t);
fm_status fm_hash_sparse_dense_mask(const fm_problem *p, fm_causal alignment,
                                    const int32_t *q_buckets, const int32_t *k_buckets,
                                    int64_t n_buckets, uint8_t *allowed);

/* ---------------------------------------------------------------- dense-mask cases */

/* The case format extended to dense masks (docs/sparse.md): case.json (mask_kind "custom",
 * mask_params {"dense": pattern, ...}, causal "none"), mask_dense.npy uint8 [B, Hm, Sq, Sk],
 * mask.npy as well when the mask is column-representable, q/k/v/do.npy, the dense oracle's
 * out/lse/dq/dk/dv.npy, and q_keep/k_keep.npy (uint8 [B, Hq, Sq], [B, Hk, Sk]) for QK-sparse or
 * q_buckets/k_buckets.npy (int32) for Hash-sparse. Saved atomically like every case. */
typedef enum fm_dense_pattern {
    FM_DENSE_RANDOM = 0,     /* i.i.d. cells, P(allowed) = density */
    FM_DENSE_SCRAMBLED_BAND, /* |perm(i) - perm(j)| < band, a random perm per (b, head) */
    FM_DENSE_QK_SPARSE,      /* keep flags with P(keep) = density; mask heads = Hq */
    FM_DENSE_HASH_SPARSE,    /* buckets of fm_hash_buckets(n_buckets, seed); mask heads = Hq */
    FM_DENSE_CUSTOM,         /* loaded from a case that names no pattern */
    FM_DENSE_PATTERN_COUNT
} fm_dense_pattern;

const char *fm_dense_pattern_name(fm_dense_pattern pattern);
fm_status fm_dense_pattern_from_name(const char *name, fm_dense_pattern *out);

typedef struct fm_dense_case {
    fm_problem problem;
    int64_t mask_heads;
    fm_dense_pattern pattern;
    double density;                 /* random, qk_sparse */
    int64_t band;                   /* scrambled_band */
    int64_t n_buckets;              /* hash_sparse */
    fm_causal alignment;            /* qk_sparse, hash_sparse: the causal rule they apply */
    uint64_t seed;
    uint8_t *allowed;               /* [B, Hm, Sq, Sk] */
    uint8_t *q_keep, *k_keep;       /* qk_sparse, else NULL */
    int32_t *q_buckets, *k_buckets; /* hash_sparse, else NULL */
    double *q, *k, *v, *dout;       /* inputs */
    double *out, *lse, *dq, *dk, *dv; /* expected (dense oracle), NULL when absent */
} fm_dense_case;

/* Inputs drawn as `flashmask gen` draws them (normal from fm_rng(seed), rounded to p->dtype),
 * the pattern's mask, and the dense oracle's expected outputs. */
fm_status fm_dense_case_generate(fm_dense_case *c, const fm_problem *p, int64_t mask_heads,
                                 fm_dense_pattern pattern, double density, int64_t band,
                                 int64_t n_buckets, fm_causal alignment, uint64_t seed);
fm_status fm_dense_case_save(const char *dir, const fm_dense_case *c);
fm_status fm_dense_case_load(const char *dir, fm_dense_case *c);
void fm_dense_case_free(fm_dense_case *c);
/* 1 when `dir` holds mask_dense.npy and no mask.npy: a case only the dense-mask tools read
 * (`flashmask run` hands such a case to run_dense). */
int fm_dense_case_detect(const char *dir);

/* How to run a dense case: auto (column form if it fits, else BBM), bbm (always BBM), rcm
 * (RCM reordering, then auto), qk_sparse / hash_sparse (the gather pipeline from the case's
 * keep flags / buckets), dense (the dense oracle itself; reference only), rowsplit (row blocks
 * in the column form: every implementation, cuda included). */
typedef enum fm_dense_method {
    FM_DENSE_AUTO = 0, FM_DENSE_BBM, FM_DENSE_RCM, FM_DENSE_QK, FM_DENSE_HASH, FM_DENSE_PLAIN,
    FM_DENSE_ROWSPLIT, FM_DENSE_METHOD_COUNT
} fm_dense_method;

const char *fm_dense_method_name(fm_dense_method m);
fm_status fm_dense_method_from_name(const char *name, fm_dense_method *out);

/* Forward (backward = 0) or backward of `impl` on the case with `method`; t as fm_forward. */
fm_status fm_dense_case_run(fm_impl impl, const fm_dense_case *c, fm_dense_method method,
                            int64_t block_q, int64_t block_k, int backward, fm_tensors *t);

/* ---------------------------------------------------------------- the pass rule, dense */

/* docs/spec.md §5's rule with a dense mask [B, mask_heads, Sq, Sk]: fm_check_case's contract (ref holds
 * the inputs as the candidate saw them and optionally the reference results, computed here by
 * the dense oracle when NULL), with the naive same-precision computation run on the row blocks
 * of fm_rowsplit (exact for out, lse, dq; dk and dv sum the blocks' rounded results: see
 * sparse/dense_check.c). */
fm_status fm_check_dense(const fm_problem *p, const uint8_t *allowed, int64_t mask_heads,
                         const fm_tensors *ref, const fm_tensors *cand,
                         const fm_check_options *opt, fm_check_report *report);
/* fm_check_dirs for a dense-mask case directory (docs/sparse.md §5). */
fm_status fm_dense_check_dirs(const char *case_dir, const char *candidate_dir,
                              const fm_check_options *opt, fm_check_report *report,
                              char *summary, size_t summary_len);

#ifdef __cplusplus
}
#endif
#endif
