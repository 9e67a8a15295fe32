/* tests/cpu/test_cpu_packed.c — the packed products of the forward and the backward
 * (cpu/packed_gemm.c): packing A (directly and from its transpose) and both forms of B, then
 * C = alpha A B + beta C on the panels, against a float64 product, on seeded random shapes
 * that leave partial panels on every side (m, n, k from 1 up), including
 * runs that start inside a packed B (the forward's key runs), skipped blocks and depth spans
 * (empty ones too), A packed over those spans only; beta = 0 must not read C (NaN there stays
 * out). And every packed form element by element against its definition, for panel widths
 * 4 .. 16 with every row count in a last panel (the fast paths and the general one). And the
 * BLAS symbols that OpenBLAS and BLIS both export resolve to OpenBLAS.
 * The products need the build's BLIS micro-kernel (meson option blis) and are skipped without
 * it; the packing itself is tested in every build.
 * Suite 'cpu'. Layer: tests over cpu/ (its private header).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "packed_gemm.h"
#include "prop.h"

static uint64_t test_seed; /* FM_SEED (or the default), named in every failure */

static float *random_floats(fm_rng *rng, size_t n)
{
    float *x = malloc((n ? n : 1) * sizeof *x);
    assert_non_null(x);
    for (size_t i = 0; i < n; i++) x[i] = (float)fm_rng_normal(rng);
    return x;
}

static float *aligned_floats(size_t n)
{
    void *p = NULL;
    assert_int_equal(posix_memalign(&p, 64, (n ? n : 1) * sizeof(float)), 0);
    return p;
}

/* A [m x k] (row-major) packed by fm_pack_a, or (transposed) by fm_pack_a_transposed from a
 * copy of A^T. */
static void pack_a_either(const fm_packed_kernel *kern, int64_t m, int64_t k, const float *a,
                          const int64_t *span, int transposed, float *ap)
{
    if (!transposed) {
        fm_pack_a(kern, m, k, a, k, span, ap);
        return;
    }
    float *at = malloc((size_t)(m * k + 1) * sizeof *at);
    assert_non_null(at);
    for (int64_t i = 0; i < m; i++)
        for (int64_t p = 0; p < k; p++) at[p * m + i] = a[i * k + p];
    fm_pack_a_transposed(kern, m, k, at, m, span, ap);
    free(at);
}

/* C = alpha A B (+ C0 when beta = 1) for A [m x k] and B [k x n] given as X = B^T [n x k]
 * (transposed) or B itself, row-major; |error| <= 1e-5 (|alpha| sum |a b| + |C0|). With
 * `sparse`: random blocks skipped (C keeps its old values there) or random depth spans per A
 * panel (the sum runs over the span only). With transposed_a, A is packed from A^T
 * (fm_pack_a_transposed, as the backward packs P^T and dS^T). */
