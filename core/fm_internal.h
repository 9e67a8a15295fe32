/* core/fm_internal.h — helpers private to the library's C sources: setting the thread's error
 * message, checked size arithmetic, allocation that reports through fm_status, and the tensor
 * checks and float32 conversions that the API layer (api/) applies to every call.
 * Not installed; public code includes flashmask.h instead.
 */
#ifndef FM_INTERNAL_H
#define FM_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "flashmask/core.h"

#if defined(__GNUC__) || defined(__clang__)
#define FM_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define FM_PRINTF(a, b)
#endif

/* Records the message for fm_last_error() and returns `status`, so that callers can write
 *     return fm_fail(FM_ERR_INVALID, "mask: column %lld: LTS %d > LTE %d", ...);         */
fm_status fm_fail(fm_status status, const char *fmt, ...) FM_PRINTF(2, 3);

/* Clears the thread's message (called on entry by functions that may fail). */
void fm_clear_error(void);

/* *out = a * b; returns 0 on success, 1 if the product overflows size_t or a < 0 or b < 0. */
static inline int fm_mul_size(size_t *out, int64_t a, int64_t b)
{
    if (a < 0 || b < 0) return 1;
    return __builtin_mul_overflow((size_t)a, (size_t)b, out);
}

/* Product of n non-negative int64 values into *out; 1 on overflow. */
int fm_mul_sizes(size_t *out, int n, const int64_t *values);

/* malloc/calloc of count*size bytes; NULL with FM_ERR_NOMEM/FM_ERR_OVERFLOW recorded. */
void *fm_alloc(size_t count, size_t size, const char *what);
void *fm_calloc(size_t count, size_t size, const char *what);

/* The tensor bundle of fm_forward (backward = 0) or fm_backward (1) for problem p: inputs
 * present and finite (lse may hold -inf), outputs present; the message names the tensor and
 * the element. The problem and mask are checked by the caller. (core/tensors.c) */
fm_status fm_check_tensors(const fm_problem *p, const fm_tensors *t, int backward);

/* A new float32 copy of n doubles (NULL with FM_ERR_NOMEM recorded), and the way back: the
 * conversions around the cpu layer's float32 kernels. (core/tensors.c) */
float *fm_to_float(const double *x, size_t n, const char *what);
void fm_to_double(double *y, const float *x, size_t n);

#endif
