/* tests/cpu/test_cpu_props.c — property tests of the CPU layer against the float64 reference:
 * random problems (GQA, mask heads 1/Hk/Hq, odd lengths, Sq != Sk with both causal
 * alignments, every mask family with random parameters and random interval vectors with fully
 * masked rows and columns), lengths up to 300 so that cases span several 128-wide tiles.
 * Checks: the error bound of cpu_compare.h on O, LSE, dQ, dK, dV; fully masked rows give O = 0,
 * LSE = -inf and zero dQ exactly; the tile counters equal fm_mask_tile_stats times Hq / Hm.
 * Layer: tests, above cpu, reference and the shared harness (tests/common).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "cpu_compare.h"

typedef struct run_buffers {
    float *q, *k, *v, *dout;           /* float32 inputs */
    float *out, *lse, *dq, *dk, *dv;   /* CPU results */
    double *rout, *rlse, *rdq, *rdk, *rdv; /* reference results */
} run_buffers;

static void free_buffers(run_buffers *r)
{
    free(r->q), free(r->k), free(r->v), free(r->dout), free(r->out), free(r->lse);
    free(r->dq), free(r->dk), free(r->dv);
    free(r->rout), free(r->rlse), free(r->rdq), free(r->rdk), free(r->rdv);
}

static int prop_fail(char *msg, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, len, fmt, ap);
    va_end(ap);
    return 0;
}

/* Stats the CPU layer must report: tile stats of the mask, once per query head. */
static int check_stats(const fm_random_case *c, const fm_tile_stats *got, const char *pass,
                       char *msg, size_t len)
{
    fm_tile_stats want;
    if (fm_mask_tile_stats(&c->mask, FM_CPU_BLOCK_Q, FM_CPU_BLOCK_K, &want) != FM_OK)
        return prop_fail(msg, len, "fm_mask_tile_stats failed: %s", fm_last_error());
    const int64_t g = c->problem.q_heads / c->mask.heads;
    if (got->total != g * want.total || got->masked != g * want.masked ||
        got->partial != g * want.partial || got->unmasked != g * want.unmasked)
        return prop_fail(msg, len,
                    "%s stats total/masked/partial/unmasked = %lld/%lld/%lld/%lld, expected "
                    "%lld/%lld/%lld/%lld (mask tile stats x %lld)",
                    pass, (long long)got->total, (long long)got->masked,
                    (long long)got->partial, (long long)got->unmasked,
                    (long long)(g * want.total), (long long)(g * want.masked),
                    (long long)(g * want.partial), (long long)(g * want.unmasked), (long long)g);
    return 1;
}

/* Largest error seen per tensor over every trial (O, LSE, dQ, dK, dV), printed at the end so
 * that docs/algorithm.md can quote the margin under the bound. */
static double worst_seen[5];

/* The oracle's verdict (default rule, float32) on the cpu layer's results r against the
 * reference's; the inputs q, k, v, dout are the float32-rounded ones both ran on. */
static int oracle_passes(const fm_problem *p, const fm_mask *mask, double *q, double *k,
                         double *v, double *dout, const run_buffers *r, char *msg, size_t len)
{
    const size_t nq = fm_problem_q_elems(p), nkv = fm_problem_kv_elems(p);
    const size_t nl = fm_problem_lse_elems(p);
    const size_t n[5] = {nq, nl, nq, nkv, nkv};
    const float *f[5] = {r->out, r->lse, r->dq, r->dk, r->dv};
    double *d[5] = {NULL};
    int ok = 0;
    for (int t = 0; t < 5; t++) {
        if (!(d[t] = malloc(n[t] * sizeof(double)))) {
            prop_fail(msg, len, "out of memory");
            goto out;
        }
        for (size_t e = 0; e < n[t]; e++) d[t][e] = f[t][e];
    }
    {
        fm_tensors ref = {q, k, v, dout, r->rout, r->rlse, r->rdq, r->rdk, r->rdv};
        fm_tensors cand = {q, k, v, dout, d[0], d[1], d[2], d[3], d[4]};
        fm_check_options opt = fm_check_options_default(FM_FLOAT32);
        fm_check_report rep;
        if (fm_check_case(p, mask, &ref, &cand, &opt, &rep) != FM_OK) {
            prop_fail(msg, len, "the oracle refused the case: %s", fm_last_error());
            goto out;
        }
        ok = rep.pass;
        for (int t = 0; t < rep.n_tensors && !ok; t++)
            if (!rep.tensor[t].pass) {
                prop_fail(msg, len, "%s fails the oracle's float32 rule: %s", rep.tensor[t].name,
                          rep.tensor[t].why);
                break;
            }
    }
out:
    for (int t = 0; t < 5; t++) free(d[t]);
    return ok;
}