static void check_product(const fm_packed_kernel *kern, fm_rng *rng, int64_t m, int64_t n,
                          int64_t k, int transposed_b, float beta, int sparse, int transposed_a)
{
    const int64_t row_panels = (m + kern->mr - 1) / kern->mr;
    const int64_t col_panels = (n + kern->nr - 1) / kern->nr;
    unsigned char *skip = calloc((size_t)(row_panels * col_panels), 1);
    int64_t *span = malloc((size_t)(2 * row_panels) * sizeof *span);
    assert_true(skip && span);
    for (int64_t ip = 0; ip < row_panels; ip++) {
        for (int64_t jp = 0; jp < col_panels; jp++)
            skip[ip * col_panels + jp] = sparse == 1 && fm_rng_below(rng, 3) == 0;
        span[2 * ip] = sparse == 2 ? (int64_t)fm_rng_below(rng, (uint64_t)k + 1) : 0;
        span[2 * ip + 1] = sparse == 2 ? fm_rng_range(rng, span[2 * ip] - 2, k) : k;
    }
    const fm_packed_sparsity sp = {sparse == 1 ? skip : NULL, sparse == 2 ? span : NULL};
    const int64_t k0 = transposed_b ? 0 : fm_rng_below(rng, 3) * kern->nr; /* run offset */
    const int64_t k_total = k0 + k + (transposed_b ? 0 : fm_rng_below(rng, 20));
    float *a = random_floats(rng, (size_t)(m * k));
    float *b = random_floats(rng, (size_t)(transposed_b ? n * k : k_total * n));
    float *c = random_floats(rng, (size_t)(m * (n + 3)));
    float *c0 = malloc((size_t)(m * (n + 3)) * sizeof *c0);
    assert_non_null(c0);
    if (beta == 0.0f)
        for (int64_t i = 0; i < m * (n + 3); i++) c[i] = NAN;
    memcpy(c0, c, (size_t)(m * (n + 3)) * sizeof *c);
    const size_t n_ap = fm_packed_a_floats(kern, m, k);
    float *ap = aligned_floats(n_ap);
    if (sparse == 2) { /* A packed over the spans only (as the forward packs P), from an A that
                        * is NaN outside them and panels that are NaN before: reading either
                        * outside the spans shows in C */
        for (size_t i = 0; i < n_ap; i++) ap[i] = NAN;
        float *a_span = malloc((size_t)(m * k) * sizeof *a_span);
        assert_non_null(a_span);
        for (int64_t i = 0; i < m; i++)
            for (int64_t p = 0; p < k; p++) {
                const int64_t ip = i / kern->mr;
                const int inside = p >= span[2 * ip] && p < span[2 * ip + 1];
                a_span[i * k + p] = inside ? a[i * k + p] : NAN;
            }
        pack_a_either(kern, m, k, a_span, span, transposed_a, ap);
        free(a_span);
    } else {
        pack_a_either(kern, m, k, a, NULL, transposed_a, ap);
    }
    float *bp;
    int64_t b_stride;
    const float *b_run;
    if (transposed_b) {
        bp = aligned_floats(fm_packed_b_floats(kern, k, n));
        const int64_t panels = (n + kern->nr - 1) / kern->nr;
        fm_pack_b_transposed(kern, k, n, b, k, 0, panels / 2, bp); /* in two parts */
        fm_pack_b_transposed(kern, k, n, b, k, panels / 2, panels, bp);
        b_stride = k * kern->nr, b_run = bp;
    } else {
        bp = aligned_floats(fm_packed_b_floats(kern, k_total, n));
        fm_pack_b_rows(kern, k_total, n, b, n, 0, k_total / 2, bp);
        fm_pack_b_rows(kern, k_total, n, b, n, k_total / 2, k_total, bp);
        b_stride = k_total * kern->nr, b_run = bp + k0 * kern->nr;
    }
    const float alpha = (float)(0.5 + fm_rng_uniform(rng));
    fm_packed_gemm(kern, m, n, k, alpha, ap, b_run, b_stride, beta, c, n + 3,
                   sparse ? &sp : NULL);
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n + 3; j++) {
            const float got = c[i * (n + 3) + j];
            const int64_t ip = i / kern->mr;
            if (j >= n || skip[ip * col_panels + j / kern->nr]) { /* outside C, or skipped */
                assert_memory_equal(&got, &c0[i * (n + 3) + j], sizeof got);
                continue;
            }
            double want = 0.0, mag = 0.0;
            for (int64_t p = span[2 * ip]; p < span[2 * ip + 1]; p++) {
                const double bv = transposed_b ? b[j * k + p] : b[(k0 + p) * n + j];
                want += (double)a[i * k + p] * bv;
                mag += fabs((double)a[i * k + p] * bv);
            }
            want *= alpha, mag *= alpha;
            if (beta != 0.0f) want += c0[i * (n + 3) + j], mag += fabs(c0[i * (n + 3) + j]);
            if (!(fabs(got - want) <= 1e-5 * mag + 1e-30))
                fail_msg("FM_SEED=%llu: m %lld n %lld k %lld %s beta %g sparse %d: "
                         "C[%lld][%lld] = %.9g, want %.9g", (unsigned long long)test_seed,
                         (long long)m, (long long)n, (long long)k, transposed_b ? "B^T" : "B",
                         beta, sparse, (long long)i, (long long)j, got, want);
        }
    free(a), free(b), free(c), free(c0), free(ap), free(bp), free(skip), free(span);
}

