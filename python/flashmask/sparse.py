"""flashmask.sparse — dense masks, Binary Block Masking, RCM reordering, QK-sparse and Hash-sparse
from NumPy, over include/flashmask/bbm.h and sparse.h (docs/sparse.md).

    import flashmask.sparse as fs
    bbm = fs.bbm_from_dense(allowed, 64, 64)           # codes, runs, stats, to_dense()
    out, lse = fs.forward_dense(q, k, v, allowed, impl="cpu")          # column form or BBM
    dq, dk, dv = fs.backward_dense(q, k, v, out, lse, dout, allowed, impl="cpu", method="rcm")
    out, lse = fs.qk_sparse_forward(q, k, v, q_keep, k_keep, impl="cpu")
    qb, kb = fs.hash_buckets(q, k, n_buckets=8, seed=1)
    out, lse = fs.hash_sparse_forward(q, k, v, qb, kb, 8, impl="cpu")
    report = fs.check_dense(q, k, v, dout, allowed, {"out": out, ...}, dtype="float16")

Dense masks are uint8/bool [B, Hm, Sq, Sk], 1 = allowed; q [B, Hq, Sq, D], k, v [B, Hk, Sk, D].
Errors raise flashmask.FlashMaskError subclasses carrying the library's message.
Layer: python, beside attention.py, over masks/bbm.c, masks/rcm.c, sparse/, reference/, cpu/.
"""

import ctypes

import numpy as np

from . import _lib
from ._lib import IMPLS, lib

P = ctypes.POINTER
_i64 = ctypes.c_int64
_u8p = P(ctypes.c_uint8)
_i32p = P(ctypes.c_int32)

CAUSALS = {"none": 0, "bottom_right": 1, "top_left": 2}
TILE_CODES = {0: "full", 1: "partial", 2: "empty"}  # fm_tile_class: UNMASKED, PARTIAL, MASKED
METHODS = {"auto": 0, "bbm": 1, "rcm": 2, "rowsplit": 6}


class BBMStruct(ctypes.Structure):  # fm_bbm (bbm.h)
    _fields_ = [(n, _i64) for n in ("batch", "heads", "seqlen_q", "seqlen_k", "block_q",
                                    "block_k", "n_q_blocks", "n_k_blocks")] + [
        ("codes", _u8p), ("bits_offset", P(_i64)), ("bits", P(ctypes.c_uint64)),
        ("words_per_tile", _i64), ("n_partial", _i64), ("run_start", _i32p),
        ("run_end", _i32p)]


class AnyMask(ctypes.Structure):  # fm_any_mask (bbm.h)
    _fields_ = [("form", ctypes.c_int), ("columns", _lib.CMask), ("bbm", BBMStruct)]


class RcmReport(ctypes.Structure):  # fm_rcm_report (sparse.h)
    _fields_ = [("before", _lib.TileStats), ("after", _lib.TileStats)]