static int prop_cpu_matches_reference(const fm_random_case *cc, void *ctx, char *msg, size_t len)
{
    (void)ctx;
    fm_random_case c = *cc; /* inputs get rounded to float32 in place: work on copies */
    const fm_problem *p = &c.problem;
    const size_t nq = fm_problem_q_elems(p), nkv = fm_problem_kv_elems(p);
    const size_t nl = fm_problem_lse_elems(p);
    const int64_t D = p->head_dim;
    run_buffers r = {0};
    double *q = malloc(nq * sizeof *q), *k = malloc(nkv * sizeof *k);
    double *v = malloc(nkv * sizeof *v), *dout = malloc(nq * sizeof *dout);
    int ok = 0;
    if (!q || !k || !v || !dout) { prop_fail(msg, len, "out of memory"); goto done; }
    memcpy(q, c.q, nq * sizeof *q), memcpy(k, c.k, nkv * sizeof *k);
    memcpy(v, c.v, nkv * sizeof *v), memcpy(dout, c.dout, nq * sizeof *dout);
    r.q = fm_cpu_round_copy(q, nq), r.k = fm_cpu_round_copy(k, nkv);
    r.v = fm_cpu_round_copy(v, nkv), r.dout = fm_cpu_round_copy(dout, nq);
    r.out = malloc(nq * sizeof(float)), r.lse = malloc(nl * sizeof(float));
    r.dq = malloc(nq * sizeof(float)), r.dk = malloc(nkv * sizeof(float));
    r.dv = malloc(nkv * sizeof(float));
    r.rout = malloc(nq * sizeof(double)), r.rlse = malloc(nl * sizeof(double));
    r.rdq = malloc(nq * sizeof(double)), r.rdk = malloc(nkv * sizeof(double));
    r.rdv = malloc(nkv * sizeof(double));
    if (!r.q || !r.k || !r.v || !r.dout || !r.out || !r.lse || !r.dq || !r.dk || !r.dv ||
        !r.rout || !r.rlse || !r.rdq || !r.rdk || !r.rdv) {
        prop_fail(msg, len, "out of memory");
        goto done;
    }

    fm_tile_stats fs, bs;
    if (fm_ref_forward(p, &c.mask, q, k, v, r.rout, r.rlse) != FM_OK ||
        fm_ref_backward(p, &c.mask, q, k, v, r.rout, r.rlse, dout, r.rdq, r.rdk, r.rdv) != FM_OK) {
        prop_fail(msg, len, "reference failed: %s", fm_last_error());
        goto done;
    }
    if (fm_cpu_forward(p, &c.mask, r.q, r.k, r.v, r.out, r.lse, &fs) != FM_OK) {
        prop_fail(msg, len, "cpu forward failed: %s", fm_last_error());
        goto done;
    }
    if (fm_cpu_backward(p, &c.mask, r.q, r.k, r.v, r.out, r.lse, r.dout, r.dq, r.dk, r.dv,
                        &bs) != FM_OK) {
        prop_fail(msg, len, "cpu backward failed: %s", fm_last_error());
        goto done;
    }

    /* Fully masked rows, exactly: O = 0, LSE = -inf, dQ = 0. */
    for (size_t row = 0; row < nl; row++) {
        int ref_masked = r.rlse[row] == -INFINITY, cpu_masked = r.lse[row] == -INFINITY;
        if (ref_masked != cpu_masked) {
            prop_fail(msg, len, "row %zu: reference lse %g, cpu lse %g", row, r.rlse[row],
                 (double)r.lse[row]);
            goto done;
        }
        if (!ref_masked) continue;
        for (int64_t d = 0; d < D; d++)
            if (r.out[row * D + d] != 0.0f || r.dq[row * D + d] != 0.0f) {
                prop_fail(msg, len, "fully masked row %zu: out %g, dq %g at d=%lld (must be 0)",
                          row, (double)r.out[row * D + d], (double)r.dq[row * D + d],
                          (long long)d);
                goto done;
            }
    }

    const struct { const char *name; double err, tol; } checks[] = {
        {"O", fm_cpu_rel_error(r.out, r.rout, nq, 0, 0.0), FM_CPU_TOL_FORWARD},
        {"LSE", fm_cpu_rel_error(r.lse, r.rlse, nl, 1, 1.0), FM_CPU_TOL_FORWARD},
        {"dQ", fm_cpu_rel_error(r.dq, r.rdq, nq, 0, 1.0), FM_CPU_TOL_BACKWARD},
        {"dK", fm_cpu_rel_error(r.dk, r.rdk, nkv, 0, 1.0), FM_CPU_TOL_BACKWARD},
        {"dV", fm_cpu_rel_error(r.dv, r.rdv, nkv, 0, 1.0), FM_CPU_TOL_BACKWARD},
    };
    /* O and LSE are held to cpu_compare.h's relative bound. The gradients sum up to Sq (or Sk)
     * float32 products whose terms can cancel, so no fixed relative bound holds for a correct
     * float32 kernel (dK at 6.1e-5 against 5e-5: FM_SEED=1796190590, D = 128, S <= 260): past
     * it they are judged by the oracle's pass rule for float32 (docs/oracle.md, the derived
     * per-element bound of forward error analysis), which is what every implementation answers
     * to. */
    int judge_gradients = 0;
    for (size_t i = 0; i < sizeof checks / sizeof checks[0]; i++) {
        if (checks[i].err > worst_seen[i]) worst_seen[i] = checks[i].err;
        if (checks[i].err <= checks[i].tol) continue;
        if (i >= 2 && checks[i].err < INFINITY) {
            judge_gradients = 1;
            continue;
        }
        prop_fail(msg, len, "%s: relative error %.3g > bound %.1g", checks[i].name,
                  checks[i].err, checks[i].tol);
        goto done;
    }
    if (judge_gradients && !oracle_passes(p, &c.mask, q, k, v, dout, &r, msg, len)) goto done;
    if (!check_stats(&c, &fs, "forward", msg, len) || !check_stats(&c, &bs, "backward", msg, len))
        goto done;
    ok = 1;
done:
    free(q), free(k), free(v), free(dout);
    free_buffers(&r);
    return ok;
}

