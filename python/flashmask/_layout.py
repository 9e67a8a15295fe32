"""flashmask._layout — the import-time check that the ctypes struct mirrors (_lib.py, sparse.py,
_cuda.py) have the layout the loaded library was built with. The library describes its public
structs itself (fm_layout_table, include/flashmask/layout.h: sizeof, alignment, every field's
offset and size); a mirror whose size, field names, offsets or field sizes differ raises
LayoutMismatch naming the struct and the field, before any call could read or write the wrong
bytes. Layer: python, over _lib.py.
"""

import ctypes

from . import _lib


class LayoutMismatch(ImportError):
    """A ctypes mirror disagrees with the library's own layout table (a stale binding or library)."""


class LayoutEntry(ctypes.Structure):  # fm_layout_entry (layout.h); checked by its own row count
    _fields_ = [("type", ctypes.c_char_p), ("field", ctypes.c_char_p), ("offset", ctypes.c_size_t),
                ("size", ctypes.c_size_t), ("align", ctypes.c_size_t)]


_lib.lib.fm_layout_table.restype = ctypes.POINTER(LayoutEntry)
_lib.lib.fm_layout_table.argtypes = [ctypes.POINTER(ctypes.c_size_t)]
_lib.lib.fm_version.restype = ctypes.c_char_p
_lib.lib.fm_version.argtypes = []


def library_version():
    """fm_version() of the loaded library."""
    return _lib.lib.fm_version().decode()


def table():
    """{struct name: {"": (0, sizeof, alignof), field: (offset, size, 0), ...}} from the library."""
    n = ctypes.c_size_t()
    rows = _lib.lib.fm_layout_table(ctypes.byref(n))
    out = {}
    for i in range(n.value):
        r = rows[i]
        out.setdefault(r.type.decode(), {})[r.field.decode()] = (r.offset, r.size, r.align)
    return out


def _c_field_name(name):
    return name[:-1] if name.endswith("_") else name  # pass_ mirrors C's `pass`


def compare(mirror, c_name, layout):
    """Raises LayoutMismatch if ctypes Structure `mirror` differs from `layout[c_name]`."""
    if c_name not in layout:
        raise LayoutMismatch(f"{c_name}: not in the library's layout table "
                             f"({_lib.LIB_PATH}); library and binding are from different versions")
    want = layout[c_name]
    fields = [f[0] for f in mirror._fields_]
    c_fields = [f for f in want if f]
    if [_c_field_name(f) for f in fields] != c_fields:
        raise LayoutMismatch(f"{c_name}: the binding's {mirror.__name__} has fields {fields}, the "
                             f"library {c_fields}")
    if ctypes.sizeof(mirror) != want[""][1]:
        raise LayoutMismatch(f"{c_name}: sizeof is {want[''][1]} in the library, "
                             f"{ctypes.sizeof(mirror)} in the binding's {mirror.__name__}")
    for f in fields:
        off, size, _ = want[_c_field_name(f)]
        got = getattr(mirror, f)
        if (got.offset, got.size) != (off, size):
            raise LayoutMismatch(f"{c_name}.{_c_field_name(f)}: offset {off} size {size} in the "
                                 f"library, offset {got.offset} size {got.size} in the binding's "
                                 f"{mirror.__name__}")


def mirrors():
    """(ctypes mirror, C struct name) for every struct the package mirrors."""
    from . import _cuda, sparse
    return [(_lib.Problem, "fm_problem"), (_lib.CMask, "fm_mask"), (_lib.Tensors, "fm_tensors"),
            (_lib.MaskParams, "fm_mask_params"), (_lib.TileStats, "fm_tile_stats"),
            (_lib.BlockSummary, "fm_block_summary"), (_lib.TensorCheck, "fm_tensor_check"),
            (_lib.CheckOptions, "fm_check_options"), (_lib.CheckReport, "fm_check_report"),
            (_lib.Case, "fm_case"), (_lib.Results, "fm_results"), (sparse.BBMStruct, "fm_bbm"),
            (sparse.AnyMask, "fm_any_mask"), (sparse.RcmReport, "fm_rcm_report"),
            (_cuda.CudaMask, "fm_cuda_mask"), (_cuda.FlexBlockMask, "fm_flex_block_mask")]


def verify():
    """Checks every mirror and that the library is the version this package was written for."""
    layout = table()
    for mirror, c_name in mirrors():
        compare(mirror, c_name, layout)
