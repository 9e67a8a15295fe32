/* cpu/backward.c — FlashAttention-2 backward on the CPU in float32, with FlashMask tile skipping,
 * for every mask form: the column form (fm_cpu_backward), Binary Block Masking
 * (fm_cpu_backward_bbm) and the dense baseline (fm_cpu_backward_dense) run the same loop; only
 * the tile plan (cpu_internal.h, the tile contract) differs.
 * Layer: cpu <- masks <- core.
 *
 * Work split: OpenMP over (batch, kv head, key tile), dynamic schedule (in index order: a key
 * tile's work falls with kb under causal masks, so the longest come first already). A task owns
 * the rows of dK and dV of its key tile and accumulates them privately over every query head
 * that reads this kv head (GQA: the sum docs/spec.md §1 asks for) and every query tile:
 *   masked tile   -> counted and skipped: no load, no arithmetic;
 *   otherwise     -> S = (scale log2 e) Q K^T, masked scores -> -inf in a partial tile,
 *                    P = 2^(S - LSE log2 e)            (recomputed from the forward's LSE)
 *                    dV += P^T dO,  dP = dO V^T,  dS = P (dP - Delta)   (Delta = rowsum(dO O))
 *                    dK += scale dS^T Q,  dQ_tile += scale dS K.
 * dQ rows are shared by every key tile of the row, so the dQ contribution is formed in private
 * scratch and added under a per-(b, query head, query tile) OpenMP lock: no races, and the add
 * (Bq x D per tile) is small next to the five tile matmuls (5 Bq Bk D multiply-adds).
 * Why locks and not the alternatives: per-thread dQ copies cost O(B Hq Sq D) per thread here
 * (a task touches every query tile of several heads), and a second pass over query tiles
 * recomputes S and dP (8 tile matmuls instead of 5). With FM_FLAG_DETERMINISTIC the lock order
 * would still vary between runs, so that flag runs the backward on one thread: bitwise
 * reproducible, slower.
 * Runs of consecutive computed query tiles (up to FM_CPU_RUN_TILES) share one set of products.
 * Products: where the build has BLIS's micro-kernel, on packed operands (packed_gemm.c): K^T, V^T
 * and K of the task's key tile packed once per task, Q and dO once per call before the tasks,
 * P^T, dS^T and dS per run; S, dP, dS and dQ query tile by query tile, with the MR x NR blocks a
 * partial tile's mask hides left out and the row work (element rule, P, dS) kept to each row
 * panel's span of keys; P and dS are zero outside it, exactly (docs/algorithm.md, "The
 * backward's packed products and key spans"). Otherwise five OpenBLAS sgemm calls per run
 * (matmul_tile.c) on whole tiles.
 * Per-thread memory: 2 R Bk + R D floats (R = run rows; dK and dV accumulate in place in the
 * outputs), with packing also the key tile's three packed forms, one query tile's dS panels
 * and a run's P^T and dS^T panels; shared: Delta [B Hq Sq], the locks, and with packing Q and
 * dO packed twice each (A and B panels, O(B Hq Sq D)).
 * Rows with LSE = -inf (fully masked) get P = 0, hence no gradient.
 */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_internal.h"
#include "fm_internal.h"
#include "packed_gemm.h"
#include "softmax_online.h"

#define FM_LOG2E 1.4426950408889634

/* Bounds of the per-tile sub-block tables (fm_packed_kernel_get's MR >= 4, NR >= 8). */
enum {
    BWD_MAX_ROW_PANELS = FM_CPU_TILE_Q / 4,
    BWD_MAX_COL_PANELS = FM_CPU_TILE_K / 8,
    BWD_MAX_KEY_PANELS = FM_CPU_TILE_K / 4
};

typedef struct bwd_scratch {
    float *p;      /* [run rows x Bk] probabilities */
    float *ds;     /* [run rows x Bk] dP, then dS in place */
    float *dq;     /* [run rows x D]  this run's dQ contribution */
    float *dk, *dv; /* [Bk x D]  the task's rows of dK and dV (in the outputs), accumulated */
    float kv_beta;  /* 0 for the task's first run (dK, dV written, not read), then 1 */
    /* With packed products (packed_gemm.h), NULL without:
     *   per task: kt, vt  K^T and V^T of the key tile as B panels [cols / NR][D][NR]
     *             k_b     K of the key tile as B panels [D / NR][cols][NR]
     *   per tile: ds_a         dS of one query tile as A panels [rows / MR][cols][MR]
     *   per run:  pt_a, dst_a  P^T and dS^T as A panels [cols / MR][run rows][MR] */
    float *kt, *vt, *k_b, *ds_a, *pt_a, *dst_a;
} bwd_scratch;

