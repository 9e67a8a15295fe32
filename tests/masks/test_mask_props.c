/* tests/masks/test_mask_props.c — property tests of the mask module (suite 'masks') on random
 * cases from the shared harness (tests/common/prop.h): dense round trips, exact allowed-pair
 * counts, sound tile classification (with its tightness reported), Paddle startend round trips
 * for every C that can express a mask, and FlexAttention block arrays, all checked against the
 * dense mask, which is the element rule evaluated everywhere.
 *
 * Layer: tests, over masks <- core. Never calls reference/ or cpu/.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <setjmp.h>
#include <cmocka.h>

#include "prop.h"

#define DEFAULT_TRIALS 2000 /* about 1 s for the whole file on one core */
#define LONG_TRIALS 200     /* cases with sequences up to LONG_SEQLEN */
#define LONG_SEQLEN 160

/* The dense mask of a case, [B, Hm, Sq, Sk], 1 = allowed; NULL on failure (msg says why). */
static uint8_t *dense_of(const fm_mask *m, char *msg, size_t len)
{
    size_t n = (size_t)(m->batch * m->heads * m->seqlen_q * m->seqlen_k);
    uint8_t *d = malloc(n ? n : 1);
    if (!d) {
        snprintf(msg, len, "out of memory");
        return NULL;
    }
    fm_status st = fm_mask_to_dense(m, d);
    if (st != FM_OK) {
        snprintf(msg, len, "to_dense failed: %s", fm_last_error());
        free(d);
        return NULL;
    }
    return d;
}

static size_t dense_size(const fm_mask *m)
{
    return (size_t)(m->batch * m->heads * m->seqlen_q * m->seqlen_k);
}

/* Index of the first difference of two dense masks, or -1. */
static long first_difference(const uint8_t *a, const uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (a[i] != b[i]) return (long)i;
    return -1;
}

/* ---------------------------------------------------------------- dense round trip */

/* mask -> dense -> mask -> dense gives the same dense mask, and the canonical form is a fixed
 * point: converting the second dense mask again gives identical bounds. */
static int prop_dense_round_trip(const fm_random_case *c, void *ctx, char *msg, size_t len)
{
    const fm_mask *m = &c->mask;
    int ok = 0;
    fm_mask m2 = {0}, m3 = {0};
    uint8_t *d1 = dense_of(m, msg, len), *d2 = NULL;
    if (!d1) goto done;
    if (fm_mask_from_dense(&m2, d1, m->batch, m->heads, m->seqlen_q, m->seqlen_k, m->causal)) {
        snprintf(msg, len, "from_dense refused a dense mask made from a valid mask: %s",
                 fm_last_error());
        goto done;
    }
    if (!(d2 = dense_of(&m2, msg, len))) goto done;
    long at = first_difference(d1, d2, dense_size(m));
    if (at >= 0) {
        snprintf(msg, len, "dense round trip differs at flat index %ld", at);
        goto done;
    }
    if (fm_mask_from_dense(&m3, d2, m->batch, m->heads, m->seqlen_q, m->seqlen_k, m->causal)) {
        snprintf(msg, len, "second from_dense failed: %s", fm_last_error());
        goto done;
    }
    if (memcmp(m2.bounds, m3.bounds, dense_size(m) / (size_t)m->seqlen_q * FM_BOUNDS * 4)) {
        snprintf(msg, len, "canonical form is not a fixed point of dense -> mask");
        goto done;
    }
    ok = 1;
done:
    fm_mask_free(&m2);
    fm_mask_free(&m3);
    free(d1);
    free(d2);
    return ok;
}

static void test_dense_round_trip(void **state)
{
    (void)state;
    fm_check_property("dense_round_trip", prop_dense_round_trip, NULL, DEFAULT_TRIALS, NULL);
}

/* ---------------------------------------------------------------- allowed pairs */