static void test_packed_products(void **state)
{
    (void)state;
    fm_packed_kernel kern;
    if (!fm_packed_kernel_get(&kern, 128)) skip();
    assert_true(kern.mr > 0 && kern.nr > 0 && 128 % kern.nr == 0);
    fm_rng rng;
    test_seed = fm_test_seed();
    fm_rng_seed(&rng, test_seed ^ 0x9ac4edULL);
    for (int trial = 0; trial < 120; trial++) {
        const int64_t m = 1 + fm_rng_below(&rng, 3 * kern.mr + 2);
        const int64_t n = 1 + fm_rng_below(&rng, 3 * kern.nr + 2);
        const int64_t k = 1 + fm_rng_below(&rng, 150);
        check_product(&kern, &rng, m, n, k, trial & 1, (trial & 2) ? 1.0f : 0.0f,
                      (trial / 4) % 3, (trial / 12) & 1);
    }
    check_product(&kern, &rng, 128, 512, 128, 1, 0.0f, 0, 0); /* the forward's shapes */
    check_product(&kern, &rng, 128, 128, 512, 0, 1.0f, 0, 0);
    check_product(&kern, &rng, 128, 512, 128, 1, 0.0f, 1, 0);
    check_product(&kern, &rng, 128, 128, 512, 0, 1.0f, 2, 0);
    /* the backward's: S and dP per query tile, dQ over row spans, dK and dV from P^T, dS^T
     * over depth spans */
    check_product(&kern, &rng, 128, 128, 128, 1, 0.0f, 1, 0);
    check_product(&kern, &rng, 128, 128, 128, 0, 0.0f, 2, 0);
    check_product(&kern, &rng, 128, 128, 512, 0, 1.0f, 2, 1);
    check_product(&kern, &rng, 100, 128, 300, 0, 1.0f, 0, 1);
}

/* The packed forms element by element against their definitions (packed_gemm.h), for every
 * width the packing has a fast path for and some it has not (the functions read only MR / NR of
 * the kernel, so a kernel of any width packs), with every count of rows in a last partial panel
 * and depths on both sides of a multiple of 8. The destination starts as NaN: every float of a
 * panel is written (zeros past the matrix), nothing outside the packed rows is. */
