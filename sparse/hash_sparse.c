/* sparse/hash_sparse.c — Hash-sparse attention (Pagliardini et al., arXiv 2306.01160): queries
 * and keys get bucket ids (given, or argmax([xR, -xR]) for a seeded random R, the paper's
 * angular LSH); each (batch, head) is stable-sorted by bucket; a query attends a key iff both
 * are in the same bucket and (with a causal alignment) original q index + offset >= original
 * k index; results are scattered back to the original order.
 * Layer: sparse <- masks <- core; the attention is called back (sparse_run.h, bound by api/).
 *
 * Why this is exact with FlashMask: after the stable sort, the queries of bucket c occupy one
 * contiguous range [qs_c, qe_c) of sorted rows, in increasing original order. For a sorted key
 * of bucket c the allowed rows are a suffix [first, qe_c) of that range, so the masked rows are
 * UT = [0, first) and LT = [qe_c, Sq): a causal document mask over the sorted order, one column
 * at a time. Mask heads = Hq (sort orders differ per head).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fm_internal.h"
#include "gather.h"

fm_status fm_hash_buckets(const fm_problem *p, const double *q, const double *k,
                          int64_t n_buckets, uint64_t seed, int32_t *q_buckets,
                          int32_t *k_buckets)
{
    fm_clear_error();
    fm_status st = fm_sparse_check_problem(p);
    if (st != FM_OK) return st;
    if (!q || !k || !q_buckets || !k_buckets)
        return fm_fail(FM_ERR_INVALID, "hash-sparse buckets: NULL tensor");
    if (n_buckets < 2 || n_buckets % 2 != 0 || n_buckets > INT32_MAX)
        return fm_fail(FM_ERR_INVALID,
                       "hash-sparse: n_buckets = %lld, must be even and >= 2 (argmax over "
                       "[xR, -xR] gives 2 * columns(R) buckets)",
                       (long long)n_buckets);
    const int64_t D = p->head_dim, half = n_buckets / 2;
    size_t nr;
    if (fm_mul_size(&nr, D, half)) return fm_fail(FM_ERR_OVERFLOW, "hash-sparse: R overflows");
    double *R = fm_alloc(nr, sizeof(double), "hash-sparse R");
    double *proj = fm_alloc((size_t)half, sizeof(double), "hash-sparse projection");
    if (!R || !proj) {
        free(R), free(proj);
        return FM_ERR_NOMEM;
    }
    /* R [D, n_buckets/2], standard normal from fm_rng(seed): the same R for queries and keys
     * of every head, so that a seed means the same buckets everywhere. */
    fm_rng rng;
    fm_rng_seed(&rng, seed);
    for (size_t e = 0; e < nr; e++) R[e] = fm_rng_normal(&rng);
    for (int pass = 0; pass < 2; pass++) {
        const double *x = pass ? k : q;
        int32_t *out = pass ? k_buckets : q_buckets;
        const int64_t rows = p->batch * (pass ? p->kv_heads : p->q_heads) *
                             (pass ? p->seqlen_k : p->seqlen_q);
        for (int64_t r = 0; r < rows; r++) {
            const double *xr = x + r * D;
            for (int64_t d = 0; d < D; d++)
                if (!isfinite(xr[d])) {
                    free(R), free(proj);
                    return fm_fail(FM_ERR_NONFINITE, "hash-sparse buckets: tensor %s: element "
                                   "%lld is %g", pass ? "k" : "q", (long long)(r * D + d), xr[d]);
                }
            for (int64_t c = 0; c < half; c++) proj[c] = 0.0;
            for (int64_t d = 0; d < D; d++)
                for (int64_t c = 0; c < half; c++) proj[c] += xr[d] * R[d * half + c];
            /* argmax over [proj, -proj]; the first maximum wins ties */
            int64_t best = 0;
            double best_v = proj[0];
            for (int64_t c = 0; c < n_buckets; c++) {
                double vc = c < half ? proj[c] : -proj[c - half];
                if (vc > best_v) best_v = vc, best = c;
            }
            out[r] = (int32_t)best;
        }
    }
    free(R), free(proj);
    return FM_OK;
}

static fm_status check_buckets(const fm_problem *p, const int32_t *qb, const int32_t *kb,
                               int64_t n_buckets)
{
    if (!qb || !kb) return fm_fail(FM_ERR_INVALID, "hash-sparse: NULL bucket ids");
    if (n_buckets < 1 || n_buckets > INT32_MAX)
        return fm_fail(FM_ERR_INVALID, "hash-sparse: n_buckets = %lld, must be >= 1",
                       (long long)n_buckets);
    for (int pass = 0; pass < 2; pass++) {
        const int32_t *ids = pass ? kb : qb;
        const int64_t heads = pass ? p->kv_heads : p->q_heads;
        const int64_t len = pass ? p->seqlen_k : p->seqlen_q;
        for (int64_t x = 0; x < p->batch * heads * len; x++)
            if (ids[x] < 0 || ids[x] >= n_buckets)
                return fm_fail(FM_ERR_INVALID,
                               "hash-sparse: %s bucket %d at b=%lld head=%lld pos=%lld is "
                               "outside [0, %lld)",
                               pass ? "key" : "query", ids[x], (long long)(x / len / heads),
                               (long long)(x / len % heads), (long long)(x % len),
                               (long long)n_buckets);
    }
    return FM_OK;
}

/* Stable counting sort of positions 0..len-1 by bucket: list[] gets the sorted positions and
 * [start[c], start[c+1]) is the range of bucket c (start has n_buckets + 1 entries; cursor,
 * n_buckets entries, is scratch). */
