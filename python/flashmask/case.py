"""flashmask.case — case directories (BRIEF 6) and result directories from Python, through the
C reader/writer of io/ (strict .npy parsing, every shape, bound and dtype checked, atomic writes).

A case is returned as a `Case`: `problem` (dict of sizes, scale, dtype), `mask` (flashmask.Mask),
`mask_kind`, `seed`, the inputs q, k, v, dout and the expected outputs out, lse, dq, dk, dv
(float64 arrays; None when the case does not carry them).
Layer: python, over io/ of libflashmask.
"""

import ctypes
import os

import numpy as np

from . import _lib
from ._lib import DTYPE_NAMES, DTYPES, lib
from .attention import problem_for
from .mask import FAMILIES, Mask, family_params

TENSORS = ("out", "lse", "dq", "dk", "dv")


class Case:
    def __init__(self, problem, mask, q, k, v, dout, out=None, lse=None, dq=None, dk=None,
                 dv=None, mask_kind="custom", seed=0):
        self.problem, self.mask, self.mask_kind, self.seed = problem, mask, mask_kind, seed
        self.q, self.k, self.v, self.dout = q, k, v, dout
        self.out, self.lse, self.dq, self.dk, self.dv = out, lse, dq, dk, dv

    def __repr__(self):
        p = self.problem
        return (f"Case(B={p['batch']}, Hq={p['q_heads']}, Hk={p['kv_heads']}, "
                f"Sq={p['seqlen_q']}, Sk={p['seqlen_k']}, D={p['head_dim']}, "
                f"dtype={p['dtype']!r}, mask={self.mask_kind!r}, causal={self.mask.causal!r})")

    def expected(self):
        return {t: getattr(self, t) for t in TENSORS}


def _copy(ptr, shape):
    if not ptr:
        return None
    n = int(np.prod(shape))
    return np.ctypeslib.as_array(ptr, shape=(n,)).copy().reshape(shape)


def load_case(directory):
    """Read a case directory; raises FileError / InvalidInput with the library's message."""
    c = _lib.Case()
    lib.fm_case_init(ctypes.byref(c))
    try:
        _lib.check(lib.fm_case_load(_lib.path_arg(directory, "directory"), ctypes.byref(c)), "load_case")
        p = c.problem
        qs = (p.batch, p.q_heads, p.seqlen_q, p.head_dim)
        kvs = (p.batch, p.kv_heads, p.seqlen_k, p.head_dim)
        ls = (p.batch, p.q_heads, p.seqlen_q)
        mshape = (c.mask.batch, c.mask.heads, c.mask.seqlen_k, 4)
        bounds = _copy(c.mask.bounds, mshape)
        mask = Mask(bounds, c.mask.seqlen_q, _lib.CAUSAL_NAMES[c.mask.causal])
        problem = {"batch": p.batch, "q_heads": p.q_heads, "kv_heads": p.kv_heads,
                   "mask_heads": c.mask.heads, "seqlen_q": p.seqlen_q, "seqlen_k": p.seqlen_k,
                   "head_dim": p.head_dim, "scale": p.scale, "dtype": DTYPE_NAMES[p.dtype]}
        return Case(problem, mask, _copy(c.q, qs), _copy(c.k, kvs), _copy(c.v, kvs),
                    _copy(c.dout, qs), _copy(c.out, qs), _copy(c.lse, ls), _copy(c.dq, qs),
                    _copy(c.dk, kvs), _copy(c.dv, kvs), c.mask_kind.decode(), c.seed)
    finally:
        lib.fm_case_free(ctypes.byref(c))


def save_case(directory, q, k, v, dout, mask, dtype="float16", scale=None, expected=None,
              mask_kind="custom", mask_params=None, seed=0):
    """Write a case directory atomically. Inputs must already be rounded to `dtype`
    (flashmask.round_to); `expected` is a dict of reference outputs (flashmask.reference) or
    None. `mask_kind` is "custom" or the family the mask was built from, whose parameters in
    case.json are then the family's defaults for Sk overridden by `mask_params` (the same
    keywords flashmask.build took). The target must not exist or be empty."""
    arrays = {n: _lib.as_c(a, np.float64, n, 4) for n, a in
              (("q", q), ("k", k), ("v", v), ("dout", dout))}
    p = problem_for(arrays["q"], arrays["k"], mask, scale, dtype)
    c = _lib.Case()
    c.problem = p
    c.mask = mask.c()
    c.mask_kind = mask_kind.encode()[:63]
    c.has_params = 0
    c.seed = seed
    if mask_kind != "custom":
        if mask_kind not in FAMILIES:
            raise _lib.InvalidInput(1, f"mask_kind {mask_kind!r}: a family or 'custom'",
                                    "save_case")
        c.mask_params = family_params(mask_kind, mask.seqlen_k, **(mask_params or {}))
        c.has_params = 1
    _lib.check_shapes(p, **arrays)
    if expected is not None:  # C trusts the pointers: every expected output has its shape
        unknown = set(expected) - set(TENSORS)
        if unknown:
            raise _lib.InvalidInput(1, f"expected: unknown tensors {sorted(unknown)}; expected "
                                    f"some of {list(TENSORS)}", "save_case")
        _lib.check_shapes(p, **{t: expected.get(t) for t in TENSORS})
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or \
            not 0 <= int(seed) <= 2**53:
        raise _lib.InvalidInput(1, f"seed = {seed!r}: an integer in [0, 2^53]", "save_case")
    for n, a in arrays.items():
        setattr(c, n, _lib.dptr(a))
    keep = []
    for t in TENSORS:
        a = None if expected is None else expected.get(t)
        if a is not None:
            a = _lib.as_c(a, np.float64, t)
            keep.append(a)
            setattr(c, t, _lib.dptr(a))
    try:
        _lib.check(lib.fm_case_save(_lib.path_arg(directory, "directory"), ctypes.byref(c)), "save_case")
    finally:
        if c.has_params:
            lib.fm_mask_params_free(ctypes.byref(c.mask_params))


def save_results(directory, case, out=None, lse=None, dq=None, dk=None, dv=None):
    """Write a candidate's results for `case` (a Case) atomically as float64 .npy files, the
    five names of BRIEF 6; any may be None (forward-only)."""
    pr = case.problem
    p = _lib.Problem()
    lib.fm_problem_init(ctypes.byref(p), pr["batch"], pr["q_heads"], pr["kv_heads"],
                        pr["seqlen_q"], pr["seqlen_k"], pr["head_dim"])
    p.scale, p.dtype = pr["scale"], DTYPES[pr["dtype"]]
    # C writes count-of-the-problem elements from each pointer: every shape is checked first
    _lib.check_shapes(p, out=out, lse=lse, dq=dq, dk=dk, dv=dv)
    r = _lib.Results()
    keep = []
    for t, a in (("out", out), ("lse", lse), ("dq", dq), ("dk", dk), ("dv", dv)):
        if a is not None:
            a = _lib.as_c(a, np.float64, t)
            keep.append(a)
            setattr(r, t, _lib.dptr(a))
    _lib.check(lib.fm_results_save(_lib.path_arg(directory, "directory"),
                                     ctypes.byref(p), ctypes.byref(r)),
               "save_results")


__all__ = ["Case", "load_case", "save_case", "save_results", "TENSORS"]
