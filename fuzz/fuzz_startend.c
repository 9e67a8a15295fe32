/* fuzz/fuzz_startend.c — libFuzzer target for Paddle's compact mask form (masks/startend.c):
 * raw int32 startend_row_indices [B, Hm, Sk, C] (often hostile: negative, > Sq, INT32_MIN/MAX,
 * start > end) with every C in {1, 2, 4} and every causal flag. A refusal must carry a message;
 * an accepted array must give a valid mask whose every element agrees with docs/spec.md §2's table read
 * directly from the array (an oracle independent of the converter), and converting back to the
 * same C must reproduce a mask with the same dense image. Any disagreement aborts. */
#include <stdlib.h>
#include <string.h>

#include "flashmask.h"
#include "fuzz_bytes.h"

/* One int32 value: mode 0 takes a small value in [-2, Sq + 2], mode 1 four raw bytes. */
static int32_t next_value(const uint8_t **data, size_t *size, int raw, int64_t sq)
{
    if (!raw) return (int32_t)(next_byte(data, size) % (sq + 5)) - 2;
    uint32_t u = 0;
    for (int k = 0; k < 4; k++) u |= (uint32_t)next_byte(data, size) << (8 * k);
    int32_t v;
    memcpy(&v, &u, sizeof v);
    return v;
}

/* docs/spec.md §2's table, straight from the compact values v[0..C-1] of column j. */
static int table_masked(const int32_t *v, int columns, fm_causal causal, int64_t sq, int64_t sk,
                        int64_t i, int64_t j)
{
    int64_t off = fm_causal_offset(causal, sq, sk);
    int causal_masked = causal != FM_CAUSAL_NONE && j > i + off;
    switch (columns) {
    case 1: return causal_masked || i >= v[0];
    case 2:
        if (causal != FM_CAUSAL_NONE) return causal_masked || (v[0] <= i && i < v[1]);
        return i >= v[0] || i < v[1];
    default:
        return causal_masked || (v[0] <= i && i < v[1]) || (v[2] <= i && i < v[3]);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int64_t batch = 1 + next_byte(&data, &size) % 2;
    int64_t heads = 1 + next_byte(&data, &size) % 2;
    int64_t sq = 1 + next_byte(&data, &size) % 12;
    int64_t sk = 1 + next_byte(&data, &size) % 12;
    static const int column_choices[] = {1, 2, 4, 3, 0}; /* 3 and 0: invalid C */
    int columns = column_choices[next_byte(&data, &size) % 5];
    fm_causal causal = (fm_causal)(next_byte(&data, &size) % 4); /* 3: invalid */
    int raw = next_byte(&data, &size) % 4 == 0;

    size_t n = (size_t)(batch * heads * sk * (columns ? columns : 1));
    int32_t *se = malloc(n * sizeof(int32_t));
    if (!se) return 0;
    for (size_t e = 0; e < n; e++) se[e] = next_value(&data, &size, raw, sq);

    fm_mask m = {0};
    fm_status st = fm_mask_from_startend(&m, se, batch, heads, sq, sk, columns, causal);
    if (st != FM_OK) {
        if (fm_last_error()[0] == '\0') abort();
        free(se);
        return 0;
    }
    if (fm_mask_validate(&m) != FM_OK) abort();
    for (int64_t b = 0; b < batch; b++)
        for (int64_t h = 0; h < heads; h++)
            for (int64_t j = 0; j < sk; j++) {
                const int32_t *v = se + ((b * heads + h) * sk + j) * columns;
                for (int64_t i = 0; i < sq; i++)
                    if (fm_mask_is_masked(&m, b, h, i, j) !=
                        table_masked(v, columns, causal, sq, sk, i, j))
                        abort();
            }
    /* back to the same C: must succeed (the mask came from that form) and mean the same, except
     * where Paddle would read it differently (top_left with Sq != Sk) or refuse it (causal with
     * C = 4): then to_startend must refuse with a message */
    int32_t *again = malloc(n * sizeof(int32_t));
    if (!again) abort();
    if ((causal == FM_CAUSAL_TOP_LEFT && sq != sk) || (causal != FM_CAUSAL_NONE && columns == 4)) {
        if (fm_mask_to_startend(&m, columns, again) != FM_ERR_NOT_REPRESENTABLE ||
            fm_last_error()[0] == '\0')
            abort();
        fm_mask_free(&m);
        free(again);
        free(se);
        return 0;
    }
    if (fm_mask_to_startend(&m, columns, again) != FM_OK) abort();
    fm_mask back = {0};
    if (fm_mask_from_startend(&back, again, batch, heads, sq, sk, columns, causal) != FM_OK)
        abort();
    for (int64_t b = 0; b < batch; b++)
        for (int64_t h = 0; h < heads; h++)
            for (int64_t i = 0; i < sq; i++)
                for (int64_t j = 0; j < sk; j++)
                    if (fm_mask_is_masked(&m, b, h, i, j) != fm_mask_is_masked(&back, b, h, i, j))
                        abort();
    fm_mask_free(&back);
    fm_mask_free(&m);
    free(again);
    free(se);
    return 0;
}
