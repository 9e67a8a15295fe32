/* masks/bbm.c — Binary Block Masking (arXiv 2409.15097): building the per-tile codes, the
 * packed bits of partial tiles and the per-query-tile run of full tiles from a dense boolean
 * mask, element lookup, tile statistics, allowed-pair counts and the way back to dense.
 * Layer: masks <- core. The CPU path (cpu/bbm_*.c) and the dense-mask reference read it.
 */
#include <stdlib.h>
#include <string.h>

#include "flashmask/bbm.h"
#include "fm_internal.h"

void fm_bbm_free(fm_bbm *m)
{
    if (!m) return;
    free(m->codes);
    free(m->bits_offset);
    free(m->bits);
    free(m->run_start);
    free(m->run_end);
    memset(m, 0, sizeof *m);
}

/* Sizes and pointers of a build request; every product is checked before anything is read. */
static fm_status check_request(const uint8_t *allowed, int64_t batch, int64_t heads,
                               int64_t seqlen_q, int64_t seqlen_k, int64_t block_q,
                               int64_t block_k)
{
    const struct { const char *name; int64_t value; } dims[] = {
        {"batch", batch},       {"heads", heads},     {"seqlen_q", seqlen_q},
        {"seqlen_k", seqlen_k}, {"block_q", block_q}, {"block_k", block_k},
    };
    for (size_t i = 0; i < sizeof dims / sizeof dims[0]; i++)
        if (dims[i].value < 1)
            return fm_fail(FM_ERR_INVALID, "bbm: %s = %lld, must be >= 1", dims[i].name,
                           (long long)dims[i].value);
    if (seqlen_q > INT32_MAX || seqlen_k > INT32_MAX)
        return fm_fail(FM_ERR_OVERFLOW, "bbm: seqlen_q = %lld, seqlen_k = %lld: must be <= %d",
                       (long long)seqlen_q, (long long)seqlen_k, INT32_MAX);
    /* A tile's bits are indexed with int64 and stored in words: keep a tile below 2^31 bits. */
    if (block_q > seqlen_q) block_q = seqlen_q;
    if (block_k > seqlen_k) block_k = seqlen_k;
    size_t tile_bits, n;
    if (fm_mul_size(&tile_bits, block_q, block_k) || tile_bits > ((size_t)1 << 31))
        return fm_fail(FM_ERR_OVERFLOW, "bbm: tile %lld x %lld holds more than 2^31 elements",
                       (long long)block_q, (long long)block_k);
    int64_t all[] = {batch, heads, seqlen_q, seqlen_k};
    if (fm_mul_sizes(&n, 4, all))
        return fm_fail(FM_ERR_OVERFLOW, "bbm: B*Hm*Sq*Sk = %lld*%lld*%lld*%lld overflows",
                       (long long)batch, (long long)heads, (long long)seqlen_q,
                       (long long)seqlen_k);
    if (!allowed) return fm_fail(FM_ERR_INVALID, "bbm: NULL dense mask");
    return fm_dense_check_values("bbm: ", allowed, batch, heads, seqlen_q, seqlen_k);
}

/* Counts the allowed elements of one tile (values already checked to be 0 or 1). */
static int64_t count_tile(const uint8_t *plane, int64_t seqlen_k, int64_t r0, int64_t r1,
                          int64_t c0, int64_t c1)
{
    int64_t n = 0;
    for (int64_t i = r0; i < r1; i++) {
        const uint8_t *row = plane + i * seqlen_k;
        for (int64_t j = c0; j < c1; j++) n += row[j];
    }
    return n;
}

/* Longest run of full tiles in one query tile's row of codes (first one on ties). */
static void longest_full_run(const uint8_t *codes, int64_t n, int32_t *start, int32_t *end)
{
    int64_t best_s = 0, best_len = 0, s = 0;
    for (int64_t kb = 0; kb <= n; kb++) {
        if (kb < n && codes[kb] == FM_TILE_UNMASKED) continue;
        if (kb - s > best_len) best_s = s, best_len = kb - s;
        s = kb + 1;
    }
    *start = (int32_t)best_s;
    *end = (int32_t)(best_s + best_len);
}

