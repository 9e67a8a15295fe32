/* tools/ref_compute.c — the expected outputs of a case (tools/ref_compute.h): the reference's
 * forward and backward with the chosen backend, on one process or shared across MPI ranks.
 * Layer: tools CLI over reference/ (and Open MPI when FM_HAVE_MPI).
 *
 * With N > 1 ranks, every rank holds the whole inputs (generated from the seed, identically),
 * computes share `rank` of N of the tiled reference (fm_ref_options.part/parts: contiguous rows
 * balanced by live tiles, fm_ref_share_of), then
 *   forward   out and lse rows are all-gathered (each rank's backward reads every row's O and
 *             LSE: Delta, and the key pass walks all query rows of its keys);
 *   backward  dq, dk, dv rows are gathered to rank 0.
 * The tiled reference computes every row the same way whichever share holds it, so rank 0's
 * tensors are bit for bit those of a one-rank `--reference tiled` run.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef FM_HAVE_MPI
#include <mpi.h>
#endif

#include "cli.h"
#include "fm_internal.h"
#include "ref_compute.h"

int cli_reference_option(const char *cmd, int argc, char **argv, int *i, fm_ref_backend *backend,
                         fm_impl *impl)
{
    const char *val;
    int r = cli_option(cmd, argc, argv, i, "--reference", &val);
    if (r <= 0) return r;
    if (strcmp(val, "cuda") == 0) {
        *impl = FM_IMPL_REFERENCE_CUDA, *backend = FM_REF_AUTO;
        return 1;
    }
    if (fm_ref_backend_from_name(val, backend) != FM_OK) {
        cli_fail(cmd, FM_ERR_INVALID, "--reference '%s': expected auto, dense, tiled or cuda",
                 val);
        return -1;
    }
    *impl = FM_IMPL_REFERENCE;
    return 1;
}

static int mpi_rank = 0, mpi_size = 1, mpi_started = 0;

void cli_mpi_begin(int *argc, char ***argv)
{
#ifdef FM_HAVE_MPI
    /* Only under a launcher: a plain `flashmask gen` of the MPI build stays one process and
     * needs no MPI runtime at all. */
    if (!getenv("OMPI_COMM_WORLD_SIZE") && !getenv("PMIX_RANK") && !getenv("PMI_SIZE")) return;
    if (MPI_Init(argc, argv) != MPI_SUCCESS) return;
    mpi_started = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &mpi_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &mpi_size);
#else
    (void)argc, (void)argv;
#endif
}

void cli_mpi_end(void)
{
#ifdef FM_HAVE_MPI
    if (mpi_started) MPI_Finalize();
#endif
    mpi_started = 0, mpi_rank = 0, mpi_size = 1;
}

int cli_mpi_rank(void) { return mpi_rank; }
int cli_mpi_size(void) { return mpi_size; }

