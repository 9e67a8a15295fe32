"""tests/python/test_layout.py — the import-time layout check (flashmask._layout): every ctypes
mirror agrees with the library's fm_layout_table(), and mirrors that are wrong in each way a
stale binding can be (a field's type, a missing field, renamed or reordered fields, padding)
raise LayoutMismatch naming the struct and field. Also: one version, fm_version(), everywhere.
Run by tests/python/meson.build against this build's library."""

import ctypes
import os
import re
import unittest

import flashmask as fm
from flashmask import _lib, _layout

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def mirror(fields):
    return type("Wrong", (ctypes.Structure,), {"_fields_": fields})


PROBLEM = list(_lib.Problem._fields_)


class TestLayout(unittest.TestCase):
    def setUp(self):
        self.table = _layout.table()

    def test_every_mirror_matches(self):
        for m, name in _layout.mirrors():
            _layout.compare(m, name, self.table)  # raises on a mismatch
        # the table covers every mirror and nothing is mirrored twice
        self.assertEqual(len({n for _, n in _layout.mirrors()}), len(_layout.mirrors()))
        self.assertTrue({n for _, n in _layout.mirrors()} <= set(self.table))

    def test_wrong_field_type_raises(self):
        fields = PROBLEM[:6] + [("scale", ctypes.c_float)] + PROBLEM[7:]
        with self.assertRaisesRegex(fm.LayoutMismatch, r"fm_problem"):
            _layout.compare(mirror(fields), "fm_problem", self.table)

    def test_missing_field_raises(self):
        with self.assertRaisesRegex(fm.LayoutMismatch, r"fm_problem: .*fields"):
            _layout.compare(mirror(PROBLEM[:-1]), "fm_problem", self.table)

    def test_reordered_fields_raise(self):
        fields = [PROBLEM[1], PROBLEM[0]] + PROBLEM[2:]
        with self.assertRaisesRegex(fm.LayoutMismatch, r"fields"):
            _layout.compare(mirror(fields), "fm_problem", self.table)

    def test_wrong_nested_size_raises(self):
        # fm_check_report with four tensor checks instead of five: same names, wrong offsets
        fields = [(n, t) if n != "tensor" else (n, _lib.TensorCheck * 4)
                  for n, t in _lib.CheckReport._fields_]
        with self.assertRaisesRegex(fm.LayoutMismatch, r"fm_check_report"):
            _layout.compare(mirror(fields), "fm_check_report", self.table)

    def test_packed_mirror_raises(self):
        # fm_mask has 4 bytes of padding after `causal`; a packed mirror loses them
        wrong = type("Packed", (ctypes.Structure,), {"_pack_": 1,
                                                     "_fields_": list(_lib.CMask._fields_)})
        with self.assertRaisesRegex(fm.LayoutMismatch, r"fm_mask"):
            _layout.compare(wrong, "fm_mask", self.table)

    def test_unknown_struct_raises(self):
        with self.assertRaisesRegex(fm.LayoutMismatch, r"fm_nothing: not in"):
            _layout.compare(_lib.Problem, "fm_nothing", self.table)

    def test_sizes_are_the_compilers(self):
        row = self.table["fm_problem"]
        self.assertEqual(row[""][1], ctypes.sizeof(_lib.Problem))
        self.assertEqual(row["scale"][:2], (_lib.Problem.scale.offset, 8))


class TestVersion(unittest.TestCase):
    def test_one_version(self):
        with open(os.path.join(REPO, "meson.build")) as f:
            version = re.search(r"^  version: '([^']+)'", f.read(), re.M).group(1)
        self.assertEqual(fm.__version__, version)
        self.assertEqual(_layout.library_version(), version)


if __name__ == "__main__":
    unittest.main()