static int prop_allowed_pairs(const fm_random_case *c, void *ctx, char *msg, size_t len)
{
    const fm_mask *m = &c->mask;
    uint8_t *d = dense_of(m, msg, len);
    if (!d) return 0;
    int64_t total = 0;
    int ok = 1;
    const size_t plane = (size_t)(m->seqlen_q * m->seqlen_k);
    for (int64_t b = 0; b < m->batch && ok; b++)
        for (int64_t h = 0; h < m->heads && ok; h++) {
            int64_t count = 0;
            const uint8_t *p = d + (size_t)(b * m->heads + h) * plane;
            for (size_t e = 0; e < plane; e++) count += p[e];
            int64_t fast = fm_mask_allowed_pairs(m, b, h);
            if (fast != count) {
                snprintf(msg, len, "b=%lld head=%lld: fm_mask_allowed_pairs = %lld, dense "
                         "count = %lld", (long long)b, (long long)h, (long long)fast,
                         (long long)count);
                ok = 0;
            }
            total += count;
        }
    if (ok && fm_mask_total_allowed_pairs(m) != total) {
        snprintf(msg, len, "total allowed pairs %lld != dense %lld",
                 (long long)fm_mask_total_allowed_pairs(m), (long long)total);
        ok = 0;
    }
    free(d);
    return ok;
}

static void test_allowed_pairs(void **state)
{
    (void)state;
    fm_check_property("allowed_pairs", prop_allowed_pairs, NULL, DEFAULT_TRIALS, NULL);
}

/* ---------------------------------------------------------------- tile classification */

/* How tight the sound rule is: of the tiles that truly are empty (no allowed element), how
 * many did it call masked; of the truly full ones, how many unmasked. */
typedef struct tightness {
    int64_t tiles, empty, empty_called_masked, full, full_called_unmasked;
} tightness;

/* A block size for a case: 1, powers of two, odd sizes and sizes past the sequence end. */
static int64_t draw_block(fm_rng *rng, int64_t seqlen)
{
    static const int64_t fixed[] = {1, 2, 4, 8, 16, 64};
    if (fm_rng_below(rng, 2)) return fixed[fm_rng_below(rng, 6)];
    return fm_rng_range(rng, 1, seqlen + 2);
}

/* The case's mask made dense (dense_of), and a tile shape drawn (draw_block) from the case's
 * seed ^ salt; NULL, with msg, when out of memory. */
static uint8_t *dense_and_tile(const fm_random_case *c, uint64_t salt, int64_t *bq, int64_t *bk,
                               char *msg, size_t len)
{
    fm_rng rng;
    fm_rng_seed(&rng, c->seed ^ salt);
    *bq = draw_block(&rng, c->mask.seqlen_q), *bk = draw_block(&rng, c->mask.seqlen_k);
    return dense_of(&c->mask, msg, len);
}

