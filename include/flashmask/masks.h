/* flashmask/masks.h — the column-wise FlashMask representation (docs/spec.md §2) and everything built on
 * it: validation, the builders of the twelve mask families (docs/spec.md §4), conversions (dense,
 * Paddle's startend_row_indices, FlexAttention block masks), the exact allowed-pair count,
 * per-key-block min/max summaries and tile statistics (docs/spec.md §3).
 *
 * Every other layer takes its masks and tile decisions from here (and from flashmask/rules.h,
 * which holds the element and tile rules as inline functions usable on a GPU).
 */
#ifndef FLASHMASK_MASKS_H
#define FLASHMASK_MASKS_H

#include "flashmask/core.h"
#include "flashmask/rules.h"

#ifdef __cplusplus
extern "C" {
#endif

const char *fm_causal_name(fm_causal causal); /* "none", "bottom_right", "top_left" */
fm_status fm_causal_from_name(const char *name, fm_causal *out);

/* ---------------------------------------------------------------- the mask */

/* For each batch b, mask head m and key column j: four int32 row bounds in [0, Sq],
 * bounds[((b*heads + m)*seqlen_k + j)*4 + {FM_LTS, FM_LTE, FM_UTS, FM_UTE}].
 * Row i is masked from key j iff LTS <= i < LTE or UTS <= i < UTE or causal(i, j).
 * start == end is an empty interval; start > end or a bound outside [0, Sq] is invalid. */
struct fm_mask {
    int64_t batch;    /* B  */
    int64_t heads;    /* Hm: divides the problem's Hq; query head h uses mask head h/(Hq/Hm) */
    int64_t seqlen_q; /* Sq */
    int64_t seqlen_k; /* Sk */
    fm_causal causal;
    int32_t *bounds;  /* [B, Hm, Sk, 4], owned (fm_mask_free) */
};

/* Allocates a mask whose every column masks nothing: LT = [Sq, Sq), UT = [0, 0). */
fm_status fm_mask_init(fm_mask *m, int64_t batch, int64_t heads, int64_t seqlen_q,
                       int64_t seqlen_k, fm_causal causal);
void fm_mask_free(fm_mask *m); /* safe on a zeroed or already freed mask */
fm_status fm_mask_copy(fm_mask *dst, const fm_mask *src);

/* Pointer to column j's four bounds. */
static inline int32_t *fm_mask_column(const fm_mask *m, int64_t b, int64_t h, int64_t j)
{
    return m->bounds + (((b * m->heads + h) * m->seqlen_k + j) * FM_BOUNDS);
}

/* Checks sizes and every bound; the message names b, head, column, bound and value. */
fm_status fm_mask_validate(const fm_mask *m);

/* Is (i, j) masked for batch b and mask head h? (fm_element_masked on the column.) */
int fm_mask_is_masked(const fm_mask *m, int64_t b, int64_t h, int64_t i, int64_t j);

/* Exact number of allowed (i, j) pairs of one (b, h), in O(Sk). */
int64_t fm_mask_allowed_pairs(const fm_mask *m, int64_t b, int64_t h);
/* Sum over every (b, h) of the mask. */
int64_t fm_mask_total_allowed_pairs(const fm_mask *m);

/* ---------------------------------------------------------------- a problem and its mask */

/* fm_problem_check (core.h), then the mask against the problem: mask batch and sequence lengths
 * equal to the problem's, mask heads dividing the query heads, and the mask itself valid
 * (fm_mask_validate). The message names the value at fault. */
fm_status fm_problem_validate(const fm_problem *p, const fm_mask *mask);

/* fm_problem_validate against a mask of shape [batch, heads, seqlen_q, seqlen_k] whose bounds
 * are not looked at: for mask forms other than columns (BBM, dense, the sparse transforms). */
fm_status fm_problem_validate_shape(const fm_problem *p, int64_t batch, int64_t heads,
                                    int64_t seqlen_q, int64_t seqlen_k);

/* FLOPs counted from allowed pairs only (docs/spec.md §3): 4*D per allowed (i, j) pair and query
 * head forward; 2.5 times that backward. */
double fm_problem_flops(const fm_problem *p, const fm_mask *mask, int backward);

/* ---------------------------------------------------------------- mask families (docs/spec.md §4) */

typedef enum fm_family {
    FM_FAMILY_FULL = 0,
    FM_FAMILY_CAUSAL,
    FM_FAMILY_SLIDING_WINDOW,
    FM_FAMILY_CAUSAL_DOCUMENT,
    FM_FAMILY_DOCUMENT,
    FM_FAMILY_SHARED_QUESTION,
    FM_FAMILY_GLOBAL_SLIDING_WINDOW,
    FM_FAMILY_CAUSAL_BLOCKWISE,
    FM_FAMILY_PREFIX_LM_CAUSAL,
    FM_FAMILY_PREFIX_LM_DOCUMENT,
    FM_FAMILY_QK_SPARSE,
    FM_FAMILY_RANDOM_EVICTION,
    FM_FAMILY_COUNT
} fm_family;

const char *fm_family_name(fm_family f); /* "full", "causal", "sliding_window", ... */
fm_status fm_family_from_name(const char *name, fm_family *out);
int fm_family_is_causal(fm_family f);    /* the "causal" column of docs/spec.md §4 */
const char *fm_family_help(fm_family f); /* its parameters, one line, for `flashmask masks` */

/* Parameters of a family; only the fields of the chosen family are read. Arrays are owned by
 * the struct once filled by fm_mask_params_default/_random/_set_* and freed by
 * fm_mask_params_free. All lengths are in key positions. */
typedef struct fm_mask_params {
    fm_family family;
    int64_t window;        /* sliding_window: w keys including self, w >= 1 */
    int64_t global_tokens; /* global_sliding_window: g */
    int64_t left_window;   /* global_sliding_window: wl */
    int64_t right_window;  /* global_sliding_window: wr */
    int64_t prefix;        /* prefix_lm_causal: p */
    int64_t n_docs;        /* number of segments in doc_lens */
    int64_t *doc_lens;     /* causal_document, document, causal_blockwise, prefix_lm_document:
                              document lengths; shared_question: segment lengths, each sample
                              being one question segment followed by its answer segments.
                              They sum to Sk. */
    int64_t *doc_prefix;   /* prefix_lm_document: [n_docs] prefix length of each document */
    int64_t n_samples;     /* shared_question: number of samples */
    int64_t *sample_segments; /* shared_question: [n_samples] segments per sample (1 + answers) */
    int64_t n_spans;       /* qk_sparse: number of spans */
    int64_t *span_offset;  /* qk_sparse: [n_spans] first key of each span */
    int64_t *span_len;     /* qk_sparse: [n_spans] its length */
    int64_t evict_start;   /* random_eviction: first row at which keys may be evicted */
    uint64_t seed;         /* random_eviction: generator seed (different per (b, head)) */
} fm_mask_params;

/* The parameters a family reads, as data: each one's name (the same word in case.json's
 * mask_params, in `flashmask gen --param`, and as the fm_mask_params field), its kind and where
 * it lives in fm_mask_params (for a list, also where its element count lives). */
typedef enum fm_param_kind { FM_PARAM_I64 = 0, FM_PARAM_U64 = 1, FM_PARAM_LIST = 2 } fm_param_kind;
typedef struct fm_param_field {
    const char *key;
    fm_param_kind kind;
    size_t value_offset; /* int64_t, uint64_t, or int64_t * for lists */
    size_t count_offset; /* int64_t element count, lists only */
} fm_param_field;

int fm_family_count(void); /* FM_FAMILY_COUNT, for bindings that do not see the enum */
/* Family f's parameters (NULL and *n = 0 for none, or for an unknown f). */
const fm_param_field *fm_family_fields(fm_family f, int *n);

/* A documented default instance of the family for sequence length `seqlen` (Sk). */
fm_status fm_mask_params_default(fm_mask_params *p, fm_family f, int64_t seqlen);
/* A random valid instance, for property tests. */
fm_status fm_mask_params_random(fm_mask_params *p, fm_family f, int64_t seqlen, fm_rng *rng);
void fm_mask_params_free(fm_mask_params *p);
fm_status fm_mask_params_copy(fm_mask_params *dst, const fm_mask_params *src);

/* Build the family's mask over [batch, heads, Sk]. `alignment` is the causal alignment that
 * causal families use (bottom_right or top_left; none is refused for them) and is ignored by
 * the others, which get causal = none. When Sq != Sk, row r stands at key position r + off
 * (off = Sk - Sq for bottom_right, 0 otherwise) and the vectors of docs/spec.md §4 are shifted by
 * it and clipped to [0, Sq]. */
fm_status fm_mask_build(fm_mask *out, const fm_mask_params *p, int64_t batch, int64_t heads,
                        int64_t seqlen_q, int64_t seqlen_k, fm_causal alignment);

/* ---------------------------------------------------------------- conversions */

/* Dense boolean mask [B, Hm, Sq, Sk], 1 = allowed (may attend), 0 = masked, as PyTorch's
 * boolean attn_mask and FlexAttention's mask_mod. */
fm_status fm_mask_to_dense(const fm_mask *m, uint8_t *allowed);

/* Exact conversion from dense: every column's masked rows outside the causal part must form
 * at most two runs, otherwise FM_ERR_NOT_REPRESENTABLE naming (b, head, column). The canonical
 * form chosen is documented in docs/masks.md. */
fm_status fm_mask_from_dense(fm_mask *out, const uint8_t *allowed, int64_t batch, int64_t heads,
                             int64_t seqlen_q, int64_t seqlen_k, fm_causal causal);

/* Paddle's startend_row_indices [B, Hm, Sk, C] (docs/spec.md §2 table). `causal` is the mask's causal
 * alignment: none means Paddle's causal=False. */
fm_status fm_mask_from_startend(fm_mask *out, const int32_t *startend, int64_t batch,
                                int64_t heads, int64_t seqlen_q, int64_t seqlen_k, int columns,
                                fm_causal causal);
/* Fails with FM_ERR_NOT_REPRESENTABLE if the mask does not fit the C-column form, and for what
 * Paddle would read differently or refuse: causal top_left with Sq != Sk (Paddle's causal is
 * bottom-right) and causal with C = 4 (Paddle raises). The message says how to convert. */
fm_status fm_mask_to_startend(const fm_mask *m, int columns, int32_t *startend);

/* FlexAttention's BlockMask arrays for q_block x kv_block tiles: per (b, h, query block) the
 * number and the indices of partial key blocks, and of full (unmasked) key blocks. Fully
 * masked blocks appear in neither. Index arrays are [B, Hm, n_q_blocks, n_kv_blocks], padded
 * after the count with zeros. */
typedef struct fm_flex_block_mask {
    int64_t batch, heads, n_q_blocks, n_kv_blocks, q_block, kv_block;
    int32_t *kv_num_blocks;      /* [B, Hm, n_q_blocks] */
    int32_t *kv_indices;         /* [B, Hm, n_q_blocks, n_kv_blocks] */
    int32_t *full_kv_num_blocks; /* [B, Hm, n_q_blocks] */
    int32_t *full_kv_indices;    /* [B, Hm, n_q_blocks, n_kv_blocks] */
} fm_flex_block_mask;

fm_status fm_mask_to_flex_blocks(const fm_mask *m, int64_t q_block, int64_t kv_block,
                                 fm_flex_block_mask *out);
void fm_flex_block_mask_free(fm_flex_block_mask *fb);

/* ---------------------------------------------------------------- summaries and tiles */

/* Per (b, h, key block of width block_k) the min and max of each bound, in the order of
 * FM_MIN_LTS .. FM_MAX_UTE (flashmask/rules.h). Empty intervals (start >= end) count as
 * [Sq, Sq) (LT) and [0, 0) (UT) in the values the fully-masked test reads (max LTS, min LTE,
 * max UTS, min UTE), so that they never make a tile look masked, and are left out of the values
 * only the unmasked test reads (min LTS, max LTE, min UTS, max UTE), so that they never cost a
 * tile its unmasked call. A block whose columns' LT (UT) intervals are all empty has min LTS
 * (min UTS) = Sq and max LTE (max UTE) = 0. */
typedef struct fm_block_summary {
    int64_t batch, heads, seqlen_q, seqlen_k, block_k, n_blocks;
    fm_causal causal;
    int32_t *minmax; /* [B, Hm, n_blocks, FM_SUMMARY_WIDTH] */
} fm_block_summary;

fm_status fm_block_summary_build(const fm_mask *m, int64_t block_k, fm_block_summary *out);
void fm_block_summary_free(fm_block_summary *s);

static inline const int32_t *fm_block_summary_at(const fm_block_summary *s, int64_t b,
                                                 int64_t h, int64_t kb)
{
    return s->minmax + (((b * s->heads + h) * s->n_blocks + kb) * FM_SUMMARY_WIDTH);
}

/* Classification of tile (query block qb of height block_q, key block kb) of (b, h). */
fm_tile_class fm_block_summary_classify(const fm_block_summary *s, int64_t b, int64_t h,
                                        int64_t block_q, int64_t qb, int64_t kb);

/* Tile counts over every (b, h): what an implementation visits or skips. */
typedef struct fm_tile_stats {
    int64_t total, masked, partial, unmasked;
} fm_tile_stats;

fm_status fm_mask_tile_stats(const fm_mask *m, int64_t block_q, int64_t block_k,
                             fm_tile_stats *out);

/* (partial + unmasked) / total: the fraction of tiles that cost work. */
double fm_tile_density(const fm_tile_stats *s);

#ifdef __cplusplus
}
#endif
#endif