fm_status fm_bbm_from_dense(fm_bbm *out, const uint8_t *allowed, int64_t batch, int64_t heads,
                            int64_t seqlen_q, int64_t seqlen_k, int64_t block_q,
                            int64_t block_k)
{
    fm_clear_error();
    if (!out) return fm_fail(FM_ERR_INVALID, "bbm: NULL output");
    memset(out, 0, sizeof *out);
    fm_status st = check_request(allowed, batch, heads, seqlen_q, seqlen_k, block_q, block_k);
    if (st != FM_OK) return st;

    fm_bbm m = {0};
    m.batch = batch, m.heads = heads, m.seqlen_q = seqlen_q, m.seqlen_k = seqlen_k;
    /* A tile never exceeds the sequence: clamp, so that bits are not wasted on absent rows. */
    if (block_q > seqlen_q) block_q = seqlen_q;
    if (block_k > seqlen_k) block_k = seqlen_k;
    m.block_q = block_q, m.block_k = block_k;
    m.n_q_blocks = (seqlen_q + block_q - 1) / block_q;
    m.n_k_blocks = (seqlen_k + block_k - 1) / block_k;
    m.words_per_tile = (block_q * block_k + 63) / 64;

    size_t n_tiles, n_rows;
    int64_t tile_dims[] = {batch, heads, m.n_q_blocks, m.n_k_blocks};
    int64_t row_dims[] = {batch, heads, m.n_q_blocks};
    if (fm_mul_sizes(&n_tiles, 4, tile_dims) || fm_mul_sizes(&n_rows, 3, row_dims))
        return fm_fail(FM_ERR_OVERFLOW, "bbm: tile count overflows");
    m.codes = fm_alloc(n_tiles, 1, "bbm codes");
    m.bits_offset = fm_alloc(n_tiles, sizeof(int64_t), "bbm bit offsets");
    m.run_start = fm_alloc(n_rows, sizeof(int32_t), "bbm run starts");
    m.run_end = fm_alloc(n_rows, sizeof(int32_t), "bbm run ends");
    if (!m.codes || !m.bits_offset || !m.run_start || !m.run_end) {
        fm_bbm_free(&m);
        return FM_ERR_NOMEM;
    }

    /* Pass 1: the code of every tile, and a word offset for each partial one. */
    size_t plane = (size_t)seqlen_q * (size_t)seqlen_k, t = 0;
    for (int64_t b = 0; b < batch; b++)
        for (int64_t h = 0; h < heads; h++) {
            const uint8_t *p = allowed + ((size_t)b * (size_t)heads + (size_t)h) * plane;
            for (int64_t qb = 0; qb < m.n_q_blocks; qb++)
                for (int64_t kb = 0; kb < m.n_k_blocks; kb++, t++) {
                    int64_t r0 = qb * block_q,
                            r1 = r0 + block_q < seqlen_q ? r0 + block_q : seqlen_q;
                    int64_t c0 = kb * block_k,
                            c1 = c0 + block_k < seqlen_k ? c0 + block_k : seqlen_k;
                    const int64_t count = count_tile(p, seqlen_k, r0, r1, c0, c1);
                    m.bits_offset[t] = -1;
                    if (count == 0) m.codes[t] = FM_TILE_MASKED;
                    else if (count == (r1 - r0) * (c1 - c0)) m.codes[t] = FM_TILE_UNMASKED;
                    else {
                        m.codes[t] = FM_TILE_PARTIAL;
                        m.bits_offset[t] = m.n_partial * m.words_per_tile;
                        m.n_partial++;
                    }
                }
        }

    /* Pass 2: pack the bits of partial tiles (row-major inside the tile, stride block_k). */
    m.bits = fm_calloc((size_t)(m.n_partial ? m.n_partial : 1), (size_t)m.words_per_tile * 8,
                       "bbm partial-tile bits");
    if (!m.bits) {
        fm_bbm_free(&m);
        return FM_ERR_NOMEM;
    }
    t = 0;
    for (int64_t b = 0; b < batch; b++)
        for (int64_t h = 0; h < heads; h++) {
            const uint8_t *p = allowed + ((size_t)b * (size_t)heads + (size_t)h) * plane;
            for (int64_t qb = 0; qb < m.n_q_blocks; qb++)
                for (int64_t kb = 0; kb < m.n_k_blocks; kb++, t++) {
                    if (m.codes[t] != FM_TILE_PARTIAL) continue;
                    uint64_t *w = m.bits + m.bits_offset[t];
                    int64_t r0 = qb * block_q, c0 = kb * block_k;
                    for (int64_t r = 0; r < block_q && r0 + r < seqlen_q; r++)
                        for (int64_t c = 0; c < block_k && c0 + c < seqlen_k; c++) {
                            int64_t bit = r * block_k + c;
                            if (p[(r0 + r) * seqlen_k + c0 + c])
                                w[bit >> 6] |= (uint64_t)1 << (bit & 63);
                        }
                }
        }

    /* The contiguous-run optimisation: per query tile, the longest run of full key tiles. */
    for (size_t row = 0; row < n_rows; row++)
        longest_full_run(m.codes + row * (size_t)m.n_k_blocks, m.n_k_blocks, &m.run_start[row],
                         &m.run_end[row]);
    *out = m;
    return FM_OK;
}

