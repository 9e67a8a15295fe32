"""flashmask.tensors — attention on tensors where they are: anything with DLPack
(__dlpack__), __array_interface__ / __array__ or __cuda_array_interface__ (NumPy, PyTorch on the
CPU or a GPU, CuPy, JAX), in an explicit layout.

    out, lse = fm.tensors.forward(q, k, v, mask, layout="bshd")       # torch CUDA: our kernels

* layout "bhsd" = [B, H, S, D] (the library's, and docs/spec.md §1's) or "bshd" = [B, S, H, D]
  (flash_attn, Paddle). It is never guessed from the shapes: with S == H a guess would be
  silently wrong. The mask's Sq/Sk are checked against the dimension the layout names.
* Host tensors run on the host implementations ('reference' float64 by default, 'cpu' float32)
  and come back as the input's kind: NumPy in, float64 NumPy out (as flashmask.forward); torch
  in, torch of the input's dtype and device out (lse float32).
* CUDA tensors run the CUDA layer on their device pointers (include/flashmask/cuda.h,
  fm_cuda_forward/fm_cuda_backward) on the current stream of their device, float16 or bfloat16:
  no host round trip; results are tensors of the input's dtype on the same device (lse float32
  [B, H, Sq]). A layout change or padding the head dimension to the next of 32, 64, 96, 128,
  256 is a device-side copy. Non-torch CUDA objects are wrapped with torch.from_dlpack (zero
  copy) and results handed back through their module's from_dlpack when it has one.

Layer: python, over attention.py (host) and _cuda.py (device).
"""

import ctypes
import math
import sys

import numpy as np

from . import _cuda, _lib, attention
from ._lib import DTYPES, InvalidInput

LAYOUTS = ("bhsd", "bshd")


def _torch():
    return sys.modules.get("torch")


def is_torch(x):
    t = _torch()
    return t is not None and isinstance(x, t.Tensor)


def device_of(x):
    """'cuda' or 'cpu' for any supported object."""
    if is_torch(x):
        return "cuda" if x.is_cuda else "cpu"
    if hasattr(x, "__cuda_array_interface__"):
        return "cuda"
    if hasattr(x, "__dlpack_device__"):
        dev_type = int(x.__dlpack_device__()[0])
        return "cuda" if dev_type in (2, 3, 13) else "cpu"  # kDLCUDA, kDLCUDAHost, managed
    return "cpu"


def as_torch(x, name):
    """A torch tensor sharing x's memory (torch tensors as they are)."""
    if is_torch(x):
        return x
    t = _torch()
    if t is None:
        import torch as t  # noqa: F811 — needed for CUDA objects that are not torch tensors
    if hasattr(x, "__dlpack__"):
        return t.from_dlpack(x)
    if hasattr(x, "__cuda_array_interface__"):
        return t.as_tensor(x, device="cuda")
    raise InvalidInput(1, f"{name}: a {type(x).__name__} has neither __dlpack__ nor "
                       "__cuda_array_interface__", name)


def to_host(x, name):
    """A NumPy view or copy of a host tensor (float64 for torch's half types, which NumPy
    lacks)."""
    if is_torch(x):
        x = x.detach()
        if x.is_cuda:
            x = x.cpu()
        if x.dtype in (_torch().bfloat16, _torch().float16):
            x = x.double()
        return x.numpy()
    if isinstance(x, np.ndarray):
        return x
    if hasattr(x, "__array_interface__") or hasattr(x, "__array__"):
        return np.asarray(x)
    if hasattr(x, "__dlpack__"):
        return np.from_dlpack(x)
    if isinstance(x, (list, tuple)):
        return np.asarray(x)
    raise InvalidInput(1, f"{name}: a {type(x).__name__} is not an array (no __dlpack__, "
                       "__array_interface__ or __array__)", name)


def _check_layout(layout):
    if layout not in LAYOUTS:
        raise InvalidInput(1, f"layout {layout!r}; expected 'bhsd' ([B, H, S, D]) or 'bshd' "
                           "([B, S, H, D]); it is never guessed from the shapes", "layout")


