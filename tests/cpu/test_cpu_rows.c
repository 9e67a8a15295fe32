/* tests/cpu/test_cpu_rows.c — the CPU layer's run-time-chosen row kernels (cpu/row_kernels.h):
 * every variant this processor supports (AVX-512, AVX2, portable) against the portable one and
 * against float64 arithmetic, on seeded random tiles with masked (-inf) scores, fully masked
 * rows and running states that are empty, behind and ahead of the new scores.
 *   - elementwise results (probabilities, rescaled accumulators, dS, the backward's P) are
 *     bit-for-bit the portable variant's: same operations, same order, no contraction;
 *   - running maxima are exact; running sums within 2^-20 relative of the portable one's (only
 *     the order of additions differs) and of a float64 sum;
 *   - the portable probabilities within exp_fast.h's bound (2e-7 relative) of float64 exp2 of
 *     the float difference s - m the kernels form.
 * Layer: tests, on private headers of cpu/.
 */
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "row_kernels.h"

#define ROWS 37  /* odd sizes: vector remainders at both ends */
#define COLS 509
#define LD 520
#define D 131

/* A small seeded generator (splitmix64): reproducible tiles without the library's RNG. */
static uint64_t rng_state;
static uint64_t next_u64(void)
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static float uniform(float lo, float hi)
{
    return lo + (hi - lo) * (float)((double)(next_u64() >> 11) * 0x1.0p-53);
}

typedef struct tile {
    float s[ROWS * LD], m[ROWS], l[ROWS], o[ROWS * D], lse[ROWS], delta[ROWS], p[ROWS * LD];
} tile;

/* Scores in base 2 over a spread wide enough to reach exp_fast.h's underflow, ~10% masked,
 * row 3 fully masked; running states: row % 4 == 0 empty (m = -inf), 1 behind the scores,
 * 2 ahead of them, 3 fully masked so far. */
static void fill(tile *t, uint64_t seed)
{
    rng_state = seed;
    for (int i = 0; i < ROWS; i++) {
        for (int j = 0; j < LD; j++) {
            float x = uniform(-150.0f, 30.0f);
            t->s[i * LD + j] = (next_u64() % 10 == 0 || i == 3) ? -INFINITY : x;
            t->p[i * LD + j] = uniform(0.0f, 1.0f);
        }
        switch (i % 4) {
        case 0: t->m[i] = -INFINITY, t->l[i] = 0.0f; break;
        case 1: t->m[i] = uniform(-20.0f, 0.0f), t->l[i] = uniform(1.0f, 100.0f); break;
        case 2: t->m[i] = uniform(40.0f, 60.0f), t->l[i] = uniform(1.0f, 100.0f); break;
        default: t->m[i] = -INFINITY, t->l[i] = 0.0f; break;
        }
        for (int d = 0; d < D; d++) t->o[i * D + d] = t->l[i] > 0 ? uniform(-5.0f, 5.0f) : 0.0f;
        t->lse[i] = i % 5 == 4 ? -INFINITY : uniform(-10.0f, 40.0f);
        t->delta[i] = uniform(-2.0f, 2.0f);
    }
}

static const char *const names[] = {"avx512", "avx2", "portable"};

static void test_chosen_variant_is_supported(void **state)
{
    (void)state;
    const fm_row_kernels *k = fm_row_kernels_get();
    assert_non_null(k);
    assert_ptr_equal(fm_row_kernels_variant(k->name), k);
    assert_non_null(fm_row_kernels_variant("portable"));
    assert_null(fm_row_kernels_variant("sse9"));
    printf("row kernels chosen here: %s (supported:", k->name);
    for (size_t v = 0; v < 3; v++)
        if (fm_row_kernels_variant(names[v])) printf(" %s", names[v]);
    printf(")\n");
}

