"""flashmask._lib — the ctypes binding of libflashmask.so: locating the library, mirroring the C
structs of include/flashmask/*.h, declaring every function's signature, and turning a failing
fm_status into a Python exception that carries fm_last_error().

Layer: python (the top of the stack, beside the CLI); everything else in the package calls C
through here and nothing is compiled at install time.

The library is found by _loader.find_library(): $FLASHMASK_LIB, the installed copy, the
repository's build*/ directories, the system's library path. The struct mirrors below are
compared with the library's own layout table (fm_layout_table) by _layout.py at import.
"""

import ctypes
import os

import numpy as np

from . import _loader

# ------------------------------------------------------------------ errors

STATUS_NAMES = {
    0: "ok", 1: "invalid argument", 2: "not representable", 3: "out of memory",
    4: "size overflow", 5: "input/output error", 6: "malformed file", 7: "non-finite input",
    8: "implementation unavailable", 9: "device error", 10: "internal error",
}


class FlashMaskError(Exception):
    """A libflashmask call failed. `status` is the fm_status code, `status_name` its name and
    `message` the library's fm_last_error() text (which names the offending value)."""

    def __init__(self, status, message, call=""):
        self.status = status
        self.status_name = STATUS_NAMES.get(status, "unknown status")
        self.message = message
        self.call = call
        super().__init__(f"{call}: {self.status_name}: {message}" if call
                         else f"{self.status_name}: {message}")


class InvalidInput(FlashMaskError, ValueError):
    """Invalid argument, bound, shape or parameter (statuses 1, 2, 4, 6, 7)."""


class Unavailable(FlashMaskError, RuntimeError):
    """The implementation is not built here or has no device (status 8)."""


class FileError(FlashMaskError, OSError):
    """A file is missing or unreadable (status 5)."""


def _error_class(status):
    if status == 5:
        return FileError
    if status == 8:
        return Unavailable
    if status in (1, 2, 4, 6, 7):
        return InvalidInput
    return FlashMaskError


# ------------------------------------------------------------------ locating the library

LIB_PATH = _loader.find_library()
lib = ctypes.CDLL(LIB_PATH)

# ------------------------------------------------------------------ enums

DTYPES = {"float64": 0, "float32": 1, "float16": 2, "bfloat16": 3}
DTYPE_NAMES = {v: k for k, v in DTYPES.items()}
CAUSAL = {"none": 0, "bottom_right": 1, "top_left": 2}
CAUSAL_NAMES = {v: k for k, v in CAUSAL.items()}
# reference-cuda: the reference's float64 function on the GPU (fm_cuda_reference_*, cuda.h)
IMPLS = {"reference": 0, "cpu": 1, "cuda": 2, "reference-cuda": 3}
TILE_CLASSES = {0: "unmasked", 1: "partial", 2: "masked"}

# ------------------------------------------------------------------ struct mirrors

c_int64_p = ctypes.POINTER(ctypes.c_int64)
c_int32_p = ctypes.POINTER(ctypes.c_int32)
c_double_p = ctypes.POINTER(ctypes.c_double)
c_uint8_p = ctypes.POINTER(ctypes.c_uint8)


class Problem(ctypes.Structure):  # fm_problem (core.h)
    _fields_ = [("batch", ctypes.c_int64), ("q_heads", ctypes.c_int64),
                ("kv_heads", ctypes.c_int64), ("seqlen_q", ctypes.c_int64),
                ("seqlen_k", ctypes.c_int64), ("head_dim", ctypes.c_int64),
                ("scale", ctypes.c_double), ("dtype", ctypes.c_int), ("flags", ctypes.c_uint)]


class CMask(ctypes.Structure):  # fm_mask (masks.h)
    _fields_ = [("batch", ctypes.c_int64), ("heads", ctypes.c_int64),
                ("seqlen_q", ctypes.c_int64), ("seqlen_k", ctypes.c_int64),
                ("causal", ctypes.c_int), ("bounds", c_int32_p)]


class Tensors(ctypes.Structure):  # fm_tensors (core.h)
    _fields_ = [(n, c_double_p) for n in
                ("q", "k", "v", "dout", "out", "lse", "dq", "dk", "dv")]