def _bhsd(x, layout, name):
    """x in [B, H, S, D] (a view for bhsd; a transpose, not a copy, for bshd)."""
    if len(x.shape) != 4:
        raise InvalidInput(1, f"{name}: shape {tuple(x.shape)}, expected 4 dimensions "
                           f"({'[B, H, S, D]' if layout == 'bhsd' else '[B, S, H, D]'})", name)
    if layout == "bhsd":
        return x
    return x.transpose(1, 2) if is_torch(x) else np.swapaxes(x, 1, 2)


def _from_bhsd(x, layout):
    return _bhsd(x, layout, "result") if layout == "bshd" else x


def _check_mask(q, k, mask, layout):
    Sq, Sk = q.shape[2], k.shape[2]
    if (mask.seqlen_q, mask.seqlen_k) != (Sq, Sk):
        where = "dimension 1" if layout == "bshd" else "dimension 2"
        raise InvalidInput(1, f"layout {layout!r}: q and k have sequence lengths {Sq}, {Sk} in "
                           f"{where}, the mask {mask.seqlen_q}, {mask.seqlen_k} (is the layout "
                           "right?)", "layout")


# ------------------------------------------------------------------ host path

def _host_result(arr, like, dtype=None):
    if isinstance(like, np.ndarray) or not is_torch(like):
        return arr
    t = _torch()
    return t.from_numpy(np.ascontiguousarray(arr)).to(device=like.device,
                                                       dtype=dtype or like.dtype)


# ------------------------------------------------------------------ device path

_CUDA_DTYPES = {"float16": "float16", "bfloat16": "bfloat16"}


def _cuda_dtype_name(x):
    name = str(x.dtype).replace("torch.", "")
    if name not in _CUDA_DTYPES:
        raise InvalidInput(1, f"a CUDA tensor of {x.dtype}: the CUDA layer computes in float16 "
                           "or bfloat16 (cast it, or use a host implementation)", "dtype")
    return name


def _padded_dim(D):
    for d in _cuda.HEAD_DIMS:
        if D <= d:
            return d
    raise InvalidInput(1, f"head_dim {D}: the CUDA layer takes at most 256", "head_dim")


def _device_prep(x, Dp):
    """Contiguous [B, H, S, Dp] on x's device (zero padding of D changes no dot product)."""
    t = _torch()
    if x.shape[-1] != Dp:
        x = t.nn.functional.pad(x, (0, Dp - x.shape[-1]))
    return x.contiguous()


def _device_mask(mask, device):
    """The mask uploaded to `device` once per (mask, device)."""
    cache = mask.__dict__.setdefault("_device_masks", {})
    key = device.index
    if key not in cache:
        with _torch().cuda.device(device):
            cache[key] = _cuda.DeviceMask(mask)
    return cache[key]


def _device_problem(q, k, mask, scale, dtype, Dp):
    D = q.shape[-1]
    p = attention.problem_for(q, k, mask, scale, dtype)
    p.head_dim = Dp
    p.scale = float(scale) if scale is not None else 1.0 / math.sqrt(D)
    return p


def _stream(device):
    return ctypes.c_void_p(_torch().cuda.current_stream(device).cuda_stream)


def _ptr(x):
    return ctypes.c_void_p(x.data_ptr())


def device_forward(q, k, v, mask, scale=None, deterministic=False, kernel=None):
    """q, k, v torch CUDA tensors [B, H, S, D]: (out [B, H, Sq, D] of q's dtype, lse float32)."""
    t = _torch()
    dtype = _cuda_dtype_name(q)
    for name, x in (("k", k), ("v", v)):
        if x.dtype != q.dtype or x.device != q.device:
            raise InvalidInput(1, f"{name}: {x.dtype} on {x.device}, q is {q.dtype} on "
                               f"{q.device}", name)
    D = q.shape[-1]
    Dp = _padded_dim(D)
    p = _device_problem(q, k, mask, scale, dtype, Dp)
    if deterministic:
        p.flags |= 1
    _lib.check_shapes(attention_problem_view(p, D), v=v)
    qd, kd, vd = (_device_prep(x, Dp) for x in (q, k, v))
    out = t.empty_like(qd)
    lse = t.empty(qd.shape[:3], dtype=t.float32, device=q.device)
    dm = _device_mask(mask, q.device)
    with t.cuda.device(q.device):
        _cuda.forward(p, dm, _ptr(qd), _ptr(kd), _ptr(vd), _ptr(out), _ptr(lse),
                      _stream(q.device), attention._kernel(kernel, "cuda"))
    return (out[..., :D] if Dp != D else out), lse


