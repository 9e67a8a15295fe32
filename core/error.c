/* core/error.c — status names, the per-thread error message, exit codes and the checked
 * allocation helpers that every layer uses to fail with a clear message instead of a crash. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "fm_internal.h"

static _Thread_local char fm_error_message[1024];

const char *fm_status_string(fm_status status)
{
    switch (status) {
    case FM_OK: return "ok";
    case FM_ERR_INVALID: return "invalid argument";
    case FM_ERR_NOT_REPRESENTABLE: return "not representable";
    case FM_ERR_NOMEM: return "out of memory";
    case FM_ERR_OVERFLOW: return "size overflow";
    case FM_ERR_IO: return "input/output error";
    case FM_ERR_FORMAT: return "malformed file";
    case FM_ERR_NONFINITE: return "non-finite input";
    case FM_ERR_UNAVAILABLE: return "implementation unavailable";
    case FM_ERR_DEVICE: return "device error";
    case FM_ERR_INTERNAL: return "internal error";
    }
    return "unknown status";
}

int fm_status_exit_code(fm_status status)
{
    switch (status) {
    case FM_OK: return 0;
    case FM_ERR_INVALID:
    case FM_ERR_NOT_REPRESENTABLE:
    case FM_ERR_OVERFLOW:
    case FM_ERR_IO:
    case FM_ERR_FORMAT:
    case FM_ERR_NONFINITE: return 2;
    case FM_ERR_UNAVAILABLE: return 3;
    default: return 1;
    }
}

const char *fm_last_error(void) { return fm_error_message; }

void fm_clear_error(void) { fm_error_message[0] = '\0'; }

fm_status fm_fail(fm_status status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(fm_error_message, sizeof fm_error_message, fmt, ap);
    va_end(ap);
    return status;
}

int fm_mul_sizes(size_t *out, int n, const int64_t *values)
{
    size_t acc = 1;
    for (int i = 0; i < n; i++) {
        size_t next;
        if (fm_mul_size(&next, (int64_t)acc, values[i])) return 1;
        if (acc > (size_t)INT64_MAX) return 1;
        acc = next;
    }
    *out = acc;
    return 0;
}

static void *fm_alloc_impl(size_t count, size_t size, const char *what, int zero)
{
    size_t bytes;
    if (__builtin_mul_overflow(count, size, &bytes)) {
        fm_fail(FM_ERR_OVERFLOW, "%s: %zu elements of %zu bytes overflow size_t", what, count,
                size);
        return NULL;
    }
    void *ptr = zero ? calloc(bytes ? bytes : 1, 1) : malloc(bytes ? bytes : 1);
    if (!ptr) fm_fail(FM_ERR_NOMEM, "%s: cannot allocate %zu bytes", what, bytes);
    return ptr;
}

void *fm_alloc(size_t count, size_t size, const char *what)
{
    return fm_alloc_impl(count, size, what, 0);
}

void *fm_calloc(size_t count, size_t size, const char *what)
{
    return fm_alloc_impl(count, size, what, 1);
}
