/* cpu/task_order.c — the order in which the forward's OpenMP loop takes its tasks (one task per
 * query tile of a (batch, query head) line), chosen from each task's count of computed key tiles.
 * Layer: cpu (scheduling only: it sees work counts, no mask). Declared in cpu_internal.h.
 *
 * Two candidate orders:
 *   lines reversed: line after line, each from its last query tile to its first. Consecutive
 *                   tasks are neighbouring query tiles, which read mostly the same key and value
 *                   tiles (under document masks exactly the same document), so those stay in
 *                   cache from one task to the next; under causal masks the longest come first
 *                   in each line and the line ends with the shortest.
 *   longest first:  by decreasing work, ties in index order (a counting sort). It balances any
 *                   work profile but scatters neighbouring tiles across the loop.
 * The first is kept unless a model of the dynamic schedule (each worker takes the next task
 * when it is free; a task costs its tiles plus half a tile of fixed cost) says it ends more than
 * 2% later than the second: e.g. global_sliding_window, whose long first query tile would come
 * last in each line. No allocation: it runs with caller scratch. docs/performance.md has the
 * measurements behind it.
 */
#include <string.h>

#include "cpu_internal.h"

/* Restores the min-heap property of h[0..n) below slot i. */
static void sift_down(int64_t *h, int64_t n, int64_t i)
{
    for (;;) {
        int64_t least = i, l = 2 * i + 1, r = l + 1;
        if (l < n && h[l] < h[least]) least = l;
        if (r < n && h[r] < h[least]) least = r;
        if (least == i) return;
        const int64_t t = h[i];
        h[i] = h[least], h[least] = t;
        i = least;
    }
}

int64_t fm_task_order_makespan(const int64_t *work, const int64_t *order, int64_t n_tasks,
                               int64_t threads, int64_t *heap)
{
    /* heap of the workers' finishing times, in half tiles; the earliest takes the next task */
    memset(heap, 0, (size_t)threads * sizeof *heap);
    for (int64_t i = 0; i < n_tasks; i++) {
        heap[0] += 2 * work[order[i]] + 1;
        sift_down(heap, threads, 0);
    }
    int64_t end = 0;
    for (int64_t t = 0; t < threads; t++)
        if (heap[t] > end) end = heap[t];
    return end;
}

/* Longest first: a counting sort, stable, O(n_tasks + max_work); count has max_work + 2 slots. */
static void longest_first(const int64_t *work, int64_t n_tasks, int64_t max_work, int64_t *count,
                          int64_t *order)
{
    memset(count, 0, (size_t)(max_work + 2) * sizeof *count);
    for (int64_t t = 0; t < n_tasks; t++) count[max_work - work[t] + 1]++;
    for (int64_t w = 1; w <= max_work + 1; w++) count[w] += count[w - 1]; /* starts, by rank */
    for (int64_t t = 0; t < n_tasks; t++) order[count[max_work - work[t]]++] = t;
}

fm_task_order_kind fm_task_order(const int64_t *work, int64_t n_tasks, int64_t line_len,
                                 int64_t max_work, int64_t threads, int64_t *scratch,
                                 int64_t *order)
{
    for (int64_t t = 0; t < n_tasks; t++) {
        const int64_t line = t / line_len, pos = t % line_len;
        order[t] = line * line_len + (line_len - 1 - pos);
    }
    if (threads < 2) return FM_ORDER_LINES_REVERSED; /* one worker: balance is moot */
    int64_t *alt = scratch, *count = alt + n_tasks, *heap = count + max_work + 2;
    longest_first(work, n_tasks, max_work, count, alt);
    const int64_t lines = fm_task_order_makespan(work, order, n_tasks, threads, heap);
    const int64_t longest = fm_task_order_makespan(work, alt, n_tasks, threads, heap);
    if (50 * lines <= 51 * longest) return FM_ORDER_LINES_REVERSED;
    memcpy(order, alt, (size_t)n_tasks * sizeof *order);
    return FM_ORDER_LONGEST_FIRST;
}
