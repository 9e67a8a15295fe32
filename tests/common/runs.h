/* tests/common/runs.h — helpers for suites that run an implementation on a problem and judge
 * or compare what it wrote: the GPU skip, float64 output buffers, inputs rounded to a dtype,
 * the oracle's verdict as a one-line message, and the "masked key block" fixture of the
 * tile-skipping tests (NaN where no row looks must change nothing).
 * Layer: tests (uses oracle/, masks/, core/); linked into every suite with fm_prop_dep.
 */
#ifndef FM_TEST_RUNS_H
#define FM_TEST_RUNS_H

#include <stddef.h>
#include <stdint.h>

#include "flashmask.h"
#include "flashmask/oracle.h"

/* fm_problem_init's problem, by value. */
fm_problem fm_test_problem(int64_t batch, int64_t q_heads, int64_t kv_heads, int64_t seqlen_q,
                           int64_t seqlen_k, int64_t head_dim);
/* fm_mask_init's mask (no intervals: only the causal rule masks), by value; asserted made. */
fm_mask fm_test_mask(int64_t batch, int64_t heads, int64_t seqlen_q, int64_t seqlen_k,
                     fm_causal causal);

/* cmocka skip (with fm_last_error() printed) where fm_cuda_available() says no. */
void fm_test_skip_without_gpu(void);

/* The exit status of a suite whose tests skip without a GPU, from the count of failed tests:
 * 77 (meson's SKIP) when nothing failed and fm_cuda_available() says no, else `failed`. */
int fm_test_gpu_suite_exit(int failed);

/* x[0..n) standard normal from rng, in order. */
void fm_test_fill_normal(double *x, size_t n, fm_rng *rng);
/* A malloc'd array of n standard normal values from rng (asserted allocated). */
double *fm_test_normal(size_t n, fm_rng *rng);

/* out, lse, dq, dk, dv of t sized for p, zeroed (asserted allocated); the inputs untouched. */
void fm_test_outputs_alloc(fm_tensors *t, const fm_problem *p);
void fm_test_outputs_free(fm_tensors *t);

/* t's q, k, v, dout: malloc'd copies of the given tensors (sizes from p) rounded to dtype
 * (fm_rounded_copy). Returns 1, or 0 when out of memory (what was made is freed). */
int fm_test_inputs_rounded(fm_tensors *t, const fm_problem *p, const double *q, const double *k,
                           const double *v, const double *dout, fm_dtype dtype);
void fm_test_inputs_free(fm_tensors *t);

/* Judges `got` against the oracle (fm_check_case with opt). Returns 1 on pass; 0 when a tensor
 * fails, with msg "<what> <tensor>: max|err| E > bound B (naive N): <why>" (the last failing
 * tensor; FM_VERBOSE=1 prints the whole report); -1 when the oracle itself refuses, with msg
 * "oracle error: <why>". */
int fm_test_judge(const fm_problem *p, const fm_mask *m, const fm_tensors *in,
                  const fm_tensors *got, const fm_check_options *opt, const char *what,
                  char *msg, size_t len);

/* Runs `run` (a forward and backward writing t's outputs) twice on the same inputs and asserts
 * the same bits in dq, dk, dv, and in out too where compare_out is set. */
typedef void (*fm_test_run_fn)(const fm_problem *p, const fm_mask *m, fm_tensors *t);
void fm_test_assert_repeatable(fm_test_run_fn run, const fm_problem *p, const fm_mask *m,
                               const fm_tensors *in, int compare_out);

/* The masked-key-block fixture: 1 batch, 2 query heads on 1 kv head, S x S, head_dim D, dtype,
 * causal top-left, key block 1 (keys 64..127) masked for every row (LT = [0, S)); q, k, v, dout
 * standard normal from `seed` (q and dout drawn in turns, then k and v in turns). */
typedef struct fm_test_masked_block {
    fm_problem p;
    fm_mask m;
    double *q, *k, *v, *dout;
} fm_test_masked_block;

#define FM_TEST_MASKED_KEY0 64  /* the masked key block: keys [64, 128) */
#define FM_TEST_MASKED_KEY1 128

void fm_test_masked_block_make(fm_test_masked_block *f, int64_t S, int64_t D, fm_dtype dtype,
                               uint64_t seed);
/* K and V rows of the masked key block set to `value` (0 for the clean run, NAN poisoned). */
void fm_test_masked_block_fill(fm_test_masked_block *f, double value);
/* out and dq bit for bit equal; dk and dv too outside the masked keys (theirs not compared). */
void fm_test_masked_block_assert_same(const fm_test_masked_block *f, const fm_tensors *a,
                                      const fm_tensors *b);
void fm_test_masked_block_free(fm_test_masked_block *f);

#endif
