/* tools/cmd_run.c — `flashmask run`: reads a case's inputs, runs one implementation's forward
 * and backward (the backward from that implementation's own out and lse) and writes
 * out/lse/dq/dk/dv.npy into a results directory that appears only when complete. With
 * --ladder N (cuda only) the kernels are step N of the CUDA kernel ladder (cuda/ladder/).
 * Layer: tools CLI (io, dispatch, cuda). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "blas_workers.h"
#include "cli.h"
#include "commands.h"

static int usage(void)
{
    printf("usage: flashmask run --impl reference|cpu|cuda|reference-cuda --case DIR --out DIR\n"
           "                     [--dtype T] [--kernel SPEC | --ladder N]\n"
           "Runs the implementation on the case DIR (docs/spec.md §6; mask.npy as [B,Hm,Sk,4] or\n"
           "Paddle's [B,Hm,Sk,C], C in {1,2,4}) and writes out/lse/dq/dk/dv.npy (float64;\n"
           "float32 from cpu, which computes in float32) to the --out directory, which must\n"
           "not exist (or be empty).\n"
           "  --dtype T   what cuda computes in (float16 or bfloat16; default: the case's dtype);\n"
           "              the reference always computes in float64 and cpu in float32\n"
           "reference-cuda is the reference's float64 function on the GPU, tiled (for long\n"
           "contexts; its results are expected outputs, not a candidate's)\n"
           "  --kernel SPEC  which CUDA kernels run (--impl cuda only): auto (default: the\n"
           "              heuristics of cuda/heuristics.cu), mma, wgmma, or a comma list of\n"
           "              fwd=auto|mma|wgmma|pingpong|wide, bwd=auto|mma|wgmma|pipelined,\n"
           "              shape=8x1|4x2|8x2, wgs=1|2, deterministic (pingpong: the Hopper\n"
           "              forward with ping-pong warpgroups, auto's choice on Hopper at D = 64\n"
           "              and 128; wgmma: the same forward without ping-pong; wide: ping-pong\n"
           "              on 128-key stages; pipelined: the Hopper dK/dV kernel fed by a TMA\n"
           "              producer warp; docs/cuda.md)\n"
           "  --ladder N  (cuda) run step N of the kernel ladder (docs/cuda-ladder.md): 1 naive,\n"
           "              2 tiled on CUDA cores, 3 mma.sync, 4 tuned mma.sync, 5 wgmma (D = 128,\n"
           "              Hopper); the backward runs step N too (step 3: backward step 2)\n"
           "exit: 0 ok, 2 invalid input (malformed or mismatched case), 3 implementation\n"
           "unavailable here\n");
    return 0;
}

static void to_double(double *y, const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) y[i] = (double)x[i];
}

/* `--impl cpu`: the CPU layer computes in float32, so its native entry points get the inputs as
 * the loader read them (fm_case_load_inputs: float32 files used as read, checked finite) and
 * keep out/lse in float32 from the forward to the backward, and its results are written as
 * float32 files (fm_results_save_f32): the values as computed, no float64 copies, half the
 * bytes. (fm_forward/fm_backward would convert every tensor both ways per call.) */

/* 1 when x[0..n) holds no inf or NaN (-inf allowed with allow_neg_inf: lse of masked rows). */
static int all_finite(const float *x, size_t n, int allow_neg_inf)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i]) && !(allow_neg_inf && x[i] == -INFINITY)) return 0;
    return 1;
}

/* Finite float32 inputs can still overflow (dout = 3e38): results holding inf or NaN are an error,
 * reported by fm_forward's result check (fm_results_check_finite, which names the input largest
 * in magnitude); it reads float64 inputs and results, made here only on that failure. */