/* Q and dO packed once per call, before the tasks (every task of a kv head reads every query
 * tile its mask lets through, so packing them per run would repeat the copy once per key tile):
 *   q_a, do_a  as A panels, query tile by query tile: (b, hq, qb) at index (b Hq + hq) n_q_blocks
 *              + qb, a_tile_floats each;
 *   q_b, do_b  as B panels [D / NR][Sq][NR] per (b, hq), head_b_floats each: a run's rows
 *              [r0, r1) are the B of depth r1 - r0 starting r0 rows in. */
typedef struct bwd_packed_rows {
    float *q_a, *do_a, *q_b, *do_b;
    size_t a_tile_floats, head_b_floats;
} bwd_packed_rows;

typedef struct bwd_args {
    const fm_problem *p;
    const fm_tile_plan *plan;
    const fm_packed_kernel *kernel; /* mr == 0: the products go through OpenBLAS */
    const bwd_packed_rows *rows;    /* with the kernel */
    const float *q, *k, *v, *lse, *dout, *delta;
    float *dq, *dk, *dv;
    omp_lock_t *dq_locks; /* [B, Hq, n_q_blocks] */
} bwd_args;

/* One run: rows [r0, r0 + rows) of (b, hq), query tiles [qb0, qb0 + n_tiles), against keys
 * [c0, c0 + cols) of (b, hk). */
typedef struct bwd_run {
    int64_t b, hq, qb0, n_tiles, r0, rows, c0, cols;
    const unsigned char *partial;
    const float *q_rows, *do_rows, *lse, *delta, *k_tile, *v_tile;
    int64_t row_base; /* index of row r0 of (b, hq) among the rows of every head */
} bwd_run;

/* dQ rows of the run += w->dq, query tile by query tile, each under its tile's lock. */
static void add_dq(const bwd_args *a, const bwd_run *r, const bwd_scratch *w)
{
    const int64_t D = a->p->head_dim, Bq = a->plan->block_q;
    for (int64_t t = 0; t < r->n_tiles; t++) {
        const int64_t t0 = t * Bq, tn = t0 + Bq <= r->rows ? Bq : r->rows - t0;
        omp_lock_t *lock =
            &a->dq_locks[(r->b * a->p->q_heads + r->hq) * a->plan->n_q_blocks + r->qb0 + t];
        float *dst = a->dq + (r->row_base + t0) * D;
        const float *src = w->dq + t0 * D;
        const int64_t n = tn * D;
        omp_set_lock(lock);
#pragma omp simd
        for (int64_t e = 0; e < n; e++) dst[e] += src[e];
        omp_unset_lock(lock);
    }
}

/* The run's products through OpenBLAS sgemm (no BLIS micro-kernel in this build or on this
 * CPU): every element of every tile masked, exponentiated and multiplied. */
static void backward_run_blas(const bwd_args *a, const bwd_run *r, bwd_scratch *w)
{
    const fm_problem *p = a->p;
    const fm_tile_plan *plan = a->plan;
    const int64_t D = p->head_dim, Bq = plan->block_q, Bk = plan->block_k;
    const int64_t rows = r->rows, cols = r->cols;
    const float scale = (float)p->scale, alpha = (float)(p->scale * FM_LOG2E);

    /* P = 2^(alpha Q K^T - LSE log2 e); masked elements and fully masked rows give 0. */
    fm_tile_gemm_nt(rows, cols, D, alpha, r->q_rows, D, r->k_tile, D, 0.0f, w->p, Bk);
    for (int64_t t = 0; t < r->n_tiles; t++) /* element rule only inside partial tiles */
        if (r->partial[t]) {
            const int64_t t0 = t * Bq, tn = t0 + Bq <= rows ? Bq : rows - t0;
            fm_tile_plan_mask_scores(plan, r->b, r->hq, r->r0 + t0, tn, r->c0, cols,
                                     w->p + t0 * Bk, Bk);
        }
    fm_softmax_exp2_rows(w->p, Bk, rows, cols, r->lse); /* P; rows with lse = -inf -> 0 */
    /* dV += P^T dO */
    fm_tile_gemm_tn(cols, D, rows, 1.0f, w->p, Bk, r->do_rows, D, w->kv_beta, w->dv, D);
    /* dP = dO V^T, then dS = P (dP - Delta) in place */
    fm_tile_gemm_nt(rows, cols, D, 1.0f, r->do_rows, D, r->v_tile, D, 0.0f, w->ds, Bk);
    fm_softmax_backward_tile(w->ds, w->p, Bk, rows, cols, r->delta);
    /* dK += scale dS^T Q */
    fm_tile_gemm_tn(cols, D, rows, scale, w->ds, Bk, r->q_rows, D, w->kv_beta, w->dk, D);
    /* dQ rows += scale dS K, formed privately */
    fm_tile_gemm_nn(rows, D, cols, scale, w->ds, Bk, r->k_tile, D, 0.0f, w->dq, D);
    add_dq(a, r, w);
}

