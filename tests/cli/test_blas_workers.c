/* tests/cli/test_blas_workers.c — cli_blas_one_thread (tools/blas_workers.c), suite 'cli': after
 * it, OpenBLAS runs on one thread, the process has no thread but the main one (OpenBLAS's idle
 * workers are gone), and a large sgemm neither brings them back nor computes wrongly.
 * Layer: tests of the tools CLI.
 */
#include <dirent.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cblas.h>
#include <cmocka.h>

#include "../../tools/blas_workers.h"

/* Threads of this process (entries of /proc/self/task). */
static int thread_count(void)
{
    DIR *d = opendir("/proc/self/task");
    if (!d) return -1;
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n;
}

static void test_one_thread_and_no_workers(void **state)
{
    (void)state;
    const int before = thread_count();
    if (before < 0) skip(); /* no /proc: nothing to count */
    cli_blas_one_thread();
    assert_int_equal(openblas_get_num_threads(), 1);
    assert_int_equal(thread_count(), 1);

    /* an sgemm large enough that a threaded OpenBLAS would split it stays on this thread, and
     * computes what it should (A = 1 everywhere, B = column index: C[i][j] = n * j) */
    enum { n = 512 };
    float *a = malloc(sizeof(float) * n * n), *b = malloc(sizeof(float) * n * n);
    float *c = malloc(sizeof(float) * n * n);
    assert_non_null(a), assert_non_null(b), assert_non_null(c);
    for (int i = 0; i < n * n; i++) a[i] = 1.0f, b[i] = (float)(i % n);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
    for (int i = 0; i < n * n; i += 997) assert_true(c[i] == (float)n * (float)(i % n));
    assert_int_equal(thread_count(), 1);
    assert_int_equal(openblas_get_num_threads(), 1);
    print_message("threads before %d, after 1\n", before);
    free(a), free(b), free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_one_thread_and_no_workers)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