int fm_bbm_is_allowed(const fm_bbm *m, int64_t b, int64_t h, int64_t i, int64_t j)
{
    if (i < 0 || j < 0 || i >= m->seqlen_q || j >= m->seqlen_k) return 0;
    if (b < 0 || h < 0 || b >= m->batch || h >= m->heads) return 0;
    int64_t qb = i / m->block_q, kb = j / m->block_k;
    size_t t = (size_t)(((b * m->heads + h) * m->n_q_blocks + qb) * m->n_k_blocks + kb);
    switch ((fm_tile_class)m->codes[t]) {
    case FM_TILE_MASKED: return 0;
    case FM_TILE_UNMASKED: return 1;
    default:
        return fm_bbm_tile_bit(m->bits + m->bits_offset[t], m->block_k, i - qb * m->block_q,
                               j - kb * m->block_k);
    }
}

fm_status fm_bbm_tile_stats(const fm_bbm *m, fm_tile_stats *out)
{
    fm_clear_error();
    if (!m || !out || !m->codes) return fm_fail(FM_ERR_INVALID, "bbm tile stats: NULL argument");
    memset(out, 0, sizeof *out);
    size_t n = (size_t)(m->batch * m->heads * m->n_q_blocks * m->n_k_blocks);
    for (size_t t = 0; t < n; t++) {
        out->total++;
        switch ((fm_tile_class)m->codes[t]) {
        case FM_TILE_MASKED: out->masked++; break;
        case FM_TILE_UNMASKED: out->unmasked++; break;
        default: out->partial++; break;
        }
    }
    return FM_OK;
}

int64_t fm_bbm_total_allowed_pairs(const fm_bbm *m)
{
    int64_t total = 0;
    size_t t = 0;
    for (int64_t bh = 0; bh < m->batch * m->heads; bh++)
        for (int64_t qb = 0; qb < m->n_q_blocks; qb++)
            for (int64_t kb = 0; kb < m->n_k_blocks; kb++, t++) {
                int64_t r0 = qb * m->block_q, c0 = kb * m->block_k;
                int64_t rows = m->seqlen_q - r0 < m->block_q ? m->seqlen_q - r0 : m->block_q;
                int64_t cols = m->seqlen_k - c0 < m->block_k ? m->seqlen_k - c0 : m->block_k;
                if (m->codes[t] == FM_TILE_UNMASKED) total += rows * cols;
                if (m->codes[t] != FM_TILE_PARTIAL) continue;
                /* bits outside the tile's real extent are never set, so popcount is exact */
                const uint64_t *w = m->bits + m->bits_offset[t];
                for (int64_t k = 0; k < m->words_per_tile; k++) total += __builtin_popcountll(w[k]);
            }
    return total;
}

fm_status fm_bbm_to_dense(const fm_bbm *m, uint8_t *allowed)
{
    fm_clear_error();
    if (!m || !allowed || !m->codes) return fm_fail(FM_ERR_INVALID, "bbm to dense: NULL argument");
    size_t idx = 0;
    for (int64_t b = 0; b < m->batch; b++)
        for (int64_t h = 0; h < m->heads; h++)
            for (int64_t i = 0; i < m->seqlen_q; i++)
                for (int64_t j = 0; j < m->seqlen_k; j++)
                    allowed[idx++] = (uint8_t)fm_bbm_is_allowed(m, b, h, i, j);
    return FM_OK;
}

fm_status fm_bbm_check_problem(const fm_problem *p, const fm_bbm *m)
{
    if (!m || !m->codes) return fm_fail(FM_ERR_INVALID, "bbm: NULL mask");
    return fm_problem_validate_shape(p, m->batch, m->heads, m->seqlen_q, m->seqlen_k);
}

fm_status fm_dense_check_problem(const fm_problem *p, const uint8_t *allowed, int64_t mask_heads)
{
    if (!allowed) return fm_fail(FM_ERR_INVALID, "dense mask: NULL");
    if (!p) return fm_fail(FM_ERR_INVALID, "problem: NULL descriptor");
    fm_status st = fm_problem_validate_shape(p, p->batch, mask_heads, p->seqlen_q, p->seqlen_k);
    if (st != FM_OK) return st;
    return fm_dense_check_values("", allowed, p->batch, mask_heads, p->seqlen_q, p->seqlen_k);
}

fm_status fm_dense_check_values(const char *who, const uint8_t *allowed, int64_t batch,
                                int64_t heads, int64_t seqlen_q, int64_t seqlen_k)
{
    const uint8_t *row = allowed;
    for (int64_t b = 0; b < batch; b++)
        for (int64_t h = 0; h < heads; h++)
            for (int64_t i = 0; i < seqlen_q; i++, row += seqlen_k)
                for (int64_t j = 0; j < seqlen_k; j++)
                    if (row[j] > 1)
                        return fm_fail(FM_ERR_INVALID,
                                       "%sdense mask value %u at b=%lld head=%lld row=%lld "
                                       "col=%lld; expected 0 (masked) or 1 (allowed)",
                                       who, (unsigned)row[j], (long long)b, (long long)h,
                                       (long long)i, (long long)j);
    return FM_OK;
}
