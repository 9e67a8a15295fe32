/* tests/oracle/test_rule_power.c — the derived pass rule (oracle/bound.c) is sound and strict:
 *   - correct implementations pass it on random problems (seeded: FM_SEED, FM_TRIALS): the
 *     float64 reference rounded to X, the "ideal16" result whose backward reads O rounded to X
 *     (the float16 false alarms of the FA rule on tiny problems), and the FlashAttention-order
 *     emulation of bench/oracle_emul.c in float16, bfloat16 and float32;
 *   - every planted bug kind of oracle_emul.h is caught on fixed problems of >= 64 rows where it
 *     changes the result;
 *   - fm_oracle_bounds refuses bad input.
 * Layer: tests of oracle/ (with bench/oracle_emul.c as the candidate kernel).
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "flashmask/oracle.h"
#include "flashmask/reference.h"
#include "oracle_emul.h"
#include "prop.h"

static const fm_dtype dtypes[3] = {FM_FLOAT16, FM_BFLOAT16, FM_FLOAT32};

typedef struct bundle {
    double *in[4];  /* q k v dout, rounded to X */
    double *ref[5]; /* out lse dq dk dv */
    double *c[5];   /* a candidate */
    size_t n[5];
} bundle;

static void bundle_free(bundle *b)
{
    for (int t = 0; t < 4; t++) free(b->in[t]);
    for (int t = 0; t < 5; t++) free(b->ref[t]), free(b->c[t]);
    memset(b, 0, sizeof *b);
}

static fm_status bundle_make(bundle *b, const fm_random_case *c, const fm_problem *p, fm_dtype x)
{
    memset(b, 0, sizeof *b);
    const size_t nq = fm_problem_q_elems(p), nkv = fm_problem_kv_elems(p);
    const size_t n[5] = {nq, fm_problem_lse_elems(p), nq, nkv, nkv};
    const double *src[4] = {c->q, c->k, c->v, c->dout};
    const size_t ns[4] = {nq, nkv, nkv, nq};
    for (int t = 0; t < 4; t++) b->in[t] = fm_rounded_copy(src[t], ns[t], x);
    for (int t = 0; t < 5; t++) {
        b->n[t] = n[t];
        b->ref[t] = malloc(n[t] * sizeof(double));
        b->c[t] = malloc(n[t] * sizeof(double));
    }
    fm_status st = fm_ref_forward(p, &c->mask, b->in[0], b->in[1], b->in[2], b->ref[0], b->ref[1]);
    if (st == FM_OK)
        st = fm_ref_backward(p, &c->mask, b->in[0], b->in[1], b->in[2], b->ref[0], b->ref[1],
                             b->in[3], b->ref[2], b->ref[3], b->ref[4]);
    return st;
}

/* The verdict of fm_check_case (reference given) on b->c under `rule`; -1 on error. */
static int verdict(const bundle *b, const fm_random_case *c, const fm_problem *p, fm_dtype x,
                   int rule, char *msg, size_t len)
{
    fm_tensors ref = {.q = b->in[0], .k = b->in[1], .v = b->in[2], .dout = b->in[3],
                      .out = b->ref[0], .lse = b->ref[1], .dq = b->ref[2], .dk = b->ref[3],
                      .dv = b->ref[4]};
    fm_tensors cand = {.out = b->c[0], .lse = b->c[1], .dq = b->c[2], .dk = b->c[3],
                       .dv = b->c[4]};
    fm_check_options opt = fm_check_options_default(x);
    opt.rule = rule;
    fm_check_report rep;
    if (fm_check_case(p, &c->mask, &ref, &cand, &opt, &rep) != FM_OK) {
        snprintf(msg, len, "check: %s", fm_last_error());
        return -1;
    }
    for (int t = 0; t < rep.n_tensors && msg; t++)
        if (!rep.tensor[t].pass) {
            snprintf(msg, len, "%s %s: %s", fm_dtype_name(x), rep.tensor[t].name,
                     rep.tensor[t].why);
            break;
        }
    return rep.pass;
}

/* ---------------------------------------------------------------- soundness */

static int prop_correct_pass(const fm_random_case *c, void *ctx, char *msg, size_t len)
{
    (void)ctx;
    fm_problem p = c->problem;
    p.dtype = FM_FLOAT64;
    int ok = 1;
    for (int di = 0; di < 3 && ok; di++) {
        const fm_dtype x = dtypes[di];
        bundle b;
        if (bundle_make(&b, c, &p, x) != FM_OK) {
            snprintf(msg, len, "reference: %s", fm_last_error());
            bundle_free(&b);
            return 0;
        }
        /* 1. exact: the reference rounded once (lse to float32) */
        for (int t = 0; t < 5; t++)
            for (size_t i = 0; i < b.n[t]; i++)
                b.c[t][i] = t == 1 ? (double)(float)b.ref[t][i] : fm_round_to_dtype(b.ref[t][i], x);
        ok = verdict(&b, c, &p, x, FM_RULE_DERIVED, msg, len) == 1;
        /* 2. ideal16: the backward's Delta from O rounded to X */
        if (ok && fm_ref_backward(&p, &c->mask, b.in[0], b.in[1], b.in[2], b.c[0], b.ref[1],
                                  b.in[3], b.c[2], b.c[3], b.c[4]) == FM_OK) {
            for (int t = 2; t < 5; t++) fm_oracle_round_array(b.c[t], b.n[t], x);
            ok = verdict(&b, c, &p, x, FM_RULE_DERIVED, msg, len) == 1;
        }
        /* 3. the FlashAttention-order emulation in X */
        if (ok && emul_run(&p, &c->mask, x, BUG_NONE, b.in[0], b.in[1], b.in[2], b.in[3],
                           b.c[0], b.c[1], b.c[2], b.c[3], b.c[4]) == FM_OK)
            ok = verdict(&b, c, &p, x, FM_RULE_DERIVED, msg, len) == 1;
        bundle_free(&b);
    }
    return ok;
}

