/* cpu/row_kernels.h — the row operations of the CPU layer's tiles (online softmax forward, P
 * recomputed from the log-sum-exp and dS = P (dP - Delta) backward), compiled three times —
 * AVX-512, AVX2 + FMA and portable — and chosen at run time by what the processor supports, so a
 * build without -march=native (meson option native_cpu=false) still runs them in wide vectors.
 * Layer: cpu (private header) <- core. The arithmetic is softmax_online.h's and exp_fast.h's;
 * row_kernels.c only instantiates it per instruction set.
 *
 * Every variant computes each element with the same operations in the same order (C11 mode: no
 * floating-point contraction), so probabilities are bit-for-bit those of the portable path; the
 * row sums differ only in the order of their additions (vector lanes). tests/cpu/test_cpu_rows.c
 * checks both.
 */
#ifndef FM_CPU_ROW_KERNELS_H
#define FM_CPU_ROW_KERNELS_H

#include <stdint.h>

typedef struct fm_row_kernels {
    const char *name; /* "avx512", "avx2" or "portable" */
    /* Forward, one key run for `rows` query rows: scores s[i*ld .. i*ld + cols) (base 2) become
     * p, the running max m[i] and sum l[i] are updated and the output accumulator row
     * o[i*D .. i*D + D) is rescaled (softmax_online.h, fm_online_softmax_step). */
    void (*softmax_tile)(float *s, int64_t ld, int64_t rows, int64_t cols, float *m, float *l,
                         float *o, int64_t D);
    /* Backward: s[i*ld + j] = 2^(s - lse2[i]) with lse2[i] = lse[i] * log2(e); a row whose lse
     * is -inf (no allowed key) becomes zeros. */
    void (*exp2_rows)(float *s, int64_t ld, int64_t rows, int64_t cols, const float *lse);
    /* Backward: ds = p * (ds - delta[i]) element-wise. */
    void (*softmax_bwd_tile)(float *ds, const float *p, int64_t ld, int64_t rows, int64_t cols,
                             const float *delta);
} fm_row_kernels;

/* The variant for this processor: the widest one it supports, unless the environment variable
 * fm_cpu_set_isa (flashmask/cpu.h; the tool reads FM_CPU_ISA) may force a supported narrower one (portable, avx2, avx512; for measurements and tests). Chosen
 * once per process. */
const fm_row_kernels *fm_row_kernels_get(void);

/* A named variant, or NULL when this processor (or this build) lacks it. For tests. */
const fm_row_kernels *fm_row_kernels_variant(const char *name);

#endif