class MaskParams(ctypes.Structure):  # fm_mask_params (masks.h)
    _fields_ = [("family", ctypes.c_int), ("window", ctypes.c_int64),
                ("global_tokens", ctypes.c_int64), ("left_window", ctypes.c_int64),
                ("right_window", ctypes.c_int64), ("prefix", ctypes.c_int64),
                ("n_docs", ctypes.c_int64), ("doc_lens", c_int64_p), ("doc_prefix", c_int64_p),
                ("n_samples", ctypes.c_int64), ("sample_segments", c_int64_p),
                ("n_spans", ctypes.c_int64), ("span_offset", c_int64_p),
                ("span_len", c_int64_p), ("evict_start", ctypes.c_int64),
                ("seed", ctypes.c_uint64)]


class TileStats(ctypes.Structure):  # fm_tile_stats (masks.h)
    _fields_ = [("total", ctypes.c_int64), ("masked", ctypes.c_int64),
                ("partial", ctypes.c_int64), ("unmasked", ctypes.c_int64)]


class BlockSummary(ctypes.Structure):  # fm_block_summary (masks.h)
    _fields_ = [("batch", ctypes.c_int64), ("heads", ctypes.c_int64),
                ("seqlen_q", ctypes.c_int64), ("seqlen_k", ctypes.c_int64),
                ("block_k", ctypes.c_int64), ("n_blocks", ctypes.c_int64),
                ("causal", ctypes.c_int), ("minmax", c_int32_p)]


class TensorCheck(ctypes.Structure):  # fm_tensor_check (oracle.h)
    _fields_ = [("name", ctypes.c_char * 8), ("dtype", ctypes.c_int),
                ("elements", ctypes.c_size_t), ("compared", ctypes.c_size_t),
                ("masked_checked", ctypes.c_size_t), ("max_abs", ctypes.c_double),
                ("mean_abs", ctypes.c_double), ("rel_fro", ctypes.c_double),
                ("naive_max_abs", ctypes.c_double), ("atol", ctypes.c_double),
                ("bound", ctypes.c_double), ("ratio", ctypes.c_double),
                ("ratio_at", ctypes.c_size_t), ("worst", ctypes.c_size_t),
                ("nan_count", ctypes.c_size_t), ("masked_bad", ctypes.c_size_t),
                ("pass_", ctypes.c_int), ("where", ctypes.c_size_t),
                ("why", ctypes.c_char * 240), ("naive_computed", ctypes.c_int)]


class CheckOptions(ctypes.Structure):  # fm_check_options (oracle.h)
    _fields_ = [("dtype", ctypes.c_int), ("allow_fa2_inf_lse", ctypes.c_int),
                ("forward_only", ctypes.c_int), ("recompute", ctypes.c_int),
                ("rule", ctypes.c_int), ("naive", ctypes.c_int)]


class CheckReport(ctypes.Structure):  # fm_check_report (oracle.h)
    _fields_ = [("options", CheckOptions), ("n_tensors", ctypes.c_int),
                ("tensor", TensorCheck * 5), ("masked_rows", ctypes.c_int64),
                ("pass_", ctypes.c_int)]


class Case(ctypes.Structure):  # fm_case (io.h)
    _fields_ = [("problem", Problem), ("mask", CMask), ("mask_kind", ctypes.c_char * 64),
                ("has_params", ctypes.c_int), ("mask_params", MaskParams),
                ("seed", ctypes.c_uint64)] + \
               [(n, c_double_p) for n in ("q", "k", "v", "dout", "out", "lse", "dq", "dk", "dv")]


class KernelOptions(ctypes.Structure):  # fm_kernel_options (cuda.h)
    _fields_ = [("forward", ctypes.c_int32), ("backward", ctypes.c_int32),
                ("fwd_shape", ctypes.c_int32), ("bwd_warpgroups", ctypes.c_int32),
                ("deterministic", ctypes.c_int32)]


class Results(ctypes.Structure):  # fm_results (io.h)
    _fields_ = [(n, c_double_p) for n in ("out", "lse", "dq", "dk", "dv")]


# ------------------------------------------------------------------ signatures