static int prop_tiles_sound(const fm_random_case *c, void *ctx, char *msg, size_t len)
{
    tightness *t = ctx;
    const fm_mask *m = &c->mask;
    int64_t bq, bk;
    uint8_t *d = dense_and_tile(c, 0x7111e5ull, &bq, &bk, msg, len);
    if (!d) return 0;
    fm_block_summary s;
    if (fm_block_summary_build(m, bk, &s)) {
        snprintf(msg, len, "summary failed: %s", fm_last_error());
        free(d);
        return 0;
    }
    fm_tile_stats stats;
    if (fm_mask_tile_stats(m, bq, bk, &stats)) {
        snprintf(msg, len, "tile stats failed: %s", fm_last_error());
        free(d);
        fm_block_summary_free(&s);
        return 0;
    }
    int ok = 1;
    fm_tile_stats seen = {0};
    const int64_t sq = m->seqlen_q, sk = m->seqlen_k, nq = (sq + bq - 1) / bq;
    for (int64_t b = 0; b < m->batch && ok; b++)
        for (int64_t h = 0; h < m->heads && ok; h++)
            for (int64_t qb = 0; qb < nq && ok; qb++)
                for (int64_t kb = 0; kb < s.n_blocks && ok; kb++) {
                    int any_allowed = 0, any_masked = 0;
                    const uint8_t *p = d + (size_t)(b * m->heads + h) * (size_t)(sq * sk);
                    for (int64_t i = qb * bq; i < sq && i < (qb + 1) * bq; i++)
                        for (int64_t j = kb * bk; j < sk && j < (kb + 1) * bk; j++) {
                            if (p[i * sk + j]) any_allowed = 1;
                            else any_masked = 1;
                        }
                    fm_tile_class cls = fm_block_summary_classify(&s, b, h, bq, qb, kb);
                    seen.total++;
                    seen.masked += cls == FM_TILE_MASKED;
                    seen.partial += cls == FM_TILE_PARTIAL;
                    seen.unmasked += cls == FM_TILE_UNMASKED;
                    t->tiles++;
                    if (!any_allowed) t->empty++, t->empty_called_masked += cls == FM_TILE_MASKED;
                    if (!any_masked) t->full++, t->full_called_unmasked += cls == FM_TILE_UNMASKED;
                    /* Tightness of the unmasked call, exactly: the tile is called unmasked
                     * iff the causal rule masks none of it and, for LT and for UT, the block's
                     * non-empty intervals all lie below the tile or all above it (empty
                     * intervals cost nothing). */
                    const int64_t r0 = qb * bq, r1 = r0 + bq < sq ? r0 + bq : sq;
                    const int64_t c0 = kb * bk, c1 = c0 + bk < sk ? c0 + bk : sk;
                    int lt_above = 1, lt_below = 1, ut_above = 1, ut_below = 1;
                    for (int64_t j = c0; j < c1; j++) {
                        const int32_t *col = fm_mask_column(m, b, h, j);
                        if (col[FM_LTS] < col[FM_LTE]) {
                            lt_below &= col[FM_LTS] >= r1;
                            lt_above &= col[FM_LTE] <= r0;
                        }
                        if (col[FM_UTS] < col[FM_UTE]) {
                            ut_below &= col[FM_UTS] >= r1;
                            ut_above &= col[FM_UTE] <= r0;
                        }
                    }
                    const int64_t off = fm_causal_offset(m->causal, sq, sk);
                    const int causal_clear = m->causal == FM_CAUSAL_NONE || c1 - 1 <= r0 + off;
                    const int expect_unmasked =
                        (lt_below || lt_above) && (ut_below || ut_above) && causal_clear;
                    if (cls != FM_TILE_MASKED && (cls == FM_TILE_UNMASKED) != expect_unmasked) {
                        snprintf(msg, len, "block %lldx%lld: tile b=%lld head=%lld qb=%lld "
                                 "kb=%lld called %s, the summary rule over non-empty intervals "
                                 "says %s", (long long)bq, (long long)bk, (long long)b,
                                 (long long)h, (long long)qb, (long long)kb,
                                 cls == FM_TILE_UNMASKED ? "unmasked" : "partial",
                                 expect_unmasked ? "unmasked" : "partial");
                        ok = 0;
                    }
                    if ((cls == FM_TILE_MASKED && any_allowed) ||
                        (cls == FM_TILE_UNMASKED && any_masked)) {
                        snprintf(msg, len, "block %lldx%lld: tile b=%lld head=%lld qb=%lld "
                                 "kb=%lld called %s but has an %s element",
                                 (long long)bq, (long long)bk, (long long)b, (long long)h,
                                 (long long)qb, (long long)kb,
                                 cls == FM_TILE_MASKED ? "masked" : "unmasked",
                                 cls == FM_TILE_MASKED ? "allowed" : "masked");
                        ok = 0;
                    }
                }
    /* The dK/dV kernels' walk down a key block's tiles (fm_next_live_qblock, which jumps over
     * masked runs) visits exactly the live tiles, with the same classes, in order. */
    const int64_t offset = fm_causal_offset(s.causal, sq, sk);
    for (int64_t b = 0; b < m->batch && ok; b++)
        for (int64_t h = 0; h < m->heads && ok; h++)
            for (int64_t kb = 0; kb < s.n_blocks && ok; kb++) {
                const int32_t *mm = fm_block_summary_at(&s, b, h, kb);
                const int64_t c0 = kb * bk, c1 = c0 + bk < sk ? c0 + bk : sk;
                fm_tile_class jcls = FM_TILE_MASKED;
                int64_t next = fm_next_live_qblock(mm, s.causal, offset, 0, bq, sq, c0, c1, &jcls);
                for (int64_t qb = 0; qb <= nq && ok; qb++) {
                    const fm_tile_class cls =
                        qb < nq ? fm_block_summary_classify(&s, b, h, bq, qb, kb) : FM_TILE_PARTIAL;
                    if (qb < nq && cls == FM_TILE_MASKED) continue;
                    if (next != qb || (qb < nq && jcls != cls)) {
                        snprintf(msg, len, "block %lldx%lld, b=%lld head=%lld kb=%lld: the walk "
                                 "gives query block %lld (class %d), the scan %lld (class %d)",
                                 (long long)bq, (long long)bk, (long long)b, (long long)h,
                                 (long long)kb, (long long)next, (int)jcls, (long long)qb,
                                 (int)cls);
                        ok = 0;
                    } else if (qb < nq) {
                        next = fm_next_live_qblock(mm, s.causal, offset, qb + 1, bq, sq, c0, c1,
                                                   &jcls);
                    }
                }
            }
    if (ok && (seen.total != stats.total || seen.masked != stats.masked ||
               seen.partial != stats.partial || seen.unmasked != stats.unmasked)) {
        snprintf(msg, len, "fm_mask_tile_stats disagrees with the per-tile classification");
        ok = 0;
    }
    free(d);
    fm_block_summary_free(&s);
    return ok;
}

