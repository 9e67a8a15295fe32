/* masks/families.c — the table of the mask families of docs/spec.md §4: one row per family with
 * everything the library knows about it — its name, whether it uses the causal rule, a one-line
 * description of its parameters (what `flashmask masks` prints), the parameters it reads (their
 * JSON and CLI names), and the functions that give its documented defaults, draw random
 * instances, check parameters and build the mask; and the calls that go through the table
 * (fm_mask_params_default / _random / _validate, fm_mask_build). Every other part of the
 * library (io/, the CLI, Python) walks this table; adding a family means adding its row here,
 * its builder (masks/builders*.c) and its docs.
 *
 * Layer: masks <- core.
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "families_internal.h"
#include "fm_internal.h"

/* The parameters of the families, as data (flashmask/masks.h fm_param_field): io/ writes and
 * reads case.json's mask_params and `gen --param` with these names. */
#define SCALAR(name) {#name, FM_PARAM_I64, offsetof(fm_mask_params, name), 0}
#define LIST(name, count) \
    {#name, FM_PARAM_LIST, offsetof(fm_mask_params, name), offsetof(fm_mask_params, count)}
#define FM_NFIELDS(a) ((int)(sizeof(a) / sizeof((a)[0])))

static const fm_param_field f_window[] = {SCALAR(window)};
static const fm_param_field f_docs[] = {LIST(doc_lens, n_docs)};
static const fm_param_field f_shared_q[] = {LIST(doc_lens, n_docs),
                                            LIST(sample_segments, n_samples)};
static const fm_param_field f_gsw[] = {SCALAR(global_tokens), SCALAR(left_window),
                                       SCALAR(right_window)};
static const fm_param_field f_prefix[] = {SCALAR(prefix)};
static const fm_param_field f_prefix_doc[] = {LIST(doc_lens, n_docs), LIST(doc_prefix, n_docs)};
static const fm_param_field f_spans[] = {LIST(span_offset, n_spans), LIST(span_len, n_spans)};
static const fm_param_field f_evict[] = {SCALAR(evict_start),
                                         {"seed", FM_PARAM_U64, offsetof(fm_mask_params, seed), 0}};

/* THE table: one row per family, in the order of enum fm_family. */
static const fm_family_row families[FM_FAMILY_COUNT] = {
    [FM_FAMILY_FULL] = {
        .name = "full",
        .causal = 0,
        .fields = NULL,
        .n_fields = 0,
        .help =
            "no parameters; every key visible to every row",
        .defaults = fm_defaults_none,
        .random = fm_random_none,
        .validate = fm_validate_none,
        .build = fm_build_full,
    },
    [FM_FAMILY_CAUSAL] = {
        .name = "causal",
        .causal = 1,
        .fields = NULL,
        .n_fields = 0,
        .help =
            "no parameters; key j visible to rows at j and after",
        .defaults = fm_defaults_none,
        .random = fm_random_none,
        .validate = fm_validate_none,
        .build = fm_build_causal,
    },
    [FM_FAMILY_SLIDING_WINDOW] = {
        .name = "sliding_window",
        .causal = 1,
        .fields = f_window,
        .n_fields = FM_NFIELDS(f_window),
        .help =
            "window=w >= 1: each row sees the w most recent keys, itself included (default w = "
            "max(1, S/8))",
        .defaults = fm_defaults_sliding_window,
        .random = fm_random_sliding_window,
        .validate = fm_validate_sliding_window,
        .build = fm_build_sliding_window,
    },
    [FM_FAMILY_CAUSAL_DOCUMENT] = {
        .name = "causal_document",
        .causal = 1,
        .fields = f_docs,
        .n_fields = FM_NFIELDS(f_docs),
        .help =
            "doc_lens=l1,l2,... (sum S): causal inside each document (default 8 near-equal docs)",
        .defaults = fm_defaults_docs,
        .random = fm_random_docs,
        .validate = fm_validate_docs,
        .build = fm_build_causal_document,
    },
    [FM_FAMILY_DOCUMENT] = {
        .name = "document",
        .causal = 0,
        .fields = f_docs,
        .n_fields = FM_NFIELDS(f_docs),
        .help =
            "doc_lens=l1,l2,... (sum S): bidirectional inside each document (default 8 docs)",
        .defaults = fm_defaults_docs,
        .random = fm_random_docs,
        .validate = fm_validate_docs,
        .build = fm_build_document,
    },
    [FM_FAMILY_SHARED_QUESTION] = {
        .name = "shared_question",
        .causal = 1,
        .fields = f_shared_q,
        .n_fields = FM_NFIELDS(f_shared_q),
        .help =
            "doc_lens=segments (sum S), sample_segments=n1,n2,... (1 question + answers per "
            "sample): answers see their question and themselves, causally (default 2 samples, "
            "question = half, 3 answers)",
        .defaults = fm_defaults_shared_question,
        .random = fm_random_shared_question,
        .validate = fm_validate_shared_question,
        .build = fm_build_shared_question,
    },
    [FM_FAMILY_GLOBAL_SLIDING_WINDOW] = {
        .name = "global_sliding_window",
        .causal = 0,
        .fields = f_gsw,
        .n_fields = FM_NFIELDS(f_gsw),
        .help =
            "global_tokens=g, left_window=wl, right_window=wr (>= 0): the first g keys and rows "
            "see/are seen by all, others see keys [x-wl, x+wr] (default g = max(1, S/64), wl = wr"
            " = S/16)",
        .defaults = fm_defaults_global_sliding_window,
        .random = fm_random_global_sliding_window,
        .validate = fm_validate_global_sliding_window,
        .build = fm_build_global_sliding_window,
    },
    [FM_FAMILY_CAUSAL_BLOCKWISE] = {
        .name = "causal_blockwise",
        .causal = 1,
        .fields = f_docs,
        .n_fields = FM_NFIELDS(f_docs),
        .help =
            "doc_lens=l1,l2,... (sum S): causal inside each document, the last document sees "
            "every earlier key (default 8 docs)",
        .defaults = fm_defaults_docs,
        .random = fm_random_docs,
        .validate = fm_validate_docs,
        .build = fm_build_causal_blockwise,
    },
    [FM_FAMILY_PREFIX_LM_CAUSAL] = {
        .name = "prefix_lm_causal",
        .causal = 0,
        .fields = f_prefix,
        .n_fields = FM_NFIELDS(f_prefix),
        .help =
            "prefix=p >= 0: keys < p seen by every row, later keys causally (default p = S/4)",
        .defaults = fm_defaults_prefix_lm_causal,
        .random = fm_random_prefix_lm_causal,
        .validate = fm_validate_prefix_lm_causal,
        .build = fm_build_prefix_lm_causal,
    },
    [FM_FAMILY_PREFIX_LM_DOCUMENT] = {
        .name = "prefix_lm_document",
        .causal = 0,
        .fields = f_prefix_doc,
        .n_fields = FM_NFIELDS(f_prefix_doc),
        .help =
            "doc_lens=l1,..., doc_prefix=p1,... (0 <= p_d <= l_d): prefix-LM inside each document"
            " (default 8 docs, prefix = len/4)",
        .defaults = fm_defaults_prefix_lm_document,
        .random = fm_random_prefix_lm_document,
        .validate = fm_validate_prefix_lm_document,
        .build = fm_build_prefix_lm_document,
    },
    [FM_FAMILY_QK_SPARSE] = {
        .name = "qk_sparse",
        .causal = 1,
        .fields = f_spans,
        .n_fields = FM_NFIELDS(f_spans),
        .help =
            "span_offset=o1,..., span_len=n1,... (disjoint, inside [0,S)): causal, but the keys "
            "of a span are hidden from the rows of the same span (default: max(1, S/16) random "
            "single-column drops)",
        .defaults = fm_defaults_qk_sparse,
        .random = fm_random_qk_sparse,
        .validate = fm_validate_qk_sparse,
        .build = fm_build_qk_sparse,
    },
    [FM_FAMILY_RANDOM_EVICTION] = {
        .name = "random_eviction",
        .causal = 1,
        .fields = f_evict,
        .n_fields = FM_NFIELDS(f_evict),
        .help =
            "evict_start=s >= 1, seed: causal; from row s on each row evicts one random earlier "
            "key, so it sees s keys; differs per (batch, head) (default s = max(1, S/2), seed 1)",
        .defaults = fm_defaults_random_eviction,
        .random = fm_random_random_eviction,
        .validate = fm_validate_random_eviction,
        .build = fm_build_random_eviction,
    },
};

const char *fm_family_name(fm_family f)
{
    return (unsigned)f < FM_FAMILY_COUNT ? families[f].name : "unknown";
}

fm_status fm_family_from_name(const char *name, fm_family *out)
{
    for (int f = 0; f < FM_FAMILY_COUNT; f++) {
        if (name && strcmp(name, families[f].name) == 0) {
            *out = (fm_family)f;
            return FM_OK;
        }
    }
    char names[512];
    size_t n = 0;
    names[0] = '\0';
    for (int f = 0; f < FM_FAMILY_COUNT && n < sizeof names; f++) {
        int w = snprintf(names + n, sizeof names - n, "%s%s", f ? ", " : "", families[f].name);
        if (w > 0) n += (size_t)w;
    }
    return fm_fail(FM_ERR_INVALID, "unknown mask family '%s' (expected one of: %s)",
                   name ? name : "(null)", names);
}

int fm_family_is_causal(fm_family f)
{
    return (unsigned)f < FM_FAMILY_COUNT ? families[f].causal : 0;
}

const char *fm_family_help(fm_family f)
{
    return (unsigned)f < FM_FAMILY_COUNT ? families[f].help : "unknown family";
}

int fm_family_count(void)
{
    return FM_FAMILY_COUNT;
}

const fm_param_field *fm_family_fields(fm_family f, int *n)
{
    const int ok = (unsigned)f < FM_FAMILY_COUNT;
    if (n) *n = ok ? families[f].n_fields : 0;
    return ok ? families[f].fields : NULL;
}

/* ---------------------------------------------------------------- through the table */

fm_status fm_mask_params_default(fm_mask_params *p, fm_family f, int64_t seqlen)
{
    if (!p) return fm_fail(FM_ERR_INVALID, "mask params default: NULL params");
    fm_status st = fm_mask_params_begin(p, f, seqlen, "mask params default");
    if (st != FM_OK) return st;
    st = families[f].defaults(p, seqlen);
    if (st) fm_mask_params_free(p);
    return st;
}

fm_status fm_mask_params_random(fm_mask_params *p, fm_family f, int64_t seqlen, fm_rng *rng)
{
    if (!p || !rng) return fm_fail(FM_ERR_INVALID, "mask params random: NULL argument");
    fm_status st = fm_mask_params_begin(p, f, seqlen, "mask params random");
    if (st != FM_OK) return st;
    st = families[f].random(p, seqlen, rng);
    if (st) fm_mask_params_free(p);
    return st;
}

fm_status fm_mask_params_validate(const fm_mask_params *p, int64_t seqlen_q, int64_t seqlen_k)
{
    (void)seqlen_q; /* every parameter is in key positions */
    if (!p) return fm_fail(FM_ERR_INVALID, "mask params: NULL");
    if ((unsigned)p->family >= FM_FAMILY_COUNT)
        return fm_fail(FM_ERR_INVALID, "mask params: unknown family %d", (int)p->family);
    return families[p->family].validate(families[p->family].name, p, seqlen_k);
}

fm_status fm_mask_build(fm_mask *out, const fm_mask_params *p, int64_t batch, int64_t heads,
                        int64_t seqlen_q, int64_t seqlen_k, fm_causal alignment)
{
    if (!out) return fm_fail(FM_ERR_INVALID, "mask build: NULL output mask");
    memset(out, 0, sizeof *out); /* fm_mask_free-safe whatever happens below */
    if (!p) return fm_fail(FM_ERR_INVALID, "mask build: NULL params");
    if ((unsigned)p->family >= FM_FAMILY_COUNT)
        return fm_fail(FM_ERR_INVALID, "mask build: unknown family %d", (int)p->family);
    const char *name = fm_family_name(p->family);
    fm_causal causal = FM_CAUSAL_NONE;
    if (fm_family_is_causal(p->family)) {
        if (alignment != FM_CAUSAL_BOTTOM_RIGHT && alignment != FM_CAUSAL_TOP_LEFT)
            return fm_fail(FM_ERR_INVALID,
                           "%s is a causal family: alignment '%s' refused, use bottom_right or "
                           "top_left",
                           name, fm_causal_name(alignment));
        causal = alignment;
    }
    /* Sizes first (fm_mask_init's words), then the parameters against them. */
    fm_status st = fm_mask_init(out, batch, heads, seqlen_q, seqlen_k, causal);
    if (st) return st;
    st = fm_mask_params_validate(p, seqlen_q, seqlen_k);
    if (st) {
        fm_mask_free(out);
        return st;
    }
    fm_build_ctx ctx = {
        .mask = out, .p = p, .seqlen_q = seqlen_q, .seqlen_k = seqlen_k,
        .off = causal == FM_CAUSAL_NONE ? 0 : fm_causal_offset(causal, seqlen_q, seqlen_k),
    };
    st = families[p->family].build(&ctx);
    /* The builders clip every bound, so this cannot fail unless a builder has a bug. */
    if (!st && fm_mask_validate(out) != FM_OK) {
        char why[512];
        snprintf(why, sizeof why, "%s", fm_last_error()); /* fm_fail rewrites that buffer */
        st = fm_fail(FM_ERR_INTERNAL, "mask build: %s produced an invalid mask: %s", name, why);
    }
    if (st) fm_mask_free(out);
    return st;
}