_PR, _T = P(_lib.Problem), P(_lib.Tensors)
_SIGNATURES = {
    "fm_bbm_from_dense": [P(BBMStruct), _u8p] + [_i64] * 6,
    "fm_bbm_free": [P(BBMStruct)],
    "fm_bbm_to_dense": [P(BBMStruct), _u8p],
    "fm_bbm_tile_stats": [P(BBMStruct), P(_lib.TileStats)],
    "fm_bbm_total_allowed_pairs": [P(BBMStruct)],
    "fm_mask_from_dense_auto": [P(AnyMask), _u8p] + [_i64] * 4 + [ctypes.c_int, _i64, _i64],
    "fm_any_mask_free": [P(AnyMask)],
    "fm_forward_any": [ctypes.c_int, _PR, P(AnyMask), _T],
    "fm_backward_any": [ctypes.c_int, _PR, P(AnyMask), _T],
    "fm_rcm_tile_report": [_u8p] + [_i64] * 6 + [P(RcmReport)],
    "fm_rcm_forward": [ctypes.c_int, _PR, _u8p, _i64, _i64, _i64, _T],
    "fm_rcm_backward": [ctypes.c_int, _PR, _u8p, _i64, _i64, _i64, _T],
    "fm_qk_sparse_forward": [ctypes.c_int, _PR, ctypes.c_int, _u8p, _u8p, _T],
    "fm_qk_sparse_backward": [ctypes.c_int, _PR, ctypes.c_int, _u8p, _u8p, _T],
    "fm_qk_sparse_dense_mask": [_PR, ctypes.c_int, _u8p, _u8p, _u8p],
    "fm_hash_buckets": [_PR, P(ctypes.c_double), P(ctypes.c_double), _i64, ctypes.c_uint64,
                        _i32p, _i32p],
    "fm_hash_sparse_forward": [ctypes.c_int, _PR, ctypes.c_int, _i32p, _i32p, _i64, _T],
    "fm_hash_sparse_backward": [ctypes.c_int, _PR, ctypes.c_int, _i32p, _i32p, _i64, _T],
    "fm_hash_sparse_dense_mask": [_PR, ctypes.c_int, _i32p, _i32p, _i64, _u8p],
    "fm_rowsplit_forward": [ctypes.c_int, _PR, _u8p, _i64, _T],
    "fm_rowsplit_backward": [ctypes.c_int, _PR, _u8p, _i64, _T],
    "fm_rowsplit_blocks": [_PR, _u8p, _i64, P(_i64)],
    "fm_check_dense": [_PR, _u8p, _i64, _T, _T, P(_lib.CheckOptions), P(_lib.CheckReport)],
}
for _name, _args in _SIGNATURES.items():
    _fn = getattr(lib, _name)
    _fn.argtypes = _args
    _fn.restype = (None if _name.endswith("_free") else
                   ctypes.c_int64 if _name == "fm_bbm_total_allowed_pairs" else ctypes.c_int)


# ------------------------------------------------------------------ helpers

def _u8(a, name, ndim):
    a = np.asarray(a)
    if a.dtype == np.bool_:
        a = a.view(np.uint8)
    return _lib.as_c(a, np.uint8, name, ndim)  # values other than 0/1: C names the element


def _check_mask_shape(p, allowed):
    """C reads B * Hm * Sq * Sk bytes of a dense mask: its shape must be [B, Hm, Sq, Sk] of
    the problem with Hm dividing Hq (a 2x2 mask for a 64x64 problem was read 4 KB past)."""
    B, Hm, Sq, Sk = allowed.shape
    if (B, Sq, Sk) != (p.batch, p.seqlen_q, p.seqlen_k) or Hm < 1 or p.q_heads % Hm:
        raise _lib.InvalidInput(1, f"allowed: shape {allowed.shape}, expected [B, Hm, Sq, Sk] = "
                                f"[{p.batch}, Hm, {p.seqlen_q}, {p.seqlen_k}] with Hm dividing "
                                f"Hq = {p.q_heads}", "allowed")


def _check_row_shapes(p, a, b, names):
    """q_keep / q_buckets [B, Hq, Sq] and k_keep / k_buckets [B, Hk, Sk]."""
    want = ((p.batch, p.q_heads, p.seqlen_q), (p.batch, p.kv_heads, p.seqlen_k))
    for x, w, n in zip((a, b), want, names):
        if tuple(x.shape) != w:
            raise _lib.InvalidInput(1, f"{n}: shape {tuple(x.shape)}, expected {w}", n)


def _i32(a, name, ndim):
    return _lib.as_c(a, np.int32, name, ndim)


def _f64(a, name):
    return _lib.as_c(a, np.float64, name, 4)


def _choice(table, value, what):
    if value not in table:
        raise _lib.InvalidInput(1, f"{what} {value!r}; expected one of {sorted(table)}", what)
    return table[value]


