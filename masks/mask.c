/* masks/mask.c — the column-wise FlashMask mask itself (docs/spec.md §2): allocation, copy, validation
 * with messages that name the offending (b, head, column, bound, value), the element query and
 * the exact allowed-pair count in O(Sk).
 *
 * Layer: masks <- core. The element rule lives in flashmask/rules.h (fm_element_masked); this
 * file only calls it.
 */
#include <stdlib.h>
#include <string.h>

#include "flashmask/masks.h"
#include "fm_internal.h"

/* ---------------------------------------------------------------- causal names */

static const char *const causal_names[] = {"none", "bottom_right", "top_left"};

const char *fm_causal_name(fm_causal causal)
{
    return (unsigned)causal <= FM_CAUSAL_TOP_LEFT ? causal_names[causal] : "unknown";
}

fm_status fm_causal_from_name(const char *name, fm_causal *out)
{
    for (int i = 0; i <= (int)FM_CAUSAL_TOP_LEFT; i++) {
        if (name && strcmp(name, causal_names[i]) == 0) {
            *out = (fm_causal)i;
            return FM_OK;
        }
    }
    return fm_fail(FM_ERR_INVALID,
                   "unknown causal alignment '%s' (expected none, bottom_right or top_left)",
                   name ? name : "(null)");
}

/* ---------------------------------------------------------------- shape checks */

/* Checks the four sizes and the causal tag, and computes the number of int32 bound values
 * B*Hm*Sk*4. Shared by init and validate so both refuse the same shapes with the same words. */
static fm_status check_shape(int64_t batch, int64_t heads, int64_t seqlen_q, int64_t seqlen_k,
                             fm_causal causal, size_t *n_values)
{
    const struct { const char *name; int64_t value; } dims[] = {
        {"batch", batch}, {"heads", heads}, {"seqlen_q", seqlen_q}, {"seqlen_k", seqlen_k},
    };
    for (size_t i = 0; i < sizeof dims / sizeof dims[0]; i++)
        if (dims[i].value < 1)
            return fm_fail(FM_ERR_INVALID, "mask: %s = %lld, must be >= 1", dims[i].name,
                           (long long)dims[i].value);
    /* Row bounds are int32 and may equal Sq; column indices are compared with int64 but the
     * compact forms store them as int32 too. */
    if (seqlen_q > INT32_MAX)
        return fm_fail(FM_ERR_OVERFLOW, "mask: seqlen_q = %lld exceeds INT32_MAX = %d",
                       (long long)seqlen_q, INT32_MAX);
    if (seqlen_k > INT32_MAX)
        return fm_fail(FM_ERR_OVERFLOW, "mask: seqlen_k = %lld exceeds INT32_MAX = %d",
                       (long long)seqlen_k, INT32_MAX);
    if ((unsigned)causal > FM_CAUSAL_TOP_LEFT)
        return fm_fail(FM_ERR_INVALID,
                       "mask: unknown causal alignment %d (expected none, bottom_right, "
                       "top_left)",
                       (int)causal);
    int64_t shape[] = {batch, heads, seqlen_k, FM_BOUNDS};
    size_t n;
    if (fm_mul_sizes(&n, 4, shape) || n > SIZE_MAX / sizeof(int32_t))
        return fm_fail(FM_ERR_OVERFLOW,
                       "mask: B*Hm*Sk*4 = %lld*%lld*%lld*4 int32 bounds overflow size_t",
                       (long long)batch, (long long)heads, (long long)seqlen_k);
    *n_values = n;
    return FM_OK;
}

/* ---------------------------------------------------------------- lifetime */

fm_status fm_mask_init(fm_mask *m, int64_t batch, int64_t heads, int64_t seqlen_q,
                       int64_t seqlen_k, fm_causal causal)
{
    if (!m) return fm_fail(FM_ERR_INVALID, "mask: NULL output");
    memset(m, 0, sizeof *m);
    size_t n;
    fm_status st = check_shape(batch, heads, seqlen_q, seqlen_k, causal, &n);
    if (st != FM_OK) return st;
    int32_t *bounds = fm_alloc(n, sizeof(int32_t), "mask bounds");
    if (!bounds) return FM_ERR_NOMEM; /* fm_alloc recorded the message */
    /* Every column masks nothing: LT = [Sq, Sq), UT = [0, 0) (the canonical empty intervals). */
    for (size_t c = 0; c < n; c += FM_BOUNDS) {
        bounds[c + FM_LTS] = (int32_t)seqlen_q;
        bounds[c + FM_LTE] = (int32_t)seqlen_q;
        bounds[c + FM_UTS] = 0;
        bounds[c + FM_UTE] = 0;
    }
    *m = (fm_mask){.batch = batch, .heads = heads, .seqlen_q = seqlen_q, .seqlen_k = seqlen_k,
                   .causal = causal, .bounds = bounds};
    return FM_OK;
}

void fm_mask_free(fm_mask *m)
{
    if (!m) return;
    free(m->bounds);
    m->bounds = NULL;
}