P = ctypes.POINTER
_SIGNATURES = {
    # core
    "fm_status_string": (ctypes.c_char_p, [ctypes.c_int]),
    "fm_last_error": (ctypes.c_char_p, []),
    "fm_round_to_dtype": (ctypes.c_double, [ctypes.c_double, ctypes.c_int]),
    "fm_problem_init": (None, [P(Problem)] + [ctypes.c_int64] * 6),
    "fm_problem_validate": (ctypes.c_int, [P(Problem), P(CMask)]),
    "fm_impl_available": (ctypes.c_int, [ctypes.c_int]),
    "fm_forward": (ctypes.c_int, [ctypes.c_int, P(Problem), P(CMask), P(Tensors)]),
    "fm_backward": (ctypes.c_int, [ctypes.c_int, P(Problem), P(CMask), P(Tensors)]),
    "fm_forward_opts": (ctypes.c_int, [ctypes.c_int, P(Problem), P(CMask), P(Tensors),
                                       P(KernelOptions)]),
    "fm_backward_opts": (ctypes.c_int, [ctypes.c_int, P(Problem), P(CMask), P(Tensors),
                                        P(KernelOptions)]),
    "fm_kernel_options_parse": (ctypes.c_int, [ctypes.c_char_p, P(KernelOptions)]),
    # masks
    "fm_mask_init": (ctypes.c_int, [P(CMask)] + [ctypes.c_int64] * 4 + [ctypes.c_int]),
    "fm_mask_free": (None, [P(CMask)]),
    "fm_mask_validate": (ctypes.c_int, [P(CMask)]),
    "fm_mask_allowed_pairs": (ctypes.c_int64, [P(CMask), ctypes.c_int64, ctypes.c_int64]),
    "fm_mask_total_allowed_pairs": (ctypes.c_int64, [P(CMask)]),
    "fm_family_count": (ctypes.c_int, []),
    "fm_family_name": (ctypes.c_char_p, [ctypes.c_int]),
    "fm_family_is_causal": (ctypes.c_int, [ctypes.c_int]),
    "fm_family_help": (ctypes.c_char_p, [ctypes.c_int]),
    "fm_mask_params_default": (ctypes.c_int, [P(MaskParams), ctypes.c_int, ctypes.c_int64]),
    "fm_mask_params_free": (None, [P(MaskParams)]),
    "fm_mask_build": (ctypes.c_int, [P(CMask), P(MaskParams)] + [ctypes.c_int64] * 4
                      + [ctypes.c_int]),
    "fm_mask_to_dense": (ctypes.c_int, [P(CMask), c_uint8_p]),
    "fm_mask_from_dense": (ctypes.c_int, [P(CMask), c_uint8_p] + [ctypes.c_int64] * 4
                           + [ctypes.c_int]),
    "fm_mask_from_startend": (ctypes.c_int, [P(CMask), c_int32_p] + [ctypes.c_int64] * 4
                              + [ctypes.c_int, ctypes.c_int]),
    "fm_mask_to_startend": (ctypes.c_int, [P(CMask), ctypes.c_int, c_int32_p]),
    "fm_block_summary_build": (ctypes.c_int, [P(CMask), ctypes.c_int64, P(BlockSummary)]),
    "fm_block_summary_free": (None, [P(BlockSummary)]),
    "fm_block_summary_classify": (ctypes.c_int, [P(BlockSummary)] + [ctypes.c_int64] * 5),
    "fm_mask_tile_stats": (ctypes.c_int, [P(CMask), ctypes.c_int64, ctypes.c_int64,
                                          P(TileStats)]),
    # io
    "fm_mask_params_apply": (ctypes.c_int, [P(MaskParams), ctypes.c_int,
                                            P(ctypes.c_char_p)]),
    "fm_case_init": (None, [P(Case)]),
    "fm_case_free": (None, [P(Case)]),
    "fm_case_load": (ctypes.c_int, [ctypes.c_char_p, P(Case)]),
    "fm_case_save": (ctypes.c_int, [ctypes.c_char_p, P(Case)]),
    "fm_results_save": (ctypes.c_int, [ctypes.c_char_p, P(Problem), P(Results)]),
    # oracle
    "fm_naive_forward": (ctypes.c_int, [P(Problem), P(CMask), ctypes.c_int] + [c_double_p] * 5),
    "fm_naive_backward": (ctypes.c_int, [P(Problem), P(CMask), ctypes.c_int]
                          + [c_double_p] * 9),
    "fm_check_case": (ctypes.c_int, [P(Problem), P(CMask), P(Tensors), P(Tensors),
                                     P(CheckOptions), P(CheckReport)]),
    "fm_check_dirs": (ctypes.c_int, [ctypes.c_char_p, ctypes.c_char_p, P(CheckOptions),
                                     P(CheckReport), ctypes.c_char_p, ctypes.c_size_t]),
    "fm_oracle_round_array": (None, [c_double_p, ctypes.c_size_t, ctypes.c_int]),
    "fm_oracle_atol": (ctypes.c_double, [ctypes.c_int, c_double_p, ctypes.c_size_t]),
}