static void sort_by_bucket(const int32_t *ids, int64_t len, int64_t n_buckets, int32_t *list,
                           int64_t *start, int64_t *cursor)
{
    memset(start, 0, (size_t)(n_buckets + 1) * sizeof(int64_t));
    for (int64_t i = 0; i < len; i++) start[ids[i] + 1]++;
    for (int64_t c = 0; c < n_buckets; c++) start[c + 1] += start[c];
    memcpy(cursor, start, (size_t)n_buckets * sizeof(int64_t));
    for (int64_t i = 0; i < len; i++) list[cursor[ids[i]]++] = (int32_t)i;
}

static fm_status hash_plan(fm_gather_plan *g, const fm_problem *p, fm_causal alignment,
                           const int32_t *q_buckets, const int32_t *k_buckets,
                           int64_t n_buckets)
{
    fm_status st = check_buckets(p, q_buckets, k_buckets, n_buckets);
    if (st != FM_OK) return st;
    if ((st = fm_gather_plan_init(g, p, p->seqlen_q, p->seqlen_k)) != FM_OK) return st;
    const int64_t Sq = p->seqlen_q, Sk = p->seqlen_k, group = p->q_heads / p->kv_heads;
    int64_t *q_start = fm_alloc((size_t)n_buckets + 1, sizeof(int64_t), "hash q buckets");
    int64_t *k_start = fm_alloc((size_t)n_buckets + 1, sizeof(int64_t), "hash k buckets");
    int64_t *first = fm_alloc((size_t)n_buckets, sizeof(int64_t), "hash bucket cursors");
    if (!q_start || !k_start || !first ||
        (st = fm_mask_init(&g->mask.columns, p->batch, p->q_heads, Sq, Sk,
                           FM_CAUSAL_NONE)) != FM_OK) {
        free(q_start), free(k_start), free(first);
        fm_gather_plan_free(g);
        return q_start && k_start && first ? st : FM_ERR_NOMEM;
    }
    for (int64_t b = 0; b < p->batch; b++)
        for (int64_t h = 0; h < p->kv_heads; h++)
            sort_by_bucket(k_buckets + (b * p->kv_heads + h) * Sk, Sk, n_buckets,
                           fm_gather_k_list(g, b, h), k_start, first);
    const int64_t off = fm_causal_offset(alignment, Sq, Sk);
    for (int64_t b = 0; b < p->batch; b++)
        for (int64_t h = 0; h < p->q_heads; h++) {
            int32_t *qs = fm_gather_q_list(g, b, h);
            const int32_t *ks = fm_gather_k_list(g, b, h / group);
            const int32_t *kids = k_buckets + (b * p->kv_heads + h / group) * Sk;
            sort_by_bucket(q_buckets + (b * p->q_heads + h) * Sq, Sq, n_buckets, qs, q_start,
                           first);
            for (int64_t c = 0; c < n_buckets; c++) first[c] = q_start[c];
            for (int64_t j = 0; j < Sk; j++) {
                const int64_t c = kids[ks[j]]; /* bucket of sorted key j */
                int32_t *col = fm_mask_column(&g->mask.columns, b, h, j);
                /* rows past bucket c's queries are masked: LT = [end of bucket c, Sq) */
                col[FM_LTS] = (int32_t)q_start[c + 1], col[FM_LTE] = (int32_t)Sq;
                /* keys of a bucket ascend in original order, so the cursor only moves on */
                if (alignment != FM_CAUSAL_NONE)
                    while (first[c] < q_start[c + 1] && qs[first[c]] + off < ks[j]) first[c]++;
                /* rows before bucket c, and its queries that come too early: UT = [0, first) */
                col[FM_UTS] = 0, col[FM_UTE] = (int32_t)first[c];
            }
        }
    free(q_start), free(k_start), free(first);
    return FM_OK;
}

/* Internal entry point (sparse_run.h): checks the problem and the buckets; the tensors are
 * checked by the attention `a` on the sorted problem. */
fm_status fm_hash_sparse_run(const fm_attend *a, int backward, const fm_problem *p,
                             fm_causal alignment, const int32_t *q_buckets,
                             const int32_t *k_buckets, int64_t n_buckets, fm_tensors *t)
{
    fm_clear_error();
    fm_status st = fm_sparse_check_problem(p);
    if (st != FM_OK) return st;
    if (!t) return fm_fail(FM_ERR_INVALID, "hash-sparse: NULL tensors");
    fm_gather_plan g;
    if ((st = hash_plan(&g, p, alignment, q_buckets, k_buckets, n_buckets)) != FM_OK) return st;
    st = fm_gather_run(a, backward, p, &g, t);
    fm_gather_plan_free(&g);
    return st;
}

/* fm_sparse_dense_mask's pair test: the query and the key rows share a bucket. */
static int same_bucket(const void *ctx, int64_t qrow, int64_t krow)
{
    const int32_t *const *buckets = ctx;
    return buckets[0][qrow] == buckets[1][krow];
}

fm_status fm_hash_sparse_dense_mask(const fm_problem *p, fm_causal alignment,
                                    const int32_t *q_buckets, const int32_t *k_buckets,
                                    int64_t n_buckets, uint8_t *allowed)
{
    fm_clear_error();
    fm_status st = fm_sparse_check_problem(p);
    if (st != FM_OK) return st;
    if (!allowed) return fm_fail(FM_ERR_INVALID, "hash-sparse dense mask: NULL output");
    if ((st = check_buckets(p, q_buckets, k_buckets, n_buckets)) != FM_OK) return st;
    const int32_t *const buckets[2] = {q_buckets, k_buckets};
    fm_sparse_dense_mask(p, alignment, same_bucket, buckets, allowed);
    return FM_OK;
}
