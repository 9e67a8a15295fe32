"""flashmask — Python binding of libflashmask (ctypes over the installed libflashmask, or a
source checkout's build*/libflashmask.so, or $FLASHMASK_LIB; NumPy arrays; torch tensors through
flashmask.torch). `pip install .` builds and installs both (docs/python.md).

    import flashmask as fm
    m = fm.build("causal_document", batch=1, heads=1, seqlen_q=64, doc_lens=[20, 44])
    ref = fm.reference(q, k, v, dout, m)               # float64 oracle
    out, lse = fm.forward(q, k, v, m, impl="cpu")      # the float32 tiled cpu layer
    out, lse = fm.forward(tq, tk, tv, m, layout="bshd")  # torch CUDA tensors: our CUDA kernels
    report = fm.check_arrays(q, k, v, dout, m, candidate, dtype="bfloat16")
    report = fm.check_dirs("suite/causal-f16", "my_results/causal-f16")

Errors raise flashmask.FlashMaskError subclasses (InvalidInput, FileError, Unavailable) whose
message is the library's fm_last_error(). Layer: python, the top of the stack.
"""

from ._lib import (LIB_PATH, FileError, FlashMaskError, InvalidInput, Unavailable)
from .attention import available, naive, reference, round_to
from .case import Case, load_case, save_case, save_results
from .check import Report, atol, check_arrays, check_dirs, check_suite
from .mask import FAMILIES, TILE_CLASSES, Mask, build, family_help
from . import _layout, tensors
from .tensors import backward, forward  # attention.forward/backward for any tensor kind
from ._layout import LayoutMismatch
from ._loader import cli_path as _cli_path

# The library describes its structs; a binding whose mirrors disagree refuses to run.
_layout.verify()

__version__ = _layout.library_version()  # fm_version(): one version, meson.build's


def cli_path():
    """The flashmask CLI that goes with the loaded library (None if none is found)."""
    return _cli_path(LIB_PATH)


__all__ = ["LIB_PATH", "LayoutMismatch", "cli_path", "tensors", "FlashMaskError", "InvalidInput", "FileError", "Unavailable", "Mask",
           "build", "FAMILIES", "TILE_CLASSES", "family_help", "forward", "backward",
           "reference", "naive", "available", "round_to", "Case", "load_case", "save_case",
           "save_results", "Report", "check_dirs", "check_suite", "check_arrays", "atol"]
