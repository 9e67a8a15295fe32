/* tests/common/prop.c — the property-based testing layer (tests/common/prop.h): seeded random
 * cases (shapes, GQA ratios, mask heads, mask families, random interval vectors, Sq != Sk with
 * both causal alignments), the trial runner with replayable seeds, and shrinking.
 *
 * Layer: tests, above masks <- core. It builds masks only through the mask module
 * (fm_mask_init, fm_mask_params_random, fm_mask_build) and never calls reference/ or cpu/, so
 * every suite can use it.
 */
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <setjmp.h>
#include <cmocka.h>

#include "prop.h"
#include "runs.h"

#define FM_DEFAULT_SEED 0x20261122ull
#define FM_MSG_LEN 2048
#define FM_SHRINK_TRIES 40   /* derived seeds tried per candidate limit reduction */
#define FM_SHRINK_BUDGET 3000 /* property evaluations spent shrinking, at most */

/* ---------------------------------------------------------------- environment */

uint64_t fm_test_seed(void)
{
    const char *s = getenv("FM_SEED");
    if (s && *s) return strtoull(s, NULL, 0);
    return FM_DEFAULT_SEED;
}

int fm_test_trials(int default_trials)
{
    const char *s = getenv("FM_TRIALS");
    if (s && *s) {
        long n = strtol(s, NULL, 0);
        if (n > 0) return n > INT32_MAX ? INT32_MAX : (int)n;
    }
    return default_trials;
}

static int verbose(void)
{
    const char *s = getenv("FM_VERBOSE");
    return s && *s && strcmp(s, "0") != 0;
}

/* FM_LIMITS="batch,q_heads,seqlen,head_dim[,unequal[,families_only]]" replaces the suite's
 * limits, so that a shrunk case (drawn under smaller limits) replays exactly. */
void fm_case_limits_apply_env(fm_case_limits *l)
{
    const char *s = getenv("FM_LIMITS");
    if (!s || !*s) return;
    long long v[6] = {l->max_batch, l->max_q_heads, l->max_seqlen, l->max_head_dim,
                      l->allow_unequal_seqlens, l->families_only};
    char *end;
    for (int k = 0; k < 6 && *s; k++) {
        long long x = strtoll(s, &end, 0);
        if (end == s) break;
        v[k] = x;
        s = *end == ',' ? end + 1 : end;
    }
    l->max_batch = v[0] < 1 ? 1 : v[0];
    l->max_q_heads = v[1] < 1 ? 1 : v[1];
    l->max_seqlen = v[2] < 1 ? 1 : v[2];
    l->max_head_dim = v[3] < 1 ? 1 : v[3];
    l->allow_unequal_seqlens = (int)v[4];
    l->families_only = (int)v[5];
}

fm_case_limits fm_case_limits_default(void)
{
    fm_case_limits l = {
        .max_batch = 2, .max_q_heads = 4, .max_seqlen = 24, .max_head_dim = 8,
        .allow_unequal_seqlens = 1, .families_only = 0,
    };
    return l;
}

/* ---------------------------------------------------------------- drawing a case */

/* A sequence length in [1, max]: length 1 often enough to matter, otherwise uniform (so odd
 * lengths and lengths that are not multiples of any block size come up constantly). */
static int64_t draw_seqlen(fm_rng *rng, int64_t max)
{
    if (max <= 1 || fm_rng_below(rng, 8) == 0) return 1;
    return fm_rng_range(rng, 1, max);
}

/* Random interval [*start, *end) inside [0, n]; sometimes empty at a random row. */
static void draw_interval(fm_rng *rng, int64_t n, int32_t *start, int32_t *end)
{
    int64_t a = fm_rng_range(rng, 0, n), b = fm_rng_range(rng, 0, n);
    if (a > b) { int64_t t = a; a = b; b = t; }
    *start = (int32_t)a;
    *end = (int32_t)b;
}

/* Random interval vectors for one (b, head): a mix of column styles, and sometimes a band of
 * rows masked in every column (fully masked rows). */
