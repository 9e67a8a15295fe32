/* tools/cmd_demo.c — `flashmask demo`: every mask family on one default problem, the float64
 * reference against every other implementation available here. Per family: the allowed-pair
 * density, the tile classification at the CPU layer's tile size (what a FlashMask kernel skips),
 * and per implementation its forward/backward times, the max abs error of O, LSE, dQ, dK, dV
 * and the oracle's verdict (docs/spec.md §5, fm_check_case). Layer: tools CLI (masks, implementations,
 * oracle).
 *
 * Default problem: B=1, Hq=Hk=4, Hm=1, S=1024, D=64, causal families bottom-right aligned,
 * float32 inputs for cpu (bfloat16 for cuda). It is small enough that the twelve families
 * (reference, cpu, and the oracle's naive same-precision emulation) finish well within a minute
 * on 2 cores: 15 to 30 s measured on the shared build machine (docs/api.md).
 * --json FILE also writes everything printed as one JSON document (format: docs/api.md).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "flashmask/oracle.h"

static int usage(void)
{
    printf("usage: flashmask demo [--family NAME ...] [--impl NAME ...] [--json FILE] "
           "[problem options]\n"
           "Runs every mask family (or those named) on one problem: the float64 reference\n"
           "against every other available implementation (or those named), printing per family\n"
           "the allowed-pair density, the tiles a FlashMask kernel skips, and per\n"
           "implementation forward/backward times (through fm_forward/fm_backward, float64\n"
           "conversions and host<->device copies included, after one untimed warm-up run),\n"
           "max abs errors against the reference (err(X) = max |X - X_ref|) and the oracle's\n"
           "verdict (docs/spec.md §5).\n"
           "--json FILE: the same results also as one JSON document.\n"
           "problem options (defaults: B=1, Hq=Hk=4, Hm=1, S=1024, D=64, bottom_right, seed 0,\n"
           "bfloat16; --dtype sets what cuda computes in: cpu always computes in float32):\n%s"
           "exit: 0 all pass, 1 an implementation failed or missed the bound, 2 invalid input\n",
           cli_problem_usage);
    return 0;
}

/* Buffers of one run: the inputs (rounded to X) and the five outputs. */
typedef struct run_buffers {
    double *q, *k, *v, *dout, *out, *lse, *dq, *dk, *dv;
} run_buffers;

static void buffers_free(run_buffers *b)
{
    free(b->q), free(b->k), free(b->v), free(b->dout);
    free(b->out), free(b->lse), free(b->dq), free(b->dk), free(b->dv);
    memset(b, 0, sizeof *b);
}

static fm_status buffers_alloc(run_buffers *b, const fm_problem *p)
{
    size_t nq = fm_problem_q_elems(p), nkv = fm_problem_kv_elems(p);
    double **slots[9] = {&b->q, &b->k, &b->v, &b->dout, &b->out, &b->lse, &b->dq, &b->dk, &b->dv};
    size_t sizes[9] = {nq, nkv, nkv, nq, nq, fm_problem_lse_elems(p), nq, nkv, nkv};
    for (int t = 0; t < 9; t++)
        if (!(*slots[t] = calloc(sizes[t], sizeof(double)))) return FM_ERR_NOMEM;
    return FM_OK;
}

static fm_tensors as_tensors(run_buffers *b)
{
    fm_tensors t = {b->q, b->k, b->v, b->dout, b->out, b->lse, b->dq, b->dk, b->dv};
    return t;
}

/* Forward then backward through the dispatcher, timed. */
static fm_status run_impl(fm_impl impl, const fm_problem *p, const fm_mask *m, run_buffers *b,
                          double *fwd_ms, double *bwd_ms)
{
    fm_tensors t = as_tensors(b);
    double t0 = cli_now();
    fm_status st = fm_forward(impl, p, m, &t);
    double t1 = cli_now();
    if (st == FM_OK) st = fm_backward(impl, p, m, &t);
    double t2 = cli_now();
    *fwd_ms = 1e3 * (t1 - t0);
    *bwd_ms = 1e3 * (t2 - t1);
    return st;
}