int cli_mpi_agree(int rc)
{
#ifdef FM_HAVE_MPI
    if (mpi_size > 1) {
        int all = rc;
        MPI_Allreduce(&rc, &all, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
        return all;
    }
#endif
    return rc;
}

int cli_mpi_run(int (*command)(int argc, char **argv), int argc, char **argv)
{
    cli_mpi_begin(&argc, &argv);
    const int rc = cli_mpi_agree(command(argc, argv));
    cli_mpi_end();
    return rc;
}

/* Progress on stderr, only when it is a terminal (CI and pipes stay quiet). */
static void show_progress(void *ctx, const char *pass, int64_t done, int64_t total)
{
    (void)ctx;
    fprintf(stderr, "\rreference %-15s %5.1f%% (%lld/%lld tasks)%s", pass,
            total ? 100.0 * (double)done / (double)total : 100.0, (long long)done,
            (long long)total, done == total ? "\n" : "");
}

#ifdef FM_HAVE_MPI
/* Every rank's rows of the q side (which = 0) or kv side (1), as counts and offsets in rows. */
static fm_status share_rows(const fm_problem *p, const fm_mask *mask, const fm_ref_options *o,
                            int which, int *counts, int *displs)
{
    for (int r = 0; r < mpi_size; r++) {
        fm_ref_options s = *o;
        s.part = r, s.parts = mpi_size;
        fm_ref_share sh;
        fm_status st = fm_ref_share_of(p, mask, &s, &sh);
        if (st != FM_OK) return st;
        int64_t lo = which ? sh.kv_lo : sh.q_lo, hi = which ? sh.kv_hi : sh.q_hi;
        if (hi > INT32_MAX)
            return fm_fail(FM_ERR_OVERFLOW, "mpi: %lld rows exceed MPI's int counts",
                           (long long)hi);
        counts[r] = (int)(hi - lo), displs[r] = (int)lo;
    }
    return FM_OK;
}

/* Moves each rank's rows of x (rows of `width` doubles) to every rank (all) or to rank 0. */
static void exchange(double *x, int width, const int *counts, const int *displs, int all)
{
    MPI_Datatype row;
    MPI_Type_contiguous(width, MPI_DOUBLE, &row);
    MPI_Type_commit(&row);
    if (all)
        MPI_Allgatherv(MPI_IN_PLACE, 0, row, x, counts, displs, row, MPI_COMM_WORLD);
    else if (mpi_rank == 0)
        MPI_Gatherv(MPI_IN_PLACE, 0, row, x, counts, displs, row, 0, MPI_COMM_WORLD);
    else
        MPI_Gatherv(x + (size_t)displs[mpi_rank] * (size_t)width, counts[mpi_rank], row, NULL,
                    NULL, NULL, row, 0, MPI_COMM_WORLD);
    MPI_Type_free(&row);
}

static fm_status compute_shared(const fm_problem *p, const fm_mask *mask, fm_ref_options *o,
                                fm_tensors *t)
{
    const int D = (int)p->head_dim;
    int *qc = calloc((size_t)mpi_size, sizeof(int)), *qd = calloc((size_t)mpi_size, sizeof(int));
    int *kc = calloc((size_t)mpi_size, sizeof(int)), *kd = calloc((size_t)mpi_size, sizeof(int));
    fm_status st = qc && qd && kc && kd ? FM_OK : FM_ERR_NOMEM;
    o->part = mpi_rank, o->parts = mpi_size;
    if (st == FM_OK) st = share_rows(p, mask, o, 0, qc, qd);
    if (st == FM_OK) st = share_rows(p, mask, o, 1, kc, kd);
    if (st == FM_OK) st = fm_ref_forward_opts(p, mask, o, t->q, t->k, t->v, t->out, t->lse);
    if ((fm_status)cli_mpi_agree((int)st) == FM_OK) {
        exchange(t->out, D, qc, qd, 1);
        exchange(t->lse, 1, qc, qd, 1);
        st = fm_ref_backward_opts(p, mask, o, t->q, t->k, t->v, t->out, t->lse, t->dout, t->dq,
                                  t->dk, t->dv);
        if ((fm_status)cli_mpi_agree((int)st) == FM_OK) {
            exchange(t->dq, D, qc, qd, 0);
            exchange(t->dk, D, kc, kd, 0);
            exchange(t->dv, D, kc, kd, 0);
        }
    }
    free(qc), free(qd), free(kc), free(kd);
    /* a rank that failed says why; the others report that some rank failed */
    int worst = cli_mpi_agree((int)st);
    if (worst != FM_OK && st == FM_OK)
        st = fm_fail((fm_status)worst, "mpi: another rank failed (see its message)");
    return st;
}
#endif

fm_status cli_reference_compute(const fm_problem *p, const fm_mask *mask, fm_impl impl,
                                fm_ref_backend backend, fm_tensors *t)
{
    if (impl != FM_IMPL_REFERENCE) { /* the GPU reference: one process, through the dispatch */
        if (mpi_size > 1)
            return fm_fail(FM_ERR_INVALID, "--reference cuda runs in one process, not across "
                           "%d MPI ranks", mpi_size);
        fm_status st = fm_forward(impl, p, mask, t);
        return st == FM_OK ? fm_backward(impl, p, mask, t) : st;
    }
    fm_ref_options o = {.backend = backend};
    if (mpi_rank == 0 && isatty(STDERR_FILENO)) o.progress = show_progress;
#ifdef FM_HAVE_MPI
    if (mpi_size > 1) {
        if (backend == FM_REF_DENSE)
            return fm_fail(FM_ERR_INVALID, "--reference dense cannot be split across %d MPI "
                           "ranks (it computes whole heads); use tiled or auto", mpi_size);
        o.backend = FM_REF_TILED;
        return compute_shared(p, mask, &o, t);
    }
#endif
    fm_status st = fm_ref_forward_opts(p, mask, &o, t->q, t->k, t->v, t->out, t->lse);
    if (st == FM_OK)
        st = fm_ref_backward_opts(p, mask, &o, t->q, t->k, t->v, t->out, t->lse, t->dout, t->dq,
                                  t->dk, t->dv);
    return st;
}