static void draw_random_bounds(fm_mask *m, int64_t b, int64_t h, fm_rng *rng)
{
    const int64_t n = m->seqlen_q;
    /* A band [dead_lo, dead_hi) of rows masked in every column, a third of the time. */
    int has_dead = fm_rng_below(rng, 3) == 0;
    int64_t dead_lo = fm_rng_range(rng, 0, n - 1);
    int64_t dead_hi = fm_rng_range(rng, dead_lo + 1, n);
    /* Bias towards one style per (b, head) so whole-mask shapes (all empty...) also occur. */
    int64_t favourite = (int64_t)fm_rng_below(rng, 6);
    for (int64_t j = 0; j < m->seqlen_k; j++) {
        int32_t *col = fm_mask_column(m, b, h, j);
        int64_t style = fm_rng_below(rng, 2) ? favourite : (int64_t)fm_rng_below(rng, 6);
        switch (style) {
        case 0: /* nothing masked, canonical empty intervals */
            col[FM_LTS] = col[FM_LTE] = (int32_t)n;
            col[FM_UTS] = col[FM_UTE] = 0;
            break;
        case 1: { /* nothing masked, empty intervals at random rows */
            int32_t x = (int32_t)fm_rng_range(rng, 0, n), y = (int32_t)fm_rng_range(rng, 0, n);
            col[FM_LTS] = col[FM_LTE] = x;
            col[FM_UTS] = col[FM_UTE] = y;
            break;
        }
        case 2: /* the whole column masked by LT, sometimes by UT too */
            col[FM_LTS] = 0;
            col[FM_LTE] = (int32_t)n;
            if (fm_rng_below(rng, 2)) draw_interval(rng, n, &col[FM_UTS], &col[FM_UTE]);
            else col[FM_UTS] = col[FM_UTE] = 0;
            break;
        case 3: /* the whole column masked by UT */
            col[FM_UTS] = 0;
            col[FM_UTE] = (int32_t)n;
            col[FM_LTS] = col[FM_LTE] = (int32_t)n;
            break;
        case 4: /* the paper's shape: LT runs to the bottom, UT starts at the top */
            col[FM_LTS] = (int32_t)fm_rng_range(rng, 0, n);
            col[FM_LTE] = (int32_t)n;
            col[FM_UTS] = 0;
            col[FM_UTE] = (int32_t)fm_rng_range(rng, 0, col[FM_LTS]);
            break;
        default: /* two arbitrary intervals, possibly overlapping, possibly "swapped" */
            draw_interval(rng, n, &col[FM_LTS], &col[FM_LTE]);
            draw_interval(rng, n, &col[FM_UTS], &col[FM_UTE]);
            break;
        }
        if (has_dead) { /* widen LT to cover the band */
            col[FM_LTS] = (int32_t)fm_rng_range(rng, 0, dead_lo);
            col[FM_LTE] = (int32_t)fm_rng_range(rng, dead_hi, n);
        }
    }
}

static double *normal_array(size_t n, fm_rng *rng)
{
    double *x = malloc((n ? n : 1) * sizeof *x);
    if (x)
        for (size_t i = 0; i < n; i++) x[i] = fm_rng_normal(rng);
    return x;
}