/* The sub-blocks of one query tile of a run (rows [t0, t0 + tn) of the run): skip[ip][jp] = 1
 * where the MR x NR block (row panel ip of the tile, key panel jp) is masked throughout, and
 * span[2 ip], span[2 ip + 1], the keys between the row panel's first and last block that is
 * not. Unmasked tiles, and forms without sub-blocks, get no skips and every key. Returns
 * whether any block is skipped. */
static int tile_sparsity(const bwd_args *a, const bwd_run *r, int64_t t, int64_t t0, int64_t tn,
                         unsigned char *skip, int64_t *span)
{
    const int64_t mr = a->kernel->mr, nr = a->kernel->nr;
    const int64_t row_panels = (tn + mr - 1) / mr, col_panels = (r->cols + nr - 1) / nr;
    int64_t masked = 0;
    if (r->partial[t] && tn <= FM_CPU_TILE_Q && r->cols <= FM_CPU_TILE_K)
        masked = fm_tile_plan_masked_blocks(a->plan, r->b, r->hq, r->r0 + t0, tn, r->c0, r->cols,
                                            mr, skip);
    for (int64_t ip = 0; ip < row_panels; ip++) {
        int64_t lo = col_panels, hi = -1;
        for (int64_t jp = 0; jp < col_panels; jp++)
            if (!masked || !skip[ip * col_panels + jp]) {
                lo = lo < jp ? lo : jp;
                hi = jp;
            }
        if (hi < 0) lo = hi = 0; /* every block masked: an empty span */
        else lo *= nr, hi = (hi + 1) * nr < r->cols ? (hi + 1) * nr : r->cols;
        span[2 * ip] = lo, span[2 * ip + 1] = hi;
    }
    return masked > 0;
}

/* Outside a row panel's span every element of P and dS is exactly 0 (masked throughout): the
 * transposed products read whole columns of them, so those zeros are written. */
static void zero_outside_spans(float *x, int64_t ld, int64_t rows, int64_t cols, int64_t mr,
                               const int64_t *span)
{
    for (int64_t i = 0; i < rows; i++) {
        const int64_t lo = span[2 * (i / mr)];
        const int64_t hi = span[2 * (i / mr) + 1] > lo ? span[2 * (i / mr) + 1] : lo;
        memset(x + i * ld, 0, (size_t)lo * sizeof(float));
        memset(x + i * ld + hi, 0, (size_t)(cols - hi) * sizeof(float));
    }
}

/* The skipped blocks inside the spans hold no computed dP: zero it there (P is 0 there, and
 * 0 times a stale value must not become NaN). */
static void zero_skipped_blocks(float *x, int64_t ld, int64_t rows, int64_t cols, int64_t mr,
                                int64_t nr, const unsigned char *skip, const int64_t *span)
{
    const int64_t col_panels = (cols + nr - 1) / nr;
    for (int64_t ip = 0, i0 = 0; i0 < rows; ip++, i0 += mr)
        for (int64_t jp = span[2 * ip] / nr; jp * nr < span[2 * ip + 1]; jp++)
            if (skip[ip * col_panels + jp]) {
                const int64_t h = rows - i0 < mr ? rows - i0 : mr;
                const int64_t j0 = jp * nr, width = cols - j0 < nr ? cols - j0 : nr;
                for (int64_t i = i0; i < i0 + h; i++)
                    memset(x + i * ld + j0, 0, (size_t)width * sizeof(float));
            }
}

/* One query tile of a run on packed operands: S, P, dP, dS and the tile's dQ, each row panel's
 * work kept to its span of keys; P and dS left with zeros outside the spans. */