static fm_status overflow_error(const fm_problem *p, const fm_case_inputs32 *in,
                                const fm_results32 *r32)
{
    const size_t nq = fm_problem_q_elems(p), nkv = fm_problem_kv_elems(p);
    fm_results r;
    if (!cli_results_alloc(p, &r)) {
        fm_results_free(&r);
        return FM_ERR_NOMEM;
    }
    to_double(r.out, r32->out, nq), to_double(r.lse, r32->lse, fm_problem_lse_elems(p));
    to_double(r.dq, r32->dq, nq), to_double(r.dk, r32->dk, nkv), to_double(r.dv, r32->dv, nkv);
    double *x[4] = {malloc(nq * sizeof(double)), malloc(nkv * sizeof(double)),
                    malloc(nkv * sizeof(double)), malloc(nq * sizeof(double))};
    const float *y[4] = {in->q, in->k, in->v, in->dout};
    const size_t n[4] = {nq, nkv, nkv, nq};
    fm_status st = FM_ERR_NOMEM;
    if (x[0] && x[1] && x[2] && x[3]) {
        for (int t = 0; t < 4; t++) to_double(x[t], y[t], n[t]);
        const fm_tensors t = {x[0], x[1], x[2], x[3], r.out, r.lse, r.dq, r.dk, r.dv};
        st = fm_results_check_finite(FM_IMPL_CPU, p, &t, 0);
        if (st == FM_OK) st = fm_results_check_finite(FM_IMPL_CPU, p, &t, 1);
    }
    for (int t = 0; t < 4; t++) free(x[t]);
    fm_results_free(&r);
    return st;
}

/* Forward and backward in float32, results written to out_dir as float32 files. */
static fm_status run_cpu_float32(const fm_problem *p, const fm_case *c,
                                 const fm_case_inputs32 *in, const char *out_dir, double *t_fwd,
                                 double *t_bwd)
{
    const size_t nq = fm_problem_q_elems(p), nkv = fm_problem_kv_elems(p);
    const size_t nl = fm_problem_lse_elems(p);
    const float *q = in->q, *k = in->k, *v = in->v, *d = in->dout;
    float *o = malloc(nq * sizeof *o), *l = malloc(nl * sizeof *l);
    float *dq = malloc(nq * sizeof *dq), *dk = malloc(nkv * sizeof *dk);
    float *dv = malloc(nkv * sizeof *dv);
    fm_status st = FM_ERR_NOMEM;
    if (o && l && dq && dk && dv) {
        double t0 = cli_now();
        st = fm_cpu_forward(p, &c->mask, q, k, v, o, l, NULL);
        double t1 = cli_now();
        if (st == FM_OK) st = fm_cpu_backward(p, &c->mask, q, k, v, o, l, d, dq, dk, dv, NULL);
        *t_fwd = t1 - t0, *t_bwd = cli_now() - t1;
    }
    const fm_results32 r = {o, l, dq, dk, dv};
    if (st == FM_OK && !(all_finite(o, nq, 0) && all_finite(l, nl, 1) && all_finite(dq, nq, 0) &&
                         all_finite(dk, nkv, 0) && all_finite(dv, nkv, 0)))
        st = overflow_error(p, in, &r);
    if (st == FM_OK) st = fm_results_save_f32(out_dir, p, &r);
    free(o), free(l), free(dq), free(dk), free(dv);
    return st;
}

