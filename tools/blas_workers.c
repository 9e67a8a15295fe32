/* tools/blas_workers.c — OpenBLAS on one thread, its worker threads stopped, for a command whose
 * computation threads itself: `run --impl cpu`, where the CPU layer runs its own OpenMP team and
 * calls BLAS single-threaded inside it. Layer: tools CLI (OpenBLAS).
 *
 * A pthreads build of OpenBLAS starts its workers when the library loads, and each one spins
 * (sched_yield) for about 2^28 cycles, near 0.1 s, waiting for work before it sleeps. On a
 * 2-core machine that takes a core from the first tenth of a second of the attention
 * (docs/performance.md, "OpenBLAS's workers out of the way"). blas_thread_shutdown_ is the
 * function OpenBLAS itself runs before every fork() (its pthread_atfork handler): it stops and
 * joins the workers. Any later call that wants threads starts them again,
 * openblas_set_num_threads included, so the count is set to one first: the CPU layer then finds
 * one thread and leaves it so (fm_blas_threads_begin_single), and single-threaded BLAS calls
 * never wake the pool. The function is not in OpenBLAS's headers, so it is looked up at run
 * time: with an OpenBLAS without it, only the thread count changes. */
#include <cblas.h>
#include <dlfcn.h>

#include "blas_workers.h"

void cli_blas_one_thread(void)
{
    openblas_set_num_threads(1);
    void (*shutdown)(void);
    /* (the object-to-function pointer conversion POSIX guarantees for dlsym) */
    *(void **)&shutdown = dlsym(RTLD_DEFAULT, "blas_thread_shutdown_");
    if (shutdown) shutdown();
}
