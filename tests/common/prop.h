/* tests/common/prop.h — the property-based testing layer every cmocka suite shares: seeded
 * random problems (shapes including length 1 and odd lengths, GQA ratios, mask heads, every
 * mask family with random parameters, random interval vectors, fully masked rows, Sq != Sk with
 * both alignments), trial count and seed from the environment, and a runner that prints the
 * seed and case of a failure and shrinks it toward a smaller case.
 *
 * Environment: FM_SEED (base seed, default fixed), FM_TRIALS (trials per property, overrides the
 * suite's default), FM_VERBOSE=1 (print every case).
 * FM_LIMITS=batch,q_heads,seqlen,head_dim[,unequal[,families_only]] replaces the suite's limits.
 * Replay one case: FM_SEED=<printed case seed> FM_TRIALS=1 ./test_x (a shrunk case also needs
 * the FM_LIMITS=... that the failure report prints, since it was drawn under smaller limits).
 *
 * Meson: suites link the harness with  dependencies: [fm_prop_dep]  (tests/common/meson.build).
 */
#ifndef FM_TEST_PROP_H
#define FM_TEST_PROP_H

#include <stdio.h>

#include "flashmask.h"

/* How a random case's mask is made. */
typedef enum fm_case_mask_kind {
    FM_CASE_FAMILY = 0,   /* one of the 12 builders with random parameters */
    FM_CASE_RANDOM_BOUNDS /* random interval vectors (incl. empty and fully masked columns) */
} fm_case_mask_kind;

/* Limits the generator draws within; fm_case_limits_default gives small, fast ones. */
typedef struct fm_case_limits {
    int64_t max_batch, max_q_heads, max_seqlen, max_head_dim;
    int allow_unequal_seqlens; /* Sq != Sk */
    int families_only;         /* never random bounds */
} fm_case_limits;

fm_case_limits fm_case_limits_default(void);

typedef struct fm_random_case {
    uint64_t seed;              /* replays this case exactly */
    fm_problem problem;
    fm_mask mask;
    fm_case_mask_kind kind;
    fm_mask_params params;      /* when kind == FM_CASE_FAMILY */
    double *q, *k, *v, *dout;   /* standard normal inputs, float64 */
} fm_random_case;

/* Draws a case from `seed` within `limits`; deterministic in (seed, limits). */
fm_status fm_random_case_make(fm_random_case *c, uint64_t seed, const fm_case_limits *limits);
void fm_random_case_free(fm_random_case *c);
/* Prints seed, shape, family and parameters, and the vectors when small. */
void fm_random_case_print(const fm_random_case *c, FILE *out);

uint64_t fm_test_seed(void);                 /* FM_SEED or a fixed default */
int fm_test_trials(int default_trials);      /* FM_TRIALS or default_trials */
/* FM_LIMITS (the replay line fm_check_property prints) applied over `l`; for diagnostics
 * that replay a failing case by hand. */
void fm_case_limits_apply_env(fm_case_limits *l);

/* A property returns 1 when it holds; on failure it writes why into msg. */
typedef int (*fm_property_fn)(const fm_random_case *c, void *ctx, char *msg, size_t msg_len);

/* Runs `prop` on fm_test_trials(default_trials) cases drawn from seeds derived from
 * fm_test_seed(). On the first failure it shrinks (smaller limits, same derived seed stream)
 * to the smallest failing case it finds, prints that case, its seed and the message, and fails
 * the cmocka test. Returns the number of trials run. */
int fm_check_property(const char *name, fm_property_fn prop, void *ctx, int default_trials,
                      const fm_case_limits *limits);

/* One property test of a suite, as a table entry: fm_property_unit_test(t) is the cmocka test
 * that runs fm_check_property(t.name, t.prop, t.ctx, t.trials, limits), the limits being
 * fm_case_limits_default() with each max_* below that is > 0 in place of the default's and
 * families_only set when it is (skipped first without a GPU where needs_gpu is set). The cmocka
 * test is named after the property. */
typedef struct fm_property_test {
    const char *name;
    fm_property_fn prop;
    void *ctx;
    int trials;
    int64_t max_batch, max_q_heads, max_seqlen, max_head_dim;
    int families_only;
    int needs_gpu; /* 1: a cmocka skip where fm_cuda_available() says no */
} fm_property_test;

void fm_property_test_run(void **state); /* *state: the fm_property_test */
#define fm_property_unit_test(t) {(t).name, fm_property_test_run, NULL, NULL, &(t)}

/* A malloc'd copy of x[n] with every value rounded to dtype (fm_round_to_dtype): the inputs
 * as a candidate computing in dtype sees them. NULL when out of memory. */
double *fm_rounded_copy(const double *x, size_t n, fm_dtype dtype);

/* Dense-comparison helpers for properties. */
double fm_max_abs_diff(const double *a, const double *b, size_t n);
double fm_max_abs(const double *a, size_t n);

#endif