static void check_packing(fm_rng *rng, int64_t width, int64_t m, int64_t k)
{
    const fm_packed_kernel kern = {width, width, NULL, NULL};
    const int64_t panels = (m + width - 1) / width, guard = 64;
    const int64_t ld = k + (int64_t)fm_rng_below(rng, 3); /* strided source rows too */
    float *a = random_floats(rng, (size_t)(m * ld + k * ld + 16));
    const size_t n_a = fm_packed_a_floats(&kern, m, k);
    assert_int_equal(n_a, (size_t)(panels * width * k));
    float *dst = aligned_floats(n_a + (size_t)guard);
    for (size_t i = 0; i < n_a + (size_t)guard; i++) dst[i] = NAN;
    /* A panels (and B = X^T, the same layout): panel[p * W + i] = A[i0 + i][p], zero past m */
    for (int form = 0; form < 2; form++) {
        for (size_t i = 0; i < n_a + (size_t)guard; i++) dst[i] = NAN;
        if (form == 0) {
            fm_pack_a(&kern, m, k, a, ld, NULL, dst);
        } else {
            const int64_t split = (int64_t)fm_rng_below(rng, (uint64_t)panels + 1);
            fm_pack_b_transposed(&kern, k, m, a, ld, 0, split, dst);
            fm_pack_b_transposed(&kern, k, m, a, ld, split, panels, dst);
        }
        for (int64_t ip = 0; ip < panels; ip++)
            for (int64_t p = 0; p < k; p++)
                for (int64_t i = 0; i < width; i++) {
                    const int64_t row = ip * width + i;
                    const float want = row < m ? a[row * ld + p] : 0.0f;
                    const float got = dst[ip * width * k + p * width + i];
                    if (memcmp(&got, &want, sizeof got) != 0)
                        fail_msg("FM_SEED=%llu: %s W %lld m %lld k %lld: panel %lld [%lld][%lld]"
                                 " = %g, want %g", (unsigned long long)test_seed,
                                 form ? "pack_b_transposed" : "pack_a", (long long)width,
                                 (long long)m, (long long)k, (long long)ip, (long long)p,
                                 (long long)i, got, want);
                }
        for (int64_t g = 0; g < guard; g++) assert_true(isnan(dst[n_a + (size_t)g]));
    }
    /* A panels over spans of columns: inside each panel's span as above, nothing outside */
    int64_t *span = malloc((size_t)(2 * panels) * sizeof *span);
    assert_non_null(span);
    for (int64_t ip = 0; ip < panels; ip++) {
        span[2 * ip] = (int64_t)fm_rng_below(rng, (uint64_t)k + 1);
        span[2 * ip + 1] = fm_rng_range(rng, span[2 * ip] - 2, k); /* empty ones too */
    }
    for (size_t i = 0; i < n_a + (size_t)guard; i++) dst[i] = NAN;
    fm_pack_a(&kern, m, k, a, ld, span, dst);
    for (int64_t ip = 0; ip < panels; ip++)
        for (int64_t p = 0; p < k; p++)
            for (int64_t i = 0; i < width; i++) {
                const int64_t row = ip * width + i;
                const float got = dst[ip * width * k + p * width + i];
                if (p < span[2 * ip] || p >= span[2 * ip + 1]) {
                    assert_true(isnan(got));
                    continue;
                }
                const float want = row < m ? a[row * ld + p] : 0.0f;
                if (memcmp(&got, &want, sizeof got) != 0)
                    fail_msg("FM_SEED=%llu: pack_a W %lld m %lld k %lld span [%lld, %lld): "
                             "panel %lld [%lld][%lld] = %g, want %g",
                             (unsigned long long)test_seed, (long long)width, (long long)m,
                             (long long)k, (long long)span[2 * ip], (long long)span[2 * ip + 1],
                             (long long)ip, (long long)p, (long long)i, got, want);
            }
    /* A = X^T (the backward's P^T and dS^T): X is k x m (row stride ldx >= m), panel ip holds
     * columns [ip W, ip W + W) of X, panel[p * W + i] = X[p][ip W + i], zero past m; without
     * spans every row, with them rows [span[2 ip], span[2 ip + 1]) only, nothing else written */
    const int64_t ldx = m + (int64_t)fm_rng_below(rng, 3);
    float *x = random_floats(rng, (size_t)(k * ldx));
    for (int spanned = 0; spanned < 2; spanned++) {
        for (size_t i = 0; i < n_a + (size_t)guard; i++) dst[i] = NAN;
        fm_pack_a_transposed(&kern, m, k, x, ldx, spanned ? span : NULL, dst);
        for (int64_t ip = 0; ip < panels; ip++)
            for (int64_t p = 0; p < k; p++)
                for (int64_t i = 0; i < width; i++) {
                    const int64_t col = ip * width + i;
                    const float got = dst[ip * width * k + p * width + i];
                    if (spanned && (p < span[2 * ip] || p >= span[2 * ip + 1])) {
                        assert_true(isnan(got));
                        continue;
                    }
                    const float want = col < m ? x[p * ldx + col] : 0.0f;
                    if (memcmp(&got, &want, sizeof got) != 0)
                        fail_msg("FM_SEED=%llu: pack_a_transposed W %lld m %lld k %lld%s: panel "
                                 "%lld [%lld][%lld] = %g, want %g", (unsigned long long)test_seed,
                                 (long long)width, (long long)m, (long long)k,
                                 spanned ? " (spans)" : "", (long long)ip, (long long)p,
                                 (long long)i, got, want);
                }
        for (int64_t g = 0; g < guard; g++) assert_true(isnan(dst[n_a + (size_t)g]));
    }
    free(x);
    free(span);
    /* B rows: B = a as k_total x m (row stride ld >= m), rows [k0, k1) packed in two calls;
     * panel jp: panel[p * W + j] = B[p][jp W + j], zero past m; rows outside [k0, k1) untouched */
    const int64_t k_total = k, k0 = (int64_t)fm_rng_below(rng, (uint64_t)k_total + 1);
    const int64_t k1 = fm_rng_range(rng, k0, k_total), mid = fm_rng_range(rng, k0, k1);
    const int64_t ldb = m + (int64_t)fm_rng_below(rng, 3);
    float *bsrc = random_floats(rng, (size_t)(k_total * ldb));
    const size_t n_b = fm_packed_b_floats(&kern, k_total, m);
    float *bdst = aligned_floats(n_b + (size_t)guard);
    for (size_t i = 0; i < n_b + (size_t)guard; i++) bdst[i] = NAN;
    fm_pack_b_rows(&kern, k_total, m, bsrc, ldb, k0, mid, bdst);
    fm_pack_b_rows(&kern, k_total, m, bsrc, ldb, mid, k1, bdst);
    for (int64_t jp = 0; jp < panels; jp++)
        for (int64_t p = 0; p < k_total; p++)
            for (int64_t j = 0; j < width; j++) {
                const int64_t col = jp * width + j;
                const float got = bdst[jp * k_total * width + p * width + j];
                if (p < k0 || p >= k1) {
                    assert_true(isnan(got));
                    continue;
                }
                const float want = col < m ? bsrc[p * ldb + col] : 0.0f;
                if (memcmp(&got, &want, sizeof got) != 0)
                    fail_msg("FM_SEED=%llu: pack_b_rows W %lld n %lld rows [%lld, %lld): panel "
                             "%lld [%lld][%lld] = %g, want %g", (unsigned long long)test_seed,
                             (long long)width, (long long)m, (long long)k0, (long long)k1,
                             (long long)jp, (long long)p, (long long)j, got, want);
            }
    for (int64_t g = 0; g < guard; g++) assert_true(isnan(bdst[n_b + (size_t)g]));
    free(a), free(dst), free(bsrc), free(bdst);
}