int cmd_run(int argc, char **argv)
{
    const char *cmd = "run";
    const char *impl_name = NULL, *case_dir = NULL, *out_dir = NULL, *dtype_name = NULL;
    const char *kernel = NULL, *ladder_text = NULL;
    const cli_string_opt opts[] = {
        {"--impl", &impl_name, "--impl"},    {"--case", &case_dir, "--case DIR"},
        {"--out", &out_dir, "--out DIR"},    {"--dtype", &dtype_name, NULL},
        {"--kernel", &kernel, NULL},         {"--ladder", &ladder_text, NULL}};
    int rc;
    if (!cli_parse_string_options(cmd, argc, argv, opts, 6, NULL, usage, &rc)) return rc;
    fm_impl impl;
    fm_dtype dtype = FM_FLOAT32;
    fm_kernel_options kopt;
    fm_status st = fm_impl_from_name(impl_name, &impl);
    if (st == FM_OK && dtype_name) st = fm_dtype_from_name(dtype_name, &dtype);
    if (st == FM_OK) st = fm_kernel_options_parse(kernel ? kernel : "auto", &kopt);
    if (st != FM_OK) return cli_report(cmd, st);
    if (impl != FM_IMPL_CUDA && !fm_kernel_options_is_default(&kopt))
        return cli_fail(cmd, FM_ERR_INVALID, "--kernel %s chooses CUDA kernels; --impl %s has "
                        "one kernel", kernel, impl_name);
    /* --ladder N: forward step N and backward step N, or 2 for N = 3 (no backward step 3) */
    int64_t fwd_step = 0;
    if (ladder_text) {
        if (kernel)
            return cli_fail(cmd, FM_ERR_INVALID, "--ladder N and --kernel SPEC both choose the "
                            "CUDA kernels; give one");
        if (impl != FM_IMPL_CUDA)
            return cli_fail(cmd, FM_ERR_INVALID, "--ladder selects a CUDA kernel; use --impl cuda");
        if ((st = cli_int64(cmd, "--ladder", ladder_text, 1, FM_CUDA_LADDER_STEPS, &fwd_step)) !=
            FM_OK)
            return 2;
    }
    const int bwd_step = fwd_step == 3 ? 2 : (int)fwd_step;
    /* unavailable (not built, no device): exit 3 before reading anything */
    if ((st = fm_impl_available(impl)) != FM_OK) return cli_report(cmd, st);

    /* a dense-mask case without mask.npy (docs/sparse.md): run_dense reads it */
    if (fm_dense_case_detect(case_dir)) return cmd_run_dense(argc, argv);
    /* the inputs only (the expected outputs are check's), float32 for cpu */
    /* the CPU layer has its own threads: OpenBLAS's, spinning after the library loaded, would
     * share the cores with the reading and the attention (blas_workers.c) */
    if (impl == FM_IMPL_CPU) cli_blas_one_thread();
    fm_case c;
    fm_case_inputs32 in32 = {0};
    if ((st = fm_case_load_inputs(case_dir, &c, impl == FM_IMPL_CPU ? &in32 : NULL)) != FM_OK)
        return cli_report(cmd, st);
    fm_problem *p = &c.problem;
    if (dtype_name) p->dtype = dtype;

    fm_results r = {0};
    double t0 = 0, t1 = 0, t2 = 0;
    if (impl == FM_IMPL_CPU) {
        double t_fwd = 0, t_bwd = 0;
        st = run_cpu_float32(p, &c, &in32, out_dir, &t_fwd, &t_bwd);
        t1 = t_fwd, t2 = t_fwd + t_bwd;
    } else if (!cli_results_alloc(p, &r)) {
        rc = cli_fail(cmd, FM_ERR_NOMEM, "cannot allocate the results");
        goto done;
    } else {
        fm_tensors t = {c.q, c.k, c.v, c.dout, r.out, r.lse, r.dq, r.dk, r.dv};
        t0 = cli_now();
        st = fwd_step ? fm_cuda_forward_host_step((int)fwd_step, p, &c.mask, &t)
                      : fm_forward_opts(impl, p, &c.mask, &t, &kopt);
        t1 = cli_now();
        if (st == FM_OK)
            st = fwd_step ? fm_cuda_backward_host_step(bwd_step, p, &c.mask, &t)
                          : fm_backward_opts(impl, p, &c.mask, &t, &kopt);
        t2 = cli_now();
        if (st == FM_OK) st = fm_results_save(out_dir, p, &r);
    }
    rc = cli_report(cmd, st);
    if (rc == 0 && fwd_step)
        printf("wrote %s: cuda ladder forward step %d, backward step %d (%s) forward %.1f ms, "
               "backward %.1f ms\n", out_dir, (int)fwd_step, bwd_step,
               fm_dtype_name(fm_impl_dtype(impl, p)), 1e3 * (t1 - t0), 1e3 * (t2 - t1));
    else if (rc == 0)
        printf("wrote %s: %s (%s) forward %.1f ms, backward %.1f ms\n", out_dir,
               fm_impl_name(impl), fm_dtype_name(fm_impl_dtype(impl, p)), 1e3 * (t1 - t0),
               1e3 * (t2 - t1));
done:
    fm_results_free(&r);
    fm_case_free(&c);
    fm_case_inputs32_free(&in32);
    return rc;
}
