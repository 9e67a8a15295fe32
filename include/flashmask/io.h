/* flashmask/io.h — files: a strict NumPy .npy reader/writer, mask parameters as JSON, and the
 * case directory of docs/spec.md §6 (case.json + .npy tensors) that third parties use to run the oracle.
 * Layer: io <- masks <- core (io sits beside oracle/, below the tools CLI and python).
 *
 * Everything here refuses malformed input with FM_ERR_FORMAT / FM_ERR_INVALID / FM_ERR_IO and a
 * message that names the file, the field and the value; no byte sequence crashes the reader.
 * Results are written atomically: every file goes into a temporary directory beside the target,
 * which is renamed into place only once complete.
 */
#ifndef FLASHMASK_IO_H
#define FLASHMASK_IO_H

#include <stddef.h>
#include <stdint.h>

#include "flashmask/masks.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- .npy arrays */

/* The element types this reader understands, by their NumPy descr. Reading accepts format
 * versions 1.0 and 2.0, little-endian, C order; writing produces version 1.0. */
typedef enum fm_npy_dtype {
    FM_NPY_F8 = 0, /* '<f8' float64 */
    FM_NPY_F4,     /* '<f4' float32 */
    FM_NPY_F2,     /* '<f2' float16 (read only) */
    FM_NPY_I4,     /* '<i4' int32   */
    FM_NPY_U1,     /* '|u1' uint8   */
    FM_NPY_B1,     /* '|b1' bool (bytes 0 or 1 only) */
    FM_NPY_DTYPE_COUNT
} fm_npy_dtype;

enum { FM_NPY_MAX_DIMS = 8 };

/* An array in host byte order. `data` holds `count` elements of `dtype` (float16 as uint16_t
 * bits, bool as uint8_t 0/1), owned (fm_npy_free). */
typedef struct fm_npy {
    fm_npy_dtype dtype;
    int ndim;
    int64_t shape[FM_NPY_MAX_DIMS];
    size_t count; /* product of shape (1 for a 0-d array) */
    void *data;
} fm_npy;

const char *fm_npy_dtype_descr(fm_npy_dtype dtype); /* "<f8", ... */
size_t fm_npy_dtype_size(fm_npy_dtype dtype);       /* bytes per element */

/* Parses a whole .npy file held in memory. `name` is used in messages ("q.npy").
 * The header must be a well-formed dict with exactly the keys descr, fortran_order, shape;
 * fortran_order must be False; the data must be exactly count * itemsize bytes (a truncated or
 * oversized file is FM_ERR_FORMAT); size products are overflow-checked. */
fm_status fm_npy_parse(const void *bytes, size_t size, const char *name, fm_npy *out);

/* Reads and parses a file (FM_ERR_IO if it cannot be opened or read). */
fm_status fm_npy_read(const char *path, fm_npy *out);

void fm_npy_free(fm_npy *a); /* safe on a zeroed or already freed array */

/* Writes `data` (count = product of shape, host order) as a version 1.0 .npy file.
 * Writable dtypes: F8, F4, I4, U1, B1. */
fm_status fm_npy_write(const char *path, fm_npy_dtype dtype, int ndim, const int64_t *shape,
                       const void *data);

/* Checks a's shape against `shape` (a negative entry accepts any size there). The message
 * names the file, both shapes and the dimension by `dim_names` ("B,Hq,Sq,D"). */
fm_status fm_npy_check_shape(const fm_npy *a, const char *name, int ndim, const int64_t *shape,
                             const char *dim_names);

/* Reads a floating-point array (<f8, <f4 or <f2) of exactly the given shape into a new float64
 * buffer (free()). */
fm_status fm_npy_load_f64(const char *path, int ndim, const int64_t *shape,
                          const char *dim_names, double **out);

/* ---------------------------------------------------------------- mask parameters as JSON */

/* The JSON object of a family's parameters uses the field names of fm_mask_params:
 *   full, causal            {}
 *   sliding_window          {"window": w}
 *   causal_document, document, causal_blockwise   {"doc_lens": [..]}
 *   shared_question         {"doc_lens": [segment lengths..], "sample_segments": [..]}
 *   global_sliding_window   {"global_tokens": g, "left_window": wl, "right_window": wr}
 *   prefix_lm_causal        {"prefix": p}
 *   prefix_lm_document      {"doc_lens": [..], "doc_prefix": [..]}   (same length)
 *   qk_sparse               {"span_offset": [..], "span_len": [..]}   (same length)
 *   random_eviction         {"evict_start": r, "seed": s}
 * Every key of the family is required, no other key is accepted, values are integers in
 * [0, 2^53] (exactly representable in JSON). Semantic checks (lengths summing to Sk, ...) are
 * fm_mask_build's. */