static void test_packing_forms(void **state)
{
    (void)state;
    fm_rng rng;
    test_seed = fm_test_seed();
    fm_rng_seed(&rng, test_seed ^ 0x5a11e7ULL);
    const int64_t widths[] = {4, 6, 8, 12, 16};
    for (int w = 0; w < 5; w++) {
        const int64_t width = widths[w];
        for (int64_t m = 1; m <= 3 * width; m++) /* every count in a last panel */
            check_packing(&rng, width, m, 1 + (int64_t)fm_rng_below(&rng, 40));
        for (int64_t k = 1; k <= 26; k++) /* depths around multiples of 8 */
            check_packing(&rng, width, 2 * width, k);
    }
}

/* cblas_sgemm as the library's calls find it (the global scope, libflashmask is not linked
 * -Bsymbolic) is OpenBLAS's, not BLIS's. */
static void test_blas_symbols_are_openblas(void **state)
{
    (void)state;
    const char *names[] = {"cblas_sgemm", "sgemm_"};
    for (int i = 0; i < 2; i++) {
        void *sym = dlsym(RTLD_DEFAULT, names[i]);
        Dl_info info;
        assert_non_null(sym);
        assert_true(dladdr(sym, &info) && info.dli_fname);
        if (!strstr(info.dli_fname, "openblas"))
            fail_msg("%s resolves to %s, not OpenBLAS", names[i], info.dli_fname);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_packed_products),
        cmocka_unit_test(test_packing_forms),
        cmocka_unit_test(test_blas_symbols_are_openblas),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