static void backward_tile_packed(const bwd_args *a, const bwd_run *r, int64_t t, bwd_scratch *w,
                                 int64_t *span)
{
    const fm_problem *p = a->p;
    const fm_packed_kernel *kern = a->kernel;
    const int64_t D = p->head_dim, Bq = a->plan->block_q, Bk = a->plan->block_k;
    const int64_t mr = kern->mr, nr = kern->nr, cols = r->cols;
    const int64_t t0 = t * Bq, tn = t0 + Bq <= r->rows ? Bq : r->rows - t0;
    const float scale = (float)p->scale, alpha = (float)(p->scale * FM_LOG2E);
    const size_t tile = (size_t)((r->b * p->q_heads + r->hq) * a->plan->n_q_blocks + r->qb0 + t);
    const float *q_a = a->rows->q_a + tile * a->rows->a_tile_floats;
    const float *do_a = a->rows->do_a + tile * a->rows->a_tile_floats;
    float *pt = w->p + t0 * Bk, *ds = w->ds + t0 * Bk;
    const float *lse = r->lse + t0, *delta = r->delta + t0;

    unsigned char skip[BWD_MAX_ROW_PANELS * BWD_MAX_COL_PANELS];
    const int sparse = tile_sparsity(a, r, t, t0, tn, skip, span);
    const fm_packed_sparsity skip_only = {sparse ? skip : NULL, NULL};

    /* S = alpha Q K^T, masked blocks left out; the element rule inside the spans */
    fm_packed_gemm(kern, tn, cols, D, alpha, q_a, w->kt, D * nr, 0.0f, pt, Bk, &skip_only);
    if (r->partial[t]) {
        const fm_row_spans spans = {mr, span, 0};
        fm_tile_plan_mask_scores_in(a->plan, r->b, r->hq, r->r0 + t0, tn, r->c0, cols, pt, Bk,
                                    &spans);
    }
    /* dP = dO V^T, the same blocks left out (then zeroed) */
    fm_packed_gemm(kern, tn, cols, D, 1.0f, do_a, w->vt, D * nr, 0.0f, ds, Bk, &skip_only);
    if (sparse) zero_skipped_blocks(ds, Bk, tn, cols, mr, nr, skip, span);
    /* P = 2^(S - LSE log2 e) and dS = P (dP - Delta), row panel by row panel over its span */
    for (int64_t i0 = 0, ip = 0; i0 < tn; i0 += mr, ip++) {
        const int64_t lo = span[2 * ip], hi = span[2 * ip + 1], h = tn - i0 < mr ? tn - i0 : mr;
        if (lo >= hi) continue;
        fm_softmax_exp2_rows(pt + i0 * Bk + lo, Bk, h, hi - lo, lse + i0);
        fm_softmax_backward_tile(ds + i0 * Bk + lo, pt + i0 * Bk + lo, Bk, h, hi - lo,
                                 delta + i0);
    }
    if (sparse) {
        zero_outside_spans(pt, Bk, tn, cols, mr, span);
        zero_outside_spans(ds, Bk, tn, cols, mr, span);
    }
    /* dQ rows of the tile = scale dS K, each row panel over its span */
    const fm_packed_sparsity spans_only = {NULL, sparse ? span : NULL};
    fm_pack_a(kern, tn, cols, ds, Bk, spans_only.k_span, w->ds_a);
    fm_packed_gemm(kern, tn, D, cols, scale, w->ds_a, w->k_b, cols * nr, 0.0f, w->dq + t0 * D, D,
                   &spans_only);
}

/* The run on packed operands (K^T, V^T and K of the key tile packed by the task): query tile
 * by query tile S, P, dP, dS and dQ (backward_tile_packed), then over the whole run
 * dV += P^T dO and dK += scale dS^T Q, each key panel over the rows whose span reaches it. */
