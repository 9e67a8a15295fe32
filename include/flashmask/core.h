/* flashmask/core.h — the vocabulary every layer shares: status codes and error messages,
 * element types, the problem descriptor, the tensor bundle, the names of the implementations
 * and the seeded random generator. The calls that run an implementation are flashmask/api.h's.
 *
 * Layering (docs/architecture.md, checked by tests/tree/check_layering.py):
 * core <- masks <- reference, cpu, cuda, sparse <- io <- oracle <- api <- tools (CLI), python.
 * Every function returns an fm_status; on failure fm_last_error() holds a message that names
 * the offending value (which column, which bound, which dimension).
 */
#ifndef FLASHMASK_CORE_H
#define FLASHMASK_CORE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#include "flashmask/version.h" /* FM_VERSION_STRING, generated from meson.build's version */

/* The version of the library linked or loaded ("0.1.0"); FM_VERSION_STRING is that of the
 * headers compiled against. */
const char *fm_version(void);

/* ---------------------------------------------------------------- status and errors */

typedef enum fm_status {
    FM_OK = 0,
    FM_ERR_INVALID = 1,           /* invalid argument: shape, bound, parameter, name */
    FM_ERR_NOT_REPRESENTABLE = 2, /* a dense mask column with more than two masked runs */
    FM_ERR_NOMEM = 3,             /* allocation failed */
    FM_ERR_OVERFLOW = 4,          /* sizes whose products overflow size_t or int32 limits */
    FM_ERR_IO = 5,                /* a file is missing, unreadable or unwritable */
    FM_ERR_FORMAT = 6,            /* a malformed file: truncated, bad header, wrong shape/dtype */
    FM_ERR_NONFINITE = 7,         /* NaN or Inf in an input tensor */
    FM_ERR_UNAVAILABLE = 8,       /* implementation not built here, or no device */
    FM_ERR_DEVICE = 9,            /* the GPU runtime reported an error */
    FM_ERR_INTERNAL = 10          /* a bug: please report */
} fm_status;

/* "ok", "invalid argument", ... */
const char *fm_status_string(fm_status status);

/* The message of the last failing call made by this thread ("" if none). */
const char *fm_last_error(void);

/* Process exit code for a status, as the CLI uses it: 0 ok, 2 invalid input
 * (INVALID, NOT_REPRESENTABLE, OVERFLOW, IO, FORMAT, NONFINITE), 3 unavailable, 1 otherwise. */
int fm_status_exit_code(fm_status status);

/* ---------------------------------------------------------------- element types */

typedef enum fm_dtype {
    FM_FLOAT64 = 0,
    FM_FLOAT32 = 1,
    FM_FLOAT16 = 2,
    FM_BFLOAT16 = 3
} fm_dtype;

const char *fm_dtype_name(fm_dtype dtype);                       /* "float64", ... */
fm_status fm_dtype_from_name(const char *name, fm_dtype *out);

/* Round x to the nearest value of `dtype` (round to nearest, ties to even; overflow to +-inf;
 * subnormals kept), exactly, from double (no double rounding through float). */
double fm_round_to_dtype(double x, fm_dtype dtype);

/* Bit-level conversions (round to nearest even). */
uint16_t fm_float_to_half(float x);
float fm_half_to_float(uint16_t h);
uint16_t fm_float_to_bf16(float x);
float fm_bf16_to_float(uint16_t b);

/* ---------------------------------------------------------------- seeded random numbers */

/* xoshiro256** seeded through splitmix64: the one generator of the project (builders,
 * tests, case generation), so that a seed means the same thing everywhere. */
typedef struct fm_rng {
    uint64_t s[4];
} fm_rng;

void fm_rng_seed(fm_rng *rng, uint64_t seed);
uint64_t fm_rng_u64(fm_rng *rng);
uint64_t fm_rng_below(fm_rng *rng, uint64_t n); /* uniform in [0, n); n > 0 */
int64_t fm_rng_range(fm_rng *rng, int64_t lo, int64_t hi); /* uniform in [lo, hi]; lo <= hi */
double fm_rng_uniform(fm_rng *rng);             /* uniform in [0, 1) */
double fm_rng_normal(fm_rng *rng);              /* standard normal */

