"""tests/robustness/test_python_errors.py — the Python binding's error path under hostile input
(suite 'robustness' and 'python', issue 7): arrays whose shapes disagree with the problem (the C
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


# ---------------------------------------------------------------- round two (docs/robustness.md)

class MaskArguments(unittest.TestCase):
    def test_allowed_pairs_indices(self):
        m = fm.build("causal", heads=1, seqlen_q=16)
        for b, h in ((10**7, 0), (0, 3), (-1, 0), (0, 1.0), (True, 0)):
            with self.assertRaises(fm.InvalidInput):  # was SIGSEGV / garbage
                m.allowed_pairs(b=b, h=h)
        with self.assertRaises(fm.InvalidInput):
            m.allowed_pairs(b=0)
        self.assertEqual(m.allowed_pairs(b=0, h=0), 16 * 17 // 2)

    def test_from_dense_refuses_non_binary(self):
        for value in (0.5, 256, 2, -1):
            a = np.ones((1, 1, 4, 4))
            a[0, 0, 1, 2] = value
            with self.assertRaises(fm.InvalidInput):  # 0.5 and 256 became 0
                Mask.from_dense(a)
        self.assertEqual(Mask.from_dense(np.ones((1, 1, 4, 4))).allowed_pairs(), 16)

    def test_build_refuses_fractional_parameters(self):
        with self.assertRaises(fm.InvalidInput):  # window=2.7 was 2
            fm.build("sliding_window", seqlen_q=16, window=2.7)
        with self.assertRaises(fm.InvalidInput):
            fm.build("causal_document", seqlen_q=8, doc_lens=[4.5, 3.5])
        self.assertEqual(fm.build("sliding_window", seqlen_q=16, window=2.0).allowed_pairs(),
                         fm.build("sliding_window", seqlen_q=16, window=2).allowed_pairs())

    def test_bounds_layouts_and_aliasing(self):
        m = fm.build("causal_document", seqlen_q=16, doc_lens=[9, 7])
        want = m.allowed_pairs()
        b = np.array(m.bounds)
        for layout in (np.asfortranarray(b), b.astype(np.int64), b[..., ::-1][..., ::-1]):
            other = fm.build("causal", seqlen_q=16)
            other.bounds = layout  # was reinterpreted: 45 instead of 129 pairs
            self.assertEqual(other.allowed_pairs(), want)
            self.assertEqual(Mask(layout, 16, "bottom_right").allowed_pairs(), want)
        mine = np.array(b)
        m2 = Mask(mine, 16, "bottom_right")
        mine[...] = 0  # the caller's array: the mask must not change with it
        self.assertEqual(m2.allowed_pairs(), want)
        with self.assertRaises(ValueError):  # read-only: changes go through validation
            m2.bounds[0, 0, 0, 0] = 99
        with self.assertRaises(fm.InvalidInput):
            m2.bounds = np.full_like(b, 99)
        self.assertEqual(m2.allowed_pairs(), want)


class ArrayArguments(unittest.TestCase):
    def test_complex_refused(self):
        q, k, v, _, m = small()
        with self.assertRaises(fm.InvalidInput) as e:  # the imaginary part was dropped
            attention.forward(q + 1j, k, v, m)
        self.assertIn("complex", str(e.exception))

    def test_nul_in_paths(self):
        with tempfile.TemporaryDirectory() as d:
            with self.assertRaises(fm.InvalidInput):  # "d/x\0y" was read as "d/x"
                fm.load_case(os.path.join(d, "x\0y"))
            with self.assertRaises(fm.InvalidInput):
                fm.check_dirs(d + "\0", d)

    def test_save_results_and_case_shapes(self):
        q, k, v, dout, m = small()
        ref = attention.reference(q, k, v, dout, m)
        with tempfile.TemporaryDirectory() as d:
            fm.save_case(os.path.join(d, "c"), q, k, v, dout, m, "float64", expected=ref)
            c = fm.load_case(os.path.join(d, "c"))
            with self.assertRaises(fm.InvalidInput):  # wrote 158 heap values
                fm.save_results(os.path.join(d, "r"), c, out=np.zeros(3))
            big = dict(ref, dq=np.zeros((1, 2, 50, 4)))
            with self.assertRaises(fm.InvalidInput):
                fm.save_case(os.path.join(d, "c2"), q, k, v, dout, m, "float64", expected=big)
            with self.assertRaises(fm.InvalidInput):
                fm.save_case(os.path.join(d, "c3"), q, k, v, dout, m, "float64",
                             expected=dict(ref, outt=ref["out"]))
            self.assertFalse(os.path.exists(os.path.join(d, "r")))

    def test_sparse_mask_shapes(self):
        rng = np.random.default_rng(1)
        q, k, v, dout = (rng.standard_normal((1, 1, 64, 8)) for _ in range(4))
        tiny = np.ones((1, 1, 2, 2), np.uint8)
        with self.assertRaises(fm.InvalidInput):  # read 4 KB past the 2x2 mask
            sparse.forward_dense(q, k, v, tiny)
        with self.assertRaises(fm.InvalidInput):
            sparse.check_dense(q, k, v, dout, tiny, {"out": q, "lse": q[..., 0]}, "float32",
                               forward_only=True)
        with self.assertRaises(fm.InvalidInput):
            sparse.qk_sparse_forward(q, k, v, np.ones((1, 1, 2)), np.ones((1, 1, 64)))
        with self.assertRaises(fm.InvalidInput):
            sparse.hash_sparse_forward(q, k, v, np.zeros((1, 1, 64)), np.zeros((1, 1, 3)), 4)
        with self.assertRaises(fm.InvalidInput):
            sparse.qk_sparse_dense_mask(q, k, np.ones((1, 1, 64)), np.ones((2, 1, 64)))
        with self.assertRaises(fm.InvalidInput):
            sparse.forward_dense(q, k, v, np.full((1, 1, 64, 64), 2, np.uint8))


class ExtremeInputs(unittest.TestCase):
    def test_cpu_out_of_float32_range(self):
        q, k, v, _, m = small()
        with self.assertRaises(fm.FlashMaskError) as e:  # was NaN, silently
            attention.forward(q * 1e200, k, v, m, impl="cpu")
        self.assertIn("tensor q", str(e.exception))
        self.assertIn("float32", str(e.exception))

    def test_overflow_is_not_blamed_on_out(self):
        q, k, v, dout, m = small()
        q, k = np.full_like(q, 1e30), np.full_like(k, 1e30)
        with self.assertRaises(fm.FlashMaskError) as e:
            out, lse = attention.forward(q, k, v, m, impl="cpu")
            attention.backward(q, k, v, out, lse, dout, m, impl="cpu")
        self.assertNotIn("tensor out", str(e.exception))


class Suites(unittest.TestCase):
    def suite(self, d, manifest):
        with open(os.path.join(d, "manifest.json"), "w") as f:
            f.write(manifest)

    def test_check_suite_errors_are_falsy(self):
        with tempfile.TemporaryDirectory() as d:
            self.suite(d, '{"format": "flashmask-suite", "cases": [{"name": "a"}, '
                          '{"name": "b"}]}')
            res = fm.check_suite(d, d)
            self.assertEqual(sorted(res), ["a", "b"])
            self.assertFalse(any(res.values()))  # exceptions as values were truthy
            self.assertFalse(all(res.values()))
            self.assertIsInstance(res["a"].error, fm.FlashMaskError)

    def test_bad_manifests(self):
        with tempfile.TemporaryDirectory() as d:
            for text in ('{"format": "flashmask-suite", "cases": []}',
                         '{"format": "flashmask-suite", "cases": [{"name": "/etc"}]}',
                         '{"format": "flashmask-suite", "cases": [{"name": "../x"}]}',
                         '{"format": "flashmask-suite", "cases": [{"name": 3}]}', "[1"):
                self.suite(d, text)
                with self.assertRaises(fm.InvalidInput, msg=text):
                    fm.check_suite(d, d)
            os.remove(os.path.join(d, "manifest.json"))
            os.mkfifo(os.path.join(d, "manifest.json"))
            with self.assertRaises(fm.FileError):  # must not block on the FIFO
                fm.check_suite(d, d)
            with self.assertRaises(fm.InvalidInput):
                fm.check_dirs(d, d, dtype="float64")


class CaseDigest(unittest.TestCase):
    def test_changed_case_refused(self):
        q, k, v, dout, m = small()
        with tempfile.TemporaryDirectory() as d:
            c = os.path.join(d, "c")
            fm.save_case(c, q, k, v, dout, m, "float64",
                         expected=attention.reference(q, k, v, dout, m))
            fm.load_case(c)
            other = Mask(np.tile(np.array([5, 5, 0, 0], np.int32), (1, 1, 6, 1)) * 0 + 5, 5,
                         "none")
            np.save(os.path.join(c, "mask.npy"), other.bounds)
            with self.assertRaises(fm.InvalidInput) as e:
                fm.load_case(c)
            self.assertIn("mask.npy changed", str(e.exception))


if __name__ == "__main__":
    unittest.main()
