/* tests/families/semantics.h — the mask families of docs/spec.md §4 written a second time, as plain
 * "may row i attend to key j?" predicates, without any row-bound vectors. The families suite
 * checks that the builders' column-wise masks (masks/builders*.c) agree with them element by
 * element. Keep these definitions independent of masks/: they restate the *meaning* of each
 * family (FlashMask paper Fig. 1, Paddle's generators, attention-gym's mask_mods).
 *
 * Positions: row i stands at key position x = i + off, off = Sk - Sq for a causal family under
 * bottom_right and 0 otherwise (flashmask/masks.h, fm_mask_build). A row standing past the last
 * key (x >= Sk) belongs to the last document/segment.
 */
#ifndef FM_TEST_FAMILY_SEMANTICS_H
#define FM_TEST_FAMILY_SEMANTICS_H

#include "flashmask.h"

/* The parameters with two lookup tables filled by naive scans: the document (segment) and the
 * qk_sparse span of every key position, so that a check over S*S pairs stays fast. */
typedef struct fm_sem {
    const fm_mask_params *p;
    int64_t seqlen_k;
    int64_t *doc_of;  /* [Sk] document/segment of each key, or NULL if the family has none */
    int64_t *span_of; /* [Sk] qk_sparse span holding each key or -1, or NULL */
} fm_sem;

int fm_sem_init(fm_sem *s, const fm_mask_params *p, int64_t seqlen_k); /* 0 on success */
void fm_sem_free(fm_sem *s);

/* 1 if position x may attend to key j under the family's definition. Not defined for
 * random_eviction (checked by its properties instead, see test_families.c): -1. */
int fm_sem_allowed(const fm_sem *s, int64_t x, int64_t j);

/* The key position of row i (see above). */
int64_t fm_sem_position(const fm_mask_params *p, fm_causal alignment, int64_t seqlen_q,
                        int64_t seqlen_k, int64_t i);

#endif