fm_status fm_mask_copy(fm_mask *dst, const fm_mask *src)
{
    if (!dst || !src || !src->bounds) return fm_fail(FM_ERR_INVALID, "mask copy: NULL mask");
    fm_status st =
        fm_mask_init(dst, src->batch, src->heads, src->seqlen_q, src->seqlen_k, src->causal);
    if (st != FM_OK) return st;
    memcpy(dst->bounds, src->bounds,
           (size_t)(src->batch * src->heads * src->seqlen_k) * FM_BOUNDS * sizeof(int32_t));
    return FM_OK;
}

/* ---------------------------------------------------------------- validation */

static const char *const bound_names[FM_BOUNDS] = {"LTS", "LTE", "UTS", "UTE"};

fm_status fm_mask_validate(const fm_mask *m)
{
    if (!m) return fm_fail(FM_ERR_INVALID, "mask: NULL mask");
    size_t n;
    fm_status st = check_shape(m->batch, m->heads, m->seqlen_q, m->seqlen_k, m->causal, &n);
    if (st != FM_OK) return st;
    if (!m->bounds) return fm_fail(FM_ERR_INVALID, "mask: NULL bounds array");
    const int64_t sq = m->seqlen_q;
    for (int64_t b = 0; b < m->batch; b++)
        for (int64_t h = 0; h < m->heads; h++)
            for (int64_t j = 0; j < m->seqlen_k; j++) {
                const int32_t *col = fm_mask_column(m, b, h, j);
                /* Every bound lies in [0, Sq]; invalid values are refused, never clipped. */
                for (int k = 0; k < FM_BOUNDS; k++)
                    if (col[k] < 0 || col[k] > sq)
                        return fm_fail(FM_ERR_INVALID,
                                       "mask: b=%lld head=%lld column=%lld: bound %s = %d is "
                                       "outside [0, Sq=%lld]",
                                       (long long)b, (long long)h, (long long)j, bound_names[k],
                                       (int)col[k], (long long)sq);
                /* Each interval is half-open [start, end): start > end is meaningless. */
                for (int k = 0; k < FM_BOUNDS; k += 2)
                    if (col[k] > col[k + 1])
                        return fm_fail(FM_ERR_INVALID,
                                       "mask: b=%lld head=%lld column=%lld: bound %s = %d > "
                                       "%s = %d (start after end)",
                                       (long long)b, (long long)h, (long long)j, bound_names[k],
                                       (int)col[k], bound_names[k + 1], (int)col[k + 1]);
            }
    return FM_OK;
}

/* ---------------------------------------------------------------- queries */

int fm_mask_is_masked(const fm_mask *m, int64_t b, int64_t h, int64_t i, int64_t j)
{
    int64_t offset = fm_causal_offset(m->causal, m->seqlen_q, m->seqlen_k);
    return fm_element_masked(fm_mask_column(m, b, h, j), m->causal, offset, i, j);
}

/* Length of the union of up to three half-open row ranges, each already clipped to [0, Sq]
 * (empty ones have lo >= hi). Sorting three elements by start, then one sweep. */
static int64_t union_length(int64_t lo[3], int64_t hi[3], int n)
{
    for (int a = 0; a < n; a++) /* insertion sort by start */
        for (int c = a; c > 0 && lo[c] < lo[c - 1]; c--) {
            int64_t t = lo[c]; lo[c] = lo[c - 1]; lo[c - 1] = t;
            t = hi[c]; hi[c] = hi[c - 1]; hi[c - 1] = t;
        }
    int64_t total = 0, covered = INT64_MIN; /* rows < covered are already counted */
    for (int k = 0; k < n; k++) {
        if (hi[k] <= lo[k]) continue;
        int64_t start = lo[k] > covered ? lo[k] : covered;
        if (hi[k] > start) total += hi[k] - start;
        if (hi[k] > covered) covered = hi[k];
    }
    return total;
}

static int64_t clip(int64_t x, int64_t lo, int64_t hi) { return x < lo ? lo : x > hi ? hi : x; }

int64_t fm_mask_allowed_pairs(const fm_mask *m, int64_t b, int64_t h)
{
    const int64_t sq = m->seqlen_q;
    const int64_t offset = fm_causal_offset(m->causal, m->seqlen_q, m->seqlen_k);
    int64_t allowed = 0;
    for (int64_t j = 0; j < m->seqlen_k; j++) {
        const int32_t *col = fm_mask_column(m, b, h, j);
        /* Column j's masked rows are the union of LT, UT and, under a causal alignment, the
         * prefix of rows i with j > i + offset, i.e. i < j - offset. The element rule
         * (fm_element_masked) is the definition; this is its per-column closed form. */
        int64_t lo[3] = {clip(col[FM_LTS], 0, sq), clip(col[FM_UTS], 0, sq), 0};
        int64_t hi[3] = {clip(col[FM_LTE], 0, sq), clip(col[FM_UTE], 0, sq), 0};
        int n = 2;
        if (m->causal != FM_CAUSAL_NONE) {
            hi[2] = clip(j - offset, 0, sq);
            n = 3;
        }
        allowed += sq - union_length(lo, hi, n);
    }
    return allowed;
}

int64_t fm_mask_total_allowed_pairs(const fm_mask *m)
{
    int64_t total = 0;
    for (int64_t b = 0; b < m->batch; b++)
        for (int64_t h = 0; h < m->heads; h++) total += fm_mask_allowed_pairs(m, b, h);
    return total;
}