/* A malloc'd JSON text (free()). */
fm_status fm_mask_params_to_json(const fm_mask_params *p, char **json);
/* Parses `json` as family f's parameters; `where` names the source in messages. */
fm_status fm_mask_params_from_json(fm_mask_params *p, fm_family f, const char *json,
                                   const char *where);
/* Overrides parameters of p (whose family is set) from n "key=value" texts, the value an
 * integer or a comma-separated list ("doc_lens=4,3,3"), as `flashmask gen --param` takes them.
 * All are applied, then checked together: lists that share a length (doc_lens/doc_prefix,
 * span_offset/span_len) must agree afterwards. On failure p is unchanged. */
fm_status fm_mask_params_apply(fm_mask_params *p, int n, const char *const *assignments);

/* ---------------------------------------------------------------- cases (docs/spec.md §6) */

/* A case: the problem, its mask and inputs, and the reference's expected outputs when the case
 * carries them. Tensors are float64 holding values exactly representable in problem.dtype. */
typedef struct fm_case {
    fm_problem problem;          /* sizes, scale, dtype */
    fm_mask mask;                /* [B, Hm, Sk, 4] with the case's causal alignment */
    char mask_kind[64];          /* a family name (fm_family_name) or "custom" */
    int has_params;              /* mask_params describe the mask (mask_kind is a family) */
    fm_mask_params mask_params;
    uint64_t seed;               /* the seed the inputs were drawn with (informative;
                                    at most 2^53, as every integer of case.json) */
    double *q, *k, *v, *dout;    /* inputs: [B,Hq,Sq,D], [B,Hk,Sk,D] x2, [B,Hq,Sq,D] */
    double *out, *lse;           /* expected, NULL when absent: [B,Hq,Sq,D], [B,Hq,Sq] */
    double *dq, *dk, *dv;        /* expected, NULL when absent */
} fm_case;

/* A case is self-consistent or refused: fm_case_save records in case.json a SHA-256 digest of
 * its parameters and of every file it writes; fm_case_load verifies it and refuses a case whose
 * parameters or files changed, or which gained or lost a file (FM_ERR_FORMAT naming it). A case
 * without a digest (written before digests existed) loads, but its expected outputs are
 * dropped: they cannot be trusted to belong to its inputs, so checks recompute them.
 * A case holding both mask.npy and mask_dense.npy is refused. */

/* Small enough that `check` recomputes the reference instead of trusting stored outputs:
 * B * Hq * Sq * Sk * D <= FM_CASE_SMALL_WORK (2^28 multiply-adds per matrix product, well
 * under a second of the float64 reference forward + backward). */
#define FM_CASE_SMALL_WORK (1ll << 28)
int fm_case_is_small(const fm_problem *p);

/* Verifies only the digest of the case directory `dir` (FM_OK when it matches or the case has
 * none, then *has_digest = 0; FM_ERR_FORMAT naming what changed). has_digest may be NULL. */
fm_status fm_case_verify_digest(const char *dir, int *has_digest);

/* Zeroes a case (everything NULL) so that fm_case_free is safe. */
void fm_case_init(fm_case *c);
void fm_case_free(fm_case *c);

/* Parses case.json text into c's problem, mask_kind, mask_params, seed and the mask's
 * heads/causal (mask bounds are not read here). For fuzzing and for fm_case_load. */
fm_status fm_case_parse_json(const char *text, size_t size, const char *name, fm_case *c);

/* Loads a case directory: case.json, mask.npy ([B,Hm,Sk,4], or Paddle's [B,Hm,Sk,C] with
 * C in {1,2,4} read with the case's causal), q/k/v/do.npy, and out/lse/dq/dk/dv.npy when
 * present. Checks every shape, dtype, bound, head divisibility, that inputs are finite and
 * representable in the case's dtype, and that expected outputs are finite (lse may be -inf). */
fm_status fm_case_load(const char *dir, fm_case *c);

/* A case's inputs in float32, for an implementation that computes in float32 (`run --impl cpu`):
 * [B,Hq,Sq,D], [B,Hk,Sk,D] x2, [B,Hq,Sq,D]; free with fm_case_inputs32_free. */
typedef struct fm_case_inputs32 {
    float *q, *k, *v, *dout;
} fm_case_inputs32;

/* fm_case_load for running an implementation on the case: the same checks of case.json, the
 * mask and the inputs, and the digest verified for the parameters and the files it reads; the
 * expected outputs (out/lse/dq/dk/dv.npy) are not read, so their bytes are not hashed (their
 * presence is still checked against the digest's list; `check`, which reads them, verifies
 * them), and c->out ... c->dv stay NULL. With in32 non-NULL the inputs are returned there in
 * float32 and c->q ... c->dout stay NULL: float32 files as read, float64 values (a float64 case)
 * rounded to float32 after their checks. */
fm_status fm_case_load_inputs(const char *dir, fm_case *c, fm_case_inputs32 *in32);
void fm_case_inputs32_free(fm_case_inputs32 *in); /* safe on a zeroed struct and on NULL */

