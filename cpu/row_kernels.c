/* cpu/row_kernels.c — the row kernels of row_kernels.h, instantiated for AVX-512, AVX2 + FMA and
 * the build's baseline (portable), and the run-time choice between them.
 * Layer: cpu <- core. Compiled without -march=native (cpu/meson.build) so that the portable
 * variant is portable; the others get their instruction sets from `#pragma GCC target` and run
 * only where __builtin_cpu_supports says the processor has them.
 */
#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "exp_fast.h"
#include "row_kernels.h"
#include "fm_internal.h"
#include "flashmask/cpu.h"

#define FM_RK_LOG2E 1.4426950408889634

#define FM_RK(name) name##_portable
#include "row_kernels_body.h"
#undef FM_RK

#if defined(__x86_64__) && defined(__GNUC__)
#define FM_RK_X86 1

#pragma GCC push_options
#pragma GCC target("avx2,fma")
#define FM_RK(name) name##_avx2
#include "row_kernels_body.h"
#undef FM_RK
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx512f,avx512dq,avx512vl,avx512bw,avx2,fma,prefer-vector-width=512")
#define FM_RK(name) name##_avx512
#include "row_kernels_body.h"
#undef FM_RK
#pragma GCC pop_options
#endif

#define FM_RK_TABLE(isa) \
    {#isa, softmax_tile_##isa, exp2_rows_##isa, softmax_bwd_tile_##isa}

static const fm_row_kernels variants[] = {
#ifdef FM_RK_X86
    FM_RK_TABLE(avx512),
    FM_RK_TABLE(avx2),
#endif
    FM_RK_TABLE(portable),
};
enum { N_VARIANTS = sizeof variants / sizeof variants[0] };

static int supported(const fm_row_kernels *k)
{
#ifdef FM_RK_X86
    __builtin_cpu_init();
    if (strcmp(k->name, "avx512") == 0)
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
               __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw");
    if (strcmp(k->name, "avx2") == 0)
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
    return strcmp(k->name, "portable") == 0;
}

const fm_row_kernels *fm_row_kernels_variant(const char *name)
{
    for (int i = 0; i < N_VARIANTS; i++)
        if (name && strcmp(variants[i].name, name) == 0)
            return supported(&variants[i]) ? &variants[i] : NULL;
    return NULL;
}

static const fm_row_kernels *chosen, *forced;
static pthread_once_t chosen_once = PTHREAD_ONCE_INIT;

static void choose(void)
{
    for (int i = 0; i < N_VARIANTS && !chosen; i++)
        if (supported(&variants[i])) chosen = &variants[i];
}

const fm_row_kernels *fm_row_kernels_get(void)
{
    const fm_row_kernels *f = forced; /* fm_cpu_set_isa, for measurements and tests */
    if (f) return f;
    pthread_once(&chosen_once, choose);
    return chosen;
}

fm_status fm_cpu_set_isa(const char *name)
{
    if (!name || strcmp(name, "auto") == 0) {
        forced = NULL;
        return FM_OK;
    }
    for (int i = 0; i < N_VARIANTS; i++)
        if (strcmp(variants[i].name, name) == 0) {
            if (!supported(&variants[i]))
                return fm_fail(FM_ERR_UNAVAILABLE, "cpu: row kernels '%s' need an instruction "
                               "set this processor lacks", name);
            forced = &variants[i];
            return FM_OK;
        }
    return fm_fail(FM_ERR_INVALID, "cpu: row kernels '%s': expected auto, portable, avx2 or "
                   "avx512", name);
}