static void backward_run_packed(const bwd_args *a, const bwd_run *r, bwd_scratch *w)
{
    const fm_problem *p = a->p;
    const fm_packed_kernel *kern = a->kernel;
    const int64_t D = p->head_dim, Bq = a->plan->block_q, Bk = a->plan->block_k;
    const int64_t mr = kern->mr, nr = kern->nr, rows = r->rows, cols = r->cols;
    const int64_t key_panels = (cols + mr - 1) / mr;
    int64_t span[FM_CPU_RUN_TILES][2 * BWD_MAX_ROW_PANELS];
    for (int64_t t = 0; t < r->n_tiles; t++) backward_tile_packed(a, r, t, w, span[t]);

    /* Key panel kp (keys [kp MR, kp MR + MR)) meets rows [depth[2 kp], depth[2 kp + 1]) of the
     * run: from the first to the last row panel whose span reaches it (elsewhere P = dS = 0) */
    int64_t depth[2 * BWD_MAX_KEY_PANELS];
    for (int64_t kp = 0; kp < key_panels; kp++) depth[2 * kp] = rows, depth[2 * kp + 1] = 0;
    for (int64_t t = 0; t < r->n_tiles; t++) {
        const int64_t t0 = t * Bq, tn = t0 + Bq <= rows ? Bq : rows - t0;
        for (int64_t i0 = 0, ip = 0; i0 < tn; i0 += mr, ip++) {
            const int64_t lo = span[t][2 * ip], hi = span[t][2 * ip + 1];
            if (lo >= hi) continue;
            const int64_t row_lo = t0 + i0, row_hi = t0 + (i0 + mr < tn ? i0 + mr : tn);
            for (int64_t kp = lo / mr; kp * mr < hi; kp++) {
                depth[2 * kp] = row_lo < depth[2 * kp] ? row_lo : depth[2 * kp];
                depth[2 * kp + 1] = row_hi > depth[2 * kp + 1] ? row_hi : depth[2 * kp + 1];
            }
        }
    }
    const fm_packed_sparsity depth_spans = {NULL, depth};
    /* dV += P^T dO */
    const size_t head = (size_t)(r->b * p->q_heads + r->hq) * a->rows->head_b_floats;
    const int64_t b_stride = p->seqlen_q * nr; /* (the head's packed rows, from r0 on) */
    fm_pack_a_transposed(kern, cols, rows, w->p, Bk, depth, w->pt_a);
    fm_packed_gemm(kern, cols, D, rows, 1.0f, w->pt_a, a->rows->do_b + head + r->r0 * nr,
                   b_stride, w->kv_beta, w->dv, D, &depth_spans);
    /* dK += scale dS^T Q */
    fm_pack_a_transposed(kern, cols, rows, w->ds, Bk, depth, w->dst_a);
    fm_packed_gemm(kern, cols, D, rows, (float)p->scale, w->dst_a,
                   a->rows->q_b + head + r->r0 * nr, b_stride, w->kv_beta, w->dk, D,
                   &depth_spans);
    add_dq(a, r, w);
}

/* One run of consecutive computed query tiles [qb0, qb0 + n_tiles) of head hq against key tile
 * kb of kv head hk: all of the backward's products for that block of rows at once. */
static void backward_run(const bwd_args *a, int64_t b, int64_t hq, int64_t qb0, int64_t n_tiles,
                         const unsigned char *partial, int64_t hk, int64_t kb, bwd_scratch *w)
{
    const fm_problem *p = a->p;
    const fm_tile_plan *plan = a->plan;
    const int64_t D = p->head_dim, Sq = p->seqlen_q, Sk = p->seqlen_k;
    const int64_t Bq = plan->block_q, Bk = plan->block_k;
    const int64_t r0 = qb0 * Bq;
    const int64_t r1 = (qb0 + n_tiles) * Bq <= Sq ? (qb0 + n_tiles) * Bq : Sq;
    const int64_t c0 = kb * Bk, cols = c0 + Bk <= Sk ? Bk : Sk - c0;
    const int64_t row_base = (b * p->q_heads + hq) * Sq + r0; /* index of row r0 of (b, hq) */
    const bwd_run r = {b, hq, qb0, n_tiles, r0, r1 - r0, c0, cols, partial,
                       a->q + row_base * D, a->dout + row_base * D, a->lse + row_base,
                       a->delta + row_base,
                       a->k + ((b * p->kv_heads + hk) * Sk + c0) * D,
                       a->v + ((b * p->kv_heads + hk) * Sk + c0) * D, row_base};
    if (a->kernel->mr)
        backward_run_packed(a, &r, w);
    else
        backward_run_blas(a, &r, w);
}

/* One task: key tile kb of (b, hk), over every query head of its group and every query tile.
 * Consecutive computed query tiles form runs of up to FM_CPU_RUN_TILES tiles that share one
 * set of products (as in forward.c); each tile is classified and counted exactly once. */