fm_status fm_random_case_make(fm_random_case *c, uint64_t seed, const fm_case_limits *limits)
{
    memset(c, 0, sizeof *c);
    c->seed = seed;
    fm_case_limits l = limits ? *limits : fm_case_limits_default();
    fm_rng rng;
    fm_rng_seed(&rng, seed);

    /* Shape: GQA by construction (Hk | Hq), mask heads in {1, Hk, Hq}. */
    int64_t batch = fm_rng_range(&rng, 1, l.max_batch < 1 ? 1 : l.max_batch);
    int64_t max_h = l.max_q_heads < 1 ? 1 : l.max_q_heads;
    int64_t kv_heads = fm_rng_range(&rng, 1, max_h);
    int64_t q_heads = kv_heads * fm_rng_range(&rng, 1, max_h / kv_heads);
    int64_t head_choices[3] = {1, kv_heads, q_heads};
    int64_t mask_heads = head_choices[fm_rng_below(&rng, 3)];
    int64_t seqlen_q = draw_seqlen(&rng, l.max_seqlen);
    int64_t seqlen_k = seqlen_q;
    if (l.allow_unequal_seqlens && fm_rng_below(&rng, 2))
        seqlen_k = draw_seqlen(&rng, l.max_seqlen);
    int64_t head_dim = fm_rng_range(&rng, 1, l.max_head_dim < 1 ? 1 : l.max_head_dim);
    fm_problem_init(&c->problem, batch, q_heads, kv_heads, seqlen_q, seqlen_k, head_dim);
    if (fm_rng_below(&rng, 3) == 0) c->problem.scale = 0.05 + 2.0 * fm_rng_uniform(&rng);

    /* Both causal alignments matter only when Sq != Sk, but draw them always. */
    fm_causal alignment = fm_rng_below(&rng, 2) ? FM_CAUSAL_BOTTOM_RIGHT : FM_CAUSAL_TOP_LEFT;
    int use_family = l.families_only || fm_rng_below(&rng, 2);
    fm_status st;
    if (use_family) {
        c->kind = FM_CASE_FAMILY;
        fm_family f = (fm_family)fm_rng_below(&rng, FM_FAMILY_COUNT);
        st = fm_mask_params_random(&c->params, f, seqlen_k, &rng);
        if (st == FM_OK)
            st = fm_mask_build(&c->mask, &c->params, batch, mask_heads, seqlen_q, seqlen_k,
                               alignment);
    } else {
        c->kind = FM_CASE_RANDOM_BOUNDS;
        fm_causal causal = fm_rng_below(&rng, 3) == 0 ? FM_CAUSAL_NONE : alignment;
        st = fm_mask_init(&c->mask, batch, mask_heads, seqlen_q, seqlen_k, causal);
        if (st == FM_OK)
            for (int64_t b = 0; b < batch; b++)
                for (int64_t h = 0; h < mask_heads; h++) draw_random_bounds(&c->mask, b, h, &rng);
    }
    if (st == FM_OK) st = fm_problem_validate(&c->problem, &c->mask);
    if (st != FM_OK) {
        fm_random_case_free(c);
        memset(c, 0, sizeof *c);
        c->kind = FM_CASE_RANDOM_BOUNDS; /* nothing left to free */
        c->seed = seed;
        return st;
    }

    /* Inputs last, so that the mask of a seed does not depend on the tensor sizes. */
    size_t nq = fm_problem_q_elems(&c->problem), nkv = fm_problem_kv_elems(&c->problem);
    c->q = normal_array(nq, &rng);
    c->k = normal_array(nkv, &rng);
    c->v = normal_array(nkv, &rng);
    c->dout = normal_array(nq, &rng);
    if (!c->q || !c->k || !c->v || !c->dout) {
        fm_random_case_free(c);
        return FM_ERR_NOMEM;
    }
    return FM_OK;
}

void fm_random_case_free(fm_random_case *c)
{
    if (!c) return;
    fm_mask_free(&c->mask);
    if (c->kind == FM_CASE_FAMILY) fm_mask_params_free(&c->params);
    c->kind = FM_CASE_RANDOM_BOUNDS; /* params freed: a second free is harmless */
    free(c->q), free(c->k), free(c->v), free(c->dout);
    c->q = c->k = c->v = c->dout = NULL;
}

/* ---------------------------------------------------------------- printing */

static void print_array(FILE *out, const char *name, const int64_t *x, int64_t n)
{
    if (!x || n <= 0) return;
    fprintf(out, " %s=[", name);
    for (int64_t i = 0; i < n; i++) fprintf(out, "%s%" PRId64, i ? "," : "", x[i]);
    fprintf(out, "]");
}

