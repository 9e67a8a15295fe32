/* tests/cuda/probe_backward_inputs.c — a diagnostic, not a test: which input of the CUDA
 * backward carries its error on one random case? Runs fm_cuda_backward_host on the case (seed
 * from the command line, the shapes of test_cuda's long-sequence property) three times, with O
 * and LSE from our forward, from the float64 reference (O rounded to the dtype), and mixed, in
 * both dQ modes, and prints max|dQ, dK, dV - reference| against the oracle's bounds. This is how
 * the forward's row-sum bias was found (docs/performance-cuda.md, "A dQ error traced to the
 * forward"). Needs a GPU.
 * With FM_LIMITS set (the replay line of a failing test_cuda property) it replays that case;
 * it also prints where dK is worst against the naive same-precision value there.
 *   usage: [FM_LIMITS=...] probe_backward_inputs SEED [0|1: float16|bfloat16; default from the seed]
 *          [KERNEL: a --kernel spec, fm_kernel_options_parse; default auto]
 * Layer: tests of cuda/ (uses oracle/, reference/, the prop.h case generator).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flashmask/io.h"
#include "flashmask/oracle.h"
#include "prop.h"
#include "runs.h"

/* Where dK is worst: the key row (b, kv head, key) and dim, ours, the reference, and the naive
 * same-precision value there, with that key row's largest error per dim range. */
static void print_worst_dk(const fm_problem *p, const fm_mask *mask, const fm_tensors *in,
                           const fm_tensors *got, const fm_tensors *ref, size_t nkv, fm_dtype dtype)
{
    fm_tensors naive = {0};
    fm_test_outputs_alloc(&naive, p);
    double *dk = naive.dk;
    if (fm_naive_forward(p, mask, dtype, in->q, in->k, in->v, naive.out, naive.lse) != FM_OK ||
        fm_naive_backward(p, mask, dtype, in->q, in->k, in->v, naive.out, naive.lse, in->dout,
                          naive.dq, naive.dk, naive.dv) != FM_OK) {
        fprintf(stderr, "naive: %s\n", fm_last_error());
    } else {
        size_t w = 0;
        for (size_t i = 0; i < nkv; i++)
            if (fabs(got->dk[i] - ref->dk[i]) > fabs(got->dk[w] - ref->dk[w])) w = i;
        const size_t D = (size_t)p->head_dim, row = w / D;
        printf("  worst dK: key row %zu (key %zu), dim %zu: ours %.6g ref %.6g naive %.6g\n",
               row, row % (size_t)p->seqlen_k, w % D, got->dk[w], ref->dk[w], dk[w]);
        printf("  that row, |ours - ref| / |naive - ref| by 32-dim range:");
        for (size_t d0 = 0; d0 < D; d0 += 32) {
            double e = 0, en = 0;
            for (size_t d = d0; d < d0 + 32 && d < D; d++) {
                e = fmax(e, fabs(got->dk[row * D + d] - ref->dk[row * D + d]));
                en = fmax(en, fabs(dk[row * D + d] - ref->dk[row * D + d]));
            }
            printf(" %.3g/%.3g", e, en);
        }
        printf("\n");
    }
    fm_test_outputs_free(&naive);
}

/* FM_PROBE_SAVE=DIR: the case (inputs and the reference's outputs) to DIR/case and our results
 * to DIR/ours, for `flashmask check` and offline analysis. */
