/* cpu/workspace.c — the CPU forward's and backward's working memory (per-thread scratch and the
 * packed operands, forward.c and backward.c), kept between calls: a fresh multi-megabyte block costs a page fault and a page
 * clearing per 4 KiB on first touch, which on sparse masks was as much as the packing it holds
 * (docs/performance.md). One block of at most FM_WORKSPACE_KEEP_BYTES is kept, as BLAS libraries
 * keep their packing buffers; larger ones are freed at once, and callers on several threads at
 * once each get their own.
 * Layer: cpu.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

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
        if (posix_memalign(&ptr, 64, (floats ? floats : 1) * sizeof(float)) != 0)
            return fm_fail(FM_ERR_NOMEM, "%s: cannot allocate %zu bytes", what,
                           floats * sizeof(float));
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
