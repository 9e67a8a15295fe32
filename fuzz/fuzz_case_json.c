/* fuzz/fuzz_case_json.c — libFuzzer target for case.json parsing (io/case.c, cJSON underneath):
 * hostile JSON must be refused with a message, never crash or leak. Valid parses are
 * re-serialised through the mask-parameter JSON writer and parsed again. */
#include <stdlib.h>

#include "flashmask.h"
#include "flashmask/io.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fm_case c;
    fm_case_init(&c);
    fm_status st = fm_case_parse_json((const char *)data, size, "case.json", &c);
    if (st != FM_OK && fm_last_error()[0] == '\0') abort();
    if (st == FM_OK && c.has_params) {
        char *json = NULL;
        if (fm_mask_params_to_json(&c.mask_params, &json) == FM_OK) {
            fm_mask_params again = {0};
            if (fm_mask_params_from_json(&again, c.mask_params.family, json, "round trip") !=
                FM_OK)
                abort(); /* what we write we must read back */
            fm_mask_params_free(&again);
        }
        free(json);
    }
    fm_case_free(&c);
    return 0;
}