/* The reference run for inputs rounded to dtype X (cached per X: cpu and cuda differ). */
typedef struct reference_run {
    int done;
    fm_status status;
    run_buffers b;
    double fwd_ms, bwd_ms;
} reference_run;

static void print_header(void)
{
    printf("  %-10s %-9s %9s %9s  %-9s %-9s %-9s %-9s %-9s %s\n", "impl", "dtype", "fwd ms",
           "bwd ms", "err(O)", "err(LSE)", "err(dQ)", "err(dK)", "err(dV)", "verdict");
}

typedef struct demo_totals {
    int runs, pass, fail, errors;
} demo_totals;

/* One family: mask, statistics, the reference and each implementation. */
/* One implementation's line as JSON (into `runs`, when not NULL). */
static void json_run(cJSON *runs, const char *impl, fm_dtype x, double fwd_ms, double bwd_ms,
                     fm_status st, const fm_check_report *report)
{
    if (!runs) return;
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "impl", impl);
    cJSON_AddStringToObject(r, "dtype", fm_dtype_name(x));
    if (st != FM_OK) {
        cJSON_AddStringToObject(r, "error", fm_status_string(st));
        cJSON_AddStringToObject(r, "message", fm_last_error());
    } else {
        cJSON_AddNumberToObject(r, "fwd_ms", fwd_ms);
        cJSON_AddNumberToObject(r, "bwd_ms", bwd_ms);
        if (report) {
            cJSON *t = cJSON_AddObjectToObject(r, "tensors");
            for (int i = 0; i < FM_CHECK_TENSORS; i++) {
                const fm_tensor_check *c = &report->tensor[i];
                cJSON *o = cJSON_AddObjectToObject(t, c->name);
                cJSON_AddNumberToObject(o, "max_abs", c->max_abs);
                cJSON_AddNumberToObject(o, "bound", c->bound);
                cJSON_AddNumberToObject(o, "ratio", c->ratio); /* worst |err| / bound */
                cJSON_AddBoolToObject(o, "pass", c->pass);
                cJSON_AddStringToObject(o, "why", c->why);
            }
            cJSON_AddBoolToObject(r, "pass", report->pass);
        }
    }
    cJSON_AddItemToArray(runs, r);
}