static void test_correct_candidates_pass(void **state)
{
    (void)state;
    fm_case_limits l = fm_case_limits_default();
    l.max_seqlen = 12, l.max_head_dim = 64; /* small: where the FA rule raised its alarms */
    fm_check_property("correct candidates pass the derived rule (small)", prop_correct_pass, NULL,
                      150, &l);
    l.max_seqlen = 100, l.max_head_dim = 128, l.max_batch = 1;
    fm_check_property("correct candidates pass the derived rule (medium)", prop_correct_pass,
                      NULL, 20, &l);
}

/* ---------------------------------------------------------------- power */

/* Every bug kind, on problems of 64 to 160 rows drawn from fixed seeds: caught by the derived
 * rule on every problem where the bug changes the result (the first 4 such problems). */
static void test_every_bug_caught(void **state)
{
    (void)state;
    fm_case_limits l = fm_case_limits_default();
    l.max_batch = 1, l.max_q_heads = 4, l.max_seqlen = 160, l.max_head_dim = 32;
    for (int bug = 1; bug < BUG_COUNT; bug++) {
        int effective = 0, tried = 0;
        for (uint64_t seed = 1000; effective < 4 && tried < 400; seed++) {
            fm_random_case c;
            assert_int_equal(fm_random_case_make(&c, seed * 7919u + (uint64_t)bug, &l), FM_OK);
            if (c.problem.seqlen_q < 64) {
                fm_random_case_free(&c);
                continue;
            }
            tried++;
            fm_problem p = c.problem;
            p.dtype = FM_FLOAT64;
            const fm_dtype x = dtypes[seed % 3];
            bundle b, good;
            assert_int_equal(bundle_make(&b, &c, &p, x), FM_OK);
            assert_int_equal(bundle_make(&good, &c, &p, x), FM_OK);
            assert_int_equal(emul_run(&p, &c.mask, x, BUG_NONE, good.in[0], good.in[1],
                                      good.in[2], good.in[3], good.c[0], good.c[1], good.c[2],
                                      good.c[3], good.c[4]), FM_OK);
            assert_int_equal(emul_run(&p, &c.mask, x, (emul_bug)bug, b.in[0], b.in[1], b.in[2],
                                      b.in[3], b.c[0], b.c[1], b.c[2], b.c[3], b.c[4]), FM_OK);
            int differs = 0;
            for (int t = 0; t < 5 && !differs; t++)
                for (size_t i = 0; i < b.n[t] && !differs; i++)
                    differs = !(b.c[t][i] == good.c[t][i]) &&
                              !(isnan(b.c[t][i]) && isnan(good.c[t][i]));
            if (differs) {
                effective++;
                char msg[512] = "";
                const int v = verdict(&b, &c, &p, x, FM_RULE_DERIVED, msg, sizeof msg);
                if (v != 0)
                    fail_msg("bug %s not caught (verdict %d) on seed %llu: Sq=%lld Sk=%lld "
                             "D=%lld %s", emul_bug_name((emul_bug)bug), v,
                             (unsigned long long)c.seed, (long long)c.problem.seqlen_q,
                             (long long)c.problem.seqlen_k, (long long)c.problem.head_dim,
                             fm_dtype_name(x));
            }
            bundle_free(&b), bundle_free(&good);
            fm_random_case_free(&c);
        }
        if (effective == 0)
            fail_msg("bug %s changed no result on %d problems: the test cannot see it",
                     emul_bug_name((emul_bug)bug), tried);
    }
}

/* ---------------------------------------------------------------- bad input */

static void test_bounds_refuse_bad_input(void **state)
{
    (void)state;
    fm_random_case c;
    fm_case_limits l = fm_case_limits_default();
    assert_int_equal(fm_random_case_make(&c, 42, &l), FM_OK);
    fm_problem p = c.problem;
    double x[1];
    fm_tensors t = {0};
    assert_int_equal(fm_oracle_bounds(&p, &c.mask, FM_FLOAT16, &t, x, x, NULL, NULL, NULL),
                     FM_ERR_INVALID); /* NULL tensors */
    assert_int_equal(fm_oracle_bounds(&p, &c.mask, FM_FLOAT64, &t, x, x, NULL, NULL, NULL),
                     FM_ERR_INVALID); /* float64 is not a candidate precision */
    fm_check_rule r;
    assert_int_equal(fm_check_rule_from_name("fa", &r), FM_OK);
    assert_int_equal(r, FM_RULE_FA);
    assert_int_equal(fm_check_rule_from_name("derived", &r), FM_OK);
    assert_int_equal(r, FM_RULE_DERIVED);
    assert_int_equal(fm_check_rule_from_name("loose", &r), FM_ERR_INVALID);
    fm_random_case_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_correct_candidates_pass),
        cmocka_unit_test(test_every_bug_caught),
        cmocka_unit_test(test_bounds_refuse_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