static void print_params(const fm_mask_params *p, FILE *out)
{
    fprintf(out, "  family %s:", fm_family_name(p->family));
    switch (p->family) {
    case FM_FAMILY_SLIDING_WINDOW: fprintf(out, " window=%" PRId64, p->window); break;
    case FM_FAMILY_GLOBAL_SLIDING_WINDOW:
        fprintf(out, " global_tokens=%" PRId64 " left_window=%" PRId64 " right_window=%" PRId64,
                p->global_tokens, p->left_window, p->right_window);
        break;
    case FM_FAMILY_PREFIX_LM_CAUSAL: fprintf(out, " prefix=%" PRId64, p->prefix); break;
    case FM_FAMILY_SHARED_QUESTION:
        print_array(out, "doc_lens", p->doc_lens, p->n_docs);
        print_array(out, "sample_segments", p->sample_segments, p->n_samples);
        break;
    case FM_FAMILY_PREFIX_LM_DOCUMENT:
        print_array(out, "doc_lens", p->doc_lens, p->n_docs);
        print_array(out, "doc_prefix", p->doc_prefix, p->n_docs);
        break;
    case FM_FAMILY_CAUSAL_DOCUMENT:
    case FM_FAMILY_DOCUMENT:
    case FM_FAMILY_CAUSAL_BLOCKWISE: print_array(out, "doc_lens", p->doc_lens, p->n_docs); break;
    case FM_FAMILY_QK_SPARSE:
        print_array(out, "span_offset", p->span_offset, p->n_spans);
        print_array(out, "span_len", p->span_len, p->n_spans);
        break;
    case FM_FAMILY_RANDOM_EVICTION:
        fprintf(out, " evict_start=%" PRId64 " seed=%" PRIu64, p->evict_start, p->seed);
        break;
    default: break;
    }
    fprintf(out, "\n");
}

void fm_random_case_print(const fm_random_case *c, FILE *out)
{
    const fm_problem *p = &c->problem;
    const fm_mask *m = &c->mask;
    fprintf(out,
            "case seed=%" PRIu64 " (0x%" PRIx64 "): B=%" PRId64 " Hq=%" PRId64 " Hk=%" PRId64
            " Hm=%" PRId64 " Sq=%" PRId64 " Sk=%" PRId64 " D=%" PRId64 " scale=%.17g causal=%s"
            " mask=%s\n",
            c->seed, c->seed, p->batch, p->q_heads, p->kv_heads, m->heads, p->seqlen_q,
            p->seqlen_k, p->head_dim, p->scale, fm_causal_name(m->causal),
            c->kind == FM_CASE_FAMILY ? "family" : "random_bounds");
    if (c->kind == FM_CASE_FAMILY) print_params(&c->params, out);
    if (!m->bounds || m->seqlen_k > 64 || m->batch * m->heads > 8) return;
    static const char *const names[FM_BOUNDS] = {"LTS", "LTE", "UTS", "UTE"};
    for (int64_t b = 0; b < m->batch; b++)
        for (int64_t h = 0; h < m->heads; h++)
            for (int k = 0; k < FM_BOUNDS; k++) {
                fprintf(out, "  b=%" PRId64 " head=%" PRId64 " %s:", b, h, names[k]);
                for (int64_t j = 0; j < m->seqlen_k; j++)
                    fprintf(out, " %d", (int)fm_mask_column(m, b, h, j)[k]);
                fprintf(out, "\n");
            }
}

/* ---------------------------------------------------------------- runner and shrinking */

/* The seed of trial t: trial 0 uses the base seed itself, so FM_SEED=<case seed> FM_TRIALS=1
 * replays a printed case; later trials use well-mixed derived seeds (splitmix64). */
