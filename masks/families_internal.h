/* masks/families_internal.h — helpers shared by the mask-family builders (masks/builders*.c)
 * and the parameter code (masks/params*.c). Private to masks/; the public API is
 * flashmask/masks.h (fm_family, fm_mask_params, fm_mask_build).
 *
 * Positions. Every builder describes its intervals in *key positions*: row i of the mask stands
 * at position x = i + off (off = Sk - Sq for a causal family under bottom_right, else 0), so
 * that the vectors of docs/spec.md §4 (written for Sq = Sk) hold unchanged. A bound is converted to a
 * row bound by subtracting off and clipping to [0, Sq]. Two sentinels stand for "before every
 * row" and "after every row" (docs/spec.md §4's N when it means "to the end"), so that they clip to 0 and
 * Sq whatever the offset.
 */
#ifndef FM_FAMILIES_INTERNAL_H
#define FM_FAMILIES_INTERNAL_H

#include "flashmask/masks.h"

/* Far beyond any int32 row, far from int64 overflow after adding an int32 offset. */
#define FM_POS_END ((int64_t)1 << 40)
#define FM_POS_BEGIN (-FM_POS_END)

/* What a builder needs to know to write bounds. */
typedef struct fm_build_ctx {
    fm_mask *mask;           /* already initialised: batch, heads, Sq, Sk, causal */
    const fm_mask_params *p; /* validated */
    int64_t seqlen_q, seqlen_k;
    int64_t off;             /* row i stands at key position i + off */
} fm_build_ctx;

/* Position -> row bound: x - off clipped to [0, Sq]. */
static inline int32_t fm_pos_to_row(const fm_build_ctx *c, int64_t pos)
{
    int64_t r = pos - c->off;
    if (r < 0) r = 0;
    if (r > c->seqlen_q) r = c->seqlen_q;
    return (int32_t)r;
}

/* Writes column j of (b, h): rows at positions [lts, lte) and [uts, ute) are masked. Each
 * interval is converted to rows, and an empty one (end <= start) is written in the canonical
 * empty form, LT = [Sq, Sq) and UT = [0, 0), as fm_mask_init leaves it. */
void fm_build_set_column(const fm_build_ctx *c, int64_t b, int64_t h, int64_t j, int64_t lts,
                         int64_t lte, int64_t uts, int64_t ute);

/* Copies the columns of (0, 0) to every other (b, h): for families that do not vary. */
void fm_build_broadcast(const fm_build_ctx *c);

/* Document helpers over p->doc_lens (which sum to Sk, validated). doc_start[d] is the first key
 * of document d; doc_end[d] its end, except that the LAST document's end is FM_POS_END: a row
 * standing past the last key (Sq > Sk) belongs to the last document. */
typedef struct fm_doc_table {
    int64_t n;
    int64_t *start; /* [n] */
    int64_t *end;   /* [n] */
    int64_t *of;    /* [Sk] document of each key */
} fm_doc_table;

fm_status fm_doc_table_init(fm_doc_table *t, const int64_t *lens, int64_t n, int64_t seqlen_k);
void fm_doc_table_free(fm_doc_table *t);

/* Checks p against the problem (every field its family reads); the message names the field,
 * its index and its value. */
fm_status fm_mask_params_validate(const fm_mask_params *p, int64_t seqlen_q, int64_t seqlen_k);

/* The common start of fm_mask_params_default and fm_mask_params_random (masks/params.c):
 * zeroes p, sets its family, then checks f and seqlen; `what` names the caller in messages. */
fm_status fm_mask_params_begin(fm_mask_params *p, fm_family f, int64_t seqlen, const char *what);

/* ---------------------------------------------------------------- the family table */

/* One row per family (masks/families.c): everything the library knows about it. Adding a
 * family = its enum value (masks.h), its row, its builder (and, where no existing one fits, its
 * defaults / random / validate functions beside the builder), and its docs. */
/* The functions a family row names (masks/families.c): its documented defaults, a random draw
 * for property tests, the checks of its parameters (messages start with `family`), and the
 * builder of its mask (parameters validated). */
typedef fm_status fm_defaults_fn(fm_mask_params *p, int64_t seqlen);
typedef fm_status fm_random_fn(fm_mask_params *p, int64_t seqlen, fm_rng *rng);
typedef fm_status fm_validate_fn(const char *family, const fm_mask_params *p, int64_t seqlen_k);
typedef fm_status fm_build_fn(const fm_build_ctx *c);

typedef struct fm_family_row {
    const char *name;
    int causal;                  /* docs/spec.md §4's "causal" column */
    const char *help;            /* its parameters, one line (`flashmask masks`) */
    const fm_param_field *fields; /* the parameters it reads: JSON and CLI names, struct fields */
    int n_fields;
    fm_defaults_fn *defaults;
    fm_random_fn *random;
    fm_validate_fn *validate;
    fm_build_fn *build;
} fm_family_row;

/* Defaults (masks/params.c), random draws (masks/params_random.c) and checks
 * (masks/params_validate.c) that the rows share; _none: a family without parameters. */
fm_defaults_fn fm_defaults_none, fm_defaults_sliding_window, fm_defaults_docs,
    fm_defaults_prefix_lm_document, fm_defaults_shared_question,
    fm_defaults_global_sliding_window, fm_defaults_prefix_lm_causal, fm_defaults_qk_sparse,
    fm_defaults_random_eviction;
fm_random_fn fm_random_none, fm_random_sliding_window, fm_random_docs,
    fm_random_prefix_lm_document, fm_random_shared_question, fm_random_global_sliding_window,
    fm_random_prefix_lm_causal, fm_random_qk_sparse, fm_random_random_eviction;
fm_validate_fn fm_validate_none, fm_validate_sliding_window, fm_validate_docs,
    fm_validate_prefix_lm_document, fm_validate_shared_question,
    fm_validate_global_sliding_window, fm_validate_prefix_lm_causal, fm_validate_qk_sparse,
    fm_validate_random_eviction;

/* The builders, one per family (masks/builders*.c). */
fm_build_fn fm_build_full, fm_build_causal, fm_build_sliding_window,
    fm_build_global_sliding_window, fm_build_prefix_lm_causal, fm_build_causal_document,
    fm_build_document, fm_build_causal_blockwise, fm_build_prefix_lm_document,
    fm_build_shared_question, fm_build_qk_sparse, fm_build_random_eviction;

#endif