def _problem(q, k, scale):
    """fm_problem for q [B, Hq, Sq, D] and k [B, Hk, Sk, D] (checked by the C calls)."""
    B, Hq, Sq, D = q.shape
    Bk, Hk, Sk, Dk = k.shape
    if Bk != B or Dk != D:
        raise _lib.InvalidInput(1, f"q {q.shape} and k {k.shape} disagree on B or D", "problem")
    p = _lib.Problem()
    lib.fm_problem_init(ctypes.byref(p), B, Hq, Hk, Sq, Sk, D)
    if scale is not None:
        p.scale = float(scale)
    return p


def _tensors(q, k, v, **more):
    return _lib.Tensors(q=_lib.dptr(q), k=_lib.dptr(k), v=_lib.dptr(v),
                        **{n: _lib.dptr(a) for n, a in more.items()})


# ------------------------------------------------------------------ Binary Block Masking

class BBM:
    """The BBM form of a dense mask: `codes` [B, Hm, nq, nk] ('full' 0, 'partial' 1, 'empty' 2
    as fm_tile_class), `run_start`/`run_end` [B, Hm, nq] (the longest run of full tiles of each
    query tile), `stats` (total, empty, partial, full), `allowed_pairs`, `to_dense()`."""

    def __init__(self, allowed, block_q, block_k):
        allowed = _u8(allowed, "allowed", 4)
        self._c = BBMStruct()
        _lib.check(lib.fm_bbm_from_dense(ctypes.byref(self._c), _lib.ptr(allowed, ctypes.c_uint8),
                                         *allowed.shape, block_q, block_k), "bbm_from_dense")
        c = self._c
        self.shape = allowed.shape
        self.block_q, self.block_k = c.block_q, c.block_k
        nt = c.batch * c.heads * c.n_q_blocks * c.n_k_blocks
        nr = c.batch * c.heads * c.n_q_blocks
        self.codes = np.ctypeslib.as_array(c.codes, (nt,)).copy().reshape(
            c.batch, c.heads, c.n_q_blocks, c.n_k_blocks)
        self.run_start = np.ctypeslib.as_array(c.run_start, (nr,)).copy().reshape(
            c.batch, c.heads, c.n_q_blocks)
        self.run_end = np.ctypeslib.as_array(c.run_end, (nr,)).copy().reshape(
            c.batch, c.heads, c.n_q_blocks)
        s = _lib.TileStats()
        _lib.check(lib.fm_bbm_tile_stats(ctypes.byref(c), ctypes.byref(s)), "bbm_tile_stats")
        self.stats = {"total": s.total, "empty": s.masked, "partial": s.partial,
                      "full": s.unmasked}
        self.allowed_pairs = int(lib.fm_bbm_total_allowed_pairs(ctypes.byref(c)))

    def to_dense(self):
        out = np.empty(self.shape, np.uint8)
        _lib.check(lib.fm_bbm_to_dense(ctypes.byref(self._c), _lib.ptr(out, ctypes.c_uint8)),
                   "bbm_to_dense")
        return out

    def __del__(self):
        if getattr(self, "_c", None) is not None:
            lib.fm_bbm_free(ctypes.byref(self._c))


def bbm_from_dense(allowed, block_q=128, block_k=128):
    return BBM(allowed, block_q, block_k)


def mask_form(allowed, causal="none"):
    """'columns' when fm_mask_from_dense_auto keeps the FlashMask column form, else 'bbm'."""
    allowed = _u8(allowed, "allowed", 4)
    m = AnyMask()
    _lib.check(lib.fm_mask_from_dense_auto(ctypes.byref(m), _lib.ptr(allowed, ctypes.c_uint8),
                                           *allowed.shape, _choice(CAUSALS, causal, "causal"),
                                           128, 128), "mask_from_dense_auto")
    form = "columns" if m.form == 0 else "bbm"
    lib.fm_any_mask_free(ctypes.byref(m))
    return form


