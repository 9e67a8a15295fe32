/* tools/ref_compute.h — how the CLI computes a case's expected outputs: the float64 reference
 * forward and backward with the backend of --reference, split across MPI ranks when the tool
 * is built with -Dmpi=enabled and started by mpirun (rank 0 ends up with every result; the
 * others with their share). Layer: tools CLI over reference/.
 */
#ifndef FM_TOOLS_REF_COMPUTE_H
#define FM_TOOLS_REF_COMPUTE_H

#include "flashmask.h"

/* --reference auto|dense|tiled|cuda at argv[*i]: 1 when it was that option (parsed into
 * *backend and *impl: FM_IMPL_REFERENCE with a CPU backend, or FM_IMPL_REFERENCE_CUDA; or the
 * error reported and -1 returned), 0 when argv[*i] is something else. */
int cli_reference_option(const char *cmd, int argc, char **argv, int *i, fm_ref_backend *backend,
                         fm_impl *impl);
#define CLI_REFERENCE_USAGE                                                                      \
    "  --reference B      float64 reference: auto (default: CPU, dense if its Sq*Sk scratch\n"   \
    "                     fits, else tiled), dense, tiled (CPU, O(S*D) memory), cuda (the\n"    \
    "                     GPU, tiled: reference-cuda); under mpirun -np N>1 the CPU work is\n"  \
    "                     split across ranks and auto means tiled\n"

/* MPI, when built with it and started by mpirun (else one rank, and these do nothing). */
void cli_mpi_begin(int *argc, char ***argv);
void cli_mpi_end(void);
int cli_mpi_rank(void);
int cli_mpi_size(void);
/* The largest rc over the ranks: every rank takes the same exit path. */
int cli_mpi_agree(int rc);
/* Runs `command` between cli_mpi_begin and cli_mpi_end; every rank returns the worst exit
 * code of all (cli_mpi_agree). */
int cli_mpi_run(int (*command)(int argc, char **argv), int argc, char **argv);

/* Forward then backward of the reference into t's out, lse, dq, dk, dv (q, k, v, dout in t).
 * Under several ranks each computes its share and rank 0 gathers the whole result. The status
 * is the same on every rank. Shows progress on stderr when it is a terminal (rank 0). */
fm_status cli_reference_compute(const fm_problem *p, const fm_mask *mask, fm_impl impl,
                                fm_ref_backend backend, fm_tensors *t);

#endif