static void test_tiles_sound(void **state)
{
    (void)state;
    tightness t = {0};
    int n = fm_check_property("tiles_sound", prop_tiles_sound, &t, DEFAULT_TRIALS, NULL);
    /* Longer sequences: many tiles per (b, head), as kernels see them. */
    fm_case_limits long_limits = fm_case_limits_default();
    long_limits.max_seqlen = LONG_SEQLEN;
    long_limits.max_batch = 1;
    n += fm_check_property("tiles_sound_long", prop_tiles_sound, &t, LONG_TRIALS, &long_limits);
    /* Tightness is a quality, not a correctness property: reported, not asserted. */
    fprintf(stderr,
            "[tiles_sound] %d cases, %lld tiles: %lld of %lld truly empty tiles called masked "
            "(%.1f%%), %lld of %lld truly full tiles called unmasked (%.1f%%)\n",
            n, (long long)t.tiles, (long long)t.empty_called_masked, (long long)t.empty,
            t.empty ? 100.0 * (double)t.empty_called_masked / (double)t.empty : 100.0,
            (long long)t.full_called_unmasked, (long long)t.full,
            t.full ? 100.0 * (double)t.full_called_unmasked / (double)t.full : 100.0);
}

/* ---------------------------------------------------------------- Paddle startend */

/* Independent of masks/startend.c: can the C-column form (with the mask's causal flag) express
 * this dense mask as Paddle reads it? Paddle's causal=True is bottom-right (a top_left mask
 * with Sq != Sk would mean another mask) and has no C = 4 form. Otherwise read each column's
 * masked runs below the causal part from the dense mask. */
static int dense_fits_startend(const fm_mask *m, const uint8_t *d, int columns)
{
    const int64_t sq = m->seqlen_q, sk = m->seqlen_k;
    const int64_t off = fm_causal_offset(m->causal, sq, sk);
    const int causal = m->causal != FM_CAUSAL_NONE;
    if (m->causal == FM_CAUSAL_TOP_LEFT && sq != sk) return 0;
    if (columns == 4) return !causal;
    for (int64_t bh = 0; bh < m->batch * m->heads; bh++)
        for (int64_t j = 0; j < sk; j++) {
            int64_t first = causal ? j - off : 0;
            if (first < 0) first = 0;
            int64_t starts[4], ends[4];
            int n = 0;
            for (int64_t i = first; i < sq; i++) {
                int masked = !d[(size_t)bh * (size_t)(sq * sk) + (size_t)(i * sk + j)];
                if (masked && (i == first || !(n && ends[n - 1] == i))) {
                    if (n == 4) return 0;
                    starts[n] = i, ends[n] = i + 1, n++;
                } else if (masked) {
                    ends[n - 1] = i + 1;
                }
            }
            if (n > 2) return 0;
            if (causal && n == 2) return 0;                     /* no UT in causal forms */
            if (columns == 1 && n == 1 && ends[0] != sq) return 0; /* LTE = Sq implied */
            if (!causal) {                                      /* LTE = Sq, UTS = 0 implied */
                if (n == 1 && starts[0] != 0 && ends[0] != sq) return 0;
                if (n == 2 && (starts[0] != 0 || ends[1] != sq)) return 0;
            }
        }
    return 1;
}

