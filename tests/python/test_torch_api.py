"""tests/python/test_torch_api.py — tensors where they are (flashmask.tensors), the peers' call
shapes with autograd (flashmask.torch) and the test building blocks (flashmask.testing), on the
CPU: NumPy, torch CPU tensors, DLPack-only and __array_interface__-only objects; explicit layouts
(a wrong one is caught where the shapes disagree); gradcheck through the float64 reference;
Paddle's startend_row_indices and flash_attn's causal/window_size against masks built directly;
FlexAttention conversions (stand-in BlockMask objects: Debian's torch has no flex_attention) in
both directions, exact; the pytest plugin run on examples/test_pytest_plugin.py with and without
a planted bug. Skipped without torch. CUDA tensors: tools/gpu/torch_cuda.sh on a GPU host."""

import os
import subprocess
import sys
import unittest

import numpy as np

import flashmask as fm
from flashmask import tensors
import flashmask.testing as fmt

try:
    import torch
    from flashmask import torch as ft
except ImportError:  # pragma: no cover - CI installs python3-torch
    torch = None

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def rnd(shape, seed):
    return np.random.default_rng(seed).standard_normal(shape)


class DLPackOnly:
    """An object offering only the DLPack protocol (as a JAX or CuPy array on the host)."""

    def __init__(self, a):
        self._a = a

    def __dlpack__(self, stream=None):
        return self._a.__dlpack__()

    def __dlpack_device__(self):
        return self._a.__dlpack_device__()


class InterfaceOnly:
    def __init__(self, a):
        self.__array_interface__ = a.__array_interface__
        self._keep = a


class TestTensors(unittest.TestCase):
    def setUp(self):
        self.m = fm.build("causal_document", seqlen_q=48, doc_lens=[20, 28])
        self.q, self.k, self.v, self.do = (rnd((1, 2, 48, 16), s) for s in range(4))
        self.ref = fm.reference(self.q, self.k, self.v, self.do, self.m)

    def test_bshd_equals_bhsd(self):
        t = [np.ascontiguousarray(np.swapaxes(a, 1, 2)) for a in (self.q, self.k, self.v)]
        out, lse = tensors.forward(*t, self.m, layout="bshd")
        np.testing.assert_array_equal(np.swapaxes(out, 1, 2), self.ref["out"])
        np.testing.assert_array_equal(lse, self.ref["lse"])
        dq, dk, dv = tensors.backward(*t, out, lse, np.swapaxes(self.do, 1, 2), self.m,
                                      layout="bshd")
        np.testing.assert_array_equal(np.swapaxes(dk, 1, 2), self.ref["dk"])

    def test_layout_is_never_guessed(self):
        with self.assertRaisesRegex(fm.InvalidInput, "never guessed"):
            tensors.forward(self.q, self.k, self.v, self.m, layout="auto")
        # [B, H, S, D] arrays handed over as bshd: the mask's Sq = 48 is not dimension 1 (= 2)
        with self.assertRaisesRegex(fm.InvalidInput, "is the layout right"):
            tensors.forward(self.q, self.k, self.v, self.m, layout="bshd")

    def test_protocol_objects(self):
        for wrap in (DLPackOnly, InterfaceOnly):
            out, lse = tensors.forward(wrap(self.q), wrap(self.k), wrap(self.v), self.m)
            np.testing.assert_array_equal(out, self.ref["out"])
        with self.assertRaisesRegex(fm.InvalidInput, "not an array"):
            tensors.forward(object(), self.k, self.v, self.m)

    def test_check_accepts_any_kind(self):
        cand = {n: DLPackOnly(np.ascontiguousarray(self.ref[n]))
                for n in ("out", "lse", "dq", "dk", "dv")}
        self.assertTrue(tensors.check(self.q, self.k, self.v, self.do, self.m, cand, "float32"))
        bad = dict(cand, dv=self.ref["dv"] + 1e-2)
        self.assertFalse(tensors.check(self.q, self.k, self.v, self.do, self.m, bad, "float32"))


