"""flashmask.mask — the column-wise FlashMask mask (docs/spec.md §2) as a Python object over a NumPy
int32 array [B, Hm, Sk, 4] (LTS, LTE, UTS, UTE): the twelve family builders, conversions to and
from dense boolean masks and Paddle's startend_row_indices, exact allowed-pair counts, per-tile
classification and tile statistics. Every rule is the C library's (masks/, rules.h), reached
through ctypes; nothing here restates them.

Layer: python, over masks/ and io/ (parameter overrides) of libflashmask.
"""

import ctypes

import numpy as np

from . import _lib
from ._lib import CAUSAL, CAUSAL_NAMES, TILE_CLASSES, lib

# The library says which families it has (masks/families.c); nothing here lists them.
FAMILIES = [lib.fm_family_name(i).decode() for i in range(lib.fm_family_count())]


def family_help(family):
    """One line describing a family's parameters."""
    return lib.fm_family_help(FAMILIES.index(family)).decode()


def _causal_code(causal):
    if causal not in CAUSAL:
        raise _lib.InvalidInput(1, f"causal = {causal!r}; expected one of {sorted(CAUSAL)}",
                                "mask")
    return CAUSAL[causal]


class Mask:
    """A FlashMask mask: `bounds` int32 [B, Hm, Sk, 4], `seqlen_q`, `causal` ('none',
    'bottom_right' or 'top_left'). Validated on construction (a bound outside [0, Sq] or
    start > end raises InvalidInput naming the column)."""

    def __init__(self, bounds, seqlen_q, causal="none"):
        b = _lib.as_c(bounds, np.int32, "bounds", 4)
        if b.shape[3] != 4:
            raise _lib.InvalidInput(1, f"bounds: last dimension {b.shape[3]}, expected 4 "
                                       "(LTS, LTE, UTS, UTE)", "mask")
        self.bounds = b
        self.seqlen_q = int(seqlen_q)
        self.causal = causal
        self._causal = _causal_code(causal)
        _lib.check(lib.fm_mask_validate(ctypes.byref(self.c())), "mask")

    # -- the C view
    def c(self):
        """An fm_mask pointing at this object's bounds (valid while self lives)."""
        B, Hm, Sk, _ = self.bounds.shape
        return _lib.CMask(B, Hm, self.seqlen_q, Sk, self._causal,
                          _lib.ptr(self.bounds, ctypes.c_int32))

    @property
    def batch(self):
        return self.bounds.shape[0]

    @property
    def heads(self):
        return self.bounds.shape[1]

    @property
    def seqlen_k(self):
        return self.bounds.shape[2]

    def __repr__(self):
        return (f"Mask(B={self.batch}, Hm={self.heads}, Sq={self.seqlen_q}, Sk={self.seqlen_k}, "
                f"causal={self.causal!r})")

    @classmethod
    def _adopt(cls, cmask):
        """Copy a C-owned fm_mask into a Mask and free the C one."""
        try:
            shape = (cmask.batch, cmask.heads, cmask.seqlen_k, 4)
            n = int(np.prod(shape))
            bounds = np.ctypeslib.as_array(cmask.bounds, shape=(n,)).copy().reshape(shape)
            return cls(bounds, cmask.seqlen_q, CAUSAL_NAMES[cmask.causal])
        finally:
            lib.fm_mask_free(ctypes.byref(cmask))

    # -- conversions
    def to_dense(self):
        """Boolean [B, Hm, Sq, Sk], True = allowed (PyTorch's attn_mask convention)."""
        out = np.zeros((self.batch, self.heads, self.seqlen_q, self.seqlen_k), dtype=np.uint8)
        _lib.check(lib.fm_mask_to_dense(ctypes.byref(self.c()), _lib.ptr(out, ctypes.c_uint8)),
                   "to_dense")
        return out.astype(bool)

    @classmethod
    def from_dense(cls, allowed, causal="none"):
        """Exact conversion from a boolean [B, Hm, Sq, Sk] (True = allowed); raises
        InvalidInput (status 'not representable') naming the column with > 2 masked runs."""
        a = _lib.as_c(np.asarray(allowed).astype(np.uint8), np.uint8, "allowed", 4)
        B, Hm, Sq, Sk = a.shape
        m = _lib.CMask()
        _lib.check(lib.fm_mask_from_dense(ctypes.byref(m), _lib.ptr(a, ctypes.c_uint8), B, Hm,
                                          Sq, Sk, _causal_code(causal)), "from_dense")
        return cls._adopt(m)

    @classmethod
    def from_startend(cls, startend, seqlen_q, causal="none"):
        """Paddle's startend_row_indices int32 [B, Hm, Sk, C], C in {1, 2, 4}; `causal` 'none'
        means Paddle's causal=False."""
        s = _lib.as_c(startend, np.int32, "startend", 4)
        B, Hm, Sk, C = s.shape
        m = _lib.CMask()
        _lib.check(lib.fm_mask_from_startend(ctypes.byref(m), _lib.ptr(s, ctypes.c_int32), B, Hm,
                                             seqlen_q, Sk, C, _causal_code(causal)),
                   "from_startend")
        return cls._adopt(m)

    def to_startend(self, columns):
        """Paddle's form with `columns` in {1, 2, 4}; raises when the mask does not fit it."""
        out = np.zeros((self.batch, self.heads, self.seqlen_k, columns), dtype=np.int32)
        _lib.check(lib.fm_mask_to_startend(ctypes.byref(self.c()), columns,
                                           _lib.ptr(out, ctypes.c_int32)), "to_startend")
        return out

    # -- counts and tiles
    def allowed_pairs(self, b=None, h=None):
        """Exact number of allowed (i, j) pairs, of one (b, h) or of the whole mask."""
        cm = self.c()
        if b is None:
            return int(lib.fm_mask_total_allowed_pairs(ctypes.byref(cm)))
        return int(lib.fm_mask_allowed_pairs(ctypes.byref(cm), b, h))

    def tile_classes(self, block_q, block_k):
        """int8 [B, Hm, ceil(Sq/block_q), ceil(Sk/block_k)]: 0 unmasked, 1 partial, 2 masked,
        as masks/ classifies tiles from the per-key-block summaries (TILE_CLASSES names them)."""
        s = _lib.BlockSummary()
        _lib.check(lib.fm_block_summary_build(ctypes.byref(self.c()), block_k, ctypes.byref(s)),
                   "tile_classes")
        try:
            nq = -(-self.seqlen_q // block_q)
            out = np.empty((self.batch, self.heads, nq, s.n_blocks), dtype=np.int8)
            for b in range(self.batch):
                for h in range(self.heads):
                    for qb in range(nq):
                        for kb in range(s.n_blocks):
                            out[b, h, qb, kb] = lib.fm_block_summary_classify(
                                ctypes.byref(s), b, h, block_q, qb, kb)
            return out
        finally:
            lib.fm_block_summary_free(ctypes.byref(s))

    def tile_stats(self, block_q, block_k):
        """{'total', 'masked', 'partial', 'unmasked'} tile counts over every (b, h)."""
        st = _lib.TileStats()
        _lib.check(lib.fm_mask_tile_stats(ctypes.byref(self.c()), block_q, block_k,
                                          ctypes.byref(st)), "tile_stats")
        return {"total": st.total, "masked": st.masked, "partial": st.partial,
                "unmasked": st.unmasked}


def _assignment(key, value):
    if isinstance(value, (list, tuple, np.ndarray)):
        return f"{key}={','.join(str(int(v)) for v in value)}"
    return f"{key}={int(value)}"


def build(family, batch=1, heads=1, seqlen_q=None, seqlen_k=None, alignment="bottom_right",
          **params):
    """A family's mask (docs/spec.md §4): its documented default parameters for Sk, overridden by
    `params` (the fm_mask_params field names: window=, doc_lens=[..], prefix=, ...).
    `alignment` is the causal alignment causal families use when Sq != Sk."""
    if family not in FAMILIES:
        raise _lib.InvalidInput(1, f"unknown family {family!r}; expected one of {FAMILIES}",
                                "build")
    if seqlen_k is None:
        seqlen_k = seqlen_q
    if seqlen_q is None:
        seqlen_q = seqlen_k
    if seqlen_q is None:
        raise _lib.InvalidInput(1, "give seqlen_q and/or seqlen_k", "build")
    p = family_params(family, seqlen_k, **params)
    try:
        m = _lib.CMask()
        _lib.check(lib.fm_mask_build(ctypes.byref(m), ctypes.byref(p), batch, heads, seqlen_q,
                                     seqlen_k, _causal_code(alignment)), "build")
        return Mask._adopt(m)
    finally:
        lib.fm_mask_params_free(ctypes.byref(p))


def family_params(family, seqlen_k, **params):
    """A C fm_mask_params: the family's defaults for Sk overridden by `params` (the caller
    frees it with lib.fm_mask_params_free)."""
    p = _lib.MaskParams()
    _lib.check(lib.fm_mask_params_default(ctypes.byref(p), FAMILIES.index(family), seqlen_k),
               "mask params")
    if params:
        texts = [_assignment(k, v).encode() for k, v in params.items()]
        arr = (ctypes.c_char_p * len(texts))(*texts)
        status = lib.fm_mask_params_apply(ctypes.byref(p), len(texts), arr)
        if status != 0:
            message = _lib.last_error()
            lib.fm_mask_params_free(ctypes.byref(p))
            raise _lib._error_class(status)(status, message, "mask params")
    return p


__all__ = ["Mask", "build", "FAMILIES", "family_help", "TILE_CLASSES"]