typedef struct startend_counts {
    int64_t converted[5], refused[5];
} startend_counts;

static int prop_startend(const fm_random_case *c, void *ctx, char *msg, size_t len)
{
    startend_counts *counts = ctx;
    const fm_mask *m = &c->mask;
    uint8_t *d = dense_of(m, msg, len);
    if (!d) return 0;
    int ok = 1;
    static const int forms[] = {1, 2, 4};
    for (int f = 0; f < 3 && ok; f++) {
        int columns = forms[f];
        if (columns == 1 && m->causal == FM_CAUSAL_NONE) continue; /* no such form */
        int32_t *se = malloc((size_t)(m->batch * m->heads * m->seqlen_k * columns) * 4);
        fm_mask back = {0};
        uint8_t *d2 = NULL;
        int expect = dense_fits_startend(m, d, columns);
        fm_status st = fm_mask_to_startend(m, columns, se);
        if (st == FM_ERR_NOT_REPRESENTABLE && !expect) {
            counts->refused[columns]++;
        } else if (st != FM_OK || !expect) {
            snprintf(msg, len, "C=%d: to_startend returned %s (%s) but the dense mask %s fit",
                     columns, fm_status_string(st), fm_last_error(), expect ? "does" : "does not");
            ok = 0;
        } else if (fm_mask_from_startend(&back, se, m->batch, m->heads, m->seqlen_q, m->seqlen_k,
                                         columns, m->causal) != FM_OK) {
            snprintf(msg, len, "C=%d: from_startend refused to_startend's output: %s", columns,
                     fm_last_error());
            ok = 0;
        } else if (!(d2 = dense_of(&back, msg, len))) {
            ok = 0;
        } else if (first_difference(d, d2, dense_size(m)) >= 0) {
            snprintf(msg, len, "C=%d: startend round trip changes the dense mask at %ld",
                     columns, first_difference(d, d2, dense_size(m)));
            ok = 0;
        } else {
            counts->converted[columns]++;
        }
        fm_mask_free(&back);
        free(d2);
        free(se);
    }
    free(d);
    return ok;
}

static void test_startend_round_trip(void **state)
{
    (void)state;
    startend_counts k = {{0}, {0}};
    const int n = fm_check_property("startend_round_trip", prop_startend, &k, DEFAULT_TRIALS,
                                    NULL);
    fprintf(stderr, "[startend_round_trip] converted/refused: C=1 %lld/%lld, C=2 %lld/%lld, "
            "C=4 %lld/%lld\n", (long long)k.converted[1], (long long)k.refused[1],
            (long long)k.converted[2], (long long)k.refused[2], (long long)k.converted[4],
            (long long)k.refused[4]);
    /* The property must have exercised every form both ways, else it proves little. A short
     * run (FM_TRIALS=10, as the seed sweep makes them) may not draw every form: the coverage is
     * demanded of runs of at least 100 cases (the default draws DEFAULT_TRIALS). */
    if (n >= 100) {
        assert_true(k.converted[1] > 0 && k.converted[2] > 0 && k.converted[4] > 0);
        assert_true(k.refused[1] > 0 && k.refused[2] > 0);
    }
}

/* ---------------------------------------------------------------- FlexAttention blocks */