static fm_status demo_family(fm_family f, const cli_problem_opts *o, const fm_impl *impls,
                             int n_impls, demo_totals *tot, cJSON *families)
{
    fm_mask_params params;
    fm_mask mask = {0};
    fm_status st = fm_mask_params_default(&params, f, o->seqlen_k);
    if (st == FM_OK)
        st = fm_mask_build(&mask, &params, o->batch, o->mask_heads, o->seqlen_q, o->seqlen_k,
                           o->causal);
    fm_mask_params_free(&params);
    if (st != FM_OK) return st;

    fm_problem p;
    fm_problem_init(&p, o->batch, o->q_heads, o->kv_heads, o->seqlen_q, o->seqlen_k,
                    o->head_dim);
    p.dtype = o->dtype;
    fm_tile_stats tiles;
    if ((st = fm_problem_validate(&p, &mask)) != FM_OK ||
        (st = fm_mask_tile_stats(&mask, FM_CPU_BLOCK_Q, FM_CPU_BLOCK_K, &tiles)) != FM_OK) {
        fm_mask_free(&mask);
        return st;
    }
    double dense = (double)mask.batch * (double)mask.heads * (double)p.seqlen_q *
                   (double)p.seqlen_k;
    printf("\n== %s   (causal %s)\n", fm_family_name(f), fm_causal_name(mask.causal));
    printf("  allowed pairs %.1f%%   tiles %dx%d: %lld masked (skipped), %lld partial, "
           "%lld unmasked of %lld -> tile density %.3f\n",
           100.0 * (double)fm_mask_total_allowed_pairs(&mask) / dense, FM_CPU_BLOCK_Q,
           FM_CPU_BLOCK_K, (long long)tiles.masked, (long long)tiles.partial,
           (long long)tiles.unmasked, (long long)tiles.total, fm_tile_density(&tiles));
    print_header();
    cJSON *runs = NULL;
    if (families) {
        cJSON *fam = cJSON_CreateObject();
        cJSON_AddStringToObject(fam, "family", fm_family_name(f));
        cJSON_AddStringToObject(fam, "causal", fm_causal_name(mask.causal));
        cJSON_AddNumberToObject(fam, "allowed_fraction",
                                (double)fm_mask_total_allowed_pairs(&mask) / dense);
        cJSON *tj = cJSON_AddObjectToObject(fam, "tiles");
        cJSON_AddNumberToObject(tj, "block_q", FM_CPU_BLOCK_Q);
        cJSON_AddNumberToObject(tj, "block_k", FM_CPU_BLOCK_K);
        cJSON_AddNumberToObject(tj, "total", (double)tiles.total);
        cJSON_AddNumberToObject(tj, "masked", (double)tiles.masked);
        cJSON_AddNumberToObject(tj, "partial", (double)tiles.partial);
        cJSON_AddNumberToObject(tj, "unmasked", (double)tiles.unmasked);
        cJSON_AddNumberToObject(tj, "density", fm_tile_density(&tiles));
        runs = cJSON_AddArrayToObject(fam, "runs");
        cJSON_AddItemToArray(families, fam);
    }

    reference_run refs[4] = {{0}}; /* indexed by fm_dtype */
    for (int n = 0; n < n_impls; n++) {
        fm_impl impl = impls[n];
        fm_dtype x = fm_impl_dtype(impl, &p);
        fm_problem px = p; /* inputs and reference in the candidate's precision */
        px.dtype = x;
        reference_run *ref = &refs[(unsigned)x < 4 ? x : 0];
        if (!ref->done) {
            ref->done = 1;
            ref->status = buffers_alloc(&ref->b, &p);
            if (ref->status == FM_OK) {
                cli_random_inputs(&px, o->seed, ref->b.q, ref->b.k, ref->b.v, ref->b.dout);
                ref->status = run_impl(FM_IMPL_REFERENCE, &p, &mask, &ref->b, &ref->fwd_ms,
                                       &ref->bwd_ms);
            }
            json_run(runs, "reference", FM_FLOAT64, ref->fwd_ms, ref->bwd_ms, ref->status, NULL);
            if (ref->status != FM_OK) {
                printf("  %-10s error: %s: %s\n", "reference", fm_status_string(ref->status),
                       fm_last_error());
                tot->errors++;
            } else { /* one line per precision the inputs were rounded to */
                printf("  %-10s %-9s %9.1f %9.1f  (the oracle: float64 on inputs rounded to "
                       "%s)\n", "reference", "float64", ref->fwd_ms, ref->bwd_ms,
                       fm_dtype_name(x));
            }
        }
        if (ref->status != FM_OK) continue;

        run_buffers cand = {0};
        double fwd_ms = 0, bwd_ms = 0;
        fm_check_report report;
        tot->runs++;
        st = buffers_alloc(&cand, &p);
        if (st == FM_OK) {
            size_t nq = fm_problem_q_elems(&p), nkv = fm_problem_kv_elems(&p);
            memcpy(cand.q, ref->b.q, nq * sizeof(double));
            memcpy(cand.k, ref->b.k, nkv * sizeof(double));
            memcpy(cand.v, ref->b.v, nkv * sizeof(double));
            memcpy(cand.dout, ref->b.dout, nq * sizeof(double));
            st = run_impl(impl, &px, &mask, &cand, &fwd_ms, &bwd_ms);
        }
        if (st == FM_OK) {
            fm_tensors rt = as_tensors(&ref->b), ct = as_tensors(&cand);
            fm_check_options opt = fm_check_options_default(x);
            st = fm_check_case(&px, &mask, &rt, &ct, &opt, &report);
        }
        json_run(runs, fm_impl_name(impl), x, fwd_ms, bwd_ms, st, st == FM_OK ? &report : NULL);
        if (st != FM_OK) {
            printf("  %-10s %-9s error: %s: %s\n", fm_impl_name(impl), fm_dtype_name(x),
                   fm_status_string(st), fm_last_error());
            tot->errors++;
        } else {
            printf("  %-10s %-9s %9.1f %9.1f ", fm_impl_name(impl), fm_dtype_name(x), fwd_ms,
                   bwd_ms);
            for (int t = 0; t < FM_CHECK_TENSORS; t++)
                printf(" %-9.2e", report.tensor[t].max_abs);
            printf(" %s\n", report.pass ? "pass" : "FAIL");
            if (report.pass) tot->pass++;
            else {
                tot->fail++;
                for (int t = 0; t < FM_CHECK_TENSORS; t++)
                    if (!report.tensor[t].pass)
                        printf("      %s: %s\n", report.tensor[t].name, report.tensor[t].why);
            }
        }
        buffers_free(&cand);
    }
    if (n_impls == 0) { /* nothing to compare: still show the reference */
        reference_run *ref = &refs[FM_FLOAT64];
        fm_problem px = p;
        px.dtype = FM_FLOAT64;
        st = buffers_alloc(&ref->b, &p);
        if (st == FM_OK) {
            cli_random_inputs(&px, o->seed, ref->b.q, ref->b.k, ref->b.v, ref->b.dout);
            st = run_impl(FM_IMPL_REFERENCE, &p, &mask, &ref->b, &ref->fwd_ms, &ref->bwd_ms);
        }
        json_run(runs, "reference", FM_FLOAT64, ref->fwd_ms, ref->bwd_ms, st, NULL);
        if (st == FM_OK)
            printf("  %-10s %-9s %9.1f %9.1f\n", "reference", "float64", ref->fwd_ms,
                   ref->bwd_ms);
        else tot->errors++;
    }
    for (int x = 0; x < 4; x++) buffers_free(&refs[x].b);
    fm_mask_free(&mask);
    return FM_OK;
}