def rowsplit_blocks(allowed, q_heads=None):
    """How many row blocks fm_rowsplit cuts the dense mask [B, Hm, Sq, Sk] into."""
    allowed = _u8(allowed, "allowed", 4)
    B, Hm, Sq, Sk = allowed.shape
    p = _lib.Problem()
    lib.fm_problem_init(ctypes.byref(p), B, q_heads or Hm, q_heads or Hm, Sq, Sk, 1)
    n = _i64()
    _lib.check(lib.fm_rowsplit_blocks(ctypes.byref(p), _lib.ptr(allowed, ctypes.c_uint8), Hm,
                                      ctypes.byref(n)), "rowsplit_blocks")
    return n.value


def rcm_report(allowed, block_q=128, block_k=128):
    """Tile counts before and after Reverse Cuthill-McKee reordering, as two dicts."""
    allowed = _u8(allowed, "allowed", 4)
    r = RcmReport()
    _lib.check(lib.fm_rcm_tile_report(_lib.ptr(allowed, ctypes.c_uint8), *allowed.shape,
                                      block_q, block_k, ctypes.byref(r)), "rcm_tile_report")
    conv = lambda s: {"total": s.total, "empty": s.masked, "partial": s.partial,  # noqa: E731
                      "full": s.unmasked}
    return conv(r.before), conv(r.after)


# ------------------------------------------------------------------ attention under dense masks

def _pass_tensors(p, backward, q, k, v, out, lse, dout):
    """The results of one pass (forward: out, lse; backward: dq, dk, dv, from the checked
    out, lse and dout) as fresh arrays, the tensor bundle pointing at them, and `keep`: the
    converted out, lse and dout, which must stay alive until the C call returns."""
    if backward:
        out, lse, dout = _f64(out, "out"), _lib.as_c(lse, np.float64, "lse", 3), _f64(dout, "dout")
        _lib.check_shapes(p, out=out, lse=lse, dout=dout)
        res = {"dq": np.empty(q.shape), "dk": np.empty(k.shape), "dv": np.empty(v.shape)}
        return res, _tensors(q, k, v, out=out, lse=lse, dout=dout, **res), (out, lse, dout)
    res = {"out": np.empty(q.shape), "lse": np.empty(q.shape[:3])}
    return res, _tensors(q, k, v, **res), ()


def _run_dense(backward, q, k, v, allowed, impl, method, block, scale, out=None, lse=None,
               dout=None):
    q, k, v = _f64(q, "q"), _f64(k, "k"), _f64(v, "v")
    allowed = _u8(allowed, "allowed", 4)
    p = _problem(q, k, scale)
    _lib.check_shapes(p, v=v)
    _check_mask_shape(p, allowed)
    impl_id, meth = _choice(IMPLS, impl, "impl"), _choice(METHODS, method, "method")
    bq, bk = block
    res, t, keep = _pass_tensors(p, backward, q, k, v, out, lse, dout)  # keep: alive
    a = _lib.ptr(allowed, ctypes.c_uint8)
    if meth == METHODS["rcm"]:
        fn = lib.fm_rcm_backward if backward else lib.fm_rcm_forward
        _lib.check(fn(impl_id, ctypes.byref(p), a, allowed.shape[1], bq, bk, ctypes.byref(t)),
                   f"rcm[{impl}]")
    elif meth == METHODS["rowsplit"]:
        fn = lib.fm_rowsplit_backward if backward else lib.fm_rowsplit_forward
        _lib.check(fn(impl_id, ctypes.byref(p), a, allowed.shape[1], ctypes.byref(t)),
                   f"rowsplit[{impl}]")
    else:
        m = AnyMask()
        try:
            if meth == METHODS["bbm"]:
                m.form = 1
                _lib.check(lib.fm_bbm_from_dense(ctypes.byref(m.bbm), a, *allowed.shape, bq, bk),
                           "bbm_from_dense")
            else:
                _lib.check(lib.fm_mask_from_dense_auto(ctypes.byref(m), a, *allowed.shape, 0, bq,
                                                       bk), "mask_from_dense_auto")
            fn = lib.fm_backward_any if backward else lib.fm_forward_any
            _lib.check(fn(impl_id, ctypes.byref(p), ctypes.byref(m), ctypes.byref(t)),
                       f"{method}[{impl}]")
        finally:
            lib.fm_any_mask_free(ctypes.byref(m))
    return (res["dq"], res["dk"], res["dv"]) if backward else (res["out"], res["lse"])