@unittest.skipIf(torch is None, "torch not importable")
class TestTorch(unittest.TestCase):
    def test_torch_in_torch_out(self):
        m = fm.build("sliding_window", seqlen_q=64, window=9)
        q, k, v = (torch.tensor(rnd((1, 64, 2, 32), s), dtype=torch.bfloat16) for s in range(3))
        out = ft.attention(q, k, v, m, layout="bshd")
        self.assertEqual((out.dtype, out.device.type, tuple(out.shape)),
                         (torch.bfloat16, "cpu", (1, 64, 2, 32)))
        ref, _ = fm.forward(*(x.double().transpose(1, 2).numpy() for x in (q, k, v)), m)
        err = np.abs(out.double().transpose(1, 2).numpy() - ref).max()
        self.assertLess(err, 2e-2)  # bfloat16 output rounding of a float32 computation

    def test_gradcheck_reference(self):
        m = fm.build("prefix_lm_causal", seqlen_q=24, prefix=7)
        args = [torch.tensor(rnd((1, 2, 24, 8), s), requires_grad=True) for s in range(3)]
        self.assertTrue(torch.autograd.gradcheck(
            lambda q, k, v: ft.attention(q, k, v, m, layout="bhsd"), args))

    def test_cpu_gradients_match_reference(self):
        m = fm.build("causal", seqlen_q=40)
        q, k, v = (torch.tensor(rnd((1, 40, 2, 16), s), dtype=torch.float32, requires_grad=True)
                   for s in range(3))
        do = torch.tensor(rnd((1, 40, 2, 16), 9), dtype=torch.float32)
        out = ft.attention(q, k, v, m, layout="bshd")
        out.backward(do)
        r = fm.reference(*(x.detach().double().transpose(1, 2).numpy() for x in (q, k, v, do)), m)
        for name, g in (("dq", q.grad), ("dk", k.grad), ("dv", v.grad)):
            np.testing.assert_allclose(g.double().transpose(1, 2).numpy(), r[name], atol=1e-4)

    def test_flashmask_attention_startend(self):
        B, S, H, D = 1, 32, 2, 16
        se = np.zeros((B, 1, S, 1), np.int32)
        se[0, 0, :, 0] = np.where(np.arange(S) < 12, 12, S)  # document [0, 12) then [12, 32)
        q, k, v = (torch.tensor(rnd((B, S, H, D), s)) for s in range(3))
        out, lse = ft.flashmask_attention(q, k, v, torch.tensor(se), causal=True,
                                          return_softmax_lse=True)
        m = fm.Mask.from_startend(se, S, "bottom_right")
        ref, ref_lse = fm.forward(*(x.transpose(1, 2).numpy() for x in (q, k, v)), m)
        np.testing.assert_allclose(out.transpose(1, 2).numpy(), ref, atol=1e-12)
        np.testing.assert_allclose(lse.numpy(), ref_lse, atol=1e-5)  # lse is float32
        with self.assertRaisesRegex(fm.InvalidInput, "dropout"):
            ft.flashmask_attention(q, k, v, dropout=0.1)

    def test_window_masks_match_dense(self):
        Sq, Sk = 40, 56
        i, j = np.arange(Sq)[:, None], np.arange(Sk)[None, :]
        for causal in (False, True):
            for left, right in [(-1, -1), (5, 3), (-1, 4), (7, -1), (0, 0), (3, 0), (60, 60)]:
                r = 0 if causal else right
                want = np.ones((Sq, Sk), bool)
                if left >= 0:
                    want &= j >= i + Sk - Sq - left
                if r >= 0:
                    want &= j <= i + Sk - Sq + r
                got = ft.window_mask(2, Sq, Sk, causal, (left, right)).to_dense()
                self.assertTrue((got == want).all(), (causal, left, right))

    def test_flash_attn_func_refuses_what_it_cannot_do(self):
        q = torch.zeros(1, 8, 1, 8)
        for kw in ({"dropout_p": 0.1}, {"alibi_slopes": torch.zeros(1)}, {"softcap": 1.0}):
            with self.assertRaises(fm.InvalidInput):
                ft.flash_attn_func(q, q, q, **kw)

    def test_mask_mod_of_every_family(self):
        for family in fm.FAMILIES:
            for heads, mh in ((1, 1), (4, 2)):
                m = fm.build(family, heads=mh, seqlen_q=80, seqlen_k=96)
                dense = ft._dense_of_mask_mod(ft.mask_mod_of(m, heads), 1, heads, 80, 96)
                want = np.repeat(m.to_dense().astype(bool), heads // mh, axis=1)
                self.assertTrue((dense.numpy() == want).all(), (family, heads))

    def test_causal_block_mask_round_trip(self):
        """A FlexAttention-shaped causal BlockMask (built by hand, as create_block_mask does)
        converts to our causal mask and back to identical arrays."""
        S, blk = 300, 64
        n = -(-S // blk)
        num = torch.zeros(1, 1, n, dtype=torch.int32)
        idx = torch.zeros(1, 1, n, n, dtype=torch.int32)
        fnum, fidx = torch.zeros_like(num), torch.zeros_like(idx)
        for qb in range(n):
            full = list(range(qb))      # blocks strictly below the diagonal are full
            num[0, 0, qb], idx[0, 0, qb, 0] = 1, qb   # the diagonal block is partial
            fnum[0, 0, qb] = len(full)
            fidx[0, 0, qb, :len(full)] = torch.tensor(full, dtype=torch.int32)
        bm = ft.BlockMaskFields(num, idx, fnum, fidx, (blk, blk), (S, S),
                                lambda b, h, q, kv: q >= kv)
        ours = ft.from_block_mask(bm)
        self.assertIsInstance(ours, fm.Mask)
        causal = fm.build("causal", seqlen_q=S)
        self.assertTrue((ours.to_dense() == causal.to_dense()).all())
        back = ft.to_block_mask(ours, blk, blk)
        for name in ("kv_num_blocks", "kv_indices", "full_kv_num_blocks", "full_kv_indices"):
            self.assertTrue(torch.equal(getattr(back, name), getattr(bm, name)), name)

    def test_not_representable_becomes_bbm(self):
        # a checkerboard has many masked runs per column: Binary Block Masking instead
        mod = lambda b, h, q, kv: ((q // 4 + kv // 4) % 2) == 0  # noqa: E731
        got = ft.from_mask_mod(mod, None, None, 64, 64, 16, 16)
        self.assertIsInstance(got, fm.sparse.BBM)
        want = ft._dense_of_mask_mod(mod, 1, 1, 64, 64).numpy()
        self.assertTrue((got.to_dense().astype(bool) == want).all())
        # a representable mask_mod comes back in column form
        m = ft.from_mask_mod(lambda b, h, q, kv: (q >= kv) & (q - kv < 10), 1, 1, 64, 64)
        self.assertTrue((m.to_dense() == fm.build("sliding_window", seqlen_q=64,
                                                  window=10).to_dense()).all())


class TestTesting(unittest.TestCase):
    def test_reference_candidate_passes_and_a_bug_fails(self):
        case = fmt.make_case("causal_document", seqlen=64, head_dim=16, dtype="float32",
                             seed=4)

        def good(q, k, v, dout, mask):
            return fm.reference(q, k, v, dout, mask)

        self.assertTrue(fmt.assert_passes(good, case).passed)

        def forgets_the_mask(q, k, v, dout, mask):
            return fm.forward(q, k, v, fm.build("causal", seqlen_q=64))

        with self.assertRaises(AssertionError) as err:
            fmt.assert_passes(forgets_the_mask, case)
        text = str(err.exception)
        self.assertIn("FAILED on causal_document-float32", text)
        self.assertIn("rebuild: flashmask.testing.make_case('causal_document'", text)
        self.assertIn("out ", text)
        self.assertIn("verdict: FAIL", text)

    def test_cases_cover_the_families(self):
        names = [c.name for c in fmt.cases(seqlen=32, head_dim=8, seeds=(0, 1))]
        self.assertEqual(len(names), 2 * len(fm.FAMILIES))
        self.assertEqual(len(set(names)), len(names))

    @unittest.skipIf(torch is None, "torch not importable")
    def test_pytest_plugin_example(self):
        try:
            import pytest  # noqa: F401
        except ImportError:
            self.skipTest("pytest not importable")
        example = os.path.join(REPO, "examples", "test_pytest_plugin.py")
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "flashmask.testing", "-p",
               "no:cacheprovider", example]
        ok = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
        self.assertEqual(ok.returncode, 0, ok.stdout + ok.stderr)
        self.assertIn("6 passed", ok.stdout)
        env = dict(os.environ, FM_EXAMPLE_BUG="scale")
        bad = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env)
        self.assertEqual(bad.returncode, 1, bad.stdout + bad.stderr)
        self.assertIn("candidate FAILED on causal-float32", bad.stdout)


if __name__ == "__main__":
    unittest.main()
