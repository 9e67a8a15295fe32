/* tests/oracle/rule_statistics.c — a diagnostic, not a test: how often does an *ideal* 16-bit
 * implementation fail the oracle's rule (docs/spec.md §5)? On random cases drawn like test_cuda's, two
 * candidates are judged with fm_check_case:
 *   exact:   every output the float64 reference's, rounded once to the dtype (LSE: to float32);
 *   ideal16: the same, except that the backward takes Delta = dO . O from O rounded to the
 *            dtype — the one rounding no implementation avoids, since the forward stores O in
 *            the dtype and the backward reads it back (fm_ref_backward on round(O_ref), every
 *            other step in float64).
 * The exact candidate must always pass (the bound's atol covers one rounding). The ideal16
 * candidate's failures are the rule's own statistics on small problems: the naive computation
 * that sets the bound rounds O too, and on a one- or two-row problem its error is one draw.
 * The numbers are in docs/performance-cuda.md.
 *   usage: rule_statistics [TRIALS (200)] [SEED] [0|1: float16|bfloat16 (1)]
 * FM_LIMITS as elsewhere (default: test_cuda's random limits, 2,4,300,256).
 * Layer: tests of oracle/ (uses reference/, the prop.h case generator).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flashmask/oracle.h"
#include "flashmask/reference.h"
#include "prop.h"
#include "runs.h"

/* Judges the candidate whose backward read `out_for_delta`; 1 pass, 0 fail, -1 error. The
 * failing tensors are counted in fails[]. */
static int judge(const fm_random_case *c, const fm_problem *p, const fm_tensors *in,
                 const fm_tensors *ref, const double *out_for_delta, int fails[FM_CHECK_TENSORS])
{
    const size_t nq = fm_problem_q_elems(p), nkv = fm_problem_kv_elems(p);
    const size_t nl = fm_problem_lse_elems(p);
    fm_problem p64 = *p;
    p64.dtype = FM_FLOAT64;
    fm_tensors cand = *in;
    cand.out = fm_rounded_copy(ref->out, nq, p->dtype);
    cand.lse = malloc(nl * sizeof(double));
    cand.dq = malloc(nq * sizeof(double)), cand.dk = malloc(nkv * sizeof(double));
    cand.dv = malloc(nkv * sizeof(double));
    int verdict = -1;
    if (cand.out && cand.lse && cand.dq && cand.dk && cand.dv &&
        fm_ref_backward(&p64, &c->mask, in->q, in->k, in->v, out_for_delta, ref->lse, in->dout,
                        cand.dq, cand.dk, cand.dv) == FM_OK) {
        for (size_t i = 0; i < nl; i++) cand.lse[i] = (double)(float)ref->lse[i];
        fm_oracle_round_array(cand.dq, nq, p->dtype);
        fm_oracle_round_array(cand.dk, nkv, p->dtype);
        fm_oracle_round_array(cand.dv, nkv, p->dtype);
        fm_check_options opt = fm_check_options_default(p->dtype);
        fm_check_report rep;
        if (fm_check_case(p, &c->mask, ref, &cand, &opt, &rep) == FM_OK) {
            verdict = rep.pass;
            for (int i = 0; i < rep.n_tensors; i++) fails[i] += !rep.tensor[i].pass;
        }
    }
    if (verdict < 0) fprintf(stderr, "case %llu: %s\n", (unsigned long long)c->seed, fm_last_error());
    free(cand.out), free(cand.lse), free(cand.dq), free(cand.dk), free(cand.dv);
    return verdict;
}

int main(int argc, char **argv)
{
    const int trials = argc > 1 ? atoi(argv[1]) : 200;
    const uint64_t base = argc > 2 ? strtoull(argv[2], NULL, 0) : 1001;
    const fm_dtype dtype = argc > 3 && !atoi(argv[3]) ? FM_FLOAT16 : FM_BFLOAT16;
    fm_case_limits l = fm_case_limits_default();
    l.max_batch = 2, l.max_q_heads = 4, l.max_seqlen = 300, l.max_head_dim = 256;
    fm_case_limits_apply_env(&l);
    int fails[2][FM_CHECK_TENSORS] = {{0}}, failed[2] = {0, 0}, judged = 0;
    for (int t = 0; t < trials; t++) {
        fm_random_case c;
        if (fm_random_case_make(&c, base + (uint64_t)t * 0x9e3779b97f4a7c15ull, &l) != FM_OK) {
            fprintf(stderr, "case: %s\n", fm_last_error());
            return 1;
        }
        fm_problem p = c.problem;
        p.dtype = dtype;
        const size_t nq = fm_problem_q_elems(&p);
        fm_problem p64 = p;
        p64.dtype = FM_FLOAT64;
        fm_tensors in = {0};
        if (!fm_test_inputs_rounded(&in, &p, c.q, c.k, c.v, c.dout, dtype)) {
            fprintf(stderr, "out of memory\n");
            return 1;
        }
        fm_tensors ref = in;
        fm_test_outputs_alloc(&ref, &p);
        double *o16 = NULL;
        if (fm_forward(FM_IMPL_REFERENCE, &p64, &c.mask, &ref) == FM_OK &&
            fm_backward(FM_IMPL_REFERENCE, &p64, &c.mask, &ref) == FM_OK &&
            (o16 = fm_rounded_copy(ref.out, nq, dtype)) != NULL) {
            const int exact = judge(&c, &p, &in, &ref, ref.out, fails[0]);
            const int ideal = judge(&c, &p, &in, &ref, o16, fails[1]);
            if (exact >= 0 && ideal >= 0) {
                judged++;
                failed[0] += !exact, failed[1] += !ideal;
                if (!ideal) {
                    printf("ideal16 fails: ");
                    fm_random_case_print(&c, stdout);
                }
            }
        }
        free(o16);
        fm_test_inputs_free(&in);
        fm_test_outputs_free(&ref);
        fm_random_case_free(&c);
    }
    printf("%s, %d cases (base seed %llu, limits %lld,%lld,%lld,%lld):\n", fm_dtype_name(dtype),
           judged, (unsigned long long)base, (long long)l.max_batch, (long long)l.max_q_heads,
           (long long)l.max_seqlen, (long long)l.max_head_dim);
    static const char *what[2] = {"exact (reference rounded once)",
                                  "ideal16 (Delta from O rounded)"};
    for (int k = 0; k < 2; k++) {
        printf("  %-32s fails %d", what[k], failed[k]);
        for (int i = 0; i < FM_CHECK_TENSORS; i++)
            printf("  %s %d", fm_check_tensor_name(i), fails[k][i]);
        printf("\n");
    }
    return failed[0] ? 1 : 0; /* the exact candidate failing would be an oracle bug */
}