/* The property over five kinds of case (limits over fm_case_limits_default(), prop.h):
 *   small:       lengths 1..24, one tile: the edge cases of the harness most often;
 *   mixed:       random interval vectors and families mixed; several tiles per side;
 *   families:    every mask family with random parameters (drawn uniformly);
 *   wide_heads:  the benchmark's D = 128 on a couple of tiles;
 *   long:        narrow heads on long sequences: runs of more than FM_CPU_RUN_TILES computed
 *                tiles, runs broken by masked tiles, and ragged last tiles. */
static fm_property_test small = {"cpu_vs_reference_small", prop_cpu_matches_reference,
                                 .trials = 200};
static fm_property_test mixed = {"cpu_vs_reference_mixed", prop_cpu_matches_reference,
                                 .trials = 40, .max_seqlen = 300, .max_head_dim = 16};
static fm_property_test families = {"cpu_vs_reference_families", prop_cpu_matches_reference,
                                    .trials = 60, .max_seqlen = 300, .max_head_dim = 16,
                                    .families_only = 1};
static fm_property_test wide_heads = {"cpu_vs_reference_wide_heads", prop_cpu_matches_reference,
                                      .trials = 10, .max_batch = 1, .max_q_heads = 2,
                                      .max_seqlen = 260, .max_head_dim = 128};
static fm_property_test long_seqs = {"cpu_vs_reference_long", prop_cpu_matches_reference,
                                     .trials = 20, .max_batch = 1, .max_q_heads = 2,
                                     .max_seqlen = 700, .max_head_dim = 6};

static void test_report_margins(void **state)
{
    (void)state;
    printf("largest rel errors seen: O %.2g, LSE %.2g (bound %.0g); dQ %.2g, dK %.2g, dV %.2g "
           "(bound %.0g)\n", worst_seen[0], worst_seen[1], FM_CPU_TOL_FORWARD, worst_seen[2],
           worst_seen[3], worst_seen[4], FM_CPU_TOL_BACKWARD);
}

int main(void)
{
    /* FM_CPU_ISA=portable: the suite on the portable row kernels (tests/cpu/meson.build) */
    const char *isa = getenv("FM_CPU_ISA");
    if (isa && *isa && fm_cpu_set_isa(isa) != FM_OK) {
        fprintf(stderr, "FM_CPU_ISA=%s: %s\n", isa, fm_last_error());
        return 1;
    }
    const struct CMUnitTest tests[] = {
        fm_property_unit_test(small),
        fm_property_unit_test(mixed),
        fm_property_unit_test(families),
        fm_property_unit_test(wide_heads),
        fm_property_unit_test(long_seqs),
        cmocka_unit_test(test_report_margins),
    };
    return cmocka_run_group_tests_name("cpu_props", tests, NULL, NULL);
}