def forward_dense(q, k, v, allowed, impl="reference", method="auto", block=(128, 128),
                  scale=None):
    """(out, lse) under a dense mask. method: 'auto' (the column form if the mask fits it,
    else BBM), 'bbm', 'rcm' (Reverse Cuthill-McKee reordering first) or 'rowsplit' (row blocks
    in the column form: runs on every impl, 'cuda' included)."""
    return _run_dense(False, q, k, v, allowed, impl, method, block, scale)


def backward_dense(q, k, v, out, lse, dout, allowed, impl="reference", method="auto",
                   block=(128, 128), scale=None):
    """(dq, dk, dv) under a dense mask, from the same implementation's out and lse."""
    return _run_dense(True, q, k, v, allowed, impl, method, block, scale, out, lse, dout)


# ------------------------------------------------------------------ Sparse Flash Attention

def _selection_args(kind, p, a, b, n_buckets):
    """The C arguments of a selection checked against problem p: QK-sparse (kind "qk": q_keep,
    k_keep as uint8) or Hash-sparse ("hash": q_buckets, k_buckets as int32, then n_buckets).
    Returns (arrays, args); the arrays must stay alive while args are used."""
    if kind == "qk":
        names, convert, ctype, extra = ("q_keep", "k_keep"), _u8, ctypes.c_uint8, ()
    else:
        names, convert, ctype, extra = ("q_buckets", "k_buckets"), _i32, ctypes.c_int32, \
            (n_buckets,)
    a, b = convert(a, names[0], 3), convert(b, names[1], 3)
    _check_row_shapes(p, a, b, names)
    return (a, b), (_lib.ptr(a, ctype), _lib.ptr(b, ctype)) + extra


def _run_sparse(kind, backward, q, k, v, a, b, n_buckets, alignment, impl, scale, out=None,
                lse=None, dout=None):
    q, k, v = _f64(q, "q"), _f64(k, "k"), _f64(v, "v")
    p = _problem(q, k, scale)
    _lib.check_shapes(p, v=v)
    al, impl_id = _choice(CAUSALS, alignment, "alignment"), _choice(IMPLS, impl, "impl")
    res, t, keep = _pass_tensors(p, backward, q, k, v, out, lse, dout)  # keep: alive
    selection, args = _selection_args(kind, p, a, b, n_buckets)  # selection: alive
    fn = getattr(lib, f"fm_{kind}_sparse_{'backward' if backward else 'forward'}")
    _lib.check(fn(impl_id, ctypes.byref(p), al, *args, ctypes.byref(t)), f"{kind}_sparse[{impl}]")
    return (res["dq"], res["dk"], res["dv"]) if backward else (res["out"], res["lse"])


def qk_sparse_forward(q, k, v, q_keep, k_keep, alignment="top_left", impl="reference",
                      scale=None):
    """QK-sparse: q_keep [B, Hq, Sq], k_keep [B, Hk, Sk] 0/1 flags. Dropped queries give out 0,
    lse -inf."""
    return _run_sparse("qk", False, q, k, v, q_keep, k_keep, 0, alignment, impl, scale)


def qk_sparse_backward(q, k, v, out, lse, dout, q_keep, k_keep, alignment="top_left",
                       impl="reference", scale=None):
    return _run_sparse("qk", True, q, k, v, q_keep, k_keep, 0, alignment, impl, scale, out, lse,
                       dout)


def qk_sparse_dense_mask(q, k, q_keep, k_keep, alignment="top_left"):
    """The equivalent dense mask [B, Hq, Sq, Sk] of a QK-sparse selection."""
    return _sparse_dense_mask("qk", q, k, q_keep, k_keep, 0, alignment)


