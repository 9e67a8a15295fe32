/* cpu/row_kernels_body.h — the body of one row-kernel variant, included by row_kernels.c once
 * per instruction set with FM_RK(name) naming the functions and a `#pragma GCC target` around
 * it. No include guard on purpose. Layer: cpu (private).
 * The loops are those of softmax_online.h; the exp is exp_fast.h's (inlined here, so it is
 * compiled for the variant's instruction set).
 */

static void FM_RK(softmax_tile)(float *s, int64_t ld, int64_t rows, int64_t cols, float *m,
                                float *l, float *o, int64_t D)
{
    for (int64_t i = 0; i < rows; i++) {
        float *x = s + i * ld;
        float mx = -INFINITY;
#pragma omp simd reduction(max : mx)
        for (int64_t j = 0; j < cols; j++) mx = x[j] > mx ? x[j] : mx;
        /* OpenMP starts each lane's max at the least representable value, which some compilers
         * (clang) take to be -FLT_MAX, not -inf: a row of -inf scores then reduces to -FLT_MAX,
         * read here as "no allowed key in this tile" (an allowed score of exactly -FLT_MAX, at the
         * edge of float32's range, would be read the same way: its weight is 0 beside any other). */
        if (mx <= -FLT_MAX) mx = -INFINITY;
        if (mx < m[i]) mx = m[i];
        if (mx == -INFINITY) { /* every key so far is masked for this row */
#pragma omp simd
            for (int64_t j = 0; j < cols; j++) x[j] = 0.0f;
            continue;
        }
        float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
        for (int64_t j = 0; j < cols; j++) {
            float p = fm_exp2f_fast(x[j] - mx);
            x[j] = p;
            sum += p;
        }
        /* m == -inf gives 2^(-inf) = 0: the empty accumulator is dropped */
        const float corr = fm_exp2f_fast(m[i] - mx);
        l[i] = l[i] * corr + sum;
        m[i] = mx;
        if (corr != 1.0f) {
            float *oi = o + i * D;
#pragma omp simd
            for (int64_t d = 0; d < D; d++) oi[d] *= corr;
        }
    }
}

static void FM_RK(exp2_rows)(float *s, int64_t ld, int64_t rows, int64_t cols, const float *lse)
{
    for (int64_t i = 0; i < rows; i++) {
        float *x = s + i * ld;
        if (lse[i] == -INFINITY) {
#pragma omp simd
            for (int64_t j = 0; j < cols; j++) x[j] = 0.0f;
            continue;
        }
        const float m = (float)(lse[i] * FM_RK_LOG2E);
#pragma omp simd
        for (int64_t j = 0; j < cols; j++) x[j] = fm_exp2f_fast(x[j] - m);
    }
}

static void FM_RK(softmax_bwd_tile)(float *ds, const float *p, int64_t ld, int64_t rows,
                                    int64_t cols, const float *delta)
{
    for (int64_t i = 0; i < rows; i++) {
        float *d = ds + i * ld;
        const float *pi = p + i * ld, di = delta[i];
#pragma omp simd
        for (int64_t j = 0; j < cols; j++) d[j] = pi[j] * (d[j] - di);
    }
}
