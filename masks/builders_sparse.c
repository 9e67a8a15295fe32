/* masks/builders_sparse.c — the builders of the two families that hide scattered keys
 * (docs/spec.md §4): qk_sparse (spans of keys hidden from the rows of the same span) and
 * random_eviction (a KV cache of fixed size that evicts one random key per row, different for
 * every (batch, head)).
 *
 * Layer: masks <- core. Positions and clipping: see families_internal.h.
 */
#include <stdlib.h>

#include "families_internal.h"
#include "fm_internal.h"

/* qk_sparse(spans), with the causal rule: a key j of span [o, o+len) gets LT = [j, o+len).
 * The causal rule hides it from rows before j already, so it is seen only by rows at o+len and
 * after: the rows of a span see none of the span's keys (a dropped query/key block). Keys
 * outside every span are plain causal. */
fm_status fm_build_qk_sparse(const fm_build_ctx *c)
{
    for (int64_t s = 0; s < c->p->n_spans; s++) {
        int64_t o = c->p->span_offset[s], end = o + c->p->span_len[s];
        for (int64_t j = o; j < end; j++)
            fm_build_set_column(c, 0, 0, j, j, end, FM_POS_BEGIN, FM_POS_BEGIN);
    }
    fm_build_broadcast(c);
    return FM_OK;
}

/* random_eviction(s, seed), with the causal rule. Rows at positions before s see every earlier
 * key. At each position r in [s, Sk) one key chosen uniformly among the keys before r that are
 * still cached is evicted: LTS = r, hidden from row r on. So every row at r >= s sees exactly
 * s keys (itself included): a KV cache of s entries. Keys never evicted have no interval.
 * (b, head) draws from its own stream:
 *     fm_rng_seed(seed + (b*heads + head) * 0x9e3779b97f4a7c15). */
fm_status fm_build_random_eviction(const fm_build_ctx *c)
{
    const int64_t sk = c->seqlen_k;
    int64_t *live = fm_alloc((size_t)sk, sizeof *live, "random_eviction cache");
    int64_t *evicted_at = fm_alloc((size_t)sk, sizeof *evicted_at, "random_eviction rows");
    if (!live || !evicted_at) {
        free(live);
        free(evicted_at);
        return FM_ERR_NOMEM;
    }
    for (int64_t b = 0; b < c->mask->batch; b++) {
        for (int64_t h = 0; h < c->mask->heads; h++) {
            fm_rng rng;
            uint64_t stream = (uint64_t)(b * c->mask->heads + h);
            fm_rng_seed(&rng, c->p->seed + stream * 0x9e3779b97f4a7c15ull);
            int64_t n_live = 0;
            for (int64_t j = 0; j < sk; j++) evicted_at[j] = FM_POS_END;
            for (int64_t r = 1; r < sk; r++) {
                live[n_live++] = r - 1; /* key r-1 is now an earlier key of row r */
                if (r < c->p->evict_start) continue;
                /* n_live = s >= 1 here: r keys cached minus r - s evicted. */
                int64_t k = (int64_t)fm_rng_below(&rng, (uint64_t)n_live);
                evicted_at[live[k]] = r;
                live[k] = live[--n_live];
            }
            for (int64_t j = 0; j < sk; j++)
                fm_build_set_column(c, b, h, j, evicted_at[j], FM_POS_END, FM_POS_BEGIN,
                                    FM_POS_BEGIN);
        }
    }
    free(live);
    free(evicted_at);
    return FM_OK;
}