static uint64_t derive_seed(uint64_t base, uint64_t t)
{
    if (t == 0) return base;
    uint64_t z = base + t * 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* How big a case is, for shrinking: the work it implies, then its longest sequence. */
static double case_size(const fm_random_case *c)
{
    const fm_problem *p = &c->problem;
    return (double)p->batch * (double)p->q_heads * (double)p->seqlen_q * (double)p->seqlen_k *
               (double)p->head_dim +
           (double)(p->seqlen_q + p->seqlen_k) * 1e-3;
}

/* Outcome of one evaluation: 1 holds, 0 fails (msg filled), -1 the generator failed. */
static int evaluate(fm_property_fn prop, void *ctx, uint64_t seed, const fm_case_limits *l,
                    fm_random_case *c, char *msg)
{
    fm_status st = fm_random_case_make(c, seed, l);
    if (st != FM_OK) {
        snprintf(msg, FM_MSG_LEN, "case generator failed for seed %" PRIu64 ": %s: %s", seed,
                 fm_status_string(st), fm_last_error());
        return -1;
    }
    msg[0] = '\0';
    return prop(c, ctx, msg, FM_MSG_LEN) ? 1 : 0;
}

/* Candidate reductions of the limits, most aggressive first. Returns 0 when `k` is past the
 * last candidate. A candidate equal to `cur` is skipped by the caller. */
static int reduce_limits(const fm_case_limits *cur, int k, fm_case_limits *out)
{
    *out = *cur;
    switch (k) {
    case 0: out->max_seqlen = 1 + (cur->max_seqlen - 1) / 4; return 1;
    case 1: out->max_seqlen = 1 + (cur->max_seqlen - 1) / 2; return 1;
    case 2: out->max_batch = 1; return 1;
    case 3: out->max_q_heads = 1; return 1;
    case 4: out->max_q_heads = cur->max_q_heads / 2 ? cur->max_q_heads / 2 : 1; return 1;
    case 5: out->max_head_dim = 1; return 1;
    case 6: out->max_head_dim = (cur->max_head_dim + 1) / 2; return 1;
    case 7: out->allow_unequal_seqlens = 0; return 1;
    case 8: out->max_seqlen = cur->max_seqlen > 1 ? cur->max_seqlen - 1 : 1; return 1;
    default: return 0;
    }
}

static int limits_equal(const fm_case_limits *a, const fm_case_limits *b)
{
    return a->max_batch == b->max_batch && a->max_q_heads == b->max_q_heads &&
           a->max_seqlen == b->max_seqlen && a->max_head_dim == b->max_head_dim &&
           a->allow_unequal_seqlens == b->allow_unequal_seqlens &&
           a->families_only == b->families_only;
}

/* Greedy shrinking: under ever smaller limits, try derived seeds of the failing seed; adopt
 * any failing case that is smaller. Stops when no reduction finds one or the budget is spent.
 * On return *seed, *limits and msg describe the smallest failing case found. */
static void shrink(fm_property_fn prop, void *ctx, uint64_t *seed,
                   fm_case_limits *limits, double *size, char *msg)
{
    char trial_msg[FM_MSG_LEN];
    int budget = FM_SHRINK_BUDGET, improved = 1;
    while (improved && budget > 0) {
        improved = 0;
        fm_case_limits cand;
        for (int k = 0; !improved && reduce_limits(limits, k, &cand) && budget > 0; k++) {
            if (limits_equal(&cand, limits) && k != 8) continue;
            for (int t = 0; t < FM_SHRINK_TRIES && budget > 0; t++, budget--) {
                uint64_t s = derive_seed(*seed ^ 0x5eedf00dull, (uint64_t)(t + 1));
                fm_random_case c;
                int r = evaluate(prop, ctx, s, &cand, &c, trial_msg);
                double sz = r == 0 ? case_size(&c) : 0.0;
                fm_random_case_free(&c);
                if (r == 0 && sz < *size) {
                    *seed = s;
                    *limits = cand;
                    *size = sz;
                    memcpy(msg, trial_msg, FM_MSG_LEN);
                    improved = 1;
                    break;
                }
            }
        }
    }
}

int fm_check_property(const char *name, fm_property_fn prop, void *ctx, int default_trials,
                      const fm_case_limits *limits)
{
    fm_case_limits l = limits ? *limits : fm_case_limits_default();
    fm_case_limits_apply_env(&l);
    const uint64_t base = fm_test_seed();
    const int trials = fm_test_trials(default_trials);
    const int loud = verbose();
    char msg[FM_MSG_LEN];
    for (int t = 0; t < trials; t++) {
        uint64_t seed = derive_seed(base, (uint64_t)t);
        fm_random_case c;
        int r = evaluate(prop, ctx, seed, &l, &c, msg);
        if (r == -1) {
            fprintf(stderr, "[%s] trial %d: %s\n", name, t, msg);
            fail_msg("[%s] %s", name, msg);
            return t;
        }
        if (loud) {
            fprintf(stderr, "[%s] trial %d %s: ", name, t, r ? "ok" : "FAILED");
            fm_random_case_print(&c, stderr);
        }
        if (r == 1) {
            fm_random_case_free(&c);
            continue;
        }
        /* Failure: report the original, shrink, report the smallest failing case. */
        fprintf(stderr, "[%s] FAILED at trial %d (base seed %" PRIu64 "): %s\n", name, t, base,
                msg);
        fm_random_case_print(&c, stderr);
        double size = case_size(&c);
        fm_random_case_free(&c);
        fm_case_limits small = l;
        uint64_t small_seed = seed;
        shrink(prop, ctx, &small_seed, &small, &size, msg);
        fm_random_case s;
        if (evaluate(prop, ctx, small_seed, &small, &s, msg) == 0) {
            fprintf(stderr, "[%s] smallest failing case found: %s\n", name, msg);
            fm_random_case_print(&s, stderr);
        }
        fm_random_case_free(&s);
        fprintf(stderr,
                "[%s] replay: FM_SEED=%" PRIu64 " FM_TRIALS=1 FM_LIMITS=%" PRId64 ",%" PRId64
                ",%" PRId64 ",%" PRId64 ",%d,%d <test binary>\n",
                name, small_seed, small.max_batch, small.max_q_heads, small.max_seqlen,
                small.max_head_dim, small.allow_unequal_seqlens, small.families_only);
        fail_msg("[%s] property failed (seed %" PRIu64 "): %s", name, small_seed, msg);
        return t + 1;
    }
    if (loud || getenv("FM_TRIALS"))
        fprintf(stderr, "[%s] %d trials passed (base seed %" PRIu64 ")\n", name, trials, base);
    return trials;
}

/* ---------------------------------------------------------------- comparison helpers */

double *fm_rounded_copy(const double *x, size_t n, fm_dtype dtype)
{
    double *y = malloc(n * sizeof *y);
    for (size_t i = 0; y && i < n; i++) y[i] = fm_round_to_dtype(x[i], dtype);
    return y;
}

/* Largest |a - b|; equal infinities count as 0, a NaN anywhere gives NaN (fails every <=). */
double fm_max_abs_diff(const double *a, const double *b, size_t n)
{
    double worst = 0.0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(a[i]) || isnan(b[i])) return NAN;
        if (a[i] == b[i]) continue;
        double d = fabs(a[i] - b[i]);
        if (d > worst) worst = d;
    }
    return worst;
}

double fm_max_abs(const double *a, size_t n)
{
    double worst = 0.0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(a[i])) return NAN;
        if (fabs(a[i]) > worst) worst = fabs(a[i]);
    }
    return worst;
}

void fm_property_test_run(void **state)
{
    const fm_property_test *t = *state;
    if (t->needs_gpu) fm_test_skip_without_gpu();
    fm_case_limits l = fm_case_limits_default();
    if (t->max_batch > 0) l.max_batch = t->max_batch;
    if (t->max_q_heads > 0) l.max_q_heads = t->max_q_heads;
    if (t->max_seqlen > 0) l.max_seqlen = t->max_seqlen;
    if (t->max_head_dim > 0) l.max_head_dim = t->max_head_dim;
    if (t->families_only) l.families_only = 1;
    fm_check_property(t->name, t->prop, t->ctx, t->trials, &l);
}