/* One tiny untimed run per implementation first, so that one-time costs (CUDA context
 * creation, OpenMP thread start, first-touch allocations) are not charged to the first family. */
static void warm_up(const fm_impl *impls, int n_impls)
{
    fm_problem p;
    fm_mask mask = {0};
    run_buffers b = {0};
    fm_problem_init(&p, 1, 1, 1, 16, 16, 16);
    p.dtype = FM_BFLOAT16;
    if (fm_mask_init(&mask, 1, 1, 16, 16, FM_CAUSAL_NONE) == FM_OK &&
        buffers_alloc(&b, &p) == FM_OK) {
        double fwd, bwd;
        for (int n = 0; n < n_impls; n++) {
            fm_problem px = p;
            px.dtype = fm_impl_dtype(impls[n], &p);
            cli_random_inputs(&px, 0, b.q, b.k, b.v, b.dout);
            (void)run_impl(impls[n], &px, &mask, &b, &fwd, &bwd); /* errors show up later */
        }
    }
    buffers_free(&b);
    fm_mask_free(&mask);
}

int cmd_demo(int argc, char **argv)
{
    const char *cmd = "demo";
    cli_problem_opts o = {0};
    int want_family[FM_FAMILY_COUNT] = {0}, any_family = 0;
    fm_impl impls[FM_IMPL_COUNT];
    int n_impls = 0, impl_given = 0;
    const char *json_path = NULL;
    for (int i = 1; i < argc; i++) {
        const char *val;
        int r;
        if (cli_is_help(argv[i])) return usage();
        if ((r = cli_problem_option(cmd, argc, argv, &i, &o)) != 0) {
            if (r < 0) return 2;
            continue;
        }
        if ((r = cli_option(cmd, argc, argv, &i, "--json", &json_path)) != 0) {
            if (r < 0) return 2;
        } else if ((r = cli_option(cmd, argc, argv, &i, "--family", &val)) != 0) {
            fm_family f;
            if (r < 0) return 2;
            if (fm_family_from_name(val, &f) != FM_OK) return cli_report(cmd, FM_ERR_INVALID);
            want_family[f] = any_family = 1;
        } else if ((r = cli_option(cmd, argc, argv, &i, "--impl", &val)) != 0) {
            fm_impl impl;
            if (r < 0) return 2;
            if (fm_impl_from_name(val, &impl) != FM_OK) return cli_report(cmd, FM_ERR_INVALID);
            if (impl == FM_IMPL_REFERENCE)
                return cli_fail(cmd, FM_ERR_INVALID, "--impl reference: the reference is what "
                                "the others are compared against; name cpu or cuda");
            fm_status st = fm_impl_available(impl);
            if (st != FM_OK) return cli_report(cmd, st);
            int dup = 0;
            for (int k = 0; k < n_impls; k++) dup |= impls[k] == impl;
            if (!dup) impls[n_impls++] = impl;
            impl_given = 1;
        } else {
            return cli_fail(cmd, FM_ERR_INVALID, "unexpected argument '%s' (see demo --help)",
                            argv[i]);
        }
    }
    const cli_problem_opts defaults = {.batch = 1, .q_heads = 4, .seqlen_q = 1024, .head_dim = 64,
                                       .dtype = FM_BFLOAT16};
    if (cli_problem_finish(cmd, &o, &defaults) != FM_OK) return 2;

    /* every available implementation besides the reference, unless --impl named some */
    printf("flashmask demo: B=%lld Hq=%lld Hk=%lld Hm=%lld Sq=%lld Sk=%lld D=%lld, seed %llu\n",
           (long long)o.batch, (long long)o.q_heads, (long long)o.kv_heads,
           (long long)o.mask_heads, (long long)o.seqlen_q, (long long)o.seqlen_k,
           (long long)o.head_dim, (unsigned long long)o.seed);
    if (!impl_given) {
        for (int impl = 0; impl < FM_IMPL_COUNT; impl++) {
            if (impl == FM_IMPL_REFERENCE || impl == FM_IMPL_REFERENCE_CUDA) continue; /* oracles */
            if (fm_impl_available((fm_impl)impl) == FM_OK) impls[n_impls++] = (fm_impl)impl;
            else printf("(%s skipped: %s)\n", fm_impl_name((fm_impl)impl), fm_last_error());
        }
    }
    printf("errors: max |impl - reference| over the compared elements; verdict: the oracle's "
           "derived per-element bound (docs/oracle.md section 2)\n");

    warm_up(impls, n_impls);
    demo_totals tot = {0};
    cJSON *root = json_path ? cJSON_CreateObject() : NULL;
    cJSON *families = NULL;
    if (root) {
        cJSON_AddStringToObject(root, "tool", "flashmask demo");
        cJSON_AddStringToObject(root, "version", fm_version());
        cJSON *pj = cJSON_AddObjectToObject(root, "problem");
        const int64_t sizes[7] = {o.batch, o.q_heads, o.kv_heads, o.mask_heads, o.seqlen_q,
                                  o.seqlen_k, o.head_dim};
        cli_json_add_sizes(pj, sizes);
        cJSON_AddStringToObject(pj, "causal", fm_causal_name(o.causal));
        cJSON_AddStringToObject(pj, "cuda_dtype", fm_dtype_name(o.dtype));
        cJSON_AddNumberToObject(pj, "seed", (double)o.seed);
        families = cJSON_AddArrayToObject(root, "families");
    }
    double t0 = cli_now();
    for (int f = 0; f < FM_FAMILY_COUNT; f++) {
        if (any_family && !want_family[f]) continue;
        fm_status st = demo_family((fm_family)f, &o, impls, n_impls, &tot, families);
        if (st != FM_OK) {
            cJSON_Delete(root);
            return cli_report(cmd, st);
        }
        fflush(stdout);
    }
    double seconds = cli_now() - t0;
    printf("\n%d runs: %d pass, %d fail, %d errors (%.1f s)\n", tot.runs, tot.pass, tot.fail,
           tot.errors, seconds);
    if (root) {
        cJSON *tj = cJSON_AddObjectToObject(root, "totals");
        cJSON_AddNumberToObject(tj, "runs", tot.runs);
        cJSON_AddNumberToObject(tj, "pass", tot.pass);
        cJSON_AddNumberToObject(tj, "fail", tot.fail);
        cJSON_AddNumberToObject(tj, "errors", tot.errors);
        cJSON_AddNumberToObject(tj, "seconds", seconds);
        char *text = cJSON_Print(root);
        cJSON_Delete(root);
        int ok = cli_write_text(json_path, text);
        free(text);
        if (!ok) return cli_fail(cmd, FM_ERR_IO, "--json %s: cannot write the file", json_path);
    }
    return tot.fail || tot.errors ? 1 : 0;
}
