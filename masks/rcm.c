/* masks/rcm.c — Reverse Cuthill-McKee reordering of very sparse dense masks (the BBM paper's
 * second optimisation, arXiv 2409.15097): permute query rows and key columns so that allowed
 * pairs gather near the diagonal and fewer block_q x block_k tiles are non-empty.
 * Layer: masks <- core. Declared in flashmask/bbm.h; sparse/rcm_run.c permutes Q, K, V with it
 * and undoes the permutation on the outputs and gradients.
 *
 * The graph (per batch, the union of the allowed pairs over mask heads, since one permutation
 * must serve every head):
 *   Sq == Sk: the classic symmetric form — node i per position, edge i - j when (i, j) or (j, i)
 *             is allowed; rows and columns get the same permutation (the diagonal stays put).
 *   Sq != Sk: the bipartite form — a node per row and per column, edge row i - column j when
 *             (i, j) is allowed; rows and columns are then listed in the order their nodes got.
 * Cuthill-McKee: breadth-first search from an unvisited node of least degree, visiting each
 * node's unvisited neighbours by increasing degree (ties: lower index); repeat for every
 * connected component; reverse the order. Nodes of degree 0 (rows that attend nothing, keys
 * nobody attends) go last, so that their empty tiles collect at the bottom/right.
 */
#include <stdlib.h>
#include <string.h>

#include "flashmask/bbm.h"
#include "fm_internal.h"

void fm_rcm_free(fm_rcm *r)
{
    if (!r) return;
    free(r->row_perm);
    free(r->col_perm);
    memset(r, 0, sizeof *r);
}

/* Adjacency in compressed rows: neighbours of node u are adj[start[u] .. start[u+1]). */
typedef struct graph {
    int64_t n;
    int64_t *start;
    int32_t *adj;
} graph;

static void graph_free(graph *g)
{
    free(g->start);
    free(g->adj);
}

