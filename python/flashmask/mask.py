"""flashmask.mask — the column-wise FlashMask mask (BRIEF 2) as a Python object over a NumPy
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

FAMILIES = [lib.fm_family_name(i).decode() for i in range(12)]


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
        self._set(bounds, seqlen_q, causal)

    def _set(self, bounds, seqlen_q, causal):
        """Validates, then stores a private read-only int32 C-order copy: a Mask never aliases
        the caller's array (changing it afterwards would skip validation) and a Fortran-order
        or int64 array is converted, not reinterpreted."""
        b = np.array(_lib.as_c(bounds, np.int32, "bounds", 4), dtype=np.int32, order="C",
                     copy=True)
        if b.shape[3] != 4:
            raise _lib.InvalidInput(1, f"bounds: last dimension {b.shape[3]}, expected 4 "
                                       "(LTS, LTE, UTS, UTE)", "mask")
        seqlen_q = _lib.as_index(seqlen_q, "seqlen_q", 0, 2**31)
        code = _causal_code(causal)
        c = _lib.CMask(b.shape[0], b.shape[1], seqlen_q, b.shape[2], code,
                       _lib.ptr(b, ctypes.c_int32))
        _lib.check(lib.fm_mask_validate(ctypes.byref(c)), "mask")
        b.flags.writeable = False
        self._bounds, self._seqlen_q, self._causal_name, self._causal = b, seqlen_q, causal, code

    # assigning any of these re-validates the whole mask
    @property
    def bounds(self):
        return self._bounds

    @bounds.setter
    def bounds(self, value):
        self._set(value, self._seqlen_q, self._causal_name)

    @property
    def seqlen_q(self):
        return self._seqlen_q

    @seqlen_q.setter
    def seqlen_q(self, value):
        self._set(self._bounds, value, self._causal_name)

    @property
    def causal(self):
        return self._causal_name

    @causal.setter
    def causal(self, value):
        self._set(self._bounds, self._seqlen_q, value)

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
        src = np.asarray(allowed)
        if src.dtype != np.bool_:  # 0.5 or 256 are not "allowed" or "masked": refuse them
            src = _lib.as_c(src, np.uint8, "allowed", 4)
            if src.size and src.max() > 1:
                at = np.unravel_index(int(np.argmax(src > 1)), src.shape)
                raise _lib.InvalidInput(1, f"allowed{list(at)} = {src[at]}; a dense mask holds "
                                        "0/1 or booleans", "from_dense")
        a = _lib.as_c(src.astype(np.uint8), np.uint8, "allowed", 4)
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
        """Paddle's form with `columns` in {1, 2, 4}; raises when the mask does not fit it, and
        when Paddle would read the vectors as another mask (causal 'top_left' with Sq != Sk:
        Paddle's causal is bottom-right) or refuse them (causal with C = 4). The message says how
        to convert; docs/masks.md §6."""
        out = np.zeros((self.batch, self.heads, self.seqlen_k, columns), dtype=np.int32)
        _lib.check(lib.fm_mask_to_startend(ctypes.byref(self.c()), columns,
                                           _lib.ptr(out, ctypes.c_int32)), "to_startend")
        return out

    # -- counts and tiles
    def allowed_pairs(self, b=None, h=None):
        """Exact number of allowed (i, j) pairs, of one (b, h) or of the whole mask."""
        cm = self.c()
        if b is None and h is None:
            return int(lib.fm_mask_total_allowed_pairs(ctypes.byref(cm)))
        if b is None or h is None:
            raise _lib.InvalidInput(1, "allowed_pairs: give both b and h, or neither",
                                    "allowed_pairs")
        b = _lib.as_index(b, "b", 0, self.batch)
        h = _lib.as_index(h, "h (a mask head)", 0, self.heads)
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


def _integer(key, v):
    """A parameter value as an exact integer: window=2.7 is refused, not read as 2."""
    if isinstance(v, (bool, np.bool_)):
        raise _lib.InvalidInput(1, f"{key} = {v!r} is not an integer", "mask params")
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return int(v)
    raise _lib.InvalidInput(1, f"{key} = {v!r} is not an integer", "mask params")


def _assignment(key, value):
    if isinstance(value, (list, tuple, np.ndarray)):
        return f"{key}={','.join(str(_integer(key, v)) for v in np.asarray(value).ravel())}"
    return f"{key}={_integer(key, value)}"


def build(family, batch=1, heads=1, seqlen_q=None, seqlen_k=None, alignment="bottom_right",
          **params):
    """A family's mask (BRIEF 4): its documented default parameters for Sk, overridden by
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