static void backward_key_tile(const bwd_args *a, int64_t b, int64_t hk, int64_t kb,
                              bwd_scratch *w, fm_tile_stats *stats)
{
    const fm_problem *p = a->p;
    const fm_tile_plan *plan = a->plan;
    const int64_t D = p->head_dim, Sk = p->seqlen_k, Bk = plan->block_k;
    const int64_t c0 = kb * Bk, cols = c0 + Bk <= Sk ? Bk : Sk - c0;
    const int64_t group = p->q_heads / p->kv_heads;

    const fm_packed_kernel *kern = a->kernel;
    int packed = !kern->mr; /* K and V of the tile packed (before the first run only) */

    /* the task's rows of dK and dV are its own: accumulated in place, the first run's products
     * writing them (beta = 0), zeros where no run reads the key tile */
    const size_t offset = (size_t)(((b * p->kv_heads + hk) * Sk + c0) * D);
    w->dk = a->dk + offset, w->dv = a->dv + offset, w->kv_beta = 0.0f;
    for (int64_t hq = hk * group; hq < (hk + 1) * group; hq++) {
        int64_t qb = 0, first, n_tiles;
        unsigned char partial[FM_CPU_RUN_TILES];
        while ((n_tiles = fm_tile_plan_next_run(plan, b, hq, FM_RUN_ALONG_QUERIES, kb, &qb,
                                                &first, partial, stats)) > 0) {
            if (!packed) {
                const float *k_tile = a->k + ((b * p->kv_heads + hk) * Sk + c0) * D;
                const float *v_tile = a->v + ((b * p->kv_heads + hk) * Sk + c0) * D;
                const int64_t key_panels = (cols + kern->nr - 1) / kern->nr;
                fm_pack_b_transposed(kern, D, cols, k_tile, D, 0, key_panels, w->kt);
                fm_pack_b_transposed(kern, D, cols, v_tile, D, 0, key_panels, w->vt);
                fm_pack_b_rows(kern, cols, D, k_tile, D, 0, cols, w->k_b);
                packed = 1;
            }
            backward_run(a, b, hq, first, n_tiles, partial, hk, kb, w);
            w->kv_beta = 1.0f;
        }
    }
    if (w->kv_beta == 0.0f) {
        memset(w->dk, 0, (size_t)(cols * D) * sizeof(float));
        memset(w->dv, 0, (size_t)(cols * D) * sizeof(float));
    }
}

/* Floats rounded up to a whole 64-byte line (the scratch is 64-byte aligned, and some
 * micro-kernels read their panels with aligned vector loads). */
static size_t round_up_floats(size_t n) { return (n + 15) / 16 * 16; }

