"""tests/robustness/test_python_errors.py — the Python binding's error path under hostile input
(suite 'robustness' and 'python'): arrays whose shapes disagree with the problem (the C
side trusts its pointers, so a short v used to be read past its end), integer arrays whose values
a cast would change (a bound 2**32 + 3 used to wrap to 3, 2.7 to 2), NaN/Inf inputs, names that do
not exist, and missing or special files. Every one must raise a flashmask.FlashMaskError subclass
carrying the library's or the binding's message; none may crash the interpreter or return.

Run: FLASHMASK_LIB=build/libflashmask.so PYTHONPATH=python /usr/bin/python3 -m unittest -v
tests/robustness/test_python_errors.py   (meson test --suite robustness does this).
Layer: tests of python/ (over the whole library).
"""

import os
import tempfile
import unittest

import numpy as np

import flashmask as fm
from flashmask import attention, check, sparse
from flashmask.mask import Mask


def small():
    """B=1, Hq=2, Hk=1, Sq=5, Sk=6, D=4 inputs and a no-op mask over them."""
    rng = np.random.default_rng(3)
    q = rng.standard_normal((1, 2, 5, 4))
    k = rng.standard_normal((1, 1, 6, 4))
    v = rng.standard_normal((1, 1, 6, 4))
    dout = rng.standard_normal((1, 2, 5, 4))
    bounds = np.tile(np.array([5, 5, 0, 0], dtype=np.int32), (1, 1, 6, 1))
    return q, k, v, dout, Mask(bounds, 5, "bottom_right")


class ShapeMismatch(unittest.TestCase):
    def test_forward_short_v(self):
        q, k, v, _, m = small()
        for bad in (v[:, :, :2], v[..., :3], np.zeros((1, 2, 6, 4))):
            with self.assertRaises(fm.InvalidInput) as e:
                attention.forward(q, k, bad, m)
            self.assertIn("v: shape", str(e.exception))

    def test_backward_mismatched_out_lse_dout(self):
        q, k, v, dout, m = small()
        out, lse = attention.forward(q, k, v, m)
        cases = {"out": (out[:, :1], lse, dout), "lse": (out, lse[..., :2], dout),
                 "dout": (out, lse, dout[:, :, :3])}
        for name, (o, l_, d) in cases.items():
            with self.assertRaises(fm.InvalidInput) as e:
                attention.backward(q, k, v, o, l_, d, m)
            self.assertIn(f"{name}: shape", str(e.exception))

    def test_naive_and_check_arrays(self):
        q, k, v, dout, m = small()
        with self.assertRaises(fm.InvalidInput):
            attention.naive(q, k, v[:, :, :1], dout, m, "float16")
        ref = attention.reference(q, k, v, dout, m)
        cand = dict(ref)
        cand["dk"] = ref["dk"][:, :, :3]
        with self.assertRaises(fm.InvalidInput) as e:
            check.check_arrays(q, k, v, dout, m, cand, "float32")
        self.assertIn("candidate dk: shape", str(e.exception))

    def test_dense_entry_points(self):
        q, k, v, dout, _ = small()
        allowed = np.ones((1, 1, 5, 6), dtype=bool)
        with self.assertRaises(fm.InvalidInput):
            sparse.forward_dense(q, k, v[:, :, :2], allowed)
        out, lse = sparse.forward_dense(q, k, v, allowed)
        with self.assertRaises(fm.InvalidInput):
            sparse.backward_dense(q, k, v, out, lse[:, :1], dout, allowed)


class LossyCasts(unittest.TestCase):
    def test_bounds_not_wrapped_or_truncated(self):
        wrap = np.tile(np.array([2**32 + 3, 2**32 + 3, 0, 0], dtype=np.int64), (1, 1, 6, 1))
        with self.assertRaises(fm.InvalidInput) as e:
            Mask(wrap, 5)
        self.assertIn("4294967299", str(e.exception))
        with self.assertRaises(fm.InvalidInput):
            Mask(np.full((1, 1, 6, 4), 2.7), 5)
        with self.assertRaises(fm.InvalidInput):
            Mask(np.full((1, 1, 6, 4), np.nan), 5)
        # exact values of another type are fine
        Mask(np.tile(np.array([5.0, 5.0, 0.0, 0.0]), (1, 1, 6, 1)), 5)

    def test_bounds_out_of_range_named(self):
        b = np.tile(np.array([5, 5, 0, 0], dtype=np.int32), (1, 1, 6, 1))
        b[0, 0, 4, 1] = 9
        with self.assertRaises(fm.InvalidInput) as e:
            Mask(b, 5)
        self.assertIn("column=4", str(e.exception))


class NonFinite(unittest.TestCase):
    def test_nan_and_inf_inputs(self):
        q, k, v, dout, m = small()
        for impl in ("reference", "cpu"):
            for name, value in (("q", np.nan), ("k", np.inf), ("v", -np.inf)):
                arrays = {"q": q.copy(), "k": k.copy(), "v": v.copy()}
                arrays[name].flat[5] = value
                with self.assertRaises(fm.InvalidInput) as e:
                    attention.forward(arrays["q"], arrays["k"], arrays["v"], m, impl=impl)
                self.assertEqual(e.exception.status_name, "non-finite input")
                self.assertIn(f"tensor {name}: element 5", str(e.exception))


class NamesAndFiles(unittest.TestCase):
    def test_unknown_names(self):
        q, k, v, _, m = small()
        with self.assertRaises(fm.InvalidInput):
            attention.forward(q, k, v, m, impl="gpu9")
        with self.assertRaises(fm.InvalidInput):
            Mask(np.zeros((1, 1, 6, 4), dtype=np.int32), 5, causal="sideways")

    def test_missing_and_special_case_dirs(self):
        with tempfile.TemporaryDirectory() as d:
            with self.assertRaises(fm.FileError):
                fm.load_case(os.path.join(d, "nope"))
            os.mkfifo(os.path.join(d, "case.json"))
            with self.assertRaises(fm.FileError) as e:  # must not block on the FIFO
                fm.load_case(d)
            self.assertIn("not a regular file", str(e.exception))


if __name__ == "__main__":
    unittest.main()