static int prop_flex(const fm_random_case *c, void *ctx, char *msg, size_t len)
{
    const fm_mask *m = &c->mask;
    int64_t bq, bk;
    uint8_t *d = dense_and_tile(c, 0xf1e8ull, &bq, &bk, msg, len);
    if (!d) return 0;
    fm_flex_block_mask fb;
    if (fm_mask_to_flex_blocks(m, bq, bk, &fb) != FM_OK) {
        snprintf(msg, len, "to_flex_blocks failed: %s", fm_last_error());
        free(d);
        return 0;
    }
    const int64_t sq = m->seqlen_q, sk = m->seqlen_k;
    int ok = fb.n_q_blocks == (sq + bq - 1) / bq && fb.n_kv_blocks == (sk + bk - 1) / bk;
    if (!ok) snprintf(msg, len, "block counts %lld x %lld are wrong", (long long)fb.n_q_blocks,
                      (long long)fb.n_kv_blocks);
    char *listed = calloc((size_t)fb.n_kv_blocks, 1);
    for (int64_t bh = 0; bh < m->batch * m->heads && ok; bh++)
        for (int64_t qb = 0; qb < fb.n_q_blocks && ok; qb++) {
            size_t row = (size_t)(bh * fb.n_q_blocks + qb);
            memset(listed, 0, (size_t)fb.n_kv_blocks);
            /* kind 1 = partial list, kind 2 = full list */
            for (int kind = 1; kind <= 2 && ok; kind++) {
                int32_t count = kind == 1 ? fb.kv_num_blocks[row] : fb.full_kv_num_blocks[row];
                const int32_t *idx = (kind == 1 ? fb.kv_indices : fb.full_kv_indices) +
                                     row * (size_t)fb.n_kv_blocks;
                for (int64_t k = 0; k < fb.n_kv_blocks && ok; k++) {
                    if (k >= count) { /* padding */
                        if (idx[k] != 0) ok = 0, snprintf(msg, len, "padding not zero");
                        continue;
                    }
                    if (idx[k] < 0 || idx[k] >= fb.n_kv_blocks || listed[idx[k]] ||
                        (k > 0 && idx[k] <= idx[k - 1])) {
                        snprintf(msg, len, "bad or repeated kv index %d", (int)idx[k]);
                        ok = 0;
                        continue;
                    }
                    listed[idx[k]] = (char)kind;
                }
            }
            /* Each key block against the dense mask: unlisted => no allowed element,
             * full => no masked element. */
            const uint8_t *p = d + (size_t)bh * (size_t)(sq * sk);
            for (int64_t kb = 0; kb < fb.n_kv_blocks && ok; kb++) {
                int any_allowed = 0, any_masked = 0;
                for (int64_t i = qb * bq; i < sq && i < (qb + 1) * bq; i++)
                    for (int64_t j = kb * bk; j < sk && j < (kb + 1) * bk; j++)
                        p[i * sk + j] ? (any_allowed = 1) : (any_masked = 1);
                if ((listed[kb] == 0 && any_allowed) || (listed[kb] == 2 && any_masked)) {
                    snprintf(msg, len, "block %lldx%lld, bh=%lld qb=%lld kb=%lld: %s block has "
                             "a %s element", (long long)bq, (long long)bk, (long long)bh,
                             (long long)qb, (long long)kb, listed[kb] ? "full" : "skipped",
                             listed[kb] ? "masked" : "allowed");
                    ok = 0;
                }
            }
        }
    free(listed);
    fm_flex_block_mask_free(&fb);
    free(d);
    return ok;
}

static void test_flex_blocks(void **state)
{
    (void)state;
    fm_check_property("flex_blocks", prop_flex, NULL, DEFAULT_TRIALS, NULL);
    fm_case_limits long_limits = fm_case_limits_default();
    long_limits.max_seqlen = LONG_SEQLEN;
    long_limits.max_batch = 1;
    fm_check_property("flex_blocks_long", prop_flex, NULL, LONG_TRIALS, &long_limits);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dense_round_trip),
        cmocka_unit_test(test_allowed_pairs),
        cmocka_unit_test(test_tiles_sound),
        cmocka_unit_test(test_startend_round_trip),
        cmocka_unit_test(test_flex_blocks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
