"""flashmask.attention — attention forward and backward on NumPy arrays through libflashmask's
one calling shape (fm_forward / fm_backward, core.h): the float64 reference (the oracle), the
float32 tiled cpu layer, the cuda layer where built, and the oracle's naive same-precision
computation (fm_naive_forward / fm_naive_backward, oracle.h).

Shapes follow docs/spec.md §1: q [B, Hq, Sq, D], k and v [B, Hk, Sk, D], out [B, Hq, Sq, D],
lse [B, Hq, Sq]. Arrays are converted to float64 C order; results are new float64 arrays.
Layer: python, over core/, reference/, cpu/, cuda/ and oracle/.
"""

import ctypes

import numpy as np

from . import _lib
from ._lib import DTYPES, IMPLS, lib


def problem_for(q, k, mask, scale=None, dtype="float32"):
    """The fm_problem of these shapes (validated against the mask)."""
    if q.ndim != 4 or k.ndim != 4:
        raise _lib.InvalidInput(1, f"q {q.shape} and k {k.shape} must be [B, H, S, D]",
                                "problem")
    B, Hq, Sq, D = q.shape
    Bk, Hk, Sk, Dk = k.shape
    if Bk != B or Dk != D:
        raise _lib.InvalidInput(1, f"q {q.shape} and k {k.shape} disagree on B or D",
                                "problem")
    p = _lib.Problem()
    lib.fm_problem_init(ctypes.byref(p), B, Hq, Hk, Sq, Sk, D)
    if scale is not None:
        p.scale = float(scale)
    if dtype not in DTYPES:
        raise _lib.InvalidInput(1, f"dtype {dtype!r}; expected one of {sorted(DTYPES)}",
                                "problem")
    p.dtype = DTYPES[dtype]
    cm = mask.c()
    _lib.check(lib.fm_problem_validate(ctypes.byref(p), ctypes.byref(cm)), "problem")
    return p


def _f64(x, name):
    return _lib.as_c(x, np.float64, name, None)


def _impl(impl):
    if impl not in IMPLS:
        raise _lib.InvalidInput(1, f"impl {impl!r}; expected one of {sorted(IMPLS)}", "impl")
    return IMPLS[impl]


def _kernel(kernel, impl):
    """fm_kernel_options from a spec ("auto", "mma", "wgmma", "fwd=mma,wgs=1", ...; the
    library reads it, cuda/options.c); None is auto."""
    o = _lib.KernelOptions()
    _lib.check(lib.fm_kernel_options_parse(str(kernel or "auto").encode(), ctypes.byref(o)),
               f"kernel[{impl}]")
    return o


def available(impl):
    """True if the implementation can run here."""
    return lib.fm_impl_available(_impl(impl)) == 0


def forward(q, k, v, mask, scale=None, impl="reference", dtype="float16", kernel=None):
    """(out, lse). impl 'reference' (float64), 'cpu' (float32), 'cuda' (dtype float16 or
    bfloat16) or 'reference-cuda' (the reference's float64 function on the GPU, for long
    contexts; dtype ignored). Fully masked rows give out = 0, lse = -inf. kernel: which CUDA
    kernels run (impl 'cuda' only): None or "auto" (the library's heuristics), "mma", "wgmma",
    or a spec such as "fwd=mma,bwd=wgmma,wgs=1" or "fwd=wide" (the CLI's --kernel)."""
    q, k, v = _f64(q, "q"), _f64(k, "k"), _f64(v, "v")
    p = problem_for(q, k, mask, scale, dtype)
    _lib.check_shapes(p, v=v)
    out = np.empty(q.shape)
    lse = np.empty(q.shape[:3])
    t = _lib.Tensors(q=_lib.dptr(q), k=_lib.dptr(k), v=_lib.dptr(v), out=_lib.dptr(out),
                     lse=_lib.dptr(lse))
    cm = mask.c()
    ko = _kernel(kernel, impl)
    _lib.check(lib.fm_forward_opts(_impl(impl), ctypes.byref(p), ctypes.byref(cm),
                                   ctypes.byref(t), ctypes.byref(ko)), f"forward[{impl}]")
    return out, lse


