/* tools/cmd_run_dense.c — `flashmask run_dense`: runs one implementation on a dense-mask case
 * (docs/sparse.md) with a chosen method — the column form or Binary Block Masking (auto), BBM
 * always, RCM reordering, the QK-sparse / Hash-sparse gather pipelines — and writes
 * out/lse/dq/dk/dv.npy like `run`. Layer: tools CLI (io/dense_case.c, api/dense_run.c). */
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "flashmask.h"

static int usage(void)
{
    printf("usage: flashmask run_dense --impl reference|cpu|cuda --case DIR --out DIR\n"
           "                           [--method M] [--block-q n] [--block-k n] [--dtype T]\n"
           "Runs the implementation on the dense-mask case DIR and writes out/lse/dq/dk/dv.npy\n"
           "(float64) to --out (which must not exist, or be empty).\n"
           "  --method M   auto (default: column form if the mask fits it, else BBM), bbm,\n"
           "               rcm (Reverse Cuthill-McKee, then auto), qk_sparse, hash_sparse (the\n"
           "               case's keep flags / buckets), dense (the dense oracle; reference),\n"
           "               rowsplit (row blocks in the column form: any impl, cuda included)\n"
           "  --block-q n, --block-k n   BBM tile size (default 128 x 128, the CPU tiles)\n"
           "  --dtype T    what cuda computes in (column-form masks only), as in `run`\n"
           "`flashmask run` on a case with mask_dense.npy and no mask.npy comes here.\n"
           "exit: 0 ok, 2 invalid input, 3 implementation unavailable\n");
    return 0;
}

int cmd_run_dense(int argc, char **argv)
{
    const char *cmd = argv[0]; /* as typed: run-dense, or run when run hands over */
    const char *impl_name = NULL, *case_dir = NULL, *out_dir = NULL, *method_name = "auto";
    const char *bq_text = "128", *bk_text = "128", *dtype_name = NULL;
    const cli_string_opt opts[] = {
        {"--impl", &impl_name, "--impl"},  {"--case", &case_dir, "--case DIR"},
        {"--out", &out_dir, "--out DIR"},  {"--method", &method_name, NULL},
        {"--block-q", &bq_text, NULL},     {"--block-k", &bk_text, NULL},
        {"--dtype", &dtype_name, NULL}};
    int rc;
    if (!cli_parse_string_options(cmd, argc, argv, opts, 7, NULL, usage, &rc)) return rc;
    fm_impl impl;
    fm_dense_method method;
    fm_dtype dtype = FM_FLOAT32;
    int64_t bq, bk;
    fm_status st = fm_impl_from_name(impl_name, &impl);
    if (st == FM_OK) st = fm_dense_method_from_name(method_name, &method);
    if (st == FM_OK && dtype_name) st = fm_dtype_from_name(dtype_name, &dtype);
    if (st != FM_OK) return cli_report(cmd, st);
    if (cli_int64(cmd, "--block-q", bq_text, 1, 1 << 20, &bq) != FM_OK ||
        cli_int64(cmd, "--block-k", bk_text, 1, 1 << 20, &bk) != FM_OK)
        return 2;
    if ((st = fm_impl_available(impl)) != FM_OK) return cli_report(cmd, st);

    fm_dense_case c;
    if ((st = fm_dense_case_load(case_dir, &c)) != FM_OK) return cli_report(cmd, st);
    if (dtype_name) c.problem.dtype = dtype; /* what cuda computes in, as `run --dtype` */
    const fm_problem *p = &c.problem;
    fm_results r;
    if (!cli_results_alloc(p, &r)) {
        rc = cli_fail(cmd, FM_ERR_NOMEM, "cannot allocate the results");
        goto done;
    }
    fm_tensors t = {c.q, c.k, c.v, c.dout, r.out, r.lse, r.dq, r.dk, r.dv};
    double t0 = cli_now();
    st = fm_dense_case_run(impl, &c, method, bq, bk, 0, &t);
    double t1 = cli_now();
    if (st == FM_OK) st = fm_dense_case_run(impl, &c, method, bq, bk, 1, &t);
    double t2 = cli_now();
    if (st == FM_OK) st = fm_results_save(out_dir, p, &r);
    rc = cli_report(cmd, st);
    if (rc == 0)
        printf("wrote %s: %s, method %s, forward %.1f ms, backward %.1f ms\n", out_dir,
               fm_impl_name(impl), fm_dense_method_name(method), 1e3 * (t1 - t0),
               1e3 * (t2 - t1));
done:
    fm_results_free(&r);
    fm_dense_case_free(&c);
    return rc;
}