def _sparse_dense_mask(kind, q, k, a, b, n_buckets, alignment):
    q, k = _f64(q, "q"), _f64(k, "k")
    p = _problem(q, k, None)
    selection, args = _selection_args(kind, p, a, b, n_buckets)  # selection: alive
    out = np.empty(q.shape[:3] + (k.shape[2],), np.uint8)
    fn = getattr(lib, f"fm_{kind}_sparse_dense_mask")
    _lib.check(fn(ctypes.byref(p), _choice(CAUSALS, alignment, "alignment"), *args,
                  _lib.ptr(out, ctypes.c_uint8)), f"{kind}_sparse_dense_mask")
    return out


def hash_buckets(q, k, n_buckets, seed=0):
    """Bucket ids argmax([xR, -xR]) for R [D, n_buckets/2] from fm_rng(seed): (q_buckets
    [B, Hq, Sq], k_buckets [B, Hk, Sk]) as int32."""
    q, k = _f64(q, "q"), _f64(k, "k")
    p = _problem(q, k, None)
    qb = np.empty(q.shape[:3], np.int32)
    kb = np.empty(k.shape[:3], np.int32)
    _lib.check(lib.fm_hash_buckets(ctypes.byref(p), _lib.dptr(q), _lib.dptr(k), n_buckets,
                                   seed, _lib.ptr(qb, ctypes.c_int32),
                                   _lib.ptr(kb, ctypes.c_int32)), "hash_buckets")
    return qb, kb


def hash_sparse_forward(q, k, v, q_buckets, k_buckets, n_buckets, alignment="top_left",
                        impl="reference", scale=None):
    """Hash-sparse: attend iff same bucket and (alignment != 'none') causal."""
    return _run_sparse("hash", False, q, k, v, q_buckets, k_buckets, n_buckets, alignment, impl,
                       scale)


def hash_sparse_backward(q, k, v, out, lse, dout, q_buckets, k_buckets, n_buckets,
                         alignment="top_left", impl="reference", scale=None):
    return _run_sparse("hash", True, q, k, v, q_buckets, k_buckets, n_buckets, alignment, impl,
                       scale, out, lse, dout)


def hash_sparse_dense_mask(q, k, q_buckets, k_buckets, n_buckets, alignment="top_left"):
    """The equivalent dense mask [B, Hq, Sq, Sk] of a Hash-sparse bucketing."""
    return _sparse_dense_mask("hash", q, k, q_buckets, k_buckets, n_buckets, alignment)


# ------------------------------------------------------------------ the pass rule, dense

def check_dense(q, k, v, dout, allowed, candidate, dtype, scale=None, reference=None,
                allow_fa2_inf_lse=False, forward_only=False, rule="derived", naive=False):
    """docs/spec.md §5's verdict under a dense mask (fm_check_dense): `candidate` is a dict of out,
    lse[, dq, dk, dv] computed in `dtype`; `reference` (optional dict) the float64 expected
    outputs, else the dense oracle computes them; naive as check_arrays'. Returns
    flashmask.check.Report."""
    from .check import Report, _array_options, _judged_tensors  # as check_arrays judges
    opt = _array_options(dtype, allow_fa2_inf_lse, forward_only, "check_dense", rule, naive)
    q, k = _f64(q, "q"), _f64(k, "k")
    allowed = _u8(allowed, "allowed", 4)
    p = _problem(q, k, scale)
    _check_mask_shape(p, allowed)
    r, cand, keep = _judged_tensors(p, q, k, v, dout, candidate, reference)  # keep: alive
    rep = _lib.CheckReport()
    _lib.check(lib.fm_check_dense(ctypes.byref(p), _lib.ptr(allowed, ctypes.c_uint8),
                                  allowed.shape[1], ctypes.byref(r), ctypes.byref(cand),
                                  ctypes.byref(opt), ctypes.byref(rep)), "check_dense")
    return Report(rep)
