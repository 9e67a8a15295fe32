/* bench/gemm_kernel.c — why the CPU layer's tile products go through OpenBLAS sgemm
 * (cpu/matmul_tile.c): single-threaded GFLOP/s, in the same process and interleaved, of
 *   (a) cblas_sgemm on a tile product C[M x N] += A[M x K] B[K x N] (the forward's P V shape),
 *   (b) a portable i-k-j loop kernel, vectorised by the compiler (omp simd over j),
 *   (c) the same with a 4-row register block (4 rows of C updated per pass over B's row).
 * Usage: fm_gemm_kernel [M N K] (default 128 128 512), best of 5 rounds of >= 0.2 s each.
 * Layer: bench, on OpenBLAS only (it measures a design decision, not the library).
 */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void gemm_blas(int m, int n, int k, const float *a, const float *b, float *c)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0f, a, k, b, n, 1.0f, c, n);
}

/* (b) C[i][:] += A[i][p] * B[p][:], the inner loop contiguous and vectorised. */
static void gemm_ikj(int m, int n, int k, const float *a, const float *b, float *c)
{
    for (int i = 0; i < m; i++)
        for (int p = 0; p < k; p++) {
            const float aip = a[i * k + p];
            const float *brow = b + p * n;
            float *crow = c + i * n;
#pragma omp simd
            for (int j = 0; j < n; j++) crow[j] += aip * brow[j];
        }
}

/* (c) four rows of C per pass, so each loaded row of B feeds four multiply-adds. */
static void gemm_ikj4(int m, int n, int k, const float *a, const float *b, float *c)
{
    int i = 0;
    for (; i + 4 <= m; i += 4)
        for (int p = 0; p < k; p++) {
            const float a0 = a[i * k + p], a1 = a[(i + 1) * k + p];
            const float a2 = a[(i + 2) * k + p], a3 = a[(i + 3) * k + p];
            const float *brow = b + p * n;
            float *c0 = c + i * n, *c1 = c0 + n, *c2 = c1 + n, *c3 = c2 + n;
#pragma omp simd
            for (int j = 0; j < n; j++) {
                const float bj = brow[j];
                c0[j] += a0 * bj, c1[j] += a1 * bj, c2[j] += a2 * bj, c3[j] += a3 * bj;
            }
        }
    if (i < m) gemm_ikj(m - i, n, k, a + i * k, b, c + i * n);
}

typedef void (*gemm_fn)(int, int, int, const float *, const float *, float *);

/* GFLOP/s of one kernel: repeated calls for >= 0.2 s. */
static double rate(gemm_fn f, int m, int n, int k, const float *a, const float *b, float *c)
{
    const double flops = 2.0 * m * n * k;
    int calls = 0;
    double t0 = now_seconds(), t;
    do {
        f(m, n, k, a, b, c);
        calls++;
    } while ((t = now_seconds() - t0) < 0.2);
    return flops * calls / t * 1e-9;
}

int main(int argc, char **argv)
{
    int m = 128, n = 128, k = 512;
    if (argc == 4) m = atoi(argv[1]), n = atoi(argv[2]), k = atoi(argv[3]);
    if (m < 1 || n < 1 || k < 1) {
        fprintf(stderr, "usage: fm_gemm_kernel [M N K]\n");
        return 2;
    }
    openblas_set_num_threads(1);
    float *a = malloc(sizeof(float) * m * k), *b = malloc(sizeof(float) * k * n);
    float *c = malloc(sizeof(float) * m * n);
    if (!a || !b || !c) return 1;
    for (int i = 0; i < m * k; i++) a[i] = (float)(i % 7) * 1e-3f;
    for (int i = 0; i < k * n; i++) b[i] = (float)(i % 5) * 1e-3f;
    memset(c, 0, sizeof(float) * m * n);
    const char *names[3] = {"OpenBLAS sgemm", "i-k-j loop (omp simd)", "i-k-j, 4-row block"};
    gemm_fn fns[3] = {gemm_blas, gemm_ikj, gemm_ikj4};
    double best[3] = {0, 0, 0};
    for (int round = 0; round < 5; round++) /* interleaved, so load changes hit all three */
        for (int f = 0; f < 3; f++) {
            double r = rate(fns[f], m, n, k, a, b, c);
            if (r > best[f]) best[f] = r;
        }
    printf("# single-threaded C[%d x %d] += A[%d x %d] B[%d x %d], best of 5 rounds\n", m, n, m,
           k, k, n);
    for (int f = 0; f < 3; f++)
        printf("%-24s %7.1f GFLOP/s  (%.2fx sgemm)\n", names[f], best[f], best[f] / best[0]);
    free(a), free(b), free(c);
    return 0;
}
