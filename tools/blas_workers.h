/* tools/blas_workers.h — OpenBLAS on one thread, its worker threads stopped, for a command whose
 * work threads itself (blas_workers.c). Layer: tools CLI. */
#ifndef FM_TOOLS_BLAS_WORKERS_H
#define FM_TOOLS_BLAS_WORKERS_H

/* Sets OpenBLAS to one thread for the rest of the process and, where the loaded OpenBLAS is a
 * threaded build, stops its idle worker threads. Call it from the main thread before any work. */
void cli_blas_one_thread(void);

#endif
