/* cpu/workspace.c — the CPU forward's and backward's working memory (per-thread scratch and the
 * packed operands, forward.c and backward.c), kept between calls: a fresh multi-megabyte block
 * costs a page fault and a page clearing per 4 KiB on first touch, which on sparse masks was as
 * much as the packing it holds (docs/performance.md). One block of at most
 * FM_WORKSPACE_KEEP_BYTES is kept, as BLAS libraries keep their packing buffers; larger ones are
 * freed at once, and callers on several threads at once each get their own. Blocks of 8 MiB and
 * more are asked for on transparent huge pages (where the kernel grants them on request), so a
 * fresh one faults once per 2 MiB.
 * Layer: cpu.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "cpu_internal.h"
#include "fm_internal.h"

#define FM_WORKSPACE_KEEP_BYTES ((size_t)64 << 20)

static pthread_mutex_t kept_lock = PTHREAD_MUTEX_INITIALIZER;
static float *kept;        /* the block kept, or NULL (taken or none yet) */
static size_t kept_floats; /* its size */

fm_status fm_workspace_take(size_t floats, const char *what, float **out, size_t *got)
{
    float *block = NULL;
    size_t size = 0;
    pthread_mutex_lock(&kept_lock);
    if (kept && kept_floats >= floats) block = kept, size = kept_floats, kept = NULL;
    pthread_mutex_unlock(&kept_lock);
    if (!block) {
        void *ptr = NULL;
        if (floats > (SIZE_MAX - 64) / sizeof(float))
            return fm_fail(FM_ERR_OVERFLOW, "%s: %zu floats overflow size_t", what, floats);
        /* Blocks of several MiB on 2 MiB boundaries, marked for transparent huge pages where
         * the kernel offers them on request: the first touch then faults once per 2 MiB, not
         * once per 4 KiB (the cost of a fresh block is mostly those faults). */
        const size_t bytes = (floats ? floats : 1) * sizeof(float);
        const size_t huge = (size_t)2 << 20;
        const int big = bytes >= 4 * huge;
        if (posix_memalign(&ptr, big ? huge : 64, big ? (bytes + huge - 1) / huge * huge : bytes))
            return fm_fail(FM_ERR_NOMEM, "%s: cannot allocate %zu bytes", what, bytes);
#ifdef MADV_HUGEPAGE
        if (big) (void)madvise(ptr, (bytes + huge - 1) / huge * huge, MADV_HUGEPAGE);
#endif
        block = ptr, size = floats;
    }
    *out = block, *got = size;
    return FM_OK;
}

void fm_workspace_give(float *block, size_t floats)
{
    if (!block) return;
    if (floats * sizeof(float) <= FM_WORKSPACE_KEEP_BYTES) {
        pthread_mutex_lock(&kept_lock);
        if (!kept || kept_floats < floats) { /* keep the larger of the two */
            float *old = kept;
            kept = block, kept_floats = floats, block = old;
        }
        pthread_mutex_unlock(&kept_lock);
    }
    free(block);
}
