/* fuzz/fuzz_npy.c — libFuzzer target for the .npy parser (io/npy.c): any byte sequence must be
 * either refused with a status and a message, or parsed into an array whose size agrees with
 * its shape; never a crash, a leak or an out-of-bounds read (run under ASan/UBSan). */
#include <stdlib.h>
#include <string.h>

#include "flashmask.h"
#include "flashmask/io.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fm_npy a = {0};
    fm_status st = fm_npy_parse(data, size, "fuzz.npy", &a);
    if (st == FM_OK) {
        size_t count = 1;
        for (int d = 0; d < a.ndim; d++) count *= (size_t)a.shape[d];
        if (count != a.count) abort();
        /* touch every byte of the payload: it must all be there */
        volatile uint8_t sink = 0;
        const uint8_t *bytes = a.data;
        for (size_t i = 0; i < a.count * fm_npy_dtype_size(a.dtype); i++) sink ^= bytes[i];
        (void)sink;
    } else if (fm_last_error()[0] == '\0') {
        abort(); /* every refusal says why */
    }
    fm_npy_free(&a);
    return 0;
}