def device_backward(q, k, v, out, lse, dout, mask, scale=None, deterministic=False,
                    kernel=None):
    """(dq, dk, dv) of q's dtype on q's device, from device_forward's out and lse."""
    t = _torch()
    dtype = _cuda_dtype_name(q)
    D = q.shape[-1]
    Dp = _padded_dim(D)
    p = _device_problem(q, k, mask, scale, dtype, Dp)
    if deterministic:
        p.flags |= 1
    pv = attention_problem_view(p, D)
    _lib.check_shapes(pv, v=v, out=out, dout=dout, lse=lse)
    qd, kd, vd, od, dod = (_device_prep(x.to(q.dtype), Dp) for x in (q, k, v, out, dout))
    lsed = lse.to(t.float32).contiguous()
    dq, dk, dv = t.empty_like(qd), t.empty_like(kd), t.empty_like(vd)
    dm = _device_mask(mask, q.device)
    with t.cuda.device(q.device):
        _cuda.backward(p, dm, _ptr(qd), _ptr(kd), _ptr(vd), _ptr(od), _ptr(lsed), _ptr(dod),
                       _ptr(dq), _ptr(dk), _ptr(dv), _stream(q.device),
                       attention._kernel(kernel, "cuda"))
    if Dp != D:
        dq, dk, dv = dq[..., :D], dk[..., :D], dv[..., :D]
    return dq, dk, dv


def attention_problem_view(p, D):
    """A copy of problem p with the caller's head_dim (for shape checks before padding)."""
    c = _lib.Problem.from_buffer_copy(p)
    c.head_dim = D
    return c


# ------------------------------------------------------------------ the API

def _default_impl(q):
    return "cuda" if device_of(q) == "cuda" else "reference"


def _back_to_kind(x, like):
    """A torch result handed back as the kind of `like` (CuPy, JAX... via from_dlpack)."""
    if is_torch(like) or not is_torch(x):
        return x
    mod = sys.modules.get(type(like).__module__.split(".")[0])
    back = getattr(mod, "from_dlpack", None)
    return back(x) if back else x


def forward(q, k, v, mask, scale=None, impl=None, dtype=None, kernel=None, *, layout="bhsd",
            deterministic=False):
    """(out, lse) for tensors of any kind (flashmask.forward: the positional arguments of
    attention.forward, then layout). impl None: 'cuda' for CUDA tensors (their dtype, no host
    copy), 'reference' for host tensors; 'cpu' and 'reference' on CUDA tensors copy to the host
    and back (asked for, so done). dtype: what a 'cuda' run on host arrays computes in
    (default float16). kernel: which CUDA kernels run (attention.forward's)."""
    _check_layout(layout)
    impl = impl or _default_impl(q)
    if device_of(q) == "cuda" and impl == "cuda":
        qt, kt, vt = (as_torch(x, n) for x, n in ((q, "q"), (k, "k"), (v, "v")))
        qb, kb, vb = (_bhsd(x, layout, n) for x, n in ((qt, "q"), (kt, "k"), (vt, "v")))
        _check_mask(qb, kb, mask, layout)
        out, lse = device_forward(qb, kb, vb, mask, scale, deterministic, kernel)
        return _back_to_kind(_from_bhsd(out, layout), q), _back_to_kind(lse, q)
    qh, kh, vh = (_bhsd(to_host(x, n), layout, n) for x, n in ((q, "q"), (k, "k"), (v, "v")))
    _check_mask(qh, kh, mask, layout)
    out, lse = attention.forward(qh, kh, vh, mask, scale, impl, dtype or "float16", kernel)
    like = as_torch(q, "q") if device_of(q) == "cuda" else q
    res = (_host_result(_from_bhsd(out, layout), like),
           _host_result(lse, like, _torch().float32 if is_torch(like) else None))
    return tuple(_back_to_kind(r, q) for r in res)


