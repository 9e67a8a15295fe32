/* cpu/packed_gemm.c — the tile products of the forward and the backward on packed operands
 * (the forward: K and V packed once per head and each query tile once per task; the backward:
 * backward.c), where a BLAS call per product would pack every key run again for every query
 * tile and every query tile again for every run (why that matters, and the measurements:
 * docs/algorithm.md, "Packed products"). The arithmetic is
 * BLIS's gemm micro-kernel, the register-blocked MR x NR kernel BLIS selects for this CPU at
 * run time; the loop over its blocks is ours, so that blocks the mask hides can be left out.
 * Layer: cpu <- BLIS (optional, meson option blis; without it fm_packed_kernel_get says no and
 * the forward and the backward keep matmul_tile.c's OpenBLAS products).
 *
 * Only the micro-kernel and its context are taken from BLIS; OpenBLAS remains the BLAS of the
 * library (matmul_tile.c, the sgemm baseline): this file never includes cblas.h, and BLIS is
 * linked after OpenBLAS so that the BLAS symbols both export resolve to OpenBLAS (a test checks).
 */
#include "packed_gemm.h"

#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define FM_PACK_AVX2 1
#endif

#ifdef FM_HAVE_BLIS
#include <blis.h>

typedef void (*blis_sgemm_ukr)(dim_t m, dim_t n, dim_t k, float *alpha, float *a, float *b,
                               float *beta, float *c, inc_t rs_c, inc_t cs_c, auxinfo_t *data,
                               cntx_t *cntx);
#endif

int fm_packed_kernel_get(fm_packed_kernel *kernel, int64_t block_k)
{
    memset(kernel, 0, sizeof *kernel);
#ifdef FM_HAVE_BLIS
    /* BLIS's portable reference kernels (the "generic" configuration, where BLIS has no kernels
     * for this CPU) are slower than OpenBLAS: leave the products to it there */
    if (bli_arch_query_id() == BLIS_ARCH_GENERIC) return 0;
    cntx_t *cntx = bli_gks_query_cntx();
    if (!cntx) return 0;
    const dim_t mr = bli_cntx_get_blksz_def_dt(BLIS_FLOAT, BLIS_MR, cntx);
    const dim_t nr = bli_cntx_get_blksz_def_dt(BLIS_FLOAT, BLIS_NR, cntx);
    /* packed panels of exactly MR / NR (some configurations pad them: then use OpenBLAS) */
    if (bli_cntx_get_blksz_max_dt(BLIS_FLOAT, BLIS_MR, cntx) != mr ||
        bli_cntx_get_blksz_max_dt(BLIS_FLOAT, BLIS_NR, cntx) != nr)
        return 0;
    void *ukr = (void *)bli_cntx_get_l3_nat_ukr_dt(BLIS_FLOAT, BLIS_GEMM_UKR, cntx);
    if (!ukr || mr < 4 || nr < 8 || block_k % nr != 0) return 0; /* (forward.c's table bounds) */
    *kernel = (fm_packed_kernel){mr, nr, ukr, cntx};
    return 1;
#else
    (void)block_k;
    return 0;
#endif
}

static int64_t round_up(int64_t x, int64_t to) { return (x + to - 1) / to * to; }

size_t fm_packed_a_floats(const fm_packed_kernel *kernel, int64_t m, int64_t k)
{
    return (size_t)(round_up(m, kernel->mr) * k);
}

size_t fm_packed_b_floats(const fm_packed_kernel *kernel, int64_t k, int64_t n)
{
    return (size_t)(k * round_up(n, kernel->nr));
}

/* Columns [p0, k) of one panel of `width` (= MR or NR) interleaved rows of a row-major matrix:
 * dst[p * width + i] = src[i * ld + p], rows past `count` zero. */
static void pack_columns(int64_t width, int64_t count, int64_t p0, int64_t k, const float *src,
                         int64_t ld, float *dst)
{
    for (int64_t p = p0; p < k; p++)
        for (int64_t i = 0; i < width; i++) dst[p * width + i] = i < count ? src[i * ld + p] : 0.0f;
}

#ifdef FM_PACK_AVX2
/* Rows r[0 .. 7] (8 floats each: columns p .. p + 7 of 8 rows) transposed in registers: on
 * return r[j] holds column p + j of the 8 rows. */