/* Builds the graph of one batch from its union pattern `u` [Sq, Sk] (see the file comment). */
static fm_status graph_build(graph *g, const uint8_t *u, int64_t sq, int64_t sk, int symmetric)
{
    g->n = symmetric ? sq : sq + sk;
    g->start = fm_calloc((size_t)g->n + 1, sizeof(int64_t), "rcm graph");
    if (!g->start) return FM_ERR_NOMEM;
    /* Pass 0 counts the degrees, pass 1 fills the lists (start[] doubles as the cursor). */
    for (int pass = 0; pass < 2; pass++) {
        for (int64_t i = 0; i < sq; i++)
            for (int64_t j = 0; j < sk; j++) {
                int64_t a, b;
                if (symmetric) {
                    /* edge i - j once, from the upper triangle of u OR u^T; no self loops */
                    if (j <= i || !(u[i * sk + j] || u[j * sk + i])) continue;
                    a = i, b = j;
                } else {
                    if (!u[i * sk + j]) continue;
                    a = i, b = sq + j;
                }
                if (pass == 0) {
                    g->start[a + 1]++, g->start[b + 1]++;
                } else {
                    g->adj[g->start[a]++] = (int32_t)b;
                    g->adj[g->start[b]++] = (int32_t)a;
                }
            }
        if (pass == 0) {
            for (int64_t x = 0; x < g->n; x++) g->start[x + 1] += g->start[x];
            g->adj = fm_alloc((size_t)(g->start[g->n] ? g->start[g->n] : 1), sizeof(int32_t),
                              "rcm adjacency");
            if (!g->adj) return FM_ERR_NOMEM;
        } else {
            /* the cursors ended at the next node's start: shift back */
            for (int64_t x = g->n; x > 0; x--) g->start[x] = g->start[x - 1];
            g->start[0] = 0;
        }
    }
    return FM_OK;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The reverse Cuthill-McKee order of g's nodes into order[n]. `scratch` and `by_degree` have
 * n uint64 each. */
static void rcm_order(const graph *g, int32_t *order, uint8_t *visited, uint64_t *scratch,
                      uint64_t *by_degree)
{
    const int64_t n = g->n;
    memset(visited, 0, (size_t)n);
    /* every node keyed by (degree, index), sorted once: the start of each component is the
     * first unvisited node of positive degree in this list (O(n log n) over all components) */
    for (int64_t x = 0; x < n; x++)
        by_degree[x] = ((uint64_t)(g->start[x + 1] - g->start[x]) << 32) | (uint32_t)x;
    qsort(by_degree, (size_t)n, sizeof(uint64_t), cmp_u64);
    int64_t next = 0;                /* position in by_degree of the next candidate start */
    int64_t head = 0, tail = 0;      /* order[] is the BFS queue */
    for (;;) {
        while (next < n && ((by_degree[next] >> 32) == 0 ||
                            visited[by_degree[next] & 0xffffffffu]))
            next++;
        if (next == n) break;
        const int64_t s = (int64_t)(by_degree[next] & 0xffffffffu);
        visited[s] = 1;
        order[tail++] = (int32_t)s;
        while (head < tail) {
            int64_t x = order[head++], m = 0;
            for (int64_t e = g->start[x]; e < g->start[x + 1]; e++) {
                int32_t y = g->adj[e];
                if (visited[y]) continue;
                visited[y] = 1;
                /* key: degree, then index, so that sorting the keys sorts the neighbours */
                scratch[m++] = ((uint64_t)(g->start[y + 1] - g->start[y]) << 32) | (uint32_t)y;
            }
            qsort(scratch, (size_t)m, sizeof(uint64_t), cmp_u64);
            for (int64_t e = 0; e < m; e++) order[tail++] = (int32_t)(scratch[e] & 0xffffffffu);
        }
    }
    /* reverse the Cuthill-McKee part, then append the isolated nodes */
    for (int64_t a = 0, b = tail - 1; a < b; a++, b--) {
        int32_t t = order[a];
        order[a] = order[b], order[b] = t;
    }
    for (int64_t x = 0; x < n; x++)
        if (!visited[x]) order[tail++] = (int32_t)x;
}

fm_status fm_rcm_build(fm_rcm *out, const uint8_t *allowed, int64_t batch, int64_t heads,
                       int64_t seqlen_q, int64_t seqlen_k)
{
    fm_clear_error();
    if (!out) return fm_fail(FM_ERR_INVALID, "rcm: NULL output");
    memset(out, 0, sizeof *out);
    if (!allowed) return fm_fail(FM_ERR_INVALID, "rcm: NULL dense mask");
    if (batch < 1 || heads < 1 || seqlen_q < 1 || seqlen_k < 1)
        return fm_fail(FM_ERR_INVALID, "rcm: sizes B=%lld Hm=%lld Sq=%lld Sk=%lld must be >= 1",
                       (long long)batch, (long long)heads, (long long)seqlen_q,
                       (long long)seqlen_k);
    if (seqlen_q + seqlen_k > INT32_MAX)
        return fm_fail(FM_ERR_OVERFLOW, "rcm: Sq + Sk = %lld exceeds int32 node ids",
                       (long long)(seqlen_q + seqlen_k));
    size_t plane, total;
    int64_t all[] = {batch, heads, seqlen_q, seqlen_k};
    if (fm_mul_sizes(&total, 4, all) || fm_mul_size(&plane, seqlen_q, seqlen_k))
        return fm_fail(FM_ERR_OVERFLOW, "rcm: B*Hm*Sq*Sk overflows");
    const int symmetric = seqlen_q == seqlen_k;
    const int64_t n = symmetric ? seqlen_q : seqlen_q + seqlen_k;
    fm_rcm r = {batch, seqlen_q, seqlen_k, NULL, NULL};
    r.row_perm = fm_alloc((size_t)(batch * seqlen_q), sizeof(int32_t), "rcm row permutation");
    r.col_perm = fm_alloc((size_t)(batch * seqlen_k), sizeof(int32_t), "rcm column permutation");
    uint8_t *u = fm_alloc(plane, 1, "rcm union pattern");
    uint8_t *visited = fm_alloc((size_t)n, 1, "rcm visited");
    int32_t *order = fm_alloc((size_t)n, sizeof(int32_t), "rcm order");
    uint64_t *scratch = fm_alloc((size_t)n, sizeof(uint64_t), "rcm scratch");
    uint64_t *by_degree = fm_alloc((size_t)n, sizeof(uint64_t), "rcm degree order");
    fm_status st = r.row_perm && r.col_perm && u && visited && order && scratch && by_degree
                       ? FM_OK
                       : FM_ERR_NOMEM;
    for (int64_t b = 0; st == FM_OK && b < batch; b++) {
        /* the union over mask heads, refusing values other than 0/1 */
        memset(u, 0, plane);
        for (int64_t h = 0; h < heads && st == FM_OK; h++) {
            const uint8_t *a = allowed + (size_t)(b * heads + h) * plane;
            for (size_t x = 0; x < plane; x++) {
                if (a[x] > 1) {
                    st = fm_fail(FM_ERR_INVALID,
                                 "rcm: dense mask value %u at b=%lld head=%lld row=%lld col=%lld;"
                                 " expected 0 or 1",
                                 (unsigned)a[x], (long long)b, (long long)h,
                                 (long long)(x / (size_t)seqlen_k),
                                 (long long)(x % (size_t)seqlen_k));
                    break;
                }
                u[x] |= a[x];
            }
        }
        if (st != FM_OK) break;
        graph g = {0, NULL, NULL};
        if ((st = graph_build(&g, u, seqlen_q, seqlen_k, symmetric)) == FM_OK) {
            rcm_order(&g, order, visited, scratch, by_degree);
            int32_t *rp = r.row_perm + b * seqlen_q, *cp = r.col_perm + b * seqlen_k;
            if (symmetric) {
                memcpy(rp, order, (size_t)n * sizeof(int32_t));
                memcpy(cp, order, (size_t)n * sizeof(int32_t));
            } else {
                int64_t nr = 0, nc = 0; /* rows and columns in the order their nodes came */
                for (int64_t x = 0; x < n; x++) {
                    if (order[x] < seqlen_q) rp[nr++] = order[x];
                    else cp[nc++] = (int32_t)(order[x] - seqlen_q);
                }
            }
        }
        graph_free(&g);
    }
    free(u), free(visited), free(order), free(scratch), free(by_degree);
    if (st != FM_OK) {
        fm_rcm_free(&r);
        return st;
    }
    *out = r;
    return FM_OK;
}

fm_status fm_rcm_apply_mask(const fm_rcm *r, const uint8_t *allowed, int64_t heads,
                            uint8_t *permuted)
{
    fm_clear_error();
    if (!r || !r->row_perm || !allowed || !permuted)
        return fm_fail(FM_ERR_INVALID, "rcm apply: NULL argument");
    const int64_t sq = r->seqlen_q, sk = r->seqlen_k;
    const size_t plane = (size_t)sq * (size_t)sk;
    for (int64_t b = 0; b < r->batch; b++)
        for (int64_t h = 0; h < heads; h++) {
            const uint8_t *src = allowed + (size_t)(b * heads + h) * plane;
            uint8_t *dst = permuted + (size_t)(b * heads + h) * plane;
            const int32_t *rp = r->row_perm + b * sq, *cp = r->col_perm + b * sk;
            /* new (i, j) is original (row_perm[i], col_perm[j]) */
            for (int64_t i = 0; i < sq; i++)
                for (int64_t j = 0; j < sk; j++) dst[i * sk + j] = src[(size_t)rp[i] * sk + cp[j]];
        }
    return FM_OK;
}
