/* oracle/naive_guard.c — when the derived rule may skip the naive same-precision computation
 * (oracle/naive.c): a cheap sufficient condition, from the inputs' largest magnitudes and the
 * shape alone, for "no intermediate of the naive computation in X can overflow", so that every
 * naive result is finite and the check's refusal ("the naive X computation gives inf ... no
 * bound can be set") cannot happen. Under the derived rule the naive results decide nothing
 * else (they only fill the report's naive_err column), so where this holds fm_check_case and
 * fm_check_dense leave them out; where it fails they run as before. The derivation of every
 * constant is docs/oracle.md §2.5.
 *
 * Layer: oracle <- core (fm_round_to_dtype).
 */
#include <float.h>
#include <math.h>

#include "flashmask/oracle.h"
#include "fm_internal.h"
#include "oracle_internal.h"

/* max |x| over n values, rounded to X (rounding is monotone: the max of the rounded values,
 * which is what the naive computation reads); inf when a value overflows X. */
static double max_abs_x(const double *x, size_t n, fm_dtype dtype)
{
    double m = 0.0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs(x[i]));
    return fabs(fm_round_to_dtype(m, dtype));
}

/* X's largest finite value (float32's bounds every float32 intermediate as well). */
static double largest_of(fm_dtype dtype)
{
    switch (dtype) {
    case FM_FLOAT16: return 65504.0;
    case FM_BFLOAT16: return 0x1.fep127;
    default: return FLT_MAX;
    }
}

int fm_naive_cannot_overflow(const fm_problem *p, fm_dtype dtype, const fm_tensors *in,
                             int backward)
{
    const double two21 = 0x1p21;
    const double D = (double)p->head_dim, Sk = (double)p->seqlen_k;
    const double N = (double)p->seqlen_q * (double)(p->q_heads / p->kv_heads);
    /* sums of at most 2^21 float32 terms: gamma_n <= 1/7 (docs/oracle.md §2.5) */
    if (D > two21 || Sk > two21 || N > two21) return 0;
    /* L: what may be rounded to X (0.9 M leaves room for the last roundings, factors of at
     * most (1 + 2^-24)^2 (1 + 2^-8)); F: what float32 partial sums may reach */
    const double L = 0.9 * largest_of(dtype), F = FLT_MAX / 2.0;
    const double scale = fabs(p->scale);
    const size_t nq = fm_problem_q_elems(p), nkv = fm_problem_kv_elems(p);
    const double qa = max_abs_x(in->q, nq, dtype), ka = max_abs_x(in->k, nkv, dtype);
    const double va = max_abs_x(in->v, nkv, dtype);
    if (!(qa <= L && ka <= L && va <= L)) return 0; /* also catches inf and NaN */
    /* scores: float32 partial sums of q.k, then s * q.k; |s| <= 2^16 keeps each row's sum of
     * P (forward and backward) below 1.25 */
    const double dot = 2.0 * D * qa * ka;
    if (!(dot <= F && scale * dot <= 0x1p16)) return 0;
    /* forward: |O| <= 1.5 max|v| */
    if (!(1.5 * va <= L)) return 0;
    if (!backward) return 1;
    const double da = max_abs_x(in->dout, nq, dtype);
    /* dP = dO.v, Delta = dO.O, dP - Delta and P (dP - Delta), rounded to X: <= 2.87 C */
    const double C = D * da * va;
    if (!(3.0 * C <= L)) return 0;
    /* dQ: a row's sum of |dS| <= 3.45 C + 1/16; dK: a column's (N rows) <= N (2.87 C + 2^-25);
     * dV: a column's sum of P dO <= N max|dO|; float32 partial sums 8/7 of that */
    const double dq = (4.0 * C + 0.1) * ka, dk = N * (3.3 * C + 0x1p-24) * qa;
    const double dv = 8.0 / 7.0 * N * da;
    return dq <= F && dk <= F && dv <= F && scale * dq <= L && scale * dk <= L && dv <= L;
}