def backward(q, k, v, out, lse, dout, mask, scale=None, impl="reference", dtype="float16",
             kernel=None):
    """(dq, dk, dv) of L = sum(out * dout), from the same implementation's out and lse.
    kernel: as forward's."""
    q, k, v = _f64(q, "q"), _f64(k, "k"), _f64(v, "v")
    out, lse, dout = _f64(out, "out"), _f64(lse, "lse"), _f64(dout, "dout")
    p = problem_for(q, k, mask, scale, dtype)
    _lib.check_shapes(p, v=v, out=out, lse=lse, dout=dout)
    dq, dk, dv = np.empty(q.shape), np.empty(k.shape), np.empty(v.shape)
    t = _lib.Tensors(q=_lib.dptr(q), k=_lib.dptr(k), v=_lib.dptr(v), dout=_lib.dptr(dout),
                     out=_lib.dptr(out), lse=_lib.dptr(lse), dq=_lib.dptr(dq), dk=_lib.dptr(dk),
                     dv=_lib.dptr(dv))
    cm = mask.c()
    ko = _kernel(kernel, impl)
    _lib.check(lib.fm_backward_opts(_impl(impl), ctypes.byref(p), ctypes.byref(cm),
                                    ctypes.byref(t), ctypes.byref(ko)), f"backward[{impl}]")
    return dq, dk, dv


def reference(q, k, v, dout, mask, scale=None, impl="reference"):
    """The float64 oracle, forward and backward: dict out, lse, dq, dk, dv. impl
    'reference-cuda' computes the same function in float64 on the GPU (long contexts)."""
    if impl not in ("reference", "reference-cuda"):
        raise _lib.InvalidInput(1, f"impl {impl!r}; the oracle is 'reference' or "
                                "'reference-cuda'", "impl")
    out, lse = forward(q, k, v, mask, scale, impl)
    dq, dk, dv = backward(q, k, v, out, lse, dout, mask, scale, impl)
    return {"out": out, "lse": lse, "dq": dq, "dk": dk, "dv": dv}


def naive(q, k, v, dout, mask, dtype, scale=None):
    """The oracle's naive same-precision computation in dtype ('float16', 'bfloat16',
    'float32'): inputs rounded to it, scores and softmax in float32, P rounded before P.V,
    results rounded (lse stays float32). dict out, lse, dq, dk, dv (dq.. when dout given)."""
    q, k, v = _f64(q, "q"), _f64(k, "k"), _f64(v, "v")
    p = problem_for(q, k, mask, scale, "float32")
    _lib.check_shapes(p, v=v)
    if dtype not in DTYPES:
        raise _lib.InvalidInput(1, f"dtype {dtype!r}", "naive")
    cm = mask.c()
    out, lse = np.empty(q.shape), np.empty(q.shape[:3])
    _lib.check(lib.fm_naive_forward(ctypes.byref(p), ctypes.byref(cm), DTYPES[dtype],
                                    _lib.dptr(q), _lib.dptr(k), _lib.dptr(v), _lib.dptr(out),
                                    _lib.dptr(lse)), "naive_forward")
    res = {"out": out, "lse": lse}
    if dout is not None:
        dout = _f64(dout, "dout")
        _lib.check_shapes(p, dout=dout)
        dq, dk, dv = np.empty(q.shape), np.empty(k.shape), np.empty(v.shape)
        _lib.check(lib.fm_naive_backward(ctypes.byref(p), ctypes.byref(cm), DTYPES[dtype],
                                         _lib.dptr(q), _lib.dptr(k), _lib.dptr(v),
                                         _lib.dptr(out), _lib.dptr(lse), _lib.dptr(dout),
                                         _lib.dptr(dq), _lib.dptr(dk), _lib.dptr(dv)),
                   "naive_backward")
        res.update(dq=dq, dk=dk, dv=dv)
    return res


def round_to(x, dtype):
    """Round float64 values to dtype exactly as the library does (ties to even, no double
    rounding), returned as float64."""
    if dtype not in DTYPES:
        raise _lib.InvalidInput(1, f"dtype {dtype!r}; expected one of {sorted(DTYPES)}",
                                "round_to")
    out = np.array(x, dtype=np.float64, order="C", copy=True)
    lib.fm_oracle_round_array(_lib.dptr(out), out.size, DTYPES[dtype])
    return out


__all__ = ["forward", "backward", "reference", "naive", "available", "round_to", "problem_for"]