/* ---------------------------------------------------------------- the problem */

typedef struct fm_mask fm_mask; /* defined in flashmask/masks.h */

enum { FM_FLAG_DETERMINISTIC = 1u << 0 }; /* implementations with atomics use a fixed order */

/* Q[B,Hq,Sq,D], K and V [B,Hk,Sk,D]; query head h reads kv head h / (Hq/Hk).
 * Mask heads and the causal alignment belong to the mask (flashmask/masks.h). */
typedef struct fm_problem {
    int64_t batch;     /* B  */
    int64_t q_heads;   /* Hq */
    int64_t kv_heads;  /* Hk, divides Hq */
    int64_t seqlen_q;  /* Sq >= 1 */
    int64_t seqlen_k;  /* Sk >= 1 */
    int64_t head_dim;  /* D  >= 1 */
    double scale;      /* s; fm_problem_init sets 1/sqrt(D) */
    fm_dtype dtype;    /* what an implementation with a choice computes in (cuda: float16 or
                          bfloat16); the reference always uses float64, cpu float32 */
    unsigned flags;    /* FM_FLAG_* */
} fm_problem;

/* Fills every field; scale = 1/sqrt(D), dtype = float32, flags = 0. Does not validate. */
void fm_problem_init(fm_problem *p, int64_t batch, int64_t q_heads, int64_t kv_heads,
                     int64_t seqlen_q, int64_t seqlen_k, int64_t head_dim);

/* Checks the problem on its own: positive sizes, Hk | Hq, finite positive scale, a known dtype,
 * and that every tensor's element count fits size_t and every sequence length and head_dim fits
 * int32. fm_problem_validate (flashmask/masks.h) adds the checks against a mask. */
fm_status fm_problem_check(const fm_problem *p);

/* Element counts of the tensors (no overflow once fm_problem_check passed). */
size_t fm_problem_q_elems(const fm_problem *p);   /* B*Hq*Sq*D: q, out, dout, dq */
size_t fm_problem_kv_elems(const fm_problem *p);  /* B*Hk*Sk*D: k, v, dk, dv */
size_t fm_problem_lse_elems(const fm_problem *p); /* B*Hq*Sq: lse */

/* ---------------------------------------------------------------- tensors and implementations */

/* Host tensors in float64 holding values an implementation converts to its own dtype.
 * Forward reads q, k, v and writes out, lse. Backward reads q, k, v, out, lse, dout (out and
 * lse as the same implementation's forward wrote them) and writes dq, dk, dv.
 * A fully masked row has out = 0, lse = -inf and passes no gradient. */
typedef struct fm_tensors {
    const double *q, *k, *v; /* [B,Hq,Sq,D], [B,Hk,Sk,D], [B,Hk,Sk,D] */
    const double *dout;      /* [B,Hq,Sq,D] */
    double *out;             /* [B,Hq,Sq,D] */
    double *lse;             /* [B,Hq,Sq]   */
    double *dq;              /* [B,Hq,Sq,D] */
    double *dk, *dv;         /* [B,Hk,Sk,D] */
} fm_tensors;

typedef enum fm_impl {
    FM_IMPL_REFERENCE = 0, /* float64, dense O(Sq*Sk): the oracle */
    FM_IMPL_CPU = 1,       /* float32, tiled, OpenMP, skips fully masked tiles */
    FM_IMPL_CUDA = 2,      /* float16/bfloat16 tensor-core kernels */
    FM_IMPL_REFERENCE_CUDA = 3, /* the reference's function in float64 on the GPU, tiled
                                   (flashmask/cuda.h fm_cuda_reference_*): long contexts */
    FM_IMPL_COUNT = 4
} fm_impl;

#ifdef __cplusplus
}
#endif
#endif
