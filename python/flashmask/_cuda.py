"""flashmask._cuda — the device-pointer half of the CUDA layer (include/flashmask/cuda.h) for
callers that hold GPU memory already (flashmask.torch): a mask uploaded once (DeviceMask, over
fm_cuda_mask_upload) and forward/backward on raw device pointers in float16/bfloat16 with a
float32 LSE, launched on the caller's stream. No host copy of q, k, v or the results is made.

Layer: python, over cuda/ through _lib's library handle. Where the CUDA layer is not built or
no device is present every call raises flashmask.Unavailable with the library's message.
"""

import ctypes

from . import _lib
from ._lib import lib

P = ctypes.POINTER


class CudaMask(ctypes.Structure):  # fm_cuda_mask (cuda.h)
    _fields_ = [("batch", ctypes.c_int64), ("heads", ctypes.c_int64),
                ("seqlen_q", ctypes.c_int64), ("seqlen_k", ctypes.c_int64),
                ("causal", ctypes.c_int), ("block_k", ctypes.c_int64),
                ("n_blocks", ctypes.c_int64), ("bounds", _lib.c_int32_p),
                ("summary", _lib.c_int32_p), ("live_per_kblock", ctypes.c_double)]


class FlexBlockMask(ctypes.Structure):  # fm_flex_block_mask (masks.h)
    _fields_ = [(n, ctypes.c_int64) for n in ("batch", "heads", "n_q_blocks", "n_kv_blocks",
                                              "q_block", "kv_block")] + \
               [(n, _lib.c_int32_p) for n in ("kv_num_blocks", "kv_indices",
                                              "full_kv_num_blocks", "full_kv_indices")]


_vp = ctypes.c_void_p
_SIGNATURES = {
    "fm_cuda_available": (ctypes.c_int, []),
    "fm_cuda_mask_upload": (ctypes.c_int, [P(_lib.CMask), P(CudaMask)]),
    "fm_cuda_mask_free": (None, [P(CudaMask)]),
    # the kernel options (fm_kernel_options, NULL: the library's choice), then the stream
    "fm_cuda_forward": (ctypes.c_int, [P(_lib.Problem), P(CudaMask)] + [_vp] * 5 +
                        [P(_lib.KernelOptions), _vp]),
    "fm_cuda_backward": (ctypes.c_int, [P(_lib.Problem), P(CudaMask)] + [_vp] * 9 +
                         [P(_lib.KernelOptions), _vp]),
    "fm_mask_to_flex_blocks": (ctypes.c_int, [P(_lib.CMask), ctypes.c_int64, ctypes.c_int64,
                                              P(FlexBlockMask)]),
    "fm_flex_block_mask_free": (None, [P(FlexBlockMask)]),
}
for _name, (_res, _args) in _SIGNATURES.items():
    _fn = getattr(lib, _name)
    _fn.restype = _res
    _fn.argtypes = _args

# head dimensions the device kernels take without padding (cuda.h)
HEAD_DIMS = (32, 64, 96, 128, 256)


def available():
    return lib.fm_cuda_available() == 0


class DeviceMask:
    """A flashmask.Mask uploaded to the current CUDA device (bounds and block summary). Freed
    when the object is collected."""

    def __init__(self, mask):
        self.mask = mask
        self.c = CudaMask()
        cm = mask.c()
        _lib.check(lib.fm_cuda_mask_upload(ctypes.byref(cm), ctypes.byref(self.c)),
                   "cuda_mask_upload")

    def __del__(self):
        c = getattr(self, "c", None)
        if c is not None:
            lib.fm_cuda_mask_free(ctypes.byref(c))


def forward(p, dmask, q, k, v, out, lse, stream=None, kernel=None):
    """fm_cuda_forward on device pointers (ints): q/k/v/out in p.dtype, lse float32. kernel:
    an fm_kernel_options (_lib.KernelOptions) or None for the library's choice."""
    ko = ctypes.byref(kernel) if kernel is not None else None
    _lib.check(lib.fm_cuda_forward(ctypes.byref(p), ctypes.byref(dmask.c), q, k, v, out, lse,
                                   ko, stream), "cuda_forward")


def backward(p, dmask, q, k, v, out, lse, dout, dq, dk, dv, stream=None, kernel=None):
    """fm_cuda_backward on device pointers (ints); kernel as forward's."""
    ko = ctypes.byref(kernel) if kernel is not None else None
    _lib.check(lib.fm_cuda_backward(ctypes.byref(p), ctypes.byref(dmask.c), q, k, v, out, lse,
                                    dout, dq, dk, dv, ko, stream), "cuda_backward")
