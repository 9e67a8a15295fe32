/* fuzz/fuzz_bytes.h — how the mask fuzz targets (fuzz_mask.c, fuzz_dense.c, fuzz_startend.c)
 * read their input: one byte at a time (0 once the input is used up), and the problem's sizes
 * and causal alignment from the first bytes. Header-only: each target is one executable. */
#ifndef FM_FUZZ_BYTES_H
#define FM_FUZZ_BYTES_H

#include <stddef.h>
#include <stdint.h>

#include "flashmask.h"

static inline uint8_t next_byte(const uint8_t **data, size_t *size)
{
    if (*size == 0) return 0;
    (*size)--;
    return *(*data)++;
}

/* Batch and heads in 1..2, Sq and Sk in 1..max_seqlen, then a causal alignment, then (with
 * max_block > 0) tile sizes in 1..max_block; the bytes are read in that order. */
typedef struct fuzz_shape {
    int64_t batch, heads, sq, sk;
    fm_causal causal;
    int64_t bq, bk;
} fuzz_shape;

static inline fuzz_shape fuzz_draw_shape(const uint8_t **data, size_t *size, int max_seqlen,
                                         int max_block)
{
    fuzz_shape s = {0};
    s.batch = 1 + next_byte(data, size) % 2;
    s.heads = 1 + next_byte(data, size) % 2;
    s.sq = 1 + next_byte(data, size) % max_seqlen;
    s.sk = 1 + next_byte(data, size) % max_seqlen;
    s.causal = (fm_causal)(next_byte(data, size) % 3);
    if (max_block > 0) {
        s.bq = 1 + next_byte(data, size) % max_block;
        s.bk = 1 + next_byte(data, size) % max_block;
    }
    return s;
}

#endif