/* Every (b, kv head, kb) task of the plan, whatever the mask's form: the one backward loop. */
static fm_status backward_plan(const fm_problem *p, fm_tile_plan *plan, const float *q,
                               const float *k, const float *v, const float *out,
                               const float *lse, const float *dout, float *dq, float *dk,
                               float *dv, fm_tile_stats *stats)
{
    const int threads = (p->flags & FM_FLAG_DETERMINISTIC) ? 1 : omp_get_max_threads();
    const int64_t Bq = plan->block_q, Bk = plan->block_k, D = p->head_dim;
    const int64_t Rq = FM_CPU_RUN_TILES * Bq; /* rows of one run */
    fm_packed_kernel kernel;
    /* (the tile tables are sized for tiles up to FM_CPU_TILE_Q x FM_CPU_TILE_K: a BBM mask of
     * larger blocks keeps the OpenBLAS products) */
    const int packed = Bq <= FM_CPU_TILE_Q && Bk <= FM_CPU_TILE_K &&
                       fm_packed_kernel_get(&kernel, Bk);
    if (packed) { /* the mask's summary by NR keys, for the blocks of partial tiles it hides */
        const fm_status st = fm_tile_plan_init_sub_blocks(plan, kernel.nr);
        if (st != FM_OK) return st;
    }
    /* Per-thread scratch: P, dS [Rq x Bk], dQ [Rq x D]; where packed also the panels
     * (bwd_scratch). Each part starts on a 64-byte boundary. */
    const size_t n_pds = round_up_floats((size_t)(Rq * Bk));
    const size_t n_dq = round_up_floats((size_t)(Rq * D));
    size_t n_kb = 0, n_a_tile = 0, n_ds_a = 0, n_t_run = 0, n_head_b = 0;
    if (packed) {
        const size_t kt = fm_packed_b_floats(&kernel, D, Bk);
        const size_t kr = fm_packed_b_floats(&kernel, Bk, D);
        const size_t a_d = fm_packed_a_floats(&kernel, Bq, D);
        const size_t a_k = fm_packed_a_floats(&kernel, Bq, Bk);
        n_kb = round_up_floats(kt > kr ? kt : kr);
        n_a_tile = round_up_floats(a_d), n_ds_a = round_up_floats(a_k);
        n_head_b = round_up_floats(fm_packed_b_floats(&kernel, p->seqlen_q, D));
        n_t_run = round_up_floats(fm_packed_a_floats(&kernel, Bk, Rq));
    }
    const size_t per_thread = 2 * n_pds + n_dq + 3 * n_kb + n_ds_a + 2 * n_t_run;
    const size_t n_q_tiles = (size_t)(p->batch * p->q_heads * plan->n_q_blocks);
    const size_t n_heads = (size_t)(p->batch * p->q_heads);
    const size_t n_rows = fm_problem_lse_elems(p);
    const size_t n_locks = (size_t)(p->batch * p->q_heads * plan->n_q_blocks);
    const int64_t n_tasks = p->batch * p->kv_heads * plan->n_k_blocks;
    size_t n_scratch, n_rows_a, n_rows_b;
    if (__builtin_mul_overflow((size_t)threads, per_thread, &n_scratch) ||
        __builtin_mul_overflow(2 * n_q_tiles, n_a_tile, &n_rows_a) ||
        __builtin_mul_overflow(2 * n_heads, n_head_b, &n_rows_b) ||
        __builtin_add_overflow(n_scratch, n_rows_a, &n_scratch) ||
        __builtin_add_overflow(n_scratch, n_rows_b, &n_scratch))
        return fm_fail(FM_ERR_OVERFLOW, "cpu backward scratch: %d threads x %zu floats and the "
                       "packed Q and dO overflow size_t", threads, per_thread);
    float *scratch = NULL;
    size_t scratch_floats = 0;
    fm_status st = fm_workspace_take(n_scratch, "cpu backward scratch", &scratch, &scratch_floats);
    if (st != FM_OK) return st;
    float *delta = fm_alloc(n_rows, sizeof(float), "cpu backward Delta");
    omp_lock_t *locks = fm_alloc(n_locks, sizeof(omp_lock_t), "cpu backward dQ locks");
    if (!delta || !locks) {
        fm_workspace_give(scratch, scratch_floats);
        free(delta), free(locks);
        return FM_ERR_NOMEM;
    }
    for (size_t i = 0; i < n_locks; i++) omp_init_lock(&locks[i]);

    if (!packed) memset(&kernel, 0, sizeof kernel);
    bwd_packed_rows rows = {.a_tile_floats = n_a_tile, .head_b_floats = n_head_b};
    if (packed) {
        rows.q_a = scratch + (size_t)threads * per_thread;
        rows.do_a = rows.q_a + n_q_tiles * n_a_tile;
        rows.q_b = rows.do_a + n_q_tiles * n_a_tile;
        rows.do_b = rows.q_b + n_heads * n_head_b;
    }
    bwd_args args = {p, plan, &kernel, &rows, q, k, v, lse, dout, delta, dq, dk, dv, locks};
    int64_t total = 0, masked = 0, partial = 0, unmasked = 0;
    const int blas_threads = fm_blas_threads_begin_single();
    /* One parallel region: dQ zeroed and Delta computed by rows, then the tasks (one fork and
     * join per call, no serial pass over dQ). */
#pragma omp parallel num_threads(threads) reduction(+ : total, masked, partial, unmasked)
    {
        float *x = scratch + (size_t)omp_get_thread_num() * per_thread;
        bwd_scratch w = {NULL};
        w.p = x, x += n_pds;
        w.ds = x, x += n_pds;
        w.dq = x, x += n_dq;
        if (packed) {
            w.kt = x, x += n_kb;
            w.vt = x, x += n_kb;
            w.k_b = x, x += n_kb;
            w.ds_a = x, x += n_ds_a;
            w.pt_a = x, x += n_t_run;
            w.dst_a = x;
        }
        fm_tile_stats local = {0, 0, 0, 0};
        /* Query tile by query tile: Delta_i = dO_i . O_i for its rows, dQ = 0 there, and where
         * packed its Q and dO (bwd_packed_rows), while its dO is in cache */
#pragma omp for schedule(dynamic, 4)
        for (int64_t tile = 0; tile < (int64_t)n_q_tiles; tile++) {
            const int64_t bh = tile / plan->n_q_blocks, r0 = tile % plan->n_q_blocks * Bq;
            const int64_t Sq = p->seqlen_q, n = r0 + Bq <= Sq ? Bq : Sq - r0;
            const int64_t row0 = bh * Sq + r0;
            for (int64_t r = row0; r < row0 + n; r++) {
                const float *o = out + r * D, *d = dout + r * D;
                float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
                for (int64_t c = 0; c < D; c++) acc += o[c] * d[c];
                delta[r] = acc;
            }
            memset(dq + row0 * D, 0, (size_t)(n * D) * sizeof(float));
            if (!packed) continue;
            const float *q_rows = q + row0 * D, *do_rows = dout + row0 * D;
            fm_pack_a(&kernel, n, D, q_rows, D, NULL, rows.q_a + (size_t)tile * n_a_tile);
            fm_pack_a(&kernel, n, D, do_rows, D, NULL, rows.do_a + (size_t)tile * n_a_tile);
            fm_pack_b_rows(&kernel, Sq, D, q + bh * Sq * D, D, r0, r0 + n,
                           rows.q_b + (size_t)bh * n_head_b);
            fm_pack_b_rows(&kernel, Sq, D, dout + bh * Sq * D, D, r0, r0 + n,
                           rows.do_b + (size_t)bh * n_head_b);
        } /* the barrier here: Delta, dQ and the packed rows ready before any task */
#pragma omp for schedule(dynamic, 1)
        for (int64_t task = 0; task < n_tasks; task++) {
            const int64_t kb = task % plan->n_k_blocks;
            const int64_t bh = task / plan->n_k_blocks;
            backward_key_tile(&args, bh / p->kv_heads, bh % p->kv_heads, kb, &w, &local);
        }
        total += local.total;
        masked += local.masked;
        partial += local.partial;
        unmasked += local.unmasked;
    }
    fm_blas_threads_end_single(blas_threads);

    if (stats) *stats = (fm_tile_stats){total, masked, partial, unmasked};
    for (size_t i = 0; i < n_locks; i++) omp_destroy_lock(&locks[i]);
    fm_workspace_give(scratch, scratch_floats);
    free(delta), free(locks);
    return FM_OK;
}