__attribute__((target("avx2"), always_inline)) static inline void transpose8(__m256 r[8])
{
    const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    const __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    const __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    const __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    const __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    r[0] = _mm256_permute2f128_ps(s0, s4, 0x20), r[4] = _mm256_permute2f128_ps(s0, s4, 0x31);
    r[1] = _mm256_permute2f128_ps(s1, s5, 0x20), r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
    r[2] = _mm256_permute2f128_ps(s2, s6, 0x20), r[6] = _mm256_permute2f128_ps(s2, s6, 0x31);
    r[3] = _mm256_permute2f128_ps(s3, s7, 0x20), r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

/* Columns p .. p + 7 of `rows` (<= 8; zeros below) rows of src (stride ld), transposed: row
 * group r[j] = column p + j. The row count is a compile-time constant where inlined with one. */
__attribute__((target("avx2"), always_inline)) static inline void load_rows8(
    __m256 r[8], int64_t rows, const float *src, int64_t ld)
{
    for (int i = 0; i < 8; i++) r[i] = i < rows ? _mm256_loadu_ps(src + i * ld) : _mm256_setzero_ps();
    transpose8(r);
}

/* pack_columns with AVX2 for the common widths, 8 x 8 blocks transposed in registers, columns
 * past the last multiple of 8 through pack_columns:
 *   W = 8 or 16 (NR) with every row present: each 8-column step writes 8 whole rows of the
 *       panel (W floats each), one after the other;
 *   W = 6 (MR of the zen micro-kernels) with every row present: 6 rows loaded, each column
 *       stored as 8 floats whose last 2 the next column's store overwrites (the last column:
 *       4 + 2, nothing written past it);
 *   anything else (a last panel with fewer rows): the general form, rows past `count` zero. */
__attribute__((target("avx2"))) static void pack_panel_avx2(int64_t width, int64_t count,
                                                            int64_t k, const float *src,
                                                            int64_t ld, float *dst)
{
    const int64_t k8 = k / 8 * 8;
    __m256 r[8], r2[8];
    if (count == width && width == 16) {
        for (int64_t p = 0; p < k8; p += 8) {
            load_rows8(r, 8, src + p, ld);
            load_rows8(r2, 8, src + 8 * ld + p, ld);
            float *d = dst + p * 16;
            for (int j = 0; j < 8; j++) {
                _mm256_storeu_ps(d + j * 16, r[j]);
                _mm256_storeu_ps(d + j * 16 + 8, r2[j]);
            }
        }
    } else if (count == width && width == 8) {
        for (int64_t p = 0; p < k8; p += 8) {
            load_rows8(r, 8, src + p, ld);
            for (int j = 0; j < 8; j++) _mm256_storeu_ps(dst + p * 8 + j * 8, r[j]);
        }
    } else if (count == width && width == 6) {
        for (int64_t p = 0; p < k8; p += 8) {
            load_rows8(r, 6, src + p, ld);
            float *d = dst + p * 6;
            for (int j = 0; j < 7; j++) _mm256_storeu_ps(d + j * 6, r[j]);
            _mm_storeu_ps(d + 42, _mm256_castps256_ps128(r[7]));
            _mm_storel_pi((__m64 *)(d + 46), _mm256_extractf128_ps(r[7], 1));
        }
    } else {
        for (int64_t i0 = 0; i0 < width; i0 += 8) {
            const int64_t keep = width - i0 < 8 ? width - i0 : 8;
            const int64_t rows = count - i0 < 0 ? 0 : count - i0 < 8 ? count - i0 : 8;
            for (int64_t p = 0; p < k8; p += 8) {
                load_rows8(r, rows, src + i0 * ld + p, ld);
                float *d = dst + p * width + i0;
                for (int j = 0; j < 8; j++) {
                    if (keep == 8) {
                        _mm256_storeu_ps(d + j * width, r[j]);
                    } else { /* keep = 6: four, then two */
                        _mm_storeu_ps(d + j * width, _mm256_castps256_ps128(r[j]));
                        _mm_storel_pi((__m64 *)(d + j * width + 4), _mm256_extractf128_ps(r[j], 1));
                    }
                }
            }
        }
    }
    pack_columns(width, count, k8, k, src, ld, dst);
}

/* Rows of NR = 8 or 16 floats copied whole: dst[p * nr + j] = src[p * ld + j], p < rows. */
__attribute__((target("avx"))) static void copy_rows_avx(int64_t nr, int64_t rows,
                                                         const float *src, int64_t ld, float *dst)
{
    if (nr == 16) {
        for (int64_t p = 0; p < rows; p++) {
            const __m256 a = _mm256_loadu_ps(src + p * ld), b = _mm256_loadu_ps(src + p * ld + 8);
            _mm256_storeu_ps(dst + p * 16, a);
            _mm256_storeu_ps(dst + p * 16 + 8, b);
        }
    } else {
        for (int64_t p = 0; p < rows; p++) _mm256_storeu_ps(dst + p * 8, _mm256_loadu_ps(src + p * ld));
    }
}
#endif

static void pack_panel(int64_t width, int64_t count, int64_t k, const float *src, int64_t ld,
                       float *dst)
{
#ifdef FM_PACK_AVX2
    if ((width == 6 || width == 8 || width == 16) && __builtin_cpu_supports("avx2")) {
        pack_panel_avx2(width, count, k, src, ld, dst);
        return;
    }
#endif
    pack_columns(width, count, 0, k, src, ld, dst);
}

void fm_pack_a(const fm_packed_kernel *kernel, int64_t m, int64_t k, const float *a, int64_t lda,
               const int64_t *k_span, float *dst)
{
    const int64_t mr = kernel->mr;
    for (int64_t ip = 0, i0 = 0; i0 < m; ip++, i0 += mr, dst += mr * k) {
        const int64_t k0 = k_span ? k_span[2 * ip] : 0, k1 = k_span ? k_span[2 * ip + 1] : k;
        if (k1 > k0)
            pack_panel(mr, m - i0 < mr ? m - i0 : mr, k1 - k0, a + i0 * lda + k0, lda,
                       dst + k0 * mr);
    }
}

/* Rows [p0, p1) of `count` (<= width) consecutive columns of a row-major matrix, `width` floats
 * each (zeros past count): dst[p * width + i] = src[p * ld + i]. Whole rows of 8 or 16 are
 * vector copies, whole rows of 6 (the zen MR) a constant-size copy the compiler inlines. */
static void copy_rows(int64_t width, int64_t count, int64_t p0, int64_t p1, const float *src,
                      int64_t ld, float *dst)
{
#ifdef FM_PACK_AVX2
    if (count == width && (width == 8 || width == 16) && __builtin_cpu_supports("avx")) {
        copy_rows_avx(width, p1 - p0, src + p0 * ld, ld, dst + p0 * width);
        return;
    }
#endif
    if (count == 6 && width == 6) {
        for (int64_t p = p0; p < p1; p++) memcpy(dst + p * 6, src + p * ld, 6 * sizeof(float));
        return;
    }
    for (int64_t p = p0; p < p1; p++) {
        memcpy(dst + p * width, src + p * ld, (size_t)count * sizeof(float));
        for (int64_t i = count; i < width; i++) dst[p * width + i] = 0.0f;
    }
}

void fm_pack_a_transposed(const fm_packed_kernel *kernel, int64_t m, int64_t k, const float *x,
                          int64_t ldx, const int64_t *k_span, float *dst)
{
    const int64_t mr = kernel->mr; /* row i of A is column i of X */
    for (int64_t ip = 0, i0 = 0; i0 < m; ip++, i0 += mr, dst += mr * k) {
        const int64_t k0 = k_span ? k_span[2 * ip] : 0, k1 = k_span ? k_span[2 * ip + 1] : k;
        if (k1 > k0) copy_rows(mr, m - i0 < mr ? m - i0 : mr, k0, k1, x + i0, ldx, dst);
    }
}

void fm_pack_b_transposed(const fm_packed_kernel *kernel, int64_t k, int64_t n, const float *x,
                          int64_t ldx, int64_t panel0, int64_t panel1, float *dst)
{
    const int64_t nr = kernel->nr; /* column j of B is row j of X */
    for (int64_t jp = panel0; jp < panel1; jp++)
        pack_panel(nr, n - jp * nr < nr ? n - jp * nr : nr, k, x + jp * nr * ldx, ldx,
                   dst + jp * k * nr);
}

void fm_pack_b_rows(const fm_packed_kernel *kernel, int64_t k_total, int64_t n, const float *b,
                    int64_t ldb, int64_t k0, int64_t k1, float *dst)
{
    const int64_t nr = kernel->nr, panels = round_up(n, nr) / nr;
    for (int64_t jp = 0; jp < panels; jp++) {
        const int64_t j0 = jp * nr, width = n - j0 < nr ? n - j0 : nr;
        float *panel = dst + jp * k_total * nr;
#ifdef FM_PACK_AVX2
        if (width == nr && (nr == 8 || nr == 16) && __builtin_cpu_supports("avx")) {
            copy_rows_avx(nr, k1 - k0, b + k0 * ldb + j0, ldb, panel + k0 * nr);
            continue;
        }
#endif
        for (int64_t p = k0; p < k1; p++) {
            memcpy(panel + p * nr, b + p * ldb + j0, (size_t)width * sizeof(float));
            for (int64_t j = width; j < nr; j++) panel[p * nr + j] = 0.0f;
        }
    }
}

#ifdef FM_HAVE_BLIS
void fm_packed_gemm(const fm_packed_kernel *kernel, int64_t m, int64_t n, int64_t k, float alpha,
                    const float *a_panels, const float *b_panels, int64_t b_panel_stride,
                    float beta, float *c, int64_t ldc, const fm_packed_sparsity *sparsity)
{
    const int64_t mr = kernel->mr, nr = kernel->nr, n_panels = (n + nr - 1) / nr;
    const unsigned char *skip = sparsity ? sparsity->skip : NULL;
    const int64_t *k_span = sparsity ? sparsity->k_span : NULL;
    const blis_sgemm_ukr ukr = (blis_sgemm_ukr)kernel->micro_kernel;
    auxinfo_t aux;
    memset(&aux, 0, sizeof aux);
    /* B panel outer (it stays in L1 while every A panel passes), A panel inner: BLIS's own
     * macro-kernel order */
    for (int64_t jp = 0; jp < n_panels; jp++) {
        const int64_t j0 = jp * nr, width = n - j0 < nr ? n - j0 : nr;
        for (int64_t ip = 0, i0 = 0; i0 < m; ip++, i0 += mr) {
            if (skip && skip[ip * n_panels + jp]) continue;
            int64_t k0 = 0, k1 = k;
            if (k_span) k0 = k_span[2 * ip], k1 = k_span[2 * ip + 1];
            const float *ap = a_panels + i0 * k + k0 * mr;
            const float *bp = b_panels + jp * b_panel_stride + k0 * nr;
            const int64_t height = m - i0 < mr ? m - i0 : mr, depth = k1 > k0 ? k1 - k0 : 0;
            float *cij = c + i0 * ldc + j0;
            if (depth == 0) { /* an empty span: C = beta C (no call: some kernels need k > 0) */
                for (int64_t i = 0; i < height; i++)
                    for (int64_t j = 0; j < width; j++)
                        cij[i * ldc + j] = beta == 0.0f ? 0.0f : beta * cij[i * ldc + j];
                continue;
            }
            bli_auxinfo_set_next_a((void *)ap, &aux);
            bli_auxinfo_set_next_b((void *)bp, &aux);
            ukr(height, width, depth, &alpha, (float *)ap, (float *)bp, &beta, cij, ldc,
                1, &aux, (cntx_t *)kernel->context);
        }
    }
}
#else
void fm_packed_gemm(const fm_packed_kernel *kernel, int64_t m, int64_t n, int64_t k, float alpha,
                    const float *a_panels, const float *b_panels, int64_t b_panel_stride,
                    float beta, float *c, int64_t ldc, const fm_packed_sparsity *sparsity)
{
    /* without BLIS fm_packed_kernel_get says no, so nothing calls this: it is here for the
     * linker only */
    (void)kernel, (void)m, (void)n, (void)k, (void)alpha, (void)a_panels, (void)b_panels;
    (void)b_panel_stride, (void)beta, (void)c, (void)ldc, (void)sparsity;
}
#endif