/* Writes a case directory atomically (case.json, mask.npy, q/k/v/do.npy and whichever expected
 * outputs are non-NULL). Inputs are written as float64 for dtype float64, else float32; every
 * number of case.json exactly (the scale with 17 digits), case.json last with the digest of its
 * parameters and of every file written (see above). Refuses inputs not representable in
 * the dtype, integers above 2^53 (seed, mask_params) and a target that exists and is not an
 * empty directory. */
fm_status fm_case_save(const char *dir, const fm_case *c);

/* An implementation's results: out, lse, dq, dk, dv (any may be NULL when absent). */
typedef struct fm_results {
    double *out, *lse, *dq, *dk, *dv;
} fm_results;

/* Writes the non-NULL results of problem p atomically as float64 .npy files. */
fm_status fm_results_save(const char *dir, const fm_problem *p, const fm_results *r);

/* Results computed in float32 (the CPU layer's): out, lse, dq, dk, dv (any may be NULL). */
typedef struct fm_results32 {
    const float *out, *lse, *dq, *dk, *dv;
} fm_results32;

/* Writes the non-NULL float32 results of problem p atomically as float32 .npy files: the
 * values exactly as computed, in half the bytes of float64 files (fm_results_load and `check`
 * read either). */
fm_status fm_results_save_f32(const char *dir, const fm_problem *p, const fm_results32 *r);
/* Reads whichever of the five files exist (float64, float32 or float16), shapes checked against
 * p; a directory holding none of them is FM_ERR_IO. */
fm_status fm_results_load(const char *dir, const fm_problem *p, fm_results *r);
void fm_results_free(fm_results *r);

/* ---------------------------------------------------------------- dense-mask cases */

/* The case format extended to dense masks (docs/sparse.md): case.json (mask_kind "custom",
 * mask_params {"dense": pattern, ...}, causal "none"), mask_dense.npy uint8 [B, Hm, Sq, Sk],
 * mask.npy as well when the mask is column-representable, q/k/v/do.npy, the dense oracle's
 * out/lse/dq/dk/dv.npy, and q_keep/k_keep.npy (uint8 [B, Hq, Sq], [B, Hk, Sk]) for QK-sparse or
 * q_buckets/k_buckets.npy (int32) for Hash-sparse. Saved atomically like every case. */
typedef enum fm_dense_pattern {
    FM_DENSE_RANDOM = 0,     /* i.i.d. cells, P(allowed) = density */
    FM_DENSE_SCRAMBLED_BAND, /* |perm(i) - perm(j)| < band, a random perm per (b, head) */
    FM_DENSE_QK_SPARSE,      /* keep flags with P(keep) = density; mask heads = Hq */
    FM_DENSE_HASH_SPARSE,    /* buckets of fm_hash_buckets(n_buckets, seed); mask heads = Hq */
    FM_DENSE_CUSTOM,         /* loaded from a case that names no pattern */
    FM_DENSE_PATTERN_COUNT
} fm_dense_pattern;

const char *fm_dense_pattern_name(fm_dense_pattern pattern);
fm_status fm_dense_pattern_from_name(const char *name, fm_dense_pattern *out);

typedef struct fm_dense_case {
    fm_problem problem;
    int64_t mask_heads;
    fm_dense_pattern pattern;
    double density;                 /* random, qk_sparse */
    int64_t band;                   /* scrambled_band */
    int64_t n_buckets;              /* hash_sparse */
    fm_causal alignment;            /* qk_sparse, hash_sparse: the causal rule they apply */
    uint64_t seed;
    uint8_t *allowed;               /* [B, Hm, Sq, Sk] */
    uint8_t *q_keep, *k_keep;       /* qk_sparse, else NULL */
    int32_t *q_buckets, *k_buckets; /* hash_sparse, else NULL */
    double *q, *k, *v, *dout;       /* inputs */
    double *out, *lse, *dq, *dk, *dv; /* expected (dense oracle), NULL when absent */
} fm_dense_case;

/* Inputs drawn as `flashmask gen` draws them (normal from fm_rng(seed), rounded to p->dtype),
 * the pattern's mask, and the dense oracle's expected outputs. */
fm_status fm_dense_case_generate(fm_dense_case *c, const fm_problem *p, int64_t mask_heads,
                                 fm_dense_pattern pattern, double density, int64_t band,
                                 int64_t n_buckets, fm_causal alignment, uint64_t seed);
fm_status fm_dense_case_save(const char *dir, const fm_dense_case *c);
fm_status fm_dense_case_load(const char *dir, fm_dense_case *c);
void fm_dense_case_free(fm_dense_case *c);
/* 1 when `dir` holds mask_dense.npy and no mask.npy: a case only the dense-mask tools read
 * (`flashmask run` hands such a case to run_dense). */
int fm_dense_case_detect(const char *dir);

#ifdef __cplusplus
}
#endif
#endif
