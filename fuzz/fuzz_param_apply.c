/* fuzz/fuzz_param_apply.c — libFuzzer target for the `--param key=value` parser that
 * `flashmask gen` uses (fm_mask_params_apply, io/params_json.c): a family and a sequence
 * length from the first bytes, then newline-separated assignments. A refusal must carry a
 * message and leave the parameters unchanged; accepted parameters must build a valid mask or be
 * refused by the builder with a message, and must survive the JSON round trip. */
#include <stdlib.h>
#include <string.h>

#include "flashmask.h"
#include "flashmask/io.h"

enum { MAX_ASSIGNMENTS = 16 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2) return 0;
    fm_family family = (fm_family)(data[0] % FM_FAMILY_COUNT);
    int64_t seqlen = 1 + data[1] % 48;
    char *text = malloc(size - 2 + 1);
    if (!text) return 0;
    memcpy(text, data + 2, size - 2);
    text[size - 2] = '\0';
    const char *assignments[MAX_ASSIGNMENTS];
    int n = 0;
    for (char *line = text; n < MAX_ASSIGNMENTS;) {
        assignments[n++] = line;
        char *nl = strchr(line, '\n');
        if (!nl) break;
        *nl = '\0';
        line = nl + 1;
    }

    fm_mask_params p = {0};
    if (fm_mask_params_default(&p, family, seqlen) != FM_OK) abort();
    char *before = NULL, *after = NULL;
    if (fm_mask_params_to_json(&p, &before) != FM_OK) abort();
    fm_status st = fm_mask_params_apply(&p, n, assignments);
    if (fm_mask_params_to_json(&p, &after) != FM_OK) abort();
    if (st != FM_OK) {
        if (fm_last_error()[0] == '\0') abort();
        if (strcmp(before, after) != 0) abort(); /* "on failure p is unchanged" */
    } else {
        fm_mask m = {0};
        st = fm_mask_build(&m, &p, 1, 1, seqlen, seqlen, FM_CAUSAL_BOTTOM_RIGHT);
        if (st == FM_OK && fm_mask_validate(&m) != FM_OK) abort();
        if (st != FM_OK && fm_last_error()[0] == '\0') abort();
        fm_mask_free(&m);
        fm_mask_params again = {0};
        if (fm_mask_params_from_json(&again, family, after, "round trip") != FM_OK) abort();
        fm_mask_params_free(&again);
    }
    free(before);
    free(after);
    fm_mask_params_free(&p);
    free(text);
    return 0;
}