static void test_softmax_tile_matches_portable(void **state)
{
    (void)state;
    const fm_row_kernels *ref = fm_row_kernels_variant("portable");
    static tile a, b, base;
    for (uint64_t seed = 1; seed <= 20; seed++) {
        fill(&base, seed);
        for (size_t v = 0; v < 3; v++) {
            const fm_row_kernels *k = fm_row_kernels_variant(names[v]);
            if (!k) continue;
            a = base, b = base;
            const int cols = seed % 2 ? COLS : 128; /* a run and one tile */
            ref->softmax_tile(a.s, LD, ROWS, cols, a.m, a.l, a.o, D);
            k->softmax_tile(b.s, LD, ROWS, cols, b.m, b.l, b.o, D);
            assert_memory_equal(a.s, b.s, sizeof a.s);
            assert_memory_equal(a.m, b.m, sizeof a.m);
            assert_memory_equal(a.o, b.o, sizeof a.o);
            for (int i = 0; i < ROWS; i++) {
                if (a.l[i] == 0.0f) {
                    assert_true(b.l[i] == 0.0f);
                    continue;
                }
                assert_true(fabs((double)b.l[i] - a.l[i]) <= 0x1.0p-20 * a.l[i]);
            }
        }
    }
}

/* The portable path against float64: p = 2^(s - m_new), l = l_old 2^(m_old - m_new) + sum p. */
static void test_softmax_tile_against_float64(void **state)
{
    (void)state;
    const fm_row_kernels *k = fm_row_kernels_variant("portable");
    static tile t, base;
    for (uint64_t seed = 100; seed < 110; seed++) {
        fill(&base, seed);
        t = base;
        k->softmax_tile(t.s, LD, ROWS, COLS, t.m, t.l, t.o, D);
        for (int i = 0; i < ROWS; i++) {
            double mx = base.m[i];
            for (int j = 0; j < COLS; j++) mx = fmax(mx, base.s[i * LD + j]);
            if (mx == -INFINITY) { /* nothing allowed yet: p = 0, state unchanged */
                for (int j = 0; j < COLS; j++) assert_true(t.s[i * LD + j] == 0.0f);
                assert_true(t.m[i] == -INFINITY && t.l[i] == 0.0f);
                continue;
            }
            assert_true(t.m[i] == (float)mx);
            double sum = base.m[i] == -INFINITY ? 0.0 : base.l[i] * exp2(base.m[i] - mx);
            for (int j = 0; j < COLS; j++) {
                /* the difference is taken in float, as the kernel takes it; the bound is exp's */
                double want = exp2((double)(base.s[i * LD + j] - (float)mx));
                double got = t.s[i * LD + j];
                if (want < 0x1.0p-126) assert_true(got <= 0x1.0p-125); /* underflow to 0 */
                else assert_true(fabs(got - want) <= 2e-7 * want);
                sum += got;
            }
            assert_true(fabs((double)t.l[i] - sum) <= 0x1.0p-20 * sum);
        }
    }
}

static void test_backward_rows_match_portable(void **state)
{
    (void)state;
    const fm_row_kernels *ref = fm_row_kernels_variant("portable");
    static tile a, b, base;
    for (uint64_t seed = 200; seed < 210; seed++) {
        fill(&base, seed);
        for (size_t v = 0; v < 3; v++) {
            const fm_row_kernels *k = fm_row_kernels_variant(names[v]);
            if (!k) continue;
            a = base, b = base;
            ref->exp2_rows(a.s, LD, ROWS, COLS, a.lse);
            k->exp2_rows(b.s, LD, ROWS, COLS, b.lse);
            assert_memory_equal(a.s, b.s, sizeof a.s);
            ref->softmax_bwd_tile(a.s, a.p, LD, ROWS, COLS, a.delta);
            k->softmax_bwd_tile(b.s, b.p, LD, ROWS, COLS, b.delta);
            assert_memory_equal(a.s, b.s, sizeof a.s);
        }
        /* portable P against float64: 2^(s - lse log2 e), 0 for lse = -inf */
        a = base;
        ref->exp2_rows(a.s, LD, ROWS, COLS, a.lse);
        for (int i = 0; i < ROWS; i++)
            for (int j = 0; j < COLS; j++) {
                double got = a.s[i * LD + j];
                if (base.lse[i] == -INFINITY) {
                    assert_true(got == 0.0);
                    continue;
                }
                double want = exp2((double)(base.s[i * LD + j] -
                                            (float)(base.lse[i] * 1.4426950408889634)));
                if (want < 0x1.0p-126) assert_true(got <= 0x1.0p-125);
                else assert_true(fabs(got - want) <= 2e-7 * want);
            }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chosen_variant_is_supported),
        cmocka_unit_test(test_softmax_tile_matches_portable),
        cmocka_unit_test(test_softmax_tile_against_float64),
        cmocka_unit_test(test_backward_rows_match_portable),
    };
    return cmocka_run_group_tests_name("cpu_rows", tests, NULL, NULL);
}
