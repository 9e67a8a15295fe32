/* tools/cmd_gen.c — `flashmask gen`: writes a case directory (docs/spec.md §6) — a mask from a family's
 * documented defaults overridden by --param, standard normal inputs rounded to --dtype, and the
 * float64 reference's expected out, lse, dq, dk, dv (backend --reference: on the CPU dense or
 * tiled, split across ranks under mpirun in the MPI build, rank 0 writing; or on the GPU with
 * --reference cuda: tools/ref_compute.c). Layer: tools CLI (masks, reference, cuda, io). */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "ref_compute.h"

static int usage(void)
{
    printf("usage: flashmask gen --mask FAMILY [--param key=value ...] [problem options]\n"
           "                     [--scale s] --out DIR\n"
           "Writes a case directory DIR (case.json, mask.npy, q/k/v/do.npy and the reference's\n"
           "out/lse/dq/dk/dv.npy). DIR must not exist (or be empty); it appears only when\n"
           "complete. `flashmask masks` lists the families and their parameters; a list value\n"
           "is comma-separated (--param doc_lens=4,3,3).\n"
           "problem options (defaults: B=1, Hq=2, Sq=Sk=128, D=32, float32, seed 0):\n%s"
           "  --scale s          softmax scale (default 1/sqrt(D))\n"
           CLI_REFERENCE_USAGE
           "Under `mpirun -np N` (tool built with -Dmpi=enabled) every rank draws the same\n"
           "inputs, computes its share of the reference, and rank 0 writes the case: the\n"
           "files are bit for bit those of a one-process `--reference tiled` run.\n",
           cli_problem_usage);
    return 0;
}

static int gen_main(int argc, char **argv);

int cmd_gen(int argc, char **argv)
{
    return cli_mpi_run(gen_main, argc, argv);
}