for _name, (_res, _args) in _SIGNATURES.items():
    _fn = getattr(lib, _name)
    _fn.restype = _res
    _fn.argtypes = _args


def last_error():
    return lib.fm_last_error().decode("utf-8", "replace")


def check(status, call=""):
    """Raise the matching FlashMaskError when a C call returned a non-zero fm_status."""
    if status != 0:
        raise _error_class(status)(status, last_error(), call)


# ------------------------------------------------------------------ array helpers

def as_c(array, dtype, name, ndim=None):
    """A C-contiguous copy-if-needed of `array` in `dtype`, shape checked. Integer targets refuse
    values a cast would change (fractions, values outside the type's range) instead of letting
    NumPy wrap or truncate them silently (once: a bound 2**32 + 3 became 3)."""
    src = np.asarray(array)
    target = np.dtype(dtype)
    if src.dtype.kind == "c":  # NumPy would drop the imaginary part with a mere warning
        raise InvalidInput(1, f"{name}: complex values (dtype {src.dtype}); the library takes "
                           "real numbers", name)
    if src.dtype.kind not in "biuf" and src.size:
        raise InvalidInput(1, f"{name}: dtype {src.dtype} is not numeric", name)
    if target.kind in "iu" and src.dtype != target and src.size:
        if src.dtype.kind not in "biuf":
            raise InvalidInput(1, f"{name}: dtype {src.dtype} cannot hold {target} values", name)
        info = np.iinfo(target)
        wrong = ~np.isfinite(src) if src.dtype.kind == "f" else np.zeros(src.shape, bool)
        with np.errstate(invalid="ignore"):
            wrong |= (src < info.min) | (src > info.max)
            if src.dtype.kind == "f":
                wrong |= np.floor(src) != src
        if wrong.any():
            at = np.unravel_index(int(np.argmax(wrong)), src.shape)
            raise InvalidInput(1, f"{name}{list(at)} = {src[at]!r} is not a {target} value "
                               "(refused, not cast)", name)
    a = np.ascontiguousarray(src, dtype=target)
    if ndim is not None and a.ndim != ndim:
        raise InvalidInput(1, f"{name}: expected {ndim} dimensions, got shape {a.shape}", name)
    return a


def path_arg(path, name="path"):
    """A file-system path for C: os.fsencode, refusing an embedded NUL (C would read the path
    only up to it, and act on another file than the one named)."""
    b = os.fsencode(path)
    if b"\0" in b:
        raise InvalidInput(1, f"{name} {path!r} holds a NUL character", name)
    return b


def as_index(value, name, lo, hi):
    """An integer in [lo, hi) for C: refuses floats (2.7 is not 2), bools and values out of
    range, which C would read past an array with."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise InvalidInput(1, f"{name} = {value!r} is not an integer", name)
    if not lo <= int(value) < hi:
        raise InvalidInput(1, f"{name} = {int(value)} is outside [{lo}, {hi})", name)
    return int(value)


def check_shapes(p, **arrays):
    """Every tensor handed to C must have its problem's shape: the C side trusts the pointers
    (once: a short v was read past its end). q/out/dout/dq: [B, Hq, Sq, D]; k/v/dk/dv:
    [B, Hk, Sk, D]; lse: [B, Hq, Sq]. None entries are skipped; names may carry a prefix
    ("candidate out")."""
    q_shape = (p.batch, p.q_heads, p.seqlen_q, p.head_dim)
    kv_shape = (p.batch, p.kv_heads, p.seqlen_k, p.head_dim)
    shapes = {"q": q_shape, "out": q_shape, "dout": q_shape, "dq": q_shape, "k": kv_shape,
              "v": kv_shape, "dk": kv_shape, "dv": kv_shape, "lse": q_shape[:3]}
    for name, a in arrays.items():
        if a is None:
            continue
        want, got = shapes[name.split()[-1]], tuple(np.shape(a))
        if got != want:
            raise InvalidInput(1, f"{name}: shape {got}, expected {want}", name)


def ptr(array, ctype):
    return None if array is None else array.ctypes.data_as(ctypes.POINTER(ctype))


def dptr(array):
    return ptr(array, ctypes.c_double)
