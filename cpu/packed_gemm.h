/* cpu/packed_gemm.h — tile products on operands packed once and reused (packed_gemm.c): the
 * forward's K and V are packed once per call (key tile by key tile, when a task first needs
 * the tile), each query tile once per task; the backward's key tile once per task, Q and dO
 * once per call; and the micro-kernel that multiplies the panels is BLIS's for this CPU.
 * Layer: cpu (private header).
 *
 * Panel formats (those of BLIS's gemm micro-kernel; docs/algorithm.md, "Packed products"):
 *   A panels: an m x k matrix as ceil(m / MR) panels of MR rows, each stored by columns
 *             (panel[p * MR + i] = A[panel row i][p]), rows past m zero;
 *   B panels: a k x n matrix as ceil(n / NR) panels of NR columns, each stored by rows
 *             (panel[p * NR + j] = B[p][panel column j]), columns past n zero.
 * Products: C[m x n] (row-major, ldc) = alpha * A B + beta * C, where A is given as panels of
 * depth k and B as panels whose rows start at `bp` (panel j at bp + j * b_panel_stride): a run
 * of keys [c0, c1) of a head's packed V is the B of depth c1 - c0 starting c0 rows in.
 */
#ifndef FM_CPU_PACKED_GEMM_H
#define FM_CPU_PACKED_GEMM_H

#include <stddef.h>
#include <stdint.h>

typedef struct fm_packed_kernel {
    int64_t mr, nr;      /* register block of the micro-kernel */
    void *micro_kernel;  /* BLIS gemm micro-kernel (float) */
    void *context;       /* BLIS context it belongs to */
} fm_packed_kernel;

/* The micro-kernel of this CPU. Returns 0 (and leaves the products to matmul_tile.c) when the
 * library was built without BLIS, when BLIS has only its portable reference kernels for this
 * CPU (the "generic" configuration), when NR does not divide block_k (runs of key tiles must
 * start on panel boundaries), or when MR < 4 or NR < 8 (the forward's sub-block tables are
 * sized for those). */
int fm_packed_kernel_get(fm_packed_kernel *kernel, int64_t block_k);

/* Floats of the packed forms (each panel padded to a whole MR or NR). */
size_t fm_packed_a_floats(const fm_packed_kernel *kernel, int64_t m, int64_t k);
size_t fm_packed_b_floats(const fm_packed_kernel *kernel, int64_t k, int64_t n);

/* A[m x k] (row-major, lda) -> A panels at dst. With k_span (NULL: every column), A panel ip
 * is packed over columns [k_span[2 ip], k_span[2 ip + 1]) only (nothing when empty), the depths
 * fm_packed_gemm reads with the same spans (see fm_packed_sparsity); the panel's other columns
 * are not written. */
void fm_pack_a(const fm_packed_kernel *kernel, int64_t m, int64_t k, const float *a, int64_t lda,
               const int64_t *k_span, float *dst);
/* A = X^T for X[k x m] (row-major, ldx; the backward's P and dS, whose transposes multiply dO
 * and Q): A panels of depth k at dst, panel ip holding columns [ip MR, ip MR + MR) of X
 * (panel[p * MR + i] = X[p][ip MR + i], columns past m zero). With k_span (NULL: every row),
 * panel ip is packed over rows [k_span[2 ip], k_span[2 ip + 1]) of X only, as fm_pack_a. */
void fm_pack_a_transposed(const fm_packed_kernel *kernel, int64_t m, int64_t k, const float *x,
                          int64_t ldx, const int64_t *k_span, float *dst);
/* B = X^T for X[n x k] (row-major, ldx; the keys of a head, X = K): B panels of depth k at dst,
 * panel j at dst + j * k * NR. Packs panels [panel0, panel1) only (for splitting the work). */
void fm_pack_b_transposed(const fm_packed_kernel *kernel, int64_t k, int64_t n, const float *x,
                          int64_t ldx, int64_t panel0, int64_t panel1, float *dst);
/* B[k x n] (row-major, ldb; the values of a head, B = V): rows [k0, k1) of B panels of depth
 * k_total at dst, panel j at dst + j * k_total * NR. */
void fm_pack_b_rows(const fm_packed_kernel *kernel, int64_t k_total, int64_t n, const float *b,
                    int64_t ldb, int64_t k0, int64_t k1, float *dst);

/* What a product may leave out, where whole blocks of it are known to be masked (NULL: none):
 *   skip[ip * ceil(n / NR) + jp] = 1: the MR x NR block (A panel ip, B panel jp) of C is not
 *     computed (left as it was);
 *   k_span[2 ip], k_span[2 ip + 1]: A panel ip is multiplied over depths [k0, k1) only, the
 *     columns of A outside being zero (k0 >= k1: the panel's rows of C get beta C). */
typedef struct fm_packed_sparsity {
    const unsigned char *skip;
    const int64_t *k_span;
} fm_packed_sparsity;

/* C = alpha A B + beta C on packed operands (see above); beta = 0 never reads C. `sparsity`
 * may be NULL. */
void fm_packed_gemm(const fm_packed_kernel *kernel, int64_t m, int64_t n, int64_t k, float alpha,
                    const float *a_panels, const float *b_panels, int64_t b_panel_stride,
                    float beta, float *c, int64_t ldc, const fm_packed_sparsity *sparsity);

#endif