def backward(q, k, v, out, lse, dout, mask, scale=None, impl=None, dtype=None, kernel=None, *,
             layout="bhsd", deterministic=False):
    """(dq, dk, dv) from the same implementation's out and lse, same conventions as forward."""
    _check_layout(layout)
    impl = impl or _default_impl(q)
    if device_of(q) == "cuda" and impl == "cuda":
        ts = [as_torch(x, n) for x, n in ((q, "q"), (k, "k"), (v, "v"), (out, "out"),
                                          (lse, "lse"), (dout, "dout"))]
        qb, kb, vb = (_bhsd(ts[i], layout, n) for i, n in ((0, "q"), (1, "k"), (2, "v")))
        ob, db = _bhsd(ts[3], layout, "out"), _bhsd(ts[5], layout, "dout")
        _check_mask(qb, kb, mask, layout)
        grads = device_backward(qb, kb, vb, ob, ts[4], db, mask, scale, deterministic, kernel)
        return tuple(_back_to_kind(_from_bhsd(g, layout), q) for g in grads)
    hs = [to_host(x, n) for x, n in ((q, "q"), (k, "k"), (v, "v"), (out, "out"), (lse, "lse"),
                                     (dout, "dout"))]
    qh, kh, vh, oh, dh = (_bhsd(hs[i], layout, n) for i, n in
                          ((0, "q"), (1, "k"), (2, "v"), (3, "out"), (5, "dout")))
    _check_mask(qh, kh, mask, layout)
    grads = attention.backward(qh, kh, vh, oh, hs[4], dh, mask, scale, impl, dtype or "float16",
                               kernel)
    like = [as_torch(x, n) if device_of(x) == "cuda" else x
            for x, n in ((q, "q"), (k, "k"), (v, "v"))]
    return tuple(_back_to_kind(_host_result(_from_bhsd(g, layout), l), x)
                 for g, l, x in zip(grads, like, (q, k, v)))




def _default_oracle(q):
    """'reference-cuda' for CUDA tensors where the GPU oracle runs, else 'reference'."""
    if device_of(q) == "cuda" and attention.available("reference-cuda"):
        return "reference-cuda"
    return "reference"


def check(q, k, v, dout, mask, candidate, dtype, *, layout="bhsd", scale=None, reference=None,
          allow_fa2_inf_lse=False, forward_only=False, oracle=None, naive=False):
    """flashmask.check_arrays for tensors of any kind on either device: q, k, v, dout as the
    candidate saw them and `candidate` a dict (out, lse[, dq, dk, dv]) of tensors, all in
    `layout` (lse [B, H, Sq] in both). The judgement runs on the host in float64, so device
    tensors are copied there once; the float64 reference is computed by `oracle`: None picks
    'reference-cuda' (on the GPU) for CUDA tensors when it is available, else 'reference' (the
    CPU). naive: as check_arrays'. Returns a flashmask.Report."""
    from .check import check_arrays
    _check_layout(layout)
    oracle = oracle or _default_oracle(q)
    host = {n: None if x is None else _bhsd(to_host(x, n), layout, n)
            for n, x in (("q", q), ("k", k), ("v", v), ("dout", dout))}
    cand = {}
    for n, x in candidate.items():
        h = to_host(x, f"candidate {n}")
        cand[n] = h if n == "lse" else _bhsd(h, layout, f"candidate {n}")
    ref = None if reference is None else {
        n: (to_host(x, n) if n == "lse" else _bhsd(to_host(x, n), layout, n))
        for n, x in reference.items()}
    _check_mask(host["q"], host["k"], mask, layout)
    return check_arrays(host["q"], host["k"], host["v"], host["dout"], mask, cand, dtype, scale,
                        ref, allow_fa2_inf_lse, forward_only, oracle=oracle, naive=naive)


__all__ = ["forward", "backward", "check", "device_of", "to_host", "as_torch", "LAYOUTS"]
