/* fuzz/fuzz_params.c — libFuzzer target for family parameters: the first bytes choose a family
 * and the sizes, the rest is JSON parameters; parsing (io/params_json.c) and building
 * (masks/builders*.c) must either refuse with a message or produce a mask that validates. */
#include <stdlib.h>
#include <string.h>

#include "flashmask.h"
#include "flashmask/io.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4) return 0;
    fm_family family = (fm_family)(data[0] % FM_FAMILY_COUNT);
    int64_t seqlen_k = 1 + data[1] % 64;
    int64_t seqlen_q = 1 + data[2] % 64;
    fm_causal align = (data[3] & 1) ? FM_CAUSAL_TOP_LEFT : FM_CAUSAL_BOTTOM_RIGHT;
    char *json = malloc(size - 4 + 1);
    if (!json) return 0;
    memcpy(json, data + 4, size - 4);
    json[size - 4] = '\0';

    fm_mask_params p = {0};
    fm_status st = fm_mask_params_from_json(&p, family, json, "fuzz");
    if (st == FM_OK) {
        fm_mask m = {0};
        st = fm_mask_build(&m, &p, 1, 2, seqlen_q, seqlen_k, align);
        if (st == FM_OK && fm_mask_validate(&m) != FM_OK) abort(); /* builders emit valid masks */
        if (st != FM_OK && fm_last_error()[0] == '\0') abort();
        fm_mask_free(&m);
        fm_mask_params_free(&p);
    } else if (fm_last_error()[0] == '\0') {
        abort();
    }
    free(json);
    return 0;
}