static void save_case(const fm_random_case *rc, const fm_problem *p, const fm_tensors *in,
                      const fm_tensors *ref, const fm_tensors *got)
{
    char dir[4096];
    fm_case c;
    fm_case_init(&c);
    c.problem = *p, c.mask = rc->mask;
    snprintf(c.mask_kind, sizeof c.mask_kind, "custom");
    c.seed = rc->seed & ((1ull << 53) - 1);
    c.q = (double *)in->q, c.k = (double *)in->k, c.v = (double *)in->v;
    c.dout = (double *)in->dout;
    c.out = ref->out, c.lse = ref->lse, c.dq = ref->dq, c.dk = ref->dk, c.dv = ref->dv;
    snprintf(dir, sizeof dir, "%s/case", getenv("FM_PROBE_SAVE"));
    if (fm_case_save(dir, &c) != FM_OK) fprintf(stderr, "save case: %s\n", fm_last_error());
    fm_results r = {got->out, got->lse, got->dq, got->dk, got->dv};
    snprintf(dir, sizeof dir, "%s/ours", getenv("FM_PROBE_SAVE"));
    if (fm_results_save(dir, p, &r) != FM_OK) fprintf(stderr, "save ours: %s\n", fm_last_error());
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s SEED [0|1] [KERNEL]\n", argv[0]);
        return 2;
    }
    if (fm_cuda_available() != FM_OK) {
        fprintf(stderr, "%s\n", fm_last_error());
        return 77;
    }
    fm_case_limits l = fm_case_limits_default(); /* test_cuda's long-sequence shapes */
    l.max_batch = 1, l.max_q_heads = 2, l.max_seqlen = 700, l.max_head_dim = 128;
    fm_case_limits_apply_env(&l); /* or a failing case's replay line */
    fm_random_case c;
    if (fm_random_case_make(&c, strtoull(argv[1], NULL, 0), &l) != FM_OK) {
        fprintf(stderr, "case: %s\n", fm_last_error());
        return 2;
    }
    fm_dtype dtype = (c.seed & 1) ? FM_BFLOAT16 : FM_FLOAT16;
    if (argc > 2) dtype = atoi(argv[2]) ? FM_BFLOAT16 : FM_FLOAT16;
    fm_kernel_options kopt;
    if (fm_kernel_options_parse(argc > 3 ? argv[3] : "auto", &kopt) != FM_OK) {
        fprintf(stderr, "%s\n", fm_last_error());
        return 2;
    }
    fm_problem p = c.problem;
    p.dtype = dtype;
    const size_t nq = fm_problem_q_elems(&p), nkv = fm_problem_kv_elems(&p);
    const size_t nl = fm_problem_lse_elems(&p);
    fm_tensors in = {0};
    if (!fm_test_inputs_rounded(&in, &p, c.q, c.k, c.v, c.dout, dtype)) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    fm_problem p64 = p;
    p64.dtype = FM_FLOAT64;
    fm_tensors ref = in;
    fm_test_outputs_alloc(&ref, &p);
    if (fm_forward(FM_IMPL_REFERENCE, &p64, &c.mask, &ref) != FM_OK ||
        fm_backward(FM_IMPL_REFERENCE, &p64, &c.mask, &ref) != FM_OK) {
        fprintf(stderr, "reference: %s\n", fm_last_error());
        return 1;
    }
    fm_random_case_print(&c, stdout);
    printf("dtype %s\n", fm_dtype_name(dtype));
    static const char *source[3] = {"O, LSE: our forward", "O: reference rounded, LSE: reference",
                                    "O: reference rounded, LSE: ours"};
    for (int det = 0; det < 2; det++)
        for (int k = 0; k < 3; k++) {
            fm_problem pp = p;
            if (det) pp.flags |= FM_FLAG_DETERMINISTIC;
            fm_tensors got = in;
            fm_test_outputs_alloc(&got, &p);
            if (fm_cuda_forward_host(&pp, &c.mask, &got, &kopt) != FM_OK) {
                fprintf(stderr, "cuda forward: %s\n", fm_last_error());
                return 1;
            }
            if (k >= 1)
                for (size_t i = 0; i < nq; i++) got.out[i] = fm_round_to_dtype(ref.out[i], dtype);
            if (k == 1) memcpy(got.lse, ref.lse, nl * sizeof(double));
            fm_check_options opt = fm_check_options_default(dtype);
            fm_check_report rep;
            if (fm_cuda_backward_host(&pp, &c.mask, &got, &kopt) != FM_OK ||
                fm_check_case(&pp, &c.mask, &in, &got, &opt, &rep) != FM_OK) {
                fprintf(stderr, "cuda backward / check: %s\n", fm_last_error());
                return 1;
            }
            printf("%-13s  %-37s", det ? "deterministic" : "atomic dQ", source[k]);
            for (int i = FM_CHECK_DQ; i < rep.n_tensors; i++)
                printf("  %s %.3g (bound %.3g)", rep.tensor[i].name, rep.tensor[i].max_abs,
                       rep.tensor[i].bound);
            printf("\n");
            if (k == 0) print_worst_dk(&p, &c.mask, &in, &got, &ref, nkv, dtype);
            if (k == 0 && !det && getenv("FM_PROBE_SAVE")) save_case(&c, &p, &in, &ref, &got);
            fm_test_outputs_free(&got);
        }
    fm_test_outputs_free(&ref);
    fm_test_inputs_free(&in);
    fm_random_case_free(&c);
    return 0;
}