static fm_status check_tensors(const float *q, const float *k, const float *v, const float *out,
                               const float *lse, const float *dout, const float *dq,
                               const float *dk, const float *dv)
{
    if (!q || !k || !v || !out || !lse || !dout || !dq || !dk || !dv)
        return fm_fail(FM_ERR_INVALID,
                       "cpu backward: NULL tensor (q, k, v, out, lse, dout, dq, dk or dv)");
    return FM_OK;
}

fm_status fm_cpu_backward(const fm_problem *p, const fm_mask *mask, const float *q,
                          const float *k, const float *v, const float *out, const float *lse,
                          const float *dout, float *dq, float *dk, float *dv,
                          fm_tile_stats *stats)
{
    fm_clear_error();
    fm_status st = fm_problem_validate(p, mask);
    if (st == FM_OK) st = check_tensors(q, k, v, out, lse, dout, dq, dk, dv);
    if (st != FM_OK) return st;
    fm_tile_plan plan;
    if ((st = fm_tile_plan_init(&plan, p, mask, FM_CPU_BLOCK_Q, FM_CPU_BLOCK_K)) != FM_OK)
        return st;
    st = backward_plan(p, &plan, q, k, v, out, lse, dout, dq, dk, dv, stats);
    fm_tile_plan_free(&plan);
    return st;
}

fm_status fm_cpu_backward_bbm(const fm_problem *p, const fm_bbm *mask, const float *q,
                              const float *k, const float *v, const float *out,
                              const float *lse, const float *dout, float *dq, float *dk,
                              float *dv, fm_tile_stats *stats)
{
    fm_clear_error();
    fm_status st = fm_bbm_check_problem(p, mask);
    if (st == FM_OK) st = check_tensors(q, k, v, out, lse, dout, dq, dk, dv);
    if (st != FM_OK) return st;
    fm_tile_plan plan;
    fm_tile_plan_init_bbm(&plan, p, mask);
    return backward_plan(p, &plan, q, k, v, out, lse, dout, dq, dk, dv, stats);
}

fm_status fm_cpu_backward_dense(const fm_problem *p, const uint8_t *allowed, int64_t mask_heads,
                                const float *q, const float *k, const float *v,
                                const float *out, const float *lse, const float *dout,
                                float *dq, float *dk, float *dv, fm_tile_stats *stats)
{
    fm_clear_error();
    fm_status st = fm_dense_check_problem(p, allowed, mask_heads);
    if (st == FM_OK) st = check_tensors(q, k, v, out, lse, dout, dq, dk, dv);
    if (st != FM_OK) return st;
    fm_tile_plan plan;
    fm_tile_plan_init_dense(&plan, p, allowed, mask_heads, FM_CPU_BLOCK_Q, FM_CPU_BLOCK_K);
    return backward_plan(p, &plan, q, k, v, out, lse, dout, dq, dk, dv, stats);
}