static int gen_main(int argc, char **argv)
{
    const char *cmd = "gen";
    cli_problem_opts o = {0};
    const char *family_name = NULL, *out_dir = NULL, *scale_text = NULL;
    fm_impl ref_impl = FM_IMPL_REFERENCE; /* what computes the expected outputs */
    const char **assignments = calloc((size_t)argc, sizeof *assignments);
    int n_assign = 0, rc = 2;
    fm_ref_backend backend = FM_REF_AUTO;
    fm_case c;
    fm_case_init(&c);
    if (!assignments) return cli_fail(cmd, FM_ERR_NOMEM, "cannot allocate");

    for (int i = 1; i < argc; i++) {
        const char *val;
        int r;
        if (cli_is_help(argv[i])) {
            free(assignments);
            return usage();
        }
        if ((r = cli_problem_option(cmd, argc, argv, &i, &o)) != 0) {
            if (r < 0) goto done;
            continue;
        }
        if ((r = cli_reference_option(cmd, argc, argv, &i, &backend, &ref_impl)) != 0) {
            if (r < 0) goto done;
        } else if ((r = cli_option(cmd, argc, argv, &i, "--mask", &val)) != 0) {
            if (r < 0) goto done;
            family_name = val;
        } else if ((r = cli_option(cmd, argc, argv, &i, "--param", &val)) != 0) {
            if (r < 0) goto done;
            assignments[n_assign++] = val;
        } else if ((r = cli_option(cmd, argc, argv, &i, "--out", &val)) != 0) {
            if (r < 0) goto done;
            out_dir = val;
        } else if ((r = cli_option(cmd, argc, argv, &i, "--scale", &val)) != 0) {
            if (r < 0) goto done;
            scale_text = val;
        } else {
            rc = cli_fail(cmd, FM_ERR_INVALID, "unexpected argument '%s' (see gen --help)",
                          argv[i]);
            goto done;
        }
    }
    if (!family_name || !out_dir) {
        rc = cli_fail(cmd, FM_ERR_INVALID, "%s is required (see gen --help)",
                      !family_name ? "--mask FAMILY" : "--out DIR");
        goto done;
    }
    const cli_problem_opts defaults = {.batch = 1, .q_heads = 2, .seqlen_q = 128, .head_dim = 32,
                                       .dtype = FM_FLOAT32};
    if (cli_problem_finish(cmd, &o, &defaults) != FM_OK) goto done;

    /* the mask: family defaults for Sk, then the --param overrides, checked together */
    fm_family family;
    fm_status st = fm_family_from_name(family_name, &family);
    if (st == FM_OK) st = fm_mask_params_default(&c.mask_params, family, o.seqlen_k);
    if (st == FM_OK) st = fm_mask_params_apply(&c.mask_params, n_assign, assignments);
    if (st == FM_OK)
        st = fm_mask_build(&c.mask, &c.mask_params, o.batch, o.mask_heads, o.seqlen_q,
                           o.seqlen_k, o.causal);
    if (st != FM_OK) {
        rc = cli_report(cmd, st);
        goto done;
    }
    c.has_params = 1;
    snprintf(c.mask_kind, sizeof c.mask_kind, "%s", fm_family_name(family));
    c.seed = o.seed;

    fm_problem *p = &c.problem;
    fm_problem_init(p, o.batch, o.q_heads, o.kv_heads, o.seqlen_q, o.seqlen_k, o.head_dim);
    p->dtype = o.dtype;
    if (scale_text) {
        char *end;
        p->scale = strtod(scale_text, &end);
        /* strtod skips leading blanks: refuse them, as the integer options do */
        if (*scale_text == '\0' || isspace((unsigned char)*scale_text) || *end != '\0') {
            rc = cli_fail(cmd, FM_ERR_INVALID, "--scale '%s' is not a number", scale_text);
            goto done;
        }
    }
    if ((st = fm_problem_validate(p, &c.mask)) != FM_OK) {
        rc = cli_report(cmd, st);
        goto done;
    }

    /* unavailable (no CUDA build, no device): exit 3 before allocating or drawing anything */
    if ((st = fm_impl_available(ref_impl)) != FM_OK) {
        rc = cli_report(cmd, st);
        goto done;
    }

    /* inputs, then the reference's expected outputs */
    size_t nq = fm_problem_q_elems(p), nkv = fm_problem_kv_elems(p);
    size_t nl = fm_problem_lse_elems(p);
    double **bufs[9] = {&c.q, &c.k, &c.v, &c.dout, &c.out, &c.lse, &c.dq, &c.dk, &c.dv};
    size_t sizes[9] = {nq, nkv, nkv, nq, nq, nl, nq, nkv, nkv};
    for (int t = 0; t < 9; t++)
        if (!(*bufs[t] = calloc(sizes[t], sizeof(double)))) {
            rc = cli_fail(cmd, FM_ERR_NOMEM, "cannot allocate %zu doubles", sizes[t]);
            goto done;
        }
    cli_random_inputs(p, o.seed, c.q, c.k, c.v, c.dout);
    fm_tensors t = {c.q, c.k, c.v, c.dout, c.out, c.lse, c.dq, c.dk, c.dv};
    st = cli_reference_compute(p, &c.mask, ref_impl, backend, &t);
    if (st == FM_OK && cli_mpi_rank() == 0) st = fm_case_save(out_dir, &c);
    if (st != FM_OK) {
        rc = cli_report(cmd, st);
        goto done;
    }
    if (cli_mpi_rank() == 0)
        printf("wrote %s: %s, B=%lld Hq=%lld Hk=%lld Hm=%lld Sq=%lld Sk=%lld D=%lld, causal %s, "
               "%s, %lld allowed pairs\n",
               out_dir, c.mask_kind, (long long)p->batch, (long long)p->q_heads,
               (long long)p->kv_heads, (long long)c.mask.heads, (long long)p->seqlen_q,
               (long long)p->seqlen_k, (long long)p->head_dim, fm_causal_name(c.mask.causal),
               fm_dtype_name(p->dtype), (long long)fm_mask_total_allowed_pairs(&c.mask));
    rc = 0;
done:
    free(assignments);
    fm_case_free(&c);
    return rc;
}
