/* bench/tile_tightness.c — how tight the tile classification of masks/ is, per family: of the
 * tiles that truly have no masked element, how many the block summaries call unmasked (run
 * without element tests), and of those that truly have no allowed element, how many they call
 * masked (skipped). Prints one table per (sequence length, tile shape); docs/masks.md quotes it.
 *
 *     tile_tightness [S:BQ:BK ...]       default: 4096:128:128 8192:64:64
 *
 * Layer: a bench program over the public API (masks/); it measures, it asserts nothing.
 * Families are built with their documented defaults (fm_mask_params_default), one mask head,
 * bottom-right alignment, Sq = Sk = S, as `flashmask bench` builds them.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flashmask.h"

/* Rows of [r0, r1) that column j masks, merged: returns how many of them there are. */
static int64_t masked_rows(const int32_t *col, fm_causal causal, int64_t offset, int64_t j,
                           int64_t r0, int64_t r1)
{
    int64_t lo[3], hi[3];
    int n = fm_column_masked_runs(col, causal, offset, j, r0, r1, lo, hi);
    int64_t count = 0, covered_to = r0;
    /* at most three runs: sort by start, then sweep */
    for (int a = 0; a < n; a++)
        for (int b = a + 1; b < n; b++)
            if (lo[b] < lo[a]) {
                int64_t t = lo[a]; lo[a] = lo[b]; lo[b] = t;
                t = hi[a]; hi[a] = hi[b]; hi[b] = t;
            }
    for (int a = 0; a < n; a++) {
        int64_t s = lo[a] > covered_to ? lo[a] : covered_to;
        if (hi[a] > s) count += hi[a] - s;
        if (hi[a] > covered_to) covered_to = hi[a];
    }
    return count;
}

static int measure(int64_t S, int64_t bq, int64_t bk)
{
    printf("\nS = %lld, tiles %lld x %lld (query rows x keys)\n\n", (long long)S, (long long)bq,
           (long long)bk);
    printf("| family | tiles | truly full | called unmasked | truly empty | called masked |\n");
    printf("|---|---:|---:|---:|---:|---:|\n");
    for (int f = 0; f < FM_FAMILY_COUNT; f++) {
        fm_mask_params params;
        fm_mask m = {0};
        fm_block_summary s;
        if (fm_mask_params_default(&params, (fm_family)f, S) != FM_OK ||
            fm_mask_build(&m, &params, 1, 1, S, S, FM_CAUSAL_BOTTOM_RIGHT) != FM_OK ||
            fm_block_summary_build(&m, bk, &s) != FM_OK) {
            fprintf(stderr, "tile_tightness: %s: %s\n", fm_family_name((fm_family)f),
                    fm_last_error());
            return 1;
        }
        fm_mask_params_free(&params);
        const int64_t nq = (S + bq - 1) / bq, off = fm_causal_offset(m.causal, S, S);
        long long tiles = 0, full = 0, full_unmasked = 0, empty = 0, empty_masked = 0;
        for (int64_t qb = 0; qb < nq; qb++)
            for (int64_t kb = 0; kb < s.n_blocks; kb++) {
                const int64_t r0 = qb * bq, r1 = r0 + bq < S ? r0 + bq : S;
                const int64_t c0 = kb * bk, c1 = c0 + bk < S ? c0 + bk : S;
                int any_masked = 0, any_allowed = 0;
                for (int64_t j = c0; j < c1; j++) {
                    int64_t k = masked_rows(fm_mask_column(&m, 0, 0, j), m.causal, off, j, r0, r1);
                    any_masked |= k > 0;
                    any_allowed |= k < r1 - r0;
                }
                fm_tile_class cls = fm_block_summary_classify(&s, 0, 0, bq, qb, kb);
                tiles++;
                if (!any_masked) full++, full_unmasked += cls == FM_TILE_UNMASKED;
                if (!any_allowed) empty++, empty_masked += cls == FM_TILE_MASKED;
            }
        printf("| %s | %lld | %lld | %lld | %lld | %lld |\n", fm_family_name((fm_family)f), tiles,
               full, full_unmasked, empty, empty_masked);
        fm_block_summary_free(&s);
        fm_mask_free(&m);
    }
    return 0;
}

int main(int argc, char **argv)
{
    const char *defaults[] = {"4096:128:128", "8192:64:64"};
    int n = argc > 1 ? argc - 1 : 2;
    for (int a = 0; a < n; a++) {
        const char *spec = argc > 1 ? argv[a + 1] : defaults[a];
        long long S, bq, bk;
        if (sscanf(spec, "%lld:%lld:%lld", &S, &bq, &bk) != 3 || S < 1 || bq < 1 || bk < 1) {
            fprintf(stderr, "tile_tightness: '%s' is not S:BQ:BK (positive integers)\n", spec);
            return 2;
        }
        if (measure(S, bq, bk)) return 1;
    }
    return 0;
}
